//! authenticatorCredentialManagement (CTAP 2.1 §6.8).

use ciborium::value::Value;

use super::cbor::{TextMap, ValueExt};
use super::data::{CredentialDescriptor, PUBLIC_KEY, RpEntity, UserEntity};
use super::fields::{self, DecodeError, Fields, MapBuilder, b, i};
use super::strict;
use super::{Command, PinUvAuth, StatusCode};

/// A credentialManagement subcommand (kept as its number, see [`super::client_pin::SubCommand`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SubCommand(pub u64);

impl SubCommand {
    /// getCredsMetadata.
    pub const GET_CREDS_METADATA: Self = Self(0x01);
    /// enumerateRPsBegin.
    pub const ENUMERATE_RPS_BEGIN: Self = Self(0x02);
    /// enumerateRPsGetNextRP.
    pub const ENUMERATE_RPS_NEXT: Self = Self(0x03);
    /// enumerateCredentialsBegin.
    pub const ENUMERATE_CREDENTIALS_BEGIN: Self = Self(0x04);
    /// enumerateCredentialsGetNextCredential.
    pub const ENUMERATE_CREDENTIALS_NEXT: Self = Self(0x05);
    /// deleteCredential.
    pub const DELETE_CREDENTIAL: Self = Self(0x06);
    /// updateUserInformation.
    pub const UPDATE_USER_INFORMATION: Self = Self(0x07);
}

/// subCommandParams.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Params {
    /// 0x01 rpIDHash.
    pub rp_id_hash: Option<Vec<u8>>,
    /// 0x02 credentialID.
    pub credential_id: Option<CredentialDescriptor>,
    /// 0x03 user.
    pub user: Option<UserEntity>,
}

impl Params {
    /// The map.
    pub fn to_value(&self) -> Value {
        MapBuilder::new()
            .int(1, self.rp_id_hash.as_deref().map(b))
            .int(
                2,
                self.credential_id
                    .as_ref()
                    .map(CredentialDescriptor::to_value),
            )
            .int(3, self.user.as_ref().map(UserEntity::to_value))
            .build()
    }

    /// Reads the map.
    pub fn from_value(value: Value) -> Result<Self, DecodeError> {
        let mut f = Fields::new(value, "subCommandParams")?;
        Ok(Self {
            rp_id_hash: f
                .take(1)
                .map(|v| fields::bytes(v, "rpIDHash"))
                .transpose()?,
            credential_id: f
                .take(2)
                .map(CredentialDescriptor::from_value)
                .transpose()?,
            user: f.take(3).map(UserEntity::from_value).transpose()?,
        })
    }
}

impl Params {
    /// The authenticator's decoding of subCommandParams (see [`super::strict`]), after the MAC
    /// check: a map whatever the subcommand, then the members `sub_command` uses, in the order
    /// it uses them (rpIDHash; credentialID; credentialID then user). A credentialID without
    /// `type` is taken as `"public-key"`, the only type there is.
    pub fn decode_strict(
        params: Option<Value>,
        sub_command: SubCommand,
    ) -> Result<Self, StatusCode> {
        let mut p = match params {
            Some(v) => super::cbor::Params::from_value(v)?,
            None => super::cbor::Params::empty(),
        };
        let mut out = Self::default();
        match sub_command {
            SubCommand::ENUMERATE_CREDENTIALS_BEGIN => {
                out.rp_id_hash = Some(p.required(0x01)?.ctap_bytes()?);
            }
            SubCommand::DELETE_CREDENTIAL => {
                out.credential_id = Some(credential_id(p.required(0x02)?)?);
            }
            SubCommand::UPDATE_USER_INFORMATION => {
                out.credential_id = Some(credential_id(p.required(0x02)?)?);
                out.user = Some(strict::user_entity(p.required(0x03)?)?);
            }
            _ => {}
        }
        Ok(out)
    }
}

/// A credentialID descriptor as the authenticator reads it: `id` required, `type` optional.
fn credential_id(value: Value) -> Result<CredentialDescriptor, StatusCode> {
    let mut map = TextMap::new(value.ctap_map()?)?;
    let id = map
        .take("id")
        .ok_or(StatusCode::MissingParameter)?
        .ctap_bytes()?;
    let kind = map.take("type").map(ValueExt::ctap_text).transpose()?;
    Ok(CredentialDescriptor {
        kind: kind.unwrap_or_else(|| PUBLIC_KEY.to_owned()),
        id,
        transports: None,
    })
}

/// The request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// What to do.
    pub sub_command: SubCommand,
    /// subCommandParams as sent ([`Params::to_value`]). Kept as a value because the
    /// pinUvAuthParam covers its bytes (canonical CBOR re-encodes to exactly them) and an
    /// authenticator reads it only once that MAC has been checked ([`Params::decode_strict`]).
    pub params: Option<Value>,
    /// The pinUvAuthParam (over subCommand || subCommandParams) and its protocol.
    pub pin_uv_auth: Option<PinUvAuth>,
    /// The preview command byte (0x41) instead of 0x0A.
    pub preview: bool,
}

impl Request {
    /// The authenticator's decoding of the body (canonical CBOR, see [`super::strict`]): the
    /// members in key order, each of its exact type; subCommandParams kept as sent.
    pub fn decode_strict(body: &[u8]) -> Result<Self, StatusCode> {
        let mut p = super::cbor::Params::parse(body)?;
        let sub_command = SubCommand(p.required(0x01)?.ctap_uint()?);
        let params = p.take(0x02);
        let protocol = p.take(0x03).map(ValueExt::ctap_uint).transpose()?;
        let param = p.take(0x04).map(ValueExt::ctap_bytes).transpose()?;
        Ok(Self {
            sub_command,
            params,
            pin_uv_auth: param.map(|param| PinUvAuth { param, protocol }),
            preview: false,
        })
    }

    /// Reads the parameter map.
    pub fn from_value(value: Value) -> Result<Self, DecodeError> {
        let mut f = Fields::new(value, "credentialManagement parameters")?;
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
            preview: false,
        })
    }

    /// The message (command byte per [`Self::preview`]).
    pub fn encode(&self) -> Result<Vec<u8>, super::CanonicalError> {
        let mut out = vec![if self.preview {
            Command::CredentialManagementPreview.byte()
        } else {
            Command::CredentialManagement.byte()
        }];
        super::canonical::encode_into(&self.to_value(), &mut out)?;
        Ok(out)
    }

    /// The parameter map.
    pub fn to_value(&self) -> Value {
        let map = MapBuilder::new()
            .int(1, Some(i(self.sub_command.0)))
            .int(2, self.params.clone());
        match &self.pin_uv_auth {
            Some(a) => map.int(3, a.protocol.map(i)).int(4, Some(b(&a.param))),
            None => map,
        }
        .build()
    }
}

/// The response: the members the subcommand answers with.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Response {
    /// 0x01 existingResidentCredentialsCount.
    pub existing_resident_credentials_count: Option<u64>,
    /// 0x02 maxPossibleRemainingResidentCredentialsCount.
    pub max_possible_remaining_resident_credentials_count: Option<u64>,
    /// 0x03 rp.
    pub rp: Option<RpEntity>,
    /// 0x04 rpIDHash.
    pub rp_id_hash: Option<Vec<u8>>,
    /// 0x05 totalRPs.
    pub total_rps: Option<u64>,
    /// 0x06 user.
    pub user: Option<UserEntity>,
    /// 0x07 credentialID.
    pub credential_id: Option<CredentialDescriptor>,
    /// 0x08 publicKey (COSE_Key).
    pub public_key: Option<Value>,
    /// 0x09 totalCredentials.
    pub total_credentials: Option<u64>,
    /// 0x0A credProtect.
    pub cred_protect: Option<u8>,
    /// 0x0B largeBlobKey.
    pub large_blob_key: Option<Vec<u8>>,
}

impl super::Response for Response {
    fn to_value(&self) -> Value {
        MapBuilder::new()
            .int(1, self.existing_resident_credentials_count.map(i))
            .int(
                2,
                self.max_possible_remaining_resident_credentials_count
                    .map(i),
            )
            .int(3, self.rp.as_ref().map(RpEntity::to_value))
            .int(4, self.rp_id_hash.as_deref().map(b))
            .int(5, self.total_rps.map(i))
            .int(6, self.user.as_ref().map(UserEntity::to_value))
            .int(
                7,
                self.credential_id
                    .as_ref()
                    .map(CredentialDescriptor::to_value),
            )
            .int(8, self.public_key.clone())
            .int(9, self.total_credentials.map(i))
            .int(0x0A, self.cred_protect.map(i))
            .int(0x0B, self.large_blob_key.as_deref().map(b))
            .build()
    }

    fn from_value(value: Value) -> Result<Self, DecodeError> {
        let mut f = Fields::new(value, "credentialManagement response")?;
        let mut uint = |key, name| f.take(key).map(|v| fields::integer(v, name)).transpose();
        let existing = uint(1, "existingResidentCredentialsCount")?;
        let remaining = uint(2, "maxPossibleRemainingResidentCredentialsCount")?;
        let total_rps = uint(5, "totalRPs")?;
        let total_credentials = uint(9, "totalCredentials")?;
        Ok(Self {
            existing_resident_credentials_count: existing,
            max_possible_remaining_resident_credentials_count: remaining,
            rp: f.take(3).map(RpEntity::from_value).transpose()?,
            rp_id_hash: f
                .take(4)
                .map(|v| fields::bytes(v, "rpIDHash"))
                .transpose()?,
            total_rps,
            user: f.take(6).map(UserEntity::from_value).transpose()?,
            credential_id: f
                .take(7)
                .map(CredentialDescriptor::from_value)
                .transpose()?,
            public_key: f.take(8).map(|v| fields::map(v, "publicKey")).transpose()?,
            total_credentials,
            cred_protect: f
                .take(0x0A)
                .map(|v| fields::integer(v, "credProtect"))
                .transpose()?,
            large_blob_key: f
                .take(0x0B)
                .map(|v| fields::bytes(v, "largeBlobKey"))
                .transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::Response as _;
    use super::*;

    #[test]
    fn delete_request_round_trips_and_is_byte_exact() {
        let r = Request {
            sub_command: SubCommand::DELETE_CREDENTIAL,
            params: Some(
                Params {
                    credential_id: Some(CredentialDescriptor::public_key(&[1, 2])),
                    ..Params::default()
                }
                .to_value(),
            ),
            pin_uv_auth: Some(PinUvAuth {
                param: vec![9],
                protocol: Some(2),
            }),
            preview: false,
        };
        let bytes = r.encode().unwrap();
        let mut expected = vec![0x0a, 0xa4, 0x01, 0x06, 0x02, 0xa1, 0x02, 0xa2];
        expected.extend_from_slice(&[0x62, b'i', b'd', 0x42, 1, 2]);
        expected.extend_from_slice(&[0x64, b't', b'y', b'p', b'e', 0x6a]);
        expected.extend_from_slice(b"public-key");
        expected.extend_from_slice(&[0x03, 0x02, 0x04, 0x41, 0x09]);
        assert_eq!(bytes, expected);
        assert_eq!(
            Request::from_value(fields::decode_value(&bytes[1..]).unwrap()).unwrap(),
            r
        );
        let preview = Request { preview: true, ..r };
        assert_eq!(preview.encode().unwrap()[0], 0x41);
    }

    #[test]
    fn response_round_trips() {
        let r = Response {
            rp: Some(RpEntity {
                id: "example.com".into(),
                name: None,
            }),
            rp_id_hash: Some(vec![3; 32]),
            total_rps: Some(2),
            ..Response::default()
        };
        assert_eq!(Response::decode(&r.encode().unwrap()).unwrap(), r);
    }
}
