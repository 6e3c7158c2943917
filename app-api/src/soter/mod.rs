//! SOTER-compatible challenge signing, in the shape of WeChat's
//! `wx.checkIsSupportSoterAuthentication`, `wx.checkIsSoterEnrolledInDevice` and
//! `wx.startSoterAuthentication`, on passgate's authenticator instead of a vendor TEE.
//!
//! - [`prepare_auth_key`] creates the caller's SOTER *gate* credential (bound to the current
//!   biometric set, credProtect 3, hmac-secret) with a fingerprint verification, and an
//!   RSA-2048 device key protected by the gate's UV-gated hmac-secret output — in the TPM when
//!   there is one. It returns the key in SOTER's key format, `{"pub_key":PEM,"cpu_id",
//!   "counter","uid"}`, signed by the key itself, to register with the relying party.
//! - [`start_soter_authentication`] verifies the user (a getAssertion with built-in UV on the
//!   gate credential, beside a dialog in the host's trusted prompt naming the operation, the
//!   caller and `authContent`; the hmac-secret output opens the device key), increments the device
//!   counter durably, and signs `resultJSON` — `{"raw","fid","counter","tee_n","tee_v",
//!   "fp_n","fp_v","cpu_id","uid"}` (`fid`: [`finger_id`] of the finger that matched) — RSASSA-PSS SHA-256, MGF1-SHA-256, salt 20, so that
//!   existing SOTER verification code (`openssl dgst -sha256 -sigopt rsa_padding_mode:pss
//!   -sigopt rsa_pss_saltlen:20`) accepts it.
//!
//! Errors carry SOTER's `errCode`s (90001 not supported, 90003 mode not supported, 90004 bad
//! challenge, 90005 authContent too long, 90007 internal / auth key, 90008 cancelled, 90009
//! not recognised, 90010 frozen after too many failures, 90011 nothing enrolled).

pub mod key;
pub mod pss;
#[cfg(feature = "tpm")]
mod tpm;

use std::path::PathBuf;
use std::sync::Mutex;

use passgate_platform_api::user_verifier::{BiometryType, Interaction, VerifierErrorCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use crate::device::{
    AssertRequest, CRED_PROTECT_UV_REQUIRED, CreateRequest, DeviceError, Verification,
    user_verified,
};
use crate::scan_prompt::{self, DialogOutcome, Fallback};
use crate::verify::{self, Failure};
use crate::{CallerId, Platform, sha256};
pub use key::{KeyBackend, KeyError, StoredKey};

/// The longest challenge (characters), as WeChat enforces.
pub const MAX_CHALLENGE_CHARS: usize = 512;
/// The longest authContent (characters).
pub const MAX_AUTH_CONTENT_CHARS: usize = 42;

/// A failed SOTER call: `errCode` and `errMsg` as WeChat reports them, plus a detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{err_code} {err_msg}: {detail}")]
pub struct SoterError {
    /// SOTER's error code (900xx).
    pub err_code: u32,
    /// `<api>:fail ...`.
    pub err_msg: String,
    /// What happened, for people.
    pub detail: String,
}

impl SoterError {
    fn new(api: &str, err_code: u32, reason: &str, detail: impl Into<String>) -> Self {
        let err_msg = if reason.is_empty() {
            format!("{api}:fail")
        } else {
            format!("{api}:fail {reason}")
        };
        Self {
            err_code,
            err_msg,
            detail: detail.into(),
        }
    }

    /// `{"errCode": 900xx, "errMsg": "...", "detail": "..."}`.
    pub fn to_json(&self) -> Json {
        json!({ "errCode": self.err_code, "errMsg": self.err_msg, "detail": self.detail })
    }
}

const START: &str = "startSoterAuthentication";
const PREPARE: &str = "prepareAuthKey";

/// A malformed request to `api` (`soter.<api>`), answered as WeChat answers one — with an
/// `errCode`, not a channel error: a missing or non-string `challenge` is 90004, a missing or
/// malformed `requestAuthModes` or `checkAuthMode` 90003, a non-string `authContent` 90005,
/// anything else (an unknown member, a request that is not an object) 90007. `request` is the
/// message as sent; `detail` says what the parser found.
pub fn invalid_request(api: &str, request: &Json, detail: &str) -> SoterError {
    let text = |name: &str| request.get(name).is_some_and(Json::is_string);
    let modes = request
        .get("requestAuthModes")
        .and_then(Json::as_array)
        .is_some_and(|modes| modes.iter().all(Json::is_string));
    let (code, reason) = match api {
        "startSoterAuthentication" if !text("challenge") => (90004, "challenge error"),
        "startSoterAuthentication" if !modes => (90003, "no corresponding mode"),
        "startSoterAuthentication"
            if request.get("authContent").is_some() && !text("authContent") =>
        {
            (90005, "auth content too long")
        }
        "checkIsSoterEnrolledInDevice" if !text("checkAuthMode") => {
            (90003, "no corresponding mode")
        }
        _ => (90007, "invalid request"),
    };
    SoterError::new(api, code, reason, format!("invalid request: {detail}"))
}

/// A SOTER auth mode name.
fn mode_of(biometry: BiometryType) -> Option<&'static str> {
    match biometry {
        BiometryType::Fingerprint => Some("fingerPrint"),
        BiometryType::Face => Some("facial"),
        BiometryType::Iris | BiometryType::None => None,
    }
}

/// The modes this device's sensor supports (enrolled or not).
fn support_modes(platform: &Platform) -> Vec<&'static str> {
    let device = platform.device();
    let biometry = match device.verifier_status() {
        Some(status) if status.available => Some(status.biometry),
        Some(_) => None,
        None => match device.info() {
            Ok(info) if info.uv.is_some() => Some(match info.uv_modality {
                Some(0x10) => BiometryType::Face,
                _ => BiometryType::Fingerprint,
            }),
            _ => None,
        },
    };
    biometry.and_then(mode_of).into_iter().collect()
}

/// `checkIsSupportSoterAuthentication()`: `{"supportMode": [...]}`.
pub fn check_is_support_soter_authentication(platform: &Platform) -> Json {
    json!({
        "supportMode": support_modes(platform),
        "errMsg": "checkIsSupportSoterAuthentication:ok",
    })
}

/// `checkIsSoterEnrolledInDevice({checkAuthMode})`: `{"isEnrolled": bool}`.
pub fn check_is_soter_enrolled_in_device(
    platform: &Platform,
    check_auth_mode: &str,
) -> Result<Json, SoterError> {
    const API: &str = "checkIsSoterEnrolledInDevice";
    if !["fingerPrint", "facial", "speech"].contains(&check_auth_mode) {
        return Err(SoterError::new(
            API,
            90003,
            "no corresponding mode",
            format!("{check_auth_mode:?} is not fingerPrint, facial or speech"),
        ));
    }
    let enrolled = support_modes(platform).contains(&check_auth_mode)
        && matches!(
            verify::biometric_readiness(platform.device()),
            Ok(Ok(())) | Ok(Err(VerifierErrorCode::BiometryLockout))
        );
    Ok(json!({ "isEnrolled": enrolled, "errMsg": format!("{API}:ok") }))
}

/// The registered form of a device key: SOTER's key JSON and its signature by the key itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthKey {
    /// `{"pub_key":PEM,"cpu_id","counter","uid"}` exactly as signed.
    pub key_json: String,
    /// RSASSA-PSS (salt 20) signature of `key_json` by the key, base64.
    pub key_json_signature: String,
    /// `software` or `tpm`.
    pub key_store: String,
}

/// What a caller's SOTER state file holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Prepared {
    rp_id: String,
    credential_id: String,
    salt: String,
    key: StoredKey,
    auth_key: AuthKey,
}

/// The key format SOTER registers (`SoterPubKeyModel`).
#[derive(Serialize)]
struct KeyJson<'a> {
    pub_key: &'a str,
    cpu_id: &'a str,
    counter: u64,
    uid: &'a str,
}

/// `resultJSON`, members in SOTER's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultJson {
    /// The challenge.
    pub raw: String,
    /// The biometric (here: the enrolled set) that verified.
    pub fid: String,
    /// The device counter (strictly increasing).
    pub counter: u64,
    /// The key store ("TEE") name.
    pub tee_n: String,
    /// Its version.
    pub tee_v: String,
    /// The sensor stack.
    pub fp_n: String,
    /// Its version.
    pub fp_v: String,
    /// The device ID.
    pub cpu_id: String,
    /// The app (caller).
    pub uid: String,
}

/// `startSoterAuthentication` options.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StartRequest {
    /// The challenge, signed as `raw`.
    pub challenge: String,
    /// Acceptable modes (`fingerPrint`, `facial`, `speech`).
    pub request_auth_modes: Vec<String>,
    /// The prompt text.
    #[serde(default)]
    pub auth_content: String,
}

/// A successful `startSoterAuthentication`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StartResult {
    /// The mode that verified.
    pub auth_mode: String,
    /// The signed JSON, exactly as signed.
    #[serde(rename = "resultJSON")]
    pub result_json: String,
    /// Its signature, base64.
    #[serde(rename = "resultJSONSignature")]
    pub result_json_signature: String,
    /// 0.
    pub err_code: u32,
    /// `startSoterAuthentication:ok`.
    pub err_msg: String,
}

fn prepared_path(platform: &Platform, caller: &CallerId) -> std::io::Result<PathBuf> {
    let dir = platform.caller_dir(caller)?.join("soter");
    crate::fs::private_dir(&dir)?;
    crate::fs::remove_stale_temps(&dir)?;
    Ok(dir.join("auth-key.json"))
}

fn load_prepared(platform: &Platform, caller: &CallerId) -> Option<Prepared> {
    let bytes = std::fs::read(prepared_path(platform, caller).ok()?).ok()?;
    serde_json::from_slice(&bytes).ok()
}

static COUNTER: Mutex<()> = Mutex::new(());

#[derive(Serialize, Deserialize)]
struct Counter {
    counter: u64,
}

/// The next device counter, durable before it is used: a crash never reuses one. With SOTER
/// keys in a TPM it is the TPM's NV counter (a restored copy of the state directory cannot
/// replay values); otherwise a file in the state directory.
fn next_counter(platform: &Platform) -> std::io::Result<u64> {
    #[cfg(feature = "tpm")]
    if let KeyBackend::Tpm { tcti } = platform.soter_keys() {
        return tpm::next_counter(tcti).map_err(std::io::Error::other);
    }
    let _serialised = COUNTER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let path = platform.state_dir().join("soter-counter.json");
    let current = match std::fs::read(&path) {
        Ok(bytes) => {
            serde_json::from_slice::<Counter>(&bytes)
                .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())))?
                .counter
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(e),
    };
    let next = current
        .checked_add(1)
        .ok_or_else(|| std::io::Error::other("the SOTER counter is exhausted"))?;
    let bytes = serde_json::to_vec(&Counter { counter: next }).map_err(std::io::Error::other)?;
    crate::fs::write_atomic(&path, &bytes, &crate::fs::NoHook)?;
    Ok(next)
}

/// This device's ID (`cpu_id`): 16 random bytes made once, hex.
pub fn device_id(platform: &Platform) -> std::io::Result<String> {
    let path = platform.state_dir().join("soter-device-id");
    match std::fs::read_to_string(&path) {
        Ok(text) if text.trim().len() == 32 => return Ok(text.trim().to_owned()),
        Ok(_) => {
            return Err(std::io::Error::other(format!(
                "{} is damaged",
                path.display()
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let id = crate::fs::hex(&crate::random::<16>()?);
    crate::fs::write_atomic(&path, id.as_bytes(), &crate::fs::NoHook)?;
    Ok(id)
}

/// What `fid` is derived from when the authenticator cannot say which finger matched (a sensor
/// that identifies among several enrolled fingers, or an authenticator in another process).
pub const UNNAMED_FINGER: &str = "any";

/// `resultJSON.fid`: which finger matched, as an ID that stays the same for that finger on
/// this device (across calls, callers and other fingers' enrollment) and reveals neither its
/// name nor the other enrolled fingers: hex of the first 8 bytes of HMAC-SHA-256, under a
/// random key kept in the state directory (`soter-fid.key`, 0600), of the finger's name
/// (`right-index-finger`, ...; [`UNNAMED_FINGER`] when it is not known).
pub fn finger_id(platform: &Platform, finger: Option<&str>) -> std::io::Result<String> {
    let key = fid_key(platform)?;
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key.as_slice());
    let mut input = b"passgate soter fid\0".to_vec();
    input.extend_from_slice(finger.unwrap_or(UNNAMED_FINGER).as_bytes());
    let tag = aws_lc_rs::hmac::sign(&key, &input);
    Ok(crate::fs::hex(&tag.as_ref()[..8]))
}

/// The fid key: 32 random bytes, made on first use.
fn fid_key(platform: &Platform) -> std::io::Result<zeroize::Zeroizing<Vec<u8>>> {
    let path = platform.state_dir().join("soter-fid.key");
    match std::fs::read(&path) {
        Ok(bytes) if bytes.len() == 32 => return Ok(zeroize::Zeroizing::new(bytes)),
        Ok(_) => {
            return Err(std::io::Error::other(format!(
                "{} is damaged",
                path.display()
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let key = zeroize::Zeroizing::new(crate::random::<32>()?.to_vec());
    crate::fs::write_atomic(&path, &key, platform.write_hook())?;
    Ok(key)
}

fn internal(api: &str, detail: impl std::fmt::Display) -> SoterError {
    SoterError::new(api, 90007, "internal error", detail.to_string())
}

fn check_device(
    platform: &Platform,
    api: &str,
    requested: &[String],
) -> Result<&'static str, SoterError> {
    let modes = support_modes(platform);
    if modes.is_empty() {
        return Err(SoterError::new(
            api,
            90001,
            "not support soter",
            "this device has no biometric sensor passgate can use",
        ));
    }
    let Some(mode) = modes
        .iter()
        .copied()
        .find(|m| requested.iter().any(|r| r == m))
    else {
        return Err(SoterError::new(
            api,
            90003,
            "no corresponding mode",
            format!("this device supports {modes:?}"),
        ));
    };
    match verify::biometric_readiness(platform.device()) {
        Ok(Ok(())) => Ok(mode),
        Ok(Err(VerifierErrorCode::BiometryNotEnrolled)) => Err(SoterError::new(
            api,
            90011,
            "no fingerprint enrolled",
            "enroll a finger first (fprintd-enroll)",
        )),
        Ok(Err(VerifierErrorCode::BiometryLockout)) => Err(SoterError::new(
            api,
            90010,
            "authenticate freeze. please try again later",
            "too many failed scans: the authenticator PIN unlocks the sensor",
        )),
        Ok(Err(code)) => Err(SoterError::new(
            api,
            90001,
            "not support soter",
            crate::biometric::error_code_name(code),
        )),
        Err(e) => Err(internal(api, e)),
    }
}

fn failure_error(api: &str, e: &DeviceError) -> SoterError {
    match verify::classify(e) {
        Failure::NotRecognised => SoterError::new(api, 90009, "", "the finger was not recognised"),
        Failure::LockedOut => SoterError::new(
            api,
            90010,
            "authenticate freeze. please try again later",
            "too many failed scans",
        ),
        Failure::Cancelled | Failure::Denied | Failure::TimedOut => SoterError::new(
            api,
            90008,
            "cancel",
            "the verification was cancelled or not answered",
        ),
        Failure::Unavailable => SoterError::new(
            api,
            90011,
            "no fingerprint enrolled",
            "the sensor cannot verify now",
        ),
        Failure::Invalidated | Failure::CredentialMissing => SoterError::new(
            api,
            90007,
            "auth key update error",
            "the enrolled fingerprints changed (or the authenticator was reset): prepare the auth key again and register it",
        ),
        Failure::PasscodeRequired | Failure::Other => internal(api, e),
    }
}

fn tee_name(platform: &Platform) -> (String, String) {
    let name = match platform.soter_keys() {
        KeyBackend::Software => "passgate software",
        #[cfg(feature = "tpm")]
        KeyBackend::Tpm { .. } => "passgate tpm2",
    };
    (name.to_owned(), env!("CARGO_PKG_VERSION").to_owned())
}

/// Creates (or replaces) the caller's SOTER gate credential and device key, with one
/// fingerprint verification, and returns the key to register.
pub fn prepare_auth_key(
    platform: &Platform,
    caller: &CallerId,
    interaction: &Interaction,
) -> Result<AuthKey, SoterError> {
    check_device(
        platform,
        PREPARE,
        &["fingerPrint".to_owned(), "facial".to_owned()],
    )?;
    let device = platform.device();
    let rp_id = caller.rp_id();
    let salt: [u8; 32] = crate::random().map_err(|e| internal(PREPARE, e))?;
    let created = device
        .make_credential(
            &CreateRequest {
                rp_id: &rp_id,
                user_id: b"passgate-soter",
                user_name: "SOTER auth key",
                client_data_hash: sha256(b"passgate soter auth key"),
                verification: Verification::Builtin,
                cred_protect: Some(CRED_PROTECT_UV_REQUIRED),
                biometric_set: true,
                hmac_secret: Some(Some(salt)),
            },
            interaction,
        )
        .map_err(|e| failure_error(PREPARE, &e))?;
    let output = match created.hmac_output {
        Some(output) if user_verified(created.flags) => output,
        _ => {
            return Err(internal(
                PREPARE,
                "the authenticator did not verify the user",
            ));
        }
    };
    let stored = key::create(platform.soter_keys(), &output).map_err(|e| internal(PREPARE, e))?;
    let pem = key::spki_pem(&stored.spki());
    let cpu_id = device_id(platform).map_err(|e| internal(PREPARE, e))?;
    let counter = next_counter(platform).map_err(|e| internal(PREPARE, e))?;
    let key_json = serde_json::to_string(&KeyJson {
        pub_key: &pem,
        cpu_id: &cpu_id,
        counter,
        uid: caller.name(),
    })
    .map_err(|e| internal(PREPARE, e))?;
    let signature = key::sign(platform.soter_keys(), &stored, &output, key_json.as_bytes())
        .map_err(|e| internal(PREPARE, e))?;
    drop(output);
    let auth_key = AuthKey {
        key_json,
        key_json_signature: std_b64(&signature),
        key_store: platform.soter_keys().name().to_owned(),
    };
    let prepared = Prepared {
        rp_id,
        credential_id: crate::b64(&created.credential_id),
        salt: crate::b64(&salt),
        key: stored,
        auth_key: auth_key.clone(),
    };
    let bytes = serde_json::to_vec_pretty(&prepared).map_err(|e| internal(PREPARE, e))?;
    let path = prepared_path(platform, caller).map_err(|e| internal(PREPARE, e))?;
    crate::fs::write_atomic(&path, &bytes, platform.write_hook())
        .map_err(|e| internal(PREPARE, e))?;
    tracing::info!(caller = caller.name(), key_store = %auth_key.key_store, "SOTER auth key prepared");
    Ok(auth_key)
}

/// The caller's prepared key (no verification needed: it is public).
pub fn get_auth_key(platform: &Platform, caller: &CallerId) -> Result<AuthKey, SoterError> {
    load_prepared(platform, caller)
        .map(|p| p.auth_key)
        .ok_or_else(|| {
            SoterError::new(
                "getAuthKey",
                90007,
                "auth key update error",
                "no auth key: call prepareAuthKey first",
            )
        })
}

fn std_b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `startSoterAuthentication({challenge, requestAuthModes, authContent})`.
pub fn start_soter_authentication(
    platform: &Platform,
    caller: &CallerId,
    request: &StartRequest,
    interaction: &Interaction,
) -> Result<StartResult, SoterError> {
    let chars = request.challenge.chars().count();
    if chars == 0 || chars > MAX_CHALLENGE_CHARS {
        return Err(SoterError::new(
            START,
            90004,
            "challenge error",
            format!("challenge must be 1 to {MAX_CHALLENGE_CHARS} characters"),
        ));
    }
    if request.auth_content.chars().count() > MAX_AUTH_CONTENT_CHARS {
        return Err(SoterError::new(
            START,
            90005,
            "auth content too long",
            format!("authContent is at most {MAX_AUTH_CONTENT_CHARS} characters"),
        ));
    }
    let mode = check_device(platform, START, &request.request_auth_modes)?;
    let Some(prepared) = load_prepared(platform, caller) else {
        return Err(SoterError::new(
            START,
            90007,
            "auth key update error",
            "no auth key: call prepareAuthKey first and register it",
        ));
    };
    let credential_id = crate::unb64(&prepared.credential_id)
        .ok_or_else(|| internal(START, "damaged state: credential ID"))?;
    let salt: [u8; 32] = crate::unb64(&prepared.salt)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| internal(START, "damaged state: salt"))?;
    let text =
        scan_prompt::soter_dialog(caller.name(), &request.auth_content, MAX_AUTH_CONTENT_CHARS);
    tracing::info!(caller = caller.name(), prompt = %text.description, "SOTER authentication");
    let device = platform.device();
    let assert = |on: &Interaction| {
        device.get_assertion(
            &AssertRequest {
                rp_id: &prepared.rp_id,
                credential_id: &credential_id,
                client_data_hash: sha256(request.challenge.as_bytes()),
                verification: Verification::Builtin,
                hmac_salt: Some(salt),
            },
            on,
        )
    };
    // The scan runs beside a dialog in the host's trusted prompt (which names the operation,
    // the caller and the authContent), when the host has one.
    let (result, dialog) = match platform.passcodes().prompt() {
        Some(prompt) => scan_prompt::scan_with_dialog(
            prompt.as_ref(),
            &text,
            None,
            &Fallback::Hidden,
            interaction,
            assert,
        ),
        None => (assert(interaction), DialogOutcome::Closed),
    };
    let assertion = match (result, dialog) {
        (Ok(assertion), _) => assertion,
        (Err(_), DialogOutcome::Cancelled | DialogOutcome::Fallback) => {
            return Err(SoterError::new(
                START,
                90008,
                "cancel",
                "the person cancelled in the fingerprint dialog",
            ));
        }
        (Err(_), DialogOutcome::Unavailable(why)) => {
            return Err(internal(
                START,
                format!("the fingerprint dialog cannot be shown: {why}"),
            ));
        }
        (Err(e), DialogOutcome::Closed | DialogOutcome::TimedOut) => {
            return Err(failure_error(START, &e));
        }
    };
    let output = match assertion.hmac_output {
        Some(output) if user_verified(assertion.flags) => output,
        _ => {
            return Err(SoterError::new(
                START,
                90009,
                "",
                "the user was not verified",
            ));
        }
    };
    let fid = finger_id(platform, device.matched_template().as_deref())
        .map_err(|e| internal(START, e))?;
    let (tee_n, tee_v) = tee_name(platform);
    // The counter is durable before anything is signed with it.
    let counter = next_counter(platform).map_err(|e| internal(START, e))?;
    let result = ResultJson {
        raw: request.challenge.clone(),
        fid,
        counter,
        tee_n,
        tee_v,
        fp_n: if mode == "facial" { "face" } else { "fprintd" }.to_owned(),
        fp_v: "1".to_owned(),
        cpu_id: device_id(platform).map_err(|e| internal(START, e))?,
        uid: caller.name().to_owned(),
    };
    let result_json = serde_json::to_string(&result).map_err(|e| internal(START, e))?;
    let signature = key::sign(
        platform.soter_keys(),
        &prepared.key,
        &output,
        result_json.as_bytes(),
    )
    .map_err(|e| internal(START, e))?;
    drop(output);
    Ok(StartResult {
        auth_mode: mode.to_owned(),
        result_json,
        result_json_signature: std_b64(&signature),
        err_code: 0,
        err_msg: format!("{START}:ok"),
    })
}
