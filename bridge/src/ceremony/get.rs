//! The get ceremony (WebAuthn L3 §5.1.4): request options to authenticatorGetAssertion (with
//! silent probes for long allow lists, and the account choice: first, from the bridge's
//! account record, when it knows two or more accounts on the site; else after the one
//! verification) and the assertion back to
//! `AuthenticationResponseJSON`.

use super::*;

/// What a get ceremony derives from its options before it reaches the authenticator.
pub(super) struct PreparedGet {
    pub(super) rp_id: String,
    pub(super) allow: Vec<Vec<u8>>,
    pub(super) by_credential: Vec<(Vec<u8>, PrfValues)>,
    pub(super) prf: Option<options::PrfInputs>,
    pub(super) requirement: UserVerification,
    pub(super) client_data: Vec<u8>,
    pub(super) client_data_hash: Vec<u8>,
}

impl PreparedGet {
    /// The RP ID checked against the caller's origin, the options decoded, clientDataJSON
    /// built: every refusal that needs no authenticator.
    pub(super) fn new(caller: &Caller, options: &RequestOptions) -> Result<Self, BridgeError> {
        Self::with_payload_shown(caller, options, false)
    }

    /// [`Self::new`]; `payload_shown`: the client data says passgate's prompt showed the
    /// action's text (the ceremony then shows it or fails).
    pub(super) fn with_payload_shown(
        caller: &Caller,
        options: &RequestOptions,
        payload_shown: bool,
    ) -> Result<Self, BridgeError> {
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
        let build = if payload_shown {
            client_data_json_payload_shown
        } else {
            client_data_json
        };
        let client_data = build(
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

impl Bridge {
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
        } = PreparedGet::with_payload_shown(
            caller,
            options,
            matches!(purpose, Purpose::Approve { .. }) && self.ui.shows_approvals(),
        )?;
        let mut ceremony = self
            .begin(timeout_of(options.timeout), interaction)
            .for_tab(caller);
        let info = ceremony.info()?;
        // The accounts this bridge has seen on the site (those the page allows).
        let known = self.known_accounts(&rp_id, &allow);
        let mut allow: Vec<Vec<u8>> = allow
            .into_iter()
            .filter(|id| id.len() <= info.max_id_length)
            .collect();
        // Two or more: the person chooses first, as Chrome's and the operating systems'
        // passkey pickers do, and then verifies once, for that account only (allowList =
        // [its ID]). Nothing reaches the authenticator before the choice: no silent probe,
        // which would count as a use (signature counters). The names come from the bridge's
        // account record (`crate::accounts`), learned after a create or a verified sign-in,
        // because an authenticator tells them only after verification (CTAP 2.1 §6.2.2).
        let mut chose_first = false;
        if known.len() >= 2 {
            let choice = AccountChoice {
                origin: caller.origin.as_str(),
                rp_id: &rp_id,
                purpose,
                accounts: &known,
                before_verification: true,
                label: ceremony.label(),
                interaction: &ceremony.interaction,
            };
            let chosen = self
                .ui
                .choose_account(&choice)
                .map_err(|why| ceremony.unanswered(why, "no account was chosen"))?;
            let account = known
                .get(chosen)
                .ok_or_else(|| BridgeError::not_allowed("no account was chosen"))?;
            allow = vec![account.credential_id.clone()];
            chose_first = true;
        }
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
        let uv_context = UvContext {
            origin: caller.origin.as_str(),
            rp_id: &rp_id,
            purpose,
            permission: Permissions::GET_ASSERTION,
        };
        let mut uv = ceremony.plan_uv(&info, requirement, false, &uv_context, &mut shared)?;
        if let Purpose::Approve { .. } = purpose {
            // The PIN dialog showed the action's text; without one, the host shows it now.
            if !matches!(uv, Uv::Token(_)) && self.ui.shows_approvals() {
                let request = ApprovalRequest {
                    origin: caller.origin.as_str(),
                    rp_id: &rp_id,
                    purpose,
                    label: ceremony.label(),
                    interaction: &ceremony.interaction,
                };
                if let Err(why) = self.ui.approve(&request) {
                    return Err(ceremony.unanswered(why, "the action was not approved"));
                }
            }
        }
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
        if let Some(token) = uv.token() {
            request.pin_uv_auth = Some(pin::pin_uv_auth(token, &client_data_hash));
        }
        let first = match ceremony.call_verified(
            &mut request,
            &mut uv,
            &info,
            &uv_context,
            &client_data_hash,
            |request, auth| request.pin_uv_auth = Some(auth),
        ) {
            Ok(first) => first,
            Err(e) => {
                let verified = matches!(uv, Uv::BuiltIn) || uv.token().is_some();
                if allow.is_empty()
                    && verified
                    && e == BridgeError::from_status(StatusCode::NoCredentials.byte())
                {
                    // A verified discoverable look-up finds every passkey of the site (even
                    // credProtect level 3): there is none, so the record forgets the site.
                    self.replace_accounts(&rp_id, &[]);
                }
                if let [only] = allow.as_slice() {
                    if e == BridgeError::from_status(StatusCode::NoCredentials.byte()) {
                        // Deleted on the authenticator (or by another client): the record
                        // forgets it, so the next choice does not offer it.
                        self.forget_stale_account(&rp_id, only);
                        if chose_first {
                            return Err(BridgeError::not_allowed(
                                "the account you chose no longer has a passkey on this \
                                 authenticator (passgate has forgotten it): sign in again",
                            ));
                        }
                    }
                }
                return Err(e);
            }
        };
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
        // Not chosen first (fewer than two accounts recorded for the site): the choice, if
        // the authenticator found several, comes after the one verification, which is when
        // an authenticator reveals the names (CTAP 2.1 §6.2.2 step 12). The record learns
        // them then, so the next sign-in here chooses first (docs/src/security/bridge.md,
        // "Several accounts").
        let chosen = if accounts.len() > 1 && !chose_first {
            let choice = AccountChoice {
                origin: caller.origin.as_str(),
                rp_id: &rp_id,
                purpose,
                accounts: &accounts,
                before_verification: false,
                label: ceremony.label(),
                interaction: &ceremony.interaction,
            };
            self.ui
                .choose_account(&choice)
                .map_err(|why| ceremony.unanswered(why, "no account was chosen"))?
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
        if auth_data.flags.user_verified() {
            // Only a verified assertion names its accounts; the one used goes first. A
            // discoverable one (no allow list) found every passkey of the site (all of them
            // read, at most 100): the record of the site becomes exactly that list.
            let mut seen = vec![account];
            seen.extend(
                accounts
                    .iter()
                    .enumerate()
                    .filter(|&(i, _)| i != chosen)
                    .map(|(_, a)| a),
            );
            let complete = i64::try_from(assertions.len()).ok() == Some(count);
            if allow.is_empty() && complete {
                self.replace_accounts(&rp_id, &seen);
            } else {
                self.learn_accounts(&rp_id, &seen);
            }
        }
        let mut extension_results = ClientExtensionResults::default();
        if prf_requested {
            let mut prf_out = PrfOutputs::default();
            if let (Some(enc), Some(secret)) = (
                bytes(
                    auth_data
                        .extensions
                        .as_ref()
                        .and_then(|e| text_key(e, "hmac-secret")),
                ),
                shared.as_ref(),
            ) {
                prf_out.results = prf_results(&secret.decrypt(enc)?);
            }
            extension_results.prf = Some(prf_out);
        }
        let id = b64::encode(&account.credential_id);
        to_json(&AuthenticationResponseJson {
            raw_id: id.clone(),
            id,
            kind: webauthn::PUBLIC_KEY.to_owned(),
            authenticator_attachment: Some("platform".to_owned()),
            response: AssertionResponseJson {
                client_data_json: client_data,
                authenticator_data: auth_data_bytes.to_vec(),
                signature: signature.to_vec(),
                user_handle: account.user_handle.clone(),
            },
            client_extension_results: extension_results,
        })
    }
}
