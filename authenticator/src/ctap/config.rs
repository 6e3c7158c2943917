//! authenticatorConfig (CTAP 2.1 §6.11): toggleAlwaysUv and setMinPINLength. Enterprise
//! attestation is not offered, so enableEnterpriseAttestation is refused.

use passgate_proto::ctap::config::{Request, SetMinPinLength, SubCommand};

use super::cbor::encode;
use super::client_pin::permission;
use super::pin_protocol::Protocol;
use super::{Authenticator, CommandResult, StatusCode};

/// Most RP IDs that may receive the minimum PIN length (maxRPIDsForSetMinPINLength).
pub const MAX_RP_IDS_FOR_SET_MIN_PIN_LENGTH: usize = 8;

impl Authenticator {
    pub(super) fn authenticator_config(&mut self, body: &[u8]) -> CommandResult {
        let Request {
            sub_command,
            params: sub_params,
            pin_uv_auth,
        } = Request::decode_strict(body)?;
        if !matches!(
            sub_command,
            SubCommand::ENABLE_ENTERPRISE_ATTESTATION
                | SubCommand::TOGGLE_ALWAYS_UV
                | SubCommand::SET_MIN_PIN_LENGTH
        ) {
            return Err(StatusCode::InvalidSubcommand);
        }
        if self.uv_protected()? {
            let auth = pin_uv_auth.ok_or(StatusCode::PuatRequired)?;
            let protocol =
                Protocol::from_number(auth.protocol.ok_or(StatusCode::MissingParameter)?)?;
            let mut message = vec![0xff; 32];
            message.push(0x0d);
            message.push(u8::try_from(sub_command.0).map_err(|_| StatusCode::InvalidSubcommand)?);
            if let Some(params) = &sub_params {
                message.extend(encode(params));
            }
            self.verify_token(protocol, &auth.param, &message, permission::ACFG)?;
        }
        match sub_command {
            // passgate has no enterprise attestation certificate: the feature does not exist.
            SubCommand::ENABLE_ENTERPRISE_ATTESTATION => Err(StatusCode::InvalidSubcommand),
            SubCommand::TOGGLE_ALWAYS_UV => {
                let mut state = self.pin.state()?.clone();
                state.always_uv = !state.always_uv;
                tracing::info!(always_uv = state.always_uv, "alwaysUv toggled");
                self.save_pin_state(state)?;
                Ok(Vec::new())
            }
            SubCommand::SET_MIN_PIN_LENGTH => {
                let SetMinPinLength {
                    new_min_pin_length: new_min,
                    min_pin_length_rp_ids: rp_ids,
                    force_change_pin,
                } = SetMinPinLength::decode_strict(sub_params)?;
                let force = force_change_pin.unwrap_or(false);
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
