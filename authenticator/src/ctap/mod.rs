//! The CTAP 2.1 command layer: one file per command, dispatched by [`Authenticator::handle`].

mod bio_enrollment;
pub use passgate_proto::ctap::cbor;
mod client_pin;
mod config;
mod credential_management;
pub mod data;
mod get_assertion;
mod get_info;
mod large_blobs;
mod make_credential;
pub use passgate_proto::ctap::pin_protocol;
mod reset;
mod selection;
pub mod status;
#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

use crate::api::credential_store::StoreError;
use crate::api::user_verifier::{Interaction, UserActionError};
use crate::env::Env;
pub use client_pin::{PinRuntime, PinState, permission};
pub use get_assertion::PendingAssertions;
pub use status::StatusCode;

/// passgate's AAGUID (bc5e712f-3ad4-41a7-a970-289c9ab407c9).
pub const PASSGATE_AAGUID: [u8; 16] = [
    0xbc, 0x5e, 0x71, 0x2f, 0x3a, 0xd4, 0x41, 0xa7, 0xa9, 0x70, 0x28, 0x9c, 0x9a, 0xb4, 0x07, 0xc9,
];

/// CTAP command bytes (CTAP 2.1 §6).
pub mod command {
    /// authenticatorMakeCredential.
    pub const MAKE_CREDENTIAL: u8 = 0x01;
    /// authenticatorGetAssertion.
    pub const GET_ASSERTION: u8 = 0x02;
    /// authenticatorGetInfo.
    pub const GET_INFO: u8 = 0x04;
    /// authenticatorClientPIN.
    pub const CLIENT_PIN: u8 = 0x06;
    /// authenticatorReset.
    pub const RESET: u8 = 0x07;
    /// authenticatorGetNextAssertion.
    pub const GET_NEXT_ASSERTION: u8 = 0x08;
    /// authenticatorBioEnrollment.
    pub const BIO_ENROLLMENT: u8 = 0x09;
    /// authenticatorCredentialManagement.
    pub const CREDENTIAL_MANAGEMENT: u8 = 0x0a;
    /// authenticatorSelection.
    pub const SELECTION: u8 = 0x0b;
    /// authenticatorLargeBlobs.
    pub const LARGE_BLOBS: u8 = 0x0c;
    /// authenticatorConfig.
    pub const CONFIG: u8 = 0x0d;
    /// The CTAP 2.1 pre-release credential management command, still used by some platforms.
    pub const CREDENTIAL_MANAGEMENT_PREVIEW: u8 = 0x41;
}

/// Attestation statement formats the authenticator can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttestationFormat {
    /// No attestation (`fmt: "none"`, empty statement).
    None,
    /// Packed self-attestation: signed by the credential key itself, no certificate.
    PackedSelf,
    /// WebAuthn's `tpm` format: `TPM2_Certify` of the credential key by the TPM's attestation
    /// key, with its certificate chain; only where the key store can attest
    /// ([`crate::api::key_store::KeyStore::can_attest`]), packed self-attestation otherwise.
    Tpm,
}

/// Behaviour settings of an authenticator.
#[derive(Debug, Clone)]
pub struct AuthenticatorConfig {
    /// The AAGUID reported in getInfo and attested credential data.
    pub aaguid: [u8; 16],
    /// Attestation used when the client does not ask for a format (attestationFormatsPreference).
    /// Packed self-attestation by default, as security keys answer: some clients (OpenSSH,
    /// libfido2's `fido_cred_verify_self`) refuse `none`, while browsers replace attestation
    /// with `none` themselves for relying parties that ask for none.
    pub default_attestation: AttestationFormat,
    /// When set, authenticatorReset is accepted only this long after start (CTAP asks 10 s of
    /// roaming authenticators).
    pub reset_window: Option<Duration>,
    /// Most descriptors accepted in an allowList or excludeList.
    pub max_credential_count_in_list: usize,
    /// Longest credential ID accepted in a descriptor (ours are 16 bytes).
    pub max_credential_id_length: usize,
    /// The largest message announced in getInfo (maxMsgSize; at most [`MAX_MSG_SIZE`], the
    /// CTAPHID limit, which is what the transports accept whatever is announced). Large-blob
    /// fragments are limited to it minus 64, as CTAP 2.1 defines maxFragmentLength.
    pub max_msg_size: usize,
    /// Firmware version reported in getInfo.
    pub firmware_version: u64,
    /// Failed built-in verifications (fingerprint scans) before built-in UV is blocked
    /// (biometryLockout, CTAP2_ERR_UV_BLOCKED) and the platform falls back to the PIN; also
    /// the uvRetries value after a success.
    pub max_uv_attempts: u8,
}

impl Default for AuthenticatorConfig {
    fn default() -> Self {
        Self {
            aaguid: PASSGATE_AAGUID,
            default_attestation: AttestationFormat::PackedSelf,
            reset_window: Some(Duration::from_secs(10)),
            max_credential_count_in_list: 64,
            max_credential_id_length: 128,
            max_msg_size: MAX_MSG_SIZE,
            firmware_version: 0x0001_0000,
            max_uv_attempts: client_pin::MAX_UV_RETRIES,
        }
    }
}

/// Largest message the authenticator accepts (the CTAPHID limit), reported as maxMsgSize.
pub const MAX_MSG_SIZE: usize = 7609;

/// Length of the credential IDs this authenticator creates.
pub const CREDENTIAL_ID_LENGTH: usize = 16;

/// A CTAP 2.1 authenticator running on one platform [`Env`].
pub struct Authenticator {
    env: Env,
    config: AuthenticatorConfig,
    started: Instant,
    pending: Option<PendingAssertions>,
    pin: PinRuntime,
    enumeration: Option<credential_management::Enumeration>,
    large_blob_write: Option<large_blobs::PendingWrite>,
    /// The creation order given to the last credential made by this process.
    last_created_ns: u64,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("env", &self.env)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The result of one command: a CBOR response body or a status code.
pub(crate) type CommandResult = Result<Vec<u8>, StatusCode>;

impl Authenticator {
    /// An authenticator on `env`.
    pub fn new(mut env: Env, config: AuthenticatorConfig) -> Self {
        let started = env.clock.now();
        let pin = PinRuntime::load(env.state.as_mut(), config.max_uv_attempts);
        Self {
            env,
            config,
            started,
            pending: None,
            pin,
            enumeration: None,
            large_blob_write: None,
            last_created_ns: 0,
        }
    }

    /// The creation order for a new credential: the wall clock in nanoseconds, but strictly
    /// greater than the last one this process gave out, so that two credentials made in the
    /// same clock tick (or a coarse or stepped-back clock) still sort newest first.
    fn next_creation_ns(&mut self) -> u64 {
        let now = self.env.clock.unix_nanos();
        self.last_created_ns = now.max(self.last_created_ns.saturating_add(1));
        self.last_created_ns
    }

    /// The configuration.
    pub fn config(&self) -> &AuthenticatorConfig {
        &self.config
    }

    /// The configuration, to adjust what a transport needs announced (the uhid transport
    /// announces a security key's message limits: see `transport::uhid::announce_hid_limits`).
    pub fn config_mut(&mut self) -> &mut AuthenticatorConfig {
        &mut self.config
    }

    /// The limits and capabilities request decoding checks against.
    fn limits(&self) -> passgate_proto::ctap::strict::Limits {
        passgate_proto::ctap::strict::Limits {
            max_credential_count_in_list: self.config.max_credential_count_in_list,
            // Not enterprise-attestation capable (§6.1.2 step 9).
            enterprise_attestation: false,
        }
    }

    /// The platform.
    pub fn env(&self) -> &Env {
        &self.env
    }

    /// Runs one command (command byte + canonical CBOR) with no transport interaction and
    /// returns status byte + canonical CBOR.
    pub fn handle(&mut self, request: &[u8]) -> Vec<u8> {
        self.handle_with(request, &Interaction::new())
    }

    /// Like [`Self::handle`], with a transport's interaction (cancellation, keepalive status).
    pub fn handle_with(&mut self, request: &[u8], interaction: &Interaction) -> Vec<u8> {
        let result = match request.split_first() {
            None => Err(StatusCode::InvalidLength),
            Some((&cmd, body)) => {
                if cmd != command::GET_NEXT_ASSERTION {
                    self.pending = None;
                }
                if cmd != command::CREDENTIAL_MANAGEMENT
                    && cmd != command::CREDENTIAL_MANAGEMENT_PREVIEW
                {
                    self.enumeration = None;
                }
                self.dispatch(cmd, body, interaction)
            }
        };
        match result {
            Ok(mut body) => {
                body.insert(0, StatusCode::Ok.byte());
                body
            }
            Err(status) => {
                tracing::debug!(status = %status, "command failed");
                vec![status.byte()]
            }
        }
    }

    fn dispatch(&mut self, cmd: u8, body: &[u8], interaction: &Interaction) -> CommandResult {
        match cmd {
            command::MAKE_CREDENTIAL => self.make_credential(body, interaction),
            command::GET_ASSERTION => self.get_assertion(body, interaction),
            command::GET_INFO => self.get_info(body),
            command::CLIENT_PIN => self.client_pin(body, interaction),
            command::CREDENTIAL_MANAGEMENT | command::CREDENTIAL_MANAGEMENT_PREVIEW => {
                self.credential_management(body)
            }
            command::RESET => self.reset(body, interaction),
            command::GET_NEXT_ASSERTION => self.get_next_assertion(body),
            command::BIO_ENROLLMENT => self.bio_enrollment(body, interaction),
            command::SELECTION => self.selection(body, interaction),
            command::LARGE_BLOBS => self.large_blobs(body),
            command::CONFIG => self.authenticator_config(body),
            _ => Err(StatusCode::InvalidCommand),
        }
    }
}

/// Maps a failed person-facing step to its CTAP status.
pub(crate) fn user_error_status(err: UserActionError) -> StatusCode {
    match err {
        UserActionError::Denied => StatusCode::OperationDenied,
        UserActionError::Cancelled => StatusCode::KeepaliveCancel,
        UserActionError::Timeout => StatusCode::UserActionTimeout,
        UserActionError::Unavailable(_) => StatusCode::OperationDenied,
        UserActionError::Lockout => StatusCode::UvBlocked,
        UserActionError::Failed => StatusCode::UvInvalid,
    }
}

/// Maps a signing failure to its CTAP status. A key gated on user verification that is asked
/// to sign without it means the request needed a pinUvAuthToken (or built-in UV).
pub(crate) fn sign_error_status(err: crate::api::key_store::KeyStoreError) -> StatusCode {
    match err {
        crate::api::key_store::KeyStoreError::UserVerificationRequired => StatusCode::PuatRequired,
        other => {
            tracing::error!(error = %other, "signature failed");
            StatusCode::Other
        }
    }
}

/// Maps a failed hmac-secret evaluation to its CTAP status: without the ceremony's key release
/// (a key store that gates keys on verification) the request needed a pinUvAuthToken.
pub(crate) fn hmac_error_status(err: crate::api::key_store::KeyStoreError) -> StatusCode {
    match err {
        crate::api::key_store::KeyStoreError::UserVerificationRequired => StatusCode::PuatRequired,
        other => {
            tracing::error!(error = %other, "hmac-secret evaluation failed");
            StatusCode::Other
        }
    }
}

/// Maps a credential store failure to its CTAP status, logging it (never any secret).
/// `ENOSPC`, "no space left on device" (the same number on every Linux architecture).
const ENOSPC: i32 = 28;

pub(crate) fn store_error_status(err: StoreError) -> StatusCode {
    match err {
        StoreError::Full { .. } => StatusCode::KeyStoreFull,
        // A full disk is a full key store to the platform: it says "no room", not "broken".
        StoreError::Io { ref source, .. } if source.raw_os_error() == Some(ENOSPC) => {
            tracing::error!(error = %err, "credential store: the disk is full");
            StatusCode::KeyStoreFull
        }
        other => {
            tracing::error!(error = %other, "credential store failure");
            StatusCode::Other
        }
    }
}

/// Commands that take no parameters reject a body.
pub(crate) fn expect_empty(body: &[u8]) -> Result<(), StatusCode> {
    if body.is_empty() {
        Ok(())
    } else {
        Err(StatusCode::InvalidLength)
    }
}
