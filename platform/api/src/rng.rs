//! Cryptographically secure randomness. The aws-lc system generator (`SystemRng`) lives in
//! the authenticator: `passgate_authenticator::api::rng::SystemRng`.

/// Randomness failed: the operating system's generator is unavailable.
#[derive(Debug, thiserror::Error)]
#[error("the system random number generator failed")]
pub struct RngError;

/// A cryptographically secure random source.
pub trait Rng: Send {
    /// Fills `dest` with random bytes.
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), RngError>;
}
