//! base64url as WebAuthn's JSON forms use it: unpadded on output, trailing `=` padding tolerated
//! on input, anything outside the URL-safe alphabet refused. The one base64url of the project.

use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};

/// Decoding that accepts input with or without padding.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Text that is not base64url.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not base64url: {0}")]
pub struct Base64UrlError(String);

/// Encodes bytes as unpadded base64url.
pub fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url, with or without padding.
pub fn decode(text: &str) -> Result<Vec<u8>, Base64UrlError> {
    LENIENT
        .decode(text)
        .map_err(|e| Base64UrlError(e.to_string()))
}

/// serde: bytes as base64url (`#[serde(with = "passgate_proto::b64")]`).
pub fn serialize<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&encode(bytes))
}

/// serde: base64url text to bytes.
pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let text = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
    decode(&text).map_err(serde::de::Error::custom)
}

/// serde for `Option<Vec<u8>>`: base64url or null (`#[serde(with = "passgate_proto::b64::option")]`).
pub mod option {
    /// Optional bytes as base64url or null.
    pub fn serialize<S: serde::Serializer>(
        bytes: &Option<Vec<u8>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(b) => s.serialize_str(&super::encode(b)),
            None => s.serialize_none(),
        }
    }

    /// base64url text or null to optional bytes.
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        let text = <Option<std::borrow::Cow<'de, str>> as serde::Deserialize>::deserialize(d)?;
        text.map(|t| super::decode(&t).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_padding() {
        assert_eq!(encode(&[0xfb, 0xff]), "-_8");
        assert_eq!(decode("-_8").unwrap(), [0xfb, 0xff]);
        assert_eq!(decode("-_8=").unwrap(), [0xfb, 0xff]);
        assert!(decode("+/8").is_err());
        assert!(decode("a b").is_err());
    }

    #[test]
    fn serde_helpers() {
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct T {
            #[serde(with = "crate::b64")]
            a: Vec<u8>,
            #[serde(with = "crate::b64::option", default)]
            b: Option<Vec<u8>>,
        }
        let t = T {
            a: vec![0xfb, 0xff],
            b: None,
        };
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, r#"{"a":"-_8","b":null}"#);
        assert_eq!(serde_json::from_str::<T>(r#"{"a":"-_8"}"#).unwrap(), t);
        assert!(serde_json::from_str::<T>(r#"{"a":"+/"}"#).is_err());
    }
}
