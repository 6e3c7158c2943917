//! The credential signing keys' algorithms in the TPM: ES256 (ECDSA P-256, SHA-256) always,
//! ES384 (ECDSA P-384, SHA-384) where the TPM implements P-384 (TPM2_GetCapability
//! `TPM_CAP_ECC_CURVES`; swtpm does, and the TCG PC Client profile makes P-384 optional).

use aws_lc_rs::digest;
use tss_esapi::Context;
use tss_esapi::constants::CapabilityType;
use tss_esapi::constants::ecc::EccCurveIdentifier;
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::structures::{CapabilityData, Digest, HashScheme, Public, SignatureScheme};
use tss_esapi::traits::UnMarshall;

use super::templates::{signing_key_template, signing_key_template_p384};
use crate::api::key_store::{KeyAlgorithm, KeyStoreError, P256PublicKey, P384PublicKey, PublicKey};

/// The algorithms of a TPM that implements P-256 only.
const ES256_ONLY: &[KeyAlgorithm] = &[KeyAlgorithm::Es256];
/// The algorithms of a TPM that also implements P-384, in getInfo's order of preference.
const ES256_AND_ES384: &[KeyAlgorithm] = &[KeyAlgorithm::Es256, KeyAlgorithm::Es384];

/// The credential algorithms this TPM can create keys for. A TPM whose curve list cannot be
/// read is taken to have P-256 only (the one curve every TPM 2.0 PC Client implements).
pub(super) fn supported_algorithms(context: &mut Context) -> &'static [KeyAlgorithm] {
    // Curves are listed in ascending order of their IDs from `property` on; P-384 is 0x0004.
    let Ok((CapabilityData::EccCurves(curves), _)) =
        context.get_capability(CapabilityType::EccCurves, 0, 16)
    else {
        return ES256_ONLY;
    };
    if curves.into_inner().contains(&EccCurveIdentifier::NistP384) {
        ES256_AND_ES384
    } else {
        ES256_ONLY
    }
}

/// The creation template of a signing key of `algorithm`.
pub(super) fn template(algorithm: KeyAlgorithm) -> Result<Public, KeyStoreError> {
    let template = match algorithm {
        KeyAlgorithm::Es256 => signing_key_template(),
        KeyAlgorithm::Es384 => signing_key_template_p384(),
        KeyAlgorithm::EdDsa => return Err(KeyStoreError::UnsupportedAlgorithm(algorithm)),
    };
    template.map_err(|e| KeyStoreError::Backend(format!("TPM template failed: {e}")))
}

/// The algorithm of a signing key, from its marshalled public area (a handle's first field).
pub(super) fn algorithm_of(public_area: &[u8]) -> Result<KeyAlgorithm, KeyStoreError> {
    match Public::unmarshall(public_area) {
        Ok(Public::Ecc { parameters, .. }) => match parameters.ecc_curve() {
            EccCurve::NistP256 => Ok(KeyAlgorithm::Es256),
            EccCurve::NistP384 => Ok(KeyAlgorithm::Es384),
            _ => Err(KeyStoreError::InvalidHandle),
        },
        _ => Err(KeyStoreError::InvalidHandle),
    }
}

/// The digest the TPM signs for `message` under `algorithm` (SHA-256 for ES256, SHA-384 for
/// ES384: COSE ties each curve to its hash).
pub(super) fn message_digest(
    algorithm: KeyAlgorithm,
    message: &[u8],
) -> Result<Digest, KeyStoreError> {
    let hash = match algorithm {
        KeyAlgorithm::Es256 => &digest::SHA256,
        KeyAlgorithm::Es384 => &digest::SHA384,
        KeyAlgorithm::EdDsa => return Err(KeyStoreError::UnsupportedAlgorithm(algorithm)),
    };
    Digest::try_from(digest::digest(hash, message).as_ref().to_vec())
        .map_err(|e| KeyStoreError::Backend(format!("TPM digest failed: {e}")))
}

/// The TPM2_Sign scheme of `algorithm`: ECDSA with the curve's hash. Passed explicitly (the
/// key templates leave the scheme `TPM_ALG_NULL`); keys made before with the scheme in their
/// template accept it too (TPM 2.0 Part 1, 27: the same scheme as the key's).
pub(super) fn signature_scheme(algorithm: KeyAlgorithm) -> Result<SignatureScheme, KeyStoreError> {
    let hash = match algorithm {
        KeyAlgorithm::Es256 => HashingAlgorithm::Sha256,
        KeyAlgorithm::Es384 => HashingAlgorithm::Sha384,
        KeyAlgorithm::EdDsa => return Err(KeyStoreError::UnsupportedAlgorithm(algorithm)),
    };
    Ok(SignatureScheme::EcDsa {
        hash_scheme: HashScheme::new(hash),
    })
}

/// The credential public key of a key the TPM created.
pub(super) fn public_key(public: &Public) -> Result<PublicKey, KeyStoreError> {
    let Public::Ecc {
        unique, parameters, ..
    } = public
    else {
        return Err(KeyStoreError::Backend("TPM returned a non-ECC key".into()));
    };
    let bad = || KeyStoreError::Backend("TPM returned a malformed public key".into());
    let (x, y) = (unique.x().value(), unique.y().value());
    match parameters.ecc_curve() {
        EccCurve::NistP256 => Ok(PublicKey::P256(P256PublicKey {
            x: fixed(x).ok_or_else(bad)?,
            y: fixed(y).ok_or_else(bad)?,
        })),
        EccCurve::NistP384 => Ok(PublicKey::P384(P384PublicKey {
            x: fixed(x).ok_or_else(bad)?,
            y: fixed(y).ok_or_else(bad)?,
        })),
        _ => Err(bad()),
    }
}

/// A big-endian coordinate left-padded to the curve's `N` bytes (the TPM may trim leading
/// zeros).
fn fixed<const N: usize>(v: &[u8]) -> Option<[u8; N]> {
    let pad = N.checked_sub(v.len())?;
    let mut out = [0u8; N];
    out.get_mut(pad..)?.copy_from_slice(v);
    Some(out)
}

/// DER INTEGER of a big-endian unsigned value.
fn der_integer(out: &mut Vec<u8>, value: &[u8]) {
    let trimmed = {
        let start = value
            .iter()
            .position(|&b| b != 0)
            .unwrap_or(value.len().saturating_sub(1));
        value.get(start..).unwrap_or(value)
    };
    let pad = trimmed.first().is_some_and(|b| b & 0x80 != 0);
    out.push(0x02);
    out.push(u8::try_from(trimmed.len() + usize::from(pad)).unwrap_or(0));
    if pad {
        out.push(0);
    }
    out.extend_from_slice(trimmed);
}

/// An ECDSA signature (r, s) in ASN.1 DER, as WebAuthn expects for ES256 and ES384. Both
/// curves' signatures stay under 128 bytes of content, so the lengths are one byte.
pub fn der_signature(r: &[u8], s: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(104);
    der_integer(&mut body, r);
    der_integer(&mut body, s);
    let mut out = Vec::with_capacity(body.len() + 2);
    out.push(0x30);
    out.push(u8::try_from(body.len()).unwrap_or(0));
    out.extend(body);
    out
}

#[cfg(test)]
mod tests {
    use super::{der_signature, fixed};

    #[test]
    fn der_encoding_pads_and_trims() {
        let mut r = [0u8; 32];
        r[0] = 0x80;
        let mut s = [0u8; 32];
        s[31] = 1;
        let der = der_signature(&r, &s);
        assert_eq!(&der[..5], &[0x30, 38, 0x02, 33, 0x00]);
        assert_eq!(&der[der.len() - 3..], &[0x02, 1, 1]);
    }

    #[test]
    fn p384_signatures_keep_one_byte_lengths() {
        let der = der_signature(&[0xff; 48], &[0xff; 48]);
        assert_eq!(&der[..5], &[0x30, 102, 0x02, 49, 0x00]);
        assert_eq!(der.len(), 104);
    }

    #[test]
    fn coordinates_are_left_padded_to_the_curve_size() {
        assert_eq!(fixed::<4>(&[1, 2]), Some([0, 0, 1, 2]));
        assert_eq!(fixed::<2>(&[1, 2, 3]), None);
        assert_eq!(fixed::<48>(&[7; 48]), Some([7; 48]));
    }
}
