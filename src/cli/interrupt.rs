//! Ctrl-C, SIGTERM and SIGHUP during `poolscope run`, without a thread to wait for them.
//!
//! The handler only counts (an atomic add, safe in a signal handler); the thread that
//! folds the run's events looks at the count whenever an event arrives or it is idle,
//! which a live run makes happen several times a second (its samples), and then stops the
//! run: its tasks are killed and what was recorded is kept. A second signal exits at once;
//! the guardian kills what is left.

use std::cell::Cell;
use std::sync::atomic::{AtomicU32, Ordering};

use crossbeam_channel::Sender;
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};

use super::{exit, report};
use crate::event::Control;

/// Termination signals received so far.
static SIGNALS: AtomicU32 = AtomicU32::new(0);

extern "C" fn on_signal(_: libc::c_int) {
    if SIGNALS.fetch_add(1, Ordering::SeqCst) > 0 {
        // SAFETY: `_exit` is async-signal-safe; nothing buffered must be written.
        unsafe { libc::_exit(i32::from(exit::INTERRUPTED)) };
    }
}

/// Stops a run on the first termination signal.
pub struct Interrupt {
    controls: Sender<Control>,
    stopped: Cell<bool>,
}

impl Interrupt {
    /// Count termination signals from now on; [`Interrupt::check`] stops the run through
    /// `controls` once one came.
    pub fn install(controls: Sender<Control>) -> Self {
        let action = SigAction::new(
            SigHandler::Handler(on_signal),
            SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
            // SAFETY: the handler only does an atomic add, or `_exit`.
            let _ = unsafe { sigaction(signal, &action) };
        }
        Interrupt {
            controls,
            stopped: Cell::new(false),
        }
    }

    /// If a signal came and the run was not stopped yet, stop it.
    pub fn check(&self) {
        if !self.stopped.get() && interrupted() {
            self.stopped.set(true);
            report::warn("interrupted: stopping the running tasks (again to quit at once)");
            let _ = self.controls.send(Control::Kill);
        }
    }
}

/// Whether a termination signal came.
pub fn interrupted() -> bool {
    SIGNALS.load(Ordering::SeqCst) > 0
}
