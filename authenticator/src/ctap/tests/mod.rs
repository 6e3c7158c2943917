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

mod bio_enrollment;
mod builtin_uv;
mod ceremonies;
mod conformance;
mod malformed;
mod mutation;
mod pin;
mod uv_retries;
