//! Registration ceremonies (on webauthn-rs): options that honour the caller's authenticator
//! selection, attestation and extensions, and the finish that stores the decoded public key.

use super::*;
use webauthn_rs_core::proto::RegistrationExtensionsClientOutputs;

/// `clientExtensionResults` reduced to what webauthn-rs can read: it is unsigned client output,
/// so an entry of an unexpected type (`{"credProtect": 2}`) or a `null` member is dropped rather
/// than failing the registration, and every entry that parses (`credProps`) is kept.
fn clean_extension_results(raw: &mut Value) {
    let Some(object) = raw.as_object_mut() else {
        return;
    };
    for member in ["clientExtensionResults", "extensions"] {
        let Some(results) = object.remove(member) else {
            continue;
        };
        let Value::Object(entries) = results else {
            continue;
        };
        let kept: serde_json::Map<String, Value> = entries
            .into_iter()
            .filter(|(name, value)| {
                serde_json::from_value::<RegistrationExtensionsClientOutputs>(
                    json!({ name.as_str(): value }),
                )
                .is_ok()
            })
            .collect();
        object.insert(member.to_owned(), Value::Object(kept));
    }
}

fn registration_error(err: WebauthnError) -> RpError {
    use WebauthnError as E;
    let (code, message): (&'static str, String) = match &err {
        E::InvalidClientDataType => (
            "wrong_ceremony_type",
            "clientDataJSON.type is not webauthn.create".into(),
        ),
        E::MismatchedChallenge => ("challenge_mismatch", "the challenge does not match".into()),
        E::InvalidRPOrigin => ("origin_not_allowed", "the origin is not allowed".into()),
        E::InvalidRPIDHash => (
            "rp_id_hash_mismatch",
            "the RP ID hash does not match".into(),
        ),
        E::UserNotPresent => (
            "user_not_present",
            "the user was not present (UP flag clear)".into(),
        ),
        E::UserNotVerified => (
            "user_verification_missing",
            "user verification was required and did not happen (UV flag clear)".into(),
        ),
        E::CredentialExcludedFromRequest => (
            "credential_excluded",
            "this authenticator already holds a credential for the account".into(),
        ),
        E::CredentialAlteredAlgFromRequest | E::COSEKeyInvalidAlgorithm => (
            "unsupported_algorithm",
            "the credential uses an algorithm that was not offered".into(),
        ),
        E::CredentialCrossOrigin => (
            "cross_origin_not_allowed",
            "cross-origin registration is not allowed".into(),
        ),
        E::ParseCBORFailure(_)
        | E::ParseNOMFailure
        | E::ParseInsufficientBytesAvailable
        | E::ParseJSONFailure(_)
        | E::MissingAttestationCredentialData => (
            "malformed_response",
            format!("the attestation could not be parsed: {err}"),
        ),
        _ if format!("{err:?}").starts_with("Attestation")
            || format!("{err:?}").contains("Signature") =>
        {
            (
                "attestation_invalid",
                format!("the attestation statement is invalid: {err}"),
            )
        }
        _ => ("registration_rejected", err.to_string()),
    };
    RpError::invalid(code, message)
}

/// What the attestation object's authenticator data says about the new credential.
struct AttestedCredential {
    flags: Flags,
    sign_count: u32,
    aaguid: [u8; 16],
    credential_id: Vec<u8>,
    /// The COSE_Key bytes exactly as signed.
    public_key_cose: Vec<u8>,
    /// The same key decoded.
    public_key: ciborium::Value,
}

/// The attestation object's `fmt` and attested credential, read with the one authenticator-data
/// parser ([`passgate_proto::AuthenticatorData`]).
fn parse_attestation_object(bytes: &[u8]) -> Result<(String, AttestedCredential), RpError> {
    let malformed =
        |what: &str| RpError::invalid("malformed_response", format!("attestationObject: {what}"));
    let value: ciborium::Value = ciborium::from_reader(bytes).map_err(|_| malformed("not CBOR"))?;
    let ciborium::Value::Map(entries) = value else {
        return Err(malformed("not a map"));
    };
    let field = |name: &str| {
        entries.iter().find_map(|(k, v)| match k {
            ciborium::Value::Text(t) if t == name => Some(v),
            _ => None,
        })
    };
    let fmt = match field("fmt") {
        Some(ciborium::Value::Text(t)) => t.clone(),
        _ => return Err(malformed("fmt missing")),
    };
    let auth_data = match field("authData") {
        Some(ciborium::Value::Bytes(b)) => b,
        _ => return Err(malformed("authData missing")),
    };
    let parsed = AuthenticatorData::parse(auth_data).map_err(|e| malformed(&e.to_string()))?;
    let acd = parsed
        .attested_credential_data
        .ok_or_else(|| malformed("no attested credential data"))?;
    Ok((
        fmt,
        AttestedCredential {
            flags: parsed.flags,
            sign_count: parsed.sign_count,
            aaguid: acd.aaguid,
            credential_id: acd.credential_id,
            public_key_cose: acd.public_key_cbor,
            public_key: acd.public_key,
        },
    ))
}

fn hyphenated(aaguid: &[u8; 16]) -> String {
    let hex: String = aaguid.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

impl RelyingParty {
    /// Begins a registration: a new account (`signed_in` None) or another passkey for the
    /// signed-in user. Returns `PublicKeyCredentialCreationOptionsJSON`.
    pub async fn begin_registration(
        &self,
        req: &RegistrationOptionsRequest,
        signed_in: Option<&UserRow>,
    ) -> Result<Value, RpError> {
        let username = req.username.as_str();
        let display_name = req.display_name.as_deref();
        let attestation = req.attestation.as_deref();
        let selection =
            req.authenticator_selection
                .resolve(if self.config.require_user_verification {
                    "required"
                } else {
                    "preferred"
                })?;
        let extensions = match &req.extensions {
            None | Some(Value::Null) => serde_json::Map::new(),
            Some(Value::Object(map)) => map.clone(),
            Some(_) => {
                return Err(RpError::invalid(
                    "invalid_option",
                    "extensions must be an object",
                ));
            }
        };
        let (user_id, name, display, exclude, new_user) = match signed_in {
            Some(user) => {
                let exclude = self
                    .store
                    .credentials_of(&user.id)
                    .await?
                    .iter()
                    .filter_map(|c| b64::decode(&c.id).ok())
                    .collect::<Vec<_>>();
                (
                    user.id.clone(),
                    user.name.clone(),
                    user.display_name.clone(),
                    exclude,
                    false,
                )
            }
            None => {
                // A taken name is not refused here: that would tell anyone which names
                // exist. The options look the same either way; the account is created only
                // when the finish step proves an authenticator answered, and a name taken by
                // then is refused there (`username_taken`, after a completed ceremony).
                let username = normalize_username(username)?;
                let display = display_name
                    .filter(|d| !d.trim().is_empty())
                    .unwrap_or(&username);
                check_name("displayName", display)?;
                let handle = random::<16>(&self.rng)?;
                let display = display.to_owned();
                (b64::encode(&handle), username, display, Vec::new(), true)
            }
        };
        let handle = b64::decode(&user_id).map_err(RpError::internal)?;
        let conveyance = match attestation {
            None | Some("none") => AttestationConveyancePreference::None,
            Some("indirect") => AttestationConveyancePreference::Indirect,
            Some("direct" | "enterprise") => AttestationConveyancePreference::Direct,
            Some(other) => {
                return Err(RpError::invalid(
                    "invalid_option",
                    format!("attestation {other:?} is not none, indirect, direct or enterprise"),
                ));
            }
        };
        let policy = match selection.user_verification {
            "required" => UserVerificationPolicy::Required,
            "preferred" => UserVerificationPolicy::Preferred,
            _ => UserVerificationPolicy::Discouraged_DO_NOT_USE,
        };
        let builder = self
            .webauthn
            .new_challenge_register_builder(&handle, &name, &display)
            .map_err(|e| RpError::invalid("invalid_username", e.to_string()))?
            .user_verification_policy(policy)
            .attestation(conveyance)
            .exclude_credentials(Some(exclude));
        let (ccr, state) = self
            .webauthn
            .generate_challenge_register(builder)
            .map_err(RpError::internal)?;
        let mut options = serde_json::to_value(&ccr.public_key).map_err(RpError::internal)?;
        // The caller's selection, echoed. webauthn-rs offers residentKey "required" or
        // "discouraged"; without a request passkeys want "preferred" so that security keys
        // without resident-key room still register.
        let mut authenticator_selection = json!({
            "residentKey": selection.resident_key,
            "requireResidentKey": selection.resident_key == "required",
            "userVerification": selection.user_verification,
        });
        if let Some(attachment) = selection.authenticator_attachment {
            authenticator_selection["authenticatorAttachment"] = json!(attachment);
        }
        options["authenticatorSelection"] = authenticator_selection;
        // The requested extensions, echoed, with credProps (which says whether a discoverable
        // credential was made) always asked for.
        let mut extensions = extensions;
        extensions.insert("credProps".into(), json!(true));
        options["extensions"] = Value::Object(extensions);
        if let Some(attestation) = attestation {
            options["attestation"] = json!(attestation);
        }
        options["timeout"] = json!(self.timeout_ms());
        let challenge = options["challenge"].as_str().unwrap_or_default().to_owned();
        let ceremony = RegistrationCeremony {
            state,
            user_id: user_id.clone(),
            user_name: name,
            display_name: display,
            new_user,
        };
        self.store
            .put_ceremony(&CeremonyRow {
                challenge,
                kind: "registration".into(),
                user_id: Some(user_id),
                state: serde_json::to_string(&ceremony).map_err(RpError::internal)?,
                expires_at: self.expires(),
            })
            .await?;
        Ok(options)
    }

    /// Finishes a registration from `RegistrationResponseJSON`. Returns the user, the credential
    /// and, for a new account, a session token.
    pub async fn finish_registration(
        &self,
        body: &[u8],
        signed_in: Option<&UserRow>,
    ) -> Result<(UserRow, CredentialRow, Option<String>), RpError> {
        let mut raw: Value = serde_json::from_slice(body)
            .map_err(|e| RpError::invalid("malformed_response", format!("not JSON: {e}")))?;
        clean_extension_results(&mut raw);
        let reg: RegisterPublicKeyCredential =
            serde_json::from_value(raw.clone()).map_err(|e| {
                RpError::invalid(
                    "malformed_response",
                    format!("not a RegistrationResponseJSON: {e}"),
                )
            })?;
        if reg.type_ != "public-key" {
            return Err(RpError::invalid(
                "wrong_credential_type",
                "the credential type is not public-key",
            ));
        }
        let client_data_b64 = raw["response"]["clientDataJSON"]
            .as_str()
            .unwrap_or_default();
        let ceremony_row = self.take_ceremony(client_data_b64, "registration").await?;
        let ceremony: RegistrationCeremony =
            serde_json::from_str(&ceremony_row.state).map_err(RpError::internal)?;
        match signed_in {
            Some(user) if user.id != ceremony.user_id => {
                return Err(RpError::invalid(
                    "wrong_user",
                    "this registration was started for another account",
                ));
            }
            None if !ceremony.new_user => return Err(RpError::unauthenticated()),
            _ => {}
        }
        let credential = self
            .webauthn
            .register_credential(&reg, &ceremony.state, None)
            .map_err(registration_error)?;
        let (fmt, attested) = parse_attestation_object(&reg.response.attestation_object)?;
        if attested.credential_id != credential.cred_id {
            return Err(RpError::invalid(
                "malformed_response",
                "credential ID differs from webauthn-rs's parse",
            ));
        }
        let public_key = PublicKey::from_cbor_value(attested.public_key.clone())
            .map_err(|e| RpError::invalid("unsupported_algorithm", e.to_string()))?;
        let transports: Vec<String> = raw["response"]["transports"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(str::to_owned))
                    .take(8)
                    .collect()
            })
            .unwrap_or_default();
        let now = now_millis();
        let aaguid = hyphenated(&attested.aaguid);
        let row = CredentialRow {
            id: b64::encode(&attested.credential_id),
            user_id: ceremony.user_id.clone(),
            public_key: b64::encode(&attested.public_key_cose),
            verify_key: Some(serde_json::to_string(&public_key).map_err(RpError::internal)?),
            algorithm: public_key.algorithm(),
            sign_count: i64::from(attested.sign_count),
            transports: serde_json::to_string(&transports).map_err(RpError::internal)?,
            backup_eligible: attested.flags.backup_eligible(),
            backup_state: attested.flags.backup_state(),
            name: format!("{} passkey", authenticator_name(&aaguid)),
            aaguid,
            attestation_format: fmt,
            created_at: now,
            last_used_at: None,
            counter_regressions: 0,
        };
        let user = UserRow {
            id: ceremony.user_id.clone(),
            name: ceremony.user_name.clone(),
            display_name: ceremony.display_name.clone(),
            created_at: now,
        };
        self.store
            .register(ceremony.new_user.then_some(&user), &row)
            .await?;
        let user = match signed_in {
            Some(u) => u.clone(),
            None => user,
        };
        let token = if signed_in.is_none() {
            Some(self.new_session(&user.id, &row.id).await?)
        } else {
            None
        };
        tracing::info!(user = %user.name, credential = %row.id, "passkey registered");
        Ok((user, row, token))
    }
}
