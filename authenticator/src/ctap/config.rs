//! authenticatorConfig (CTAP 2.1 §6.11): toggleAlwaysUv and setMinPINLength. Enterprise
//! attestation is not offered, so enableEnterpriseAttestation is refused.

use ciborium::value::Value;

use super::cbor::{Params, ValueExt, encode};
use super::client_pin::permission;
use super::pin_protocol::Protocol;
use super::{Authenticator, CommandResult, StatusCode};

mod sub {
    pub const ENABLE_ENTERPRISE_ATTESTATION: u64 = 0x01;
    pub const TOGGLE_ALWAYS_UV: u64 = 0x02;
    pub const SET_MIN_PIN_LENGTH: u64 = 0x03;
}

/// Most RP IDs that may receive the minimum PIN length (maxRPIDsForSetMinPINLength).
pub const MAX_RP_IDS_FOR_SET_MIN_PIN_LENGTH: usize = 8;

impl Authenticator {
    pub(super) fn authenticator_config(&mut self, body: &[u8]) -> CommandResult {
        let mut p = Params::parse(body)?;
        let sub_command = p.required(0x01)?.ctap_uint()?;
        let sub_params = p.take(0x02);
        let protocol = p.take(0x03).map(Value::ctap_uint).transpose()?;
        let param = p.take(0x04).map(Value::ctap_bytes).transpose()?;
        if !matches!(
            sub_command,
            sub::ENABLE_ENTERPRISE_ATTESTATION | sub::TOGGLE_ALWAYS_UV | sub::SET_MIN_PIN_LENGTH
        ) {
            return Err(StatusCode::InvalidSubcommand);
        }
        if self.uv_protected()? {
            let param = param.ok_or(StatusCode::PuatRequired)?;
            let protocol = Protocol::from_number(protocol.ok_or(StatusCode::MissingParameter)?)?;
            let mut message = vec![0xff; 32];
            message.push(0x0d);
            message.push(u8::try_from(sub_command).map_err(|_| StatusCode::InvalidSubcommand)?);
            if let Some(params) = &sub_params {
                message.extend(encode(params));
            }
            self.verify_token(protocol, &param, &message, permission::ACFG)?;
        }
        match sub_command {
            // passgate has no enterprise attestation certificate: the feature does not exist.
            sub::ENABLE_ENTERPRISE_ATTESTATION => Err(StatusCode::InvalidSubcommand),
            sub::TOGGLE_ALWAYS_UV => {
                let mut state = self.pin.state()?.clone();
                state.always_uv = !state.always_uv;
                tracing::info!(always_uv = state.always_uv, "alwaysUv toggled");
                self.save_pin_state(state)?;
                Ok(Vec::new())
            }
            sub::SET_MIN_PIN_LENGTH => {
                let mut p = match sub_params {
                    Some(v) => Params::from_value(v)?,
                    None => Params::empty(),
                };
                let new_min = p.take(0x01).map(Value::ctap_uint).transpose()?;
                let rp_ids = p
                    .take(0x02)
                    .map(|v| {
                        v.ctap_array()?
                            .into_iter()
                            .map(Value::ctap_text)
                            .collect::<Result<Vec<_>, _>>()
                    })
                    .transpose()?;
                let force = p
                    .take(0x03)
                    .map(Value::ctap_bool)
                    .transpose()?
                    .unwrap_or(false);
                let mut state = self.pin.state()?.clone();
                if let Some(new_min) = new_min {
                    let new_min =
                        u8::try_from(new_min).map_err(|_| StatusCode::PinPolicyViolation)?;
                    if new_min < state.min_length || new_min > 63 {
                        return Err(StatusCode::PinPolicyViolation);
                    }
                    if state.is_set() && new_min > state.min_length {
                        state.force_change = true;
                    }
                    state.min_length = new_min;
                }
                if let Some(rp_ids) = rp_ids {
                    if rp_ids.len() > MAX_RP_IDS_FOR_SET_MIN_PIN_LENGTH {
                        return Err(StatusCode::PinPolicyViolation);
                    }
                    state.min_pin_length_rp_ids = rp_ids;
                }
                if force {
                    if !state.is_set() {
                        return Err(StatusCode::PinNotSet);
                    }
                    state.force_change = true;
                }
                self.save_pin_state(state)?;
                Ok(Vec::new())
            }
            _ => Err(StatusCode::InvalidSubcommand),
        }
    }
}
