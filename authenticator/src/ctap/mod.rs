//! ctap
