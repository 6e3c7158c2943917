//! Small, authenticator-wide persistent state (PIN state, configuration), apart from the
//! per-credential records.

use zeroize::Zeroizing;

use super::credential_store::StoreError;

/// Stores named blobs atomically and durably. Implementations encrypt them at rest.
pub trait StateStore: Send {
    /// Reads `name`, or `None` when it was never written.
    fn load(&mut self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError>;
    /// Writes `name` atomically and durably before returning.
    fn save(&mut self, name: &str, bytes: &[u8]) -> Result<(), StoreError>;
    /// Removes `name` durably.
    fn remove(&mut self, name: &str) -> Result<(), StoreError>;
}
