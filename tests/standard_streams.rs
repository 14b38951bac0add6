//! poolscope's own standard output, read by nobody: the run still ends as it should.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;

use common::*;

const TASKS: &str = "[pool]\nworkers = 2\n\n[each]\nrange = [1, 3]\nsh = \"echo task-{}\"\n";

#[test]
fn a_reader_gone_from_stdout_does_not_end_the_run() {
    let dir = task_dir(TASKS);
    let out = tempfile::tempdir().expect("tmp");
    let mut child = app()
        .args(["run", "--json", "--out"])
        .arg(out.path())
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("poolscope starts");
    // Nobody reads what poolscope prints: its summary meets a broken pipe, which is
    // exit 1 (the summary is lost), not a death by SIGPIPE.
    drop(child.stdout.take());
    let o = child.wait_with_output().expect("poolscope ends");
    assert_eq!(
        (o.status.code(), o.status.signal()),
        (Some(1), None),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    assert_eq!(summary(out.path())["totals"]["ok"], 3);
}
