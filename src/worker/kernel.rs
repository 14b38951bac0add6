//! The kernels built into poolscope's own binary, served as persistent workers by the
//! hidden subcommand `poolscope __worker KERNEL`.
//!
//! [`serve`] speaks the [protocol] on fds 3 and 4. It reads items in big
//! chunks, answers every complete line of a chunk, and writes the replies it holds with
//! one `write` before it would block reading again (or sooner, once the replies it holds
//! are [`FLUSH_AFTER_NS`] old), so cheap items cost no system call of their own.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use serde_json::value::RawValue;

use super::Kernel;
use super::protocol::{self, ITEMS_FD, REPLIES_FD};

/// How many bytes one read of fd 3 asks for (the buffer grows for longer lines).
const CHUNK: usize = 64 * 1024;

/// Replies held this long (since the start of the oldest one's item) are written at once,
/// even if more items are waiting: a slow item's reply never waits for the next item.
pub const FLUSH_AFTER_NS: u64 = 100_000;

/// The largest upper bound `primes` accepts.
pub const PRIMES_MAX: u64 = 10_000_000_000;

/// The longest `sleep` or `spin` accepted: a day.
const LONGEST: Duration = Duration::from_secs(24 * 60 * 60);

/// Serve `kernel` on fd 3 (items) and fd 4 (replies) until EOF on fd 3.
///
/// Writes `{"ready":true}` first. A closed reply pipe (poolscope went away) ends the
/// loop quietly with `Ok(())`. An error names what went wrong: fd 3 or 4 not open, a line
/// that is not a work item, or a failed read or write.
pub fn serve(kernel: Kernel) -> io::Result<()> {
    for (fd, role) in [(ITEMS_FD, "items"), (REPLIES_FD, "replies")] {
        if !fd_is_open(fd) {
            return Err(io::Error::new(
                ErrorKind::NotFound,
                format!(
                    "poolscope {} must be started by poolscope: fd {fd} ({role}) is not open",
                    super::KERNEL_SUBCOMMAND
                ),
            ));
        }
    }
    // SAFETY: both descriptors are open (checked above) and nothing else in this
    // process uses them; the worker owns them until it exits.
    let (items, replies) = unsafe {
        (
            File::from(OwnedFd::from_raw_fd(ITEMS_FD)),
            File::from(OwnedFd::from_raw_fd(REPLIES_FD)),
        )
    };
    serve_on(kernel, items, replies)
}

fn fd_is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only reads the descriptor's flags; an unused number gives EBADF.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

/// The protocol loop of [`serve`], on any byte streams (pipes in tests).
fn serve_on(kernel: Kernel, mut items: impl Read, mut replies: impl Write) -> io::Result<()> {
    match serve_loop(kernel, &mut items, &mut replies) {
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

fn serve_loop(kernel: Kernel, items: &mut impl Read, replies: &mut impl Write) -> io::Result<()> {
    let mut out: Vec<u8> = Vec::with_capacity(CHUNK);
    out.extend_from_slice(b"{\"ready\":true}\n");
    flush(replies, &mut out)?;

    let mut buf = vec![0u8; CHUNK];
    // buf[start..end] holds bytes read and not yet handled.
    let (mut start, mut end) = (0usize, 0usize);
    // When the item of the oldest reply in `out` started.
    let mut held_since = 0u64;
    loop {
        while let Some(nl) = buf[start..end].iter().position(|&b| b == b'\n') {
            let line = &buf[start..start + nl];
            start += nl + 1;
            // Only `noop` is sure to be quick: before any other item, the replies held
            // go out, so none waits behind an item that takes long (its timeout runs).
            if kernel != Kernel::Noop && !out.is_empty() {
                flush(replies, &mut out)?;
            }
            if let Err(e) = handle(kernel, line, &mut out, &mut held_since) {
                flush(replies, &mut out)?;
                return Err(e);
            }
            if !out.is_empty()
                && protocol::monotonic_ns().saturating_sub(held_since) >= FLUSH_AFTER_NS
            {
                flush(replies, &mut out)?;
            }
        }
        // No complete line left: write what we hold before we may block on read.
        flush(replies, &mut out)?;
        if start > 0 {
            buf.copy_within(start..end, 0);
            end -= start;
            start = 0;
        }
        if end == buf.len() {
            // One line longer than the buffer: make room.
            buf.resize(buf.len() * 2, 0);
        }
        let n = read_retrying(items, &mut buf[end..])?;
        if n == 0 {
            // EOF; a last line without its newline still counts.
            let result = handle(kernel, &buf[..end], &mut out, &mut held_since);
            flush(replies, &mut out)?;
            return result;
        }
        end += n;
    }
}

/// Answer one item line into `out`; blank lines are skipped, garbage is an error.
fn handle(kernel: Kernel, line: &[u8], out: &mut Vec<u8>, held_since: &mut u64) -> io::Result<()> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    let item = protocol::parse_item(line).map_err(|e| {
        io::Error::new(
            ErrorKind::InvalidData,
            format!("{e}: {}", protocol::excerpt(line, 200)),
        )
    })?;
    let start_ns = protocol::monotonic_ns();
    let result = match kernel {
        // The cheapest path: no allocation.
        Kernel::Noop => Ok(Cow::Borrowed("null")),
        _ => compute(kernel, item.input).map(Cow::Owned),
    };
    let end_ns = protocol::monotonic_ns();
    if out.is_empty() {
        *held_since = start_ns;
    }
    match result {
        Ok(value) => protocol::write_ok(out, item.id, start_ns, end_ns, &value),
        Err(error) => protocol::write_error(out, item.id, start_ns, end_ns, &error),
    }
    Ok(())
}

fn read_retrying(from: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match from.read(buf) {
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Write all of `out` (`write_all` retries EINTR and short writes) and empty it.
fn flush(to: &mut impl Write, out: &mut Vec<u8>) -> io::Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    to.write_all(out)?;
    to.flush()?;
    out.clear();
    Ok(())
}

/// Run `kernel` on one input (JSON text); the result as JSON text, or an error message.
///
/// - noop: `null`, without looking at the input.
/// - sleep: sleeps input seconds; returns the number.
/// - primes: counts the primes up to input (a whole number up to [`PRIMES_MAX`]).
/// - spin: keeps this core busy for input milliseconds; returns the number.
///
/// Numbers may also come as JSON strings holding a number (`"0.5"`), as inputs written in
/// a manifest's list do.
pub fn compute(kernel: Kernel, input: &RawValue) -> Result<String, String> {
    match kernel {
        Kernel::Noop => Ok("null".to_string()),
        Kernel::Sleep => {
            let secs =
                number(input).ok_or_else(|| expects("sleep", "seconds as a number", input))?;
            let time = duration(secs, 1.0)
                .ok_or_else(|| expects("sleep", "seconds as a number from 0 to 86400", input))?;
            std::thread::sleep(time);
            Ok(number_json(secs))
        }
        Kernel::Spin => {
            let ms =
                number(input).ok_or_else(|| expects("spin", "milliseconds as a number", input))?;
            let time = duration(ms, 1e-3).ok_or_else(|| {
                expects("spin", "milliseconds as a number from 0 to 86400000", input)
            })?;
            spin(time);
            Ok(number_json(ms))
        }
        Kernel::Primes => {
            let bound = number(input)
                .filter(|&n| n >= 0.0 && n <= PRIMES_MAX as f64 && n.fract() == 0.0)
                .ok_or_else(|| {
                    expects(
                        "primes",
                        &format!("an upper bound as a whole number from 0 to {PRIMES_MAX}"),
                        input,
                    )
                })?;
            Ok(count_primes(bound as u64).to_string())
        }
    }
}

/// `spin expects milliseconds as a number, got "abc"`.
fn expects(kernel: &str, what: &str, input: &RawValue) -> String {
    format!(
        "{kernel} expects {what}, got {}",
        protocol::excerpt(input.get().as_bytes(), 100)
    )
}

/// A finite JSON number, or a JSON string holding one.
fn number(input: &RawValue) -> Option<f64> {
    let text = input.get();
    let n = if text.starts_with('"') {
        let s: Cow<'_, str> = serde_json::from_str(text).ok()?;
        s.trim().parse::<f64>().ok()?
    } else {
        serde_json::from_str::<f64>(text).ok()?
    };
    n.is_finite().then_some(n)
}

/// `n` units of `unit` seconds, if from 0 to [`LONGEST`].
fn duration(n: f64, unit: f64) -> Option<Duration> {
    if n.is_nan() || n < 0.0 {
        return None;
    }
    Duration::try_from_secs_f64(n * unit)
        .ok()
        .filter(|d| *d <= LONGEST)
}

/// A number as JSON: whole numbers without a fraction.
fn number_json(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 9e15 {
        format!("{}", n as i64)
    } else {
        // Finite (checked by `number`), so this is a JSON number.
        format!("{n}")
    }
}

/// Busy-loop on this core for `time`.
fn spin(time: Duration) {
    let start = Instant::now();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    loop {
        for _ in 0..1000 {
            // xorshift64
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x = std::hint::black_box(x);
        }
        if start.elapsed() >= time {
            break;
        }
    }
}

/// π(n): the primes ≤ n, by a segmented sieve of Eratosthenes over the odd numbers.
fn count_primes(n: u64) -> u64 {
    if n < 2 {
        return 0;
    }
    // Odd primes up to √n, by a plain sieve (√(10^10) = 10^5).
    let root = n.isqrt();
    let mut small = vec![true; (root as usize) + 1];
    let mut base: Vec<u64> = Vec::new();
    for i in (3..=root as usize).step_by(2) {
        if small[i] {
            base.push(i as u64);
            for j in (i * i..=root as usize).step_by(2 * i) {
                small[j] = false;
            }
        }
    }
    // Segments of SEGMENT odd numbers: index k stands for lo + 2k.
    const SEGMENT: u64 = 1 << 18;
    let mut count = 1; // 2
    let mut seg = vec![true; (((n | 1) - 3) / 2 + 1).min(SEGMENT) as usize];
    let mut lo = 3u64;
    while lo <= n {
        let hi = (lo + 2 * SEGMENT - 2).min(n | 1); // odd, inclusive
        let len = ((hi - lo) / 2 + 1) as usize;
        seg[..len].fill(true);
        for &p in &base {
            if p * p > hi {
                break;
            }
            // The first odd multiple of p that is ≥ max(p², lo).
            let mut m = (p * p).max(lo.div_ceil(p) * p);
            if m.is_multiple_of(2) {
                m += p;
            }
            let mut k = ((m - lo) / 2) as usize;
            while k < len {
                seg[k] = false;
                k += p as usize;
            }
        }
        let mut found = seg[..len].iter().filter(|&&b| b).count() as u64;
        if hi > n && seg[len - 1] {
            // n is even and hi = n + 1 lies past the bound.
            found -= 1;
        }
        count += found;
        lo = hi + 2;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;

    fn raw(json: &str) -> Box<RawValue> {
        RawValue::from_string(json.to_string()).expect("valid JSON")
    }

    fn run(kernel: Kernel, json: &str) -> Result<String, String> {
        compute(kernel, &raw(json))
    }

    #[test]
    fn noop_returns_null_for_anything() {
        assert_eq!(run(Kernel::Noop, "[1, {\"a\": 2}]"), Ok("null".into()));
        assert_eq!(run(Kernel::Noop, "\"abc\""), Ok("null".into()));
    }

    #[test]
    fn sleep_sleeps() {
        let t = Instant::now();
        assert_eq!(run(Kernel::Sleep, "0.01"), Ok("0.01".into()));
        assert!(t.elapsed() >= Duration::from_millis(10));
        assert_eq!(run(Kernel::Sleep, "\" 0.01 \""), Ok("0.01".into()));
        assert_eq!(run(Kernel::Sleep, "0"), Ok("0".into()));
    }

    #[test]
    fn sleep_refuses_bad_input() {
        let e = run(Kernel::Sleep, "\"abc\"").expect_err("not a number");
        assert_eq!(e, "sleep expects seconds as a number, got \"abc\"");
        assert!(run(Kernel::Sleep, "-1").is_err());
        assert!(run(Kernel::Sleep, "\"NaN\"").is_err());
        assert!(run(Kernel::Sleep, "\"inf\"").is_err());
        assert!(run(Kernel::Sleep, "1e300").is_err());
        assert!(run(Kernel::Sleep, "[1]").is_err());
        assert!(run(Kernel::Sleep, "null").is_err());
    }

    #[test]
    fn spin_spins() {
        let t = Instant::now();
        assert_eq!(run(Kernel::Spin, "5"), Ok("5".into()));
        assert!(t.elapsed() >= Duration::from_millis(5));
        assert_eq!(run(Kernel::Spin, "\"2.5\""), Ok("2.5".into()));
        let e = run(Kernel::Spin, "\"abc\"").expect_err("not a number");
        assert_eq!(e, "spin expects milliseconds as a number, got \"abc\"");
        assert!(run(Kernel::Spin, "-5").is_err());
    }

    #[test]
    fn primes_counts() {
        assert_eq!(run(Kernel::Primes, "100"), Ok("25".into()));
        assert_eq!(run(Kernel::Primes, "\"100\""), Ok("25".into()));
        assert_eq!(run(Kernel::Primes, "100.0"), Ok("25".into()));
        assert_eq!(run(Kernel::Primes, "280000"), Ok("24432".into()));
        assert!(run(Kernel::Primes, "100.5").is_err());
        assert!(run(Kernel::Primes, "-1").is_err());
        assert!(run(Kernel::Primes, "1e11").is_err());
        let e = run(Kernel::Primes, "\"abc\"").expect_err("not a number");
        assert!(e.starts_with("primes expects an upper bound"), "{e}");
    }

    #[test]
    fn sieve_matches_trial_division() {
        let is_prime = |n: u64| {
            n >= 2
                && (2..)
                    .take_while(|d| d * d <= n)
                    .all(|d| !n.is_multiple_of(d))
        };
        let mut count = 0;
        for n in 0..3000u64 {
            count += u64::from(is_prime(n));
            assert_eq!(count_primes(n), count, "pi({n})");
        }
        // Across segment boundaries.
        assert_eq!(count_primes(1_000_000), 78_498);
    }

    #[test]
    fn serves_over_pipes() {
        let (items_r, mut items_w) = io::pipe().expect("pipe");
        let (replies_r, replies_w) = io::pipe().expect("pipe");
        let server = std::thread::spawn(move || serve_on(Kernel::Primes, items_r, replies_w));
        let mut replies = io::BufReader::new(replies_r);
        let mut line = String::new();
        replies.read_line(&mut line).expect("ready");
        assert_eq!(
            protocol::parse_reply(line.as_bytes()),
            Ok(protocol::Reply::Ready)
        );
        // One item whole, one split across writes, one bad input, one without newline.
        items_w
            .write_all(b"{\"id\":1,\"input\":100}\n\n{\"id\":2,\"in")
            .expect("write");
        items_w.flush().expect("flush");
        line.clear();
        replies.read_line(&mut line).expect("reply 1");
        let check = |line: &str, id: u64, want: Result<&str, &str>| {
            let Ok(protocol::Reply::Done {
                id: got,
                start_ns: Some(s),
                end_ns: Some(e),
                result,
            }) = protocol::parse_reply(line.as_bytes())
            else {
                panic!("not a reply: {line}");
            };
            assert_eq!(got, id);
            assert!(s <= e);
            assert_eq!(result, want.map_err(str::to_string));
        };
        check(&line, 1, Ok("25"));
        items_w
            .write_all(b"put\":\"10\"}\n{\"id\":3,\"input\":\"x\"}\n{\"id\":4,\"input\":2}")
            .expect("write");
        drop(items_w);
        let mut rest = Vec::new();
        for _ in 0..3 {
            let mut l = String::new();
            replies.read_line(&mut l).expect("reply");
            rest.push(l);
        }
        check(&rest[0], 2, Ok("4"));
        check(
            &rest[1],
            3,
            Err("primes expects an upper bound as a whole number from 0 to 10000000000, got \"x\""),
        );
        check(&rest[2], 4, Ok("1"));
        let result = server.join().expect("no panic");
        assert!(result.is_ok(), "{result:?}");
        let mut tail = String::new();
        replies.read_line(&mut tail).expect("eof");
        assert_eq!(tail, "");
    }

    #[test]
    fn garbage_and_gone_readers() {
        let mut out = Vec::new();
        let e = serve_on(
            Kernel::Noop,
            &b"{\"id\":1,\"input\":0}\nhello\n"[..],
            &mut out,
        )
        .expect_err("garbage");
        assert_eq!(e.kind(), ErrorKind::InvalidData);
        // The reply to the item before the garbage was still written.
        assert_eq!(String::from_utf8_lossy(&out).lines().count(), 2);

        let (items_r, items_w) = io::pipe().expect("pipe");
        let (replies_r, replies_w) = io::pipe().expect("pipe");
        drop(replies_r);
        drop(items_w);
        assert!(serve_on(Kernel::Noop, items_r, replies_w).is_ok());
    }
}
