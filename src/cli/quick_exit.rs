//! Ending `poolscope run` without making its caller wait for the address space to go.
//!
//! When a process exits, the kernel tears down its memory before its parent learns of the
//! exit: for poolscope, with its threads having run on every core, that is about a tenth
//! of a millisecond on a small VM (unmapping, and a TLB flush on each core the process
//! used), several times what a small C program takes. A shell script or a benchmark
//! waits for it.
//!
//! So, once everything is written and flushed, this process closes all its files and
//! starts a stand-in: a child that shares its memory (`CLONE_VM`), holds nothing but the
//! read end of a pipe, and waits on it. The process then exits; its memory is still in
//! use, so its exit is quick. Its end closes the pipe; the stand-in exits and the kernel
//! tears the memory down in the stand-in's exit, which nobody waits for. The stand-in
//! runs no Rust code that could touch what this process left (no allocation, no locks),
//! and it starts with every signal blocked.

use std::os::fd::{AsRawFd, OwnedFd};

/// Stack of the stand-in: it calls two system calls and nothing else.
const STACK: usize = 64 * 1024;

/// End this process with `code` now. Everything it must write has to be flushed first:
/// every file it has open is closed before it ends.
pub fn exit(code: u8) -> ! {
    // Whether the stand-in starts or not, the process ends here.
    let _ = hand_over_memory();
    // SAFETY: `_exit` ends the process at once, as intended; nothing is left to flush.
    unsafe { libc::_exit(i32::from(code)) }
}

fn hand_over_memory() -> Option<()> {
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ok()?;
    let (r, w) = (read.as_raw_fd(), write.as_raw_fd());
    close_all_but(r, w);
    // SAFETY: mmap with no address hint creates a new private mapping; nothing aliases it.
    let stack = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            STACK,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
            -1,
            0,
        )
    };
    if stack == libc::MAP_FAILED {
        return None;
    }
    // The stand-in inherits this mask; a blocked signal runs no handler in it.
    // SAFETY: sigfillset initializes the set; sigprocmask only changes this thread's mask.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, std::ptr::null_mut());
    }
    // SAFETY: the stack is ours and never unmapped (the process is ending); its top is
    // 16-byte aligned. The stand-in shares this memory but only touches its own stack and
    // the two descriptors it is given, and this process does nothing after `clone` but
    // exit.
    let pid = unsafe {
        // The pipe's ends at the bottom of the stand-in's stack, which grows down from the top.
        let ends = stack.cast::<[libc::c_int; 2]>();
        ends.write([r, w]);
        let top = stack.cast::<u8>().add(STACK).cast::<libc::c_void>();
        libc::clone(stand_in, top, libc::CLONE_VM | libc::SIGCHLD, ends.cast())
    };
    // The write end stays open until this process ends: that is what the stand-in waits for.
    std::mem::forget(write);
    drop::<OwnedFd>(read);
    (pid > 0).then_some(())
}

/// Close every descriptor of this process but `a` and `b`.
fn close_all_but(a: i32, b: i32) {
    let (low, high) = (a.min(b) as u32, a.max(b) as u32);
    // SAFETY: closing descriptors; every record is closed and every stream flushed.
    unsafe {
        if low > 0 {
            libc::close_range(0, low - 1, 0);
        }
        if high > low + 1 {
            libc::close_range(low + 1, high - 1, 0);
        }
        libc::close_range(high + 1, u32::MAX, 0);
    }
}

/// The stand-in: close its copy of the write end, wait for end of file, exit. With every
/// signal blocked, nothing interrupts the read; it returns at end of file (or on an error,
/// which ends the wait just as well).
extern "C" fn stand_in(ends: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `ends` points at the two descriptors written before `clone`; the rest are
    // plain system calls on this process's own descriptors and stack.
    unsafe {
        let [read, write] = ends.cast::<[libc::c_int; 2]>().read();
        libc::close(write);
        let mut byte = 0u8;
        libc::read(read, (&raw mut byte).cast(), 1);
        libc::_exit(0)
    }
}
