//! The relying party: ceremonies over the store, independent of HTTP.
//!
//! Registration runs on webauthn-rs (attestation formats, policy); authentication runs on this
//! crate's aws-lc-rs verifier ([`crate::verify`]). Ceremony state lives in the store keyed by the
//! challenge, so any instance can finish what another began.

use std::time::Duration;

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use passgate_proto::{AuthenticatorData, Flags};
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
use crate::cose::{CredentialPublicKey, PublicKey};
use crate::error::{ErrorKind, RpError};
use crate::receipts::{Receipt, ReceiptAssertion, ReceiptSigner, action_challenge};
use crate::store::{
    CeremonyRow, CredentialRow, ReceiptRow, SessionRow, Store, UserRow, now_millis,
};
pub use options::{AuthenticatorSelection, RegistrationOptionsRequest};
pub use views::{Authenticated, CredentialView, SignedReceipt, UserView};

mod authentication;
mod options;
mod registration;
mod usernames;
mod views;

pub use usernames::{Decoys, normalize_username};

use crate::verify::{
    AssertionExpectation, AuthenticationResponseJson, CounterCheck, StoredCredential,
    client_data_summary, verify_assertion,
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

/// The relying party.
#[derive(Debug)]
pub struct RelyingParty {
    config: RpConfig,
    store: Store,
    webauthn: WebauthnCore,
    signer: ReceiptSigner,
    rng: SystemRandom,
    /// Sign-in options for usernames nobody has.
    decoys: Decoys,
}

/// Longest username accepted.
const MAX_NAME: usize = 64;

fn random<const N: usize>(rng: &SystemRandom) -> Result<[u8; N], RpError> {
    let mut out = [0u8; N];
    rng.fill(&mut out).map_err(RpError::internal)?;
    Ok(out)
}

/// SHA-256 of a session token, base64url: what the store keeps instead of the token.
pub fn token_hash(token: &str) -> String {
    b64::encode(digest(&SHA256, token.as_bytes()).as_ref())
}

fn check_name(field: &'static str, name: &str) -> Result<(), RpError> {
    if name.trim().is_empty()
        || name.chars().count() > MAX_NAME
        || name.chars().any(char::is_control)
    {
        return Err(RpError::invalid(
            "invalid_username",
            format!("{field} must be 1 to {MAX_NAME} printable characters"),
        ));
    }
    Ok(())
}

impl RelyingParty {
    /// Builds the relying party over an open store.
    pub fn new(config: RpConfig, store: Store, signer: ReceiptSigner) -> Result<Self, RpError> {
        let origins = config
            .origins
            .iter()
            .map(|o| url::Url::parse(o))
            .collect::<Result<Vec<_>, _>>()
            .map_err(RpError::internal)?;
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
            decoys: Decoys::new(&signer.derive_secret("passgate rp: sign-in decoys v1")),
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
    pub async fn session(&self, token: &str) -> Result<Option<(SessionRow, UserRow)>, RpError> {
        let Some(session) = self.store.session(&token_hash(token), now_millis()).await? else {
            return Ok(None);
        };
        let Some(user) = self.store.user_by_id(&session.user_id).await? else {
            return Ok(None);
        };
        Ok(Some((session, user)))
    }

    async fn take_ceremony(
        &self,
        client_data_b64: &str,
        kind: &str,
    ) -> Result<CeremonyRow, RpError> {
        let summary = client_data_summary(client_data_b64)?;
        let challenge = b64::encode(&summary.challenge);
        let Some(ceremony) = self.store.take_ceremony(&challenge).await? else {
            return Err(RpError::invalid(
                "unknown_challenge",
                "the challenge was not issued here, or was already used",
            ));
        };
        if ceremony.expires_at < now_millis() {
            return Err(RpError::invalid(
                "challenge_expired",
                "the challenge expired; start again",
            ));
        }
        if ceremony.kind != kind {
            return Err(RpError::invalid(
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
            return Err(RpError::invalid(
                "wrong_ceremony_type",
                format!(
                    "clientDataJSON.type is {:?}, expected {expected_type}",
                    summary.type_
                ),
            ));
        }
        if !self.config.origins.contains(&summary.origin) {
            return Err(RpError::invalid(
                "origin_not_allowed",
                format!("origin {:?} is not allowed", summary.origin),
            ));
        }
        Ok(ceremony)
    }

    async fn new_session(&self, user_id: &str, credential_id: &str) -> Result<String, RpError> {
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

    /// A stored receipt.
    pub async fn receipt(&self, id: &str) -> Result<SignedReceipt, RpError> {
        let row = self.store.receipt(id).await?.ok_or_else(|| {
            RpError::new(
                ErrorKind::NotFound,
                "unknown_receipt",
                "no receipt has that ID",
            )
        })?;
        let receipt: Receipt = serde_json::from_str(&row.receipt).map_err(RpError::internal)?;
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
