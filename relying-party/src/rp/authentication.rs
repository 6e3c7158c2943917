//! Authentication ceremonies (sign-in, step-up, signed actions) on the aws-lc-rs verifier.

use super::*;

/// The key a stored credential verifies with: decoded at registration, or (rows from before
/// schema version 3) decoded from the COSE bytes now.
fn stored_key(row: &CredentialRow) -> Result<CredentialPublicKey, RpError> {
    match &row.verify_key {
        Some(json) => serde_json::from_str::<PublicKey>(json)
            .map(CredentialPublicKey)
            .map_err(RpError::internal),
        None => CredentialPublicKey::from_cose(
            &b64::decode(&row.public_key).map_err(RpError::internal)?,
        )
        .map_err(RpError::internal),
    }
}

impl RelyingParty {
    /// Begins an authentication. `username` None means discoverable credentials (autofill /
    /// conditional UI). For `Reauth` and `Action`, `session` is the signed-in session.
    pub async fn begin_authentication(
        &self,
        purpose: AuthPurpose,
        username: Option<&str>,
        session: Option<(&SessionRow, &UserRow)>,
        payload: Option<String>,
        user_verification: Option<&str>,
    ) -> Result<Value, RpError> {
        // A sign-in by username: an unknown name (or one with no passkeys) gets decoy
        // descriptors and a ceremony bound to a decoy handle, after the same queries a known
        // name costs, so the answer does not say whether the account exists.
        let mut decoy_for: Option<String> = None;
        let user = match (purpose, session) {
            (AuthPurpose::Login, _) => match username.filter(|u| !u.is_empty()) {
                Some(name) => {
                    let name = normalize_username(name)?;
                    let found = match self.store.user_by_name(&name).await? {
                        Some(user) => Some(user),
                        // Accounts made before names were normalised keep their exact name.
                        None if name != username.unwrap_or_default() => {
                            self.store
                                .user_by_name(username.unwrap_or_default())
                                .await?
                        }
                        None => None,
                    };
                    if found.is_none() {
                        decoy_for = Some(name);
                    }
                    found
                }
                None => None,
            },
            (_, Some((_, user))) => Some(user.clone()),
            (_, None) => return Err(RpError::unauthenticated()),
        };
        let require_uv = match user_verification {
            _ if self.config.require_user_verification || purpose != AuthPurpose::Login => true,
            None | Some("preferred") | Some("discouraged") => false,
            Some("required") => true,
            Some(other) => {
                return Err(RpError::invalid(
                    "invalid_option",
                    format!("userVerification {other:?} is not required, preferred or discouraged"),
                ));
            }
        };
        let challenge = match (&payload, purpose) {
            (Some(p), AuthPurpose::Action) => action_challenge(&random::<16>(&self.rng)?, p),
            _ => random::<32>(&self.rng)?.to_vec(),
        };
        let user_id = match (&user, &decoy_for) {
            (Some(u), _) => Some(u.id.clone()),
            (None, Some(name)) => Some(self.decoys.user_handle(name)),
            (None, None) => None,
        };
        let credentials = match &user_id {
            Some(id) => self.store.credentials_of(id).await?,
            None => Vec::new(),
        };
        let allow: Vec<Value> = match (&user_id, &decoy_for) {
            (Some(_), _) if !credentials.is_empty() => credentials
                .iter()
                .map(|c| {
                    let transports: Vec<String> =
                        serde_json::from_str(&c.transports).unwrap_or_default();
                    let mut d = json!({ "type": "public-key", "id": c.id });
                    if !transports.is_empty() {
                        d["transports"] = json!(transports);
                    }
                    d
                })
                .collect(),
            (Some(_), Some(name)) => self.decoys.allow_credentials(name),
            (Some(_), None) if purpose == AuthPurpose::Login => {
                // A real account whose passkeys are all gone answers like an unknown name.
                let name = user.as_ref().map(|u| u.name.as_str()).unwrap_or_default();
                self.decoys.allow_credentials(name)
            }
            (Some(_), None) => {
                return Err(RpError::new(
                    ErrorKind::NotFound,
                    "no_credentials",
                    "that account has no passkeys",
                ));
            }
            (None, _) => Vec::new(),
        };
        let challenge_b64 = b64::encode(&challenge);
        let ceremony = AuthenticationCeremony {
            purpose,
            require_uv,
            session: session.map(|(s, _)| s.token_hash.clone()),
            payload,
        };
        self.store
            .put_ceremony(&CeremonyRow {
                challenge: challenge_b64.clone(),
                kind: "authentication".into(),
                user_id,
                state: serde_json::to_string(&ceremony).map_err(RpError::internal)?,
                expires_at: self.expires(),
            })
            .await?;
        Ok(json!({
            "challenge": challenge_b64,
            "timeout": self.timeout_ms(),
            "rpId": self.config.rp_id,
            "allowCredentials": allow,
            // What was asked is echoed: `discouraged` tells a client that an authenticator
            // without a PIN or biometric will do (python-fido2 refuses `preferred` there when
            // the authenticator could verify but is not set up to).
            "userVerification": match (require_uv, user_verification) {
                (true, _) => "required",
                (false, Some("discouraged")) => "discouraged",
                (false, _) => "preferred",
            },
        }))
    }

    /// Finishes an authentication ceremony from `AuthenticationResponseJSON`.
    pub async fn finish_authentication(
        &self,
        purpose: AuthPurpose,
        body: &[u8],
        session: Option<&SessionRow>,
    ) -> Result<Authenticated, RpError> {
        let response: AuthenticationResponseJson = serde_json::from_slice(body).map_err(|e| {
            RpError::invalid(
                "malformed_response",
                format!("not an AuthenticationResponseJSON: {e}"),
            )
        })?;
        let ceremony_row = self
            .take_ceremony(&response.response.client_data_json, "authentication")
            .await?;
        let ceremony: AuthenticationCeremony =
            serde_json::from_str(&ceremony_row.state).map_err(RpError::internal)?;
        if ceremony.purpose != purpose {
            return Err(RpError::invalid(
                "wrong_ceremony",
                "the challenge was issued for another purpose",
            ));
        }
        if purpose != AuthPurpose::Login
            && ceremony.session.as_deref() != session.map(|s| s.token_hash.as_str())
        {
            return Err(RpError::unauthenticated());
        }
        let credential_id = b64::decode(&response.raw_id)
            .map_err(|_| RpError::invalid("malformed_response", "rawId is not base64url"))?;
        let Some(row) = self.store.credential(&b64::encode(&credential_id)).await? else {
            return Err(RpError::invalid(
                "unknown_credential",
                "no account has this credential",
            ));
        };
        match &ceremony_row.user_id {
            Some(expected) if *expected != row.user_id => {
                return Err(RpError::invalid(
                    "credential_not_allowed",
                    "this credential belongs to another account",
                ));
            }
            None if response
                .response
                .user_handle
                .as_deref()
                .is_none_or(str::is_empty) =>
            {
                return Err(RpError::invalid(
                    "user_handle_missing",
                    "a discoverable sign-in needs the userHandle",
                ));
            }
            _ => {}
        }
        let stored = StoredCredential {
            id: credential_id,
            public_key: stored_key(&row)?,
            sign_count: u32::try_from(row.sign_count).unwrap_or(u32::MAX),
            user_handle: b64::decode(&row.user_id).map_err(RpError::internal)?,
            backup_eligible: Some(row.backup_eligible),
        };
        let challenge = b64::decode(&ceremony_row.challenge).map_err(RpError::internal)?;
        let verdict = verify_assertion(
            &stored,
            &response,
            &AssertionExpectation {
                challenge: &challenge,
                origins: &self.config.origins,
                rp_id: &self.config.rp_id,
                require_user_verification: ceremony.require_uv,
                allow_cross_origin: self.config.allow_cross_origin,
                counter_policy: self.config.counter_policy,
            },
        )
        .inspect_err(|e| {
            if let crate::verify::VerifyError::CounterRegression { stored, received } = e {
                tracing::warn!(credential = %row.id, stored, received, "signature counter regressed: possible cloned authenticator; rejected");
            }
        })?;
        let regressed = matches!(verdict.counter, CounterCheck::Regressed { .. });
        if regressed {
            tracing::warn!(credential = %row.id, "signature counter regressed: possible cloned authenticator; accepted by policy");
        }
        let now = now_millis();
        if !self
            .store
            .record_use(
                &row.id,
                row.sign_count,
                // A regression accepted by policy never lowers the stored counter: a clone
                // must not be able to reset it.
                i64::from(verdict.sign_count).max(row.sign_count),
                verdict.backup_state,
                regressed,
                now,
            )
            .await?
        {
            return Err(RpError::new(
                ErrorKind::Conflict,
                "concurrent_use",
                "another sign-in with this credential happened at the same time; try again",
            ));
        }
        let user = self
            .store
            .user_by_id(&row.user_id)
            .await?
            .ok_or_else(|| RpError::internal("credential without user"))?;
        // Answer with the record as it is now stored.
        let mut row = row;
        row.sign_count = i64::from(verdict.sign_count).max(row.sign_count);
        row.backup_state = verdict.backup_state;
        row.last_used_at = Some(now);
        row.counter_regressions = row.counter_regressions.saturating_add(i64::from(regressed));
        let mut out = Authenticated {
            user,
            credential: row,
            verdict,
            session_token: None,
            receipt: None,
        };
        match purpose {
            AuthPurpose::Login => {
                out.session_token = Some(self.new_session(&out.user.id, &out.credential.id).await?);
            }
            AuthPurpose::Reauth => {
                if let Some(s) = session {
                    self.store
                        .mark_session_verified(&s.token_hash, &out.credential.id, now)
                        .await?;
                }
            }
            AuthPurpose::Action => {
                let payload = ceremony.payload.unwrap_or_default();
                out.receipt = Some(
                    self.issue_receipt(&out, &payload, &ceremony_row.challenge, &response, now)
                        .await?,
                );
            }
        }
        Ok(out)
    }

    async fn issue_receipt(
        &self,
        auth: &Authenticated,
        payload: &str,
        challenge: &str,
        response: &AuthenticationResponseJson,
        now: i64,
    ) -> Result<SignedReceipt, RpError> {
        let receipt = Receipt {
            type_: "passgate.action-receipt.v1".into(),
            id: b64::encode(&random::<16>(&self.rng)?),
            rp_id: self.config.rp_id.clone(),
            user_id: auth.user.id.clone(),
            user_name: auth.user.name.clone(),
            credential_id: auth.credential.id.clone(),
            credential_public_key: auth.credential.public_key.clone(),
            payload: payload.to_owned(),
            payload_sha256: b64::encode(digest(&SHA256, payload.as_bytes()).as_ref()),
            payload_shown: b64::decode(&response.response.client_data_json)
                .is_ok_and(|bytes| crate::receipts::client_data_says_payload_shown(&bytes)),
            challenge: challenge.to_owned(),
            approved_at: now,
            user_verified: auth.verdict.user_verified,
            origin: auth.verdict.origin.clone(),
            assertion: ReceiptAssertion {
                authenticator_data: response.response.authenticator_data.clone(),
                client_data_json: response.response.client_data_json.clone(),
                signature: response.response.signature.clone(),
            },
        };
        let receipt_json = serde_json::to_string(&receipt).map_err(RpError::internal)?;
        let signature = b64::encode(&self.signer.sign(&receipt_json).map_err(RpError::internal)?);
        self.store
            .insert_receipt(&ReceiptRow {
                id: receipt.id.clone(),
                user_id: receipt.user_id.clone(),
                credential_id: receipt.credential_id.clone(),
                receipt: receipt_json.clone(),
                signature: signature.clone(),
                created_at: now,
            })
            .await?;
        Ok(SignedReceipt {
            receipt,
            receipt_json,
            signature,
            key_id: self.signer.key_id().to_owned(),
        })
    }
}
