//! A slot's worker talking: its replies on fd 4, and its stdout and stderr, which belong to
//! the item it is on. A reply line longer than [`HELD_RESULT`] is read in pieces, its
//! result going to its file as it arrives (see [`ResultSink`]).

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::exit::usage_since;
use super::result::ResultSink;
use super::{EXCERPT, Slot, may_print, window};
use crate::engine::launcher::LaunchMsg;
use crate::event::{ItemResult, LostRecord, Outcome, WorkerChange};
use crate::output::TAIL_BYTES;
use crate::worker::HELD_RESULT;
use crate::worker::long_reply::{Fed, LongReply};
use crate::worker::protocol::{self, Reply};

/// A reply line too long to hold, part read: the line, and where its result goes (nowhere
/// when the worker is on no item: such a reply breaks the protocol once it ends).
#[derive(Debug)]
pub(super) struct LongLine {
    reply: LongReply,
    sink: Option<ResultSink>,
}

/// What a worker answered an item: its result, and the result's file if that could not
/// be written in full; or its error.
type Answer = Result<(ItemResult, Option<LostRecord>), String>;

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
                    if !self.take_replies(n) || !to_end {
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
                    if let Some(long) = w.long.take() {
                        if long.reply.complete() {
                            self.end_long(*long);
                        }
                        return;
                    }
                    let last = std::mem::take(&mut w.partial);
                    if !last.iter().all(u8::is_ascii_whitespace)
                        && protocol::parse_reply(&last).is_ok()
                    {
                        self.on_reply(&last, None);
                    }
                    return;
                }
                Read::NotNow => return,
            }
        }
    }

    /// Act on the `n` reply bytes just read into the buffer, with the line they continue;
    /// false if the worker broke the protocol.
    fn take_replies(&mut self, n: usize) -> bool {
        let Some(w) = &mut self.worker else {
            return false;
        };
        let mut data = std::mem::take(&mut w.partial);
        // Only the new bytes can hold the end of the pending line.
        let mut search = data.len();
        data.extend_from_slice(&self.buf[..n]);
        let mut start = 0;
        if w.long.is_some() {
            match self.feed_long(&data) {
                Some(Fed::More) => start = data.len(),
                Some(Fed::Ended(at)) => start = at,
                None => return false,
            }
            search = start;
        }
        while let Some(at) = data[search..].iter().position(|&b| b == b'\n') {
            let line = &data[start..search + at];
            start = search + at + 1;
            search = start;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if !self.on_reply(line, None) {
                return false;
            }
        }
        if data.len() - start > HELD_RESULT {
            // Too long to hold: the rest of the line is read in pieces.
            self.begin_long();
            match self.feed_long(&data[start..]) {
                Some(_) => start = data.len(),
                None => return false,
            }
        }
        if let Some(w) = &mut self.worker {
            data.drain(..start);
            w.partial = data;
        }
        true
    }

    /// A reply line too long to hold starts: its result goes to the file of the item the
    /// worker is on.
    fn begin_long(&mut self) {
        let run_dir = &self.ctx.run.run_dir;
        let cap = self.ctx.spec.max_result;
        let Some(w) = &mut self.worker else { return };
        let sink = w
            .in_flight
            .front()
            .map(|item| ResultSink::new(run_dir, item.order.key, cap));
        let max = usize::try_from(cap).unwrap_or(usize::MAX).max(HELD_RESULT);
        w.long = Some(Box::new(LongLine {
            reply: LongReply::new(max),
            sink,
        }));
    }

    /// Read `piece` into the long reply line; `None` if the worker broke the protocol.
    fn feed_long(&mut self, piece: &[u8]) -> Option<Fed> {
        let w = self.worker.as_mut()?;
        let long = w.long.as_mut()?;
        let LongLine { reply, sink } = &mut **long;
        let fed = reply.feed(piece, &mut |bytes| {
            if let Some(sink) = sink {
                sink.push(bytes);
            }
        });
        match fed {
            Ok(Fed::More) => Some(Fed::More),
            Ok(Fed::Ended(at)) => {
                let long = w.long.take()?;
                self.end_long(*long).then_some(Fed::Ended(at))
            }
            Err(why) => {
                let long = w.long.take()?;
                self.break_protocol(why, long.reply.head());
                None
            }
        }
    }

    /// A long reply line ended; false if the worker broke the protocol.
    fn end_long(&mut self, long: LongLine) -> bool {
        let head = long.reply.head().to_vec();
        let line = long.reply.into_line();
        self.on_reply(&line, Some((long.sink, &head)))
    }

    /// Act on one reply line; false if the worker broke the protocol. A long line comes
    /// with where its result went and its first bytes (for an error message).
    pub(super) fn on_reply(
        &mut self,
        line: &[u8],
        long: Option<(Option<ResultSink>, &[u8])>,
    ) -> bool {
        let (streamed, written) = match long {
            Some((sink, head)) => (Some(sink), head),
            None => (None, line),
        };
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
                self.break_protocol("it said {\"ready\": true} twice".to_string(), written)
            }
            Ok(Reply::Done { .. }) if !w.ready => self.break_protocol(
                "it replied before it said {\"ready\": true}".to_string(),
                written,
            ),
            Ok(Reply::Done {
                id,
                start_ns,
                end_ns,
                result,
            }) => {
                let Some(head) = w.in_flight.front().map(|f| f.order.key) else {
                    let why = format!("it replied for item {id}, which it was not given");
                    return self.break_protocol(why, written);
                };
                if head.seq as u64 != id {
                    let why = format!("it replied for item {id} while on item {}", head.seq);
                    return self.break_protocol(why, written);
                }
                let answer = match result {
                    Ok(json) => {
                        let sink = streamed.flatten().unwrap_or_else(|| {
                            let run_dir = &self.ctx.run.run_dir;
                            let mut sink = ResultSink::new(run_dir, head, self.ctx.spec.max_result);
                            sink.push(json.as_bytes());
                            sink
                        });
                        match sink.finish() {
                            Ok(saved) => Ok(saved),
                            Err(why) => return self.break_protocol(why, written),
                        }
                    }
                    Err(error) => Err(error),
                };
                self.finish_head(start_ns, end_ns, answer);
                true
            }
            Err(e) => self.break_protocol(e, written),
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
        result: Answer,
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
        let (outcome, value, lost) = match result {
            Ok((value, lost)) => (Outcome::Exited { code: 0 }, Some(value), lost),
            Err(error) => (Outcome::Error { error }, None, None),
        };
        let mut record = self.record(
            item,
            started,
            ended,
            outcome,
            value,
            (user, system, cores, rss),
        );
        record.lost.extend(lost);
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
