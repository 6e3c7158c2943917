//! The create ceremony (WebAuthn L3 §5.1.3): creation options to authenticatorMakeCredential
//! and the attestation back to `RegistrationResponseJSON`.

use super::*;

impl Bridge {
    /// The create ceremony.
    pub(super) fn create_inner(
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

        let mut ceremony = self
            .begin(timeout_of(options.timeout), interaction)
            .for_tab(caller);
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
        if !exclude.is_empty() {
            // A request bound to fail is refused before anyone is asked for a PIN: a silent
            // (up=false) preflight, as browsers do, finds an excluded credential this
            // authenticator holds. The page may learn it only with the person's consent
            // (WebAuthn §6.3.2 step 3): a notice in the trusted prompt where the host has
            // one, otherwise the authenticator's own presence check before
            // CREDENTIAL_EXCLUDED. Credentials that need verification to be found at all
            // (credProtect 3) are not seen here and stay in the request's list.
            let found = ceremony.probe(&rp_id, &client_data_hash, &exclude, info.max_list)?;
            if let Some(found) = found {
                if self.ui.shows_approvals() {
                    let notice = ApprovalRequest {
                        origin: caller.origin.as_str(),
                        rp_id: &rp_id,
                        purpose: Purpose::AlreadyRegistered {
                            user_name: &options.user.name,
                        },
                        label: ceremony.label(),
                        interaction: &ceremony.interaction,
                    };
                    return Err(match self.ui.approve(&notice) {
                        Ok(()) => BridgeError::new(
                            ErrorName::InvalidStateError,
                            "this authenticator already holds a passkey for this account (CREDENTIAL_EXCLUDED)",
                        ),
                        Err(why) => ceremony.unanswered(why, "the notice was dismissed"),
                    });
                }
                exclude = vec![found];
            } else if exclude.len() > info.max_list {
                // Longer than one request takes, and nothing was found silently.
                exclude.clear();
            }
        }
        let mut shared = None;
        let needs_uv = rk && info.client_pin == Some(true);
        let uv_context = UvContext {
            origin: caller.origin.as_str(),
            rp_id: &rp_id,
            purpose: Purpose::Create {
                user_name: &options.user.name,
            },
            permission: Permissions::MAKE_CREDENTIAL,
        };
        let mut uv = ceremony.plan_uv(&info, requirement, needs_uv, &uv_context, &mut shared)?;

        let want_prf = prf.is_some() && info.has_extension("hmac-secret");
        let user_handle = user_id.clone();
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
        if let Some(token) = uv.token() {
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
        let response = ceremony.call_verified(
            &mut request,
            &mut uv,
            &info,
            &uv_context,
            &client_data_hash,
            |request, auth| request.pin_uv_auth = Some(auth),
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

        let mut extension_results = ClientExtensionResults::default();
        if extensions.cred_props == Some(true) {
            extension_results.cred_props = Some(CredProps { rk });
        }
        if prf.is_some() {
            let outputs = auth_data.extensions.as_ref();
            let enabled = matches!(
                outputs.and_then(|e| text_key(e, "hmac-secret")),
                Some(Value::Bool(true))
            );
            let mut prf_out = PrfOutputs {
                enabled: Some(enabled),
                results: None,
            };
            if let (Some(enc), Some(secret)) = (
                bytes(outputs.and_then(|e| text_key(e, "hmac-secret-mc"))),
                shared.as_ref(),
            ) {
                prf_out.results = prf_results(&secret.decrypt(enc)?);
            }
            extension_results.prf = Some(prf_out);
        }

        if rk {
            // A discoverable passkey: the account record learns its names from the options
            // (what the person will choose between at the next sign-in here).
            self.learn_accounts(
                &rp_id,
                &[&Account {
                    credential_id: attested.credential_id.clone(),
                    user_handle: Some(user_handle),
                    name: Some(options.user.name.clone()),
                    display_name: Some(options.user.display_name.clone()),
                }],
            );
        }
        let id = b64::encode(&attested.credential_id);
        to_json(&RegistrationResponseJson {
            raw_id: id.clone(),
            id,
            kind: webauthn::PUBLIC_KEY.to_owned(),
            authenticator_attachment: Some("platform".to_owned()),
            response: AttestationResponseJson {
                client_data_json: client_data,
                attestation_object,
                transports: vec!["internal".to_owned()],
                public_key_algorithm: passgate_proto::cose::algorithm(&attested.public_key),
                public_key: passgate_proto::cose::to_spki(&attested.public_key),
                authenticator_data: auth_data_bytes,
            },
            client_extension_results: extension_results,
        })
    }
}
