//! passgate's relying party: the server that turns a biometric check on the user's device into a
//! server-verifiable step.
//!
//! Two layers:
//! - the library core, with no HTTP types: [`verify`] (the library call — stored credential +
//!   `AuthenticationResponseJSON` + what was expected in, a typed [`verify::AssertionVerdict`]
//!   out, on aws-lc-rs: a P-256 verify there is about 6× faster than through the RustCrypto code
//!   webauthn-rs uses, and sign-in is the hot path; webauthn-rs and py_webauthn are kept as
//!   differential oracles in the tests), [`rp`] (ceremonies: registration on webauthn-rs,
//!   authentication, re-authentication, signed actions with receipts, over a [`store::Store`] on
//!   SQLite or PostgreSQL), [`soter`] (SOTER `resultJSON` verification: RSASSA-PSS salt 20 with
//!   registered device keys, single-use challenges, per-device counters). Errors are
//!   [`error::RpError`]: a kind, a stable code, a message.
//! - [`http`]: the axum API (`passgate rp`), one file per route group, mapping `RpError` kinds
//!   to HTTP statuses.
//!
//! Wire types (authenticator data, COSE keys, SOTER JSON, base64url) come from `passgate-proto`.

pub mod aaguid;
pub mod config;
pub mod cose;
pub mod error;
pub mod http;
pub mod private_file;
pub mod receipts;
pub mod rp;
pub mod soter;
pub mod store;
pub mod verify;

/// The HTTP layer under the name callers have used since before the split.
pub use http as server;
/// The one base64url of the project (unpadded out, padding tolerated in).
pub use passgate_proto::b64;

use std::sync::Arc;

pub use config::RpConfig;

/// Opens the store and the receipt key and builds the shared server state.
pub async fn build_state(config: RpConfig) -> anyhow::Result<Arc<http::AppState>> {
    config.validate()?;
    let store = store::Store::connect(&config.database).await?;
    let signer = receipts::ReceiptSigner::load_or_create(&config.receipt_key_path())?;
    let limiter = http::RateLimiter::new(config.rate_limit_burst, config.rate_limit_per_sec);
    let rp = rp::RelyingParty::new(config, store, signer).map_err(anyhow::Error::new)?;
    Ok(Arc::new(http::AppState { rp, limiter }))
}
