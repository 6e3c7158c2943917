//! CTAPHID on a Linux uhid device: passgate appears to every FIDO client on the machine
//! (browsers, libfido2, OpenSSH, python-fido2) as a USB HID security key.
//!
//! The process opens `/dev/uhid` and creates a HID device with the FIDO report descriptor
//! ([`event::FIDO_REPORT_DESCRIPTOR`]); the kernel gives it a `/dev/hidrawN` node. Each report a
//! client writes to the hidraw node arrives here as a `UHID_OUTPUT` event and each report
//! written back as `UHID_INPUT2` reaches every open hidraw handle, exactly like a USB key:
//! clients tell their answers apart by channel ID. So the whole device is one CTAPHID
//! connection to the transport-independent [`HidDevice`] state machine, which keeps several
//! channels apart, answers CHANNEL_BUSY, and resynchronises on INIT.
//!
//! Threads: one reads kernel events and hands them to the device thread, which answers
//! framing, PING, INIT and errors itself and sends KEEPALIVE every 100 ms while a request runs
//! (with the status the verifier sets, so clients tell "touch the key" from "working"); a
//! request thread runs CBOR requests on the handler. CANCEL cancels the running request through
//! its [`Interaction`]; so does the last client closing the hidraw node.
//!
//! The device goes away with `UHID_DESTROY` when the server stops (or is dropped); if the
//! process dies, the kernel destroys it when the file descriptor closes.

pub mod event;

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::net::UnixDatagram;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use event::DeviceIdentity;
use event::{EVENT_SIZE, KernelEvent};

use crate::api::user_verifier::Interaction;
use crate::ctaphid::{
    Action, CMD_CBOR, ConnectionId, CtapHandler, DEVICE_VERSION, HidDevice, KEEPALIVE_INTERVAL,
    Packet, encode_message, error, error_packet, keepalive_packet,
};

/// Where the kernel's uhid character device lives.
pub const UHID_PATH: &str = "/dev/uhid";
/// The device thread's wake-up period for keepalives and reassembly timeouts.
const TICK: Duration = Duration::from_millis(20);
/// Every hidraw handle shares the one HID pipe: one connection for the CTAPHID device.
const CONNECTION: ConnectionId = 1;
/// Messages longer than this many reports are sent at [`REPORT_INTERVAL`]: each hidraw reader
/// buffers 64 reports and drops the rest, and nothing slows a uhid device down the way a USB
/// key's 1 ms interrupt frames do, so an unpaced 129-report response overruns a reader that
/// is not scheduled in time. Ordinary responses (a few reports) go out at once.
const PACE_AFTER: usize = 16;
/// The pace of long messages: one report per USB full-speed frame.
const REPORT_INTERVAL: Duration = Duration::from_millis(1);

/// pid.codes' vendor ID for open-source hardware.
pub const VENDOR_ID: u32 = 0x1209;
/// A product ID from pid.codes' range for private and test use (0x0001-0x0010): passgate has
/// no registered product ID. Clients match FIDO devices by usage page, not by IDs.
pub const PRODUCT_ID: u32 = 0x000a;

/// The maxMsgSize passgate announces on uhid, a YubiKey 5's: a message of at most 20 reports.
/// The kernel queues a client's hidraw writes to a uhid device in a 32-event ring with no flow
/// control (a USB key's host controller paces them to one per 1 ms frame) and drops what
/// overflows it; a message shorter than the ring cannot overflow it even if passgate is not
/// scheduled during the whole burst (measured under emulation: python-fido2's unpaced
/// 7609-byte messages lost reports). Clients split allow and exclude lists to fit, as they do
/// for security keys; a longer message is still accepted.
pub const MAX_MSG_SIZE: usize = 1200;
/// The maxCredentialCountInList announced on uhid, a YubiKey 5's.
pub const MAX_CREDENTIAL_COUNT_IN_LIST: usize = 8;

/// Announces a security key's message limits ([`MAX_MSG_SIZE`],
/// [`MAX_CREDENTIAL_COUNT_IN_LIST`]) in `config`, for an authenticator served on uhid.
pub fn announce_hid_limits(config: &mut crate::ctap::AuthenticatorConfig) {
    config.max_msg_size = MAX_MSG_SIZE;
    config.max_credential_count_in_list = MAX_CREDENTIAL_COUNT_IN_LIST;
}

/// The identity passgate's uhid device shows: product name "passgate", bus USB, pid.codes'
/// vendor ID, the CTAPHID device version.
pub fn passgate_identity() -> DeviceIdentity {
    let [major, minor, build] = DEVICE_VERSION;
    DeviceIdentity {
        name: "passgate".to_owned(),
        phys: "passgate/uhid".to_owned(),
        uniq: "passgate".to_owned(),
        bus: event::BUS_USB,
        vendor: VENDOR_ID,
        product: PRODUCT_ID,
        version: u32::from_be_bytes([0, major, minor, build]),
    }
}

/// Something that carries whole uhid events: `/dev/uhid` (one event per read or write), or
/// a datagram socket playing the kernel's side in tests.
trait EventPipe: Send + Sync + 'static {
    fn read_event(&self, buf: &mut [u8]) -> io::Result<usize>;
    fn write_event(&self, event: &[u8]) -> io::Result<()>;
}

impl EventPipe for File {
    fn read_event(&self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }

    fn write_event(&self, event: &[u8]) -> io::Result<()> {
        // The kernel takes an event in one write and returns its whole length.
        let written = (&*self).write(event)?;
        if written == event.len() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "uhid took {written} of {} bytes of an event",
                event.len()
            )))
        }
    }
}

impl EventPipe for UnixDatagram {
    fn read_event(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.recv(buf)
    }

    fn write_event(&self, event: &[u8]) -> io::Result<()> {
        self.send(event).map(|_| ())
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock must not wedge the device: keep using the data.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The CBOR request that is running, shared by the request thread and the device thread.
struct RunningRequest {
    cid: u32,
    interaction: Interaction,
    /// Nothing more is sent for this request: its response was written, or it is to be
    /// discarded (INIT resynchronised the channel, or every client closed the device). Set
    /// and checked under the output lock, so no KEEPALIVE follows the response.
    settled: AtomicBool,
}

struct Job {
    cid: u32,
    request: Vec<u8>,
    running: Arc<RunningRequest>,
}

enum Work {
    Cbor(Job),
    Wink,
}

/// State shared by the device thread and the request thread.
struct UhidState {
    pipe: Arc<dyn EventPipe>,
    /// Serialises writes of input reports, so a multi-report message is not interleaved.
    output: Mutex<()>,
    device: Mutex<HidDevice>,
    running: Mutex<Option<Arc<RunningRequest>>>,
    stopping: AtomicBool,
}

impl UhidState {
    fn write_reports(&self, _output: &MutexGuard<'_, ()>, reports: &[Packet]) -> io::Result<()> {
        let paced = reports.len() > PACE_AFTER;
        for (i, report) in reports.iter().enumerate() {
            if paced && i > 0 {
                std::thread::sleep(REPORT_INTERVAL);
            }
            self.pipe.write_event(&event::input2(report)[..])?;
        }
        Ok(())
    }

    fn send(&self, reports: &[Packet]) -> io::Result<()> {
        let output = lock(&self.output);
        self.write_reports(&output, reports)
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
}

/// A CTAPHID device on `/dev/uhid`, served on background threads.
///
/// ```no_run
/// # use passgate_authenticator::transport::uhid::{UhidServer, passgate_identity};
/// # fn demo(handler: impl passgate_authenticator::ctaphid::CtapHandler + 'static) -> std::io::Result<()> {
/// let server = UhidServer::start(handler, &passgate_identity())?; // a /dev/hidrawN appears
/// server.wait()?; // serves until the kernel stops the device; or `stop()` it
/// # Ok(()) }
/// ```
pub struct UhidServer {
    shared: Arc<UhidState>,
    device_thread: Option<JoinHandle<io::Result<()>>>,
}

impl std::fmt::Debug for UhidServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UhidServer")
            .field("stopping", &self.shared.stopping)
            .finish_non_exhaustive()
    }
}

impl UhidServer {
    /// Opens [`UHID_PATH`], creates the device and serves `handler` on it.
    pub fn start<H: CtapHandler + 'static>(
        handler: H,
        identity: &DeviceIdentity,
    ) -> io::Result<Self> {
        Self::start_at(Path::new(UHID_PATH), handler, identity)
    }

    /// Like [`Self::start`] with the uhid character device at `path`.
    pub fn start_at<H: CtapHandler + 'static>(
        path: &Path,
        handler: H,
        identity: &DeviceIdentity,
    ) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| io::Error::new(e.kind(), format!("opening {}: {e}", path.display())))?;
        Self::start_on(Arc::new(file), handler, identity)
    }

    fn start_on<H: CtapHandler + 'static>(
        pipe: Arc<dyn EventPipe>,
        handler: H,
        identity: &DeviceIdentity,
    ) -> io::Result<Self> {
        pipe.write_event(&event::create2(identity)[..])
            .map_err(|e| io::Error::new(e.kind(), format!("creating the uhid device: {e}")))?;
        let shared = Arc::new(UhidState {
            pipe,
            output: Mutex::new(()),
            device: Mutex::new(HidDevice::new()),
            running: Mutex::new(None),
            stopping: AtomicBool::new(false),
        });
        let (events, incoming) = channel();
        let reader_shared = Arc::clone(&shared);
        let (work, queue) = channel();
        let request_shared = Arc::clone(&shared);
        let device_shared = Arc::clone(&shared);
        let started = std::thread::Builder::new()
            .name("uhid-events".into())
            .spawn(move || read_events(&reader_shared, &events))
            .and_then(|_| {
                // One long-lived thread runs requests (the device runs one at a time).
                std::thread::Builder::new()
                    .name("ctap-requests".into())
                    .spawn(move || run_requests(handler, &queue, &request_shared))
            })
            .and_then(|_| {
                std::thread::Builder::new()
                    .name("uhid-device".into())
                    .spawn(move || device_loop(&device_shared, &incoming, work))
            });
        match started {
            Ok(device_thread) => Ok(Self {
                shared,
                device_thread: Some(device_thread),
            }),
            Err(e) => {
                shared.stopping.store(true, Ordering::SeqCst);
                let _ = shared.pipe.write_event(&event::destroy()[..]);
                Err(e)
            }
        }
    }

    /// Serves until the kernel stops the device or reading it fails.
    pub fn wait(mut self) -> io::Result<()> {
        let result = self.join();
        self.destroy();
        result
    }

    /// Destroys the device (`UHID_DESTROY`: its hidraw node disappears) and cancels the
    /// running request.
    pub fn stop(mut self) -> io::Result<()> {
        self.destroy();
        self.join()
    }

    fn destroy(&mut self) {
        if self.shared.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        if let Some(running) = lock(&self.shared.running).as_ref() {
            running.settled.store(true, Ordering::SeqCst);
            running.interaction.cancel();
        }
        let _output = lock(&self.shared.output);
        if let Err(e) = self.shared.pipe.write_event(&event::destroy()[..]) {
            tracing::warn!(error = %e, "cannot destroy the uhid device");
        }
    }

    fn join(&mut self) -> io::Result<()> {
        match self.device_thread.take() {
            Some(thread) => thread
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the uhid device thread panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for UhidServer {
    fn drop(&mut self) {
        self.destroy();
        if let Err(e) = self.join() {
            tracing::debug!(error = %e, "uhid device ended with an error");
        }
    }
}

/// Creates passgate's uhid device on [`UHID_PATH`] and serves `handler` until the kernel
/// stops the device. Blocks.
pub fn serve<H: CtapHandler + 'static>(handler: H) -> io::Result<()> {
    UhidServer::start(handler, &passgate_identity())?.wait()
}

/// Reads kernel events; answers report requests at once (a FIDO device has none) and hands
/// everything else to the device thread. Ends when the device stops or reading fails.
fn read_events(shared: &UhidState, events: &Sender<io::Result<KernelEvent>>) {
    let mut buf = vec![0u8; EVENT_SIZE];
    loop {
        let parsed = match shared.pipe.read_event(&mut buf) {
            Ok(n) => match event::parse(buf.get(..n).unwrap_or_default()) {
                Some(e) => e,
                None => {
                    tracing::debug!(len = n, "short uhid event ignored");
                    continue;
                }
            },
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = events.send(Err(e));
                return;
            }
        };
        let refusal = match parsed {
            KernelEvent::GetReport { id } => Some(event::get_report_refusal(id)),
            KernelEvent::SetReport { id } => Some(event::set_report_refusal(id)),
            _ => None,
        };
        if let Some(reply) = refusal {
            let _output = lock(&shared.output);
            if let Err(e) = shared.pipe.write_event(&reply[..]) {
                tracing::debug!(error = %e, "cannot refuse a report request");
            }
            continue;
        }
        let stop = parsed == KernelEvent::Stop;
        if events.send(Ok(parsed)).is_err() || stop {
            return;
        }
    }
}

fn run_requests<H: CtapHandler>(mut handler: H, queue: &Receiver<Work>, shared: &UhidState) {
    while let Ok(work) = queue.recv() {
        let Job {
            cid,
            request,
            running,
        } = match work {
            Work::Wink => {
                if catch_unwind(AssertUnwindSafe(|| handler.wink())).is_err() {
                    tracing::error!("the handler panicked in wink");
                }
                continue;
            }
            Work::Cbor(job) => job,
        };
        tracing::debug!(cid, command = request.first(), "CBOR request");
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            handler.handle_cbor(&request, &running.interaction)
        }));
        let reports = match outcome {
            Ok(response) => encode_message(cid, CMD_CBOR, &response),
            Err(_) => {
                tracing::error!(cid, "the handler panicked; answering ERR_OTHER");
                vec![error_packet(cid, error::OTHER)]
            }
        };
        let output = lock(&shared.output);
        let discard = running.settled.swap(true, Ordering::SeqCst);
        *lock(&shared.running) = None;
        // Free the device before answering, so the client's next request is not refused.
        lock(&shared.device).finish(cid);
        if discard {
            tracing::debug!(cid, "response discarded (channel resynchronised or closed)");
        } else if let Err(e) = shared.write_reports(&output, &reports) {
            tracing::warn!(cid, error = %e, "cannot deliver the response");
        }
    }
}

/// A request running on the request thread, as the device thread tracks it.
struct Running {
    request: Arc<RunningRequest>,
    last_keepalive: Instant,
}

fn device_loop(
    shared: &UhidState,
    incoming: &Receiver<io::Result<KernelEvent>>,
    work: Sender<Work>,
) -> io::Result<()> {
    let mut running: Option<Running> = None;
    let result = loop {
        if shared.stopping.load(Ordering::SeqCst) {
            break Ok(());
        }
        match incoming.recv_timeout(TICK) {
            Ok(Ok(KernelEvent::Output(packet))) => {
                if let Err(e) = on_packet(shared, &work, &packet, &mut running) {
                    break Err(e);
                }
            }
            Ok(Ok(KernelEvent::Close)) => {
                // Nobody has the hidraw node open: nobody can read a response.
                tracing::debug!("last client closed the device");
                if let Some(r) = running.take() {
                    r.request.settled.store(true, Ordering::SeqCst);
                    r.request.interaction.cancel();
                }
                lock(&shared.device).disconnect(CONNECTION);
            }
            Ok(Ok(KernelEvent::Stop)) => break Ok(()),
            Ok(Ok(KernelEvent::MalformedOutput { size })) => {
                tracing::debug!(size, "output that is not one 64-byte report ignored");
            }
            Ok(Ok(other)) => tracing::debug!(event = ?other, "uhid event"),
            Ok(Err(e)) => break Err(e),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break Ok(()),
        }
        if let Err(e) = on_tick(shared, &mut running) {
            break Err(e);
        }
    };
    if let Some(r) = running {
        r.request.settled.store(true, Ordering::SeqCst);
        r.request.interaction.cancel();
    }
    result
}

/// Reassembly timeout and keepalives, checked after every event (at least every [`TICK`]).
fn on_tick(shared: &UhidState, running: &mut Option<Running>) -> io::Result<()> {
    let now = Instant::now();
    let timeout_packet = lock(&shared.device).on_tick(CONNECTION, now);
    if let Some(p) = timeout_packet {
        tracing::debug!("message timeout");
        shared.send(&[p])?;
    }
    let Some(r) = running else {
        return Ok(());
    };
    if r.request.settled.load(Ordering::SeqCst) {
        *running = None;
    } else if now.saturating_duration_since(r.last_keepalive) >= KEEPALIVE_INTERVAL {
        r.last_keepalive = now;
        let output = lock(&shared.output);
        // Checked under the output lock: no keepalive after the response.
        if !r.request.settled.load(Ordering::SeqCst) {
            let status = r.request.interaction.status().code();
            shared.write_reports(&output, &[keepalive_packet(r.request.cid, status)])?;
        }
    }
    Ok(())
}

fn on_packet(
    shared: &UhidState,
    work: &Sender<Work>,
    packet: &Packet,
    running: &mut Option<Running>,
) -> io::Result<()> {
    let action = lock(&shared.device).on_packet(CONNECTION, packet, Instant::now());
    match action {
        Action::None => Ok(()),
        Action::Reply(reports) => shared.send(&reports),
        Action::Wink(reports) => {
            work.send(Work::Wink)
                .map_err(|_| io::Error::other("the request thread has stopped"))?;
            shared.send(&reports)
        }
        Action::Cancel { cid } => {
            tracing::debug!(cid, "cancel");
            shared.cancel(cid, false);
            Ok(())
        }
        Action::Resync { cid, reply } => {
            tracing::debug!(cid, "channel resynchronised");
            shared.cancel(cid, true);
            shared.send(&reply)
        }
        Action::Dispatch { cid, request } => {
            let request_state = Arc::new(RunningRequest {
                cid,
                interaction: Interaction::new(),
                settled: AtomicBool::new(false),
            });
            *lock(&shared.running) = Some(Arc::clone(&request_state));
            let job = Job {
                cid,
                request,
                running: Arc::clone(&request_state),
            };
            if work.send(Work::Cbor(job)).is_err() {
                // Nobody will run it: free the device again.
                *lock(&shared.running) = None;
                lock(&shared.device).finish(cid);
                return Err(io::Error::other("the request thread has stopped"));
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
mod tests;
