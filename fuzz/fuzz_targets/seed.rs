//! Not a fuzz target: the seeding step. It writes `corpus/TARGET/` for every target from what
//! the test suites send, then exits (`cargo xtask fuzz --seed` runs it, then `cargo fuzz cmin`
//! keeps the inputs that add coverage). It is built by `cargo fuzz build` with the targets,
//! so seeding costs no second build of the tree:
//!
//! - the CTAP 2.1 conformance suite (`passgate-ctap-tests`, all checks, resets allowed) runs
//!   against the authenticator over TCP through a recording proxy, and python-fido2's traffic
//!   in the python interop tests is read from their recording (`$PASSGATE_CTAPHID_RECORD`,
//!   written by `ctap-tests/python/helpers.py` when `cargo xtask fuzz --seed` runs them): the
//!   report sequences seed `ctaphid_reports`, the CBOR requests `ctap_command`, the
//!   authenticator data and COSE keys in the answers `authenticator_data` and `cose_key`, and
//!   the state files the conformance suite left (decrypted) `authenticator_state`;
//! - testkit's software passkey (what the relying-party tests sign with) gives the WebAuthn
//!   JSON, clientDataJSON and the verify API body; the bridge tests' messages seed the native
//!   messaging and local bridge targets; app-api's vault sealing and SOTER's forms the rest.
//!
//! The output directory is `$PASSGATE_FUZZ_SEEDS` (default `corpus`).
#![no_main]

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use passgate_authenticator::ctaphid::{CMD_CBOR, MessageAssembler, PACKET_SIZE, Packet};
use passgate_authenticator::transport::tcp::TcpServer;
use passgate_ctap_tests::{RunOptions, Target};
use passgate_proto::AuthenticatorData;
use passgate_proto::ctap::{Response as _, get_assertion, make_credential};
use passgate_testkit::soft_credential::{SoftCredential, Tamper, b64, backend_verify_request};
use serde_json::json;

/// Reports per `ctaphid_reports` seed (a long session is cut into several seeds).
const REPORTS_PER_SEED: usize = 96;

struct Corpus {
    root: PathBuf,
    written: usize,
}

impl Corpus {
    fn add(&mut self, target: &str, bytes: &[u8]) {
        let dir = self.root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        let mut hasher = DefaultHasher::new();
        bytes.hash(&mut hasher);
        let path = dir.join(format!("seed-{:016x}", hasher.finish()));
        if !path.exists() {
            std::fs::write(path, bytes).unwrap();
            self.written += 1;
        }
    }

    fn add_json(&mut self, target: &str, selector: Option<u8>, value: &serde_json::Value) {
        let mut bytes: Vec<u8> = selector.into_iter().collect();
        bytes.extend_from_slice(value.to_string().as_bytes());
        self.add(target, &bytes);
    }
}

/// Both directions of one proxied connection, report by report.
#[derive(Default)]
struct Session {
    sent: Vec<Packet>,
    received: Vec<Packet>,
}

fn pump(mut from: TcpStream, mut to: TcpStream, log: Arc<Mutex<Vec<Packet>>>) {
    let mut packet: Packet = [0; PACKET_SIZE];
    while from.read_exact(&mut packet).is_ok() {
        log.lock().unwrap().push(packet);
        if to.write_all(&packet).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}

/// Runs the conformance suite through a recording proxy in front of passgate's authenticator
/// on `state_dir`; returns every connection's reports.
fn record_conformance_suite(state_dir: &Path) -> Vec<Session> {
    let authenticator = passgate_testkit::auto_presence_authenticator(state_dir, 256);
    let server = TcpServer::start(TcpListener::bind("127.0.0.1:0").unwrap(), authenticator)
        .expect("the authenticator serves");
    let upstream = server.local_addr();
    let proxy = TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy_addr = proxy.local_addr().unwrap();
    let logs: Arc<Mutex<Vec<(Arc<Mutex<Vec<Packet>>>, Arc<Mutex<Vec<Packet>>>)>>> = Arc::default();
    {
        let logs = Arc::clone(&logs);
        std::thread::spawn(move || {
            for client in proxy.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let sent = Arc::new(Mutex::new(Vec::new()));
                let received = Arc::new(Mutex::new(Vec::new()));
                logs.lock()
                    .unwrap()
                    .push((Arc::clone(&sent), Arc::clone(&received)));
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || pump(client, server, sent));
                std::thread::spawn(move || pump(s2, c2, received));
            }
        });
    }
    let options = RunOptions {
        presence_auto: true,
        allow_reset: true,
        ..RunOptions::default()
    };
    let mut lines = Vec::new();
    let report =
        passgate_ctap_tests::run(&Target::Tcp(proxy_addr.to_string()), &options, &mut lines);
    eprintln!(
        "seed: conformance suite through the proxy: {} passed, {} failed, {} skipped",
        report.passed, report.failed, report.skipped
    );
    std::thread::sleep(Duration::from_millis(500));
    drop(server);
    logs.lock()
        .unwrap()
        .iter()
        .map(|(sent, received)| Session {
            sent: sent.lock().unwrap().clone(),
            received: received.lock().unwrap().clone(),
        })
        .collect()
}

/// The CBOR messages (command byte + CBOR) in a report sequence.
fn cbor_messages(reports: &[Packet]) -> Vec<Vec<u8>> {
    let mut assembler = MessageAssembler::new();
    reports
        .iter()
        .filter_map(|r| assembler.push(r).ok().flatten())
        .filter(|(_, cmd, _)| *cmd == CMD_CBOR & 0x7f)
        .map(|(_, _, payload)| payload)
        .collect()
}

/// python-fido2's traffic, as the python interop tests recorded it (`N.sent` and
/// `N.received` per connection, 64-byte reports, in `$PASSGATE_CTAPHID_RECORD`; see
/// `ctap-tests/python/helpers.py`).
fn recorded_python_sessions() -> Vec<Session> {
    let Some(dir) = std::env::var_os("PASSGATE_CTAPHID_RECORD") else {
        eprintln!("seed: no python-fido2 recording (PASSGATE_CTAPHID_RECORD unset)");
        return Vec::new();
    };
    let reports = |path: &Path| -> Vec<Packet> {
        std::fs::read(path)
            .unwrap_or_default()
            .chunks_exact(PACKET_SIZE)
            .map(|c| c.try_into().unwrap())
            .collect()
    };
    let mut sessions = Vec::new();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return sessions;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for sent in paths
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "sent"))
    {
        sessions.push(Session {
            sent: reports(sent),
            received: reports(&sent.with_extension("received")),
        });
    }
    eprintln!(
        "seed: {} python-fido2 connections, {} reports sent",
        sessions.len(),
        sessions.iter().map(|s| s.sent.len()).sum::<usize>()
    );
    sessions
}

fn seed_ctap(corpus: &mut Corpus) {
    let dir = passgate_fuzz::scratch_dir("seed-conformance");
    let mut sessions = record_conformance_suite(&dir);
    sessions.extend(recorded_python_sessions());
    for session in &sessions {
        for chunk in session.sent.chunks(REPORTS_PER_SEED) {
            let mut seed = Vec::with_capacity(chunk.len() * (1 + PACKET_SIZE));
            for report in chunk {
                // Connection 0, finish a dispatched request at once, no time passing.
                seed.push(0x04);
                seed.extend_from_slice(report);
            }
            corpus.add("ctaphid_reports", &seed);
        }
        for request in cbor_messages(&session.sent) {
            corpus.add("ctap_command", &request);
        }
        for response in cbor_messages(&session.received) {
            let Some((&0, body)) = response.split_first() else {
                continue;
            };
            let auth_data = make_credential::Response::decode(body)
                .map(|r| r.auth_data)
                .or_else(|_| get_assertion::Response::decode(body).map(|r| r.auth_data));
            let Ok(auth_data) = auth_data else { continue };
            corpus.add("authenticator_data", &auth_data);
            if let Ok(parsed) = AuthenticatorData::parse(&auth_data) {
                if let Some(attested) = parsed.attested_credential_data {
                    corpus.add("cose_key", &attested.public_key_cbor);
                }
            }
        }
    }
    match passgate_authenticator::fuzzing::stored_state_files(&dir) {
        Ok(files) => {
            for (selector, bytes) in files {
                let mut seed = vec![selector];
                seed.extend_from_slice(&bytes);
                corpus.add("authenticator_state", &seed);
            }
        }
        Err(e) => eprintln!("seed: the state files did not read: {e}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn seed_json(corpus: &mut Corpus) {
    let origin = "http://localhost:8080";
    let creation = json!({
        "rp": {"id": "localhost", "name": "passgate"},
        "user": {"id": b64(&[7; 16]), "name": "ada", "displayName": "Ada"},
        "challenge": b64(&[1; 32]),
        "pubKeyCredParams": [{"type": "public-key", "alg": -7}, {"type": "public-key", "alg": -8}],
        "timeout": 60000,
        "excludeCredentials": [{"type": "public-key", "id": b64(&[3; 16]), "transports": ["internal"]}],
        "authenticatorSelection": {"residentKey": "required", "userVerification": "preferred"},
        "attestation": "none",
        "extensions": {"credProps": true, "prf": {"eval": {"first": b64(&[4; 32])}}},
    });
    let request = json!({
        "challenge": b64(&[2; 32]),
        "timeout": 60000,
        "rpId": "localhost",
        "allowCredentials": [{"type": "public-key", "id": b64(&[3; 16])}],
        "userVerification": "required",
        "extensions": {"prf": {"eval": {"first": b64(&[5; 32])}}},
    });
    let (mut credential, registration) =
        SoftCredential::register(&creation, origin, &Tamper::default());
    let assertion = credential.assert(&request, origin, &Tamper::default());
    let verify_body = backend_verify_request(origin, "localhost", &Tamper::default());

    for (selector, value) in [
        (0, &creation),
        (1, &request),
        (2, &registration),
        (3, &assertion),
        (4, &assertion),
    ] {
        corpus.add_json("webauthn_json", Some(selector), value);
    }
    let mut origin_rule = vec![5u8];
    origin_rule.extend_from_slice(b"https://login.example.com\0example.com");
    corpus.add("webauthn_json", &origin_rule);

    let cose = passgate_testkit::soft_credential::unb64(&credential.cose_b64());
    corpus.add("cose_key", &cose);

    for response in [&registration, &assertion] {
        let client_data = passgate_testkit::soft_credential::unb64(
            response["response"]["clientDataJSON"].as_str().unwrap(),
        );
        let mut seed = vec![0u8];
        seed.extend_from_slice(&client_data);
        corpus.add("client_data_json", &seed);
        let auth_data = passgate_testkit::soft_credential::unb64(
            response["response"]["authenticatorData"].as_str().unwrap(),
        );
        corpus.add("authenticator_data", &auth_data);
    }
    let mut writer = vec![0x03u8];
    writer.extend_from_slice(b"challenge\0https://example.com\0https://top.example");
    corpus.add("client_data_json", &writer);

    // The relying party's endpoints, in the order of the target's table.
    let bodies = [
        (0u8, json!({"username": "ada", "displayName": "Ada"})),
        (1, json!({"username": "ada", "credential": registration})),
        (2, json!({"username": "ada"})),
        (3, json!({"credential": assertion})),
        (4, json!({})),
        (5, json!({"credential": assertion})),
        (
            6,
            json!({"action": "transfer", "payload": {"amount": "10.00", "to": "bob"}}),
        ),
        (7, json!({"credential": assertion})),
        (8, json!({"receipt": "e30", "signature": "AA"})),
        (9, verify_body.clone()),
        (
            10,
            json!({"username": "ada", "displayName": "Ada", "authenticatorSelection": {"residentKey": "required"}, "attestation": "direct"}),
        ),
        (11, registration.clone()),
        (
            12,
            json!({"username": "ada", "userVerification": "required"}),
        ),
        (13, assertion.clone()),
        (14, json!({"deviceId": "device-1", "uid": "app-1"})),
        (
            15,
            json!({"keyJson": "{}", "signature": "AA", "uid": "app-1"}),
        ),
        (
            16,
            json!({"resultJson": "{}", "signature": "AA", "deviceId": "device-1"}),
        ),
        (17, json!({})),
    ];
    for (selector, body) in &bodies {
        corpus.add_json("relying_party_api", Some(*selector), body);
    }
    for (selector, body) in relying_party_session_seeds() {
        corpus.add_json("relying_party_api", Some(selector), &body);
    }

    // Native messaging: the messages the bridge's host-loop tests send, framed.
    let messages = [
        json!({"requestId": "1", "type": "create", "origin": "https://example.com", "options": {
            "rp": {"id": "example.com", "name": "x"},
            "user": {"id": "AQ", "name": "a", "displayName": "a"},
            "challenge": "AAAA",
            "pubKeyCredParams": [{"type": "public-key", "alg": -7}]}}),
        json!({"requestId": "2", "type": "get", "origin": "https://example.com", "options": {
            "challenge": "AAAA", "rpId": "example.com"}}),
        json!({"requestId": "3", "type": "isUvpaa"}),
        json!({"requestId": "4", "type": "cancel"}),
        json!({"requestId": "5", "type": "getClientCapabilities"}),
    ];
    let mut all = Vec::new();
    for message in &messages {
        let text = message.to_string();
        let mut frame = u32::try_from(text.len()).unwrap().to_ne_bytes().to_vec();
        frame.extend_from_slice(text.as_bytes());
        corpus.add("native_messaging", &frame);
        all.extend_from_slice(&frame);
    }
    corpus.add("native_messaging", &all);

    // The local bridge: [method, path, flags] then the body.
    for (head, body) in [
        ([0u8, 0, 0x0f], messages[2].clone()),
        ([0, 0, 0x0f], messages[0].clone()),
        ([0, 1, 0x0b], json!({"code": "ABCD-EFGH-JKMN"})),
        ([0, 2, 0x0f], json!({})),
        ([1, 0, 0x1b], json!(null)),
    ] {
        let mut seed = head.to_vec();
        seed.extend_from_slice(body.to_string().as_bytes());
        corpus.add("local_bridge_http", &seed);
    }

    // SOTER: the forms as the app API writes them.
    let result = json!({"raw": "challenge", "fid": "1", "counter": 7, "tee_n": "passgate",
        "tee_v": "1", "fp_n": "fprintd", "fp_v": "1", "cpu_id": "device-1", "uid": "app-1"});
    corpus.add_json("soter_json", Some(0), &result);
    let pem = "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END PUBLIC KEY-----\n";
    let key = json!({"pub_key": pem, "cpu_id": "device-1", "counter": 1, "uid": "app-1"});
    corpus.add_json("soter_json", Some(1), &key);
}

fn seed_vault(corpus: &mut Corpus) {
    use passgate_app_api::vault::AuthMode;
    use passgate_app_api::vault::fuzzing::sample_file;
    for (mode, values) in [
        (AuthMode::PasscodeOnly, vec![("session", "\"abc\"")]),
        (
            AuthMode::BiometricOnly,
            vec![("a", "1"), ("b", "{\"k\":[1,2]}")],
        ),
        (AuthMode::BiometricOrPasscode, vec![]),
    ] {
        corpus.add("vault_file", &sample_file(mode, &values).unwrap());
    }
}

fuzz_target!(
    init: {
        let root = std::env::var_os("PASSGATE_FUZZ_SEEDS")
            .map_or_else(|| PathBuf::from("corpus"), PathBuf::from);
        let mut corpus = Corpus { root, written: 0 };
        seed_json(&mut corpus);
        seed_vault(&mut corpus);
        seed_ctap(&mut corpus);
        eprintln!("seed: {} new seed files in {}", corpus.written, corpus.root.display());
        // `cargo xtask fuzz --seed` runs this with `-runs=0`: no input follows.
    },
    |_data: &[u8]| {}
);

/// The signed-in routes of `relying_party_api` (and two step-up options), with the rig's
/// sessions: the selector bytes from `passgate_fuzz::rp`, then the body.
fn relying_party_session_seeds() -> Vec<(u8, serde_json::Value)> {
    use passgate_fuzz::rp::{Cookie, ROUTES, Selector};
    let route = |path: &str, method: &str| {
        ROUTES
            .iter()
            .position(|r| *r == (method, path))
            .unwrap()
    };
    let list = route("/api/credentials", "GET");
    let rename = route("/api/credentials/{id}", "PATCH");
    let delete = route("/api/credentials/{id}", "DELETE");
    let everywhere = route("/api/logout/all", "POST");
    let logout = route("/api/logout", "POST");
    let reauth = route("/api/reauth/options", "POST");
    let actions = route("/api/actions/options", "POST");
    let seeds = [
        (list, Cookie::Verified, 0, json!({})),
        (list, Cookie::None, 0, json!({})),
        (rename, Cookie::Verified, 0, json!({"name": "Laptop"})),
        (rename, Cookie::Verified, 1, json!({"name": "  Phone  "})),
        (rename, Cookie::Verified, 2, json!({"name": "x"})),
        (rename, Cookie::Verified, 3, json!({"name": "x"})),
        (rename, Cookie::Stale, 0, json!({"name": "x"})),
        (rename, Cookie::None, 0, json!({"name": "x"})),
        (delete, Cookie::Verified, 1, json!({})),
        (delete, Cookie::Verified, 0, json!({})),
        (delete, Cookie::Verified, 2, json!({})),
        (delete, Cookie::Stale, 1, json!({})),
        (everywhere, Cookie::Verified, 0, json!({})),
        (everywhere, Cookie::Stale, 0, json!({})),
        (logout, Cookie::Verified, 0, json!({})),
        (reauth, Cookie::Verified, 0, json!({})),
        (
            actions,
            Cookie::Verified,
            0,
            json!({"action": "transfer", "payload": {"amount": "10.00", "to": "bob"}}),
        ),
    ];
    seeds
        .into_iter()
        .map(|(route, cookie, credential, body)| {
            let selector = Selector {
                route,
                cookie,
                credential,
            };
            (selector.encode().unwrap(), body)
        })
        .collect()
}
