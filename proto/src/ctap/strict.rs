//! The authenticator's decoding of requests into this crate's typed `Request`s.
//!
//! A platform decodes leniently ([`super::fields`]) and wants to know which field was wrong; an
//! authenticator must answer one exact CTAP status for any input, and which status depends on
//! the order in which members are read (the first bad member is the one reported) and on the
//! rules of each command (CTAP 2.1 §6, §8.2). These decoders read canonical CBOR only, take the
//! members in the order the authenticator's steps use them, map a wrong type to
//! `CTAP2_ERR_CBOR_UNEXPECTED_TYPE` and an out-of-range value to the status CTAP names for it,
//! and keep what the authenticator decides later as sent (the pinUvAuthProtocol number,
//! algorithms it may not support, descriptors of other types), so that its checks run at the
//! step that defines them.

use ciborium::value::Value;

use super::PinUvAuth;
use super::StatusCode;
use super::cbor::{Params, TextMap, ValueExt};
use super::data::{CredentialDescriptor, CredentialParameter, Options, RpEntity, UserEntity};
use super::extensions::HmacSecretInput;

/// Longest RP ID accepted (a DNS name is at most 253 characters).
pub const MAX_RP_ID_LENGTH: usize = 253;
/// Longest user handle (WebAuthn: at most 64 bytes).
pub const MAX_USER_ID_LENGTH: usize = 64;
/// Length of a clientDataHash (SHA-256).
pub const CLIENT_DATA_HASH_LENGTH: usize = 32;

/// What an authenticator's decoding checks against: its own limits and capabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most descriptors accepted in an allowList or excludeList (more: `LIMIT_EXCEEDED`).
    pub max_credential_count_in_list: usize,
    /// Whether enterprise attestation is supported (if not, asking for it is
    /// `INVALID_PARAMETER`, §6.1.2 step 9).
    pub enterprise_attestation: bool,
}

/// Takes parameter `key` (the command modules name keys as `i64`).
pub fn take(params: &mut Params, key: i64) -> Option<Value> {
    u64::try_from(key).ok().and_then(|k| params.take(k))
}

/// Takes required parameter `key` (absent: `MISSING_PARAMETER`).
pub fn required(params: &mut Params, key: i64) -> Result<Value, StatusCode> {
    take(params, key).ok_or(StatusCode::MissingParameter)
}

/// `PublicKeyCredentialRpEntity`: an `id` of 1 to 253 bytes, an optional `name`.
pub fn rp_entity(value: Value) -> Result<RpEntity, StatusCode> {
    let mut map = TextMap::new(value.ctap_map()?)?;
    let id = map
        .take("id")
        .ok_or(StatusCode::MissingParameter)?
        .ctap_text()?;
    if id.is_empty() || id.len() > MAX_RP_ID_LENGTH {
        return Err(StatusCode::InvalidParameter);
    }
    let name = map.take("name").map(Value::ctap_text).transpose()?;
    Ok(RpEntity { id, name })
}

/// `PublicKeyCredentialUserEntity`: an `id` of 1 to 64 bytes, optional names.
pub fn user_entity(value: Value) -> Result<UserEntity, StatusCode> {
    let mut map = TextMap::new(value.ctap_map()?)?;
    let id = map
        .take("id")
        .ok_or(StatusCode::MissingParameter)?
        .ctap_bytes()?;
    if id.is_empty() || id.len() > MAX_USER_ID_LENGTH {
        return Err(StatusCode::InvalidParameter);
    }
    let name = map.take("name").map(Value::ctap_text).transpose()?;
    let display_name = map.take("displayName").map(Value::ctap_text).transpose()?;
    Ok(UserEntity {
        id,
        name,
        display_name,
    })
}

/// An allowList / excludeList of at most `max_count` descriptors. Descriptors of every type are
/// kept (the authenticator uses only `"public-key"` ones).
pub fn descriptor_list(
    value: Value,
    max_count: usize,
) -> Result<Vec<CredentialDescriptor>, StatusCode> {
    let items = value.ctap_array()?;
    if items.len() > max_count {
        return Err(StatusCode::LimitExceeded);
    }
    items
        .into_iter()
        .map(|item| {
            let mut map = TextMap::new(item.ctap_map()?)?;
            let kind = map
                .take("type")
                .ok_or(StatusCode::MissingParameter)?
                .ctap_text()?;
            let id = map
                .take("id")
                .ok_or(StatusCode::MissingParameter)?
                .ctap_bytes()?;
            let transports = map
                .take("transports")
                .map(|t| {
                    t.ctap_array()?
                        .into_iter()
                        .map(Value::ctap_text)
                        .collect::<Result<Vec<_>, _>>()
                })
                .transpose()?;
            Ok(CredentialDescriptor {
                kind,
                id,
                transports,
            })
        })
        .collect()
}

/// `pubKeyCredParams`, every entry kept in the caller's order (the authenticator picks the
/// first it supports). An `alg` outside `i64` is the wrong type, as for any integer member.
pub fn credential_parameters(value: Value) -> Result<Vec<CredentialParameter>, StatusCode> {
    value
        .ctap_array()?
        .into_iter()
        .map(|item| {
            let mut map = TextMap::new(item.ctap_map()?)?;
            let alg = map
                .take("alg")
                .ok_or(StatusCode::MissingParameter)?
                .ctap_int()?;
            let kind = map
                .take("type")
                .ok_or(StatusCode::MissingParameter)?
                .ctap_text()?;
            Ok(CredentialParameter { kind, alg })
        })
        .collect()
}

/// The options map; unknown options are ignored, known ones must be booleans.
pub fn options(value: Option<Value>) -> Result<Options, StatusCode> {
    let Some(value) = value else {
        return Ok(Options::default());
    };
    let mut map = TextMap::new(value.ctap_map()?)?;
    let mut take = |k| map.take(k).map(Value::ctap_bool).transpose();
    Ok(Options {
        rk: take("rk")?,
        up: take("up")?,
        uv: take("uv")?,
    })
}

/// The largeBlobKey extension input: only ever `true` (§12.3); `false` is `INVALID_OPTION`.
pub fn large_blob_key(value: Option<Value>) -> Result<Option<bool>, StatusCode> {
    match value.map(Value::ctap_bool).transpose()? {
        None => Ok(None),
        Some(true) => Ok(Some(true)),
        Some(false) => Err(StatusCode::InvalidOption),
    }
}

/// The hmac-secret (and hmac-secret-mc) input: keyAgreement as sent (the authenticator checks
/// it when it derives the shared secret), saltEnc, saltAuth, the protocol number as sent.
pub fn hmac_secret_input(value: Value) -> Result<HmacSecretInput, StatusCode> {
    let mut p = Params::from_value(value)?;
    Ok(HmacSecretInput {
        key_agreement: p.required(1)?,
        salt_enc: p.required(2)?.ctap_bytes()?,
        salt_auth: p.required(3)?.ctap_bytes()?,
        protocol: p.take(4).map(Value::ctap_uint).transpose()?,
    })
}

/// The pinUvAuthParam/pinUvAuthProtocol pair of makeCredential/getAssertion: a MAC with the
/// protocol number as sent (absent or unknown ones are the authenticator's step to refuse), or
/// the zero-length probe (`true`).
pub fn pin_uv_auth(
    params: &mut Params,
    param_key: i64,
    protocol_key: i64,
) -> Result<(Option<PinUvAuth>, bool), StatusCode> {
    let param = take(params, param_key).map(Value::ctap_bytes).transpose()?;
    let protocol = take(params, protocol_key)
        .map(Value::ctap_uint)
        .transpose()?;
    Ok(match param {
        None => (None, false),
        Some(param) if param.is_empty() => (None, true),
        Some(param) => (Some(PinUvAuth { param, protocol }), false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctap::cbor::{encode, int, int_map, text_map};
    use crate::ctap::{client_pin, config, credential_management, get_assertion, make_credential};

    const LIMITS: Limits = Limits {
        max_credential_count_in_list: 2,
        enterprise_attestation: false,
    };

    fn text(s: &str) -> Option<Value> {
        Some(Value::Text(s.to_owned()))
    }

    fn rp() -> Option<Value> {
        Some(text_map([("id", text("example.com"))]))
    }

    fn user() -> Option<Value> {
        Some(text_map([("id", Some(Value::Bytes(vec![1])))]))
    }

    fn params(alg: i64) -> Option<Value> {
        Some(Value::Array(vec![text_map([
            ("alg", Some(int(alg))),
            ("type", text("public-key")),
        ])]))
    }

    fn make_credential(
        hash: usize,
        rp: Option<Value>,
        user: Option<Value>,
        algs: Option<Value>,
        rest: [(i64, Option<Value>); 3],
    ) -> Result<make_credential::Request, StatusCode> {
        let [a, b, c] = rest;
        let body = encode(&int_map([
            (1, Some(Value::Bytes(vec![0; hash]))),
            (2, rp),
            (3, user),
            (4, algs),
            a,
            b,
            c,
        ]));
        make_credential::Request::decode_strict(&body, &LIMITS)
    }

    const NONE: (i64, Option<Value>) = (0x20, None);

    #[test]
    fn the_first_bad_member_in_the_authenticators_order_is_reported() {
        // rp has the wrong type and user is missing: rp comes first.
        assert_eq!(
            make_credential(32, Some(int(1)), None, params(-7), [NONE, NONE, NONE]).err(),
            Some(StatusCode::CborUnexpectedType)
        );
        // An RP ID that is too long is reported before a missing user.
        let long = Some(text_map([("id", text(&"a".repeat(254)))]));
        assert_eq!(
            make_credential(32, long, None, params(-7), [NONE, NONE, NONE]).err(),
            Some(StatusCode::InvalidParameter)
        );
        // A text key in the options map is fine, any other key is the wrong type.
        let options = Some(Value::Map(vec![(int(1), Value::Bool(true))]));
        assert_eq!(
            make_credential(32, rp(), user(), params(-7), [(7, options), NONE, NONE]).err(),
            Some(StatusCode::CborUnexpectedType)
        );
        // Enterprise attestation is refused before attestationFormatsPreference is read.
        assert_eq!(
            make_credential(
                32,
                rp(),
                user(),
                params(-7),
                [(0x0a, Some(int(1))), (0x0b, Some(int(1))), NONE]
            )
            .err(),
            Some(StatusCode::InvalidParameter)
        );
    }

    #[test]
    fn pub_key_cred_params_are_read_last_and_kept_whole() {
        // A malformed pubKeyCredParams and a short clientDataHash: the hash is reported.
        let bad = Some(Value::Array(vec![int(1)]));
        assert_eq!(
            make_credential(16, rp(), user(), bad.clone(), [NONE, NONE, NONE]).err(),
            Some(StatusCode::InvalidParameter)
        );
        assert_eq!(
            make_credential(32, rp(), user(), bad, [NONE, NONE, NONE]).err(),
            Some(StatusCode::CborUnexpectedType)
        );
        // An algorithm no one implements is kept for the authenticator to skip.
        let request =
            make_credential(32, rp(), user(), params(-65535), [NONE, NONE, NONE]).expect("decodes");
        assert_eq!(request.pub_key_cred_params[0].alg, -65535);
        // An alg beyond i64 is the wrong type, as every integer member is.
        let huge = Some(Value::Array(vec![text_map([
            ("alg", Some(Value::Integer(u64::MAX.into()))),
            ("type", text("public-key")),
        ])]));
        assert_eq!(
            make_credential(32, rp(), user(), huge, [NONE, NONE, NONE]).err(),
            Some(StatusCode::CborUnexpectedType)
        );
    }

    #[test]
    fn the_pin_uv_auth_protocol_is_kept_as_sent() {
        // A MAC without a protocol decodes; the authenticator refuses it at its step.
        let mac = (8, Some(Value::Bytes(vec![1; 16])));
        let request =
            make_credential(32, rp(), user(), params(-7), [mac.clone(), NONE, NONE]).unwrap();
        let auth = request.pin_uv_auth.expect("a MAC");
        assert_eq!((auth.param, auth.protocol), (vec![1; 16], None));
        // A protocol number beyond one byte is kept too.
        let request = make_credential(
            32,
            rp(),
            user(),
            params(-7),
            [mac, (9, Some(int(300))), NONE],
        )
        .unwrap();
        assert_eq!(request.pin_uv_auth.unwrap().protocol, Some(300));
        // A zero-length MAC is the probe, whatever the protocol.
        let probe = (8, Some(Value::Bytes(Vec::new())));
        let request = make_credential(
            32,
            rp(),
            user(),
            params(-7),
            [probe, (9, Some(int(7))), NONE],
        )
        .unwrap();
        assert!(request.pin_uv_auth_probe && request.pin_uv_auth.is_none());
    }

    #[test]
    fn extension_and_option_rules() {
        let ext =
            |e: Value| make_credential(32, rp(), user(), params(-7), [(6, Some(e)), NONE, NONE]);
        assert_eq!(
            ext(text_map([("credProtect", Some(int(256)))])).err(),
            Some(StatusCode::InvalidParameter)
        );
        assert_eq!(
            ext(text_map([("largeBlobKey", Some(Value::Bool(false)))])).err(),
            Some(StatusCode::InvalidOption)
        );
        // hmac-secret-mc without hmac-secret is not read at all.
        let request = ext(text_map([("hmac-secret-mc", Some(int(1)))])).unwrap();
        assert_eq!(request.extensions.hmac_secret_mc, None);
        let request = ext(text_map([(BIOMETRIC, Some(Value::Bool(true)))])).unwrap();
        assert!(request.extensions.biometric_set());
        // getAssertion: rk is refused, after every member decoded.
        let body = encode(&int_map([
            (1, text("example.com")),
            (2, Some(Value::Bytes(vec![0; 32]))),
            (5, Some(text_map([("rk", Some(Value::Bool(true)))]))),
        ]));
        assert_eq!(
            get_assertion::Request::decode_strict(&body, &LIMITS).err(),
            Some(StatusCode::UnsupportedOption)
        );
        let three = Some(Value::Array(vec![
            text_map([
                ("type", text("public-key")),
                ("id", Some(Value::Bytes(vec![1])))
            ]);
            3
        ]));
        let body = encode(&int_map([
            (1, text("example.com")),
            (2, Some(Value::Bytes(vec![0; 32]))),
            (3, three),
        ]));
        assert_eq!(
            get_assertion::Request::decode_strict(&body, &LIMITS).err(),
            Some(StatusCode::LimitExceeded)
        );
    }

    const BIOMETRIC: &str = crate::ctap::extensions::BIOMETRIC_SET;

    #[test]
    fn out_of_byte_numbers_reach_the_authenticators_steps() {
        let body = encode(&int_map([
            (1, Some(int(300))),
            (2, Some(int(0x1_0005))),
            (9, Some(int(0x100))),
        ]));
        let request = client_pin::Request::decode_strict(&body).unwrap();
        assert_eq!(request.protocol, Some(300));
        assert_eq!(request.sub_command, client_pin::SubCommand(0x1_0005));
        // No permission the authenticator can grant: the empty set, refused at its step.
        assert_eq!(request.permissions, Some(crate::ctap::Permissions::NONE));
    }

    #[test]
    fn config_keeps_the_sub_command_params_the_mac_covers() {
        // setMinPINLength with a member this crate does not know: the MAC covers it too.
        let sub_params = int_map([
            (1, Some(int(6))),
            (0x10, Some(text_map([("x", text("y"))]))),
        ]);
        let raw = encode(&sub_params);
        let body = encode(&int_map([
            (1, Some(int(3))),
            (2, Some(sub_params)),
            (4, Some(Value::Bytes(vec![1; 16]))),
        ]));
        let request = config::Request::decode_strict(&body).unwrap();
        assert_eq!(encode(request.params.as_ref().unwrap()), raw);
        assert_eq!(request.pin_uv_auth.unwrap().protocol, None);
        // The typed parameters are read only when asked for (after the MAC).
        let typed = config::SetMinPinLength::decode_strict(request.params).unwrap();
        assert_eq!(typed.new_min_pin_length, Some(6));
        assert_eq!(
            config::SetMinPinLength::decode_strict(Some(int(1))).err(),
            Some(StatusCode::CborUnexpectedType)
        );
    }

    #[test]
    fn credential_management_reads_what_the_sub_command_uses_after_the_mac() {
        use credential_management::{Params, Request, SubCommand};
        let descriptor = text_map([("id", Some(Value::Bytes(vec![7; 16])))]);
        let sub_params = int_map([(2, Some(descriptor)), (9, Some(int(1)))]);
        let raw = encode(&sub_params);
        let body = encode(&int_map([
            (1, Some(int(6))),
            (2, Some(sub_params)),
            (3, Some(int(2))),
            (4, Some(Value::Bytes(vec![1; 32]))),
        ]));
        let request = Request::decode_strict(&body).unwrap();
        assert_eq!(request.sub_command, SubCommand::DELETE_CREDENTIAL);
        assert_eq!(encode(request.params.as_ref().unwrap()), raw);
        // A credentialID without type is a public-key descriptor.
        let params = Params::decode_strict(request.params, SubCommand::DELETE_CREDENTIAL).unwrap();
        let id = params.credential_id.unwrap();
        assert_eq!((id.kind.as_str(), id.id), ("public-key", vec![7; 16]));
        // Every subcommand's parameters must be a map; each reads only its own members.
        assert_eq!(
            Params::decode_strict(Some(int(1)), SubCommand::GET_CREDS_METADATA).err(),
            Some(StatusCode::CborUnexpectedType)
        );
        assert_eq!(
            Params::decode_strict(None, SubCommand::UPDATE_USER_INFORMATION).err(),
            Some(StatusCode::MissingParameter)
        );
        assert_eq!(
            Params::decode_strict(None, SubCommand::GET_CREDS_METADATA),
            Ok(Params::default())
        );
    }
}
