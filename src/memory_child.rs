//! Children that run in this process's memory (`clone` with `CLONE_VM`) until they call
//! `execve` or exit: the child that starts each task (`engine/process/spawn.rs`) and the
//! stand-in that ends `poolscope run` quickly (`cli/quick_exit.rs`). Each runs on a stack
//! of its own, and is cloned with every signal blocked in the cloning thread, so that it
//! starts with all of them blocked and no handler of this process runs in it.

use std::ffi::c_void;
use std::ptr;

/// Map `len` bytes for a child's stack; the mapping's base (page-aligned), or `None`.
pub fn map_stack(len: usize) -> Option<*mut c_void> {
    // SAFETY: mmap with no address hint creates a new private mapping; nothing aliases it.
    let base = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
            -1,
            0,
        )
    };
    (base != libc::MAP_FAILED).then_some(base)
}

/// Block every signal in the calling thread; its mask before, for [`restore_signals`].
pub fn block_all_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain old data; sigfillset initializes `all`, pthread_sigmask
    // only changes this thread's mask and writes `old`.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        old
    }
}

/// Give the calling thread back the mask `block_all_signals` returned.
pub fn restore_signals(mask: &libc::sigset_t) {
    // SAFETY: a valid mask; only this thread's is changed.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, mask, ptr::null_mut()) };
}
