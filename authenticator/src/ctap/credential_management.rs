//! authenticatorCredentialManagement (CTAP 2.1 §6.8): metadata, enumeration of relying
//! parties and their discoverable credentials, deletion and user-information updates. Every
//! state-revealing subcommand needs a pinUvAuthToken with the `cm` permission.

use ciborium::value::Value;

use passgate_proto::ctap::credential_management::{Params, Request, SubCommand};

use super::cbor::{encode, int, int_map, text_map, uint};
use super::data::{MAX_NAME_LENGTH, cose_public_key, rp_id_hash, truncate_utf8};
use super::pin_protocol::Protocol;
use super::{Authenticator, CommandResult, StatusCode, store_error_status};
use crate::api::credential_store::CredentialRecord;

/// What an enumeration still has to return.
pub enum Enumeration {
    /// Relying parties: (RP ID, name).
    RelyingParties(std::vec::IntoIter<(String, Option<String>)>),
    /// Credentials of one RP.
    Credentials(std::vec::IntoIter<CredentialRecord>),
}

impl std::fmt::Debug for Enumeration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::RelyingParties(it) => write!(f, "RelyingParties({} left)", it.len()),
            Self::Credentials(it) => write!(f, "Credentials({} left)", it.len()),
        }
    }
}

fn rp_response(rp_id: &str, name: Option<&str>, total: Option<usize>) -> Vec<u8> {
    encode(&int_map([
        (
            3,
            Some(text_map([
                ("id", Some(Value::Text(rp_id.to_owned()))),
                ("name", name.map(|n| Value::Text(n.to_owned()))),
            ])),
        ),
        (4, Some(Value::Bytes(rp_id_hash(rp_id).to_vec()))),
        (5, total.map(uint)),
    ]))
}

fn credential_response(
    record: &CredentialRecord,
    total: Option<usize>,
) -> Result<Vec<u8>, StatusCode> {
    let public_key = super::cbor::decode_canonical(&cose_public_key(&record.public_key))?;
    Ok(encode(&int_map([
        (
            6,
            Some(text_map([
                ("id", Some(Value::Bytes(record.user_id.clone()))),
                ("name", record.user_name.clone().map(Value::Text)),
                (
                    "displayName",
                    record.user_display_name.clone().map(Value::Text),
                ),
            ])),
        ),
        (
            7,
            Some(text_map([
                ("id", Some(Value::Bytes(record.id.clone()))),
                ("type", Some(Value::Text("public-key".into()))),
            ])),
        ),
        (8, Some(public_key)),
        (9, total.map(uint)),
        (10, Some(int(i64::from(record.cred_protect)))),
    ])))
}

impl Authenticator {
    pub(super) fn credential_management(&mut self, body: &[u8]) -> CommandResult {
        let Request {
            sub_command,
            params: sub_params,
            pin_uv_auth,
            ..
        } = Request::decode_strict(body)?;

        // Continuations need no token (§6.8.3, §6.8.5).
        match sub_command {
            SubCommand::ENUMERATE_RPS_NEXT => {
                let Some(Enumeration::RelyingParties(it)) = self.enumeration.as_mut() else {
                    return Err(StatusCode::NotAllowed);
                };
                let (rp_id, name) = it.next().ok_or(StatusCode::NotAllowed)?;
                return Ok(rp_response(&rp_id, name.as_deref(), None));
            }
            SubCommand::ENUMERATE_CREDENTIALS_NEXT => {
                let Some(Enumeration::Credentials(it)) = self.enumeration.as_mut() else {
                    return Err(StatusCode::NotAllowed);
                };
                let record = it.next().ok_or(StatusCode::NotAllowed)?;
                return credential_response(&record, None);
            }
            SubCommand::GET_CREDS_METADATA
            | SubCommand::ENUMERATE_RPS_BEGIN
            | SubCommand::ENUMERATE_CREDENTIALS_BEGIN
            | SubCommand::DELETE_CREDENTIAL
            | SubCommand::UPDATE_USER_INFORMATION => {}
            _ => return Err(StatusCode::InvalidSubcommand),
        }
        self.enumeration = None;

        let auth = pin_uv_auth.ok_or(StatusCode::PuatRequired)?;
        let protocol = Protocol::from_number(auth.protocol.ok_or(StatusCode::MissingParameter)?)?;
        let mut message =
            vec![u8::try_from(sub_command.0).map_err(|_| StatusCode::InvalidSubcommand)?];
        if let Some(params) = &sub_params {
            message.extend(encode(params));
        }
        let token_rp = self.verify_management_token(protocol, &auth.param, &message)?;
        let sub_params = Params::decode_strict(sub_params, sub_command)?;
        let check_rp = |rp_id: &str| match &token_rp {
            Some(bound) if bound != rp_id => Err(StatusCode::PinAuthInvalid),
            _ => Ok(()),
        };

        match sub_command {
            SubCommand::GET_CREDS_METADATA => {
                if token_rp.is_some() {
                    return Err(StatusCode::PinAuthInvalid);
                }
                let existing = self
                    .env
                    .credentials
                    .discoverable_count()
                    .map_err(store_error_status)?;
                let remaining = self
                    .env
                    .credentials
                    .remaining_capacity()
                    .map_err(store_error_status)?;
                Ok(encode(&int_map([
                    (1, Some(uint(existing))),
                    (2, Some(uint(remaining))),
                ])))
            }
            SubCommand::ENUMERATE_RPS_BEGIN => {
                if token_rp.is_some() {
                    return Err(StatusCode::PinAuthInvalid);
                }
                let rps: Vec<(String, Option<String>)> = self
                    .env
                    .credentials
                    .relying_parties()
                    .map_err(store_error_status)?
                    .into_iter()
                    .map(|(id, name, _)| (id, name))
                    .collect();
                let total = rps.len();
                let mut it = rps.into_iter();
                let (rp_id, name) = it.next().ok_or(StatusCode::NoCredentials)?;
                if total > 1 {
                    self.enumeration = Some(Enumeration::RelyingParties(it));
                }
                Ok(rp_response(&rp_id, name.as_deref(), Some(total)))
            }
            SubCommand::ENUMERATE_CREDENTIALS_BEGIN => {
                let hash = sub_params.rp_id_hash.ok_or(StatusCode::MissingParameter)?;
                let rp_id = self
                    .env
                    .credentials
                    .relying_parties()
                    .map_err(store_error_status)?
                    .into_iter()
                    .map(|(id, _, _)| id)
                    .find(|id| rp_id_hash(id).as_slice() == hash.as_slice())
                    .ok_or(StatusCode::NoCredentials)?;
                check_rp(&rp_id)?;
                let records = self
                    .env
                    .credentials
                    .discoverable(&rp_id)
                    .map_err(store_error_status)?;
                let total = records.len();
                let mut it = records.into_iter();
                let first = it.next().ok_or(StatusCode::NoCredentials)?;
                if total > 1 {
                    self.enumeration = Some(Enumeration::Credentials(it));
                }
                credential_response(&first, Some(total))
            }
            SubCommand::DELETE_CREDENTIAL => {
                let id = sub_params
                    .credential_id
                    .ok_or(StatusCode::MissingParameter)?
                    .id;
                let record = self.find_discoverable(&id)?;
                check_rp(&record.rp_id)?;
                self.env
                    .credentials
                    .delete(&id)
                    .map_err(store_error_status)?;
                let _ = self.env.key_store.delete_key(&record.key);
                if let Some(keys) = &record.hmac_secret {
                    let _ = self.env.key_store.delete_cred_random_with_uv(&keys.with_uv);
                }
                tracing::info!(rp = %record.rp_id, "credential deleted by credential management");
                Ok(Vec::new())
            }
            SubCommand::UPDATE_USER_INFORMATION => {
                let (Some(credential), Some(user)) = (sub_params.credential_id, sub_params.user)
                else {
                    return Err(StatusCode::MissingParameter);
                };
                let id = credential.id;
                let mut record = self.find_discoverable(&id)?;
                check_rp(&record.rp_id)?;
                if user.id != record.user_id {
                    return Err(StatusCode::InvalidParameter);
                }
                record.user_name = user.name.map(|n| truncate_utf8(n, MAX_NAME_LENGTH));
                record.user_display_name =
                    user.display_name.map(|n| truncate_utf8(n, MAX_NAME_LENGTH));
                self.env
                    .credentials
                    .update(&record)
                    .map_err(store_error_status)?;
                Ok(Vec::new())
            }
            _ => Err(StatusCode::InvalidSubcommand),
        }
    }

    /// Finds a discoverable credential by ID across relying parties.
    fn find_discoverable(&mut self, id: &[u8]) -> Result<CredentialRecord, StatusCode> {
        let rps = self
            .env
            .credentials
            .relying_parties()
            .map_err(store_error_status)?;
        for (rp_id, _, _) in rps {
            if let Some(record) = self
                .env
                .credentials
                .get(&rp_id, id)
                .map_err(store_error_status)?
            {
                if record.discoverable {
                    return Ok(record);
                }
            }
        }
        Err(StatusCode::NoCredentials)
    }
}
