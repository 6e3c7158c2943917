//! [`TpmBusRecorder`]: a relay between a TCTI and swtpm that records every TPM command and
//! response — the bytes an observer of a discrete TPM's bus would see. The tests use it to
//! count the TPM commands of each operation and to search the traffic for secrets, and the
//! benchmark to print command counts beside latencies.
//!
//! swtpm's data socket carries bare TPM commands and responses (TPM 2.0 Part 1, 18: a
//! 10-byte header `tag u16 | size u32 | code u32`, then `size - 10` bytes); its control socket
//! (`port + 1`, where the swtpm TCTI finds it) is passed through unrecorded.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;

/// A command and its response, as they crossed the bus.
#[derive(Clone)]
pub struct Exchange {
    /// The command bytes (header included).
    pub command: Vec<u8>,
    /// The response bytes (header included).
    pub response: Vec<u8>,
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({} bytes, rc {:#x})",
            self.command_name(),
            self.command.len(),
            self.response_code().unwrap_or(u32::MAX)
        )
    }
}

fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

impl Exchange {
    /// The command code (`TPM_CC`).
    pub fn command_code(&self) -> Option<u32> {
        be_u32(&self.command, 6)
    }

    /// The response code (`TPM_RC`; 0 is success).
    pub fn response_code(&self) -> Option<u32> {
        be_u32(&self.response, 6)
    }

    /// The command's name in TPM 2.0 Part 3, for the commands passgate issues.
    pub fn command_name(&self) -> &'static str {
        match self.command_code() {
            Some(0x120) => "EvictControl",
            Some(0x12a) => "NV_DefineSpace",
            Some(0x131) => "CreatePrimary",
            Some(0x134) => "NV_Increment",
            Some(0x139) => "DictionaryAttackLockReset",
            Some(0x13a) => "DictionaryAttackParameters",
            Some(0x144) => "Startup",
            Some(0x145) => "Shutdown",
            Some(0x148) => "Certify",
            Some(0x14e) => "NV_Read",
            Some(0x153) => "Create",
            Some(0x155) => "HMAC",
            Some(0x157) => "Load",
            Some(0x159) => "RSA_Decrypt",
            Some(0x15d) => "Sign",
            Some(0x15e) => "Unseal",
            Some(0x161) => "ContextLoad",
            Some(0x162) => "ContextSave",
            Some(0x165) => "FlushContext",
            Some(0x169) => "NV_ReadPublic",
            Some(0x173) => "ReadPublic",
            Some(0x176) => "StartAuthSession",
            Some(0x17a) => "GetCapability",
            Some(0x17b) => "GetRandom",
            _ => "other",
        }
    }
}

/// The relay; see the module documentation. It serves until the process ends.
pub struct TpmBusRecorder {
    port: u16,
    exchanges: Arc<Mutex<Vec<Exchange>>>,
}

impl std::fmt::Debug for TpmBusRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TpmBusRecorder")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl TpmBusRecorder {
    /// Listens on two consecutive loopback ports and relays them to swtpm's data socket at
    /// `swtpm_port` and its control socket at `swtpm_port + 1`.
    pub fn start(swtpm_port: u16) -> io::Result<Self> {
        let (data, control) = loop {
            let data = TcpListener::bind("127.0.0.1:0")?;
            let port = data.local_addr()?.port();
            if port >= u16::MAX - 1 {
                continue;
            }
            if let Ok(control) = TcpListener::bind(("127.0.0.1", port + 1)) {
                break (data, control);
            }
        };
        let port = data.local_addr()?.port();
        let exchanges = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&exchanges);
        thread::spawn(move || {
            for client in data.incoming().flatten() {
                let log = Arc::clone(&log);
                thread::spawn(move || {
                    if let Err(e) = relay_commands(client, swtpm_port, &log) {
                        tracing::debug!(error = %e, "TPM bus recorder: connection ended");
                    }
                });
            }
        });
        thread::spawn(move || {
            for client in control.incoming().flatten() {
                thread::spawn(move || {
                    let _ = pass_through(client, swtpm_port.saturating_add(1));
                });
            }
        });
        Ok(Self { port, exchanges })
    }

    /// The TCTI that reaches swtpm through this recorder.
    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    /// Everything recorded since the start or the last [`Self::take`], and clears it.
    pub fn take(&self) -> Vec<Exchange> {
        std::mem::take(
            &mut *self
                .exchanges
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }
}

/// The names of `exchanges`' commands, in order.
pub fn command_names(exchanges: &[Exchange]) -> Vec<&'static str> {
    exchanges.iter().map(Exchange::command_name).collect()
}

/// Reads one TPM command or response (header, then the rest by its size field); `None` at a
/// clean end of the stream.
fn read_message(stream: &mut TcpStream) -> io::Result<Option<Vec<u8>>> {
    let mut header = [0u8; 10];
    match stream.read_exact(&mut header) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let size = be_u32(&header, 2)
        .and_then(|s| usize::try_from(s).ok())
        .filter(|&s| (10..=65_536).contains(&s))
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad TPM message size"))?;
    let mut message = header.to_vec();
    message.resize(size, 0);
    stream.read_exact(message.get_mut(10..).unwrap_or_default())?;
    Ok(Some(message))
}

fn relay_commands(
    mut client: TcpStream,
    swtpm_port: u16,
    log: &Mutex<Vec<Exchange>>,
) -> io::Result<()> {
    let mut tpm = TcpStream::connect(("127.0.0.1", swtpm_port))?;
    while let Some(command) = read_message(&mut client)? {
        tpm.write_all(&command)?;
        let response = read_message(&mut tpm)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "swtpm closed"))?;
        // Recorded before the client sees the response, so a caller's `take` right after its
        // command returns finds it.
        log.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Exchange {
                command,
                response: response.clone(),
            });
        client.write_all(&response)?;
    }
    let _ = tpm.shutdown(Shutdown::Both);
    Ok(())
}

fn pass_through(client: TcpStream, port: u16) -> io::Result<()> {
    let server = TcpStream::connect(("127.0.0.1", port))?;
    let (mut client_read, mut server_write) = (client.try_clone()?, server.try_clone()?);
    let upstream = thread::spawn(move || {
        let _ = io::copy(&mut client_read, &mut server_write);
        let _ = server_write.shutdown(Shutdown::Write);
    });
    let (mut server_read, mut client_write) = (server, client);
    let _ = io::copy(&mut server_read, &mut client_write);
    let _ = client_write.shutdown(Shutdown::Write);
    let _ = upstream.join();
    Ok(())
}
