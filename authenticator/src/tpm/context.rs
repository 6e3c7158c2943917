//! [`TpmContext`]: one connection to the TPM as passgate uses it, arranged so that an
//! operation issues only the TPM commands it strictly needs, and no secret crosses the bus in
//! the clear.
//!
//! - **Persistent storage primary.** The storage primary is created once
//!   (`TPM2_CreatePrimary`) and made persistent at [`STORAGE_PRIMARY_HANDLE`]
//!   (`TPM2_EvictControl`); later starts only read its public area. A discrete TPM takes up to
//!   seconds for a `CreatePrimary`; no operation issues one. Where the owner hierarchy has an
//!   authorization value passgate does not know, the primary stays transient (re-derived at
//!   each start, as before).
//! - **One salted session.** All authorizations go through one HMAC session started with the
//!   storage primary as `tpmKey` (the salt travels encrypted to the primary's public key, by
//!   ECDH) and AES-128-CFB parameter encryption, kept for the connection's lifetime
//!   (`continueSession`). Its keys come from that salt, so an observer of the bus cannot derive
//!   them; authValues never travel (an HMAC session proves them), and each command that carries
//!   a secret has its first parameter encrypted ([`Encrypt`]). The session is started again
//!   after any failure, so a TPM restart or a lost session costs one command.
//! - **Loaded objects are kept.** Keys loaded for one operation stay loaded for the next (a
//!   small LRU sized from `TPM_PT_HR_TRANSIENT_AVAIL`, keeping the slots a `Load` needs free);
//!   the PIN object is kept in preference. Everything is flushed when the context is dropped.

use std::str::FromStr;

use aws_lc_rs::digest;
use tss_esapi::Context;
use tss_esapi::attributes::SessionAttributesBuilder;
use tss_esapi::constants::response_code::Tss2ResponseCodeKind;
use tss_esapi::constants::{CapabilityType, PropertyTag, SessionType};
use tss_esapi::handles::{AuthHandle, KeyHandle, ObjectHandle, PersistentTpmHandle, TpmHandle};
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::dynamic_handles::Persistent;
use tss_esapi::interface_types::resource_handles::{Hierarchy, Provision};
use tss_esapi::interface_types::session_handles::{AuthSession, PolicySession};
use tss_esapi::structures::{
    Attest, Auth, CapabilityData, CreateKeyResult, Data, Digest, EncryptedSecret, IdObject,
    Private, Public, SensitiveData, Signature, SignatureScheme, SymmetricDefinition,
};
use tss_esapi::tcti_ldr::TctiNameConf;
use tss_esapi::traits::UnMarshall;

use super::templates::storage_primary_template;
use crate::api::key_store::KeyStoreError;

/// Where passgate keeps its storage primary: an owner-hierarchy persistent handle in the
/// storage-key range of the TCG handle registry, "PG" in its low bytes (the registry's
/// `0x81000001` is left to the system's own SRK).
pub const STORAGE_PRIMARY_HANDLE: u32 = 0x8100_5047;

/// Which parameters of a command the session encrypts (TPM 2.0 Part 1, 21: only the first
/// parameter, and only if it is a sized buffer; a command whose first parameter is not one
/// must be sent without `decrypt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encrypt {
    /// Nothing secret in either direction (Load, Sign, NV_Increment).
    Neither,
    /// The first command parameter (Create's sensitive area with the new authValue).
    Command,
    /// The first response parameter (Unseal's data).
    Response,
    /// Both (HMAC: the salt in, the hmac-secret output out).
    Both,
}

/// How long a loaded object stays loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Residency {
    /// Recently used: kept while slots allow, least recently used flushed first.
    Cached,
    /// Used by most operations (the PIN object): kept in preference to cached ones.
    Pinned,
}

/// Why [`TpmContext::with_object`] failed.
#[derive(Debug)]
pub enum ObjectUseError {
    /// The TPM refused to load the blob: made by another TPM, or modified.
    Load(tss_esapi::Error),
    /// The command run on the loaded object failed.
    Use(tss_esapi::Error),
}

/// An object this context keeps loaded, known by a digest of its blob.
struct Loaded {
    id: [u8; 32],
    handle: KeyHandle,
}

/// A TPM connection with passgate's storage primary, session and loaded objects; see the
/// module documentation.
pub struct TpmContext {
    context: Context,
    primary: KeyHandle,
    /// Whether `primary` is the persistent one (closed on drop) or a transient one (flushed).
    primary_persistent: bool,
    session: Option<AuthSession>,
    /// Kept objects, least recently used first.
    cached: Vec<Loaded>,
    pinned: Option<Loaded>,
    /// Transient object slots this connection may use.
    object_slots: usize,
}

impl std::fmt::Debug for TpmContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TpmContext")
            .field("primary_persistent", &self.primary_persistent)
            .field("cached", &self.cached.len())
            .field("pinned", &self.pinned.is_some())
            .finish_non_exhaustive()
    }
}

fn backend(what: &str) -> impl FnOnce(tss_esapi::Error) -> KeyStoreError + '_ {
    move |e| KeyStoreError::Backend(format!("TPM {what} failed: {e}"))
}

impl TpmContext {
    /// Connects to the TPM behind `tcti` and finds (or, the first time, creates and persists)
    /// passgate's storage primary. `flush_stale` first flushes transient objects and sessions
    /// a killed predecessor left (only for the long-lived daemon; see
    /// [`Self::flush_stale_handles`]).
    pub fn connect(tcti: &str, flush_stale: bool) -> Result<Self, KeyStoreError> {
        let mut context = connect_esys(tcti)?;
        if flush_stale {
            Self::flush_stale_handles(&mut context);
        }
        let (primary, primary_persistent) = storage_primary(&mut context)?;
        // Slots free now, minus the one a persistent primary occupies while it is used (as
        // the parent of a Load or Create, or the salt key of StartAuthSession).
        let available = read_property(&mut context, PropertyTag::HrTransientAvail).unwrap_or(3);
        let object_slots = usize::try_from(available)
            .unwrap_or(3)
            .saturating_sub(usize::from(primary_persistent));
        Ok(Self {
            context,
            primary,
            primary_persistent,
            session: None,
            cached: Vec::new(),
            pinned: None,
            object_slots,
        })
    }

    /// The storage primary: the parent of every object passgate keeps in this TPM.
    pub fn primary(&self) -> KeyHandle {
        self.primary
    }

    /// Whether the storage primary is persistent (else re-derived at each start).
    pub fn primary_is_persistent(&self) -> bool {
        self.primary_persistent
    }

    /// The storage primary's TPM name (a digest of its public area, as read at connect).
    pub fn primary_name(&mut self) -> Option<Vec<u8>> {
        let primary = self.primary;
        self.context
            .tr_get_name(primary.into())
            .ok()
            .map(|name| name.value().to_vec())
    }

    /// The underlying ESAPI context, for commands that need no authorization
    /// (`GetCapability`).
    pub fn esys(&mut self) -> &mut Context {
        &mut self.context
    }

    /// A TPM property (`TPM2_GetCapability`, `TPM_CAP_TPM_PROPERTIES`).
    pub fn property(&mut self, tag: PropertyTag) -> Option<u32> {
        read_property(&mut self.context, tag)
    }

    /// The salted session, started on first use.
    fn session(&mut self) -> Result<AuthSession, tss_esapi::Error> {
        if let Some(session) = self.session {
            return Ok(session);
        }
        let primary = self.primary;
        let session = self
            .context
            .execute_without_session(|ctx| {
                ctx.start_auth_session(
                    Some(primary),
                    None,
                    None,
                    SessionType::Hmac,
                    SymmetricDefinition::AES_128_CFB,
                    HashingAlgorithm::Sha256,
                )
            })?
            .ok_or(tss_esapi::Error::WrapperError(
                tss_esapi::WrapperErrorKind::WrongValueFromTpm,
            ))?;
        self.session = Some(session);
        Ok(session)
    }

    /// Forgets the session after a failure (its nonces may no longer match the TPM's); the
    /// next command starts a new one.
    fn drop_session(&mut self) {
        if let Some(session) = self.session.take() {
            let handle = ObjectHandle::from(tss_esapi::handles::SessionHandle::from(session));
            if let Err(e) = self.context.flush_context(handle) {
                tracing::debug!(error = %e, "could not flush a failed TPM session");
            }
        }
    }

    /// Runs `f` (one or more TPM commands) authorized by the salted session, with `encrypt`
    /// deciding which parameters it encrypts.
    pub fn run<T>(
        &mut self,
        encrypt: Encrypt,
        f: impl FnOnce(&mut Context) -> Result<T, tss_esapi::Error>,
    ) -> Result<T, tss_esapi::Error> {
        let session = self.session()?;
        let (decrypt, encrypt) = match encrypt {
            Encrypt::Neither => (false, false),
            Encrypt::Command => (true, false),
            Encrypt::Response => (false, true),
            Encrypt::Both => (true, true),
        };
        let (attributes, mask) = SessionAttributesBuilder::new()
            .with_continue_session(true)
            .with_decrypt(decrypt)
            .with_encrypt(encrypt)
            .build();
        let result = self
            .context
            .tr_sess_set_attributes(session, attributes, mask)
            .and_then(|()| self.context.execute_with_session(Some(session), f));
        if result.is_err() {
            self.drop_session();
        }
        result
    }

    /// `TPM2_Create` of a child of the storage primary. The sensitive area (the new
    /// authValue, sealed data) is parameter-encrypted.
    pub fn create(
        &mut self,
        template: Public,
        auth: Option<Auth>,
        data: Option<SensitiveData>,
    ) -> Result<CreateKeyResult, tss_esapi::Error> {
        self.make_room(1);
        let primary = self.primary;
        let created = self.run(Encrypt::Command, |ctx| {
            ctx.create(
                primary,
                template.clone(),
                auth.clone(),
                data.clone(),
                None,
                None,
            )
        });
        match created {
            Err(e) if is_out_of_memory(&e) => {
                self.flush_all();
                self.run(Encrypt::Command, |ctx| {
                    ctx.create(primary, template, auth, data, None, None)
                })
            }
            other => other,
        }
    }

    /// Loads the object of `public` and `private` (marshalled TPM2B_PUBLIC contents and
    /// TPM2B_PRIVATE buffer) unless it is still loaded, sets `auth` for the session's HMAC,
    /// runs `f` with `encrypt`, and keeps the object loaded as `residency` says.
    pub fn with_object<T>(
        &mut self,
        public: &[u8],
        private: &[u8],
        auth: Auth,
        residency: Residency,
        encrypt: Encrypt,
        f: impl FnOnce(&mut Context, KeyHandle) -> Result<T, tss_esapi::Error>,
    ) -> Result<T, ObjectUseError> {
        let id = blob_id(public, private);
        let handle = match self.take_loaded(&id) {
            Some(handle) => handle,
            None => self.load(public, private)?,
        };
        let result = self
            .context
            .tr_set_auth(handle.into(), auth)
            .and_then(|()| self.run(encrypt, |ctx| f(ctx, handle)));
        // ESAPI keeps no authValue longer than the command needs.
        let cleared = self.context.tr_set_auth(handle.into(), Auth::default());
        if cleared.is_err() {
            self.flush(handle);
        } else {
            self.keep(Loaded { id, handle }, residency);
        }
        result.map_err(ObjectUseError::Use)
    }

    /// `TPM2_Certify` of the object of `object` (public area, private area, authValue) by the
    /// restricted signing key of `signer` (public and private areas; empty authValue),
    /// `qualifying_data` in the attestation's `extraData`. The object stays loaded as
    /// [`Residency::Cached`]; the signer is flushed afterwards (it is needed once per
    /// credential, and keeping it would push out the objects of the hot paths). The object's
    /// authorization (ADMIN role, by its authValue) goes
    /// through the salted session, the signer's through a password session carrying its
    /// empty authValue (a command may not use one session twice; nothing secret is in either
    /// direction).
    pub fn certify(
        &mut self,
        object: (&[u8], &[u8], Auth),
        signer: (&[u8], &[u8]),
        qualifying_data: Data,
    ) -> Result<(Attest, Signature), ObjectUseError> {
        let signer_handle = self.load(signer.0, signer.1)?;
        let (public, private, auth) = object;
        let object_id = blob_id(public, private);
        let object_handle = match self.take_loaded(&object_id) {
            Some(handle) => handle,
            // Room for the object beside the signer, which is loaded but not counted among
            // the kept objects while it is in use.
            None => {
                self.make_room(2);
                match self.load(public, private) {
                    Ok(handle) => handle,
                    Err(e) => {
                        self.flush(signer_handle);
                        return Err(e);
                    }
                }
            }
        };
        let result = self
            .context
            .tr_set_auth(object_handle.into(), auth)
            .and_then(|()| self.session())
            .and_then(|session| {
                let (attributes, mask) = SessionAttributesBuilder::new()
                    .with_continue_session(true)
                    .build();
                self.context
                    .tr_sess_set_attributes(session, attributes, mask)?;
                self.context.execute_with_sessions(
                    (Some(session), Some(AuthSession::Password), None),
                    |ctx| {
                        ctx.certify(
                            object_handle.into(),
                            signer_handle,
                            qualifying_data,
                            SignatureScheme::Null,
                        )
                    },
                )
            });
        if result.is_err() {
            self.drop_session();
        }
        let cleared = self
            .context
            .tr_set_auth(object_handle.into(), Auth::default());
        self.flush(signer_handle);
        if cleared.is_err() {
            self.flush(object_handle);
        } else {
            self.keep(
                Loaded {
                    id: object_id,
                    handle: object_handle,
                },
                Residency::Cached,
            );
        }
        result.map_err(ObjectUseError::Use)
    }

    /// `TPM2_ActivateCredential`: the TPM decrypts a credential a CA made with
    /// `TPM2_MakeCredential` for the endorsement key `ek` and the name of the attestation key
    /// `ak` (public and private areas; empty authValue), and returns it only if `ak` is loaded
    /// in this TPM and `ek`'s private key decrypts the seed. The AK's authorization (ADMIN)
    /// goes through the salted session, which also encrypts the response (the credential); the
    /// EK's through a policy session satisfied by `PolicySecret` on the endorsement hierarchy,
    /// as the TCG's default EK template asks. Every kept object is flushed first (an EK
    /// primary, the AK and the parent need the slots); the AK is flushed afterwards.
    pub fn activate_credential(
        &mut self,
        ak: (&[u8], &[u8]),
        ek: KeyHandle,
        credential_blob: IdObject,
        secret: EncryptedSecret,
    ) -> Result<Digest, ObjectUseError> {
        self.flush_all();
        let ak_handle = self.load(ak.0, ak.1)?;
        let result = self.activate_loaded(ak_handle, ek, credential_blob, secret);
        if result.is_err() {
            self.drop_session();
        }
        self.flush(ak_handle);
        result.map_err(ObjectUseError::Use)
    }

    fn activate_loaded(
        &mut self,
        ak: KeyHandle,
        ek: KeyHandle,
        credential_blob: IdObject,
        secret: EncryptedSecret,
    ) -> Result<Digest, tss_esapi::Error> {
        let policy = self
            .context
            .execute_without_session(|ctx| {
                ctx.start_auth_session(
                    None,
                    None,
                    None,
                    SessionType::Policy,
                    SymmetricDefinition::AES_128_CFB,
                    HashingAlgorithm::Sha256,
                )
            })?
            .ok_or(tss_esapi::Error::WrapperError(
                tss_esapi::WrapperErrorKind::WrongValueFromTpm,
            ))?;
        let policy_session = PolicySession::try_from(policy)?;
        let activated = self
            .context
            .execute_with_session(Some(AuthSession::Password), |ctx| {
                ctx.policy_secret(
                    policy_session,
                    AuthHandle::Endorsement,
                    Default::default(),
                    Default::default(),
                    Default::default(),
                    None,
                )
            })
            .and_then(|_| self.session())
            .and_then(|session| {
                self.context.tr_set_auth(ak.into(), Auth::default())?;
                let (attributes, mask) = SessionAttributesBuilder::new()
                    .with_continue_session(true)
                    .with_encrypt(true)
                    .build();
                self.context
                    .tr_sess_set_attributes(session, attributes, mask)?;
                self.context
                    .execute_with_sessions((Some(session), Some(policy), None), |ctx| {
                        ctx.activate_credential(ak, ek, credential_blob, secret)
                    })
            });
        // A policy session without continueSession ends with its command; after a failure it
        // may still be loaded.
        if activated.is_err() {
            let handle = ObjectHandle::from(tss_esapi::handles::SessionHandle::from(policy));
            let _ = self.context.flush_context(handle);
        }
        activated
    }

    fn load(&mut self, public: &[u8], private: &[u8]) -> Result<KeyHandle, ObjectUseError> {
        let invalid = || {
            ObjectUseError::Load(tss_esapi::Error::WrapperError(
                tss_esapi::WrapperErrorKind::InvalidParam,
            ))
        };
        let public = Public::unmarshall(public).map_err(|_| invalid())?;
        let private = Private::try_from(private.to_vec()).map_err(|_| invalid())?;
        self.make_room(1);
        let primary = self.primary;
        let loaded = self.run(Encrypt::Neither, |ctx| {
            ctx.load(primary, private.clone(), public.clone())
        });
        match loaded {
            // Someone else's objects fill the slots (no resource manager): make room, retry.
            Err(e) if is_out_of_memory(&e) => {
                self.flush_all();
                self.run(Encrypt::Neither, |ctx| ctx.load(primary, private, public))
                    .map_err(ObjectUseError::Load)
            }
            other => other.map_err(ObjectUseError::Load),
        }
    }

    /// Removes the object `id` from the kept ones and returns its handle, if it is loaded.
    fn take_loaded(&mut self, id: &[u8; 32]) -> Option<KeyHandle> {
        if self.pinned.as_ref().is_some_and(|p| &p.id == id) {
            return self.pinned.take().map(|p| p.handle);
        }
        let at = self.cached.iter().position(|c| &c.id == id)?;
        Some(self.cached.remove(at).handle)
    }

    fn keep(&mut self, object: Loaded, residency: Residency) {
        match residency {
            Residency::Pinned => {
                if let Some(previous) = self.pinned.replace(object) {
                    self.flush(previous.handle);
                }
            }
            Residency::Cached => self.cached.push(object),
        }
        self.make_room(0);
    }

    /// Flushes kept objects (least recently used first, the pinned one last) until `needed`
    /// more objects fit.
    fn make_room(&mut self, needed: usize) {
        while self.loaded_count() + needed > self.object_slots {
            if !self.cached.is_empty() {
                let oldest = self.cached.remove(0);
                self.flush(oldest.handle);
            } else if let Some(pinned) = self.pinned.take() {
                self.flush(pinned.handle);
            } else {
                break;
            }
        }
    }

    fn loaded_count(&self) -> usize {
        self.cached.len() + usize::from(self.pinned.is_some())
    }

    fn flush(&mut self, handle: KeyHandle) {
        if let Err(e) = self.context.flush_context(handle.into()) {
            tracing::debug!(error = %e, "could not flush a TPM object");
        }
    }

    /// Flushes every kept object (after a TPM restart, or when slots ran out).
    pub fn flush_all(&mut self) {
        for object in std::mem::take(&mut self.cached) {
            self.flush(object.handle);
        }
        if let Some(pinned) = self.pinned.take() {
            self.flush(pinned.handle);
        }
    }

    /// A TPM reached without a resource manager (swtpm, `/dev/tpm0`) keeps the transient
    /// objects and sessions of a process that was killed until it restarts, and has only a
    /// few slots: without this, a few restarts of passgate exhaust them
    /// (TPM_RC_OBJECT_MEMORY, TPM_RC_SESSION_MEMORY). Only the serving daemon does this at
    /// start (short-lived probes such as `passgate status` do not, so they never flush a
    /// running daemon's objects). Through `/dev/tpmrm0` the resource manager shows only this
    /// connection's handles (none yet), so nothing of anyone else's is flushed.
    fn flush_stale_handles(context: &mut Context) {
        use tss_esapi::constants::tss::{TPM2_LOADED_SESSION_FIRST, TPM2_TRANSIENT_FIRST};
        for first in [TPM2_TRANSIENT_FIRST, TPM2_LOADED_SESSION_FIRST] {
            let Ok((CapabilityData::Handles(handles), _)) =
                context.get_capability(CapabilityType::Handles, first, 64)
            else {
                continue;
            };
            for handle in handles.into_inner() {
                let flushed = context
                    .tr_from_tpm_public(handle)
                    .and_then(|object| context.flush_context(object));
                if let Err(e) = flushed {
                    tracing::debug!(error = %e, "could not flush a stale TPM handle");
                } else {
                    tracing::info!("flushed a TPM handle left by an earlier process");
                }
            }
        }
    }
}

impl Drop for TpmContext {
    fn drop(&mut self) {
        // Free the TPM's slots now rather than leave them to the next start.
        self.flush_all();
        self.drop_session();
        if self.primary_persistent {
            let mut handle = ObjectHandle::from(self.primary);
            let _ = self.context.tr_close(&mut handle);
        } else {
            let _ = self.context.flush_context(self.primary.into());
        }
    }
}

/// A bare ESAPI connection to the TPM behind `tcti`, for commands that carry no secret and
/// need no storage primary (the NV counter).
pub fn connect_esys(tcti: &str) -> Result<Context, KeyStoreError> {
    let conf = TctiNameConf::from_str(tcti)
        .map_err(|e| KeyStoreError::Backend(format!("invalid TCTI {tcti:?}: {e}")))?;
    Context::new(conf)
        .map_err(|e| KeyStoreError::Backend(format!("no TPM reachable through {tcti:?}: {e}")))
}

fn blob_id(public: &[u8], private: &[u8]) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(
        &u32::try_from(public.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    ctx.update(public);
    ctx.update(private);
    let mut id = [0u8; 32];
    id.copy_from_slice(ctx.finish().as_ref());
    id
}

fn is_out_of_memory(e: &tss_esapi::Error) -> bool {
    matches!(e, tss_esapi::Error::Tss2Error(rc)
        if matches!(rc.kind(), Some(Tss2ResponseCodeKind::ObjectMemory)))
}

fn read_property(context: &mut Context, tag: PropertyTag) -> Option<u32> {
    let (data, _) = context
        .get_capability(CapabilityType::TpmProperties, tag.into(), 1)
        .ok()?;
    let CapabilityData::TpmProperties(props) = data else {
        return None;
    };
    Some(props.find(tag)?.value())
}

/// The persistent storage primary at [`STORAGE_PRIMARY_HANDLE`], created and persisted the
/// first time; a transient one (re-derived from the same template) where it cannot be
/// persisted. Returns the handle and whether it is persistent.
fn storage_primary(context: &mut Context) -> Result<(KeyHandle, bool), KeyStoreError> {
    let persistent = PersistentTpmHandle::new(STORAGE_PRIMARY_HANDLE).map_err(backend("handle"))?;
    if let Ok(object) = context
        .execute_without_session(|ctx| ctx.tr_from_tpm_public(TpmHandle::Persistent(persistent)))
    {
        let key = KeyHandle::from(object);
        if is_passgate_primary(context, key) {
            return Ok((key, true));
        }
        // Someone else's object at our handle: leave it alone.
        tracing::warn!(
            handle = STORAGE_PRIMARY_HANDLE,
            "the persistent handle holds another object: using a transient storage primary"
        );
        let mut handle = object;
        let _ = context.tr_close(&mut handle);
        return Ok((create_transient_primary(context)?, false));
    }
    let transient = create_transient_primary(context)?;
    let evicted = context.execute_with_session(Some(AuthSession::Password), |ctx| {
        ctx.evict_control(
            Provision::Owner,
            transient.into(),
            Persistent::Persistent(persistent),
        )
    });
    match evicted {
        Ok(object) => {
            let _ = context.flush_context(transient.into());
            tracing::info!(
                handle = STORAGE_PRIMARY_HANDLE,
                "made the storage primary persistent"
            );
            Ok((KeyHandle::from(object), true))
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not make the storage primary persistent (owner authorization set?): it is re-derived at each start");
            Ok((transient, false))
        }
    }
}

/// Whether `key` is a storage primary of passgate's template (same algorithm, attributes and
/// parameters; the unique field is the TPM's).
fn is_passgate_primary(context: &mut Context, key: KeyHandle) -> bool {
    let Ok(template) = storage_primary_template() else {
        return false;
    };
    let Ok((public, _, _)) = context.execute_without_session(|ctx| ctx.read_public(key)) else {
        return false;
    };
    match (public, template) {
        (
            Public::Ecc {
                object_attributes,
                name_hashing_algorithm,
                parameters,
                ..
            },
            Public::Ecc {
                object_attributes: want_attributes,
                name_hashing_algorithm: want_hash,
                parameters: want_parameters,
                ..
            },
        ) => {
            object_attributes == want_attributes
                && name_hashing_algorithm == want_hash
                && parameters == want_parameters
        }
        _ => false,
    }
}

/// `TPM2_CreatePrimary` in the owner hierarchy: nothing secret travels (empty sensitive area).
fn create_transient_primary(context: &mut Context) -> Result<KeyHandle, KeyStoreError> {
    let template = storage_primary_template().map_err(backend("template"))?;
    Ok(context
        .execute_with_session(Some(AuthSession::Password), |ctx| {
            ctx.create_primary(Hierarchy::Owner, template, None, None, None, None)
        })
        .map_err(backend("CreatePrimary"))?
        .key_handle)
}
