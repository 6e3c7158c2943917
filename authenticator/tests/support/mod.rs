//! Helpers shared by the TPM tests.

pub mod ctap;
pub mod tpm;
