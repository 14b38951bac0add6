//! The processes of the running tasks, read from `/proc` with their `stat` files kept open.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::Instant;

use crate::event::{Placement, SlotLoad};

#[derive(Debug)]
struct Proc {
    slot: usize,
    stat: File,
    core: usize,
    cpu_ticks: u64,
    /// `cpu_ticks` at the read before the last.
    ticks_before: u64,
    /// In state R (running or runnable) at the last read.
    running: bool,
    /// `cpu_ticks` counted into the last load sample.
    ticks_loaded: u64,
    /// Read at least once.
    read: bool,
    rss_pages: u64,
}

impl Proc {
    /// CPU ticks since the last load sample.
    fn unloaded_ticks(&self) -> u64 {
        self.cpu_ticks.saturating_sub(self.ticks_loaded)
    }
}

/// The processes of each running slot: its main process and, refreshed on slow ticks,
/// their descendants.
#[derive(Debug, Default)]
pub struct ProcessTable {
    procs: BTreeMap<u32, Proc>,
    /// When the previous load sample was taken.
    last_load: Option<Instant>,
    /// Ticks of processes that ended since the last load sample, not counted in it yet,
    /// per slot.
    gone_ticks: BTreeMap<usize, u64>,
}

impl ProcessTable {
    pub fn is_empty(&self) -> bool {
        self.procs.is_empty()
    }

    /// Re-read every known process; follow `roots` and, if `discover`, their descendants.
    pub fn refresh(&mut self, roots: &[(usize, u32)], discover: bool) {
        let slots: BTreeMap<usize, u32> = roots.iter().copied().collect();
        // Forget processes of slots whose task ended.
        let ticks_of_gone: Vec<(usize, u64)> = self
            .procs
            .values()
            .filter(|p| !slots.contains_key(&p.slot))
            .map(|p| (p.slot, p.unloaded_ticks()))
            .collect();
        for (slot, ticks) in ticks_of_gone {
            *self.gone_ticks.entry(slot).or_default() += ticks;
        }
        self.procs.retain(|_, p| slots.contains_key(&p.slot));
        for &(slot, pid) in roots {
            self.add(slot, pid);
        }
        if discover {
            let known: Vec<(u32, usize)> =
                self.procs.iter().map(|(pid, p)| (*pid, p.slot)).collect();
            for (pid, slot) in known {
                self.add_descendants(slot, pid);
            }
        }
        let mut dead = Vec::new();
        for (pid, proc_) in &mut self.procs {
            if !read_stat(proc_) {
                dead.push(*pid);
            }
        }
        for pid in dead {
            if let Some(p) = self.procs.remove(&pid) {
                *self.gone_ticks.entry(p.slot).or_default() += p.unloaded_ticks();
            }
        }
    }

    fn add(&mut self, slot: usize, pid: u32) {
        if self.procs.get(&pid).is_some_and(|p| p.slot == slot) {
            return;
        }
        if let Ok(stat) = File::open(format!("/proc/{pid}/stat")) {
            self.procs.insert(
                pid,
                Proc {
                    slot,
                    stat,
                    core: 0,
                    cpu_ticks: 0,
                    ticks_before: 0,
                    running: false,
                    ticks_loaded: 0,
                    read: false,
                    rss_pages: 0,
                },
            );
        }
    }

    fn add_descendants(&mut self, slot: usize, pid: u32) {
        let mut stack = vec![pid];
        let mut seen = BTreeSet::new();
        while let Some(p) = stack.pop() {
            if !seen.insert(p) {
                continue;
            }
            for child in children(p) {
                self.add(slot, child);
                stack.push(child);
            }
        }
    }

    /// Where every process that ran since the previous read is: in state R now, or with
    /// CPU time gained since (a task that sleeps is on no core).
    pub fn placements(&self) -> Vec<Placement> {
        self.procs
            .iter()
            .filter(|(_, p)| p.running || p.cpu_ticks > p.ticks_before)
            .map(|(pid, p)| Placement {
                slot: p.slot,
                pid: *pid,
                core: p.core,
            })
            .collect()
    }

    /// CPU% (of one core) and RSS per slot since the previous call: the CPU ticks each
    /// process gained since then, those of processes that ended included, so that a task
    /// that ends and the next that starts on the slot are both counted. The first call
    /// gives 0 % (no interval yet).
    pub fn loads(&mut self) -> Vec<SlotLoad> {
        let now = Instant::now();
        let mut ticks: BTreeMap<usize, u64> = std::mem::take(&mut self.gone_ticks);
        let mut rss: BTreeMap<usize, u64> = BTreeMap::new();
        for p in self.procs.values_mut() {
            *ticks.entry(p.slot).or_default() += p.unloaded_ticks();
            p.ticks_loaded = p.cpu_ticks;
            *rss.entry(p.slot).or_default() += p.rss_pages;
        }
        let page = page_size();
        let hz = clock_ticks();
        let dt = self
            .last_load
            .map(|then| now.duration_since(then).as_secs_f64().max(1e-3));
        self.last_load = Some(now);
        ticks
            .iter()
            .map(|(&slot, &gained)| SlotLoad {
                slot,
                cpu_percent: dt.map_or(0.0, |dt| (gained as f64 / hz / dt * 100.0) as f32),
                rss: rss.get(&slot).copied().unwrap_or(0) * page,
            })
            .collect()
    }
}

/// Room for a `stat` line: a few hundred bytes, the fields read here well within.
const STAT_LINE: usize = 1024;

/// Parse the `stat` file: core (field 39), utime+stime (14, 15), rss (24). False if gone.
fn read_stat(p: &mut Proc) -> bool {
    let mut buf = [0u8; STAT_LINE];
    let Ok(n) = p.stat.read_at(&mut buf, 0) else {
        return false;
    };
    let Some(fields) = parse_stat(&buf[..n]) else {
        return false;
    };
    p.core = fields.core;
    // At the first read there is no interval: only state R places the process.
    p.ticks_before = if p.read {
        p.cpu_ticks
    } else {
        fields.cpu_ticks
    };
    p.read = true;
    p.cpu_ticks = fields.cpu_ticks;
    p.running = fields.running;
    p.rss_pages = fields.rss_pages;
    true
}

/// What poolscope reads from `/proc/PID/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatFields {
    /// The core it runs on or last ran on.
    pub core: usize,
    /// User plus system CPU, clock ticks.
    pub cpu_ticks: u64,
    /// System CPU alone, clock ticks.
    pub system_ticks: u64,
    pub rss_pages: u64,
    /// In state R: running, or waiting for a core.
    pub running: bool,
}

/// `/proc/PID/stat` of `pid` now.
pub fn stat(pid: u32) -> Option<StatFields> {
    parse_stat(&std::fs::read(format!("/proc/{pid}/stat")).ok()?)
}

/// The fields of a stat line from field 3 (state) on: field N is at index N - 3. The
/// command name before them may hold spaces and parentheses; they resume after the last ')'.
fn fields_after_name(bytes: &[u8]) -> Option<Vec<&str>> {
    let text = std::str::from_utf8(bytes).ok()?;
    Some(text[text.rfind(')')? + 1..].split_whitespace().collect())
}

fn parse_stat(bytes: &[u8]) -> Option<StatFields> {
    let fields = fields_after_name(bytes)?;
    if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
        return None;
    }
    let num = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    Some(StatFields {
        core: usize::try_from(num(39)?).ok()?,
        cpu_ticks: num(14)? + num(15)?,
        system_ticks: num(15)?,
        rss_pages: num(24)?,
        running: fields.first() == Some(&"R"),
    })
}

/// A process's `/proc/PID/stat`, opened once and read again whenever asked: opened while
/// the process starts, it answers at its exit with one read instead of a path lookup.
#[derive(Debug)]
pub struct StatFile(std::fs::File);

impl StatFile {
    pub fn open(pid: u32) -> Option<Self> {
        std::fs::File::open(format!("/proc/{pid}/stat"))
            .ok()
            .map(StatFile)
    }

    /// The core the process runs on, or last ran on (also once it is a zombie).
    pub fn core(&self) -> Option<usize> {
        use std::os::unix::fs::FileExt;
        let mut buf = [0u8; STAT_LINE];
        let n = self.0.read_at(&mut buf, 0).ok()?;
        core_in_stat(&buf[..n])
    }
}

/// Field 39 (`processor`) of a `/proc/PID/stat` line.
fn core_in_stat(bytes: &[u8]) -> Option<usize> {
    fields_after_name(bytes)?.get(39 - 3)?.parse().ok()
}

/// Children of every thread of `pid`.
fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for task in tasks.flatten() {
        if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
            out.extend(
                text.split_whitespace()
                    .filter_map(|s| s.parse::<u32>().ok()),
            );
        }
    }
    out
}

/// Bytes per memory page.
pub fn page_size() -> u64 {
    sysconf(nix::unistd::SysconfVar::PAGE_SIZE).unwrap_or(4096)
}

/// Clock ticks per second, the unit of `stat`'s CPU times.
pub fn clock_ticks() -> f64 {
    sysconf(nix::unistd::SysconfVar::CLK_TCK).map_or(100.0, |hz| hz as f64)
}

/// A positive system setting, if the system has it.
pub(crate) fn sysconf(var: nix::unistd::SysconfVar) -> Option<u64> {
    let value = nix::unistd::sysconf(var).ok().flatten()?;
    u64::try_from(value).ok().filter(|&v| v > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_file_opened_at_start_still_names_a_core_once_the_process_is_a_zombie() {
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let stat = StatFile::open(child.id()).expect("open its stat");
        // Not reaped yet: once it has exited, it is a zombie whose stat stays readable.
        let path = format!("/proc/{}/stat", child.id());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !std::fs::read_to_string(&path).is_ok_and(|s| s.contains(") Z ")) {
            assert!(std::time::Instant::now() < deadline, "`true` did not exit");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let core = stat.core().expect("a zombie's core");
        assert!(core < crate::monitor::core_count(), "core {core}");
        assert_eq!(
            Some(core),
            core_in_stat(&std::fs::read(&path).expect("read"))
        );
        child.wait().expect("reap");
    }

    #[test]
    fn stat_fields_after_a_tricky_name() {
        let mut line = String::from("42 (a) b (c)) R 1 42 42 0 -1 4194560 100 0 0 0 ");
        // fields 14.. : utime stime cutime cstime priority nice threads itrealvalue starttime vsize rss
        line.push_str("7 3 0 0 20 0 1 0 100 1000 55 ");
        // fields 25..38 (14 of them), then 39 = processor
        for _ in 25..39 {
            line.push_str("0 ");
        }
        line.push_str("1 0 0");
        let f = parse_stat(line.as_bytes()).expect("parses");
        assert_eq!(f.cpu_ticks, 10);
        assert_eq!(f.rss_pages, 55);
        assert_eq!(f.core, 1);
    }

    #[test]
    fn a_sleeping_process_is_on_no_core_and_a_spinning_one_is() {
        let spawn = |script: &str| {
            std::process::Command::new("sh")
                .args(["-c", script])
                .spawn()
                .expect("spawn sh")
        };
        let mut sleeper = spawn("exec sleep 30");
        let mut spinner = spawn("while :; do :; done");
        let (sleeping, spinning) = (sleeper.id(), spinner.id());
        let mut table = ProcessTable::default();
        let roots = [(1, sleeping), (2, spinning)];
        // The first read counts all CPU time so far; the sleeper's `exec` may have used a
        // tick. From the second read on, only what each did since the last.
        let mut placed = Vec::new();
        for _ in 0..3 {
            std::thread::sleep(std::time::Duration::from_millis(100));
            table.refresh(&roots, false);
            placed = table.placements().iter().map(|p| p.pid).collect();
        }
        let _ = (sleeper.kill(), spinner.kill());
        let _ = (sleeper.wait(), spinner.wait());
        assert!(placed.contains(&spinning), "{placed:?}");
        assert!(!placed.contains(&sleeping), "{placed:?}");
    }

    #[test]
    fn a_slot_whose_task_changes_is_counted_for_both() {
        let spin = || {
            std::process::Command::new("sh")
                .args(["-c", "while :; do :; done"])
                .spawn()
                .expect("spawn sh")
        };
        let pause = || std::thread::sleep(std::time::Duration::from_millis(300));
        let mut table = ProcessTable::default();
        let mut first = spin();
        table.refresh(&[(1, first.id())], false);
        let _ = table.loads();
        // The first task spins long enough to gain more ticks than the next will.
        for _ in 0..3 {
            pause();
            table.refresh(&[(1, first.id())], false);
        }
        let _ = table.loads();
        let _ = (first.kill(), first.wait());
        // A load sample between the two tasks, while the slot runs nothing.
        table.refresh(&[], false);
        let _ = table.loads();
        let mut next = spin();
        table.refresh(&[(1, next.id())], false);
        pause();
        table.refresh(&[(1, next.id())], false);
        let loads = table.loads();
        let _ = (next.kill(), next.wait());
        let slot = loads.iter().find(|l| l.slot == 1).expect("slot 1's load");
        // One core busy the whole interval; shared with other tests, so not all of it.
        assert!(slot.cpu_percent > 30.0, "{loads:?}");
    }

    #[test]
    fn reads_this_process() {
        let mut table = ProcessTable::default();
        table.refresh(&[(1, std::process::id())], true);
        // Placed only while it runs (the test harness's main thread, whose state /proc
        // gives, waits); known in any case.
        assert!(table.procs.contains_key(&std::process::id()));
        assert!(
            StatFile::open(std::process::id())
                .and_then(|s| s.core())
                .is_some()
        );
        let loads = table.loads();
        assert_eq!(loads.len(), 1);
        assert!(loads[0].rss > 0);
    }
}
