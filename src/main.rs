//! The `poolscope` executable: everything is in the library's [`poolscope::cli`].
//!
//! The process starts at a C `main`, not through the Rust runtime's start-up. That start-up
//! finds the main thread's stack by reading `/proc/self/maps` and sets up an alternate
//! signal stack to report a stack overflow; measured on a 2-core VM, it made a Rust
//! program's start 0.11 ms slower than a C program's, and `poolscope run` waits for it
//! before its first task. The two things of it that poolscope relies on are done here:
//! standard descriptors 0 to 2 are open (so that no pipe or file of a run takes their
//! place), and `SIGPIPE` is ignored (writing to a closed pipe is an error, not death).
//! What is left out is the message on a stack overflow, which ends the process with
//! `SIGSEGV` alone.

#![no_main]

use std::ffi::{c_char, c_int};

#[unsafe(no_mangle)]
extern "C" fn main(_argc: c_int, _argv: *const *const c_char) -> c_int {
    standard_descriptors_open();
    // SAFETY: sets a signal's disposition; no handler runs.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    // A panic has printed its message; it ends the process as the Rust runtime would.
    // `exit` flushes standard output, as the end of a Rust `main` would.
    match std::panic::catch_unwind(poolscope::cli::main) {
        Ok(code) => std::process::exit(code.into()),
        Err(_) => std::process::exit(101),
    }
}

/// Open `/dev/null` on any of descriptors 0, 1 and 2 that is closed.
fn standard_descriptors_open() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: `fds` is a valid array of three pollfd; a timeout of 0 does not block.
    if unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) } < 0 {
        return;
    }
    for pfd in fds {
        if pfd.revents & libc::POLLNVAL != 0 {
            // SAFETY: opens a file; the lowest free descriptor, `pfd.fd`, is the one taken.
            unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        }
    }
}
