//! authenticatorSelection (CTAP 2.1 §6.9): no parameters, no response body.

use ciborium::value::Value;

use super::Command;

/// The request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Request;

impl super::Request for Request {
    const COMMAND: Command = Command::Selection;

    fn to_value(&self) -> Option<Value> {
        None
    }
}
