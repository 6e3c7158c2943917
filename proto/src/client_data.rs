//! `CollectedClientData`, serialised by the bridge itself (WebAuthn L3 §5.8.1.1): members in the
//! order browsers write them, so the bytes are what a relying party expects from a browser.

use crate::b64;

/// Which ceremony the client data is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CeremonyType {
    /// `webauthn.create`.
    Create,
    /// `webauthn.get`.
    Get,
}

impl CeremonyType {
    /// The `type` member.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "webauthn.create",
            Self::Get => "webauthn.get",
        }
    }
}

/// Serialises `{"type","challenge","origin","crossOrigin"[,"topOrigin"]}` in that order, as the
/// limited-verification algorithm of §5.8.1.2 expects.
pub fn client_data_json(
    kind: CeremonyType,
    challenge: &[u8],
    origin: &str,
    top_origin: Option<&str>,
) -> Vec<u8> {
    let mut out = String::with_capacity(128);
    out.push_str("{\"type\":");
    push_json_string(&mut out, kind.as_str());
    out.push_str(",\"challenge\":");
    push_json_string(&mut out, &b64::encode(challenge));
    out.push_str(",\"origin\":");
    push_json_string(&mut out, origin);
    out.push_str(",\"crossOrigin\":");
    out.push_str(if top_origin.is_some() {
        "true"
    } else {
        "false"
    });
    if let Some(top) = top_origin {
        out.push_str(",\"topOrigin\":");
        push_json_string(&mut out, top);
    }
    out.push('}');
    out.into_bytes()
}

/// The member passgate adds to a signed action's client data when its trusted prompt shows the
/// action's text before the signature (the ceremony fails if it cannot): a relying party may
/// say in its receipt that the person was shown what they approved. A further member after
/// the standard ones, as §5.8.1.2 allows; relying parties that do not know it ignore it.
pub const PAYLOAD_SHOWN_MEMBER: &str = "passgatePayloadShown";

/// [`client_data_json`] with `"passgatePayloadShown":true` last.
pub fn client_data_json_payload_shown(
    kind: CeremonyType,
    challenge: &[u8],
    origin: &str,
    top_origin: Option<&str>,
) -> Vec<u8> {
    let mut out = client_data_json(kind, challenge, origin, top_origin);
    out.pop();
    out.extend_from_slice(format!(",\"{PAYLOAD_SHOWN_MEMBER}\":true}}").as_bytes());
    out
}

/// CCDToString (§5.8.1.2): `"` and `\` escaped, control characters as `\uXXXX`, everything
/// else as is.
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_origin_create_bytes() {
        let bytes = client_data_json(
            CeremonyType::Create,
            &[0xfb, 0xff, 0x00, 0x01],
            "https://example.com",
            None,
        );
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            r#"{"type":"webauthn.create","challenge":"-_8AAQ","origin":"https://example.com","crossOrigin":false}"#
        );
    }

    #[test]
    fn cross_origin_get_bytes_carry_the_top_origin_last() {
        let bytes = client_data_json(
            CeremonyType::Get,
            b"0123456789abcdef",
            "https://pay.example",
            Some("https://shop.example"),
        );
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            r#"{"type":"webauthn.get","challenge":"MDEyMzQ1Njc4OWFiY2RlZg","origin":"https://pay.example","crossOrigin":true,"topOrigin":"https://shop.example"}"#
        );
    }

    #[test]
    fn a_shown_payload_is_said_last() {
        let bytes = client_data_json_payload_shown(
            CeremonyType::Get,
            &[1, 2, 3],
            "https://example.com",
            None,
        );
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            r#"{"type":"webauthn.get","challenge":"AQID","origin":"https://example.com","crossOrigin":false,"passgatePayloadShown":true}"#
        );
    }

    #[test]
    fn strings_are_escaped() {
        let mut s = String::new();
        push_json_string(&mut s, "a\"b\\c\u{1}d\u{e9}");
        assert_eq!(s, "\"a\\\"b\\\\c\\u0001d\u{e9}\"");
    }
}
