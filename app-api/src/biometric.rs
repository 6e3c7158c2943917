//! The biometric API in the shape of Tauri's biometric plugin: [`check_status`] and
//! [`authenticate`], with the mobile error codes (`biometryNotEnrolled`, `userCancel`, ...).
//!
//! Unlike a bare boolean, [`authenticate`] with a challenge returns a [`Proof`]: a WebAuthn
//! assertion (`AuthenticationResponseJSON`) by this caller's device-bound credential over
//! `clientDataJSON {"type":"webauthn.get","challenge":<challenge>,"origin":<caller>}`. The
//! authenticator sets UV in it only after a real verification (a matching finger, or the PIN
//! with `allowDeviceCredential`), and the credential is created with credProtect level 3, so it
//! cannot sign at all without UV. A server checks the proof with any WebAuthn verifier (the
//! relying party's `POST /api/verify/assertion`, py_webauthn, SimpleWebAuthn) against the
//! public key from [`proof_key`].

use std::path::PathBuf;

use passgate_platform_api::trusted_prompt::{Answer, PromptError, TrustedPrompt};
use passgate_platform_api::user_verifier::{BiometryType, Interaction, VerifierErrorCode};
use passgate_proto::client_data::{CeremonyType, client_data_json};
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use crate::device::{
    AssertRequest, CRED_PROTECT_UV_REQUIRED, CreateRequest, DeviceError, Verification,
    cose_to_spki, user_verified,
};
use crate::scan_prompt::{self, DialogOutcome, Fallback};
use crate::verify::{self, Accept, Failure, PasscodeRequest, PlanError, Planned};
use crate::{CallerId, Platform, b64, sha256};

/// The biometry types apps know (Tauri's `BiometryType`, plus `Fingerprint` for desktop
/// readers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BiometryKind {
    /// No biometric sensor.
    None,
    /// Apple Touch ID.
    #[serde(rename = "TouchID")]
    TouchId,
    /// Face recognition.
    #[serde(rename = "FaceID")]
    FaceId,
    /// Iris recognition.
    Iris,
    /// A fingerprint reader (fprintd).
    Fingerprint,
}

impl From<BiometryType> for BiometryKind {
    fn from(t: BiometryType) -> Self {
        match t {
            BiometryType::None => Self::None,
            BiometryType::Fingerprint => Self::Fingerprint,
            BiometryType::Face => Self::FaceId,
            BiometryType::Iris => Self::Iris,
        }
    }
}

/// The name apps use for a [`VerifierErrorCode`] (`biometryNotEnrolled`, ...).
pub fn error_code_name(code: VerifierErrorCode) -> &'static str {
    match code {
        VerifierErrorCode::BiometryNotAvailable => "biometryNotAvailable",
        VerifierErrorCode::BiometryNotEnrolled => "biometryNotEnrolled",
        VerifierErrorCode::BiometryLockout => "biometryLockout",
        VerifierErrorCode::UserCancel => "userCancel",
        VerifierErrorCode::SystemCancel => "systemCancel",
        VerifierErrorCode::AuthenticationFailed => "authenticationFailed",
        VerifierErrorCode::PasscodeNotSet => "passcodeNotSet",
        VerifierErrorCode::UserFallback => "userFallback",
        VerifierErrorCode::AppCancel => "appCancel",
        VerifierErrorCode::InvalidContext => "invalidContext",
        VerifierErrorCode::NotInteractive => "notInteractive",
    }
}

fn describe(code: VerifierErrorCode) -> &'static str {
    match code {
        VerifierErrorCode::BiometryNotAvailable => "no biometric sensor is available",
        VerifierErrorCode::BiometryNotEnrolled => "no finger is enrolled on the sensor",
        VerifierErrorCode::BiometryLockout => {
            "biometric verification is locked out after too many failed attempts"
        }
        VerifierErrorCode::UserCancel => "the user cancelled",
        VerifierErrorCode::SystemCancel => "the system ended the verification",
        VerifierErrorCode::AuthenticationFailed => "the user was not recognised",
        VerifierErrorCode::PasscodeNotSet => "no PIN is set on the authenticator",
        VerifierErrorCode::UserFallback => "the user chose the PIN",
        VerifierErrorCode::AppCancel => "the app cancelled",
        VerifierErrorCode::InvalidContext => "the request is not valid",
        VerifierErrorCode::NotInteractive => "no prompt can be shown",
    }
}

/// `checkStatus()`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// Whether biometric authentication can be used now.
    pub is_available: bool,
    /// The sensor type.
    pub biometry_type: BiometryKind,
    /// Why not, for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why not, for code (`biometryNotEnrolled`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<&'static str>,
}

/// A rejected `authenticate()`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", error_code_name(*code))]
pub struct BiometricError {
    /// The mobile error code.
    pub code: VerifierErrorCode,
    /// What happened.
    pub message: String,
}

impl BiometricError {
    fn new(code: VerifierErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    fn of(code: VerifierErrorCode) -> Self {
        Self::new(code, describe(code))
    }

    fn device(e: &DeviceError) -> Self {
        Self::new(
            VerifierErrorCode::SystemCancel,
            format!("the authenticator failed: {e}"),
        )
    }

    /// `{"code": "...", "message": "..."}`.
    pub fn to_json(&self) -> Json {
        json!({ "code": error_code_name(self.code), "message": self.message })
    }
}

/// `authenticate(reason, options)` options (Tauri's `AuthOptions`), plus `challenge`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthOptions {
    /// Fall back to the authenticator PIN when biometrics cannot be used.
    #[serde(default)]
    pub allow_device_credential: bool,
    /// Prompt title.
    #[serde(default)]
    pub title: Option<String>,
    /// Prompt subtitle.
    #[serde(default)]
    pub subtitle: Option<String>,
    /// Cancel button text.
    #[serde(default)]
    pub cancel_title: Option<String>,
    /// Fallback button text.
    #[serde(default)]
    pub fallback_title: Option<String>,
    /// `true`: after a fingerprint match, the person confirms in passgate's prompt before the
    /// call succeeds. A touch is already a deliberate act, so without it (or with `false`) a
    /// match completes directly, as Android treats its active (fingerprint) sensors.
    #[serde(default)]
    pub confirmation_required: Option<bool>,
    /// Failed scans accepted within this call before it rejects (1 to 5, default 3). Tauri
    /// spells it `maxAttemps`; both are accepted.
    #[serde(default, alias = "maxAttemps")]
    pub max_attempts: Option<u8>,
    /// base64url bytes to sign: with it, the answer carries a [`Proof`].
    #[serde(default)]
    pub challenge: Option<String>,
}

/// The device-bound key that signs proofs for a caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProofKey {
    /// The credential ID, base64url.
    pub credential_id: String,
    /// The public key, SubjectPublicKeyInfo DER, base64url.
    pub public_key: String,
    /// The public key as a COSE_Key, base64url (what WebAuthn libraries store).
    pub public_key_cose: String,
    /// COSE algorithm (-7, ES256).
    pub public_key_algorithm: i64,
    /// The RP ID to verify against.
    pub rp_id: String,
    /// The origin to verify against (the caller).
    pub origin: String,
}

/// A successful `authenticate()`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Authenticated {
    /// `biometric` or `passcode`.
    pub method: &'static str,
    /// The proof, when a challenge was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proof: Option<Proof>,
}

/// An assertion over the caller's challenge, verifiable by any WebAuthn verifier.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Proof {
    /// `AuthenticationResponseJSON`.
    pub credential: Json,
    /// The key that signed it.
    pub key: ProofKey,
    /// The challenge, base64url.
    pub challenge: String,
}

/// `checkStatus()`.
pub fn check_status(platform: &Platform) -> Status {
    let device = platform.device();
    let biometry = match device.verifier_status() {
        Some(status) => BiometryKind::from(status.biometry),
        None => match device.info() {
            Ok(info) if info.uv.is_some() => match info.uv_modality {
                Some(0x10) => BiometryKind::FaceId,
                Some(0x40) => BiometryKind::Iris,
                _ => BiometryKind::Fingerprint,
            },
            _ => BiometryKind::None,
        },
    };
    match verify::biometric_readiness(device) {
        Ok(Ok(())) => Status {
            is_available: true,
            biometry_type: biometry,
            error: None,
            error_code: None,
        },
        Ok(Err(code)) => Status {
            is_available: false,
            biometry_type: biometry,
            error: Some(describe(code).to_owned()),
            error_code: Some(error_code_name(code)),
        },
        Err(e) => Status {
            is_available: false,
            biometry_type: BiometryKind::None,
            error: Some(format!("the authenticator did not answer: {e}")),
            error_code: Some(error_code_name(VerifierErrorCode::BiometryNotAvailable)),
        },
    }
}

fn proof_key_path(platform: &Platform, caller: &CallerId) -> std::io::Result<PathBuf> {
    Ok(platform.caller_dir(caller)?.join("proof-key.json"))
}

fn load_proof_key(platform: &Platform, caller: &CallerId) -> Option<ProofKey> {
    let path = proof_key_path(platform, caller).ok()?;
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The caller's proof key, created on first use (with presence; with verification where the
/// authenticator demands it).
pub fn proof_key(platform: &Platform, caller: &CallerId) -> Result<ProofKey, BiometricError> {
    if let Some(key) = load_proof_key(platform, caller) {
        return Ok(key);
    }
    create_proof_key(platform, caller, &Interaction::new())
}

fn create_proof_key(
    platform: &Platform,
    caller: &CallerId,
    interaction: &Interaction,
) -> Result<ProofKey, BiometricError> {
    let device = platform.device();
    let info = device.info().map_err(|e| BiometricError::device(&e))?;
    let rp_id = caller.rp_id();
    // Creating the key needs no verification where the authenticator allows it; every use
    // does (credProtect 3).
    let needs_uv = info.always_uv || !info.make_cred_uv_not_rqd;
    let planned = if needs_uv {
        Some(
            verify::plan(
                device,
                Accept::BiometricOrPasscode {
                    passcode_first: false,
                },
                platform.passcodes(),
                &PasscodeRequest {
                    caller: caller.name(),
                    reason: "create the key that signs proofs",
                    attempt: 1,
                    labels: verify::PromptLabels::default(),
                },
                passgate_proto::ctap::Permissions::MAKE_CREDENTIAL,
                &rp_id,
                interaction,
            )
            .map_err(plan_error)?,
        )
    } else {
        None
    };
    let verification = planned
        .as_ref()
        .map_or(Verification::None, Planned::verification);
    let builtin = matches!(verification, Verification::Builtin);
    let created = device
        .make_credential(
            &CreateRequest {
                rp_id: &rp_id,
                user_id: b"passgate-proof",
                user_name: "proof key",
                client_data_hash: sha256(b"passgate proof key creation"),
                verification,
                cred_protect: Some(CRED_PROTECT_UV_REQUIRED),
                biometric_set: false,
                hmac_secret: None,
            },
            interaction,
        )
        .map_err(|e| failure_error(device, &e, verify::classify(&e), builtin))?;
    let spki = cose_to_spki(&created.public_key).ok_or_else(|| {
        BiometricError::new(
            VerifierErrorCode::SystemCancel,
            "the authenticator made a key of an unexpected type",
        )
    })?;
    let key = ProofKey {
        credential_id: b64(&created.credential_id),
        public_key: b64(&spki),
        public_key_cose: b64(&passgate_client::cbor::encode(&created.public_key)),
        public_key_algorithm: -7,
        rp_id,
        origin: caller.name().to_owned(),
    };
    let bytes = serde_json::to_vec_pretty(&key).map_err(|e| {
        BiometricError::new(VerifierErrorCode::SystemCancel, format!("encoding: {e}"))
    })?;
    let path = proof_key_path(platform, caller).map_err(io_error)?;
    crate::fs::write_atomic(&path, &bytes, platform.write_hook()).map_err(io_error)?;
    Ok(key)
}

fn io_error(e: std::io::Error) -> BiometricError {
    BiometricError::new(
        VerifierErrorCode::SystemCancel,
        format!("the state directory failed: {e}"),
    )
}

/// A plan's failure in the official codes. A PIN prompt that gave no PIN is `appCancel` when
/// the app cancelled the call, `notInteractive` when the host has no prompt at all, and
/// `userCancel` when the person declined.
fn plan_error_in(platform: &Platform, interaction: &Interaction, e: PlanError) -> BiometricError {
    match e {
        PlanError::PasscodeCancelled if interaction.is_cancelled() => {
            BiometricError::of(VerifierErrorCode::AppCancel)
        }
        PlanError::PasscodeCancelled if !platform.passcodes().interactive() => BiometricError::new(
            VerifierErrorCode::NotInteractive,
            "no trusted prompt can ask for the PIN here",
        ),
        other => plan_error(other),
    }
}

fn plan_error(e: PlanError) -> BiometricError {
    match e {
        PlanError::Biometry(code) => BiometricError::of(code),
        PlanError::PasscodeNotSet => BiometricError::of(VerifierErrorCode::PasscodeNotSet),
        PlanError::PasscodeCancelled => BiometricError::new(
            VerifierErrorCode::UserCancel,
            "the PIN prompt was cancelled",
        ),
        PlanError::PasscodeWrong { retries } => BiometricError::new(
            VerifierErrorCode::AuthenticationFailed,
            format!("wrong PIN ({retries} tries left)"),
        ),
        PlanError::PasscodeBlocked => BiometricError::new(
            VerifierErrorCode::AuthenticationFailed,
            "the PIN is blocked",
        ),
        PlanError::Device(e) => BiometricError::device(&e),
    }
}

/// The error for a failed operation. When the sensor was asked (`scanned`), a denial is re-read
/// against its state so that an unplugged reader reports `biometryNotAvailable`, not
/// `userCancel`; a denied presence prompt is `userCancel`.
fn failure_error(
    device: &crate::AppDevice,
    e: &DeviceError,
    failure: Failure,
    scanned: bool,
) -> BiometricError {
    match failure {
        Failure::NotRecognised => BiometricError::of(VerifierErrorCode::AuthenticationFailed),
        Failure::LockedOut => BiometricError::of(VerifierErrorCode::BiometryLockout),
        Failure::Cancelled => BiometricError::of(VerifierErrorCode::UserCancel),
        Failure::TimedOut => BiometricError::new(
            VerifierErrorCode::SystemCancel,
            "nobody answered the verification in time",
        ),
        Failure::Denied if !scanned => BiometricError::new(
            VerifierErrorCode::UserCancel,
            "the presence prompt was declined or could not be shown",
        ),
        Failure::Denied | Failure::Unavailable => match verify::biometric_readiness(device) {
            Ok(Err(code)) => BiometricError::of(code),
            _ if failure == Failure::Denied => BiometricError::of(VerifierErrorCode::UserCancel),
            _ => BiometricError::of(VerifierErrorCode::BiometryNotAvailable),
        },
        Failure::PasscodeRequired => BiometricError::new(
            VerifierErrorCode::PasscodeNotSet,
            "the authenticator releases its keys only with the PIN: use allowDeviceCredential",
        ),
        Failure::Invalidated | Failure::CredentialMissing | Failure::Other => {
            BiometricError::device(e)
        }
    }
}

fn check_text(name: &str, value: Option<&String>) -> Result<(), BiometricError> {
    match value {
        Some(v) if v.chars().count() > 256 || v.chars().any(char::is_control) => {
            Err(BiometricError::new(
                VerifierErrorCode::InvalidContext,
                format!("{name} must be at most 256 printable characters"),
            ))
        }
        _ => Ok(()),
    }
}

/// `authenticate(reason, options)`: verifies the user through the authenticator (a matching
/// finger; with `allowDeviceCredential`, the PIN when biometrics cannot be used) and, with a
/// challenge, returns the proof.
pub fn authenticate(
    platform: &Platform,
    caller: &CallerId,
    reason: &str,
    options: &AuthOptions,
    interaction: &Interaction,
) -> Result<Authenticated, BiometricError> {
    if reason.trim().is_empty() {
        return Err(BiometricError::new(
            VerifierErrorCode::InvalidContext,
            "a reason is required: it is shown to the user",
        ));
    }
    check_text("reason", Some(&reason.to_owned()))?;
    for (name, value) in [
        ("title", &options.title),
        ("subtitle", &options.subtitle),
        ("cancelTitle", &options.cancel_title),
        ("fallbackTitle", &options.fallback_title),
    ] {
        check_text(name, value.as_ref())?;
    }
    let max_attempts = options.max_attempts.unwrap_or(3);
    if !(1..=5).contains(&max_attempts) {
        return Err(BiometricError::new(
            VerifierErrorCode::InvalidContext,
            "maxAttempts must be 1 to 5",
        ));
    }
    let challenge = match &options.challenge {
        None => None,
        Some(text) => {
            let bytes = crate::unb64(text).filter(|b| (16..=1024).contains(&b.len()));
            Some(bytes.ok_or_else(|| {
                BiometricError::new(
                    VerifierErrorCode::InvalidContext,
                    "challenge must be 16 to 1024 bytes, base64url",
                )
            })?)
        }
    };
    tracing::info!(caller = caller.name(), %reason, "biometric authentication requested");
    let device = platform.device();
    // Without the PIN, a fingerprint that cannot verify now is the answer at once, as iOS
    // rejects before showing anything: no key is made and no prompt shown for a call that
    // cannot succeed.
    let readiness = if options.allow_device_credential {
        Ok(Ok(()))
    } else {
        verify::biometric_readiness(device)
    };
    if let Ok(Err(code)) = readiness {
        return Err(BiometricError::of(code));
    }
    let mut key = proof_key(platform, caller)?;
    let signed_challenge = match &challenge {
        Some(c) => c.clone(),
        None => crate::random::<32>().map_err(io_error)?.to_vec(),
    };
    let client_data = client_data_json(CeremonyType::Get, &signed_challenge, caller.name(), None);
    let client_data_hash = sha256(&client_data);
    let mut accept = if options.allow_device_credential {
        Accept::BiometricOrPasscode {
            passcode_first: false,
        }
    } else {
        Accept::Biometric
    };
    let labels = verify::PromptLabels {
        title: options.title.as_deref(),
        subtitle: options.subtitle.as_deref(),
        cancel: options.cancel_title.as_deref(),
        fallback: options.fallback_title.as_deref(),
    };
    let fallback = Fallback::of(
        options.allow_device_credential,
        options.fallback_title.as_deref(),
    );
    let prompt = platform.passcodes().prompt();
    let mut failures = 0u8;
    let mut recreated = false;
    loop {
        let request = PasscodeRequest {
            caller: caller.name(),
            reason,
            attempt: u32::from(failures) + 1,
            labels,
        };
        let planned = verify::plan(
            device,
            accept,
            platform.passcodes(),
            &request,
            passgate_proto::ctap::Permissions::GET_ASSERTION,
            &key.rp_id,
            interaction,
        );
        let planned = match planned {
            Ok(p) => p,
            Err(PlanError::PasscodeWrong { .. }) if failures + 1 < max_attempts => {
                failures += 1;
                continue;
            }
            Err(e) => return Err(plan_error_in(platform, interaction, e)),
        };
        let verification = planned.verification();
        let scanned = matches!(planned, Planned::Builtin);
        let method = if scanned { "biometric" } else { "passcode" };
        let credential_id = crate::unb64(&key.credential_id).unwrap_or_default();
        let assert = |on: &Interaction| {
            device.get_assertion(
                &AssertRequest {
                    rp_id: &key.rp_id,
                    credential_id: &credential_id,
                    client_data_hash,
                    verification,
                    hmac_salt: None,
                },
                on,
            )
        };
        // A scan runs beside the app's dialog in the host's trusted prompt, when it has one.
        let (result, dialog) = match (&prompt, scanned) {
            (Some(prompt), true) => {
                let text = scan_prompt::waiting_dialog(&request, &fallback);
                let error = (failures > 0).then_some("Not recognised. Try again.");
                scan_prompt::scan_with_dialog(
                    prompt.as_ref(),
                    &text,
                    error,
                    &fallback,
                    interaction,
                    assert,
                )
            }
            _ => (assert(interaction), DialogOutcome::Closed),
        };
        match result {
            Ok(assertion) if user_verified(assertion.flags) => {
                if scanned && options.confirmation_required == Some(true) {
                    confirm_match(prompt.as_deref(), &request, interaction)?;
                }
                let proof = challenge.as_ref().map(|c| Proof {
                    credential: json!({
                        "id": key.credential_id,
                        "rawId": key.credential_id,
                        "type": "public-key",
                        "authenticatorAttachment": "platform",
                        "response": {
                            "clientDataJSON": b64(&client_data),
                            "authenticatorData": b64(&assertion.auth_data),
                            "signature": b64(&assertion.signature),
                            "userHandle": b64(b"passgate-proof"),
                        },
                        "clientExtensionResults": {},
                    }),
                    key: key.clone(),
                    challenge: b64(c),
                });
                return Ok(Authenticated { method, proof });
            }
            Ok(_) => {
                // Never report success without the authenticator's UV flag.
                return Err(BiometricError::of(VerifierErrorCode::AuthenticationFailed));
            }
            Err(e) => {
                // A button in the dialog (or a dialog that could not be shown) stopped the scan.
                match dialog {
                    DialogOutcome::Fallback if options.allow_device_credential => {
                        accept = verify::PASSCODE_FIRST;
                        continue;
                    }
                    DialogOutcome::Fallback => {
                        return Err(BiometricError::of(VerifierErrorCode::UserFallback));
                    }
                    DialogOutcome::Cancelled => {
                        return Err(BiometricError::of(VerifierErrorCode::UserCancel));
                    }
                    DialogOutcome::Unavailable(why) => {
                        return Err(BiometricError::new(
                            VerifierErrorCode::NotInteractive,
                            format!("the fingerprint dialog cannot be shown: {why}"),
                        ));
                    }
                    DialogOutcome::Closed | DialogOutcome::TimedOut => {}
                }
                match verify::classify(&e) {
                    Failure::Cancelled if interaction.is_cancelled() => {
                        return Err(BiometricError::of(VerifierErrorCode::AppCancel));
                    }
                    Failure::NotRecognised if failures + 1 < max_attempts => failures += 1,
                    failure
                        if verify::retries_with_passcode(
                            failure,
                            accept,
                            options.allow_device_credential,
                        ) =>
                    {
                        accept = verify::PASSCODE_FIRST;
                    }
                    Failure::CredentialMissing if !recreated => {
                        // The authenticator was reset or the key deleted: make a new one. A
                        // server must register it again, so a proof is only returned for it
                        // when asked.
                        tracing::warn!(
                            caller = caller.name(),
                            "the proof key is gone: creating a new one"
                        );
                        recreated = true;
                        key = create_proof_key(platform, caller, interaction)?;
                    }
                    failure => return Err(failure_error(device, &e, failure, scanned)),
                }
            }
        }
    }
}

/// The confirmation after a fingerprint match (`confirmationRequired: true`).
fn confirm_match(
    prompt: Option<&dyn TrustedPrompt>,
    request: &PasscodeRequest<'_>,
    interaction: &Interaction,
) -> Result<(), BiometricError> {
    let Some(prompt) = prompt else {
        return Err(BiometricError::new(
            VerifierErrorCode::NotInteractive,
            "confirmationRequired needs a trusted prompt, and this host has none",
        ));
    };
    let text = scan_prompt::confirmation_dialog(request);
    match prompt.confirm(&text.dialog("", None), interaction) {
        Ok(Answer::Ok) => Ok(()),
        Ok(Answer::NotOk) | Err(PromptError::Declined) => Err(BiometricError::new(
            VerifierErrorCode::UserCancel,
            "the match was not confirmed",
        )),
        Err(PromptError::Cancelled) => Err(BiometricError::of(VerifierErrorCode::AppCancel)),
        Err(PromptError::TimedOut) => Err(BiometricError::new(
            VerifierErrorCode::SystemCancel,
            "nobody confirmed the match in time",
        )),
        Err(PromptError::Unavailable(why)) => Err(BiometricError::new(
            VerifierErrorCode::NotInteractive,
            format!("the confirmation cannot be shown: {why}"),
        )),
    }
}
