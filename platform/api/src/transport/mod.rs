//! The stream sockets between a CTAP client and an authenticator (Linux only): where an
//! authenticator is reached ([`stream::Address`]) and the per-start secret a TCP client proves
//! itself with ([`secret::ConnectionSecret`]). Both ends use them: the authenticator's servers
//! and the client's CTAPHID transport.

pub mod secret;
pub mod stream;
