//! Platform seams, in the spirit of OpenSK's `api/`: each is a small trait so that a platform
//! (software, TPM 2.0, Secure Enclave, fprintd, Windows Hello, ...) plugs in without touching the
//! CTAP command code.
//!
//! The traits and their plain types live in the C-free crate `passgate-platform-api` (so the
//! Apple and Windows backends build without aws-lc-rs); they are re-exported here under their
//! usual paths, together with the parts that need aws-lc-rs: software hmac-secret
//! ([`key_store::hmac_secret_in_software`], [`key_store::hmac_secret_with_uv`]) and the system
//! generator ([`rng::SystemRng`]).

pub use passgate_platform_api::{
    bio_enrollment, clock, credential_store, state_store, user_verifier,
};

/// Where credential private keys live (see [`passgate_platform_api::key_store`]).
pub mod key_store {
    pub use crate::software::hmac_secret::{hmac_secret_in_software, hmac_secret_with_uv};
    pub use passgate_platform_api::key_store::*;
}

/// Cryptographically secure randomness (see [`passgate_platform_api::rng`]).
pub mod rng {
    pub use crate::software::system_rng::SystemRng;
    pub use passgate_platform_api::rng::*;
}
