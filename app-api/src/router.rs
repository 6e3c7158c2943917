//! [`Router::handle`]`(caller, json) -> json`: the message types the host channel carries to the
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
//! | `vault.open` | `vaultId`, `username`, `authMode?`, `lockAfter?`, `maxAttempts?` | `{config, isLocked, isInUse, remainingAttempts}` |
//! | `vault.unlock` | `vaultId`, `usingPasscode?` | `null` |
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
//! Vault errors are `{code, message}` with Identity Vault's `VaultErrorCodes`; a malformed
//! request is `{code: "invalidRequest", message}`.

use std::collections::HashMap;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, PoisonError};

use passgate_authenticator::api::user_verifier::Interaction;
use serde::Deserialize;
use serde_json::{Value as Json, json};

use crate::vault::{
    AuthMode, Vault, VaultDescriptor, VaultError, VaultErrorCode, VaultEvent, VaultOptions,
};
use crate::{CallerId, Platform, biometric, soter};

/// Every message type [`Router::handle`] routes.
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
    "vault.close",
    "soter.checkIsSupportSoterAuthentication",
    "soter.checkIsSoterEnrolledInDevice",
    "soter.prepareAuthKey",
    "soter.getAuthKey",
    "soter.startSoterAuthentication",
];

struct OpenVault {
    vault: Arc<Vault>,
    events: Mutex<Receiver<VaultEvent>>,
}

/// Routes host-channel messages to the app APIs; one per process, shared by every caller.
pub struct Router {
    platform: Arc<Platform>,
    vaults: Mutex<HashMap<(CallerId, String), Arc<OpenVault>>>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("platform", &self.platform)
            .finish_non_exhaustive()
    }
}

fn invalid(message: impl Into<String>) -> Json {
    json!({ "code": "invalidRequest", "message": message.into() })
}

fn params<T: for<'de> Deserialize<'de>>(request: &Json) -> Result<T, Json> {
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
struct OpenRequest {
    vault_id: String,
    username: String,
    #[serde(default)]
    auth_mode: Option<String>,
    #[serde(default)]
    lock_after: Option<u64>,
    #[serde(default)]
    max_attempts: Option<u8>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct VaultOnly {
    vault_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UnlockRequest {
    vault_id: String,
    #[serde(default)]
    using_passcode: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct KeyRequest {
    vault_id: String,
    key: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StoreRequest {
    vault_id: String,
    key: String,
    value: Json,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UpdateRequest {
    vault_id: String,
    auth_mode: String,
    #[serde(default)]
    lock_after: Option<u64>,
    #[serde(default)]
    max_attempts: Option<u8>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct EnrolledRequest {
    check_auth_mode: String,
}

fn auth_mode(name: Option<&str>) -> Result<AuthMode, Json> {
    match name {
        None => Ok(AuthMode::BiometricOnly),
        Some(n) => AuthMode::from_name(n).ok_or_else(|| {
            VaultError {
                code: VaultErrorCode::InvalidAuthMode,
                message: format!(
                    "{n:?} is not BiometricOnly, BiometricAndPasscode, BiometricOrPasscode, PasscodeOnly or InMemoryOnly"
                ),
            }
            .to_json()
        }),
    }
}

fn vault_result(result: Result<Json, VaultError>) -> Result<Json, Json> {
    result.map_err(|e| e.to_json())
}

impl Router {
    /// A router over `platform`.
    pub fn new(platform: Arc<Platform>) -> Self {
        Self {
            platform,
            vaults: Mutex::new(HashMap::new()),
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
        let events = self.drain_events(&caller);
        if !events.is_empty() {
            reply["events"] = Json::Array(events);
        }
        reply
    }

    fn drain_events(&self, caller: &CallerId) -> Vec<Json> {
        let vaults: Vec<Arc<OpenVault>> = self
            .vaults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|((c, _), _)| c == caller)
            .map(|(_, v)| Arc::clone(v))
            .collect();
        let mut out = Vec::new();
        for open in vaults {
            let events = open.events.lock().unwrap_or_else(PoisonError::into_inner);
            while let Ok(event) = events.try_recv() {
                out.push(serde_json::to_value(&event).unwrap_or(Json::Null));
            }
        }
        out
    }

    fn vault(&self, caller: &CallerId, vault_id: &str) -> Result<Arc<Vault>, Json> {
        self.vaults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(caller.clone(), vault_id.to_owned()))
            .map(|v| Arc::clone(&v.vault))
            .ok_or_else(|| {
                VaultError {
                    code: VaultErrorCode::InvalidArguments,
                    message: format!("vault {vault_id:?} is not open: send vault.open first"),
                }
                .to_json()
            })
    }

    fn open(&self, caller: &CallerId, request: &OpenRequest) -> Result<Json, Json> {
        let options = VaultOptions {
            auth_mode: auth_mode(request.auth_mode.as_deref())?,
            lock_after: request.lock_after.unwrap_or(0),
            max_attempts: request.max_attempts.unwrap_or(5),
        };
        let descriptor = VaultDescriptor {
            vault_id: request.vault_id.clone(),
            username: request.username.clone(),
        };
        let key = (caller.clone(), request.vault_id.clone());
        let existing = self
            .vaults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .map(|v| Arc::clone(&v.vault));
        let vault = match existing {
            Some(v) => v,
            None => {
                let vault = Vault::open(
                    Arc::clone(&self.platform),
                    caller.clone(),
                    &descriptor,
                    options,
                )
                .map_err(|e| e.to_json())?;
                let events = Mutex::new(vault.subscribe());
                let vault = Arc::new(vault);
                self.vaults
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(
                        key,
                        Arc::new(OpenVault {
                            vault: Arc::clone(&vault),
                            events,
                        }),
                    );
                vault
            }
        };
        Ok(json!({
            "config": vault.config(),
            "isLocked": vault.is_locked(),
            "isInUse": vault.is_in_use(),
            "remainingAttempts": vault.remaining_attempts(),
        }))
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
            "vault.open" => self.open(caller, &params(request)?),
            "vault.unlock" => {
                let p: UnlockRequest = params(request)?;
                let vault = self.vault(caller, &p.vault_id)?;
                vault_result(
                    vault
                        .unlock(p.using_passcode, interaction)
                        .map(|()| Json::Null),
                )
            }
            "vault.lock" => {
                let p: VaultOnly = params(request)?;
                self.vault(caller, &p.vault_id)?.lock();
                Ok(Json::Null)
            }
            "vault.isLocked" => {
                let p: VaultOnly = params(request)?;
                Ok(json!(self.vault(caller, &p.vault_id)?.is_locked()))
            }
            "vault.isInUse" => {
                let p: VaultOnly = params(request)?;
                Ok(json!(self.vault(caller, &p.vault_id)?.is_in_use()))
            }
            "vault.storeValue" => {
                let p: StoreRequest = params(request)?;
                let vault = self.vault(caller, &p.vault_id)?;
                vault_result(
                    vault
                        .store_value(&p.key, &p.value, interaction)
                        .map(|()| Json::Null),
                )
            }
            "vault.getValue" => {
                let p: KeyRequest = params(request)?;
                let vault = self.vault(caller, &p.vault_id)?;
                vault_result(vault.get_value(&p.key).map(|v| v.unwrap_or(Json::Null)))
            }
            "vault.removeValue" => {
                let p: KeyRequest = params(request)?;
                let vault = self.vault(caller, &p.vault_id)?;
                vault_result(vault.remove_value(&p.key).map(|()| Json::Null))
            }
            "vault.getKeys" => {
                let p: VaultOnly = params(request)?;
                let vault = self.vault(caller, &p.vault_id)?;
                vault_result(vault.get_keys().map(|k| json!(k)))
            }
            "vault.clear" => {
                let p: VaultOnly = params(request)?;
                let vault = self.vault(caller, &p.vault_id)?;
                vault_result(vault.clear().map(|()| Json::Null))
            }
            "vault.remainingAttempts" => {
                let p: VaultOnly = params(request)?;
                Ok(json!(self.vault(caller, &p.vault_id)?.remaining_attempts()))
            }
            "vault.getConfig" => {
                let p: VaultOnly = params(request)?;
                Ok(json!(self.vault(caller, &p.vault_id)?.config()))
            }
            "vault.updateConfig" => {
                let p: UpdateRequest = params(request)?;
                let vault = self.vault(caller, &p.vault_id)?;
                let current = vault.config();
                let options = VaultOptions {
                    auth_mode: auth_mode(Some(&p.auth_mode))?,
                    lock_after: p.lock_after.unwrap_or(current.lock_after),
                    max_attempts: p.max_attempts.unwrap_or(current.max_attempts),
                };
                vault_result(vault.update_config(options, interaction).map(|c| json!(c)))
            }
            "vault.close" => {
                let p: VaultOnly = params(request)?;
                let removed = self
                    .vaults
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&(caller.clone(), p.vault_id));
                if let Some(open) = removed {
                    open.vault.lock();
                }
                Ok(Json::Null)
            }
            "soter.checkIsSupportSoterAuthentication" => {
                params::<NoParams>(request)?;
                Ok(soter::check_is_support_soter_authentication(platform))
            }
            "soter.checkIsSoterEnrolledInDevice" => {
                let p: EnrolledRequest = params(request)?;
                soter::check_is_soter_enrolled_in_device(platform, &p.check_auth_mode)
                    .map_err(|e| e.to_json())
            }
            "soter.prepareAuthKey" => {
                params::<NoParams>(request)?;
                soter::prepare_auth_key(platform, caller, interaction)
                    .map(|k| json!(k))
                    .map_err(|e| e.to_json())
            }
            "soter.getAuthKey" => {
                params::<NoParams>(request)?;
                soter::get_auth_key(platform, caller)
                    .map(|k| json!(k))
                    .map_err(|e| e.to_json())
            }
            "soter.startSoterAuthentication" => {
                let p: soter::StartRequest = params(request)?;
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
}
