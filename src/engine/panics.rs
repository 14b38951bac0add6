//! Panics on the engine's threads. None should happen; should one, the run ends as an
//! internal error that carries the panic's message, instead of hanging or passing for a
//! success: a slot's or the monitor's thread hands its panic to the run's thread, which
//! ends on it, and the run's thread hands it to whoever joins it.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};

/// A panic carried over from another thread: its description as it was first caught.
struct Carried(String);

/// Run `body`; a panic in it comes back as a sentence naming this thread and the message.
pub fn catch<T>(body: impl FnOnce() -> T) -> Result<T, String> {
    panic::catch_unwind(AssertUnwindSafe(body)).map_err(|payload| describe(&*payload))
}

/// What a caught panic `payload` said, and on which thread.
pub fn describe(payload: &(dyn Any + Send)) -> String {
    if let Some(Carried(description)) = payload.downcast_ref::<Carried>() {
        return description.clone();
    }
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_string());
    let thread = std::thread::current();
    format!(
        "the thread `{}` panicked: {}",
        thread.name().unwrap_or("unnamed"),
        crate::human::excerpt(&message)
    )
}

/// Go on, on this thread, with a panic another thread caught and described.
pub fn resume(description: String) -> ! {
    panic::resume_unwind(Box::new(Carried(description)))
}

/// Debug builds only: panic if the variable `POOLSCOPE_PANIC` is `place`. The tests make
/// the engine's threads panic this way; no input can.
pub fn injected(place: &str) {
    #[cfg(debug_assertions)]
    if std::env::var_os("POOLSCOPE_PANIC").is_some_and(|v| v == place) {
        panic!("injected at {place} by POOLSCOPE_PANIC");
    }
    #[cfg(not(debug_assertions))]
    let _ = place;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_is_described_once_however_far_it_is_carried() {
        let first = std::thread::Builder::new()
            .name("first".to_string())
            .spawn(|| catch(|| panic!("boom {}", 7)))
            .expect("thread")
            .join()
            .expect("caught");
        let first = first.expect_err("panicked");
        assert_eq!(first, "the thread `first` panicked: boom 7");
        let again = catch(|| resume(first.clone())).expect_err("carried");
        assert_eq!(again, first);
    }
}
