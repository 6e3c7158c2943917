//! Key attestation: `TPM2_Certify` of a credential key by passgate's attestation key (AK),
//! for WebAuthn's `tpm` attestation statement (WebAuthn L3 §8.3).
//!
//! The AK is a restricted ECDSA P-256 signing key: the TPM signs with it only structures it
//! generated itself (marked `TPM_GENERATED_VALUE`), so a signature by the AK over a
//! `TPMS_ATTEST` is the TPM's own statement that the certified key's name (a digest of its
//! public area, attributes included: `fixedTPM`, `sensitiveDataOrigin`) belongs to a key it
//! holds. It is a child of the storage primary, created once
//! ([`TpmKeyStore::attestation_key`]) and kept as its TPM-wrapped blob in the state store
//! (`tpm-attestation`), beside the certificate chain installed for it
//! ([`TpmKeyStore::install_attestation_chain`]). Like every key here it loads only on the TPM
//! that made it, so a copied state directory cannot attest anything elsewhere.
//!
//! Who certifies the AK is the deployment's business: a privacy CA that checked, by
//! credential activation (`TPM2_ActivateCredential` against the TPM's endorsement key and its
//! vendor-issued EK certificate), that the AK lives in the same TPM as that EK. The tests use
//! a local CA that also issued swtpm's EK certificate (see the TPM key store's documentation).

use aws_lc_rs::digest;
use ciborium::value::Value;
use tss_esapi::constants::PropertyTag;
use tss_esapi::structures::{Data, Public, Signature};
use tss_esapi::traits::Marshall;

use super::{TpmContext, TpmKeyStore, der_signature, templates, tpm_error};
use crate::api::key_store::{
    KeyAlgorithm, KeyAttestation, KeyHandle, KeyRelease, KeyStoreError, P256PublicKey, PublicKey,
};
use crate::ctap::cbor::{self, ValueExt};

/// Where the AK and its chain live in the state store.
pub(super) const ATTESTATION_STATE: &str = "tpm-attestation";

/// The AK's TPM-wrapped blob and the certificates installed for it.
#[derive(Clone, Default)]
pub(super) struct AttestationState {
    /// The AK's marshalled `TPMT_PUBLIC`.
    pub(super) public: Vec<u8>,
    /// The AK's `TPM2B_PRIVATE` buffer, wrapped by the storage primary.
    pub(super) private: Vec<u8>,
    /// The AK's certificate, then any intermediates (DER); empty until installed.
    pub(super) chain: Vec<Vec<u8>>,
}

impl AttestationState {
    pub(super) fn encode(&self) -> Vec<u8> {
        cbor::encode(&cbor::int_map([
            (1, Some(Value::Bytes(self.public.clone()))),
            (2, Some(Value::Bytes(self.private.clone()))),
            (
                3,
                Some(Value::Array(
                    self.chain.iter().cloned().map(Value::Bytes).collect(),
                )),
            ),
        ]))
    }

    pub(super) fn decode(bytes: &[u8]) -> Option<Self> {
        let mut p = cbor::Params::parse(bytes).ok()?;
        let public = p.take(1)?.ctap_bytes().ok()?;
        let private = p.take(2)?.ctap_bytes().ok()?;
        let chain = p
            .take(3)?
            .ctap_array()
            .ok()?
            .into_iter()
            .map(|c| c.ctap_bytes().ok())
            .collect::<Option<Vec<_>>>()?;
        Some(Self {
            public,
            private,
            chain,
        })
    }
}

/// What a CA needs to certify the AK: its public key, and the TPM's identity for the
/// certificate's subject alternative name (TCG EK Credential Profile 2.0 §3.2.9:
/// `tcg-at-tpmManufacturer`, `-tpmModel`, `-tpmVersion`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationKeyInfo {
    /// The AK's public key.
    pub public_key: P256PublicKey,
    /// `id:` and the TPM vendor ID in hex (`TPM_PT_MANUFACTURER`), e.g. `id:49424D00` (IBM).
    pub tpm_manufacturer: String,
    /// The vendor's model string (`TPM_PT_VENDOR_STRING_1..4`).
    pub tpm_model: String,
    /// `id:` and the firmware version in hex (`TPM_PT_FIRMWARE_VERSION_1`).
    pub tpm_version: String,
}

/// The COSE algorithm of the AK's signatures (ECDSA P-256 with SHA-256).
const AK_ALGORITHM: KeyAlgorithm = KeyAlgorithm::Es256;

impl TpmKeyStore {
    /// The attestation key, created (and saved in the state store) the first time, with what
    /// a CA needs to certify it.
    pub fn attestation_key(&mut self) -> Result<AttestationKeyInfo, KeyStoreError> {
        self.refuse_foreign_primary()?;
        let public = match &self.attestation {
            Some(state) => state.public.clone(),
            None => {
                let template = templates::attestation_key_template()
                    .map_err(tpm_error("template (attestation key)"))?;
                // An empty authValue: the AK signs only what the TPM generated, and
                // TPM2_Certify also needs the credential key's own authorization.
                let created = self
                    .tpm
                    .create(template, None, None)
                    .map_err(tpm_error("Create (attestation key)"))?;
                let state = AttestationState {
                    public: created
                        .out_public
                        .marshall()
                        .map_err(tpm_error("marshal"))?,
                    private: created.out_private.value().to_vec(),
                    chain: Vec::new(),
                };
                let public = state.public.clone();
                self.attestation = Some(state);
                self.save_attestation()?;
                public
            }
        };
        let public_key = match super::ecdsa::public_key(&public_area(&public)?)? {
            PublicKey::P256(key) => key,
            _ => {
                return Err(KeyStoreError::Backend(
                    "the attestation key is not a P-256 key".into(),
                ));
            }
        };
        let property = |tpm: &mut TpmContext, tag| {
            tpm.property(tag)
                .ok_or_else(|| KeyStoreError::Backend(format!("TPM property {tag:?} unreadable")))
        };
        let manufacturer = property(&mut self.tpm, PropertyTag::Manufacturer)?;
        let firmware = property(&mut self.tpm, PropertyTag::FirmwareVersion1)?;
        let mut model = String::new();
        for tag in [
            PropertyTag::VendorString1,
            PropertyTag::VendorString2,
            PropertyTag::VendorString3,
            PropertyTag::VendorString4,
        ] {
            let value = self.tpm.property(tag).unwrap_or(0);
            model.extend(
                value
                    .to_be_bytes()
                    .iter()
                    .filter(|b| b.is_ascii_graphic() || **b == b' ')
                    .map(|&b| char::from(b)),
            );
        }
        Ok(AttestationKeyInfo {
            public_key,
            tpm_manufacturer: format!("id:{manufacturer:08X}"),
            tpm_model: model.trim().to_owned(),
            tpm_version: format!("id:{firmware:08X}"),
        })
    }

    /// Installs the AK's certificate and any intermediate CA certificates (DER, the AK's
    /// first; not the root, which verifiers hold as their trust anchor and some refuse to see
    /// repeated in `x5c`); from now on [`crate::api::key_store::KeyStore::attest`] answers. The
    /// AK is created if it does not exist yet; a first certificate that does not carry the
    /// AK's public key is refused.
    pub fn install_attestation_chain(&mut self, chain: Vec<Vec<u8>>) -> Result<(), KeyStoreError> {
        if chain.is_empty() {
            return Err(KeyStoreError::Backend(
                "an attestation chain needs at least the attestation key's certificate".into(),
            ));
        }
        let public_key = self.attestation_key()?.public_key.to_sec1_uncompressed();
        // A sanity check against installing the wrong file, not a certificate validation
        // (that is the relying party's): the AK certificate's subjectPublicKeyInfo carries
        // the AK's uncompressed point as it is.
        let names_the_key = chain
            .first()
            .is_some_and(|cert| cert.windows(public_key.len()).any(|w| w == public_key));
        if !names_the_key {
            return Err(KeyStoreError::Backend(
                "the first certificate of the chain is not the attestation key's (its public \
                 key is not in it)"
                    .into(),
            ));
        }
        let state = self
            .attestation
            .as_mut()
            .ok_or_else(|| KeyStoreError::Backend("no attestation key: create it first".into()))?;
        state.chain = chain;
        self.save_attestation()
    }

    fn save_attestation(&mut self) -> Result<(), KeyStoreError> {
        if let (Some(store), Some(state)) = (self.state.as_mut(), self.attestation.as_ref()) {
            store
                .save(ATTESTATION_STATE, &state.encode())
                .map_err(|e| KeyStoreError::Backend(format!("saving TPM attestation key: {e}")))?;
        }
        Ok(())
    }

    /// Whether an AK with an installed chain is there (and the TPM is the state's own).
    pub(super) fn attestation_ready(&self) -> bool {
        !self.foreign_primary
            && self
                .attestation
                .as_ref()
                .is_some_and(|state| !state.chain.is_empty())
    }

    /// `TPM2_Certify` of the signing key behind `handle` by the AK, qualified by
    /// SHA-256(`to_be_signed`) (the hash of the AK's algorithm, as WebAuthn asks).
    pub(super) fn certify_key(
        &mut self,
        handle: &KeyHandle,
        to_be_signed: &[u8],
        release: Option<&KeyRelease>,
    ) -> Result<Option<KeyAttestation>, KeyStoreError> {
        if !self.attestation_ready() {
            return Ok(None);
        }
        let Some(state) = self.attestation.clone() else {
            return Ok(None);
        };
        let (public, private, auth) =
            Self::split_handle(handle, release, super::ObjectKind::Signing)?;
        let extra = Data::try_from(
            digest::digest(&digest::SHA256, to_be_signed)
                .as_ref()
                .to_vec(),
        )
        .map_err(tpm_error("qualifying data"))?;
        let (attest, signature) = self
            .tpm
            .certify(
                (public, private, auth),
                (&state.public, &state.private),
                extra,
            )
            .map_err(|e| match e {
                super::ObjectUseError::Load(e) => {
                    tracing::debug!(error = %e, "the TPM refused a key blob to certify");
                    KeyStoreError::InvalidHandle
                }
                super::ObjectUseError::Use(e) => tpm_error("Certify")(e),
            })?;
        // The signer took the slots of the kept objects: the PIN object comes back now, so
        // that the next PIN verification costs what it always does (one Unseal).
        self.preload_pin_object();
        let sig = match signature {
            Signature::EcDsa(sig) => {
                der_signature(sig.signature_r().value(), sig.signature_s().value())
            }
            _ => {
                return Err(KeyStoreError::Backend(
                    "TPM returned a non-ECDSA attestation signature".into(),
                ));
            }
        };
        Ok(Some(KeyAttestation {
            alg: AK_ALGORITHM.cose_id(),
            sig,
            x5c: state.chain,
            cert_info: attest.marshall().map_err(tpm_error("marshal"))?,
            pub_area: public.to_vec(),
        }))
    }
}

/// A marshalled `TPMT_PUBLIC`, unmarshalled.
fn public_area(bytes: &[u8]) -> Result<Public, KeyStoreError> {
    use tss_esapi::traits::UnMarshall;
    Public::unmarshall(bytes).map_err(|_| KeyStoreError::InvalidHandle)
}
