//! authenticatorClientPIN (CTAP 2.1 §6.5).

use ciborium::value::Value;

use super::cbor::{Params, ValueExt};
use super::fields::{self, DecodeError, Fields, MapBuilder, b, i, t};
use super::strict;
use super::{Command, Permissions, StatusCode};

/// A clientPIN subcommand. Kept as its number (any unsigned CBOR integer) so that an
/// authenticator can answer CTAP2_ERR_INVALID_SUBCOMMAND for the ones it does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SubCommand(pub u64);

impl SubCommand {
    /// getPINRetries.
    pub const GET_PIN_RETRIES: Self = Self(0x01);
    /// getKeyAgreement.
    pub const GET_KEY_AGREEMENT: Self = Self(0x02);
    /// setPIN.
    pub const SET_PIN: Self = Self(0x03);
    /// changePIN.
    pub const CHANGE_PIN: Self = Self(0x04);
    /// getPinToken (superseded, no permissions).
    pub const GET_PIN_TOKEN: Self = Self(0x05);
    /// getPinUvAuthTokenUsingUvWithPermissions.
    pub const GET_TOKEN_USING_UV: Self = Self(0x06);
    /// getUVRetries.
    pub const GET_UV_RETRIES: Self = Self(0x07);
    /// getPinUvAuthTokenUsingPinWithPermissions.
    pub const GET_TOKEN_USING_PIN: Self = Self(0x09);
}

/// Parameter keys.
pub mod key {
    /// pinUvAuthProtocol.
    pub const PIN_UV_AUTH_PROTOCOL: i64 = 0x01;
    /// subCommand.
    pub const SUB_COMMAND: i64 = 0x02;
    /// keyAgreement.
    pub const KEY_AGREEMENT: i64 = 0x03;
    /// pinUvAuthParam.
    pub const PIN_UV_AUTH_PARAM: i64 = 0x04;
    /// newPinEnc.
    pub const NEW_PIN_ENC: i64 = 0x05;
    /// pinHashEnc.
    pub const PIN_HASH_ENC: i64 = 0x06;
    /// permissions.
    pub const PERMISSIONS: i64 = 0x09;
    /// rpId.
    pub const RP_ID: i64 = 0x0a;
}

/// The request.
#[derive(Clone, PartialEq)]
pub struct Request {
    /// The PIN/UV auth protocol (absent only for getPINRetries/getUVRetries), as sent.
    pub protocol: Option<u64>,
    /// What to do.
    pub sub_command: SubCommand,
    /// The platform's COSE key-agreement key.
    pub key_agreement: Option<Value>,
    /// The MAC over newPinEnc (and pinHashEnc for changePIN).
    pub pin_uv_auth_param: Option<Vec<u8>>,
    /// The new PIN, padded to 64 bytes and encrypted.
    pub new_pin_enc: Option<Vec<u8>>,
    /// LEFT(SHA-256(PIN), 16), encrypted.
    pub pin_hash_enc: Option<Vec<u8>>,
    /// The token's permissions.
    pub permissions: Option<Permissions>,
    /// The RP ID the token is bound to.
    pub rp_id: Option<String>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("clientPIN Request")
            .field("protocol", &self.protocol)
            .field("sub_command", &self.sub_command)
            .field("permissions", &self.permissions)
            .field("rp_id", &self.rp_id)
            .finish_non_exhaustive()
    }
}

impl Request {
    /// A request with only `protocol` and `sub_command` (getPINRetries, getKeyAgreement,
    /// getUVRetries).
    pub fn new(protocol: u8, sub_command: SubCommand) -> Self {
        Self {
            protocol: Some(u64::from(protocol)),
            sub_command,
            key_agreement: None,
            pin_uv_auth_param: None,
            new_pin_enc: None,
            pin_hash_enc: None,
            permissions: None,
            rp_id: None,
        }
    }

    /// Reads the parameter map.
    pub fn from_value(value: Value) -> Result<Self, DecodeError> {
        let mut f = Fields::new(value, "clientPIN parameters")?;
        let bytes =
            |f: &mut Fields, key, name| f.take(key).map(|v| fields::bytes(v, name)).transpose();
        Ok(Self {
            protocol: f
                .take(key::PIN_UV_AUTH_PROTOCOL)
                .map(|v| fields::integer(v, "pinUvAuthProtocol"))
                .transpose()?,
            sub_command: SubCommand(fields::integer(
                f.required(key::SUB_COMMAND, "subCommand")?,
                "subCommand",
            )?),
            key_agreement: f
                .take(key::KEY_AGREEMENT)
                .map(|v| fields::map(v, "keyAgreement"))
                .transpose()?,
            pin_uv_auth_param: bytes(&mut f, key::PIN_UV_AUTH_PARAM, "pinUvAuthParam")?,
            new_pin_enc: bytes(&mut f, key::NEW_PIN_ENC, "newPinEnc")?,
            pin_hash_enc: bytes(&mut f, key::PIN_HASH_ENC, "pinHashEnc")?,
            permissions: f
                .take(key::PERMISSIONS)
                .map(|v| fields::integer(v, "permissions").map(Permissions::from_bits))
                .transpose()?,
            rp_id: f
                .take(key::RP_ID)
                .map(|v| fields::text(v, "rpId"))
                .transpose()?,
        })
    }
}

impl Request {
    /// The authenticator's decoding of the body (canonical CBOR, see [`super::strict`]): the
    /// subcommand first, then the members in key order, each of its exact type. keyAgreement
    /// is kept as sent (the subcommand that uses it checks it). A permissions number beyond
    /// one byte names no permission the authenticator has: it is decoded as the empty set,
    /// which the authenticator refuses at the same step (`INVALID_PARAMETER`).
    pub fn decode_strict(body: &[u8]) -> Result<Self, StatusCode> {
        let mut p = Params::parse(body)?;
        let sub_command = SubCommand(strict::required(&mut p, key::SUB_COMMAND)?.ctap_uint()?);
        let protocol = strict::take(&mut p, key::PIN_UV_AUTH_PROTOCOL)
            .map(ValueExt::ctap_uint)
            .transpose()?;
        let key_agreement = strict::take(&mut p, key::KEY_AGREEMENT);
        let mut bytes = |key| {
            strict::take(&mut p, key)
                .map(ValueExt::ctap_bytes)
                .transpose()
        };
        let pin_uv_auth_param = bytes(key::PIN_UV_AUTH_PARAM)?;
        let new_pin_enc = bytes(key::NEW_PIN_ENC)?;
        let pin_hash_enc = bytes(key::PIN_HASH_ENC)?;
        let permissions = strict::take(&mut p, key::PERMISSIONS)
            .map(|v| {
                v.ctap_uint().map(|bits| {
                    u8::try_from(bits).map_or(Permissions::NONE, Permissions::from_bits)
                })
            })
            .transpose()?;
        let rp_id = strict::take(&mut p, key::RP_ID)
            .map(ValueExt::ctap_text)
            .transpose()?;
        Ok(Self {
            protocol,
            sub_command,
            key_agreement,
            pin_uv_auth_param,
            new_pin_enc,
            pin_hash_enc,
            permissions,
            rp_id,
        })
    }
}

impl super::Request for Request {
    const COMMAND: Command = Command::ClientPin;

    fn to_value(&self) -> Option<Value> {
        Some(
            MapBuilder::new()
                .int(key::PIN_UV_AUTH_PROTOCOL, self.protocol.map(i))
                .int(key::SUB_COMMAND, Some(i(self.sub_command.0)))
                .int(key::KEY_AGREEMENT, self.key_agreement.clone())
                .int(
                    key::PIN_UV_AUTH_PARAM,
                    self.pin_uv_auth_param.as_deref().map(b),
                )
                .int(key::NEW_PIN_ENC, self.new_pin_enc.as_deref().map(b))
                .int(key::PIN_HASH_ENC, self.pin_hash_enc.as_deref().map(b))
                .int(key::PERMISSIONS, self.permissions.map(|p| i(p.bits())))
                .int(key::RP_ID, self.rp_id.as_deref().map(t))
                .build(),
        )
    }
}

/// The response: the members the subcommand answers with.
#[derive(Clone, PartialEq, Default)]
pub struct Response {
    /// 0x01 the authenticator's COSE key-agreement key.
    pub key_agreement: Option<Value>,
    /// 0x02 the pinUvAuthToken, encrypted under the shared secret.
    pub pin_uv_auth_token: Option<Vec<u8>>,
    /// 0x03 PIN tries left.
    pub pin_retries: Option<u8>,
    /// 0x04 whether a power cycle is needed before the next PIN try.
    pub power_cycle_state: Option<bool>,
    /// 0x05 built-in verifications left.
    pub uv_retries: Option<u8>,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("clientPIN Response")
            .field("pin_retries", &self.pin_retries)
            .field("uv_retries", &self.uv_retries)
            .finish_non_exhaustive()
    }
}

impl super::Response for Response {
    fn to_value(&self) -> Value {
        MapBuilder::new()
            .int(1, self.key_agreement.clone())
            .int(2, self.pin_uv_auth_token.as_deref().map(b))
            .int(3, self.pin_retries.map(i))
            .int(4, self.power_cycle_state.map(Value::Bool))
            .int(5, self.uv_retries.map(i))
            .build()
    }

    fn from_value(value: Value) -> Result<Self, DecodeError> {
        let mut f = Fields::new(value, "clientPIN response")?;
        Ok(Self {
            key_agreement: f
                .take(1)
                .map(|v| fields::map(v, "keyAgreement"))
                .transpose()?,
            pin_uv_auth_token: f
                .take(2)
                .map(|v| fields::bytes(v, "pinUvAuthToken"))
                .transpose()?,
            pin_retries: f
                .take(3)
                .map(|v| fields::integer(v, "pinRetries"))
                .transpose()?,
            power_cycle_state: f
                .take(4)
                .map(|v| fields::boolean(v, "powerCycleState"))
                .transpose()?,
            uv_retries: f
                .take(5)
                .map(|v| fields::integer(v, "uvRetries"))
                .transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Request as _, Response as _};
    use super::*;

    #[test]
    fn get_retries_is_byte_exact() {
        let r = Request::new(2, SubCommand::GET_PIN_RETRIES);
        assert_eq!(r.encode().unwrap(), [0x06, 0xa2, 0x01, 0x02, 0x02, 0x01]);
    }

    #[test]
    fn token_request_round_trips_with_typed_permissions() {
        let mut r = Request::new(2, SubCommand::GET_TOKEN_USING_PIN);
        r.key_agreement = Some(Value::Map(vec![(i(1), i(2))]));
        r.pin_hash_enc = Some(vec![1; 32]);
        r.permissions = Some(Permissions::MAKE_CREDENTIAL | Permissions::GET_ASSERTION);
        r.rp_id = Some("example.com".into());
        let bytes = r.encode().unwrap();
        let decoded = Request::from_value(fields::decode_value(&bytes[1..]).unwrap()).unwrap();
        assert_eq!(decoded.permissions.map(Permissions::bits), Some(0x03));
        assert!(decoded == r);
        assert!(
            !format!("{decoded:?}").contains("[1, 1"),
            "no secrets in Debug"
        );
    }

    #[test]
    fn response_round_trips_and_checks_ranges() {
        let r = Response {
            pin_retries: Some(8),
            power_cycle_state: Some(false),
            ..Response::default()
        };
        let bytes = r.encode().unwrap();
        assert_eq!(bytes, [0xa2, 0x03, 0x08, 0x04, 0xf4]);
        assert!(Response::decode(&bytes).unwrap() == r);
        let too_big = MapBuilder::new().int(3, Some(i(300))).build();
        assert_eq!(
            Response::from_value(too_big).unwrap_err(),
            DecodeError::Invalid("pinRetries")
        );
    }
}
