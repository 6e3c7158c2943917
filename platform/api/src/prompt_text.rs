//! The one sentence an operating-system prompt (LocalAuthentication, Windows Hello) shows for a
//! [`Prompt`]. The relying party ID comes from the host, but the account name comes from the
//! page: both are cleaned (no control, format or bidirectional-override characters, bounded
//! length) before they reach a trusted prompt.

use crate::user_verifier::{Prompt, PromptAction};

/// Longest relying party ID or account name shown, in characters.
pub const MAX_SHOWN_CHARS: usize = 64;

/// The text cleaned as every other passgate prompt cleans untrusted text
/// ([`passgate_proto::display`]: no control, format or bidi characters, one line), at most
/// [`MAX_SHOWN_CHARS`] characters, with its mixed-script warning when there is one.
pub fn clean_untrusted(text: &str) -> String {
    let cleaned = passgate_proto::display::clean_limited(text, MAX_SHOWN_CHARS);
    match cleaned.warning {
        Some(warning) => format!("{} [\u{26a0} {warning}]", cleaned.text),
        None => cleaned.text,
    }
}

/// The reason shown by the operating system's prompt, e.g. `sign in to example.com as alice`
/// (LocalAuthentication prefixes it with the app's name).
pub fn prompt_reason(prompt: &Prompt<'_>) -> String {
    let action = match prompt.action {
        PromptAction::Register => "create a passkey",
        PromptAction::SignIn => "sign in",
        PromptAction::Reset => "erase every passkey",
        PromptAction::Select => "use this device",
    };
    let rp = prompt.rp_id.map(clean_untrusted).filter(|s| !s.is_empty());
    let user = prompt
        .user_name
        .map(clean_untrusted)
        .filter(|s| !s.is_empty());
    match (rp, user) {
        (Some(rp), Some(user)) => format!("{action} on {rp} as {user}"),
        (Some(rp), None) => format!("{action} on {rp}"),
        (None, Some(user)) => format!("{action} as {user}"),
        (None, None) => action.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_name_the_action_site_and_account() {
        let prompt = Prompt {
            action: PromptAction::SignIn,
            rp_id: Some("example.com"),
            user_name: Some("alice"),
        };
        assert_eq!(prompt_reason(&prompt), "sign in on example.com as alice");
        let prompt = Prompt {
            action: PromptAction::Register,
            rp_id: Some("example.com"),
            user_name: None,
        };
        assert_eq!(prompt_reason(&prompt), "create a passkey on example.com");
        let prompt = Prompt {
            action: PromptAction::Reset,
            rp_id: None,
            user_name: None,
        };
        assert_eq!(prompt_reason(&prompt), "erase every passkey");
    }

    #[test]
    fn page_strings_lose_controls_bidi_overrides_and_length() {
        // A right-to-left override would make "moc.lapyap" read as "paypal.com".
        assert_eq!(clean_untrusted("ali\u{202E}ce\n\t\u{200B}"), "alice");
        assert_eq!(clean_untrusted("  bob\u{0007} "), "bob");
        let long = "x".repeat(200);
        let cleaned = clean_untrusted(&long);
        assert_eq!(cleaned.chars().count(), MAX_SHOWN_CHARS);
        assert!(cleaned.ends_with('…'));
        let prompt = Prompt {
            action: PromptAction::SignIn,
            rp_id: Some("example.com"),
            user_name: Some("\u{202E}\u{2066}"),
        };
        // An account name made only of invisible characters is left out, not shown empty.
        assert_eq!(prompt_reason(&prompt), "sign in on example.com");
    }
}
