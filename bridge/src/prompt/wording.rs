//! What the trusted prompts say about a request: the line naming the origin, the RP ID and the
//! operation (every part cleaned), the tab it comes from and what waits behind it, and each
//! dialog's title and button.

use super::shown;
use crate::ceremony::{Purpose, RequestLabel};

/// "http://localhost:9000 wants to sign in to localhost" and the like. Every part is cleaned
/// ([`passgate_proto::display::clean`]): the page chose the RP ID, the user name and an
/// action's text.
pub(super) fn request_line(origin: &str, rp_id: &str, purpose: Purpose<'_>) -> String {
    let clean = passgate_proto::display::clean;
    let (origin, rp_id) = (clean(origin), clean(rp_id));
    match purpose {
        Purpose::Create { user_name } => {
            let user_name = clean(user_name);
            format!(
                "{origin} wants to create a passkey for \u{201c}{user_name}\u{201d} on {rp_id}."
            )
        }
        Purpose::Get => format!("{origin} wants to sign in with your passkey for {rp_id}."),
        Purpose::Approve { payload } => format!(
            "Approve on {origin} (your passkey for {rp_id}):\n\n{}",
            shown::payload_block(payload)
        ),
        Purpose::Autofill => {
            format!("Passkey autofill: {origin} offers to sign you in with a passkey for {rp_id}.")
        }
        Purpose::AlreadyRegistered { user_name } => {
            let user_name = clean(user_name);
            format!(
                "{origin} asked to create a passkey for \u{201c}{user_name}\u{201d} on {rp_id}, \
                 but this authenticator already holds one for that account. Nothing was created; \
                 the page will be told it is already registered."
            )
        }
    }
}

/// `line` and, below it, which tab asks (by the title the page gives itself, cleaned and
/// capped) and how many requests wait behind this one: with two tabs of one site open, the
/// person can tell which one this prompt is for.
pub(super) fn labelled(mut line: String, label: RequestLabel<'_>) -> String {
    if let Some(title) = label.tab_title {
        let shown = passgate_proto::display::clean_limited(title, 60);
        line.push_str(&format!(
            "\nFrom the tab that calls itself \u{201c}{}\u{201d}.",
            shown.text
        ));
    }
    match label.waiting {
        0 => {}
        1 => line.push_str("\n1 more request is waiting; it is asked next."),
        n => line.push_str(&format!(
            "\n{n} more requests are waiting; they are asked in turn."
        )),
    }
    line
}

/// The operation, for a dialog's title: every prompt names what it is for.
pub(super) fn operation_title(purpose: Purpose<'_>) -> &'static str {
    match purpose {
        Purpose::Create { .. } => "passgate: create a passkey",
        Purpose::Get | Purpose::Autofill => "passgate: sign in",
        Purpose::Approve { .. } => "passgate: approve an action",
        Purpose::AlreadyRegistered { .. } => "passgate: passkey already here",
    }
}

/// The label of the button that goes ahead.
pub(super) fn operation_button(purpose: Purpose<'_>) -> &'static str {
    match purpose {
        Purpose::Create { .. } => "Create passkey",
        Purpose::Get | Purpose::Autofill => "Sign in",
        Purpose::Approve { .. } => "Approve",
        Purpose::AlreadyRegistered { .. } => "OK",
    }
}

/// The account choice's question; `rp_id` is cleaned already. Before the verification, it
/// says the choice comes first and that the record is passgate's own (what the person may
/// clear with `passgate bridge forget`).
pub(super) fn account_question(count: usize, rp_id: &str, before_verification: bool) -> String {
    if before_verification {
        format!(
            "passgate has seen {count} accounts of yours on {rp_id}. Which account? \
             You verify once, for that account only, next."
        )
    } else {
        format!("This device holds {count} passkeys for {rp_id}. Which account?")
    }
}
