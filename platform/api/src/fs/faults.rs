//! Fault injection for the atomic writes (feature `fault-injection`, and this crate's unit
//! tests; never in a release build): fail the Nth write, fsync or rename on this thread with
//! an OS error such as `ENOSPC` (disk full) or `EIO`, to prove that a failed write loses
//! nothing stored before and leaves no temp file behind.
//!
//! Faults are per thread, so tests running in parallel do not see each other's, and the
//! in-process authenticator (which writes on the caller's thread) sees the test's.
//!
//! ```ignore
//! let _fault = faults::inject(faults::Op::Rename, 1, rustix::io::Errno::NOSPC.raw_os_error());
//! // the next rename fails with ENOSPC; the fault is cleared when `_fault` drops
//! ```

use std::cell::RefCell;
use std::io;

/// The file operations of an atomic write a fault can be injected into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Writing the temp file's bytes.
    Write,
    /// fsync of the temp file or of the directory.
    Fsync,
    /// The rename (or hard link) that makes the new file visible.
    Rename,
}

#[derive(Debug)]
struct Plan {
    op: Op,
    /// Operations of that kind still to let through before failing.
    skip: u32,
    errno: i32,
    /// How many times it fired.
    fired: u32,
}

thread_local! {
    static PLAN: RefCell<Option<Plan>> = const { RefCell::new(None) };
}

/// An armed fault; dropping it disarms it.
#[derive(Debug)]
#[must_use = "the fault is disarmed when this is dropped"]
pub struct Armed(());

impl Armed {
    /// How many operations failed because of it so far.
    pub fn fired(&self) -> u32 {
        PLAN.with(|plan| plan.borrow().as_ref().map_or(0, |p| p.fired))
    }
}

impl Drop for Armed {
    fn drop(&mut self) {
        PLAN.with(|plan| plan.borrow_mut().take());
    }
}

/// Makes the `nth` (1-based) `op` on this thread, and every later one, fail with the OS
/// error `errno` (a full disk stays full) until the returned guard drops.
pub fn inject(op: Op, nth: u32, errno: i32) -> Armed {
    PLAN.with(|plan| {
        *plan.borrow_mut() = Some(Plan {
            op,
            skip: nth.saturating_sub(1),
            errno,
            fired: 0,
        });
    });
    Armed(())
}

/// Called before each operation: the injected error, if this one is to fail.
pub(crate) fn check(op: Op) -> io::Result<()> {
    PLAN.with(|plan| {
        let mut plan = plan.borrow_mut();
        let Some(plan) = plan.as_mut().filter(|p| p.op == op) else {
            return Ok(());
        };
        if plan.skip > 0 {
            plan.skip -= 1;
            return Ok(());
        }
        plan.fired += 1;
        Err(io::Error::from_raw_os_error(plan.errno))
    })
}
