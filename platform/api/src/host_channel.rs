//! The host channel's seam: what a feature needs to answer messages on a host's channel (a
//! Tauri `invoke`, WKWebView's `messageHandlers`, an Android `WebMessageListener`, the local HTTP
//! bridge) without knowing the router that carries them.
//!
//! The router is the bridge's (`passgate_bridge::channel::ChannelRouter`, with the WebAuthn
//! types); the app APIs implement [`Handler`] and register their namespaces through a
//! [`HandlerRegistry`]. Who sent a message is the host's knowledge, never the message's: every
//! handler gets the [`Sender`] the host established.

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::{Map, Value as Json, json};

use crate::user_verifier::Interaction;

/// The namespace of a namespaced message type (`"vault."` for `"vault.open"`), if it has one.
/// WebAuthn's types have none; features registered with [`HandlerRegistry::register_namespace`] (the
/// app APIs) do, and a host that does not serve them (the extension's native-messaging host)
/// refuses them by it.
pub fn namespace_of(kind: &str) -> Option<&str> {
    kind.find('.').map(|dot| &kind[..=dot])
}

/// Who sent a message, as the host established it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender {
    /// The origin of the calling document.
    pub origin: String,
    /// The top-level origin, when the caller is a cross-origin frame.
    pub top_origin: Option<String>,
    /// Requests are cancelled only from within the same session (a webview, a pairing).
    pub session: String,
}

impl Sender {
    /// A top-level document of `origin`, in a session of its own origin.
    pub fn new(origin: impl Into<String>) -> Self {
        let origin = origin.into();
        Self {
            session: origin.clone(),
            origin,
            top_origin: None,
        }
    }

    /// The same sender in `session`.
    pub fn in_session(mut self, session: impl Into<String>) -> Self {
        self.session = session.into();
        self
    }
}

/// What a handler gets besides the message.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// Who sent it.
    pub sender: &'a Sender,
    /// Cancelled by a `cancel` message for this request (or by the host, e.g. when the HTTP
    /// client went away); long handlers must watch it.
    pub interaction: &'a Interaction,
}

/// Why a message failed, as the page gets it: the reply's `error`, `{"name": ..., "message":
/// ...}`. Each feature names its own failures: the WebAuthn types reject with the DOMException
/// names a `navigator.credentials` call would, the app APIs with theirs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {message}")]
pub struct ChannelError {
    /// The error's name (a DOMException name for WebAuthn, e.g. `NotAllowedError`).
    pub name: Cow<'static, str>,
    /// A human-readable explanation; never a secret.
    pub message: String,
}

impl ChannelError {
    /// An error named `name`.
    pub fn new(name: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            message: message.into(),
        }
    }

    /// `{"name": ..., "message": ...}`.
    pub fn to_json(&self) -> Json {
        json!({ "name": self.name, "message": self.message })
    }
}

/// Handles one message type.
pub trait Handler: Send + Sync {
    /// The result for `message` (the whole message object, `type` and `requestId`
    /// included), or the error the page gets.
    fn handle(
        &self,
        context: &Context<'_>,
        message: &Map<String, Json>,
    ) -> Result<Json, ChannelError>;
}

impl<F> Handler for F
where
    F: Fn(&Context<'_>, &Map<String, Json>) -> Result<Json, ChannelError> + Send + Sync,
{
    fn handle(
        &self,
        context: &Context<'_>,
        message: &Map<String, Json>,
    ) -> Result<Json, ChannelError> {
        self(context, message)
    }
}

/// Where a feature registers its message types: a host's channel router. The app APIs
/// register their namespaces through it, so they need not know the router.
pub trait HandlerRegistry {
    /// Adds a handler for the message type `kind`.
    fn register(&mut self, kind: &str, handler: Arc<dyn Handler>) -> Result<(), RegisterError>;

    /// Adds `handler` for every message type that starts with `prefix` (`"vault."`).
    fn register_namespace(
        &mut self,
        prefix: &str,
        handler: Arc<dyn Handler>,
    ) -> Result<(), RegisterError>;
}

/// Why a handler could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// Another handler has the type.
    #[error("the message type {0:?} already has a handler")]
    Taken(String),
    /// `cancel` belongs to the router.
    #[error("the message type {0:?} is reserved")]
    Reserved(String),
    /// Types are 1 to 64 ASCII letters, digits, `.`, `_` or `-`.
    #[error("{0:?} is not a message type (1 to 64 of A-Z a-z 0-9 . _ -)")]
    Invalid(String),
    /// A namespace is a type prefix ending in `.` (`vault.`).
    #[error("{0:?} is not a namespace (a message type prefix ending in \".\")")]
    InvalidNamespace(String),
}
