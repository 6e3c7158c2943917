//! The `/dev/uhid` ABI (`linux/uhid.h`): every read and write of the character device carries
//! one `struct uhid_event`, a 32-bit type followed by a packed union. The kernel copies the
//! bytes as they are, so this module builds and parses them as byte arrays (native byte order,
//! the layout checked against the header's `offsetof`s) and needs no `unsafe`.

use crate::ctaphid::{PACKET_SIZE, Packet};

/// `sizeof(struct uhid_event)`: the type, then the union padded to 8-byte alignment.
pub const EVENT_SIZE: usize = 4380;
/// `UHID_DATA_MAX`, also `HID_MAX_DESCRIPTOR_SIZE`.
const DATA_MAX: usize = 4096;

/// `enum uhid_event_type` values used here.
pub(crate) mod kind {
    /// `UHID_DESTROY`.
    pub const DESTROY: u32 = 1;
    /// `UHID_START`.
    pub const START: u32 = 2;
    /// `UHID_STOP`.
    pub const STOP: u32 = 3;
    /// `UHID_OPEN`.
    pub const OPEN: u32 = 4;
    /// `UHID_CLOSE`.
    pub const CLOSE: u32 = 5;
    /// `UHID_OUTPUT`.
    pub const OUTPUT: u32 = 6;
    /// `UHID_GET_REPORT`.
    pub const GET_REPORT: u32 = 9;
    /// `UHID_GET_REPORT_REPLY`.
    pub const GET_REPORT_REPLY: u32 = 10;
    /// `UHID_CREATE2`.
    pub const CREATE2: u32 = 11;
    /// `UHID_INPUT2`.
    pub const INPUT2: u32 = 12;
    /// `UHID_SET_REPORT`.
    pub const SET_REPORT: u32 = 13;
    /// `UHID_SET_REPORT_REPLY`.
    pub const SET_REPORT_REPLY: u32 = 14;
}

/// `UHID_OUTPUT_REPORT` in `enum uhid_report_type`.
const OUTPUT_REPORT: u8 = 1;
/// `BUS_USB` from `linux/input.h`: FIDO clients look for USB HID security keys.
pub const BUS_USB: u16 = 0x03;
/// The errno a GET_REPORT or SET_REPORT reply carries: a FIDO device has no feature reports.
const EIO: u16 = 5;

/// The HID report descriptor of a FIDO authenticator (CTAP 2.1 §11.2.8.1): usage page 0xF1D0,
/// usage 0x01 (CTAPHID), one 64-byte input report (usage 0x20) and one 64-byte output report
/// (usage 0x21), no report IDs.
pub const FIDO_REPORT_DESCRIPTOR: [u8; 34] = [
    0x06, 0xd0, 0xf1, // Usage Page (FIDO Alliance, 0xF1D0)
    0x09, 0x01, // Usage (CTAPHID)
    0xa1, 0x01, // Collection (Application)
    0x09, 0x20, //   Usage (Input Report Data)
    0x15, 0x00, //   Logical Minimum (0)
    0x26, 0xff, 0x00, //   Logical Maximum (255)
    0x75, 0x08, //   Report Size (8 bits)
    0x95, 0x40, //   Report Count (64)
    0x81, 0x02, //   Input (Data, Variable, Absolute)
    0x09, 0x21, //   Usage (Output Report Data)
    0x15, 0x00, //   Logical Minimum (0)
    0x26, 0xff, 0x00, //   Logical Maximum (255)
    0x75, 0x08, //   Report Size (8 bits)
    0x95, 0x40, //   Report Count (64)
    0x91, 0x02, //   Output (Data, Variable, Absolute)
    0xc0, // End Collection
];

/// What the created device says it is (`struct uhid_create2_req`'s identity fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceIdentity {
    /// The product name clients show (at most 127 bytes are kept).
    pub name: String,
    /// The physical path string (at most 63 bytes).
    pub phys: String,
    /// The unique identifier string, e.g. a serial number (at most 63 bytes).
    pub uniq: String,
    /// `BUS_*` of `linux/input.h`.
    pub bus: u16,
    /// The USB vendor ID.
    pub vendor: u32,
    /// The USB product ID.
    pub product: u32,
    /// The device version.
    pub version: u32,
}

/// An event the kernel sends (read from `/dev/uhid`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelEvent {
    /// The HID driver bound the device.
    Start,
    /// The device stopped (it is being destroyed).
    Stop,
    /// The first hidraw handle was opened.
    Open,
    /// The last hidraw handle was closed.
    Close,
    /// A client wrote an output report.
    Output(Packet),
    /// An output event whose data is not one 64-byte report (wrong size or report type).
    MalformedOutput {
        /// The data size the kernel gave.
        size: usize,
    },
    /// A client asked for a report through an ioctl; it must be answered with this `id`.
    GetReport {
        /// The request ID to answer.
        id: u32,
    },
    /// A client set a report through an ioctl; it must be answered with this `id`.
    SetReport {
        /// The request ID to answer.
        id: u32,
    },
    /// An event type this device does not use.
    Other(u32),
}

fn put(event: &mut [u8], offset: usize, bytes: &[u8]) {
    if let Some(slot) = event.get_mut(offset..offset.saturating_add(bytes.len())) {
        slot.copy_from_slice(bytes);
    }
}

/// Copies at most `max - 1` bytes of `s` (the kernel wants NUL-terminated strings).
fn put_str(event: &mut [u8], offset: usize, max: usize, s: &str) {
    let bytes = s.as_bytes();
    put(
        event,
        offset,
        bytes.get(..max.saturating_sub(1)).unwrap_or(bytes),
    );
}

fn new_event(kind: u32) -> Box<[u8; EVENT_SIZE]> {
    let mut event = Box::new([0u8; EVENT_SIZE]);
    put(&mut event[..], 0, &kind.to_ne_bytes());
    event
}

/// `UHID_CREATE2` for a FIDO device with `identity`.
pub fn create2(identity: &DeviceIdentity) -> Box<[u8; EVENT_SIZE]> {
    let mut e = new_event(kind::CREATE2);
    // struct uhid_create2_req at offset 4: name[128], phys[64], uniq[64], rd_size u16,
    // bus u16, vendor u32, product u32, version u32, country u32, rd_data[4096].
    put_str(&mut e[..], 4, 128, &identity.name);
    put_str(&mut e[..], 132, 64, &identity.phys);
    put_str(&mut e[..], 196, 64, &identity.uniq);
    let rd_size = u16::try_from(FIDO_REPORT_DESCRIPTOR.len()).unwrap_or(u16::MAX);
    put(&mut e[..], 260, &rd_size.to_ne_bytes());
    put(&mut e[..], 262, &identity.bus.to_ne_bytes());
    put(&mut e[..], 264, &identity.vendor.to_ne_bytes());
    put(&mut e[..], 268, &identity.product.to_ne_bytes());
    put(&mut e[..], 272, &identity.version.to_ne_bytes());
    put(&mut e[..], 280, &FIDO_REPORT_DESCRIPTOR);
    e
}

/// `UHID_INPUT2` carrying one input report to every open hidraw handle.
pub fn input2(report: &Packet) -> Box<[u8; EVENT_SIZE]> {
    let mut e = new_event(kind::INPUT2);
    // struct uhid_input2_req at offset 4: size u16, data[4096].
    let size = u16::try_from(PACKET_SIZE).unwrap_or(u16::MAX);
    put(&mut e[..], 4, &size.to_ne_bytes());
    put(&mut e[..], 6, report);
    e
}

/// `UHID_DESTROY`: the device goes away (the kernel also destroys it when the fd closes).
pub fn destroy() -> Box<[u8; EVENT_SIZE]> {
    new_event(kind::DESTROY)
}

/// `UHID_GET_REPORT_REPLY` refusing the request `id` with EIO.
pub fn get_report_refusal(id: u32) -> Box<[u8; EVENT_SIZE]> {
    let mut e = new_event(kind::GET_REPORT_REPLY);
    // struct uhid_get_report_reply_req: id u32, err u16, size u16, data[4096].
    put(&mut e[..], 4, &id.to_ne_bytes());
    put(&mut e[..], 8, &EIO.to_ne_bytes());
    e
}

/// `UHID_SET_REPORT_REPLY` refusing the request `id` with EIO.
pub fn set_report_refusal(id: u32) -> Box<[u8; EVENT_SIZE]> {
    let mut e = new_event(kind::SET_REPORT_REPLY);
    // struct uhid_set_report_reply_req: id u32, err u16.
    put(&mut e[..], 4, &id.to_ne_bytes());
    put(&mut e[..], 8, &EIO.to_ne_bytes());
    e
}

fn u32_at(bytes: &[u8], offset: usize) -> Option<u32> {
    let b = bytes.get(offset..offset.checked_add(4)?)?;
    Some(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

fn u16_at(bytes: &[u8], offset: usize) -> Option<u16> {
    let b = bytes.get(offset..offset.checked_add(2)?)?;
    Some(u16::from_ne_bytes([b[0], b[1]]))
}

/// Parses an event read from the device; `None` when it is shorter than its type needs.
pub fn parse(bytes: &[u8]) -> Option<KernelEvent> {
    let event = match u32_at(bytes, 0)? {
        kind::START => KernelEvent::Start,
        kind::STOP => KernelEvent::Stop,
        kind::OPEN => KernelEvent::Open,
        kind::CLOSE => KernelEvent::Close,
        kind::OUTPUT => {
            // struct uhid_output_req: data[4096], size u16, rtype u8.
            let size = usize::from(u16_at(bytes, 4 + DATA_MAX)?);
            let rtype = *bytes.get(4 + DATA_MAX + 2)?;
            let data = bytes.get(4..4 + size.min(DATA_MAX))?;
            // hidraw passes the report number first; with no report IDs it is 0, and a
            // write of just the 64 bytes is taken as-is.
            let report = match data {
                [0, rest @ ..] if rest.len() == PACKET_SIZE => Some(rest),
                _ if data.len() == PACKET_SIZE => Some(data),
                _ => None,
            };
            match report.map(<[u8; PACKET_SIZE]>::try_from) {
                Some(Ok(packet)) if rtype == OUTPUT_REPORT => KernelEvent::Output(packet),
                _ => KernelEvent::MalformedOutput { size },
            }
        }
        kind::GET_REPORT => KernelEvent::GetReport {
            id: u32_at(bytes, 4)?,
        },
        kind::SET_REPORT => KernelEvent::SetReport {
            id: u32_at(bytes, 4)?,
        },
        other => KernelEvent::Other(other),
    };
    Some(event)
}

/// Builds an output event as the kernel does, for tests that play the kernel's side.
#[cfg(test)]
pub fn output_for_test(data: &[u8], rtype: u8) -> Box<[u8; EVENT_SIZE]> {
    let mut e = new_event(kind::OUTPUT);
    put(&mut e[..], 4, data);
    let size = u16::try_from(data.len()).unwrap_or(u16::MAX);
    put(&mut e[..], 4 + DATA_MAX, &size.to_ne_bytes());
    e[4 + DATA_MAX + 2] = rtype;
    e
}

/// Builds an event with no payload (START, STOP, OPEN, CLOSE, ...), for tests.
#[cfg(test)]
pub fn bare_for_test(kind: u32) -> Box<[u8; EVENT_SIZE]> {
    new_event(kind)
}

/// The event type of a built event, for tests.
#[cfg(test)]
pub fn kind_of(event: &[u8]) -> Option<u32> {
    u32_at(event, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create2_places_every_field_where_linux_uhid_h_has_it() {
        let e = create2(&DeviceIdentity {
            name: "passgate".into(),
            phys: "passgate/uhid".into(),
            uniq: "x".repeat(100),
            bus: BUS_USB,
            vendor: 0x1209,
            product: 0x000a,
            version: 0x0102,
        });
        assert_eq!(u32_at(&e[..], 0), Some(11));
        assert_eq!(&e[4..13], b"passgate\0");
        assert_eq!(&e[132..146], b"passgate/uhid\0");
        // uniq is cut to 63 bytes and keeps its NUL.
        assert_eq!(&e[196..259], "x".repeat(63).as_bytes());
        assert_eq!(e[259], 0);
        assert_eq!(u16_at(&e[..], 260), Some(34));
        assert_eq!(u16_at(&e[..], 262), Some(3));
        assert_eq!(u32_at(&e[..], 264), Some(0x1209));
        assert_eq!(u32_at(&e[..], 268), Some(0x000a));
        assert_eq!(u32_at(&e[..], 272), Some(0x0102));
        assert_eq!(u32_at(&e[..], 276), Some(0), "country");
        assert_eq!(&e[280..314], &FIDO_REPORT_DESCRIPTOR);
        assert!(e[314..].iter().all(|&b| b == 0));
    }

    #[test]
    fn input2_carries_size_then_the_report() {
        let mut report = [0u8; PACKET_SIZE];
        report[0] = 0xaa;
        report[63] = 0x55;
        let e = input2(&report);
        assert_eq!(u32_at(&e[..], 0), Some(12));
        assert_eq!(u16_at(&e[..], 4), Some(64));
        assert_eq!(&e[6..70], &report);
    }

    #[test]
    fn output_reports_with_and_without_the_report_number_parse() {
        let mut packet = [7u8; PACKET_SIZE];
        packet[0] = 0;
        let mut with_number = vec![0u8];
        with_number.extend_from_slice(&packet);
        assert_eq!(
            parse(&output_for_test(&with_number, OUTPUT_REPORT)[..]),
            Some(KernelEvent::Output(packet))
        );
        assert_eq!(
            parse(&output_for_test(&packet, OUTPUT_REPORT)[..]),
            Some(KernelEvent::Output(packet))
        );
        assert_eq!(
            parse(&output_for_test(&packet[..10], OUTPUT_REPORT)[..]),
            Some(KernelEvent::MalformedOutput { size: 10 })
        );
        // A feature report (rtype 0) is not a CTAPHID report.
        assert_eq!(
            parse(&output_for_test(&packet, 0)[..]),
            Some(KernelEvent::MalformedOutput { size: 64 })
        );
    }

    #[test]
    fn report_requests_are_refused_with_their_id() {
        let mut request = bare_for_test(kind::GET_REPORT);
        request[4..8].copy_from_slice(&77u32.to_ne_bytes());
        assert_eq!(parse(&request[..]), Some(KernelEvent::GetReport { id: 77 }));
        let reply = get_report_refusal(77);
        assert_eq!(u32_at(&reply[..], 0), Some(10));
        assert_eq!(u32_at(&reply[..], 4), Some(77));
        assert_eq!(u16_at(&reply[..], 8), Some(EIO));
        let reply = set_report_refusal(78);
        assert_eq!(u32_at(&reply[..], 0), Some(14));
        assert_eq!(u32_at(&reply[..], 4), Some(78));
        assert_eq!(u16_at(&reply[..], 8), Some(EIO));
    }

    #[test]
    fn short_or_unknown_events_do_not_panic() {
        assert_eq!(parse(&[]), None);
        assert_eq!(parse(&[6, 0, 0, 0, 1]), None, "an OUTPUT cut short");
        assert_eq!(parse(&[99, 0, 0, 0]), Some(KernelEvent::Other(99)));
        assert_eq!(parse(&destroy()[..]), Some(KernelEvent::Other(1)));
    }
}
