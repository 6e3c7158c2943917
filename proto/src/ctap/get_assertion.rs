//! authenticatorGetAssertion (CTAP 2.1 §6.2); authenticatorGetNextAssertion (§6.3) answers with
//! the same [`Response`].

use ciborium::value::Value;

use super::cbor::{Params, ValueExt};
use super::data::{
    CredentialDescriptor, Options, UserEntity, descriptors_from_value, descriptors_to_value,
};
use super::extensions::GetAssertionExtensions;
use super::fields::{self, DecodeError, Fields, MapBuilder, b, i, t};
use super::make_credential::{pin_uv_auth, pin_uv_auth_entries};
use super::strict::{self, Limits};
use super::{Command, PinUvAuth, StatusCode};

/// Parameter keys.
pub mod key {
    /// rpId.
    pub const RP_ID: i64 = 0x01;
    /// clientDataHash.
    pub const CLIENT_DATA_HASH: i64 = 0x02;
    /// allowList.
    pub const ALLOW_LIST: i64 = 0x03;
    /// extensions.
    pub const EXTENSIONS: i64 = 0x04;
    /// options.
    pub const OPTIONS: i64 = 0x05;
    /// pinUvAuthParam.
    pub const PIN_UV_AUTH_PARAM: i64 = 0x06;
    /// pinUvAuthProtocol.
    pub const PIN_UV_AUTH_PROTOCOL: i64 = 0x07;
}

/// The request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The RP ID.
    pub rp_id: String,
    /// SHA-256 of the client data.
    pub client_data_hash: Vec<u8>,
    /// Acceptable credentials; empty for discoverable credentials.
    pub allow_list: Vec<CredentialDescriptor>,
    /// Extension inputs.
    pub extensions: GetAssertionExtensions,
    /// `up`, `uv` (`rk` is refused by authenticators).
    pub options: Options,
    /// The pinUvAuthParam and its protocol.
    pub pin_uv_auth: Option<PinUvAuth>,
    /// A zero-length pinUvAuthParam alone.
    pub pin_uv_auth_probe: bool,
}

impl Request {
    /// A request for `rp_id` with nothing else set.
    pub fn new(rp_id: &str, client_data_hash: &[u8]) -> Self {
        Self {
            rp_id: rp_id.to_owned(),
            client_data_hash: client_data_hash.to_vec(),
            allow_list: Vec::new(),
            extensions: GetAssertionExtensions::default(),
            options: Options::default(),
            pin_uv_auth: None,
            pin_uv_auth_probe: false,
        }
    }

    /// Reads the parameter map.
    pub fn from_value(value: Value) -> Result<Self, DecodeError> {
        let mut f = Fields::new(value, "getAssertion parameters")?;
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
            rp_id: fields::text(f.required(key::RP_ID, "rpId")?, "rpId")?,
            client_data_hash: fields::bytes(
                f.required(key::CLIENT_DATA_HASH, "clientDataHash")?,
                "clientDataHash",
            )?,
            allow_list: f
                .take(key::ALLOW_LIST)
                .map(|v| descriptors_from_value(v, "allowList"))
                .transpose()?
                .unwrap_or_default(),
            extensions: f
                .take(key::EXTENSIONS)
                .map(GetAssertionExtensions::from_value)
                .transpose()?
                .unwrap_or_default(),
            options: f
                .take(key::OPTIONS)
                .map(Options::from_value)
                .transpose()?
                .unwrap_or_default(),
            pin_uv_auth,
            pin_uv_auth_probe,
        })
    }
}

impl Request {
    /// The authenticator's decoding of the body (canonical CBOR, see [`super::strict`]): the
    /// members in the order of §6.2.2, the exact CTAP status for the first bad one. `rk` is
    /// `UNSUPPORTED_OPTION` (§6.2.2 step 5).
    pub fn decode_strict(body: &[u8], limits: &Limits) -> Result<Self, StatusCode> {
        let mut params = Params::parse(body)?;
        let rp_id = strict::required(&mut params, key::RP_ID)?.ctap_text()?;
        let client_data_hash =
            strict::required(&mut params, key::CLIENT_DATA_HASH)?.ctap_bytes()?;
        let allow_list = strict::take(&mut params, key::ALLOW_LIST)
            .map(|v| strict::descriptor_list(v, limits.max_credential_count_in_list))
            .transpose()?
            .unwrap_or_default();
        let extensions = strict::take(&mut params, key::EXTENSIONS)
            .map(GetAssertionExtensions::decode_strict)
            .transpose()?
            .unwrap_or_default();
        let options = strict::options(strict::take(&mut params, key::OPTIONS))?;
        let (pin_uv_auth, pin_uv_auth_probe) = strict::pin_uv_auth(
            &mut params,
            key::PIN_UV_AUTH_PARAM,
            key::PIN_UV_AUTH_PROTOCOL,
        )?;
        if rp_id.is_empty() || rp_id.len() > strict::MAX_RP_ID_LENGTH {
            return Err(StatusCode::InvalidParameter);
        }
        if client_data_hash.len() != strict::CLIENT_DATA_HASH_LENGTH {
            return Err(StatusCode::InvalidParameter);
        }
        if options.rk.is_some() {
            return Err(StatusCode::UnsupportedOption);
        }
        Ok(Self {
            rp_id,
            client_data_hash,
            allow_list,
            extensions,
            options,
            pin_uv_auth,
            pin_uv_auth_probe,
        })
    }
}

impl super::Request for Request {
    const COMMAND: Command = Command::GetAssertion;

    fn to_value(&self) -> Option<Value> {
        let map = MapBuilder::new()
            .int(key::RP_ID, Some(t(&self.rp_id)))
            .int(key::CLIENT_DATA_HASH, Some(b(&self.client_data_hash)))
            .int(
                key::ALLOW_LIST,
                (!self.allow_list.is_empty()).then(|| descriptors_to_value(&self.allow_list)),
            )
            .int(key::EXTENSIONS, self.extensions.to_value())
            .int(key::OPTIONS, self.options.to_value());
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

/// authenticatorGetNextAssertion: no parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GetNextAssertion;

impl super::Request for GetNextAssertion {
    const COMMAND: Command = Command::GetNextAssertion;

    fn to_value(&self) -> Option<Value> {
        None
    }
}

/// The response.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// The credential used (may be absent when the allowList had exactly one).
    pub credential: Option<CredentialDescriptor>,
    /// The authenticator data, as signed.
    pub auth_data: Vec<u8>,
    /// The signature over authData || clientDataHash.
    pub signature: Vec<u8>,
    /// The account of a discoverable credential.
    pub user: Option<UserEntity>,
    /// How many credentials matched (first response of a discoverable sign-in).
    pub number_of_credentials: Option<u64>,
    /// Whether the user picked this credential on the authenticator.
    pub user_selected: Option<bool>,
    /// The largeBlobKey.
    pub large_blob_key: Option<Vec<u8>>,
}

impl super::Response for Response {
    fn to_value(&self) -> Value {
        MapBuilder::new()
            .int(
                1,
                self.credential.as_ref().map(CredentialDescriptor::to_value),
            )
            .int(2, Some(b(&self.auth_data)))
            .int(3, Some(b(&self.signature)))
            .int(4, self.user.as_ref().map(UserEntity::to_value))
            .int(5, self.number_of_credentials.map(i))
            .int(6, self.user_selected.map(Value::Bool))
            .int(7, self.large_blob_key.as_deref().map(b))
            .build()
    }

    fn from_value(value: Value) -> Result<Self, DecodeError> {
        let mut f = Fields::new(value, "getAssertion response")?;
        Ok(Self {
            credential: f
                .take(1)
                .map(CredentialDescriptor::from_value)
                .transpose()?,
            auth_data: fields::bytes(f.required(2, "authData")?, "authData")?,
            signature: fields::bytes(f.required(3, "signature")?, "signature")?,
            user: f.take(4).map(UserEntity::from_value).transpose()?,
            number_of_credentials: f
                .take(5)
                .map(|v| fields::integer(v, "numberOfCredentials"))
                .transpose()?,
            user_selected: f
                .take(6)
                .map(|v| fields::boolean(v, "userSelected"))
                .transpose()?,
            large_blob_key: f
                .take(7)
                .map(|v| fields::bytes(v, "largeBlobKey"))
                .transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Request as _, Response as _};
    use super::*;

    #[test]
    fn minimal_request_encodes_byte_exact() {
        let mut r = Request::new("a", &[0x22; 32]);
        r.options.up = Some(false);
        let mut expected = vec![0x02, 0xa3, 0x01, 0x61, b'a', 0x02, 0x58, 0x20];
        expected.extend_from_slice(&[0x22; 32]);
        expected.extend_from_slice(&[0x05, 0xa1, 0x62, b'u', b'p', 0xf4]);
        assert_eq!(r.encode().unwrap(), expected);
        assert_eq!(
            Request::from_value(fields::decode_value(&expected[1..]).unwrap()).unwrap(),
            r
        );
    }

    #[test]
    fn full_request_round_trips() {
        let mut r = Request::new("example.com", &[1; 32]);
        r.allow_list = vec![CredentialDescriptor::public_key(&[2; 16])];
        r.extensions.cred_blob = Some(true);
        r.options.uv = Some(true);
        r.pin_uv_auth = Some(PinUvAuth {
            param: vec![3; 16],
            protocol: Some(1),
        });
        let bytes = r.encode().unwrap();
        assert_eq!(
            Request::from_value(fields::decode_value(&bytes[1..]).unwrap()).unwrap(),
            r
        );
        assert_eq!(GetNextAssertion.encode().unwrap(), [0x08]);
    }

    /// Found by the `ctap_command` fuzz target: a getAssertion whose hmac-secret keyAgreement
    /// (a COSE key, kept as a raw CBOR value) has the label -1 twice decoded, and then could
    /// not be encoded again. It is refused at decoding now, with the status the authenticator
    /// answers it with.
    #[test]
    fn a_duplicate_key_deep_inside_is_refused_at_decoding() {
        let mut key_agreement = vec![
            0xa5, 0x01, 0x02, 0x03, 0x38, 0x18, 0x20, 0x01, 0x21, 0x58, 0x20,
        ];
        key_agreement.extend_from_slice(&[0xea; 32]);
        key_agreement.extend_from_slice(&[0x20, 0x58, 0x20]); // -1 again, where -3 belongs
        key_agreement.extend_from_slice(&[0x15; 32]);
        let mut message = vec![0xa3, 0x01, 0x61, b'a', 0x02, 0x58, 0x20];
        message.extend_from_slice(&[0x22; 32]);
        message.extend_from_slice(&[0x04, 0xa1, 0x6b]);
        message.extend_from_slice(b"hmac-secret");
        message.extend_from_slice(&[0xa3, 0x01]);
        message.extend_from_slice(&key_agreement);
        message.extend_from_slice(&[0x02, 0x58, 0x20]);
        message.extend_from_slice(&[0x91; 32]);
        message.extend_from_slice(&[0x03, 0x50]);
        message.extend_from_slice(&[0xf6; 16]);
        let error = fields::decode_value(&message).unwrap_err();
        assert_eq!(error, DecodeError::Cbor("duplicate map key".into()));
        assert_eq!(error.status(), StatusCode::InvalidCbor);

        // The same message with -3 where it belongs decodes and encodes again.
        let fixed_at = 7 + 32 + 3 + 11 + 2 + 11 + 32;
        assert_eq!(message[fixed_at], 0x20);
        message[fixed_at] = 0x22;
        let request = Request::from_value(fields::decode_value(&message).unwrap()).unwrap();
        let encoded = request.encode().unwrap();
        assert_eq!(
            Request::from_value(fields::decode_value(&encoded[1..]).unwrap()).unwrap(),
            request
        );
    }

    #[test]
    fn floats_and_tags_inside_are_refused_at_decoding() {
        // {1: "a", 2: h'22..', 4: {"x": 1.5}} and {.., 4: {"x": 1(0)}}
        let mut head = vec![0xa3, 0x01, 0x61, b'a', 0x02, 0x58, 0x20];
        head.extend_from_slice(&[0x22; 32]);
        let mut float = head.clone();
        float.extend_from_slice(&[0x04, 0xa1, 0x61, b'x', 0xf9, 0x3e, 0x00]);
        let mut tag = head;
        tag.extend_from_slice(&[0x04, 0xa1, 0x61, b'x', 0xc1, 0x00]);
        for message in [float, tag] {
            assert_eq!(
                fields::decode_value(&message).unwrap_err().status(),
                StatusCode::InvalidCbor
            );
        }
    }

    #[test]
    fn response_round_trips_and_requires_its_signature() {
        let r = Response {
            credential: Some(CredentialDescriptor::public_key(&[4; 16])),
            auth_data: vec![5; 37],
            signature: vec![6; 70],
            user: Some(UserEntity {
                id: vec![7],
                name: None,
                display_name: None,
            }),
            number_of_credentials: Some(2),
            user_selected: None,
            large_blob_key: None,
        };
        assert_eq!(Response::decode(&r.encode().unwrap()).unwrap(), r);
        let no_sig = MapBuilder::new().int(2, Some(b(&[0; 37]))).build();
        assert_eq!(
            Response::from_value(no_sig).unwrap_err(),
            DecodeError::Missing("signature")
        );
    }
}
