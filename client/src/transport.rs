//! How the bridge reaches an authenticator: one CTAP2 request (command byte + CBOR) in, one
//! response (status byte + CBOR) out.
//!
//! - [`InProcess`]: an authenticator in this process ([`LocalAuthenticator`]: webviews, tests).
//! - [`CtapHidSocket`]: a `passgate authenticator serve` over CTAPHID reports carried on its Unix
//!   socket (`unix:PATH`, the default) or loopback TCP (`tcp://HOST:PORT`): the browser
//!   extension's native-messaging host, the local HTTP bridge, `passgate app`.

use std::io::{ErrorKind, Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use passgate_platform_api::ctap_handler::LocalAuthenticator;
use passgate_platform_api::transport::secret::ConnectionSecret;
use passgate_platform_api::transport::stream::{Address, Stream};
use passgate_platform_api::user_verifier::Interaction;
use passgate_proto::ctaphid::{
    BROADCAST_CID, CMD_CANCEL, CMD_CBOR, CMD_ERROR, CMD_INIT, CMD_KEEPALIVE, MessageAssembler,
    PACKET_SIZE, Packet, encode_message,
};

/// Why a request did not reach the authenticator or got no answer.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The authenticator cannot be reached.
    #[error("the authenticator is unreachable: {0}")]
    Unreachable(String),
    /// The authenticator stopped answering.
    #[error("the authenticator did not answer in time")]
    Timeout,
    /// The authenticator answered something that is not a CTAP response.
    #[error("the authenticator answered something unexpected: {0}")]
    Protocol(String),
}

/// Carries CTAP2 requests to an authenticator.
pub trait CtapTransport: Send {
    /// Sends `request` (command byte + CBOR) and returns the response (status byte + CBOR).
    /// Must honour `interaction.is_cancelled()` by cancelling the running request (the
    /// authenticator then answers CTAP2_ERR_KEEPALIVE_CANCEL).
    fn call(
        &mut self,
        request: &[u8],
        interaction: &Interaction,
    ) -> Result<Vec<u8>, TransportError>;
}

/// An authenticator in this process. The authenticator is shared so that the embedding
/// application can keep managing it (credential management, reset) between ceremonies.
#[derive(Clone)]
pub struct InProcess {
    authenticator: Arc<Mutex<dyn LocalAuthenticator>>,
}

impl std::fmt::Debug for InProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InProcess(..)")
    }
}

impl InProcess {
    /// A transport to `authenticator`.
    pub fn new(authenticator: impl LocalAuthenticator + 'static) -> Self {
        Self::shared(Arc::new(Mutex::new(authenticator)))
    }

    /// A transport to an authenticator the caller keeps a handle to.
    pub fn shared<A: LocalAuthenticator + 'static>(authenticator: Arc<Mutex<A>>) -> Self {
        Self { authenticator }
    }

    /// The authenticator.
    pub fn authenticator(&self) -> &Arc<Mutex<dyn LocalAuthenticator>> {
        &self.authenticator
    }
}

impl CtapTransport for InProcess {
    fn call(
        &mut self,
        request: &[u8],
        interaction: &Interaction,
    ) -> Result<Vec<u8>, TransportError> {
        let mut authenticator = self
            .authenticator
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(authenticator.handle_cbor(request, interaction))
    }
}

/// How long the TCP transport waits for any report (a response or a KEEPALIVE, which the
/// authenticator sends every 100 ms while it works) before giving up.
const SILENCE_LIMIT: Duration = Duration::from_secs(5);
/// How often a waiting request checks for cancellation.
const POLL: Duration = Duration::from_millis(50);

/// CTAPHID on a stream socket: 64-byte reports written and read as-is, as `passgate
/// authenticator serve` speaks it. Connects (and allocates a channel with INIT) on first use
/// and again after an error or when the authenticator closed the idle connection.
#[derive(Debug)]
pub struct CtapHidSocket {
    target: Result<Address, String>,
    secret: Option<ConnectionSecret>,
    connection: Option<(Stream, u32)>,
}

/// The name this transport had when it carried TCP only.
pub type TcpCtapHid = CtapHidSocket;

impl CtapHidSocket {
    /// A transport to `target`: `unix:PATH`, `tcp://HOST:PORT` or `HOST:PORT` (TCP). Nothing
    /// is connected yet; an address that does not parse fails the first call.
    pub fn new(target: &str) -> Self {
        let target = if target.contains("://") || target.starts_with("unix:") {
            Address::parse(target).map_err(|e| e.to_string())
        } else {
            Ok(Address::Tcp(target.to_owned()))
        };
        Self {
            target,
            secret: None,
            connection: None,
        }
    }

    /// Sends `secret` first on every connection (a TCP authenticator with a real presence
    /// prompt asks for it; see `passgate_platform_api::transport::secret`).
    pub fn with_secret(mut self, secret: ConnectionSecret) -> Self {
        self.secret = Some(secret);
        self
    }

    /// For a TCP target, sends the secret in `path` when that file exists (the authenticator
    /// writes it in its state directory); otherwise changes nothing.
    pub fn with_secret_file(self, path: &Path) -> Result<Self, TransportError> {
        if !matches!(self.target, Ok(Address::Tcp(_))) || !path.exists() {
            return Ok(self);
        }
        let secret = ConnectionSecret::read_from(path)
            .map_err(|e| TransportError::Unreachable(format!("{}: {e}", path.display())))?;
        Ok(self.with_secret(secret))
    }

    fn connect(&self) -> Result<(Stream, u32), TransportError> {
        let target = self
            .target
            .as_ref()
            .map_err(|e| TransportError::Unreachable(e.clone()))?;
        let unreachable = |e: std::io::Error| TransportError::Unreachable(format!("{target}: {e}"));
        let mut stream = Stream::connect(target, Duration::from_secs(2)).map_err(unreachable)?;
        stream.set_read_timeout(Some(POLL)).map_err(unreachable)?;
        stream
            .set_write_timeout(Some(Duration::from_secs(2)))
            .map_err(unreachable)?;
        if let Some(secret) = &self.secret {
            stream.write_all(&secret.hello()).map_err(unreachable)?;
        }
        let mut nonce = [0u8; 8];
        aws_lc_rs::rand::fill(&mut nonce)
            .map_err(|_| TransportError::Protocol("no randomness for the INIT nonce".into()))?;
        write_message(&mut stream, BROADCAST_CID, CMD_INIT, &nonce)?;
        let deadline = Instant::now() + SILENCE_LIMIT;
        let mut assembler = MessageAssembler::new();
        loop {
            let Some(packet) = read_packet(&mut stream, deadline)? else {
                continue;
            };
            let message = assembler
                .push(&packet)
                .map_err(|e| TransportError::Protocol(format!("{e:?}")))?;
            if let Some((cid, cmd, payload)) = message {
                if cid == BROADCAST_CID && cmd == CMD_INIT && payload.get(..8) == Some(&nonce[..]) {
                    let channel = payload
                        .get(8..12)
                        .and_then(|b| <[u8; 4]>::try_from(b).ok())
                        .map(u32::from_be_bytes)
                        .ok_or_else(|| TransportError::Protocol("short INIT response".into()))?;
                    return Ok((stream, channel));
                }
            }
        }
    }

    /// Sends `request` and reads its response. The error says whether any report came back:
    /// a connection closed before that never ran the request.
    fn exchange(
        stream: &mut Stream,
        cid: u32,
        request: &[u8],
        interaction: &Interaction,
    ) -> Result<Vec<u8>, (TransportError, Heard)> {
        let mut heard = Heard(false);
        Self::exchange_inner(stream, cid, request, interaction, &mut heard).map_err(|e| (e, heard))
    }

    fn exchange_inner(
        stream: &mut Stream,
        cid: u32,
        request: &[u8],
        interaction: &Interaction,
        heard: &mut Heard,
    ) -> Result<Vec<u8>, TransportError> {
        write_message(stream, cid, CMD_CBOR, request)?;
        let mut assembler = MessageAssembler::new();
        let mut cancel_sent = false;
        let mut deadline = Instant::now() + SILENCE_LIMIT;
        loop {
            if interaction.is_cancelled() && !cancel_sent {
                write_message(stream, cid, CMD_CANCEL, &[])?;
                cancel_sent = true;
            }
            let Some(packet) = read_packet(stream, deadline)? else {
                continue;
            };
            heard.0 = true;
            deadline = Instant::now() + SILENCE_LIMIT;
            let message = assembler
                .push(&packet)
                .map_err(|e| TransportError::Protocol(format!("{e:?}")))?;
            let Some((from, cmd, payload)) = message else {
                continue;
            };
            if from != cid {
                continue;
            }
            match cmd {
                CMD_KEEPALIVE => {}
                CMD_CBOR => return Ok(payload),
                CMD_ERROR => {
                    return Err(TransportError::Protocol(format!(
                        "CTAPHID error 0x{:02x}",
                        payload.first().copied().unwrap_or(0)
                    )));
                }
                other => {
                    return Err(TransportError::Protocol(format!(
                        "unexpected CTAPHID command 0x{other:02x}"
                    )));
                }
            }
        }
    }
}

/// Whether any report answered a request.
#[derive(Debug, Clone, Copy)]
struct Heard(bool);

fn write_message(
    stream: &mut Stream,
    cid: u32,
    cmd: u8,
    payload: &[u8],
) -> Result<(), TransportError> {
    for packet in encode_message(cid, cmd, payload) {
        stream
            .write_all(&packet)
            .map_err(|e| TransportError::Unreachable(e.to_string()))?;
    }
    Ok(())
}

/// Reads one report; `None` when nothing arrived within the poll interval (a chance to check
/// for cancellation). Past `deadline` with nothing read, `Timeout`.
fn read_packet(stream: &mut Stream, deadline: Instant) -> Result<Option<Packet>, TransportError> {
    let mut packet = [0u8; PACKET_SIZE];
    let mut filled = 0;
    while filled < PACKET_SIZE {
        match stream.read(&mut packet[filled..]) {
            Ok(0) => {
                return Err(TransportError::Unreachable(
                    "the authenticator closed the connection".into(),
                ));
            }
            Ok(n) => filled += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if Instant::now() >= deadline {
                    return Err(TransportError::Timeout);
                }
                if filled == 0 {
                    return Ok(None);
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(TransportError::Unreachable(e.to_string())),
        }
    }
    Ok(Some(packet))
}

impl CtapTransport for CtapHidSocket {
    fn call(
        &mut self,
        request: &[u8],
        interaction: &Interaction,
    ) -> Result<Vec<u8>, TransportError> {
        if let Some((mut stream, cid)) = self.connection.take() {
            match Self::exchange(&mut stream, cid, request, interaction) {
                Ok(response) => {
                    self.connection = Some((stream, cid));
                    return Ok(response);
                }
                // The authenticator closes idle connections: a kept connection that is gone
                // before any answer never ran the request, which is sent again on a new one.
                Err((TransportError::Unreachable(why), Heard(false))) => {
                    tracing::debug!(%why, "the kept connection is gone; reconnecting");
                }
                Err((other, _)) => return Err(other),
            }
        }
        let (mut stream, cid) = self.connect()?;
        let result = Self::exchange(&mut stream, cid, request, interaction).map_err(|(e, _)| e);
        if result.is_ok() {
            self.connection = Some((stream, cid));
        }
        result
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use passgate_authenticator::transport::tcp::{ServeOptions, TcpServer, UnixServer};
    use passgate_platform_api::ctap_handler::CtapHandler;
    use passgate_platform_api::transport::secret::{ConnectionSecret, SECRET_FILE};
    use passgate_platform_api::user_verifier::Interaction;

    use super::{CtapHidSocket, CtapTransport, TransportError};

    struct Echo;

    impl CtapHandler for Echo {
        fn handle_cbor(&mut self, request: &[u8], _: &Interaction) -> Vec<u8> {
            [&[0x00], request].concat()
        }
    }

    #[test]
    fn a_unix_target_is_reached_and_an_idle_close_is_survived() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/authenticator.sock");
        let options = ServeOptions {
            idle_timeout: Duration::from_millis(300),
            ..ServeOptions::default()
        };
        let _server = UnixServer::start_with(&path, Echo, options).unwrap();
        let mut client = CtapHidSocket::new(&format!("unix:{}", path.display()));
        let i = Interaction::new();
        assert_eq!(client.call(&[0x04], &i).unwrap(), [0x00, 0x04]);
        // The server closes the idle connection; the next call reconnects.
        std::thread::sleep(Duration::from_millis(800));
        assert_eq!(client.call(&[0x04, 1], &i).unwrap(), [0x00, 0x04, 1]);
    }

    #[test]
    fn a_tcp_target_with_a_secret_needs_the_secret_file() {
        let dir = tempfile::tempdir().unwrap();
        let secret = ConnectionSecret::generate().unwrap();
        let file = dir.path().join(SECRET_FILE);
        secret.write_to(&file).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let server = TcpServer::start_with(
            listener,
            Echo,
            ServeOptions {
                secret: Some(secret),
                ..ServeOptions::default()
            },
        )
        .unwrap();
        let target = format!("tcp://{}", server.local_addr());
        let i = Interaction::new();
        let without = CtapHidSocket::new(&target).call(&[0x04], &i);
        assert!(
            matches!(without, Err(TransportError::Unreachable(_))),
            "{without:?}"
        );
        let mut with = CtapHidSocket::new(&target).with_secret_file(&file).unwrap();
        assert_eq!(with.call(&[0x04], &i).unwrap(), [0x00, 0x04]);
        let bad = CtapHidSocket::new("unix:").call(&[0x04], &i);
        assert!(matches!(bad, Err(TransportError::Unreachable(why)) if why.contains("unix:PATH")));
    }
}
