//! The app APIs on the bridge's host channel, through the local HTTP bridge over real sockets:
//! the same router as WebAuthn on the same in-process authenticator, behind the bridge's Origin
//! and pairing checks; the caller is the `Origin` header (two origins never see each other's
//! vaults or keys, a message naming a caller is refused); the PIN is typed in a real pinentry
//! (passgate-testkit's scripted one, speaking Assuan), which also sets the first PIN; and a
//! `cancel` message, or the HTTP client going away, closes the waiting prompt.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Sensor, authenticator};
use passgate_app_api::{AppDevice, Platform, PromptPasscode};
use passgate_authenticator::Authenticator;
use passgate_bridge::channel::ChannelRouter;
use passgate_bridge::local_http::{Config, LocalBridge};
use passgate_bridge::prompt::Pinentry;
use passgate_bridge::{Bridge, InProcess, NoUserInterface};
use passgate_platform_api::trusted_prompt::TrustedPrompt;
use passgate_testkit::ScriptedPinentry;
use serde_json::{Value, json};

const SHOP: &str = "http://localhost:8080";
const OTHER: &str = "http://localhost:3000";
use passgate_testkit::PIN;

/// The scripted pinentry (passgate-testkit's) in `dir`.
struct Scripted(ScriptedPinentry);

impl std::ops::Deref for Scripted {
    type Target = ScriptedPinentry;

    fn deref(&self) -> &ScriptedPinentry {
        &self.0
    }
}

impl Scripted {
    fn new(dir: &Path) -> Self {
        Self(ScriptedPinentry::new(dir))
    }

    fn wait_for_dialogs(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let dialogs = self.dialogs();
            if dialogs.len() >= n {
                return dialogs;
            }
            assert!(Instant::now() < deadline, "only {dialogs:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn prompt(&self) -> Arc<dyn TrustedPrompt> {
        Arc::new(Pinentry::new(&self.program).with_timeout(Duration::from_secs(20)))
    }
}

/// `passgate demo`'s arrangement: one in-process authenticator behind the bridge and the app
/// router, one channel router for both, the local bridge in front.
struct Host {
    addr: SocketAddr,
    bridge: LocalBridge,
    pinentry: Scripted,
    sensor: Sensor,
    dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Host {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let sensor = Sensor::new();
        sensor.unplug(); // a machine without a fingerprint reader: the PIN verifies
        let shared: Arc<Mutex<Authenticator>> = Arc::new(Mutex::new(authenticator(
            &dir.path().join("state"),
            &sensor,
            8,
        )));
        let pinentry = Scripted::new(dir.path());
        let bridge = Arc::new(Bridge::new(
            Box::new(InProcess::shared(Arc::clone(&shared))),
            Box::new(NoUserInterface),
        ));
        let platform = Platform::new(
            AppDevice::in_process(Arc::clone(&shared)),
            &dir.path().join("state/app"),
            Box::new(PromptPasscode::new(pinentry.prompt())),
        )
        .unwrap();
        let app = Arc::new(passgate_app_api::router::AppRouter::new(Arc::new(platform)));
        let mut router = ChannelRouter::webauthn(bridge);
        passgate_app_api::channel::register(&mut router, app).unwrap();
        assert_eq!(
            router.types(),
            [
                "autofill",
                "biometric.*",
                "cancel",
                "create",
                "get",
                "getClientCapabilities",
                "isUvpaa",
                "soter.*",
                "vault.*",
                "wait"
            ]
        );
        let local = LocalBridge::new(
            Arc::new(router),
            Config::new(vec![SHOP.into(), OTHER.into()]),
        )
        .unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready, addr) = std::sync::mpsc::channel();
        let serving = local.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                ready.send(listener.local_addr().unwrap()).unwrap();
                serving
                    .serve(listener, async {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        Self {
            addr: addr.recv().unwrap(),
            bridge: local,
            pinentry,
            sensor,
            dir,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn pair(&self, origin: &str) -> String {
        let code = self.bridge.pairing_code();
        let (status, body) = post(
            self.addr,
            "/v1/pair",
            Some(origin),
            None,
            &json!({"code": code.as_str()}),
        );
        assert_eq!(status, 200, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }

    /// One channel message from `origin`: the channel reply (HTTP 200 asserted).
    fn message(&self, origin: &str, token: &str, message: &Value) -> Value {
        let (status, body) = post(self.addr, "/v1/message", Some(origin), Some(token), message);
        assert_eq!(status, 200, "{message} -> {body}");
        body
    }

    /// The app router's reply to `message` (the channel's `result`).
    fn app(&self, origin: &str, token: &str, message: Value) -> Value {
        let reply = self.message(origin, token, &message);
        assert_eq!(reply["ok"], true, "{message} -> {reply}");
        reply["result"].clone()
    }
}

fn http_request(
    path: &str,
    addr: SocketAddr,
    origin: Option<&str>,
    token: Option<&str>,
    body: &Value,
) -> String {
    let body = body.to_string();
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        addr.port(),
        body.len()
    );
    if let Some(o) = origin {
        head.push_str(&format!("Origin: {o}\r\n"));
    }
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    format!("{head}\r\n{body}")
}

/// One POST on a fresh connection: (status, JSON body).
fn post(
    addr: SocketAddr,
    path: &str,
    origin: Option<&str>,
    token: Option<&str>,
    body: &Value,
) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream
        .write_all(http_request(path, addr, origin, token, body).as_bytes())
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn alive(pid: i64) -> bool {
    std::process::Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
        .success()
}

fn wait_until_gone(pid: i64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) {
        assert!(
            Instant::now() < deadline,
            "the pinentry {pid} was not closed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn app_messages_pass_only_the_local_bridges_origin_and_pairing_checks() {
    let host = Host::start();
    let status = json!({"type": "biometric.checkStatus", "requestId": 1});
    let refused = |origin: Option<&str>, token: Option<&str>| {
        post(host.addr, "/v1/message", origin, token, &status)
    };
    // No Origin, an origin not configured, an allowed origin not paired, a made-up token.
    let (code, body) = refused(None, None);
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (403, Some("origin_required"))
    );
    let (code, body) = refused(Some("http://localhost:9999"), None);
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (403, Some("origin_not_allowed"))
    );
    let (code, body) = refused(Some(SHOP), None);
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (401, Some("pairing_required"))
    );
    let (code, body) = refused(
        Some(SHOP),
        Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
    );
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (401, Some("pairing_stale"))
    );
    // A token of one allowed origin does not work for another.
    let shop = host.pair(SHOP);
    let (code, body) = refused(Some(OTHER), Some(&shop));
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (401, Some("pairing_invalid"))
    );
    let (code, body) = refused(Some("http://localhost:9999"), Some(&shop));
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (403, Some("origin_not_allowed"))
    );
    assert!(
        host.pinentry.dialogs().is_empty(),
        "nothing refused reached a prompt"
    );

    // Paired: the app router's reply is the channel result, WebAuthn answers on the same router.
    let reply = host.message(SHOP, &shop, &status);
    assert_eq!(
        reply,
        json!({"requestId": 1, "ok": true, "result": {"result": {
            "isAvailable": false, "biometryType": "None",
            "error": "no biometric sensor is available", "errorCode": "biometryNotAvailable"}}})
    );
    let uvpaa = host.message(SHOP, &shop, &json!({"type": "isUvpaa", "requestId": 2}));
    assert_eq!(uvpaa, json!({"requestId": 2, "ok": true, "result": false}));
    // The app router answers every type of its namespaces, unknown ones too.
    assert_eq!(
        host.app(SHOP, &shop, json!({"type": "vault.nope", "requestId": 3}))["error"]["code"],
        "unknownType"
    );
    assert_eq!(
        host.app(
            SHOP,
            &shop,
            json!({"type": "soter.checkIsSupportSoterAuthentication"})
        ),
        json!({"result": {"supportMode": [], "errMsg": "checkIsSupportSoterAuthentication:ok"}})
    );
    // Other types stay unknown to the host.
    let other = host.message(SHOP, &shop, &json!({"type": "wallet.pay", "requestId": 4}));
    assert_eq!(other["ok"], false);
    assert_eq!(other["error"]["name"], "NotSupportedError");
    assert_eq!(host.sensor.scans(), 0);
}

#[test]
fn two_origins_never_see_each_others_vaults_and_the_pin_is_typed_in_the_trusted_prompt() {
    let host = Host::start();
    let shop = host.pair(SHOP);
    let other = host.pair(OTHER);
    let open = json!({"type": "vault.open", "vaultId": "session", "username": "alice",
                      "authMode": "BiometricAndPasscode"});

    // The first write creates the vault: passgate has no PIN yet, so its prompt asks the person
    // to choose one (twice), then creates the vault key with it.
    let opened = host.app(SHOP, &shop, open.clone());
    assert_eq!(opened["result"]["isLocked"], false);
    assert_eq!(opened["result"]["isInUse"], false);
    let stored = host.app(
        SHOP,
        &shop,
        json!({"type": "vault.storeValue", "vaultId": "session", "key": "token", "value": "refresh-1"}),
    );
    assert_eq!(stored["result"], Value::Null, "{stored}");
    assert_eq!(
        stored["events"],
        json!([{"event": "unlock", "vaultId": "session", "username": "alice",
                "config": opened["result"]["config"]}])
    );
    let dialogs = host.pinentry.dialogs();
    let prompts: Vec<&str> = dialogs
        .iter()
        .map(|d| d["prompt"].as_str().unwrap())
        .collect();
    assert_eq!(prompts, ["New PIN:", "Repeat:"]);
    let description = dialogs[0]["description"].as_str().unwrap();
    assert!(
        description.starts_with(&format!(
            "{SHOP} asks for your passgate PIN.\nReason: open the vault \u{201c}session\u{201d} of alice"
        )),
        "{description}"
    );
    assert!(
        description.contains("passgate has no PIN yet"),
        "{description}"
    );
    assert_eq!(
        host.app(
            SHOP,
            &shop,
            json!({"type": "vault.lock", "vaultId": "session"})
        )["events"],
        json!([{"event": "lock", "vaultId": "session", "username": "alice", "timeout": false, "saved": true}]),
        "events travel in the replies to their own origin"
    );
    let locked = host.app(
        SHOP,
        &shop,
        json!({"type": "vault.getValue", "vaultId": "session", "key": "token"}),
    );
    assert_eq!(locked["error"]["code"], "VaultLocked");

    // The other origin, same vault ID: its own vault, empty, and no way to name the shop's.
    let theirs = host.app(OTHER, &other, open.clone());
    assert_eq!(
        theirs["result"]["isInUse"], false,
        "another origin sees no vault: {theirs}"
    );
    for message in [
        json!({"type": "vault.getKeys", "vaultId": "session"}),
        json!({"type": "vault.getValue", "vaultId": "session", "key": "token"}),
    ] {
        let r = host.app(OTHER, &other, message.clone());
        assert!(
            r["result"] == json!([]) || r["result"] == Value::Null,
            "{message} -> {r}"
        );
    }
    for forged in [
        json!({"type": "vault.getKeys", "vaultId": "session", "caller": SHOP}),
        json!({"type": "vault.getKeys", "vaultId": "session", "origin": SHOP}),
        json!({"type": "biometric.getProofKey", "origin": SHOP}),
    ] {
        let r = host.app(OTHER, &other, forged.clone());
        assert_eq!(r["error"]["code"], "invalidRequest", "{forged} -> {r}");
    }
    // Proof keys are per origin too.
    let mine = host.app(SHOP, &shop, json!({"type": "biometric.getProofKey"}))["result"].clone();
    let yours = host.app(OTHER, &other, json!({"type": "biometric.getProofKey"}))["result"].clone();
    assert_eq!(mine["origin"], SHOP);
    assert_eq!(mine["rpId"], format!("passgate-app:{SHOP}"));
    assert_eq!(yours["origin"], OTHER);
    assert_ne!(mine["credentialId"], yours["credentialId"]);

    // Unlocking the shop's vault: the PIN typed in the prompt, the value back.
    let before = host.pinentry.dialogs().len();
    let unlocked = host.app(
        SHOP,
        &shop,
        json!({"type": "vault.unlock", "vaultId": "session"}),
    );
    assert_eq!(unlocked["result"], Value::Null, "{unlocked}");
    let asked: Vec<Value> = host.pinentry.dialogs()[before..].to_vec();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(asked[0]["prompt"], "PIN:");
    assert_eq!(asked[0]["answer"], "pin");
    assert_eq!(
        host.app(
            SHOP,
            &shop,
            json!({"type": "vault.getValue", "vaultId": "session", "key": "token"})
        )["result"],
        "refresh-1"
    );
    // A wrong PIN is counted and said in the prompt.
    host.app(
        SHOP,
        &shop,
        json!({"type": "vault.lock", "vaultId": "session"}),
    );
    host.pinentry
        .direct(json!({"getpin": "000000", "confirm": "ok"}));
    let wrong = host.app(
        SHOP,
        &shop,
        json!({"type": "vault.unlock", "vaultId": "session"}),
    );
    assert_eq!(wrong["error"]["code"], "AuthFailed", "{wrong}");
    assert_eq!(
        host.app(
            SHOP,
            &shop,
            json!({"type": "vault.remainingAttempts", "vaultId": "session"})
        )["result"],
        4
    );
    // The next prompt says the last PIN was wrong; the right one resets the count.
    host.pinentry
        .direct(json!({"getpin": PIN, "confirm": "ok"}));
    let before = host.pinentry.dialogs().len();
    let again = host.app(
        SHOP,
        &shop,
        json!({"type": "vault.unlock", "vaultId": "session"}),
    );
    assert_eq!(again["result"], Value::Null, "{again}");
    assert_eq!(
        host.pinentry.dialogs()[before]["error"],
        "Wrong PIN. Try again."
    );
    assert_eq!(
        host.app(
            SHOP,
            &shop,
            json!({"type": "vault.remainingAttempts", "vaultId": "session"})
        )["result"],
        5
    );
    // The other origin's vault was never touched: still nothing in it.
    assert_eq!(
        host.app(
            OTHER,
            &other,
            json!({"type": "vault.isInUse", "vaultId": "session"})
        )["result"],
        false
    );
    // On disk: one directory per caller.
    let callers = std::fs::read_dir(host.dir.path().join("state/app/callers"))
        .unwrap()
        .count();
    assert_eq!(callers, 2);
}

#[test]
fn a_cancel_message_or_a_client_going_away_closes_the_waiting_prompt() {
    let host = Host::start();
    let shop = host.pair(SHOP);
    host.app(
        SHOP,
        &shop,
        json!({"type": "vault.open", "vaultId": "v", "username": "u", "authMode": "PasscodeOnly"}),
    );
    // The first PIN, then a lock.
    host.app(SHOP, &shop, json!({"type": "vault.unlock", "vaultId": "v"}));
    host.app(SHOP, &shop, json!({"type": "vault.lock", "vaultId": "v"}));
    let shown = host.pinentry.dialogs().len();

    // The person presses Cancel: UserCanceledInteraction, not counted as a failure.
    host.pinentry
        .direct(json!({"getpin": PIN, "confirm": "ok", "script": {"GETPIN": ["cancel"]}}));
    let cancelled = host.app(SHOP, &shop, json!({"type": "vault.unlock", "vaultId": "v"}));
    assert_eq!(
        cancelled["error"]["code"], "UserCanceledInteraction",
        "{cancelled}"
    );
    assert_eq!(
        host.app(
            SHOP,
            &shop,
            json!({"type": "vault.remainingAttempts", "vaultId": "v"})
        )["result"],
        5
    );
    // The same for a biometric check that falls back to the PIN: userCancel.
    host.pinentry
        .direct(json!({"getpin": PIN, "confirm": "ok", "script": {"GETPIN": ["cancel"]}}));
    let refused = host.app(
        SHOP,
        &shop,
        json!({"type": "biometric.authenticate", "reason": "Sign in",
               "options": {"allowDeviceCredential": true}}),
    );
    assert_eq!(refused["error"]["code"], "userCancel", "{refused}");

    // The page aborts while the prompt waits: a cancel message naming the request.
    host.pinentry
        .direct(json!({"getpin": PIN, "confirm": "ok", "script": {"GETPIN": [{"hang": true}]}}));
    let waiting = {
        let addr = host.addr;
        let token = shop.clone();
        std::thread::spawn(move || {
            post(
                addr,
                "/v1/message",
                Some(SHOP),
                Some(&token),
                &json!({"type": "vault.unlock", "requestId": "u1", "vaultId": "v"}),
            )
        })
    };
    let dialogs = host.pinentry.wait_for_dialogs(shown + 3);
    let hung = dialogs.last().unwrap();
    assert_eq!(hung["answer"], "hang");
    let pid = hung["pid"].as_i64().unwrap();
    assert!(alive(pid));
    let cancel = host.message(
        SHOP,
        &shop,
        &json!({"type": "cancel", "requestId": "c1", "target": "u1"}),
    );
    assert_eq!(
        cancel,
        json!({"requestId": "c1", "ok": true, "result": {"cancelled": true}})
    );
    let (status, reply) = waiting.join().unwrap();
    assert_eq!(status, 200);
    assert_eq!(reply["requestId"], "u1");
    assert_eq!(
        reply["result"]["error"]["code"], "UserCanceledInteraction",
        "{reply}"
    );
    wait_until_gone(pid);

    // The HTTP client goes away while the prompt waits: the same.
    host.pinentry
        .direct(json!({"getpin": PIN, "confirm": "ok", "script": {"GETPIN": [{"hang": true}]}}));
    let mut stream = TcpStream::connect(host.addr).unwrap();
    stream
        .write_all(
            http_request(
                "/v1/message",
                host.addr,
                Some(SHOP),
                Some(&shop),
                &json!({"type": "vault.unlock", "requestId": "u2", "vaultId": "v"}),
            )
            .as_bytes(),
        )
        .unwrap();
    let dialogs = host.pinentry.wait_for_dialogs(shown + 4);
    let pid = dialogs.last().unwrap()["pid"].as_i64().unwrap();
    drop(stream);
    wait_until_gone(pid);

    // And the vault still opens with the PIN afterwards.
    host.pinentry
        .direct(json!({"getpin": PIN, "confirm": "ok"}));
    let unlocked = host.app(SHOP, &shop, json!({"type": "vault.unlock", "vaultId": "v"}));
    assert_eq!(unlocked["result"], Value::Null, "{unlocked}");
    assert_eq!(
        (
            &unlocked["events"][0]["event"],
            &unlocked["events"][0]["vaultId"],
            &unlocked["events"][0]["username"],
            unlocked["events"].as_array().map(Vec::len)
        ),
        (&json!("unlock"), &json!("v"), &json!("u"), Some(1))
    );
}
