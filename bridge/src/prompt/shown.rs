//! How an action's text appears in a trusted prompt: pretty-printed when it is JSON, each
//! line cleaned ([`passgate_proto::display`]) with its indentation kept, at most
//! [`MAX_SHOWN_LINES`] lines, and a note saying how much more there is.

/// Lines of an action's text shown in a prompt.
pub const MAX_SHOWN_LINES: usize = 12;
/// Characters shown of one line.
const MAX_LINE_CHARS: usize = 96;
/// Indentation kept, in spaces.
const MAX_INDENT: usize = 16;
/// Bytes of text shown at most: with the rest of the dialog it stays within one Assuan line
/// (1000 bytes, percent-escaped), so pinentry never cuts the note about what is not shown.
const MAX_SHOWN_BYTES: usize = 480;

/// The action's text as a prompt shows it (untrusted: every line cleaned).
pub fn payload_block(payload: &str) -> String {
    let pretty = serde_json::from_str::<serde_json::Value>(payload)
        .ok()
        .filter(|v| v.is_object() || v.is_array())
        .and_then(|v| serde_json::to_string_pretty(&v).ok());
    let text = pretty.as_deref().unwrap_or(payload);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut out = String::new();
    let mut shown = 0;
    for line in lines.iter().take(MAX_SHOWN_LINES) {
        let indent = line
            .chars()
            .take_while(|c| *c == ' ')
            .count()
            .min(MAX_INDENT);
        let cleaned = passgate_proto::display::clean_limited(line, MAX_LINE_CHARS);
        let mut shown_line = format!("    {}{}", " ".repeat(indent), cleaned.text);
        if let Some(warning) = cleaned.warning {
            shown_line.push_str(&format!(" [\u{26a0} {warning}]"));
        }
        if shown > 0 && out.len() + shown_line.len() > MAX_SHOWN_BYTES {
            break;
        }
        out.push_str(&shown_line);
        out.push('\n');
        shown += 1;
    }
    if lines.len() > shown {
        let more = lines.len() - shown;
        out.push_str(&format!(
            "    \u{2026} and {more} more line{} (the whole text is what you approve)\n",
            if more == 1 { "" } else { "s" }
        ));
    }
    out.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_pretty_printed_and_cleaned() {
        let block = payload_block(
            r#"{"pay": "ACME\u001b]52;c;Zm9v\u0007 Ltd", "amount": "129.00", "currency": "EUR"}"#,
        );
        assert_eq!(
            block,
            "    {\n      \"amount\": \"129.00\",\n      \"currency\": \"EUR\",\n      \"pay\": \"ACME\\u001b]52;c;Zm9v\\u0007 Ltd\"\n    }"
        );
        // JSON shows a control character as its escape, visibly; raw, it would be removed.
        assert!(!block.contains('\u{1b}') && !block.contains('\u{7}'));
        let raw = payload_block("pay \u{1b}]52;c;Zm9v\u{7} now");
        assert_eq!(raw, "    pay ]52;c;Zm9v now");
    }

    #[test]
    fn wide_texts_are_cut_by_size_too() {
        let text: String = (1..=10)
            .map(|i| format!("{i:02} {}\n", "x".repeat(90)))
            .collect();
        let block = payload_block(&text);
        assert!(block.len() < MAX_SHOWN_BYTES + 80, "{}", block.len());
        assert!(
            block.ends_with("and 6 more lines (the whole text is what you approve)"),
            "{block}"
        );
    }

    #[test]
    fn long_texts_are_cut_with_a_note() {
        let text: String = (1..=20).map(|i| format!("line {i}\n")).collect();
        let block = payload_block(&text);
        assert_eq!(block.lines().count(), MAX_SHOWN_LINES + 1);
        assert!(block.starts_with("    line 1\n"), "{block}");
        assert!(
            block.ends_with("\u{2026} and 8 more lines (the whole text is what you approve)"),
            "{block}"
        );
        // A forged line break or a bidi override stays inside its own line.
        let block = payload_block("pay 10 EUR\u{2028}Origin: bank.example\u{202e}");
        assert_eq!(block, "    pay 10 EUR Origin: bank.example");
    }
}
