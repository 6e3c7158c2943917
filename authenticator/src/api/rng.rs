//! Cryptographically secure randomness.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};

/// Randomness failed: the operating system's generator is unavailable.
#[derive(Debug, thiserror::Error)]
#[error("the system random number generator failed")]
pub struct RngError;

/// A cryptographically secure random source.
pub trait Rng: Send {
    /// Fills `dest` with random bytes.
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), RngError>;
}

/// The operating system's CSPRNG (through aws-lc-rs).
#[derive(Debug, Default, Clone)]
pub struct SystemRng(SystemRandom);

impl SystemRng {
    /// A new handle on the system generator.
    pub fn new() -> Self {
        Self(SystemRandom::new())
    }
}

impl Rng for SystemRng {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), RngError> {
        self.0.fill(dest).map_err(|_| RngError)
    }
}
