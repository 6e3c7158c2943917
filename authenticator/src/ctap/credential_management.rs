//! authenticatorCredentialManagement (CTAP 2.1 §6.8): metadata, enumeration of relying
//! parties and their discoverable credentials, deletion and user-information updates. Every
//! state-revealing subcommand needs a pinUvAuthToken with the `cm` permission.

use ciborium::value::Value;

use super::cbor::{Params, TextMap, ValueExt, encode, int, int_map, text_map, uint};
use super::data::{MAX_NAME_LENGTH, cose_public_key, rp_id_hash, truncate_utf8};
use super::pin_protocol::Protocol;
use super::{Authenticator, CommandResult, StatusCode, store_error_status};
use crate::api::credential_store::CredentialRecord;

mod sub {
    pub const GET_CREDS_METADATA: u64 = 0x01;
    pub const ENUMERATE_RPS_BEGIN: u64 = 0x02;
    pub const ENUMERATE_RPS_NEXT: u64 = 0x03;
    pub const ENUMERATE_CREDENTIALS_BEGIN: u64 = 0x04;
    pub const ENUMERATE_CREDENTIALS_NEXT: u64 = 0x05;
    pub const DELETE_CREDENTIAL: u64 = 0x06;
    pub const UPDATE_USER_INFORMATION: u64 = 0x07;
}

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

fn descriptor_id(value: Value) -> Result<Vec<u8>, StatusCode> {
    let mut map = TextMap::new(value.ctap_map()?)?;
    let id = map
        .take("id")
        .ok_or(StatusCode::MissingParameter)?
        .ctap_bytes()?;
    if let Some(kind) = map.take("type") {
        kind.ctap_text()?;
    }
    Ok(id)
}

impl Authenticator {
    pub(super) fn credential_management(&mut self, body: &[u8]) -> CommandResult {
        let mut p = Params::parse(body)?;
        let sub_command = p.required(0x01)?.ctap_uint()?;
        let sub_params = p.take(0x02);
        let protocol = p.take(0x03).map(Value::ctap_uint).transpose()?;
        let param = p.take(0x04).map(Value::ctap_bytes).transpose()?;

        // Continuations need no token (§6.8.3, §6.8.5).
        match sub_command {
            sub::ENUMERATE_RPS_NEXT => {
                let Some(Enumeration::RelyingParties(it)) = self.enumeration.as_mut() else {
                    return Err(StatusCode::NotAllowed);
                };
                let (rp_id, name) = it.next().ok_or(StatusCode::NotAllowed)?;
                return Ok(rp_response(&rp_id, name.as_deref(), None));
            }
            sub::ENUMERATE_CREDENTIALS_NEXT => {
                let Some(Enumeration::Credentials(it)) = self.enumeration.as_mut() else {
                    return Err(StatusCode::NotAllowed);
                };
                let record = it.next().ok_or(StatusCode::NotAllowed)?;
                return credential_response(&record, None);
            }
            sub::GET_CREDS_METADATA
            | sub::ENUMERATE_RPS_BEGIN
            | sub::ENUMERATE_CREDENTIALS_BEGIN
            | sub::DELETE_CREDENTIAL
            | sub::UPDATE_USER_INFORMATION => {}
            _ => return Err(StatusCode::InvalidSubcommand),
        }
        self.enumeration = None;

        let param = param.ok_or(StatusCode::PuatRequired)?;
        let protocol = Protocol::from_number(protocol.ok_or(StatusCode::MissingParameter)?)?;
        let mut message =
            vec![u8::try_from(sub_command).map_err(|_| StatusCode::InvalidSubcommand)?];
        if let Some(params) = &sub_params {
            message.extend(encode(params));
        }
        let token_rp = self.verify_management_token(protocol, &param, &message)?;
        let mut sub_params = match sub_params {
            Some(v) => Params::from_value(v)?,
            None => Params::empty(),
        };
        let check_rp = |rp_id: &str| match &token_rp {
            Some(bound) if bound != rp_id => Err(StatusCode::PinAuthInvalid),
            _ => Ok(()),
        };

        match sub_command {
            sub::GET_CREDS_METADATA => {
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
            sub::ENUMERATE_RPS_BEGIN => {
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
            sub::ENUMERATE_CREDENTIALS_BEGIN => {
                let hash = sub_params.required(0x01)?.ctap_bytes()?;
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
            sub::DELETE_CREDENTIAL => {
                let id = descriptor_id(sub_params.required(0x02)?)?;
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
            sub::UPDATE_USER_INFORMATION => {
                let id = descriptor_id(sub_params.required(0x02)?)?;
                let user = passgate_proto::ctap::strict::user_entity(sub_params.required(0x03)?)?;
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
