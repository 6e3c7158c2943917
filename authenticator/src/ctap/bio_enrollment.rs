//! authenticatorBioEnrollment (CTAP 2.1 §6.7): fingerprint enrollment, listing, naming and
//! removal, on the user verifier's sensor (fprintd) through the
//! [`BioEnrollment`](crate::api::bio_enrollment::BioEnrollment) seam. Friendly names are ours:
//! they live in the state store, keyed by template ID.

use std::time::Duration;

use ciborium::value::Value;

use super::cbor::{Params, ValueExt, decode_canonical, encode, int_map};
use super::client_pin::permission;
use super::pin_protocol::Protocol;
use super::{Authenticator, CommandResult, StatusCode};
use crate::api::bio_enrollment::{BioEnrollment, BioError};
use crate::api::user_verifier::Interaction;

mod sub {
    pub const ENROLL_BEGIN: u64 = 0x01;
    pub const ENROLL_CAPTURE_NEXT_SAMPLE: u64 = 0x02;
    pub const CANCEL_CURRENT_ENROLLMENT: u64 = 0x03;
    pub const ENUMERATE_ENROLLMENTS: u64 = 0x04;
    pub const SET_FRIENDLY_NAME: u64 = 0x05;
    pub const REMOVE_ENROLLMENT: u64 = 0x06;
    pub const GET_FINGERPRINT_SENSOR_INFO: u64 = 0x07;
}

/// The only modality: fingerprint.
const MODALITY_FINGERPRINT: u64 = 0x01;
/// fingerprintKind: a touch sensor.
const FINGERPRINT_KIND_TOUCH: u64 = 0x01;
/// Longest friendly name, in bytes (maxTemplateFriendlyName).
pub const MAX_FRIENDLY_NAME: usize = 64;
/// How long one sample is waited for when the platform gives no timeout.
const DEFAULT_SAMPLE_TIMEOUT: Duration = Duration::from_secs(30);
/// The state-store name of the friendly names.
const NAMES_STATE: &str = "bio-names";

fn bio_status(err: BioError) -> StatusCode {
    match err {
        BioError::NoEnrollment | BioError::UnknownTemplate => StatusCode::InvalidOption,
        BioError::Full => StatusCode::FpDatabaseFull,
        BioError::Timeout => StatusCode::UserActionTimeout,
        BioError::Cancelled => StatusCode::KeepaliveCancel,
        BioError::Unavailable(reason) | BioError::Failed(reason) => {
            tracing::warn!(reason, "fingerprint enrollment failed");
            StatusCode::Other
        }
    }
}

impl Authenticator {
    /// Whether the user verifier can enroll fingerprints (getInfo `bioEnroll` is then present).
    pub(super) fn bio_enrollment_available(&mut self) -> bool {
        self.env.user.status().available && self.env.user.bio_enrollment().is_some()
    }

    fn enroller(&mut self) -> Result<&mut dyn BioEnrollment, StatusCode> {
        if !self.env.user.status().available {
            return Err(StatusCode::InvalidCommand);
        }
        self.env
            .user
            .bio_enrollment()
            .ok_or(StatusCode::InvalidCommand)
    }

    pub(super) fn bio_enrollment(
        &mut self,
        body: &[u8],
        interaction: &Interaction,
    ) -> CommandResult {
        let mut p = Params::parse(body)?;
        let modality = p.take(0x01).map(Value::ctap_uint).transpose()?;
        let sub_command = p.take(0x02).map(Value::ctap_uint).transpose()?;
        let sub_params = p.take(0x03);
        let protocol = p.take(0x04).map(Value::ctap_uint).transpose()?;
        let param = p.take(0x05).map(Value::ctap_bytes).transpose()?;
        let get_modality = p.take(0x06).map(Value::ctap_bool).transpose()?;
        self.enroller()?;
        if get_modality == Some(true) {
            return Ok(encode(&int_map([(
                0x01,
                Some(Value::Integer(MODALITY_FINGERPRINT.into())),
            )])));
        }
        let modality = modality.ok_or(StatusCode::MissingParameter)?;
        if modality != MODALITY_FINGERPRINT {
            return Err(StatusCode::InvalidOption);
        }
        let sub_command = sub_command.ok_or(StatusCode::MissingParameter)?;
        match sub_command {
            sub::GET_FINGERPRINT_SENSOR_INFO => {
                let samples = self.enroller()?.max_capture_samples();
                return Ok(encode(&int_map([
                    (0x01, Some(Value::Integer(MODALITY_FINGERPRINT.into()))),
                    (0x02, Some(Value::Integer(FINGERPRINT_KIND_TOUCH.into()))),
                    (0x03, Some(Value::Integer(samples.into()))),
                    (0x08, Some(Value::Integer(MAX_FRIENDLY_NAME.into()))),
                ])));
            }
            sub::CANCEL_CURRENT_ENROLLMENT => {
                self.enroller()?.enroll_cancel();
                return Ok(Vec::new());
            }
            sub::ENROLL_BEGIN
            | sub::ENROLL_CAPTURE_NEXT_SAMPLE
            | sub::ENUMERATE_ENROLLMENTS
            | sub::SET_FRIENDLY_NAME
            | sub::REMOVE_ENROLLMENT => {}
            _ => return Err(StatusCode::InvalidSubcommand),
        }
        // Everything else changes or reveals enrollments: a token with the `be` permission,
        // over modality || subCommand || subCommandParams.
        let param = param.ok_or(StatusCode::PuatRequired)?;
        let protocol = Protocol::from_number(protocol.ok_or(StatusCode::MissingParameter)?)?;
        let mut message = vec![
            u8::try_from(modality).map_err(|_| StatusCode::InvalidOption)?,
            u8::try_from(sub_command).map_err(|_| StatusCode::InvalidSubcommand)?,
        ];
        if let Some(params) = &sub_params {
            message.extend(encode(params));
        }
        self.verify_token(protocol, &param, &message, permission::BE)?;

        let mut params = match sub_params {
            Some(v) => Params::from_value(v)?,
            None => Params::empty(),
        };
        let template_id = params.take(0x01).map(Value::ctap_bytes).transpose()?;
        let friendly_name = params.take(0x02).map(Value::ctap_text).transpose()?;
        let timeout = params
            .take(0x03)
            .map(Value::ctap_uint)
            .transpose()?
            .map_or(DEFAULT_SAMPLE_TIMEOUT, Duration::from_millis);
        match sub_command {
            sub::ENROLL_BEGIN => {
                let (template, sample) = self
                    .enroller()?
                    .enroll_begin(timeout, interaction)
                    .map_err(bio_status)?;
                Ok(encode(&int_map([
                    (0x04, Some(Value::Bytes(template))),
                    (0x05, Some(Value::Integer(sample.status.code().into()))),
                    (0x06, Some(Value::Integer(sample.remaining.into()))),
                ])))
            }
            sub::ENROLL_CAPTURE_NEXT_SAMPLE => {
                let template = template_id.ok_or(StatusCode::MissingParameter)?;
                let sample = self
                    .enroller()?
                    .enroll_capture_next(&template, timeout, interaction)
                    .map_err(bio_status)?;
                Ok(encode(&int_map([
                    (0x05, Some(Value::Integer(sample.status.code().into()))),
                    (0x06, Some(Value::Integer(sample.remaining.into()))),
                ])))
            }
            sub::ENUMERATE_ENROLLMENTS => {
                let templates = self.enroller()?.enrollments().map_err(bio_status)?;
                if templates.is_empty() {
                    return Err(StatusCode::InvalidOption);
                }
                let names = self.friendly_names()?;
                let infos = templates
                    .into_iter()
                    .map(|id| {
                        // Unnamed templates get an empty name rather than none: python-fido2
                        // (and so its users) expect the member.
                        let name = names
                            .iter()
                            .find(|(named, _)| *named == id)
                            .map_or_else(String::new, |(_, name)| name.clone());
                        int_map([
                            (0x01, Some(Value::Bytes(id))),
                            (0x02, Some(Value::Text(name))),
                        ])
                    })
                    .collect();
                Ok(encode(&int_map([(0x07, Some(Value::Array(infos)))])))
            }
            sub::SET_FRIENDLY_NAME => {
                let template = template_id.ok_or(StatusCode::MissingParameter)?;
                let name = friendly_name.ok_or(StatusCode::MissingParameter)?;
                if name.len() > MAX_FRIENDLY_NAME {
                    return Err(StatusCode::InvalidParameter);
                }
                let templates = self.enroller()?.enrollments().map_err(bio_status)?;
                if !templates.contains(&template) {
                    return Err(StatusCode::InvalidOption);
                }
                let mut names = self.friendly_names()?;
                names.retain(|(id, _)| *id != template);
                names.push((template, name));
                self.save_friendly_names(&names)?;
                Ok(Vec::new())
            }
            sub::REMOVE_ENROLLMENT => {
                let template = template_id.ok_or(StatusCode::MissingParameter)?;
                self.enroller()?.remove(&template).map_err(bio_status)?;
                let mut names = self.friendly_names()?;
                let before = names.len();
                names.retain(|(id, _)| *id != template);
                if names.len() != before {
                    self.save_friendly_names(&names)?;
                }
                Ok(Vec::new())
            }
            _ => Err(StatusCode::InvalidSubcommand),
        }
    }

    /// The stored friendly names: `[[templateId, name], ...]` in the state store.
    fn friendly_names(&mut self) -> Result<Vec<(Vec<u8>, String)>, StatusCode> {
        let stored = self.env.state.load(NAMES_STATE).map_err(|e| {
            tracing::error!(error = %e, "could not read the fingerprint names");
            StatusCode::Other
        })?;
        let Some(bytes) = stored else {
            return Ok(Vec::new());
        };
        let Ok(Value::Array(entries)) = decode_canonical(&bytes) else {
            tracing::error!("the stored fingerprint names are not a CBOR array");
            return Err(StatusCode::Other);
        };
        let mut names = Vec::with_capacity(entries.len());
        for entry in entries {
            let Value::Array(pair) = entry else {
                return Err(StatusCode::Other);
            };
            let mut pair = pair.into_iter();
            let (Some(Value::Bytes(id)), Some(Value::Text(name))) = (pair.next(), pair.next())
            else {
                return Err(StatusCode::Other);
            };
            names.push((id, name));
        }
        Ok(names)
    }

    fn save_friendly_names(&mut self, names: &[(Vec<u8>, String)]) -> Result<(), StatusCode> {
        let value = Value::Array(
            names
                .iter()
                .map(|(id, name)| {
                    Value::Array(vec![Value::Bytes(id.clone()), Value::Text(name.clone())])
                })
                .collect(),
        );
        self.env
            .state
            .save(NAMES_STATE, &encode(&value))
            .map_err(|e| {
                tracing::error!(error = %e, "could not store the fingerprint names");
                StatusCode::Other
            })
    }
}
