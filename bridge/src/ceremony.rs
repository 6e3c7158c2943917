//! [`Bridge`]: the create and get ceremonies (WebAuthn L3 §5.1.3, §5.1.4) against one CTAP 2.1
//! authenticator.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::Duration;

use ciborium::value::Value;
use passgate_authenticator::api::user_verifier::Interaction;
use passgate_client::cbor::{self, bytes, int_key, integer, text, text_key, text_map};
use passgate_client::pin::{self, SharedSecret};
use passgate_client::{AuthenticatorInfo, ClientError, CtapTransport};
use passgate_proto::AuthenticatorData;
use passgate_proto::ctap::client_pin::{self, SubCommand};
use passgate_proto::ctap::data::{CredentialDescriptor, RpEntity, UserEntity};
use passgate_proto::ctap::{
    self, Command, Permissions, StatusCode, get_assertion, make_credential,
};
use serde_json::{Map, Value as Json, json};
use zeroize::Zeroizing;

use crate::b64;
use crate::client_data::{CeremonyType, client_data_json};
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

/// One of several discoverable credentials the person picks from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The credential ID.
    pub credential_id: Vec<u8>,
    /// The user handle.
    pub user_handle: Option<Vec<u8>>,
    /// The account name, when the authenticator reveals it.
    pub name: Option<String>,
    /// The display name, when the authenticator reveals it.
    pub display_name: Option<String>,
}

/// What a ceremony that needs the person is for: shown in the host's prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose<'a> {
    /// Creating a passkey for this account name.
    Create {
        /// `user.name` from the creation options.
        user_name: &'a str,
    },
    /// Signing in (or re-authenticating, approving an action).
    Get,
    /// Signing in from passkey autofill: a conditional request the page armed, started by
    /// a hint that the person is at a sign-in field (a hint the page could have given
    /// itself: the prompt decides, not the hint).
    Autofill,
}

/// A request to enter the authenticator's PIN.
#[derive(Debug, Clone, Copy)]
pub struct PinRequest<'a> {
    /// The caller's origin, as the host established it (the prompt shows it).
    pub origin: &'a str,
    /// The RP ID the PIN token will be bound to.
    pub rp_id: &'a str,
    /// What the ceremony does.
    pub purpose: Purpose<'a>,
    /// The PIN entered before was wrong; this many attempts are left before the PIN is
    /// blocked (when the authenticator said).
    pub after_wrong_pin: Option<Option<u64>>,
    /// Cancelled when the page aborts or the ceremony times out: the prompt must close then.
    pub interaction: &'a Interaction,
}

/// A request to choose the authenticator's first PIN (asked twice, so a typo is not locked
/// in). Made when user verification is needed and the authenticator has no PIN yet.
#[derive(Debug, Clone, Copy)]
pub struct NewPinRequest<'a> {
    /// The caller's origin.
    pub origin: &'a str,
    /// The RP ID of the ceremony that needs it.
    pub rp_id: &'a str,
    /// What the ceremony does.
    pub purpose: Purpose<'a>,
    /// The shortest PIN the authenticator accepts, in Unicode code points.
    pub min_length: usize,
    /// Why the previous choice was refused, if it was.
    pub problem: Option<&'a str>,
    /// Cancelled when the page aborts or the ceremony times out.
    pub interaction: &'a Interaction,
}

/// Several discoverable credentials answered: the person picks one.
#[derive(Debug, Clone, Copy)]
pub struct AccountChoice<'a> {
    /// The caller's origin.
    pub origin: &'a str,
    /// The RP ID.
    pub rp_id: &'a str,
    /// What the sign-in is for ([`Purpose::Get`] or [`Purpose::Autofill`]).
    pub purpose: Purpose<'a>,
    /// The accounts, newest first.
    pub accounts: &'a [Account],
    /// Cancelled when the page aborts or the ceremony times out.
    pub interaction: &'a Interaction,
}

/// What the bridge asks of the person through the host's own (trusted) UI: never the page.
pub trait UserInterface: Send + Sync {
    /// Whether this host can ask for the authenticator's PIN.
    fn collects_pin(&self) -> bool {
        false
    }

    /// Asks for the PIN; `None` when the person declines or the request is cancelled.
    fn pin(&self, _request: &PinRequest<'_>) -> Option<Zeroizing<String>> {
        None
    }

    /// Whether this host can set the authenticator's first PIN when verification is required
    /// and none is set yet.
    fn sets_pin(&self) -> bool {
        false
    }

    /// Asks for a new PIN, twice, and returns it once both entries match; `None` when the
    /// person declines or the request is cancelled.
    fn new_pin(&self, _request: &NewPinRequest<'_>) -> Option<Zeroizing<String>> {
        None
    }

    /// Lets the person pick one of several accounts in a discoverable sign-in; `None` when
    /// they decline. The default takes the first (the authenticator lists newest first).
    fn choose_account(&self, choice: &AccountChoice<'_>) -> Option<usize> {
        (!choice.accounts.is_empty()).then_some(0)
    }
}

/// A host with no UI of its own: no PIN entry, the newest account in discoverable sign-ins.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoUserInterface;

impl UserInterface for NoUserInterface {}

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
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge").finish_non_exhaustive()
    }
}

/// How a ceremony verifies the user.
enum Uv {
    /// It does not.
    None,
    /// The authenticator's built-in method (`options.uv = true`).
    BuiltIn,
    /// A pinUvAuthToken obtained with the PIN.
    Token(Zeroizing<Vec<u8>>),
}

/// One running ceremony: holds the transport, the cancellation handle and the timer.
struct Ceremony<'a> {
    bridge: &'a Bridge,
    transport: MutexGuard<'a, Box<dyn CtapTransport>>,
    interaction: Interaction,
    timed_out: Arc<AtomicBool>,
    /// Dropping it wakes and ends the timer thread.
    _timer: Option<mpsc::Sender<()>>,
}

impl Drop for Ceremony<'_> {
    fn drop(&mut self) {
        *self
            .bridge
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }
}

impl Ceremony<'_> {
    fn cancelled(&self) -> BridgeError {
        if self.timed_out.load(Ordering::SeqCst) {
            BridgeError::not_allowed("the request timed out")
        } else {
            BridgeError::new(ErrorName::AbortError, "the request was cancelled")
        }
    }

    /// Runs one CTAP command; an error status becomes the page's exception.
    fn call(&mut self, cmd: u8, params: Option<&Value>) -> Result<Value, BridgeError> {
        self.call_status(cmd, params)?
            .map_err(BridgeError::from_status)
    }

    /// Runs one CTAP command; the inner error is the authenticator's status (other than
    /// KEEPALIVE_CANCEL, which is the ceremony's cancellation or timeout).
    fn call_status(
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
        if self.interaction.is_cancelled() {
            // Cancelled while the authenticator worked: the page has been told it is over,
            // whatever the answer (as browsers do).
            return Err(self.cancelled());
        }
        match cbor::reply(&response)? {
            Err(status) if status == StatusCode::KeepaliveCancel.byte() => Err(self.cancelled()),
            reply => Ok(reply),
        }
    }

    /// Finds which of `ids` the authenticator holds for `rp_id` with silent (up=false)
    /// getAssertions, batch by batch, as platforms do for lists longer than the authenticator
    /// takes. Nothing is signed that a relying party would accept: the assertions carry no UP.
    fn probe(
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

    fn info(&mut self) -> Result<AuthenticatorInfo, BridgeError> {
        let info = AuthenticatorInfo::parse(&self.call(Command::GetInfo.byte(), None)?);
        *self
            .bridge
            .last_info
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(info.clone());
        Ok(info)
    }

    fn shared_secret(&mut self) -> Result<SharedSecret, BridgeError> {
        let response = self.send(&pin::subcommand_request(SubCommand::GET_KEY_AGREEMENT))?;
        Ok(SharedSecret::establish(&response)?)
    }

    /// Runs one typed CTAP request; an error status becomes the page's exception.
    fn send<Q: ctap::Request, A: ctap::Response>(&mut self, request: &Q) -> Result<A, BridgeError> {
        self.send_status(request)?.map_err(BridgeError::from_status)
    }

    /// Runs one typed CTAP request; the inner error is the authenticator's status.
    fn send_status<Q: ctap::Request, A: ctap::Response>(
        &mut self,
        request: &Q,
    ) -> Result<Result<A, u8>, BridgeError> {
        let params = request.to_value();
        match self.call_status(Q::COMMAND.byte(), params.as_ref())? {
            Ok(value) => Ok(Ok(A::from_value(value).map_err(ClientError::from)?)),
            Err(status) => Ok(Err(status)),
        }
    }

    /// Decides how to verify the user and, for the PIN, gets a token for `permission` on
    /// the RP ID. `needs_uv`: the authenticator will refuse the request without verification.
    fn plan_uv(
        &mut self,
        info: &AuthenticatorInfo,
        requirement: UserVerification,
        needs_uv: bool,
        context: &UvContext<'_>,
        shared: &mut Option<SharedSecret>,
    ) -> Result<Uv, BridgeError> {
        let must = requirement == UserVerification::Required || needs_uv || info.always_uv;
        if requirement == UserVerification::Discouraged && !must {
            return Ok(Uv::None);
        }
        if info.uv_builtin() {
            return Ok(Uv::BuiltIn);
        }
        let ui = &self.bridge.ui;
        if info.client_pin == Some(false) && must && ui.sets_pin() {
            // Verification is required and no PIN exists yet: the trusted prompt sets one
            // (as browsers do) instead of failing, and that PIN verifies this ceremony.
            let pin = self.set_first_pin(info, context)?;
            let secret = self.shared_secret()?;
            let response = self.send(&token_request(&secret, &pin, context)?)?;
            let token = secret.token(&response)?;
            *shared = Some(secret);
            return Ok(Uv::Token(token));
        }
        if info.client_pin == Some(true) && ui.collects_pin() {
            // A wrong PIN is asked again, as browsers do, until the authenticator wants a
            // power cycle (three in a row) or the PIN is blocked.
            let mut last = StatusCode::PinInvalid.byte();
            let mut after_wrong_pin = None;
            for _ in 0..PIN_ATTEMPTS {
                let request = PinRequest {
                    origin: context.origin,
                    rp_id: context.rp_id,
                    purpose: context.purpose,
                    after_wrong_pin,
                    interaction: &self.interaction,
                };
                let Some(pin) = self.bridge.ui.pin(&request) else {
                    if self.interaction.is_cancelled() {
                        return Err(self.cancelled());
                    }
                    return Err(BridgeError::not_allowed("the user did not enter the PIN"));
                };
                // A wrong PIN makes the authenticator pick a new key agreement: a fresh
                // shared secret for every attempt.
                let secret = self.shared_secret()?;
                let response = self.send_status(&token_request(&secret, &pin, context)?)?;
                match response {
                    Ok(response) => {
                        let token = secret.token(&response)?;
                        *shared = Some(secret);
                        return Ok(Uv::Token(token));
                    }
                    Err(status) if status == StatusCode::PinInvalid.byte() => {
                        last = status;
                        after_wrong_pin = Some(self.pin_retries());
                    }
                    Err(status) => return Err(BridgeError::from_status(status)),
                }
            }
            return Err(BridgeError::from_status(last));
        }
        if must {
            return Err(BridgeError::not_allowed(
                "user verification is required, but the authenticator has no built-in method and no PIN can be entered here",
            ));
        }
        Ok(Uv::None)
    }

    /// How many PIN attempts are left (authenticatorClientPIN getPINRetries), if it says.
    fn pin_retries(&mut self) -> Option<u64> {
        let response: client_pin::Response = self
            .send(&pin::subcommand_request(SubCommand::GET_PIN_RETRIES))
            .ok()?;
        response.pin_retries.map(u64::from)
    }

    /// Asks the person for a first PIN (twice, in the host's prompt) and sets it.
    fn set_first_pin(
        &mut self,
        info: &AuthenticatorInfo,
        context: &UvContext<'_>,
    ) -> Result<Zeroizing<String>, BridgeError> {
        let mut problem: Option<String> = None;
        for _ in 0..PIN_ATTEMPTS {
            let request = NewPinRequest {
                origin: context.origin,
                rp_id: context.rp_id,
                purpose: context.purpose,
                min_length: info.min_pin_length,
                problem: problem.as_deref(),
                interaction: &self.interaction,
            };
            let Some(pin) = self.bridge.ui.new_pin(&request) else {
                if self.interaction.is_cancelled() {
                    return Err(self.cancelled());
                }
                return Err(BridgeError::not_allowed(
                    "user verification is required and the user did not choose a PIN",
                ));
            };
            let length = pin.chars().count();
            if length < info.min_pin_length {
                problem = Some(format!(
                    "The PIN must have at least {} characters.",
                    info.min_pin_length
                ));
                continue;
            }
            if pin.len() > 63 {
                problem = Some("The PIN must be at most 63 bytes long.".to_owned());
                continue;
            }
            let secret = self.shared_secret()?;
            match self
                .send_status::<_, client_pin::Response>(&pin::set_pin_request(&secret, &pin)?)?
            {
                Ok(_) => {
                    tracing::info!(
                        rp_id = context.rp_id,
                        "the authenticator's first PIN was set"
                    );
                    return Ok(pin);
                }
                Err(status) if status == StatusCode::PinPolicyViolation.byte() => {
                    problem = Some(
                        "The authenticator refused this PIN (too short or too simple).".to_owned(),
                    );
                }
                Err(status) => return Err(BridgeError::from_status(status)),
            }
        }
        Err(BridgeError::not_allowed(
            "user verification is required and no acceptable PIN was chosen",
        ))
    }

    /// The hmac-secret extension input for PRF salts.
    fn hmac_secret_input(
        &mut self,
        shared: &mut Option<SharedSecret>,
        salts: &[u8],
    ) -> Result<ctap::extensions::HmacSecretInput, BridgeError> {
        if shared.is_none() {
            *shared = Some(self.shared_secret()?);
        }
        Ok(shared
            .as_ref()
            .ok_or_else(|| BridgeError::unknown("no shared secret"))?
            .hmac_secret_input(salts)?)
    }
}

/// What a get ceremony derives from its options before it reaches the authenticator.
struct PreparedGet {
    rp_id: String,
    allow: Vec<Vec<u8>>,
    by_credential: Vec<(Vec<u8>, PrfValues)>,
    prf: Option<options::PrfInputs>,
    requirement: UserVerification,
    client_data: Vec<u8>,
    client_data_hash: Vec<u8>,
}

impl PreparedGet {
    /// The RP ID checked against the caller's origin, the options decoded, clientDataJSON
    /// built: every refusal that needs no authenticator.
    fn new(caller: &Caller, options: &RequestOptions) -> Result<Self, BridgeError> {
        let rp_id = caller.origin.rp_id_for(options.rp_id.as_deref())?;
        let challenge = decode_member(&options.challenge, "challenge")?;
        let allow = descriptor_ids(
            options.allow_credentials.as_deref(),
            "allowCredentials[].id",
        )?;
        let extensions: ExtensionInputs = options.extensions.clone().unwrap_or_default();
        let prf = extensions.prf.clone();
        let by_credential: Vec<(Vec<u8>, PrfValues)> = match prf
            .as_ref()
            .and_then(|p| p.eval_by_credential.as_ref())
        {
            None => Vec::new(),
            Some(map) => {
                if !map.is_empty() && allow.is_empty() {
                    return Err(BridgeError::new(
                        ErrorName::NotSupportedError,
                        "prf.evalByCredential needs allowCredentials",
                    ));
                }
                let mut out = Vec::new();
                for (key, values) in map {
                    let id = b64::decode(key)
                        .ok()
                        .filter(|id| !id.is_empty() && allow.contains(id));
                    let Some(id) = id else {
                        return Err(BridgeError::new(
                            ErrorName::SyntaxError,
                            format!(
                                "prf.evalByCredential key {key:?} is not an allowed credential ID"
                            ),
                        ));
                    };
                    out.push((id, values.clone()));
                }
                out
            }
        };
        let requirement = UserVerification::parse(options.user_verification.as_deref());
        let client_data = client_data_json(
            CeremonyType::Get,
            &challenge,
            caller.origin.as_str(),
            caller.top_origin.as_deref(),
        );
        let client_data_hash = sha256(&client_data);

        Ok(Self {
            rp_id,
            allow,
            by_credential,
            prf,
            requirement,
            client_data,
            client_data_hash,
        })
    }
}

/// Who a PIN token is for: shown in prompts and bound into the token.
struct UvContext<'a> {
    origin: &'a str,
    rp_id: &'a str,
    purpose: Purpose<'a>,
    permission: Permissions,
}

/// getPinUvAuthTokenUsingPinWithPermissions for `context`'s permission and RP ID.
fn token_request(
    secret: &SharedSecret,
    pin: &str,
    context: &UvContext<'_>,
) -> Result<client_pin::Request, BridgeError> {
    Ok(pin::token_request(
        secret,
        pin,
        context.permission,
        context.rp_id,
    )?)
}

fn sha256(data: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data)
        .as_ref()
        .to_vec()
}

/// The PRF salts (32 or 64 bytes) for `values`.
fn prf_salts(values: &PrfValues) -> Result<Vec<u8>, BridgeError> {
    let mut salts = pin::prf_salt(&decode_member(&values.first, "prf.eval.first")?).to_vec();
    if let Some(second) = &values.second {
        salts.extend_from_slice(&pin::prf_salt(&decode_member(second, "prf.eval.second")?));
    }
    Ok(salts)
}

/// `{first, second?}` from a decrypted hmac-secret output.
fn prf_results(output: &[u8]) -> Json {
    let mut results = Map::new();
    if let Some(first) = output.get(..32) {
        results.insert("first".into(), Json::String(b64::encode(first)));
    }
    if let Some(second) = output.get(32..64) {
        results.insert("second".into(), Json::String(b64::encode(second)));
    }
    Json::Object(results)
}

fn bad_auth_data(e: passgate_proto::AuthenticatorDataError) -> BridgeError {
    BridgeError::unknown(format!("bad authenticator data: {e}"))
}

fn check_rp_id_hash(auth_data: &AuthenticatorData, rp_id: &str) -> Result<(), BridgeError> {
    if passgate_client::is_rp_id_hash(&auth_data.rp_id_hash, rp_id) {
        Ok(())
    } else {
        Err(BridgeError::unknown(
            "the authenticator answered for another RP ID",
        ))
    }
}

/// The request's `type` and `options`.
fn kind_and_options(request: &Json) -> Result<(&str, Option<&Json>), BridgeError> {
    let Some(object) = request.as_object() else {
        return Err(BridgeError::type_error("the request is not a JSON object"));
    };
    let kind = object
        .get("type")
        .and_then(Json::as_str)
        .ok_or_else(|| BridgeError::type_error("the request has no \"type\""))?;
    Ok((kind, object.get("options")))
}

fn timeout_of(ms: Option<u64>) -> Duration {
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
        }
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
        let transport = self
            .transport
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
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
            _timer: timer.ok().map(|_| stop),
        }
    }

    /// What every host calls: handles one request from the page whose origin the host
    /// established, `origin`, and returns the reply JSON.
    ///
    /// The request is `{"type": "create" | "get" | "isUvpaa" | "getClientCapabilities",
    /// "options": {...}}` (Level 3 JSON options for create and get). The reply is the
    /// credential in `PublicKeyCredential.toJSON()` form for create and get, `{"result": bool}`
    /// for isUvpaa, `{"result": {...}}` for getClientCapabilities, or
    /// `{"error": {"name", "message"}}`. Any `origin` or `topOrigin` member in the request is
    /// ignored: only the host knows the origin.
    pub fn handle(&self, origin: &str, request_json: &str) -> String {
        self.handle_nested(origin, None, request_json)
    }

    /// [`Self::handle`] for a caller in a cross-origin frame of `top_origin` (the host has
    /// checked the `publickey-credentials-*` permissions policy).
    pub fn handle_nested(
        &self,
        origin: &str,
        top_origin: Option<&str>,
        request_json: &str,
    ) -> String {
        let reply = serde_json::from_str::<Json>(request_json)
            .map_err(|e| BridgeError::type_error(format!("the request is not JSON: {e}")))
            .and_then(|request| self.run(origin, top_origin, &request, None));
        match reply {
            Ok(value) => value.to_string(),
            Err(e) => json!({ "error": e.to_json() }).to_string(),
        }
    }

    /// [`Self::handle_nested`] on parsed JSON, cancellable through `interaction` (the request
    /// and only it, even before it started).
    pub fn run(
        &self,
        origin: &str,
        top_origin: Option<&str>,
        request: &Json,
        interaction: Option<&Interaction>,
    ) -> Result<Json, BridgeError> {
        let (kind, options) = kind_and_options(request)?;
        self.execute(kind, Some(origin), top_origin, options, interaction)
    }

    /// A request whose origin is inside it: `{"type", "origin", "topOrigin"?, "options"}`. For
    /// a host whose messages come from a trusted part of itself (the browser extension fills
    /// `origin` from what Chromium says, never from the page), such as the native-messaging
    /// host. `interaction`, when given, cancels this request (and only it).
    pub fn dispatch(
        &self,
        request: &Json,
        interaction: Option<&Interaction>,
    ) -> Result<Json, BridgeError> {
        let (kind, options) = kind_and_options(request)?;
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
        self.execute(kind, origin, top_origin, options, interaction)
    }

    fn execute(
        &self,
        kind: &str,
        origin: Option<&str>,
        top_origin: Option<&str>,
        options: Option<&Json>,
        interaction: Option<&Interaction>,
    ) -> Result<Json, BridgeError> {
        match kind {
            "isUvpaa" => {
                // Like the browser's, this promise never rejects: an unreachable
                // authenticator is "not available".
                let available = self.is_uvpaa_with(interaction).unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "isUVPAA: the authenticator did not answer");
                    false
                });
                return Ok(json!({ "result": available }));
            }
            "getClientCapabilities" => {
                return Ok(json!({ "result": self.client_capabilities_with(interaction) }));
            }
            "create" | "get" => {}
            other => {
                return Err(BridgeError::type_error(format!(
                    "unknown request type {other:?}"
                )));
            }
        }
        let origin =
            origin.ok_or_else(|| BridgeError::type_error("the request has no \"origin\""))?;
        let options =
            options.ok_or_else(|| BridgeError::type_error("the request has no \"options\""))?;
        let caller = Caller::new(origin, top_origin)?;
        if kind == "create" {
            let options: CreationOptions = options::parse(options, "creation options")?;
            self.create_inner(&caller, &options, interaction)
        } else {
            let options: RequestOptions = options::parse(options, "request options")?;
            self.get_inner(&caller, &options, interaction, Purpose::Get)
        }
    }

    /// `PublicKeyCredential.getClientCapabilities()` (WebAuthn L3 §5.1.7) for this host and
    /// authenticator. Never fails: an unreachable authenticator offers nothing.
    pub fn client_capabilities(&self) -> Json {
        self.client_capabilities_with(None)
    }

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
    pub fn is_uvpaa(&self) -> Result<bool, BridgeError> {
        self.is_uvpaa_with(None)
    }

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

    /// `navigator.credentials.create()` from JSON options.
    pub fn create(
        &self,
        origin: &str,
        top_origin: Option<&str>,
        options: &Json,
    ) -> Result<Json, BridgeError> {
        let caller = Caller::new(origin, top_origin)?;
        let options: CreationOptions = options::parse(options, "creation options")?;
        self.create_with(&caller, &options)
    }

    /// `navigator.credentials.get()` from JSON options.
    pub fn get(
        &self,
        origin: &str,
        top_origin: Option<&str>,
        options: &Json,
    ) -> Result<Json, BridgeError> {
        let caller = Caller::new(origin, top_origin)?;
        let options: RequestOptions = options::parse(options, "request options")?;
        self.get_with(&caller, &options)
    }

    /// The create ceremony on typed options.
    pub fn create_with(
        &self,
        caller: &Caller,
        options: &CreationOptions,
    ) -> Result<Json, BridgeError> {
        self.create_inner(caller, options, None)
    }

    fn create_inner(
        &self,
        caller: &Caller,
        options: &CreationOptions,
        interaction: Option<&Interaction>,
    ) -> Result<Json, BridgeError> {
        // Everything that needs no authenticator is checked first: a page that is not
        // allowed never reaches it.
        let rp_id = caller.origin.rp_id_for(options.rp.id.as_deref())?;
        let challenge = decode_member(&options.challenge, "challenge")?;
        let user_id = decode_member(&options.user.id, "user.id")?;
        if user_id.is_empty() || user_id.len() > 64 {
            return Err(BridgeError::type_error("user.id must be 1 to 64 bytes"));
        }
        let exclude = descriptor_ids(
            options.exclude_credentials.as_deref(),
            "excludeCredentials[].id",
        )?;
        let selection = options.authenticator_selection.clone().unwrap_or_default();
        if selection.authenticator_attachment.as_deref() == Some("cross-platform") {
            return Err(BridgeError::not_allowed(
                "only a platform authenticator is available here",
            ));
        }
        let extensions = options.extensions.clone().unwrap_or_default();
        let prf = extensions.prf.clone();
        if prf
            .as_ref()
            .is_some_and(|p| p.eval_by_credential.as_ref().is_some_and(|m| !m.is_empty()))
        {
            return Err(BridgeError::new(
                ErrorName::NotSupportedError,
                "prf.evalByCredential cannot be used when creating a credential",
            ));
        }
        let prf_create_salts = match prf.as_ref().and_then(|p| p.eval.as_ref()) {
            Some(values) => Some(prf_salts(values)?),
            None => None,
        };
        let requirement = UserVerification::parse(selection.user_verification.as_deref());
        let client_data = client_data_json(
            CeremonyType::Create,
            &challenge,
            caller.origin.as_str(),
            caller.top_origin.as_deref(),
        );
        let client_data_hash = sha256(&client_data);

        let mut ceremony = self.begin(timeout_of(options.timeout), interaction);
        let info = ceremony.info()?;
        let params: Vec<i64> = if options.pub_key_cred_params.is_empty() {
            vec![-7, -257]
        } else {
            options
                .pub_key_cred_params
                .iter()
                .filter(|p| p.kind == "public-key")
                .map(|p| p.alg)
                .collect()
        };
        let algorithms: Vec<i64> = params
            .into_iter()
            .filter(|alg| info.algorithms.contains(alg))
            .collect();
        if algorithms.is_empty() {
            return Err(BridgeError::new(
                ErrorName::NotSupportedError,
                "the authenticator supports none of pubKeyCredParams",
            ));
        }
        // A PIN-protected authenticator makes discoverable credentials only with verification:
        // "preferred" falls back to a non-discoverable one when none can be done here.
        let can_verify = self.can_verify(&info);
        let rk = match selection.resident_key.as_deref() {
            Some("required") => true,
            Some("preferred") => info.rk && (can_verify || info.client_pin != Some(true)),
            Some("discouraged") => false,
            _ => selection.require_resident_key.unwrap_or(false),
        };
        if rk && !info.rk {
            return Err(BridgeError::new(
                ErrorName::ConstraintError,
                "the authenticator cannot store discoverable credentials",
            ));
        }
        let mut exclude: Vec<Vec<u8>> = exclude
            .into_iter()
            .filter(|id| id.len() <= info.max_id_length)
            .collect();
        if exclude.len() > info.max_list {
            // Longer than one request takes: find the excluded credential the authenticator
            // holds, if any, and send only it (the authenticator then asks for presence
            // before it answers CREDENTIAL_EXCLUDED, as CTAP requires).
            exclude = ceremony
                .probe(&rp_id, &client_data_hash, &exclude, info.max_list)?
                .into_iter()
                .collect();
        }
        let mut shared = None;
        let needs_uv = rk && info.client_pin == Some(true);
        let uv = ceremony.plan_uv(
            &info,
            requirement,
            needs_uv,
            &UvContext {
                origin: caller.origin.as_str(),
                rp_id: &rp_id,
                purpose: Purpose::Create {
                    user_name: &options.user.name,
                },
                permission: Permissions::MAKE_CREDENTIAL,
            },
            &mut shared,
        )?;

        let want_prf = prf.is_some() && info.has_extension("hmac-secret");
        let user = UserEntity {
            id: user_id,
            name: Some(options.user.name.clone()),
            display_name: (!options.user.display_name.is_empty())
                .then(|| options.user.display_name.clone()),
        };
        let rp = RpEntity {
            id: rp_id.clone(),
            name: Some(options.rp.name.clone()),
        };
        let mut request = make_credential::Request::new(&client_data_hash, rp, user, &algorithms);
        if want_prf {
            request.extensions.hmac_secret = Some(true);
            if let Some(salts) = &prf_create_salts {
                if info.has_extension("hmac-secret-mc") {
                    request.extensions.hmac_secret_mc =
                        Some(ceremony.hmac_secret_input(&mut shared, salts)?);
                }
            }
        }
        request.options.rk = Some(rk);
        if matches!(uv, Uv::BuiltIn) {
            request.options.uv = Some(true);
        }
        let conveyance_none = matches!(options.attestation.as_deref(), None | Some("none"));
        request.exclude_list = exclude
            .iter()
            .map(|id| CredentialDescriptor::public_key(id))
            .collect();
        if let Uv::Token(token) = &uv {
            request.pin_uv_auth = Some(pin::pin_uv_auth(token, &client_data_hash));
        }
        if conveyance_none {
            request.attestation_formats_preference = Some(vec!["none".into()]);
        } else if let Some(formats) = options
            .attestation_formats
            .as_ref()
            .filter(|f| !f.is_empty())
        {
            request.attestation_formats_preference = Some(formats.clone());
        }
        let response = ceremony.call(
            Command::MakeCredential.byte(),
            ctap::Request::to_value(&request).as_ref(),
        )?;

        let auth_data_bytes = bytes(int_key(&response, 2))
            .ok_or_else(|| BridgeError::unknown("makeCredential response without authData"))?
            .to_vec();
        let mut fmt = text(int_key(&response, 1))
            .ok_or_else(|| BridgeError::unknown("makeCredential response without fmt"))?
            .to_owned();
        let mut att_stmt = int_key(&response, 3)
            .cloned()
            .unwrap_or(Value::Map(Vec::new()));
        if conveyance_none && fmt != "none" {
            fmt = "none".into();
            att_stmt = Value::Map(Vec::new());
        }
        let auth_data = AuthenticatorData::parse(&auth_data_bytes).map_err(bad_auth_data)?;
        check_rp_id_hash(&auth_data, &rp_id)?;
        if requirement == UserVerification::Required && !auth_data.flags.user_verified() {
            return Err(BridgeError::not_allowed("the user was not verified"));
        }
        let attested = auth_data
            .attested_credential_data
            .as_ref()
            .ok_or_else(|| BridgeError::unknown("no attested credential data"))?;
        let attestation_object = cbor::encode(&text_map(vec![
            ("fmt", Value::Text(fmt)),
            ("attStmt", att_stmt),
            ("authData", Value::Bytes(auth_data_bytes.clone())),
        ]));

        let mut extension_results = Map::new();
        if extensions.cred_props == Some(true) {
            extension_results.insert("credProps".into(), json!({ "rk": rk }));
        }
        if prf.is_some() {
            let outputs = auth_data.extensions.as_ref();
            let enabled = matches!(
                outputs.and_then(|e| text_key(e, "hmac-secret")),
                Some(Value::Bool(true))
            );
            let mut prf_out = Map::new();
            prf_out.insert("enabled".into(), Json::Bool(enabled));
            if let (Some(enc), Some(secret)) = (
                bytes(outputs.and_then(|e| text_key(e, "hmac-secret-mc"))),
                shared.as_ref(),
            ) {
                prf_out.insert("results".into(), prf_results(&secret.decrypt(enc)?));
            }
            extension_results.insert("prf".into(), Json::Object(prf_out));
        }

        let id = b64::encode(&attested.credential_id);
        let mut response_json = json!({
            "clientDataJSON": b64::encode(&client_data),
            "attestationObject": b64::encode(&attestation_object),
            "authenticatorData": b64::encode(&auth_data_bytes),
            "transports": ["internal"],
        });
        if let Some(alg) = passgate_proto::cose::algorithm(&attested.public_key) {
            response_json["publicKeyAlgorithm"] = json!(alg);
        }
        if let Some(spki) = passgate_proto::cose::to_spki(&attested.public_key) {
            response_json["publicKey"] = json!(b64::encode(&spki));
        }
        Ok(json!({
            "id": id,
            "rawId": id,
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "response": response_json,
            "clientExtensionResults": extension_results,
        }))
    }

    /// The get ceremony on typed options.
    pub fn get_with(&self, caller: &Caller, options: &RequestOptions) -> Result<Json, BridgeError> {
        self.get_inner(caller, options, None, Purpose::Get)
    }

    /// Checks what a get ceremony checks before it reaches the authenticator (the RP ID
    /// against the origin, the options' encodings): a conditional request is refused at once
    /// if it could never succeed, before it waits for the person.
    pub(crate) fn check_get(caller: &Caller, options: &RequestOptions) -> Result<(), BridgeError> {
        PreparedGet::new(caller, options).map(drop)
    }

    /// Whether the authenticator holds a credential that could answer `options` for
    /// `caller`, found silently: getAssertion with `up = false` and no verification, over a
    /// random client data hash, so nothing is signed that any relying party would accept and
    /// nobody is asked. Credentials that need verification even to be found (credProtect
    /// level 2 without an allow list, level 3) are not seen. What it finds stays in the host:
    /// it only decides whether a conditional request may open the prompt.
    pub(crate) fn has_credentials(
        &self,
        caller: &Caller,
        options: &RequestOptions,
        interaction: &Interaction,
    ) -> Result<bool, BridgeError> {
        let prepared = PreparedGet::new(caller, options)?;
        let mut throwaway = [0u8; 32];
        aws_lc_rs::rand::fill(&mut throwaway)
            .map_err(|_| BridgeError::unknown("no randomness for a silent probe"))?;
        let mut ceremony = self.begin(Duration::from_secs(10), Some(interaction));
        let info = ceremony.info()?;
        let allow: Vec<Vec<u8>> = prepared
            .allow
            .into_iter()
            .filter(|id| id.len() <= info.max_id_length)
            .collect();
        if !allow.is_empty() {
            let found = ceremony.probe(&prepared.rp_id, &throwaway, &allow, info.max_list)?;
            return Ok(found.is_some());
        }
        let mut probe = get_assertion::Request::new(&prepared.rp_id, &throwaway);
        probe.options.up = Some(false);
        match ceremony.call_status(
            Command::GetAssertion.byte(),
            ctap::Request::to_value(&probe).as_ref(),
        )? {
            Ok(_) => Ok(true),
            Err(status) if status == StatusCode::NoCredentials.byte() => Ok(false),
            Err(status) => Err(BridgeError::from_status(status)),
        }
    }

    /// The get ceremony, asking the person through the prompt for `purpose`.
    pub(crate) fn get_inner(
        &self,
        caller: &Caller,
        options: &RequestOptions,
        interaction: Option<&Interaction>,
        purpose: Purpose<'_>,
    ) -> Result<Json, BridgeError> {
        let PreparedGet {
            rp_id,
            allow,
            by_credential,
            prf,
            requirement,
            client_data,
            client_data_hash,
        } = PreparedGet::new(caller, options)?;
        let mut ceremony = self.begin(timeout_of(options.timeout), interaction);
        let info = ceremony.info()?;
        let mut allow: Vec<Vec<u8>> = allow
            .into_iter()
            .filter(|id| id.len() <= info.max_id_length)
            .collect();
        // Which credential answers must be known before the request when the list is longer
        // than the authenticator takes, or when PRF salts depend on the credential: a silent
        // (up=false) probe finds it, batch by batch.
        if allow.len() > info.max_list || (!by_credential.is_empty() && allow.len() > 1) {
            let found = ceremony.probe(&rp_id, &client_data_hash, &allow, info.max_list)?;
            let Some(id) = found else {
                return Err(BridgeError::from_status(StatusCode::NoCredentials.byte()));
            };
            allow = vec![id];
        }
        let mut shared = None;
        let uv = ceremony.plan_uv(
            &info,
            requirement,
            false,
            &UvContext {
                origin: caller.origin.as_str(),
                rp_id: &rp_id,
                purpose,
                permission: Permissions::GET_ASSERTION,
            },
            &mut shared,
        )?;
        let prf_values = match allow.as_slice() {
            [only] => by_credential
                .iter()
                .find(|(id, _)| id == only)
                .map(|(_, v)| v.clone()),
            _ => None,
        }
        .or_else(|| prf.as_ref().and_then(|p| p.eval.clone()));
        let mut request = get_assertion::Request::new(&rp_id, &client_data_hash);
        let mut prf_requested = false;
        if let Some(values) = &prf_values {
            prf_requested = true;
            if info.has_extension("hmac-secret") {
                let salts = prf_salts(values)?;
                request.extensions.hmac_secret =
                    Some(ceremony.hmac_secret_input(&mut shared, &salts)?);
            }
        }
        request.options.up = Some(true);
        if matches!(uv, Uv::BuiltIn) {
            request.options.uv = Some(true);
        }
        request.allow_list = allow
            .iter()
            .map(|id| CredentialDescriptor::public_key(id))
            .collect();
        if let Uv::Token(token) = &uv {
            request.pin_uv_auth = Some(pin::pin_uv_auth(token, &client_data_hash));
        }
        let first = ceremony.call(
            Command::GetAssertion.byte(),
            ctap::Request::to_value(&request).as_ref(),
        )?;
        let count = integer(int_key(&first, 5)).unwrap_or(1);
        let mut assertions = vec![first];
        if allow.is_empty() {
            for _ in 1..count.min(100) {
                assertions.push(ceremony.call(Command::GetNextAssertion.byte(), None)?);
            }
        }
        let accounts: Vec<Account> = assertions
            .iter()
            .map(|a| {
                let user = int_key(a, 4);
                Account {
                    credential_id: bytes(int_key(a, 1).and_then(|c| text_key(c, "id")))
                        .map(<[u8]>::to_vec)
                        .or_else(|| allow.first().cloned())
                        .unwrap_or_default(),
                    user_handle: bytes(user.and_then(|u| text_key(u, "id"))).map(<[u8]>::to_vec),
                    name: text(user.and_then(|u| text_key(u, "name"))).map(str::to_owned),
                    display_name: text(user.and_then(|u| text_key(u, "displayName")))
                        .map(str::to_owned),
                }
            })
            .collect();
        let chosen = if accounts.len() > 1 {
            let choice = AccountChoice {
                origin: caller.origin.as_str(),
                rp_id: &rp_id,
                purpose,
                accounts: &accounts,
                interaction: &ceremony.interaction,
            };
            match self.ui.choose_account(&choice) {
                Some(i) => i,
                None if ceremony.interaction.is_cancelled() => return Err(ceremony.cancelled()),
                None => {
                    return Err(BridgeError::not_allowed(
                        "the user did not choose an account",
                    ));
                }
            }
        } else {
            0
        };
        let (Some(assertion), Some(account)) = (assertions.get(chosen), accounts.get(chosen))
        else {
            return Err(BridgeError::not_allowed("no account was chosen"));
        };
        if account.credential_id.is_empty() {
            return Err(BridgeError::unknown("the assertion names no credential"));
        }
        let auth_data_bytes = bytes(int_key(assertion, 2))
            .ok_or_else(|| BridgeError::unknown("getAssertion response without authData"))?;
        let signature = bytes(int_key(assertion, 3))
            .ok_or_else(|| BridgeError::unknown("getAssertion response without signature"))?;
        let auth_data = AuthenticatorData::parse(auth_data_bytes).map_err(bad_auth_data)?;
        check_rp_id_hash(&auth_data, &rp_id)?;
        if requirement == UserVerification::Required && !auth_data.flags.user_verified() {
            return Err(BridgeError::not_allowed("the user was not verified"));
        }
        let mut extension_results = Map::new();
        if prf_requested {
            let mut prf_out = Map::new();
            if let (Some(enc), Some(secret)) = (
                bytes(
                    auth_data
                        .extensions
                        .as_ref()
                        .and_then(|e| text_key(e, "hmac-secret")),
                ),
                shared.as_ref(),
            ) {
                prf_out.insert("results".into(), prf_results(&secret.decrypt(enc)?));
            }
            extension_results.insert("prf".into(), Json::Object(prf_out));
        }
        let id = b64::encode(&account.credential_id);
        let mut response_json = json!({
            "clientDataJSON": b64::encode(&client_data),
            "authenticatorData": b64::encode(auth_data_bytes),
            "signature": b64::encode(signature),
        });
        if let Some(handle) = &account.user_handle {
            response_json["userHandle"] = json!(b64::encode(handle));
        }
        Ok(json!({
            "id": id,
            "rawId": id,
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "response": response_json,
            "clientExtensionResults": extension_results,
        }))
    }
}
