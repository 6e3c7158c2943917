//! A CTAPHID client (CTAP 2.1 §11.2) over a pluggable report transport.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// One 64-byte HID report.
pub type Report = [u8; 64];

/// Carries HID reports to and from a device.
pub trait Transport {
    /// Sends one report.
    fn send(&mut self, report: &Report) -> io::Result<()>;
    /// Receives one report, or `None` when nothing arrives within `timeout`.
    fn recv(&mut self, timeout: Duration) -> io::Result<Option<Report>>;
}

/// Reports carried as-is over TCP.
pub struct TcpTransport {
    stream: TcpStream,
    buffer: Vec<u8>,
}

/// How long connecting to, or writing a report to, a TCP target may take.
pub const TCP_IO_TIMEOUT: Duration = Duration::from_secs(5);

impl TcpTransport {
    /// Connects to `host:port` (each resolved address tried with [`TCP_IO_TIMEOUT`]), with
    /// `TCP_NODELAY` and a write timeout so that a stuck target never hangs the suite.
    pub fn connect(addr: &str) -> io::Result<Self> {
        let mut last = io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{addr} resolves to no address"),
        );
        for candidate in addr.to_socket_addrs()? {
            match TcpStream::connect_timeout(&candidate, TCP_IO_TIMEOUT) {
                Ok(stream) => return Self::from_stream(stream),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn from_stream(stream: TcpStream) -> io::Result<Self> {
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(TCP_IO_TIMEOUT))?;
        Ok(Self {
            stream,
            buffer: Vec::with_capacity(128),
        })
    }
}

impl Transport for TcpTransport {
    fn send(&mut self, report: &Report) -> io::Result<()> {
        self.stream.write_all(report)
    }

    fn recv(&mut self, timeout: Duration) -> io::Result<Option<Report>> {
        let deadline = Instant::now() + timeout;
        while self.buffer.len() < 64 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.stream.set_read_timeout(Some(left))?;
            let mut chunk = [0u8; 64];
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "device closed the connection",
                    ));
                }
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None);
                }
                Err(e) => return Err(e),
            }
        }
        let mut report = [0u8; 64];
        report.copy_from_slice(&self.buffer[..64]);
        self.buffer.drain(..64);
        Ok(Some(report))
    }
}

/// CTAPHID command codes.
pub mod cmd {
    /// PING.
    pub const PING: u8 = 0x01;
    /// MSG.
    pub const MSG: u8 = 0x03;
    /// LOCK.
    pub const LOCK: u8 = 0x04;
    /// INIT.
    pub const INIT: u8 = 0x06;
    /// WINK.
    pub const WINK: u8 = 0x08;
    /// CBOR.
    pub const CBOR: u8 = 0x10;
    /// CANCEL.
    pub const CANCEL: u8 = 0x11;
    /// KEEPALIVE.
    pub const KEEPALIVE: u8 = 0x3b;
    /// ERROR.
    pub const ERROR: u8 = 0x3f;
}

/// The broadcast channel.
pub const BROADCAST: u32 = 0xffff_ffff;

/// Builds an init report.
pub fn init_report(cid: u32, command: u8, bcnt: u16, data: &[u8]) -> Report {
    let mut r = [0u8; 64];
    r[..4].copy_from_slice(&cid.to_be_bytes());
    r[4] = 0x80 | command;
    r[5..7].copy_from_slice(&bcnt.to_be_bytes());
    let n = data.len().min(57);
    r[7..7 + n].copy_from_slice(&data[..n]);
    r
}

/// Builds a continuation report.
pub fn cont_report(cid: u32, seq: u8, data: &[u8]) -> Report {
    let mut r = [0u8; 64];
    r[..4].copy_from_slice(&cid.to_be_bytes());
    r[4] = seq & 0x7f;
    let n = data.len().min(59);
    r[5..5 + n].copy_from_slice(&data[..n]);
    r
}

/// Splits a message into reports.
pub fn reports(cid: u32, command: u8, payload: &[u8]) -> Vec<Report> {
    let bcnt = u16::try_from(payload.len()).unwrap_or(u16::MAX);
    let mut out = vec![init_report(cid, command, bcnt, payload)];
    let mut rest = payload.get(57..).unwrap_or_default();
    let mut seq = 0u8;
    while !rest.is_empty() {
        out.push(cont_report(cid, seq, rest));
        rest = rest.get(59..).unwrap_or_default();
        seq = seq.wrapping_add(1);
    }
    out
}

/// A response message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Channel.
    pub cid: u32,
    /// Command (without the init bit).
    pub command: u8,
    /// Payload.
    pub payload: Vec<u8>,
}

/// A parsed CTAPHID_INIT response payload (§11.2.9.1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitResponse {
    /// The nonce echoed back.
    pub nonce: [u8; 8],
    /// The channel ID allocated (or kept).
    pub cid: u32,
    /// CTAPHID protocol version (2).
    pub protocol_version: u8,
    /// Device version: major, minor, build.
    pub device_version: [u8; 3],
    /// Capability flags.
    pub capabilities: u8,
}

impl InitResponse {
    /// Parses an INIT response message; anything but a 17-byte INIT payload is an error.
    pub fn parse(m: &Message) -> Result<Self, String> {
        if m.command != cmd::INIT {
            return Err(format!("expected an INIT response, got {m:?}"));
        }
        let p: &[u8; 17] = m.payload.as_slice().try_into().map_err(|_| {
            format!(
                "INIT response payload is {} bytes instead of 17",
                m.payload.len()
            )
        })?;
        Ok(Self {
            nonce: [p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]],
            cid: u32::from_be_bytes([p[8], p[9], p[10], p[11]]),
            protocol_version: p[12],
            device_version: [p[13], p[14], p[15]],
            capabilities: p[16],
        })
    }
}

/// Eight random bytes for an INIT nonce.
pub fn fresh_nonce() -> Result<[u8; 8], String> {
    let mut nonce = [0u8; 8];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| "no randomness for an INIT nonce")?;
    Ok(nonce)
}

/// An open channel on a device.
pub struct Channel {
    /// The transport.
    pub transport: Box<dyn Transport>,
    /// The allocated channel ID.
    pub cid: u32,
    /// Capabilities from INIT.
    pub capabilities: u8,
    /// KEEPALIVE statuses seen during the last request.
    pub keepalives: Vec<u8>,
}

/// How long any single response may take before a check fails.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads one whole message (skipping nothing).
pub fn read_message(t: &mut dyn Transport, timeout: Duration) -> Result<Message, String> {
    let first = t
        .recv(timeout)
        .map_err(|e| format!("transport error: {e}"))?
        .ok_or("no response (timeout)")?;
    if first[4] & 0x80 == 0 {
        return Err(format!(
            "expected an init report, got continuation {first:02x?}"
        ));
    }
    let cid = u32::from_be_bytes([first[0], first[1], first[2], first[3]]);
    let command = first[4] & 0x7f;
    let len = usize::from(u16::from_be_bytes([first[5], first[6]]));
    let mut payload = first[7..7 + len.min(57)].to_vec();
    let mut seq = 0u8;
    while payload.len() < len {
        let r = t
            .recv(timeout)
            .map_err(|e| format!("transport error: {e}"))?
            .ok_or("response truncated (timeout)")?;
        if r[4] != seq {
            return Err(format!(
                "response continuation sequence {} instead of {seq}",
                r[4]
            ));
        }
        let take = (len - payload.len()).min(59);
        payload.extend_from_slice(&r[5..5 + take]);
        seq = seq.wrapping_add(1);
    }
    Ok(Message {
        cid,
        command,
        payload,
    })
}

impl Channel {
    /// Opens a channel: INIT on the broadcast CID with a fresh random nonce.
    ///
    /// Broadcast INIT responses carrying another nonce (meant for another client of a shared
    /// device) are skipped, as §11.2.9.1.3 asks of clients.
    pub fn open(mut transport: Box<dyn Transport>) -> Result<Self, String> {
        let nonce = fresh_nonce()?;
        transport
            .send(&init_report(BROADCAST, cmd::INIT, 8, &nonce))
            .map_err(|e| format!("transport error: {e}"))?;
        let deadline = Instant::now() + RESPONSE_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err("no INIT response carrying our nonce (timeout)".into());
            }
            let m = read_message(transport.as_mut(), left)?;
            let init = InitResponse::parse(&m)?;
            if init.nonce != nonce {
                continue;
            }
            return Ok(Self {
                transport,
                cid: init.cid,
                capabilities: init.capabilities,
                keepalives: Vec::new(),
            });
        }
    }

    /// Sends a message on this channel.
    pub fn send(&mut self, command: u8, payload: &[u8]) -> Result<(), String> {
        for r in reports(self.cid, command, payload) {
            self.transport
                .send(&r)
                .map_err(|e| format!("transport error: {e}"))?;
        }
        Ok(())
    }

    /// Sends one raw report.
    pub fn send_report(&mut self, report: &Report) -> Result<(), String> {
        self.transport
            .send(report)
            .map_err(|e| format!("transport error: {e}"))
    }

    /// Reads the next message, skipping KEEPALIVEs (recorded in `keepalives`).
    pub fn response(&mut self) -> Result<Message, String> {
        loop {
            let m = read_message(self.transport.as_mut(), RESPONSE_TIMEOUT)?;
            if m.command == cmd::KEEPALIVE {
                self.keepalives
                    .push(m.payload.first().copied().unwrap_or(0));
                continue;
            }
            return Ok(m);
        }
    }

    /// Whether nothing arrives within `wait`.
    pub fn silent_for(&mut self, wait: Duration) -> Result<bool, String> {
        Ok(self
            .transport
            .recv(wait)
            .map_err(|e| format!("transport error: {e}"))?
            .is_none())
    }

    /// Sends a CTAPHID request and returns the response message.
    pub fn request(&mut self, command: u8, payload: &[u8]) -> Result<Message, String> {
        self.send(command, payload)?;
        self.response()
    }

    /// Runs a CTAP2 command; returns (status, decoded body).
    pub fn ctap(
        &mut self,
        command: u8,
        body: Option<&ciborium::value::Value>,
    ) -> Result<(u8, Option<ciborium::value::Value>), String> {
        let mut payload = vec![command];
        if let Some(b) = body {
            payload.extend(crate::cbor::encode(b));
        }
        self.ctap_raw(&payload)
    }

    /// Runs a raw CTAP2 request (command byte + bytes).
    pub fn ctap_raw(
        &mut self,
        payload: &[u8],
    ) -> Result<(u8, Option<ciborium::value::Value>), String> {
        self.keepalives.clear();
        let m = self.request(cmd::CBOR, payload)?;
        if m.command == cmd::ERROR {
            return Err(format!(
                "CTAPHID error 0x{:02x}",
                m.payload.first().copied().unwrap_or(0)
            ));
        }
        if m.command != cmd::CBOR || m.cid != self.cid {
            return Err(format!("unexpected response {m:?}"));
        }
        let (&status, rest) = m.payload.split_first().ok_or("empty CBOR response")?;
        if rest.is_empty() {
            return Ok((status, None));
        }
        let value = crate::cbor::decode(rest)?;
        if crate::cbor::encode(&value) != rest {
            return Err("response is not canonical CBOR".into());
        }
        Ok((status, Some(value)))
    }
}
