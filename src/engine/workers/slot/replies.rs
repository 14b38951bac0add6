//! A slot's worker talking: its replies on fd 4, and its stdout and stderr, which belong to
//! the item it is on.

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::exit::usage_since;
use super::{EXCERPT, Slot, may_print, window};
use crate::engine::launcher::LaunchMsg;
use crate::event::{Outcome, WorkerChange};
use crate::output::TAIL_BYTES;
use crate::worker::protocol::{self, Reply};

impl Slot<'_> {
    /// Read what stream `i` (0 stdout, 1 stderr) has, into the item the worker is on.
    pub(super) fn read_output(&mut self, i: usize) {
        let Some(w) = &mut self.worker else { return };
        loop {
            let Some(fd) = &w.process.output[i] else {
                return;
            };
            match read_some(fd, &mut self.buf) {
                Read::Bytes(n) => {
                    w.printed = true;
                    let chunk = &self.buf[..n];
                    match w.in_flight.front_mut().and_then(|f| f.head.as_mut()) {
                        Some(head) => head.captures[i].push(chunk),
                        None => {
                            let stray = &mut w.stray[i];
                            if stray.len() < TAIL_BYTES {
                                stray.extend_from_slice(chunk);
                            }
                        }
                    }
                }
                Read::Eof => {
                    w.process.output[i] = None;
                    return;
                }
                Read::NotNow => return,
            }
        }
    }

    /// Read the replies there are (to the end of the pipe if `to_end`) and act on each.
    pub(super) fn read_replies(&mut self, to_end: bool) {
        loop {
            let Some(w) = &mut self.worker else { return };
            if w.broken.is_some() {
                return;
            }
            let Some(fd) = &w.process.replies else { return };
            match read_some(fd, &mut self.buf) {
                Read::Bytes(n) => {
                    let mut data = std::mem::take(&mut w.partial);
                    // Only the new bytes can hold the end of the pending line.
                    let mut search = data.len();
                    data.extend_from_slice(&self.buf[..n]);
                    let mut start = 0;
                    while let Some(at) = data[search..].iter().position(|&b| b == b'\n') {
                        let line = &data[start..search + at];
                        start = search + at + 1;
                        search = start;
                        if line.iter().all(u8::is_ascii_whitespace) {
                            continue;
                        }
                        if !self.on_reply(line) {
                            return;
                        }
                    }
                    if let Some(w) = &mut self.worker {
                        data.drain(..start);
                        w.partial = data;
                    }
                    if !to_end {
                        return;
                    }
                }
                Read::Eof => {
                    w.process.replies = None;
                    if w.leaving.is_none() {
                        w.replies_closed_at = Some(Instant::now());
                    }
                    // A last line without its newline counts if it is a whole reply; if it
                    // is cut short (the worker died writing it), its exit status tells.
                    let last = std::mem::take(&mut w.partial);
                    if !last.iter().all(u8::is_ascii_whitespace)
                        && protocol::parse_reply(&last).is_ok()
                    {
                        self.on_reply(&last);
                    }
                    return;
                }
                Read::NotNow => return,
            }
        }
    }

    /// Act on one reply line; false if the worker broke the protocol.
    pub(super) fn on_reply(&mut self, line: &[u8]) -> bool {
        let Some(w) = &mut self.worker else {
            return false;
        };
        match protocol::parse_reply(line) {
            Ok(Reply::Ready) if !w.ready => {
                w.ready = true;
                self.ctx.starts.ready();
                let pid = w.process.pid;
                self.send_worker(pid, WorkerChange::Ready);
                true
            }
            Ok(Reply::Ready) => {
                self.break_protocol("it said {\"ready\": true} twice".to_string(), line)
            }
            Ok(Reply::Done { .. }) if !w.ready => self.break_protocol(
                "it replied before it said {\"ready\": true}".to_string(),
                line,
            ),
            Ok(Reply::Done {
                id,
                start_ns,
                end_ns,
                result,
            }) => {
                let expected = w.in_flight.front().map(|f| f.order.key.seq as u64);
                if expected != Some(id) {
                    let why = match expected {
                        Some(e) => format!("it replied for item {id} while on item {e}"),
                        None => format!("it replied for item {id}, which it was not given"),
                    };
                    return self.break_protocol(why, line);
                }
                self.finish_head(start_ns, end_ns, result.map(str::to_string));
                true
            }
            Err(e) => self.break_protocol(e, line),
        }
    }

    /// The worker wrote something that is not the protocol: it is broken. Kill it; its
    /// item fails with what it wrote.
    pub(super) fn break_protocol(&mut self, why: String, line: &[u8]) -> bool {
        if let Some(w) = &mut self.worker {
            w.broken = Some(format!(
                "the worker broke the protocol: {why}; on fd 4 it wrote `{}`",
                protocol::excerpt(line, EXCERPT)
            ));
            w.process.signal(Signal::SIGKILL);
        }
        false
    }

    /// The worker answered its current item.
    pub(super) fn finish_head(
        &mut self,
        start_ns: Option<u64>,
        end_ns: Option<u64>,
        result: Result<String, String>,
    ) {
        // What it printed for the item is in the pipes before its reply.
        self.read_output(0);
        self.read_output(1);
        let now = self.ctx.run.clock.now();
        let origin = self.ctx.origin_ns;
        let Some(w) = &mut self.worker else { return };
        let Some(item) = w.in_flight.pop_front() else {
            return;
        };
        let head_at = item.head.as_ref().map_or(now, |h| h.at);
        let offset = |ns: u64| Duration::from_nanos(ns.saturating_sub(origin));
        let ended = end_ns.map(offset).filter(|e| *e <= now).unwrap_or(now);
        let started = start_ns
            .map(offset)
            .filter(|s| *s <= ended)
            .unwrap_or(head_at.min(ended));
        let wall = ended.saturating_sub(started);
        self.item_secs = 0.7 * self.item_secs + 0.3 * wall.as_secs_f64();
        let window = window(self.item_secs, may_print(self.ctx, w));
        self.shared.wants.store(
            window.saturating_sub(1),
            std::sync::atomic::Ordering::Relaxed,
        );
        let failed = result.is_err();
        let (user, system, cores, rss) = if wall >= Duration::from_millis(1) || failed {
            usage_since(w)
        } else {
            (Duration::ZERO, Duration::ZERO, Vec::new(), 0)
        };
        w.done += 1;
        let (outcome, value) = match result {
            Ok(json) => (
                Outcome::Exited { code: 0 },
                serde_json::value::RawValue::from_string(json).ok(),
            ),
            Err(error) => (Outcome::Error { error }, None),
        };
        let record = self.record(
            item,
            started,
            ended,
            outcome,
            value,
            (user, system, cores, rss),
        );
        if failed {
            self.undecided += 1;
        }
        let _ = self.replies.send(LaunchMsg::Finished(Box::new(record)));
        self.start_head();
        if let Some(w) = &self.worker
            && self.ctx.max_tasks > 0
            && w.sent >= self.ctx.max_tasks
            && w.in_flight.is_empty()
        {
            self.ask_to_leave("recycled");
        }
    }
}

pub(super) enum Read {
    Bytes(usize),
    Eof,
    NotNow,
}

pub(super) fn read_some(fd: &OwnedFd, buf: &mut [u8]) -> Read {
    loop {
        match nix::unistd::read(fd, buf) {
            Ok(0) => return Read::Eof,
            Ok(n) => return Read::Bytes(n),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(nix::errno::Errno::EAGAIN) => return Read::NotNow,
            Err(_) => return Read::Eof,
        }
    }
}
