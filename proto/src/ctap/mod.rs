//! CTAP 2.1 requests and responses with named keys, one module per command, shared by the
//! authenticator (decode requests, encode responses) and the client (the opposite).
