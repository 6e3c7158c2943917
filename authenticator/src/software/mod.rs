//! The default software backends: a device key in the state directory, a key store whose
//! private keys are AES-256-GCM wrapped under it, and a durable, encrypted credential store.
//!
//! These protect credentials against other users of the machine, against backups or disk
//! images that lack `device.key`, and against leaks through logs; they do not protect against
//! root or malware running as the user. That is what the TPM backend is for.

pub(crate) mod credential_store;
mod device_key;
pub(crate) mod hmac_secret;
mod key_store;
mod state_store;
pub(crate) mod system_rng;

pub use credential_store::{COUNTER_BLOCK, COUNTER_BLOCK_MAX, FileCredentialStore, counter_block};
pub use device_key::{DeviceKey, DeviceKeyError};
pub use key_store::SoftwareKeyStore;
pub use state_store::FileStateStore;
