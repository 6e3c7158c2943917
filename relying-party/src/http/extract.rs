//! Extractors: the JSON body ([`ApiJson`], or [`JsonBody`] for handlers that parse it later
//! themselves), path parameters ([`ApiPath`]), the backend API token ([`ApiToken`]) and the
//! option endpoints' rate limit ([`RateLimited`]). Each rejects with the JSON [`ApiError`] that names the problem.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::state::Shared;
use crate::verify::constant_time_eq;

/// Whether the request says its body is `application/json` (parameters such as `charset` allowed).
pub fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
        })
}

/// How long a request may take to send its body (a request extension the router adds from
/// the configuration; a slow body is answered 408 `body_timeout`).
#[derive(Debug, Clone, Copy)]
pub struct BodyTimeout(pub std::time::Duration);

/// The body of a JSON request, read within the body limit and declared `application/json`
/// (which is also the CSRF guard: a cross-site form cannot send it), not yet parsed.
#[derive(Debug, Clone)]
pub struct JsonBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json_type = is_json(req.headers());
        let deadline = req.extensions().get::<BodyTimeout>().map(|t| t.0);
        let read = Bytes::from_request(req, state);
        let read = match deadline {
            Some(limit) => tokio::time::timeout(limit, read)
                .await
                .map_err(|_| ApiError::body_timeout(limit))?,
            None => read.await,
        };
        let bytes = read.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::body_too_large()
            } else {
                ApiError::bad_request("unreadable_body", e.body_text())
            }
        })?;
        if !json_type {
            return Err(ApiError::not_json());
        }
        Ok(Self(bytes))
    }
}

impl JsonBody {
    /// The body as `T`; malformed JSON is `malformed_request`.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        parse(&self.0)
    }
}

/// `bytes` as `T`; malformed JSON is `malformed_request`.
pub fn parse<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request("malformed_request", e.to_string()))
}

/// A JSON request body parsed as `T`: 413 over the limit, 415 if not `application/json`, 400
/// `malformed_request` naming the serde error otherwise.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let body = JsonBody::from_request(req, state).await?;
        body.parse().map(Self)
    }
}

/// A path parameter (`/api/credentials/{id}`): 400 `invalid_path` naming the problem when it
/// does not decode (a percent-escape that is not UTF-8), where axum's own `Path` would answer
/// in plain text.
#[derive(Debug, Clone)]
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Self(value))
            .map_err(|e| ApiError::bad_request("invalid_path", e.body_text()))
    }
}

/// Proof that the request carried one of the configured API tokens as `Authorization: Bearer`
/// (the backend endpoints: verification, SOTER).
#[derive(Debug, Clone, Copy)]
pub struct ApiToken;

impl FromRequestParts<Shared> for ApiToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, ApiError> {
        check_bearer(
            &state.rp.config().api_tokens,
            parts
                .headers
                .get(header::AUTHORIZATION)
                .map(HeaderValue::as_bytes),
        )
        .map(|()| Self)
    }
}

/// Checks a raw `Authorization` value against `tokens`, each compared in constant time.
pub fn check_bearer(tokens: &[String], authorization: Option<&[u8]>) -> Result<(), ApiError> {
    let token = authorization
        .and_then(|v| std::str::from_utf8(v).ok())
        // The scheme name is case-insensitive (RFC 9110 §11.1).
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .unwrap_or_default();
    // Every configured token is compared, whichever matches, so timing says nothing either.
    let matched = tokens.iter().fold(false, |found, t| {
        constant_time_eq(t.as_bytes(), token.as_bytes()) | found
    });
    if token.is_empty() || !matched {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_api_token",
            "a valid `Authorization: Bearer` API token is required",
        ));
    }
    Ok(())
}

/// Proof that the client's address had a token left; 429 `rate_limited` otherwise.
#[derive(Debug, Clone, Copy)]
pub struct RateLimited;

impl FromRequestParts<Shared> for RateLimited {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, ApiError> {
        // Through the extractor, which also reads `MockConnectInfo` in tests.
        let ConnectInfo(addr) = ConnectInfo::<SocketAddr>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::internal("the server was built without peer addresses"))?;
        state.limiter.check(addr.ip()).map_err(|wait| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many requests; retry in {} ms", wait.as_millis()),
            )
        })?;
        Ok(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_and_content_types() {
        let tokens = vec!["secret-one".to_owned(), "secret-two".to_owned()];
        assert!(check_bearer(&tokens, Some(b"Bearer secret-two")).is_ok());
        assert!(check_bearer(&tokens, Some(b"bearer  secret-one ")).is_ok());
        for bad in [
            &b"Bearer secret"[..],
            b"Basic secret-one",
            b"Bearer ",
            b"secret-one",
            b"\xff\xfe",
        ] {
            let err = check_bearer(&tokens, Some(bad)).unwrap_err();
            assert_eq!(err.status, StatusCode::UNAUTHORIZED);
            assert_eq!(err.code, "invalid_api_token");
        }
        assert!(check_bearer(&tokens, None).is_err());
        assert!(check_bearer(&[], Some(b"Bearer x")).is_err());

        let mut headers = HeaderMap::new();
        assert!(!is_json(&headers));
        for (value, json) in [
            ("application/json", true),
            ("Application/JSON; charset=utf-8", true),
            ("text/plain", false),
            ("application/jsonx", false),
        ] {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
            assert_eq!(is_json(&headers), json, "{value}");
        }
    }
}
