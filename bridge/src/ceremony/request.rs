//! [`WebAuthnRequest`]: one page request, decoded where the host received it, for
//! [`Bridge::execute`](super::Bridge::execute), the bridge's one entry point.
//!
//! A host parses the message's JSON text once (the channel router, the native-messaging
//! reader) and hands the object here; the options are decoded into their typed form once, and
//! the ceremony never looks at JSON again. Decoding asks nothing and touches no authenticator,
//! so a malformed request is refused before anything happens.

use serde_json::Map;

use super::*;

/// A WebAuthn request, decoded.
#[derive(Debug, Clone)]
pub enum WebAuthnRequest {
    /// `navigator.credentials.create()`.
    Create {
        /// Who asks (origin, top origin, the tab's title).
        caller: Caller,
        /// The creation options.
        options: CreationOptions,
    },
    /// `navigator.credentials.get()`, or an action to approve when `payload` is the text the
    /// challenge commits to (checked while decoding).
    Get {
        /// Who asks (origin, top origin, the tab's title).
        caller: Caller,
        /// The request options.
        options: RequestOptions,
        /// The action's text, for an approval.
        payload: Option<String>,
    },
    /// `isUserVerifyingPlatformAuthenticatorAvailable()`.
    IsUvpaa,
    /// `PublicKeyCredential.getClientCapabilities()`.
    GetClientCapabilities,
}

impl WebAuthnRequest {
    /// `{"type": "create" | "get" | "isUvpaa" | "getClientCapabilities", "options": {...},
    /// "payload"?: "...", "tab"?: "..."}` from the page whose origin the host established,
    /// `origin` (in a cross-origin frame of `top_origin`, when the host checked the
    /// `publickey-credentials-*` permissions policy). Any `origin` or `topOrigin` member in the
    /// request is ignored: only the host knows the origin.
    pub fn from_page(
        origin: &str,
        top_origin: Option<&str>,
        request: &Map<String, Json>,
    ) -> Result<Self, BridgeError> {
        Self::decode(request, Some(origin), top_origin)
    }

    /// A request whose origin is inside it: `{"type", "origin", "topOrigin"?, "options"}`. For
    /// a host whose messages come from a trusted part of itself (the browser extension fills
    /// `origin` from what Chromium says, never from the page), such as the native-messaging
    /// host.
    pub fn from_extension(request: &Map<String, Json>) -> Result<Self, BridgeError> {
        // The type first, as in every request.
        kind_of(request)?;
        let origin = match request.get("origin") {
            None | Some(Json::Null) => None,
            Some(Json::String(s)) => Some(s.as_str()),
            Some(_) => return Err(BridgeError::type_error("\"origin\" is not a string")),
        };
        let top_origin = match request.get("topOrigin") {
            None | Some(Json::Null) => None,
            Some(Json::String(s)) => Some(s.as_str()),
            Some(_) => return Err(BridgeError::type_error("\"topOrigin\" is not a string")),
        };
        Self::decode(request, origin, top_origin)
    }

    fn decode(
        request: &Map<String, Json>,
        origin: Option<&str>,
        top_origin: Option<&str>,
    ) -> Result<Self, BridgeError> {
        let kind = kind_of(request)?;
        let payload = approval::payload_of(request)?;
        if payload.is_some() && kind != "get" {
            return Err(BridgeError::type_error(
                "\"payload\" (an action's text to approve) goes with \"get\" requests only",
            ));
        }
        match kind {
            "isUvpaa" => return Ok(Self::IsUvpaa),
            "getClientCapabilities" => return Ok(Self::GetClientCapabilities),
            "create" | "get" => {}
            other => {
                return Err(BridgeError::type_error(format!(
                    "unknown request type {other:?}"
                )));
            }
        }
        let origin =
            origin.ok_or_else(|| BridgeError::type_error("the request has no \"origin\""))?;
        let options = request
            .get("options")
            .ok_or_else(|| BridgeError::type_error("the request has no \"options\""))?;
        let caller = Caller::new(origin, top_origin)?.with_tab_title(request.get("tab"));
        if kind == "create" {
            let options: CreationOptions = options::parse(options, "creation options")?;
            return Ok(Self::Create { caller, options });
        }
        let options: RequestOptions = options::parse(options, "request options")?;
        if let Some(payload) = payload {
            // Before anything else: a text that is not the one signed is never shown.
            approval::check_payload(&options.challenge, payload)?;
        }
        Ok(Self::Get {
            caller,
            options,
            payload: payload.map(str::to_owned),
        })
    }
}

/// The request's `type`.
fn kind_of(request: &Map<String, Json>) -> Result<&str, BridgeError> {
    request
        .get("type")
        .and_then(Json::as_str)
        .ok_or_else(|| BridgeError::type_error("the request has no \"type\""))
}
