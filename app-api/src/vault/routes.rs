//! The `vault.*` messages of the host channel ([`crate::router`]): the open vaults of every
//! caller, keyed by (caller, vault ID, username) — Identity Vault's per-user vaults — and the
//! events they report.
//!
//! A message names its vault by `vaultId` and, optionally, `username`; without `username` the
//! one open vault of that ID is meant (two open for different users: `InvalidArguments`).

use std::collections::HashMap;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, PoisonError};

use passgate_platform_api::user_verifier::Interaction;
use serde::Deserialize;
use serde_json::{Value as Json, json};

use super::{
    AuthMode, Vault, VaultDescriptor, VaultError, VaultErrorCode, VaultEvent, VaultOptions,
};
use crate::router::params;
use crate::{CallerId, Platform};

struct OpenVault {
    vault: Arc<Vault>,
    events: Mutex<Receiver<VaultEvent>>,
}

type Key = (CallerId, String, String);

/// The open vaults of every caller.
#[derive(Default)]
pub struct VaultRoutes {
    vaults: Mutex<HashMap<Key, Arc<OpenVault>>>,
}

impl std::fmt::Debug for VaultRoutes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultRoutes").finish_non_exhaustive()
    }
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
    #[serde(default)]
    hide_screen_on_background: bool,
    #[serde(default)]
    custom_passcode: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct VaultOnly {
    vault_id: String,
    #[serde(default)]
    username: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UnlockRequest {
    vault_id: String,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    using_passcode: bool,
    #[serde(default)]
    passcode: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct KeyRequest {
    vault_id: String,
    #[serde(default)]
    username: Option<String>,
    key: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StoreRequest {
    vault_id: String,
    #[serde(default)]
    username: Option<String>,
    key: String,
    value: Json,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UpdateRequest {
    vault_id: String,
    #[serde(default)]
    username: Option<String>,
    auth_mode: String,
    #[serde(default)]
    lock_after: Option<u64>,
    #[serde(default)]
    max_attempts: Option<u8>,
    #[serde(default)]
    hide_screen_on_background: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PasscodeRequest {
    vault_id: String,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    passcode: Option<String>,
    #[serde(default)]
    confirmation: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct EnableRequest {
    vault_id: String,
    #[serde(default)]
    username: Option<String>,
    enabled: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VisibilityRequest {
    hidden: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoParams {}

fn auth_mode(name: Option<&str>) -> Result<AuthMode, Json> {
    match name {
        None => Ok(VaultOptions::default().auth_mode),
        Some(n) => AuthMode::from_name(n).ok_or_else(|| {
            VaultError::new(
                VaultErrorCode::InvalidAuthMode,
                format!(
                    "{n:?} is not BiometricOnly, BiometricAndPasscode, BiometricOrPasscode, PasscodeOnly or InMemoryOnly"
                ),
            )
            .to_json()
        }),
    }
}

fn done(result: Result<Json, VaultError>) -> Result<Json, Json> {
    result.map_err(|e| e.to_json())
}

fn invalid_arguments(message: String) -> Json {
    VaultError::new(VaultErrorCode::InvalidArguments, message).to_json()
}

impl VaultRoutes {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Arc<OpenVault>>> {
        self.vaults.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The events of `caller`'s vaults since the last call.
    pub fn drain_events(&self, caller: &CallerId) -> Vec<Json> {
        let vaults: Vec<Arc<OpenVault>> = self
            .map()
            .iter()
            .filter(|((c, _, _), _)| c == caller)
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

    /// The open vault `vault_id` (of `username`, when named) of `caller`.
    fn vault(
        &self,
        caller: &CallerId,
        vault_id: &str,
        username: Option<&str>,
    ) -> Result<Arc<Vault>, Json> {
        let map = self.map();
        let mut found = map.iter().filter(|((c, id, user), _)| {
            c == caller && id == vault_id && username.is_none_or(|u| u == user)
        });
        match (found.next(), found.next()) {
            (Some((_, open)), None) => Ok(Arc::clone(&open.vault)),
            (None, _) => Err(invalid_arguments(format!(
                "vault {vault_id:?} is not open: send vault.open first"
            ))),
            (Some(_), Some(_)) => Err(invalid_arguments(format!(
                "vault {vault_id:?} is open for several users: name the username"
            ))),
        }
    }

    fn open(
        &self,
        platform: &Arc<Platform>,
        caller: &CallerId,
        request: &OpenRequest,
    ) -> Result<Json, Json> {
        let options = VaultOptions {
            auth_mode: auth_mode(request.auth_mode.as_deref())?,
            lock_after: request.lock_after.unwrap_or(0),
            max_attempts: request.max_attempts.unwrap_or(5),
            hide_screen_on_background: request.hide_screen_on_background,
            custom_passcode: request.custom_passcode,
        };
        let descriptor = VaultDescriptor {
            vault_id: request.vault_id.clone(),
            username: request.username.clone(),
        };
        let key = (
            caller.clone(),
            request.vault_id.clone(),
            request.username.clone(),
        );
        let existing = self.map().get(&key).map(|v| Arc::clone(&v.vault));
        let vault = match existing {
            Some(v) => v,
            None => {
                let vault = Vault::open(Arc::clone(platform), caller.clone(), &descriptor, options)
                    .map_err(|e| e.to_json())?;
                let events = Mutex::new(vault.subscribe());
                let vault = Arc::new(vault);
                self.map().insert(
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

    /// Handles one `vault.*` message of `caller`.
    pub fn route(
        &self,
        platform: &Arc<Platform>,
        caller: &CallerId,
        kind: &str,
        request: &Json,
        interaction: &Interaction,
    ) -> Result<Json, Json> {
        let only = |request: &Json| -> Result<Arc<Vault>, Json> {
            let p: VaultOnly = params(request)?;
            self.vault(caller, &p.vault_id, p.username.as_deref())
        };
        match kind {
            "vault.open" => self.open(platform, caller, &params(request)?),
            "vault.unlock" => {
                let p: UnlockRequest = params(request)?;
                let vault = self.vault(caller, &p.vault_id, p.username.as_deref())?;
                done(
                    vault
                        .unlock_with(p.using_passcode, p.passcode.as_deref(), interaction)
                        .map(|()| Json::Null),
                )
            }
            "vault.lock" => {
                only(request)?.lock();
                Ok(Json::Null)
            }
            "vault.isLocked" => Ok(json!(only(request)?.is_locked())),
            "vault.isInUse" => Ok(json!(only(request)?.is_in_use())),
            "vault.storeValue" => {
                let p: StoreRequest = params(request)?;
                let vault = self.vault(caller, &p.vault_id, p.username.as_deref())?;
                done(
                    vault
                        .store_value(&p.key, &p.value, interaction)
                        .map(|()| Json::Null),
                )
            }
            "vault.getValue" => {
                let p: KeyRequest = params(request)?;
                let vault = self.vault(caller, &p.vault_id, p.username.as_deref())?;
                done(vault.get_value(&p.key).map(|v| v.unwrap_or(Json::Null)))
            }
            "vault.removeValue" => {
                let p: KeyRequest = params(request)?;
                let vault = self.vault(caller, &p.vault_id, p.username.as_deref())?;
                done(vault.remove_value(&p.key).map(|()| Json::Null))
            }
            "vault.getKeys" => done(only(request)?.get_keys().map(|k| json!(k))),
            "vault.clear" => done(only(request)?.clear().map(|()| Json::Null)),
            "vault.remainingAttempts" => Ok(json!(only(request)?.remaining_attempts())),
            "vault.getConfig" => Ok(json!(only(request)?.config())),
            "vault.updateConfig" => {
                let p: UpdateRequest = params(request)?;
                let vault = self.vault(caller, &p.vault_id, p.username.as_deref())?;
                let current = vault.config();
                let options = VaultOptions {
                    auth_mode: auth_mode(Some(&p.auth_mode))?,
                    lock_after: p.lock_after.unwrap_or(current.lock_after),
                    max_attempts: p.max_attempts.unwrap_or(current.max_attempts),
                    hide_screen_on_background: p
                        .hide_screen_on_background
                        .unwrap_or(current.hide_screen_on_background),
                    custom_passcode: false,
                };
                done(vault.update_config(options, interaction).map(|c| json!(c)))
            }
            "vault.setPasscode" => {
                let p: PasscodeRequest = params(request)?;
                let vault = self.vault(caller, &p.vault_id, p.username.as_deref())?;
                done(
                    vault
                        .set_passcode(
                            p.passcode.as_deref(),
                            p.confirmation.as_deref(),
                            interaction,
                        )
                        .map(|c| json!(c)),
                )
            }
            "vault.setBiometricsEnabled" | "vault.setPasscodeEnabled" => {
                let p: EnableRequest = params(request)?;
                let vault = self.vault(caller, &p.vault_id, p.username.as_deref())?;
                let result = if kind == "vault.setBiometricsEnabled" {
                    vault.set_biometrics_enabled(p.enabled, interaction)
                } else {
                    vault.set_passcode_enabled(p.enabled, interaction)
                };
                done(result.map(|c| json!(c)))
            }
            "vault.isBiometricsAvailable" => {
                params::<NoParams>(request)?;
                Ok(json!(matches!(
                    crate::verify::biometric_readiness(platform.device()),
                    Ok(Ok(()))
                )))
            }
            "vault.setVisibility" => {
                let p: VisibilityRequest = params(request)?;
                let vaults: Vec<Arc<OpenVault>> = self
                    .map()
                    .iter()
                    .filter(|((c, _, _), _)| c == caller)
                    .map(|(_, v)| Arc::clone(v))
                    .collect();
                for open in vaults {
                    open.vault.set_visibility(p.hidden);
                }
                Ok(Json::Null)
            }
            "vault.close" => {
                let p: VaultOnly = params(request)?;
                // Which one: the same rule as every other message (none open: nothing to do).
                let Ok(vault) = self.vault(caller, &p.vault_id, p.username.as_deref()) else {
                    return Ok(Json::Null);
                };
                let config = vault.config();
                drop(vault);
                let removed =
                    self.map()
                        .remove(&(caller.clone(), config.vault_id, config.username));
                if let Some(open) = removed {
                    open.vault.lock();
                }
                Ok(Json::Null)
            }
            other => Err(json!({
                "code": "unknownType",
                "message": format!("unknown message type {other:?}"),
            })),
        }
    }
}
