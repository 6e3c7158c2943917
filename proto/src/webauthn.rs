//! WebAuthn Level 3 JSON types (`PublicKeyCredentialCreationOptionsJSON`, ... `toJSON()` forms).
