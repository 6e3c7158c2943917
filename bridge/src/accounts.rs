//! The account record: which passkeys this bridge has seen per RP ID, with the account names
//! the relying party gave them, so that a sign-in with several accounts can show the choice
//! *before* the one verification, as Chrome's and the operating systems' own passkey pickers
//! do. Without it the names are out of reach until the person is verified: an authenticator
//! returns them only after user verification (CTAP 2.1 §6.2.2), and credential management
//! needs the PIN.
//!
//! `STATE/bridge/accounts.json` holds, per passkey, the RP ID, the credential ID, the user
//! handle, `user.name` and `user.displayName`: learned when a create through the bridge
//! succeeds (discoverable credentials only) and from each *verified* assertion. No secret is
//! in it, but it says who uses this device on which sites (as the browser profile's own
//! passkey metadata does), so it is written like the pairings: 0600 in a 0700 directory,
//! atomically and durably, every change under `accounts.lock`, and a file others may write
//! is refused. An entry goes when the authenticator says the credential is gone
//! (NO_CREDENTIALS for an allow list of just it); a verified discoverable sign-in, which
//! finds all of a site's passkeys, replaces that site's record ([`AccountRecord::replace`]);
//! `passgate bridge forget` clears a site or everything. Names are stored as the relying party gave them (bounded) and cleaned by
//! `passgate_proto::display` before any prompt shows them.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::b64;
use crate::ceremony::Account;
use crate::private_file::{self, PrivateFileError};

/// The most accounts kept per RP ID: learning past this forgets that site's least recently
/// used.
pub const MAX_ACCOUNTS_PER_RP: usize = 32;
/// The longest name kept, in bytes (CTAP authenticators keep at most 64; the create options'
/// names are cut the same way, at a character boundary).
const MAX_NAME_BYTES: usize = 64;

const FORMAT_VERSION: u32 = 1;

/// Why the account record cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum AccountRecordError {
    /// The file or its directory cannot be used (I/O, or others may write it).
    #[error(transparent)]
    File(#[from] PrivateFileError),
    /// The file is not an account record of this version.
    #[error("{path} is not an account record passgate can read: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileForm {
    version: u32,
    /// Most recently used first.
    accounts: Vec<EntryForm>,
}

#[derive(Serialize, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct EntryForm {
    rp_id: String,
    /// base64url.
    credential_id: String,
    /// base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user_handle: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    display_name: Option<String>,
}

/// What `passgate bridge forget` clears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Forget {
    /// Every account of this RP ID.
    Rp(String),
    /// Every account.
    All,
}

/// The account record's file and its lock.
#[derive(Debug, Clone)]
pub struct AccountRecord {
    path: PathBuf,
}

/// The record's file in a state directory.
pub fn accounts_path(state_dir: &Path) -> PathBuf {
    state_dir.join("bridge").join("accounts.json")
}

/// `name` cut to [`MAX_NAME_BYTES`] at a character boundary; `None` when empty.
fn bounded(name: Option<&str>) -> Option<String> {
    let name = name.filter(|n| !n.is_empty())?;
    let mut end = name.len().min(MAX_NAME_BYTES);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name.get(..end).map(str::to_owned)
}

/// Puts `account` first among `accounts` (merged with what was recorded of it); whether
/// anything was recorded.
fn learn_one(accounts: &mut Vec<EntryForm>, rp_id: &str, account: &Account) -> bool {
    if account.credential_id.is_empty() {
        return false;
    }
    let id = b64::encode(&account.credential_id);
    let old = accounts
        .iter()
        .position(|e| e.rp_id == rp_id && e.credential_id == id)
        .map(|i| accounts.remove(i));
    let entry = EntryForm {
        rp_id: rp_id.to_owned(),
        credential_id: id,
        user_handle: account
            .user_handle
            .as_deref()
            .map(b64::encode)
            .or_else(|| old.as_ref().and_then(|o| o.user_handle.clone())),
        name: bounded(account.name.as_deref())
            .or_else(|| old.as_ref().and_then(|o| o.name.clone())),
        display_name: bounded(account.display_name.as_deref())
            .or_else(|| old.as_ref().and_then(|o| o.display_name.clone())),
    };
    if entry.name.is_none() && entry.display_name.is_none() {
        return false;
    }
    accounts.insert(0, entry);
    true
}

/// Forgets `rp_id`'s least recently used accounts past [`MAX_ACCOUNTS_PER_RP`].
fn bound(accounts: &mut Vec<EntryForm>, rp_id: &str) {
    let mut of_rp = accounts.iter().filter(|e| e.rp_id == rp_id).count();
    // Least recently used last: drop from the end.
    let mut kept = Vec::with_capacity(accounts.len());
    for entry in std::mem::take(accounts).into_iter().rev() {
        if entry.rp_id == rp_id && of_rp > MAX_ACCOUNTS_PER_RP {
            of_rp -= 1;
        } else {
            kept.push(entry);
        }
    }
    kept.reverse();
    *accounts = kept;
}

impl AccountRecord {
    /// The record at `path` (created, with its 0700 directory, on the first write).
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }

    /// Where the record is kept.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn load(&self) -> Result<Vec<EntryForm>, AccountRecordError> {
        let Some((bytes, _)) = private_file::read(&self.path)? else {
            return Ok(Vec::new());
        };
        let malformed = |reason: String| AccountRecordError::Malformed {
            path: self.path.clone(),
            reason,
        };
        let form: FileForm =
            serde_json::from_slice(&bytes).map_err(|e| malformed(e.to_string()))?;
        if form.version != FORMAT_VERSION {
            return Err(malformed(format!("version {}", form.version)));
        }
        for entry in &form.accounts {
            let ok = b64::decode(&entry.credential_id).is_ok_and(|id| !id.is_empty())
                && entry
                    .user_handle
                    .as_deref()
                    .is_none_or(|h| b64::decode(h).is_ok());
            if !ok {
                return Err(malformed(format!(
                    "an account of {} has a bad credential ID or user handle",
                    entry.rp_id
                )));
            }
        }
        Ok(form.accounts)
    }

    /// Applies `change` under the lock and writes the result when it says something changed.
    fn update<T>(
        &self,
        change: impl FnOnce(&mut Vec<EntryForm>) -> (T, bool),
    ) -> Result<T, AccountRecordError> {
        let _locked = private_file::lock(&self.path)?;
        let mut accounts = self.load()?;
        let (out, changed) = change(&mut accounts);
        if changed {
            let form = FileForm {
                version: FORMAT_VERSION,
                accounts,
            };
            let bytes =
                serde_json::to_vec_pretty(&form).map_err(|e| AccountRecordError::Malformed {
                    path: self.path.clone(),
                    reason: e.to_string(),
                })?;
            private_file::write(&self.path, &bytes)?;
        }
        Ok(out)
    }

    /// The accounts known for `rp_id`, most recently used first.
    pub fn accounts(&self, rp_id: &str) -> Result<Vec<Account>, AccountRecordError> {
        Ok(self
            .load()?
            .iter()
            .filter(|e| e.rp_id == rp_id)
            .filter_map(|e| {
                Some(Account {
                    credential_id: b64::decode(&e.credential_id).ok()?,
                    user_handle: e.user_handle.as_deref().and_then(|h| b64::decode(h).ok()),
                    name: e.name.clone(),
                    display_name: e.display_name.clone(),
                })
            })
            .collect())
    }

    /// Records `seen` accounts of `rp_id`, the first as the most recently used, in one
    /// write: new, or updated (names an account already has stay when it comes with none).
    /// Accounts without a name or display name are not recorded (a choice between unnamed
    /// accounts is a blind one).
    pub fn learn(&self, rp_id: &str, seen: &[&Account]) -> Result<(), AccountRecordError> {
        self.update(|accounts| {
            let mut changed = false;
            for account in seen.iter().rev() {
                changed |= learn_one(accounts, rp_id, account);
            }
            if changed {
                bound(accounts, rp_id);
            }
            ((), changed)
        })
    }

    /// After a verified discoverable sign-in, which found every passkey the authenticator
    /// holds for `rp_id`: the record of that site becomes exactly `found` (the first as the
    /// one used), so passkeys deleted elsewhere or by a reset stop being offered. An empty
    /// `found` (NO_CREDENTIALS) forgets the site.
    pub fn replace(&self, rp_id: &str, found: &[&Account]) -> Result<(), AccountRecordError> {
        if found.is_empty() && !self.path.exists() {
            return Ok(());
        }
        let ids: Vec<String> = found
            .iter()
            .map(|a| b64::encode(&a.credential_id))
            .collect();
        self.update(|accounts| {
            let before = accounts.len();
            accounts.retain(|e| e.rp_id != rp_id || ids.contains(&e.credential_id));
            let mut changed = accounts.len() != before;
            for account in found.iter().rev() {
                changed |= learn_one(accounts, rp_id, account);
            }
            if changed {
                bound(accounts, rp_id);
            }
            ((), changed)
        })
    }

    /// Forgets one credential of `rp_id` (the authenticator no longer holds it); whether it
    /// was recorded.
    pub fn forget_credential(
        &self,
        rp_id: &str,
        credential_id: &[u8],
    ) -> Result<bool, AccountRecordError> {
        if !self.path.exists() {
            return Ok(false);
        }
        let id = b64::encode(credential_id);
        self.update(|accounts| {
            let before = accounts.len();
            accounts.retain(|e| !(e.rp_id == rp_id && e.credential_id == id));
            let gone = accounts.len() != before;
            (gone, gone)
        })
    }

    /// Clears a site's accounts or all (`passgate bridge forget`); how many went.
    pub fn forget(&self, which: &Forget) -> Result<usize, AccountRecordError> {
        if !self.path.exists() {
            // Nothing was ever recorded: nothing to forget, and no directory to create.
            return Ok(0);
        }
        self.update(|accounts| {
            let before = accounts.len();
            accounts.retain(|e| match which {
                Forget::All => false,
                Forget::Rp(rp_id) => e.rp_id != *rp_id,
            });
            let gone = before - accounts.len();
            (gone, gone > 0)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use passgate_platform_api::fs::{NoHook, faults, write_atomic};

    fn account(id: u8, name: &str) -> Account {
        Account {
            credential_id: vec![id; 16],
            user_handle: Some(name.as_bytes().to_vec()),
            name: Some(name.to_owned()),
            display_name: Some(format!("{name} display")),
        }
    }

    fn names(record: &AccountRecord, rp_id: &str) -> Vec<String> {
        record
            .accounts(rp_id)
            .unwrap()
            .into_iter()
            .map(|a| a.name.unwrap_or_default())
            .collect()
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn accounts_round_trip_in_a_private_file_most_recent_first() {
        let state = tempfile::tempdir().unwrap();
        let record = AccountRecord::new(accounts_path(state.path()));
        assert!(record.accounts("example.com").unwrap().is_empty());
        assert!(!record.path().exists(), "reading creates nothing");
        record
            .learn("example.com", &[&account(1, "olivia")])
            .unwrap();
        record
            .learn("example.com", &[&account(2, "peggy")])
            .unwrap();
        record.learn("other.org", &[&account(3, "trent")]).unwrap();
        assert_eq!(names(&record, "example.com"), ["peggy", "olivia"]);
        assert_eq!(names(&record, "other.org"), ["trent"]);
        let olivia = &record.accounts("example.com").unwrap()[1];
        assert_eq!(olivia, &account(1, "olivia"));
        // Using olivia again moves her first; an assertion without names keeps hers.
        let nameless = Account {
            name: None,
            display_name: None,
            ..account(1, "olivia")
        };
        record.learn("example.com", &[&nameless]).unwrap();
        assert_eq!(names(&record, "example.com"), ["olivia", "peggy"]);
        assert_eq!(
            record.accounts("example.com").unwrap()[0]
                .display_name
                .as_deref(),
            Some("olivia display")
        );
        // A credential never seen with a name is not recorded.
        record
            .learn(
                "example.com",
                &[&Account {
                    credential_id: vec![9; 16],
                    ..nameless
                }],
            )
            .unwrap();
        assert_eq!(record.accounts("example.com").unwrap().len(), 2);
        // Several at once (a verified discoverable sign-in): the first is the one used.
        let (walter, peggy) = (account(4, "walter"), account(2, "peggy"));
        record.learn("example.com", &[&walter, &peggy]).unwrap();
        assert_eq!(names(&record, "example.com"), ["walter", "peggy", "olivia"]);
        assert_eq!(mode(record.path()), 0o600);
        assert_eq!(mode(record.path().parent().unwrap()), 0o700);
        let mut files: Vec<_> = std::fs::read_dir(record.path().parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        files.sort();
        assert_eq!(
            files,
            ["accounts.json", "accounts.lock"],
            "no temp file left"
        );
    }

    #[test]
    fn stale_credentials_and_forget_by_site_or_all() {
        let state = tempfile::tempdir().unwrap();
        let record = AccountRecord::new(accounts_path(state.path()));
        assert_eq!(record.forget(&Forget::All).unwrap(), 0);
        assert!(
            !record.path().exists(),
            "forgetting nothing creates nothing"
        );
        record
            .learn("example.com", &[&account(1, "olivia")])
            .unwrap();
        record
            .learn("example.com", &[&account(2, "peggy")])
            .unwrap();
        record.learn("other.org", &[&account(3, "trent")]).unwrap();
        assert!(record.forget_credential("example.com", &[2; 16]).unwrap());
        assert!(
            !record.forget_credential("other.org", &[1; 16]).unwrap(),
            "only this site's credential"
        );
        assert_eq!(names(&record, "example.com"), ["olivia"]);
        assert_eq!(record.forget(&Forget::Rp("example.com".into())).unwrap(), 1);
        assert!(names(&record, "example.com").is_empty());
        assert_eq!(names(&record, "other.org"), ["trent"]);
        assert_eq!(record.forget(&Forget::All).unwrap(), 1);
        assert!(names(&record, "other.org").is_empty());
    }

    #[test]
    fn a_complete_list_replaces_the_site() {
        let state = tempfile::tempdir().unwrap();
        let record = AccountRecord::new(accounts_path(state.path()));
        record.replace("example.com", &[]).unwrap();
        assert!(
            !record.path().exists(),
            "nothing to forget, nothing created"
        );
        let (olivia, peggy, trent) = (
            account(1, "olivia"),
            account(2, "peggy"),
            account(3, "trent"),
        );
        record.learn("example.com", &[&olivia, &peggy]).unwrap();
        record.learn("other.org", &[&trent]).unwrap();
        // The authenticator found trent's passkey for example.com and olivia's (peggy's is
        // gone); a nameless answer keeps olivia's recorded names.
        let nameless = Account {
            name: None,
            display_name: None,
            ..olivia.clone()
        };
        let trent_here = account(4, "trent");
        record
            .replace("example.com", &[&trent_here, &nameless])
            .unwrap();
        assert_eq!(names(&record, "example.com"), ["trent", "olivia"]);
        assert_eq!(
            names(&record, "other.org"),
            ["trent"],
            "other sites untouched"
        );
        record.replace("example.com", &[]).unwrap();
        assert!(names(&record, "example.com").is_empty());
        assert_eq!(names(&record, "other.org"), ["trent"]);
    }

    #[test]
    fn a_failed_write_keeps_the_accounts_recorded_before() {
        let state = tempfile::tempdir().unwrap();
        let record = AccountRecord::new(accounts_path(state.path()));
        record
            .learn("example.com", &[&account(1, "olivia")])
            .unwrap();
        for op in [faults::Op::Write, faults::Op::Fsync, faults::Op::Rename] {
            let fault = faults::inject(op, 1, rustix::io::Errno::NOSPC.raw_os_error());
            let error = record
                .learn("example.com", &[&account(2, "peggy")])
                .unwrap_err();
            assert!(
                matches!(error, AccountRecordError::File(PrivateFileError::Io { .. })),
                "{op:?}: {error}"
            );
            assert!(fault.fired() >= 1, "{op:?}");
            drop(fault);
            assert_eq!(names(&record, "example.com"), ["olivia"], "{op:?}");
        }
        let files = std::fs::read_dir(record.path().parent().unwrap())
            .unwrap()
            .count();
        assert_eq!(files, 2, "no temp file is left behind");
    }

    #[test]
    fn a_record_others_may_write_is_refused() {
        let state = tempfile::tempdir().unwrap();
        let record = AccountRecord::new(accounts_path(state.path()));
        record
            .learn("example.com", &[&account(1, "olivia")])
            .unwrap();
        std::fs::set_permissions(record.path(), std::fs::Permissions::from_mode(0o620)).unwrap();
        assert!(matches!(
            record.accounts("example.com"),
            Err(AccountRecordError::File(PrivateFileError::NotPrivate {
                mode: 0o620,
                ..
            }))
        ));
        std::fs::set_permissions(record.path(), std::fs::Permissions::from_mode(0o600)).unwrap();
        let dir = record.path().parent().unwrap();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o757)).unwrap();
        assert!(matches!(
            record.learn("example.com", &[&account(2, "peggy")]),
            Err(AccountRecordError::File(PrivateFileError::NotPrivate {
                mode: 0o757,
                ..
            }))
        ));
    }

    #[test]
    fn malformed_files_long_names_and_the_per_site_bound() {
        let state = tempfile::tempdir().unwrap();
        let record = AccountRecord::new(accounts_path(state.path()));
        for n in 0..MAX_ACCOUNTS_PER_RP + 2 {
            let byte = u8::try_from(n).unwrap();
            record
                .learn("example.com", &[&account(byte, &format!("u{n}"))])
                .unwrap();
        }
        let kept = names(&record, "example.com");
        assert_eq!(kept.len(), MAX_ACCOUNTS_PER_RP);
        assert_eq!(kept[0], format!("u{}", MAX_ACCOUNTS_PER_RP + 1));
        assert_eq!(
            kept.last().unwrap(),
            "u2",
            "the two least recently used went"
        );
        // 40 two-byte characters: cut to 64 bytes, at a character boundary.
        let long = "é".repeat(40);
        record.learn("long.example", &[&account(1, &long)]).unwrap();
        assert_eq!(names(&record, "long.example"), ["é".repeat(32)]);
        for bad in [
            "{",
            r#"{"version": 2, "accounts": []}"#,
            r#"{"version": 1, "accounts": [{"rp_id": "a", "credential_id": "!!"}]}"#,
            r#"{"version": 1, "accounts": [{"rp_id": "a", "credential_id": "", "name": "x"}]}"#,
            r#"{"version": 1, "accounts": [{"rp_id": "a", "credential_id": "AAAA", "pin": "1"}]}"#,
        ] {
            write_atomic(record.path(), bad.as_bytes(), &NoHook).unwrap();
            assert!(
                matches!(
                    record.accounts("a"),
                    Err(AccountRecordError::Malformed { .. })
                ),
                "{bad}"
            );
        }
    }
}
