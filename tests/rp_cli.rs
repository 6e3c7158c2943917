//! `passgate rp` as an operator runs it: flags, JSON logs with request IDs and without secrets,
//! a config error that names the key, and a graceful shutdown on SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn start(dir: &std::path::Path, extra_env: &[(&str, &str)]) -> (Child, String) {
    start_with(dir, extra_env, &[])
}

/// Starts `passgate rp` with `extra_args`.
fn start_with(
    dir: &std::path::Path,
    extra_env: &[(&str, &str)],
    extra_args: &[&str],
) -> (Child, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_passgate"));
    cmd.args([
        "rp",
        "--listen",
        "127.0.0.1:0",
        "--database",
        &format!("sqlite://{}/rp.sqlite3", dir.display()),
        "--rp-id",
        "localhost",
        "--origin",
        "http://localhost:8080",
    ])
    .args(extra_args)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    // Keep the pipe open: a closed stdout would fail the server's later writes.
    child.stdout = Some(stdout.into_inner());
    (child, addr)
}

fn request(addr: &str, raw: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(raw.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// SIGTERM, a clean exit, then the JSON log lines on stderr (raw, and parsed).
/// Fails if any of `secrets` appears anywhere in `logs`.
fn assert_no_secrets(logs: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!logs.contains(secret), "{secret} reached the logs:\n{logs}");
    }
}

fn stop_and_read_json_logs(child: &mut Child) -> (String, Vec<serde_json::Value>) {
    let status = sigterm_and_wait(child);
    assert!(status.success(), "exit status {status}");
    let mut logs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    let lines = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    (logs, lines)
}

fn sigterm_and_wait(child: &mut Child) -> std::process::ExitStatus {
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
            return status;
        }
        assert!(Instant::now() < deadline, "passgate rp ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn json_logs_carry_request_ids_and_no_secrets_and_sigterm_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = start(
        dir.path(),
        &[("PASSGATE_LOG_FORMAT", "json"), ("PASSGATE_LOG", "debug")],
    );
    let body = r#"{"id":"c2VjcmV0LWFzc2VydGlvbg","rawId":"c2VjcmV0LWFzc2VydGlvbg","type":"public-key","response":{"clientDataJSON":"eyJzZWNyZXQiOnRydWV9","authenticatorData":"AAAA","signature":"U0lHTkFUVVJF"}}"#;
    let reply = request(
        &addr,
        &format!(
            "POST /api/login/verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nCookie: passgate_session=TOPSECRETCOOKIE\r\nX-Request-Id: req-under-test\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(
        reply
            .to_ascii_lowercase()
            .contains("x-request-id: req-under-test"),
        "{reply}"
    );
    assert!(
        reply.contains(r#""code":"client_data_malformed""#),
        "{reply}"
    );

    let (logs, lines) = stop_and_read_json_logs(&mut child);
    assert!(
        lines
            .iter()
            .any(|l| l["span"]["request_id"] == "req-under-test"
                && l["span"]["path"] == "/api/login/verify"),
        "no log line carries the request ID:\n{logs}"
    );
    assert_no_secrets(
        &logs,
        &[
            "TOPSECRETCOOKIE",
            "c2VjcmV0LWFzc2VydGlvbg",
            "U0lHTkFUVVJF",
            "eyJzZWNyZXQiOnRydWV9",
        ],
    );
    assert!(
        logs.contains("shutting down"),
        "no shutdown line in the logs:\n{logs}"
    );
}

#[test]
fn backend_verification_on_the_main_port_logs_with_request_ids_and_no_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = start_with(
        dir.path(),
        &[
            ("PASSGATE_LOG_FORMAT", "json"),
            ("PASSGATE_LOG", "debug"),
            ("PASSGATE_API_TOKEN", "backend-token"),
        ],
        &[],
    );
    let body = r#"{"credential":{"id":"AAAA","publicKey":"c2VjcmV0LWtleQ","userHandle":"AAAA"},"response":{"id":"AAAA","rawId":"AAAA","type":"public-key","response":{"clientDataJSON":"eyJzZWNyZXQiOnRydWV9","authenticatorData":"AAAA","signature":"U0lHTkFUVVJF"}},"expectedChallenge":"AAAA","expectedOrigins":["http://localhost:8080"],"expectedRpId":"localhost"}"#;
    let verdict = |addr: &str| {
        request(
            addr,
            &format!(
                "POST /api/verify/assertion HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer backend-token\r\nX-Request-Id: backend-req\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ),
        )
    };
    let answer = verdict(&addr);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains(r#""code":"bad_public_key""#), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("x-request-id: backend-req"),
        "{answer}"
    );
    // The retired `--verify-listen` flag is refused, not silently ignored.
    let refused = Command::new(env!("CARGO_BIN_EXE_passgate"))
        .args(["rp", "--verify-listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!refused.status.success());

    let (logs, lines) = stop_and_read_json_logs(&mut child);
    // The request carried the ID, logged in its span.
    let logged = lines
        .iter()
        .filter(|l| {
            l["span"]["request_id"] == "backend-req"
                && l["span"]["path"] == "/api/verify/assertion"
                && l["fields"]["status"] == 400
        })
        .count();
    assert_eq!(logged, 1, "{logs}");
    assert_no_secrets(
        &logs,
        &[
            "backend-token",
            "c2VjcmV0LWtleQ",
            "U0lHTkFUVVJF",
            "eyJzZWNyZXQiOnRydWV9",
        ],
    );
}

#[test]
fn a_bad_setting_is_refused_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rp.toml");
    std::fs::write(&config, "rp_id = \"localhost\"\nlisen = \"127.0.0.1:1\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_passgate"))
        .args(["rp", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("lisen"), "{err}");

    let out = Command::new(env!("CARGO_BIN_EXE_passgate"))
        .args([
            "rp",
            "--rp-id",
            "example.com",
            "--origin",
            "https://evil.example",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("evil.example"), "{err}");
}

#[test]
fn passgate_demo_serves_the_pages_and_the_api_on_localhost() {
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let state = dir.path().join("state");
    // The person at passgate's prompt: the scripted pinentry (a real Assuan speaker).
    let pinentry = passgate_testkit::ScriptedPinentry::new(dir.path()).program;
    let mut child = Command::new(env!("CARGO_BIN_EXE_passgate"))
        .args([
            "demo",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--bridge-listen",
            "127.0.0.1:0",
            "--state-dir",
            state.to_str().unwrap(),
            "--prompt",
            "pinentry",
            "--pinentry",
            pinentry.to_str().unwrap(),
            "--user-verifier",
            "pin",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut text = String::new();
    while !text.contains("Stop with Ctrl-C") {
        let mut line = String::new();
        assert!(out.read_line(&mut line).unwrap() > 0, "demo exited: {text}");
        text.push_str(&line);
    }
    assert!(
        text.contains(&format!("open http://localhost:{port}")),
        "{text}"
    );
    let addr = format!("127.0.0.1:{port}");
    let page = request(
        &addr,
        "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(
        page.contains("autocomplete=\"username webauthn\""),
        "{page}"
    );
    let options = request(
        &addr,
        "POST /api/register/options HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 20\r\nConnection: close\r\n\r\n{\"username\":\"demo\"}\n",
    );
    assert!(options.starts_with("HTTP/1.1 200"), "{options}");
    assert!(options.contains("\"id\":\"localhost\""), "{options}");
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&state.join("demo-receipt-key.p8")), 0o600);
    assert_eq!(mode(&state.join("authenticator")), 0o700);

    // A flood of 1,100 idle connections on the relying party's port (what once ran the demo
    // out of descriptors) leaves the relying party and the local bridge answering.
    passgate_authenticator::transport::limits::raise_open_files_limit().unwrap();
    let flood: Vec<TcpStream> = (0..1_100)
        .map(|_| TcpStream::connect(&addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let health = request(
        &addr,
        "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "/healthz took {:?} under the flood",
        started.elapsed()
    );

    // passgate's authenticator behind the local bridge: the demo origin pairs with the printed
    // code and reaches it; the answer says a PIN can verify users.
    let bridge = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("local bridge: http://"))
        .unwrap_or_else(|| panic!("no local bridge line: {text}"))
        .to_owned();
    let code = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("pairing code: "))
        .unwrap_or_else(|| panic!("no pairing code: {text}"))
        .to_owned();
    assert!(text.contains("User verification: PIN"), "{text}");
    let origin = format!("http://localhost:{port}");
    let body = format!("{{\"code\":\"{code}\"}}");
    let paired = request(
        &bridge,
        &format!(
            "POST /v1/pair HTTP/1.1\r\nHost: {bridge}\r\nOrigin: {origin}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    assert!(paired.starts_with("HTTP/1.1 200"), "{paired}");
    let token = paired
        .split("\"token\":\"")
        .nth(1)
        .and_then(|t| t.split('"').next())
        .unwrap()
        .to_owned();
    let message = r#"{"type":"isUvpaa","requestId":1}"#;
    let answer = request(
        &bridge,
        &format!(
            "POST /v1/message HTTP/1.1\r\nHost: {bridge}\r\nOrigin: {origin}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{message}",
            message.len()
        ),
    );
    assert!(
        answer.ends_with(r#"{"ok":true,"requestId":1,"result":true}"#),
        "{answer}"
    );
    // Another origin is refused.
    let refused = request(
        &bridge,
        &format!(
            "POST /v1/pair HTTP/1.1\r\nHost: {bridge}\r\nOrigin: http://localhost:1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
    drop(flood);
    assert!(sigterm_and_wait(&mut child).success());

    // Port 0 cannot work: the origin must be known.
    let out = Command::new(env!("CARGO_BIN_EXE_passgate"))
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--state-dir",
            state.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("fixed port"));
}

#[test]
fn an_api_token_on_the_command_line_is_refused_and_a_token_file_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let refused = Command::new(env!("CARGO_BIN_EXE_passgate"))
        .args([
            "rp",
            "--listen",
            "127.0.0.1:0",
            "--api-token",
            "visible-to-all",
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("--api-token is no longer accepted") && stderr.contains("--api-token-file"),
        "{stderr}"
    );
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let no_token = Command::new(env!("CARGO_BIN_EXE_passgate"))
        .args(["rp", "--listen", "127.0.0.1:0", "--api-token-file"])
        .arg(&empty)
        .output()
        .unwrap();
    assert!(!no_token.status.success());
    assert!(String::from_utf8_lossy(&no_token.stderr).contains("holds no token"));
    // A file with the token: backend verification on the main port accepts it.
    let file = dir.path().join("token");
    std::fs::write(&file, "file-token\n").unwrap();
    let (mut child, verify) = start_with(
        dir.path(),
        &[],
        &["--api-token-file", file.to_str().unwrap()],
    );
    let body = "{}";
    let answer = |token: &str| {
        request(
            &verify,
            &format!(
                "POST /api/verify/assertion HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ),
        )
    };
    assert!(
        answer("wrong").starts_with("HTTP/1.1 401"),
        "{}",
        answer("wrong")
    );
    assert!(
        answer("file-token").starts_with("HTTP/1.1 400"),
        "{}",
        answer("file-token")
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// `--workers 1` runs on one thread (tokio's current-thread runtime): the database, the router
/// and the direct verify route all answer, and SIGTERM still exits cleanly.
#[test]
fn one_worker_serves_the_database_the_router_and_the_verify_route_on_one_thread() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = start_with(
        dir.path(),
        &[("PASSGATE_API_TOKEN", "backend-token")],
        &["--workers", "1"],
    );
    let ready = request(
        &addr,
        "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    assert!(ready.contains(r#""status":"ready""#), "{ready}");
    let wrong_method = request(
        &addr,
        "GET /api/verify/assertion HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(wrong_method.starts_with("HTTP/1.1 405"), "{wrong_method}");
    let unauthorized = request(
        &addr,
        "POST /api/verify/assertion HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
    );
    assert!(unauthorized.starts_with("HTTP/1.1 401"), "{unauthorized}");
    assert!(
        unauthorized.contains(r#""code":"invalid_api_token""#),
        "{unauthorized}"
    );
    let malformed = request(
        &addr,
        "POST /api/verify/assertion HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer backend-token\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
    );
    assert!(malformed.starts_with("HTTP/1.1 400"), "{malformed}");
    assert!(
        malformed.contains(r#""code":"malformed_request""#),
        "{malformed}"
    );
    // No tokio worker threads besides the main one (SQLite's own threads are the store's).
    assert!(
        std::fs::read_dir(format!("/proc/{}/task", child.id()))
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.unwrap().path().join("comm")).ok())
            .all(|name| !name.starts_with("tokio-runtime-w")),
        "a worker thread in a one-worker server"
    );
    assert!(sigterm_and_wait(&mut child).success());
}
