//! Reading and changing a vault's values, clearing it, and changing its configuration.

use passgate_platform_api::user_verifier::Interaction;
use serde_json::Value as Json;
use zeroize::Zeroizing;

use super::file::Values;
use super::{
    AuthMode, Inner, MAX_KEYS, MAX_VALUE_BYTES, State, Vault, VaultConfig, VaultError,
    VaultErrorCode, VaultOptions, check_id, check_options,
};

impl Vault {
    fn values_or_locked(inner: &mut Inner) -> Result<Option<&mut Values>, VaultError> {
        match &mut inner.state {
            State::Locked => Err(VaultError::locked()),
            State::Absent => Ok(None),
            State::Unlocked { values, .. } | State::Memory { values } => Ok(Some(values)),
        }
    }

    /// The value stored under `key` (`None` when there is none).
    pub fn get_value(&self, key: &str) -> Result<Option<Json>, VaultError> {
        let mut inner = self.guard();
        let found = match Self::values_or_locked(&mut inner)? {
            None => None,
            Some(values) => match values.get(key) {
                None => None,
                Some(text) => Some(serde_json::from_str(text).map_err(|e| {
                    VaultError::new(VaultErrorCode::Unknown, format!("stored value: {e}"))
                })?),
            },
        };
        self.touch(&mut inner);
        Ok(found)
    }

    /// The keys stored.
    pub fn get_keys(&self) -> Result<Vec<String>, VaultError> {
        let mut inner = self.guard();
        let keys = Self::values_or_locked(&mut inner)?
            .map(|v| v.keys().cloned().collect())
            .unwrap_or_default();
        self.touch(&mut inner);
        Ok(keys)
    }

    /// Stores `value` under `key` (written before this returns). A vault with nothing stored
    /// yet is created first, which needs a verification.
    pub fn store_value(
        &self,
        key: &str,
        value: &Json,
        interaction: &Interaction,
    ) -> Result<(), VaultError> {
        check_id("key", key, 256)?;
        let text = Zeroizing::new(value.to_string());
        if text.len() > MAX_VALUE_BYTES {
            return Err(VaultError::new(
                VaultErrorCode::InvalidArguments,
                format!("a value is at most {MAX_VALUE_BYTES} bytes of JSON"),
            ));
        }
        self.change(interaction, |values| {
            if !values.contains_key(key) && values.len() >= MAX_KEYS {
                return Err(VaultError::new(
                    VaultErrorCode::InvalidArguments,
                    format!("a vault holds at most {MAX_KEYS} keys"),
                ));
            }
            values.insert(key.to_owned(), text.clone());
            Ok(())
        })
    }

    /// Removes `key` (nothing happens when it is absent).
    pub fn remove_value(&self, key: &str) -> Result<(), VaultError> {
        let interaction = Interaction::new();
        let mut inner = self.guard();
        if matches!(inner.state, State::Absent) {
            self.touch(&mut inner);
            return Ok(());
        }
        drop(inner);
        self.change(&interaction, |values| {
            values.remove(key);
            Ok(())
        })
    }

    /// Applies `edit` to a copy of the values and writes it; the vault changes only when the
    /// write succeeded.
    fn change(
        &self,
        interaction: &Interaction,
        edit: impl FnOnce(&mut Values) -> Result<(), VaultError>,
    ) -> Result<(), VaultError> {
        let mut inner = self.guard();
        if inner.config.is_passcode_setup_needed && !matches!(inner.state, State::Locked) {
            return Err(VaultError::new(
                VaultErrorCode::MissingPasscode,
                "this vault uses an app passcode and none is set yet: call setPasscode first",
            ));
        }
        // Taken out while it is rewritten (the key is needed next to `&mut inner`), and put back.
        let state = std::mem::replace(&mut inner.state, State::Locked);
        let (state, result) = match state {
            State::Locked => (State::Locked, Err(VaultError::locked())),
            State::Memory { mut values } => {
                let result = edit(&mut values);
                (State::Memory { values }, result)
            }
            State::Absent => {
                let mut values = Values::new();
                if let Err(e) = edit(&mut values) {
                    inner.state = State::Absent;
                    return Err(e);
                }
                inner.state = State::Absent;
                self.create(&mut inner, values, false, None, interaction)?;
                self.unlocked(&mut inner);
                return Ok(());
            }
            State::Unlocked {
                mut header,
                key,
                values,
            } => {
                let mut next = values.clone();
                match edit(&mut next)
                    .and_then(|()| self.write(&mut inner, false, &mut header, &next, &key))
                {
                    Ok(()) => (
                        State::Unlocked {
                            header,
                            key,
                            values: next,
                        },
                        Ok(()),
                    ),
                    Err(e) => (
                        State::Unlocked {
                            header,
                            key,
                            values,
                        },
                        Err(e),
                    ),
                }
            }
        };
        inner.state = state;
        result?;
        self.touch(&mut inner);
        Ok(())
    }

    /// Deletes the vault and its data (no verification needed, as in Identity Vault).
    pub fn clear(&self) -> Result<(), VaultError> {
        let mut inner = self.guard();
        self.clear_files(&mut inner)
            .map_err(|e| VaultError::io(&e))?;
        inner.refresh_flags();
        self.touch(&mut inner);
        Ok(())
    }

    /// Changes the configuration. A new auth mode re-keys the vault under a new credential
    /// (one verification in the new mode; an app passcode is dropped and must be set again);
    /// `lockAfter` and `maxAttempts` need the vault unlocked (they are part of the
    /// authenticated header).
    pub fn update_config(
        &self,
        options: VaultOptions,
        interaction: &Interaction,
    ) -> Result<VaultConfig, VaultError> {
        check_options(&options)?;
        let mut inner = self.guard();
        let old_mode = inner.config.auth_mode;
        let values = match &inner.state {
            State::Locked => {
                return Err(VaultError::new(
                    VaultErrorCode::VaultLocked,
                    "unlock the vault before changing its configuration",
                ));
            }
            State::Absent => None,
            State::Unlocked { values, .. } | State::Memory { values } => Some(values.clone()),
        };
        let previous = inner.config.clone();
        inner.config.lock_after = options.lock_after;
        inner.config.max_attempts = options.max_attempts;
        inner.config.auth_mode = options.auth_mode;
        inner.config.hide_screen_on_background = options.hide_screen_on_background;
        let result = match (values, old_mode == options.auth_mode) {
            (None, _) => {
                if options.auth_mode == AuthMode::InMemoryOnly {
                    inner.state = State::Memory {
                        values: Values::new(),
                    };
                }
                Ok(())
            }
            (Some(values), _) if options.auth_mode == AuthMode::InMemoryOnly => self
                .clear_files(&mut inner)
                .map_err(|e| VaultError::io(&e))
                .map(|()| inner.state = State::Memory { values }),
            (Some(values), false) => self.create(&mut inner, values, false, None, interaction),
            (Some(values), true) => {
                let state = std::mem::replace(&mut inner.state, State::Locked);
                match state {
                    State::Unlocked {
                        header,
                        key,
                        values: current,
                    } => {
                        let mut next = header.clone();
                        next.lock_after_ms = options.lock_after;
                        next.max_attempts = options.max_attempts;
                        let written = self.write(&mut inner, true, &mut next, &values, &key);
                        inner.state = State::Unlocked {
                            header: if written.is_ok() { next } else { header },
                            key,
                            values: current,
                        };
                        written
                    }
                    other => {
                        inner.state = other;
                        Ok(())
                    }
                }
            }
        };
        if let Err(e) = result {
            inner.config = previous;
            return Err(e);
        }
        self.touch(&mut inner);
        Ok(self.config_changed(&mut inner))
    }
}
