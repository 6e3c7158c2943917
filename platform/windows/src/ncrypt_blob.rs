//! The encodings NCrypt speaks for P-256: the `BCRYPT_ECCPUBLIC_BLOB` a key exports, and the
//! raw `r || s` signature `NCryptSignHash` returns, which WebAuthn wants as ASN.1 DER.

use passgate_platform_api::key_store::P256PublicKey;

/// `BCRYPT_ECDSA_PUBLIC_P256_MAGIC` ("ECS1", little-endian).
pub const ECDSA_PUBLIC_P256_MAGIC: u32 = 0x3153_4345;
const COORDINATE_LEN: usize = 32;

/// Reads a `BCRYPT_ECCPUBLIC_BLOB` for P-256: `BCRYPT_ECCKEY_BLOB { dwMagic, cbKey }` (two
/// little-endian u32) followed by X and Y, big-endian. `None` for any other key or length.
pub fn p256_from_ecc_public_blob(blob: &[u8]) -> Option<P256PublicKey> {
    let (header, point) = blob.split_at_checked(8)?;
    let magic = u32::from_le_bytes(header.get(..4)?.try_into().ok()?);
    let key_len = u32::from_le_bytes(header.get(4..8)?.try_into().ok()?);
    if magic != ECDSA_PUBLIC_P256_MAGIC
        || usize::try_from(key_len).ok()? != COORDINATE_LEN
        || point.len() != 2 * COORDINATE_LEN
    {
        return None;
    }
    let mut sec1 = [0u8; 65];
    sec1[0] = 0x04;
    sec1[1..].copy_from_slice(point);
    P256PublicKey::from_sec1_uncompressed(&sec1)
}

/// An ECDSA P-256 signature as ASN.1 DER (`SEQUENCE { INTEGER r, INTEGER s }`) from the raw
/// 64-byte `r || s` NCrypt returns. `None` for another length.
pub fn der_signature_from_raw(raw: &[u8]) -> Option<Vec<u8>> {
    if raw.len() != 2 * COORDINATE_LEN {
        return None;
    }
    let (r, s) = raw.split_at(COORDINATE_LEN);
    let r = der_integer(r);
    let s = der_integer(s);
    let body_len = r.len() + s.len();
    let mut der = Vec::with_capacity(2 + body_len);
    der.push(0x30);
    // At most 2 * (2 + 33) = 70 bytes: always the short length form.
    der.push(u8::try_from(body_len).ok()?);
    der.extend_from_slice(&r);
    der.extend_from_slice(&s);
    Some(der)
}

/// A positive big-endian integer as a DER INTEGER: leading zeros dropped (one kept for zero),
/// and a zero prepended when the high bit is set so the value stays positive.
fn der_integer(value: &[u8]) -> Vec<u8> {
    let first = value
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(value.len().saturating_sub(1));
    let digits = value.get(first..).unwrap_or(&[0]);
    let pad = digits.first().is_some_and(|b| b & 0x80 != 0);
    let mut out = Vec::with_capacity(digits.len() + 3);
    out.push(0x02);
    // At most 33 bytes.
    out.push(u8::try_from(digits.len() + usize::from(pad)).unwrap_or(0));
    if pad {
        out.push(0);
    }
    out.extend_from_slice(digits);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_blobs_are_read_strictly() {
        let mut blob = Vec::new();
        blob.extend_from_slice(&ECDSA_PUBLIC_P256_MAGIC.to_le_bytes());
        blob.extend_from_slice(&32u32.to_le_bytes());
        blob.extend_from_slice(&[0x11; 32]);
        blob.extend_from_slice(&[0x22; 32]);
        let key = p256_from_ecc_public_blob(&blob).unwrap();
        assert_eq!(key.x, [0x11; 32]);
        assert_eq!(key.y, [0x22; 32]);
        assert_eq!(&blob[..4], b"ECS1");

        // A private blob (ECS2), a P-384 header, a short or long point.
        let mut private = blob.clone();
        private[3] = b'2';
        assert_eq!(p256_from_ecc_public_blob(&private), None);
        let mut p384 = blob.clone();
        p384[4] = 48;
        assert_eq!(p256_from_ecc_public_blob(&p384), None);
        assert_eq!(p256_from_ecc_public_blob(&blob[..blob.len() - 1]), None);
        let mut long = blob.clone();
        long.push(0);
        assert_eq!(p256_from_ecc_public_blob(&long), None);
        assert_eq!(p256_from_ecc_public_blob(&blob[..7]), None);
    }

    #[test]
    fn raw_signatures_become_der() {
        // Small r (leading zeros dropped), s with its high bit set (zero prepended).
        let mut raw = [0u8; 64];
        raw[31] = 0x05;
        raw[32] = 0x80;
        raw[63] = 0x01;
        let der = der_signature_from_raw(&raw).unwrap();
        let mut expected = vec![0x30, 3 + 35, 0x02, 0x01, 0x05, 0x02, 0x21, 0x00, 0x80];
        expected.extend_from_slice(&[0u8; 30]);
        expected.push(0x01);
        assert_eq!(der, expected);

        // Full-width values without the high bit stay 32 bytes.
        let raw = [0x7f; 64];
        let der = der_signature_from_raw(&raw).unwrap();
        assert_eq!(der.len(), 2 + 2 * 34);
        assert_eq!(&der[..4], &[0x30, 68, 0x02, 32]);
        assert_eq!(der[36], 0x02);

        // Zero is one zero byte.
        let der = der_signature_from_raw(&[0u8; 64]).unwrap();
        assert_eq!(der, vec![0x30, 6, 0x02, 1, 0, 0x02, 1, 0]);

        assert_eq!(der_signature_from_raw(&[1u8; 63]), None);
        assert_eq!(der_signature_from_raw(&[1u8; 65]), None);
    }
}
