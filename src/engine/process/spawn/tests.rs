use std::io::Read;

use super::*;

/// Run `sh -c script zero` with `args` after it in `cwd`; its exit status, stdout and stderr.
fn run(script: &str, args: &[&str], cwd: &Path, vars: &[(&str, &str)]) -> (i32, String, String) {
    let mut argv = vec![
        "sh".to_string(),
        "-c".to_string(),
        script.to_string(),
        "zero".into(),
    ];
    argv.extend(args.iter().map(|a| a.to_string()));
    let vars: Vec<(&OsStr, &OsStr)> = vars
        .iter()
        .map(|(k, v)| (OsStr::new(k), OsStr::new(v)))
        .collect();
    let spawned = spawn(&Command {
        program: OsStr::new("/bin/sh"),
        argv: &argv,
        cwd,
        environment: &Environment::of_this_process(),
        vars: &vars,
    })
    .expect("spawn sh");
    let read = |fd: OwnedFd| {
        let mut s = String::new();
        std::fs::File::from(fd)
            .read_to_string(&mut s)
            .expect("read a pipe");
        s
    };
    let out = read(spawned.stdout);
    let err = read(spawned.stderr);
    let mut status = 0;
    // SAFETY: our own child; status valid for writes.
    assert_eq!(
        unsafe { libc::waitpid(spawned.pid as i32, &mut status, 0) },
        spawned.pid as i32
    );
    (status, out, err)
}

#[test]
fn arguments_arrive_as_written() {
    let hostile = ["a b", "it's", "$(touch /tmp/x)", ";rm -rf", "ünï", ""];
    let (status, out, _) = run(
        r#"for a in "$0" "$@"; do printf '[%s]' "$a"; done"#,
        &hostile,
        Path::new("/"),
        &[],
    );
    assert_eq!(status, 0);
    assert_eq!(out, "[zero][a b][it's][$(touch /tmp/x)][;rm -rf][ünï][]");
}

#[test]
fn the_child_gets_its_group_its_directory_and_three_descriptors() {
    let dir = std::env::temp_dir();
    // What a child may inherit: descriptors this process has without close-on-exec.
    let inheritable: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .expect("list /proc/self/fd")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<c_int>().ok())
        // SAFETY: F_GETFD on a descriptor number; a closed one gives -1.
        .filter(|&fd| fd > 2 && unsafe { libc::fcntl(fd, libc::F_GETFD) } == 0)
        .map(|fd| fd.to_string())
        .collect();
    let (status, out, err) = run(
        "ps -o pid= -o pgid= -p $$; pwd; readlink /proc/$$/fd/0; ls /proc/$$/fd | sort -n | tr '\\n' ' '; echo oops >&2",
        &[],
        &dir,
        &[],
    );
    assert_eq!(status, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    let ids: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(ids[0], ids[1], "its own process group: {out}");
    assert_eq!(
        Path::new(lines[1]).canonicalize().expect("its directory"),
        dir.canonicalize().expect("the directory given")
    );
    assert_eq!(lines[2], "/dev/null");
    // The three it was given; anything else, only what this process lets children inherit
    // (the pipes' other ends and every descriptor opened here are close-on-exec).
    let fds: Vec<&str> = lines[3].split_whitespace().collect();
    assert_eq!(fds[..3], ["0", "1", "2"], "{out}");
    assert!(
        fds[3..]
            .iter()
            .all(|fd| inheritable.iter().any(|i| i == fd)),
        "{out}; inheritable here: {inheritable:?}"
    );
    assert_eq!(err, "oops\n");
}

#[test]
fn later_variables_win_over_earlier_ones_and_the_environment() {
    // SAFETY: a name no other test reads or writes.
    unsafe { std::env::set_var("POOLSCOPE_SPAWN_TEST_BASE", "base") };
    let (_, out, _) = run(
        r#"printf '%s %s %s' "$POOLSCOPE_SPAWN_TEST_BASE" "$A" "$(env | grep -c '^A=')""#,
        &[],
        Path::new("/"),
        &[
            ("A", "1"),
            ("POOLSCOPE_SPAWN_TEST_BASE", "task"),
            ("A", "2"),
        ],
    );
    assert_eq!(out, "task 2 1");
    let (_, out, _) = run(
        r#"printf '%s' "$POOLSCOPE_SPAWN_TEST_BASE""#,
        &[],
        Path::new("/"),
        &[],
    );
    assert_eq!(out, "base");
}

/// The signals the spawned process ignores and blocks, from its `/proc/self/status` (read
/// after `exec`, which keeps both: the shell itself blocks signals while it waits).
const SIGNAL_MASKS: &str = "exec grep -E '^Sig(Ign|Blk)' /proc/self/status";

fn mask(out: &str, name: &str) -> u64 {
    let line = out
        .lines()
        .find(|l| l.starts_with(name))
        .expect("a mask line");
    let hex = line.split_whitespace().nth(1).expect("a mask");
    u64::from_str_radix(hex, 16).expect("a hexadecimal mask")
}

#[test]
fn sigpipe_is_back_to_default_and_other_ignored_signals_stay_ignored() {
    // The test harness ignores SIGPIPE, as poolscope does; SIGUSR2 is ignored here too.
    // SAFETY: SIG_IGN for a signal nothing in this test binary uses.
    unsafe { libc::signal(libc::SIGUSR2, libc::SIG_IGN) };
    // SAFETY: querying a disposition.
    let pipe_ignored = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) } == libc::SIG_IGN;
    assert!(pipe_ignored);
    let (_, out, _) = run(SIGNAL_MASKS, &[], Path::new("/"), &[]);
    let bit = |signal: c_int| 1u64 << (signal - 1);
    let ignored = mask(&out, "SigIgn");
    assert_eq!(ignored & bit(libc::SIGPIPE), 0, "{out}");
    assert_ne!(ignored & bit(libc::SIGUSR2), 0, "{out}");
    // The spawning thread's mask, not the everything-blocked one used around the clone.
    assert_eq!(mask(&out, "SigBlk"), 0, "{out}");
}

#[test]
fn a_program_that_cannot_run_is_an_error_that_says_why() {
    let argv = vec!["nope".to_string()];
    let environment = Environment::of_this_process();
    let command = |program: &'static str, cwd: &'static str| Command {
        program: OsStr::new(program),
        argv: &argv,
        cwd: Path::new(cwd),
        environment: &environment,
        vars: &[],
    };
    let missing = spawn(&command("/nonexistent/program", "/"))
        .err()
        .expect("an error");
    assert_eq!(missing.kind(), io::ErrorKind::NotFound);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let plain = dir.path().join("plain");
    std::fs::write(&plain, "not a program").expect("write a file");
    let argv_plain = ["plain".to_string()];
    let not_executable = spawn(&Command {
        program: plain.as_os_str(),
        argv: &argv_plain,
        cwd: Path::new("/"),
        environment: &environment,
        vars: &[],
    })
    .err()
    .expect("an error");
    assert_eq!(not_executable.kind(), io::ErrorKind::PermissionDenied);
    let no_dir = spawn(&command("/bin/true", "/nonexistent/dir"))
        .err()
        .expect("an error");
    assert!(
        no_dir
            .to_string()
            .contains("cannot change to the directory `/nonexistent/dir`"),
        "{no_dir}"
    );
}

#[test]
fn the_pidfd_becomes_readable_when_the_child_exits() {
    let argv = vec!["true".to_string()];
    let spawned = spawn(&Command {
        program: OsStr::new("/bin/true"),
        argv: &argv,
        cwd: Path::new("/"),
        environment: &Environment::of_this_process(),
        vars: &[],
    })
    .expect("spawn true");
    let pidfd = spawned.pidfd.expect("a pidfd from CLONE_PIDFD");
    let mut fds = [libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }];
    // SAFETY: one valid pollfd.
    assert_eq!(unsafe { libc::poll(fds.as_mut_ptr(), 1, 10_000) }, 1);
    let mut status = -1;
    // SAFETY: our own child.
    unsafe { libc::waitpid(spawned.pid as i32, &mut status, 0) };
    assert_eq!(status, 0);
}
