//! Cleaning untrusted strings before a trusted prompt shows them.
//!
//! A page, a relying party or an app chooses `user.name`, `displayName`, an RP ID, a reason
//! text; a trusted prompt (the terminal, pinentry, a GUI) shows them next to text passgate
//! vouches for. Raw, such a string could carry terminal escapes (move the cursor and draw a
//! fake origin line over the real one, set the window title, write the clipboard with OSC 52),
//! bidi overrides that reorder what is read, zero-width characters that hide a difference, or
//! line breaks that forge a line of the prompt. [`clean`] is the one function every prompt
//! path calls on such a string:
//!
//! - C0 and C1 control characters and DEL are removed (an ESC can never start a sequence);
//!   tabs, line and paragraph separators become a space (one line stays one line);
//! - format characters (Unicode category Cf: bidi embeddings, overrides and isolates, zero-width
//!   spaces and joiners, the BOM, soft hyphens, tag characters), private-use and unassigned
//!   code points are removed;
//! - runs of spaces collapse, the ends are trimmed, and the result is at most
//!   [`MAX_CHARS`] characters (cut with an ellipsis);
//! - a word that mixes Latin letters with Cyrillic, Greek, Armenian or Cherokee ones (the
//!   usual homoglyph trick: `pаypal` with a Cyrillic `а`) is flagged: [`Cleaned::warning`],
//!   which [`clean`] appends visibly.
//!
//! [`clean_block`] does the same to a whole prompt text but keeps its line breaks: the last
//! line of defence where a prompt writes what it was given.

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// The longest cleaned string, in characters (before the warning).
pub const MAX_CHARS: usize = 128;

/// A cleaned string and what was found in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cleaned {
    /// The text, safe to show.
    pub text: String,
    /// Something was removed, replaced or cut.
    pub altered: bool,
    /// Why the person should look twice (mixed scripts in one word), in words.
    pub warning: Option<String>,
}

/// Cleans `untrusted` for a one-line place in a prompt, cut at [`MAX_CHARS`], with the
/// mixed-script warning appended when there is one.
pub fn clean(untrusted: &str) -> String {
    let cleaned = clean_limited(untrusted, MAX_CHARS);
    match cleaned.warning {
        Some(warning) => format!("{} [\u{26a0} {warning}]", cleaned.text),
        None => cleaned.text,
    }
}

/// Cleans `untrusted` for one line, at most `max_chars` characters.
pub fn clean_limited(untrusted: &str, max_chars: usize) -> Cleaned {
    let (text, mut altered) = strip(untrusted, false);
    let (text, cut) = truncate(&text, max_chars);
    altered |= cut;
    let warning = mixed_script_warning(&text);
    Cleaned {
        text,
        altered,
        warning,
    }
}

/// Cleans a whole prompt text: as [`clean`], but line feeds and spacing are kept (and nothing
/// is cut or flagged: the untrusted parts in it were cleaned with [`clean`] already).
pub fn clean_block(text: &str) -> String {
    strip(text, true).0
}

/// What happens to one character.
enum Fate {
    Keep,
    Space,
    Drop,
}

fn fate(c: char, keep_newlines: bool) -> Fate {
    match c {
        '\n' if keep_newlines => Fate::Keep,
        '\t' | '\n' | '\r' | '\u{0b}' | '\u{0c}' | '\u{85}' | '\u{2028}' | '\u{2029}' => {
            Fate::Space
        }
        c if c.is_control() => Fate::Drop,
        c => match c.general_category() {
            GeneralCategory::Format
            | GeneralCategory::PrivateUse
            | GeneralCategory::Unassigned
            | GeneralCategory::Surrogate
            | GeneralCategory::Control => Fate::Drop,
            GeneralCategory::LineSeparator | GeneralCategory::ParagraphSeparator => Fate::Space,
            GeneralCategory::SpaceSeparator => Fate::Space,
            _ => Fate::Keep,
        },
    }
}

/// Removes what must not reach a prompt and collapses spaces; answers whether anything
/// changed.
fn strip(input: &str, keep_newlines: bool) -> (String, bool) {
    let mut out = String::with_capacity(input.len());
    let mut altered = false;
    let mut pending_space = false;
    for c in input.chars() {
        match fate(c, keep_newlines) {
            Fate::Drop => altered = true,
            // A block keeps its layout (indentation, alignment): one space per character.
            Fate::Space if keep_newlines => {
                altered |= c != ' ';
                out.push(' ');
            }
            Fate::Space => {
                altered |= c != ' ';
                pending_space = true;
            }
            Fate::Keep => {
                if c == '\n' {
                    // Spaces before a line break are dropped.
                    pending_space = false;
                } else if pending_space && !out.is_empty() && !out.ends_with('\n') {
                    out.push(' ');
                    pending_space = false;
                } else if pending_space {
                    altered = true;
                    pending_space = false;
                }
                out.push(c);
            }
        }
    }
    altered |= pending_space;
    (out, altered)
}

fn truncate(text: &str, max_chars: usize) -> (String, bool) {
    if text.chars().count() <= max_chars {
        return (text.to_owned(), false);
    }
    let mut cut: String = text.chars().take(max_chars.saturating_sub(1)).collect();
    cut.truncate(cut.trim_end().len());
    cut.push('\u{2026}');
    (cut, true)
}

/// The scripts homoglyph attacks mix with Latin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Script {
    Latin,
    Cyrillic,
    Greek,
    Armenian,
    Cherokee,
}

impl Script {
    fn name(self) -> &'static str {
        match self {
            Self::Latin => "Latin",
            Self::Cyrillic => "Cyrillic",
            Self::Greek => "Greek",
            Self::Armenian => "Armenian",
            Self::Cherokee => "Cherokee",
        }
    }

    /// The script of a letter, for the scripts that matter here (by Unicode block).
    fn of(c: char) -> Option<Self> {
        if !c.is_alphabetic() {
            return None;
        }
        match u32::from(c) {
            0x41..=0x5a
            | 0x61..=0x7a
            | 0xc0..=0x24f
            | 0x1e00..=0x1eff
            | 0xff21..=0xff3a
            | 0xff41..=0xff5a
            | 0x2c60..=0x2c7f
            | 0xa720..=0xa7ff => Some(Self::Latin),
            0x400..=0x52f | 0x1c80..=0x1c8f | 0x2de0..=0x2dff | 0xa640..=0xa69f => {
                Some(Self::Cyrillic)
            }
            0x370..=0x3ff | 0x1f00..=0x1fff => Some(Self::Greek),
            0x530..=0x58f => Some(Self::Armenian),
            0x13a0..=0x13ff | 0xab70..=0xabbf => Some(Self::Cherokee),
            _ => None,
        }
    }
}

/// "mixes Latin and Cyrillic letters in “pаypal”" for the first word that does.
fn mixed_script_warning(text: &str) -> Option<String> {
    for word in text.split(|c: char| !c.is_alphanumeric()) {
        let mut scripts: Vec<Script> = Vec::new();
        for script in word.chars().filter_map(Script::of) {
            if !scripts.contains(&script) {
                scripts.push(script);
            }
        }
        if scripts.len() > 1 && scripts.contains(&Script::Latin) {
            let names: Vec<&str> = scripts.iter().map(|s| s.name()).collect();
            return Some(format!(
                "mixes {} letters in \u{201c}{word}\u{201d}: it may imitate another name",
                names.join(" and ")
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn untrusted_strings_come_out_inert() {
        let cases: &[(&str, &str, &str)] = &[
            ("plain", "alice@example.com", "alice@example.com"),
            (
                "CSI cursor up and erase",
                "bob\u{1b}[1A\u{1b}[2Kpasskey for bank.com",
                "bob[1A[2Kpasskey for bank.com",
            ),
            ("OSC 0 window title", "x\u{1b}]0;owned\u{07}y", "x]0;ownedy"),
            (
                "OSC 52 clipboard",
                "\u{1b}]52;c;cm0gLXJmIH4=\u{1b}\\name",
                "]52;c;cm0gLXJmIH4=\\name",
            ),
            ("8-bit CSI (C1)", "a\u{9b}31mb", "a31mb"),
            ("DEL and NUL", "a\u{7f}b\u{0}c", "abc"),
            (
                "line breaks forge a line",
                "eve\nOrigin: https://bank.com",
                "eve Origin: https://bank.com",
            ),
            (
                "CR overwrites",
                "eve\rhttps://bank.com",
                "eve https://bank.com",
            ),
            (
                "unicode separators",
                "a\u{2028}b\u{2029}c\u{85}d",
                "a b c d",
            ),
            ("bidi override", "moc.knab\u{202e}evil", "moc.knabevil"),
            (
                "bidi isolates",
                "\u{2066}a\u{2067}b\u{2068}c\u{2069}",
                "abc",
            ),
            (
                "zero width",
                "pay\u{200b}pal\u{200d}\u{feff}\u{2060}",
                "paypal",
            ),
            ("soft hyphen and tags", "ad\u{ad}min\u{e0041}", "admin"),
            ("private use", "x\u{e000}y", "xy"),
            ("spaces collapse and trim", "  a \t\t b  ", "a b"),
            ("non-Latin names are kept", "Ольга Петрова", "Ольга Петрова"),
            ("accents and CJK are kept", "José 山田", "José 山田"),
        ];
        for (name, input, expected) in cases {
            let cleaned = clean_limited(input, MAX_CHARS);
            assert_eq!(cleaned.text, *expected, "{name}");
            assert_eq!(cleaned.altered, input != expected, "{name}: altered");
            assert_eq!(cleaned.warning, None, "{name}: warning");
            assert!(
                !cleaned.text.chars().any(|c| c.is_control()),
                "{name}: no control survives"
            );
        }
    }

    #[test]
    fn homoglyph_words_are_flagged_visibly() {
        // "pаypal" with a Cyrillic а (U+0430); "аpple" likewise; Greek omicron in "gοogle".
        for (input, scripts) in [
            ("p\u{430}ypal", "Latin and Cyrillic"),
            ("alice@\u{430}pple.com", "Cyrillic and Latin"),
            ("g\u{3bf}ogle", "Latin and Greek"),
        ] {
            let cleaned = clean_limited(input, MAX_CHARS);
            let warning = cleaned.warning.unwrap();
            assert!(warning.contains(scripts), "{input}: {warning}");
            let shown = clean(input);
            assert!(shown.starts_with(input), "{shown}");
            assert!(shown.contains("\u{26a0} mixes"), "{shown}");
        }
        // Scripts in separate words are not a trick.
        assert_eq!(clean_limited("Anna Анна", MAX_CHARS).warning, None);
        // Zero-width characters cannot hide the mix (they are removed first).
        assert!(clean("p\u{200b}\u{430}ypal").contains("\u{26a0}"));
    }

    #[test]
    fn length_is_bounded() {
        let long = "a".repeat(10_000);
        let cleaned = clean_limited(&long, MAX_CHARS);
        assert_eq!(cleaned.text.chars().count(), MAX_CHARS);
        assert!(cleaned.text.ends_with('\u{2026}') && cleaned.altered);
        assert_eq!(clean_limited("short", 5).text, "short");
        assert_eq!(clean_limited("shorter", 5).text, "shor\u{2026}");
    }

    #[test]
    fn a_block_keeps_its_lines_and_loses_its_escapes() {
        assert_eq!(
            clean_block("Sign in to a.com?\n\u{1b}[2Aevil\u{202e}  \n  Approve only if\tyou did."),
            "Sign in to a.com?\n[2Aevil  \n  Approve only if you did."
        );
    }
}
