//! Issue targets, measured side by side in one run:
//! - in-process getAssertion (software key store, no user wait) vs. the fastest bare P-256
//!   sign available here (aws-lc-rs), both signing the same 69 bytes;
//! - getAssertion by allowList with 10 vs. 100,000 stored discoverable credentials;
//! - one CTAPHID getAssertion round trip over loopback TCP vs. in-process + a loopback echo of
//!   the same bytes;
//! - key store signing and hmac-secret, and a whole getAssertion with user verification and
//!   hmac-secret, in software vs. in a TPM 2.0 (swtpm).
//!
//! `cargo bench -p passgate-authenticator --bench get_assertion`; `cargo xtask bench` prints
//! the ratios.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)] // Benchmark harness code.

use std::hint::black_box;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
use ciborium::value::Value;
use criterion::{Criterion, criterion_group, criterion_main};
use passgate_authenticator::api::clock::SystemClock;
use passgate_authenticator::api::key_store::{KeyAlgorithm, KeyStore};
use passgate_authenticator::api::rng::SystemRng;
use passgate_authenticator::api::user_verifier::{
    BiometryType, Interaction, Prompt, UserActionError, UserVerified, UserVerifier,
    VerificationMethod, VerifierStatus,
};
use passgate_authenticator::ctap::cbor::{encode, int, int_map, text_map};
use passgate_authenticator::ctap::pin_protocol::{KeyAgreement, Protocol};
use passgate_authenticator::ctap::{AuthenticatorConfig, command};
use passgate_authenticator::ctaphid::{self, MessageAssembler, PACKET_SIZE};
use passgate_authenticator::software::{
    DeviceKey, FileCredentialStore, FileStateStore, SoftwareKeyStore,
};
use passgate_authenticator::{Authenticator, Env};

const RP: &str = "bench.example";

fn authenticator(dir: &Path) -> Authenticator {
    passgate_testkit::auto_presence_authenticator(dir, 1_000_000)
}

fn request(cmd: u8, entries: Vec<(i64, Value)>) -> Vec<u8> {
    let mut out = vec![cmd];
    out.extend(encode(&Value::Map(
        entries.into_iter().map(|(k, v)| (int(k), v)).collect(),
    )));
    out
}

fn make_credential(a: &mut Authenticator, user: u32) -> Vec<u8> {
    let req = request(
        command::MAKE_CREDENTIAL,
        vec![
            (1, Value::Bytes(vec![1; 32])),
            (2, text_map([("id", Some(Value::Text(RP.into())))])),
            (
                3,
                text_map([("id", Some(Value::Bytes(user.to_be_bytes().to_vec())))]),
            ),
            (
                4,
                Value::Array(vec![text_map([
                    ("alg", Some(int(-7))),
                    ("type", Some(Value::Text("public-key".into()))),
                ])]),
            ),
            (7, text_map([("rk", Some(Value::Bool(true)))])),
        ],
    );
    let resp = a.handle(&req);
    assert_eq!(resp[0], 0);
    // authData: rpIdHash(32) flags(1) count(4) aaguid(16) len(2) id
    let auth_data_start = resp
        .windows(2)
        .position(|w| w == [0x02, 0x58])
        .expect("authData")
        + 3;
    let auth_data = &resp[auth_data_start..];
    let len = usize::from(u16::from_be_bytes([auth_data[53], auth_data[54]]));
    auth_data[55..55 + len].to_vec()
}

fn get_assertion_request(id: &[u8]) -> Vec<u8> {
    request(
        command::GET_ASSERTION,
        vec![
            (1, Value::Text(RP.into())),
            (2, Value::Bytes(vec![2; 32])),
            (
                3,
                Value::Array(vec![text_map([
                    ("id", Some(Value::Bytes(id.to_vec()))),
                    ("type", Some(Value::Text("public-key".into()))),
                ])]),
            ),
        ],
    )
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn bench(c: &mut Criterion) {
    // Bare sign: the fastest P-256 signer here, on the same 69 bytes an assertion signs.
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).expect("key");
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).expect("key");
    let message = [7u8; 69];
    c.bench_function("bare_sign_aws_lc_rs", |b| {
        b.iter(|| pair.sign(&rng, black_box(&message)).expect("sign"))
    });

    // 10 stored credentials.
    let small = tempfile::tempdir().expect("tempdir");
    let mut a = authenticator(small.path());
    let ids: Vec<Vec<u8>> = (0..10).map(|u| make_credential(&mut a, u)).collect();
    let requests: Vec<Vec<u8>> = ids.iter().map(|id| get_assertion_request(id)).collect();
    let mut i = 0;
    c.bench_function("get_assertion_in_process_10_creds", |b| {
        b.iter(|| {
            i = (i + 1) % requests.len();
            let resp = a.handle(black_box(&requests[i]));
            assert_eq!(resp[0], 0);
            resp
        })
    });

    // 100,000 stored credentials, looked up at random.
    let large = tempfile::tempdir().expect("tempdir");
    let large_ids = {
        let device_key = DeviceKey::load_or_create(large.path()).expect("device key");
        let mut keys = SoftwareKeyStore::new(&device_key);
        FileCredentialStore::populate_for_benchmark(
            large.path(),
            &device_key,
            &mut keys,
            RP,
            100_000,
        )
        .expect("populate")
    };
    let rss_before = rss_kib();
    let opened = Instant::now();
    let mut big = authenticator(large.path());
    let open_time = opened.elapsed();
    let large_requests: Vec<Vec<u8>> = large_ids
        .iter()
        .step_by(97)
        .map(|id| get_assertion_request(id))
        .collect();
    let mut j = 0;
    c.bench_function("get_assertion_in_process_100k_creds", |b| {
        b.iter(|| {
            j = (j + 1) % large_requests.len();
            let resp = big.handle(black_box(&large_requests[j]));
            assert_eq!(resp[0], 0);
            resp
        })
    });
    println!(
        "store_scale: open with 100000 credentials took {:.1} ms; RSS {} KiB before open, {} KiB after lookups",
        open_time.as_secs_f64() * 1000.0,
        rss_before,
        rss_kib()
    );
    drop(big);

    // CTAPHID over loopback TCP: the same getAssertion as a full round trip.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let served = authenticator(small.path());
    std::thread::spawn(move || passgate_authenticator::transport::tcp::serve(listener, served));
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let cid = ctaphid_init(&mut stream);
    let mut k = 0;
    c.bench_function("get_assertion_ctaphid_tcp_10_creds", |b| {
        b.iter(|| {
            k = (k + 1) % requests.len();
            let resp = ctaphid_cbor(&mut stream, cid, &requests[k]);
            assert_eq!(resp[0], 0);
            resp
        })
    });

    // Loopback echo of the same request bytes: one write, the same bytes read back.
    let echo = TcpListener::bind("127.0.0.1:0").expect("bind");
    let echo_addr = echo.local_addr().expect("addr");
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = echo.accept() {
            let _ = s.set_nodelay(true);
            let mut buf = [0u8; PACKET_SIZE];
            while s.read_exact(&mut buf).is_ok() {
                if s.write_all(&buf).is_err() {
                    break;
                }
            }
        }
    });
    let mut echo_stream = TcpStream::connect(echo_addr).expect("connect");
    echo_stream.set_nodelay(true).expect("nodelay");
    let request_bytes = ctaphid::encode_message(cid, ctaphid::CMD_CBOR, &requests[0]).concat();
    let mut back = vec![0u8; request_bytes.len()];
    c.bench_function("loopback_echo_same_bytes", |b| {
        b.iter(|| {
            echo_stream.write_all(&request_bytes).expect("write");
            echo_stream.read_exact(&mut back).expect("read");
        })
    });
}

fn ctaphid_init(stream: &mut TcpStream) -> u32 {
    let nonce = [1u8, 2, 3, 4, 5, 6, 7, 8];
    for p in ctaphid::encode_message(ctaphid::BROADCAST_CID, ctaphid::CMD_INIT, &nonce) {
        stream.write_all(&p).expect("write");
    }
    let mut asm = MessageAssembler::new();
    let mut buf = [0u8; PACKET_SIZE];
    loop {
        stream.read_exact(&mut buf).expect("read");
        if let Some((_, _, payload)) = asm.push(&buf).expect("assemble") {
            return u32::from_be_bytes([payload[8], payload[9], payload[10], payload[11]]);
        }
    }
}

fn ctaphid_cbor(stream: &mut TcpStream, cid: u32, request: &[u8]) -> Vec<u8> {
    let bytes = ctaphid::encode_message(cid, ctaphid::CMD_CBOR, request).concat();
    stream.write_all(&bytes).expect("write");
    let mut asm = MessageAssembler::new();
    let mut buf = [0u8; PACKET_SIZE];
    loop {
        stream.read_exact(&mut buf).expect("read");
        if let Some((_, cmd, payload)) = asm.push(&buf).expect("assemble") {
            if cmd == ctaphid::CMD_CBOR {
                return payload;
            }
        }
    }
}

/// A stand-in verifier whose every verification succeeds (biometric), so that getAssertion
/// takes the user-verified path without waiting for anyone.
struct EveryScanMatches;

impl UserVerifier for EveryScanMatches {
    fn status(&self) -> VerifierStatus {
        VerifierStatus {
            available: true,
            biometry: BiometryType::Fingerprint,
            enrolled: true,
            error: None,
        }
    }

    fn check_presence(&mut self, _: &Prompt<'_>, _: &Interaction) -> Result<(), UserActionError> {
        Ok(())
    }

    fn verify_user(
        &mut self,
        _: &Prompt<'_>,
        _: &Interaction,
    ) -> Result<UserVerified, UserActionError> {
        Ok(UserVerified::by(VerificationMethod::Biometric(
            BiometryType::Fingerprint,
        )))
    }
}

fn verifying_authenticator(dir: &Path, key_store: Box<dyn KeyStore>) -> Authenticator {
    let device_key = DeviceKey::load_or_create(dir).expect("device key");
    let env = Env {
        key_store,
        credentials: Box::new(FileCredentialStore::open(dir, &device_key, 100).expect("store")),
        state: Box::new(FileStateStore::open(dir, &device_key).expect("state")),
        user: Box::new(EveryScanMatches),
        clock: Box::new(SystemClock),
        rng: Box::new(SystemRng::new()),
    };
    Authenticator::new(env, AuthenticatorConfig::default())
}

/// A credential with hmac-secret, and two getAssertion requests with UV: one with an
/// hmac-secret salt, one without the extension (the key agreement stays valid, so the same
/// requests can be replayed).
fn hmac_secret_requests(a: &mut Authenticator) -> (Vec<u8>, Vec<u8>) {
    let response = a.handle(&request(
        command::CLIENT_PIN,
        vec![(1, int(2)), (2, int(2))],
    ));
    assert_eq!(response[0], 0);
    let Value::Map(map) = ciborium::from_reader(&response[1..]).expect("cbor") else {
        panic!("a map");
    };
    let peer = map.into_iter().find(|(k, _)| *k == int(1)).expect("key").1;
    let platform = KeyAgreement::generate().expect("key agreement");
    let shared = platform.decapsulate(Protocol::Two, peer).expect("shared");
    let salt_enc = Protocol::Two.encrypt(&shared, &[9u8; 32]).expect("encrypt");
    let salt_auth = Protocol::Two.authenticate(&shared, &salt_enc);
    let input = int_map([
        (1, Some(platform.cose_public_key())),
        (2, Some(Value::Bytes(salt_enc))),
        (3, Some(Value::Bytes(salt_auth))),
        (4, Some(int(2))),
    ]);
    let made = a.handle(&request(
        command::MAKE_CREDENTIAL,
        vec![
            (1, Value::Bytes(vec![1; 32])),
            (2, text_map([("id", Some(Value::Text(RP.into())))])),
            (3, text_map([("id", Some(Value::Bytes(b"prf".to_vec())))])),
            (
                4,
                Value::Array(vec![text_map([
                    ("alg", Some(int(-7))),
                    ("type", Some(Value::Text("public-key".into()))),
                ])]),
            ),
            (6, text_map([("hmac-secret", Some(Value::Bool(true)))])),
            (7, text_map([("uv", Some(Value::Bool(true)))])),
        ],
    ));
    assert_eq!(made[0], 0, "makeCredential with hmac-secret");
    let auth_data_start = made
        .windows(2)
        .position(|w| w == [0x02, 0x58])
        .expect("authData")
        + 3;
    let auth_data = &made[auth_data_start..];
    let len = usize::from(u16::from_be_bytes([auth_data[53], auth_data[54]]));
    let id = auth_data[55..55 + len].to_vec();
    let assertion = |extensions: Option<Value>| {
        let mut entries = vec![
            (1, Value::Text(RP.into())),
            (2, Value::Bytes(vec![2; 32])),
            (
                3,
                Value::Array(vec![text_map([
                    ("id", Some(Value::Bytes(id.clone()))),
                    ("type", Some(Value::Text("public-key".into()))),
                ])]),
            ),
            (5, text_map([("uv", Some(Value::Bool(true)))])),
        ];
        if let Some(extensions) = extensions {
            entries.push((4, extensions));
        }
        request(command::GET_ASSERTION, entries)
    };
    (
        assertion(Some(text_map([("hmac-secret", Some(input))]))),
        assertion(None),
    )
}

/// Key store signing and hmac-secret: software (wrapped key, cached) beside a TPM 2.0
/// (swtpm), same run; and a whole getAssertion with UV and hmac-secret on each.
fn key_stores(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let device_key = DeviceKey::load_or_create(dir.path()).expect("device key");
    let mut software = SoftwareKeyStore::new(&device_key);
    let key = software.create_key(KeyAlgorithm::Es256, None).expect("key");
    let message = [7u8; 69];
    c.bench_function("key_store_sign_software", |b| {
        b.iter(|| {
            software
                .sign(&key.handle, black_box(&message), None)
                .expect("sign")
        })
    });
    let in_record = software.create_cred_random_with_uv(None).expect("key");
    c.bench_function("key_store_hmac_with_uv_software", |b| {
        b.iter(|| {
            software
                .hmac_with_uv(&in_record, black_box(&[9u8; 32]), None)
                .expect("hmac")
        })
    });
    let software_dir = tempfile::tempdir().expect("tempdir");
    let mut a = verifying_authenticator(
        software_dir.path(),
        Box::new(SoftwareKeyStore::new(
            &DeviceKey::load_or_create(software_dir.path()).expect("device key"),
        )),
    );
    let (ga, ga_plain) = hmac_secret_requests(&mut a);
    c.bench_function("get_assertion_uv_software", |b| {
        b.iter(|| {
            let resp = a.handle(black_box(&ga_plain));
            assert_eq!(resp[0], 0);
            resp
        })
    });
    c.bench_function("get_assertion_uv_hmac_secret_software", |b| {
        b.iter(|| {
            let resp = a.handle(black_box(&ga));
            assert_eq!(resp[0], 0);
            resp
        })
    });
    #[cfg(feature = "tpm")]
    {
        let state = tempfile::tempdir().expect("tempdir");
        let port = loop {
            let probe = TcpListener::bind("127.0.0.1:0").expect("bind");
            let port = probe.local_addr().expect("addr").port();
            if port < 65000 && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
                break port;
            }
        };
        let mut swtpm = std::process::Command::new("swtpm")
            .args(["socket", "--tpm2", "--tpmstate"])
            .arg(format!("dir={}", state.path().display()))
            .args([
                "--server",
                &format!("type=tcp,port={port},bindaddr=127.0.0.1"),
            ])
            .args([
                "--ctrl",
                &format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1),
            ])
            .args(["--flags", "not-need-init,startup-clear"])
            .spawn()
            .expect("swtpm");
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut tpm = passgate_authenticator::tpm::TpmKeyStore::open(&format!(
            "swtpm:host=127.0.0.1,port={port}"
        ))
        .expect("tpm");
        // No PIN set: the release is the store's open one. Each signature decrypts the key's
        // authorization value, loads the key and signs with that authorization.
        let release = tpm.release_for(None);
        let tpm_key = tpm
            .create_key(KeyAlgorithm::Es256, release.as_ref())
            .expect("key");
        c.bench_function("key_store_sign_tpm_swtpm", |b| {
            b.iter(|| {
                tpm.sign(&tpm_key.handle, black_box(&message), release.as_ref())
                    .expect("sign")
            })
        });
        // hmac-secret with UV: decrypt the HMAC key's authValue, TPM2_Load, TPM2_HMAC, flush.
        let held = tpm
            .create_cred_random_with_uv(release.as_ref())
            .expect("hmac key");
        c.bench_function("key_store_hmac_with_uv_tpm_swtpm", |b| {
            b.iter(|| {
                tpm.hmac_with_uv(&held, black_box(&[9u8; 32]), release.as_ref())
                    .expect("hmac")
            })
        });
        drop(tpm);
        // A whole getAssertion with UV and hmac-secret: the HMAC and the signature in the TPM.
        let tpm_dir = tempfile::tempdir().expect("tempdir");
        let tpm = passgate_authenticator::tpm::TpmKeyStore::open(&format!(
            "swtpm:host=127.0.0.1,port={port}"
        ))
        .expect("tpm");
        let mut a = verifying_authenticator(tpm_dir.path(), Box::new(tpm));
        let (ga, ga_plain) = hmac_secret_requests(&mut a);
        c.bench_function("get_assertion_uv_tpm_swtpm", |b| {
            b.iter(|| {
                let resp = a.handle(black_box(&ga_plain));
                assert_eq!(resp[0], 0);
                resp
            })
        });
        c.bench_function("get_assertion_uv_hmac_secret_tpm_swtpm", |b| {
            b.iter(|| {
                let resp = a.handle(black_box(&ga));
                assert_eq!(resp[0], 0);
                resp
            })
        });
        drop(a);
        let _ = swtpm.kill();
        let _ = swtpm.wait();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    targets = bench, key_stores
}
criterion_main!(benches);
