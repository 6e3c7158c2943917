//! `POST /api/verify/assertion`: stateless verification for other backends, on the main port.

use std::borrow::Cow;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::extract::{ApiToken, JsonBody, parse};
use crate::b64;
use crate::cose::CredentialPublicKey;
use crate::verify::{
    AssertionExpectation, AssertionVerdict, AuthenticationResponseJson, CounterPolicy,
    StoredCredential, verify_assertion,
};

/// The stored credential record a backend sends. Its strings are read in place from the body
/// (`Cow` only allocates for a string with JSON escapes), since they are decoded right away.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VerifyCredential<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    public_key: Cow<'a, str>,
    #[serde(default)]
    sign_count: u32,
    #[serde(borrow)]
    user_handle: Cow<'a, str>,
    /// The BE flag recorded at registration; checked when given.
    #[serde(default)]
    backup_eligible: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VerifyRequest<'a> {
    #[serde(borrow)]
    credential: VerifyCredential<'a>,
    response: AuthenticationResponseJson,
    #[serde(borrow)]
    expected_challenge: Cow<'a, str>,
    expected_origins: Vec<String>,
    #[serde(borrow)]
    expected_rp_id: Cow<'a, str>,
    #[serde(default = "yes")]
    require_user_verification: bool,
    #[serde(default)]
    counter_policy: CounterPolicy,
    #[serde(default)]
    allow_cross_origin: bool,
}

fn yes() -> bool {
    true
}

/// The answer, serialized straight from the verdict.
#[derive(Serialize)]
struct VerifiedAssertion {
    verified: bool,
    verdict: AssertionVerdict,
}

/// `POST /api/verify/assertion`. The token is checked before the body is read.
pub(super) async fn verify_for_backend(
    _: ApiToken,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let answer = verify_body(&body)?;
    // Answer after the other connections that are ready now have run, so that their answers go
    // out together and wake their clients once rather than one by one (measured: 15-25% more
    // verifications per CPU-second under load).
    tokio::task::yield_now().await;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        answer,
    )
        .into_response())
}

/// The request body in, the JSON answer out.
fn verify_body(body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let req: VerifyRequest<'_> = parse(body)?;
    let bad =
        |what: &str| ApiError::bad_request("malformed_request", format!("{what} is not base64url"));
    let stored = StoredCredential {
        id: b64::decode(&req.credential.id).map_err(|_| bad("credential.id"))?,
        public_key: CredentialPublicKey::from_cose(
            &b64::decode(&req.credential.public_key).map_err(|_| bad("credential.publicKey"))?,
        )
        .map_err(|e| ApiError::bad_request("bad_public_key", e.to_string()))?,
        sign_count: req.credential.sign_count,
        user_handle: b64::decode(&req.credential.user_handle)
            .map_err(|_| bad("credential.userHandle"))?,
        backup_eligible: req.credential.backup_eligible,
    };
    let challenge = b64::decode(&req.expected_challenge).map_err(|_| bad("expectedChallenge"))?;
    let verdict = verify_assertion(
        &stored,
        &req.response,
        &AssertionExpectation {
            challenge: &challenge,
            origins: &req.expected_origins,
            rp_id: &req.expected_rp_id,
            require_user_verification: req.require_user_verification,
            allow_cross_origin: req.allow_cross_origin,
            counter_policy: req.counter_policy,
        },
    )?;
    // About 300 bytes for a typical credential: one allocation, no regrowth.
    let mut answer = Vec::with_capacity(512);
    serde_json::to_writer(
        &mut answer,
        &VerifiedAssertion {
            verified: true,
            verdict,
        },
    )
    .map_err(ApiError::internal)?;
    Ok(answer)
}
