//! authenticatorReset (CTAP 2.1 §6.6): no parameters, no response body.

use ciborium::value::Value;

use super::Command;

/// The request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Request;

impl super::Request for Request {
    const COMMAND: Command = Command::Reset;

    fn to_value(&self) -> Option<Value> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::super::Request as _;

    #[test]
    fn bare_commands_are_one_byte() {
        assert_eq!(super::Request.encode().unwrap(), [0x07]);
        assert_eq!(super::super::selection::Request.encode().unwrap(), [0x0b]);
    }
}
