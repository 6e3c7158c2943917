//! The per-start secret a TCP client proves it may talk to the authenticator with.
//!
//! Any local account can connect to a loopback TCP port, so an authenticator on TCP with a
//! real presence prompt generates a fresh secret each time it starts and writes it 0600 into
//! its 0700 state directory: only its own user can read it. A connection's first report must
//! then be the [`hello`](ConnectionSecret::hello) report carrying it, or the connection is
//! closed without an answer. (`--presence auto` test rigs run without one; the Unix socket
//! needs none: the kernel tells who connected.)
//!
//! The hello report uses CID 0, which CTAPHID never allocates, and a vendor command, so a
//! server that does not ask for a secret recognises it and ignores it.

use std::io;
use std::path::Path;

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use passgate_proto::ctaphid::{PACKET_SIZE, Packet};

/// The name of the secret's file in the authenticator's state directory.
pub const SECRET_FILE: &str = "authenticator.tcp-secret";

/// The CTAPHID vendor command of the hello report.
pub const CMD_HELLO: u8 = 0x70;

const SECRET_LEN: usize = 32;
/// CID (4), command (1) and length (2) come first.
const DATA: usize = 7;

/// A connection secret (zeroized when dropped).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct ConnectionSecret([u8; SECRET_LEN]);

impl std::fmt::Debug for ConnectionSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConnectionSecret(..)")
    }
}

impl ConnectionSecret {
    /// A fresh random secret.
    pub fn generate() -> io::Result<Self> {
        let mut bytes = [0u8; SECRET_LEN];
        getrandom::fill(&mut bytes)
            .map_err(|_| io::Error::other("no randomness for the connection secret"))?;
        Ok(Self(bytes))
    }

    /// Writes the secret (as hex) to `path`, 0600, atomically.
    pub fn write_to(&self, path: &Path) -> io::Result<()> {
        let mut text = crate::fs::hex(&self.0);
        let written = crate::fs::write_atomic(path, text.as_bytes(), &crate::fs::NoHook);
        text.zeroize();
        written
    }

    /// Reads a secret written by [`Self::write_to`].
    pub fn read_from(path: &Path) -> io::Result<Self> {
        let mut text = std::fs::read_to_string(path)?;
        let parsed = parse_hex(text.trim());
        text.zeroize();
        parsed.map(Self).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} does not hold a connection secret", path.display()),
            )
        })
    }

    /// The first report a client sends.
    pub fn hello(&self) -> Packet {
        let mut p = [0u8; PACKET_SIZE];
        p[4] = 0x80 | CMD_HELLO;
        p[6] = 32;
        p[DATA..DATA + SECRET_LEN].copy_from_slice(&self.0);
        p
    }

    /// Whether `packet` is the hello report with this secret (compared in constant time).
    pub fn accepts(&self, packet: &Packet) -> bool {
        is_hello(packet) && bool::from(packet[DATA..DATA + SECRET_LEN].ct_eq(&self.0))
    }
}

/// Whether `packet` is a hello report (whatever secret it carries).
pub fn is_hello(packet: &Packet) -> bool {
    packet[..4] == [0; 4] && packet[4] == 0x80 | CMD_HELLO
}

fn parse_hex(text: &str) -> Option<[u8; SECRET_LEN]> {
    let mut out = [0u8; SECRET_LEN];
    if text.len() != SECRET_LEN * 2 || !text.is_ascii() {
        return None;
    }
    for (byte, pair) in out.iter_mut().zip(text.as_bytes().chunks(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_round_trips_through_a_private_file_and_only_it_is_accepted() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SECRET_FILE);
        let secret = ConnectionSecret::generate().unwrap();
        secret.write_to(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let read = ConnectionSecret::read_from(&path).unwrap();
        assert!(secret.accepts(&read.hello()));
        let other = ConnectionSecret::generate().unwrap();
        assert!(!secret.accepts(&other.hello()));
        assert!(is_hello(&other.hello()));
        let mut not_hello = secret.hello();
        not_hello[3] = 1;
        assert!(!secret.accepts(&not_hello) && !is_hello(&not_hello));
        std::fs::write(&path, "zz").unwrap();
        let err = ConnectionSecret::read_from(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
