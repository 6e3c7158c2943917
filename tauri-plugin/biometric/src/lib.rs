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
//!
//! The official crate's Rust API is here too, with the same names ([`BiometricExt`],
//! [`AuthOptions`], [`Status`]): `app.biometric().status()` and
//! `app.biometric().authenticate(reason, options)` run for the app itself (its own origin,
//! [`tauri_plugin_passgate::Builder::app_origin`]).
//!
//! The options shape passgate's trusted prompt: `title`, `subtitle` and the reason are shown
//! under passgate's own line naming the caller, `cancelTitle` and `fallbackTitle` label its
//! buttons, `confirmationRequired: true` asks for a confirmation after a fingerprint match, and
//! without `allowDeviceCredential` a missing or failed fingerprint is an error
//! (`biometryNotAvailable`, `authenticationFailed`; `userFallback` when the person presses the
//! fallback button). `appCancel` is the app's (or page's) cancellation, `notInteractive` a host
//! with no prompt to show.

use serde::Serialize;
use serde_json::{Map, Value as Json, json};
use tauri::plugin::{Builder, TauriPlugin};
use tauri::{AppHandle, Manager, Runtime, Url, Webview};
use tauri_plugin_passgate::{Host, PassgateExt};

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

impl std::fmt::Display for BiometricError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for BiometricError {}

/// The official crate's `AuthOptions`, field for field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthOptions {
    /// Fall back to passgate's PIN (the official: the device passcode).
    pub allow_device_credential: bool,
    /// The cancel button's label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancel_title: Option<String>,
    /// The fallback button's label (shown while the finger is awaited).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback_title: Option<String>,
    /// The prompt's title.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// A line under the reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subtitle: Option<String>,
    /// `true`: a confirmation after a fingerprint match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmation_required: Option<bool>,
}

/// The official crate's Rust entry point: `app.biometric()`.
pub trait BiometricExt<R: Runtime> {
    /// The biometric API for the app itself.
    fn biometric(&self) -> Biometric<R>;
}

impl<R: Runtime, T: Manager<R>> BiometricExt<R> for T {
    fn biometric(&self) -> Biometric<R> {
        Biometric(self.app_handle().clone())
    }
}

/// The biometric API for the app's own Rust code; it asks as the app's own pages do.
pub struct Biometric<R: Runtime>(AppHandle<R>);

/// The URL the app's own pages have (Tauri's custom protocol on Linux).
const APP_URL: &str = "tauri://localhost/";

impl<R: Runtime> Biometric<R> {
    fn host(&self) -> Result<std::sync::Arc<Host>, BiometricError> {
        self.0.passgate().ok_or_else(not_set_up)
    }

    /// `status()`: blocks (a status check asks the authenticator).
    pub fn status(&self) -> Result<Status, BiometricError> {
        let host = self.host()?;
        let result = answer(
            &host,
            Some(&app_url()?),
            &json!({ "type": "biometric.checkStatus" }),
        )?;
        Ok(status_from(&result))
    }

    /// `authenticate(reason, options)`: blocks until the person answered passgate's prompt.
    pub fn authenticate(&self, reason: String, options: AuthOptions) -> Result<(), BiometricError> {
        let host = self.host()?;
        let options = serde_json::to_value(&options).unwrap_or(Json::Null);
        let message =
            json!({ "type": "biometric.authenticate", "reason": reason, "options": options });
        answer(&host, Some(&app_url()?), &message).map(|_| ())
    }
}

fn app_url() -> Result<Url, BiometricError> {
    Url::parse(APP_URL).map_err(|e| BiometricError::new("invalidContext", e.to_string()))
}

fn not_set_up() -> BiometricError {
    BiometricError::new(
        "biometryNotAvailable",
        "passgate is not set up: add tauri_plugin_passgate::Builder::new().build() to the app",
    )
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
    let host = webview.passgate().ok_or_else(not_set_up)?;
    let url = webview.url().ok();
    answer(&host, url.as_ref(), &message)
}

/// One app-API message from a caller at `url`; `Ok(result)` or the app error.
fn answer(host: &Host, url: Option<&Url>, message: &Json) -> Result<Json, BiometricError> {
    let reply = host.message(url, message);
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
    fn rust_options_reach_the_app_api_under_the_official_names() {
        let options = AuthOptions {
            allow_device_credential: false,
            cancel_title: Some("Not now".into()),
            fallback_title: Some("".into()),
            title: Some("Wallet".into()),
            subtitle: None,
            confirmation_required: Some(true),
        };
        assert_eq!(
            serde_json::to_value(&options).unwrap(),
            json!({"allowDeviceCredential": false, "cancelTitle": "Not now", "fallbackTitle": "",
                   "title": "Wallet", "confirmationRequired": true})
        );
        let e = BiometricError::new("userFallback", "the user chose the PIN");
        assert_eq!(e.to_string(), "userFallback: the user chose the PIN");
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
