//! Passkey autofill (conditional requests) through the host-channel router, on a real
//! in-process authenticator whose presence and PIN are asked in a real pinentry (the scripted
//! one standing in for the person), as `passgate demo` wires them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{PIN, Scripted, authenticator_with_prompt};
use passgate_authenticator::api::user_verifier::Interaction;
use passgate_bridge::channel::ChannelRouter;
use passgate_bridge::conditional::Limits;
use passgate_bridge::prompt::PromptUi;
use passgate_bridge::{Bridge, CtapTransport, InProcess, TransportError, b64};
use passgate_client::cbor;
use passgate_platform_api::host_channel::Sender;
use serde_json::{Value, json};

const ORIGIN: &str = "https://shop.example.com";
const WINDOW: Duration = Duration::from_millis(1500);
const STEP: Duration = Duration::from_secs(20);

/// What reached the authenticator: the command byte and, for getAssertion, whether it asked
/// for presence and carried a PIN token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Assertion { up: bool, token: bool },
    Other(u8),
}

#[derive(Clone)]
struct Recording {
    inner: InProcess,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl CtapTransport for Recording {
    fn call(
        &mut self,
        request: &[u8],
        interaction: &Interaction,
    ) -> Result<Vec<u8>, TransportError> {
        let call = match request.split_first() {
            Some((0x02, body)) => {
                let params = cbor::decode(body).unwrap();
                let options = cbor::int_key(&params, 5);
                let up = !matches!(
                    options.and_then(|o| cbor::text_key(o, "up")),
                    Some(ciborium::value::Value::Bool(false))
                );
                Call::Assertion {
                    up,
                    token: cbor::int_key(&params, 6).is_some(),
                }
            }
            Some((&cmd, _)) => Call::Other(cmd),
            None => Call::Other(0),
        };
        self.calls.lock().unwrap().push(call);
        self.inner.call(request, interaction)
    }
}

struct Host {
    router: Arc<ChannelRouter>,
    pinentry: Scripted,
    calls: Arc<Mutex<Vec<Call>>>,
    sender: Sender,
}

impl Host {
    fn new(dir: &Path) -> Self {
        let pinentry = Scripted::new(dir);
        let prompt = pinentry.prompt();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let transport = Recording {
            inner: InProcess::new(authenticator_with_prompt(dir, Arc::clone(&prompt))),
            calls: Arc::clone(&calls),
        };
        let bridge = Bridge::new(Box::new(transport), Box::new(PromptUi::new(prompt)));
        let router = ChannelRouter::webauthn_with(
            Arc::new(bridge),
            Limits {
                wait_window: WINDOW,
                orphaned_after: Duration::from_secs(1),
            },
        );
        Self {
            router: Arc::new(router),
            pinentry,
            calls,
            sender: Sender::new(ORIGIN).in_session("pairing-1"),
        }
    }

    fn send(&self, message: Value) -> Value {
        self.router.handle_value(&self.sender, &message, None)
    }

    fn calls_since(&self, n: usize) -> Vec<Call> {
        self.calls.lock().unwrap()[n..].to_vec()
    }

    fn call_count(&self) -> usize {
        self.calls.lock().unwrap().len()
    }

    /// Signs up `user` (an immediate create through the router, the person approving).
    fn sign_up(&self, user: &str) -> Value {
        self.pinentry
            .direct(json!({"getpin": PIN, "confirm": "ok"}));
        let reply = self.send(json!({
            "type": "create", "requestId": format!("create-{user}"),
            "options": {
                "rp": {"id": "example.com", "name": "Example"},
                "user": {"id": b64::encode(user.as_bytes()), "name": user, "displayName": user.to_uppercase()},
                "challenge": b64::encode(&[7u8; 32]),
                "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
                "authenticatorSelection": {"residentKey": "required", "userVerification": "required"},
            },
        }));
        assert_eq!(reply["ok"], true, "{reply}");
        reply["result"].clone()
    }

    /// A page's conditional request: armed with `request_id`, then waited for window after
    /// window until it settles. Returns every reply, the settling one last.
    fn conditional(&self, request_id: &str, document: &str) -> JoinHandle<Vec<Value>> {
        let router = Arc::clone(&self.router);
        let sender = self.sender.clone();
        let first = json!({
            "type": "get", "requestId": request_id, "mediation": "conditional", "documentId": document,
            "options": discoverable(),
        });
        let target = request_id.to_owned();
        std::thread::spawn(move || {
            let mut replies = vec![router.handle_value(&sender, &first, None)];
            let mut n = 0;
            while replies.last().unwrap()["result"] == json!({"pending": true}) {
                n += 1;
                let wait = json!({"type": "wait", "requestId": format!("{target}-wait-{n}"), "target": target});
                replies.push(router.handle_value(&sender, &wait, None));
            }
            replies
        })
    }

    fn hint(&self, target: &str) -> Value {
        self.send(
            json!({"type": "autofill", "requestId": format!("hint-{target}"), "target": target}),
        )
    }

    fn cancel(&self, target: &str) -> Value {
        self.send(
            json!({"type": "cancel", "requestId": format!("cancel-{target}"), "target": target}),
        )
    }

    fn wait_for_dialogs(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + STEP;
        loop {
            let dialogs = self.pinentry.dialogs();
            if dialogs.len() >= n {
                return dialogs;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {n} dialogs",
                dialogs.len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Gives a page thread time to arm its request (the hint names a request that must exist).
fn armed() {
    std::thread::sleep(Duration::from_millis(200));
}

fn discoverable() -> Value {
    json!({"challenge": b64::encode(&[9u8; 32]), "rpId": "example.com", "userVerification": "required"})
}

fn user_handle(credential: &Value) -> Vec<u8> {
    b64::decode(credential["response"]["userHandle"].as_str().unwrap()).unwrap()
}

fn join(handle: JoinHandle<Vec<Value>>) -> Vec<Value> {
    let deadline = Instant::now() + STEP * 2;
    while !handle.is_finished() {
        assert!(
            Instant::now() < deadline,
            "the conditional request never settled"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    handle.join().unwrap()
}

/// Every reply before the settling one said only "pending".
fn only_pending_before_last(replies: &[Value]) {
    let (_, before) = replies.split_last().unwrap();
    for reply in before {
        assert_eq!(reply["ok"], true, "{reply}");
        assert_eq!(reply["result"], json!({"pending": true}), "{reply}");
    }
}

fn alive(pid: u64) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

#[test]
fn autofill_waits_silently_then_the_prompt_verifies_and_lists_the_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::new(dir.path());
    host.sign_up("olivia");
    host.sign_up("peggy");
    let capabilities = host.send(json!({"type": "getClientCapabilities", "requestId": "caps"}));
    assert_eq!(capabilities["result"]["conditionalGet"], true);

    let calls = host.call_count();
    let dialogs = host.pinentry.dialogs().len();
    let page = host.conditional("r1", "doc-1");
    // Armed and waiting: nothing reaches the authenticator, nobody is asked, for longer
    // than one window.
    std::thread::sleep(WINDOW + Duration::from_millis(500));
    assert_eq!(host.calls_since(calls), vec![]);
    assert_eq!(host.pinentry.dialogs().len(), dialogs);
    assert!(!page.is_finished());

    // The person is at the field: PIN, presence, then olivia's button in the choice.
    host.pinentry
        .direct(json!({"getpin": PIN, "confirm": "ok", "script": {"CONFIRM": ["ok", "notok"]}}));
    let hint = host.hint("r1");
    assert_eq!(
        hint,
        json!({"requestId": "hint-r1", "ok": true, "result": {}})
    );
    let replies = join(page);
    only_pending_before_last(&replies);
    let last = replies.last().unwrap();
    assert_eq!(last["ok"], true, "{last}");
    assert_eq!(
        last["requestId"].as_str().unwrap().split('-').next(),
        Some("r1")
    );
    let credential = &last["result"];
    assert_eq!(user_handle(credential), b"olivia");
    let flags = b64::decode(
        credential["response"]["authenticatorData"]
            .as_str()
            .unwrap(),
    )
    .unwrap()[32];
    assert_eq!(flags & 0x05, 0x05, "UP and UV");
    let client_data: Value = serde_json::from_slice(
        &b64::decode(credential["response"]["clientDataJSON"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(client_data["origin"], ORIGIN);
    assert_eq!(client_data["type"], "webauthn.get");

    let shown = &host.pinentry.dialogs()[dialogs..];
    let commands: Vec<&str> = shown
        .iter()
        .map(|d| d["command"].as_str().unwrap())
        .collect();
    assert_eq!(commands, ["GETPIN", "CONFIRM", "CONFIRM"]);
    let text = |i: usize| shown[i]["description"].as_str().unwrap().to_owned();
    assert!(
        text(0).starts_with(
            "Passkey autofill: https://shop.example.com offers to sign you in with a passkey for example.com."
        ),
        "{}",
        text(0)
    );
    assert!(
        text(2).ends_with(
            "holds 2 passkeys for example.com. Which account?\n  \u{2022} PEGGY (peggy)\n  \u{2022} OLIVIA (olivia)"
        ),
        "{}",
        text(2)
    );
    assert_eq!(shown[2]["ok"], "Use PEGGY (peggy)");
    assert_eq!(shown[2]["notok"], "Use OLIVIA (olivia)");

    // The first thing after the hint was a silent look-up (no presence, no PIN token), and
    // only then the real getAssertion with the token.
    let after = host.calls_since(calls);
    let assertions: Vec<Call> = after
        .iter()
        .copied()
        .filter(|c| matches!(c, Call::Assertion { .. }))
        .collect();
    assert_eq!(
        assertions,
        [
            Call::Assertion {
                up: false,
                token: false
            },
            Call::Assertion {
                up: true,
                token: true
            }
        ]
    );
    // A later wait for the settled request finds nothing.
    let stale = host.send(json!({"type": "wait", "requestId": "w9", "target": "r1"}));
    assert_eq!(stale["error"]["name"], "InvalidStateError");
}

#[test]
fn without_a_passkey_for_the_rp_id_the_request_stays_pending_silently_until_aborted() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::new(dir.path());
    // A passkey exists, for another RP ID: the look-up must not find it.
    host.pinentry
        .direct(json!({"getpin": PIN, "confirm": "ok"}));
    let other = host.send(json!({
        "type": "create", "requestId": "other",
        "options": {
            "rp": {"id": "shop.example.com", "name": "Shop"},
            "user": {"id": b64::encode(b"sam"), "name": "sam", "displayName": "Sam"},
            "challenge": b64::encode(&[7u8; 32]),
            "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
            "authenticatorSelection": {"residentKey": "required", "userVerification": "required"},
        },
    }));
    assert_eq!(other["ok"], true, "{other}");

    let dialogs = host.pinentry.dialogs().len();
    let calls = host.call_count();
    let page = host.conditional("r1", "doc-1");
    armed();
    for n in 0..3 {
        assert_eq!(
            host.hint("r1")["result"],
            json!({}),
            "the same answer as with passkeys"
        );
        std::thread::sleep(Duration::from_millis(300 + n * 100));
    }
    // Two windows later: still pending, no prompt, and only silent look-ups reached the
    // authenticator.
    std::thread::sleep(WINDOW * 2);
    assert!(!page.is_finished());
    assert_eq!(host.pinentry.dialogs().len(), dialogs, "nobody was asked");
    let after = host.calls_since(calls);
    assert!(after.contains(&Call::Assertion {
        up: false,
        token: false
    }));
    assert!(
        after.iter().all(|c| matches!(
            c,
            Call::Assertion {
                up: false,
                token: false
            } | Call::Other(0x04)
        )),
        "{after:?}"
    );
    // Meanwhile the host answers other requests at once.
    let started = Instant::now();
    let uvpaa = host.send(json!({"type": "isUvpaa", "requestId": "q"}));
    assert_eq!(uvpaa["result"], true);
    assert!(started.elapsed() < Duration::from_secs(1));

    assert_eq!(host.cancel("r1")["result"]["cancelled"], true);
    let replies = join(page);
    only_pending_before_last(&replies);
    assert!(replies.len() >= 3, "several windows: {replies:?}");
    assert_eq!(replies.last().unwrap()["error"]["name"], "AbortError");
}

#[test]
fn a_dismissed_prompt_keeps_the_request_waiting_and_another_hint_offers_again() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::new(dir.path());
    host.sign_up("olivia");
    let page = host.conditional("r1", "doc-1");
    armed();
    let dialogs = host.pinentry.dialogs().len();
    host.pinentry
        .direct(json!({"getpin": PIN, "confirm": "ok", "script": {"GETPIN": ["cancel"]}}));
    host.hint("r1");
    host.wait_for_dialogs(dialogs + 1);
    // Dismissed: nothing settles, through more than a window.
    std::thread::sleep(WINDOW + Duration::from_millis(300));
    assert!(!page.is_finished());
    // A hint while nothing is open offers again; this time the person signs in.
    host.hint("r1");
    let replies = join(page);
    only_pending_before_last(&replies);
    assert_eq!(user_handle(&replies.last().unwrap()["result"]), b"olivia");
    let shown: Vec<(String, String)> = host.pinentry.dialogs()[dialogs..]
        .iter()
        .map(|d| {
            (
                d["command"].as_str().unwrap().to_owned(),
                d["answer"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            ("GETPIN".into(), "cancel".into()),
            ("GETPIN".into(), "pin".into()),
            ("CONFIRM".into(), "ok".into())
        ]
    );
}

#[test]
fn aborting_closes_the_open_prompt_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::new(dir.path());
    host.sign_up("olivia");
    let page = host.conditional("r1", "doc-1");
    armed();
    let dialogs = host.pinentry.dialogs().len();
    host.pinentry
        .direct(json!({"getpin": PIN, "confirm": "ok", "script": {"GETPIN": [{"hang": true}]}}));
    host.hint("r1");
    let open = host.wait_for_dialogs(dialogs + 1);
    let pid = open[dialogs]["pid"].as_u64().unwrap();
    assert!(alive(pid));
    // While the prompt is open, feature queries answer at once (from the last getInfo):
    // their timing does not tell the page that a prompt opened, i.e. that a passkey exists.
    let started = Instant::now();
    assert_eq!(
        host.send(json!({"type": "isUvpaa", "requestId": "q1"}))["result"],
        true
    );
    let capabilities = host.send(json!({"type": "getClientCapabilities", "requestId": "q2"}));
    assert_eq!(capabilities["result"]["conditionalGet"], true);
    assert_eq!(
        capabilities["result"]["userVerifyingPlatformAuthenticator"],
        true
    );
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    let started = Instant::now();
    assert_eq!(host.cancel("r1")["result"]["cancelled"], true);
    let replies = join(page);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(replies.last().unwrap()["error"]["name"], "AbortError");
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) {
        assert!(Instant::now() < deadline, "the pinentry was not closed");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Gone: a hint for it does nothing, and says so no differently.
    assert_eq!(host.hint("r1")["result"], json!({}));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(host.pinentry.dialogs().len(), dialogs + 1);
}

#[test]
fn a_newer_request_replaces_the_older_and_immediate_requests_go_first() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::new(dir.path());
    let olivia = host.sign_up("olivia");
    let first = host.conditional("r1", "doc-1");
    let other_tab = host.conditional("t1", "doc-2");
    armed();
    let second = host.conditional("r2", "doc-1");
    armed();
    let replaced = join(first);
    let last = replaced.last().unwrap();
    assert_eq!(last["error"]["name"], "AbortError");
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("replaced")
    );

    // An immediate sign-in by username while r2 waits: it runs as usual.
    let dialogs = host.pinentry.dialogs().len();
    host.pinentry
        .direct(json!({"getpin": PIN, "confirm": "ok"}));
    let by_name = host.send(json!({
        "type": "get", "requestId": "now-1",
        "options": {"challenge": b64::encode(&[3u8; 32]), "rpId": "example.com", "userVerification": "required",
                    "allowCredentials": [{"type": "public-key", "id": olivia["id"]}]},
    }));
    assert_eq!(by_name["ok"], true, "{by_name}");
    assert_eq!(host.pinentry.dialogs().len(), dialogs + 2);

    // An open autofill prompt gives way to an immediate request of the session: it closes,
    // the immediate request is asked, and the conditional request waits on.
    host.pinentry
        .direct(json!({"getpin": PIN, "confirm": "ok", "script": {"GETPIN": [{"hang": true}]}}));
    host.hint("r2");
    let open = host.wait_for_dialogs(dialogs + 3);
    let pid = open[dialogs + 2]["pid"].as_u64().unwrap();
    let immediate = {
        let router = Arc::clone(&host.router);
        let sender = host.sender.clone();
        let message = json!({
            "type": "get", "requestId": "now-2",
            "options": {"challenge": b64::encode(&[4u8; 32]), "rpId": "example.com", "userVerification": "required",
                        "allowCredentials": [{"type": "public-key", "id": olivia["id"]}]},
        });
        std::thread::spawn(move || router.handle_value(&sender, &message, None))
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) {
        assert!(
            Instant::now() < deadline,
            "the autofill prompt did not give way"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let reply = immediate.join().unwrap();
    assert_eq!(reply["ok"], true, "{reply}");
    assert!(!second.is_finished(), "r2 still waits");
    assert!(
        !other_tab.is_finished(),
        "another document's request is not replaced"
    );

    // Unpairing ends both.
    assert!(host.router.cancel_session("pairing-1") >= 2);
    for page in [second, other_tab] {
        assert_eq!(join(page).last().unwrap()["error"]["name"], "AbortError");
    }
}

#[test]
fn conditional_messages_are_checked_and_unattended_requests_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::new(dir.path());
    let wrong_rp = host.send(json!({
        "type": "get", "requestId": "bad", "mediation": "conditional",
        "options": {"challenge": b64::encode(&[9u8; 32]), "rpId": "example.org"},
    }));
    assert_eq!(wrong_rp["error"]["name"], "SecurityError");
    let no_id =
        host.send(json!({"type": "get", "mediation": "conditional", "options": discoverable()}));
    assert_eq!(no_id["error"]["name"], "TypeError");
    let no_challenge = host.send(
        json!({"type": "get", "requestId": "x", "mediation": "conditional", "options": {"rpId": "example.com"}}),
    );
    assert_eq!(no_challenge["error"]["name"], "TypeError");
    let no_target = host.send(json!({"type": "autofill", "requestId": "h"}));
    assert_eq!(no_target["error"]["name"], "TypeError");
    assert_eq!(host.hint("never-armed")["result"], json!({}));
    let orphan_wait = host.send(json!({"type": "wait", "requestId": "w", "target": "never-armed"}));
    assert_eq!(orphan_wait["error"]["name"], "InvalidStateError");

    // A request whose page went away between two waits is dropped.
    let first = host.send(json!({
        "type": "get", "requestId": "r1", "mediation": "conditional", "options": discoverable(),
    }));
    assert_eq!(first["result"], json!({"pending": true}));
    std::thread::sleep(Duration::from_millis(1300));
    let late = host.send(json!({"type": "wait", "requestId": "w2", "target": "r1"}));
    assert_eq!(late["error"]["name"], "InvalidStateError", "{late}");

    // Only the newest wait waits: an older one for the same request is answered at once.
    let armed = host.send(json!({
        "type": "get", "requestId": "r2", "mediation": "conditional", "options": discoverable(),
    }));
    assert_eq!(armed["result"], json!({"pending": true}));
    let wait = |id: &str| {
        let router = Arc::clone(&host.router);
        let sender = host.sender.clone();
        let message = json!({"type": "wait", "requestId": id, "target": "r2"});
        std::thread::spawn(move || {
            let reply = router.handle_value(&sender, &message, None);
            (reply, Instant::now())
        })
    };
    let older = wait("w-older");
    std::thread::sleep(Duration::from_millis(200));
    let newer_started = Instant::now();
    let newer = wait("w-newer");
    let (reply, ended) = older.join().unwrap();
    assert_eq!(reply["result"], json!({"pending": true}));
    assert!(ended.duration_since(newer_started) < Duration::from_millis(700));
    assert!(!newer.is_finished());
    host.cancel("r2");
    assert_eq!(newer.join().unwrap().0["error"]["name"], "AbortError");
}

#[test]
fn another_session_cannot_offer_wait_for_or_cancel_a_request() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::new(dir.path());
    host.sign_up("olivia");
    let page = host.conditional("r1", "doc-1");
    armed();
    let dialogs = host.pinentry.dialogs().len();
    // The same origin paired a second time (another token), or a page knowing the id: its
    // messages run in its own session and find nothing.
    let other = Sender::new(ORIGIN).in_session("pairing-2");
    let send = |message: Value| host.router.handle_value(&other, &message, None);
    assert_eq!(
        send(json!({"type": "autofill", "requestId": "h", "target": "r1"}))["result"],
        json!({})
    );
    assert_eq!(
        send(json!({"type": "wait", "requestId": "w", "target": "r1"}))["error"]["name"],
        "InvalidStateError"
    );
    assert_eq!(
        send(json!({"type": "cancel", "requestId": "c", "target": "r1"}))["result"]["cancelled"],
        false
    );
    assert_eq!(host.router.cancel_session("pairing-2"), 0);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(host.pinentry.dialogs().len(), dialogs, "no prompt opened");
    assert!(!page.is_finished());
    host.cancel("r1");
    assert_eq!(join(page).last().unwrap()["error"]["name"], "AbortError");
}
