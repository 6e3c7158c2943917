//! passgate's Windows backends behind the platform seams:
//!
//! - [`PlatformCryptoKeyStore`]: a [`KeyStore`](passgate_platform_api::key_store::KeyStore)
//!   whose P-256 keys are made and kept by the TPM through the Microsoft Platform Crypto
//!   Provider (NCrypt), never exported.
//! - [`HelloVerifier`]: a [`UserVerifier`](passgate_platform_api::user_verifier::UserVerifier)
//!   on Windows Hello (`Windows.Security.Credentials.UI.UserConsentVerifier`).
//!
//! The OS code is compiled only for `cfg(windows)`. What does not need the OS is plain
//! functions, compiled and unit-tested everywhere: [`hello_error`] (Windows Hello's
//! availability and results to the app-facing codes), [`key_name`] (handles are persisted key
//! names) and [`ncrypt_blob`] (the public-key blob and signature encodings NCrypt uses).

pub mod hello_error;
pub mod key_name;
pub mod ncrypt_blob;

#[cfg(windows)]
mod hello;
#[cfg(windows)]
mod platform_crypto;

#[cfg(windows)]
pub use hello::HelloVerifier;
#[cfg(windows)]
pub use platform_crypto::PlatformCryptoKeyStore;

/// Whether this build contains the Windows backends (it does on Windows only).
pub const COMPILED_IN: bool = cfg!(windows);
