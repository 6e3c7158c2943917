//! What crosses the TPM's bus: every command passgate sends to swtpm is recorded by a relay
//! (`tpm::capture::TpmBusRecorder`) between the TCTI and swtpm. The tests count the commands
//! of each operation (and hold them to budgets), and search the recorded bytes for the
//! secrets a bus observer must not see.
#![cfg(feature = "tpm")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: a failed unwrap is a failed test.

mod support;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::{digest, hmac};
use ciborium::value::Value;
use passgate_authenticator::Authenticator;
use passgate_authenticator::api::key_store::{KeyAlgorithm, KeyHandle, KeyRelease, KeyStore};
use passgate_authenticator::api::state_store::StateStore;
use passgate_authenticator::ctap::cbor::{encode, int, int_map, text_map};
use passgate_authenticator::ctap::command;
use passgate_authenticator::ctap::pin_protocol::{KeyAgreement, Protocol};
use passgate_authenticator::software::{DeviceKey, FileCredentialStore, FileStateStore};
use passgate_authenticator::tpm::STORAGE_PRIMARY_HANDLE;
use passgate_authenticator::tpm::capture::{Exchange, TpmBusRecorder, command_names};
use passgate_testkit::swtpm::Swtpm;
use passgate_testkit::tpm_ca::{AttestationKeySubject, TestCa};
use support::ctap::{bytes, call, member};
use support::tpm::{authenticator, open_store};
use zeroize::Zeroizing;

/// The platform side of clientPIN and hmac-secret, PIN/UV auth protocol 2.
struct Platform {
    key: KeyAgreement,
    shared: Zeroizing<Vec<u8>>,
}

impl Platform {
    fn new(a: &mut Authenticator) -> Self {
        let response = call(a, command::CLIENT_PIN, vec![(1, int(2)), (2, int(2))]);
        let key = KeyAgreement::generate().unwrap();
        let shared = key
            .decapsulate(Protocol::Two, member(&response, &int(1)).clone())
            .unwrap();
        Self { key, shared }
    }

    fn set_pin(&self, a: &mut Authenticator, pin: &str) {
        let mut padded = pin.as_bytes().to_vec();
        padded.resize(64, 0);
        let new_pin_enc = Protocol::Two.encrypt(&self.shared, &padded).unwrap();
        let auth = Protocol::Two.authenticate(&self.shared, &new_pin_enc);
        call(
            a,
            command::CLIENT_PIN,
            vec![
                (1, int(2)),
                (2, int(3)),
                (3, self.key.cose_public_key()),
                (4, Value::Bytes(auth)),
                (5, Value::Bytes(new_pin_enc)),
            ],
        );
    }

    /// getPinUvAuthTokenUsingPinWithPermissions (getAssertion) for `rp`.
    fn pin_token(&self, a: &mut Authenticator, pin: &str, rp: &str) -> Zeroizing<Vec<u8>> {
        let hash = pin_hash(pin);
        let pin_hash_enc = Protocol::Two.encrypt(&self.shared, &hash).unwrap();
        let response = call(
            a,
            command::CLIENT_PIN,
            vec![
                (1, int(2)),
                (2, int(9)),
                (3, self.key.cose_public_key()),
                (6, Value::Bytes(pin_hash_enc)),
                (9, int(2)),
                (10, Value::Text(rp.into())),
            ],
        );
        Protocol::Two
            .decrypt(&self.shared, bytes(member(&response, &int(2))))
            .unwrap()
    }

    fn hmac_input(&self, salts: &[u8]) -> Value {
        let salt_enc = Protocol::Two.encrypt(&self.shared, salts).unwrap();
        let salt_auth = Protocol::Two.authenticate(&self.shared, &salt_enc);
        int_map([
            (1, Some(self.key.cose_public_key())),
            (2, Some(Value::Bytes(salt_enc))),
            (3, Some(Value::Bytes(salt_auth))),
            (4, Some(int(2))),
        ])
    }

    /// The decrypted hmac-secret output in `auth_data` (an assertion's: no attested data).
    fn hmac_output(&self, auth_data: &[u8]) -> Zeroizing<Vec<u8>> {
        assert_ne!(auth_data[32] & 0x80, 0, "extension data present");
        let Value::Map(extensions) = ciborium::from_reader(&auth_data[37..]).unwrap() else {
            panic!("extensions are a map");
        };
        let encrypted = member(&extensions, &Value::Text("hmac-secret".into()));
        Protocol::Two
            .decrypt(&self.shared, bytes(encrypted))
            .unwrap()
    }
}

fn pin_hash(pin: &str) -> [u8; 16] {
    digest::digest(&digest::SHA256, pin.as_bytes()).as_ref()[..16]
        .try_into()
        .unwrap()
}

const RP: &str = "bus.example";
const CLIENT_DATA_HASH: [u8; 32] = [7; 32];

fn make_credential(a: &mut Authenticator, p: &Platform) -> Vec<u8> {
    let response = call(
        a,
        command::MAKE_CREDENTIAL,
        vec![
            (1, Value::Bytes(CLIENT_DATA_HASH.to_vec())),
            (2, text_map([("id", Some(Value::Text(RP.into())))])),
            (3, text_map([("id", Some(Value::Bytes(b"user".to_vec())))])),
            (
                4,
                Value::Array(vec![text_map([
                    ("alg", Some(int(-7))),
                    ("type", Some(Value::Text("public-key".into()))),
                ])]),
            ),
            (6, text_map([("hmac-secret", Some(Value::Bool(true)))])),
        ],
    );
    let _ = p;
    let auth_data = bytes(member(&response, &int(2)));
    let len = usize::from(u16::from_be_bytes([auth_data[53], auth_data[54]]));
    auth_data[55..55 + len].to_vec()
}

/// How a getAssertion verifies the user.
enum Uv<'a> {
    None,
    /// The built-in verifier (the fingerprint stand-in).
    Builtin,
    /// A pinUvAuthToken.
    Token(&'a [u8]),
}

/// A getAssertion of `id`, with hmac-secret over `salts` if given; returns the hmac-secret
/// output.
fn get_assertion(
    a: &mut Authenticator,
    p: &Platform,
    id: &[u8],
    uv: Uv<'_>,
    salts: Option<&[u8]>,
) -> Option<Zeroizing<Vec<u8>>> {
    let mut entries = vec![
        (1, Value::Text(RP.into())),
        (2, Value::Bytes(CLIENT_DATA_HASH.to_vec())),
        (
            3,
            Value::Array(vec![text_map([
                ("id", Some(Value::Bytes(id.to_vec()))),
                ("type", Some(Value::Text("public-key".into()))),
            ])]),
        ),
    ];
    if let Some(salts) = salts {
        entries.push((4, text_map([("hmac-secret", Some(p.hmac_input(salts)))])));
    }
    match uv {
        Uv::None => {}
        Uv::Builtin => entries.push((5, text_map([("uv", Some(Value::Bool(true)))]))),
        Uv::Token(token) => {
            entries.push((
                6,
                Value::Bytes(Protocol::Two.authenticate(token, &CLIENT_DATA_HASH)),
            ));
            entries.push((7, int(2)));
        }
    }
    let response = call(a, command::GET_ASSERTION, entries);
    let auth_data = bytes(member(&response, &int(2)));
    salts.map(|_| p.hmac_output(auth_data))
}

/// Records the commands of `f` under `name`, prints them, and returns them.
fn measure<T>(
    bus: &TpmBusRecorder,
    report: &mut Vec<(String, Vec<Exchange>)>,
    name: &str,
    f: impl FnOnce() -> T,
) -> T {
    bus.take();
    let out = f();
    let exchanges = bus.take();
    println!("TPM commands: {name}: {} {exchanges:?}", exchanges.len());
    report.push((name.to_owned(), exchanges));
    out
}

/// TPM_RC_RETRY: the TPM asks for the same command again (swtpm does on a key's first use
/// after its self-test); ESAPI resends it. Not a command of passgate's.
const TPM_RC_RETRY: u32 = 0x922;

/// The commands of operation `name`, resends after TPM_RC_RETRY not counted.
fn count(report: &[(String, Vec<Exchange>)], name: &str) -> usize {
    report
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, e)| {
            e.iter()
                .filter(|x| x.response_code() != Some(TPM_RC_RETRY))
                .count()
        })
        .expect("measured")
}

fn names(report: &[(String, Vec<Exchange>)], name: &str) -> Vec<&'static str> {
    report
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, e)| command_names(e))
        .expect("measured")
}

/// The authValue of a key handle, decrypted as the key store does (the test's own
/// implementation of the handle format: version, u16-prefixed public and private areas,
/// nonce, AES-256-GCM of the authValue under a key derived from the release key).
fn key_auth_value(handle: &KeyHandle, release: &KeyRelease) -> Vec<u8> {
    let b = &handle.0;
    let public_len = usize::from(u16::from_be_bytes([b[1], b[2]]));
    let public = &b[3..3 + public_len];
    let at = 3 + public_len;
    let private_len = usize::from(u16::from_be_bytes([b[at], b[at + 1]]));
    let sealed = &b[at + 2 + private_len..];
    let (nonce, ciphertext) = sealed.split_at(12);
    let derived = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, release.secret()),
        b"passgate tpm: key authorization wrapping v1",
    );
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, derived.as_ref()).unwrap());
    let mut buffer = ciphertext.to_vec();
    key.open_in_place(
        Nonce::try_assume_unique_for_key(nonce).unwrap(),
        Aad::from(public),
        &mut buffer,
    )
    .unwrap()
    .to_vec()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The handles of a command before its authorization area (TPM 2.0 Part 3), for the
/// commands passgate authorizes.
fn handle_count(code: u32) -> Option<usize> {
    match code {
        0x131 | 0x153 | 0x157 | 0x155 | 0x15d | 0x15e | 0x159 | 0x12a => Some(1),
        0x120 | 0x134 | 0x14e | 0x148 => Some(2),
        _ => None,
    }
}

/// One authorization of a command's authorization area.
#[derive(Debug)]
struct Authorization {
    session: u32,
    attributes: u8,
    hmac: Vec<u8>,
}

fn authorizations(command: &[u8]) -> Vec<Authorization> {
    let tag = u16::from_be_bytes([command[0], command[1]]);
    if tag != 0x8002 {
        return Vec::new();
    }
    let code = u32::from_be_bytes(command[6..10].try_into().unwrap());
    let handles = handle_count(code).unwrap_or_else(|| panic!("handles of command {code:#x}"));
    let mut at = 10 + 4 * handles;
    let size = u32::from_be_bytes(command[at..at + 4].try_into().unwrap());
    at += 4;
    let end = at + usize::try_from(size).unwrap();
    let mut out = Vec::new();
    while at < end {
        let session = u32::from_be_bytes(command[at..at + 4].try_into().unwrap());
        let nonce_len = usize::from(u16::from_be_bytes([command[at + 4], command[at + 5]]));
        at += 6 + nonce_len;
        let attributes = command[at];
        let hmac_len = usize::from(u16::from_be_bytes([command[at + 1], command[at + 2]]));
        let hmac = command[at + 3..at + 3 + hmac_len].to_vec();
        at += 3 + hmac_len;
        out.push(Authorization {
            session,
            attributes,
            hmac,
        });
    }
    out
}

const TPM_RS_PW: u32 = 0x4000_0009;
const DECRYPT: u8 = 0x20;
const ENCRYPT: u8 = 0x40;

#[test]
fn tpm_commands_per_operation_are_few_and_no_secret_crosses_the_bus_in_the_clear() {
    let tpm_state = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tpm = Swtpm::start(tpm_state.path());
    let bus = TpmBusRecorder::start(tpm.port).unwrap();
    let tcti = bus.tcti();
    let mut report = Vec::new();
    let mut all = Vec::new();

    // First start on this TPM: the storage primary is created and made persistent, once.
    let store = measure(&bus, &mut report, "first start", || {
        open_store(&tcti, dir.path())
    });
    assert!(store.primary_is_persistent());
    let first = names(&report, "first start");
    assert_eq!(
        first.iter().filter(|n| **n == "CreatePrimary").count(),
        1,
        "{first:?}"
    );
    assert!(first.contains(&"EvictControl"), "{first:?}");
    let mut a = authenticator(store, dir.path());
    let p = Platform::new(&mut a);
    bus.take();

    // No PIN yet: a credential, and an assertion without verification.
    let id = measure(&bus, &mut report, "makeCredential (hmac-secret)", || {
        make_credential(&mut a, &p)
    });
    measure(&bus, &mut report, "getAssertion without UV", || {
        get_assertion(&mut a, &p, &id, Uv::None, None)
    });
    p.set_pin(&mut a, "1234");
    all.extend(bus.take());
    drop(a);

    // A restart: no CreatePrimary, ever again.
    let mut store = measure(&bus, &mut report, "start", || open_store(&tcti, dir.path()));
    assert!(!names(&report, "start").contains(&"CreatePrimary"));
    // An attestation key certified by the test CA, for the `tpm` attestation below.
    let ak = store.attestation_key().unwrap();
    let ca = TestCa::new();
    store
        .install_attestation_chain(vec![ca.issue_attestation_key(&AttestationKeySubject {
            public_key_sec1: ak.public_key.to_sec1_uncompressed().to_vec(),
            tpm_manufacturer: ak.tpm_manufacturer,
            tpm_model: ak.tpm_model,
            tpm_version: ak.tpm_version,
        })])
        .unwrap();
    let mut a = authenticator(store, dir.path());
    let p = Platform::new(&mut a);
    bus.take();
    let salts = [[0x5a; 32], [0xa5; 32]].concat();

    measure(
        &bus,
        &mut report,
        "getAssertion with fingerprint UV",
        || get_assertion(&mut a, &p, &id, Uv::Builtin, None),
    );
    let with_fingerprint = measure(
        &bus,
        &mut report,
        "getAssertion with fingerprint UV and hmac-secret (2 salts)",
        || get_assertion(&mut a, &p, &id, Uv::Builtin, Some(&salts)).unwrap(),
    );
    let with_pin = measure(
        &bus,
        &mut report,
        "getAssertion with PIN UV and hmac-secret (2 salts; clientPIN getPinUvAuthToken + getAssertion)",
        || {
            let token = p.pin_token(&mut a, "1234", RP);
            get_assertion(&mut a, &p, &id, Uv::Token(&token), Some(&salts)).unwrap()
        },
    );
    assert_eq!(with_pin, with_fingerprint, "the same with-UV output");
    measure(&bus, &mut report, "getAssertion with PIN UV", || {
        let token = p.pin_token(&mut a, "1234", RP);
        get_assertion(&mut a, &p, &id, Uv::Token(&token), None)
    });
    // A second credential, so the next assertion starts with neither of its keys loaded.
    let other = measure(
        &bus,
        &mut report,
        "makeCredential with PIN set (hmac-secret)",
        || make_credential_uv(&mut a, &p),
    );
    let attested = measure(
        &bus,
        &mut report,
        "makeCredential with PIN set and tpm attestation (hmac-secret)",
        || make_credential_attested(&mut a),
    );
    let attested_names = names(
        &report,
        "makeCredential with PIN set and tpm attestation (hmac-secret)",
    );
    assert!(attested_names.contains(&"Certify"), "{attested_names:?}");
    let cold = measure(
        &bus,
        &mut report,
        "getAssertion with PIN UV and hmac-secret, keys not loaded",
        || {
            get_assertion(&mut a, &p, &id, Uv::Builtin, None);
            bus.take();
            let token = p.pin_token(&mut a, "1234", RP);
            get_assertion(&mut a, &p, &other, Uv::Token(&token), Some(&salts[..32])).unwrap()
        },
    );
    assert_eq!(cold.len(), 32);
    all.extend(bus.take());
    drop(a);
    for (_, exchanges) in &report {
        all.extend(exchanges.iter().cloned());
    }

    // The budgets: no CreatePrimary after the first start; an assertion signs once.
    assert!(
        count(
            &report,
            "getAssertion with PIN UV and hmac-secret (2 salts; clientPIN getPinUvAuthToken + getAssertion)"
        ) <= 8
    );
    assert!(
        count(
            &report,
            "getAssertion with PIN UV and hmac-secret, keys not loaded"
        ) <= 8
    );
    assert!(count(&report, "getAssertion with fingerprint UV") <= 3);
    for (name, exchanges) in report.iter().skip(1) {
        let n = command_names(exchanges);
        assert!(!n.contains(&"CreatePrimary"), "{name}: {n:?}");
        if name.starts_with("getAssertion") {
            let signs = exchanges
                .iter()
                .filter(|e| e.command_name() == "Sign" && e.response_code() == Some(0))
                .count();
            assert_eq!(signs, 1, "{name}: {n:?}");
        }
    }

    // Secrecy. The secrets: the PIN hash, the PIN object's authValue, the release key, every
    // key's authValue, the hmac-secret salts and outputs.
    let mut store = open_store(&tcti, dir.path());
    let release = store.verify_pin(&pin_hash("1234")).unwrap();
    all.extend(bus.take());
    let device_key = DeviceKey::load_or_create(dir.path()).unwrap();
    let mut credentials = FileCredentialStore::open(dir.path(), &device_key, 100).unwrap();
    use passgate_authenticator::api::credential_store::CredentialStore;
    use passgate_authenticator::api::key_store::CredRandomWithUv;
    let mut secrets: Vec<(String, Vec<u8>)> = vec![
        ("PIN hash".into(), pin_hash("1234").to_vec()),
        ("release key".into(), release.secret().to_vec()),
        ("hmac-secret salt 1".into(), salts[..32].to_vec()),
        ("hmac-secret salt 2".into(), salts[32..].to_vec()),
        ("hmac-secret output 1".into(), with_pin[..32].to_vec()),
        ("hmac-secret output 2".into(), with_pin[32..].to_vec()),
        ("hmac-secret output (cold)".into(), cold.to_vec()),
    ];
    for cred in [&id, &other, &attested] {
        let record = credentials.get(RP, cred).unwrap().unwrap();
        secrets.push((
            "signing key authValue".into(),
            key_auth_value(&record.key, &release),
        ));
        let CredRandomWithUv::InKeyStore(handle) = &record.hmac_secret.unwrap().with_uv else {
            panic!("the with-UV key is in the TPM");
        };
        secrets.push((
            "HMAC key authValue".into(),
            key_auth_value(handle, &release),
        ));
    }
    // The PIN object's authValue: HMAC-SHA-256 keyed by its salt (in the release state).
    let mut state = FileStateStore::open(dir.path(), &device_key).unwrap();
    let release_state = state.load("tpm-release").unwrap().unwrap();
    let Value::Map(fields) = ciborium::from_reader(&release_state[..]).unwrap() else {
        panic!("the release state is a map");
    };
    let salt = bytes(member(&fields, &int(5))).to_vec();
    let mut pin_auth = hmac::Context::with_key(&hmac::Key::new(hmac::HMAC_SHA256, &salt));
    pin_auth.update(b"passgate tpm: PIN object authorization v1");
    pin_auth.update(&pin_hash("1234"));
    secrets.push((
        "PIN object authValue".into(),
        pin_auth.sign().as_ref().to_vec(),
    ));
    // The check can fail: a signing key's authValue is in its handle, used by the test above.
    assert_eq!(
        secrets
            .iter()
            .filter(|(n, _)| n.contains("authValue"))
            .count(),
        7
    );
    drop(store);

    let sent: Vec<u8> = all.iter().flat_map(|e| e.command.clone()).collect();
    let received: Vec<u8> = all.iter().flat_map(|e| e.response.clone()).collect();
    assert!(
        sent.len() > 5_000,
        "the traffic was recorded: {} bytes",
        sent.len()
    );
    for (name, secret) in &secrets {
        assert!(!contains(&sent, secret), "{name} sent in the clear");
        assert!(!contains(&received, secret), "{name} received in the clear");
    }

    // Every session is salted with the persistent storage primary and encrypts with
    // AES-128-CFB; every authorization of an object is an HMAC session's (authValues never
    // travel); only the owner hierarchy's empty password is ever sent.
    let mut sessions = 0;
    for exchange in &all {
        let c = &exchange.command;
        match exchange.command_name() {
            "StartAuthSession" => {
                sessions += 1;
                let tpm_key = u32::from_be_bytes(c[10..14].try_into().unwrap());
                assert_eq!(tpm_key, STORAGE_PRIMARY_HANDLE, "salted with the primary");
                let nonce_len = usize::from(u16::from_be_bytes([c[18], c[19]]));
                let at = 20 + nonce_len;
                let salt_len = usize::from(u16::from_be_bytes([c[at], c[at + 1]]));
                assert!(
                    salt_len > 64,
                    "an encrypted salt (an ECC point): {salt_len}"
                );
                let rest = &c[at + 2 + salt_len..];
                assert_eq!(rest[0], 0x00, "an HMAC session");
                assert_eq!(
                    &rest[1..7],
                    &[0x00, 0x06, 0x00, 0x80, 0x00, 0x43],
                    "AES-128-CFB"
                );
            }
            name @ ("Create" | "Load" | "Unseal" | "HMAC" | "Sign") => {
                let auths = authorizations(c);
                assert_eq!(auths.len(), 1, "{name}");
                let auth = &auths[0];
                assert_eq!(
                    auth.session >> 24,
                    0x02,
                    "{name}: an HMAC session: {auth:?}"
                );
                assert_eq!(auth.hmac.len(), 32, "{name}");
                let want = match name {
                    "Create" => DECRYPT,
                    "Unseal" => ENCRYPT,
                    "HMAC" => DECRYPT | ENCRYPT,
                    _ => 0,
                };
                assert_eq!(auth.attributes & (DECRYPT | ENCRYPT), want, "{name}");
            }
            "Certify" => {
                // The credential key through the salted session (its authValue proven, not
                // sent); the attestation key's empty authValue as a password.
                let auths = authorizations(c);
                assert_eq!(auths.len(), 2, "Certify: {auths:?}");
                assert_eq!(auths[0].session >> 24, 0x02, "Certify: {auths:?}");
                assert_eq!(auths[0].hmac.len(), 32);
                assert_eq!(auths[1].session, TPM_RS_PW);
                assert!(auths[1].hmac.is_empty(), "only the AK's empty password");
            }
            "CreatePrimary" | "EvictControl" => {
                for auth in authorizations(c) {
                    assert_eq!(auth.session, TPM_RS_PW);
                    assert!(auth.hmac.is_empty(), "only an empty owner password");
                }
            }
            _ => {}
        }
    }
    assert!(sessions >= 2, "one session per connection: {sessions}");
}

fn make_credential_uv(a: &mut Authenticator, p: &Platform) -> Vec<u8> {
    let response = call(
        a,
        command::MAKE_CREDENTIAL,
        vec![
            (1, Value::Bytes(CLIENT_DATA_HASH.to_vec())),
            (2, text_map([("id", Some(Value::Text(RP.into())))])),
            (3, text_map([("id", Some(Value::Bytes(b"other".to_vec())))])),
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
    );
    let _ = p;
    let auth_data = bytes(member(&response, &int(2)));
    let len = usize::from(u16::from_be_bytes([auth_data[53], auth_data[54]]));
    auth_data[55..55 + len].to_vec()
}

/// makeCredential with UV (the stand-in verifier) and `tpm` attestation; the credential ID.
fn make_credential_attested(a: &mut Authenticator) -> Vec<u8> {
    let response = call(
        a,
        command::MAKE_CREDENTIAL,
        vec![
            (1, Value::Bytes(CLIENT_DATA_HASH.to_vec())),
            (2, text_map([("id", Some(Value::Text(RP.into())))])),
            (
                3,
                text_map([("id", Some(Value::Bytes(b"attested".to_vec())))]),
            ),
            (
                4,
                Value::Array(vec![text_map([
                    ("alg", Some(int(-7))),
                    ("type", Some(Value::Text("public-key".into()))),
                ])]),
            ),
            (6, text_map([("hmac-secret", Some(Value::Bool(true)))])),
            (7, text_map([("uv", Some(Value::Bool(true)))])),
            (0x0b, Value::Array(vec![Value::Text("tpm".into())])),
        ],
    );
    assert_eq!(member(&response, &int(1)), &Value::Text("tpm".into()));
    let auth_data = bytes(member(&response, &int(2)));
    let len = usize::from(u16::from_be_bytes([auth_data[53], auth_data[54]]));
    auth_data[55..55 + len].to_vec()
}

/// The salted session keeps counting wrong PINs against the TPM's dictionary-attack lockout,
/// and a failed authorization does not break later commands (the session is started again).
#[test]
fn wrong_pins_still_count_and_the_session_recovers() {
    let tpm_state = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tpm = Swtpm::start(tpm_state.path());
    let bus = TpmBusRecorder::start(tpm.port).unwrap();
    let mut store = open_store(&bus.tcti(), dir.path());
    let open = store.release_for(None).unwrap();
    let key = store.create_key(KeyAlgorithm::Es256, Some(&open)).unwrap();
    store.set_pin(&pin_hash("1234"), None).unwrap();
    let before = store.dictionary_attack_status().unwrap().failed_tries;
    bus.take();
    assert!(store.verify_pin(&pin_hash("9999")).is_err());
    let failed = bus.take();
    assert!(
        failed
            .iter()
            .any(|e| (e.command_name(), e.response_code()) == ("Unseal", Some(0x98e))),
        "TPM_RC_AUTH_FAIL for session 1: {failed:?}"
    );
    assert_eq!(
        store.dictionary_attack_status().unwrap().failed_tries,
        before + 1
    );
    let release = store.verify_pin(&pin_hash("1234")).unwrap();
    let signature = store.sign(&key.handle, b"m", Some(&release)).unwrap();
    assert!(
        aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
            &key.public_key.to_raw()[..]
        )
        .verify(b"m", &signature)
        .is_ok()
    );
}

/// The storage primary's name is pinned in the release state at first use: when another key
/// answers for the primary (here simulated by changing the pinned name, as a bus interposer
/// substituting the session's salt key would look), passgate sends nothing secret: no PIN
/// authorization, no key authValue, no Create.
#[test]
fn a_different_storage_primary_gets_no_secrets() {
    let tpm_state = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tpm = Swtpm::start(tpm_state.path());
    let bus = TpmBusRecorder::start(tpm.port).unwrap();
    let mut store = open_store(&bus.tcti(), dir.path());
    let open = store.release_for(None).unwrap();
    let key = store.create_key(KeyAlgorithm::Es256, Some(&open)).unwrap();
    store.set_pin(&pin_hash("1234"), None).unwrap();
    let release = store.verify_pin(&pin_hash("1234")).unwrap();
    store.sign(&key.handle, b"m", Some(&release)).unwrap();
    drop(store);

    let device_key = DeviceKey::load_or_create(dir.path()).unwrap();
    let mut state = FileStateStore::open(dir.path(), &device_key).unwrap();
    let bytes = state.load("tpm-release").unwrap().unwrap();
    let Value::Map(mut fields) = ciborium::from_reader(&bytes[..]).unwrap() else {
        panic!("the release state is a map");
    };
    let name = fields
        .iter_mut()
        .find(|(k, _)| *k == int(6))
        .expect("the primary's name is pinned");
    let Value::Bytes(pinned) = &mut name.1 else {
        panic!("a name is bytes");
    };
    assert_eq!(pinned.len(), 34, "nameAlg SHA-256 + digest");
    pinned[10] ^= 1;
    state
        .save("tpm-release", &encode(&Value::Map(fields)))
        .unwrap();

    let mut store = open_store(&bus.tcti(), dir.path());
    bus.take();
    let refused = store.verify_pin(&pin_hash("1234")).unwrap_err();
    assert!(refused.to_string().contains("storage primary"), "{refused}");
    assert!(matches!(
        store.sign(&key.handle, b"m", Some(&release)),
        Err(passgate_authenticator::api::key_store::KeyStoreError::InvalidHandle)
    ));
    assert!(
        store
            .create_key(KeyAlgorithm::Es256, Some(&release))
            .is_err()
    );
    let sent = bus.take();
    assert!(sent.is_empty(), "nothing was sent to the TPM: {sent:?}");
    // A reset starts afresh on this TPM, pinning its primary again.
    store.reset().unwrap();
    let fresh = store.release_for(None).unwrap();
    let key = store.create_key(KeyAlgorithm::Es256, Some(&fresh)).unwrap();
    store.sign(&key.handle, b"m", Some(&fresh)).unwrap();
}
