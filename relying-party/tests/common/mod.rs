//! The relying-party tests' software authenticator and client: passgate-testkit's
//! [`soft_credential`](passgate_testkit::soft_credential) (it builds `RegistrationResponseJSON`
//! / `AuthenticationResponseJSON` from the server's options exactly as a browser would, and can
//! tamper with any part before or after signing), shared with the benches and the load test.

#![allow(unused_imports)]

pub use passgate_testkit::soft_credential::*;
