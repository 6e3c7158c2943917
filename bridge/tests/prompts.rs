//! The trusted prompts for real: a pinentry program spoken to in Assuan (the scripted
//! pinentry in this directory, standing in for the person) and the terminal prompt on a
//! pseudo-terminal, driving ceremonies on a real in-process authenticator.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{PageCalls, Scripted, authenticator, authenticator_with_prompt};
use passgate_authenticator::api::user_verifier::Interaction;
use passgate_bridge::prompt::{Pinentry, PromptUi, TerminalPrompt};
use passgate_bridge::{Bridge, ErrorName, InProcess, b64};
use passgate_platform_api::trusted_prompt::{Answer, Dialog, PromptError, TrustedPrompt};
use serde_json::{Value, json};

const ORIGIN: &str = "https://shop.example.com";
const PIN: &str = "482916";

fn creation(user: &str) -> Value {
    json!({
        "rp": {"id": "example.com", "name": "Example"},
        "user": {"id": b64::encode(user.as_bytes()), "name": user, "displayName": user},
        "challenge": b64::encode(&[7u8; 32]),
        "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
        "authenticatorSelection": {"residentKey": "required", "userVerification": "required"},
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

fn flags(credential: &Value) -> u8 {
    b64::decode(
        credential["response"]["authenticatorData"]
            .as_str()
            .unwrap(),
    )
    .unwrap()[32]
}

#[test]
fn pinentry_sets_the_first_pin_then_verifies_and_approves_presence() {
    let dir = tempfile::tempdir().unwrap();
    let pinentry = Scripted::new(dir.path());
    let prompt = pinentry.prompt();
    let bridge = Bridge::new(
        Box::new(InProcess::new(authenticator_with_prompt(
            dir.path(),
            Arc::clone(&prompt),
        ))),
        Box::new(PromptUi::new(prompt)),
    );
    assert!(bridge.is_uvpaa().unwrap(), "a first PIN can be set here");

    // No PIN yet and UV required: the prompt asks for a new PIN twice, the bridge sets it and
    // verifies with it, and presence is approved in the prompt.
    let cred = bridge.create(ORIGIN, None, &creation("alice")).unwrap();
    assert_eq!(flags(&cred) & 0x05, 0x05, "UP and UV");
    let dialogs = pinentry.dialogs();
    let commands: Vec<&str> = dialogs
        .iter()
        .map(|d| d["command"].as_str().unwrap())
        .collect();
    assert_eq!(commands, ["GETPIN", "GETPIN", "CONFIRM"]);
    let first = dialogs[0]["description"].as_str().unwrap();
    assert!(first.contains("https://shop.example.com wants to create a passkey for \u{201c}alice\u{201d} on example.com"), "{first}");
    assert!(first.contains("no PIN yet"), "{first}");
    assert!(first.contains("at least 4 characters"), "{first}");
    assert_eq!(dialogs[0]["prompt"], "New PIN:");
    assert_eq!(dialogs[1]["prompt"], "Repeat:");
    assert!(
        dialogs[2]["description"]
            .as_str()
            .unwrap()
            .starts_with("Create a passkey for example.com as \u{201c}alice\u{201d}?")
    );
    assert_eq!(dialogs[2]["ok"], "Create passkey");
    assert_eq!(dialogs[2]["cancel"], "Deny");
    assert_eq!(dialogs[2]["title"], "passgate");

    // Signing in: the PIN, then presence.
    let signed = bridge.get(ORIGIN, None, &request(&[&cred])).unwrap();
    assert_eq!(flags(&signed) & 0x05, 0x05);
    let dialogs = pinentry.dialogs();
    assert_eq!(dialogs.len(), 5);
    assert!(
        dialogs[3]["description"]
            .as_str()
            .unwrap()
            .contains("wants to sign in with your passkey for example.com")
    );
    assert_eq!(dialogs[3]["prompt"], "PIN:");
    assert!(dialogs[3].get("error").is_none());

    // A wrong PIN first: asked again, with the attempts left.
    pinentry.direct(json!({"getpin": PIN, "confirm": "ok", "script": {"GETPIN": ["000000"]}}));
    let signed = bridge.get(ORIGIN, None, &request(&[&cred])).unwrap();
    assert_eq!(flags(&signed) & 0x05, 0x05);
    let dialogs = pinentry.dialogs();
    assert_eq!(dialogs[6]["error"], "Wrong PIN. 7 attempts left.");

    // Cancel at the PIN: NotAllowedError and no presence prompt.
    pinentry.direct(json!({"getpin": "cancel", "confirm": "ok"}));
    let before = pinentry.dialogs().len();
    let e = bridge.get(ORIGIN, None, &request(&[&cred])).unwrap_err();
    assert_eq!(e.name, ErrorName::NotAllowedError, "{e}");
    assert_eq!(pinentry.dialogs().len(), before + 1);

    // Deny at presence: NotAllowedError, and nothing was created.
    pinentry.direct(json!({"getpin": PIN, "confirm": "cancel"}));
    let e = bridge.create(ORIGIN, None, &creation("bob")).unwrap_err();
    assert_eq!(e.name, ErrorName::NotAllowedError, "{e}");
    let mut discoverable = request(&[]);
    discoverable
        .as_object_mut()
        .unwrap()
        .remove("allowCredentials");
    pinentry.direct(json!({"getpin": PIN, "confirm": "ok"}));
    let only = bridge.get(ORIGIN, None, &discoverable).unwrap();
    assert_eq!(only["id"], cred["id"], "bob's passkey was never made");
}

#[test]
fn mismatched_new_pins_are_asked_again_and_too_short_ones_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pinentry = Scripted::new(dir.path());
    let bridge = Bridge::new(
        Box::new(InProcess::new(authenticator(dir.path()))),
        Box::new(PromptUi::new(pinentry.prompt())),
    );
    pinentry.direct(json!({
        "getpin": PIN, "confirm": "ok",
        "script": {"GETPIN": ["111111", "222222", "12", "12", "333333", "333333"]},
    }));
    let cred = bridge.create(ORIGIN, None, &creation("carol")).unwrap();
    assert_eq!(flags(&cred) & 0x04, 0x04);
    let dialogs = pinentry.dialogs();
    assert_eq!(dialogs.len(), 6);
    assert_eq!(
        dialogs[2]["error"],
        "The two PINs were different. Choose the PIN again."
    );
    assert_eq!(
        dialogs[4]["error"],
        "The PIN must have at least 4 characters."
    );
    // The PIN that stuck is the last one.
    pinentry.direct(json!({"getpin": "333333", "confirm": "ok"}));
    bridge.get(ORIGIN, None, &request(&[&cred])).unwrap();
    pinentry.direct(json!({"getpin": PIN, "confirm": "ok"}));
    let e = bridge.get(ORIGIN, None, &request(&[&cred]));
    assert!(e.is_err(), "482916 is not the PIN");
}

#[test]
fn several_accounts_are_chosen_in_the_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let pinentry = Scripted::new(dir.path());
    let bridge = Bridge::new(
        Box::new(InProcess::new(authenticator(dir.path()))),
        Box::new(PromptUi::new(pinentry.prompt())),
    );
    let olivia = bridge.create(ORIGIN, None, &creation("olivia")).unwrap();
    let _peggy = bridge.create(ORIGIN, None, &creation("peggy")).unwrap();
    let mut discoverable = request(&[]);
    discoverable
        .as_object_mut()
        .unwrap()
        .remove("allowCredentials");
    // Newest first: peggy's button, then olivia's, in one dialog.
    pinentry.direct(json!({"getpin": PIN, "confirm": "ok", "script": {"CONFIRM": ["notok"]}}));
    let before = pinentry.dialogs().len();
    let a = bridge.get(ORIGIN, None, &discoverable).unwrap();
    assert_eq!(a["id"], olivia["id"]);
    let dialogs = &pinentry.dialogs()[before..];
    assert_eq!(dialogs.len(), 2, "PIN, one account question");
    assert!(
        dialogs[1]["description"]
            .as_str()
            .unwrap()
            .ends_with("\u{2022} peggy\n  \u{2022} olivia"),
        "{}",
        dialogs[1]["description"]
    );
    assert_eq!(dialogs[1]["ok"], "Use peggy");
    assert_eq!(dialogs[1]["notok"], "Use olivia");
    // Cancelling the choice is NotAllowedError.
    pinentry.direct(json!({"getpin": PIN, "confirm": "cancel"}));
    let e = bridge.get(ORIGIN, None, &discoverable).unwrap_err();
    assert_eq!(e.name, ErrorName::NotAllowedError);
}

fn alive(pid: u64) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

#[test]
fn a_cancelled_request_kills_the_pinentry_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let pinentry = Scripted::new(dir.path());
    let bridge = Arc::new(Bridge::new(
        Box::new(InProcess::new(authenticator(dir.path()))),
        Box::new(PromptUi::new(pinentry.prompt())),
    ));
    let cred = bridge.create(ORIGIN, None, &creation("dave")).unwrap();
    pinentry
        .direct(json!({"getpin": PIN, "confirm": "ok", "script": {"GETPIN": [{"hang": true}]}}));
    let before = pinentry.dialogs().len();
    let running = {
        let bridge = Arc::clone(&bridge);
        let options = request(&[&cred]);
        std::thread::spawn(move || bridge.get(ORIGIN, None, &options))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while pinentry.dialogs().len() == before {
        assert!(
            Instant::now() < deadline,
            "the pinentry never showed the dialog"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = pinentry.dialogs()[before]["pid"].as_u64().unwrap();
    assert!(alive(pid));
    let cancelled_at = Instant::now();
    bridge.cancel();
    let e = running.join().unwrap().unwrap_err();
    assert_eq!(e.name, ErrorName::AbortError, "{e}");
    assert!(cancelled_at.elapsed() < Duration::from_secs(2));
    let deadline = Instant::now() + Duration::from_secs(3);
    while alive(pid) {
        assert!(Instant::now() < deadline, "pinentry {pid} still runs");
        std::thread::sleep(Duration::from_millis(20));
    }

    // A ceremony timeout closes it too, as NotAllowedError.
    pinentry
        .direct(json!({"getpin": PIN, "confirm": "ok", "script": {"GETPIN": [{"hang": true}]}}));
    let mut short = request(&[&cred]);
    short["timeout"] = json!(1500);
    let started = Instant::now();
    let e = bridge.get(ORIGIN, None, &short).unwrap_err();
    assert_eq!(e.name, ErrorName::NotAllowedError, "{e}");
    assert!(e.message.contains("timed out"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_pinentry_that_is_missing_or_broken_is_unavailable_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken");
    std::fs::write(&broken, "#!/bin/sh\necho 'ERR 1 no'\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&broken, std::fs::Permissions::from_mode(0o755)).unwrap();
    let silent = dir.path().join("silent");
    std::fs::write(&silent, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&silent, std::fs::Permissions::from_mode(0o755)).unwrap();
    for program in [broken, silent, dir.path().join("absent")] {
        let started = Instant::now();
        let e = Pinentry::new(&program)
            .secret(&Dialog::default(), &Interaction::new())
            .unwrap_err();
        assert!(
            matches!(e, PromptError::Unavailable(_)),
            "{program:?}: {e:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    assert!(matches!(
        Pinentry::locate(Some(Path::new("definitely-not-a-pinentry-program"))),
        Err(PromptError::Unavailable(_))
    ));
}

/// A pseudo-terminal: the prompt runs on the slave, the test types on the master.
struct Pty {
    master: std::fs::File,
    slave: PathBuf,
    /// Held open: the master reads EIO (hang-up) whenever no slave is open.
    _slave_held: std::fs::File,
    screen: Arc<Mutex<Vec<u8>>>,
}

impl Pty {
    fn open() -> Self {
        use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
        grantpt(&master).unwrap();
        unlockpt(&master).unwrap();
        let slave = PathBuf::from(ptsname(&master, Vec::new()).unwrap().into_string().unwrap());
        let master = std::fs::File::from(master);
        let held = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&slave)
            .unwrap();
        let screen = Arc::new(Mutex::new(Vec::new()));
        let mut reader = master.try_clone().unwrap();
        let sink = Arc::clone(&screen);
        std::thread::spawn(move || {
            let mut buf = [0u8; 256];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Self {
            master,
            slave,
            _slave_held: held,
            screen,
        }
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.screen.lock().unwrap()).into_owned()
    }

    /// Waits until the screen shows `text` `n` times.
    fn wait_for(&self, text: &str, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.screen().matches(text).count() < n {
            assert!(
                Instant::now() < deadline,
                "never saw {text:?}: {:?}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn type_line(&mut self, line: &str) {
        self.master
            .write_all(format!("{line}\n").as_bytes())
            .unwrap();
        self.master.flush().unwrap();
    }
}

#[test]
fn the_terminal_prompt_reads_the_pin_without_echo_and_ignores_typed_ahead_answers() {
    let mut pty = Pty::open();
    let prompt = Arc::new(TerminalPrompt::on(&pty.slave).unwrap());
    let ask = {
        let prompt = Arc::clone(&prompt);
        std::thread::spawn(move || {
            let dialog = Dialog {
                description: "Sign in to example.com",
                prompt: "PIN:",
                ..Dialog::default()
            };
            prompt.secret(&dialog, &Interaction::new())
        })
    };
    pty.wait_for("PIN: ", 1);
    pty.type_line(PIN);
    let pin = ask.join().unwrap().unwrap();
    assert_eq!(pin.as_str(), PIN);
    std::thread::sleep(Duration::from_millis(100));
    let screen = pty.screen();
    assert!(screen.contains("Sign in to example.com"), "{screen}");
    assert!(!screen.contains(PIN), "the PIN was echoed: {screen:?}");

    // "y" typed before the question is thrown away: only the answer after it counts.
    pty.type_line("y");
    std::thread::sleep(Duration::from_millis(200));
    let confirm = {
        let prompt = Arc::clone(&prompt);
        std::thread::spawn(move || {
            let dialog = Dialog {
                description: "Approve?",
                ok: "Approve",
                cancel: "Deny",
                ..Dialog::default()
            };
            prompt.confirm(&dialog, &Interaction::new())
        })
    };
    pty.wait_for("to deny: ", 1);
    pty.type_line("n");
    assert_eq!(confirm.join().unwrap(), Err(PromptError::Declined));
    // Echo is back on after a secret: a typed answer is visible.
    let confirm = {
        let prompt = Arc::clone(&prompt);
        std::thread::spawn(move || {
            prompt.confirm(
                &Dialog {
                    description: "Again?",
                    ..Dialog::default()
                },
                &Interaction::new(),
            )
        })
    };
    pty.wait_for("Again?", 1);
    pty.wait_for("to cancel: ", 1);
    pty.type_line("y");
    assert_eq!(confirm.join().unwrap(), Ok(Answer::Ok));

    // Cancelling a waiting question ends it at once.
    let interaction = Interaction::new();
    let waiting = {
        let prompt = Arc::clone(&prompt);
        let interaction = interaction.clone();
        std::thread::spawn(move || prompt.secret(&Dialog::default(), &interaction))
    };
    pty.wait_for("PIN: ", 2);
    interaction.cancel();
    assert_eq!(waiting.join().unwrap().unwrap_err(), PromptError::Cancelled);

    // Cancelled halfway through the PIN: the rest, typed late, is never echoed and never
    // reaches the next question.
    let interaction = Interaction::new();
    let halfway = {
        let prompt = Arc::clone(&prompt);
        let interaction = interaction.clone();
        std::thread::spawn(move || prompt.secret(&Dialog::default(), &interaction))
    };
    pty.wait_for("PIN: ", 3);
    pty.master.write_all(b"48").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    interaction.cancel();
    for late in [b"29", b"16"] {
        std::thread::sleep(Duration::from_millis(200));
        pty.master.write_all(late).unwrap();
    }
    pty.type_line("");
    assert_eq!(halfway.join().unwrap().unwrap_err(), PromptError::Cancelled);
    let next = {
        let prompt = Arc::clone(&prompt);
        std::thread::spawn(move || prompt.secret(&Dialog::default(), &Interaction::new()))
    };
    pty.wait_for("PIN: ", 4);
    pty.type_line("7777");
    assert_eq!(next.join().unwrap().unwrap().as_str(), "7777");
    let screen = pty.screen();
    for typed in ["48", "29", "16", "7777"] {
        assert!(!screen.contains(typed), "{typed} was echoed: {screen:?}");
    }

    // Choosing by number.
    let choose = {
        let prompt = Arc::clone(&prompt);
        std::thread::spawn(move || {
            prompt.choose(
                "Which account?",
                &["peggy".to_owned(), "olivia".to_owned()],
                &Interaction::new(),
            )
        })
    };
    pty.wait_for("2. olivia", 1);
    pty.type_line("2");
    assert_eq!(choose.join().unwrap(), Ok(1));
}

#[test]
fn on_the_terminal_known_accounts_are_chosen_first_then_one_pin() {
    use passgate_bridge::accounts::{AccountRecord, accounts_path};
    let dir = tempfile::tempdir().unwrap();
    let mut pty = Pty::open();
    let shared = InProcess::new(authenticator(dir.path()));
    let record = AccountRecord::new(accounts_path(dir.path()));
    // The accounts are made (and recorded) by a bridge whose PIN entry is not the terminal.
    let maker = Bridge::new(
        Box::new(shared.clone()),
        Box::new(common::PinEntry::with(PIN)),
    )
    .with_account_record(record.clone());
    maker.set_pin(PIN).unwrap();
    let olivia = maker.create(ORIGIN, None, &creation("olivia")).unwrap();
    maker.create(ORIGIN, None, &creation("peggy")).unwrap();

    let prompt: Arc<dyn TrustedPrompt> = Arc::new(TerminalPrompt::on(&pty.slave).unwrap());
    let bridge = Arc::new(
        Bridge::new(Box::new(shared), Box::new(PromptUi::new(prompt)))
            .with_pin_token_ttl(Duration::ZERO)
            .with_account_record(record),
    );
    let mut discoverable = request(&[]);
    discoverable
        .as_object_mut()
        .unwrap()
        .remove("allowCredentials");
    let sign_in = {
        let bridge = Arc::clone(&bridge);
        std::thread::spawn(move || bridge.get(ORIGIN, None, &discoverable))
    };
    pty.wait_for("Type its number and Enter", 1);
    let screen = pty.screen();
    assert!(
        screen.contains("passgate has seen 2 accounts of yours on example.com. Which account?"),
        "{screen}"
    );
    assert!(screen.contains("1. peggy"), "{screen}");
    assert!(screen.contains("2. olivia"), "{screen}");
    assert!(
        !screen.contains("PIN: "),
        "no PIN asked before the choice: {screen}"
    );
    pty.type_line("2");
    pty.wait_for("PIN: ", 1);
    pty.type_line(PIN);
    let a = sign_in.join().unwrap().unwrap();
    assert_eq!(a["id"], olivia["id"]);
    assert_eq!(flags(&a) & 0x05, 0x05, "UP and UV");
    std::thread::sleep(Duration::from_millis(100));
    let screen = pty.screen();
    assert_eq!(
        screen.matches("PIN: ").count(),
        1,
        "one verification: {screen}"
    );
    assert!(!screen.contains(PIN), "the PIN was echoed: {screen:?}");
}
