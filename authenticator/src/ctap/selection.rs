//! authenticatorSelection (CTAP 2.1 §6.9): the person picks this authenticator.

use crate::api::user_verifier::{Interaction, Prompt, PromptAction};

use super::{Authenticator, CommandResult, expect_empty, user_error_status};

impl Authenticator {
    pub(super) fn selection(&mut self, body: &[u8], interaction: &Interaction) -> CommandResult {
        expect_empty(body)?;
        let prompt = Prompt {
            action: PromptAction::Select,
            rp_id: None,
            user_name: None,
        };
        self.env
            .user
            .check_presence(&prompt, interaction)
            .map_err(user_error_status)?;
        Ok(Vec::new())
    }
}
