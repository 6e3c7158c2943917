//! The relying party: ceremonies over the store, independent of HTTP.
//!
//! Registration runs on webauthn-rs (attestation formats, policy); authentication runs on this
//! crate's aws-lc-rs verifier ([`crate::verify`]). Ceremony state lives in the store keyed by the
//! challenge, so any instance can finish what another began.

use std::time::Duration;

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use webauthn_rs_core::WebauthnCore;
use webauthn_rs_core::error::WebauthnError;
use webauthn_rs_core::proto::{
    AttestationConveyancePreference, RegisterPublicKeyCredential, RegistrationState,
    UserVerificationPolicy,
};

use crate::aaguid::authenticator_name;
use crate::b64;
use crate::config::RpConfig;
use crate::cose::CredentialPublicKey;
use crate::error::ApiError;
use crate::receipts::{Receipt, ReceiptAssertion, ReceiptSigner, action_challenge};
use crate::store::{
    CeremonyRow, CredentialRow, ReceiptRow, SessionRow, Store, UserRow, now_millis,
};
use crate::verify::{
    AssertionExpectation, AssertionVerdict, AuthenticationResponseJson, CounterCheck,
    StoredCredential, client_data_summary, verify_assertion,
};

/// What an authentication ceremony is for; the finish endpoint must match the begin endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthPurpose {
    /// Sign in (with or without a username).
    Login,
    /// Re-authenticate the signed-in user (step-up before a sensitive change).
    Reauth,
    /// Approve a signed action.
    Action,
}

#[derive(Debug, Serialize, Deserialize)]
struct RegistrationCeremony {
    state: RegistrationState,
    user_id: String,
    user_name: String,
    display_name: String,
    new_user: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct AuthenticationCeremony {
    purpose: AuthPurpose,
    require_uv: bool,
    /// For `Reauth`/`Action`: the session that asked.
    session: Option<String>,
    /// For `Action`: the payload being approved.
    payload: Option<String>,
}

/// A signed-in user, as the API returns it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    /// User handle (base64url).
    pub id: String,
    /// Username.
    pub name: String,
    /// Display name.
    pub display_name: String,
}

impl From<&UserRow> for UserView {
    fn from(u: &UserRow) -> Self {
        Self {
            id: u.id.clone(),
            name: u.name.clone(),
            display_name: u.display_name.clone(),
        }
    }
}

/// A credential as the account page shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialView {
    /// Credential ID (base64url).
    pub id: String,
    /// The user's name for it.
    pub name: String,
    /// COSE algorithm.
    pub algorithm: i64,
    /// Created, unix ms.
    pub created_at: i64,
    /// Last used, unix ms.
    pub last_used_at: Option<i64>,
    /// Backup eligible (a synced passkey) — "multi-device" vs "single-device".
    pub backup_eligible: bool,
    /// Currently backed up.
    pub backup_state: bool,
    /// `multiDevice` or `singleDevice`.
    pub device_type: &'static str,
    /// Transports the authenticator reported.
    pub transports: Vec<String>,
    /// The AAGUID.
    pub aaguid: String,
    /// A name for the authenticator model, from its AAGUID.
    pub authenticator: String,
    /// The signature counter.
    pub sign_count: i64,
    /// Assertions seen whose counter did not increase.
    pub counter_regressions: i64,
}

impl From<&CredentialRow> for CredentialView {
    fn from(c: &CredentialRow) -> Self {
        Self {
            id: c.id.clone(),
            name: c.name.clone(),
            algorithm: c.algorithm,
            created_at: c.created_at,
            last_used_at: c.last_used_at,
            backup_eligible: c.backup_eligible,
            backup_state: c.backup_state,
            device_type: if c.backup_eligible {
                "multiDevice"
            } else {
                "singleDevice"
            },
            transports: serde_json::from_str(&c.transports).unwrap_or_default(),
            aaguid: c.aaguid.clone(),
            authenticator: authenticator_name(&c.aaguid).to_owned(),
            sign_count: c.sign_count,
            counter_regressions: c.counter_regressions,
        }
    }
}

/// The result of a finished authentication ceremony.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// Who.
    pub user: UserRow,
    /// With what.
    pub credential: CredentialRow,
    /// The verifier's verdict.
    pub verdict: AssertionVerdict,
    /// For a sign-in: the new session's cookie token.
    pub session_token: Option<String>,
    /// For an action: the signed receipt.
    pub receipt: Option<SignedReceipt>,
}

/// A receipt with the exact JSON it signs.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignedReceipt {
    /// The receipt.
    pub receipt: Receipt,
    /// The exact string the signature covers.
    pub receipt_json: String,
    /// ECDSA P-256 SHA-256 signature, DER, base64url.
    pub signature: String,
    /// The signing key's ID.
    pub key_id: String,
}

/// The relying party.
#[derive(Debug)]
pub struct RelyingParty {
    config: RpConfig,
    store: Store,
    webauthn: WebauthnCore,
    signer: ReceiptSigner,
    rng: SystemRandom,
}

/// Longest username accepted.
const MAX_NAME: usize = 64;

fn random<const N: usize>(rng: &SystemRandom) -> Result<[u8; N], ApiError> {
    let mut out = [0u8; N];
    rng.fill(&mut out).map_err(ApiError::internal)?;
    Ok(out)
}

/// SHA-256 of a session token, base64url: what the store keeps instead of the token.
pub fn token_hash(token: &str) -> String {
    b64::encode(digest(&SHA256, token.as_bytes()).as_ref())
}

fn check_name(field: &'static str, name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty()
        || name.chars().count() > MAX_NAME
        || name.chars().any(char::is_control)
    {
        return Err(ApiError::bad_request(
            "invalid_username",
            format!("{field} must be 1 to {MAX_NAME} printable characters"),
        ));
    }
    Ok(())
}

fn registration_error(err: WebauthnError) -> ApiError {
    use WebauthnError as E;
    let (code, message): (&'static str, String) = match &err {
        E::InvalidClientDataType => (
            "wrong_ceremony_type",
            "clientDataJSON.type is not webauthn.create".into(),
        ),
        E::MismatchedChallenge => ("challenge_mismatch", "the challenge does not match".into()),
        E::InvalidRPOrigin => ("origin_not_allowed", "the origin is not allowed".into()),
        E::InvalidRPIDHash => (
            "rp_id_hash_mismatch",
            "the RP ID hash does not match".into(),
        ),
        E::UserNotPresent => (
            "user_not_present",
            "the user was not present (UP flag clear)".into(),
        ),
        E::UserNotVerified => (
            "user_verification_missing",
            "user verification was required and did not happen (UV flag clear)".into(),
        ),
        E::CredentialExcludedFromRequest => (
            "credential_excluded",
            "this authenticator already holds a credential for the account".into(),
        ),
        E::CredentialAlteredAlgFromRequest | E::COSEKeyInvalidAlgorithm => (
            "unsupported_algorithm",
            "the credential uses an algorithm that was not offered".into(),
        ),
        E::CredentialCrossOrigin => (
            "cross_origin_not_allowed",
            "cross-origin registration is not allowed".into(),
        ),
        E::ParseCBORFailure(_)
        | E::ParseNOMFailure
        | E::ParseInsufficientBytesAvailable
        | E::ParseJSONFailure(_)
        | E::MissingAttestationCredentialData => (
            "malformed_response",
            format!("the attestation could not be parsed: {err}"),
        ),
        _ if format!("{err:?}").starts_with("Attestation")
            || format!("{err:?}").contains("Signature") =>
        {
            (
                "attestation_invalid",
                format!("the attestation statement is invalid: {err}"),
            )
        }
        _ => ("registration_rejected", err.to_string()),
    };
    ApiError::bad_request(code, message)
}

/// What the attestation object's authenticator data says about the new credential.
struct AttestedCredential {
    flags: u8,
    sign_count: u32,
    aaguid: [u8; 16],
    credential_id: Vec<u8>,
    public_key_cose: Vec<u8>,
}

fn parse_attestation_object(bytes: &[u8]) -> Result<(String, AttestedCredential), ApiError> {
    let malformed = |what: &str| {
        ApiError::bad_request("malformed_response", format!("attestationObject: {what}"))
    };
    let value: ciborium::Value = ciborium::from_reader(bytes).map_err(|_| malformed("not CBOR"))?;
    let ciborium::Value::Map(entries) = value else {
        return Err(malformed("not a map"));
    };
    let field = |name: &str| {
        entries.iter().find_map(|(k, v)| match k {
            ciborium::Value::Text(t) if t == name => Some(v),
            _ => None,
        })
    };
    let fmt = match field("fmt") {
        Some(ciborium::Value::Text(t)) => t.clone(),
        _ => return Err(malformed("fmt missing")),
    };
    let auth_data = match field("authData") {
        Some(ciborium::Value::Bytes(b)) => b,
        _ => return Err(malformed("authData missing")),
    };
    if auth_data.len() < 37 + 18 || auth_data[32] & 0x40 == 0 {
        return Err(malformed("no attested credential data"));
    }
    let flags = auth_data[32];
    let sign_count =
        u32::from_be_bytes([auth_data[33], auth_data[34], auth_data[35], auth_data[36]]);
    let mut aaguid = [0u8; 16];
    aaguid.copy_from_slice(&auth_data[37..53]);
    let id_len = usize::from(u16::from_be_bytes([auth_data[53], auth_data[54]]));
    let id_end = 55 + id_len;
    let credential_id = auth_data
        .get(55..id_end)
        .ok_or_else(|| malformed("credential ID truncated"))?
        .to_vec();
    let rest = auth_data
        .get(id_end..)
        .ok_or_else(|| malformed("public key missing"))?;
    let mut reader = rest;
    let _key: ciborium::Value =
        ciborium::from_reader(&mut reader).map_err(|_| malformed("public key is not CBOR"))?;
    let used = rest.len() - reader.len();
    Ok((
        fmt,
        AttestedCredential {
            flags,
            sign_count,
            aaguid,
            credential_id,
            public_key_cose: rest[..used].to_vec(),
        },
    ))
}

fn hyphenated(aaguid: &[u8; 16]) -> String {
    let hex: String = aaguid.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

impl RelyingParty {
    /// Builds the relying party over an open store.
    pub fn new(config: RpConfig, store: Store, signer: ReceiptSigner) -> Result<Self, ApiError> {
        let origins = config
            .origins
            .iter()
            .map(|o| url::Url::parse(o))
            .collect::<Result<Vec<_>, _>>()
            .map_err(ApiError::internal)?;
        let webauthn = WebauthnCore::new_unsafe_experts_only(
            &config.rp_name,
            &config.rp_id,
            origins,
            Duration::from_secs(config.challenge_ttl_secs),
            Some(false),
            Some(false),
        );
        Ok(Self {
            config,
            store,
            webauthn,
            signer,
            rng: SystemRandom::new(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &RpConfig {
        &self.config
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The receipt signer.
    pub fn signer(&self) -> &ReceiptSigner {
        &self.signer
    }

    fn expires(&self) -> i64 {
        now_millis().saturating_add(
            i64::try_from(self.config.challenge_ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
        )
    }

    fn timeout_ms(&self) -> u64 {
        self.config.challenge_ttl_secs.saturating_mul(1000)
    }

    /// The session for a cookie token, if valid.
    pub async fn session(&self, token: &str) -> Result<Option<(SessionRow, UserRow)>, ApiError> {
        let Some(session) = self.store.session(&token_hash(token), now_millis()).await? else {
            return Ok(None);
        };
        let Some(user) = self.store.user_by_id(&session.user_id).await? else {
            return Ok(None);
        };
        Ok(Some((session, user)))
    }

    /// Begins a registration: a new account (`signed_in` None) or another passkey for the
    /// signed-in user. Returns `PublicKeyCredentialCreationOptionsJSON`.
    pub async fn begin_registration(
        &self,
        username: &str,
        display_name: Option<&str>,
        signed_in: Option<&UserRow>,
        attestation: Option<&str>,
    ) -> Result<Value, ApiError> {
        let (user_id, name, display, exclude, new_user) = match signed_in {
            Some(user) => {
                let exclude = self
                    .store
                    .credentials_of(&user.id)
                    .await?
                    .iter()
                    .filter_map(|c| b64::decode(&c.id).ok())
                    .collect::<Vec<_>>();
                (
                    user.id.clone(),
                    user.name.clone(),
                    user.display_name.clone(),
                    exclude,
                    false,
                )
            }
            None => {
                check_name("username", username)?;
                if self.store.user_by_name(username).await?.is_some() {
                    return Err(ApiError::new(
                        StatusCode::CONFLICT,
                        "username_taken",
                        "that username is taken; sign in to add a passkey to it",
                    ));
                }
                let display = display_name
                    .filter(|d| !d.trim().is_empty())
                    .unwrap_or(username);
                check_name("displayName", display)?;
                let handle = random::<16>(&self.rng)?;
                (
                    b64::encode(&handle),
                    username.to_owned(),
                    display.to_owned(),
                    Vec::new(),
                    true,
                )
            }
        };
        let handle = b64::decode(&user_id).map_err(ApiError::internal)?;
        let conveyance = match attestation {
            None | Some("none") => AttestationConveyancePreference::None,
            Some("indirect") => AttestationConveyancePreference::Indirect,
            Some("direct" | "enterprise") => AttestationConveyancePreference::Direct,
            Some(other) => {
                return Err(ApiError::bad_request(
                    "invalid_option",
                    format!("attestation {other:?} is not none, indirect, direct or enterprise"),
                ));
            }
        };
        let policy = if self.config.require_user_verification {
            UserVerificationPolicy::Required
        } else {
            UserVerificationPolicy::Preferred
        };
        let builder = self
            .webauthn
            .new_challenge_register_builder(&handle, &name, &display)
            .map_err(|e| ApiError::bad_request("invalid_username", e.to_string()))?
            .user_verification_policy(policy)
            .attestation(conveyance)
            .exclude_credentials(Some(exclude));
        let (ccr, state) = self
            .webauthn
            .generate_challenge_register(builder)
            .map_err(ApiError::internal)?;
        let mut options = serde_json::to_value(&ccr.public_key).map_err(ApiError::internal)?;
        // webauthn-rs offers "required" or "discouraged"; passkeys want "preferred" so that
        // security keys without resident-key room still register.
        options["authenticatorSelection"]["residentKey"] = json!("preferred");
        options["authenticatorSelection"]["requireResidentKey"] = json!(false);
        options["extensions"] = json!({ "credProps": true });
        options["timeout"] = json!(self.timeout_ms());
        let challenge = options["challenge"].as_str().unwrap_or_default().to_owned();
        let ceremony = RegistrationCeremony {
            state,
            user_id: user_id.clone(),
            user_name: name,
            display_name: display,
            new_user,
        };
        self.store
            .put_ceremony(&CeremonyRow {
                challenge,
                kind: "registration".into(),
                user_id: Some(user_id),
                state: serde_json::to_string(&ceremony).map_err(ApiError::internal)?,
                expires_at: self.expires(),
            })
            .await?;
        Ok(options)
    }

    async fn take_ceremony(
        &self,
        client_data_b64: &str,
        kind: &str,
    ) -> Result<CeremonyRow, ApiError> {
        let summary = client_data_summary(client_data_b64)?;
        let challenge = b64::encode(&summary.challenge);
        let Some(ceremony) = self.store.take_ceremony(&challenge).await? else {
            return Err(ApiError::bad_request(
                "unknown_challenge",
                "the challenge was not issued here, or was already used",
            ));
        };
        if ceremony.expires_at < now_millis() {
            return Err(ApiError::bad_request(
                "challenge_expired",
                "the challenge expired; start again",
            ));
        }
        if ceremony.kind != kind {
            return Err(ApiError::bad_request(
                "wrong_ceremony",
                format!(
                    "the challenge belongs to a {} ceremony, not {kind}",
                    ceremony.kind
                ),
            ));
        }
        let expected_type = if kind == "registration" {
            "webauthn.create"
        } else {
            "webauthn.get"
        };
        if summary.type_ != expected_type {
            return Err(ApiError::bad_request(
                "wrong_ceremony_type",
                format!(
                    "clientDataJSON.type is {:?}, expected {expected_type}",
                    summary.type_
                ),
            ));
        }
        if !self.config.origins.contains(&summary.origin) {
            return Err(ApiError::bad_request(
                "origin_not_allowed",
                format!("origin {:?} is not allowed", summary.origin),
            ));
        }
        Ok(ceremony)
    }

    /// Finishes a registration from `RegistrationResponseJSON`. Returns the user, the credential
    /// and, for a new account, a session token.
    pub async fn finish_registration(
        &self,
        body: &[u8],
        signed_in: Option<&UserRow>,
    ) -> Result<(UserRow, CredentialRow, Option<String>), ApiError> {
        let raw: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request("malformed_response", format!("not JSON: {e}")))?;
        let reg: RegisterPublicKeyCredential =
            serde_json::from_value(raw.clone()).map_err(|e| {
                ApiError::bad_request(
                    "malformed_response",
                    format!("not a RegistrationResponseJSON: {e}"),
                )
            })?;
        if reg.type_ != "public-key" {
            return Err(ApiError::bad_request(
                "wrong_credential_type",
                "the credential type is not public-key",
            ));
        }
        let client_data_b64 = raw["response"]["clientDataJSON"]
            .as_str()
            .unwrap_or_default();
        let ceremony_row = self.take_ceremony(client_data_b64, "registration").await?;
        let ceremony: RegistrationCeremony =
            serde_json::from_str(&ceremony_row.state).map_err(ApiError::internal)?;
        match signed_in {
            Some(user) if user.id != ceremony.user_id => {
                return Err(ApiError::bad_request(
                    "wrong_user",
                    "this registration was started for another account",
                ));
            }
            None if !ceremony.new_user => return Err(ApiError::unauthenticated()),
            _ => {}
        }
        let credential = self
            .webauthn
            .register_credential(&reg, &ceremony.state, None)
            .map_err(registration_error)?;
        let (fmt, attested) = parse_attestation_object(&reg.response.attestation_object)?;
        if attested.credential_id != credential.cred_id {
            return Err(ApiError::bad_request(
                "malformed_response",
                "credential ID differs from webauthn-rs's parse",
            ));
        }
        let public_key = CredentialPublicKey::from_cose(&attested.public_key_cose)
            .map_err(|e| ApiError::bad_request("unsupported_algorithm", e.to_string()))?;
        let transports: Vec<String> = raw["response"]["transports"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(str::to_owned))
                    .take(8)
                    .collect()
            })
            .unwrap_or_default();
        let now = now_millis();
        let aaguid = hyphenated(&attested.aaguid);
        let row = CredentialRow {
            id: b64::encode(&attested.credential_id),
            user_id: ceremony.user_id.clone(),
            public_key: b64::encode(&attested.public_key_cose),
            algorithm: public_key.algorithm(),
            sign_count: i64::from(attested.sign_count),
            transports: serde_json::to_string(&transports).map_err(ApiError::internal)?,
            backup_eligible: attested.flags & 0x08 != 0,
            backup_state: attested.flags & 0x10 != 0,
            name: format!("{} passkey", authenticator_name(&aaguid)),
            aaguid,
            attestation_format: fmt,
            created_at: now,
            last_used_at: None,
            counter_regressions: 0,
        };
        let user = UserRow {
            id: ceremony.user_id.clone(),
            name: ceremony.user_name.clone(),
            display_name: ceremony.display_name.clone(),
            created_at: now,
        };
        self.store
            .register(ceremony.new_user.then_some(&user), &row)
            .await?;
        let user = match signed_in {
            Some(u) => u.clone(),
            None => user,
        };
        let token = if signed_in.is_none() {
            Some(self.new_session(&user.id, &row.id).await?)
        } else {
            None
        };
        tracing::info!(user = %user.name, credential = %row.id, "passkey registered");
        Ok((user, row, token))
    }

    async fn new_session(&self, user_id: &str, credential_id: &str) -> Result<String, ApiError> {
        let token = b64::encode(&random::<32>(&self.rng)?);
        let now = now_millis();
        self.store
            .create_session(&SessionRow {
                token_hash: token_hash(&token),
                user_id: user_id.to_owned(),
                credential_id: credential_id.to_owned(),
                created_at: now,
                expires_at: now.saturating_add(
                    i64::try_from(self.config.session_ttl_secs.saturating_mul(1000))
                        .unwrap_or(i64::MAX),
                ),
                verified_at: now,
            })
            .await?;
        Ok(token)
    }

    /// Begins an authentication. `username` None means discoverable credentials (autofill /
    /// conditional UI). For `Reauth` and `Action`, `session` is the signed-in session.
    pub async fn begin_authentication(
        &self,
        purpose: AuthPurpose,
        username: Option<&str>,
        session: Option<(&SessionRow, &UserRow)>,
        payload: Option<String>,
        user_verification: Option<&str>,
    ) -> Result<Value, ApiError> {
        let user = match (purpose, session) {
            (AuthPurpose::Login, _) => match username.filter(|u| !u.is_empty()) {
                Some(name) => Some(self.store.user_by_name(name).await?.ok_or_else(|| {
                    ApiError::new(
                        StatusCode::NOT_FOUND,
                        "unknown_user",
                        "no account has that username",
                    )
                })?),
                None => None,
            },
            (_, Some((_, user))) => Some(user.clone()),
            (_, None) => return Err(ApiError::unauthenticated()),
        };
        let require_uv = match user_verification {
            _ if self.config.require_user_verification || purpose != AuthPurpose::Login => true,
            None | Some("preferred") | Some("discouraged") => false,
            Some("required") => true,
            Some(other) => {
                return Err(ApiError::bad_request(
                    "invalid_option",
                    format!("userVerification {other:?} is not required, preferred or discouraged"),
                ));
            }
        };
        let challenge = match (&payload, purpose) {
            (Some(p), AuthPurpose::Action) => action_challenge(&random::<16>(&self.rng)?, p),
            _ => random::<32>(&self.rng)?.to_vec(),
        };
        let allow: Vec<Value> = match &user {
            Some(u) => {
                let creds = self.store.credentials_of(&u.id).await?;
                if creds.is_empty() {
                    return Err(ApiError::new(
                        StatusCode::NOT_FOUND,
                        "no_credentials",
                        "that account has no passkeys",
                    ));
                }
                creds
                    .iter()
                    .map(|c| {
                        let transports: Vec<String> =
                            serde_json::from_str(&c.transports).unwrap_or_default();
                        let mut d = json!({ "type": "public-key", "id": c.id });
                        if !transports.is_empty() {
                            d["transports"] = json!(transports);
                        }
                        d
                    })
                    .collect()
            }
            None => Vec::new(),
        };
        let challenge_b64 = b64::encode(&challenge);
        let ceremony = AuthenticationCeremony {
            purpose,
            require_uv,
            session: session.map(|(s, _)| s.token_hash.clone()),
            payload,
        };
        self.store
            .put_ceremony(&CeremonyRow {
                challenge: challenge_b64.clone(),
                kind: "authentication".into(),
                user_id: user.as_ref().map(|u| u.id.clone()),
                state: serde_json::to_string(&ceremony).map_err(ApiError::internal)?,
                expires_at: self.expires(),
            })
            .await?;
        Ok(json!({
            "challenge": challenge_b64,
            "timeout": self.timeout_ms(),
            "rpId": self.config.rp_id,
            "allowCredentials": allow,
            "userVerification": if require_uv { "required" } else { "preferred" },
        }))
    }

    /// Finishes an authentication ceremony from `AuthenticationResponseJSON`.
    pub async fn finish_authentication(
        &self,
        purpose: AuthPurpose,
        body: &[u8],
        session: Option<&SessionRow>,
    ) -> Result<Authenticated, ApiError> {
        let response: AuthenticationResponseJson = serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(
                "malformed_response",
                format!("not an AuthenticationResponseJSON: {e}"),
            )
        })?;
        let ceremony_row = self
            .take_ceremony(&response.response.client_data_json, "authentication")
            .await?;
        let ceremony: AuthenticationCeremony =
            serde_json::from_str(&ceremony_row.state).map_err(ApiError::internal)?;
        if ceremony.purpose != purpose {
            return Err(ApiError::bad_request(
                "wrong_ceremony",
                "the challenge was issued for another purpose",
            ));
        }
        if purpose != AuthPurpose::Login
            && ceremony.session.as_deref() != session.map(|s| s.token_hash.as_str())
        {
            return Err(ApiError::unauthenticated());
        }
        let credential_id = b64::decode(&response.raw_id)
            .map_err(|_| ApiError::bad_request("malformed_response", "rawId is not base64url"))?;
        let Some(row) = self.store.credential(&b64::encode(&credential_id)).await? else {
            return Err(ApiError::bad_request(
                "unknown_credential",
                "no account has this credential",
            ));
        };
        match &ceremony_row.user_id {
            Some(expected) if *expected != row.user_id => {
                return Err(ApiError::bad_request(
                    "credential_not_allowed",
                    "this credential belongs to another account",
                ));
            }
            None if response
                .response
                .user_handle
                .as_deref()
                .is_none_or(str::is_empty) =>
            {
                return Err(ApiError::bad_request(
                    "user_handle_missing",
                    "a discoverable sign-in needs the userHandle",
                ));
            }
            _ => {}
        }
        let stored = StoredCredential {
            id: credential_id,
            public_key: CredentialPublicKey::from_cose(
                &b64::decode(&row.public_key).map_err(ApiError::internal)?,
            )
            .map_err(ApiError::internal)?,
            sign_count: u32::try_from(row.sign_count).unwrap_or(u32::MAX),
            user_handle: b64::decode(&row.user_id).map_err(ApiError::internal)?,
            backup_eligible: Some(row.backup_eligible),
        };
        let challenge = b64::decode(&ceremony_row.challenge).map_err(ApiError::internal)?;
        let verdict = verify_assertion(
            &stored,
            &response,
            &AssertionExpectation {
                challenge: &challenge,
                origins: &self.config.origins,
                rp_id: &self.config.rp_id,
                require_user_verification: ceremony.require_uv,
                allow_cross_origin: self.config.allow_cross_origin,
                counter_policy: self.config.counter_policy,
            },
        )
        .inspect_err(|e| {
            if let crate::verify::VerifyError::CounterRegression { stored, received } = e {
                tracing::warn!(credential = %row.id, stored, received, "signature counter regressed: possible cloned authenticator; rejected");
            }
        })?;
        let regressed = matches!(verdict.counter, CounterCheck::Regressed { .. });
        if regressed {
            tracing::warn!(credential = %row.id, "signature counter regressed: possible cloned authenticator; accepted by policy");
        }
        let now = now_millis();
        if !self
            .store
            .record_use(
                &row.id,
                row.sign_count,
                // A regression accepted by policy never lowers the stored counter: a clone
                // must not be able to reset it.
                i64::from(verdict.sign_count).max(row.sign_count),
                verdict.backup_state,
                regressed,
                now,
            )
            .await?
        {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "concurrent_use",
                "another sign-in with this credential happened at the same time; try again",
            ));
        }
        let user = self
            .store
            .user_by_id(&row.user_id)
            .await?
            .ok_or_else(|| ApiError::internal("credential without user"))?;
        // Answer with the record as it is now stored.
        let mut row = row;
        row.sign_count = i64::from(verdict.sign_count).max(row.sign_count);
        row.backup_state = verdict.backup_state;
        row.last_used_at = Some(now);
        row.counter_regressions = row.counter_regressions.saturating_add(i64::from(regressed));
        let mut out = Authenticated {
            user,
            credential: row,
            verdict,
            session_token: None,
            receipt: None,
        };
        match purpose {
            AuthPurpose::Login => {
                out.session_token = Some(self.new_session(&out.user.id, &out.credential.id).await?);
            }
            AuthPurpose::Reauth => {
                if let Some(s) = session {
                    self.store
                        .mark_session_verified(&s.token_hash, &out.credential.id, now)
                        .await?;
                }
            }
            AuthPurpose::Action => {
                let payload = ceremony.payload.unwrap_or_default();
                out.receipt = Some(
                    self.issue_receipt(&out, &payload, &ceremony_row.challenge, &response, now)
                        .await?,
                );
            }
        }
        Ok(out)
    }

    async fn issue_receipt(
        &self,
        auth: &Authenticated,
        payload: &str,
        challenge: &str,
        response: &AuthenticationResponseJson,
        now: i64,
    ) -> Result<SignedReceipt, ApiError> {
        let receipt = Receipt {
            type_: "passgate.action-receipt.v1".into(),
            id: b64::encode(&random::<16>(&self.rng)?),
            rp_id: self.config.rp_id.clone(),
            user_id: auth.user.id.clone(),
            user_name: auth.user.name.clone(),
            credential_id: auth.credential.id.clone(),
            credential_public_key: auth.credential.public_key.clone(),
            payload: payload.to_owned(),
            payload_sha256: b64::encode(digest(&SHA256, payload.as_bytes()).as_ref()),
            challenge: challenge.to_owned(),
            approved_at: now,
            user_verified: auth.verdict.user_verified,
            origin: auth.verdict.origin.clone(),
            assertion: ReceiptAssertion {
                authenticator_data: response.response.authenticator_data.clone(),
                client_data_json: response.response.client_data_json.clone(),
                signature: response.response.signature.clone(),
            },
        };
        let receipt_json = serde_json::to_string(&receipt).map_err(ApiError::internal)?;
        let signature = b64::encode(
            &self
                .signer
                .sign(&receipt_json)
                .map_err(ApiError::internal)?,
        );
        self.store
            .insert_receipt(&ReceiptRow {
                id: receipt.id.clone(),
                user_id: receipt.user_id.clone(),
                credential_id: receipt.credential_id.clone(),
                receipt: receipt_json.clone(),
                signature: signature.clone(),
                created_at: now,
            })
            .await?;
        Ok(SignedReceipt {
            receipt,
            receipt_json,
            signature,
            key_id: self.signer.key_id().to_owned(),
        })
    }

    /// A stored receipt.
    pub async fn receipt(&self, id: &str) -> Result<SignedReceipt, ApiError> {
        let row = self.store.receipt(id).await?.ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_receipt",
                "no receipt has that ID",
            )
        })?;
        let receipt: Receipt = serde_json::from_str(&row.receipt).map_err(ApiError::internal)?;
        Ok(SignedReceipt {
            receipt,
            receipt_json: row.receipt,
            signature: row.signature,
            key_id: self.signer.key_id().to_owned(),
        })
    }

    /// Whether the session's last verification is recent enough for a sensitive change.
    pub fn recently_verified(&self, session: &SessionRow) -> bool {
        let max_age = i64::try_from(self.config.step_up_max_age_secs.saturating_mul(1000))
            .unwrap_or(i64::MAX);
        now_millis().saturating_sub(session.verified_at) <= max_age
    }
}
