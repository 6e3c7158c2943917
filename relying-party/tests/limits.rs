//! The main port's connection limits over real TCP: a flood of idle connections past the cap
//! does not keep `/healthz` or a sign-in from answering within a second, a slow-loris request
//! head is cut off at the header timeout, a slow body at the body timeout, and an idle
//! keep-alive connection is closed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::too_many_lines
)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{SoftCredential, Tamper};
use passgate_relying_party::{RpConfig, build_state};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

const ORIGIN: &str = "http://localhost:8080";

struct Server {
    addr: SocketAddr,
    _stop: oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

async fn start(adjust: impl FnOnce(&mut RpConfig)) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut config = RpConfig {
        database: format!("sqlite://{}", dir.path().join("rp.sqlite3").display()),
        rate_limit_per_sec: 0,
        ..RpConfig::default()
    };
    adjust(&mut config);
    let state = build_state(config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(passgate_relying_party::server::serve(
        listener,
        state,
        async {
            let _ = stopped.await;
        },
    ));
    Server {
        addr,
        _stop: stop,
        _dir: dir,
    }
}

/// Reads until the peer closes (or `limit` passes); the bytes and whether it closed.
async fn read_to_close(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let deadline = tokio::time::Instant::now() + limit;
    let mut all = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Err(_) => return (all, false),
            Ok(Ok(0) | Err(_)) => return (all, true),
            Ok(Ok(n)) => all.extend_from_slice(&chunk[..n]),
        }
    }
}

/// One request on a fresh connection (`Connection: close`): status and JSON body.
async fn request(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let body = body
        .map(|b| serde_json::to_vec(b).unwrap())
        .unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost:8080\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body).await.unwrap();
    let (bytes, closed) = read_to_close(&mut stream, Duration::from_secs(5)).await;
    assert!(closed, "no complete answer within 5 s");
    let text = String::from_utf8_lossy(&bytes);
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
    };
    (status, body)
}

async fn sign_up(addr: SocketAddr, username: &str) -> SoftCredential {
    let (status, options) = request(
        addr,
        "POST",
        "/api/register/options",
        Some(&json!({"username": username, "displayName": username})),
    )
    .await;
    assert_eq!(status, 200, "{options}");
    let (credential, response) = SoftCredential::register(&options, ORIGIN, &Tamper::default());
    let (status, done) = request(addr, "POST", "/api/register/verify", Some(&response)).await;
    assert_eq!(status, 200, "{done}");
    credential
}

async fn sign_in(addr: SocketAddr, username: &str, credential: &mut SoftCredential) {
    let (status, options) = request(
        addr,
        "POST",
        "/api/login/options",
        Some(&json!({ "username": username })),
    )
    .await;
    assert_eq!(status, 200, "{options}");
    let assertion = credential.assert(&options, ORIGIN, &Tamper::default());
    let (status, done) = request(addr, "POST", "/api/login/verify", Some(&assertion)).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["user"]["name"], username);
}

/// Lets this test process hold a flood's client ends and the server's ends at once.
fn raise_open_files_limit() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    limit.current = limit.maximum;
    setrlimit(Resource::Nofile, limit).unwrap();
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_past_the_cap_do_not_starve_healthz_or_sign_in() {
    let open_files = raise_open_files_limit();
    // 1,100 idle connections: what took the port down before (the fd limit was 1024).
    let flood_size: usize = 1_100;
    assert!(
        open_files >= 2 * 1_100 + 256,
        "this test needs an open-files hard limit of at least 2,456 (have {open_files})"
    );
    let server = start(|c| c.max_connections = 256).await;
    let mut credential = sign_up(server.addr, "alice").await;

    let mut flood = Vec::with_capacity(flood_size);
    for _ in 0..flood_size {
        flood.push(TcpStream::connect(server.addr).await.unwrap());
    }
    // Let the server accept them all.
    tokio::time::sleep(Duration::from_millis(300)).await;

    for round in 0..3 {
        let started = Instant::now();
        let (status, body) = request(server.addr, "GET", "/healthz", None).await;
        assert_eq!((status, body), (200, json!({"status": "ok"})));
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "round {round}: /healthz took {:?} under {flood_size} idle connections",
            started.elapsed()
        );
        let started = Instant::now();
        sign_in(server.addr, "alice", &mut credential).await;
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "round {round}: sign-in took {:?} under {flood_size} idle connections",
            started.elapsed()
        );
    }
    // The server closed the oldest idle connections to stay within its cap.
    let mut closed = 0;
    for stream in &mut flood {
        let mut byte = [0u8; 1];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(5), stream.read(&mut byte)).await
        {
            closed += 1;
        }
    }
    assert!(
        closed >= flood_size - 256,
        "only {closed} of {flood_size} idle connections were closed with a cap of 256"
    );
}

#[tokio::test]
async fn a_slow_loris_request_head_is_cut_off_at_the_header_timeout() {
    let server = start(|c| c.header_timeout_secs = 1).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let started = Instant::now();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost:8080\r\n")
        .await
        .unwrap();
    // One header line every 200 ms, never the blank line that ends the head.
    let mut dripped = 0;
    let closed_at = loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if stream.write_all(b"X-Drip: 1\r\n").await.is_err() {
            break started.elapsed();
        }
        dripped += 1;
        let mut buf = [0u8; 256];
        if let Ok(read) =
            tokio::time::timeout(Duration::from_millis(1), stream.read(&mut buf)).await
        {
            let n = read.unwrap_or(0);
            let text = String::from_utf8_lossy(&buf[..n]);
            assert!(
                n == 0 || text.starts_with("HTTP/1.1 408"),
                "expected 408 or a close, got {text:?}"
            );
            break started.elapsed();
        }
        assert!(dripped < 50, "the drip-fed head was never cut off");
    };
    assert!(
        closed_at >= Duration::from_millis(900) && closed_at < Duration::from_millis(2_500),
        "cut off after {closed_at:?}, expected about the 1 s header timeout"
    );
}

#[tokio::test]
async fn a_slow_body_is_answered_408_at_the_body_timeout() {
    let server = start(|c| c.body_timeout_secs = 1).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let started = Instant::now();
    stream
        .write_all(
            b"POST /api/login/options HTTP/1.1\r\nHost: localhost:8080\r\n\
              Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"user",
        )
        .await
        .unwrap();
    let (bytes, _) = read_to_close(&mut stream, Duration::from_secs(3)).await;
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    let body: Value = serde_json::from_str(text.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(body["error"]["code"], "body_timeout");
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_millis(2_500),
        "answered after {elapsed:?}"
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let server = start(|c| c.header_timeout_secs = 1).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost:8080\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let (bytes, closed) = read_to_close(&mut stream, Duration::from_secs(4)).await;
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(closed, "the idle keep-alive connection stayed open for 4 s");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_millis(2_500),
        "closed after {elapsed:?}"
    );
}

#[test]
fn limits_come_from_the_configuration_and_must_be_positive() {
    let mut config = RpConfig::default();
    assert_eq!(
        (
            config.max_connections,
            config.header_timeout_secs,
            config.body_timeout_secs
        ),
        (4096, 10, 10)
    );
    config
        .apply_env([
            ("PASSGATE_RP_MAX_CONNECTIONS".to_owned(), "512".to_owned()),
            ("PASSGATE_RP_HEADER_TIMEOUT_SECS".to_owned(), "5".to_owned()),
            ("PASSGATE_RP_BODY_TIMEOUT_SECS".to_owned(), "7".to_owned()),
        ])
        .unwrap();
    assert_eq!(config.connection_limits().max_connections, 512);
    assert_eq!(
        config.connection_limits().header_timeout,
        Duration::from_secs(5)
    );
    assert_eq!(config.body_timeout_secs, 7);
    config.max_connections = 0;
    let err = config.validate().unwrap_err().to_string();
    assert!(err.contains("max_connections"), "{err}");
}
