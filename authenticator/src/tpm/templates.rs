//! The templates of the objects passgate creates in a TPM.

use tss_esapi::attributes::{ObjectAttributes, ObjectAttributesBuilder};
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::structures::{
    Digest, EccPoint, EccScheme, HashScheme, KeyDerivationFunctionScheme, KeyedHashScheme, Public,
    PublicBuilder, PublicEccParametersBuilder, PublicKeyedHashParameters,
    SymmetricDefinitionObject,
};

/// The storage primary: a restricted ECC P-256 decryption key (AES-128-CFB for its children),
/// `noDA`, empty authValue. Its public key also salts passgate's sessions.
pub(crate) fn storage_primary_template() -> Result<Public, tss_esapi::Error> {
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

/// A credential signing key for ES256: unrestricted P-256 (ECDSA with SHA-256), `noDA` (its
/// authValue is random; a failure must not count towards the PIN's lockout).
pub fn signing_key_template() -> Result<Public, tss_esapi::Error> {
    ecdsa_key_template(EccCurve::NistP256)
}

/// A credential signing key for ES384: unrestricted P-384 (ECDSA with SHA-384).
pub fn signing_key_template_p384() -> Result<Public, tss_esapi::Error> {
    ecdsa_key_template(EccCurve::NistP384)
}

/// An unrestricted signing key on `curve`, for ECDSA with `hash` (given at each TPM2_Sign:
/// the template's scheme is `TPM_ALG_NULL`, as WebAuthn's `tpm` verifiers expect of a
/// credential key's `pubArea` — py_webauthn and webauthn-rs parse `TPMS_ECC_PARMS` without
/// scheme details). The name algorithm stays SHA-256 for every key: a key's name is what
/// `TPM2_Certify` attests, and WebAuthn verifiers recompute it (SHA-256 is the one every
/// verifier supports).
fn ecdsa_key_template(curve: EccCurve) -> Result<Public, tss_esapi::Error> {
    let attributes = bound_signing_key_attributes(false)?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_ecc_parameters(
            // tss-esapi's builder checks a signing key's scheme against the sign-capable
            // ones (TPM_ALG_NULL is not among them, though the TPM accepts it): built as a
            // parameter set without the builder's signing flag; the object's `sign`
            // attribute above is what makes it a signing key.
            PublicEccParametersBuilder::new()
                .with_ecc_scheme(EccScheme::Null)
                .with_curve(curve)
                .with_key_derivation_function_scheme(KeyDerivationFunctionScheme::Null)
                .build()?,
        )
        .with_ecc_unique_identifier(EccPoint::default())
        .build()
}

/// The attributes of a signing key bound to this TPM (`fixedTPM`, `fixedParent`,
/// `sensitiveDataOrigin`), used with its authValue, `noDA`; `restricted` for the attestation
/// key, which signs only structures the TPM generated.
fn bound_signing_key_attributes(restricted: bool) -> Result<ObjectAttributes, tss_esapi::Error> {
    ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_no_da(true)
        .with_restricted(restricted)
        .with_sign_encrypt(true)
        .build()
}

/// An hmac-secret key: a keyedHash HMAC-SHA-256 key whose secret the TPM generates
/// (`sensitiveDataOrigin`) and never exports (`fixedTPM`, `fixedParent`). `noDA` as for
/// signing keys: its authValue is random, and a failure must not count towards the PIN's
/// lockout.
pub(crate) fn hmac_key_template() -> Result<Public, tss_esapi::Error> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_no_da(true)
        .with_sign_encrypt(true)
        .build()?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::KeyedHash)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_keyed_hash_parameters(PublicKeyedHashParameters::new(
            KeyedHashScheme::HMAC_SHA_256,
        ))
        .with_keyed_hash_unique_identifier(Digest::default())
        .build()
}

/// The PIN object: sealed data (no sign/decrypt), authorized by its authValue, and — unlike
/// every other object here — subject to dictionary-attack protection (no `noDA`).
pub(crate) fn pin_object_template() -> Result<Public, tss_esapi::Error> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_user_with_auth(true)
        .with_no_da(false)
        .build()?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::KeyedHash)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_keyed_hash_parameters(PublicKeyedHashParameters::new(KeyedHashScheme::Null))
        .with_keyed_hash_unique_identifier(Digest::default())
        .build()
}

/// The attestation key (AK): a restricted ECDSA P-256 signing key with SHA-256 (it signs only
/// structures the TPM generated, such as `TPM2_Certify`'s `TPMS_ATTEST`), `noDA`, empty
/// authValue, bound to this TPM (`fixedTPM`, `fixedParent`, `sensitiveDataOrigin`).
pub(crate) fn attestation_key_template() -> Result<Public, tss_esapi::Error> {
    let attributes = bound_signing_key_attributes(true)?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_ecc_parameters(
            PublicEccParametersBuilder::new_unrestricted_signing_key(
                EccScheme::EcDsa(HashScheme::new(HashingAlgorithm::Sha256)),
                EccCurve::NistP256,
            )
            .with_restricted(true)
            .build()?,
        )
        .with_ecc_unique_identifier(EccPoint::default())
        .build()
}
