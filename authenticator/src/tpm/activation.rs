//! Credential activation (TPM 2.0 Part 1, "Credential Protection"): how a privacy CA learns
//! that passgate's attestation key (AK) lives in the same TPM as an endorsement key (EK) whose
//! certificate chains to the TPM's vendor, before it certifies the AK.
//!
//! 1. [`TpmKeyStore::activation_request`]: the EK's public area (the TCG default RSA 2048 EK,
//!    re-derived from the endorsement seed by `TPM2_CreatePrimary`), the EK certificate the
//!    vendor provisioned in NV (if any), and the AK's public area and identity.
//! 2. The CA checks the EK certificate against the vendor's roots and the AK's attributes
//!    (restricted signing, `fixedTPM`, `fixedParent`, `sensitiveDataOrigin`), computes the
//!    AK's name from its public area itself, and runs `TPM2_MakeCredential(EK, secret, AK
//!    name)` — on any TPM ([`make_credential`], with tss-esapi) or in software
//!    (`tpm2_makecredential -T none`). It issues the AK certificate and seals the chain under
//!    the secret ([`seal_attestation_chain`]): an [`ActivationChallenge`].
//! 3. [`TpmKeyStore::activate_attestation_chain`]: `TPM2_ActivateCredential` gives the secret
//!    back only in the TPM that holds both the EK's private key and a loaded object of the AK's
//!    name; the chain opens with it and is installed. A chain the CA sealed for another EK or
//!    another AK never opens, so it cannot be installed here.
//!
//! The sealed chain is AES-256-GCM under the 32-byte secret: a 12-byte nonce, then the
//! ciphertext and tag of the CBOR array of the DER certificates (the AK's first), with
//! [`CHAIN_AAD`] as associated data.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::{digest, rand};
use ciborium::value::Value;
use tss_esapi::abstraction::AsymmetricAlgorithmSelection;
use tss_esapi::abstraction::ek;
use tss_esapi::handles::KeyHandle as TpmKeyHandle;
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::key_bits::RsaKeyBits;
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::structures::{Digest, EncryptedSecret, IdObject, Name, Public};
use tss_esapi::traits::{Marshall, UnMarshall};
use zeroize::Zeroizing;

use super::{AttestationKeyInfo, ObjectUseError, TpmKeyStore, connect_esys, tpm_error};
use crate::api::key_store::KeyStoreError;
use crate::ctap::cbor::{self, ValueExt};

/// The length of the secret a CA protects with `TPM2_MakeCredential` (an AES-256 key).
pub const CREDENTIAL_LEN: usize = 32;

/// Associated data of a sealed attestation chain.
pub const CHAIN_AAD: &[u8] = b"passgate attestation chain v1";

/// What the authenticator hands a privacy CA to have its attestation key certified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivationRequest {
    /// The EK's marshalled `TPMT_PUBLIC` (TCG default template, RSA 2048).
    pub ek_public: Vec<u8>,
    /// The EK certificate from the TPM's NV index (DER), where the vendor provisioned one.
    pub ek_certificate: Option<Vec<u8>>,
    /// The AK's marshalled `TPMT_PUBLIC`.
    pub ak_public: Vec<u8>,
    /// The AK's public key and the TPM's identity, for the AK certificate.
    pub attestation_key: AttestationKeyInfo,
}

/// The CA's answer: the credential made for the EK and the AK's name, and the AK's
/// certificate chain sealed under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivationChallenge {
    /// `TPM2B_ID_OBJECT`'s buffer from `TPM2_MakeCredential`.
    pub credential_blob: Vec<u8>,
    /// `TPM2B_ENCRYPTED_SECRET`'s buffer from `TPM2_MakeCredential`.
    pub encrypted_secret: Vec<u8>,
    /// The chain, sealed by [`seal_attestation_chain`].
    pub sealed_chain: Vec<u8>,
}

fn backend(message: impl Into<String>) -> KeyStoreError {
    KeyStoreError::Backend(message.into())
}

/// The TPM name of a marshalled `TPMT_PUBLIC` with SHA-256 as its name algorithm: the
/// algorithm's identifier, then the digest of the public area (what `TPM2_MakeCredential`
/// binds the credential to). Refuses an AK that is not a restricted signing key held only by
/// its TPM: a CA must never certify anything else as an attestation key.
pub fn attestation_key_name(ak_public: &[u8]) -> Result<Vec<u8>, KeyStoreError> {
    let public = Public::unmarshall(ak_public)
        .map_err(|_| backend("the attestation key's public area does not parse"))?;
    let (Public::Ecc {
        object_attributes,
        name_hashing_algorithm,
        ..
    }
    | Public::Rsa {
        object_attributes,
        name_hashing_algorithm,
        ..
    }) = public
    else {
        return Err(backend("the attestation key is not an asymmetric key"));
    };
    let attestation_key = object_attributes.restricted()
        && object_attributes.sign_encrypt()
        && !object_attributes.decrypt()
        && object_attributes.fixed_tpm()
        && object_attributes.fixed_parent()
        && object_attributes.sensitive_data_origin();
    if !attestation_key {
        return Err(backend(
            "not an attestation key: restricted signing, fixedTPM, fixedParent and \
             sensitiveDataOrigin are required",
        ));
    }
    if name_hashing_algorithm != HashingAlgorithm::Sha256 {
        return Err(backend(
            "the attestation key's name algorithm is not SHA-256",
        ));
    }
    let mut name = 0x000B_u16.to_be_bytes().to_vec();
    name.extend_from_slice(digest::digest(&digest::SHA256, ak_public).as_ref());
    Ok(name)
}

/// The CA's `TPM2_MakeCredential` on a TPM of its own behind `tcti` (any TPM will do: only
/// the EK's public key and the AK's name go in): `credential` protected for the EK of
/// `request`, bound to its AK's name. Returns the credential blob and the encrypted secret.
pub fn make_credential(
    tcti: &str,
    request: &ActivationRequest,
    credential: &[u8; CREDENTIAL_LEN],
) -> Result<(Vec<u8>, Vec<u8>), KeyStoreError> {
    let name = attestation_key_name(&request.ak_public)?;
    let ek_public = Public::unmarshall(&request.ek_public)
        .map_err(|_| backend("the endorsement key's public area does not parse"))?;
    let mut context = connect_esys(tcti)?;
    let ek = context
        .execute_without_session(|ctx| ctx.load_external_public(ek_public, Hierarchy::Null))
        .map_err(tpm_error("LoadExternal (endorsement key)"))?;
    let made = Digest::try_from(credential.to_vec())
        .and_then(|credential| Ok((credential, Name::try_from(name)?)))
        .and_then(|(credential, name)| {
            context.execute_without_session(|ctx| ctx.make_credential(ek, credential, name))
        });
    let _ = context.flush_context(ek.into());
    let (blob, secret) = made.map_err(tpm_error("MakeCredential"))?;
    Ok((blob.value().to_vec(), secret.value().to_vec()))
}

/// Seals `chain` (DER certificates, the AK's first) under the activation `credential`.
pub fn seal_attestation_chain(
    credential: &[u8; CREDENTIAL_LEN],
    chain: &[Vec<u8>],
) -> Result<Vec<u8>, KeyStoreError> {
    let key = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, credential).map_err(|_| backend("AES-256-GCM key"))?,
    );
    let mut nonce = [0u8; NONCE_LEN];
    rand::fill(&mut nonce).map_err(|_| backend("no randomness"))?;
    let mut sealed = cbor::encode(&Value::Array(
        chain.iter().cloned().map(Value::Bytes).collect(),
    ));
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(CHAIN_AAD),
        &mut sealed,
    )
    .map_err(|_| backend("sealing the chain"))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Opens a chain sealed by [`seal_attestation_chain`] with the activated `credential`.
fn open_attestation_chain(credential: &[u8], sealed: &[u8]) -> Result<Vec<Vec<u8>>, KeyStoreError> {
    let unusable =
        || backend("the sealed attestation chain does not open with the activated credential");
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, credential).map_err(|_| unusable())?);
    let (nonce, ciphertext) = sealed.split_at_checked(NONCE_LEN).ok_or_else(unusable)?;
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| unusable())?;
    let mut buffer = ciphertext.to_vec();
    let plain = key
        .open_in_place(nonce, Aad::from(CHAIN_AAD), &mut buffer)
        .map_err(|_| unusable())?;
    let value: Value = ciborium::from_reader(&plain[..]).map_err(|_| unusable())?;
    value
        .ctap_array()
        .map_err(|_| unusable())?
        .into_iter()
        .map(|cert| cert.ctap_bytes().map_err(|_| unusable()))
        .collect()
}

impl TpmKeyStore {
    /// The EK primary (TCG default RSA 2048 template, endorsement hierarchy), loaded.
    fn endorsement_key(&mut self) -> Result<TpmKeyHandle, KeyStoreError> {
        // The EK, the AK and the AK's parent during its Load need three slots.
        self.tpm.flush_all();
        ek::create_ek_object_2(
            self.tpm.esys(),
            AsymmetricAlgorithmSelection::Rsa(RsaKeyBits::Rsa2048),
            None,
        )
        .map_err(tpm_error("CreatePrimary (endorsement key)"))
    }

    /// What a privacy CA needs for credential activation: the EK's public area and
    /// certificate, the AK's public area and identity (the AK is created if need be).
    pub fn activation_request(&mut self) -> Result<ActivationRequest, KeyStoreError> {
        let attestation_key = self.attestation_key()?;
        let ak_public = self
            .attestation
            .as_ref()
            .map(|state| state.public.clone())
            .ok_or_else(|| backend("no attestation key"))?;
        let ek = self.endorsement_key()?;
        let ek_public = self
            .tpm
            .esys()
            .execute_without_session(|ctx| ctx.read_public(ek))
            .map_err(tpm_error("ReadPublic (endorsement key)"))
            .and_then(|(public, _, _)| public.marshall().map_err(tpm_error("marshal")));
        let _ = self.tpm.esys().flush_context(ek.into());
        let ek_certificate = ek::retrieve_ek_pubcert(
            self.tpm.esys(),
            AsymmetricAlgorithmSelection::Rsa(RsaKeyBits::Rsa2048),
        )
        .ok();
        self.preload_pin_object();
        Ok(ActivationRequest {
            ek_public: ek_public?,
            ek_certificate,
            ak_public,
            attestation_key,
        })
    }

    /// Activates the CA's credential with this TPM's EK and AK, opens the chain sealed under
    /// it and installs it ([`Self::install_attestation_chain`]). Fails, installing nothing,
    /// when the credential was made for another EK or another AK.
    pub fn activate_attestation_chain(
        &mut self,
        challenge: &ActivationChallenge,
    ) -> Result<(), KeyStoreError> {
        self.refuse_foreign_primary()?;
        let state = self
            .attestation
            .clone()
            .ok_or_else(|| backend("no attestation key: create it first"))?;
        let blob = IdObject::try_from(challenge.credential_blob.clone())
            .map_err(|_| backend("the credential blob is malformed"))?;
        let secret = EncryptedSecret::try_from(challenge.encrypted_secret.clone())
            .map_err(|_| backend("the encrypted secret is malformed"))?;
        let ek = self.endorsement_key()?;
        let activated =
            self.tpm
                .activate_credential((&state.public, &state.private), ek, blob, secret);
        let _ = self.tpm.esys().flush_context(ek.into());
        self.preload_pin_object();
        let credential = Zeroizing::new(
            activated
                .map_err(|e| match e {
                    ObjectUseError::Load(e) => tpm_error("Load (attestation key)")(e),
                    ObjectUseError::Use(e) => backend(format!(
                        "credential activation failed: the credential was not made for this \
                         TPM's endorsement key and attestation key ({e})"
                    )),
                })?
                .value()
                .to_vec(),
        );
        let chain = open_attestation_chain(&credential, &challenge.sealed_chain)?;
        self.install_attestation_chain(chain)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

    use super::*;

    #[test]
    fn a_sealed_chain_opens_only_with_its_credential() {
        let chain = vec![b"ak certificate".to_vec(), b"intermediate".to_vec()];
        let sealed = seal_attestation_chain(&[7; CREDENTIAL_LEN], &chain).unwrap();
        assert_eq!(open_attestation_chain(&[7; 32], &sealed).unwrap(), chain);
        assert!(open_attestation_chain(&[8; 32], &sealed).is_err());
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(open_attestation_chain(&[7; 32], &tampered).is_err());
        assert!(open_attestation_chain(&[7; 32], &sealed[..NONCE_LEN]).is_err());
    }
}
