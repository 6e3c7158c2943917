//! Platform seams, in the spirit of OpenSK's `api/`: each is a small trait so that a platform
//! (software, TPM 2.0, Secure Enclave, fprintd, Windows Hello, ...) plugs in without touching the
//! CTAP command code.

pub mod bio_enrollment;
pub mod clock;
pub mod credential_store;
pub mod key_store;
pub mod rng;
pub mod state_store;
pub mod user_verifier;
