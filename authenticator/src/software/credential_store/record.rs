//! A credential record's plaintext encoding (the CBOR map inside each encrypted file).

use ciborium::value::Value;
use zeroize::{Zeroize, Zeroizing};

use crate::api::credential_store::{CredRandom32, CredentialRecord, HmacSecretKeys};
use crate::api::key_store::{CredRandomWithUv, KeyAlgorithm, KeyHandle, PublicKey};
use crate::ctap::cbor::{self, ValueExt};

pub(super) fn encode_record(r: &CredentialRecord) -> Vec<u8> {
    let text = |s: &Option<String>| s.clone().map(Value::Text);
    let mut record = cbor::int_map([
        (1, Some(Value::Bytes(r.id.clone()))),
        (2, Some(Value::Text(r.rp_id.clone()))),
        (3, text(&r.rp_name)),
        (4, Some(Value::Bytes(r.user_id.clone()))),
        (5, text(&r.user_name)),
        (6, text(&r.user_display_name)),
        (7, Some(Value::Bool(r.discoverable))),
        (8, Some(cbor::int(r.algorithm.cose_id()))),
        (9, Some(Value::Bytes(r.key.0.clone()))),
        (10, Some(Value::Integer(r.created_at.into()))),
        (11, Some(cbor::int(i64::from(r.cred_protect)))),
        (
            12,
            // The uncompressed point (ECDSA) or the 32 bytes (Ed25519); key 8 says which.
            Some(Value::Bytes(r.public_key.to_raw())),
        ),
        (
            13,
            r.hmac_secret.as_ref().and_then(encode_hmac_keys_in_record),
        ),
        (14, r.cred_blob.clone().map(Value::Bytes)),
        (16, r.biometric_set.map(|s| Value::Bytes(s.to_vec()))),
        (17, Some(Value::Integer(r.created_ns.into()))),
        (
            15,
            r.large_blob_key
                .as_ref()
                .map(|k| Value::Bytes(k.0.to_vec())),
        ),
        (18, r.hmac_secret.as_ref().and_then(encode_hmac_keys_held)),
    ]);
    let encoded = cbor::encode(&record);
    // The map held copies of the record's secrets (hmac-secret keys, largeBlobKey).
    zeroize_byte_strings(&mut record);
    encoded
}

fn zeroize_byte_strings(value: &mut Value) {
    match value {
        Value::Bytes(bytes) => bytes.zeroize(),
        Value::Map(entries) => {
            for (_, v) in entries.iter_mut() {
                zeroize_byte_strings(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(zeroize_byte_strings),
        _ => {}
    }
}

/// Record key 13, the first form of the hmac-secret keys: CredRandomWithUV ||
/// CredRandomWithoutUV, 64 bytes, both in the record. Still written for keys the key store
/// keeps in the record (software key store), so those records read as before.
fn encode_hmac_keys_in_record(keys: &HmacSecretKeys) -> Option<Value> {
    let CredRandomWithUv::InRecord(with_uv) = &keys.with_uv else {
        return None;
    };
    let mut both = Zeroizing::new(Vec::with_capacity(64));
    both.extend_from_slice(with_uv.0.as_ref());
    both.extend_from_slice(keys.without_uv.0.as_ref());
    Some(Value::Bytes(both.to_vec()))
}

/// Record key 18, the second form: `{1: CredRandomWithoutUV, 2: the key store's handle of
/// the CredRandomWithUV key}` for a key the key store holds (TPM).
fn encode_hmac_keys_held(keys: &HmacSecretKeys) -> Option<Value> {
    let CredRandomWithUv::InKeyStore(handle) = &keys.with_uv else {
        return None;
    };
    Some(cbor::int_map([
        (1, Some(Value::Bytes(keys.without_uv.0.to_vec()))),
        (2, Some(Value::Bytes(handle.0.clone()))),
    ]))
}

fn secret32(value: Value) -> Option<CredRandom32> {
    let bytes = Zeroizing::new(value.ctap_bytes().ok()?);
    let mut out = Zeroizing::new([0u8; 32]);
    if bytes.len() != out.len() {
        return None;
    }
    out.copy_from_slice(&bytes);
    Some(CredRandom32(out))
}

/// The hmac-secret keys in either form (key 13 or key 18; both at once is corrupt).
fn decode_hmac_keys(
    in_record: Option<Value>,
    held: Option<Value>,
) -> Option<Option<HmacSecretKeys>> {
    match (in_record, held) {
        (None, None) => Some(None),
        (Some(v), None) => {
            let both = Zeroizing::new(v.ctap_bytes().ok()?);
            if both.len() != 64 {
                return None;
            }
            let (with_uv, without_uv) = both.split_at(32);
            let half = |b: &[u8]| {
                let mut out = Zeroizing::new([0u8; 32]);
                out.copy_from_slice(b);
                CredRandom32(out)
            };
            Some(Some(HmacSecretKeys {
                with_uv: CredRandomWithUv::InRecord(half(with_uv)),
                without_uv: half(without_uv),
            }))
        }
        (None, Some(v)) => {
            let mut p = cbor::Params::from_value(v).ok()?;
            let without_uv = secret32(p.take(1)?)?;
            let handle = KeyHandle(p.take(2)?.ctap_bytes().ok()?);
            Some(Some(HmacSecretKeys {
                with_uv: CredRandomWithUv::InKeyStore(handle),
                without_uv,
            }))
        }
        (Some(_), Some(_)) => None,
    }
}

pub(super) fn decode_record(bytes: &[u8]) -> Option<CredentialRecord> {
    let mut params = cbor::Params::parse(bytes).ok()?;
    let text = |v: Option<Value>| v.map(ValueExt::ctap_text).transpose().ok();
    let created_at = params.take(10)?.ctap_uint().ok()?;
    let algorithm = KeyAlgorithm::from_cose_id(params.take(8)?.ctap_int().ok()?)?;
    // Records written before the nanosecond order existed (no key 17) sort by their seconds.
    let created_ns = match params.take(17) {
        None => created_at.saturating_mul(1_000_000_000),
        Some(v) => v.ctap_uint().ok()?,
    };
    Some(CredentialRecord {
        id: params.take(1)?.ctap_bytes().ok()?,
        rp_id: params.take(2)?.ctap_text().ok()?,
        rp_name: text(params.take(3))?,
        user_id: params.take(4)?.ctap_bytes().ok()?,
        user_name: text(params.take(5))?,
        user_display_name: text(params.take(6))?,
        discoverable: params.take(7)?.ctap_bool().ok()?,
        algorithm,
        key: KeyHandle(params.take(9)?.ctap_bytes().ok()?),
        created_at,
        created_ns,
        cred_protect: u8::try_from(params.take(11)?.ctap_uint().ok()?).ok()?,
        public_key: PublicKey::from_raw(algorithm, &params.take(12)?.ctap_bytes().ok()?)?,
        hmac_secret: decode_hmac_keys(params.take(13), params.take(18))?,
        cred_blob: match params.take(14) {
            None => None,
            Some(v) => Some(v.ctap_bytes().ok()?),
        },
        biometric_set: match params.take(16) {
            None => None,
            Some(v) => Some(v.ctap_bytes().ok()?.try_into().ok()?),
        },
        large_blob_key: match params.take(15) {
            None => None,
            Some(v) => Some(secret32(v)?),
        },
    })
}
