//! The verification listener (`passgate rp --verify-listen`) over real TCP: it must answer
//! exactly what the main port answers for the same body, and refuse bad HTTP precisely, without
//! hanging on slow clients.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::too_many_lines
)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::Tamper;
use passgate_relying_party::verify_listener::{Timeouts, serve_verify_with};
use passgate_relying_party::{RpConfig, build_state};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

const ORIGIN: &str = "http://localhost:8080";
const TOKEN: &str = "backend-token";

struct Servers {
    main: SocketAddr,
    verify: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    verify_task: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

async fn start(timeouts: Timeouts) -> Servers {
    let dir = tempfile::tempdir().unwrap();
    let config = RpConfig {
        database: format!("sqlite://{}", dir.path().join("rp.sqlite3").display()),
        rate_limit_per_sec: 0,
        api_tokens: vec![TOKEN.into()],
        body_limit_bytes: 8 * 1024,
        ..RpConfig::default()
    };
    let state = build_state(config).await.unwrap();
    let main_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let verify_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (main, verify) = (
        main_listener.local_addr().unwrap(),
        verify_listener.local_addr().unwrap(),
    );
    tokio::spawn(passgate_relying_party::server::serve(
        main_listener,
        state.clone(),
        std::future::pending(),
    ));
    let (stop, stopped) = oneshot::channel::<()>();
    let verify_task = tokio::spawn(serve_verify_with(verify_listener, state, timeouts, async {
        let _ = stopped.await;
    }));
    Servers {
        main,
        verify,
        stop: Some(stop),
        verify_task,
        _dir: dir,
    }
}

/// A parsed HTTP/1.1 response.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
    fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or("<none>")
            .to_owned()
    }
}

/// Reads one response from `stream`, keeping any bytes after it in `rest`.
async fn read_answer(stream: &mut TcpStream, rest: &mut Vec<u8>) -> Option<Answer> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8(rest[..end].to_vec()).unwrap();
            let mut lines = head.split("\r\n");
            let status: u16 = lines
                .next()
                .unwrap()
                .split(' ')
                .nth(1)
                .unwrap()
                .parse()
                .unwrap();
            let headers: Vec<(String, String)> = lines
                .map(|l| {
                    let (n, v) = l.split_once(':').unwrap();
                    (n.trim().to_owned(), v.trim().to_owned())
                })
                .collect();
            let length: usize = headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                .map_or(0, |(_, v)| v.parse().unwrap());
            if rest.len() >= end + 4 + length {
                let body = rest[end + 4..end + 4 + length].to_vec();
                rest.drain(..end + 4 + length);
                return Some(Answer {
                    status,
                    headers,
                    body,
                });
            }
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, stream.read(&mut chunk))
            .await
            .expect("the listener did not answer within 5 s")
            .unwrap();
        if n == 0 {
            return None;
        }
        rest.extend_from_slice(&chunk[..n]);
    }
}

/// The connection is closed by the server: the next read gives end of stream, not a hang.
async fn assert_closed(stream: &mut TcpStream) {
    let mut byte = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte))
        .await
        .expect("the listener kept the connection open");
    assert!(
        matches!(n, Ok(0) | Err(_)),
        "more bytes after the answer: {n:?}"
    );
}

fn post(path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "POST {path} HTTP/1.1\r\nhost: localhost\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (n, v) in headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

const JSON_AUTH: &[(&str, &str)] = &[
    ("content-type", "application/json"),
    ("authorization", "Bearer backend-token"),
];

async fn exchange(addr: SocketAddr, request: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    read_answer(&mut stream, &mut Vec::new())
        .await
        .expect("no answer")
}

/// A verification request body for a fresh credential.
fn verify_body(tamper: &Tamper) -> Value {
    common::backend_verify_request(ORIGIN, "localhost", tamper)
}

#[tokio::test]
async fn answers_what_the_main_port_answers_for_every_body() {
    let s = start(Timeouts::default()).await;
    let good = verify_body(&Tamper::default());
    // (what, body, headers)
    type Case<'a> = (&'a str, Vec<u8>, &'a [(&'a str, &'a str)]);
    let mut bodies: Vec<Case> = vec![
        ("valid", serde_json::to_vec(&good).unwrap(), JSON_AUTH),
        (
            "bad signature",
            serde_json::to_vec(&verify_body(&Tamper {
                break_signature: true,
                ..Tamper::default()
            }))
            .unwrap(),
            JSON_AUTH,
        ),
        (
            "other origin",
            serde_json::to_vec(&verify_body(&Tamper {
                origin: Some("https://evil.example".into()),
                ..Tamper::default()
            }))
            .unwrap(),
            JSON_AUTH,
        ),
        (
            "no UV",
            serde_json::to_vec(&verify_body(&Tamper {
                flags: common::UP,
                ..Tamper::default()
            }))
            .unwrap(),
            JSON_AUTH,
        ),
        ("not JSON", b"{not json".to_vec(), JSON_AUTH),
        ("empty", Vec::new(), JSON_AUTH),
        (
            "no token",
            serde_json::to_vec(&good).unwrap(),
            &[("content-type", "application/json")],
        ),
        (
            "wrong token",
            serde_json::to_vec(&good).unwrap(),
            &[
                ("content-type", "application/json"),
                ("authorization", "Bearer nope"),
            ],
        ),
        (
            "text/plain",
            serde_json::to_vec(&good).unwrap(),
            &[
                ("content-type", "text/plain"),
                ("authorization", "Bearer backend-token"),
            ],
        ),
    ];
    let mut bad_key = good.clone();
    bad_key["credential"]["publicKey"] = json!("AAAA");
    bodies.push((
        "bad COSE key",
        serde_json::to_vec(&bad_key).unwrap(),
        JSON_AUTH,
    ));
    let mut bad_b64 = good.clone();
    bad_b64["expectedChallenge"] = json!("***");
    bodies.push((
        "bad base64",
        serde_json::to_vec(&bad_b64).unwrap(),
        JSON_AUTH,
    ));

    let mut statuses = Vec::new();
    for (what, body, headers) in &bodies {
        let request = post("/api/verify/assertion", headers, body);
        let main = exchange(s.main, &request).await;
        let verify = exchange(s.verify, &request).await;
        assert_eq!(main.status, verify.status, "{what}");
        assert_eq!(
            String::from_utf8_lossy(&main.body),
            String::from_utf8_lossy(&verify.body),
            "{what}"
        );
        assert_eq!(
            main.header("content-type"),
            verify.header("content-type"),
            "{what}"
        );
        statuses.push((*what, verify.status, verify.json()["error"]["code"].clone()));
    }
    // The cases are what their names say, not 200s or one repeated error.
    assert_eq!(
        statuses,
        vec![
            ("valid", 200, Value::Null),
            ("bad signature", 400, json!("bad_signature")),
            ("other origin", 400, json!("origin_not_allowed")),
            ("no UV", 400, json!("user_verification_missing")),
            ("not JSON", 400, json!("malformed_request")),
            ("empty", 400, json!("malformed_request")),
            ("no token", 401, json!("invalid_api_token")),
            ("wrong token", 401, json!("invalid_api_token")),
            ("text/plain", 415, json!("unsupported_media_type")),
            ("bad COSE key", 400, json!("bad_public_key")),
            ("bad base64", 400, json!("malformed_request")),
        ]
    );
}

#[tokio::test]
async fn keeps_connections_alive_answers_pipelined_requests_in_order_and_echoes_request_ids() {
    let s = start(Timeouts::default()).await;
    let body = serde_json::to_vec(&verify_body(&Tamper::default())).unwrap();
    let mut stream = TcpStream::connect(s.verify).await.unwrap();
    let mut rest = Vec::new();
    // Three requests one after the other on one connection.
    for _ in 0..3 {
        stream
            .write_all(&post("/api/verify/assertion", JSON_AUTH, &body))
            .await
            .unwrap();
        let a = read_answer(&mut stream, &mut rest).await.unwrap();
        assert_eq!(a.status, 200);
        assert_eq!(a.json()["verified"], true);
        assert_eq!(a.header("connection"), None);
        // A generated ID is a random UUID, version 4.
        let id = a.header("x-request-id").unwrap();
        assert_eq!((id.len(), &id[14..15]), (36, "4"), "{id}");
        // The cached Date is the current second's (RFC 9110 §6.6.1), not a stale one.
        let date = httpdate::parse_http_date(a.header("date").unwrap()).unwrap();
        let skew = std::time::SystemTime::now()
            .duration_since(date)
            .unwrap_or_default();
        assert!(skew < Duration::from_secs(2), "{date:?}");
    }
    // Then three in one write: a verification, a health check, an unknown path.
    let mut pipelined = post(
        "/api/verify/assertion",
        &[
            ("content-type", "application/json"),
            ("authorization", "Bearer backend-token"),
            ("x-request-id", "first"),
        ],
        &body,
    );
    pipelined
        .extend_from_slice(b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-request-id: second\r\n\r\n");
    pipelined.extend_from_slice(b"GET /nope HTTP/1.1\r\nhost: x\r\nx-request-id: third\r\n\r\n");
    stream.write_all(&pipelined).await.unwrap();
    let answers = [
        read_answer(&mut stream, &mut rest).await.unwrap(),
        read_answer(&mut stream, &mut rest).await.unwrap(),
        read_answer(&mut stream, &mut rest).await.unwrap(),
    ];
    assert_eq!(
        answers
            .iter()
            .map(|a| (a.status, a.header("x-request-id").unwrap().to_owned()))
            .collect::<Vec<_>>(),
        [
            (200, "first".into()),
            (200, "second".into()),
            (404, "third".into())
        ]
    );
    assert_eq!(answers[1].json(), json!({"status": "ok"}));
    assert_eq!(answers[2].code(), "not_found");
    // `Connection: close` is honoured.
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let last = read_answer(&mut stream, &mut rest).await.unwrap();
    assert_eq!(
        (last.status, last.header("connection")),
        (200, Some("close"))
    );
    assert_closed(&mut stream).await;

    // HTTP/1.0 gets one answer, then the close.
    let mut old = TcpStream::connect(s.verify).await.unwrap();
    old.write_all(b"GET /healthz HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let a = read_answer(&mut old, &mut Vec::new()).await.unwrap();
    assert_eq!((a.status, a.header("connection")), (200, Some("close")));
    assert_closed(&mut old).await;
}

/// Both ports hold an answer back until the other connections that are ready have run, so
/// that answers go out together. With many clients at once on a multi-thread runtime, every
/// client still gets its own answers, in order, and none is held back for long.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_clients_at_once_each_get_their_own_answers_in_order() {
    let s = start(Timeouts::default()).await;
    let valid = serde_json::to_vec(&verify_body(&Tamper::default())).unwrap();
    let forged = serde_json::to_vec(&verify_body(&Tamper {
        break_signature: true,
        ..Tamper::default()
    }))
    .unwrap();
    const CLIENTS: usize = 40;
    const REQUESTS: usize = 5;
    for (port, addr) in [("listener", s.verify), ("main port", s.main)] {
        let mut clients = tokio::task::JoinSet::new();
        for client in 0..CLIENTS {
            let (valid, forged) = (valid.clone(), forged.clone());
            clients.spawn(async move {
                let mut stream = TcpStream::connect(addr).await.unwrap();
                let mut rest = Vec::new();
                let mut seen = Vec::new();
                for request in 0..REQUESTS {
                    // Every third request of a client carries a forged signature.
                    let forge = (client + request) % 3 == 0;
                    let id = format!("c{client}-r{request}");
                    let headers = [
                        ("content-type", "application/json"),
                        ("authorization", "Bearer backend-token"),
                        ("x-request-id", id.as_str()),
                    ];
                    let body = if forge { &forged } else { &valid };
                    stream
                        .write_all(&post("/api/verify/assertion", &headers, body))
                        .await
                        .unwrap();
                    let a = read_answer(&mut stream, &mut rest).await.unwrap();
                    let verdict = if a.status == 200 {
                        a.json()["verified"].to_string()
                    } else {
                        a.code()
                    };
                    seen.push((
                        a.header("x-request-id").unwrap().to_owned(),
                        a.status,
                        verdict,
                    ));
                }
                (client, seen)
            });
        }
        let started = std::time::Instant::now();
        let mut done = 0;
        while let Some(joined) = clients.join_next().await {
            let (client, seen) = joined.unwrap();
            let expected: Vec<(String, u16, String)> = (0..REQUESTS)
                .map(|request| {
                    let id = format!("c{client}-r{request}");
                    if (client + request) % 3 == 0 {
                        (id, 400, "bad_signature".to_owned())
                    } else {
                        (id, 200, "true".to_owned())
                    }
                })
                .collect();
            assert_eq!(seen, expected, "{port}, client {client}");
            done += 1;
        }
        assert_eq!(done, CLIENTS, "{port}");
        // 200 verifications take well under a second here; 10 s means an answer was held back.
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{port}: {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn answers_expect_100_continue_before_the_body() {
    let s = start(Timeouts::default()).await;
    let body = serde_json::to_vec(&verify_body(&Tamper::default())).unwrap();
    let mut request = post(
        "/api/verify/assertion",
        &[
            ("content-type", "application/json"),
            ("authorization", "Bearer backend-token"),
            ("expect", "100-continue"),
        ],
        &body,
    );
    request.truncate(request.len() - body.len());
    let mut stream = TcpStream::connect(s.verify).await.unwrap();
    stream.write_all(&request).await.unwrap();
    let mut interim = [0u8; 25];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut interim))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    stream.write_all(&body).await.unwrap();
    let a = read_answer(&mut stream, &mut Vec::new()).await.unwrap();
    assert_eq!((a.status, a.json()["verified"].clone()), (200, json!(true)));
}

#[tokio::test]
async fn refuses_bad_http_with_a_precise_status_and_code() {
    let s = start(Timeouts::default()).await;
    let body = serde_json::to_vec(&verify_body(&Tamper::default())).unwrap();
    let many_headers: String = (0..70).map(|i| format!("x-h{i}: v\r\n")).collect();
    let long_header = format!("x-long: {}\r\n", "a".repeat(17 * 1024));
    let with_head = |extra: &str, body: &[u8]| {
        let mut out = format!("POST /api/verify/assertion HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nauthorization: Bearer backend-token\r\n{extra}\r\n").into_bytes();
        out.extend_from_slice(body);
        out
    };
    let cases: Vec<(&str, Vec<u8>, u16, &str, bool)> = vec![
        (
            "chunked body",
            with_head("transfer-encoding: chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n"),
            411,
            "length_required",
            true,
        ),
        (
            "no content-length",
            with_head("", b""),
            411,
            "length_required",
            true,
        ),
        (
            "two content-lengths",
            with_head(
                &format!("content-length: {0}\r\ncontent-length: {0}\r\n", body.len()),
                &body,
            ),
            400,
            "bad_content_length",
            true,
        ),
        (
            "content-length not a number",
            with_head("content-length: 12abc\r\n", &body),
            400,
            "bad_content_length",
            true,
        ),
        (
            "negative content-length",
            with_head("content-length: -1\r\n", &body),
            400,
            "bad_content_length",
            true,
        ),
        (
            "body over the limit",
            with_head("content-length: 9000\r\n", &[b'{'; 10]),
            413,
            "body_too_large",
            true,
        ),
        (
            "no host on HTTP/1.1",
            b"GET /healthz HTTP/1.1\r\n\r\n".to_vec(),
            400,
            "missing_host",
            true,
        ),
        (
            "too many headers",
            format!("GET /healthz HTTP/1.1\r\nhost: x\r\n{many_headers}\r\n").into_bytes(),
            431,
            "headers_too_large",
            true,
        ),
        (
            "head over 16 KiB",
            format!("GET /healthz HTTP/1.1\r\nhost: x\r\n{long_header}").into_bytes(),
            431,
            "headers_too_large",
            true,
        ),
        (
            "not HTTP",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n".to_vec(),
            400,
            "malformed_http",
            true,
        ),
        (
            "unknown expectation",
            with_head(
                &format!("content-length: {}\r\nexpect: 200-ok\r\n", body.len()),
                &body,
            ),
            417,
            "expectation_failed",
            true,
        ),
        (
            "GET on the verify path",
            b"GET /api/verify/assertion HTTP/1.1\r\nhost: x\r\n\r\n".to_vec(),
            405,
            "method_not_allowed",
            false,
        ),
        (
            "POST on the health path",
            b"POST /healthz HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n".to_vec(),
            405,
            "method_not_allowed",
            false,
        ),
        (
            "a main-port endpoint",
            b"POST /api/login/options HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n".to_vec(),
            404,
            "not_found",
            false,
        ),
    ];
    for (what, request, status, code, closes) in cases {
        let mut stream = TcpStream::connect(s.verify).await.unwrap();
        stream.write_all(&request).await.unwrap();
        let a = read_answer(&mut stream, &mut Vec::new())
            .await
            .unwrap_or_else(|| panic!("{what}: closed without an answer"));
        assert_eq!((a.status, a.code().as_str()), (status, code), "{what}");
        assert_eq!(a.header("content-type"), Some("application/json"), "{what}");
        assert_eq!(a.header("x-request-id").map(str::len), Some(36), "{what}");
        if closes {
            assert_eq!(a.header("connection"), Some("close"), "{what}");
            assert_closed(&mut stream).await;
        } else {
            assert_eq!(a.header("connection"), None, "{what}");
        }
        if status == 405 {
            let allow = if what.contains("health") {
                "GET"
            } else {
                "POST"
            };
            assert_eq!(a.header("allow"), Some(allow), "{what}");
        }
    }
    // A request refused from its head whose body comes later is read to its end, answered, and
    // the connection stays usable.
    let mut stream = TcpStream::connect(s.verify).await.unwrap();
    let late_body = post(
        "/api/verify/assertion",
        &[
            ("content-type", "application/json"),
            ("authorization", "Bearer nope"),
        ],
        &body,
    );
    let split = late_body.len() - body.len();
    stream.write_all(&late_body[..split]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    stream.write_all(&late_body[split..]).await.unwrap();
    let mut rest = Vec::new();
    let a = read_answer(&mut stream, &mut rest).await.unwrap();
    assert_eq!(
        (a.status, a.code().as_str(), a.header("connection")),
        (401, "invalid_api_token", None)
    );
    stream
        .write_all(&post("/api/verify/assertion", JSON_AUTH, &body))
        .await
        .unwrap();
    assert_eq!(
        read_answer(&mut stream, &mut rest).await.unwrap().status,
        200
    );

    // After all that, the listener still verifies.
    let a = exchange(s.verify, &post("/api/verify/assertion", JSON_AUTH, &body)).await;
    assert_eq!(a.status, 200);
}

#[tokio::test]
async fn slow_clients_get_a_408_or_a_close_instead_of_holding_the_connection() {
    let s = start(Timeouts {
        head: Duration::from_millis(300),
        body: Duration::from_millis(300),
        idle: Duration::from_millis(600),
        drain: Duration::from_secs(2),
    })
    .await;
    // Half a head, then nothing: the head's 300 ms apply, not the idle 600 ms.
    let mut stream = TcpStream::connect(s.verify).await.unwrap();
    let started = std::time::Instant::now();
    stream
        .write_all(b"POST /api/verify/assertion HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let a = read_answer(&mut stream, &mut Vec::new()).await.unwrap();
    assert_eq!((a.status, a.code().as_str()), (408, "request_timeout"));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_millis(550),
        "{waited:?}"
    );
    assert_closed(&mut stream).await;
    // A kept-alive connection after a request in two pieces (which moved the timer to the
    // head's deadline) waits the idle 600 ms again before it closes.
    let mut kept = TcpStream::connect(s.verify).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    kept.write_all(b"host: x\r\n\r\n").await.unwrap();
    let mut rest = Vec::new();
    assert_eq!(read_answer(&mut kept, &mut rest).await.unwrap().status, 200);
    let started = std::time::Instant::now();
    assert!(read_answer(&mut kept, &mut rest).await.is_none());
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(500), "{waited:?}");
    // A head announcing 100 bytes, then 10.
    let mut stream = TcpStream::connect(s.verify).await.unwrap();
    stream
        .write_all(&with_length_only(100, b"{\"a\":12345"))
        .await
        .unwrap();
    let a = read_answer(&mut stream, &mut Vec::new()).await.unwrap();
    assert_eq!((a.status, a.code().as_str()), (408, "request_timeout"));
    assert_closed(&mut stream).await;
    // An idle connection is closed without an answer.
    let mut idle = TcpStream::connect(s.verify).await.unwrap();
    let started = std::time::Instant::now();
    assert!(read_answer(&mut idle, &mut Vec::new()).await.is_none());
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
}

fn with_length_only(length: usize, partial: &[u8]) -> Vec<u8> {
    let mut out = format!("POST /api/verify/assertion HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nauthorization: Bearer backend-token\r\ncontent-length: {length}\r\n\r\n").into_bytes();
    out.extend_from_slice(partial);
    out
}

#[tokio::test]
async fn shutdown_closes_idle_connections_and_stops_accepting() {
    let mut s = start(Timeouts::default()).await;
    let mut idle = TcpStream::connect(s.verify).await.unwrap();
    // The connection is served before the shutdown.
    idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    assert_eq!(read_answer(&mut idle, &mut rest).await.unwrap().status, 200);
    s.stop.take().unwrap().send(()).unwrap();
    let finished = tokio::time::timeout(Duration::from_secs(5), &mut s.verify_task)
        .await
        .expect("the listener did not stop within 5 s");
    finished.unwrap().unwrap();
    assert_closed(&mut idle).await;
    assert!(
        TcpStream::connect(s.verify).await.is_err(),
        "still accepting after shutdown"
    );
}
