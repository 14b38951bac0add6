//! Starts the system refuses for a moment.
//!
//! A start that fails for want of descriptors (EMFILE, ENFILE), processes (EAGAIN, as
//! under `ulimit -u`) or memory (ENOMEM) is tried again once another attempt of the run
//! has ended, or [`RETRY_EVERY`] later if none ends meanwhile, as GNU parallel backs off.
//! It fails the attempt only when no other attempt of the run is running, since then
//! nothing will make room.

use std::io;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// While other attempts run, a refused start is tried again at least this often.
pub const RETRY_EVERY: Duration = Duration::from_millis(500);

/// Whether `e` is a refusal that may pass once another attempt ends.
pub fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::EAGAIN | libc::ENOMEM)
    )
}

/// The attempts of a run whose process is running, and how many have ended.
#[derive(Debug, Default)]
pub struct Running {
    counts: Mutex<Counts>,
    ended: Condvar,
}

#[derive(Debug, Default)]
struct Counts {
    live: usize,
    ended: u64,
}

impl Running {
    /// An attempt's process started; it counts as running until the guard is dropped.
    pub fn started(&self) -> Live<'_> {
        self.lock().live += 1;
        Live(self)
    }

    /// Wait for another attempt to end (at most [`RETRY_EVERY`]); `false` at once if none
    /// is running.
    pub fn wait_for_room(&self) -> bool {
        let counts = self.lock();
        if counts.live == 0 {
            return false;
        }
        let seen = counts.ended;
        let _ = self
            .ended
            .wait_timeout_while(counts, RETRY_EVERY, |c| c.ended == seen);
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running attempt: ended when dropped.
pub struct Live<'a>(&'a Running);

impl Drop for Live<'_> {
    fn drop(&mut self) {
        let mut counts = self.0.lock();
        counts.live = counts.live.saturating_sub(1);
        counts.ended += 1;
        drop(counts);
        self.0.ended.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_nothing_running_there_is_no_room_to_wait_for() {
        let running = Running::default();
        assert!(!running.wait_for_room());
        let live = running.started();
        std::thread::scope(|s| {
            s.spawn(|| drop(live));
            assert!(running.wait_for_room());
        });
        assert!(!running.wait_for_room());
    }

    #[test]
    fn only_limits_that_pass_are_transient() {
        for errno in [libc::EMFILE, libc::ENFILE, libc::EAGAIN, libc::ENOMEM] {
            assert!(is_transient(&io::Error::from_raw_os_error(errno)));
        }
        for errno in [libc::ENOENT, libc::EACCES, libc::E2BIG] {
            assert!(!is_transient(&io::Error::from_raw_os_error(errno)));
        }
    }
}
