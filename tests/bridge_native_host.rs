//! `passgate bridge native-host` as Chrome starts it: framed JSON on stdin/stdout, talking to a
//! served passgate authenticator over CTAPHID/TCP; malformed and oversized messages answered
//! cleanly; and `passgate bridge install` writing the host manifest.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use passgate_authenticator::Authenticator;
use passgate_authenticator::transport::tcp::TcpServer;
use serde_json::{Value, json};

fn authenticator(dir: &std::path::Path) -> Authenticator {
    passgate_testkit::auto_presence_authenticator(dir, 100)
}

struct Host {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: ChildStdout,
}

impl Host {
    /// A host with no PIN prompt.
    fn start(target: &str) -> Self {
        Self::start_with(target, &["--pin-prompt", "none"])
    }

    fn start_with(target: &str, prompt: &[&str]) -> Self {
        let mut args = vec!["bridge", "native-host", "--authenticator", target];
        args.extend_from_slice(prompt);
        // What Chrome passes: the caller's origin.
        args.push("chrome-extension://abcdefghijklmnopabcdefghijklmnop/");
        let mut child = Command::new(env!("CARGO_BIN_EXE_passgate"))
            .args(&args)
            .env("PASSGATE_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        Self {
            child,
            stdin,
            stdout,
        }
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(bytes).unwrap();
        stdin.flush().unwrap();
    }

    fn send(&mut self, message: &[u8]) {
        let mut framed = u32::try_from(message.len()).unwrap().to_ne_bytes().to_vec();
        framed.extend_from_slice(message);
        self.send_raw(&framed);
    }

    /// Reads one framed reply; `None` at end of stream.
    fn read(&mut self) -> Option<Value> {
        let mut prefix = [0u8; 4];
        match self.stdout.read_exact(&mut prefix) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return None,
            Err(e) => panic!("{e}"),
        }
        let len = usize::try_from(u32::from_ne_bytes(prefix)).unwrap();
        assert!(len <= 1024 * 1024, "reply over Chrome's 1 MB limit");
        let mut body = vec![0u8; len];
        self.stdout.read_exact(&mut body).unwrap();
        Some(serde_json::from_slice(&body).unwrap())
    }

    fn request(&mut self, message: &Value) -> Value {
        self.send(message.to_string().as_bytes());
        self.read().expect("a reply")
    }

    /// Waits for the process to exit (never longer than 10 s).
    fn wait(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                self.child.kill().unwrap();
                panic!("the native host did not exit");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn creation() -> Value {
    json!({
        "rp": {"id": "example.com", "name": "Example"},
        "user": {"id": "dXNlci0x", "name": "kim", "displayName": "Kim"},
        "challenge": "Y2hhbGxlbmdlLWNoYWxsZW5nZQ",
        "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
        "authenticatorSelection": {"residentKey": "required", "userVerification": "preferred"},
        "extensions": {"credProps": true},
    })
}

#[test]
fn native_host_serves_framed_requests_and_rejects_bad_frames() {
    let dir = tempfile::tempdir().unwrap();
    let server = TcpServer::start(
        std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
        authenticator(dir.path()),
    )
    .unwrap();
    let mut host = Host::start(&format!("tcp://{}", server.local_addr()));

    // No built-in verification, no PIN entry in this host.
    let r = host.request(&json!({"requestId": 1, "type": "isUvpaa"}));
    assert_eq!(r, json!({"requestId": 1, "ok": true, "result": false}));

    let r = host.request(&json!({
        "requestId": "c1", "type": "create", "origin": "https://www.example.com", "options": creation(),
    }));
    assert_eq!(r["requestId"], "c1");
    assert_eq!(r["ok"], true, "{r}");
    let credential = &r["credential"];
    assert_eq!(credential["authenticatorAttachment"], "platform");
    assert_eq!(
        credential["clientExtensionResults"]["credProps"]["rk"],
        true
    );
    assert_eq!(credential["response"]["transports"], json!(["internal"]));

    let r = host.request(&json!({
        "requestId": "g1", "type": "get", "origin": "https://www.example.com",
        "options": {"challenge": "AAAAAAAAAAAAAAAAAAAAAA", "rpId": "example.com", "userVerification": "discouraged"},
    }));
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["credential"]["id"], credential["id"]);
    assert_eq!(r["credential"]["response"]["userHandle"], "dXNlci0x");

    // Another site asking for example.com.
    let r = host.request(&json!({
        "requestId": "evil", "type": "get", "origin": "https://example.com.evil.net",
        "options": {"challenge": "AAAA", "rpId": "example.com"},
    }));
    assert_eq!(r["ok"], false);
    assert_eq!(r["error"]["name"], "SecurityError");

    // Malformed JSON: answered, and the host keeps serving.
    host.send(b"{\"requestId\": 3, \"type\": ");
    let r = host.read().unwrap();
    assert_eq!(r["requestId"], Value::Null);
    assert_eq!(r["ok"], false);
    assert_eq!(r["error"]["name"], "TypeError");
    let r = host.request(&json!({"requestId": 4, "type": "isUvpaa"}));
    assert_eq!(r["ok"], true);

    // The app APIs are not carried by the extension path: refused, and why.
    let r = host.request(&json!({
        "requestId": 5, "type": "vault.open", "origin": "https://www.example.com",
        "vaultId": "v", "username": "u",
    }));
    assert_eq!(r["requestId"], 5);
    assert_eq!(r["ok"], false);
    assert_eq!(r["error"]["name"], "NotSupportedError");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("the browser extension carries WebAuthn only"),
        "{r}"
    );

    // A length over 1 MB: answered, then the host ends (the stream is out of step).
    host.send_raw(&(2u32 * 1024 * 1024).to_ne_bytes());
    host.send_raw(&[b' '; 64]);
    let r = host.read().unwrap();
    assert_eq!(r["ok"], false);
    assert_eq!(r["error"]["name"], "TypeError");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("2097152 bytes is over the 1048576-byte limit"),
        "{r}"
    );
    assert!(host.read().is_none());
    assert!(!host.wait().success());
    server.stop().unwrap();
}

/// The scripted pinentry in `dir` (passgate-testkit's, a real Assuan speaker standing in for
/// the person): (program, log).
fn scripted_pinentry(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let pinentry = passgate_testkit::ScriptedPinentry::new(dir);
    (pinentry.program, pinentry.log)
}

fn prompts_shown(log: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["prompt"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect()
}

#[test]
fn native_host_verifies_the_user_with_the_pin_typed_in_pinentry() {
    let dir = tempfile::tempdir().unwrap();
    let (pinentry, log) = scripted_pinentry(dir.path());
    let server = TcpServer::start(
        std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
        authenticator(dir.path()),
    )
    .unwrap();
    let mut host = Host::start_with(
        &format!("tcp://{}", server.local_addr()),
        &["--pinentry", pinentry.to_str().unwrap()],
    );
    // pinentry is the default prompt: a first PIN can be set, so UV is available.
    let r = host.request(&json!({"requestId": 1, "type": "isUvpaa"}));
    assert_eq!(r, json!({"requestId": 1, "ok": true, "result": true}));
    let mut options = creation();
    options["authenticatorSelection"]["userVerification"] = json!("required");
    let r = host.request(&json!({
        "requestId": "c", "type": "create", "origin": "https://www.example.com", "options": options,
    }));
    assert_eq!(r["ok"], true, "{r}");
    let flags = |r: &Value| {
        let data = r["credential"]["response"]["authenticatorData"]
            .as_str()
            .unwrap()
            .to_owned();
        base64_url_byte(&data, 32)
    };
    assert_eq!(flags(&r) & 0x05, 0x05, "UP and UV");
    assert_eq!(prompts_shown(&log), ["New PIN:", "Repeat:"]);
    let id = r["credential"]["id"].clone();
    let r = host.request(&json!({
        "requestId": "g", "type": "get", "origin": "https://www.example.com",
        "options": {"challenge": "Y2hhbGxlbmdlLWNoYWxsZW5nZQ", "rpId": "example.com", "userVerification": "required",
                    "allowCredentials": [{"type": "public-key", "id": id}]},
    }));
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(flags(&r) & 0x05, 0x05);
    assert_eq!(prompts_shown(&log), ["New PIN:", "Repeat:", "PIN:"]);
    host.stdin = None;
    assert!(host.read().is_none());
    assert!(host.wait().success());
    server.stop().unwrap();
}

/// Byte `at` of base64url `text`.
fn base64_url_byte(text: &str, at: usize) -> u8 {
    base64_url_decode(text)[at]
}

/// Decodes unpadded base64url.
fn base64_url_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in text.bytes() {
        let v = u32::try_from(ALPHABET.iter().position(|&a| a == c).unwrap()).unwrap();
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push(u8::try_from((bits >> n) & 0xFF).unwrap());
        }
    }
    out
}

#[test]
fn native_host_ends_quietly_when_the_browser_closes_the_port() {
    let mut host = Host::start("tcp://127.0.0.1:9");
    let r = host.request(&json!({
        "requestId": 1, "type": "create", "origin": "http://example.com", "options": creation(),
    }));
    assert_eq!(r["error"]["name"], "SecurityError");
    // The authenticator is unreachable: a clean error, not a hang; isUVPAA says false.
    let r = host.request(&json!({
        "requestId": 2, "type": "create", "origin": "https://example.com", "options": creation(),
    }));
    assert_eq!(r["ok"], false);
    assert_eq!(r["error"]["name"], "NotAllowedError", "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unreachable"),
        "{r}"
    );
    let r = host.request(&json!({"requestId": 3, "type": "isUvpaa"}));
    assert_eq!(r, json!({"requestId": 3, "ok": true, "result": false}));
    host.stdin = None;
    assert!(host.read().is_none());
    assert!(host.wait().success());
}

#[test]
fn install_writes_the_manifest_for_this_executable() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_passgate"))
        .args([
            "bridge",
            "install",
            "--extension-id",
            "ponmlkjihgfedcbaponmlkjihgfedcba",
            "--browser",
            "chrome",
        ])
        .env("HOME", dir.path())
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("XDG_STATE_HOME")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest_path = dir
        .path()
        .join(".config/google-chrome/NativeMessagingHosts/dev.passgate.bridge.json");
    let manifest: Value = serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    assert_eq!(manifest["name"], "dev.passgate.bridge");
    assert_eq!(manifest["type"], "stdio");
    assert_eq!(
        manifest["allowed_origins"],
        json!(["chrome-extension://ponmlkjihgfedcbaponmlkjihgfedcba/"])
    );
    let launcher = std::fs::read_to_string(manifest["path"].as_str().unwrap()).unwrap();
    assert!(
        launcher.contains(&format!(
            "exec '{}' bridge native-host --authenticator 'unix:{}/.local/state/passgate/authenticator.sock' \"$@\"",
            std::fs::canonicalize(env!("CARGO_BIN_EXE_passgate"))
                .unwrap()
                .display(),
            dir.path().display()
        )),
        "{launcher}"
    );

    let bad = Command::new(env!("CARGO_BIN_EXE_passgate"))
        .args(["bridge", "install", "--extension-id", "short"])
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is not an extension ID"));
}

/// One HTTP exchange on a fresh connection: (status line, body).
fn http(addr: &str, request: &str) -> (String, Value) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (
        head.lines().next().unwrap().to_owned(),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

fn post(
    addr: &str,
    path: &str,
    origin: &str,
    token: Option<&str>,
    body: &Value,
) -> (String, Value) {
    let body = body.to_string();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    http(
        addr,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nOrigin: {origin}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
}

#[test]
fn local_http_bridge_command_pairs_and_verifies_with_the_pin_typed_in_pinentry() {
    let dir = tempfile::tempdir().unwrap();
    let (pinentry, log) = scripted_pinentry(dir.path());
    let server = TcpServer::start(
        std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
        authenticator(dir.path()),
    )
    .unwrap();
    let origin = "http://localhost:3000";
    let mut child = Command::new(env!("CARGO_BIN_EXE_passgate"))
        .args([
            "bridge",
            "local-http",
            "--listen",
            "127.0.0.1:0",
            "--allow-origin",
            origin,
            "--authenticator",
            &format!("tcp://{}", server.local_addr()),
            "--pin-prompt",
            "pinentry",
            "--pinentry",
            pinentry.to_str().unwrap(),
            "--state-dir",
            dir.path().join("host").to_str().unwrap(),
        ])
        .env("PASSGATE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut read_line = || {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut lines, &mut line).unwrap();
        line.trim().to_owned()
    };
    let first = read_line();
    let addr = first
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("{first}"))
        .to_owned();
    let second = read_line();
    let code = second
        .strip_prefix(&format!("pages of {origin} may pair with code: "))
        .unwrap_or_else(|| panic!("{second}"))
        .to_owned();

    let (status, _) = post(
        &addr,
        "/v1/pair",
        "http://localhost:3001",
        None,
        &json!({"code": code}),
    );
    assert!(status.contains(" 403 "), "{status}");
    let (status, paired) = post(&addr, "/v1/pair", origin, None, &json!({"code": code}));
    assert!(status.contains(" 200 "), "{status} {paired}");
    let token = paired["token"].as_str().unwrap().to_owned();
    let mut options = creation();
    options["rp"]["id"] = json!("localhost");
    options["authenticatorSelection"]["userVerification"] = json!("required");
    let (_, reply) = post(
        &addr,
        "/v1/message",
        origin,
        Some(&token),
        &json!({"type": "create", "requestId": "c", "origin": "https://www.example.com", "options": options}),
    );
    assert_eq!(reply["ok"], true, "{reply}");
    let flags = base64_url_byte(
        reply["result"]["response"]["authenticatorData"]
            .as_str()
            .unwrap(),
        32,
    );
    assert_eq!(flags & 0x05, 0x05, "UP and UV");
    assert_eq!(prompts_shown(&log), ["New PIN:", "Repeat:"]);
    // The origin is the Origin header's, not the one the body names.
    let client_data: Value = serde_json::from_slice(&base64_url_decode(
        reply["result"]["response"]["clientDataJSON"]
            .as_str()
            .unwrap(),
    ))
    .unwrap();
    assert_eq!(client_data["origin"], origin);

    // The app APIs on the same authenticator, behind the same checks: the PIN set above is
    // asked in the same pinentry, and the vault belongs to the Origin header's origin.
    let app = |body: Value| {
        let (status, reply) = post(&addr, "/v1/message", origin, Some(&token), &body);
        assert!(status.contains(" 200 "), "{status} {reply}");
        assert_eq!(reply["ok"], true, "{reply}");
        reply["result"].clone()
    };
    let opened = app(
        json!({"type": "vault.open", "requestId": "o", "vaultId": "v",
                            "username": "u", "authMode": "PasscodeOnly"}),
    );
    assert_eq!(opened["result"]["isInUse"], false, "{opened}");
    let stored = app(json!({"type": "vault.storeValue", "vaultId": "v", "key": "k", "value": 7}));
    assert_eq!(stored["result"], Value::Null, "{stored}");
    app(json!({"type": "vault.lock", "vaultId": "v"}));
    let unlocked = app(json!({"type": "vault.unlock", "vaultId": "v"}));
    assert_eq!(unlocked["result"], Value::Null, "{unlocked}");
    assert_eq!(
        app(json!({"type": "vault.getValue", "vaultId": "v", "key": "k"}))["result"],
        7
    );
    assert_eq!(prompts_shown(&log), ["New PIN:", "Repeat:", "PIN:", "PIN:"]);
    let key = app(json!({"type": "biometric.getProofKey"}));
    assert_eq!(key["result"]["origin"], origin);
    assert!(
        dir.path().join("host/app/callers").is_dir(),
        "the app files live under --state-dir"
    );
    let (status, refused) = post(
        &addr,
        "/v1/message",
        origin,
        None,
        &json!({"type": "vault.getValue", "vaultId": "v", "key": "k"}),
    );
    assert!(status.contains(" 401 "), "{status}");
    assert_eq!(refused["error"]["code"], "pairing_required");

    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(Instant::now() < deadline, "local-http ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    server.stop().unwrap();

    // The pairing outlived the process (a private file in a private directory) until
    // `passgate bridge unpair` revokes it.
    use std::os::unix::fs::PermissionsExt;
    let pairings = dir.path().join("host/local-bridge/pairings.json");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&pairings), 0o600);
    assert_eq!(mode(pairings.parent().unwrap()), 0o700);
    let stored: Value = serde_json::from_slice(&std::fs::read(&pairings).unwrap()).unwrap();
    assert_eq!(stored["pairings"][0]["origin"], origin);
    let unpair = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_passgate"))
            .args(["bridge", "unpair", "--state-dir"])
            .arg(dir.path().join("host"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(
        unpair(&["--origin", "http://localhost:9999"]),
        format!("no pairing to revoke in {}\n", pairings.display())
    );
    let revoked = unpair(&["--origin", "http://LOCALHOST:3000/"]);
    assert!(
        revoked.starts_with("revoked pairing ")
            && revoked.trim_end().ends_with(" of http://localhost:3000"),
        "{revoked}"
    );
    let stored: Value = serde_json::from_slice(&std::fs::read(&pairings).unwrap()).unwrap();
    assert_eq!(stored["pairings"], json!([]));
    let refused = Command::new(env!("CARGO_BIN_EXE_passgate"))
        .args(["bridge", "unpair", "--state-dir"])
        .arg(dir.path().join("host"))
        .output()
        .unwrap();
    assert!(!refused.status.success(), "--origin or --all is required");

    // The passkey made above was recorded (its account, for the choice before the
    // verification), privately, until `passgate bridge forget` clears it.
    let accounts = dir.path().join("host/bridge/accounts.json");
    assert_eq!(mode(&accounts), 0o600);
    assert_eq!(mode(accounts.parent().unwrap()), 0o700);
    let recorded: Value = serde_json::from_slice(&std::fs::read(&accounts).unwrap()).unwrap();
    assert_eq!(recorded["accounts"][0]["rp_id"], "localhost");
    assert_eq!(recorded["accounts"][0]["name"], "kim");
    assert_eq!(recorded["accounts"][0]["display_name"], "Kim");
    let forget = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_passgate"))
            .args(["bridge", "forget", "--state-dir"])
            .arg(dir.path().join("host"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(
        forget(&["--rp", "example.com"]),
        format!(
            "forgot 0 account(s) of example.com in {}\n",
            accounts.display()
        )
    );
    assert_eq!(
        forget(&["--all"]),
        format!("forgot 1 account(s) in {}\n", accounts.display())
    );
    let recorded: Value = serde_json::from_slice(&std::fs::read(&accounts).unwrap()).unwrap();
    assert_eq!(recorded["accounts"], json!([]));
}
