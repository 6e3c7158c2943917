//! [`Env`] bundles one platform: the key store, credential store, user verifier, clock and
//! randomness an [`crate::Authenticator`] runs on.

use crate::api::clock::Clock;
use crate::api::credential_store::CredentialStore;
use crate::api::key_store::KeyStore;
use crate::api::rng::Rng;
use crate::api::state_store::StateStore;
use crate::api::user_verifier::UserVerifier;

/// One platform's implementations of every seam.
pub struct Env {
    /// Where private keys live.
    pub key_store: Box<dyn KeyStore>,
    /// Where credential metadata lives.
    pub credentials: Box<dyn CredentialStore>,
    /// Authenticator-wide persistent state (PIN).
    pub state: Box<dyn StateStore>,
    /// How a person is asked for presence and verification.
    pub user: Box<dyn UserVerifier>,
    /// Time.
    pub clock: Box<dyn Clock>,
    /// Randomness.
    pub rng: Box<dyn Rng>,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("key_store", &self.key_store.info())
            .field("user", &self.user.status())
            .finish_non_exhaustive()
    }
}
