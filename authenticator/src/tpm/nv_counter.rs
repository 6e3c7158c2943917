//! A monotonic counter in the TPM's non-volatile memory (an NV index of type
//! `TPM_NT_COUNTER`): `TPM2_NV_Increment` only ever raises it, and it lives in the TPM, not in
//! the state directory, so restoring an old copy of that directory cannot make a value come
//! back. SOTER's device counter uses it when SOTER keys are in the TPM.

use tss_esapi::attributes::NvIndexAttributesBuilder;
use tss_esapi::constants::NvIndexType;
use tss_esapi::handles::{NvIndexHandle, NvIndexTpmHandle, TpmHandle};
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::resource_handles::{NvAuth, Provision};
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::NvPublicBuilder;

use tss_esapi::Context;

use crate::api::key_store::KeyStoreError;

/// SOTER's counter: an owner-range NV index, "PG" in its low bytes.
pub const SOTER_COUNTER_INDEX: u32 = 0x0100_5047;

fn backend(what: &str) -> impl FnOnce(tss_esapi::Error) -> KeyStoreError + '_ {
    move |e| KeyStoreError::Backend(format!("TPM {what} failed: {e}"))
}

/// Increments the counter at NV index `index` (defining it the first time) and returns its
/// new value. Defining needs the owner hierarchy's (empty) authorization; incrementing and
/// reading need the index's own (empty, `noDA`) authorization: a counter only goes up, so
/// anyone may raise it, nobody may lower it. Nothing here is secret, so the empty password
/// authorizes it: no session, no storage primary, three commands (`NV_ReadPublic`,
/// `NV_Increment`, `NV_Read`).
pub fn increment(context: &mut Context, index: u32) -> Result<u64, KeyStoreError> {
    let tpm_handle = NvIndexTpmHandle::new(index).map_err(backend("NV index"))?;
    let handle = match context
        .execute_without_session(|ctx| ctx.tr_from_tpm_public(TpmHandle::NvIndex(tpm_handle)))
    {
        Ok(object) => NvIndexHandle::from(object),
        Err(_) => define(context, tpm_handle)?,
    };
    let value = context
        .execute_with_session(Some(AuthSession::Password), |ctx| {
            ctx.nv_increment(NvAuth::NvIndex(handle), handle)?;
            ctx.nv_read(NvAuth::NvIndex(handle), handle, 8, 0)
        })
        .map_err(backend("NV_Increment"))?;
    let bytes: [u8; 8] = value
        .value()
        .try_into()
        .map_err(|_| KeyStoreError::Backend("the TPM counter is not 8 bytes".into()))?;
    Ok(u64::from_be_bytes(bytes))
}

fn define(context: &mut Context, index: NvIndexTpmHandle) -> Result<NvIndexHandle, KeyStoreError> {
    let attributes = NvIndexAttributesBuilder::new()
        .with_nv_index_type(NvIndexType::Counter)
        .with_auth_write(true)
        .with_auth_read(true)
        .with_no_da(true)
        .build()
        .map_err(backend("NV attributes"))?;
    let public = NvPublicBuilder::new()
        .with_nv_index(index)
        .with_index_name_algorithm(HashingAlgorithm::Sha256)
        .with_index_attributes(attributes)
        .with_data_area_size(8)
        .build()
        .map_err(backend("NV public area"))?;
    context
        .execute_with_session(Some(AuthSession::Password), |ctx| {
            ctx.nv_define_space(Provision::Owner, None, public)
        })
        .map_err(backend("NV_DefineSpace"))
}
