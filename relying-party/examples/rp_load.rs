//! Load generator for `passgate rp` over loopback, used by `relying-party/loadtest/run.py`.
//!
//! - `rp_load fixture ORIGIN RP_ID`: prints one `POST /api/verify/assertion` request body (a
//!   fresh P-256 credential and an assertion with counter 0, so it verifies every time): the
//!   same body goes to the SimpleWebAuthn peer and to py_webauthn.
//! - `rp_load library FIXTURE_FILE SECONDS`: the library call on that body's assertion in a
//!   loop, for the "HTTP per worker core vs library" ratio measured beside each HTTP run;
//!   prints `{"per_cpu_sec", ...}`.
//! - `rp_load ceremonies URL ORIGIN CONNECTIONS SECONDS`: registers one account per connection,
//!   then runs full sign-in ceremonies (options → sign → verify, with the ceremony stored and
//!   taken from the database, the counter updated and a session created) on keep-alive
//!   connections; prints `{"ceremonies_per_sec", "p50_ms", "p99_ms", "errors"}`.
//!
//! The HTTP client is a minimal HTTP/1.1 keep-alive client on tokio: it measures the server,
//! not a client library.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    missing_docs
)]

use passgate_testkit::soft_credential as common;

use std::time::{Duration, Instant};

use common::{SoftCredential, Tamper};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

struct Conn {
    stream: BufReader<TcpStream>,
    host: String,
    cookie: Option<String>,
}

impl Conn {
    async fn open(addr: &str) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Self {
            stream: BufReader::new(stream),
            host: addr.to_owned(),
            cookie: None,
        }
    }

    async fn post(&mut self, path: &str, body: &Value) -> (u16, Value) {
        let body = serde_json::to_vec(body).unwrap();
        let cookie = self
            .cookie
            .as_ref()
            .map(|c| format!("Cookie: {c}\r\n"))
            .unwrap_or_default();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n{cookie}Content-Length: {}\r\n\r\n",
            self.host,
            body.len()
        );
        let s = self.stream.get_mut();
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(&body).await.unwrap();
        let mut line = String::new();
        self.stream.read_line(&mut line).await.unwrap();
        let status: u16 = line.split(' ').nth(1).unwrap().parse().unwrap();
        let mut length = 0usize;
        loop {
            line.clear();
            self.stream.read_line(&mut line).await.unwrap();
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let (k, v) = l.split_once(':').unwrap();
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap();
            } else if k.eq_ignore_ascii_case("set-cookie") {
                self.cookie = v.trim().split(';').next().map(str::to_owned);
            }
        }
        let mut buf = vec![0u8; length];
        self.stream.read_exact(&mut buf).await.unwrap();
        (status, serde_json::from_slice(&buf).unwrap_or(Value::Null))
    }
}

fn fixture(origin: &str, rp_id: &str) {
    // Counter 0: the same body verifies every time.
    let tamper = Tamper {
        counter: Some(0),
        ..Tamper::default()
    };
    println!("{}", common::backend_verify_request(origin, rp_id, &tamper));
}

async fn one_client(
    addr: String,
    origin: String,
    index: usize,
    deadline: Instant,
) -> (Vec<Duration>, u64) {
    let mut conn = Conn::open(&addr).await;
    let username = format!("load-{}-{index}", std::process::id());
    let (status, options) = conn
        .post("/api/register/options", &json!({ "username": username }))
        .await;
    assert_eq!(status, 200, "{options}");
    let (mut cred, response) = SoftCredential::register(&options, &origin, &Tamper::default());
    let (status, done) = conn.post("/api/register/verify", &response).await;
    assert_eq!(status, 200, "{done}");
    conn.cookie = None;
    let mut latencies = Vec::new();
    let mut errors = 0u64;
    while Instant::now() < deadline {
        let start = Instant::now();
        let (status, options) = conn
            .post("/api/login/options", &json!({ "username": username }))
            .await;
        if status != 200 {
            errors += 1;
            continue;
        }
        let assertion = cred.assert(&options, &origin, &Tamper::default());
        let (status, _) = conn.post("/api/login/verify", &assertion).await;
        conn.cookie = None;
        if status == 200 {
            latencies.push(start.elapsed());
        } else {
            errors += 1;
        }
    }
    (latencies, errors)
}

fn percentile(sorted: &[Duration], pct: usize) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (sorted.len() - 1) * pct / 100;
    sorted[rank].as_secs_f64() * 1000.0
}

async fn ceremonies(url: &str, origin: &str, connections: usize, seconds: u64) {
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..connections {
        tasks.push(tokio::spawn(one_client(
            addr.clone(),
            origin.to_owned(),
            i,
            deadline,
        )));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        all.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    println!(
        "{}",
        json!({
            "ceremonies": all.len(),
            "ceremonies_per_sec": u32::try_from(all.len()).map(f64::from).unwrap_or(f64::MAX) / elapsed,
            "p50_ms": percentile(&all, 50),
            "p99_ms": percentile(&all, 99),
            "errors": errors,
        })
    );
}

/// The library figure, measured beside the HTTP runs: `verify_assertion_json` (JSON in, verdict
/// out, as criterion's `passgate_verify_assertion_json`) on the fixture's assertion, in a loop
/// on this process's core for `seconds`. Prints verifications per CPU-second of this process.
fn library(fixture_path: &str, seconds: f64) {
    use passgate_relying_party::cose::CredentialPublicKey;
    use passgate_relying_party::verify::{
        AssertionExpectation, CounterPolicy, StoredCredential, verify_assertion_json,
    };
    let body: Value = serde_json::from_slice(&std::fs::read(fixture_path).unwrap()).unwrap();
    let unb64 = |v: &Value| passgate_relying_party::b64::decode(v.as_str().unwrap()).unwrap();
    let stored = StoredCredential {
        id: unb64(&body["credential"]["id"]),
        public_key: CredentialPublicKey::from_cose(&unb64(&body["credential"]["publicKey"]))
            .unwrap(),
        sign_count: 0,
        user_handle: unb64(&body["credential"]["userHandle"]),
        backup_eligible: None,
    };
    let response = serde_json::to_vec(&body["response"]).unwrap();
    let challenge = unb64(&body["expectedChallenge"]);
    let origins: Vec<String> = serde_json::from_value(body["expectedOrigins"].clone()).unwrap();
    let expect = AssertionExpectation {
        challenge: &challenge,
        origins: &origins,
        rp_id: body["expectedRpId"].as_str().unwrap(),
        require_user_verification: true,
        allow_cross_origin: false,
        counter_policy: CounterPolicy::Reject,
    };
    let cpu = || {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        let fields: Vec<u32> = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .skip(11)
            .take(2)
            .map(|f| f.parse().unwrap())
            .collect();
        // Clock ticks are 1/100 s on Linux.
        f64::from(fields[0] + fields[1]) / 100.0
    };
    for _ in 0..500 {
        assert!(
            verify_assertion_json(&stored, &response, &expect)
                .unwrap()
                .user_verified
        );
    }
    let (cpu0, start) = (cpu(), Instant::now());
    let mut n = 0u32;
    while start.elapsed().as_secs_f64() < seconds {
        for _ in 0..100 {
            std::hint::black_box(verify_assertion_json(&stored, &response, &expect).unwrap());
        }
        n += 100;
    }
    let (cpu_sec, wall_sec) = (cpu() - cpu0, start.elapsed().as_secs_f64());
    println!(
        "{}",
        json!({
            "verifications": n,
            "cpu_sec": cpu_sec,
            "wall_sec": wall_sec,
            "per_cpu_sec": f64::from(n) / cpu_sec,
            "per_sec": f64::from(n) / wall_sec,
        })
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("fixture") => fixture(&args[1], &args[2]),
        Some("library") => library(&args[1], args[2].parse().unwrap()),
        Some("ceremonies") => {
            ceremonies(
                &args[1],
                &args[2],
                args[3].parse().unwrap(),
                args[4].parse().unwrap(),
            )
            .await;
        }
        _ => {
            eprintln!(
                "usage: rp_load fixture ORIGIN RP_ID | rp_load library FIXTURE_FILE SECONDS | rp_load ceremonies URL ORIGIN CONNECTIONS SECONDS"
            );
            std::process::exit(2);
        }
    }
}
