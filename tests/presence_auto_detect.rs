//! `authenticator serve --presence auto-detect` (the default on uhid): in a graphical session
//! with a GUI pinentry on PATH, presence is asked in that pinentry's window. The pinentry here
//! is the scripted one (a real Assuan speaker) installed as `pinentry-gnome3`, and the
//! authenticator is the real binary, reached over its Unix socket with no fprintd on the bus.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use passgate_authenticator::api::user_verifier::Interaction;
use passgate_bridge::{CtapHidSocket, CtapTransport};
use passgate_testkit::ScriptedPinentry;

/// CTAP2_OK and CTAP2_ERR_OPERATION_DENIED.
const OK: u8 = 0x00;
const OPERATION_DENIED: u8 = 0x27;

struct Served {
    child: Child,
    socket: PathBuf,
    log: PathBuf,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `passgate authenticator serve --presence auto-detect` with `display` as $DISPLAY and
/// `path_dir` first on PATH; no system bus, so no fingerprint.
fn serve(dir: &Path, display: Option<&str>, path_dir: &Path, timeout: &str) -> Served {
    let state = dir.join("state");
    let socket = state.join("authenticator.sock");
    let log = dir.join("serve.log");
    let path = format!("{}:{}", path_dir.display(), std::env::var("PATH").unwrap());
    let mut command = Command::new(env!("CARGO_BIN_EXE_passgate"));
    command
        .args(["authenticator", "serve", "--presence", "auto-detect"])
        .args(["--presence-timeout", timeout, "--state-dir"])
        .arg(&state)
        .env("PATH", path)
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("PASSGATE_PINENTRY")
        .env(
            "DBUS_SYSTEM_BUS_ADDRESS",
            format!("unix:path={}", dir.join("no-bus").display()),
        )
        .env("PASSGATE_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap());
    match display {
        Some(d) => command.env("DISPLAY", d),
        None => command.env_remove("DISPLAY"),
    };
    let mut child = command.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("listening on unix:"), "{line:?}");
    Served { child, socket, log }
}

fn make_credential(served: &Served, rp: &str) -> u8 {
    let mut request = vec![0x01];
    request.extend(passgate_ctap_tests::cbor::encode(
        &passgate_ctap_tests::mc_request(rp, b"user-1", false, Vec::new()),
    ));
    let mut socket = CtapHidSocket::new(&format!("unix:{}", served.socket.display()));
    let response = socket.call(&request, &Interaction::new()).unwrap();
    response[0]
}

fn setup() -> (tempfile::TempDir, ScriptedPinentry, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let pinentry = ScriptedPinentry::new(dir.path());
    // The GUI flavour auto-detect looks for, as a desktop has it.
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(&pinentry.program, bin.join("pinentry-gnome3")).unwrap();
    (dir, pinentry, bin)
}

#[test]
fn a_graphical_session_asks_presence_in_the_gui_pinentry() {
    let (dir, pinentry, bin) = setup();
    let served = serve(dir.path(), Some(":99"), &bin, "30");
    let log = std::fs::read_to_string(&served.log).unwrap();
    assert!(
        log.contains("presence: a pinentry window (") && log.contains("pinentry-gnome3)"),
        "{log}"
    );

    assert_eq!(make_credential(&served, "gui.passgate.test"), OK);
    let dialogs = pinentry.dialogs();
    assert_eq!(dialogs.len(), 1, "{dialogs:?}");
    assert_eq!(dialogs[0]["command"], "CONFIRM", "{dialogs:?}");
    assert!(
        dialogs[0].to_string().contains("gui.passgate.test"),
        "the window names the site: {dialogs:?}"
    );

    // The person declines in the window: the request is denied.
    pinentry.direct(serde_json::json!({"confirm": "cancel"}));
    assert_eq!(
        make_credential(&served, "gui.passgate.test"),
        OPERATION_DENIED
    );
    assert_eq!(pinentry.dialogs().len(), 2);
}

#[test]
fn without_a_graphical_session_the_terminal_asks_and_no_window_opens() {
    let (dir, pinentry, bin) = setup();
    let served = serve(dir.path(), None, &bin, "2");
    let log = std::fs::read_to_string(&served.log).unwrap();
    assert!(log.contains("presence: this terminal"), "{log}");
    // Nobody answers on the terminal (if the test has one at all): no approval.
    assert_ne!(make_credential(&served, "tty.passgate.test"), OK);
    assert!(pinentry.dialogs().is_empty());
}
