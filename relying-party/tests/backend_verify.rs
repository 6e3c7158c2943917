//! Backend verification (`POST /api/verify/assertion`) on the main port, over real TCP: precise
//! statuses and codes for every body, keep-alive and pipelining with request IDs, many clients
//! at once, `Expect: 100-continue`, and a graceful shutdown that closes idle connections.

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
use passgate_relying_party::{RpConfig, build_state};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

const ORIGIN: &str = "http://localhost:8080";
const TOKEN: &str = "backend-token";

struct Server {
    main: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

async fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let config = RpConfig {
        database: format!("sqlite://{}", dir.path().join("rp.sqlite3").display()),
        rate_limit_per_sec: 0,
        api_tokens: vec![TOKEN.into()],
        body_limit_bytes: 8 * 1024,
        ..RpConfig::default()
    };
    let state = build_state(config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let main = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(passgate_relying_party::server::serve(
        listener,
        state,
        async {
            let _ = stopped.await;
        },
    ));
    Server {
        main,
        stop: Some(stop),
        task,
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
async fn every_body_gets_its_precise_status_and_code() {
    let s = start().await;
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
        let answer = exchange(s.main, &request).await;
        assert_eq!(
            answer.header("content-type"),
            Some("application/json"),
            "{what}"
        );
        statuses.push((*what, answer.status, answer.json()["error"]["code"].clone()));
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
    let s = start().await;
    let body = serde_json::to_vec(&verify_body(&Tamper::default())).unwrap();
    let mut stream = TcpStream::connect(s.main).await.unwrap();
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
    let mut old = TcpStream::connect(s.main).await.unwrap();
    old.write_all(b"GET /healthz HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let a = read_answer(&mut old, &mut Vec::new()).await.unwrap();
    assert_eq!(a.status, 200);
    assert_closed(&mut old).await;
}

/// The endpoint holds an answer back until the other connections that are ready have run, so
/// that answers go out together. With many clients at once on a multi-thread runtime, every
/// client still gets its own answers, in order, and none is held back for long.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_clients_at_once_each_get_their_own_answers_in_order() {
    let s = start().await;
    let valid = serde_json::to_vec(&verify_body(&Tamper::default())).unwrap();
    let forged = serde_json::to_vec(&verify_body(&Tamper {
        break_signature: true,
        ..Tamper::default()
    }))
    .unwrap();
    const CLIENTS: usize = 40;
    const REQUESTS: usize = 5;
    for (port, addr) in [("main port", s.main)] {
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
    let s = start().await;
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
    let mut stream = TcpStream::connect(s.main).await.unwrap();
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
async fn shutdown_closes_idle_connections_and_stops_accepting() {
    let mut s = start().await;
    let mut idle = TcpStream::connect(s.main).await.unwrap();
    // The connection is served before the shutdown.
    idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    assert_eq!(read_answer(&mut idle, &mut rest).await.unwrap().status, 200);
    s.stop.take().unwrap().send(()).unwrap();
    let finished = tokio::time::timeout(Duration::from_secs(5), &mut s.task)
        .await
        .expect("the server did not stop within 5 s");
    finished.unwrap().unwrap();
    assert_closed(&mut idle).await;
    assert!(
        TcpStream::connect(s.main).await.is_err(),
        "still accepting after shutdown"
    );
}
