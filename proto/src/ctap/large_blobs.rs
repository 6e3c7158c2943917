//! authenticatorLargeBlobs (CTAP 2.1 §6.10).

use ciborium::value::Value;

use super::cbor::{Params, ValueExt};
use super::fields::{self, DecodeError, Fields, MapBuilder, b, i};
use super::{Command, PinUvAuth, StatusCode};

/// The request: a read (`get`) or a write fragment (`set`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// 0x01 how many bytes to read.
    pub get: Option<u64>,
    /// 0x02 a fragment to write.
    pub set: Option<Vec<u8>>,
    /// 0x03 where the read or write starts.
    pub offset: u64,
    /// 0x04 the total length of the write (first fragment only).
    pub length: Option<u64>,
    /// 0x05/0x06 the pinUvAuthParam and its protocol (writes).
    pub pin_uv_auth: Option<PinUvAuth>,
}

impl Request {
    /// Reads the parameter map.
    pub fn from_value(value: Value) -> Result<Self, DecodeError> {
        let mut f = Fields::new(value, "largeBlobs parameters")?;
        let param = f
            .take(5)
            .map(|v| fields::bytes(v, "pinUvAuthParam"))
            .transpose()?;
        let protocol = f
            .take(6)
            .map(|v| fields::integer(v, "pinUvAuthProtocol"))
            .transpose()?;
        Ok(Self {
            get: f.take(1).map(|v| fields::integer(v, "get")).transpose()?,
            set: f.take(2).map(|v| fields::bytes(v, "set")).transpose()?,
            offset: fields::integer(f.required(3, "offset")?, "offset")?,
            length: f
                .take(4)
                .map(|v| fields::integer(v, "length"))
                .transpose()?,
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

impl Request {
    /// The authenticator's decoding of the body (canonical CBOR, see [`super::strict`]): every
    /// member in key order, each of its exact type; which of get/set, the offset and the
    /// pinUvAuthProtocol are acceptable is the authenticator's step (§6.10.2) to judge.
    pub fn decode_strict(body: &[u8]) -> Result<Self, StatusCode> {
        let mut p = Params::parse(body)?;
        let get = p.take(0x01).map(ValueExt::ctap_uint).transpose()?;
        let set = p.take(0x02).map(ValueExt::ctap_bytes).transpose()?;
        let offset = p.required(0x03)?.ctap_uint()?;
        let length = p.take(0x04).map(ValueExt::ctap_uint).transpose()?;
        let param = p.take(0x05).map(ValueExt::ctap_bytes).transpose()?;
        let protocol = p.take(0x06).map(ValueExt::ctap_uint).transpose()?;
        Ok(Self {
            get,
            set,
            offset,
            length,
            pin_uv_auth: param.map(|param| PinUvAuth { param, protocol }),
        })
    }
}

impl super::Request for Request {
    const COMMAND: Command = Command::LargeBlobs;

    fn to_value(&self) -> Option<Value> {
        let map = MapBuilder::new()
            .int(1, self.get.map(i))
            .int(2, self.set.as_deref().map(b))
            .int(3, Some(i(self.offset)))
            .int(4, self.length.map(i));
        Some(
            match &self.pin_uv_auth {
                Some(a) => map.int(5, Some(b(&a.param))).int(6, a.protocol.map(i)),
                None => map,
            }
            .build(),
        )
    }
}

/// The response to a read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Response {
    /// 0x01 the bytes read (absent after a write).
    pub config: Option<Vec<u8>>,
}

impl super::Response for Response {
    fn to_value(&self) -> Value {
        MapBuilder::new()
            .int(1, self.config.as_deref().map(b))
            .build()
    }

    fn from_value(value: Value) -> Result<Self, DecodeError> {
        let mut f = Fields::new(value, "largeBlobs response")?;
        Ok(Self {
            config: f.take(1).map(|v| fields::bytes(v, "config")).transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Request as _, Response as _};
    use super::*;

    #[test]
    fn read_is_byte_exact_and_round_trips() {
        let r = Request {
            get: Some(1024),
            set: None,
            offset: 0,
            length: None,
            pin_uv_auth: None,
        };
        let bytes = r.encode().unwrap();
        assert_eq!(bytes, [0x0c, 0xa2, 0x01, 0x19, 0x04, 0x00, 0x03, 0x00]);
        assert_eq!(
            Request::from_value(fields::decode_value(&bytes[1..]).unwrap()).unwrap(),
            r
        );
        let answer = Response {
            config: Some(vec![0x80]),
        };
        assert_eq!(answer.encode().unwrap(), [0xa1, 0x01, 0x41, 0x80]);
        assert_eq!(Response::decode(&[]).unwrap(), Response::default());
    }

    #[test]
    fn offset_is_required() {
        let v = MapBuilder::new().int(1, Some(i(10))).build();
        assert_eq!(
            Request::from_value(v).unwrap_err(),
            DecodeError::Missing("offset")
        );
    }
}
