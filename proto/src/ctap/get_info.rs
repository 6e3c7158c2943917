//! authenticatorGetInfo (CTAP 2.1 §6.4).

use ciborium::value::Value;

use super::Command;
use super::data::CredentialParameter;
use super::fields::{self, DecodeError, Fields, MapBuilder, b, i, t};

/// The request: no parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Request;

impl super::Request for Request {
    const COMMAND: Command = Command::GetInfo;

    fn to_value(&self) -> Option<Value> {
        None
    }
}

/// The response, every member as sent (defaults are the reader's business).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Response {
    /// 0x01 versions (`FIDO_2_0`, `FIDO_2_1`, `U2F_V2`).
    pub versions: Vec<String>,
    /// 0x02 extension identifiers.
    pub extensions: Option<Vec<String>>,
    /// 0x03 AAGUID.
    pub aaguid: [u8; 16],
    /// 0x04 options, by name.
    pub options: Option<Vec<(String, bool)>>,
    /// 0x05 maxMsgSize.
    pub max_msg_size: Option<u64>,
    /// 0x06 pinUvAuthProtocols, preferred first.
    pub pin_uv_auth_protocols: Option<Vec<u64>>,
    /// 0x07 maxCredentialCountInList.
    pub max_credential_count_in_list: Option<u64>,
    /// 0x08 maxCredentialIdLength.
    pub max_credential_id_length: Option<u64>,
    /// 0x09 transports.
    pub transports: Option<Vec<String>>,
    /// 0x0A algorithms.
    pub algorithms: Option<Vec<CredentialParameter>>,
    /// 0x0B maxSerializedLargeBlobArray.
    pub max_serialized_large_blob_array: Option<u64>,
    /// 0x0C forcePINChange.
    pub force_pin_change: Option<bool>,
    /// 0x0D minPINLength.
    pub min_pin_length: Option<u64>,
    /// 0x0E firmwareVersion.
    pub firmware_version: Option<u64>,
    /// 0x0F maxCredBlobLength.
    pub max_cred_blob_length: Option<u64>,
    /// 0x10 maxRPIDsForSetMinPINLength.
    pub max_rp_ids_for_set_min_pin_length: Option<u64>,
    /// 0x11 preferredPlatformUvAttempts.
    pub preferred_platform_uv_attempts: Option<u64>,
    /// 0x12 uvModality.
    pub uv_modality: Option<u64>,
    /// 0x14 remainingDiscoverableCredentials.
    pub remaining_discoverable_credentials: Option<u64>,
    /// 0x16 attestationFormats (CTAP 2.2), in the authenticator's order of preference;
    /// `"none"` is implied and never listed. Absent: the reader assumes `["packed"]`.
    pub attestation_formats: Option<Vec<String>>,
}

impl Response {
    /// The option `name`, when the authenticator lists it.
    pub fn option(&self, name: &str) -> Option<bool> {
        self.options
            .as_ref()?
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
    }
}

fn texts(list: &[String]) -> Value {
    Value::Array(list.iter().map(|s| t(s)).collect())
}

fn uint(f: &mut Fields, key: i64, name: &'static str) -> Result<Option<u64>, DecodeError> {
    f.take(key).map(|v| fields::integer(v, name)).transpose()
}

fn text_list(
    f: &mut Fields,
    key: i64,
    name: &'static str,
) -> Result<Option<Vec<String>>, DecodeError> {
    f.take(key)
        .map(|v| fields::array(v, name, |s| fields::text(s, name)))
        .transpose()
}

impl super::Response for Response {
    fn to_value(&self) -> Value {
        MapBuilder::new()
            .int(0x01, Some(texts(&self.versions)))
            .int(0x02, self.extensions.as_deref().map(texts))
            .int(0x03, Some(b(&self.aaguid)))
            .int(
                0x04,
                self.options
                    .as_ref()
                    .map(|o| Value::Map(o.iter().map(|(k, v)| (t(k), Value::Bool(*v))).collect())),
            )
            .int(0x05, self.max_msg_size.map(i))
            .int(
                0x06,
                self.pin_uv_auth_protocols
                    .as_ref()
                    .map(|p| Value::Array(p.iter().map(|n| i(*n)).collect())),
            )
            .int(0x07, self.max_credential_count_in_list.map(i))
            .int(0x08, self.max_credential_id_length.map(i))
            .int(0x09, self.transports.as_deref().map(texts))
            .int(
                0x0A,
                self.algorithms
                    .as_ref()
                    .map(|a| Value::Array(a.iter().map(CredentialParameter::to_value).collect())),
            )
            .int(0x0B, self.max_serialized_large_blob_array.map(i))
            .int(0x0C, self.force_pin_change.map(Value::Bool))
            .int(0x0D, self.min_pin_length.map(i))
            .int(0x0E, self.firmware_version.map(i))
            .int(0x0F, self.max_cred_blob_length.map(i))
            .int(0x10, self.max_rp_ids_for_set_min_pin_length.map(i))
            .int(0x11, self.preferred_platform_uv_attempts.map(i))
            .int(0x12, self.uv_modality.map(i))
            .int(0x14, self.remaining_discoverable_credentials.map(i))
            .int(0x16, self.attestation_formats.as_deref().map(texts))
            .build()
    }

    fn from_value(value: Value) -> Result<Self, DecodeError> {
        let mut f = Fields::new(value, "getInfo response")?;
        let options = f
            .take(0x04)
            .map(|v| {
                let entries = Fields::new(v, "options")?.rest_text();
                entries
                    .into_iter()
                    .map(|(k, v)| Ok((k, fields::boolean(v, "options")?)))
                    .collect::<Result<Vec<_>, DecodeError>>()
            })
            .transpose()?;
        Ok(Self {
            versions: text_list(&mut f, 0x01, "versions")?
                .ok_or(DecodeError::Missing("versions"))?,
            extensions: text_list(&mut f, 0x02, "extensions")?,
            aaguid: fields::byte_array(f.required(0x03, "aaguid")?, "aaguid")?,
            options,
            max_msg_size: uint(&mut f, 0x05, "maxMsgSize")?,
            pin_uv_auth_protocols: f
                .take(0x06)
                .map(|v| {
                    fields::array(v, "pinUvAuthProtocols", |n| {
                        fields::integer(n, "pinUvAuthProtocols")
                    })
                })
                .transpose()?,
            max_credential_count_in_list: uint(&mut f, 0x07, "maxCredentialCountInList")?,
            max_credential_id_length: uint(&mut f, 0x08, "maxCredentialIdLength")?,
            transports: text_list(&mut f, 0x09, "transports")?,
            algorithms: f
                .take(0x0A)
                .map(|v| fields::array(v, "algorithms", CredentialParameter::from_value))
                .transpose()?,
            max_serialized_large_blob_array: uint(&mut f, 0x0B, "maxSerializedLargeBlobArray")?,
            force_pin_change: f
                .take(0x0C)
                .map(|v| fields::boolean(v, "forcePINChange"))
                .transpose()?,
            min_pin_length: uint(&mut f, 0x0D, "minPINLength")?,
            firmware_version: uint(&mut f, 0x0E, "firmwareVersion")?,
            max_cred_blob_length: uint(&mut f, 0x0F, "maxCredBlobLength")?,
            max_rp_ids_for_set_min_pin_length: uint(&mut f, 0x10, "maxRPIDsForSetMinPINLength")?,
            preferred_platform_uv_attempts: uint(&mut f, 0x11, "preferredPlatformUvAttempts")?,
            uv_modality: uint(&mut f, 0x12, "uvModality")?,
            remaining_discoverable_credentials: uint(
                &mut f,
                0x14,
                "remainingDiscoverableCredentials",
            )?,
            attestation_formats: text_list(&mut f, 0x16, "attestationFormats")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Request as _, Response as _};
    use super::*;

    #[test]
    fn request_is_the_bare_command() {
        assert_eq!(Request.encode().unwrap(), [0x04]);
    }

    #[test]
    fn minimal_response_is_byte_exact_and_round_trips() {
        let r = Response {
            versions: vec!["FIDO_2_1".into()],
            aaguid: [0; 16],
            options: Some(vec![("rk".into(), true), ("clientPin".into(), false)]),
            ..Response::default()
        };
        let bytes = r.encode().unwrap();
        let mut expected = vec![0xa3, 0x01, 0x81, 0x68];
        expected.extend_from_slice(b"FIDO_2_1");
        expected.extend_from_slice(&[0x03, 0x50]);
        expected.extend_from_slice(&[0; 16]);
        // Options sorted canonically: "rk" before "clientPin".
        expected.extend_from_slice(&[0x04, 0xa2, 0x62, b'r', b'k', 0xf5, 0x69]);
        expected.extend_from_slice(b"clientPin");
        expected.push(0xf4);
        assert_eq!(bytes, expected);
        let decoded = Response::decode(&bytes).unwrap();
        assert_eq!(decoded.option("rk"), Some(true));
        assert_eq!(decoded.option("clientPin"), Some(false));
        assert_eq!(decoded.option("uv"), None);
        assert_eq!(decoded.versions, r.versions);
    }

    #[test]
    fn attestation_formats_round_trip_as_member_0x16() {
        let r = Response {
            versions: vec!["FIDO_2_1".into()],
            attestation_formats: Some(vec!["packed".into(), "tpm".into()]),
            ..Response::default()
        };
        let bytes = r.encode().unwrap();
        // ... 0x16: ["packed", "tpm"] is the map's last member.
        let mut tail = vec![0x16, 0x82, 0x66];
        tail.extend_from_slice(b"packed");
        tail.push(0x63);
        tail.extend_from_slice(b"tpm");
        assert!(bytes.ends_with(&tail), "{bytes:02x?}");
        assert_eq!(
            Response::decode(&bytes).unwrap().attestation_formats,
            Some(vec!["packed".to_owned(), "tpm".to_owned()])
        );
        let wrong = MapBuilder::new()
            .int(1, Some(texts(&["FIDO_2_1".into()])))
            .int(3, Some(b(&[0; 16])))
            .int(0x16, Some(t("packed")))
            .build();
        assert!(Response::from_value(wrong).is_err());
    }

    #[test]
    fn a_short_aaguid_is_invalid() {
        let v = MapBuilder::new()
            .int(1, Some(texts(&["FIDO_2_0".into()])))
            .int(3, Some(b(&[0; 15])))
            .build();
        assert_eq!(
            Response::from_value(v).unwrap_err(),
            DecodeError::Invalid("aaguid")
        );
    }
}
