//! [`AppDevice`]: the CTAP 2.1 client the app APIs run on. It speaks to passgate's authenticator
//! in this process ([`passgate_client::InProcess`]) or over CTAPHID/TCP ([`passgate_client::TcpCtapHid`]) and keeps every CTAP
//! status, because the app APIs must tell a wrong finger (`authenticationFailed`) from a
//! locked-out sensor (`biometryLockout`) — distinctions a WebAuthn `NotAllowedError` erases.
//!
//! Every operation that the app APIs gate on the user goes through one of two verifications:
//! the authenticator's built-in method (`options.uv = true`, a fingerprint through fprintd) or
//! a pinUvAuthToken obtained with the PIN. Both make the authenticator set UV and, for
//! hmac-secret, use the credential's *with-UV* secret; neither can be faked by this client.

use std::sync::{Arc, Mutex, PoisonError};

use ciborium::value::Value;
use passgate_client::pin::SharedSecret;
use passgate_client::{CtapClient, CtapTransport};
use passgate_platform_api::ctap_handler::LocalAuthenticator;
use passgate_platform_api::user_verifier::{Interaction, VerifierStatus};
use passgate_proto::ctap::data::{CredentialDescriptor, RpEntity, UserEntity};
use passgate_proto::ctap::extensions::ExtensionOutputs;
use passgate_proto::ctap::{Permissions, get_assertion, make_credential};
use passgate_proto::{AuthenticatorData, Flags};
use zeroize::Zeroizing;

/// credProtect level 3: the credential is usable only with user verification.
pub const CRED_PROTECT_UV_REQUIRED: u8 =
    passgate_proto::ctap::extensions::cred_protect::UV_REQUIRED;

/// The extension that binds a credential to the current biometric set (proto's one name).
pub const BIOMETRIC_SET_EXTENSION: &str = passgate_proto::ctap::extensions::BIOMETRIC_SET;

/// Why a CTAP exchange failed: the CTAP client's error, which keeps every status.
pub type DeviceError = passgate_client::ClientError;

/// What getInfo says (user verification, PIN, extensions), as the CTAP client reads it.
pub use passgate_client::AuthenticatorInfo as Info;

/// A pinUvAuthToken obtained with the PIN, for one operation. Zeroized on drop.
pub use passgate_client::PinToken;

/// How an operation verifies the user.
#[derive(Debug, Clone, Copy)]
pub enum Verification<'a> {
    /// The authenticator's built-in method (a fingerprint scan).
    Builtin,
    /// A pinUvAuthToken obtained with the PIN.
    Pin(&'a PinToken),
    /// No verification (presence only); the authenticator decides whether that is enough.
    None,
}

/// A makeCredential for the app APIs: a non-discoverable ES256 credential.
#[derive(Debug, Clone)]
pub struct CreateRequest<'a> {
    /// The RP ID namespace (`passgate-app:<caller>`).
    pub rp_id: &'a str,
    /// The user handle (what the credential is for).
    pub user_id: &'a [u8],
    /// A readable account name for the authenticator's prompt.
    pub user_name: &'a str,
    /// SHA-256 of the client data.
    pub client_data_hash: [u8; 32],
    /// How the user is verified.
    pub verification: Verification<'a>,
    /// credProtect level, if any.
    pub cred_protect: Option<u8>,
    /// Bind the credential to the current biometric set (needs a biometric verification).
    pub biometric_set: bool,
    /// Enable hmac-secret, and with a salt evaluate it at creation (hmac-secret-mc).
    pub hmac_secret: Option<Option<[u8; 32]>>,
}

/// A created credential.
#[derive(Debug)]
pub struct Created {
    /// The credential ID.
    pub credential_id: Vec<u8>,
    /// The COSE public key.
    pub public_key: Value,
    /// The authenticator data flags.
    pub flags: Flags,
    /// The hmac-secret-mc output for the salt (32 bytes), when asked for.
    pub hmac_output: Option<Zeroizing<Vec<u8>>>,
}

/// A getAssertion on one credential.
#[derive(Debug, Clone)]
pub struct AssertRequest<'a> {
    /// The RP ID.
    pub rp_id: &'a str,
    /// The credential.
    pub credential_id: &'a [u8],
    /// SHA-256 of the client data.
    pub client_data_hash: [u8; 32],
    /// How the user is verified.
    pub verification: Verification<'a>,
    /// The hmac-secret salt, when its output is wanted.
    pub hmac_salt: Option<[u8; 32]>,
}

/// An assertion.
#[derive(Debug)]
pub struct Assertion {
    /// The authenticator data as signed.
    pub auth_data: Vec<u8>,
    /// The ES256 signature (DER) over authenticator data || client data hash.
    pub signature: Vec<u8>,
    /// The flags.
    pub flags: Flags,
    /// The signature counter.
    pub sign_count: u32,
    /// The hmac-secret output (32 bytes), when a salt was given.
    pub hmac_output: Option<Zeroizing<Vec<u8>>>,
}

/// The authenticator the app APIs use, and (in this process) its platform for status.
#[derive(Debug)]
pub struct AppDevice {
    client: CtapClient,
}

impl AppDevice {
    /// An authenticator in this process: status comes from its verifier directly.
    pub fn in_process<A: LocalAuthenticator + 'static>(authenticator: Arc<Mutex<A>>) -> Self {
        Self {
            client: CtapClient::in_process(authenticator),
        }
    }

    /// An authenticator behind any transport (e.g. `TcpCtapHid` to `passgate authenticator
    /// serve`): status comes from getInfo.
    pub fn remote(transport: Box<dyn CtapTransport>) -> Self {
        Self {
            client: CtapClient::remote(transport),
        }
    }

    /// The CTAP client underneath.
    pub fn client(&self) -> &CtapClient {
        &self.client
    }

    /// authenticatorGetInfo.
    pub fn info(&self) -> Result<Info, DeviceError> {
        self.client.info()
    }

    fn with_local<T>(&self, f: impl FnOnce(&dyn LocalAuthenticator) -> T) -> Option<T> {
        self.client
            .local()
            .map(|a| f(&*a.lock().unwrap_or_else(PoisonError::into_inner)))
    }

    /// The verifier's own status, for an authenticator in this process.
    pub fn verifier_status(&self) -> Option<VerifierStatus> {
        self.with_local(|a| a.verifier_status())
    }

    /// The finger that matched in the last fingerprint verification, for an authenticator in
    /// this process, when its sensor said which (see `UserVerifier::matched_template`).
    pub fn matched_template(&self) -> Option<String> {
        self.with_local(|a| a.matched_template()).flatten()
    }

    /// The identity of the current biometric enrollment, for an authenticator in this process.
    pub fn enrollment_state(&self) -> Option<[u8; 32]> {
        self.with_local(|a| a.enrollment_state()).flatten()
    }

    /// What the key store is (`software`, `tpm`) and its detail, in this process.
    pub fn key_store_info(&self) -> Option<(String, String)> {
        self.with_local(|a| {
            let info = a.key_store_info();
            (info.backend.to_owned(), info.detail)
        })
    }

    /// Built-in verifications left before lockout (`None` without a built-in method).
    pub fn uv_retries(&self) -> Result<Option<u8>, DeviceError> {
        self.client.uv_retries()
    }

    /// PIN tries left.
    pub fn pin_retries(&self) -> Result<u8, DeviceError> {
        self.client.pin_retries()
    }

    /// A pinUvAuthToken for `permissions` on `rp_id`, from the PIN (subcommand 0x09). A wrong
    /// PIN is `Status(PIN_INVALID)`; the authenticator counts it.
    pub fn pin_token(
        &self,
        pin_text: &str,
        permissions: Permissions,
        rp_id: &str,
        interaction: &Interaction,
    ) -> Result<PinToken, DeviceError> {
        self.client
            .pin_token(pin_text, permissions, rp_id, interaction)
    }

    /// Sets the first PIN (tests and setup).
    pub fn set_pin(&self, new_pin: &str) -> Result<(), DeviceError> {
        self.client.set_pin(new_pin)
    }

    /// The decrypted 32-byte output `output` of hmac-secret(-mc), when a secret was shared.
    fn hmac_output(
        secret: Option<&SharedSecret>,
        output: Option<&[u8]>,
        name: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, DeviceError> {
        let Some(secret) = secret else {
            return Ok(None);
        };
        let Some(enc) = output else {
            return Err(malformed(format!("no {name} output")));
        };
        let output = secret.decrypt(enc)?;
        if output.len() != 32 {
            return Err(malformed(format!("{name} output is not 32 bytes")));
        }
        Ok(Some(output))
    }

    /// authenticatorMakeCredential for a non-discoverable ES256 credential.
    pub fn make_credential(
        &self,
        request: &CreateRequest<'_>,
        interaction: &Interaction,
    ) -> Result<Created, DeviceError> {
        let mut ctap_request = make_credential::Request::new(
            &request.client_data_hash,
            RpEntity {
                id: request.rp_id.to_owned(),
                name: Some("passgate app".to_owned()),
            },
            UserEntity {
                id: request.user_id.to_vec(),
                name: Some(request.user_name.to_owned()),
                display_name: None,
            },
            &[-7],
        );
        let extensions = &mut ctap_request.extensions;
        let mut secret = None;
        if let Some(salt) = &request.hmac_secret {
            extensions.hmac_secret = Some(true);
            if let Some(salt) = salt {
                let shared = self.client.shared_secret(interaction)?;
                extensions.hmac_secret_mc = Some(shared.hmac_secret_input(salt)?);
                secret = Some(shared);
            }
        }
        extensions.cred_protect = request.cred_protect;
        if request.biometric_set {
            extensions
                .other
                .push((BIOMETRIC_SET_EXTENSION.to_owned(), Value::Bool(true)));
        }
        ctap_request.options.rk = Some(false);
        match request.verification {
            Verification::Builtin => ctap_request.options.uv = Some(true),
            Verification::Pin(token) => {
                ctap_request.pin_uv_auth = Some(token.authorise(&request.client_data_hash));
            }
            Verification::None => {}
        }
        let response = self.client.make_credential(&ctap_request, interaction)?;
        let auth_data = AuthenticatorData::parse(&response.auth_data)
            .map_err(|e| malformed(format!("bad authenticator data: {e}")))?;
        let outputs = extension_outputs(&auth_data)?;
        let attested = auth_data
            .attested_credential_data
            .ok_or_else(|| malformed("no attested credential data"))?;
        let hmac_output = Self::hmac_output(
            secret.as_ref(),
            outputs.hmac_secret_mc.as_deref(),
            "hmac-secret-mc",
        )?;
        Ok(Created {
            credential_id: attested.credential_id,
            public_key: attested.public_key,
            flags: auth_data.flags,
            hmac_output,
        })
    }

    /// authenticatorGetAssertion on one credential, with presence.
    pub fn get_assertion(
        &self,
        request: &AssertRequest<'_>,
        interaction: &Interaction,
    ) -> Result<Assertion, DeviceError> {
        let mut ctap_request =
            get_assertion::Request::new(request.rp_id, &request.client_data_hash);
        ctap_request.allow_list = vec![CredentialDescriptor::public_key(request.credential_id)];
        let mut secret = None;
        if let Some(salt) = &request.hmac_salt {
            let shared = self.client.shared_secret(interaction)?;
            ctap_request.extensions.hmac_secret = Some(shared.hmac_secret_input(salt)?);
            secret = Some(shared);
        }
        ctap_request.options.up = Some(true);
        match request.verification {
            Verification::Builtin => ctap_request.options.uv = Some(true),
            Verification::Pin(token) => {
                ctap_request.pin_uv_auth = Some(token.authorise(&request.client_data_hash));
            }
            Verification::None => {}
        }
        let response = self.client.get_assertion(&ctap_request, interaction)?;
        let auth_data = AuthenticatorData::parse(&response.auth_data)
            .map_err(|e| malformed(format!("bad authenticator data: {e}")))?;
        if !passgate_client::is_rp_id_hash(&auth_data.rp_id_hash, request.rp_id) {
            return Err(malformed("the assertion is for another RP ID"));
        }
        let outputs = extension_outputs(&auth_data)?;
        let hmac_output = Self::hmac_output(
            secret.as_ref(),
            outputs.hmac_secret.as_ref().and_then(|o| o.bytes()),
            "hmac-secret",
        )?;
        Ok(Assertion {
            flags: auth_data.flags,
            sign_count: auth_data.sign_count,
            auth_data: response.auth_data,
            signature: response.signature,
            hmac_output,
        })
    }
}

fn malformed(what: impl std::fmt::Display) -> DeviceError {
    DeviceError::protocol(format!("the authenticator's answer is malformed: {what}"))
}

fn extension_outputs(auth_data: &AuthenticatorData) -> Result<ExtensionOutputs, DeviceError> {
    match &auth_data.extensions {
        Some(map) => Ok(ExtensionOutputs::from_value(map.clone())?),
        None => Ok(ExtensionOutputs::default()),
    }
}

/// The UV flag of authenticator data.
pub fn user_verified(flags: Flags) -> bool {
    flags.user_verified()
}

/// The SubjectPublicKeyInfo (DER) of a COSE P-256 key.
pub fn cose_to_spki(key: &Value) -> Option<Vec<u8>> {
    passgate_proto::cose::to_spki(key)
}
