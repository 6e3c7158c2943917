//! A test certificate authority for TPM key attestation: a self-signed ECDSA P-256 root that
//! issues attestation key (AK) certificates exactly as WebAuthn's `tpm` format requires
//! (WebAuthn L3 §8.3.1): version 3, an empty subject, a critical subject alternative name
//! with the TPM's manufacturer, model and version (TCG EK Credential Profile 2.0 §3.2.9), the
//! extended key usage `tcg-kp-AIKCertificate` (2.23.133.8.3) and basic constraints CA=false.
//!
//! The SAN carries the three attributes twice: as a `directoryName` (the TCG profile's form,
//! which py_webauthn and SimpleWebAuthn read) and as `otherName`s of the same OIDs (the form
//! webauthn-rs 0.6 reads). Both are valid general names; verifiers skip the form they do not
//! read.
//!
//! Built with the x509-cert builder and RustCrypto's P-256 (through crypto-glue, which
//! webauthn-rs already brings): proper DER, nothing hand-encoded.

use std::str::FromStr;
use std::time::Duration;

use crypto_glue::der::asn1::{OctetString, Utf8StringRef};
use crypto_glue::der::{Any, Encode, EncodePem, pem::LineEnding};
use crypto_glue::ecdsa_p256::{
    EcdsaP256DerSignature, EcdsaP256PublicKey, EcdsaP256SigningKey, EcdsaP256VerifyingKey,
};
use crypto_glue::traits::Pkcs8EncodePrivateKey;
use crypto_glue::x509::{
    BasicConstraints, Builder, Certificate, CertificateBuilder, ExtendedKeyUsage, Extension,
    GeneralName, KeyUsage, KeyUsages, Name, ObjectIdentifier, OtherName, Profile, SerialNumber,
    SubjectAltName, SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef, TbsCertificate, Time,
    Validity,
};
pub use webauthn_rs_core::error::WebauthnError;

/// What the CA certifies of an attestation key (the fields of
/// `passgate_authenticator::tpm::AttestationKeyInfo`).
#[derive(Debug, Clone)]
pub struct AttestationKeySubject {
    /// The AK's public key, SEC1 uncompressed.
    pub public_key_sec1: Vec<u8>,
    /// `id:` and the vendor ID in hex.
    pub tpm_manufacturer: String,
    /// The vendor's model string.
    pub tpm_model: String,
    /// `id:` and the firmware version in hex.
    pub tpm_version: String,
}

const TCG_AT_TPM_MANUFACTURER: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.133.2.1");
const TCG_AT_TPM_MODEL: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.133.2.2");
const TCG_AT_TPM_VERSION: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.133.2.3");
const TCG_KP_AIK_CERTIFICATE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.133.8.3");
const SUBJECT_ALT_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.17");
const EXTENDED_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37");
const BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");
const KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.15");

/// The test CA's subject.
const CA_SUBJECT: &str = "CN=passgate test TPM CA,O=passgate tests";

/// A critical or non-critical extension holding `value`'s DER.
fn extension(oid: ObjectIdentifier, critical: bool, value: &impl Encode) -> Extension {
    Extension {
        extn_id: oid,
        critical,
        extn_value: OctetString::new(value.to_der().unwrap()).unwrap(),
    }
}

/// The root's profile: self-issued, CA=true, certificate signing.
struct RootProfile;

impl Profile for RootProfile {
    fn get_issuer(&self, subject: &Name) -> Name {
        subject.clone()
    }
    fn get_subject(&self) -> Name {
        Name::from_str(CA_SUBJECT).unwrap()
    }
    fn build_extensions(
        &self,
        _spk: SubjectPublicKeyInfoRef<'_>,
        _issuer_spk: SubjectPublicKeyInfoRef<'_>,
        _tbs: &TbsCertificate,
    ) -> Result<Vec<Extension>, crypto_glue::x509::CertBuilderError> {
        Ok(vec![
            extension(
                BASIC_CONSTRAINTS,
                true,
                &BasicConstraints {
                    ca: true,
                    path_len_constraint: None,
                },
            ),
            extension(
                KEY_USAGE,
                true,
                &KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign),
            ),
        ])
    }
}

/// An AK certificate's profile (see the module documentation).
struct AttestationKeyProfile {
    tpm: AttestationKeySubject,
}

impl Profile for AttestationKeyProfile {
    fn get_issuer(&self, _subject: &Name) -> Name {
        Name::from_str(CA_SUBJECT).unwrap()
    }
    fn get_subject(&self) -> Name {
        Name::default()
    }
    fn build_extensions(
        &self,
        _spk: SubjectPublicKeyInfoRef<'_>,
        _issuer_spk: SubjectPublicKeyInfoRef<'_>,
        _tbs: &TbsCertificate,
    ) -> Result<Vec<Extension>, crypto_glue::x509::CertBuilderError> {
        let tpm = &self.tpm;
        let directory = Name::from_str(&format!(
            "{}={},{}={},{}={}",
            TCG_AT_TPM_VERSION,
            tpm.tpm_version,
            TCG_AT_TPM_MODEL,
            tpm.tpm_model,
            TCG_AT_TPM_MANUFACTURER,
            tpm.tpm_manufacturer
        ))
        .unwrap();
        let other = |oid: ObjectIdentifier, value: &str| {
            GeneralName::OtherName(OtherName {
                type_id: oid,
                value: Any::encode_from(&Utf8StringRef::new(value).unwrap()).unwrap(),
            })
        };
        let san = SubjectAltName(vec![
            GeneralName::DirectoryName(directory),
            other(TCG_AT_TPM_MANUFACTURER, &tpm.tpm_manufacturer),
            other(TCG_AT_TPM_MODEL, &tpm.tpm_model),
            other(TCG_AT_TPM_VERSION, &tpm.tpm_version),
        ]);
        Ok(vec![
            // Critical: the subject is empty (RFC 5280 §4.2.1.6).
            extension(SUBJECT_ALT_NAME, true, &san),
            extension(
                EXTENDED_KEY_USAGE,
                true,
                &ExtendedKeyUsage(vec![TCG_KP_AIK_CERTIFICATE]),
            ),
            extension(
                BASIC_CONSTRAINTS,
                true,
                &BasicConstraints {
                    ca: false,
                    path_len_constraint: None,
                },
            ),
            extension(
                KEY_USAGE,
                true,
                &KeyUsage(KeyUsages::DigitalSignature.into()),
            ),
        ])
    }
}

/// The test CA; see the module documentation.
pub struct TestCa {
    key: EcdsaP256SigningKey,
    cert: Certificate,
}

fn validity() -> Validity {
    // From a day ago (clock skew), for ten years.
    let now = std::time::SystemTime::now() - Duration::from_secs(86_400);
    let not_before = Time::try_from(now).unwrap();
    let not_after = Time::try_from(now + Duration::from_secs(10 * 365 * 86_400)).unwrap();
    Validity::new(not_before, not_after)
}

fn serial(n: u8) -> SerialNumber {
    SerialNumber::new(&[0x01, n, 0x50, 0x47]).unwrap()
}

impl TestCa {
    /// A fresh root with a new P-256 key.
    pub fn new() -> Self {
        let key = EcdsaP256SigningKey::from(crypto_glue::ecdsa_p256::new_key());
        let verifying = EcdsaP256VerifyingKey::from(&key);
        let spki = SubjectPublicKeyInfoOwned::from_key(&verifying).unwrap();
        let cert = CertificateBuilder::new(RootProfile, serial(1), validity(), spki)
            .unwrap()
            .build::<EcdsaP256SigningKey, EcdsaP256DerSignature>(&key)
            .unwrap();
        Self { key, cert }
    }

    /// The root certificate, DER.
    pub fn cert_der(&self) -> Vec<u8> {
        self.cert.to_der().unwrap()
    }

    /// The root certificate, PEM.
    pub fn cert_pem(&self) -> String {
        self.cert.to_pem(LineEnding::LF).unwrap()
    }

    /// The root's private key, PKCS#8 PEM (for swtpm's local CA, which issues the EK
    /// certificate with it).
    pub fn key_pem(&self) -> String {
        crypto_glue::ecdsa_p256::EcdsaP256PrivateKey::from(&self.key)
            .to_pkcs8_pem(LineEnding::LF)
            .unwrap()
            .to_string()
    }

    /// An AK certificate for `ak` (DER), as WebAuthn's `tpm` format requires.
    pub fn issue_attestation_key(&self, ak: &AttestationKeySubject) -> Vec<u8> {
        let public = EcdsaP256PublicKey::from_sec1_bytes(&ak.public_key_sec1).unwrap();
        let spki = SubjectPublicKeyInfoOwned::from_key(&public).unwrap();
        let profile = AttestationKeyProfile { tpm: ak.clone() };
        CertificateBuilder::new(profile, serial(2), validity(), spki)
            .unwrap()
            .build::<EcdsaP256SigningKey, EcdsaP256DerSignature>(&self.key)
            .unwrap()
            .to_der()
            .unwrap()
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

/// A registration through webauthn-rs 0.6 (our relying party's library) that requires
/// attestation by `ca_der` (a trust anchor for `aaguid`'s devices): `make` gets the
/// registration's challenge, creates the credential and returns the attestation object and
/// the credential ID; the client data is built here for `origin`. Returns webauthn-rs's
/// verdict.
pub fn webauthn_rs_register_attested(
    rp_id: &str,
    origin: &str,
    ca_der: &[u8],
    aaguid: [u8; 16],
    make: impl FnOnce(&[u8; 32]) -> (Vec<u8>, Vec<u8>),
) -> Result<webauthn_rs_core::proto::Credential, WebauthnError> {
    use crate::soft_credential::{b64, client_data, unb64};
    use aws_lc_rs::digest::{SHA256, digest};
    use webauthn_rs_core::proto::{
        AttestationCaListBuilder, AttestationConveyancePreference, RegisterPublicKeyCredential,
        UserVerificationPolicy,
    };

    let core = webauthn_rs_core::WebauthnCore::new_unsafe_experts_only(
        "passgate",
        rp_id,
        vec![url::Url::parse(origin).unwrap()],
        Duration::from_secs(60),
        Some(false),
        Some(false),
    );
    let builder = core
        .new_challenge_register_builder(&[9u8; 16], "alice", "Alice")
        .unwrap()
        .attestation(AttestationConveyancePreference::Direct)
        .user_verification_policy(UserVerificationPolicy::Discouraged_DO_NOT_USE);
    let (ccr, state) = core.generate_challenge_register(builder).unwrap();
    let options = serde_json::to_value(&ccr).unwrap()["publicKey"].clone();
    let challenge = unb64(options["challenge"].as_str().unwrap());
    let client_data_json = client_data("webauthn.create", &challenge, origin, Some(false));
    let mut client_data_hash = [0u8; 32];
    client_data_hash.copy_from_slice(digest(&SHA256, &client_data_json).as_ref());
    let (attestation_object, id) = make(&client_data_hash);
    let response = serde_json::json!({
        "id": b64(&id),
        "rawId": b64(&id),
        "type": "public-key",
        "extensions": {},
        "response": {
            "clientDataJSON": b64(&client_data_json),
            "attestationObject": b64(&attestation_object),
            "transports": ["internal"],
        },
    });
    let reg: RegisterPublicKeyCredential = serde_json::from_value(response).unwrap();
    let mut cas = AttestationCaListBuilder::new();
    cas.insert_device_der(
        ca_der,
        uuid::Uuid::from_bytes(aaguid),
        "passgate (TPM)".into(),
        Default::default(),
    )
    .unwrap();
    core.register_credential(&reg, &state, Some(&cas.build()))
}
