//! Passkey autofill (conditional mediation) over the host channel.
//!
//! A page arms `navigator.credentials.get({mediation: "conditional"})` when it loads; a
//! browser answers it only when the person picks a passkey from the suggestions of a field
//! marked `autocomplete="… webauthn"`. A host channel has no autofill dropdown of its own, so
//! here the suggestions are in the trusted prompt, and the request goes through three states:
//!
//! 1. **Waiting** — armed and checked (the RP ID against the origin, the options), nothing
//!    else: no authenticator call, no prompt. The page's promise stays pending.
//! 2. **Offering** — the page's shim said the person is at such a field (`autofill`). The
//!    host looks silently (up = false, nothing signed that an RP would accept) for a passkey
//!    for the RP ID; when there is one, the trusted prompt runs the discoverable sign-in: it
//!    verifies the person and lists the accounts. When there is none, or the person
//!    dismisses the prompt, or an immediate request from the same session takes over, the
//!    request goes back to waiting, silently.
//! 3. **Settled** — the person picked an account and was verified (the page gets the
//!    credential), or the page aborted, or a newer conditional request of the same document
//!    replaced it (`AbortError`).
//!
//! ```text
//! page -> host  {"type": "get", "requestId": "r1", "mediation": "conditional", "documentId": "d7", "options": {...}}
//!                 -> at once {"pending": true} once armed, or the error that refuses it
//! page -> host  {"type": "wait", "requestId": "w2", "target": "r1"}
//!                 -> the credential, an error, or {"pending": true} after a window: wait again
//! page -> host  {"type": "autofill", "requestId": "h3", "target": "r1"}  -> at once {}
//! page -> host  {"type": "cancel", "requestId": "c4", "target": "r1"}
//! ```
//!
//! `documentId` (any string the shim picks per page load) only scopes replacement: a newer
//! conditional request replaces the older one of the same document, not another tab's.
//!
//! Why the hint comes from the page, and why that is safe: the host cannot see a page's
//! focus (the local bridge sees HTTP requests; a webview's native side sees no DOM events
//! that script could not cause with `element.focus()`), so the hint is the page's word and
//! is treated as nothing more. It only lets the host open the prompt that an immediate `get`
//! opens anyway, and the prompt still needs the person's PIN (or finger) and approval. What
//! the page must not learn — whether passkeys exist here, which accounts, whether the person
//! dismissed the prompt — it does not: the `autofill` reply is the same empty object at once
//! whatever happens, the only thing that ever settles the request besides the page's own
//! abort is a credential the person chose, and a request whose client waits is answered
//! `{"pending": true}` at the end of each window whatever runs meanwhile (the ceremony is not
//! tied to any one message). `docs/src/security/bridge.md` has the whole argument.
//!
//! Each `wait` ends after [`Limits::wait_window`] so that no transport holds a
//! request longer than it allows (the local bridge ends messages after 11 minutes); the
//! conditional request itself has no timeout, as in browsers. A request nobody waits for
//! (its page went away between two waits) is dropped after [`Limits::orphaned_after`].

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use passgate_platform_api::user_verifier::Interaction;
use serde_json::{Map, Value as Json, json};

use crate::Bridge;
use crate::ceremony::Purpose;
use crate::error::{BridgeError, ErrorName};
use crate::options::{self, RequestOptions};
use crate::origin::Caller;
use passgate_platform_api::host_channel::Sender;

/// The message type of the hint that the person is at a passkey autofill field.
pub const AUTOFILL: &str = "autofill";
/// The message type that waits for a conditional request's next window.
pub const WAIT: &str = "wait";
/// How many conditional requests one router holds at once.
pub const MAX_CONDITIONAL: usize = 16;
/// How often a waiting message checks whether its own message was cancelled.
const POLL: Duration = Duration::from_millis(50);

/// The timing of conditional requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How long one message waits before it is answered `{"pending": true}`.
    pub wait_window: Duration,
    /// How long a request may go without anybody waiting for it before it is dropped.
    pub orphaned_after: Duration,
}

impl Default for Limits {
    /// 25 s windows (well inside any transport's limits), dropped after 15 s unattended.
    fn default() -> Self {
        Self {
            wait_window: Duration::from_secs(25),
            orphaned_after: Duration::from_secs(15),
        }
    }
}

/// (session, requestId)
type Key = (String, String);

/// Where a conditional request is.
enum Phase {
    /// Armed: nothing runs, nobody is asked.
    Waiting,
    /// The silent look-up and, when a passkey exists, the ceremony in the trusted prompt.
    /// Cancelling `ceremony` closes the prompt; the request then waits again.
    Offering { ceremony: Interaction },
    /// The credential the person chose, or why the request ended.
    Settled(Result<Json, BridgeError>),
}

struct State {
    phase: Phase,
    /// Messages waiting for it right now.
    waiters: usize,
    /// Counts waits: only the newest one waits, an older one is answered "pending" at once
    /// (so a page cannot tie up a thread per message on one request).
    newest_wait: u64,
    /// Since when nobody waits (creation, or the last waiter's end).
    unattended_since: Instant,
}

/// One conditional request.
struct Pending {
    session: String,
    document: String,
    caller: Caller,
    options: RequestOptions,
    state: Mutex<State>,
    changed: Condvar,
}

impl Pending {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Ends the request with `outcome` (closing its prompt, if one is open) and wakes its
    /// waiters. A request already settled keeps its first outcome.
    fn settle(&self, outcome: Result<Json, BridgeError>) {
        let mut state = self.lock();
        match &state.phase {
            Phase::Settled(_) => return,
            Phase::Offering { ceremony } => ceremony.cancel(),
            Phase::Waiting => {}
        }
        state.phase = Phase::Settled(outcome);
        drop(state);
        self.changed.notify_all();
    }
}

struct Registry {
    requests: HashMap<Key, Arc<Pending>>,
    /// Immediate ceremonies running, per session: autofill hints are ignored meanwhile.
    immediate: HashMap<String, usize>,
}

/// The conditional requests of one router.
pub(crate) struct Conditional {
    bridge: Arc<Bridge>,
    limits: Limits,
    registry: Mutex<Registry>,
}

/// While it lives, an immediate create/get runs in its session (see [`Conditional::immediate`]).
pub(crate) struct ImmediateGuard<'a> {
    conditional: &'a Conditional,
    session: String,
}

impl Drop for ImmediateGuard<'_> {
    fn drop(&mut self) {
        let mut registry = self.conditional.lock();
        if let Some(n) = registry.immediate.get_mut(&self.session) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                registry.immediate.remove(&self.session);
            }
        }
    }
}

fn aborted(message: &str) -> BridgeError {
    BridgeError::new(ErrorName::AbortError, message)
}

fn target_of(message: &Map<String, Json>, kind: &str) -> Result<String, BridgeError> {
    match message.get("target") {
        Some(Json::String(s)) => Ok(s.clone()),
        Some(Json::Number(n)) => Ok(n.to_string()),
        _ => Err(BridgeError::type_error(format!(
            "a {kind:?} message names its conditional request in \"target\""
        ))),
    }
}

impl Conditional {
    pub(crate) fn new(bridge: Arc<Bridge>, limits: Limits) -> Self {
        Self {
            bridge,
            limits,
            registry: Mutex::new(Registry {
                requests: HashMap::new(),
                immediate: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Drops the requests nobody has waited for in a while (their page is gone).
    fn reap(&self, registry: &mut Registry) {
        let now = Instant::now();
        let limit = self.limits.orphaned_after;
        registry.requests.retain(|_, pending| {
            let state = pending.lock();
            let orphaned = state.waiters == 0 && now.duration_since(state.unattended_since) > limit;
            drop(state);
            if orphaned {
                tracing::debug!(
                    session = pending.session,
                    "a conditional request nobody waits for was dropped"
                );
                pending.settle(Err(aborted("nobody waits for this conditional request")));
            }
            !orphaned
        });
    }

    /// `get` with `mediation: "conditional"`: checks and arms the request (replacing the
    /// document's earlier one) and answers `{"pending": true}` at once; `wait` follows.
    pub(crate) fn arm(
        &self,
        sender: &Sender,
        request_id: Option<String>,
        message: &Map<String, Json>,
    ) -> Result<Json, BridgeError> {
        let request_id = request_id.ok_or_else(|| {
            BridgeError::type_error("a conditional request needs a \"requestId\"")
        })?;
        let options = message
            .get("options")
            .ok_or_else(|| BridgeError::type_error("the request has no \"options\""))?;
        let options: RequestOptions = options::parse(options, "request options")?;
        let caller = Caller::new(&sender.origin, sender.top_origin.as_deref())?
            .with_tab_title(message.get("tab"));
        // Refused at once when it could never succeed, as browsers do.
        Bridge::check_get(&caller, &options)?;
        let document = match message.get("documentId") {
            None | Some(Json::Null) => String::new(),
            Some(Json::String(s)) if s.len() <= 128 => s.clone(),
            Some(_) => {
                return Err(BridgeError::type_error(
                    "\"documentId\" must be a string of at most 128 bytes",
                ));
            }
        };
        let pending = Arc::new(Pending {
            session: sender.session.clone(),
            document,
            caller,
            options,
            state: Mutex::new(State {
                phase: Phase::Waiting,
                waiters: 0,
                newest_wait: 0,
                unattended_since: Instant::now(),
            }),
            changed: Condvar::new(),
        });
        let key = (sender.session.clone(), request_id);
        {
            let mut registry = self.lock();
            self.reap(&mut registry);
            // One conditional request per document: a newer one replaces it (the page armed
            // again, e.g. after switching authenticators).
            let replaced: Vec<Key> = registry
                .requests
                .iter()
                .filter(|(k, p)| {
                    **k == key || (p.session == pending.session && p.document == pending.document)
                })
                .map(|(k, _)| k.clone())
                .collect();
            for k in replaced {
                if let Some(old) = registry.requests.remove(&k) {
                    old.settle(Err(aborted(
                        "a newer conditional request of this page replaced this one",
                    )));
                }
            }
            if registry.requests.len() >= MAX_CONDITIONAL {
                return Err(BridgeError::not_allowed(
                    "too many conditional requests are waiting",
                ));
            }
            registry.requests.insert(key.clone(), Arc::clone(&pending));
        }
        tracing::debug!(session = key.0, "a conditional request is armed");
        Ok(json!({ "pending": true }))
    }

    /// `wait`: the next window of the conditional request `target`.
    pub(crate) fn wait(
        &self,
        sender: &Sender,
        message: &Map<String, Json>,
        interaction: &Interaction,
    ) -> Result<Json, BridgeError> {
        let key = (sender.session.clone(), target_of(message, WAIT)?);
        let pending = {
            let mut registry = self.lock();
            self.reap(&mut registry);
            registry.requests.get(&key).cloned()
        };
        let Some(pending) = pending else {
            return Err(BridgeError::new(
                ErrorName::InvalidStateError,
                "no such conditional request (it ended, or it never existed)",
            ));
        };
        self.wait_on(&key, &pending, interaction)
    }

    /// Waits until the request settles, this message is cancelled (the page aborted or went
    /// away: that ends the request), or the window ends.
    fn wait_on(
        &self,
        key: &Key,
        pending: &Arc<Pending>,
        interaction: &Interaction,
    ) -> Result<Json, BridgeError> {
        enum End {
            Settled(Result<Json, BridgeError>),
            Cancelled,
            Window,
        }
        let deadline = Instant::now() + self.limits.wait_window;
        let mut state = pending.lock();
        state.waiters += 1;
        state.newest_wait += 1;
        let this_wait = state.newest_wait;
        pending.changed.notify_all();
        let end = loop {
            if let Phase::Settled(outcome) = &state.phase {
                break End::Settled(outcome.clone());
            }
            if interaction.is_cancelled() {
                break End::Cancelled;
            }
            let now = Instant::now();
            if now >= deadline || state.newest_wait != this_wait {
                break End::Window;
            }
            state = pending
                .changed
                .wait_timeout(state, POLL.min(deadline - now))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        };
        state.waiters = state.waiters.saturating_sub(1);
        state.unattended_since = Instant::now();
        drop(state);
        match end {
            End::Settled(outcome) => {
                self.forget(key, pending);
                outcome
            }
            End::Cancelled => {
                self.forget(key, pending);
                pending.settle(Err(aborted("the request was cancelled")));
                Err(aborted("the request was cancelled"))
            }
            End::Window => Ok(json!({ "pending": true })),
        }
    }

    /// Removes `pending` from the registry, if it is still the one filed under `key`.
    fn forget(&self, key: &Key, pending: &Arc<Pending>) {
        let mut registry = self.lock();
        if registry
            .requests
            .get(key)
            .is_some_and(|p| Arc::ptr_eq(p, pending))
        {
            registry.requests.remove(key);
        }
    }

    /// `autofill`: the page says the person is at a passkey field. Opens the offer for the
    /// request `target` if it waits and no immediate ceremony of the session runs; never
    /// says what happened.
    pub(crate) fn hint(
        &self,
        sender: &Sender,
        message: &Map<String, Json>,
    ) -> Result<Json, BridgeError> {
        let key = (sender.session.clone(), target_of(message, AUTOFILL)?);
        let mut registry = self.lock();
        self.reap(&mut registry);
        let busy = registry.immediate.contains_key(&key.0);
        if let (false, Some(pending)) = (busy, registry.requests.get(&key)) {
            let mut state = pending.lock();
            if matches!(state.phase, Phase::Waiting) {
                let ceremony = Interaction::new();
                state.phase = Phase::Offering {
                    ceremony: ceremony.clone(),
                };
                drop(state);
                self.offer(Arc::clone(pending), ceremony);
            }
        }
        Ok(json!({}))
    }

    /// Runs the offer on a thread of its own: it outlives any one message.
    fn offer(&self, pending: Arc<Pending>, ceremony: Interaction) {
        let bridge = Arc::clone(&self.bridge);
        let spawned = std::thread::Builder::new()
            .name("passkey-autofill".into())
            .spawn({
                let pending = Arc::clone(&pending);
                move || run_offer(&bridge, &pending, &ceremony)
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the autofill offer");
            let mut state = pending.lock();
            if matches!(state.phase, Phase::Offering { .. }) {
                state.phase = Phase::Waiting;
            }
        }
    }

    /// Cancels the conditional request `target` of `session`; whether there was one.
    pub(crate) fn cancel(&self, session: &str, target: &str) -> bool {
        let key = (session.to_owned(), target.to_owned());
        let removed = self.lock().requests.remove(&key);
        match removed {
            Some(pending) => {
                pending.settle(Err(aborted("the request was cancelled")));
                true
            }
            None => false,
        }
    }

    /// Cancels every conditional request of `session`; how many there were.
    pub(crate) fn cancel_session(&self, session: &str) -> usize {
        let mut registry = self.lock();
        let keys: Vec<Key> = registry
            .requests
            .keys()
            .filter(|(s, _)| s == session)
            .cloned()
            .collect();
        for key in &keys {
            if let Some(pending) = registry.requests.remove(key) {
                pending.settle(Err(aborted("the session ended")));
            }
        }
        keys.len()
    }

    /// An immediate create/get of `session` starts: an open autofill prompt of the session
    /// closes (its request waits again; the person's attention is on the new request), and
    /// hints are ignored until the guard is dropped.
    pub(crate) fn immediate(&self, session: &str) -> ImmediateGuard<'_> {
        let mut registry = self.lock();
        *registry.immediate.entry(session.to_owned()).or_insert(0) += 1;
        for pending in registry.requests.values().filter(|p| p.session == session) {
            if let Phase::Offering { ceremony } = &pending.lock().phase {
                ceremony.cancel();
            }
        }
        ImmediateGuard {
            conditional: self,
            session: session.to_owned(),
        }
    }
}

/// The offer: a silent look-up, then the discoverable sign-in in the trusted prompt. Only a
/// credential settles the request; anything else sends it back to waiting, silently.
fn run_offer(bridge: &Bridge, pending: &Pending, ceremony: &Interaction) {
    let outcome = match bridge.has_credentials(&pending.caller, &pending.options, ceremony) {
        Ok(true) => Some(bridge.get_inner(
            &pending.caller,
            &pending.options,
            Some(ceremony),
            Purpose::Autofill,
        )),
        Ok(false) => {
            tracing::debug!("no passkey for this RP ID: the conditional request keeps waiting");
            None
        }
        Err(e) => {
            tracing::info!(error = %e, "the silent look-up failed: the conditional request keeps waiting");
            None
        }
    };
    let mut state = pending.lock();
    if !matches!(state.phase, Phase::Offering { .. }) {
        // Settled meanwhile (aborted, replaced, dropped): whatever came out is discarded.
        return;
    }
    state.phase = match outcome {
        Some(Ok(credential)) => {
            tracing::info!("signed in from passkey autofill");
            Phase::Settled(Ok(credential))
        }
        Some(Err(e)) => {
            tracing::info!(error = %e, "the autofill sign-in did not finish: the conditional request keeps waiting");
            Phase::Waiting
        }
        None => Phase::Waiting,
    };
    drop(state);
    pending.changed.notify_all();
}
