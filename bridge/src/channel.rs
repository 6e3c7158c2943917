//! The host channel: one small request/reply layer for every way a page reaches passgate
//! through its host (a Tauri `invoke`, WKWebView's `messageHandlers`, an Android
//! `WebMessageListener`, the local HTTP bridge).
//!
//! ```text
//! page -> host:  {"type": "create", "requestId": "r1", "options": {...}}
//! host -> page:  {"requestId": "r1", "ok": true, "result": {...}}
//!           or:  {"requestId": "r1", "ok": false, "error": {"name": "NotAllowedError", "message": "..."}}
//! page -> host:  {"type": "cancel", "requestId": "c1", "target": "r1"}
//! ```
//!
//! The transport carries opaque JSON; the [`ChannelRouter`] picks the handler by `type`. WebAuthn is
//! four types (`create`, `get`, `isUvpaa`, `getClientCapabilities`, see [`ChannelRouter::webauthn`]),
//! plus `autofill` and `wait` for conditional requests (passkey autofill, see
//! [`crate::conditional`]); `cancel` is the router's own and works for every type. Other
//! features register their own types on the same router ([`ChannelRouter::register`]), or a whole
//! namespace of them ([`ChannelRouter::register_namespace`]: the app-facing APIs register theirs from
//! their side), and need no change to any transport.
//!
//! Who sent a message is the host's knowledge, never the message's: every handler gets the
//! [`Sender`] the host established (the webview's committed origin, the HTTP `Origin` header
//! of a paired page). `origin`/`topOrigin` members in a message are never read.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, Mutex, PoisonError};

use passgate_platform_api::host_channel::{
    ChannelError, Context, Handler, HandlerRegistry, RegisterError, Sender,
};
use passgate_platform_api::user_verifier::Interaction;
use serde_json::{Map, Value as Json, json};

use crate::conditional::{self, Conditional, Limits};
use crate::error::{BridgeError, ErrorName};
use crate::{Bridge, WebAuthnRequest};

/// The message type the router keeps for itself.
pub const CANCEL: &str = "cancel";
/// How many requests may be in flight on one router at a time.
pub const MAX_PENDING: usize = 32;
/// The longest `requestId` accepted, in bytes.
pub const MAX_REQUEST_ID: usize = 128;
/// The WebAuthn message types, handled by a [`Bridge`].
struct WebAuthn {
    bridge: Arc<Bridge>,
    conditional: Arc<Conditional>,
}

impl Handler for WebAuthn {
    fn handle(
        &self,
        context: &Context<'_>,
        message: &Map<String, Json>,
    ) -> Result<Json, ChannelError> {
        let kind = message.get("type").and_then(Json::as_str).unwrap_or("");
        let sender = context.sender;
        let conditional = message.get("mediation").and_then(Json::as_str) == Some("conditional");
        match kind {
            "get" if conditional => {
                let request_id = message.get("requestId").and_then(request_key);
                return Ok(self.conditional.arm(sender, request_id, message)?);
            }
            conditional::AUTOFILL => return Ok(self.conditional.hint(sender, message)?),
            conditional::WAIT => {
                return Ok(self
                    .conditional
                    .wait(sender, message, context.interaction)?);
            }
            _ => {}
        }
        let _immediate =
            matches!(kind, "create" | "get").then(|| self.conditional.immediate(&sender.session));
        // Only `type`, `options`, an action's `payload` (checked against the challenge before
        // it is shown) and the tab's title (`tab`, shown as the page's own label) are read:
        // whatever else the page put in the message (an "origin" of its choosing, say) is
        // ignored; the origin is the host's.
        let request =
            WebAuthnRequest::from_page(&sender.origin, sender.top_origin.as_deref(), message)?;
        let reply = self.bridge.execute(&request, Some(context.interaction))?;
        Ok(match kind {
            "isUvpaa" => reply.get("result").cloned().unwrap_or(Json::Null),
            "getClientCapabilities" => {
                let mut capabilities = reply.get("result").cloned().unwrap_or(Json::Null);
                // The bridge alone has no way to wait for the person at a field; this
                // channel has (`autofill`).
                if let Some(record) = capabilities.as_object_mut() {
                    record.insert("conditionalGet".into(), Json::Bool(true));
                }
                capabilities
            }
            _ => reply,
        })
    }
}

/// Routes messages to handlers by `type`, and cancels requests in flight.
pub struct ChannelRouter {
    handlers: HashMap<String, Arc<dyn Handler>>,
    /// (prefix ending in `.`, handler): every type starting with the prefix. Prefixes never
    /// overlap each other or a type in `handlers`, so a type has at most one handler.
    namespaces: Vec<(String, Arc<dyn Handler>)>,
    /// (session, requestId) -> the running request's cancellation handle.
    pending: Mutex<HashMap<(String, String), Interaction>>,
    /// Conditional requests, which outlive the messages that wait for them.
    conditional: Option<Arc<Conditional>>,
}

impl std::fmt::Debug for ChannelRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelRouter")
            .field("types", &self.types())
            .finish_non_exhaustive()
    }
}

impl Default for ChannelRouter {
    fn default() -> Self {
        Self::new()
    }
}

/// Removes a request from the pending table when it ends, however it ends.
struct PendingGuard<'a> {
    router: &'a ChannelRouter,
    key: Option<(String, String)>,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.router
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&key);
        }
    }
}

fn valid_type(kind: &str) -> bool {
    (1..=64).contains(&kind.len())
        && kind
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The key a requestId is filed under: strings as they are, numbers as their JSON text.
fn request_key(id: &Json) -> Option<String> {
    match id {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl ChannelRouter {
    /// A router with no handlers (only `cancel`).
    pub fn new() -> Self {
        Self {
            handlers: HashMap::new(),
            namespaces: Vec::new(),
            pending: Mutex::new(HashMap::new()),
            conditional: None,
        }
    }

    /// A router with the WebAuthn types on `bridge`: `create`, `get` (result: the credential
    /// in `toJSON()` form), `isUvpaa` (result: a boolean), `getClientCapabilities` (result:
    /// the capabilities record, with `conditionalGet: true`), and for passkey autofill `get`
    /// with `"mediation": "conditional"`, `autofill` and `wait` (see [`crate::conditional`]).
    pub fn webauthn(bridge: Arc<Bridge>) -> Self {
        Self::webauthn_with(bridge, Limits::default())
    }

    /// [`Self::webauthn`] with other timing for conditional requests.
    pub fn webauthn_with(bridge: Arc<Bridge>, limits: Limits) -> Self {
        let mut router = Self::new();
        let conditional = Arc::new(Conditional::new(Arc::clone(&bridge), limits));
        let handler: Arc<dyn Handler> = Arc::new(WebAuthn {
            bridge,
            conditional: Arc::clone(&conditional),
        });
        for kind in [
            "create",
            "get",
            "isUvpaa",
            "getClientCapabilities",
            conditional::AUTOFILL,
            conditional::WAIT,
        ] {
            router
                .handlers
                .insert(kind.to_owned(), Arc::clone(&handler));
        }
        router.conditional = Some(conditional);
        router
    }

    /// Adds a handler for `kind`.
    pub fn register(&mut self, kind: &str, handler: Arc<dyn Handler>) -> Result<(), RegisterError> {
        if kind == CANCEL {
            return Err(RegisterError::Reserved(kind.to_owned()));
        }
        if !valid_type(kind) {
            return Err(RegisterError::Invalid(kind.to_owned()));
        }
        if self.namespace_of(kind).is_some() {
            return Err(RegisterError::Taken(kind.to_owned()));
        }
        match self.handlers.entry(kind.to_owned()) {
            Entry::Occupied(_) => Err(RegisterError::Taken(kind.to_owned())),
            Entry::Vacant(slot) => {
                slot.insert(handler);
                Ok(())
            }
        }
    }

    /// Adds `handler` for every type that starts with `prefix` (`"vault."`), known now or
    /// not: the handler answers unknown ones itself. A prefix must end in `.` and may not
    /// overlap another namespace or a registered type.
    pub fn register_namespace(
        &mut self,
        prefix: &str,
        handler: Arc<dyn Handler>,
    ) -> Result<(), RegisterError> {
        let named = prefix
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric());
        if !named || !prefix.ends_with('.') || !valid_type(prefix) {
            return Err(RegisterError::InvalidNamespace(prefix.to_owned()));
        }
        let overlaps = self
            .namespaces
            .iter()
            .any(|(p, _)| p.starts_with(prefix) || prefix.starts_with(p.as_str()))
            || self.handlers.keys().any(|k| k.starts_with(prefix));
        if overlaps {
            return Err(RegisterError::Taken(format!("{prefix}*")));
        }
        self.namespaces.push((prefix.to_owned(), handler));
        Ok(())
    }

    fn namespace_of(&self, kind: &str) -> Option<&Arc<dyn Handler>> {
        self.namespaces
            .iter()
            .find(|(prefix, _)| kind.starts_with(prefix.as_str()))
            .map(|(_, handler)| handler)
    }

    /// The types this router answers, sorted (`cancel` included; a namespace as `prefix*`).
    pub fn types(&self) -> Vec<String> {
        let mut types: Vec<String> = self.handlers.keys().cloned().collect();
        types.extend(self.namespaces.iter().map(|(p, _)| format!("{p}*")));
        types.push(CANCEL.to_owned());
        types.sort_unstable();
        types
    }

    /// Handles one message (JSON text) from `sender`; returns the reply (JSON text).
    pub fn handle(&self, sender: &Sender, message_json: &str) -> String {
        let reply = match serde_json::from_str::<Json>(message_json) {
            Ok(message) => self.handle_value(sender, &message, None),
            Err(e) => failure(
                &Json::Null,
                BridgeError::type_error(format!("the message is not JSON: {e}")),
            ),
        };
        reply.to_string()
    }

    /// Handles one parsed message. `interaction`, when given, lets the host cancel the
    /// request too (e.g. when its HTTP client went away).
    pub fn handle_value(
        &self,
        sender: &Sender,
        message: &Json,
        interaction: Option<&Interaction>,
    ) -> Json {
        let Some(object) = message.as_object() else {
            return failure(
                &Json::Null,
                BridgeError::type_error("the message is not a JSON object"),
            );
        };
        let request_id = object.get("requestId").cloned().unwrap_or(Json::Null);
        let key = match &request_id {
            Json::Null => None,
            id => match request_key(id).filter(|k| k.len() <= MAX_REQUEST_ID) {
                Some(k) => Some(k),
                None => {
                    return failure(
                        &Json::Null,
                        BridgeError::type_error(format!(
                            "\"requestId\" must be a string or number of at most {MAX_REQUEST_ID} bytes"
                        )),
                    );
                }
            },
        };
        let Some(kind) = object.get("type").and_then(Json::as_str) else {
            return failure(
                &request_id,
                BridgeError::type_error("the message has no \"type\""),
            );
        };
        if kind == CANCEL {
            return self.cancel(sender, &request_id, object);
        }
        let Some(handler) = self.handlers.get(kind).or_else(|| self.namespace_of(kind)) else {
            return failure(
                &request_id,
                BridgeError::new(
                    ErrorName::NotSupportedError,
                    format!("this host does not handle {kind:?} messages"),
                ),
            );
        };
        let interaction = interaction.cloned().unwrap_or_default();
        let mut guard = PendingGuard {
            router: self,
            key: None,
        };
        if let Some(key) = key {
            let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            if pending.len() >= MAX_PENDING {
                return failure(
                    &request_id,
                    BridgeError::not_allowed("too many requests are in flight"),
                );
            }
            let full_key = (sender.session.clone(), key);
            match pending.entry(full_key.clone()) {
                Entry::Occupied(_) => {
                    return failure(
                        &request_id,
                        BridgeError::new(
                            ErrorName::InvalidStateError,
                            "a request with this requestId is still running",
                        ),
                    );
                }
                Entry::Vacant(slot) => {
                    slot.insert(interaction.clone());
                }
            }
            guard.key = Some(full_key);
        }
        let context = Context {
            sender,
            interaction: &interaction,
        };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            handler.handle(&context, object)
        }))
        .unwrap_or_else(|_| {
            tracing::error!(kind, "a message handler panicked");
            Err(BridgeError::unknown("internal error").into())
        });
        drop(guard);
        match outcome {
            Ok(result) => json!({ "requestId": request_id, "ok": true, "result": result }),
            Err(e) => failure(&request_id, e),
        }
    }

    /// `{"type":"cancel","target":ID}`: cancels the request `ID` of the same session.
    fn cancel(&self, sender: &Sender, request_id: &Json, object: &Map<String, Json>) -> Json {
        let Some(target) = object.get("target").and_then(request_key) else {
            return failure(
                request_id,
                BridgeError::type_error("a cancel message names its \"target\" requestId"),
            );
        };
        let running = {
            let pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            let found = pending.get(&(sender.session.clone(), target.clone()));
            if let Some(interaction) = found {
                interaction.cancel();
            }
            found.is_some()
        };
        // A conditional request may be between two of its messages.
        let conditional = self
            .conditional
            .as_ref()
            .is_some_and(|c| c.cancel(&sender.session, &target));
        json!({ "requestId": request_id, "ok": true, "result": { "cancelled": running || conditional } })
    }

    /// Cancels every request in flight for `session` (its webview closed, its pairing ended).
    pub fn cancel_session(&self, session: &str) -> usize {
        let mut n = 0;
        {
            let pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            for ((s, _), interaction) in pending.iter() {
                if s == session {
                    interaction.cancel();
                    n += 1;
                }
            }
        }
        if let Some(conditional) = &self.conditional {
            n += conditional.cancel_session(session);
        }
        n
    }
}

impl HandlerRegistry for ChannelRouter {
    fn register(&mut self, kind: &str, handler: Arc<dyn Handler>) -> Result<(), RegisterError> {
        ChannelRouter::register(self, kind, handler)
    }

    fn register_namespace(
        &mut self,
        prefix: &str,
        handler: Arc<dyn Handler>,
    ) -> Result<(), RegisterError> {
        ChannelRouter::register_namespace(self, prefix, handler)
    }
}

fn failure(request_id: &Json, error: impl Into<ChannelError>) -> Json {
    json!({ "requestId": request_id, "ok": false, "error": error.into().to_json() })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use passgate_platform_api::host_channel::namespace_of;

    use super::*;

    fn echo() -> Arc<dyn Handler> {
        Arc::new(|context: &Context<'_>, message: &Map<String, Json>| {
            Ok(json!({ "origin": context.sender.origin, "saw": message.get("value").cloned() }))
        })
    }

    #[test]
    fn routes_by_type_with_the_hosts_origin() {
        let mut router = ChannelRouter::new();
        router.register("demo.echo", echo()).unwrap();
        assert_eq!(router.types(), ["cancel", "demo.echo"]);
        let sender = Sender::new("https://app.example");
        let reply = router.handle_value(
            &sender,
            &json!({"type": "demo.echo", "requestId": 7, "value": 1, "origin": "https://evil.example"}),
            None,
        );
        assert_eq!(
            reply,
            json!({"requestId": 7, "ok": true, "result": {"origin": "https://app.example", "saw": 1}})
        );
        let unknown =
            router.handle_value(&sender, &json!({"type": "nope", "requestId": "x"}), None);
        assert_eq!(unknown["ok"], false);
        assert_eq!(unknown["requestId"], "x");
        assert_eq!(unknown["error"]["name"], "NotSupportedError");
        for bad in [
            "",
            "[]",
            "{\"requestId\":1}",
            "{\"type\":\"demo.echo\",\"requestId\":[1]}",
        ] {
            let reply: Json = serde_json::from_str(&router.handle(&sender, bad)).unwrap();
            assert_eq!(reply["ok"], false, "{bad}");
            assert_eq!(reply["error"]["name"], "TypeError", "{bad}");
        }
    }

    #[test]
    fn registration_refuses_taken_reserved_and_invalid_types() {
        let mut router = ChannelRouter::new();
        router.register("vault.open", echo()).unwrap();
        assert_eq!(
            router.register("vault.open", echo()),
            Err(RegisterError::Taken("vault.open".into()))
        );
        assert_eq!(
            router.register("cancel", echo()),
            Err(RegisterError::Reserved("cancel".into()))
        );
        for bad in ["", "has space", "é", &"x".repeat(65)] {
            assert!(
                matches!(router.register(bad, echo()), Err(RegisterError::Invalid(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_namespace_takes_every_type_under_its_prefix() {
        let mut router = ChannelRouter::new();
        router.register("vault.exact", echo()).unwrap();
        assert_eq!(
            router.register_namespace("vault.", echo()),
            Err(RegisterError::Taken("vault.*".into())),
            "a registered type lies in it"
        );
        let namespace: Arc<dyn Handler> = Arc::new(
            |context: &Context<'_>, message: &Map<String, Json>| {
                Ok(
                    json!({ "namespace": message.get("type").cloned(), "origin": context.sender.origin }),
                )
            },
        );
        router
            .register_namespace("soter.", Arc::clone(&namespace))
            .unwrap();
        for overlapping in ["soter.", "soter.x."] {
            assert!(
                router
                    .register_namespace(overlapping, Arc::clone(&namespace))
                    .is_err(),
                "{overlapping}"
            );
        }
        for bad in ["soter", "", ".", "..", "has space.", "-x."] {
            assert_eq!(
                router.register_namespace(bad, Arc::clone(&namespace)),
                Err(RegisterError::InvalidNamespace(bad.to_owned())),
                "{bad}"
            );
        }
        assert_eq!(
            router.register("soter.start", echo()),
            Err(RegisterError::Taken("soter.start".into()))
        );
        assert_eq!(router.types(), ["cancel", "soter.*", "vault.exact"]);
        let sender = Sender::new("https://app.example");
        for kind in ["soter.startSoterAuthentication", "soter.notYetInvented"] {
            let reply = router.handle_value(&sender, &json!({"type": kind, "requestId": 1}), None);
            assert_eq!(
                reply,
                json!({"requestId": 1, "ok": true, "result": {"namespace": kind, "origin": "https://app.example"}})
            );
        }
        let exact = router.handle_value(&sender, &json!({"type": "vault.exact", "value": 2}), None);
        assert_eq!(exact["result"]["saw"], 2);
        let outside = router.handle_value(&sender, &json!({"type": "vault.other"}), None);
        assert_eq!(outside["error"]["name"], "NotSupportedError");
        assert_eq!(namespace_of("vault.open"), Some("vault."));
        assert_eq!(namespace_of("vaults"), None);
    }

    #[test]
    fn cancel_reaches_the_running_request_of_the_same_session_only() {
        let mut router = ChannelRouter::new();
        router
            .register(
                "wait",
                Arc::new(|context: &Context<'_>, _: &Map<String, Json>| {
                    let deadline = Instant::now() + Duration::from_secs(10);
                    while !context.interaction.is_cancelled() {
                        if Instant::now() > deadline {
                            return Ok(json!("not cancelled"));
                        }
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(BridgeError::new(ErrorName::AbortError, "cancelled").into())
                }),
            )
            .unwrap();
        let router = Arc::new(router);
        let alice = Sender::new("https://a.example");
        let running = {
            let router = Arc::clone(&router);
            let alice = alice.clone();
            std::thread::spawn(move || {
                router.handle_value(&alice, &json!({"type": "wait", "requestId": "r1"}), None)
            })
        };
        while router.pending.lock().unwrap().is_empty() {
            std::thread::sleep(Duration::from_millis(5));
        }
        // The same requestId twice at once is refused.
        let twice = router.handle_value(&alice, &json!({"type": "wait", "requestId": "r1"}), None);
        assert_eq!(twice["error"]["name"], "InvalidStateError");
        // Another session cannot cancel it.
        let mallory = Sender::new("https://a.example").in_session("other");
        let foreign = router.handle_value(
            &mallory,
            &json!({"type": "cancel", "requestId": "c0", "target": "r1"}),
            None,
        );
        assert_eq!(foreign["result"]["cancelled"], false);
        let cancel = router.handle_value(
            &alice,
            &json!({"type": "cancel", "requestId": "c1", "target": "r1"}),
            None,
        );
        assert_eq!(
            cancel,
            json!({"requestId": "c1", "ok": true, "result": {"cancelled": true}})
        );
        let reply = running.join().unwrap();
        assert_eq!(reply["requestId"], "r1");
        assert_eq!(reply["error"]["name"], "AbortError");
        assert!(router.pending.lock().unwrap().is_empty());
        let missing =
            router.handle_value(&alice, &json!({"type": "cancel", "requestId": "c2"}), None);
        assert_eq!(missing["error"]["name"], "TypeError");
    }
}
