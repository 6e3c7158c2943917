//! authenticatorReset (CTAP 2.1 §6.6): erase every credential after user presence.

use crate::api::user_verifier::{Interaction, Prompt, PromptAction};

use super::{
    Authenticator, CommandResult, StatusCode, expect_empty, store_error_status, user_error_status,
};

impl Authenticator {
    pub(super) fn reset(&mut self, body: &[u8], interaction: &Interaction) -> CommandResult {
        expect_empty(body)?;
        if let Some(window) = self.config.reset_window {
            if self.env.clock.now().saturating_duration_since(self.started) > window {
                return Err(StatusCode::NotAllowed);
            }
        }
        let prompt = Prompt {
            action: PromptAction::Reset,
            rp_id: None,
            user_name: None,
        };
        self.env
            .user
            .check_presence(&prompt, interaction)
            .map_err(user_error_status)?;
        self.env.credentials.reset().map_err(store_error_status)?;
        self.reset_pin()?;
        self.reset_large_blobs()?;
        tracing::warn!("authenticator reset: every credential was erased");
        Ok(Vec::new())
    }
}
