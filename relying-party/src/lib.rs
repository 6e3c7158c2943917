//! passgate's relying party: the server that turns a biometric check on the user's device into a
//! server-verifiable step.
//!
//! - [`verify`]: the library call — stored credential + `AuthenticationResponseJSON` + what was
//!   expected in, a typed [`verify::AssertionVerdict`] out. It runs on aws-lc-rs: a P-256 verify
//!   there is about 6× faster than through the RustCrypto code webauthn-rs uses, and sign-in is
//!   the hot path. webauthn-rs and py_webauthn are kept as differential oracles in the tests.
//! - [`rp`]: ceremonies (registration on webauthn-rs, authentication, re-authentication, signed
//!   actions with receipts) over a [`store::Store`] (SQLite or PostgreSQL).
//! - [`server`]: the axum HTTP API, `passgate rp`.
//! - [`soter`]: verification of SOTER `resultJSON` signatures (RSASSA-PSS, salt 20) with
//!   registered device keys, single-use challenges and per-device counters.

pub mod aaguid;
pub mod b64;
pub mod config;
pub mod cose;
pub mod error;
pub mod receipts;
pub mod request_context;
pub mod rp;
pub mod server;
pub mod soter;
pub mod store;
pub mod verify;
pub mod verify_listener;

use std::sync::Arc;

pub use config::RpConfig;

/// Opens the store and the receipt key and builds the shared server state.
pub async fn build_state(config: RpConfig) -> anyhow::Result<Arc<server::AppState>> {
    config.validate()?;
    let store = store::Store::connect(&config.database).await?;
    let signer = receipts::ReceiptSigner::load_or_create(&config.receipt_key_path())?;
    let limiter = server::RateLimiter::new(config.rate_limit_burst, config.rate_limit_per_sec);
    let rp = rp::RelyingParty::new(config, store, signer)
        .map_err(|e| anyhow::anyhow!("{}: {}", e.code, e.message))?;
    Ok(Arc::new(server::AppState { rp, limiter }))
}
