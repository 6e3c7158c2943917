//! What you see is what you sign, for real: a signed action's text shown in the trusted
//! prompt (a real pinentry program, the scripted one standing in for the person) only after
//! the bridge checked the challenge commits to it; a tampered text refused before anything
//! reaches the authenticator; one prompt per request where the bridge and the authenticator
//! share it; declining and the prompt's own timeout told apart.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Counting, PageCalls, Scripted};
use passgate_authenticator::ctap::AuthenticatorConfig;
use passgate_bridge::prompt::{Pinentry, PresenceGrants, PromptPresence, PromptUi};
use passgate_bridge::{Bridge, ErrorName, InProcess, b64};
use passgate_platform_api::trusted_prompt::TrustedPrompt;
use serde_json::{Value, json};

const ORIGIN: &str = "https://shop.example.com";
const PAYLOAD: &str = r#"{"pay": "ACME Ltd", "amount": "129.00", "currency": "EUR", "iban": "DE89 3704 0044 0532 0130 00"}"#;

fn creation(user: &str) -> Value {
    json!({
        "rp": {"id": "example.com", "name": "Example"},
        "user": {"id": b64::encode(user.as_bytes()), "name": user, "displayName": user},
        "challenge": b64::encode(&[7u8; 32]),
        "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
        "authenticatorSelection": {"residentKey": "required", "userVerification": "required"},
    })
}

/// The relying party's action challenge: 16 random bytes, then SHA-256 of the text.
fn action_challenge(payload: &str) -> String {
    let mut challenge = vec![0x42u8; 16];
    challenge.extend_from_slice(
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, payload.as_bytes()).as_ref(),
    );
    b64::encode(&challenge)
}

fn approval(credential: &Value, payload: &str, signed_text: &str, uv: &str) -> Value {
    json!({
        "type": "get",
        "payload": payload,
        "options": {
            "challenge": action_challenge(signed_text),
            "rpId": "example.com",
            "allowCredentials": [{"type": "public-key", "id": credential["id"]}],
            "userVerification": uv,
        },
    })
}

/// A bridge and an in-process authenticator on one scripted pinentry, sharing presence
/// grants as `passgate demo` does; the transport counts what reaches the authenticator.
fn rig(dir: &std::path::Path, share: bool) -> (Scripted, Bridge, Counting) {
    let pinentry = Scripted::new(dir);
    let prompt: Arc<dyn TrustedPrompt> =
        Arc::new(Pinentry::new(&pinentry.program).with_timeout(Duration::from_secs(3)));
    let grants = Arc::new(PresenceGrants::default());
    let mut presence = PromptPresence::new(Arc::clone(&prompt));
    let mut ui = PromptUi::new(prompt);
    if share {
        presence = presence.with_presence_grants(Arc::clone(&grants));
        ui = ui.with_presence_grants(grants);
    }
    let authenticator = passgate_testkit::software_authenticator(
        dir,
        Box::new(presence),
        1000,
        AuthenticatorConfig::default(),
    );
    let counting = Counting::new(InProcess::new(authenticator));
    let bridge = Bridge::new(Box::new(counting.clone()), Box::new(ui));
    (pinentry, bridge, counting)
}

fn commands(dialogs: &[Value]) -> Vec<String> {
    dialogs
        .iter()
        .map(|d| d["command"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_action_text_is_shown_with_the_pin_and_one_prompt_signs() {
    let dir = tempfile::tempdir().unwrap();
    let (pinentry, bridge, _) = rig(dir.path(), true);
    // The first PIN is set in the prompt (two entries), and that dialog was the approval:
    // no presence dialog after it.
    let cred = bridge.create(ORIGIN, None, &creation("alice")).unwrap();
    assert_eq!(commands(&pinentry.dialogs()), ["GETPIN", "GETPIN"]);
    assert_eq!(pinentry.dialogs()[0]["title"], "passgate: create a passkey");

    let before = pinentry.dialogs().len();
    let reply = bridge.handle(
        ORIGIN,
        &approval(&cred, PAYLOAD, PAYLOAD, "required").to_string(),
    );
    let signed: Value = serde_json::from_str(&reply).unwrap();
    assert!(signed.get("error").is_none(), "{reply}");
    let dialogs = pinentry.dialogs();
    assert_eq!(commands(&dialogs[before..]), ["GETPIN"], "one prompt");
    let shown = &dialogs[before];
    assert_eq!(shown["title"], "passgate: approve an action");
    assert_eq!(shown["ok"], "Approve");
    let text = shown["description"].as_str().unwrap();
    assert!(
        text.starts_with("Approve on https://shop.example.com (your passkey for example.com):\n\n    {\n      \"amount\": \"129.00\",\n"),
        "{text}"
    );
    assert!(
        text.contains("\"iban\": \"DE89 3704 0044 0532 0130 00\""),
        "{text}"
    );
    assert!(
        text.ends_with("Enter your passgate PIN to approve exactly this."),
        "{text}"
    );
    // UP and UV, over the challenge that commits to the text.
    let auth_data = b64::decode(signed["response"]["authenticatorData"].as_str().unwrap()).unwrap();
    assert_eq!(auth_data[32] & 0x05, 0x05);
    let client_data: Value = serde_json::from_slice(
        &b64::decode(signed["response"]["clientDataJSON"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(client_data["challenge"], action_challenge(PAYLOAD));
    // The client data says the text was shown: a receipt may say so.
    assert_eq!(client_data["passgatePayloadShown"], true);
}

#[test]
fn a_tampered_text_is_refused_before_anyone_is_asked_or_anything_signed() {
    let dir = tempfile::tempdir().unwrap();
    let (pinentry, bridge, counting) = rig(dir.path(), true);
    let cred = bridge.create(ORIGIN, None, &creation("alice")).unwrap();
    let asked = pinentry.dialogs().len();
    let sent = counting.commands().len();
    let shown = PAYLOAD.replace("129.00", "12.90");
    for request in [
        approval(&cred, &shown, PAYLOAD, "required"),
        approval(&cred, &format!("{PAYLOAD} "), PAYLOAD, "discouraged"),
    ] {
        let reply: Value =
            serde_json::from_str(&bridge.handle(ORIGIN, &request.to_string())).unwrap();
        assert_eq!(reply["error"]["name"], "SecurityError", "{reply}");
        assert!(
            reply["error"]["message"]
                .as_str()
                .unwrap()
                .contains("nothing was signed"),
            "{reply}"
        );
    }
    assert_eq!(pinentry.dialogs().len(), asked, "no prompt");
    assert_eq!(
        counting.commands().len(),
        sent,
        "nothing reached the authenticator"
    );
    // A payload on a create is refused too.
    let reply: Value = serde_json::from_str(&bridge.handle(
        ORIGIN,
        &json!({"type": "create", "payload": "x", "options": creation("bob")}).to_string(),
    ))
    .unwrap();
    assert_eq!(reply["error"]["name"], "TypeError", "{reply}");
}

#[test]
fn without_a_pin_the_text_is_approved_in_its_own_dialog() {
    let dir = tempfile::tempdir().unwrap();
    let (pinentry, bridge, _) = rig(dir.path(), true);
    let cred = bridge.create(ORIGIN, None, &creation("alice")).unwrap();
    let before = pinentry.dialogs().len();
    let reply: Value = serde_json::from_str(&bridge.handle(
        ORIGIN,
        &approval(&cred, PAYLOAD, PAYLOAD, "discouraged").to_string(),
    ))
    .unwrap();
    assert!(reply.get("error").is_none(), "{reply}");
    let dialogs = pinentry.dialogs();
    assert_eq!(commands(&dialogs[before..]), ["CONFIRM"], "one prompt");
    assert_eq!(dialogs[before]["title"], "passgate: approve an action");
    assert_eq!(dialogs[before]["ok"], "Approve");
    assert!(
        dialogs[before]["description"]
            .as_str()
            .unwrap()
            .contains("\"pay\": \"ACME Ltd\""),
        "{:?}",
        dialogs[before]
    );

    // Denied there: the page is told it was declined, and nothing was signed.
    pinentry.direct(json!({"getpin": passgate_testkit::PIN, "confirm": "cancel"}));
    let e = bridge
        .dispatch(
            &{
                let mut r = approval(&cred, PAYLOAD, PAYLOAD, "discouraged");
                r["origin"] = json!(ORIGIN);
                r
            },
            None,
        )
        .unwrap_err();
    assert_eq!(e.name, ErrorName::NotAllowedError);
    assert_eq!(
        e.message,
        "you declined on passgate's prompt (the action was not approved)"
    );
}

#[test]
fn declining_and_the_prompts_timeout_say_different_things() {
    let dir = tempfile::tempdir().unwrap();
    let (pinentry, bridge, _) = rig(dir.path(), true);
    let cred = bridge.create(ORIGIN, None, &creation("alice")).unwrap();
    let sign_in = json!({
        "challenge": b64::encode(&[9u8; 32]),
        "rpId": "example.com",
        "allowCredentials": [{"type": "public-key", "id": cred["id"]}],
        "userVerification": "required",
    });
    pinentry.direct(json!({"getpin": "cancel", "confirm": "ok"}));
    let declined = bridge.get(ORIGIN, None, &sign_in).unwrap_err();
    assert_eq!(
        declined.message,
        "you declined on passgate's prompt (the PIN was not entered)"
    );
    pinentry.direct(json!({"getpin": passgate_testkit::PIN, "confirm": "ok", "script": {"GETPIN": [{"hang": true}]}}));
    let timed_out = bridge.get(ORIGIN, None, &sign_in).unwrap_err();
    assert_eq!(timed_out.name, ErrorName::NotAllowedError);
    assert_eq!(
        timed_out.message,
        "no answer within 3 s on passgate's prompt (the PIN was not entered)"
    );
}

#[test]
fn without_shared_grants_the_authenticator_still_asks_for_presence() {
    // A bridge and an authenticator that do not share a process (or do not share grants):
    // the PIN token carries no presence, so the authenticator asks, as CTAP says.
    let dir = tempfile::tempdir().unwrap();
    let (pinentry, bridge, _) = rig(dir.path(), false);
    let cred = bridge.create(ORIGIN, None, &creation("alice")).unwrap();
    assert_eq!(
        commands(&pinentry.dialogs()),
        ["GETPIN", "GETPIN", "CONFIRM"]
    );
    let before = pinentry.dialogs().len();
    let reply: Value = serde_json::from_str(&bridge.handle(
        ORIGIN,
        &approval(&cred, PAYLOAD, PAYLOAD, "required").to_string(),
    ))
    .unwrap();
    assert!(reply.get("error").is_none(), "{reply}");
    assert_eq!(
        commands(&pinentry.dialogs()[before..]),
        ["GETPIN", "CONFIRM"]
    );
}

#[test]
fn after_three_wrong_pins_the_pin_is_no_longer_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let (pinentry, bridge, _) = rig(dir.path(), true);
    let cred = bridge.create(ORIGIN, None, &creation("alice")).unwrap();
    let sign_in = json!({
        "challenge": b64::encode(&[9u8; 32]),
        "rpId": "example.com",
        "allowCredentials": [{"type": "public-key", "id": cred["id"]}],
        "userVerification": "required",
    });
    pinentry.direct(json!({"getpin": "000000", "confirm": "ok"}));
    let before = pinentry.dialogs().len();
    let blocked = bridge.get(ORIGIN, None, &sign_in).unwrap_err();
    assert_eq!(blocked.name, ErrorName::NotAllowedError);
    assert!(
        blocked.message.starts_with("three wrong PINs in a row"),
        "{}",
        blocked.message
    );
    let dialogs = pinentry.dialogs();
    assert_eq!(commands(&dialogs[before..]), ["GETPIN", "GETPIN", "GETPIN"]);
    assert_eq!(dialogs[before + 1]["error"], "Wrong PIN. 7 attempts left.");
    // The next request does not ask for a PIN that cannot work: it says why at once.
    pinentry.direct(json!({"getpin": passgate_testkit::PIN, "confirm": "ok"}));
    let again = bridge.get(ORIGIN, None, &sign_in).unwrap_err();
    assert_eq!(again.message, blocked.message);
    assert_eq!(pinentry.dialogs().len(), before + 3, "no prompt");
}

#[test]
fn an_excluded_credential_is_refused_after_a_notice_and_no_pin() {
    let dir = tempfile::tempdir().unwrap();
    let (pinentry, bridge, counting) = rig(dir.path(), true);
    let cred = bridge.create(ORIGIN, None, &creation("alice")).unwrap();
    let mut again = creation("alice");
    again["excludeCredentials"] = json!([{"type": "public-key", "id": cred["id"]}]);

    let asked = pinentry.dialogs().len();
    let sent = counting.commands().len();
    let e = bridge.create(ORIGIN, None, &again).unwrap_err();
    assert_eq!(e.name, ErrorName::InvalidStateError, "{e}");
    // One notice, no PIN; only getInfo and the silent probe reached the authenticator.
    let dialogs = pinentry.dialogs();
    assert_eq!(commands(&dialogs[asked..]), ["CONFIRM"]);
    assert_eq!(dialogs[asked]["title"], "passgate: passkey already here");
    let text = dialogs[asked]["description"].as_str().unwrap();
    assert!(
        text.starts_with("https://shop.example.com asked to create a passkey for \u{201c}alice\u{201d} on example.com, but this authenticator already holds one"),
        "{text}"
    );
    assert_eq!(counting.commands()[sent..], [0x04, 0x02]);

    // Dismissed: the page learns nothing more than a refusal.
    pinentry.direct(json!({"getpin": common::PIN, "confirm": "cancel"}));
    let e = bridge.create(ORIGIN, None, &again).unwrap_err();
    assert_eq!(e.name, ErrorName::NotAllowedError, "{e}");
    assert!(e.message.contains("you declined"), "{e}");

    // An exclude list that names nothing here still creates, with the PIN.
    pinentry.direct(json!({"getpin": common::PIN, "confirm": "ok"}));
    let mut other = creation("bob");
    other["excludeCredentials"] = json!([{"type": "public-key", "id": b64::encode(&[3u8; 16])}]);
    let asked = pinentry.dialogs().len();
    bridge.create(ORIGIN, None, &other).unwrap();
    assert_eq!(commands(&pinentry.dialogs()[asked..]), ["GETPIN"]);
}
