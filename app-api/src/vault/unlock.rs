//! Verifying the user for a vault: creating its credential, getting the credential's UV-gated
//! hmac-secret output (with the app passcode on the passcode path), counting failed attempts
//! before they are evaluated, and writing the vault file and its counter.

use passgate_platform_api::user_verifier::Interaction;
use zeroize::Zeroizing;

use super::attempts::{self, Counter, Stored, Verdict};
use super::error::{failure_error, plan_error};
use super::file::{self, Header, PasscodeCheck, Values, VaultKey};
use super::passcode::{self, StretchParams};
use super::{AuthMode, Inner, MAX_FILE_BYTES, State, Vault, VaultError, VaultErrorCode};
use crate::device::{AssertRequest, CRED_PROTECT_UV_REQUIRED, CreateRequest, user_verified};
use crate::sha256;
use crate::verify::{self, Accept, Failure, PasscodeRequest, PlanError};

/// Why a verification did not give the vault's secret.
pub(super) enum Refused {
    /// The person was not recognised: one failed attempt.
    Counted(VaultError),
    /// Not the person's failure (a cancel, an unavailable sensor, a device error).
    NotCounted(VaultError),
}

fn unknown(e: impl std::fmt::Display) -> VaultError {
    VaultError::new(VaultErrorCode::Unknown, e.to_string())
}

fn passcode_error(e: &passcode::PasscodeError) -> VaultError {
    match e {
        passcode::PasscodeError::Invalid => {
            VaultError::new(VaultErrorCode::InvalidArguments, e.to_string())
        }
        passcode::PasscodeError::Params => {
            VaultError::new(VaultErrorCode::VaultUnavailable, e.to_string())
        }
    }
}

/// The key the values are encrypted under, and the passcode check to store, for a vault of
/// `mode` whose credential gave `hmac_output`, with `app_passcode` if the app set one.
fn keys_for(
    mode: AuthMode,
    hmac_output: &[u8],
    app_passcode: Option<&str>,
    rp_id: &str,
    vault_id: &str,
) -> Result<(VaultKey, Option<PasscodeCheck>), VaultError> {
    let biometric_key = VaultKey::derive(hmac_output, rp_id, vault_id).map_err(unknown)?;
    let Some(code) = app_passcode else {
        return Ok((biometric_key, None));
    };
    let params = StretchParams::new().map_err(|e| VaultError::io(&e))?;
    let stretched = passcode::stretch(code, &params).map_err(|e| passcode_error(&e))?;
    let passcode_key = VaultKey::derive_with_passcode(hmac_output, &*stretched, rp_id, vault_id)
        .map_err(unknown)?;
    let check = PasscodeCheck {
        params,
        check: passcode_key.seal_check(vault_id).map_err(unknown)?,
    };
    // PasscodeOnly: nothing but the passcode path opens the values. Otherwise the biometric
    // path opens them, and the passcode path proves the passcode before it may.
    let key = if mode == AuthMode::PasscodeOnly {
        passcode_key
    } else {
        biometric_key
    };
    Ok((key, Some(check)))
}

impl Vault {
    /// What the PIN prompt says this is for.
    fn passcode_reason(inner: &Inner) -> String {
        format!(
            "open the vault \u{201c}{}\u{201d} of {}",
            inner.config.vault_id, inner.config.username
        )
    }

    /// Creates the vault's credential with a verification and writes `values` under its key
    /// (with `app_passcode`, if the app set one).
    pub(super) fn create(
        &self,
        inner: &mut Inner,
        values: Values,
        using_passcode: bool,
        app_passcode: Option<&str>,
        interaction: &Interaction,
    ) -> Result<(), VaultError> {
        if let Some(code) = app_passcode {
            passcode::check_passcode(code).map_err(|e| passcode_error(&e))?;
        }
        let mode = inner.config.auth_mode;
        let device = self.platform.device();
        let rp_id = self.caller.rp_id();
        let mut accept = mode.accept(using_passcode, app_passcode.is_some());
        let reason = Self::passcode_reason(inner);
        let created = loop {
            let planned = verify::plan(
                device,
                accept,
                self.platform.passcodes(),
                &PasscodeRequest {
                    caller: self.caller.name(),
                    reason: &reason,
                    attempt: 1,
                    labels: verify::PromptLabels::default(),
                },
                passgate_proto::ctap::Permissions::MAKE_CREDENTIAL,
                &rp_id,
                interaction,
            )
            .map_err(|e| plan_error(e, mode))?;
            let verification = planned.verification();
            let salt: [u8; 32] = crate::random().map_err(|e| VaultError::io(&e))?;
            let mut user_id = b"vault:".to_vec();
            user_id.extend_from_slice(&sha256(inner.config.vault_id.as_bytes())[..16]);
            let biometric_bound = mode == AuthMode::BiometricOnly;
            let result = device.make_credential(
                &CreateRequest {
                    rp_id: &rp_id,
                    user_id: &user_id,
                    user_name: &inner.config.username,
                    client_data_hash: sha256(b"passgate vault creation"),
                    verification,
                    cred_protect: Some(CRED_PROTECT_UV_REQUIRED),
                    biometric_set: biometric_bound,
                    hmac_secret: Some(Some(salt)),
                },
                interaction,
            );
            match result {
                Ok(created) => break (created, salt, biometric_bound),
                Err(e) => match verify::classify(&e) {
                    failure
                        if verify::retries_with_passcode(
                            failure,
                            accept,
                            mode.allows_passcode(),
                        ) =>
                    {
                        accept = verify::PASSCODE_FIRST;
                    }
                    failure => return Err(failure_error(failure, mode, &e.to_string())),
                },
            }
        };
        let (created, salt, biometric_bound) = created;
        let output = match created.hmac_output {
            Some(output) if user_verified(created.flags) => output,
            _ => {
                return Err(VaultError::new(
                    VaultErrorCode::SecurityNotAvailable,
                    "the authenticator did not verify the user while creating the vault key",
                ));
            }
        };
        let (key, passcode) =
            keys_for(mode, &output, app_passcode, &rp_id, &inner.config.vault_id)?;
        drop(output);
        let mut header = Header {
            vault_id: inner.config.vault_id.clone(),
            username: inner.config.username.clone(),
            auth_mode: mode,
            lock_after_ms: inner.config.lock_after,
            max_attempts: inner.config.max_attempts,
            rp_id,
            credential_id: created.credential_id,
            salt,
            biometric_bound,
            generation: 0,
            passcode,
        };
        self.write(inner, true, &mut header, &values, &key)?;
        inner.has_app_passcode = header.passcode.is_some();
        inner.state = State::Unlocked {
            header: Box::new(header),
            key,
            values,
        };
        Ok(())
    }

    /// Unlocks a locked vault: one verification (with the app passcode on its path), counted
    /// before it is evaluated.
    pub(super) fn unlock_locked(
        &self,
        inner: &mut Inner,
        using_passcode: bool,
        app_passcode: Option<&str>,
        interaction: &Interaction,
    ) -> Result<(), VaultError> {
        let bytes = std::fs::read(&inner.path).map_err(|e| VaultError::io(&e))?;
        let header = file::read_header(&bytes)
            .map_err(|e| VaultError::new(VaultErrorCode::VaultUnavailable, e.to_string()))?;
        let mode = header.auth_mode;
        let passcode_path =
            header.passcode.is_some() && (using_passcode || mode == AuthMode::PasscodeOnly);
        let code = if passcode_path {
            match app_passcode {
                Some(code) => Some(code),
                None => {
                    return Err(VaultError::new(
                        VaultErrorCode::MissingPasscode,
                        "this vault has an app passcode: pass it to unlock (onPasscodeRequest)",
                    ));
                }
            }
        } else {
            None
        };
        let accept = mode.accept(using_passcode, header.passcode.is_some());
        let (key, values) = self.attempt(inner, &header, |this, inner, attempt| {
            let output = this.verified_secret(inner, &header, accept, attempt, interaction)?;
            let biometric_key = VaultKey::derive(&output, &header.rp_id, &header.vault_id)
                .map_err(|e| Refused::NotCounted(unknown(e)))?;
            let key = match (code, &header.passcode) {
                (Some(code), Some(check)) => {
                    let stretched = passcode::stretch(code, &check.params)
                        .map_err(|e| Refused::NotCounted(passcode_error(&e)))?;
                    let passcode_key = VaultKey::derive_with_passcode(
                        &output,
                        &*stretched,
                        &header.rp_id,
                        &header.vault_id,
                    )
                    .map_err(|e| Refused::NotCounted(unknown(e)))?;
                    if !passcode_key.opens_check(&check.check, &header.vault_id) {
                        return Err(Refused::Counted(VaultError::new(
                            VaultErrorCode::AuthFailed,
                            "the passcode is wrong",
                        )));
                    }
                    if mode == AuthMode::PasscodeOnly {
                        passcode_key
                    } else {
                        biometric_key
                    }
                }
                _ => biometric_key,
            };
            drop(output);
            let values = file::open(&bytes, &key).map_err(|e| {
                Refused::NotCounted(VaultError::new(
                    VaultErrorCode::VaultUnavailable,
                    e.to_string(),
                ))
            })?;
            Ok((key, values))
        })?;
        inner.has_app_passcode = header.passcode.is_some();
        inner.generation = header.generation;
        inner.state = State::Unlocked {
            header: Box::new(header),
            key,
            values,
        };
        Ok(())
    }

    /// Sets (`Some`) or removes (`None`: the authenticator PIN is the passcode again) the app
    /// passcode of an unlocked vault: one verification, counted like an unlock, then the vault
    /// is written with the new check (and re-encrypted, in `PasscodeOnly`).
    pub(super) fn rekey_passcode(
        &self,
        inner: &mut Inner,
        app_passcode: Option<&str>,
        interaction: &Interaction,
    ) -> Result<(), VaultError> {
        if let Some(code) = app_passcode {
            passcode::check_passcode(code).map_err(|e| passcode_error(&e))?;
        }
        let State::Unlocked { header, values, .. } = &inner.state else {
            return Err(VaultError::locked());
        };
        let (mut header, values) = (Header::clone(header), values.clone());
        let mode = header.auth_mode;
        let accept = mode.accept(false, true);
        let (key, passcode) = self.attempt(inner, &header, |this, inner, attempt| {
            let output = this.verified_secret(inner, &header, accept, attempt, interaction)?;
            keys_for(mode, &output, app_passcode, &header.rp_id, &header.vault_id)
                .map_err(Refused::NotCounted)
        })?;
        header.passcode = passcode;
        self.write(inner, false, &mut header, &values, &key)?;
        inner.has_app_passcode = header.passcode.is_some();
        inner.state = State::Unlocked {
            header: Box::new(header),
            key,
            values,
        };
        Ok(())
    }

    /// The credential's hmac-secret output for the vault's salt, with user verification.
    fn verified_secret(
        &self,
        inner: &Inner,
        header: &Header,
        mut accept: Accept,
        attempt: u32,
        interaction: &Interaction,
    ) -> Result<Zeroizing<Vec<u8>>, Refused> {
        let mode = header.auth_mode;
        let device = self.platform.device();
        let reason = Self::passcode_reason(inner);
        let assertion = loop {
            let planned = verify::plan(
                device,
                accept,
                self.platform.passcodes(),
                &PasscodeRequest {
                    caller: self.caller.name(),
                    reason: &reason,
                    attempt,
                    labels: verify::PromptLabels::default(),
                },
                passgate_proto::ctap::Permissions::GET_ASSERTION,
                &header.rp_id,
                interaction,
            );
            let planned = match planned {
                Ok(p) => p,
                Err(e @ PlanError::PasscodeWrong { .. }) => {
                    return Err(Refused::Counted(plan_error(e, mode)));
                }
                Err(e) => return Err(Refused::NotCounted(plan_error(e, mode))),
            };
            let result = device.get_assertion(
                &AssertRequest {
                    rp_id: &header.rp_id,
                    credential_id: &header.credential_id,
                    client_data_hash: sha256(b"passgate vault unlock"),
                    verification: planned.verification(),
                    hmac_salt: Some(header.salt),
                },
                interaction,
            );
            match result {
                Ok(assertion) => break assertion,
                Err(e) => match verify::classify(&e) {
                    Failure::NotRecognised => {
                        return Err(Refused::Counted(failure_error(
                            Failure::NotRecognised,
                            mode,
                            "",
                        )));
                    }
                    failure
                        if verify::retries_with_passcode(
                            failure,
                            accept,
                            mode.allows_passcode(),
                        ) =>
                    {
                        accept = verify::PASSCODE_FIRST;
                    }
                    failure => {
                        return Err(Refused::NotCounted(failure_error(
                            failure,
                            mode,
                            &e.to_string(),
                        )));
                    }
                },
            }
        };
        match assertion.hmac_output {
            Some(output) if user_verified(assertion.flags) => Ok(output),
            _ => Err(Refused::Counted(VaultError::new(
                VaultErrorCode::AuthFailed,
                "the authenticator did not verify the user",
            ))),
        }
    }

    /// Runs one counted attempt on the vault file of `header`: refused when the counter says
    /// the attempts are exhausted (the vault is cleared) or the file is an older copy; the
    /// failure is written *before* `body` runs, reset on success, taken back when the outcome
    /// was not the person's failure.
    fn attempt<T>(
        &self,
        inner: &mut Inner,
        header: &Header,
        body: impl FnOnce(&Self, &Inner, u32) -> Result<T, Refused>,
    ) -> Result<T, VaultError> {
        let max = inner.config.max_attempts;
        let failed = match attempts::judge(
            attempts::load(&inner.attempts_path),
            header.generation,
            max,
        ) {
            Verdict::Failed(n) => n,
            Verdict::Exhausted => return Err(self.exhausted(inner, max)),
            Verdict::RolledBack { file, counter } => {
                tracing::warn!(vault = %inner.config.vault_id, file, counter, "refusing a vault file older than its attempt counter");
                return Err(VaultError::new(
                    VaultErrorCode::VaultUnavailable,
                    format!(
                        "the vault file (generation {file}) is older than its attempt counter (generation {counter}): an earlier copy was put back, and is refused"
                    ),
                ));
            }
        };
        let counted = failed.saturating_add(1);
        self.store_counter(inner, counted, header.generation)?;
        match body(self, inner, u32::from(counted)) {
            Ok(value) => {
                self.store_counter(inner, 0, header.generation)?;
                Ok(value)
            }
            Err(Refused::NotCounted(error)) => {
                if let Err(e) = self.store_counter(inner, failed, header.generation) {
                    tracing::warn!(error = %e, "could not take back an attempt that was not the person's failure");
                }
                Err(error)
            }
            Err(Refused::Counted(error)) if counted >= max => {
                let _ = error;
                Err(self.exhausted(inner, counted))
            }
            Err(Refused::Counted(error)) => Err(error),
        }
    }

    /// Clears a vault whose attempts are used up.
    fn exhausted(&self, inner: &mut Inner, failed: u8) -> VaultError {
        tracing::warn!(vault = %inner.config.vault_id, "too many failed unlocks: clearing the vault");
        if let Err(e) = self.clear_files(inner) {
            return VaultError::io(&e);
        }
        VaultError::new(
            VaultErrorCode::TooManyFailedAttempts,
            format!("{failed} failed unlocks: the vault was cleared and its data is gone"),
        )
    }

    fn store_counter(&self, inner: &Inner, failed: u8, generation: u64) -> Result<(), VaultError> {
        super::ensure_dir(&inner.attempts_path)?;
        attempts::store(
            &inner.attempts_path,
            Counter { failed, generation },
            self.platform.write_hook(),
        )
        .map_err(|e| VaultError::io(&e))
    }

    /// The generation the next vault file gets: past the file in memory and the counter.
    fn next_generation(inner: &Inner) -> u64 {
        let counter = match attempts::load(&inner.attempts_path) {
            Stored::Valid(c) => c.generation,
            Stored::Missing | Stored::Unreadable => 0,
        };
        inner.generation.max(counter).saturating_add(1)
    }

    /// Seals `values` under `key` and writes the vault file (its directory created first when
    /// `create_dir`) with the next generation, then the counter that records it.
    pub(super) fn write(
        &self,
        inner: &mut Inner,
        create_dir: bool,
        header: &mut Header,
        values: &Values,
        key: &VaultKey,
    ) -> Result<(), VaultError> {
        header.generation = Self::next_generation(inner);
        let bytes = file::seal(header, values, key).map_err(unknown)?;
        if bytes.len() > MAX_FILE_BYTES {
            return Err(VaultError::new(
                VaultErrorCode::InvalidArguments,
                "the vault would exceed 4 MiB",
            ));
        }
        if create_dir {
            super::ensure_dir(&inner.path)?;
        }
        crate::fs::write_atomic(&inner.path, &bytes, self.platform.write_hook())
            .map_err(|e| VaultError::io(&e))?;
        inner.generation = header.generation;
        // After the vault: a crash in between leaves a vault one generation ahead of its
        // counter, which is accepted (a counter ahead of its vault is not).
        self.store_counter(inner, 0, header.generation)
    }

    /// Removes the vault file, keeping its counter one generation ahead so that no earlier
    /// copy of the file opens again.
    pub(super) fn clear_files(&self, inner: &mut Inner) -> std::io::Result<()> {
        inner.state = if inner.config.auth_mode == AuthMode::InMemoryOnly {
            State::Memory {
                values: Values::new(),
            }
        } else {
            State::Absent
        };
        inner.has_app_passcode = false;
        let had_file = inner.path.exists();
        crate::fs::remove_durably(&inner.path)?;
        let floor = Self::next_generation(inner);
        if had_file || floor > 1 {
            attempts::store(
                &inner.attempts_path,
                Counter {
                    failed: 0,
                    generation: floor,
                },
                self.platform.write_hook(),
            )?;
        }
        inner.generation = floor;
        Ok(())
    }
}
