//! The seam between whatever carries CTAP2 requests (a CTAPHID device, a client in this
//! process) and the authenticator that answers them. The authenticator implements both traits;
//! transports and the CTAP client are written against them, so neither depends on it.

use crate::key_store::KeyStoreInfo;
use crate::user_verifier::{Interaction, VerifierStatus};

/// Runs CTAP2 commands for a CTAPHID device.
pub trait CtapHandler: Send {
    /// Runs one CTAP2 command (command byte + CBOR) and returns status byte + CBOR.
    fn handle_cbor(&mut self, request: &[u8], interaction: &Interaction) -> Vec<u8>;
    /// Flashes/notifies so the person can tell which authenticator this is.
    fn wink(&mut self) {}
}

/// An authenticator in this process, as the application embedding it sees it: it answers
/// CTAP2 requests and tells about its platform, which an authenticator behind a socket says
/// only through getInfo.
pub trait LocalAuthenticator: CtapHandler {
    /// The user verifier's own status (enrolled, locked out, ...).
    fn verifier_status(&self) -> VerifierStatus;
    /// The identity of the current biometric enrollment, when the verifier has one.
    fn enrollment_state(&self) -> Option<[u8; 32]>;
    /// The enrolled template (finger) that matched in the last biometric verification, when
    /// the verifier knows it (`UserVerifier::matched_template`).
    fn matched_template(&self) -> Option<String>;
    /// What the key store is (`software`, `tpm`) and its detail.
    fn key_store_info(&self) -> KeyStoreInfo;
}
