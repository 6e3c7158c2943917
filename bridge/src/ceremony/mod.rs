//! [`Bridge`]: the create and get ceremonies (WebAuthn L3 §5.1.3, §5.1.4) against one CTAP 2.1
//! authenticator: the dispatch and the running ceremony here, the user interface in [`ui`],
//! user verification in [`uv`], each ceremony in [`create`] and [`get`].

mod approval;
mod create;
mod get;
mod request;
mod ui;
mod uv;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::Duration;

use ciborium::value::Value;
use passgate_client::cbor::{self, bytes, int_key, integer, text, text_key, text_map};
use passgate_client::pin::{self, SharedSecret};
use passgate_client::token_cache::TokenCache;
use passgate_client::{AuthenticatorInfo, ClientError, CtapTransport};
use passgate_platform_api::user_verifier::Interaction;
use passgate_proto::AuthenticatorData;
use passgate_proto::ctap::client_pin::{self, SubCommand};
use passgate_proto::ctap::data::{CredentialDescriptor, RpEntity, UserEntity};
use passgate_proto::ctap::{
    self, Command, Permissions, StatusCode, get_assertion, make_credential,
};
use passgate_proto::webauthn::{
    self, AssertionResponseJson, AttestationResponseJson, AuthenticationResponseJson,
    ClientExtensionResults, CredProps, PrfOutputs, RegistrationResponseJson,
};
use serde_json::{Value as Json, json};
use zeroize::Zeroizing;

use crate::accounts::AccountRecord;
use crate::b64;
use crate::client_data::{CeremonyType, client_data_json, client_data_json_payload_shown};
use crate::error::{BridgeError, ErrorName};
use crate::options::{
    self, CreationOptions, ExtensionInputs, PrfValues, RequestOptions, UserVerification,
    decode_member, descriptor_ids,
};
use crate::origin::Caller;

/// The ceremony timeout when the options give none (Chrome's default is 5 minutes).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
/// The longest timeout honoured.
const MAX_TIMEOUT: Duration = Duration::from_secs(600);
/// How often a wrong PIN is asked again within one ceremony.
const PIN_ATTEMPTS: usize = 3;
/// The shortest timeout honoured (a page cannot make a ceremony impossible to answer).
const MIN_TIMEOUT: Duration = Duration::from_secs(1);

pub use approval::MAX_PAYLOAD_BYTES;
pub use request::WebAuthnRequest;
pub use ui::{
    Account, AccountChoice, ApprovalRequest, NewPinRequest, NoUserInterface, PinRequest, Purpose,
    RequestLabel, Unanswered, UnlockRequest, UserInterface,
};
use uv::{Uv, UvContext};

/// The WebAuthn client. Shareable between threads: [`Bridge::cancel`] aborts the running
/// ceremony from another thread; ceremonies run one at a time.
pub struct Bridge {
    transport: Mutex<Box<dyn CtapTransport>>,
    ui: Box<dyn UserInterface>,
    current: Mutex<Option<Interaction>>,
    /// What getInfo said last: feature queries are answered from it while a ceremony holds
    /// the authenticator, so that how long they take does not tell a page that a prompt is
    /// open (e.g. an autofill prompt, which would say that a passkey exists).
    last_info: Mutex<Option<AuthenticatorInfo>>,
    /// The pinUvAuthToken of the last PIN entry, offered for the window CTAP's rules allow
    /// (`passgate_client::token_cache`).
    tokens: Mutex<TokenCache>,
    /// Ceremonies waiting for the authenticator (they run one at a time): each prompt says
    /// how many wait behind it.
    waiting: AtomicUsize,
    /// Power-cycles only the authenticator (PIN_AUTH_BLOCKED recovery), where the host runs
    /// it in process; with the delay it waits after a block.
    power_cycle: Option<(PowerCycle, Duration)>,
    /// When the bridge first saw the PIN blocked until a power cycle (the unlock's delay
    /// counts from then).
    blocked_since: Mutex<Option<std::time::Instant>>,
    /// The accounts seen per site, when the host keeps them ([`Self::with_account_record`]):
    /// with two or more for a site, sign-in shows the choice before the one verification.
    accounts: Option<AccountRecord>,
}

/// What power-cycles the authenticator's PIN/UV state for the bridge; an error says why not.
pub type PowerCycle = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge").finish_non_exhaustive()
    }
}

/// One running ceremony: holds the transport, the cancellation handle and the timer.
pub(super) struct Ceremony<'a> {
    bridge: &'a Bridge,
    transport: MutexGuard<'a, Box<dyn CtapTransport>>,
    interaction: Interaction,
    timed_out: Arc<AtomicBool>,
    /// The ceremony's timeout, named when it runs out.
    timeout: Duration,
    /// Dropping it wakes and ends the timer thread.
    _timer: Option<mpsc::Sender<()>>,
    /// The requesting tab's title, when the page gave one.
    tab_title: Option<String>,
}

impl Drop for Ceremony<'_> {
    fn drop(&mut self) {
        self.bridge.ui.ceremony_ended();
        *self
            .bridge
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }
}

impl Ceremony<'_> {
    /// What the prompts say about where this request comes from and what waits behind it.
    pub(super) fn label(&self) -> RequestLabel<'_> {
        RequestLabel {
            tab_title: self.tab_title.as_deref(),
            waiting: self.bridge.waiting.load(Ordering::SeqCst),
        }
    }

    /// Names the tab this ceremony is for in its prompts.
    pub(super) fn for_tab(mut self, caller: &Caller) -> Self {
        self.tab_title.clone_from(&caller.tab_title);
        self
    }

    pub(super) fn cancelled(&self) -> BridgeError {
        if self.timed_out.load(Ordering::SeqCst) {
            BridgeError::not_allowed(format!(
                "no answer within {} s: the request timed out",
                self.timeout.as_secs()
            ))
        } else {
            BridgeError::new(ErrorName::AbortError, "the request was cancelled")
        }
    }

    /// Runs one CTAP command; an error status becomes the page's exception.
    pub(super) fn call(&mut self, cmd: u8, params: Option<&Value>) -> Result<Value, BridgeError> {
        self.call_status(cmd, params)?
            .map_err(BridgeError::from_status)
    }

    /// Runs one CTAP command; the inner error is the authenticator's status (other than
    /// KEEPALIVE_CANCEL, which is the ceremony's cancellation or timeout).
    pub(super) fn call_status(
        &mut self,
        cmd: u8,
        params: Option<&Value>,
    ) -> Result<Result<Value, u8>, BridgeError> {
        let reply = self.exchange(cmd, params)?;
        if self.interaction.is_cancelled() {
            // Cancelled while the authenticator worked: the page has been told it is over,
            // whatever the answer (as browsers do).
            return Err(self.cancelled());
        }
        Ok(reply)
    }

    /// [`Self::call_status`] that returns the authenticator's answer even when the ceremony
    /// was cancelled while it worked (the caller checks afterwards): for answers worth
    /// keeping whatever happens to this ceremony, such as a pinUvAuthToken.
    pub(super) fn exchange(
        &mut self,
        cmd: u8,
        params: Option<&Value>,
    ) -> Result<Result<Value, u8>, BridgeError> {
        if self.interaction.is_cancelled() {
            return Err(self.cancelled());
        }
        let response = self
            .transport
            .call(&cbor::request(cmd, params), &self.interaction)?;
        match cbor::reply(&response)? {
            Err(status) if status == StatusCode::KeepaliveCancel.byte() => Err(self.cancelled()),
            reply => Ok(reply),
        }
    }

    /// Finds which of `ids` the authenticator holds for `rp_id` with silent (up=false)
    /// getAssertions, batch by batch, as platforms do for lists longer than the authenticator
    /// takes. Nothing is signed that a relying party would accept: the assertions carry no UP.
    pub(super) fn probe(
        &mut self,
        rp_id: &str,
        client_data_hash: &[u8],
        ids: &[Vec<u8>],
        batch: usize,
    ) -> Result<Option<Vec<u8>>, BridgeError> {
        for chunk in ids.chunks(batch.max(1)) {
            let mut probe = get_assertion::Request::new(rp_id, client_data_hash);
            probe.allow_list = chunk
                .iter()
                .map(|id| CredentialDescriptor::public_key(id))
                .collect();
            probe.options.up = Some(false);
            match self.call_status(
                Command::GetAssertion.byte(),
                ctap::Request::to_value(&probe).as_ref(),
            )? {
                Ok(r) => {
                    return Ok(bytes(int_key(&r, 1).and_then(|c| text_key(c, "id")))
                        .map(<[u8]>::to_vec)
                        .or_else(|| (chunk.len() == 1).then(|| chunk.concat())));
                }
                Err(status) if status == StatusCode::NoCredentials.byte() => {}
                Err(status) => return Err(BridgeError::from_status(status)),
            }
        }
        Ok(None)
    }

    pub(super) fn info(&mut self) -> Result<AuthenticatorInfo, BridgeError> {
        let info = AuthenticatorInfo::parse(&self.call(Command::GetInfo.byte(), None)?);
        *self
            .bridge
            .last_info
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(info.clone());
        Ok(info)
    }

    pub(super) fn shared_secret(&mut self) -> Result<SharedSecret, BridgeError> {
        let response = self.send(&pin::subcommand_request(SubCommand::GET_KEY_AGREEMENT))?;
        Ok(SharedSecret::establish(&response)?)
    }

    /// Runs one typed CTAP request; an error status becomes the page's exception.
    pub(super) fn send<Q: ctap::Request, A: ctap::Response>(
        &mut self,
        request: &Q,
    ) -> Result<A, BridgeError> {
        self.send_status(request)?.map_err(BridgeError::from_status)
    }

    /// Runs one typed CTAP request; the inner error is the authenticator's status.
    pub(super) fn send_status<Q: ctap::Request, A: ctap::Response>(
        &mut self,
        request: &Q,
    ) -> Result<Result<A, u8>, BridgeError> {
        let params = request.to_value();
        match self.call_status(Q::COMMAND.byte(), params.as_ref())? {
            Ok(value) => Ok(Ok(A::from_value(value).map_err(ClientError::from)?)),
            Err(status) => Ok(Err(status)),
        }
    }
}

pub(super) fn sha256(data: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data)
        .as_ref()
        .to_vec()
}

/// The PRF salts (32 or 64 bytes) for `values`.
pub(super) fn prf_salts(values: &PrfValues) -> Result<Vec<u8>, BridgeError> {
    let mut salts = pin::prf_salt(&decode_member(&values.first, "prf.eval.first")?).to_vec();
    if let Some(second) = &values.second {
        salts.extend_from_slice(&pin::prf_salt(&decode_member(second, "prf.eval.second")?));
    }
    Ok(salts)
}

/// `{first, second?}` from a decrypted hmac-secret output (32 or 64 bytes).
pub(super) fn prf_results(output: &[u8]) -> Option<PrfValues> {
    Some(PrfValues {
        first: b64::encode(output.get(..32)?),
        second: output.get(32..64).map(b64::encode),
    })
}

/// A `toJSON()` form as the JSON value hosts pass on.
pub(super) fn to_json<T: serde::Serialize>(form: &T) -> Result<Json, BridgeError> {
    serde_json::to_value(form)
        .map_err(|e| BridgeError::unknown(format!("the credential does not serialise: {e}")))
}

pub(super) fn bad_auth_data(e: passgate_proto::AuthenticatorDataError) -> BridgeError {
    BridgeError::unknown(format!("bad authenticator data: {e}"))
}

pub(super) fn check_rp_id_hash(
    auth_data: &AuthenticatorData,
    rp_id: &str,
) -> Result<(), BridgeError> {
    if passgate_client::is_rp_id_hash(&auth_data.rp_id_hash, rp_id) {
        Ok(())
    } else {
        Err(BridgeError::unknown(
            "the authenticator answered for another RP ID",
        ))
    }
}

pub(super) fn timeout_of(ms: Option<u64>) -> Duration {
    ms.map_or(DEFAULT_TIMEOUT, |ms| {
        Duration::from_millis(ms).clamp(MIN_TIMEOUT, MAX_TIMEOUT)
    })
}

impl Bridge {
    /// A bridge to the authenticator behind `transport`, asking the person through `ui`.
    pub fn new(transport: Box<dyn CtapTransport>, ui: Box<dyn UserInterface>) -> Self {
        Self {
            transport: Mutex::new(transport),
            ui,
            current: Mutex::new(None),
            last_info: Mutex::new(None),
            tokens: Mutex::new(TokenCache::default()),
            waiting: AtomicUsize::new(0),
            power_cycle: None,
            blocked_since: Mutex::new(None),
            accounts: None,
        }
    }

    /// Keeps the accounts seen per site in `record` ([`crate::accounts`]): a sign-in on a
    /// site with two or more known accounts shows the choice first, then verifies once for
    /// the chosen account.
    #[must_use]
    pub fn with_account_record(mut self, record: AccountRecord) -> Self {
        self.accounts = Some(record);
        self
    }

    /// The recorded accounts of `rp_id` that `allow` lets answer (all of them when it is
    /// empty). The record is a convenience: one that cannot be read is logged and offers
    /// nothing, and the sign-in goes on as without it.
    fn known_accounts(&self, rp_id: &str, allow: &[Vec<u8>]) -> Vec<Account> {
        let Some(record) = &self.accounts else {
            return Vec::new();
        };
        match record.accounts(rp_id) {
            Ok(accounts) => accounts
                .into_iter()
                .filter(|a| allow.is_empty() || allow.contains(&a.credential_id))
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "the account record cannot be read");
                Vec::new()
            }
        }
    }

    /// Records `seen` accounts of `rp_id` (after a create or a verified assertion), the
    /// first as the one used.
    fn learn_accounts(&self, rp_id: &str, seen: &[&Account]) {
        if let Some(record) = &self.accounts {
            if let Err(e) = record.learn(rp_id, seen) {
                tracing::warn!(error = %e, "the account record cannot be written");
            }
        }
    }

    /// After a verified discoverable sign-in: `rp_id`'s record becomes exactly `found`.
    fn replace_accounts(&self, rp_id: &str, found: &[&Account]) {
        if let Some(record) = &self.accounts {
            if let Err(e) = record.replace(rp_id, found) {
                tracing::warn!(error = %e, "the account record cannot be written");
            }
        }
    }

    /// Forgets a credential the authenticator says it no longer holds.
    fn forget_stale_account(&self, rp_id: &str, credential_id: &[u8]) {
        if let Some(record) = &self.accounts {
            match record.forget_credential(rp_id, credential_id) {
                Ok(true) => {
                    tracing::info!(rp_id, "forgot a passkey the authenticator no longer holds")
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "the account record cannot be written"),
            }
        }
    }

    /// After three wrong PINs in a row, lets the person unlock from the prompt: `power_cycle`
    /// restarts only the authenticator's PIN/UV state (the in-process authenticator's
    /// [`passgate_authenticator::Authenticator::power_cycle`]), at least `delay` after the
    /// block. Pairing, passkeys and the PIN's durable retry count are kept.
    #[must_use]
    pub fn with_power_cycle(mut self, power_cycle: PowerCycle, delay: Duration) -> Self {
        self.power_cycle = Some((power_cycle, delay));
        self
    }

    /// Keeps a pinUvAuthToken for `ttl` after the PIN was entered (zero: never), instead of
    /// [`passgate_client::token_cache::DEFAULT_TTL`].
    #[must_use]
    pub fn with_pin_token_ttl(self, ttl: Duration) -> Self {
        *self.tokens.lock().unwrap_or_else(PoisonError::into_inner) = TokenCache::new(ttl);
        self
    }

    /// The kept-token cache.
    fn tokens(&self) -> MutexGuard<'_, TokenCache> {
        self.tokens.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// getInfo for a feature query: the last answer while a ceremony holds the
    /// authenticator, a fresh one otherwise.
    fn query_info(
        &self,
        interaction: Option<&Interaction>,
    ) -> Result<AuthenticatorInfo, BridgeError> {
        let busy = matches!(self.transport.try_lock(), Err(TryLockError::WouldBlock));
        if busy {
            let cached = self
                .last_info
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            if let Some(info) = cached {
                return Ok(info);
            }
        }
        let mut ceremony = self.begin(Duration::from_secs(10), interaction);
        ceremony.info()
    }

    /// Aborts the running ceremony (it fails with `AbortError`).
    pub fn cancel(&self) {
        if let Some(interaction) = self
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            interaction.cancel();
        }
    }

    /// Starts a ceremony that `interaction` (or [`Self::cancel`]) can cancel.
    fn begin(&self, timeout: Duration, interaction: Option<&Interaction>) -> Ceremony<'_> {
        // Counted while it waits for the one before it: that one's prompts say so.
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let transport = self
            .transport
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        let interaction = interaction.cloned().unwrap_or_default();
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Some(interaction.clone());
        let timed_out = Arc::new(AtomicBool::new(false));
        let (stop, wait) = mpsc::channel::<()>();
        let timer_interaction = interaction.clone();
        let timer_flag = Arc::clone(&timed_out);
        let timer = std::thread::Builder::new()
            .name("webauthn-timeout".into())
            .spawn(move || {
                if let Err(RecvTimeoutError::Timeout) = wait.recv_timeout(timeout) {
                    timer_flag.store(true, Ordering::SeqCst);
                    timer_interaction.cancel();
                }
            });
        Ceremony {
            bridge: self,
            transport,
            interaction,
            timed_out,
            timeout,
            _timer: timer.ok().map(|_| stop),
            tab_title: None,
        }
    }

    /// The bridge's one entry point: runs `request` (decoded where the host received it, see
    /// [`WebAuthnRequest`]), cancellable through `interaction` (the request and only it, even
    /// before it started) or [`Self::cancel`].
    ///
    /// The reply is the credential in `PublicKeyCredential.toJSON()` form for create and get,
    /// `{"result": bool}` for isUvpaa (which never fails: an unreachable authenticator is "not
    /// available"), `{"result": {...}}` for getClientCapabilities.
    pub fn execute(
        &self,
        request: &WebAuthnRequest,
        interaction: Option<&Interaction>,
    ) -> Result<Json, BridgeError> {
        match request {
            WebAuthnRequest::IsUvpaa => {
                // Like the browser's, this promise never rejects: an unreachable
                // authenticator is "not available".
                let available = self.is_uvpaa_with(interaction).unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "isUVPAA: the authenticator did not answer");
                    false
                });
                Ok(json!({ "result": available }))
            }
            WebAuthnRequest::GetClientCapabilities => {
                Ok(json!({ "result": self.client_capabilities_with(interaction) }))
            }
            WebAuthnRequest::Create { caller, options } => {
                self.create_inner(caller, options, interaction)
            }
            WebAuthnRequest::Get {
                caller,
                options,
                payload,
            } => {
                let purpose = match payload {
                    Some(payload) => Purpose::Approve { payload },
                    None => Purpose::Get,
                };
                self.get_inner(caller, options, interaction, purpose)
            }
        }
    }

    /// `PublicKeyCredential.getClientCapabilities()` (WebAuthn L3 §5.1.7) for this host and
    /// authenticator. Never fails: an unreachable authenticator offers nothing.
    fn client_capabilities_with(&self, interaction: Option<&Interaction>) -> Json {
        let info = self.query_info(interaction);
        let (verifies, prf) = match &info {
            Ok(info) => (self.can_verify(info), info.has_extension("hmac-secret")),
            Err(e) => {
                tracing::warn!(error = %e, "getClientCapabilities: the authenticator did not answer");
                (false, false)
            }
        };
        json!({
            "conditionalCreate": false,
            "conditionalGet": false,
            "hybridTransport": false,
            "passkeyPlatformAuthenticator": verifies,
            "userVerifyingPlatformAuthenticator": verifies,
            "relatedOrigins": false,
            "signalAllAcceptedCredentials": false,
            "signalCurrentUserDetails": false,
            "signalUnknownCredential": false,
            "extension:credProps": true,
            "extension:prf": prf,
        })
    }

    /// `isUserVerifyingPlatformAuthenticatorAvailable()`: built-in verification, or a PIN
    /// this host can collect.
    fn is_uvpaa_with(&self, interaction: Option<&Interaction>) -> Result<bool, BridgeError> {
        let info = self.query_info(interaction)?;
        Ok(self.can_verify(&info))
    }

    /// Whether a ceremony here can verify the user: built-in verification, a PIN this host
    /// can collect, or a first PIN this host can set.
    fn can_verify(&self, info: &AuthenticatorInfo) -> bool {
        info.uv_builtin()
            || (info.client_pin == Some(true) && self.ui.collects_pin())
            || (info.client_pin == Some(false) && self.ui.sets_pin())
    }

    /// Sets the authenticator's first PIN (authenticatorClientPIN setPIN).
    pub fn set_pin(&self, new_pin: &str) -> Result<(), BridgeError> {
        let mut ceremony = self.begin(Duration::from_secs(30), None);
        let secret = ceremony.shared_secret()?;
        let _: client_pin::Response = ceremony.send(&pin::set_pin_request(&secret, new_pin)?)?;
        Ok(())
    }
}
