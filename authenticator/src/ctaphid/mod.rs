//! CTAPHID (CTAP 2.1 §11.2) as a pure state machine.
//!
//! [`HidDevice`] takes 64-byte reports and the current time and says what to do: reply with
//! reports, dispatch a complete CBOR request, cancel the running one. It performs no I/O, so
//! the TCP transport of today and a Linux uhid device later drive the same code. The framing
//! itself (reports, constants, [`encode_message`], [`MessageAssembler`]) is
//! `passgate_proto::ctaphid`, shared with the client, and re-exported here.

use crate::api::key_store::KeyStoreInfo;
use crate::api::user_verifier::{Interaction, VerifierStatus};

pub use passgate_platform_api::ctap_handler::{CtapHandler, LocalAuthenticator};
pub use passgate_proto::ctaphid::*;

impl CtapHandler for crate::Authenticator {
    fn handle_cbor(&mut self, request: &[u8], interaction: &Interaction) -> Vec<u8> {
        self.handle_with(request, interaction)
    }

    fn wink(&mut self) {
        tracing::info!("wink: this is the authenticator the client is talking to");
    }
}

impl LocalAuthenticator for crate::Authenticator {
    fn verifier_status(&self) -> VerifierStatus {
        self.env().user.status()
    }

    fn enrollment_state(&self) -> Option<[u8; 32]> {
        self.env().user.enrollment_state()
    }

    fn matched_template(&self) -> Option<String> {
        self.env().user.matched_template()
    }

    fn key_store_info(&self) -> KeyStoreInfo {
        self.env().key_store.info()
    }
}

mod device;
#[cfg(test)]
mod tests;

pub use device::{Action, ConnectionId, HidDevice};
