//! CTAPHID over TCP: every 64-byte HID report is written and read as-is, in both directions.
//!
//! All connections share one [`Device`], like several open handles on one USB authenticator:
//! channels are device-wide and one CBOR request runs at a time. A request runs on a worker
//! thread so the connection keeps reading (CANCEL, CHANNEL_BUSY answers) and sends KEEPALIVE
//! every 100 ms until the response is ready.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::api::user_verifier::Interaction;
use crate::ctaphid::{
    Action, CMD_CBOR, ConnectionId, CtapHandler, Device, KEEPALIVE_INTERVAL, PACKET_SIZE, Packet,
    encode_message, keepalive_packet,
};

/// How often a connection wakes to send keepalives and check reassembly timeouts.
const TICK: Duration = Duration::from_millis(20);

struct Shared<H> {
    device: Mutex<Device>,
    handler: Mutex<H>,
    running: Mutex<Option<(u32, Interaction)>>,
    next_connection: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock must not wedge the device: keep using the data.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Serves `handler` on `listener` until accepting fails. Blocks; run it on its own thread.
pub fn serve<H: CtapHandler + 'static>(listener: TcpListener, handler: H) -> io::Result<()> {
    let shared = Arc::new(Shared {
        device: Mutex::new(Device::new()),
        handler: Mutex::new(handler),
        running: Mutex::new(None),
        next_connection: AtomicU64::new(1),
    });
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(s) => s,
            Err(e)
                if e.kind() == ErrorKind::Interrupted
                    || e.kind() == ErrorKind::ConnectionAborted =>
            {
                continue;
            }
            Err(e) => return Err(e),
        };
        let shared = Arc::clone(&shared);
        let id = shared.next_connection.fetch_add(1, Ordering::Relaxed);
        std::thread::Builder::new()
            .name(format!("ctaphid-conn-{id}"))
            .spawn(move || {
                if let Err(e) = connection(stream, &shared, id) {
                    tracing::debug!(connection = id, error = %e, "connection ended with an error");
                }
            })?;
    }
    Ok(())
}

/// A request of this connection that is running on a worker.
struct Running {
    cid: u32,
    interaction: Interaction,
    done: Arc<AtomicBool>,
    last_keepalive: Instant,
}

fn write_packets(writer: &Mutex<TcpStream>, packets: &[Packet]) -> io::Result<()> {
    let mut w = lock(writer);
    for p in packets {
        w.write_all(p)?;
    }
    Ok(())
}

fn connection<H: CtapHandler + 'static>(
    stream: TcpStream,
    shared: &Arc<Shared<H>>,
    id: ConnectionId,
) -> io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(TICK))?;
    let writer = Arc::new(Mutex::new(stream.try_clone()?));
    let mut reader = stream;
    tracing::debug!(connection = id, "client connected");
    let mut buf: Packet = [0u8; PACKET_SIZE];
    let mut filled = 0usize;
    let mut running: Option<Running> = None;
    let result = loop {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break Ok(()),
            Ok(n) => {
                filled += n;
                if filled == PACKET_SIZE {
                    filled = 0;
                    let packet = buf;
                    if let Err(e) = on_packet(shared, &writer, id, &packet, &mut running) {
                        break Err(e);
                    }
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => break Err(e),
        }
        let now = Instant::now();
        let timeout_packet = lock(&shared.device).on_tick(id, now);
        if let Some(p) = timeout_packet {
            if let Err(e) = write_packets(&writer, &[p]) {
                break Err(e);
            }
        }
        if let Some(r) = &mut running {
            if r.done.load(Ordering::SeqCst) {
                running = None;
            } else if now.saturating_duration_since(r.last_keepalive) >= KEEPALIVE_INTERVAL {
                r.last_keepalive = now;
                let mut w = lock(&writer);
                // Checked under the writer lock: no keepalive after the response.
                if !r.done.load(Ordering::SeqCst) {
                    if let Err(e) =
                        w.write_all(&keepalive_packet(r.cid, r.interaction.status().code()))
                    {
                        break Err(e);
                    }
                }
            }
        }
    };
    // The client is gone: stop its running request and forget its partial message.
    if let Some(r) = running {
        r.interaction.cancel();
    }
    lock(&shared.device).disconnect(id);
    tracing::debug!(connection = id, "client disconnected");
    result
}

fn on_packet<H: CtapHandler + 'static>(
    shared: &Arc<Shared<H>>,
    writer: &Arc<Mutex<TcpStream>>,
    id: ConnectionId,
    packet: &Packet,
    running: &mut Option<Running>,
) -> io::Result<()> {
    let action = lock(&shared.device).on_packet(id, packet, Instant::now());
    match action {
        Action::None => Ok(()),
        Action::Reply(packets) => write_packets(writer, &packets),
        Action::Wink(packets) => {
            lock(&shared.handler).wink();
            write_packets(writer, &packets)
        }
        Action::Cancel { cid } => {
            cancel(shared, cid);
            Ok(())
        }
        Action::Resync { cid, reply } => {
            cancel(shared, cid);
            write_packets(writer, &reply)
        }
        Action::Dispatch { cid, request } => {
            let interaction = Interaction::new();
            *lock(&shared.running) = Some((cid, interaction.clone()));
            let done = Arc::new(AtomicBool::new(false));
            *running = Some(Running {
                cid,
                interaction: interaction.clone(),
                done: Arc::clone(&done),
                last_keepalive: Instant::now(),
            });
            let shared = Arc::clone(shared);
            let writer = Arc::clone(writer);
            std::thread::Builder::new()
                .name(format!("ctap-request-{cid:08x}"))
                .spawn(move || {
                    let response = lock(&shared.handler).handle_cbor(&request, &interaction);
                    let packets = encode_message(cid, CMD_CBOR, &response);
                    let mut w = lock(&writer);
                    done.store(true, Ordering::SeqCst);
                    *lock(&shared.running) = None;
                    // Free the device before answering, so the client's next request is not
                    // refused as busy.
                    lock(&shared.device).finish(cid);
                    for p in &packets {
                        if w.write_all(p).is_err() {
                            break;
                        }
                    }
                })
                .map(|_| ())
        }
    }
}

fn cancel<H>(shared: &Shared<H>, cid: u32) {
    if let Some((running_cid, interaction)) = lock(&shared.running).as_ref() {
        if *running_cid == cid {
            interaction.cancel();
        }
    }
}
