//! The local HTTP bridge over real sockets: who may call (Host, Origin, pairing), CORS
//! preflights, body limits and timeouts, cancellation, and ceremonies whose clientDataJSON
//! names the Origin header whatever the body says.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Counting, PIN, PinEntry, authenticator};
use passgate_bridge::channel::ChannelRouter;
use passgate_bridge::local_http::{Config, LocalBridge};
use passgate_bridge::{Bridge, InProcess, b64};
use serde_json::{Value, json};

const ORIGIN: &str = "http://localhost:8080";
const OTHER_ALLOWED: &str = "http://app.localhost:3000";

struct Server {
    addr: SocketAddr,
    bridge: LocalBridge,
    transport: Counting,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn start(configure: impl FnOnce(&mut Config), stall: bool) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut transport = Counting::new(InProcess::new(authenticator(dir.path())));
    let setup = Bridge::new(Box::new(transport.clone()), Box::new(PinEntry::with(PIN)));
    setup.set_pin(PIN).unwrap();
    transport.stall = stall;
    let bridge = Arc::new(Bridge::new(
        Box::new(transport.clone()),
        Box::new(PinEntry::with(PIN)),
    ));
    let mut config = Config::new(vec![ORIGIN.into(), format!("{OTHER_ALLOWED}/")]);
    configure(&mut config);
    let local = LocalBridge::new(Arc::new(ChannelRouter::webauthn(bridge)), config).unwrap();
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
    Server {
        addr: addr.recv().unwrap(),
        bridge: local,
        transport,
        stop: Some(stop),
        thread: Some(thread),
        _dir: dir,
    }
}

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: HashMap<String, String>,
    body: Value,
}

/// Sends raw bytes and reads one response.
fn raw(addr: SocketAddr, request: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(request).unwrap();
    read_response(&mut stream)
}

/// Reads one response: the head, then Content-Length bytes of body.
fn read_response(stream: &mut TcpStream) -> Reply {
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse::<usize>().unwrap());
            if bytes.len() >= end + 4 + length {
                break;
            }
        }
        let n = stream.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "the connection closed mid-response: {:?}",
            String::from_utf8_lossy(&bytes)
        );
        bytes.extend_from_slice(&buf[..n]);
    }
    parse(&bytes)
}

fn parse(bytes: &[u8]) -> Reply {
    let text = String::from_utf8_lossy(bytes);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let body = serde_json::from_str(body).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
    }
}

fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Reply {
    let mut text = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n",
        addr.port()
    );
    for (k, v) in headers {
        text.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        text.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    text.push_str("\r\n");
    if let Some(b) = body {
        text.push_str(b);
    }
    raw(addr, text.as_bytes())
}

fn post(addr: SocketAddr, path: &str, origin: &str, token: Option<&str>, body: &Value) -> Reply {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Origin", origin), ("Content-Type", "application/json")];
    if let Some(b) = &bearer {
        headers.push(("Authorization", b));
    }
    request(addr, "POST", path, &headers, Some(&body.to_string()))
}

fn pair(server: &Server, origin: &str) -> String {
    let code = server.bridge.pairing_code();
    let r = post(
        server.addr,
        "/v1/pair",
        origin,
        None,
        &json!({"code": code.as_str()}),
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["origin"], origin);
    r.body["token"].as_str().unwrap().to_owned()
}

fn creation(user: &str) -> Value {
    json!({
        "rp": {"id": "localhost", "name": "Demo"},
        "user": {"id": b64::encode(user.as_bytes()), "name": user, "displayName": user},
        "challenge": b64::encode(&[5u8; 32]),
        "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
        "authenticatorSelection": {"residentKey": "required", "userVerification": "required"},
    })
}

fn client_data(credential: &Value) -> Value {
    serde_json::from_slice(
        &b64::decode(credential["response"]["clientDataJSON"].as_str().unwrap()).unwrap(),
    )
    .unwrap()
}

#[test]
fn preflights_are_answered_exactly_for_allowed_origins() {
    let server = start(|_| {}, false);
    let ok = request(
        server.addr,
        "OPTIONS",
        "/v1/message",
        &[
            ("Origin", ORIGIN),
            ("Access-Control-Request-Method", "POST"),
            (
                "Access-Control-Request-Headers",
                "authorization,content-type",
            ),
            ("Access-Control-Request-Private-Network", "true"),
        ],
        None,
    );
    assert_eq!(ok.status, 204, "{ok:?}");
    assert_eq!(ok.headers["access-control-allow-origin"], ORIGIN);
    assert_eq!(ok.headers["access-control-allow-methods"], "POST");
    assert_eq!(
        ok.headers["access-control-allow-headers"],
        "authorization, content-type"
    );
    assert_eq!(ok.headers["access-control-max-age"], "600");
    assert_eq!(ok.headers["access-control-allow-private-network"], "true");
    assert_eq!(ok.headers["vary"], "Origin");
    assert!(!ok.headers.contains_key("access-control-allow-credentials"));

    for (origin, method, headers, code) in [
        (
            "http://localhost:9999",
            "POST",
            "content-type",
            "origin_not_allowed",
        ),
        (
            "https://evil.example",
            "POST",
            "content-type",
            "origin_not_allowed",
        ),
        ("null", "POST", "content-type", "origin_not_allowed"),
        (ORIGIN, "PUT", "content-type", "preflight_refused"),
        (
            ORIGIN,
            "POST",
            "content-type, x-forged-origin",
            "preflight_refused",
        ),
    ] {
        let r = request(
            server.addr,
            "OPTIONS",
            "/v1/message",
            &[
                ("Origin", origin),
                ("Access-Control-Request-Method", method),
                ("Access-Control-Request-Headers", headers),
            ],
            None,
        );
        assert_eq!(r.status, 403, "{origin} {method} {headers}: {r:?}");
        assert_eq!(r.body["error"]["code"], code);
        assert!(
            !r.headers.contains_key("access-control-allow-methods"),
            "{r:?}"
        );
        if code == "origin_not_allowed" {
            assert!(
                !r.headers.contains_key("access-control-allow-origin"),
                "{r:?}"
            );
        }
    }
    // The other configured origin (configured with a trailing slash) is answered as browsers
    // send it.
    let other = request(
        server.addr,
        "OPTIONS",
        "/v1/pair",
        &[
            ("Origin", OTHER_ALLOWED),
            ("Access-Control-Request-Method", "POST"),
        ],
        None,
    );
    assert_eq!(other.status, 204);
    assert_eq!(other.headers["access-control-allow-origin"], OTHER_ALLOWED);
}

#[test]
fn only_paired_pages_of_allowed_origins_reach_the_authenticator() {
    let server = start(|c| c.pairing_free_tries = 3, false);
    let isuvpaa = json!({"type": "isUvpaa", "requestId": 1});
    let addr = server.addr;
    let commands_before = server.transport.commands().len();

    // No Origin (not a page), another origin, a Host that is not this server.
    let r = request(
        addr,
        "POST",
        "/v1/message",
        &[("Content-Type", "application/json")],
        Some("{}"),
    );
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (403, Some("origin_required"))
    );
    let r = post(addr, "/v1/message", "http://localhost:9999", None, &isuvpaa);
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (403, Some("origin_not_allowed"))
    );
    assert!(!r.headers.contains_key("access-control-allow-origin"));
    let rebinding = raw(
        addr,
        format!("POST /v1/pair HTTP/1.1\r\nHost: evil.example:{}\r\nOrigin: {ORIGIN}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}", addr.port()).as_bytes(),
    );
    assert_eq!(
        (rebinding.status, rebinding.body["error"]["code"].as_str()),
        (403, Some("host_not_allowed"))
    );

    // Allowed origin, but not paired / a made-up token.
    let r = post(addr, "/v1/message", ORIGIN, None, &isuvpaa);
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (401, Some("pairing_required"))
    );
    assert_eq!(r.headers["access-control-allow-origin"], ORIGIN);
    let r = post(
        addr,
        "/v1/message",
        ORIGIN,
        Some(&b64::encode(&[0u8; 32])),
        &isuvpaa,
    );
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (401, Some("pairing_stale"))
    );

    // Pairing: wrong code counted, right code (typed loosely) gives a token for this origin.
    let r = post(
        addr,
        "/v1/pair",
        ORIGIN,
        None,
        &json!({"code": "0000-0000-0000"}),
    );
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (401, Some("pairing_code_wrong"))
    );
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("2 more tries")
    );
    let shown = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let record = Arc::clone(&shown);
    server
        .bridge
        .on_new_code(move |code| record.lock().unwrap().push(code.to_owned()));
    let used = server.bridge.pairing_code();
    let loose = server
        .bridge
        .pairing_code()
        .to_lowercase()
        .replace('-', " ");
    let r = post(addr, "/v1/pair", ORIGIN, None, &json!({"code": loose}));
    assert_eq!(r.status, 200, "{r:?}");
    let token = r.body["token"].as_str().unwrap().to_owned();
    assert_eq!(b64::decode(&token).unwrap().len(), 32);
    let r = post(addr, "/v1/message", ORIGIN, Some(&token), &isuvpaa);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, json!({"requestId": 1, "ok": true, "result": true}));

    // The code was used once: it is replaced, and the new one shown.
    let next = server.bridge.pairing_code();
    assert_ne!(*next, *used);
    assert_eq!(*shown.lock().unwrap(), vec![next.to_string()]);
    let r = post(
        addr,
        "/v1/pair",
        OTHER_ALLOWED,
        None,
        &json!({"code": used.as_str()}),
    );
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (401, Some("pairing_code_wrong")),
        "a used code pairs nobody"
    );

    // The token is bound to the origin that paired: another allowed origin cannot use it.
    let r = post(addr, "/v1/message", OTHER_ALLOWED, Some(&token), &isuvpaa);
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (401, Some("pairing_invalid"))
    );

    // Wrong codes make that origin wait, even with the right code; other origins are not held
    // up (one wrong try above, two more free, then a wait).
    for _ in 0..2 {
        let r = post(
            addr,
            "/v1/pair",
            OTHER_ALLOWED,
            None,
            &json!({"code": "WRONG-WRONG"}),
        );
        assert_eq!(r.status, 401);
    }
    let code = server.bridge.pairing_code();
    let r = post(
        addr,
        "/v1/pair",
        OTHER_ALLOWED,
        None,
        &json!({"code": code.as_str()}),
    );
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (429, Some("pairing_backoff"))
    );
    assert_eq!(r.headers["retry-after"], "1");
    let r = post(
        addr,
        "/v1/pair",
        ORIGIN,
        None,
        &json!({"code": code.as_str()}),
    );
    assert_eq!(r.status, 200, "another origin pairs meanwhile: {r:?}");
    let second_token = r.body["token"].as_str().unwrap().to_owned();
    assert_ne!(second_token, token);
    // Once the wait is over, the origin may try again.
    std::thread::sleep(Duration::from_millis(1100));
    let code = server.bridge.pairing_code();
    let r = post(
        addr,
        "/v1/pair",
        OTHER_ALLOWED,
        None,
        &json!({"code": code.as_str()}),
    );
    assert_eq!(r.status, 200, "{r:?}");
    // An existing pairing keeps working; unpairing ends it.
    assert_eq!(
        post(addr, "/v1/message", ORIGIN, Some(&token), &isuvpaa).status,
        200
    );
    let r = post(addr, "/v1/unpair", ORIGIN, Some(&token), &json!({}));
    assert_eq!(r.body, json!({"unpaired": true}));
    let r = post(addr, "/v1/message", ORIGIN, Some(&token), &isuvpaa);
    assert_eq!(r.status, 401);
    // Refused requests never reached the authenticator beyond the isUvpaa getInfos.
    assert!(
        server.transport.commands()[commands_before..]
            .iter()
            .all(|&c| c == 0x04)
    );
}

#[test]
fn ceremonies_name_the_origin_header_whatever_the_body_says() {
    let server = start(|_| {}, false);
    let token = pair(&server, ORIGIN);
    let forged = json!({
        "type": "create", "requestId": "c1", "options": creation("ada"),
        "origin": "https://evil.example", "topOrigin": "https://evil.example",
    });
    let r = post(server.addr, "/v1/message", ORIGIN, Some(&token), &forged);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["ok"], true, "{r:?}");
    assert_eq!(r.body["requestId"], "c1");
    let credential = &r.body["result"];
    let data = client_data(credential);
    assert_eq!(data["origin"], ORIGIN);
    assert_eq!(data["crossOrigin"], false);
    assert!(data.get("topOrigin").is_none());
    assert_eq!(data["type"], "webauthn.create");
    let flags = b64::decode(
        credential["response"]["authenticatorData"]
            .as_str()
            .unwrap(),
    )
    .unwrap()[32];
    assert_eq!(flags & 0x45, 0x45, "UP, UV, AT");

    let get = json!({
        "type": "get", "requestId": 2, "origin": "https://evil.example",
        "options": {"challenge": b64::encode(&[6u8; 32]), "rpId": "localhost", "userVerification": "required",
                    "allowCredentials": [{"type": "public-key", "id": credential["id"]}]},
    });
    let r = post(server.addr, "/v1/message", ORIGIN, Some(&token), &get);
    assert_eq!(r.body["ok"], true, "{r:?}");
    assert_eq!(client_data(&r.body["result"])["origin"], ORIGIN);
    assert_eq!(r.body["result"]["id"], credential["id"]);

    // A WebAuthn error is a reply, not an HTTP error.
    let mut excluded = creation("ada");
    excluded["excludeCredentials"] = json!([{"type": "public-key", "id": credential["id"]}]);
    let r = post(
        server.addr,
        "/v1/message",
        ORIGIN,
        Some(&token),
        &json!({"type": "create", "requestId": 3, "options": excluded}),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body["ok"], false);
    assert_eq!(r.body["error"]["name"], "InvalidStateError");
    let r = post(
        server.addr,
        "/v1/message",
        ORIGIN,
        Some(&token),
        &json!({"type": "vault.open", "requestId": 4}),
    );
    assert_eq!(r.body["error"]["name"], "NotSupportedError");
    let r = post(
        server.addr,
        "/v1/message",
        ORIGIN,
        Some(&token),
        &json!({"type": "getClientCapabilities", "requestId": 5}),
    );
    assert_eq!(
        r.body["result"]["userVerifyingPlatformAuthenticator"], true,
        "{r:?}"
    );
    assert_eq!(r.body["result"]["extension:prf"], true);
}

#[test]
fn malformed_oversized_and_slow_requests_get_precise_errors() {
    let server = start(
        |c| {
            c.max_body_bytes = 1024;
            c.header_timeout = Duration::from_secs(1);
            c.body_timeout = Duration::from_secs(1);
        },
        false,
    );
    let addr = server.addr;
    let token = pair(&server, ORIGIN);
    let bearer = format!("Bearer {token}");
    let r = request(
        addr,
        "POST",
        "/v1/message",
        &[
            ("Origin", ORIGIN),
            ("Authorization", &bearer),
            ("Content-Type", "text/plain"),
        ],
        Some("{}"),
    );
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (415, Some("unsupported_media_type"))
    );
    let r = request(
        addr,
        "POST",
        "/v1/message",
        &[
            ("Origin", ORIGIN),
            ("Authorization", &bearer),
            ("Content-Type", "application/json"),
        ],
        Some("{nope"),
    );
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (400, Some("invalid_json"))
    );
    let big = format!("{{\"type\":\"get\",\"pad\":\"{}\"}}", "x".repeat(2000));
    let r = request(
        addr,
        "POST",
        "/v1/message",
        &[
            ("Origin", ORIGIN),
            ("Authorization", &bearer),
            ("Content-Type", "application/json"),
        ],
        Some(&big),
    );
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (413, Some("body_too_large"))
    );
    // Chunked, with no length up front: the limit still holds.
    let chunked = raw(
        addr,
        format!("POST /v1/message HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nOrigin: {ORIGIN}\r\nAuthorization: {bearer}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n7d0\r\n{}\r\n0\r\n\r\n", addr.port(), "x".repeat(2000)).as_bytes(),
    );
    assert_eq!(
        (chunked.status, chunked.body["error"]["code"].as_str()),
        (413, Some("body_too_large"))
    );
    let r = request(addr, "GET", "/v1/message", &[("Origin", ORIGIN)], None);
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
    assert_eq!(r.headers["allow"], "POST, OPTIONS");
    let r = request(
        addr,
        "POST",
        "/v1/elsewhere",
        &[("Origin", ORIGIN), ("Content-Type", "application/json")],
        Some("{}"),
    );
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let r = post(addr, "/v1/message", ORIGIN, Some(&token), &json!([1, 2]));
    assert_eq!(r.status, 200);
    assert_eq!(r.body["error"]["name"], "TypeError");

    // Headers that never finish: the connection is closed after the header timeout.
    let started = Instant::now();
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    slow.write_all(b"POST /v1/message HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .unwrap();
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // A body that never finishes: 408.
    let started = Instant::now();
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    slow.write_all(format!("POST /v1/message HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nOrigin: {ORIGIN}\r\nAuthorization: {bearer}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"type\":", addr.port()).as_bytes()).unwrap();
    let r = read_response(&mut slow);
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (408, Some("body_timeout"))
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_cancel_message_or_a_vanished_client_stops_the_ceremony() {
    let server = start(|_| {}, true);
    let token = pair(&server, ORIGIN);
    let addr = server.addr;
    let options = json!({"challenge": b64::encode(&[6u8; 32]), "rpId": "localhost", "userVerification": "discouraged"});

    // A cancel message for the running request: it answers AbortError.
    let waiting = {
        let token = token.clone();
        let options = options.clone();
        std::thread::spawn(move || {
            post(
                addr,
                "/v1/message",
                ORIGIN,
                Some(&token),
                &json!({"type": "get", "requestId": "g1", "options": options}),
            )
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let c = post(
        addr,
        "/v1/message",
        ORIGIN,
        Some(&token),
        &json!({"type": "cancel", "requestId": "c1", "target": "g1"}),
    );
    assert_eq!(
        c.body,
        json!({"requestId": "c1", "ok": true, "result": {"cancelled": true}})
    );
    let r = waiting.join().unwrap();
    assert_eq!(r.body["requestId"], "g1");
    assert_eq!(r.body["error"]["name"], "AbortError", "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(3));

    // Another pairing cannot cancel it.
    let other = pair(&server, ORIGIN);
    let waiting = {
        let token = token.clone();
        let options = options.clone();
        std::thread::spawn(move || {
            post(
                addr,
                "/v1/message",
                ORIGIN,
                Some(&token),
                &json!({"type": "get", "requestId": "g2", "options": options}),
            )
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let c = post(
        addr,
        "/v1/message",
        ORIGIN,
        Some(&other),
        &json!({"type": "cancel", "requestId": "c2", "target": "g2"}),
    );
    assert_eq!(c.body["result"]["cancelled"], false);
    let c = post(
        addr,
        "/v1/message",
        ORIGIN,
        Some(&token),
        &json!({"type": "cancel", "requestId": "c3", "target": "g2"}),
    );
    assert_eq!(c.body["result"]["cancelled"], true);
    assert_eq!(waiting.join().unwrap().body["error"]["name"], "AbortError");

    // The client goes away mid-ceremony: the ceremony is cancelled (the next one does not
    // wait behind it for the stalled authenticator's 10 s).
    let body = json!({"type": "get", "requestId": "g3", "options": options}).to_string();
    let mut gone = TcpStream::connect(addr).unwrap();
    gone.write_all(format!("POST /v1/message HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nOrigin: {ORIGIN}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", addr.port(), body.len()).as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    drop(gone);
    let started = Instant::now();
    let r = post(
        addr,
        "/v1/message",
        ORIGIN,
        Some(&token),
        &json!({"type": "isUvpaa", "requestId": "u"}),
    );
    assert_eq!(r.body["result"], true);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn it_listens_on_loopback_only() {
    let local = LocalBridge::new(
        Arc::new(ChannelRouter::new()),
        Config::new(vec![ORIGIN.into()]),
    )
    .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
        let e = local
            .clone()
            .serve(listener, std::future::pending())
            .await
            .unwrap_err();
        assert!(e.to_string().contains("loopback"), "{e}");
    });
    assert!(
        LocalBridge::new(
            Arc::new(ChannelRouter::new()),
            Config::new(vec!["localhost:8080".into()])
        )
        .is_err()
    );
    // A native app can pair its own page without a code.
    let token = local.issue_token(ORIGIN).unwrap();
    assert_eq!(b64::decode(&token).unwrap().len(), 32);
    assert!(local.issue_token("http://localhost:1").is_err());
}

#[test]
fn armed_autofill_requests_do_not_hold_up_ceremonies_and_end_with_their_page() {
    let server = start(|c| c.max_in_flight = 2, false);
    let token = pair(&server, ORIGIN);
    let addr = server.addr;
    let options = json!({"challenge": b64::encode(&[6u8; 32]), "rpId": "localhost"});
    // Three pages of the pairing arm passkey autofill and wait: more than max_in_flight.
    let mut waits = Vec::new();
    for n in 0..3 {
        let armed = post(
            addr,
            "/v1/message",
            ORIGIN,
            Some(&token),
            &json!({"type": "get", "requestId": format!("r{n}"), "mediation": "conditional",
                    "documentId": format!("tab-{n}"), "options": options}),
        );
        assert_eq!(
            armed.body,
            json!({"requestId": format!("r{n}"), "ok": true, "result": {"pending": true}})
        );
        if n > 0 {
            let token = token.clone();
            waits.push(std::thread::spawn(move || {
                post(
                    addr,
                    "/v1/message",
                    ORIGIN,
                    Some(&token),
                    &json!({"type": "wait", "requestId": format!("w{n}"), "target": format!("r{n}")}),
                )
            }));
        }
    }
    // The first page's wait goes away with its page (a reload, a closed tab).
    let body = json!({"type": "wait", "requestId": "w0", "target": "r0"}).to_string();
    let mut gone = TcpStream::connect(addr).unwrap();
    gone.write_all(format!("POST /v1/message HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nOrigin: {ORIGIN}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", addr.port(), body.len()).as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    drop(gone);

    // Other requests are answered at once, not "busy".
    for n in 0..3 {
        let r = post(
            addr,
            "/v1/message",
            ORIGIN,
            Some(&token),
            &json!({"type": "isUvpaa", "requestId": format!("u{n}")}),
        );
        assert_eq!((r.status, &r.body["result"]), (200, &json!(true)), "{r:?}");
    }
    // The vanished page's request ended with it: a wait for it finds nothing.
    std::thread::sleep(Duration::from_millis(1000));
    let ended = post(
        addr,
        "/v1/message",
        ORIGIN,
        Some(&token),
        &json!({"type": "wait", "requestId": "w0-again", "target": "r0"}),
    );
    assert_eq!(
        ended.body["error"]["name"], "InvalidStateError",
        "{ended:?}"
    );

    // Unpairing ends the others.
    let r = post(addr, "/v1/unpair", ORIGIN, Some(&token), &json!({}));
    assert_eq!(r.status, 200);
    for wait in waits {
        let r = wait.join().unwrap();
        assert_eq!(r.body["error"]["name"], "AbortError", "{r:?}");
    }
}

#[test]
fn idle_connections_are_closed_and_connections_are_capped() {
    let server = start(
        |c| {
            c.header_timeout = Duration::from_millis(500);
            c.max_connections = 2;
        },
        false,
    );
    let addr = server.addr;
    let closed_within = |stream: &mut TcpStream, limit: Duration| {
        stream.set_read_timeout(Some(limit)).unwrap();
        let started = Instant::now();
        let n = stream.read(&mut [0u8; 1]).unwrap_or(1);
        (n == 0).then(|| started.elapsed())
    };
    // Two idle connections hold both slots; a third is closed at once.
    let mut a = TcpStream::connect(addr).unwrap();
    let mut b = TcpStream::connect(addr).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let mut c = TcpStream::connect(addr).unwrap();
    let third = closed_within(&mut c, Duration::from_millis(400));
    assert!(third.is_some(), "the third connection is closed at once");
    // Idle connections are closed after the header timeout, freeing their slots.
    let idle = closed_within(&mut a, Duration::from_secs(3)).expect("closed");
    assert!(idle >= Duration::from_millis(200), "{idle:?}");
    assert!(closed_within(&mut b, Duration::from_secs(3)).is_some());
    std::thread::sleep(Duration::from_millis(100));
    let r = post(
        addr,
        "/v1/message",
        ORIGIN,
        None,
        &json!({"type": "isUvpaa", "requestId": 1}),
    );
    assert_eq!(r.status, 401, "served again once the slots are free");
}
