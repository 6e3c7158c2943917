//! How the bridge reaches an authenticator: one CTAP2 request (command byte + CBOR) in, one
//! response (status byte + CBOR) out.
//!
//! - [`InProcess`]: an [`Authenticator`] in this process (webviews, tests).
//! - [`TcpCtapHid`]: a `passgate authenticator serve` over CTAPHID reports carried on TCP (the
//!   browser extension's native-messaging host).

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use passgate_authenticator::Authenticator;
use passgate_authenticator::api::user_verifier::Interaction;
use passgate_authenticator::ctaphid::{
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
#[derive(Debug, Clone)]
pub struct InProcess {
    authenticator: Arc<Mutex<Authenticator>>,
}

impl InProcess {
    /// A transport to `authenticator`.
    pub fn new(authenticator: Authenticator) -> Self {
        Self::shared(Arc::new(Mutex::new(authenticator)))
    }

    /// A transport to an authenticator the caller keeps a handle to.
    pub fn shared(authenticator: Arc<Mutex<Authenticator>>) -> Self {
        Self { authenticator }
    }

    /// The authenticator.
    pub fn authenticator(&self) -> &Arc<Mutex<Authenticator>> {
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
        Ok(authenticator.handle_with(request, interaction))
    }
}

/// How long the TCP transport waits for any report (a response or a KEEPALIVE, which the
/// authenticator sends every 100 ms while it works) before giving up.
const SILENCE_LIMIT: Duration = Duration::from_secs(5);
/// How often a waiting request checks for cancellation.
const POLL: Duration = Duration::from_millis(50);

/// CTAPHID over TCP: 64-byte reports written and read as-is, as `passgate authenticator serve`
/// speaks it. Connects (and allocates a channel with INIT) on first use and again after an
/// error.
#[derive(Debug)]
pub struct TcpCtapHid {
    target: String,
    connection: Option<(TcpStream, u32)>,
}

impl TcpCtapHid {
    /// A transport to `target`, `tcp://HOST:PORT` or `HOST:PORT`. Nothing is connected yet.
    pub fn new(target: &str) -> Self {
        let target = target.strip_prefix("tcp://").unwrap_or(target).to_owned();
        Self {
            target,
            connection: None,
        }
    }

    fn connect(&self) -> Result<(TcpStream, u32), TransportError> {
        let unreachable =
            |e: std::io::Error| TransportError::Unreachable(format!("{}: {e}", self.target));
        let addrs: Vec<_> = self
            .target
            .to_socket_addrs()
            .map_err(unreachable)?
            .collect();
        let mut last = None;
        let mut stream = None;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let mut stream = stream.ok_or_else(|| {
            unreachable(last.unwrap_or_else(|| std::io::Error::other("no address")))
        })?;
        stream.set_nodelay(true).map_err(unreachable)?;
        stream.set_read_timeout(Some(POLL)).map_err(unreachable)?;
        stream
            .set_write_timeout(Some(Duration::from_secs(2)))
            .map_err(unreachable)?;
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

    fn exchange(
        stream: &mut TcpStream,
        cid: u32,
        request: &[u8],
        interaction: &Interaction,
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

fn write_message(
    stream: &mut TcpStream,
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
fn read_packet(
    stream: &mut TcpStream,
    deadline: Instant,
) -> Result<Option<Packet>, TransportError> {
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

impl CtapTransport for TcpCtapHid {
    fn call(
        &mut self,
        request: &[u8],
        interaction: &Interaction,
    ) -> Result<Vec<u8>, TransportError> {
        let (mut stream, cid) = match self.connection.take() {
            Some(c) => c,
            None => self.connect()?,
        };
        let result = Self::exchange(&mut stream, cid, request, interaction);
        if result.is_ok() {
            self.connection = Some((stream, cid));
        }
        result
    }
}
