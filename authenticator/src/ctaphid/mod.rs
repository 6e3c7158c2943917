//! CTAPHID (CTAP 2.1 §11.2) as a pure state machine.
//!
//! [`Device`] takes 64-byte reports and the current time and says what to do: reply with
//! reports, dispatch a complete CBOR request, cancel the running one. It performs no I/O, so
//! the TCP transport of today and a Linux uhid device later drive the same code. The framing
//! itself (reports, constants, [`encode_message`], [`MessageAssembler`]) is
//! `passgate_proto::ctaphid`, shared with the client, and re-exported here.

use crate::api::user_verifier::Interaction;

pub use passgate_proto::ctaphid::*;

/// Runs CTAP2 commands for a CTAPHID device.
pub trait CtapHandler: Send {
    /// Runs one CTAP2 command (command byte + CBOR) and returns status byte + CBOR.
    fn handle_cbor(&mut self, request: &[u8], interaction: &Interaction) -> Vec<u8>;
    /// Flashes/notifies so the person can tell which authenticator this is.
    fn wink(&mut self) {}
}

impl CtapHandler for crate::Authenticator {
    fn handle_cbor(&mut self, request: &[u8], interaction: &Interaction) -> Vec<u8> {
        self.handle_with(request, interaction)
    }

    fn wink(&mut self) {
        tracing::info!("wink: this is the authenticator the client is talking to");
    }
}

mod device;
#[cfg(test)]
mod tests;

pub use device::{Action, ConnectionId, Device};
