//! Usernames are identities: one name must not pass for another, and the server must not say
//! which names exist.
//!
//! - [`normalize_username`]: NFKC (so `ｂｏｂ` and `bob`, or a precomposed and a decomposed
//!   `é`, are one name), then checks: no control, format (zero-width, bidi) or other invisible
//!   characters; letters from one script, or a combination UTS #39 calls highly restrictive
//!   (Latin with Han and Kana, say); and no whole-script confusable of an ASCII name (`раураl`
//!   in Cyrillic, whose confusable skeleton is `paypal`). Each refusal is a 400 naming it.
//! - [`Decoys`]: sign-in options for an unknown username carry a synthetic `allowCredentials`
//!   derived from an HMAC of the name under a server secret: stable per name, shaped like real
//!   ones (IDs of a common length, one to three of them, with transports), so `login/options`
//!   answers an unknown name exactly as it answers a known one.

use aws_lc_rs::hmac;
use serde_json::{Value, json};
use unicode_normalization::UnicodeNormalization;
use unicode_security::{
    GeneralSecurityProfile, RestrictionLevel, RestrictionLevelDetection, skeleton,
};

use super::MAX_NAME;
use crate::b64;
use crate::error::RpError;

/// `name` in NFKC, checked as a username; a 400 naming the problem otherwise.
pub fn normalize_username(name: &str) -> Result<String, RpError> {
    let normalized: String = name.nfkc().collect();
    if normalized.trim().is_empty() || normalized.chars().count() > MAX_NAME {
        return Err(RpError::invalid(
            "invalid_username",
            format!("username must be 1 to {MAX_NAME} characters"),
        ));
    }
    if normalized.trim() != normalized {
        return Err(RpError::invalid(
            "invalid_username",
            "username must not start or end with spaces",
        ));
    }
    if let Some(c) = normalized.chars().find(|c| invisible(*c)) {
        return Err(RpError::invalid(
            "disallowed_character_in_username",
            format!(
                "username contains U+{:04X}, a control, format, invisible or otherwise disallowed character",
                u32::from(c)
            ),
        ));
    }
    let letters: String = normalized.chars().filter(|c| c.is_alphabetic()).collect();
    if letters.as_str().detect_restriction_level() > RestrictionLevel::HighlyRestrictive {
        return Err(RpError::invalid(
            "mixed_script_username",
            "username mixes letters of scripts that can pass for one another (Latin and \
             Cyrillic, say); use letters of one script",
        ));
    }
    if !normalized.is_ascii() && skeleton(&normalized).all(|c| c.is_ascii()) {
        let looks_like: String = skeleton(&normalized).collect();
        return Err(RpError::invalid(
            "confusable_username",
            format!(
                "username looks like the ASCII name {looks_like:?} but is made of other \
                 characters; choose a name that cannot pass for another"
            ),
        ));
    }
    Ok(normalized)
}

/// Whether `c` is invisible, changes how the text around it is shown, or is not meant for
/// names: control, format (zero-width, bidi controls), private-use, unassigned and
/// surrogate code points, spaces other than U+0020, line and paragraph separators, the other
/// default-ignorable code points (variation selectors, Hangul fillers), and letters or marks
/// UTS #39 does not allow in identifiers (obsolete and limited-use scripts). Visible
/// punctuation and symbols (`·`, `€`, `–`) are fine.
fn invisible(c: char) -> bool {
    use unicode_properties::{GeneralCategoryGroup, UnicodeGeneralCategory};
    if c == ' ' || c.is_ascii_graphic() {
        return false;
    }
    if is_default_ignorable(c) {
        return true;
    }
    match c.general_category_group() {
        GeneralCategoryGroup::Other | GeneralCategoryGroup::Separator => true,
        GeneralCategoryGroup::Punctuation | GeneralCategoryGroup::Symbol => false,
        GeneralCategoryGroup::Letter
        | GeneralCategoryGroup::Mark
        | GeneralCategoryGroup::Number => !c.identifier_allowed(),
    }
}

/// Default-ignorable code points (DerivedCoreProperties) that are not in general category
/// Cf, Cc or Zs, which [`invisible`] refuses anyway: combining grapheme joiner, Hangul
/// fillers, Mongolian and other variation selectors, Khmer inherent vowels.
fn is_default_ignorable(c: char) -> bool {
    matches!(u32::from(c),
        0x034F | 0x115F..=0x1160 | 0x17B4..=0x17B5 | 0x180B..=0x180F | 0x3164 | 0xFE00..=0xFE0F
        | 0xFFA0 | 0xE0100..=0xE01EF)
}

/// The synthetic credential descriptors sign-in options list for a username nobody has.
#[derive(Debug)]
pub struct Decoys {
    key: hmac::Key,
}

/// Credential ID lengths of common authenticators (bytes), which decoys take in turn.
const DECOY_ID_LENGTHS: [usize; 4] = [16, 20, 32, 64];

/// Transports lists as authenticators report them.
const DECOY_TRANSPORTS: [&[&str]; 4] = [
    &["internal"],
    &["hybrid", "internal"],
    &["usb"],
    &["internal"],
];

impl Decoys {
    /// Decoys keyed by `secret` (a server secret every instance of a deployment shares, so
    /// that they all answer one name alike).
    pub fn new(secret: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    fn mac(&self, parts: &[&[u8]]) -> hmac::Tag {
        let mut context = hmac::Context::with_key(&self.key);
        for part in parts {
            // Length-prefixed, so that no two lists of parts sign the same bytes.
            context.update(&u64::try_from(part.len()).unwrap_or(u64::MAX).to_be_bytes());
            context.update(part);
        }
        context.sign()
    }

    /// A stable synthetic user handle for `username` (the ceremony is bound to it, so an
    /// answer fails as a wrong credential would for a real account).
    pub fn user_handle(&self, username: &str) -> String {
        let tag = self.mac(&[b"user handle", username.as_bytes()]);
        b64::encode(tag.as_ref().get(..16).unwrap_or_default())
    }

    /// `allowCredentials` for `username`: one to three descriptors (70% one, 20% two, 10%
    /// three), each ID of a common length, with transports.
    pub fn allow_credentials(&self, username: &str) -> Vec<Value> {
        let seed = self.mac(&[b"allowCredentials", username.as_bytes()]);
        let first = seed.as_ref().first().copied().unwrap_or_default();
        let count: u8 = match first {
            0..=178 => 1,
            179..=229 => 2,
            _ => 3,
        };
        (0..count)
            .map(|i| {
                let pick = usize::from(
                    seed.as_ref()
                        .get(usize::from(i) + 1)
                        .copied()
                        .unwrap_or_default(),
                );
                let length = DECOY_ID_LENGTHS[pick % DECOY_ID_LENGTHS.len()];
                let mut id = Vec::with_capacity(length);
                let mut block = 0u8;
                while id.len() < length {
                    let tag = self.mac(&[b"credential id", username.as_bytes(), &[i, block]]);
                    id.extend_from_slice(tag.as_ref());
                    block = block.wrapping_add(1);
                }
                id.truncate(length);
                let transports =
                    DECOY_TRANSPORTS[(pick / DECOY_ID_LENGTHS.len()) % DECOY_TRANSPORTS.len()];
                json!({ "type": "public-key", "id": b64::encode(&id), "transports": transports })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_nfkc_and_confusable_or_invisible_names_are_refused() {
        for (input, expected) in [
            ("alice", Ok("alice")),
            ("alice@example.com", Ok("alice@example.com")),
            ("ａｌｉｃｅ", Ok("alice")),
            ("jose\u{301}", Ok("jos\u{e9}")),
            ("Алексей", Ok("Алексей")),
            ("山田太郎", Ok("山田太郎")),
            ("山田たろう", Ok("山田たろう")),
            ("tanaka山田", Ok("tanaka山田")),
            ("Zoë Smith", Ok("Zoë Smith")),
            ("p\u{430}ypal", Err("mixed_script_username")),
            (
                "\u{440}\u{430}\u{443}\u{440}\u{430}\u{4cf}",
                Err("confusable_username"),
            ),
            ("\u{430}\u{441}\u{435}", Err("confusable_username")),
            ("ali\u{200b}ce", Err("disallowed_character_in_username")),
            ("alice\u{202e}", Err("disallowed_character_in_username")),
            ("ali\u{ad}ce", Err("disallowed_character_in_username")),
            ("al\nice", Err("disallowed_character_in_username")),
            ("a\u{fff9}b", Err("disallowed_character_in_username")),
            ("a\u{e000}b", Err("disallowed_character_in_username")),
            ("a\u{2028}b", Err("disallowed_character_in_username")),
            ("a\u{fe0f}b", Err("disallowed_character_in_username")),
            ("a\u{a0}b", Ok("a b")),
            ("€uro–fan·1", Ok("€uro–fan·1")),
            (" alice", Err("invalid_username")),
            ("", Err("invalid_username")),
            ("\u{3000}", Err("invalid_username")),
        ] {
            let got = normalize_username(input).map_err(|e| e.code);
            assert_eq!(got.as_deref().map_err(|c| *c), expected, "{input:?}");
        }
        let long = "a".repeat(MAX_NAME + 1);
        assert_eq!(
            normalize_username(&long).map_err(|e| e.code),
            Err("invalid_username")
        );
    }

    #[test]
    fn decoys_are_stable_per_name_and_shaped_like_real_descriptors() {
        let decoys = Decoys::new(b"a server secret");
        let other_server = Decoys::new(b"another secret");
        assert_eq!(
            decoys.allow_credentials("nobody"),
            decoys.allow_credentials("nobody")
        );
        assert_ne!(
            decoys.allow_credentials("nobody"),
            other_server.allow_credentials("nobody")
        );
        assert_ne!(
            decoys.allow_credentials("nobody"),
            decoys.allow_credentials("nobody2")
        );
        assert_eq!(decoys.user_handle("x"), decoys.user_handle("x"));
        let mut counts = [0usize; 4];
        for n in 0..2000 {
            let list = decoys.allow_credentials(&format!("user{n}"));
            counts[list.len()] += 1;
            for d in &list {
                assert_eq!(d["type"], "public-key");
                let id = b64::decode(d["id"].as_str().unwrap()).unwrap();
                assert!(DECOY_ID_LENGTHS.contains(&id.len()), "{}", id.len());
                assert!(!d["transports"].as_array().unwrap().is_empty());
            }
        }
        assert_eq!(counts[0], 0);
        // 70 / 20 / 10 %, within sampling noise.
        assert!((1250..1550).contains(&counts[1]), "{counts:?}");
        assert!((300..500).contains(&counts[2]), "{counts:?}");
        assert!((120..280).contains(&counts[3]), "{counts:?}");
    }
}
