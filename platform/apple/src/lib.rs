//! passgate's macOS and iOS backends behind the platform seams:
//!
//! - [`SecureEnclaveKeyStore`]: a [`KeyStore`](passgate_platform_api::key_store::KeyStore)
//!   whose P-256 keys are made in the Secure Enclave and never leave it, each with a
//!   `SecAccessControl` (`privateKeyUsage` plus `userPresence`, `devicePasscode` or
//!   `biometryCurrentSet`) that the enclave enforces at every use; hmac-secret keys are enclave
//!   keys too, evaluated by ECDH.
//! - [`LocalAuthVerifier`]: a [`UserVerifier`](passgate_platform_api::user_verifier::UserVerifier)
//!   on LocalAuthentication (Touch ID, Face ID, Optic ID, the device passcode).
//!
//! The OS code is compiled only for `target_os = "macos"` and `"ios"`. What does not need the
//! OS is plain functions, compiled and unit-tested everywhere: [`access_control`] (flags per
//! credential policy), [`key_handle`] (handles are the keychain labels of enclave keys),
//! [`la_error`] (LocalAuthentication errors and biometry types to the app-facing codes) and
//! [`biometric_set`] (the enrollment fingerprint behind `passgateBiometricSet`).

pub mod access_control;
pub mod biometric_set;
pub mod key_handle;
pub mod la_error;

#[cfg(any(target_os = "macos", target_os = "ios"))]
mod local_auth;
#[cfg(any(target_os = "macos", target_os = "ios"))]
mod secure_enclave;

#[cfg(any(target_os = "macos", target_os = "ios"))]
pub use local_auth::{LocalAuthOptions, LocalAuthVerifier};
#[cfg(any(target_os = "macos", target_os = "ios"))]
pub use secure_enclave::SecureEnclaveKeyStore;

/// Whether this build contains the Apple backends (it does on macOS and iOS only).
pub const COMPILED_IN: bool = cfg!(any(target_os = "macos", target_os = "ios"));
