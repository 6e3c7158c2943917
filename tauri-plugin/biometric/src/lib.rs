//! Tauri's official biometric plugin API on the Linux desktop, answered by passgate.
//!
//! `@tauri-apps/plugin-biometric` calls `plugin:biometric|status` and
//! `plugin:biometric|authenticate` with `{reason, ...options}`. The official Rust crate answers
//! them on Android and iOS only; this plugin, registered under the same name next to
//! `tauri-plugin-passgate`, answers them with passgate's authenticator:
//!
//! ```text
//! tauri::Builder::default()
//!     .plugin(tauri_plugin_passgate::Builder::new().build())
//!     .plugin(tauri_plugin_passgate_biometric::init())
//!     .run(tauri::generate_context!())?;
//! ```
//!
//! Shapes are the official ones: `status()` gives `{isAvailable, biometryType, error?,
//! errorCode?}` with the numeric `BiometryType` (0 None, 1 TouchID, 2 FaceID, 3 Iris); a
//! fingerprint reader is 1, as Android reports its fingerprint sensor, and `biometryKind`
//! (`"Fingerprint"`) says which reader it really is. `authenticate()` resolves with nothing or
//! rejects with `{code, message}` (`userCancel`, `biometryLockout`, `authenticationFailed`, ...).

use serde::Serialize;
use serde_json::{Map, Value as Json, json};
use tauri::plugin::{Builder, TauriPlugin};
use tauri::{Runtime, Webview};
use tauri_plugin_passgate::PassgateExt;

/// The official numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde_repr::Serialize_repr)]
#[repr(u8)]
pub enum BiometryType {
    /// No sensor.
    None = 0,
    /// Touch ID, or a fingerprint reader.
    TouchId = 1,
    /// Face ID or face recognition.
    FaceId = 2,
    /// Iris.
    Iris = 3,
}

/// passgate's biometry names (its `checkStatus`) in the official numbering.
pub fn biometry_type(kind: &str) -> BiometryType {
    match kind {
        "TouchID" | "Fingerprint" => BiometryType::TouchId,
        "FaceID" => BiometryType::FaceId,
        "Iris" => BiometryType::Iris,
        _ => BiometryType::None,
    }
}

/// `status()`'s answer, in the official shape plus `biometryKind`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// Whether `authenticate()` can verify a biometric now.
    pub is_available: bool,
    /// The official numeric type.
    pub biometry_type: BiometryType,
    /// passgate's name for the reader (`Fingerprint`, `None`, ...): an extension.
    pub biometry_kind: String,
    /// Why not, for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why not, for code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
}

/// A rejected call: `{code, message}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BiometricError {
    /// The official error code (`userCancel`, `biometryNotAvailable`, ...).
    pub code: String,
    /// What happened.
    pub message: String,
}

impl BiometricError {
    fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }
}

/// Converts the app router's checkStatus result.
pub fn status_from(result: &Json) -> Status {
    let text = |k: &str| result.get(k).and_then(Json::as_str).map(str::to_owned);
    let kind = text("biometryType").unwrap_or_else(|| "None".into());
    Status {
        is_available: result
            .get("isAvailable")
            .and_then(Json::as_bool)
            .unwrap_or(false),
        biometry_type: biometry_type(&kind),
        biometry_kind: kind,
        error: text("error"),
        error_code: text("errorCode"),
    }
}

/// Runs one app-API message for the calling webview; `Ok(result)` or the app error.
fn call<R: Runtime>(webview: &Webview<R>, message: Json) -> Result<Json, BiometricError> {
    let host = webview.passgate().ok_or_else(|| {
        BiometricError::new(
            "biometryNotAvailable",
            "passgate is not set up: add tauri_plugin_passgate::Builder::new().build() to the app",
        )
    })?;
    let url = webview.url().ok();
    let reply = host.message(url.as_ref(), &message);
    if reply.get("ok").and_then(Json::as_bool) != Some(true) {
        let why = reply
            .pointer("/error/message")
            .and_then(Json::as_str)
            .unwrap_or("refused");
        return Err(BiometricError::new("invalidContext", why));
    }
    let result = reply.get("result").cloned().unwrap_or(Json::Null);
    if let Some(error) = result.get("error") {
        let code = error
            .get("code")
            .and_then(Json::as_str)
            .unwrap_or("systemCancel");
        let message = error.get("message").and_then(Json::as_str).unwrap_or(code);
        return Err(BiometricError::new(code, message));
    }
    Ok(result.get("result").cloned().unwrap_or(Json::Null))
}

#[tauri::command]
async fn status<R: Runtime>(webview: Webview<R>) -> Result<Status, BiometricError> {
    let result = tauri::async_runtime::spawn_blocking(move || {
        call(&webview, json!({ "type": "biometric.checkStatus" }))
    })
    .await
    .map_err(|e| BiometricError::new("systemCancel", e.to_string()))??;
    Ok(status_from(&result))
}

/// The official `authenticate(reason, options)`: `{reason, ...options}` flattened.
// The official JS spreads the options into the command's arguments, and a Tauri command takes
// each top-level key as one parameter: one parameter per documented option.
#[allow(clippy::too_many_arguments)]
#[tauri::command]
async fn authenticate<R: Runtime>(
    webview: Webview<R>,
    reason: String,
    #[allow(non_snake_case)] allowDeviceCredential: Option<bool>,
    #[allow(non_snake_case)] cancelTitle: Option<String>,
    #[allow(non_snake_case)] fallbackTitle: Option<String>,
    title: Option<String>,
    subtitle: Option<String>,
    #[allow(non_snake_case)] confirmationRequired: Option<bool>,
    #[allow(non_snake_case)] maxAttemps: Option<u8>,
) -> Result<(), BiometricError> {
    let mut options = Map::new();
    let mut put = |k: &str, v: Option<Json>| {
        if let Some(v) = v {
            options.insert(k.into(), v);
        }
    };
    put(
        "allowDeviceCredential",
        allowDeviceCredential.map(Json::Bool),
    );
    put("cancelTitle", cancelTitle.map(Json::String));
    put("fallbackTitle", fallbackTitle.map(Json::String));
    put("title", title.map(Json::String));
    put("subtitle", subtitle.map(Json::String));
    put("confirmationRequired", confirmationRequired.map(Json::Bool));
    put("maxAttempts", maxAttemps.map(Json::from));
    let message = json!({ "type": "biometric.authenticate", "reason": reason, "options": options });
    tauri::async_runtime::spawn_blocking(move || call(&webview, message))
        .await
        .map_err(|e| BiometricError::new("systemCancel", e.to_string()))??;
    Ok(())
}

/// The plugin, named `biometric`.
pub fn init<R: Runtime>() -> TauriPlugin<R> {
    Builder::new("biometric")
        .invoke_handler(tauri::generate_handler![status, authenticate])
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn biometry_numbering_is_the_official_one() {
        assert_eq!(serde_json::to_value(BiometryType::None).unwrap(), json!(0));
        assert_eq!(
            serde_json::to_value(BiometryType::TouchId).unwrap(),
            json!(1)
        );
        assert_eq!(
            serde_json::to_value(BiometryType::FaceId).unwrap(),
            json!(2)
        );
        assert_eq!(serde_json::to_value(BiometryType::Iris).unwrap(), json!(3));
        assert_eq!(biometry_type("Fingerprint"), BiometryType::TouchId);
    }

    #[test]
    fn status_keeps_the_official_fields() {
        let s = status_from(&json!({
            "isAvailable": false, "biometryType": "Fingerprint",
            "error": "no finger is enrolled on the sensor", "errorCode": "biometryNotEnrolled"
        }));
        assert_eq!(
            serde_json::to_value(&s).unwrap(),
            json!({
                "isAvailable": false, "biometryType": 1, "biometryKind": "Fingerprint",
                "error": "no finger is enrolled on the sensor", "errorCode": "biometryNotEnrolled"
            })
        );
    }
}
