use std::io::Read;
use std::path::Path;

use super::*;

/// Run `sh -c script zero args...` in `cwd`; how it ended, its stdout and stderr.
fn run(script: &str, args: &[&str], cwd: &Path) -> (Outcome, String, String) {
    let argv: Vec<&str> = ["/bin/sh", "-c", script, "zero"]
        .into_iter()
        .chain(args.iter().copied())
        .collect();
    let child = spawn(&Spec::new(&argv, cwd)).expect("spawn sh");
    let read = |fd: OwnedFd| {
        let mut s = String::new();
        std::fs::File::from(fd)
            .read_to_string(&mut s)
            .expect("read a pipe");
        s
    };
    let out = read(child.stdout);
    let err = read(child.stderr);
    let (outcome, _) = reap(child.pid);
    (outcome.expect("reaped"), out, err)
}

const OK: Outcome = Outcome::Exited { code: 0 };

#[test]
fn arguments_arrive_as_written() {
    let hostile = ["a b", "it's", "$(touch /tmp/x)", ";rm -rf", "ünï", ""];
    let (outcome, out, _) = run(
        r#"for a in "$0" "$@"; do printf '[%s]' "$a"; done"#,
        &hostile,
        Path::new("/"),
    );
    assert_eq!(outcome, OK);
    assert_eq!(out, "[zero][a b][it's][$(touch /tmp/x)][;rm -rf][ünï][]");
}

#[test]
fn the_child_gets_its_group_its_directory_and_three_descriptors() {
    let dir = std::env::temp_dir();
    // What a child may inherit: descriptors this process has without close-on-exec (from
    // the test harness; every descriptor poolscope opens is close-on-exec).
    let inheritable: Vec<String> = std::fs::read_dir("/proc/self/fdinfo")
        .expect("list /proc/self/fdinfo")
        .filter_map(|e| {
            let e = e.ok()?;
            let info = std::fs::read_to_string(e.path()).ok()?;
            let flags = info.lines().find_map(|l| l.strip_prefix("flags:"))?;
            let flags = u32::from_str_radix(flags.trim(), 8).ok()?;
            (flags & libc::O_CLOEXEC as u32 == 0)
                .then(|| e.file_name().to_string_lossy().into_owned())
        })
        .collect();
    let (outcome, out, err) = run(
        // No pipeline: while the shell sets one up, it holds the pipes' descriptors.
        "ps -o pid= -o pgid= -p $$; pwd; readlink /proc/$$/fd/0; echo oops >&2; ls /proc/$$/fd",
        &[],
        &dir,
    );
    assert_eq!(outcome, OK, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    let ids: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(ids[0], ids[1], "its own process group: {out}");
    assert_eq!(
        Path::new(lines[1]).canonicalize().expect("its directory"),
        dir.canonicalize().expect("the directory given")
    );
    assert_eq!(lines[2], "/dev/null");
    // The three it was given; anything else, only what this process lets children inherit,
    // or what the shell opened itself (dash keeps a descriptor at 10).
    let mut fds: Vec<&str> = lines[3..].to_vec();
    fds.sort_by_key(|fd| fd.parse::<u32>().unwrap_or(u32::MAX));
    assert_eq!(fds[..3], ["0", "1", "2"], "{out}");
    assert!(
        fds[3..]
            .iter()
            .all(|fd| *fd == "10" || inheritable.iter().any(|i| i == fd)),
        "{out}; inheritable here: {inheritable:?}"
    );
    assert_eq!(err, "oops\n");
}

#[test]
fn sigpipe_is_back_to_default_in_the_child() {
    // The test harness ignores SIGPIPE, as poolscope does; the child must not.
    let (_, out, _) = run("exec grep '^SigIgn' /proc/self/status", &[], Path::new("/"));
    let hex = out.split_whitespace().nth(1).expect("a mask");
    let ignored = u64::from_str_radix(hex, 16).expect("a hexadecimal mask");
    assert_eq!(ignored & (1 << (libc::SIGPIPE - 1)), 0, "{out}");
}

#[test]
fn a_program_that_cannot_run_is_an_error_that_says_why() {
    let missing = spawn(&Spec::new(&["/nonexistent/program"], "/"))
        .err()
        .expect("an error");
    assert_eq!(missing.kind(), io::ErrorKind::NotFound);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let plain = dir.path().join("plain");
    std::fs::write(&plain, "not a program").expect("write a file");
    let not_executable = spawn(&Spec::new(&[&plain], "/")).err().expect("an error");
    assert_eq!(not_executable.kind(), io::ErrorKind::PermissionDenied);
}

#[test]
fn the_pidfd_becomes_readable_when_the_child_exits_and_the_signal_is_reported() {
    let child = spawn(&Spec::new(&["/bin/true"], "/")).expect("spawn true");
    let pidfd = child.pidfd.expect("a pidfd");
    let ready = poll(
        &[(pidfd.as_fd(), PollFlags::POLLIN)],
        Some(Duration::from_secs(10)),
    );
    assert_eq!(ready, [true]);
    assert!(has_exited(child.pid));
    assert_eq!(reap(child.pid).0.expect("reaped"), OK);

    let child = spawn(&Spec::new(&["/bin/sleep", "30"], "/")).expect("spawn sleep");
    assert!(!has_exited(child.pid));
    assert!(signal_group(child.pid, Signal::SIGKILL));
    let (outcome, usage) = reap(child.pid);
    assert_eq!(outcome.expect("reaped"), Outcome::Signaled { signal: 9 });
    assert!(usage.max_rss > 0);
}
