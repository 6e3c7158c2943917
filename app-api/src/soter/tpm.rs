//! The SOTER device key in a TPM 2.0: an RSA-2048 key created under passgate's storage
//! primary (the key store's own, re-derived from the TPM's seed, so only this TPM can load the
//! key's wrapped blob).
//!
//! The key is unrestricted, sign + decrypt, with the NULL scheme: the TPM then performs the raw
//! private operation (TPM2_RSA_Decrypt, NULL scheme) on an EMSA-PSS encoding built in
//! software with SOTER's 20-byte salt (the TPM's own RSASSA-PSS would choose its own salt
//! length). Its authorization value is derived from the UV-gated hmac-secret output, so the
//! TPM uses it only after a verification; it is `noDA`, so these uses never touch the
//! dictionary-attack counter that guards the PIN.
//!
//! A swtpm socket serves one client connection at a time: the TPM is opened for each
//! operation and closed after it. The storage primary is persistent (see
//! [`TpmContext`]), so opening costs a `ReadPublic`, not a `CreatePrimary`.
//!
//! When SOTER keys are in the TPM, SOTER's device counter is the TPM NV counter of
//! [`next_counter`].

use passgate_authenticator::tpm::{
    Encrypt, ObjectUseError, Residency, TpmContext, connect_esys, nv_counter,
};
use tss_esapi::attributes::ObjectAttributesBuilder;
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::key_bits::RsaKeyBits;
use tss_esapi::structures::{
    Auth, Data, Public, PublicBuilder, PublicKeyRsa, PublicRsaParametersBuilder,
    RsaDecryptionScheme, RsaExponent, RsaScheme,
};
use tss_esapi::traits::{Marshall, UnMarshall};
use zeroize::Zeroizing;

use super::key::{KeyError, StoredKey, spki_from_parts};

fn tpm(what: &'static str) -> impl FnOnce(tss_esapi::Error) -> KeyError {
    move |e| KeyError::Tpm(format!("{what}: {e}"))
}

fn rsa_key_template() -> Result<Public, tss_esapi::Error> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_decrypt(true)
        .with_sign_encrypt(true)
        .with_no_da(true)
        .build()?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Rsa)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_rsa_parameters(
            PublicRsaParametersBuilder::new()
                .with_scheme(RsaScheme::Null)
                .with_key_bits(RsaKeyBits::Rsa2048)
                .with_exponent(RsaExponent::default())
                .with_is_signing_key(true)
                .with_is_decryption_key(true)
                .with_restricted(false)
                .build()?,
        )
        .with_rsa_unique_identifier(PublicKeyRsa::default())
        .build()
}

fn open(tcti: &str) -> Result<TpmContext, KeyError> {
    TpmContext::connect(tcti, false).map_err(|e| KeyError::Tpm(e.to_string()))
}

/// The next value of SOTER's device counter, from the TPM's NV counter
/// ([`passgate_authenticator::tpm::nv_counter`]): strictly increasing whatever happens to
/// the state directory.
pub(crate) fn next_counter(tcti: &str) -> Result<u64, KeyError> {
    let mut context = connect_esys(tcti).map_err(|e| KeyError::Tpm(e.to_string()))?;
    nv_counter::increment(&mut context, nv_counter::SOTER_COUNTER_INDEX)
        .map_err(|e| KeyError::Tpm(e.to_string()))
}

/// Creates the RSA key in the TPM with authorization value `auth`.
pub(crate) fn create(tcti: &str, auth: &Zeroizing<[u8; 32]>) -> Result<StoredKey, KeyError> {
    let mut session = open(tcti)?;
    let template = rsa_key_template().map_err(tpm("template"))?;
    let auth = Auth::try_from(auth.to_vec()).map_err(tpm("auth"))?;
    // The authValue reaches the TPM parameter-encrypted in the salted session.
    let created = session
        .create(template, Some(auth), None)
        .map_err(tpm("Create"))?;
    let Public::Rsa {
        unique, parameters, ..
    } = &created.out_public
    else {
        return Err(KeyError::Tpm("the TPM made a key of another type".into()));
    };
    let exponent = match parameters.exponent().value() {
        0 => 65_537,
        e => e,
    };
    let spki = spki_from_parts(unique.value(), exponent)?;
    let public = created.out_public.marshall().map_err(tpm("marshal"))?;
    Ok(StoredKey::Tpm {
        spki: crate::b64(&spki),
        public: crate::b64(&public),
        private: crate::b64(created.out_private.value()),
    })
}

/// `em^d mod n` in the TPM: loads the key, presents `auth`, TPM2_RSA_Decrypt (NULL scheme).
pub(crate) fn raw_private(
    tcti: &str,
    public: &[u8],
    private: &[u8],
    auth: &Zeroizing<[u8; 32]>,
    em: &[u8],
) -> Result<Vec<u8>, KeyError> {
    if Public::unmarshall(public).is_err() {
        return Err(KeyError::Invalid("TPM public area"));
    }
    let mut session = open(tcti)?;
    let input = PublicKeyRsa::try_from(em.to_vec()).map_err(tpm("input"))?;
    let auth = Auth::try_from(auth.to_vec()).map_err(tpm("auth"))?;
    // Load (a blob this TPM's primary cannot load was made by another TPM or was modified),
    // then TPM2_RSA_Decrypt authorized by the salted session's HMAC.
    let output = session
        .with_object(
            public,
            private,
            auth,
            Residency::Cached,
            Encrypt::Neither,
            |ctx, key| ctx.rsa_decrypt(key, input, RsaDecryptionScheme::Null, Data::default()),
        )
        .map_err(|e| match e {
            ObjectUseError::Load(e) => {
                KeyError::Tpm(format!("the TPM refused the key (another TPM?): {e}"))
            }
            ObjectUseError::Use(e) => KeyError::Tpm(format!("RSA_Decrypt: {e}")),
        })?;
    let mut signature = output.value().to_vec();
    // The TPM returns the integer without leading zeros; a signature is modulus-sized.
    while signature.len() < 256 {
        signature.insert(0, 0);
    }
    Ok(signature)
}
