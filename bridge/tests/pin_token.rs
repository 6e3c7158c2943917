//! The kept pinUvAuthToken (`passgate_client::token_cache`) against a real in-process passgate
//! authenticator: what CTAP 2.1's token rules let a second ceremony skip, and what they do not.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{PIN, PageCalls, PinEntry, authenticator};
use passgate_authenticator::api::user_verifier::Interaction;
use passgate_bridge::{Bridge, CtapTransport, ErrorName, InProcess, TransportError, b64};
use serde_json::{Value, json};

const ORIGIN: &str = "https://shop.example.com";

fn creation(user: &str) -> Value {
    json!({
        "rp": {"id": "example.com", "name": "Example"},
        "user": {"id": b64::encode(user.as_bytes()), "name": user, "displayName": user},
        "challenge": b64::encode(&[7u8; 32]),
        "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
        "authenticatorSelection": {"residentKey": "required", "userVerification": "required"},
    })
}

fn sign_in(rp_id: &str) -> Value {
    json!({
        "challenge": b64::encode(&[9u8; 32]),
        "rpId": rp_id,
        "userVerification": "required",
    })
}

/// The in-process authenticator; `abort_after_token`, when set, plays a page that aborts
/// its request just after the authenticator issued a pinUvAuthToken (so the token reaches
/// the bridge, and no makeCredential/getAssertion ever uses it).
#[derive(Clone)]
struct AbortAfterToken {
    inner: InProcess,
    armed: Arc<AtomicBool>,
}

impl CtapTransport for AbortAfterToken {
    fn call(
        &mut self,
        request: &[u8],
        interaction: &Interaction,
    ) -> Result<Vec<u8>, TransportError> {
        let response = self.inner.call(request, interaction)?;
        let is_token_request = request.first() == Some(&0x06)
            && ciborium::from_reader::<ciborium::Value, _>(request.get(1..).unwrap_or_default())
                .ok()
                .and_then(|v| {
                    v.as_map()?.iter().find_map(|(k, v)| {
                        (k.as_integer() == Some(2.into())).then(|| v.as_integer())
                    })?
                })
                == Some(9.into());
        if is_token_request && self.armed.swap(false, Ordering::SeqCst) {
            interaction.cancel();
        }
        Ok(response)
    }
}

fn bridge_on(
    authenticator: &Arc<Mutex<passgate_authenticator::Authenticator>>,
    ui: &PinEntry,
) -> (Bridge, Arc<AtomicBool>) {
    let armed = Arc::new(AtomicBool::new(false));
    let transport = AbortAfterToken {
        inner: InProcess::shared(Arc::clone(authenticator)),
        armed: Arc::clone(&armed),
    };
    (
        Bridge::new(Box::new(transport), Box::new(ui.clone())),
        armed,
    )
}

#[test]
fn a_token_is_good_for_one_ceremony_as_ctap_says() {
    let dir = tempfile::tempdir().unwrap();
    let authenticator = Arc::new(Mutex::new(authenticator(dir.path())));
    let ui = PinEntry::with(PIN);
    let (bridge, _) = bridge_on(&authenticator, &ui);
    bridge.set_pin(PIN).unwrap();
    bridge.create(ORIGIN, None, &creation("alice")).unwrap();
    assert_eq!(ui.asked(), 1);
    // makeCredential left the token only lbw (CTAP 2.1 §6.1.2): the sign-in asks again,
    // and never sends a token the authenticator would refuse.
    let signed = bridge.get(ORIGIN, None, &sign_in("example.com")).unwrap();
    assert_eq!(signed["response"]["userHandle"], b64::encode(b"alice"));
    assert_eq!(ui.asked(), 2);
    bridge.get(ORIGIN, None, &sign_in("example.com")).unwrap();
    assert_eq!(ui.asked(), 3);
}

#[test]
fn a_token_the_authenticator_never_used_spares_the_next_pin_within_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let authenticator = Arc::new(Mutex::new(authenticator(dir.path())));
    let ui = PinEntry::with(PIN);
    let (bridge, armed) = bridge_on(&authenticator, &ui);
    bridge.set_pin(PIN).unwrap();
    bridge.create(ORIGIN, None, &creation("alice")).unwrap();
    assert_eq!(ui.asked(), 1);

    // The page aborts right after the PIN: no getAssertion went out.
    armed.store(true, Ordering::SeqCst);
    let e = bridge
        .get(ORIGIN, None, &sign_in("example.com"))
        .unwrap_err();
    assert_eq!(e.name, ErrorName::AbortError, "{e}");
    assert_eq!(ui.asked(), 2);
    // Tried again: the kept token authorises it, no PIN is asked.
    let signed = bridge.get(ORIGIN, None, &sign_in("example.com")).unwrap();
    assert_eq!(signed["response"]["userHandle"], b64::encode(b"alice"));
    assert_eq!(ui.asked(), 2);
    let flags = b64::decode(signed["response"]["authenticatorData"].as_str().unwrap()).unwrap()[32];
    assert_eq!(flags & 0x05, 0x05, "UP and UV");
    // Used once: the next one asks.
    bridge.get(ORIGIN, None, &sign_in("example.com")).unwrap();
    assert_eq!(ui.asked(), 3);
}

#[test]
fn a_kept_token_is_never_used_for_another_rp_id_or_permission() {
    let dir = tempfile::tempdir().unwrap();
    let authenticator = Arc::new(Mutex::new(authenticator(dir.path())));
    let ui = PinEntry::with(PIN);
    let (bridge, armed) = bridge_on(&authenticator, &ui);
    bridge.set_pin(PIN).unwrap();
    bridge.create(ORIGIN, None, &creation("alice")).unwrap();
    armed.store(true, Ordering::SeqCst);
    bridge
        .get(ORIGIN, None, &sign_in("example.com"))
        .unwrap_err();
    assert_eq!(ui.asked(), 2);
    // A makeCredential needs mc, which a ga token lacks: the PIN is asked.
    bridge.create(ORIGIN, None, &creation("bob")).unwrap();
    assert_eq!(ui.asked(), 3);

    armed.store(true, Ordering::SeqCst);
    bridge
        .get(ORIGIN, None, &sign_in("example.com"))
        .unwrap_err();
    assert_eq!(ui.asked(), 4);
    // Another RP ID: asked again (and the credential there is not found).
    let e = bridge
        .get("https://other.example", None, &sign_in("other.example"))
        .unwrap_err();
    assert_eq!(e.name, ErrorName::NotAllowedError);
    assert_eq!(ui.asked(), 5);
}

#[test]
fn a_token_the_authenticator_dropped_is_replaced_by_asking_once() {
    let dir = tempfile::tempdir().unwrap();
    let authenticator = Arc::new(Mutex::new(authenticator(dir.path())));
    let ui = PinEntry::with(PIN);
    let (bridge, armed) = bridge_on(&authenticator, &ui);
    bridge.set_pin(PIN).unwrap();
    bridge.create(ORIGIN, None, &creation("alice")).unwrap();
    armed.store(true, Ordering::SeqCst);
    bridge
        .get(ORIGIN, None, &sign_in("example.com"))
        .unwrap_err();
    assert_eq!(ui.asked(), 2);

    // Another client gets a token: the authenticator forgets the kept one.
    let other_ui = PinEntry::with(PIN);
    let (other, _) = bridge_on(&authenticator, &other_ui);
    other.get(ORIGIN, None, &sign_in("example.com")).unwrap();

    // The kept token is refused (PIN_AUTH_INVALID): dropped, the PIN asked once, and the
    // ceremony succeeds.
    let signed = bridge.get(ORIGIN, None, &sign_in("example.com")).unwrap();
    assert_eq!(signed["response"]["userHandle"], b64::encode(b"alice"));
    assert_eq!(ui.asked(), 3);
}

#[test]
fn a_zero_window_keeps_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let authenticator = Arc::new(Mutex::new(authenticator(dir.path())));
    let ui = PinEntry::with(PIN);
    let (bridge, armed) = bridge_on(&authenticator, &ui);
    let bridge = bridge.with_pin_token_ttl(Duration::ZERO);
    bridge.set_pin(PIN).unwrap();
    bridge.create(ORIGIN, None, &creation("alice")).unwrap();
    armed.store(true, Ordering::SeqCst);
    bridge
        .get(ORIGIN, None, &sign_in("example.com"))
        .unwrap_err();
    bridge.get(ORIGIN, None, &sign_in("example.com")).unwrap();
    assert_eq!(ui.asked(), 3);
}
