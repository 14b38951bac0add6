//! Starting a task's process: `clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD)` and `execve`,
//! with only the steps a task needs in between.
//!
//! This is what `posix_spawn` does, less what it costs here for nothing. glibc's child
//! asks the kernel for the disposition of every one of the 64 signals (a system call
//! each), and its parent maps and unmaps a fresh stack for each child (the unmapping
//! flushes the TLBs of every core the parent's threads ran on); std's `Command` then
//! rebuilds the whole environment, and a pidfd costs one more call. In the moments when
//! tasks end and the next ones start, all of that shares the cores with the starting
//! tasks. Here a child's stack is mapped once and kept for later children, the
//! environment is taken once per run, the pidfd comes with the clone, and the child does:
//!
//! 1. `setpgid(0, 0)`: the attempt's own process group;
//! 2. `dup2` of `/dev/null` and the two pipes onto descriptors 0, 1 and 2 (every other
//!    descriptor of poolscope is close-on-exec);
//! 3. `chdir` to the task's directory;
//! 4. `SIGPIPE` back to its default (poolscope ignores it; tasks must not inherit that);
//! 5. any signal that arrived while it was blocked and has a handler in poolscope set to
//!    its default, so that no handler of poolscope runs in the child (which shares
//!    poolscope's memory until `execve`); `execve` resets every other handler;
//! 6. the signal mask restored to the spawning thread's, then `execve`.
//!
//! Signals other than `SIGPIPE` that poolscope ignores stay ignored in tasks, as with
//! `posix_spawn` and a shell (`nohup` relies on it).
//!
//! The parent blocks every signal around the clone, so none is handled in the child
//! before step 6. Until `execve` the parent's thread is suspended and the child shares its
//! memory: the child calls nothing that allocates or takes a lock, and reports a failure
//! through the shared [`ChildArgs`], then exits with 127.

use std::ffi::{CString, OsStr, c_char, c_int, c_void};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr;
use std::sync::Mutex;

use crate::memory_child;

/// The environment of this process, taken once per run as `NAME=value` strings: each
/// task's starts from it.
#[derive(Debug)]
pub struct Environment {
    entries: Vec<Entry>,
}

/// One `NAME=value` string, and where its name ends: comparing names, once per variable
/// and spawn, then compares lengths and bytes instead of looking for the `=` each time.
#[derive(Debug)]
struct Entry {
    text: CString,
    name_len: usize,
}

impl Entry {
    fn name(&self) -> &[u8] {
        &self.text.as_bytes()[..self.name_len]
    }
}

impl Environment {
    /// This process's environment, now.
    pub fn of_this_process() -> Self {
        Environment {
            entries: std::env::vars_os()
                .filter_map(|(k, v)| entry(&k, &v))
                .collect(),
        }
    }
}

fn entry(key: &OsStr, value: &OsStr) -> Option<Entry> {
    let mut bytes = Vec::with_capacity(key.len() + value.len() + 1);
    bytes.extend_from_slice(key.as_bytes());
    bytes.push(b'=');
    bytes.extend_from_slice(value.as_bytes());
    // The name ends at the first `=`, as for the program that reads it.
    let name_len = bytes.iter().position(|&b| b == b'=').unwrap_or(key.len());
    Some(Entry {
        text: CString::new(bytes).ok()?,
        name_len,
    })
}

/// What to start.
pub struct Command<'a> {
    /// The file to execute: absolute, or relative to `cwd`.
    pub program: &'a OsStr,
    pub argv: &'a [String],
    pub cwd: &'a Path,
    pub environment: &'a Environment,
    /// Set on top of `environment`, later ones winning.
    pub vars: &'a [(&'a OsStr, &'a OsStr)],
}

/// A started process: its PID, a pidfd (if the kernel gives one), and the read ends of its
/// stdout and stderr pipes.
pub struct Spawned {
    pub pid: u32,
    pub pidfd: Option<OwnedFd>,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// Start `command` in a process group of its own, stdin from `/dev/null`, stdout and
/// stderr into pipes. Returns once the child has called `execve`, or with the reason it
/// could not.
pub fn spawn(command: &Command) -> io::Result<Spawned> {
    let program = cstring(command.program)?;
    let cwd = cstring(command.cwd.as_os_str())?;
    let argv: Vec<CString> = command
        .argv
        .iter()
        .map(|a| cstring(OsStr::new(a)))
        .collect::<io::Result<_>>()?;
    let vars: Vec<Entry> = command
        .vars
        .iter()
        .filter_map(|(k, v)| entry(k, v))
        .collect();
    let argv_ptrs = null_terminated(argv.iter());
    let envp_ptrs = null_terminated(
        command
            .environment
            .entries
            .iter()
            .filter(|e| !overridden(e, &vars))
            .chain(vars.iter().enumerate().filter_map(|(i, e)| {
                // Of two settings of one name, the later wins.
                (!overridden(e, &vars[i + 1..])).then_some(e)
            }))
            .map(|e| &e.text),
    );

    let stdin = open_dev_null()?;
    let (stdout, stdout_w) = pipe()?;
    let (stderr, stderr_w) = pipe()?;
    let mut args = ChildArgs {
        program: program.as_ptr(),
        argv: argv_ptrs.as_ptr(),
        envp: envp_ptrs.as_ptr(),
        cwd: cwd.as_ptr(),
        fds: [
            stdin.as_raw_fd(),
            stdout_w.as_raw_fd(),
            stderr_w.as_raw_fd(),
        ],
        // SAFETY: sigset_t is plain old data; it is filled in below before use.
        mask: unsafe { std::mem::zeroed() },
        failed: None,
    };
    let (pid, pidfd) = STACK.with(|stack| clone_child(stack, &mut args))?;
    drop((stdin, stdout_w, stderr_w));
    if let Some((step, errno)) = args.failed {
        // It has exited (the parent resumes once the child has called `execve` or
        // exited): reap it.
        let mut status = 0;
        // SAFETY: waiting for our own child; status is valid for writes.
        while unsafe { libc::waitpid(pid, &mut status, 0) } < 0
            && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
        {}
        let error = io::Error::from_raw_os_error(errno);
        return Err(match step {
            Step::Exec => error,
            Step::Chdir => io::Error::new(
                error.kind(),
                format!(
                    "cannot change to the directory `{}`: {error}",
                    command.cwd.display()
                ),
            ),
            Step::Setup => io::Error::new(
                error.kind(),
                format!("cannot set up the new process: {error}"),
            ),
        });
    }
    Ok(Spawned {
        pid: pid as u32,
        pidfd,
        stdout,
        stderr,
    })
}

fn cstring(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{:?} holds a NUL byte", s),
        )
    })
}

fn null_terminated<'a>(strings: impl Iterator<Item = &'a CString>) -> Vec<*const c_char> {
    strings
        .map(|s| s.as_ptr())
        .chain(std::iter::once(ptr::null()))
        .collect()
}

/// Whether one of `vars` sets the name `entry` sets.
fn overridden(entry: &Entry, vars: &[Entry]) -> bool {
    vars.iter().any(|v| v.name() == entry.name())
}

fn open_dev_null() -> io::Result<OwnedFd> {
    // SAFETY: a NUL-terminated path and valid flags.
    let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor just opened, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A close-on-exec pipe: (read end, write end).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds is valid for two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: descriptors just created, owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The step of the child's set-up that failed.
#[derive(Debug, Clone, Copy)]
enum Step {
    Setup,
    Chdir,
    Exec,
}

/// What the child needs, prepared by the parent (the child must not allocate), and where
/// it reports a failure. Shared: the child runs in the parent's memory.
struct ChildArgs {
    program: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
    cwd: *const c_char,
    /// Become the child's descriptors 0, 1 and 2.
    fds: [c_int; 3],
    /// The parent thread's signal mask, restored just before `execve`.
    mask: libc::sigset_t,
    failed: Option<(Step, c_int)>,
}

/// Clone the child on `stack` and wait until it has called `execve` or exited. Every
/// signal is blocked in between, so the child starts with all of them blocked.
fn clone_child(stack: &ThreadStack, args: &mut ChildArgs) -> io::Result<(i32, Option<OwnedFd>)> {
    let top = stack.top()?;
    args.mask = memory_child::block_all_signals();
    let mut clone = |flags: c_int, pidfd: &mut c_int| {
        // SAFETY: `child` only makes system calls on the prepared `args` and never
        // returns into this frame; `top` is the 16-byte aligned top of a mapping
        // owned by this thread and used by one child at a time (CLONE_VFORK suspends this
        // thread until the child has called `execve` or exited); `pidfd` is valid for
        // writes.
        unsafe {
            libc::clone(
                child,
                top,
                flags | libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                ptr::from_mut(args).cast::<c_void>(),
                ptr::from_mut(pidfd),
            )
        }
    };
    let mut pidfd: c_int = -1;
    let mut pid = clone(libc::CLONE_PIDFD, &mut pidfd);
    let mut error = io::Error::last_os_error();
    if pid < 0 && error.raw_os_error() == Some(libc::EINVAL) {
        // A kernel without CLONE_PIDFD (before 5.2).
        pid = clone(0, &mut pidfd);
        error = io::Error::last_os_error();
        pidfd = -1;
    }
    memory_child::restore_signals(&args.mask);
    if pid < 0 {
        return Err(error);
    }
    // SAFETY: the kernel returned this descriptor for us and nobody else owns it.
    let pidfd = (pidfd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(pidfd) });
    Ok((pid, pidfd))
}

/// The child, on its own stack in the parent's memory, until `execve`. Only system calls
/// through libc's thin wrappers: no allocation, no lock, nothing that can panic.
extern "C" fn child(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `ChildArgs` the parent passed; the parent is suspended until
    // this child calls `execve` or exits, so nothing else touches it meanwhile.
    let args = unsafe { &mut *arg.cast::<ChildArgs>() };
    // SAFETY: system calls on values the parent prepared; see the module's docs.
    unsafe {
        if libc::setpgid(0, 0) != 0 {
            return fail(args, Step::Setup);
        }
        for (target, fd) in (0..).zip(args.fds) {
            let ok = if fd == target {
                // Already in place, but close-on-exec.
                libc::fcntl(fd, libc::F_SETFD, 0) == 0
            } else {
                libc::dup2(fd, target) == target
            };
            if !ok {
                return fail(args, Step::Setup);
            }
        }
        if libc::chdir(args.cwd) != 0 {
            return fail(args, Step::Chdir);
        }
        let mut default: libc::sigaction = std::mem::zeroed();
        default.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(libc::SIGPIPE, &default, ptr::null_mut());
        let mut pending: libc::sigset_t = std::mem::zeroed();
        libc::sigpending(&mut pending);
        for signal in 1..SIGNALS {
            if libc::sigismember(&pending, signal) != 1 {
                continue;
            }
            let mut current: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signal, ptr::null(), &mut current) == 0
                && current.sa_sigaction != libc::SIG_DFL
                && current.sa_sigaction != libc::SIG_IGN
            {
                libc::sigaction(signal, &default, ptr::null_mut());
            }
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &args.mask, ptr::null_mut());
        libc::execve(args.program, args.argv, args.envp);
        fail(args, Step::Exec)
    }
}

/// Signal numbers are below this (Linux's `_NSIG`, real-time signals included).
const SIGNALS: c_int = 65;

/// Record in `args` why the child stops, for the parent; the child's exit code.
fn fail(args: &mut ChildArgs, step: Step) -> c_int {
    // SAFETY: errno's location is valid for the calling thread (the parent's, shared).
    let errno = unsafe { *libc::__errno_location() };
    args.failed = Some((step, errno));
    127
}

/// A stack for children to run on until `execve`, with a guard page below it. Mapped once
/// and never unmapped: a thread that ends hands its stack to the next thread that spawns
/// (an unmapping would interrupt every core the process runs on to flush its TLB, and
/// slot threads end as a run does).
struct ChildStack {
    base: *mut c_void,
    len: usize,
}

// SAFETY: a ChildStack is the address of a mapping that only its holder uses.
unsafe impl Send for ChildStack {}

/// Usable bytes of a child stack: the child's few wrapped system calls need little.
const CHILD_STACK: usize = 64 * 1024;

/// Stacks of threads that have ended, for the next threads that spawn.
static SPARE_STACKS: Mutex<Vec<ChildStack>> = Mutex::new(Vec::new());

/// This thread's child stack, taken from the spare ones or mapped at its first spawn.
struct ThreadStack(Option<ChildStack>);

thread_local! {
    static STACK: ThreadStack = ThreadStack(
        spare_stacks().pop().or_else(ChildStack::map)
    );
}

fn spare_stacks() -> std::sync::MutexGuard<'static, Vec<ChildStack>> {
    SPARE_STACKS.lock().unwrap_or_else(|e| e.into_inner())
}

impl Drop for ThreadStack {
    fn drop(&mut self) {
        if let Some(stack) = self.0.take() {
            spare_stacks().push(stack);
        }
    }
}

impl ThreadStack {
    /// The stack's top, 16-byte aligned (the mapping is page-aligned and its length a
    /// multiple of 16).
    fn top(&self) -> io::Result<*mut c_void> {
        let stack = self
            .0
            .as_ref()
            .ok_or_else(|| io::Error::other("no memory for a child's stack"))?;
        Ok(stack.base.wrapping_byte_add(stack.len))
    }
}

impl ChildStack {
    fn map() -> Option<Self> {
        let page = 4096;
        let len = CHILD_STACK + page;
        let base = memory_child::map_stack(len)?;
        // The lowest page faults if a child ever overruns its stack. SAFETY: the first
        // page of the mapping just made.
        unsafe { libc::mprotect(base, page, libc::PROT_NONE) };
        Some(ChildStack { base, len })
    }
}

#[cfg(test)]
mod tests;
