//! The account record (`passgate_bridge::accounts`) in ceremonies against a real in-process
//! passgate authenticator and the scripted pinentry: with two or more accounts known for a
//! site, sign-in is one choice and then one verification, in that order.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Counting, PIN, PageCalls, Scripted, authenticator};
use passgate_bridge::accounts::{AccountRecord, Forget, accounts_path};
use passgate_bridge::prompt::PromptUi;
use passgate_bridge::{Account, Bridge, ErrorName, InProcess, b64};
use serde_json::{Value, json};

const ORIGIN: &str = "https://shop.example.com";

fn creation(user: &str) -> Value {
    json!({
        "rp": {"id": "example.com", "name": "Example"},
        "user": {"id": b64::encode(user.as_bytes()), "name": user, "displayName": format!("{user} Example")},
        "challenge": b64::encode(&[7u8; 32]),
        "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
        "authenticatorSelection": {"residentKey": "required", "userVerification": "required"},
    })
}

fn sign_in(allow: &[&Value]) -> Value {
    let mut options = json!({
        "challenge": b64::encode(&[9u8; 32]),
        "rpId": "example.com",
        "userVerification": "required",
    });
    if !allow.is_empty() {
        options["allowCredentials"] = allow
            .iter()
            .map(|c| json!({"type": "public-key", "id": c["id"]}))
            .collect();
    }
    options
}

/// The rig: the authenticator (presence approved automatically, a PIN set), the scripted
/// pinentry as the bridge's prompt, the commands that reach the authenticator counted, and
/// no kept PIN token (so every verification is a PIN dialog this test sees).
struct Rig {
    _dir: tempfile::TempDir,
    pinentry: Scripted,
    transport: Counting,
    record: AccountRecord,
    shared: InProcess,
}

impl Rig {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pinentry = Scripted::new(dir.path());
        let shared = InProcess::new(authenticator(dir.path()));
        let transport = Counting::new(shared.clone());
        let record = AccountRecord::new(accounts_path(dir.path()));
        let rig = Self {
            _dir: dir,
            pinentry,
            transport,
            record,
            shared,
        };
        rig.bridge(true).set_pin(PIN).unwrap();
        rig
    }

    /// A bridge on the rig's authenticator; `with_record`: it keeps the account record.
    fn bridge(&self, with_record: bool) -> Bridge {
        let bridge = Bridge::new(
            Box::new(self.transport.clone()),
            Box::new(PromptUi::new(self.pinentry.prompt())),
        )
        .with_pin_token_ttl(Duration::ZERO);
        if with_record {
            bridge.with_account_record(self.record.clone())
        } else {
            bridge
        }
    }

    fn known(&self) -> Vec<String> {
        self.record
            .accounts("example.com")
            .unwrap()
            .into_iter()
            .map(|a| a.name.unwrap())
            .collect()
    }

    /// What the dialogs shown since `before` were: (command, description).
    fn dialogs_since(&self, before: usize) -> Vec<(String, String)> {
        self.pinentry.dialogs()[before..]
            .iter()
            .map(|d| {
                (
                    d["command"].as_str().unwrap().to_owned(),
                    d["description"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    fn get_assertions_since(&self, before: usize) -> usize {
        self.transport.commands()[before..]
            .iter()
            .filter(|&&c| c == 0x02)
            .count()
    }
}

#[test]
fn with_two_known_accounts_sign_in_chooses_first_then_verifies_once() {
    let rig = Rig::new();
    let bridge = rig.bridge(true);
    let olivia = bridge.create(ORIGIN, None, &creation("olivia")).unwrap();
    let peggy = bridge.create(ORIGIN, None, &creation("peggy")).unwrap();
    assert_eq!(rig.known(), ["peggy", "olivia"], "learned at create");

    // Most recently used first: "Next account" past peggy, olivia, then her PIN.
    rig.pinentry
        .direct(json!({"getpin": PIN, "confirm": "ok", "script": {"CONFIRM": ["notok"]}}));
    let (dialogs, commands) = (rig.pinentry.dialogs().len(), rig.transport.commands().len());
    let a = bridge.get(ORIGIN, None, &sign_in(&[])).unwrap();
    assert_eq!(a["id"], olivia["id"]);
    assert_eq!(a["response"]["userHandle"], json!(b64::encode(b"olivia")));
    let shown = rig.dialogs_since(dialogs);
    let order: Vec<&str> = shown.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(
        order,
        ["CONFIRM", "GETPIN"],
        "choose (one dialog), then one PIN"
    );
    let (_, first) = &shown[0];
    assert!(
        first.contains(
            "https://shop.example.com wants to sign in with your passkey for example.com"
        ),
        "{first}"
    );
    assert!(
        first.contains("passgate has seen 2 accounts of yours on example.com. Which account? You verify once, for that account only, next."),
        "{first}"
    );
    assert!(
        first.contains("\u{2022} peggy Example (peggy)\n  \u{2022} olivia Example (olivia)"),
        "{first}"
    );
    // Two accounts: one dialog, a button for each.
    let choice = &rig.pinentry.dialogs()[dialogs];
    assert_eq!(choice["ok"], "Use peggy Example (peggy)");
    assert_eq!(choice["notok"], "Use olivia Example (olivia)");
    // No silent probe, one getAssertion: the chosen account's, verified.
    assert_eq!(rig.get_assertions_since(commands), 1);
    let flags = b64::decode(a["response"]["authenticatorData"].as_str().unwrap()).unwrap()[32];
    assert_eq!(flags & 0x05, 0x05, "UP and UV");
    assert_eq!(rig.known(), ["olivia", "peggy"], "olivia used last");

    // The first one offered is the one just used.
    rig.pinentry.direct(json!({"getpin": PIN, "confirm": "ok"}));
    let again = bridge.get(ORIGIN, None, &sign_in(&[])).unwrap();
    assert_eq!(again["id"], olivia["id"]);
    let _ = peggy;
}

#[test]
fn cancelling_the_choice_declines_before_any_pin_or_authenticator_use() {
    let rig = Rig::new();
    let bridge = rig.bridge(true);
    bridge.create(ORIGIN, None, &creation("olivia")).unwrap();
    bridge.create(ORIGIN, None, &creation("peggy")).unwrap();
    rig.pinentry
        .direct(json!({"getpin": PIN, "confirm": "cancel"}));
    let (dialogs, commands) = (rig.pinentry.dialogs().len(), rig.transport.commands().len());
    let e = bridge.get(ORIGIN, None, &sign_in(&[])).unwrap_err();
    assert_eq!(e.name, ErrorName::NotAllowedError);
    assert_eq!(
        e.message,
        "you declined on passgate's prompt (no account was chosen)"
    );
    let order: Vec<String> = rig
        .dialogs_since(dialogs)
        .into_iter()
        .map(|(c, _)| c)
        .collect();
    assert_eq!(order, ["CONFIRM"], "no PIN asked");
    assert_eq!(
        rig.transport.commands()[commands..],
        [0x04],
        "getInfo only: nothing reached the authenticator's credentials"
    );
}

#[test]
fn a_verified_discoverable_sign_in_teaches_the_record_for_next_time() {
    let rig = Rig::new();
    // Made by a bridge that keeps no record (another host, or before the record existed).
    let plain = rig.bridge(false);
    let olivia = plain.create(ORIGIN, None, &creation("olivia")).unwrap();
    plain.create(ORIGIN, None, &creation("peggy")).unwrap();
    assert!(rig.known().is_empty());

    // The first sign-in: the PIN, then the authenticator's list (names after UV).
    let bridge = rig.bridge(true);
    rig.pinentry
        .direct(json!({"getpin": PIN, "confirm": "ok", "script": {"CONFIRM": ["notok"]}}));
    let before = rig.pinentry.dialogs().len();
    let a = bridge.get(ORIGIN, None, &sign_in(&[])).unwrap();
    assert_eq!(a["id"], olivia["id"]);
    let shown = rig.dialogs_since(before);
    let order: Vec<&str> = shown.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(order, ["GETPIN", "CONFIRM"], "PIN, then the list");
    assert!(
        shown[1]
            .1
            .contains("This device holds 2 passkeys for example.com. Which account?"),
        "{}",
        shown[1].1
    );
    assert_eq!(
        rig.known(),
        ["olivia", "peggy"],
        "learned, the used one first"
    );

    // The next: the choice first.
    rig.pinentry.direct(json!({"getpin": PIN, "confirm": "ok"}));
    let before = rig.pinentry.dialogs().len();
    let b = bridge.get(ORIGIN, None, &sign_in(&[])).unwrap();
    assert_eq!(b["id"], olivia["id"]);
    let order: Vec<String> = rig
        .dialogs_since(before)
        .into_iter()
        .map(|(c, _)| c)
        .collect();
    assert_eq!(order, ["CONFIRM", "GETPIN"]);
}

#[test]
fn the_page_allow_list_narrows_the_choice() {
    let rig = Rig::new();
    let bridge = rig.bridge(true);
    let olivia = bridge.create(ORIGIN, None, &creation("olivia")).unwrap();
    let peggy = bridge.create(ORIGIN, None, &creation("peggy")).unwrap();
    bridge.create(ORIGIN, None, &creation("trent")).unwrap();
    // One allowed: no choice at all, just the PIN.
    let before = rig.pinentry.dialogs().len();
    let a = bridge.get(ORIGIN, None, &sign_in(&[&peggy])).unwrap();
    assert_eq!(a["id"], peggy["id"]);
    let order: Vec<String> = rig
        .dialogs_since(before)
        .into_iter()
        .map(|(c, _)| c)
        .collect();
    assert_eq!(order, ["GETPIN"]);
    // Two of the three allowed: the choice names only those two.
    rig.pinentry
        .direct(json!({"getpin": PIN, "confirm": "ok", "script": {"CONFIRM": ["notok"]}}));
    let before = rig.pinentry.dialogs().len();
    let b = bridge
        .get(ORIGIN, None, &sign_in(&[&olivia, &peggy]))
        .unwrap();
    let shown = rig.dialogs_since(before);
    let order: Vec<&str> = shown.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(order, ["CONFIRM", "GETPIN"]);
    assert!(shown[0].1.contains("seen 2 accounts"), "{}", shown[0].1);
    assert!(!shown[0].1.contains("trent"), "{}", shown[0].1);
    assert_eq!(b["id"], olivia["id"], "peggy (used last) was offered first");
}

#[test]
fn a_passkey_gone_from_the_authenticator_is_forgotten() {
    let rig = Rig::new();
    let bridge = rig.bridge(true);
    let olivia = bridge.create(ORIGIN, None, &creation("olivia")).unwrap();
    // A passkey the record knows but the authenticator no longer holds (deleted elsewhere).
    rig.record
        .learn(
            "example.com",
            &[&Account {
                credential_id: vec![0x6b; 32],
                user_handle: Some(b"ghost".to_vec()),
                name: Some("ghost".into()),
                display_name: None,
            }],
        )
        .unwrap();
    rig.pinentry.direct(json!({"getpin": PIN, "confirm": "ok"}));
    let before = rig.pinentry.dialogs().len();
    let e = bridge.get(ORIGIN, None, &sign_in(&[])).unwrap_err();
    assert_eq!(e.name, ErrorName::NotAllowedError);
    assert_eq!(
        e.message,
        "the account you chose no longer has a passkey on this authenticator (passgate has \
         forgotten it): sign in again"
    );
    let order: Vec<String> = rig
        .dialogs_since(before)
        .into_iter()
        .map(|(c, _)| c)
        .collect();
    assert_eq!(
        order,
        ["CONFIRM", "GETPIN"],
        "the ghost (learned last) chosen"
    );
    assert_eq!(rig.known(), ["olivia"], "the ghost is forgotten");
    // Now one known account: the sign-in is the PIN alone.
    let before = rig.pinentry.dialogs().len();
    let a = bridge.get(ORIGIN, None, &sign_in(&[])).unwrap();
    assert_eq!(a["id"], olivia["id"]);
    let order: Vec<String> = rig
        .dialogs_since(before)
        .into_iter()
        .map(|(c, _)| c)
        .collect();
    assert_eq!(order, ["GETPIN"]);
    // And `forget` clears the site.
    assert_eq!(
        rig.record
            .forget(&Forget::Rp("example.com".into()))
            .unwrap(),
        1
    );
    assert!(rig.known().is_empty());
    let _ = &rig.shared;
}

#[test]
fn a_record_others_may_write_is_not_used() {
    use std::os::unix::fs::PermissionsExt;
    let rig = Rig::new();
    let bridge = rig.bridge(true);
    let olivia = bridge.create(ORIGIN, None, &creation("olivia")).unwrap();
    bridge.create(ORIGIN, None, &creation("peggy")).unwrap();
    let path = rig.record.path().to_owned();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let before_bytes = std::fs::read(&path).unwrap();
    // Its names are not trusted: the sign-in goes as without a record (the PIN, then the
    // authenticator's own list), and nothing is written to it.
    rig.pinentry
        .direct(json!({"getpin": PIN, "confirm": "ok", "script": {"CONFIRM": ["notok"]}}));
    let before = rig.pinentry.dialogs().len();
    let a = bridge.get(ORIGIN, None, &sign_in(&[])).unwrap();
    assert_eq!(a["id"], olivia["id"]);
    let order: Vec<String> = rig
        .dialogs_since(before)
        .into_iter()
        .map(|(c, _)| c)
        .collect();
    assert_eq!(order, ["GETPIN", "CONFIRM"]);
    assert_eq!(std::fs::read(&path).unwrap(), before_bytes);
}

#[test]
fn a_verified_discoverable_sign_in_resyncs_the_site() {
    let rig = Rig::new();
    let ghost = Account {
        credential_id: vec![0x6b; 32],
        user_handle: Some(b"ghost".to_vec()),
        name: Some("ghost".into()),
        display_name: None,
    };
    // The authenticator holds no passkey for the site (a reset, say) but the record names
    // one: the verified look-up finds none and the record forgets the site.
    rig.record.learn("example.com", &[&ghost]).unwrap();
    let bridge = rig.bridge(true);
    let e = bridge.get(ORIGIN, None, &sign_in(&[])).unwrap_err();
    assert_eq!(e.name, ErrorName::NotAllowedError);
    assert!(rig.known().is_empty(), "{:?}", rig.known());
    // Made elsewhere (no record), then a ghost: the verified discoverable sign-in found
    // olivia only, so the record of the site is olivia alone.
    let olivia = rig
        .bridge(false)
        .create(ORIGIN, None, &creation("olivia"))
        .unwrap();
    rig.record.learn("example.com", &[&ghost]).unwrap();
    let a = bridge.get(ORIGIN, None, &sign_in(&[])).unwrap();
    assert_eq!(a["id"], olivia["id"]);
    assert_eq!(rig.known(), ["olivia"]);
}
