//! [`TpmKeyStore`]: P-256 signing keys created inside a TPM 2.0 and never exported.
//!
//! Keys are children of an ECC P-256 storage primary in the owner hierarchy, re-derived from
//! the TPM's own seed at every start (a fixed template gives the same primary on the same TPM,
//! and a different one on any other TPM). A key handle is the key's TPM2B_PUBLIC and its
//! TPM-wrapped TPM2B_PRIVATE: only this TPM's primary can load it, so a copied state directory
//! is useless elsewhere. Signing happens in the TPM.
//!
//! Not yet: releasing each key's authorization value only after user verification, and the
//! PIN-derived authorization that puts wrong guesses under the TPM's dictionary-attack
//! lockout. Keys are created with an empty authorization value for now.

use std::str::FromStr;

use aws_lc_rs::digest;
use tss_esapi::Context;
use tss_esapi::attributes::ObjectAttributesBuilder;
use tss_esapi::constants::tss::{TPM2_RH_NULL, TPM2_ST_HASHCHECK};
use tss_esapi::handles::KeyHandle as TpmKeyHandle;
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::structures::{
    Digest, EccPoint, EccScheme, HashScheme, HashcheckTicket, Private, Public, PublicBuilder,
    PublicEccParametersBuilder, Signature, SignatureScheme, SymmetricDefinitionObject,
};
use tss_esapi::tcti_ldr::TctiNameConf;
use tss_esapi::traits::{Marshall, UnMarshall};
use tss_esapi::tss2_esys::TPMT_TK_HASHCHECK;

use crate::api::key_store::{
    CreatedKey, KeyAlgorithm, KeyHandle, KeyStore, KeyStoreError, KeyStoreInfo, P256PublicKey,
};

const HANDLE_VERSION: u8 = 1;

fn tpm_error(what: &str) -> impl FnOnce(tss_esapi::Error) -> KeyStoreError + '_ {
    move |e| KeyStoreError::Backend(format!("TPM {what} failed: {e}"))
}

/// A key store in a TPM 2.0, reached through a TCTI (`device:/dev/tpmrm0`,
/// `swtpm:host=127.0.0.1,port=2321`, ...).
pub struct TpmKeyStore {
    context: Context,
    primary: TpmKeyHandle,
    manufacturer: String,
}

impl std::fmt::Debug for TpmKeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TpmKeyStore")
            .field("manufacturer", &self.manufacturer)
            .finish_non_exhaustive()
    }
}

fn storage_primary_template() -> Result<Public, tss_esapi::Error> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_restricted(true)
        .with_decrypt(true)
        .with_no_da(true)
        .build()?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_ecc_parameters(
            PublicEccParametersBuilder::new_restricted_decryption_key(
                SymmetricDefinitionObject::AES_128_CFB,
                EccCurve::NistP256,
            )
            .build()?,
        )
        .with_ecc_unique_identifier(EccPoint::default())
        .build()
}

fn signing_key_template() -> Result<Public, tss_esapi::Error> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_sign_encrypt(true)
        .build()?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_ecc_parameters(
            PublicEccParametersBuilder::new_unrestricted_signing_key(
                EccScheme::EcDsa(HashScheme::new(HashingAlgorithm::Sha256)),
                EccCurve::NistP256,
            )
            .build()?,
        )
        .with_ecc_unique_identifier(EccPoint::default())
        .build()
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

/// An ECDSA signature (r, s) in ASN.1 DER, as WebAuthn expects for ES256.
pub fn der_signature(r: &[u8], s: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(72);
    der_integer(&mut body, r);
    der_integer(&mut body, s);
    let mut out = Vec::with_capacity(body.len() + 2);
    out.push(0x30);
    out.push(u8::try_from(body.len()).unwrap_or(0));
    out.extend(body);
    out
}

fn fixed32(v: &[u8]) -> Option<[u8; 32]> {
    if v.len() > 32 {
        return None;
    }
    let mut out = [0u8; 32];
    out[32 - v.len()..].copy_from_slice(v);
    Some(out)
}

impl TpmKeyStore {
    /// Connects to the TPM behind `tcti` and derives the storage primary.
    pub fn open(tcti: &str) -> Result<Self, KeyStoreError> {
        let conf = TctiNameConf::from_str(tcti)
            .map_err(|e| KeyStoreError::Backend(format!("invalid TCTI {tcti:?}: {e}")))?;
        let mut context = Context::new(conf).map_err(|e| {
            KeyStoreError::Backend(format!("no TPM reachable through {tcti:?}: {e}"))
        })?;
        let template = storage_primary_template().map_err(tpm_error("template"))?;
        let primary = context
            .execute_with_nullauth_session(|ctx| {
                ctx.create_primary(Hierarchy::Owner, template, None, None, None, None)
            })
            .map_err(tpm_error("CreatePrimary"))?
            .key_handle;
        let manufacturer =
            Self::read_manufacturer(&mut context).unwrap_or_else(|| "unknown".into());
        Ok(Self {
            context,
            primary,
            manufacturer,
        })
    }

    fn read_manufacturer(context: &mut Context) -> Option<String> {
        use tss_esapi::constants::{CapabilityType, PropertyTag};
        use tss_esapi::structures::CapabilityData;
        let (data, _) = context
            .get_capability(
                CapabilityType::TpmProperties,
                PropertyTag::Manufacturer.into(),
                1,
            )
            .ok()?;
        let CapabilityData::TpmProperties(props) = data else {
            return None;
        };
        let value = props.find(PropertyTag::Manufacturer)?.value();
        let text: String = value
            .to_be_bytes()
            .iter()
            .filter(|b| b.is_ascii_graphic())
            .map(|&b| char::from(b))
            .collect();
        Some(text)
    }

    /// The TPM vendor ID (e.g. `IBM` for swtpm).
    pub fn manufacturer(&self) -> &str {
        &self.manufacturer
    }

    fn split_handle(handle: &KeyHandle) -> Result<(Public, Private), KeyStoreError> {
        let bytes = &handle.0;
        let (&version, rest) = bytes.split_first().ok_or(KeyStoreError::InvalidHandle)?;
        if version != HANDLE_VERSION || rest.len() < 2 {
            return Err(KeyStoreError::InvalidHandle);
        }
        let public_len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        let public = rest
            .get(2..2 + public_len)
            .ok_or(KeyStoreError::InvalidHandle)?;
        let private = rest
            .get(2 + public_len..)
            .ok_or(KeyStoreError::InvalidHandle)?;
        let public = Public::unmarshall(public).map_err(|_| KeyStoreError::InvalidHandle)?;
        let private =
            Private::try_from(private.to_vec()).map_err(|_| KeyStoreError::InvalidHandle)?;
        Ok((public, private))
    }
}

impl KeyStore for TpmKeyStore {
    fn info(&self) -> KeyStoreInfo {
        KeyStoreInfo {
            backend: "tpm",
            detail: format!("TPM 2.0, manufacturer {}", self.manufacturer),
        }
    }

    fn create_key(&mut self, algorithm: KeyAlgorithm) -> Result<CreatedKey, KeyStoreError> {
        match algorithm {
            KeyAlgorithm::Es256 => {}
        }
        let template = signing_key_template().map_err(tpm_error("template"))?;
        let primary = self.primary;
        let created = self
            .context
            .execute_with_nullauth_session(|ctx| {
                ctx.create(primary, template, None, None, None, None)
            })
            .map_err(tpm_error("Create"))?;
        let Public::Ecc { unique, .. } = &created.out_public else {
            return Err(KeyStoreError::Backend("TPM returned a non-ECC key".into()));
        };
        let public_key = P256PublicKey {
            x: fixed32(unique.x().value()).ok_or(KeyStoreError::Backend("bad x".into()))?,
            y: fixed32(unique.y().value()).ok_or(KeyStoreError::Backend("bad y".into()))?,
        };
        let public = created
            .out_public
            .marshall()
            .map_err(tpm_error("marshal"))?;
        let private = created.out_private.value();
        let mut handle = Vec::with_capacity(3 + public.len() + private.len());
        handle.push(HANDLE_VERSION);
        handle.extend_from_slice(
            &u16::try_from(public.len())
                .map_err(|_| KeyStoreError::Backend("public too long".into()))?
                .to_be_bytes(),
        );
        handle.extend_from_slice(&public);
        handle.extend_from_slice(private);
        Ok(CreatedKey {
            handle: KeyHandle(handle),
            public_key,
        })
    }

    fn sign(&mut self, handle: &KeyHandle, message: &[u8]) -> Result<Vec<u8>, KeyStoreError> {
        let (public, private) = Self::split_handle(handle)?;
        let primary = self.primary;
        let hash = digest::digest(&digest::SHA256, message);
        let digest = Digest::try_from(hash.as_ref().to_vec()).map_err(tpm_error("digest"))?;
        let validation = HashcheckTicket::try_from(TPMT_TK_HASHCHECK {
            tag: TPM2_ST_HASHCHECK,
            hierarchy: TPM2_RH_NULL,
            digest: Default::default(),
        })
        .map_err(tpm_error("ticket"))?;
        // A blob this TPM's primary cannot load was made by another TPM or was tampered with.
        let key = self
            .context
            .execute_with_nullauth_session(|ctx| ctx.load(primary, private, public))
            .map_err(|e| {
                tracing::debug!(error = %e, "the TPM refused the key blob");
                KeyStoreError::InvalidHandle
            })?;
        let signature = self.context.execute_with_nullauth_session(|ctx| {
            ctx.sign(key, digest, SignatureScheme::Null, validation)
        });
        let flushed = self.context.flush_context(key.into());
        let signature = signature.map_err(tpm_error("Sign"))?;
        flushed.map_err(tpm_error("FlushContext"))?;
        match signature {
            Signature::EcDsa(sig) => Ok(der_signature(
                sig.signature_r().value(),
                sig.signature_s().value(),
            )),
            _ => Err(KeyStoreError::Backend(
                "TPM returned a non-ECDSA signature".into(),
            )),
        }
    }

    fn delete_key(&mut self, _handle: &KeyHandle) -> Result<(), KeyStoreError> {
        // Keys are transient: nothing persists in the TPM; the wrapped blob lives only in the
        // credential record, which the caller deletes.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::der_signature;

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
}
