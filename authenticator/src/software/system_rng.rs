//! [`SystemRng`]: the [`Rng`] seam on aws-lc's system generator.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};

use crate::api::rng::{Rng, RngError};

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
