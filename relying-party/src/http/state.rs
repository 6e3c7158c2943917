//! The state every handler shares: the relying party and the option-endpoint rate limiter.

use std::sync::Arc;

use super::rate_limit::RateLimiter;
use crate::rp::RelyingParty;

/// Shared server state.
#[derive(Debug)]
pub struct AppState {
    /// The relying party.
    pub rp: RelyingParty,
    /// The option-endpoint limiter.
    pub limiter: RateLimiter,
}

/// The state every handler shares.
pub type Shared = Arc<AppState>;
