//! authenticatorConfig (CTAP 2.1 §6.11). The response has no body.

use ciborium::value::Value;

use super::cbor::{Params, ValueExt};
use super::fields::{self, DecodeError, Fields, MapBuilder, b, i, t};
use super::{Command, PinUvAuth, StatusCode};

/// An authenticatorConfig subcommand (kept as its number, see
/// [`super::client_pin::SubCommand`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SubCommand(pub u64);

impl SubCommand {
    /// enableEnterpriseAttestation.
    pub const ENABLE_ENTERPRISE_ATTESTATION: Self = Self(0x01);
    /// toggleAlwaysUv.
    pub const TOGGLE_ALWAYS_UV: Self = Self(0x02);
    /// setMinPINLength.
    pub const SET_MIN_PIN_LENGTH: Self = Self(0x03);
}

/// setMinPINLength's subCommandParams.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SetMinPinLength {
    /// 0x01 newMinPINLength.
    pub new_min_pin_length: Option<u64>,
    /// 0x02 minPinLengthRPIDs.
    pub min_pin_length_rp_ids: Option<Vec<String>>,
    /// 0x03 forceChangePin.
    pub force_change_pin: Option<bool>,
}

/// The request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// What to do.
    pub sub_command: SubCommand,
    /// subCommandParams as sent (setMinPINLength's: [`SetMinPinLength::to_value`]). Kept as a
    /// value because the pinUvAuthParam covers its bytes (canonical CBOR re-encodes to exactly
    /// them) and an authenticator reads it only once that MAC has been checked
    /// ([`SetMinPinLength::decode_strict`]).
    pub params: Option<Value>,
    /// The pinUvAuthParam and its protocol.
    pub pin_uv_auth: Option<PinUvAuth>,
}

impl SetMinPinLength {
    /// The map.
    pub fn to_value(&self) -> Value {
        MapBuilder::new()
            .int(1, self.new_min_pin_length.map(i))
            .int(
                2,
                self.min_pin_length_rp_ids
                    .as_ref()
                    .map(|ids| Value::Array(ids.iter().map(|s| t(s)).collect())),
            )
            .int(3, self.force_change_pin.map(Value::Bool))
            .build()
    }

    /// Reads the map.
    pub fn from_value(value: Value) -> Result<Self, DecodeError> {
        let mut f = Fields::new(value, "subCommandParams")?;
        Ok(Self {
            new_min_pin_length: f
                .take(1)
                .map(|v| fields::integer(v, "newMinPINLength"))
                .transpose()?,
            min_pin_length_rp_ids: f
                .take(2)
                .map(|v| {
                    fields::array(v, "minPinLengthRPIDs", |s| {
                        fields::text(s, "minPinLengthRPIDs")
                    })
                })
                .transpose()?,
            force_change_pin: f
                .take(3)
                .map(|v| fields::boolean(v, "forceChangePin"))
                .transpose()?,
        })
    }
}

impl SetMinPinLength {
    /// The authenticator's decoding of setMinPINLength's subCommandParams (see
    /// [`super::strict`]), after the MAC check: each member of its exact type.
    pub fn decode_strict(params: Option<Value>) -> Result<Self, StatusCode> {
        let mut p = match params {
            Some(v) => Params::from_value(v)?,
            None => Params::empty(),
        };
        let new_min_pin_length = p.take(0x01).map(ValueExt::ctap_uint).transpose()?;
        let min_pin_length_rp_ids = p
            .take(0x02)
            .map(|v| {
                v.ctap_array()?
                    .into_iter()
                    .map(ValueExt::ctap_text)
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        let force_change_pin = p.take(0x03).map(ValueExt::ctap_bool).transpose()?;
        Ok(Self {
            new_min_pin_length,
            min_pin_length_rp_ids,
            force_change_pin,
        })
    }
}

impl Request {
    /// The authenticator's decoding of the body (canonical CBOR, see [`super::strict`]): the
    /// members in key order, each of its exact type; subCommandParams kept as sent.
    pub fn decode_strict(body: &[u8]) -> Result<Self, StatusCode> {
        let mut p = Params::parse(body)?;
        let sub_command = SubCommand(p.required(0x01)?.ctap_uint()?);
        let params = p.take(0x02);
        let protocol = p.take(0x03).map(ValueExt::ctap_uint).transpose()?;
        let param = p.take(0x04).map(ValueExt::ctap_bytes).transpose()?;
        Ok(Self {
            sub_command,
            params,
            pin_uv_auth: param.map(|param| PinUvAuth { param, protocol }),
        })
    }

    /// Reads the parameter map.
    pub fn from_value(value: Value) -> Result<Self, DecodeError> {
        let mut f = Fields::new(value, "authenticatorConfig parameters")?;
        let protocol = f
            .take(3)
            .map(|v| fields::integer(v, "pinUvAuthProtocol"))
            .transpose()?;
        let param = f
            .take(4)
            .map(|v| fields::bytes(v, "pinUvAuthParam"))
            .transpose()?;
        Ok(Self {
            sub_command: SubCommand(fields::integer(f.required(1, "subCommand")?, "subCommand")?),
            params: f.take(2),
            pin_uv_auth: match (param, protocol) {
                (Some(param), Some(protocol)) => Some(PinUvAuth {
                    param,
                    protocol: Some(protocol),
                }),
                (Some(_), None) => return Err(DecodeError::Missing("pinUvAuthProtocol")),
                (None, _) => None,
            },
        })
    }
}

impl super::Request for Request {
    const COMMAND: Command = Command::Config;

    fn to_value(&self) -> Option<Value> {
        let map = MapBuilder::new()
            .int(1, Some(i(self.sub_command.0)))
            .int(2, self.params.clone());
        Some(
            match &self.pin_uv_auth {
                Some(a) => map.int(3, a.protocol.map(i)).int(4, Some(b(&a.param))),
                None => map,
            }
            .build(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::Request as _;
    use super::*;

    #[test]
    fn set_min_pin_length_round_trips_and_is_byte_exact() {
        let r = Request {
            sub_command: SubCommand::SET_MIN_PIN_LENGTH,
            params: Some(
                SetMinPinLength {
                    new_min_pin_length: Some(6),
                    ..SetMinPinLength::default()
                }
                .to_value(),
            ),
            pin_uv_auth: Some(PinUvAuth {
                param: vec![7],
                protocol: Some(1),
            }),
        };
        let bytes = r.encode().unwrap();
        assert_eq!(
            bytes,
            [
                0x0d, 0xa4, 0x01, 0x03, 0x02, 0xa1, 0x01, 0x06, 0x03, 0x01, 0x04, 0x41, 0x07
            ]
        );
        assert_eq!(
            Request::from_value(fields::decode_value(&bytes[1..]).unwrap()).unwrap(),
            r
        );
    }
}
