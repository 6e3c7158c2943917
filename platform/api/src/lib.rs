//! passgate's platform seams, in the spirit of OpenSK's `api/`: each is a small trait so that a
//! platform (software, TPM 2.0, Secure Enclave, fprintd, Windows Hello, ...) plugs in without
//! touching the CTAP command code.
//!
//! This crate holds only the traits and the plain types they speak, and no C code, so that a
//! backend for another operating system (`passgate-platform-apple`,
//! `passgate-platform-windows`) can be built and linted for its target from Linux.
//! `passgate-authenticator` re-exports every module as `passgate_authenticator::api::...` and
//! adds the parts that need aws-lc-rs (software hmac-secret, the aws-lc system generator).

pub mod bio_enrollment;
pub mod clock;
pub mod credential_store;
pub mod ctap_handler;
// Files and sockets: Unix only (the Windows backend is checked for its target without them).
#[cfg(unix)]
pub mod fs;
pub mod host_channel;
pub mod key_store;
pub mod prompt_text;
pub mod rng;
pub mod state_store;
// SO_PEERCRED, which the Unix socket's same-user check needs, is Linux's.
#[cfg(target_os = "linux")]
pub mod transport;
pub mod trusted_prompt;
pub mod user_verifier;
