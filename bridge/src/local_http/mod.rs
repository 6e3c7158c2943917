//! The local HTTP bridge: the host channel over HTTP on a loopback address, for pages in an
//! ordinary browser during development (and webviews whose app prefers it).
//!
//! ```text
//! POST /v1/pair     {"code": "ABCD-EFGH-JKMN"}         -> {"token": "...", "origin": "..."}
//! POST /v1/message  Authorization: Bearer TOKEN, a host-channel message (see `channel`)
//!                                                      -> the reply
//! POST /v1/unpair   Authorization: Bearer TOKEN        -> {"unpaired": true}
//! OPTIONS ...       CORS preflight, answered for the configured origins only
//! ```
//!
//! Who is calling is the HTTP `Origin` header, and nothing else: the body never names the
//! origin. A browser sets that header itself and no page script can change it, so a page can
//! only ever speak as its own origin. Only configured origins are answered (others get 403
//! and no CORS headers, so their script cannot even read the refusal), and only after
//! pairing: a page proves once that the person wants it to use passgate by sending the code
//! passgate showed in its own terminal, and gets a token bound to its origin. Codes and
//! tokens are compared in constant time. The code is used once: a successful pairing replaces
//! it (the new one is shown where the old one was). Wrong codes make that origin wait, longer
//! after each one (other origins are not held up, so a local process cannot lock the person
//! out by guessing in another origin's name for ever).
//!
//! Pairings outlive the process when [`Config::pairings`] names a file (`passgate demo` and
//! `passgate bridge local-http` keep them in `STATE/local-bridge/pairings.json`, see
//! [`PairingStore`]); `passgate bridge unpair` revokes them, and a running bridge sees that
//! before its next answer. A token the bridge does not know gets 401 `pairing_stale` ("pair
//! again"), one issued to another origin 401 `pairing_invalid`.
//!
//! Bodies are JSON of at most [`Config::max_body_bytes`]; headers and bodies must arrive
//! within their timeouts; a request whose client goes away is cancelled; every refusal is
//! `{"error": {"code", "message"}}` with a 4xx status.

mod pairing;
mod refusal;
mod routes;
mod store;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use zeroize::Zeroizing;

use crate::b64;
use crate::channel::ChannelRouter;
use crate::conditional;
use pairing::{Pairing, Session, grouped, new_code, unix_now};
use routes::{AppState, entry};
pub use store::{
    MAX_PAIRINGS_PER_ORIGIN, PairingStore, PairingStoreError, Revoke, StoredPairing, pairings_path,
};

/// Limits and timeouts of the local bridge.
#[derive(Debug, Clone)]
pub struct Config {
    /// The origins answered, e.g. `http://localhost:8080` (exactly as browsers serialise
    /// them).
    pub allowed_origins: Vec<String>,
    /// The largest request body.
    pub max_body_bytes: usize,
    /// How long a client may take to send its request headers; also how long a connection
    /// may sit idle, before its first request or between two (hyper starts this timer
    /// whenever it waits for a request head).
    pub header_timeout: Duration,
    /// How long a client may take to send its body once the headers are in.
    pub body_timeout: Duration,
    /// The longest a message may run (ceremonies end by their own timeout, at most 10 min).
    pub request_timeout: Duration,
    /// Wrong pairing codes an origin may send before it must wait between tries.
    pub pairing_free_tries: u32,
    /// The longest wait between an origin's tries (the wait doubles from 1 s per wrong code).
    pub pairing_max_backoff: Duration,
    /// Messages handled at once (besides the waits of conditional requests, which have
    /// their own [`crate::conditional::MAX_CONDITIONAL`] so that armed pages never hold up a
    /// ceremony).
    pub max_in_flight: usize,
    /// Connections open at once; more are closed as they arrive (a local process opening
    /// thousands must not exhaust the descriptors the ceremonies need).
    pub max_connections: usize,
    /// Where pairings are kept so that they outlive the process (see [`PairingStore`]);
    /// `None` keeps them in memory only.
    pub pairings: Option<std::path::PathBuf>,
}

impl Config {
    /// Defaults for `allowed_origins`: 256 KiB bodies, 10 s for headers and for bodies,
    /// 11 min per message, 3 wrong pairing codes before waits of up to 5 min, 8 messages at
    /// once, 64 connections, pairings in memory only.
    pub fn new(allowed_origins: Vec<String>) -> Self {
        Self {
            allowed_origins,
            max_body_bytes: 256 * 1024,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(660),
            pairing_free_tries: 3,
            pairing_max_backoff: Duration::from_secs(300),
            max_in_flight: 8,
            max_connections: 64,
            pairings: None,
        }
    }
}

/// Why the local bridge cannot start.
#[derive(Debug, thiserror::Error)]
pub enum LocalBridgeError {
    /// An allowed origin is not an origin.
    #[error("{0:?} is not an origin (scheme://host[:port], nothing after it)")]
    Origin(String),
    /// No origin is allowed.
    #[error("the local bridge needs at least one allowed origin")]
    NoOrigins,
    /// Not a loopback address.
    #[error("the local bridge listens on loopback addresses only, not {0}")]
    NotLoopback(SocketAddr),
    /// No randomness for the pairing code.
    #[error("no randomness for the pairing code")]
    Random,
    /// The stored pairings cannot be read or written.
    #[error(transparent)]
    Store(#[from] PairingStoreError),
    /// An I/O error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Shows a new pairing code where the person sees it (the terminal running passgate).
type CodeDisplay = Box<dyn Fn(&str) + Send + Sync>;

/// What every clone of a [`LocalBridge`] (the server, each request's route state) shares:
/// its limits, the pairing state and the semaphores that bound the work in flight.
struct LocalBridgeState {
    router: Arc<ChannelRouter>,
    config: Config,
    allowed: Vec<String>,
    pairing: Mutex<Pairing>,
    code_display: Mutex<Option<CodeDisplay>>,
    in_flight: tokio::sync::Semaphore,
    connections: Arc<tokio::sync::Semaphore>,
    conditional_waits: tokio::sync::Semaphore,
}

/// The local HTTP bridge over a [`ChannelRouter`].
#[derive(Clone)]
pub struct LocalBridge {
    shared: Arc<LocalBridgeState>,
}

impl std::fmt::Debug for LocalBridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalBridge")
            .field("allowed", &self.shared.allowed)
            .finish_non_exhaustive()
    }
}

fn random_bytes<const N: usize>() -> Result<[u8; N], LocalBridgeError> {
    let mut out = [0u8; N];
    aws_lc_rs::rand::fill(&mut out).map_err(|_| LocalBridgeError::Random)?;
    Ok(out)
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data).as_ref());
    out
}

/// Serialises an origin as browsers send it in `Origin` (`http://LOCALHOST:8080/` is
/// `http://localhost:8080`).
pub fn normalize_origin(origin: &str) -> Result<String, LocalBridgeError> {
    let url = url::Url::parse(origin).map_err(|_| LocalBridgeError::Origin(origin.into()))?;
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(LocalBridgeError::Origin(origin.into()));
    }
    let serialized = url.origin().ascii_serialization();
    if serialized == "null" {
        return Err(LocalBridgeError::Origin(origin.into()));
    }
    Ok(serialized)
}

impl LocalBridge {
    /// A local bridge answering `config.allowed_origins` through `router`, with a fresh
    /// pairing code.
    pub fn new(router: Arc<ChannelRouter>, config: Config) -> Result<Self, LocalBridgeError> {
        let allowed = config
            .allowed_origins
            .iter()
            .map(|o| normalize_origin(o))
            .collect::<Result<Vec<_>, _>>()?;
        if allowed.is_empty() {
            return Err(LocalBridgeError::NoOrigins);
        }
        let code = new_code()?;
        let store = config.pairings.clone().map(PairingStore::new);
        let (stored, stamp) = match &store {
            Some(store) => store.load_stamped()?,
            None => (Vec::new(), None),
        };
        if !stored.is_empty() {
            tracing::info!(
                pairings = stored.len(),
                "local bridge: pages paired before stay paired"
            );
        }
        Ok(Self {
            shared: Arc::new(LocalBridgeState {
                router,
                in_flight: tokio::sync::Semaphore::new(config.max_in_flight.max(1)),
                connections: Arc::new(tokio::sync::Semaphore::new(config.max_connections.max(1))),
                conditional_waits: tokio::sync::Semaphore::new(conditional::MAX_CONDITIONAL),
                config,
                allowed,
                pairing: Mutex::new(Pairing {
                    code,
                    tries: std::collections::HashMap::new(),
                    sessions: stored.iter().map(Session::from_stored).collect(),
                    store,
                    stamp,
                }),
                code_display: Mutex::new(None),
            }),
        })
    }

    /// The pairing code, `XXXX-XXXX-XXXX`: show it where only the person can see it (the
    /// terminal running passgate), never to a page.
    pub fn pairing_code(&self) -> Zeroizing<String> {
        grouped(&self.lock().code)
    }

    /// Calls `display` with each new pairing code (a code is replaced once a page pairs with
    /// it): show it where the first one was shown.
    pub fn on_new_code(&self, display: impl Fn(&str) + Send + Sync + 'static) {
        *self
            .shared
            .code_display
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Box::new(display));
    }

    /// The origins answered.
    pub fn allowed_origins(&self) -> &[String] {
        &self.shared.allowed
    }

    /// Pairs `origin` without a code and returns its token: for a native app that loads its
    /// own page into a webview and injects the token with the shim. The token lives as long
    /// as this bridge (the app injects a new one each run), so it is never stored.
    pub fn issue_token(&self, origin: &str) -> Result<Zeroizing<String>, LocalBridgeError> {
        let origin = normalize_origin(origin)?;
        if !self.shared.allowed.contains(&origin) {
            return Err(LocalBridgeError::Origin(origin));
        }
        self.new_session(&origin, false)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pairing> {
        self.shared
            .pairing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// A new session for `origin` and its bearer token; `stored`: kept in the pairing store
    /// (when there is one), so that it outlives this process.
    fn new_session(
        &self,
        origin: &str,
        stored: bool,
    ) -> Result<Zeroizing<String>, LocalBridgeError> {
        let token = Zeroizing::new(b64::encode(&random_bytes::<32>()?));
        let id = passgate_platform_api::fs::hex(&random_bytes::<8>()?);
        let token_hash = Zeroizing::new(sha256(token.as_bytes()));
        let store = if stored {
            self.lock().store.clone()
        } else {
            None
        };
        match store {
            Some(store) => {
                let (all, stamp) = store.add(StoredPairing {
                    origin: origin.to_owned(),
                    id,
                    paired_at: unix_now(),
                    token_hash,
                })?;
                let gone = self.lock().replace_stored(&all, stamp);
                for id in gone {
                    self.shared.router.cancel_session(&id);
                }
            }
            None => self.lock().sessions.push(Session {
                token_hash,
                origin: origin.to_owned(),
                id,
                stored: false,
            }),
        }
        Ok(token)
    }

    /// The HTTP routes, for a server of the caller's own; `local` is the address it listens
    /// on (requests must name it in `Host`).
    pub fn app(&self, local: SocketAddr) -> axum::Router {
        let state = AppState {
            bridge: self.clone(),
            hosts: allowed_hosts(local),
        };
        axum::Router::new().fallback(entry).with_state(state)
    }

    /// Serves on `listener` (a loopback address) until `shutdown` resolves.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), LocalBridgeError> {
        let local = listener.local_addr()?;
        if !local.ip().is_loopback() {
            return Err(LocalBridgeError::NotLoopback(local));
        }
        let app = self.app(local);
        let header_timeout = self.shared.config.header_timeout;
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "local bridge: accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            if !peer.ip().is_loopback() {
                continue;
            }
            let Ok(slot) = Arc::clone(&self.shared.connections).try_acquire_owned() else {
                tracing::warn!(
                    limit = self.shared.config.max_connections,
                    "local bridge: too many connections, closing a new one"
                );
                continue;
            };
            let service = hyper_util::service::TowerToHyperService::new(app.clone());
            tokio::spawn(async move {
                let _slot = slot;
                let connection = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(header_timeout)
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "local bridge: connection ended");
                }
            });
        }
        // Whatever is still running is abandoned: cancel it so no prompt stays open.
        let sessions: Vec<String> = self.lock().sessions.iter().map(|s| s.id.clone()).collect();
        for id in sessions {
            self.shared.router.cancel_session(&id);
        }
        Ok(())
    }
}

/// `Host` values that name this server (anything else may be a DNS-rebinding attack).
fn allowed_hosts(local: SocketAddr) -> Vec<String> {
    let port = local.port();
    vec![
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
        local.to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use super::pairing::{CODE_ALPHABET, CODE_LENGTH, normalize_code};
    use super::*;

    #[test]
    fn codes_are_normalised_and_origins_serialised() {
        assert_eq!(normalize_code(" abcd-efgh-jkmn ").as_str(), "ABCDEFGHJKMN");
        assert_eq!(normalize_code("o1lI").as_str(), "0111");
        assert_eq!(
            normalize_origin("http://LOCALHOST:8080/").unwrap(),
            "http://localhost:8080"
        );
        assert_eq!(
            normalize_origin("https://example.com:443").unwrap(),
            "https://example.com"
        );
        for bad in [
            "localhost:8080",
            "http://localhost:8080/path",
            "data:text/plain,x",
            "file:///tmp",
        ] {
            assert!(normalize_origin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pairing_codes_are_twelve_crockford_symbols() {
        let bridge = LocalBridge::new(
            Arc::new(ChannelRouter::new()),
            Config::new(vec!["http://localhost:8080".into()]),
        )
        .unwrap();
        let code = bridge.pairing_code();
        assert_eq!(code.len(), 14);
        let symbols = normalize_code(&code);
        assert_eq!(symbols.len(), CODE_LENGTH);
        assert!(symbols.bytes().all(|b| CODE_ALPHABET.contains(&b)));
        let other = LocalBridge::new(
            Arc::new(ChannelRouter::new()),
            Config::new(vec!["http://localhost:8080".into()]),
        )
        .unwrap();
        assert_ne!(*code, *other.pairing_code());
        assert!(matches!(
            LocalBridge::new(Arc::new(ChannelRouter::new()), Config::new(vec![])),
            Err(LocalBridgeError::NoOrigins)
        ));
    }
}
