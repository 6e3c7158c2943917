//! Command-layer unit tests on in-memory test doubles (the real stores have their own tests,
//! and the whole stack is exercised over TCP by the integration tests).

use std::collections::HashMap;
use std::time::Instant;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};
use ciborium::value::Value;

use super::cbor::{decode_canonical, encode, int, int_map, text_map};
use super::{Authenticator, AuthenticatorConfig, command};
use crate::api::clock::Clock;
use crate::api::credential_store::{CredentialRecord, CredentialStore, StoreError};
use crate::api::key_store::{
    CreatedKey, KeyAlgorithm, KeyHandle, KeyRelease, KeyStore, KeyStoreError, KeyStoreInfo,
    P256PublicKey,
};
use crate::api::rng::SystemRng;
use crate::api::state_store::StateStore;
use crate::env::Env;
use crate::presence::AutoPresence;
use zeroize::Zeroizing;

/// Test double: keys kept as PKCS#8 in the handle (no wrapping).
struct PlainKeys;

impl KeyStore for PlainKeys {
    fn info(&self) -> KeyStoreInfo {
        KeyStoreInfo {
            backend: "test",
            detail: String::new(),
        }
    }
    fn create_key(
        &mut self,
        _: KeyAlgorithm,
        _: Option<&KeyRelease>,
    ) -> Result<CreatedKey, KeyStoreError> {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &SystemRandom::new())
                .unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
        let public_key = P256PublicKey::from_sec1_uncompressed(pair.public_key().as_ref()).unwrap();
        Ok(CreatedKey {
            handle: KeyHandle(pkcs8.as_ref().to_vec()),
            public_key: public_key.into(),
        })
    }
    fn sign(
        &mut self,
        handle: &KeyHandle,
        message: &[u8],
        _: Option<&KeyRelease>,
    ) -> Result<Vec<u8>, KeyStoreError> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &handle.0)
            .map_err(|_| KeyStoreError::InvalidHandle)?;
        Ok(pair
            .sign(&SystemRandom::new(), message)
            .unwrap()
            .as_ref()
            .to_vec())
    }
    fn delete_key(&mut self, _: &KeyHandle) -> Result<(), KeyStoreError> {
        Ok(())
    }
}

/// Test double: credentials in a map, counters in memory.
#[derive(Default)]
struct MemoryStore {
    records: Vec<CredentialRecord>,
    counters: HashMap<Vec<u8>, u32>,
    capacity: usize,
}

impl CredentialStore for MemoryStore {
    fn get(&mut self, rp_id: &str, id: &[u8]) -> Result<Option<CredentialRecord>, StoreError> {
        Ok(self
            .records
            .iter()
            .find(|r| r.rp_id == rp_id && r.id == id)
            .cloned())
    }
    fn insert(&mut self, record: &CredentialRecord) -> Result<(), StoreError> {
        if self.records.len() >= self.capacity {
            return Err(StoreError::Full {
                capacity: self.capacity,
            });
        }
        if record.discoverable {
            self.records.retain(|r| {
                !(r.discoverable && r.rp_id == record.rp_id && r.user_id == record.user_id)
            });
        }
        self.records.push(record.clone());
        Ok(())
    }
    fn update(&mut self, record: &CredentialRecord) -> Result<(), StoreError> {
        for r in &mut self.records {
            if r.id == record.id {
                *r = record.clone();
            }
        }
        Ok(())
    }
    fn delete(&mut self, id: &[u8]) -> Result<Option<CredentialRecord>, StoreError> {
        let pos = self.records.iter().position(|r| r.id == id);
        Ok(pos.map(|p| self.records.remove(p)))
    }
    fn discoverable(&mut self, rp_id: &str) -> Result<Vec<CredentialRecord>, StoreError> {
        let mut v: Vec<_> = self
            .records
            .iter()
            .filter(|r| r.discoverable && r.rp_id == rp_id)
            .cloned()
            .collect();
        v.reverse();
        Ok(v)
    }
    fn relying_parties(&mut self) -> Result<Vec<(String, Option<String>, usize)>, StoreError> {
        Ok(Vec::new())
    }
    fn discoverable_count(&mut self) -> Result<usize, StoreError> {
        Ok(self.records.iter().filter(|r| r.discoverable).count())
    }
    fn remaining_capacity(&mut self) -> Result<usize, StoreError> {
        Ok(self.capacity - self.records.len())
    }
    fn next_sign_count(&mut self, _: &str, id: &[u8]) -> Result<u32, StoreError> {
        let c = self.counters.entry(id.to_vec()).or_insert(0);
        *c += 1;
        Ok(*c)
    }
    fn reset(&mut self) -> Result<(), StoreError> {
        self.records.clear();
        Ok(())
    }
}

/// Test double: state blobs in memory.
#[derive(Default)]
struct MemoryState(HashMap<String, Vec<u8>>);

impl StateStore for MemoryState {
    fn load(&mut self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        Ok(self.0.get(name).map(|v| Zeroizing::new(v.clone())))
    }
    fn save(&mut self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.0.insert(name.into(), bytes.to_vec());
        Ok(())
    }
    fn remove(&mut self, name: &str) -> Result<(), StoreError> {
        self.0.remove(name);
        Ok(())
    }
}

struct FixedClock(Instant);
impl Clock for FixedClock {
    fn unix_seconds(&self) -> u64 {
        1_700_000_000
    }
    fn now(&self) -> Instant {
        self.0
    }
}

fn authenticator(capacity: usize) -> Authenticator {
    authenticator_with(capacity, Box::new(AutoPresence::new()))
}

fn authenticator_with(
    capacity: usize,
    user: Box<dyn crate::api::user_verifier::UserVerifier>,
) -> Authenticator {
    let env = Env {
        key_store: Box::new(PlainKeys),
        credentials: Box::new(MemoryStore {
            capacity,
            ..Default::default()
        }),
        state: Box::new(MemoryState::default()),
        user,
        clock: Box::new(FixedClock(Instant::now())),
        rng: Box::new(SystemRng::new()),
    };
    Authenticator::new(env, AuthenticatorConfig::default())
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

fn es256() -> Value {
    Value::Array(vec![text_map([
        ("alg", Some(int(-7))),
        ("type", Some(text("public-key"))),
    ])])
}

fn make_credential_request(
    rp: &str,
    user_id: &[u8],
    rk: bool,
    extra: Vec<(i64, Value)>,
) -> Vec<u8> {
    let mut entries = vec![
        (1, Value::Bytes(vec![7; 32])),
        (
            2,
            text_map([("id", Some(text(rp))), ("name", Some(text("Example")))]),
        ),
        (
            3,
            text_map([
                ("id", Some(Value::Bytes(user_id.to_vec()))),
                ("name", Some(text("alice"))),
            ]),
        ),
        (4, es256()),
        (7, text_map([("rk", Some(Value::Bool(rk)))])),
    ];
    entries.extend(extra);
    request(command::MAKE_CREDENTIAL, entries)
}

fn request(cmd: u8, entries: Vec<(i64, Value)>) -> Vec<u8> {
    let map = Value::Map(entries.into_iter().map(|(k, v)| (int(k), v)).collect());
    let mut out = vec![cmd];
    out.extend(encode(&map));
    out
}

fn ok_map(response: &[u8]) -> HashMap<i64, Value> {
    assert_eq!(response[0], 0, "status {:#04x}", response[0]);
    let Value::Map(m) = decode_canonical(&response[1..]).unwrap() else {
        panic!("not a map")
    };
    m.into_iter()
        .map(|(k, v)| {
            (
                i64::try_from(i128::from(k.as_integer().unwrap())).unwrap(),
                v,
            )
        })
        .collect()
}

struct Made {
    id: Vec<u8>,
    public_key: Vec<u8>,
    auth_data: Vec<u8>,
    fmt: String,
    att_stmt: Value,
}

fn make(
    a: &mut Authenticator,
    rp: &str,
    user_id: &[u8],
    rk: bool,
    extra: Vec<(i64, Value)>,
) -> Made {
    let resp = ok_map(&a.handle(&make_credential_request(rp, user_id, rk, extra)));
    let auth_data = resp[&2].as_bytes().unwrap().clone();
    let id_len = usize::from(u16::from_be_bytes([auth_data[53], auth_data[54]]));
    let id = auth_data[55..55 + id_len].to_vec();
    let cose = &auth_data[55 + id_len..];
    // x at offset 10..42, y at 45..77 of the canonical COSE key.
    let mut public_key = vec![4];
    public_key.extend_from_slice(&cose[10..42]);
    public_key.extend_from_slice(&cose[45..77]);
    Made {
        id,
        public_key,
        auth_data,
        fmt: resp[&1].as_text().unwrap().to_owned(),
        att_stmt: resp[&3].clone(),
    }
}

fn get_assertion(rp: &str, allow: Option<&[u8]>, up: Option<bool>) -> Vec<u8> {
    let mut entries = vec![(1, text(rp)), (2, Value::Bytes(vec![9; 32]))];
    if let Some(id) = allow {
        entries.push((
            3,
            Value::Array(vec![text_map([
                ("id", Some(Value::Bytes(id.to_vec()))),
                ("type", Some(text("public-key"))),
            ])]),
        ));
    }
    if let Some(up) = up {
        entries.push((5, text_map([("up", Some(Value::Bool(up)))])));
    }
    request(command::GET_ASSERTION, entries)
}

fn verify(public_key: &[u8], auth_data: &[u8], client_data_hash: &[u8], sig: &[u8]) -> bool {
    let mut msg = auth_data.to_vec();
    msg.extend_from_slice(client_data_hash);
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, public_key)
        .verify(&msg, sig)
        .is_ok()
}

#[test]
fn get_info_reports_versions_aaguid_and_options() {
    let mut a = authenticator(10);
    let info = ok_map(&a.handle(&[command::GET_INFO]));
    assert_eq!(
        info[&1],
        Value::Array(vec![text("FIDO_2_0"), text("FIDO_2_1")])
    );
    assert_eq!(info[&3], Value::Bytes(super::PASSGATE_AAGUID.to_vec()));
    let Value::Map(options) = &info[&4] else {
        panic!()
    };
    assert!(options.contains(&(text("rk"), Value::Bool(true))));
    assert!(
        !options.iter().any(|(k, _)| *k == text("uv")),
        "no uv without a verifier"
    );
    assert_eq!(info[&5], int(7609));
    assert_eq!(info[&20], int(10));
}

#[test]
fn make_credential_packed_by_default_then_assert_with_increasing_counter() {
    let mut a = authenticator(10);
    let made = make(&mut a, "example.com", b"user-1", false, vec![]);
    assert_eq!(
        made.fmt, "packed",
        "security keys self-attest unless asked not to"
    );
    let Value::Map(stmt) = &made.att_stmt else {
        panic!("attStmt is not a map")
    };
    assert_eq!(stmt[0], (text("alg"), int(-7)));
    assert!(verify(
        &made.public_key,
        &made.auth_data,
        &[7; 32],
        stmt[1].1.as_bytes().unwrap()
    ));
    assert_eq!(made.id.len(), super::CREDENTIAL_ID_LENGTH);
    assert_eq!(made.auth_data[32], 0x41, "UP|AT, no UV");
    assert_eq!(&made.auth_data[33..37], &[0, 0, 0, 0]);
    assert_eq!(
        &made.auth_data[..32],
        &super::data::rp_id_hash("example.com")
    );

    let mut last = 0;
    for _ in 0..3 {
        let resp = ok_map(&a.handle(&get_assertion("example.com", Some(&made.id), None)));
        let auth_data = resp[&2].as_bytes().unwrap();
        assert_eq!(auth_data.len(), 37);
        assert_eq!(auth_data[32], 0x01);
        let counter = u32::from_be_bytes(auth_data[33..37].try_into().unwrap());
        assert!(counter > last);
        last = counter;
        assert!(verify(
            &made.public_key,
            auth_data,
            &[9; 32],
            resp[&3].as_bytes().unwrap()
        ));
        assert!(
            !resp.contains_key(&4),
            "no user entity for a non-discoverable credential"
        );
        assert!(!resp.contains_key(&5));
    }
    // Silent probe: no UP flag, no counter.
    let resp = ok_map(&a.handle(&get_assertion("example.com", Some(&made.id), Some(false))));
    let auth_data = resp[&2].as_bytes().unwrap();
    assert_eq!(auth_data[32], 0x00);
    assert_eq!(&auth_data[33..37], &[0, 0, 0, 0]);
    // Next real assertion continues above the last real counter.
    let resp = ok_map(&a.handle(&get_assertion("example.com", Some(&made.id), None)));
    let counter = u32::from_be_bytes(resp[&2].as_bytes().unwrap()[33..37].try_into().unwrap());
    assert_eq!(counter, last + 1);
    // Another RP cannot use it.
    assert_eq!(
        a.handle(&get_assertion("evil.example", Some(&made.id), None)),
        vec![0x2e]
    );
}

#[test]
fn none_attestation_when_the_client_prefers_it() {
    let mut a = authenticator(10);
    let made = make(
        &mut a,
        "example.com",
        b"u",
        false,
        vec![(0x0b, Value::Array(vec![text("none"), text("packed")]))],
    );
    assert_eq!(made.fmt, "none");
    assert_eq!(made.att_stmt, Value::Map(vec![]));
    // An unknown format first does not hide a later one the authenticator knows.
    let made = make(
        &mut a,
        "example.com",
        b"v",
        false,
        vec![(0x0b, Value::Array(vec![text("tpm"), text("none")]))],
    );
    assert_eq!(made.fmt, "none");
}

#[test]
fn packed_self_attestation_on_request() {
    let mut a = authenticator(10);
    let made = make(
        &mut a,
        "example.com",
        b"u",
        false,
        vec![(0x0b, Value::Array(vec![text("tpm"), text("packed")]))],
    );
    assert_eq!(made.fmt, "packed");
    let Value::Map(stmt) = &made.att_stmt else {
        panic!()
    };
    assert_eq!(stmt[0], (text("alg"), int(-7)));
    let sig = stmt[1].1.as_bytes().unwrap();
    assert!(verify(&made.public_key, &made.auth_data, &[7; 32], sig));
    assert_eq!(stmt.len(), 2, "self attestation has no x5c");
}

#[test]
fn discoverable_credentials_and_get_next_assertion() {
    let mut a = authenticator(10);
    let first = make(&mut a, "example.com", b"alice", true, vec![]);
    let second = make(&mut a, "example.com", b"bob", true, vec![]);
    make(&mut a, "other.example", b"carol", true, vec![]);
    let resp = ok_map(&a.handle(&get_assertion("example.com", None, None)));
    assert_eq!(resp[&5], int(2));
    assert_eq!(
        resp[&4],
        text_map([("id", Some(Value::Bytes(b"bob".to_vec())))]),
        "newest first, no name without UV"
    );
    assert_eq!(
        resp[&1],
        text_map([
            ("id", Some(Value::Bytes(second.id.clone()))),
            ("type", Some(text("public-key")))
        ])
    );
    let next = ok_map(&a.handle(&[command::GET_NEXT_ASSERTION]));
    assert_eq!(
        next[&4],
        text_map([("id", Some(Value::Bytes(b"alice".to_vec())))])
    );
    assert!(!next.contains_key(&5));
    assert!(verify(
        &first.public_key,
        next[&2].as_bytes().unwrap(),
        &[9; 32],
        next[&3].as_bytes().unwrap()
    ));
    assert_eq!(a.handle(&[command::GET_NEXT_ASSERTION]), vec![0x30]);
    // Re-registering the same user replaces the credential.
    make(&mut a, "example.com", b"alice", true, vec![]);
    let resp = ok_map(&a.handle(&get_assertion("example.com", None, None)));
    assert_eq!(resp[&5], int(2));
    // Another command in between ends the getNextAssertion sequence.
    a.handle(&[command::GET_INFO]);
    assert_eq!(a.handle(&[command::GET_NEXT_ASSERTION]), vec![0x30]);
}

#[test]
fn creation_order_strictly_increases_under_a_coarse_clock() {
    // FixedClock never advances: the authenticator itself keeps the order strict (ga-29).
    let mut a = authenticator(10);
    make(&mut a, "example.com", b"alice", true, vec![]);
    make(&mut a, "example.com", b"bob", true, vec![]);
    let records = a.env.credentials.discoverable("example.com").unwrap();
    let [newer, older] = &records[..] else {
        panic!("two credentials");
    };
    assert_eq!(newer.user_id, b"bob");
    assert_eq!(older.created_ns, 1_700_000_000_000_000_000);
    assert_eq!(newer.created_ns, older.created_ns + 1);
    assert_eq!(newer.created_at, 1_700_000_000);
}

#[test]
fn exclude_list_and_store_full() {
    let mut a = authenticator(1);
    let made = make(&mut a, "example.com", b"u", false, vec![]);
    let excl = Value::Array(vec![text_map([
        ("id", Some(Value::Bytes(made.id.clone()))),
        ("type", Some(text("public-key"))),
    ])]);
    assert_eq!(
        a.handle(&make_credential_request(
            "example.com",
            b"u",
            false,
            vec![(5, excl.clone())]
        )),
        vec![0x19]
    );
    // The same credential does not exclude registration at another RP; but the store is full.
    assert_eq!(
        a.handle(&make_credential_request(
            "other.example",
            b"u",
            false,
            vec![(5, excl)]
        )),
        vec![0x28]
    );
}

#[test]
fn cred_protect_required_hides_credential_without_uv() {
    let mut a = authenticator(10);
    let made = make(
        &mut a,
        "example.com",
        b"u",
        true,
        vec![(6, text_map([("credProtect", Some(int(3)))]))],
    );
    assert_eq!(made.auth_data[32] & 0x80, 0x80, "extension data present");
    assert_eq!(
        a.handle(&get_assertion("example.com", None, None)),
        vec![0x2e]
    );
    assert_eq!(
        a.handle(&get_assertion("example.com", Some(&made.id), None)),
        vec![0x2e]
    );
    let level2 = make(
        &mut a,
        "two.example",
        b"u",
        true,
        vec![(6, text_map([("credProtect", Some(int(2)))]))],
    );
    assert_eq!(
        a.handle(&get_assertion("two.example", None, None)),
        vec![0x2e]
    );
    assert_eq!(
        a.handle(&get_assertion("two.example", Some(&level2.id), None))[0],
        0
    );
}

#[test]
fn reset_erases_credentials() {
    let mut a = authenticator(10);
    let made = make(&mut a, "example.com", b"u", true, vec![]);
    assert_eq!(a.handle(&[command::RESET]), vec![0]);
    assert_eq!(
        a.handle(&get_assertion("example.com", Some(&made.id), None)),
        vec![0x2e]
    );
    assert_eq!(a.handle(&[command::SELECTION]), vec![0]);
}

/// Malformed and invalid requests, each with its exact CTAP status.
#[test]
fn malformed_requests_get_exact_status_codes() {
    let rp = || text_map([("id", Some(text("example.com")))]);
    let user = || text_map([("id", Some(Value::Bytes(vec![1])))]);
    let cdh = || Value::Bytes(vec![0; 32]);
    let mc = |entries: Vec<(i64, Value)>| request(command::MAKE_CREDENTIAL, entries);
    let cases: Vec<(&str, Vec<u8>, u8)> = vec![
        ("empty request", vec![], 0x03),
        ("unknown command", vec![0x55], 0x01),
        ("getInfo with a body", vec![0x04, 0xa0], 0x03),
        ("truncated CBOR", vec![0x01, 0xa1, 0x01], 0x12),
        ("trailing bytes", vec![0x01, 0xa0, 0x00], 0x12),
        (
            "non-shortest integer key",
            vec![0x01, 0xa1, 0x18, 0x01, 0x00],
            0x12,
        ),
        (
            "indefinite-length map",
            vec![0x01, 0xbf, 0x01, 0x00, 0xff],
            0x12,
        ),
        (
            "unsorted keys",
            vec![0x01, 0xa2, 0x02, 0x00, 0x01, 0x00],
            0x12,
        ),
        (
            "duplicate keys",
            vec![0x01, 0xa2, 0x01, 0x00, 0x01, 0x00],
            0x12,
        ),
        ("float", vec![0x01, 0xfa, 0x3f, 0x80, 0x00, 0x00], 0x12),
        ("parameters not a map", vec![0x01, 0x80], 0x11),
        ("makeCredential empty map", mc(vec![]), 0x14),
        (
            "clientDataHash is text",
            mc(vec![(1, text("x")), (2, rp()), (3, user()), (4, es256())]),
            0x11,
        ),
        (
            "rp missing",
            mc(vec![(1, cdh()), (3, user()), (4, es256())]),
            0x14,
        ),
        (
            "rp.id missing",
            mc(vec![
                (1, cdh()),
                (2, text_map([("name", Some(text("x")))])),
                (3, user()),
                (4, es256()),
            ]),
            0x14,
        ),
        (
            "rp.id not text",
            mc(vec![
                (1, cdh()),
                (2, text_map([("id", Some(int(1)))])),
                (3, user()),
                (4, es256()),
            ]),
            0x11,
        ),
        (
            "user missing",
            mc(vec![(1, cdh()), (2, rp()), (4, es256())]),
            0x14,
        ),
        (
            "user.id 65 bytes",
            mc(vec![
                (1, cdh()),
                (2, rp()),
                (3, text_map([("id", Some(Value::Bytes(vec![1; 65])))])),
                (4, es256()),
            ]),
            0x02,
        ),
        (
            "pubKeyCredParams missing",
            mc(vec![(1, cdh()), (2, rp()), (3, user())]),
            0x14,
        ),
        (
            "only RS256",
            mc(vec![
                (1, cdh()),
                (2, rp()),
                (3, user()),
                (
                    4,
                    Value::Array(vec![text_map([
                        ("alg", Some(int(-257))),
                        ("type", Some(text("public-key"))),
                    ])]),
                ),
            ]),
            0x26,
        ),
        (
            "param without alg",
            mc(vec![
                (1, cdh()),
                (2, rp()),
                (3, user()),
                (
                    4,
                    Value::Array(vec![text_map([("type", Some(text("public-key")))])]),
                ),
            ]),
            0x14,
        ),
        (
            "clientDataHash 31 bytes",
            mc(vec![
                (1, Value::Bytes(vec![0; 31])),
                (2, rp()),
                (3, user()),
                (4, es256()),
            ]),
            0x02,
        ),
        (
            "up=false on makeCredential",
            mc(vec![
                (1, cdh()),
                (2, rp()),
                (3, user()),
                (4, es256()),
                (7, text_map([("up", Some(Value::Bool(false)))])),
            ]),
            0x2c,
        ),
        (
            "uv=true without a verifier",
            mc(vec![
                (1, cdh()),
                (2, rp()),
                (3, user()),
                (4, es256()),
                (7, text_map([("uv", Some(Value::Bool(true)))])),
            ]),
            0x2c,
        ),
        (
            "option not a bool",
            mc(vec![
                (1, cdh()),
                (2, rp()),
                (3, user()),
                (4, es256()),
                (7, text_map([("rk", Some(int(1)))])),
            ]),
            0x11,
        ),
        (
            "pinUvAuthParam without protocol",
            mc(vec![
                (1, cdh()),
                (2, rp()),
                (3, user()),
                (4, es256()),
                (8, Value::Bytes(vec![0; 16])),
            ]),
            0x14,
        ),
        (
            "pinUvAuthParam with unsupported protocol",
            mc(vec![
                (1, cdh()),
                (2, rp()),
                (3, user()),
                (4, es256()),
                (8, Value::Bytes(vec![0; 16])),
                (9, int(3)),
            ]),
            0x02,
        ),
        (
            "pinUvAuthParam without a token",
            mc(vec![
                (1, cdh()),
                (2, rp()),
                (3, user()),
                (4, es256()),
                (8, Value::Bytes(vec![0; 16])),
                (9, int(1)),
            ]),
            0x33,
        ),
        (
            "zero-length pinUvAuthParam, no PIN set",
            mc(vec![
                (1, cdh()),
                (2, rp()),
                (3, user()),
                (4, es256()),
                (8, Value::Bytes(vec![])),
                (9, int(1)),
            ]),
            0x35,
        ),
        (
            "clientPIN without subCommand",
            request(0x06, vec![(1, int(2))]),
            0x14,
        ),
        (
            "clientPIN unknown subCommand",
            request(0x06, vec![(1, int(2)), (2, int(0x42))]),
            0x3e,
        ),
        (
            "clientPIN getPinToken without a PIN",
            request(
                0x06,
                vec![
                    (1, int(2)),
                    (2, int(5)),
                    (3, int_map([])),
                    (6, Value::Bytes(vec![0; 32])),
                ],
            ),
            0x35,
        ),
        (
            "clientPIN getKeyAgreement protocol 7",
            request(0x06, vec![(1, int(7)), (2, int(2))]),
            0x02,
        ),
        (
            "clientPIN getPinUvAuthTokenUsingUv without UV",
            request(
                0x06,
                vec![(1, int(2)), (2, int(6)), (3, int_map([])), (9, int(1))],
            ),
            0x3e,
        ),
        (
            "enterprise attestation",
            mc(vec![
                (1, cdh()),
                (2, rp()),
                (3, user()),
                (4, es256()),
                (10, int(1)),
            ]),
            0x02,
        ),
        (
            "credProtect 4",
            mc(vec![
                (1, cdh()),
                (2, rp()),
                (3, user()),
                (4, es256()),
                (6, text_map([("credProtect", Some(int(4)))])),
            ]),
            0x02,
        ),
        (
            "excludeList not an array",
            mc(vec![
                (1, cdh()),
                (2, rp()),
                (3, user()),
                (4, es256()),
                (5, int(1)),
            ]),
            0x11,
        ),
        (
            "excludeList descriptor without id",
            mc(vec![
                (1, cdh()),
                (2, rp()),
                (3, user()),
                (4, es256()),
                (
                    5,
                    Value::Array(vec![text_map([("type", Some(text("public-key")))])]),
                ),
            ]),
            0x14,
        ),
        (
            "excludeList of 65",
            mc(vec![
                (1, cdh()),
                (2, rp()),
                (3, user()),
                (4, es256()),
                (
                    5,
                    Value::Array(vec![
                        text_map([
                            ("id", Some(Value::Bytes(vec![1]))),
                            ("type", Some(text("public-key")))
                        ]);
                        65
                    ]),
                ),
            ]),
            0x15,
        ),
        (
            "getAssertion rpId missing",
            request(command::GET_ASSERTION, vec![(2, cdh())]),
            0x14,
        ),
        (
            "getAssertion rk option",
            request(
                command::GET_ASSERTION,
                vec![
                    (1, text("example.com")),
                    (2, cdh()),
                    (5, text_map([("rk", Some(Value::Bool(true)))])),
                ],
            ),
            0x2b,
        ),
        (
            "getAssertion no credentials",
            request(
                command::GET_ASSERTION,
                vec![(1, text("example.com")), (2, cdh())],
            ),
            0x2e,
        ),
        (
            "getAssertion allowList item not a map",
            request(
                command::GET_ASSERTION,
                vec![
                    (1, text("example.com")),
                    (2, cdh()),
                    (3, Value::Array(vec![int(1)])),
                ],
            ),
            0x11,
        ),
        (
            "credMgmt without a token",
            request(0x0a, vec![(1, int(1))]),
            0x36,
        ),
        (
            "credMgmt token param without protocol",
            request(0x0a, vec![(1, int(1)), (4, Value::Bytes(vec![0; 32]))]),
            0x14,
        ),
        (
            "credMgmt with a param but no token",
            request(
                0x0a,
                vec![(1, int(1)), (3, int(2)), (4, Value::Bytes(vec![0; 32]))],
            ),
            0x33,
        ),
        (
            "credMgmt unknown subCommand",
            request(0x0a, vec![(1, int(0x33))]),
            0x3e,
        ),
        (
            "credMgmt next RP without begin",
            request(0x0a, vec![(1, int(3))]),
            0x30,
        ),
        (
            "credMgmt next credential without begin",
            request(0x41, vec![(1, int(5))]),
            0x30,
        ),
        (
            "getNextAssertion without getAssertion",
            vec![command::GET_NEXT_ASSERTION],
            0x30,
        ),
        (
            "deeply nested",
            {
                let mut v = int(0);
                for _ in 0..40 {
                    v = Value::Array(vec![v]);
                }
                let mut r = vec![0x01];
                r.extend(encode(&int_map([(1, Some(v))])));
                r
            },
            0x12,
        ),
    ];
    let mut a = authenticator(10);
    for (name, req, expected) in cases {
        assert_eq!(a.handle(&req), vec![expected], "{name}");
    }
}

mod pin {
    use super::*;
    use crate::ctap::pin_protocol::{KeyAgreement, Protocol};

    pub(super) fn shared(
        a: &mut Authenticator,
        protocol: Protocol,
        n: i64,
    ) -> (KeyAgreement, Vec<u8>) {
        let resp = ok_map(&a.handle(&request(0x06, vec![(1, int(n)), (2, int(2))])));
        let platform = KeyAgreement::generate().unwrap();
        let secret = platform.decapsulate(protocol, resp[&1].clone()).unwrap();
        (platform, secret.to_vec())
    }

    pub(super) fn padded(pin: &str) -> Vec<u8> {
        let mut p = pin.as_bytes().to_vec();
        p.resize(64, 0);
        p
    }

    pub(super) fn left16(pin: &str) -> Vec<u8> {
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, pin.as_bytes()).as_ref()[..16]
            .to_vec()
    }

    pub(super) fn set_pin(a: &mut Authenticator, protocol: Protocol, n: i64, pin: &str) -> Vec<u8> {
        let (platform, secret) = shared(a, protocol, n);
        let enc = protocol.encrypt(&secret, &padded(pin)).unwrap();
        let param = protocol.authenticate(&secret, &enc);
        a.handle(&request(
            0x06,
            vec![
                (1, int(n)),
                (2, int(3)),
                (3, platform.cose_public_key()),
                (4, Value::Bytes(param)),
                (5, Value::Bytes(enc)),
            ],
        ))
    }

    pub(super) fn token(
        a: &mut Authenticator,
        protocol: Protocol,
        n: i64,
        pin: &str,
        permissions: Option<i64>,
    ) -> Result<Vec<u8>, u8> {
        let (platform, secret) = shared(a, protocol, n);
        let hash_enc = protocol.encrypt(&secret, &left16(pin)).unwrap();
        let mut entries = vec![
            (1, int(n)),
            (3, platform.cose_public_key()),
            (6, Value::Bytes(hash_enc)),
        ];
        match permissions {
            None => entries.push((2, int(5))),
            Some(p) => {
                entries.push((2, int(9)));
                entries.push((9, int(p)));
            }
        }
        let resp = a.handle(&request(0x06, entries));
        if resp[0] != 0 {
            return Err(resp[0]);
        }
        let enc = ok_map(&resp)[&2].as_bytes().unwrap().clone();
        Ok(protocol.decrypt(&secret, &enc).unwrap().to_vec())
    }

    fn retries(a: &mut Authenticator) -> Value {
        ok_map(&a.handle(&request(0x06, vec![(2, int(1))])))[&3].clone()
    }

    #[test]
    fn set_pin_token_and_user_verified_registration_for_both_protocols() {
        for (protocol, n) in [(Protocol::One, 1), (Protocol::Two, 2)] {
            let mut a = authenticator(10);
            assert_eq!(set_pin(&mut a, protocol, n, "12"), vec![0x37], "too short");
            assert_eq!(set_pin(&mut a, protocol, n, "1234"), vec![0]);
            assert_eq!(
                set_pin(&mut a, protocol, n, "5678"),
                vec![0x33],
                "already set"
            );
            let info = ok_map(&a.handle(&[command::GET_INFO]));
            let Value::Map(options) = &info[&4] else {
                panic!()
            };
            assert!(options.contains(&(text("clientPin"), Value::Bool(true))));
            assert_eq!(info[&6], Value::Array(vec![int(2), int(1)]));

            // Discoverable registration now needs a token.
            assert_eq!(
                a.handle(&make_credential_request("example.com", b"u", true, vec![])),
                vec![0x36]
            );
            let mc_token = token(&mut a, protocol, n, "1234", Some(0x03)).unwrap();
            assert_eq!(mc_token.len(), 32);
            let param = protocol.authenticate(&mc_token, &[7; 32]);
            let made = make(
                &mut a,
                "example.com",
                b"u",
                true,
                vec![(8, Value::Bytes(param.clone())), (9, int(n))],
            );
            assert_eq!(made.auth_data[32] & 0x05, 0x05, "UP and UV");
            // The token's mc permission was used up, and it is bound to example.com.
            assert_eq!(
                a.handle(&make_credential_request(
                    "example.com",
                    b"v",
                    false,
                    vec![(8, Value::Bytes(param)), (9, int(n))]
                )),
                vec![0x33]
            );
            // A fresh token: a silent probe binds it to example.com without using it up.
            let ga_token = token(&mut a, protocol, n, "1234", Some(0x02)).unwrap();
            let ga_param = protocol.authenticate(&ga_token, &[9; 32]);
            let ga = |rp: &str, up: Option<bool>| {
                let mut entries = vec![
                    (1, text(rp)),
                    (2, Value::Bytes(vec![9; 32])),
                    (6, Value::Bytes(ga_param.clone())),
                    (7, int(n)),
                ];
                if let Some(up) = up {
                    entries.push((5, text_map([("up", Some(Value::Bool(up)))])));
                }
                request(command::GET_ASSERTION, entries)
            };
            let probe = ok_map(&a.handle(&ga("example.com", Some(false))));
            assert_eq!(
                probe[&2].as_bytes().unwrap()[32],
                0x00,
                "no UP, no UV on a probe"
            );
            assert_eq!(
                a.handle(&ga("other.example", None)),
                vec![0x33],
                "token bound to example.com"
            );
            let resp = ok_map(&a.handle(&ga("example.com", None)));
            assert_eq!(
                resp[&2].as_bytes().unwrap()[32],
                0x05,
                "UP and UV on the assertion"
            );
            assert_eq!(
                resp[&4],
                text_map([
                    ("id", Some(Value::Bytes(b"u".to_vec()))),
                    ("name", Some(text("alice")))
                ]),
                "names after UV"
            );
        }
    }

    #[test]
    fn wrong_pins_count_down_block_after_three_and_reset_clears() {
        let mut a = authenticator(10);
        assert_eq!(set_pin(&mut a, Protocol::Two, 2, "1234"), vec![0]);
        assert_eq!(retries(&mut a), int(8));
        assert_eq!(token(&mut a, Protocol::Two, 2, "0000", None), Err(0x31));
        assert_eq!(token(&mut a, Protocol::Two, 2, "0000", None), Err(0x31));
        assert_eq!(retries(&mut a), int(6));
        assert_eq!(
            token(&mut a, Protocol::Two, 2, "0000", None),
            Err(0x34),
            "third in a row"
        );
        assert_eq!(
            token(&mut a, Protocol::Two, 2, "1234", None),
            Err(0x34),
            "blocked until power cycle"
        );
        assert_eq!(retries(&mut a), int(5));
        // Reset erases the PIN.
        assert_eq!(a.handle(&[command::RESET]), vec![0]);
        assert_eq!(token(&mut a, Protocol::Two, 2, "1234", None), Err(0x35));
    }

    /// Test double of a key store that gates keys on verification and checks the PIN itself
    /// (like the TPM store): PlainKeys plus a release secret, a PIN hash and a lockout switch.
    #[derive(Default)]
    struct GatedKeys {
        pin: Option<Vec<u8>>,
        locked_out: std::sync::Arc<std::sync::atomic::AtomicBool>,
    }

    const RELEASE: [u8; 32] = [0x5a; 32];

    impl KeyStore for GatedKeys {
        fn info(&self) -> KeyStoreInfo {
            PlainKeys.info()
        }
        fn create_key(
            &mut self,
            algorithm: KeyAlgorithm,
            release: Option<&KeyRelease>,
        ) -> Result<CreatedKey, KeyStoreError> {
            if release.map(KeyRelease::secret) != Some(&RELEASE) {
                return Err(KeyStoreError::UserVerificationRequired);
            }
            PlainKeys.create_key(algorithm, release)
        }
        fn sign(
            &mut self,
            handle: &KeyHandle,
            message: &[u8],
            release: Option<&KeyRelease>,
        ) -> Result<Vec<u8>, KeyStoreError> {
            if release.map(KeyRelease::secret) != Some(&RELEASE) {
                return Err(KeyStoreError::UserVerificationRequired);
            }
            PlainKeys.sign(handle, message, release)
        }
        fn delete_key(&mut self, _: &KeyHandle) -> Result<(), KeyStoreError> {
            Ok(())
        }
        fn requires_uv(&self) -> bool {
            self.pin.is_some()
        }
        fn manages_pin(&self) -> bool {
            true
        }
        fn set_pin(&mut self, pin: &[u8], _: Option<&KeyRelease>) -> Result<(), KeyStoreError> {
            self.pin = Some(pin.to_vec());
            Ok(())
        }
        fn verify_pin(
            &mut self,
            pin: &[u8],
        ) -> Result<KeyRelease, crate::api::key_store::PinCheckError> {
            use crate::api::key_store::PinCheckError;
            if self.locked_out.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(PinCheckError::LockedOut);
            }
            if self.pin.as_deref() == Some(pin) {
                Ok(KeyRelease::from_secret(Zeroizing::new(RELEASE)))
            } else {
                Err(PinCheckError::Wrong)
            }
        }
        fn release_for(
            &mut self,
            _: Option<&crate::api::user_verifier::UserVerified>,
        ) -> Option<KeyRelease> {
            self.pin
                .is_none()
                .then(|| KeyRelease::from_secret(Zeroizing::new(RELEASE)))
        }
        fn reset(&mut self) -> Result<(), KeyStoreError> {
            self.pin = None;
            Ok(())
        }
    }

    #[test]
    fn a_key_store_holding_the_pin_gates_every_ceremony_on_it() {
        let keys = GatedKeys::default();
        let locked_out = keys.locked_out.clone();
        let env = Env {
            key_store: Box::new(keys),
            credentials: Box::new(MemoryStore {
                capacity: 10,
                ..Default::default()
            }),
            state: Box::new(MemoryState::default()),
            user: Box::new(AutoPresence::new()),
            clock: Box::new(FixedClock(Instant::now())),
            rng: Box::new(SystemRng::new()),
        };
        let mut a = Authenticator::new(env, AuthenticatorConfig::default());
        let always_uv = |a: &mut Authenticator| {
            let info = ok_map(&a.handle(&[command::GET_INFO]));
            let Value::Map(options) = &info[&4] else {
                panic!()
            };
            (
                options.contains(&(text("alwaysUv"), Value::Bool(true))),
                options.contains(&(text("makeCredUvNotRqd"), Value::Bool(false))),
            )
        };
        // No PIN: the store's open release, presence only.
        assert_eq!(always_uv(&mut a), (false, false));
        let made = make(&mut a, "example.com", b"u", true, vec![]);
        ok_map(&a.handle(&get_assertion("example.com", Some(&made.id), None)));

        assert_eq!(set_pin(&mut a, Protocol::Two, 2, "1234"), vec![0]);
        assert!(
            a.pin.state().unwrap().in_key_store,
            "the key store holds the PIN"
        );
        assert_eq!(always_uv(&mut a), (true, true));
        // Without verification: PUAT_REQUIRED, for a silent probe as well.
        assert_eq!(
            a.handle(&get_assertion("example.com", Some(&made.id), None)),
            vec![0x36]
        );
        assert_eq!(
            a.handle(&get_assertion("example.com", Some(&made.id), Some(false))),
            vec![0x36]
        );
        assert_eq!(
            a.handle(&make_credential_request("example.com", b"v", false, vec![])),
            vec![0x36]
        );
        // With a PIN token: the key store's release signs; a probe may sign with it too.
        let t = token(&mut a, Protocol::Two, 2, "1234", Some(0x03)).unwrap();
        let entries = vec![
            (1, text("example.com")),
            (2, Value::Bytes(vec![9; 32])),
            (
                3,
                Value::Array(vec![text_map([
                    ("id", Some(Value::Bytes(made.id.clone()))),
                    ("type", Some(text("public-key"))),
                ])]),
            ),
            (6, Value::Bytes(Protocol::Two.authenticate(&t, &[9; 32]))),
            (7, int(2)),
        ];
        let probe = entries
            .iter()
            .cloned()
            .chain([(5, text_map([("up", Some(Value::Bool(false)))]))])
            .collect();
        let resp = ok_map(&a.handle(&request(command::GET_ASSERTION, probe)));
        assert_eq!(resp[&2].as_bytes().unwrap()[32], 0x00);
        let resp = ok_map(&a.handle(&request(command::GET_ASSERTION, entries.clone())));
        assert_eq!(resp[&2].as_bytes().unwrap()[32], 0x05);
        // The token's verification (and release) is consumed with its ga permission.
        assert_eq!(
            a.handle(&request(command::GET_ASSERTION, entries)),
            vec![0x33]
        );

        // Wrong PIN: judged by the key store, counted by CTAP too.
        assert_eq!(token(&mut a, Protocol::Two, 2, "0000", None), Err(0x31));
        assert_eq!(retries(&mut a), int(7));
        // Hardware lockout: PIN_AUTH_BLOCKED for the right PIN, no retry spent.
        locked_out.store(true, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(token(&mut a, Protocol::Two, 2, "1234", None), Err(0x34));
        assert_eq!(retries(&mut a), int(7));
        locked_out.store(false, std::sync::atomic::Ordering::SeqCst);
        assert!(token(&mut a, Protocol::Two, 2, "1234", None).is_ok());
        assert_eq!(retries(&mut a), int(8));

        // Reset forgets the key store's PIN as well.
        assert_eq!(a.handle(&[command::RESET]), vec![0]);
        assert_eq!(always_uv(&mut a), (false, false));
        assert!(!a.pin.state().unwrap().is_set());
    }

    #[test]
    fn change_pin_and_permissions() {
        let mut a = authenticator(10);
        assert_eq!(set_pin(&mut a, Protocol::One, 1, "1234"), vec![0]);
        let (platform, secret) = shared(&mut a, Protocol::One, 1);
        let new_enc = Protocol::One.encrypt(&secret, &padded("987654")).unwrap();
        let hash_enc = Protocol::One.encrypt(&secret, &left16("1234")).unwrap();
        let param = Protocol::One.authenticate(&secret, &[&new_enc[..], &hash_enc].concat());
        let resp = a.handle(&request(
            0x06,
            vec![
                (1, int(1)),
                (2, int(4)),
                (3, platform.cose_public_key()),
                (4, Value::Bytes(param)),
                (5, Value::Bytes(new_enc)),
                (6, Value::Bytes(hash_enc)),
            ],
        ));
        assert_eq!(resp, vec![0]);
        assert_eq!(token(&mut a, Protocol::One, 1, "1234", None), Err(0x31));
        assert!(token(&mut a, Protocol::One, 1, "987654", None).is_ok());
        assert_eq!(
            token(&mut a, Protocol::One, 1, "987654", Some(0)),
            Err(0x02)
        );
        assert_eq!(
            token(&mut a, Protocol::One, 1, "987654", Some(0x08)),
            Err(0x40)
        );
    }
}

mod builtin_uv {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::api::user_verifier::{
        BiometryType, Interaction, Prompt, UserActionError, UserVerified, UserVerifier,
        VerificationMethod, VerifierStatus,
    };

    /// Test double: a fingerprint sensor whose outcomes the test scripts.
    pub(super) struct ScriptedSensor(pub(super) Arc<Mutex<VecDeque<Result<(), UserActionError>>>>);

    impl UserVerifier for ScriptedSensor {
        fn status(&self) -> VerifierStatus {
            VerifierStatus {
                available: true,
                biometry: BiometryType::Fingerprint,
                enrolled: true,
                error: None,
            }
        }
        fn check_presence(
            &mut self,
            _: &Prompt<'_>,
            _: &Interaction,
        ) -> Result<(), UserActionError> {
            Ok(())
        }
        fn verify_user(
            &mut self,
            _: &Prompt<'_>,
            _: &Interaction,
        ) -> Result<UserVerified, UserActionError> {
            let next = self
                .0
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or(Err(UserActionError::Failed));
            next.map(|()| {
                UserVerified::by(VerificationMethod::Biometric(BiometryType::Fingerprint))
            })
        }
    }

    pub(super) fn uv_request() -> Vec<u8> {
        request(
            command::MAKE_CREDENTIAL,
            vec![
                (1, Value::Bytes(vec![7; 32])),
                (2, text_map([("id", Some(text("example.com")))])),
                (3, text_map([("id", Some(Value::Bytes(b"u".to_vec())))])),
                (4, es256()),
                (
                    7,
                    text_map([
                        ("rk", Some(Value::Bool(true))),
                        ("uv", Some(Value::Bool(true))),
                    ]),
                ),
            ],
        )
    }

    #[test]
    fn failed_scans_block_uv_then_pin_unblocks() {
        let script = Arc::new(Mutex::new(VecDeque::new()));
        let mut a = authenticator_with(10, Box::new(ScriptedSensor(script.clone())));
        let info = ok_map(&a.handle(&[command::GET_INFO]));
        let Value::Map(options) = &info[&4] else {
            panic!()
        };
        assert!(options.contains(&(text("uv"), Value::Bool(true))));
        assert_eq!(info[&18], int(2), "uvModality fingerprint");

        // A matching finger: UV flag set.
        script.lock().unwrap().push_back(Ok(()));
        let made = ok_map(&a.handle(&uv_request()));
        assert_eq!(made[&2].as_bytes().unwrap()[32] & 0x05, 0x05);

        // Eight failed scans: UV_INVALID seven times, then UV_BLOCKED, and it stays blocked.
        let codes: Vec<u8> = (0..9).map(|_| a.handle(&uv_request())[0]).collect();
        assert_eq!(codes, [vec![0x3f; 7], vec![0x3c, 0x3c]].concat());
        let retries = ok_map(&a.handle(&request(0x06, vec![(1, int(2)), (2, int(7))])));
        assert_eq!(retries[&5], int(0));
        // The PIN still works, and a correct PIN unblocks the sensor.
        use crate::ctap::pin_protocol::Protocol;
        assert_eq!(pin::set_pin(&mut a, Protocol::Two, 2, "1234"), vec![0]);
        assert!(pin::token(&mut a, Protocol::Two, 2, "1234", Some(0x01)).is_ok());
        let retries = ok_map(&a.handle(&request(0x06, vec![(1, int(2)), (2, int(7))])));
        assert_eq!(retries[&5], int(8));
        // Cancelling is not an attempt.
        let mut b = authenticator_with(
            10,
            Box::new(ScriptedSensor(Arc::new(Mutex::new(VecDeque::from([Err(
                UserActionError::Cancelled,
            )]))))),
        );
        assert_eq!(b.handle(&uv_request()), vec![0x2d]);
        assert_eq!(
            ok_map(&b.handle(&request(0x06, vec![(1, int(2)), (2, int(7))])))[&5],
            int(8)
        );
    }
}

/// Mutated and random requests for every command: never a panic, always a status byte, and a
/// success body is canonical CBOR.
#[test]
fn mutated_requests_never_panic() {
    let mut a = authenticator(50);
    let made = make(&mut a, "example.com", b"u", true, vec![]);
    let seeds: Vec<Vec<u8>> = vec![
        make_credential_request("example.com", b"v", false, vec![]),
        get_assertion("example.com", Some(&made.id), None),
        get_assertion("example.com", None, None),
        request(0x06, vec![(1, int(2)), (2, int(2))]),
        request(
            0x0a,
            vec![(1, int(1)), (3, int(2)), (4, Value::Bytes(vec![0; 32]))],
        ),
        request(0x0c, vec![(1, int(64)), (3, int(0))]),
        request(0x0d, vec![(1, int(3)), (2, int_map([(1, Some(int(6)))]))]),
        vec![command::GET_INFO],
        vec![command::GET_NEXT_ASSERTION],
    ];
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut successes = 0;
    for round in 0..6000 {
        let seed = &seeds[usize::try_from(next() % 9).unwrap()];
        let mut req = seed.clone();
        match round % 4 {
            0 if req.len() > 1 => {
                let i = 1 + usize::try_from(next()).unwrap() % (req.len() - 1);
                req[i] ^= 1 << (next() % 8);
            }
            1 if req.len() > 1 => {
                let cut = 1 + usize::try_from(next()).unwrap() % (req.len() - 1);
                req.truncate(cut);
            }
            2 => {
                let i = 1 + usize::try_from(next()).unwrap() % req.len().max(1);
                req.insert(i.min(req.len()), next().to_le_bytes()[0]);
            }
            _ => {
                let len = usize::try_from(next() % 64).unwrap();
                req = (0..len).map(|_| next().to_le_bytes()[0]).collect();
            }
        }
        let resp = a.handle(&req);
        assert!(!resp.is_empty(), "empty response to {req:02x?}");
        if resp[0] == 0 && resp.len() > 1 {
            successes += 1;
            let body = decode_canonical(&resp[1..]).expect("success bodies are canonical CBOR");
            assert!(matches!(body, Value::Map(_)));
        }
    }
    assert!(
        successes > 0,
        "some mutations still succeed, so the success path was exercised"
    );
}

mod bio_enrollment;
mod conformance;
mod uv_retries;
