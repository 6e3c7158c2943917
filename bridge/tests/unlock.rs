//! Three wrong PINs (PIN_AUTH_BLOCKED) and the way on without restarting anything else: the
//! prompt says the PIN is locked for now, stops asking for it, offers Unlock, and after the
//! person's yes (and the delay) the in-process authenticator's PIN/UV state power-cycles and
//! the PIN is asked again. A real pinentry program (the scripted one) plays the person; each
//! tab's title and the queue show in the dialogs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{PIN, PageCalls, Scripted};
use passgate_authenticator::Authenticator;
use passgate_authenticator::ctap::AuthenticatorConfig;
use passgate_bridge::prompt::{Pinentry, PromptPresence, PromptUi};
use passgate_bridge::{Bridge, ErrorName, InProcess, b64};
use passgate_platform_api::trusted_prompt::TrustedPrompt;
use serde_json::{Value, json};

const ORIGIN: &str = "https://shop.example.com";

fn creation(user: &str) -> Value {
    json!({
        "type": "create",
        "tab": "Shop — your account",
        "options": {
            "rp": {"id": "example.com", "name": "Example"},
            "user": {"id": b64::encode(user.as_bytes()), "name": user, "displayName": user},
            "challenge": b64::encode(&[7u8; 32]),
            "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
            "authenticatorSelection": {"residentKey": "required", "userVerification": "required"},
        },
    })
}

fn sign_in(tab: &str) -> Value {
    json!({
        "type": "get",
        "tab": tab,
        "options": {"challenge": b64::encode(&[9u8; 32]), "rpId": "example.com", "userVerification": "required"},
    })
}

fn commands(dialogs: &[Value]) -> Vec<String> {
    dialogs
        .iter()
        .map(|d| d["command"].as_str().unwrap().to_owned())
        .collect()
}

/// A bridge on a scripted pinentry and a shared in-process authenticator, with Unlock after
/// `delay`.
fn rig(dir: &std::path::Path, delay: Duration) -> (Scripted, Arc<Bridge>) {
    let pinentry = Scripted::new(dir);
    let prompt: Arc<dyn TrustedPrompt> =
        Arc::new(Pinentry::new(&pinentry.program).with_timeout(Duration::from_secs(5)));
    let authenticator = Arc::new(Mutex::new(passgate_testkit::software_authenticator(
        dir,
        Box::new(PromptPresence::new(Arc::clone(&prompt))),
        1000,
        AuthenticatorConfig::default(),
    )));
    let unplug = Arc::clone(&authenticator);
    let bridge = Bridge::new(
        Box::new(InProcess::shared(authenticator)),
        Box::new(PromptUi::new(prompt)),
    )
    .with_power_cycle(
        Arc::new(move || {
            unplug
                .lock()
                .map_err(|_| "poisoned".to_owned())
                .map(|mut a: std::sync::MutexGuard<'_, Authenticator>| a.power_cycle())
        }),
        delay,
    );
    (pinentry, Arc::new(bridge))
}

fn run(bridge: &Bridge, request: &Value) -> Value {
    serde_json::from_str(&bridge.handle(ORIGIN, &request.to_string())).unwrap()
}

#[test]
fn three_wrong_pins_then_unlock_and_the_right_pin_signs_in() {
    let dir = tempfile::tempdir().unwrap();
    let delay = Duration::from_secs(1);
    let (pinentry, bridge) = rig(dir.path(), delay);
    let created = run(&bridge, &creation("alice"));
    assert!(created.get("error").is_none(), "{created}");

    // Three wrong PINs, then Unlock, then the right one: one request, no restart.
    let before = pinentry.dialogs().len();
    pinentry.direct(json!({
        "getpin": PIN,
        "confirm": "ok",
        "script": {"GETPIN": ["000000", "000001", "000002"]},
    }));
    let started = Instant::now();
    let signed = run(&bridge, &sign_in("Shop — sign in"));
    assert!(signed.get("error").is_none(), "{signed}");
    assert_eq!(signed["response"]["userHandle"], b64::encode(b"alice"));
    assert!(
        started.elapsed() >= delay,
        "the unlock waited for its delay"
    );
    let dialogs = &pinentry.dialogs()[before..];
    assert_eq!(
        commands(dialogs),
        ["GETPIN", "GETPIN", "GETPIN", "CONFIRM", "GETPIN", "CONFIRM"],
        "{dialogs:?}"
    );
    assert_eq!(dialogs[1]["error"], "Wrong PIN. 7 attempts left.");
    assert_eq!(dialogs[2]["error"], "Wrong PIN. 6 attempts left.");
    let unlock = &dialogs[3];
    assert_eq!(unlock["title"], "passgate: PIN locked for now");
    assert_eq!(unlock["ok"], "Unlock");
    let text = unlock["description"].as_str().unwrap();
    assert!(
        text.starts_with("https://shop.example.com wants to sign in with your passkey for example.com.\nFrom the tab that calls itself \u{201c}Shop \u{2014} sign in\u{201d}.\n\nThree wrong PINs in a row: passgate's authenticator stopped taking the PIN until it restarts, so you are not asked for it now. 5 PIN attempts are left before the PIN is blocked for good."),
        "{text}"
    );
    assert!(
        text.ends_with("your passkeys, your PIN and this page's pairing are kept. It waits 1 s first. Then enter the PIN again."),
        "{text}"
    );
    // After the unlock, the PIN dialog says how many attempts are left.
    assert_eq!(dialogs[4]["error"], "Wrong PIN. 5 attempts left.");
    // The authenticator's own presence check (this rig shares no grants).
    assert_eq!(dialogs[5]["title"], "passgate");
    assert!(
        dialogs[5]["description"]
            .as_str()
            .unwrap()
            .contains("example.com")
    );
}

#[test]
fn a_declined_unlock_stops_asking_and_the_next_request_offers_it_again() {
    let dir = tempfile::tempdir().unwrap();
    let (pinentry, bridge) = rig(dir.path(), Duration::ZERO);
    let created = run(&bridge, &creation("alice"));
    assert!(created.get("error").is_none(), "{created}");
    pinentry.direct(json!({
        "getpin": "000000",
        "confirm": "ok",
        "script": {"CONFIRM": ["cancel"]},
    }));
    let before = pinentry.dialogs().len();
    let refused = run(&bridge, &sign_in("Shop"));
    assert_eq!(refused["error"]["name"], "NotAllowedError", "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("you declined on passgate's prompt (the PIN stayed locked)"),
        "{refused}"
    );
    assert_eq!(
        commands(&pinentry.dialogs()[before..]),
        ["GETPIN", "GETPIN", "GETPIN", "CONFIRM"]
    );
    // The next request does not ask for the PIN that cannot work: it offers Unlock first.
    pinentry.direct(json!({"getpin": PIN, "confirm": "ok"}));
    let before = pinentry.dialogs().len();
    let signed = run(&bridge, &sign_in("Shop"));
    assert!(signed.get("error").is_none(), "{signed}");
    let dialogs = &pinentry.dialogs()[before..];
    assert_eq!(commands(dialogs), ["CONFIRM", "GETPIN", "CONFIRM"]);
    assert_eq!(dialogs[0]["title"], "passgate: PIN locked for now");
}

#[test]
fn without_a_power_cycle_the_error_says_to_restart_and_no_pin_is_asked() {
    let dir = tempfile::tempdir().unwrap();
    let pinentry = Scripted::new(dir.path());
    let prompt: Arc<dyn TrustedPrompt> =
        Arc::new(Pinentry::new(&pinentry.program).with_timeout(Duration::from_secs(5)));
    let authenticator = passgate_testkit::software_authenticator(
        dir.path(),
        Box::new(PromptPresence::new(Arc::clone(&prompt))),
        1000,
        AuthenticatorConfig::default(),
    );
    let bridge = Bridge::new(
        Box::new(InProcess::new(authenticator)),
        Box::new(PromptUi::new(prompt)),
    );
    assert!(run(&bridge, &creation("alice")).get("error").is_none());
    pinentry.direct(json!({"getpin": "000000", "confirm": "ok"}));
    let refused = run(&bridge, &sign_in("Shop"));
    assert_eq!(refused["error"]["name"], "NotAllowedError");
    let before = pinentry.dialogs().len();
    let again = run(&bridge, &sign_in("Shop"));
    assert_eq!(again["error"]["name"], "NotAllowedError");
    assert!(
        again["error"]["message"]
            .as_str()
            .unwrap()
            .contains("restart `passgate authenticator serve`"),
        "{again}"
    );
    assert!(pinentry.dialogs()[before..].is_empty(), "no PIN asked");
    let _ = ErrorName::NotAllowedError;
}

#[test]
fn two_tabs_are_queued_and_each_prompt_names_its_tab() {
    let dir = tempfile::tempdir().unwrap();
    let (pinentry, bridge) = rig(dir.path(), Duration::ZERO);
    assert!(run(&bridge, &creation("alice")).get("error").is_none());
    // The first tab's PIN dialog stays open a moment (and gets a mistyped PIN): the second
    // tab's request waits, and the first tab's next dialog says so.
    pinentry.direct(json!({
        "getpin": PIN,
        "confirm": "ok",
        "script": {"GETPIN": [{"answer": "000000", "delay_ms": 1500}]},
    }));
    let before = pinentry.dialogs().len();
    let first = {
        let bridge = Arc::clone(&bridge);
        std::thread::spawn(move || run(&bridge, &sign_in("Tab one")))
    };
    std::thread::sleep(Duration::from_millis(500));
    let second = {
        let bridge = Arc::clone(&bridge);
        std::thread::spawn(move || run(&bridge, &sign_in("Tab two")))
    };
    let (first, second) = (first.join().unwrap(), second.join().unwrap());
    assert!(first.get("error").is_none(), "{first}");
    assert!(second.get("error").is_none(), "{second}");
    let dialogs = &pinentry.dialogs()[before..];
    let pins: Vec<&str> = dialogs
        .iter()
        .filter(|d| d["command"] == "GETPIN")
        .map(|d| d["description"].as_str().unwrap())
        .collect();
    assert_eq!(pins.len(), 3, "{dialogs:?}");
    assert!(
        pins[0].contains("\nFrom the tab that calls itself \u{201c}Tab one\u{201d}.\n"),
        "{}",
        pins[0]
    );
    assert!(!pins[0].contains("waiting"), "{}", pins[0]);
    assert!(
        pins[1]
            .contains("\u{201c}Tab one\u{201d}.\n1 more request is waiting; it is asked next.\n"),
        "{}",
        pins[1]
    );
    assert!(pins[2].contains("\u{201c}Tab two\u{201d}"), "{}", pins[2]);
    assert!(!pins[2].contains("waiting"), "{}", pins[2]);
}
