//! The app APIs on a host channel: [`register`] puts the `biometric.*`, `vault.*` and
//! `soter.*` namespaces on a host's router (any [`HandlerRegistry`]; in passgate the bridge's
//! `ChannelRouter`, which the binary and the Tauri plugin compose) — the one a webview host or
//! the local HTTP bridge already runs for WebAuthn — so a page reaches both through the same
//! channel, the same origin checks and the same pairing. This crate knows only the seam
//! (`passgate_platform_api::host_channel`), not the bridge.
//!
//! ```text
//! page -> host  {"type": "vault.unlock", "requestId": "r7", "vaultId": "session"}
//! host -> page  {"requestId": "r7", "ok": true, "result": {"result": null, "events": [...]}}
//!           or  {"requestId": "r7", "ok": true, "result": {"error": {"code": "UserCanceledInteraction", ...}}}
//! ```
//!
//! The channel's `result` is the app router's whole reply (`{result}` or `{error}`, plus
//! `events`): app errors carry their own codes (`VaultErrorCodes`, the mobile biometric codes,
//! SOTER's `errCode`s), which a DOMException name would lose, so `ok: false` is left to the
//! channel's own failures (not paired, too many requests, a cross-origin frame).
//!
//! **The caller is the host's sender origin** — the webview's committed origin, the local
//! bridge's `Origin` header — never anything in the message: vaults, proof keys and SOTER keys
//! are kept per origin, so two origins never see each other's. A member naming a caller
//! (`caller`, `origin`) is refused like any unknown member (`invalidRequest`). The channel's
//! cancellation handle is passed on, so a `cancel` message (or the HTTP client going away)
//! closes a waiting PIN prompt or fingerprint scan.

use std::sync::Arc;

use passgate_platform_api::host_channel::{
    ChannelError, Context, Handler, HandlerRegistry, RegisterError,
};
use serde_json::{Map, Value as Json};

use crate::router::AppRouter;

/// The host-channel handler of every app-API message type.
#[derive(Debug, Clone)]
pub struct AppHandler {
    router: Arc<AppRouter>,
}

impl AppHandler {
    /// A handler that answers through `router` (one per process, shared by every caller).
    pub fn new(router: Arc<AppRouter>) -> Self {
        Self { router }
    }
}

impl Handler for AppHandler {
    fn handle(
        &self,
        context: &Context<'_>,
        message: &Map<String, Json>,
    ) -> Result<Json, ChannelError> {
        let sender = context.sender;
        if sender
            .top_origin
            .as_deref()
            .is_some_and(|top| top != sender.origin)
        {
            // A frame of another origin inside the app's page (an ad, a widget) must not get a
            // vault of its own through the app's host.
            return Err(ChannelError::new(
                FRAME_REFUSED,
                "the app APIs answer top-level documents only, not cross-origin frames",
            ));
        }
        // `requestId` is the channel's; everything else is the app request as sent.
        let mut request = message.clone();
        request.remove("requestId");
        Ok(self
            .router
            .dispatch(&sender.origin, &Json::Object(request), context.interaction))
    }
}

/// The error name a cross-origin frame gets (the channel's own failure, before any app API:
/// the name a browser gives the same refusal).
pub const FRAME_REFUSED: &str = "SecurityError";

/// The namespaces of the app APIs on a host channel: every type in them goes to one handler.
pub const NAMESPACES: [&str; 3] = ["biometric.", "vault.", "soter."];

/// Registers the app-API namespaces on `channel` (a host's channel router), answered by
/// `router`.
pub fn register(
    channel: &mut dyn HandlerRegistry,
    router: Arc<AppRouter>,
) -> Result<(), RegisterError> {
    let handler: Arc<dyn Handler> = Arc::new(AppHandler::new(router));
    for namespace in NAMESPACES {
        channel.register_namespace(namespace, Arc::clone(&handler))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use passgate_platform_api::host_channel::namespace_of;

    use super::*;

    #[test]
    fn every_routed_type_lies_in_an_app_namespace() {
        for kind in crate::router::MESSAGE_TYPES {
            assert!(
                namespace_of(kind).is_some_and(|ns| NAMESPACES.contains(&ns)),
                "{kind} would not reach the app router through the host channel"
            );
        }
    }
}
