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
//! operation and closed after it.

use tss_esapi::Context;
use tss_esapi::attributes::ObjectAttributesBuilder;
use tss_esapi::handles::KeyHandle;
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::key_bits::RsaKeyBits;
use tss_esapi::structures::{
    Auth, Data, Private, Public, PublicBuilder, PublicKeyRsa, PublicRsaParametersBuilder,
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

/// An open TPM with its storage primary; flushed and closed on drop.
struct Session {
    context: Context,
    primary: KeyHandle,
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.context.flush_context(self.primary.into());
    }
}

fn open(tcti: &str) -> Result<Session, KeyError> {
    let (context, primary) = passgate_authenticator::tpm::open_storage_primary(tcti)
        .map_err(|e| KeyError::Tpm(e.to_string()))?;
    Ok(Session { context, primary })
}

/// Creates the RSA key in the TPM with authorization value `auth`.
pub(crate) fn create(tcti: &str, auth: &Zeroizing<[u8; 32]>) -> Result<StoredKey, KeyError> {
    let mut session = open(tcti)?;
    let template = rsa_key_template().map_err(tpm("template"))?;
    let primary = session.primary;
    let auth = Auth::try_from(auth.to_vec()).map_err(tpm("auth"))?;
    let created = session
        .context
        .execute_with_nullauth_session(|ctx| {
            ctx.create(primary, template, Some(auth), None, None, None)
        })
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
    let public = Public::unmarshall(public).map_err(|_| KeyError::Invalid("TPM public area"))?;
    let private =
        Private::try_from(private.to_vec()).map_err(|_| KeyError::Invalid("TPM private area"))?;
    let mut session = open(tcti)?;
    let primary = session.primary;
    // A blob this TPM's primary cannot load was made by another TPM or was modified.
    let key = session
        .context
        .execute_with_nullauth_session(|ctx| ctx.load(primary, private, public))
        .map_err(|e| KeyError::Tpm(format!("the TPM refused the key (another TPM?): {e}")))?;
    let input = PublicKeyRsa::try_from(em.to_vec()).map_err(tpm("input"))?;
    let auth = Auth::try_from(auth.to_vec()).map_err(tpm("auth"))?;
    let context = &mut session.context;
    let result = context.tr_set_auth(key.into(), auth).and_then(|()| {
        context.execute_with_nullauth_session(|ctx| {
            ctx.rsa_decrypt(key, input, RsaDecryptionScheme::Null, Data::default())
        })
    });
    let flushed = context.flush_context(key.into());
    let output = result.map_err(tpm("RSA_Decrypt"))?;
    flushed.map_err(tpm("FlushContext"))?;
    let mut signature = output.value().to_vec();
    // The TPM returns the integer without leading zeros; a signature is modulus-sized.
    while signature.len() < 256 {
        signature.insert(0, 0);
    }
    Ok(signature)
}
