//! authenticatorMakeCredential (CTAP 2.1 §6.1).

use ciborium::value::Value;

use super::cbor::{Params, ValueExt};
use super::data::{
    CredentialDescriptor, CredentialParameter, Options, RpEntity, UserEntity,
    descriptors_from_value, descriptors_to_value,
};
use super::extensions::MakeCredentialExtensions;
use super::fields::{self, DecodeError, Fields, MapBuilder, b, i, t};
use super::strict::{self, Limits};
use super::{Command, PinUvAuth, StatusCode};

/// Parameter keys.
pub mod key {
    /// clientDataHash.
    pub const CLIENT_DATA_HASH: i64 = 0x01;
    /// rp.
    pub const RP: i64 = 0x02;
    /// user.
    pub const USER: i64 = 0x03;
    /// pubKeyCredParams.
    pub const PUB_KEY_CRED_PARAMS: i64 = 0x04;
    /// excludeList.
    pub const EXCLUDE_LIST: i64 = 0x05;
    /// extensions.
    pub const EXTENSIONS: i64 = 0x06;
    /// options.
    pub const OPTIONS: i64 = 0x07;
    /// pinUvAuthParam.
    pub const PIN_UV_AUTH_PARAM: i64 = 0x08;
    /// pinUvAuthProtocol.
    pub const PIN_UV_AUTH_PROTOCOL: i64 = 0x09;
    /// enterpriseAttestation.
    pub const ENTERPRISE_ATTESTATION: i64 = 0x0a;
    /// attestationFormatsPreference (CTAP 2.2).
    pub const ATTESTATION_FORMATS_PREFERENCE: i64 = 0x0b;
}

/// The request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// SHA-256 of the client data.
    pub client_data_hash: Vec<u8>,
    /// The relying party.
    pub rp: RpEntity,
    /// The account.
    pub user: UserEntity,
    /// Acceptable algorithms, most preferred first.
    pub pub_key_cred_params: Vec<CredentialParameter>,
    /// Credentials that must not be created again.
    pub exclude_list: Vec<CredentialDescriptor>,
    /// Extension inputs.
    pub extensions: MakeCredentialExtensions,
    /// `rk`, `up`, `uv`.
    pub options: Options,
    /// The pinUvAuthParam and its protocol.
    pub pin_uv_auth: Option<PinUvAuth>,
    /// A zero-length pinUvAuthParam alone (the "touch to pick this authenticator" probe).
    pub pin_uv_auth_probe: bool,
    /// Enterprise attestation kind.
    pub enterprise_attestation: Option<u64>,
    /// Attestation statement formats, most preferred first.
    pub attestation_formats_preference: Option<Vec<String>>,
}

impl Request {
    /// A request for `rp` and `user` with `algorithms` and nothing else set.
    pub fn new(
        client_data_hash: &[u8],
        rp: RpEntity,
        user: UserEntity,
        algorithms: &[i64],
    ) -> Self {
        Self {
            client_data_hash: client_data_hash.to_vec(),
            rp,
            user,
            pub_key_cred_params: algorithms
                .iter()
                .map(|a| CredentialParameter::public_key(*a))
                .collect(),
            exclude_list: Vec::new(),
            extensions: MakeCredentialExtensions::default(),
            options: Options::default(),
            pin_uv_auth: None,
            pin_uv_auth_probe: false,
            enterprise_attestation: None,
            attestation_formats_preference: None,
        }
    }

    /// Reads the parameter map.
    pub fn from_value(value: Value) -> Result<Self, DecodeError> {
        let mut f = Fields::new(value, "makeCredential parameters")?;
        let param = f
            .take(key::PIN_UV_AUTH_PARAM)
            .map(|v| fields::bytes(v, "pinUvAuthParam"))
            .transpose()?;
        let protocol = f
            .take(key::PIN_UV_AUTH_PROTOCOL)
            .map(|v| fields::integer(v, "pinUvAuthProtocol"))
            .transpose()?;
        let (pin_uv_auth, pin_uv_auth_probe) = pin_uv_auth(param, protocol)?;
        Ok(Self {
            client_data_hash: fields::bytes(
                f.required(key::CLIENT_DATA_HASH, "clientDataHash")?,
                "clientDataHash",
            )?,
            rp: RpEntity::from_value(f.required(key::RP, "rp")?)?,
            user: UserEntity::from_value(f.required(key::USER, "user")?)?,
            pub_key_cred_params: fields::array(
                f.required(key::PUB_KEY_CRED_PARAMS, "pubKeyCredParams")?,
                "pubKeyCredParams",
                CredentialParameter::from_value,
            )?,
            exclude_list: f
                .take(key::EXCLUDE_LIST)
                .map(|v| descriptors_from_value(v, "excludeList"))
                .transpose()?
                .unwrap_or_default(),
            extensions: f
                .take(key::EXTENSIONS)
                .map(MakeCredentialExtensions::from_value)
                .transpose()?
                .unwrap_or_default(),
            options: f
                .take(key::OPTIONS)
                .map(Options::from_value)
                .transpose()?
                .unwrap_or_default(),
            pin_uv_auth,
            pin_uv_auth_probe,
            enterprise_attestation: f
                .take(key::ENTERPRISE_ATTESTATION)
                .map(|v| fields::integer(v, "enterpriseAttestation"))
                .transpose()?,
            attestation_formats_preference: f
                .take(key::ATTESTATION_FORMATS_PREFERENCE)
                .map(|v| {
                    fields::array(v, "attestationFormatsPreference", |s| {
                        fields::text(s, "attestationFormatsPreference")
                    })
                })
                .transpose()?,
        })
    }
}

impl Request {
    /// The authenticator's decoding of the body (canonical CBOR, see [`super::strict`]): the
    /// members in the order of §6.1.2, the exact CTAP status for the first bad one.
    /// pubKeyCredParams is read last, after the clientDataHash length, and every entry is
    /// kept: the authenticator picks the first algorithm its key store supports
    /// (`UNSUPPORTED_ALGORITHM` when none), so that a request with two faults answers the
    /// same status whichever store is behind it.
    pub fn decode_strict(body: &[u8], limits: &Limits) -> Result<Self, StatusCode> {
        let mut params = Params::parse(body)?;
        let client_data_hash =
            strict::required(&mut params, key::CLIENT_DATA_HASH)?.ctap_bytes()?;
        let rp = strict::rp_entity(strict::required(&mut params, key::RP)?)?;
        let user = strict::user_entity(strict::required(&mut params, key::USER)?)?;
        let pub_key_cred_params = strict::required(&mut params, key::PUB_KEY_CRED_PARAMS)?;
        let exclude_list = strict::take(&mut params, key::EXCLUDE_LIST)
            .map(|v| strict::descriptor_list(v, limits.max_credential_count_in_list))
            .transpose()?
            .unwrap_or_default();
        let extensions = strict::take(&mut params, key::EXTENSIONS)
            .map(MakeCredentialExtensions::decode_strict)
            .transpose()?
            .unwrap_or_default();
        let options = strict::options(strict::take(&mut params, key::OPTIONS))?;
        let (pin_uv_auth, pin_uv_auth_probe) = strict::pin_uv_auth(
            &mut params,
            key::PIN_UV_AUTH_PARAM,
            key::PIN_UV_AUTH_PROTOCOL,
        )?;
        let enterprise_attestation = match strict::take(&mut params, key::ENTERPRISE_ATTESTATION) {
            None => None,
            Some(kind) => {
                let kind = kind.ctap_uint()?;
                if !limits.enterprise_attestation {
                    return Err(StatusCode::InvalidParameter);
                }
                Some(kind)
            }
        };
        let attestation_formats_preference =
            strict::take(&mut params, key::ATTESTATION_FORMATS_PREFERENCE)
                .map(|list| {
                    list.ctap_array()?
                        .into_iter()
                        .map(ValueExt::ctap_text)
                        .collect::<Result<Vec<_>, _>>()
                })
                .transpose()?;
        if client_data_hash.len() != strict::CLIENT_DATA_HASH_LENGTH {
            return Err(StatusCode::InvalidParameter);
        }
        let pub_key_cred_params = strict::credential_parameters(pub_key_cred_params)?;
        Ok(Self {
            client_data_hash,
            rp,
            user,
            pub_key_cred_params,
            exclude_list,
            extensions,
            options,
            pin_uv_auth,
            pin_uv_auth_probe,
            enterprise_attestation,
            attestation_formats_preference,
        })
    }
}

/// The pinUvAuthParam/protocol pair of a request as sent: a MAC with its protocol, or the
/// zero-length probe. A MAC without a protocol is `MissingParameter` (§6.1.2 step 1).
pub(super) fn pin_uv_auth(
    param: Option<Vec<u8>>,
    protocol: Option<u64>,
) -> Result<(Option<PinUvAuth>, bool), DecodeError> {
    match (param, protocol) {
        (Some(p), _) if p.is_empty() => Ok((None, true)),
        (Some(param), Some(protocol)) => Ok((
            Some(PinUvAuth {
                param,
                protocol: Some(protocol),
            }),
            false,
        )),
        (Some(_), None) => Err(DecodeError::Missing("pinUvAuthProtocol")),
        (None, _) => Ok((None, false)),
    }
}

/// The pinUvAuthParam/protocol entries for keys `param_key` and `param_key + 1`.
pub(super) fn pin_uv_auth_entries(
    map: MapBuilder,
    param_key: i64,
    auth: Option<&PinUvAuth>,
    probe: bool,
) -> MapBuilder {
    match auth {
        Some(a) => map
            .int(param_key, Some(b(&a.param)))
            .int(param_key + 1, a.protocol.map(i)),
        None if probe => map.int(param_key, Some(Value::Bytes(Vec::new()))),
        None => map,
    }
}

impl super::Request for Request {
    const COMMAND: Command = Command::MakeCredential;

    fn to_value(&self) -> Option<Value> {
        let map = MapBuilder::new()
            .int(key::CLIENT_DATA_HASH, Some(b(&self.client_data_hash)))
            .int(key::RP, Some(self.rp.to_value()))
            .int(key::USER, Some(self.user.to_value()))
            .int(
                key::PUB_KEY_CRED_PARAMS,
                Some(Value::Array(
                    self.pub_key_cred_params
                        .iter()
                        .map(CredentialParameter::to_value)
                        .collect(),
                )),
            )
            .int(
                key::EXCLUDE_LIST,
                (!self.exclude_list.is_empty()).then(|| descriptors_to_value(&self.exclude_list)),
            )
            .int(key::EXTENSIONS, self.extensions.to_value())
            .int(key::OPTIONS, self.options.to_value())
            .int(
                key::ENTERPRISE_ATTESTATION,
                self.enterprise_attestation.map(i),
            )
            .int(
                key::ATTESTATION_FORMATS_PREFERENCE,
                self.attestation_formats_preference
                    .as_ref()
                    .map(|fs| Value::Array(fs.iter().map(|s| t(s)).collect())),
            );
        Some(
            pin_uv_auth_entries(
                map,
                key::PIN_UV_AUTH_PARAM,
                self.pin_uv_auth.as_ref(),
                self.pin_uv_auth_probe,
            )
            .build(),
        )
    }
}

/// The response (attestation object members).
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// The attestation statement format.
    pub fmt: String,
    /// The authenticator data, as signed.
    pub auth_data: Vec<u8>,
    /// The attestation statement.
    pub att_stmt: Value,
    /// Whether enterprise attestation was returned.
    pub ep_att: Option<bool>,
    /// The largeBlobKey.
    pub large_blob_key: Option<Vec<u8>>,
}

impl super::Response for Response {
    fn to_value(&self) -> Value {
        MapBuilder::new()
            .int(1, Some(t(&self.fmt)))
            .int(2, Some(b(&self.auth_data)))
            .int(3, Some(self.att_stmt.clone()))
            .int(4, self.ep_att.map(Value::Bool))
            .int(5, self.large_blob_key.as_deref().map(b))
            .build()
    }

    fn from_value(value: Value) -> Result<Self, DecodeError> {
        let mut f = Fields::new(value, "makeCredential response")?;
        Ok(Self {
            fmt: fields::text(f.required(1, "fmt")?, "fmt")?,
            auth_data: fields::bytes(f.required(2, "authData")?, "authData")?,
            att_stmt: fields::map(f.required(3, "attStmt")?, "attStmt")?,
            ep_att: f.take(4).map(|v| fields::boolean(v, "epAtt")).transpose()?,
            large_blob_key: f
                .take(5)
                .map(|v| fields::bytes(v, "largeBlobKey"))
                .transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::extensions::HmacSecretInput;
    use super::super::{Request as _, Response as _};
    use super::*;

    fn request() -> Request {
        let mut r = Request::new(
            &[0x11; 32],
            RpEntity {
                id: "example.com".into(),
                name: Some("Example".into()),
            },
            UserEntity {
                id: vec![1, 2],
                name: Some("alice".into()),
                display_name: None,
            },
            &[-7, -8],
        );
        r.exclude_list = vec![CredentialDescriptor::public_key(&[9; 16])];
        r.extensions.hmac_secret = Some(true);
        r.extensions.cred_protect = Some(3);
        r.extensions.hmac_secret_mc = Some(HmacSecretInput {
            key_agreement: Value::Map(vec![(i(1), i(2))]),
            salt_enc: vec![3; 48],
            salt_auth: vec![4; 32],
            protocol: Some(2),
        });
        r.extensions.other = vec![("passgateBiometricSet".into(), Value::Bool(true))];
        r.options.rk = Some(true);
        r.pin_uv_auth = Some(PinUvAuth {
            param: vec![5; 32],
            protocol: Some(2),
        });
        r
    }

    #[test]
    fn request_round_trips() {
        let r = request();
        let bytes = r.encode().unwrap();
        assert_eq!(bytes[0], 0x01);
        let decoded = Request::from_value(fields::decode_value(&bytes[1..]).unwrap()).unwrap();
        assert_eq!(decoded, r);
    }

    #[test]
    fn minimal_request_encodes_byte_exact() {
        let r = Request::new(
            &[0xaa; 2],
            RpEntity {
                id: "a".into(),
                name: None,
            },
            UserEntity {
                id: vec![1],
                name: None,
                display_name: None,
            },
            &[-7],
        );
        assert_eq!(
            r.encode().unwrap(),
            [
                0x01, 0xa4, // command, map(4)
                0x01, 0x42, 0xaa, 0xaa, // 1: h'aaaa'
                0x02, 0xa1, 0x62, b'i', b'd', 0x61, b'a', // 2: {"id": "a"}
                0x03, 0xa1, 0x62, b'i', b'd', 0x41, 0x01, // 3: {"id": h'01'}
                0x04, 0x81, 0xa2, 0x63, b'a', b'l', b'g', 0x26, 0x64, b't', b'y', b'p', b'e', 0x6a,
                b'p', b'u', b'b', b'l', b'i', b'c', b'-', b'k', b'e', b'y',
            ]
        );
    }

    #[test]
    fn missing_and_mistyped_fields_name_their_status() {
        let no_rp = MapBuilder::new().int(1, Some(b(&[0; 32]))).build();
        let e = Request::from_value(no_rp).unwrap_err();
        assert_eq!(e, DecodeError::Missing("rp"));
        assert_eq!(e.status(), StatusCode::MissingParameter);
        let bad_hash = MapBuilder::new().int(1, Some(t("x"))).build();
        assert_eq!(
            Request::from_value(bad_hash).unwrap_err().status(),
            StatusCode::CborUnexpectedType
        );
        let mac_without_protocol = request().to_value().unwrap();
        let Value::Map(mut entries) = mac_without_protocol else {
            unreachable!()
        };
        entries.retain(|(k, _)| k != &i(key::PIN_UV_AUTH_PROTOCOL));
        assert_eq!(
            Request::from_value(Value::Map(entries)).unwrap_err(),
            DecodeError::Missing("pinUvAuthProtocol")
        );
    }

    #[test]
    fn probe_is_a_zero_length_param_alone() {
        let mut r = request();
        r.pin_uv_auth = None;
        r.pin_uv_auth_probe = true;
        let v = r.to_value().unwrap();
        let decoded = Request::from_value(v).unwrap();
        assert!(decoded.pin_uv_auth_probe && decoded.pin_uv_auth.is_none());
    }

    #[test]
    fn response_round_trips() {
        let r = Response {
            fmt: "none".into(),
            auth_data: vec![7; 37],
            att_stmt: Value::Map(Vec::new()),
            ep_att: None,
            large_blob_key: Some(vec![1; 32]),
        };
        let bytes = r.encode().unwrap();
        assert_eq!(
            &bytes[..8],
            &[0xa4, 0x01, 0x64, b'n', b'o', b'n', b'e', 0x02]
        );
        assert_eq!(Response::decode(&bytes).unwrap(), r);
        assert_eq!(
            Response::decode(&[0xa0]).unwrap_err(),
            DecodeError::Missing("fmt")
        );
    }
}
