//! [`AppRouter::handle`]`(caller, json) -> json`: the message types the host channel carries to the
//! app APIs. The host (a webview's native side, `passgate app serve`) supplies the caller — a
//! page's true origin or an app's ID — never the page.
//!
//! Requests are `{"type": "<api>.<call>", ...parameters}`. Replies are `{"result": ...}` or
//! `{"error": {...}}`, with `"events": [...]` when vaults of this caller locked, unlocked or
//! changed configuration since the last reply (an idle lock included).
//!
//! | type | parameters | result |
//! | --- | --- | --- |
//! | `biometric.checkStatus` | | `{isAvailable, biometryType, error?, errorCode?}` |
//! | `biometric.authenticate` | `reason`, `options` | `{method, proof?}`; error `{code, message}` |
//! | `biometric.getProofKey` | | `{credentialId, publicKey, publicKeyCose, rpId, origin, ...}` |
//! | `vault.open` | `vaultId`, `username`, `authMode?` (default `BiometricAndPasscode`), `lockAfter?`, `maxAttempts?`, `hideScreenOnBackground?`, `customPasscode?` | `{config, isLocked, isInUse, remainingAttempts}` |
//! | `vault.unlock` | `vaultId`, `usingPasscode?`, `passcode?` (the app passcode) | `null` |
//! | `vault.setPasscode` | `vaultId`, `passcode?`, `confirmation?` | config |
//! | `vault.setBiometricsEnabled`, `vault.setPasscodeEnabled` | `vaultId`, `enabled` | config |
//! | `vault.isBiometricsAvailable` | | bool |
//! | `vault.setVisibility` | `hidden` (the host reports the app in the background or shown) | `null` |
//! | `vault.lock`, `vault.clear`, `vault.close` | `vaultId` | `null` |
//! | `vault.isLocked`, `vault.isInUse` | `vaultId` | bool |
//! | `vault.storeValue` | `vaultId`, `key`, `value` | `null` |
//! | `vault.getValue` | `vaultId`, `key` | the value or `null` |
//! | `vault.removeValue` | `vaultId`, `key` | `null` |
//! | `vault.getKeys` | `vaultId` | `[keys]` |
//! | `vault.remainingAttempts` | `vaultId` | number |
//! | `vault.getConfig` | `vaultId` | config |
//! | `vault.updateConfig` | `vaultId`, `authMode`, `lockAfter?`, `maxAttempts?` | config |
//! | `soter.checkIsSupportSoterAuthentication` | | `{supportMode}` |
//! | `soter.checkIsSoterEnrolledInDevice` | `checkAuthMode` | `{isEnrolled}` |
//! | `soter.prepareAuthKey`, `soter.getAuthKey` | | `{keyJson, keyJsonSignature, keyStore}` |
//! | `soter.startSoterAuthentication` | `challenge`, `requestAuthModes`, `authContent?` | `{authMode, resultJSON, resultJSONSignature, errCode, errMsg}`; error `{errCode, errMsg, detail}` |
//!
//! Every `vault.*` message but `open` and the two without a vault may also name `username`
//! (a vault is (caller, `vaultId`, `username`); without it, the one open vault of that ID).
//! Vault errors are `{code, message}` with Identity Vault's `VaultErrorCodes`; SOTER errors,
//! a malformed SOTER request included, are `{errCode, errMsg, detail}` as WeChat reports them;
//! any other malformed request is `{code: "invalidRequest", message}`.

use std::sync::Arc;

use passgate_platform_api::user_verifier::Interaction;
use serde::Deserialize;
use serde_json::{Value as Json, json};

use crate::vault::routes::VaultRoutes;
use crate::{CallerId, Platform, biometric, soter};

/// Every message type [`AppRouter::handle`] routes.
pub const MESSAGE_TYPES: &[&str] = &[
    "biometric.checkStatus",
    "biometric.authenticate",
    "biometric.getProofKey",
    "vault.open",
    "vault.unlock",
    "vault.lock",
    "vault.isLocked",
    "vault.isInUse",
    "vault.storeValue",
    "vault.getValue",
    "vault.removeValue",
    "vault.getKeys",
    "vault.clear",
    "vault.remainingAttempts",
    "vault.getConfig",
    "vault.updateConfig",
    "vault.setPasscode",
    "vault.setBiometricsEnabled",
    "vault.setPasscodeEnabled",
    "vault.isBiometricsAvailable",
    "vault.setVisibility",
    "vault.close",
    "soter.checkIsSupportSoterAuthentication",
    "soter.checkIsSoterEnrolledInDevice",
    "soter.prepareAuthKey",
    "soter.getAuthKey",
    "soter.startSoterAuthentication",
];

/// Routes host-channel messages to the app APIs; one per process, shared by every caller.
pub struct AppRouter {
    platform: Arc<Platform>,
    vaults: VaultRoutes,
}

impl std::fmt::Debug for AppRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppRouter")
            .field("platform", &self.platform)
            .finish_non_exhaustive()
    }
}

fn invalid(message: impl Into<String>) -> Json {
    json!({ "code": "invalidRequest", "message": message.into() })
}

pub(crate) fn params<T: for<'de> Deserialize<'de>>(request: &Json) -> Result<T, Json> {
    let mut object = request.as_object().cloned().unwrap_or_default();
    object.remove("type");
    serde_json::from_value(Json::Object(object)).map_err(|e| invalid(e.to_string()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoParams {}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Authenticate {
    reason: String,
    #[serde(default)]
    options: biometric::AuthOptions,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct EnrolledRequest {
    check_auth_mode: String,
}

impl AppRouter {
    /// A router over `platform`.
    pub fn new(platform: Arc<Platform>) -> Self {
        Self {
            platform,
            vaults: VaultRoutes::default(),
        }
    }

    /// The platform.
    pub fn platform(&self) -> &Arc<Platform> {
        &self.platform
    }

    /// Handles one message from `caller` (JSON text in, JSON text out).
    pub fn handle(&self, caller: &str, request_json: &str) -> String {
        let reply = match serde_json::from_str::<Json>(request_json) {
            Ok(request) => self.dispatch(caller, &request, &Interaction::new()),
            Err(e) => json!({ "error": invalid(format!("the request is not JSON: {e}")) }),
        };
        reply.to_string()
    }

    /// [`Self::handle`] on parsed JSON; `interaction` cancels a waiting verification.
    pub fn dispatch(&self, caller: &str, request: &Json, interaction: &Interaction) -> Json {
        let caller = match CallerId::new(caller) {
            Ok(c) => c,
            Err(e) => return json!({ "error": invalid(e.to_string()) }),
        };
        let outcome = match request.get("type").and_then(Json::as_str) {
            None => Err(invalid("the request has no \"type\"")),
            Some(kind) => self.route(&caller, kind, request, interaction),
        };
        let mut reply = match outcome {
            Ok(result) => json!({ "result": result }),
            Err(error) => json!({ "error": error }),
        };
        let events = self.vaults.drain_events(&caller);
        if !events.is_empty() {
            reply["events"] = Json::Array(events);
        }
        reply
    }

    fn route(
        &self,
        caller: &CallerId,
        kind: &str,
        request: &Json,
        interaction: &Interaction,
    ) -> Result<Json, Json> {
        let platform = self.platform.as_ref();
        match kind {
            "biometric.checkStatus" => {
                params::<NoParams>(request)?;
                Ok(json!(biometric::check_status(platform)))
            }
            "biometric.authenticate" => {
                let p: Authenticate = params(request)?;
                biometric::authenticate(platform, caller, &p.reason, &p.options, interaction)
                    .map(|a| json!(a))
                    .map_err(|e| e.to_json())
            }
            "biometric.getProofKey" => {
                params::<NoParams>(request)?;
                biometric::proof_key(platform, caller)
                    .map(|k| json!(k))
                    .map_err(|e| e.to_json())
            }
            kind if kind.starts_with("vault.") => {
                self.vaults
                    .route(&self.platform, caller, kind, request, interaction)
            }
            kind if kind.starts_with("soter.") => {
                let api = kind.trim_start_matches("soter.");
                let invalid = |e: Json| {
                    let detail = e["message"].as_str().unwrap_or_default().to_owned();
                    soter::invalid_request(api, request, &detail).to_json()
                };
                match kind {
                    "soter.checkIsSupportSoterAuthentication" => {
                        params::<NoParams>(request).map_err(invalid)?;
                        Ok(soter::check_is_support_soter_authentication(platform))
                    }
                    "soter.checkIsSoterEnrolledInDevice" => {
                        let p: EnrolledRequest = params(request).map_err(invalid)?;
                        soter::check_is_soter_enrolled_in_device(platform, &p.check_auth_mode)
                            .map_err(|e| e.to_json())
                    }
                    "soter.prepareAuthKey" => {
                        params::<NoParams>(request).map_err(invalid)?;
                        soter::prepare_auth_key(platform, caller, interaction)
                            .map(|k| json!(k))
                            .map_err(|e| e.to_json())
                    }
                    "soter.getAuthKey" => {
                        params::<NoParams>(request).map_err(invalid)?;
                        soter::get_auth_key(platform, caller)
                            .map(|k| json!(k))
                            .map_err(|e| e.to_json())
                    }
                    "soter.startSoterAuthentication" => {
                        let p: soter::StartRequest = params(request).map_err(invalid)?;
                        soter::start_soter_authentication(platform, caller, &p, interaction)
                            .map(|r| json!(r))
                            .map_err(|e| e.to_json())
                    }
                    other => Err(json!({
                        "code": "unknownType",
                        "message": format!("unknown message type {other:?}"),
                    })),
                }
            }
            other => Err(json!({
                "code": "unknownType",
                "message": format!("unknown message type {other:?}"),
            })),
        }
    }
}
