//! CTAPHID over a stream socket, a Unix socket (the default: same user only) or loopback TCP:
//! every 64-byte HID report is written and read as-is, in both directions, with no extra
//! framing.
//!
//! All connections share one [`HidDevice`], like several open handles on one USB authenticator:
//! channels are device-wide and one transaction runs at a time. Threads:
//!
//! - one per connection reads reports, answers framing, PING, INIT and errors itself, sends
//!   KEEPALIVE every 100 ms while its CBOR request runs and reports reassembly timeouts;
//! - one request thread runs CBOR requests (and WINK) on the handler and writes the response,
//!   so a connection keeps reading while its request runs (to see CANCEL, and to answer other
//!   channels with CHANNEL_BUSY).
//!
//! A client that disconnects mid-request cancels it through its [`Interaction`]; the device is
//! free again as soon as the handler returns. A handler that panics is answered with
//! ERR_OTHER and the device keeps serving. Run with [`serve_with`] (blocks), or [`TcpServer`] and
//! [`UnixServer`] (background servers that can be stopped, for tests and embedding).
//!
//! Every server is bounded ([`ServeOptions`]): at most `max_connections` open at once (more
//! are closed as they arrive), a connection idle for `idle_timeout` is closed, and with a
//! [`ConnectionSecret`] a connection whose first report is not the right hello (within
//! [`HELLO_TIMEOUT`]) is closed unanswered. A Unix socket answers only its own user.

use std::collections::HashMap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::api::user_verifier::Interaction;
use crate::ctaphid::{
    Action, CMD_CBOR, ConnectionId, CtapHandler, HidDevice, KEEPALIVE_INTERVAL, PACKET_SIZE,
    Packet, encode_message, error, error_packet, keepalive_packet,
};
use crate::transport::secret::{self, ConnectionSecret};
use crate::transport::stream::{Address, Listener, Stream};

/// How often a connection wakes to send keepalives and check reassembly timeouts.
const TICK: Duration = Duration::from_millis(20);
/// A client that does not read its responses for this long is disconnected, so that it
/// cannot stall the device.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a connection to a server with a [`ConnectionSecret`] has to send its hello.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(2);
/// After a failed accept for want of file descriptors, wait this long before the next one
/// (instead of spinning, or giving up serving).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The bounds of a server.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Connections open at once; more are closed as they arrive.
    pub max_connections: usize,
    /// A connection with no report received and no request running for this long is closed
    /// (clients reconnect when they next need the authenticator).
    pub idle_timeout: Duration,
    /// When set, a connection's first report must be this secret's hello.
    pub secret: Option<ConnectionSecret>,
}

impl Default for ServeOptions {
    /// 64 connections, two minutes idle, no secret.
    fn default() -> Self {
        Self {
            max_connections: 64,
            idle_timeout: Duration::from_secs(120),
            secret: None,
        }
    }
}

/// Work for the device's single request thread.
enum Job {
    Cbor {
        cid: u32,
        request: Vec<u8>,
        running: Arc<RunningRequest>,
        writer: Arc<Mutex<Stream>>,
    },
    Wink,
}

/// The CBOR request that is running, shared by the request thread, the connection that sent
/// it, and any connection that cancels or resynchronises its channel.
struct RunningRequest {
    cid: u32,
    interaction: Interaction,
    /// Nothing more is sent for this request: its response was written, or it is to be
    /// discarded (INIT resynchronised the channel, or the client left). The request thread sets
    /// it and the connection checks it under the connection's writer lock, so no KEEPALIVE
    /// follows the response.
    settled: AtomicBool,
}

/// What the TCP and Unix servers' accept, connection and request threads share.
struct ServerState {
    device: Mutex<HidDevice>,
    /// `None` once the server stops: the request thread then ends.
    jobs: Mutex<Option<Sender<Job>>>,
    running: Mutex<Option<Arc<RunningRequest>>>,
    /// A clone of every open connection's stream, to shut them down when the server stops.
    connections: Mutex<HashMap<ConnectionId, Stream>>,
    next_connection: AtomicU64,
    /// Connection threads running (counted before they start, so the cap holds exactly).
    open: AtomicUsize,
    stopping: AtomicBool,
    options: ServeOptions,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock must not wedge the device: keep using the data.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ServerState {
    /// Creates the shared state and starts the request thread running `handler`.
    fn start<H: CtapHandler + 'static>(handler: H, options: ServeOptions) -> io::Result<Arc<Self>> {
        let (jobs, queue) = channel();
        let shared = Arc::new(Self {
            device: Mutex::new(HidDevice::new()),
            jobs: Mutex::new(Some(jobs)),
            running: Mutex::new(None),
            connections: Mutex::new(HashMap::new()),
            next_connection: AtomicU64::new(1),
            open: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            options,
        });
        // One long-lived thread runs requests (the device is busy with one at a time), so a
        // request costs a channel hand-off rather than a thread spawn.
        let worker_shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("ctap-requests".into())
            .spawn(move || run_requests(handler, &queue, &worker_shared))?;
        Ok(shared)
    }

    fn submit(&self, job: Job) -> io::Result<()> {
        lock(&self.jobs)
            .as_ref()
            .ok_or_else(|| io::Error::other("the server is stopping"))?
            .send(job)
            .map_err(|_| io::Error::other("the request thread has stopped"))
    }

    /// Cancels the running request of `cid`; with `discard`, its response is not sent.
    fn cancel(&self, cid: u32, discard: bool) {
        if let Some(running) = lock(&self.running).as_ref() {
            if running.cid == cid {
                if discard {
                    running.settled.store(true, Ordering::SeqCst);
                }
                running.interaction.cancel();
            }
        }
    }

    /// Stops accepting work: shuts every connection down and cancels the running request.
    fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        *lock(&self.jobs) = None;
        if let Some(running) = lock(&self.running).as_ref() {
            running.interaction.cancel();
        }
        for stream in lock(&self.connections).values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

/// Serves `handler` on a TCP `listener` with the default [`ServeOptions`] until accepting
/// fails. Blocks; run it on its own thread (or use [`TcpServer`], which can be stopped).
pub fn serve<H: CtapHandler + 'static>(listener: TcpListener, handler: H) -> io::Result<()> {
    serve_with(Listener::Tcp(listener), handler, ServeOptions::default())
}

/// Serves `handler` on `listener` within `options` until accepting fails. Blocks. A Unix
/// socket's file is removed when serving ends.
pub fn serve_with<H: CtapHandler + 'static>(
    listener: Listener,
    handler: H,
    options: ServeOptions,
) -> io::Result<()> {
    let shared = ServerState::start(handler, options)?;
    let result = accept_loop(&listener, &shared);
    shared.stop();
    remove_socket_file(&listener);
    result
}

fn remove_socket_file(listener: &Listener) {
    if let Listener::Unix(_, path) = listener {
        let _ = std::fs::remove_file(path);
    }
}

/// A server running on background threads; [`TcpServer`] and [`UnixServer`] say where.
struct Background {
    shared: Arc<ServerState>,
    accept: Option<JoinHandle<io::Result<()>>>,
}

impl Background {
    fn start<H: CtapHandler + 'static>(
        listener: Listener,
        handler: H,
        options: ServeOptions,
    ) -> io::Result<Self> {
        let shared = ServerState::start(handler, options)?;
        let accept_shared = Arc::clone(&shared);
        let accept = std::thread::Builder::new()
            .name("ctaphid-accept".into())
            .spawn(move || {
                let result = accept_loop(&listener, &accept_shared);
                accept_shared.stop();
                remove_socket_file(&listener);
                result
            });
        match accept {
            Ok(handle) => Ok(Self {
                shared,
                accept: Some(handle),
            }),
            Err(e) => {
                shared.stop();
                Err(e)
            }
        }
    }

    /// Stops the server; `wake` connects to the listener so that the blocking accept returns.
    fn shutdown(&mut self, wake: impl FnOnce()) -> io::Result<()> {
        let Some(accept) = self.accept.take() else {
            return Ok(());
        };
        self.shared.stop();
        wake();
        accept
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the accept thread panicked")))
    }
}

/// A CTAPHID server on loopback TCP, running on background threads.
///
/// ```no_run
/// # use passgate_authenticator::transport::tcp::TcpServer;
/// # fn demo(handler: impl passgate_authenticator::ctaphid::CtapHandler + 'static) -> std::io::Result<()> {
/// let server = TcpServer::start(std::net::TcpListener::bind("127.0.0.1:0")?, handler)?;
/// let addr = server.local_addr(); // connect clients here
/// server.stop()?; // or drop it
/// # Ok(()) }
/// ```
pub struct TcpServer {
    addr: SocketAddr,
    background: Background,
}

impl std::fmt::Debug for TcpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ServerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerState")
            .field("stopping", &self.stopping)
            .finish_non_exhaustive()
    }
}

impl TcpServer {
    /// Starts serving `handler` on `listener` in the background, with the default
    /// [`ServeOptions`].
    pub fn start<H: CtapHandler + 'static>(listener: TcpListener, handler: H) -> io::Result<Self> {
        Self::start_with(listener, handler, ServeOptions::default())
    }

    /// Starts serving `handler` on `listener` in the background, within `options`.
    pub fn start_with<H: CtapHandler + 'static>(
        listener: TcpListener,
        handler: H,
        options: ServeOptions,
    ) -> io::Result<Self> {
        let addr = listener.local_addr()?;
        let background = Background::start(Listener::Tcp(listener), handler, options)?;
        Ok(Self { addr, background })
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address as `tcp://HOST:PORT`.
    pub fn address(&self) -> Address {
        Address::Tcp(self.addr.to_string())
    }

    /// Stops the server: no new connections, every open connection is shut down and the
    /// running request is cancelled. Returns the accept loop's error, if it failed earlier.
    /// Connection threads and the request thread end on their own shortly after (the request
    /// thread once the handler returns).
    pub fn stop(mut self) -> io::Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> io::Result<()> {
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        // Wake the blocking accept with a connection of our own; it sees `stopping` and ends.
        self.background.shutdown(|| {
            let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
        })
    }
}

impl Drop for TcpServer {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::debug!(error = %e, "CTAPHID server ended with an error");
        }
    }
}

/// A CTAPHID server on a Unix socket that answers only its own user, running on background
/// threads. The socket file is removed when it stops.
pub struct UnixServer {
    path: PathBuf,
    background: Background,
}

impl std::fmt::Debug for UnixServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnixServer")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl UnixServer {
    /// Binds `path` (see [`crate::transport::stream::bind_unix`]) and serves `handler` there
    /// within `options`.
    pub fn start_with<H: CtapHandler + 'static>(
        path: &Path,
        handler: H,
        options: ServeOptions,
    ) -> io::Result<Self> {
        let listener = crate::transport::stream::bind_unix(path)?;
        let background = Background::start(
            Listener::Unix(listener, path.to_path_buf()),
            handler,
            options,
        )?;
        Ok(Self {
            path: path.to_path_buf(),
            background,
        })
    }

    /// The address as `unix:PATH`.
    pub fn address(&self) -> Address {
        Address::Unix(self.path.clone())
    }

    /// Stops the server (see [`TcpServer::stop`]).
    pub fn stop(mut self) -> io::Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> io::Result<()> {
        let path = self.path.clone();
        self.background.shutdown(|| {
            let _ = UnixStream::connect(&path);
        })
    }
}

impl Drop for UnixServer {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::debug!(error = %e, "CTAPHID server ended with an error");
        }
    }
}

/// Whether an accept error is about this one connection (or a passing shortage), so that the
/// server keeps serving.
fn accept_error_is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Interrupted
            | ErrorKind::ConnectionAborted
            | ErrorKind::ConnectionReset
            | ErrorKind::PermissionDenied
    ) || matches!(
        e.raw_os_error(),
        Some(code) if code == rustix::io::Errno::MFILE.raw_os_error()
            || code == rustix::io::Errno::NFILE.raw_os_error()
            || code == rustix::io::Errno::NOBUFS.raw_os_error()
            || code == rustix::io::Errno::NOMEM.raw_os_error()
    )
}

/// Decrements the open-connection count when a connection thread ends (or never starts).
struct OpenSlot(Arc<ServerState>);

impl Drop for OpenSlot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

fn accept_loop(listener: &Listener, shared: &Arc<ServerState>) -> io::Result<()> {
    loop {
        let accepted = listener.accept();
        if shared.stopping.load(Ordering::SeqCst) {
            return Ok(());
        }
        let stream = match accepted {
            Ok(s) => s,
            Err(e) if e.kind() == ErrorKind::PermissionDenied => {
                // Another user's process knocked on the Unix socket; it is closed already.
                tracing::warn!(error = %e, "connection refused");
                continue;
            }
            Err(e) if accept_error_is_transient(&e) => {
                if e.kind() != ErrorKind::Interrupted {
                    tracing::warn!(error = %e, "cannot accept a connection now");
                    std::thread::sleep(ACCEPT_BACKOFF);
                }
                continue;
            }
            Err(e) => return Err(e),
        };
        if shared.open.fetch_add(1, Ordering::SeqCst) >= shared.options.max_connections {
            shared.open.fetch_sub(1, Ordering::SeqCst);
            tracing::warn!(
                limit = shared.options.max_connections,
                "too many connections: closing a new one"
            );
            let _ = stream.shutdown(Shutdown::Both);
            continue;
        }
        let slot = OpenSlot(Arc::clone(shared));
        let id = shared.next_connection.fetch_add(1, Ordering::Relaxed);
        let thread_shared = Arc::clone(shared);
        let spawned = std::thread::Builder::new()
            .name(format!("ctaphid-conn-{id}"))
            .spawn(move || {
                let _slot = slot;
                if let Err(e) = connection(stream, &thread_shared, id) {
                    tracing::debug!(connection = id, error = %e, "connection ended with an error");
                }
                lock(&thread_shared.connections).remove(&id);
            });
        if let Err(e) = spawned {
            // Out of threads: refuse this client (the stream and its slot are dropped with the
            // closure), keep serving.
            tracing::warn!(error = %e, "cannot start a connection thread");
        }
    }
}

/// Writes reports with one system call (one wake-up of the reader for a whole message).
fn write_packets(writer: &Mutex<Stream>, packets: &[Packet]) -> io::Result<()> {
    let mut w = lock(writer);
    match packets {
        [single] => w.write_all(single),
        _ => w.write_all(&packets.concat()),
    }
}

fn run_requests<H: CtapHandler>(mut handler: H, queue: &Receiver<Job>, shared: &ServerState) {
    while let Ok(job) = queue.recv() {
        match job {
            Job::Wink => {
                if catch_unwind(AssertUnwindSafe(|| handler.wink())).is_err() {
                    tracing::error!("the handler panicked in wink");
                }
            }
            Job::Cbor {
                cid,
                request,
                running,
                writer,
            } => {
                tracing::debug!(cid, command = request.first(), "CBOR request");
                let started = Instant::now();
                let outcome = catch_unwind(AssertUnwindSafe(|| {
                    handler.handle_cbor(&request, &running.interaction)
                }));
                let bytes = match outcome {
                    Ok(response) => {
                        tracing::debug!(
                            cid,
                            status = response.first(),
                            len = response.len(),
                            elapsed_ms = started.elapsed().as_millis(),
                            "CBOR response"
                        );
                        encode_message(cid, CMD_CBOR, &response).concat()
                    }
                    Err(_) => {
                        tracing::error!(cid, "the handler panicked; answering ERR_OTHER");
                        error_packet(cid, error::OTHER).to_vec()
                    }
                };
                let mut w = lock(&writer);
                let discard = running.settled.swap(true, Ordering::SeqCst);
                *lock(&shared.running) = None;
                // Free the device before answering, so the client's next request is not
                // refused as busy.
                lock(&shared.device).finish(cid);
                if discard {
                    tracing::debug!(cid, "response discarded (channel resynchronised or closed)");
                } else if let Err(e) = w.write_all(&bytes) {
                    // The client left or stopped reading: the rest of its stream would be out
                    // of step, so close it.
                    tracing::debug!(cid, error = %e, "cannot deliver the response");
                    let _ = w.shutdown(Shutdown::Both);
                }
            }
        }
    }
}

/// A request of this connection that is running on the request thread.
struct Running {
    request: Arc<RunningRequest>,
    last_keepalive: Instant,
}

fn connection(stream: Stream, shared: &Arc<ServerState>, id: ConnectionId) -> io::Result<()> {
    stream.set_read_timeout(Some(TICK))?;
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    lock(&shared.connections).insert(id, stream.try_clone()?);
    if shared.stopping.load(Ordering::SeqCst) {
        return Ok(());
    }
    let writer = Arc::new(Mutex::new(stream.try_clone()?));
    let mut reader = stream;
    tracing::debug!(connection = id, "client connected");
    let mut buf: Packet = [0u8; PACKET_SIZE];
    let mut filled = 0usize;
    let mut running: Option<Running> = None;
    let connected = Instant::now();
    let mut last_report = connected;
    // Without a secret to check, every connection is admitted at once.
    let mut admitted = shared.options.secret.is_none();
    let mut first = true;
    let result = loop {
        match reader.read(buf.get_mut(filled..).unwrap_or_default()) {
            // End of stream; a partial report before it is just a disconnect.
            Ok(0) => break Ok(()),
            Ok(n) => {
                filled = filled.saturating_add(n);
                if filled >= PACKET_SIZE {
                    filled = 0;
                    last_report = Instant::now();
                    let is_first = std::mem::replace(&mut first, false);
                    if !admitted {
                        if shared
                            .options
                            .secret
                            .as_ref()
                            .is_some_and(|s| s.accepts(&buf))
                        {
                            admitted = true;
                            continue;
                        }
                        // Closed unanswered: nothing tells a prober what this port is.
                        break Err(io::Error::new(
                            ErrorKind::PermissionDenied,
                            "the first report is not the connection secret's hello",
                        ));
                    }
                    if is_first && secret::is_hello(&buf) {
                        // A client that has a secret sends it even where none is asked for.
                        continue;
                    }
                    if let Err(e) = on_packet(shared, &writer, id, &buf, &mut running) {
                        break Err(e);
                    }
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => break Err(e),
        }
        let now = Instant::now();
        if !admitted && now.saturating_duration_since(connected) >= HELLO_TIMEOUT {
            break Err(io::Error::new(
                ErrorKind::TimedOut,
                "no connection secret in time",
            ));
        }
        if running.is_none()
            && now.saturating_duration_since(last_report) >= shared.options.idle_timeout
        {
            tracing::debug!(connection = id, "closing an idle connection");
            break Ok(());
        }
        if let Err(e) = on_tick(shared, &writer, id, &mut running) {
            break Err(e);
        }
    };
    // The client is gone: stop its running request (nobody is left to read the response) and
    // forget its partial message.
    if let Some(r) = running {
        r.request.settled.store(true, Ordering::SeqCst);
        r.request.interaction.cancel();
    }
    lock(&shared.device).disconnect(id);
    tracing::debug!(connection = id, "client disconnected");
    result
}

/// Reassembly timeout and keepalives, checked after every read (at least every [`TICK`]).
fn on_tick(
    shared: &ServerState,
    writer: &Mutex<Stream>,
    id: ConnectionId,
    running: &mut Option<Running>,
) -> io::Result<()> {
    let now = Instant::now();
    let timeout_packet = lock(&shared.device).on_tick(id, now);
    if let Some(p) = timeout_packet {
        tracing::debug!(connection = id, "message timeout");
        write_packets(writer, &[p])?;
    }
    let Some(r) = running else {
        return Ok(());
    };
    if r.request.settled.load(Ordering::SeqCst) {
        *running = None;
    } else if now.saturating_duration_since(r.last_keepalive) >= KEEPALIVE_INTERVAL {
        r.last_keepalive = now;
        let mut w = lock(writer);
        // Checked under the writer lock: no keepalive after the response.
        if !r.request.settled.load(Ordering::SeqCst) {
            let status = r.request.interaction.status().code();
            w.write_all(&keepalive_packet(r.request.cid, status))?;
        }
    }
    Ok(())
}

fn on_packet(
    shared: &ServerState,
    writer: &Arc<Mutex<Stream>>,
    id: ConnectionId,
    packet: &Packet,
    running: &mut Option<Running>,
) -> io::Result<()> {
    let action = lock(&shared.device).on_packet(id, packet, Instant::now());
    match action {
        Action::None => Ok(()),
        Action::Reply(packets) => write_packets(writer, &packets),
        Action::Wink(packets) => {
            shared.submit(Job::Wink)?;
            write_packets(writer, &packets)
        }
        Action::Cancel { cid } => {
            tracing::debug!(connection = id, cid, "cancel");
            shared.cancel(cid, false);
            Ok(())
        }
        Action::Resync { cid, reply } => {
            tracing::debug!(connection = id, cid, "channel resynchronised");
            shared.cancel(cid, true);
            write_packets(writer, &reply)
        }
        Action::Dispatch { cid, request } => {
            let request_state = Arc::new(RunningRequest {
                cid,
                interaction: Interaction::new(),
                settled: AtomicBool::new(false),
            });
            *lock(&shared.running) = Some(Arc::clone(&request_state));
            let job = Job::Cbor {
                cid,
                request,
                running: Arc::clone(&request_state),
                writer: Arc::clone(writer),
            };
            if let Err(e) = shared.submit(job) {
                // Nobody will run it: free the device again.
                *lock(&shared.running) = None;
                lock(&shared.device).finish(cid);
                return Err(e);
            }
            *running = Some(Running {
                request: request_state,
                last_keepalive: Instant::now(),
            });
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctaphid::{BROADCAST_CID, CMD_INIT, CMD_KEEPALIVE, MessageAssembler};

    struct Panics;

    impl CtapHandler for Panics {
        fn handle_cbor(&mut self, request: &[u8], _interaction: &Interaction) -> Vec<u8> {
            assert_ne!(request, [0x66], "the test handler panics on 0x66");
            vec![0x00, request.len().try_into().unwrap()]
        }
    }

    fn message(stream: &mut TcpStream) -> (u32, u8, Vec<u8>) {
        let mut asm = MessageAssembler::new();
        loop {
            let mut p = [0u8; PACKET_SIZE];
            stream.read_exact(&mut p).unwrap();
            // A keepalive (PROCESSING) may precede the answer when the handler is slow,
            // e.g. while a panic prints its backtrace; it is not the answer under test.
            if let Some(m) = asm.push(&p).unwrap() {
                if m.1 != CMD_KEEPALIVE {
                    return m;
                }
                asm = MessageAssembler::new();
            }
        }
    }

    fn send(stream: &mut TcpStream, cid: u32, cmd: u8, payload: &[u8]) {
        stream
            .write_all(&encode_message(cid, cmd, payload).concat())
            .unwrap();
    }

    #[test]
    fn handler_panic_answers_err_other_and_the_device_keeps_serving() {
        let server = TcpServer::start(TcpListener::bind("127.0.0.1:0").unwrap(), Panics).unwrap();
        let mut s = TcpStream::connect(server.local_addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        send(&mut s, BROADCAST_CID, CMD_INIT, &[1; 8]);
        let (_, _, init) = message(&mut s);
        let cid = u32::from_be_bytes(init[8..12].try_into().unwrap());
        send(&mut s, cid, CMD_CBOR, &[0x66]);
        assert_eq!(message(&mut s), (cid, 0x3f, vec![error::OTHER]));
        send(&mut s, cid, CMD_CBOR, &[0x04, 1, 2]);
        assert_eq!(message(&mut s), (cid, CMD_CBOR, vec![0x00, 3]));
        server.stop().unwrap();
    }

    #[test]
    fn stop_closes_connections_and_refuses_new_ones() {
        let server = TcpServer::start(TcpListener::bind("127.0.0.1:0").unwrap(), Panics).unwrap();
        let addr = server.local_addr();
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        send(&mut s, BROADCAST_CID, CMD_INIT, &[1; 8]);
        let _ = message(&mut s);
        server.stop().unwrap();
        let mut p = [0u8; 1];
        assert_eq!(s.read(&mut p).unwrap(), 0, "the open connection is closed");
        let refused = TcpStream::connect_timeout(&addr, Duration::from_secs(1));
        assert!(refused.is_err(), "the listener is gone");
    }
}
