//! Ending `poolscope run` without making its caller wait for the address space to go.
//!
//! When a process exits, the kernel tears down its memory before its parent learns of the
//! exit: for poolscope, with its threads having run on every core, that is about a tenth
//! of a millisecond on a small VM (unmapping, and a TLB flush on each core the process
//! used), several times what a small C program takes. A shell script or a benchmark
//! waits for it.
//!
//! So this process starts a stand-in: a child that shares its memory (`CLONE_VM`), holds
//! nothing but the read end of a pipe, and waits on it. When everything is written and
//! flushed, the process exits; its memory is still in use, so its exit is quick. Its end
//! closes the pipe; the stand-in exits and the kernel tears the memory down in the
//! stand-in's exit, which nobody waits for. The stand-in runs no Rust code that could
//! touch what this process left (no allocation, no locks), and it starts with every
//! signal blocked.
//!
//! `poolscope run` starts the stand-in a moment into the run ([`prepare`]), so that the
//! end is the exit alone; a run that ends sooner starts it on its way out ([`exit`]).

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

/// Stack of the stand-in: it calls a few system calls and nothing else.
const STACK: usize = 64 * 1024;

/// Whether a stand-in waits already (see [`prepare`]).
static STAND_IN_WAITS: AtomicBool = AtomicBool::new(false);

/// Start the stand-in now, while the run goes on, so that the end costs nothing but the
/// exit itself: starting it takes half a dozen system calls, each slow on a core that
/// has been idle. Does nothing if one waits already; if it cannot start, [`exit`] tries
/// again.
pub fn prepare() {
    if !STAND_IN_WAITS.load(Ordering::Relaxed) && start_stand_in(false).is_some() {
        STAND_IN_WAITS.store(true, Ordering::Relaxed);
    }
}

/// End this process with `code` now. Everything it must write has to be flushed first.
pub fn exit(code: u8) -> ! {
    // Whether the stand-in starts or not, the process ends here.
    if !STAND_IN_WAITS.load(Ordering::Relaxed) {
        // This process closes its files first: the stand-in must not hold a copy of
        // any (standard output, say) past this process's end, not even for a moment.
        let _ = start_stand_in(true);
    }
    // SAFETY: `_exit` ends the process at once, as intended; nothing is left to flush.
    unsafe { libc::_exit(i32::from(code)) }
}

/// Start the stand-in; with `close_own`, close every other descriptor of this process
/// first. The write end of its pipe stays open in this process, with close-on-exec, until
/// the process ends: that is what the stand-in waits for.
fn start_stand_in(close_own: bool) -> Option<()> {
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ok()?;
    if close_own {
        // SAFETY: the process is ending: every record is closed, every stream flushed.
        unsafe { close_all_but(&[read.as_raw_fd(), write.as_raw_fd()]) };
    }
    let stack = crate::memory_child::map_stack(STACK)?;
    // The stand-in inherits this thread's mask: with every signal blocked, no handler of
    // this process ever runs in it. This thread's own mask is restored right after.
    let old = crate::memory_child::block_all_signals();
    // SAFETY: the stack is ours and never unmapped, and its top is 16-byte aligned. The
    // stand-in shares this memory but touches only its own stack and descriptors.
    let pid = unsafe {
        // The read end, at the bottom of the stand-in's stack, which grows down from the top.
        let end = stack.cast::<libc::c_int>();
        end.write(read.as_raw_fd());
        let top = stack.cast::<u8>().add(STACK).cast::<libc::c_void>();
        libc::clone(stand_in, top, libc::CLONE_VM | libc::SIGCHLD, end.cast())
    };
    crate::memory_child::restore_signals(&old);
    if pid <= 0 {
        return None;
    }
    // The write end stays open until this process ends.
    std::mem::forget(write);
    drop::<OwnedFd>(read);
    Some(())
}

/// The stand-in: close every descriptor it was started with but the pipe's read end (its
/// copies of this process's files, the pipe's write end among them), wait for end of
/// file, exit. With every signal blocked, nothing interrupts the read; it returns at end of
/// file (or on an error, which ends the wait just as well).
///
/// It shares the memory, and the thread pointer, of the thread that started it, which goes
/// on running: so it calls nothing that writes thread state. The read is a raw system call,
/// not the C library's `read`, a cancellation point that would mark that thread's
/// cancellation state for as long as the read waits; `errno`, the one thing the calls here
/// could write, is written only on errors they cannot meet.
extern "C" fn stand_in(end: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `end` points at the descriptor written before `clone`; the rest are plain
    // system calls on the stand-in's own descriptor table and stack.
    unsafe {
        let read = end.cast::<libc::c_int>().read();
        close_all_but(&[read]);
        let mut byte = 0u8;
        libc::syscall(
            libc::SYS_read,
            read,
            (&raw mut byte).cast::<libc::c_void>(),
            1usize,
        );
        libc::_exit(0)
    }
}

/// Close every descriptor of the calling process but those in `keep` (at most two).
/// Allocates nothing: the stand-in calls it.
///
/// # Safety
/// Every other descriptor must be one the caller may close.
unsafe fn close_all_but(keep: &[libc::c_int]) {
    let mut kept = [u32::MAX; 2];
    for (k, &fd) in kept.iter_mut().zip(keep) {
        *k = fd as u32;
    }
    if kept[0] > kept[1] {
        kept.swap(0, 1);
    }
    let mut from = 0u32;
    // SAFETY: as the caller promises.
    unsafe {
        for k in kept {
            if k == u32::MAX {
                break;
            }
            if k > from {
                libc::close_range(from, k - 1, 0);
            }
            from = k + 1;
        }
        libc::close_range(from, u32::MAX, 0);
    }
}
