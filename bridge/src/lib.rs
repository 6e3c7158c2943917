//! passgate's WebAuthn client ("the bridge"): every host — the browser extension's
//! native-messaging host, a webview shim, a local HTTP bridge — hands it the caller's true
//! origin and a page's WebAuthn Level 3 JSON options, and gets back the credential in
//! `PublicKeyCredential.toJSON()` form or a DOMException name.
//!
//! The bridge does what a browser does between the page and the authenticator: it checks the
//! RP ID against the origin (with the public suffix list), builds and hashes
//! `clientDataJSON`, maps the options to CTAP 2.1 `authenticatorMakeCredential` /
//! `authenticatorGetAssertion` (PIN/UV auth protocol 2 for user verification, hmac-secret for
//! the PRF extension), and turns the answer back into JSON.
//!
//! ```text
//! let request = WebAuthnRequest::from_page("https://example.com", None, &message)?;
//!     // message: {"type":"create","options":{...creation options JSON...}}, parsed once by the host
//! bridge.execute(&request, Some(&interaction))
//!   -> Ok({"id":...,"rawId":...,"type":"public-key","authenticatorAttachment":"platform",
//!          "response":{...},"clientExtensionResults":{...}})
//!   or Err(BridgeError { name: NotAllowedError, message: "..." })
//! ```
//!
//! [`Bridge::execute`] is the one entry point; every host decodes a request where it receives
//! it ([`WebAuthnRequest::from_page`] for an origin the host established,
//! [`WebAuthnRequest::from_extension`] for the extension's native-messaging messages).
//!
//! Around it: [`prompt`] (the trusted prompts where the PIN is typed and presence approved:
//! pinentry or the terminal, never the page), [`channel`] (the request/reply layer webview
//! hosts speak, routed by message type; [`conditional`] is passkey autofill on it),
//! [`local_http`] (that channel over HTTP on loopback, for configured and paired origins) and
//! [`native`] (Chrome native messaging for the extension); [`accounts`] is the record of the
//! accounts seen per site, so that a sign-in with several shows the choice before the one
//! verification.

pub mod accounts;
mod ceremony;
pub mod channel;
pub use passgate_proto::client_data;
pub mod conditional;
pub mod error;
pub mod local_http;
pub mod native;
pub mod options;
pub mod origin;
pub mod private_file;
pub mod prompt;

pub use ceremony::{
    Account, AccountChoice, ApprovalRequest, Bridge, MAX_PAYLOAD_BYTES, NewPinRequest,
    NoUserInterface, PinRequest, PowerCycle, Purpose, RequestLabel, Unanswered, UnlockRequest,
    UserInterface, WebAuthnRequest,
};
pub use error::{BridgeError, ErrorName};
pub use origin::{Caller, CallerOrigin};
pub use passgate_client::{
    AuthenticatorInfo, CtapHidSocket, CtapTransport, InProcess, TcpCtapHid, TransportError,
};
/// The one base64url of the project (unpadded out, padding tolerated in).
pub use passgate_proto::b64;
