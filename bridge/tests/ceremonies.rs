//! Ceremony behaviour against a real in-process passgate authenticator: excluded credentials,
//! algorithms, user-verification requirements, PRF over hmac-secret, cancellation and
//! timeouts, malformed input, and the CTAPHID-over-TCP transport.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Counting, PIN, PageCalls, PinEntry, authenticator};
use passgate_bridge::{Bridge, ErrorName, InProcess, NoUserInterface, TcpCtapHid, b64};
use serde_json::{Value, json};

const ORIGIN: &str = "https://shop.example.com";

fn creation(user: &str) -> Value {
    json!({
        "rp": {"id": "example.com", "name": "Example"},
        "user": {"id": b64::encode(user.as_bytes()), "name": user, "displayName": user},
        "challenge": b64::encode(&[7u8; 32]),
        "pubKeyCredParams": [{"type": "public-key", "alg": -257}, {"type": "public-key", "alg": -7}],
        "authenticatorSelection": {"residentKey": "required", "userVerification": "required"},
        "extensions": {"credProps": true},
    })
}

fn request(allow: &[&Value]) -> Value {
    json!({
        "challenge": b64::encode(&[9u8; 32]),
        "rpId": "example.com",
        "allowCredentials": allow.iter().map(|c| json!({"type": "public-key", "id": c["id"]})).collect::<Vec<_>>(),
        "userVerification": "required",
    })
}

fn pin_bridge(dir: &std::path::Path) -> (Arc<Bridge>, Counting) {
    let transport = Counting::new(InProcess::new(authenticator(dir)));
    let bridge = Arc::new(Bridge::new(
        Box::new(transport.clone()),
        Box::new(PinEntry::with(PIN)),
    ));
    bridge.set_pin(PIN).unwrap();
    (bridge, transport)
}

#[test]
fn excluded_credentials_unsupported_algorithms_and_missing_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let (bridge, transport) = pin_bridge(dir.path());
    let first = bridge.create(ORIGIN, None, &creation("carol")).unwrap();
    // -257 (RS256) is skipped: this authenticator does not offer it.
    assert_eq!(first["response"]["publicKeyAlgorithm"], -7);

    let mut again = creation("carol");
    again["excludeCredentials"] = json!([{"type": "public-key", "id": first["id"]}]);
    let e = bridge.create(ORIGIN, None, &again).unwrap_err();
    assert_eq!(e.name, ErrorName::InvalidStateError, "{e}");

    let mut rsa_only = creation("dave");
    rsa_only["pubKeyCredParams"] = json!([{"type": "public-key", "alg": -257}]);
    let before = transport.commands().len();
    let e = bridge.create(ORIGIN, None, &rsa_only).unwrap_err();
    assert_eq!(e.name, ErrorName::NotSupportedError);
    // Only getInfo went out: no makeCredential was attempted.
    assert_eq!(transport.commands()[before..], [0x04]);

    let unknown = json!({"type": "public-key", "id": b64::encode(&[1u8; 16])});
    let e = bridge.get(ORIGIN, None, &request(&[&unknown])).unwrap_err();
    assert_eq!(e.name, ErrorName::NotAllowedError);
    assert!(e.message.contains("NoCredentials"), "{e}");

    // A sibling subdomain of the same registrable domain uses the credential.
    let signed = bridge
        .get("https://login.example.com", None, &request(&[&first]))
        .unwrap();
    assert_eq!(signed["id"], first["id"]);
    // Cross-origin iframe: crossOrigin true and the top origin in clientDataJSON.
    let nested = bridge
        .get(
            ORIGIN,
            Some("https://pay.other.example"),
            &request(&[&first]),
        )
        .unwrap();
    let client_data = b64::decode(nested["response"]["clientDataJSON"].as_str().unwrap()).unwrap();
    assert!(
        String::from_utf8(client_data)
            .unwrap()
            .ends_with(r#""origin":"https://shop.example.com","crossOrigin":true,"topOrigin":"https://pay.other.example"}"#)
    );
}

#[test]
fn a_long_allow_list_is_probed_silently_in_batches() {
    let dir = tempfile::tempdir().unwrap();
    let (bridge, transport) = pin_bridge(dir.path());
    let cred = bridge.create(ORIGIN, None, &creation("erin")).unwrap();
    // 150 unknown IDs and the real one last: more than the authenticator's 64 per request.
    let decoys: Vec<Value> = (0u8..150)
        .map(|i| json!({"id": b64::encode(&[i; 16])}))
        .collect();
    let mut allow: Vec<&Value> = decoys.iter().collect();
    allow.push(&cred);
    let before = transport.commands().len();
    let signed = bridge.get(ORIGIN, None, &request(&allow)).unwrap();
    assert_eq!(signed["id"], cred["id"]);
    // getInfo, three silent probes, the PIN (whether it is usable, key agreement, token),
    // the real getAssertion.
    assert_eq!(
        transport.commands()[before..],
        [0x04, 0x02, 0x02, 0x02, 0x06, 0x06, 0x06, 0x02]
    );
}

#[test]
fn user_verification_requirements() {
    let dir = tempfile::tempdir().unwrap();
    // No PIN set, no built-in verification: "required" cannot be met.
    let transport = Counting::new(InProcess::new(authenticator(dir.path())));
    let bridge = Bridge::new(Box::new(transport.clone()), Box::new(NoUserInterface));
    assert!(!bridge.is_uvpaa().unwrap());
    let e = bridge.create(ORIGIN, None, &creation("frank")).unwrap_err();
    assert_eq!(e.name, ErrorName::NotAllowedError);
    assert!(e.message.contains("user verification is required"), "{e}");
    // "preferred" proceeds without verification: UP only.
    let mut preferred = creation("frank");
    preferred["authenticatorSelection"]["userVerification"] = json!("preferred");
    let cred = bridge.create(ORIGIN, None, &preferred).unwrap();
    let auth_data = b64::decode(cred["response"]["authenticatorData"].as_str().unwrap()).unwrap();
    assert_eq!(auth_data[32] & 0x05, 0x01, "UP without UV");
    assert_eq!(cred["clientExtensionResults"]["credProps"]["rk"], true);

    // With a PIN set but a host that cannot ask for it, a required discoverable credential
    // cannot be made (the authenticator insists on verification); a preferred one falls back
    // to non-discoverable, and "required" sign-in fails.
    let pin_setter = Bridge::new(Box::new(transport.clone()), Box::new(NoUserInterface));
    pin_setter.set_pin(PIN).unwrap();
    let e = bridge.create(ORIGIN, None, &preferred).unwrap_err();
    assert_eq!(e.name, ErrorName::NotAllowedError);
    let mut rk_preferred = preferred.clone();
    rk_preferred["authenticatorSelection"]["residentKey"] = json!("preferred");
    rk_preferred["user"]["id"] = json!(b64::encode(b"frank-2"));
    let non_discoverable = bridge.create(ORIGIN, None, &rk_preferred).unwrap();
    assert_eq!(
        non_discoverable["clientExtensionResults"]["credProps"]["rk"],
        false
    );
    let e = bridge.get(ORIGIN, None, &request(&[&cred])).unwrap_err();
    assert_eq!(e.name, ErrorName::NotAllowedError);
    // A wrong PIN is asked again; the third wrong one in a row makes the authenticator
    // want a power cycle, and the page gets NotAllowedError.
    let wrong_ui = PinEntry::with("000000");
    let wrong = Bridge::new(Box::new(transport.clone()), Box::new(wrong_ui.clone()));
    let e = wrong.get(ORIGIN, None, &request(&[&cred])).unwrap_err();
    assert_eq!(e.name, ErrorName::NotAllowedError);
    assert!(e.message.contains("PinAuthBlocked"), "{e}");
    assert_eq!(wrong_ui.asked(), 3);
}

#[test]
fn prf_outputs_are_stable_per_input_and_match_between_create_and_get() {
    let dir = tempfile::tempdir().unwrap();
    let (bridge, _) = pin_bridge(dir.path());
    let first_input = b64::encode(b"encryption key v1");
    let mut options = creation("grace");
    options["extensions"]["prf"] = json!({"eval": {"first": first_input}});
    let cred = bridge.create(ORIGIN, None, &options).unwrap();
    let prf = &cred["clientExtensionResults"]["prf"];
    assert_eq!(prf["enabled"], true, "{cred}");
    let at_creation = prf["results"]["first"].as_str().unwrap().to_owned();
    assert_eq!(b64::decode(&at_creation).unwrap().len(), 32);

    let mut get = request(&[&cred]);
    get["extensions"] =
        json!({"prf": {"eval": {"first": first_input, "second": b64::encode(b"other")}}});
    let a = bridge.get(ORIGIN, None, &get).unwrap();
    let results = &a["clientExtensionResults"]["prf"]["results"];
    assert_eq!(results["first"], at_creation.as_str());
    assert_ne!(results["second"], results["first"]);
    // evalByCredential wins over eval for the credential it names.
    let mut by_credential = request(&[&cred]);
    by_credential["extensions"] = json!({"prf": {
        "eval": {"first": b64::encode(b"unused")},
        "evalByCredential": {cred["id"].as_str().unwrap(): {"first": first_input}},
    }});
    let b = bridge.get(ORIGIN, None, &by_credential).unwrap();
    assert_eq!(
        b["clientExtensionResults"]["prf"]["results"]["first"],
        at_creation.as_str()
    );
    // evalByCredential keys must name an allowed credential.
    let mut bad = request(&[&cred]);
    bad["extensions"] = json!({"prf": {"evalByCredential": {"AAAA": {"first": first_input}}}});
    assert_eq!(
        bridge.get(ORIGIN, None, &bad).unwrap_err().name,
        ErrorName::SyntaxError
    );
    // The salt is hashed with the WebAuthn PRF prefix: the raw input as an hmac-secret salt
    // would give something else, so a different input gives a different output.
    let mut other = request(&[&cred]);
    other["extensions"] = json!({"prf": {"eval": {"first": b64::encode(b"encryption key v2")}}});
    let c = bridge.get(ORIGIN, None, &other).unwrap();
    assert_ne!(
        c["clientExtensionResults"]["prf"]["results"]["first"],
        at_creation.as_str()
    );
}

#[test]
fn cancel_aborts_and_timeout_is_not_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let (setup, _) = pin_bridge(dir.path());
    drop(setup);
    let mut transport = Counting::new(InProcess::new(authenticator(dir.path())));
    transport.stall = true;
    let bridge = Arc::new(Bridge::new(
        Box::new(transport),
        Box::new(PinEntry::with(PIN)),
    ));
    let canceller = Arc::clone(&bridge);
    let handle = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        canceller.cancel();
    });
    let started = Instant::now();
    let e = bridge.create(ORIGIN, None, &creation("heidi")).unwrap_err();
    handle.join().unwrap();
    assert_eq!(e.name, ErrorName::AbortError, "{e}");
    assert!(started.elapsed() < Duration::from_secs(5));

    let mut short = creation("ivan");
    short["timeout"] = json!(1000);
    let started = Instant::now();
    let e = bridge.create(ORIGIN, None, &short).unwrap_err();
    assert_eq!(e.name, ErrorName::NotAllowedError, "{e}");
    assert!(e.message.contains("timed out"), "{e}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

#[test]
fn malformed_requests_are_type_errors_and_never_reach_the_authenticator() {
    let dir = tempfile::tempdir().unwrap();
    let transport = Counting::new(InProcess::new(authenticator(dir.path())));
    let bridge = Bridge::new(Box::new(transport.clone()), Box::new(NoUserInterface));
    let cases = [
        "",
        "{",
        "[]",
        "null",
        r#"{"type":"create"}"#,
        r#"{"type":"create","origin":"https://example.com"}"#,
        r#"{"type":"sign","origin":"https://example.com","options":{}}"#,
        r#"{"type":"create","origin":"https://example.com","options":{"rp":{"name":"x"}}}"#,
        r#"{"type":"create","origin":"https://example.com","topOrigin":5,"options":{}}"#,
        r#"{"type":"create","origin":"https://example.com","options":{"rp":{"name":"x"},"user":{"id":"!!","name":"a","displayName":"a"},"challenge":"AAAA","pubKeyCredParams":[]}}"#,
        r#"{"type":"create","origin":"https://example.com","options":{"rp":{"name":"x"},"user":{"id":"","name":"a","displayName":"a"},"challenge":"AAAA","pubKeyCredParams":[]}}"#,
        r#"{"type":"get","origin":"https://example.com","options":{"challenge":"a+b"}}"#,
        r#"{"type":"get","origin":"https://example.com","options":{"challenge":"AAAA","allowCredentials":[{"type":"public-key","id":"%%"}]}}"#,
        r#"{"type":"get","origin":"https://example.com","options":{"challenge":"AAAA","timeout":-5}}"#,
    ];
    for case in cases {
        let reply: Value =
            serde_json::from_str(&bridge.handle("https://example.com", case)).unwrap();
        assert_eq!(reply["error"]["name"], "TypeError", "{case}: {reply}");
        assert!(reply["error"]["message"].as_str().unwrap().len() > 5);
    }
    assert_eq!(transport.commands(), Vec::<u8>::new());
    // Arbitrary bytes never panic.
    for n in 0u8..=255 {
        let junk: String = (0..40)
            .map(|i| char::from(n.wrapping_mul(i) % 128))
            .collect();
        let reply: Value =
            serde_json::from_str(&bridge.handle("https://example.com", &junk)).unwrap();
        assert!(reply["error"]["name"].is_string());
    }
}

#[test]
fn the_ctaphid_tcp_transport_reaches_a_served_authenticator() {
    let dir = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let server = passgate_authenticator::transport::tcp::TcpServer::start(
        listener,
        authenticator(dir.path()),
    )
    .unwrap();
    let target = format!("tcp://{}", server.local_addr());
    let bridge = Bridge::new(
        Box::new(TcpCtapHid::new(&target)),
        Box::new(PinEntry::with(PIN)),
    );
    bridge.set_pin(PIN).unwrap();
    assert!(bridge.is_uvpaa().unwrap());
    let cred = bridge.create(ORIGIN, None, &creation("judy")).unwrap();
    let auth_data = b64::decode(cred["response"]["authenticatorData"].as_str().unwrap()).unwrap();
    assert_eq!(auth_data[32], 0x45, "UP, UV, AT");
    let signed = bridge.get(ORIGIN, None, &request(&[&cred])).unwrap();
    assert_eq!(signed["id"], cred["id"]);
    server.stop().unwrap();
    // A stopped authenticator is NotAllowedError, not a hang.
    let started = Instant::now();
    let e = bridge.get(ORIGIN, None, &request(&[&cred])).unwrap_err();
    assert_eq!(e.name, ErrorName::NotAllowedError, "{e}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_long_exclude_list_still_finds_the_existing_credential() {
    let dir = tempfile::tempdir().unwrap();
    let (bridge, transport) = pin_bridge(dir.path());
    let cred = bridge.create(ORIGIN, None, &creation("mallory")).unwrap();
    let mut exclude: Vec<Value> = (0u8..100)
        .map(|i| json!({"type": "public-key", "id": b64::encode(&[i; 16])}))
        .collect();
    exclude.push(json!({"type": "public-key", "id": cred["id"]}));
    let mut again = creation("mallory");
    again["excludeCredentials"] = json!(exclude);
    let before = transport.commands().len();
    let e = bridge.create(ORIGIN, None, &again).unwrap_err();
    assert_eq!(e.name, ErrorName::InvalidStateError, "{e}");
    // getInfo, two silent probes, PIN (whether it is usable, key agreement, token),
    // makeCredential.
    assert_eq!(
        transport.commands()[before..],
        [0x04, 0x02, 0x02, 0x06, 0x06, 0x06, 0x01]
    );
    // Without the existing credential in the list, 101 unknown IDs do not stop creation.
    let mut fresh = creation("mallory");
    fresh["excludeCredentials"] = json!(exclude[..100]);
    bridge.create(ORIGIN, None, &fresh).unwrap();
}

/// Picks the account with this name.
struct Chooser(&'static str);

impl passgate_bridge::UserInterface for Chooser {
    fn collects_pin(&self) -> bool {
        true
    }
    fn pin(
        &self,
        _: &passgate_bridge::PinRequest<'_>,
    ) -> Result<zeroize::Zeroizing<String>, passgate_bridge::Unanswered> {
        Ok(zeroize::Zeroizing::new(PIN.to_owned()))
    }
    fn choose_account(
        &self,
        choice: &passgate_bridge::AccountChoice<'_>,
    ) -> Result<usize, passgate_bridge::Unanswered> {
        choice
            .accounts
            .iter()
            .position(|a| a.name.as_deref() == Some(self.0))
            .ok_or(passgate_bridge::Unanswered::Declined)
    }
}

#[test]
fn discoverable_sign_in_with_several_accounts_lets_the_person_choose() {
    let dir = tempfile::tempdir().unwrap();
    let shared = InProcess::new(authenticator(dir.path()));
    let setup = Bridge::new(Box::new(shared.clone()), Box::new(PinEntry::with(PIN)));
    setup.set_pin(PIN).unwrap();
    let olivia = setup.create(ORIGIN, None, &creation("olivia")).unwrap();
    let peggy = setup.create(ORIGIN, None, &creation("peggy")).unwrap();
    let mut discoverable = request(&[]);
    discoverable
        .as_object_mut()
        .unwrap()
        .remove("allowCredentials");
    // The default takes the newest.
    let newest = setup.get(ORIGIN, None, &discoverable).unwrap();
    assert_eq!(newest["id"], peggy["id"]);
    for (name, cred) in [("olivia", &olivia), ("peggy", &peggy)] {
        let chooser = Bridge::new(Box::new(shared.clone()), Box::new(Chooser(name)));
        let a = chooser.get(ORIGIN, None, &discoverable).unwrap();
        assert_eq!(a["id"], cred["id"], "{name}");
        assert_eq!(
            a["response"]["userHandle"],
            json!(b64::encode(name.as_bytes()))
        );
    }
    let nobody = Bridge::new(Box::new(shared.clone()), Box::new(Chooser("trent")));
    let e = nobody.get(ORIGIN, None, &discoverable).unwrap_err();
    assert_eq!(e.name, ErrorName::NotAllowedError);
}

/// The first wrong, then right.
struct SecondTry(std::sync::atomic::AtomicUsize);

impl passgate_bridge::UserInterface for SecondTry {
    fn collects_pin(&self) -> bool {
        true
    }
    fn pin(
        &self,
        _: &passgate_bridge::PinRequest<'_>,
    ) -> Result<zeroize::Zeroizing<String>, passgate_bridge::Unanswered> {
        let n = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(zeroize::Zeroizing::new(
            if n == 0 { "999999" } else { PIN }.to_owned(),
        ))
    }
}

#[test]
fn a_mistyped_pin_is_asked_again_and_packed_attestation_verifies_with_the_spki() {
    let dir = tempfile::tempdir().unwrap();
    let shared = InProcess::new(authenticator(dir.path()));
    Bridge::new(Box::new(shared.clone()), Box::new(NoUserInterface))
        .set_pin(PIN)
        .unwrap();
    let bridge = Bridge::new(
        Box::new(shared),
        Box::new(SecondTry(std::sync::atomic::AtomicUsize::new(0))),
    );
    let mut direct = creation("rupert");
    direct["attestation"] = json!("direct");
    direct["attestationFormats"] = json!(["packed"]);
    let cred = bridge.create(ORIGIN, None, &direct).unwrap();
    let response = &cred["response"];
    let att: ciborium::Value = ciborium::from_reader(
        &b64::decode(response["attestationObject"].as_str().unwrap()).unwrap()[..],
    )
    .unwrap();
    let field = |name: &str| {
        att.as_map()
            .unwrap()
            .iter()
            .find(|(k, _)| k.as_text() == Some(name))
            .unwrap()
            .1
            .clone()
    };
    assert_eq!(field("fmt").as_text(), Some("packed"));
    let stmt = field("attStmt");
    let sig = stmt
        .as_map()
        .unwrap()
        .iter()
        .find(|(k, _)| k.as_text() == Some("sig"))
        .unwrap()
        .1
        .as_bytes()
        .unwrap()
        .clone();
    // Self attestation: signed by the credential key over authData || SHA-256(clientDataJSON).
    let auth_data = b64::decode(response["authenticatorData"].as_str().unwrap()).unwrap();
    let client_data = b64::decode(response["clientDataJSON"].as_str().unwrap()).unwrap();
    let mut signed = auth_data.clone();
    signed.extend_from_slice(
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &client_data).as_ref(),
    );
    let spki = b64::decode(response["publicKey"].as_str().unwrap()).unwrap();
    let point = &spki[spki.len() - 65..];
    aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
        point,
    )
    .verify(&signed, &sig)
    .expect("the attestation signature verifies with the SPKI public key");
    assert_eq!(auth_data[32] & 0x04, 0x04, "verified by the second PIN");

    // And the assertion verifies with the same key.
    let a = bridge.get(ORIGIN, None, &request(&[&cred])).unwrap();
    let mut signed = b64::decode(a["response"]["authenticatorData"].as_str().unwrap()).unwrap();
    let cd = b64::decode(a["response"]["clientDataJSON"].as_str().unwrap()).unwrap();
    signed.extend_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &cd).as_ref());
    let sig = b64::decode(a["response"]["signature"].as_str().unwrap()).unwrap();
    aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
        point,
    )
    .verify(&signed, &sig)
    .expect("the assertion verifies");
}
