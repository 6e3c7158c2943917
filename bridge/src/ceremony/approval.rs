//! Signed actions: what you see is what you sign. A page asking to approve an action passes
//! the action's text (`"payload"` beside `"options"`); the relying party's challenge for it is
//! random bytes followed by SHA-256 of exactly that text (relying-party's
//! `receipts::action_challenge`). The bridge checks that before anyone is asked, so a page
//! cannot show one text in passgate's prompt and have another signed.

use serde_json::Map;

use super::*;

/// The longest action text accepted (the relying party takes 1 to 8192 bytes).
pub const MAX_PAYLOAD_BYTES: usize = 8192;
/// The challenge's random part must be at least this long before the text's hash: an action
/// challenge is still a challenge (WebAuthn asks for at least 16 random bytes).
const MIN_NONCE_BYTES: usize = 16;
/// SHA-256.
const HASH_BYTES: usize = 32;

/// The `"payload"` member of a request: absent (a sign-in) or the action's text.
pub(super) fn payload_of(request: &Map<String, Json>) -> Result<Option<&str>, BridgeError> {
    match request.get("payload") {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(text)) => Ok(Some(text.as_str())),
        Some(_) => Err(BridgeError::type_error(
            "\"payload\" is not a string (pass the action's text exactly as the relying party hashed it)",
        )),
    }
}

/// Checks that `challenge` (base64url, from the request options) ends with SHA-256 of
/// exactly `payload`, after at least 16 other bytes; refuses the request otherwise, before
/// the authenticator or the person is asked.
pub(super) fn check_payload(challenge: &str, payload: &str) -> Result<(), BridgeError> {
    if payload.is_empty() || payload.len() > MAX_PAYLOAD_BYTES {
        return Err(BridgeError::type_error(format!(
            "the action text must be 1 to {MAX_PAYLOAD_BYTES} bytes, not {}",
            payload.len()
        )));
    }
    let challenge = decode_member(challenge, "challenge")?;
    let Some(split) = challenge
        .len()
        .checked_sub(HASH_BYTES)
        .filter(|&n| n >= MIN_NONCE_BYTES)
    else {
        return Err(BridgeError::security(format!(
            "the challenge ({} bytes) cannot commit to the action text: an action challenge is at least {MIN_NONCE_BYTES} random bytes followed by SHA-256 of the text",
            challenge.len()
        )));
    };
    let committed = challenge.get(split..).unwrap_or_default();
    if committed != sha256(payload.as_bytes()).as_slice() {
        return Err(BridgeError::security(
            "the action text does not match what the challenge commits to: passgate shows only the text that is signed, so nothing was signed",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn challenge(nonce: usize, payload: &str) -> String {
        let mut bytes = vec![7u8; nonce];
        bytes.extend_from_slice(&sha256(payload.as_bytes()));
        b64::encode(&bytes)
    }

    #[test]
    fn the_challenge_must_end_with_the_texts_hash() {
        let text = r#"{"pay": "ACME Ltd", "amount": "129.00"}"#;
        assert_eq!(check_payload(&challenge(16, text), text), Ok(()));
        assert_eq!(check_payload(&challenge(40, text), text), Ok(()));
        // One character changed, a trailing newline, a re-serialisation: all refused.
        for tampered in [
            r#"{"pay": "ACME Ltd", "amount": "929.00"}"#,
            "{\"pay\": \"ACME Ltd\", \"amount\": \"129.00\"}\n",
            r#"{"pay":"ACME Ltd","amount":"129.00"}"#,
        ] {
            let e = check_payload(&challenge(16, text), tampered).unwrap_err();
            assert_eq!(e.name, ErrorName::SecurityError);
            assert!(e.message.contains("does not match"), "{}", e.message);
        }
    }

    #[test]
    fn short_challenges_and_bad_texts_are_refused() {
        let e = check_payload(&challenge(15, "x"), "x").unwrap_err();
        assert_eq!(e.name, ErrorName::SecurityError);
        assert!(e.message.contains("47 bytes"), "{}", e.message);
        let e = check_payload(&challenge(16, ""), "").unwrap_err();
        assert_eq!(e.name, ErrorName::TypeError);
        let long = "x".repeat(MAX_PAYLOAD_BYTES + 1);
        assert_eq!(
            check_payload(&challenge(16, &long), &long)
                .unwrap_err()
                .name,
            ErrorName::TypeError
        );
        assert_eq!(
            check_payload("not base64url!", "x").unwrap_err().name,
            ErrorName::TypeError
        );
    }

    #[test]
    fn the_payload_member_is_a_string_or_absent() {
        assert_eq!(payload_of(&object(json!({"type": "get"}))), Ok(None));
        assert_eq!(payload_of(&object(json!({"payload": null}))), Ok(None));
        assert_eq!(
            payload_of(&object(json!({"payload": "pay"}))),
            Ok(Some("pay"))
        );
        assert_eq!(
            payload_of(&object(json!({"payload": {"pay": 1}})))
                .unwrap_err()
                .name,
            ErrorName::TypeError
        );
    }

    fn object(value: Json) -> Map<String, Json> {
        value.as_object().cloned().unwrap()
    }
}
