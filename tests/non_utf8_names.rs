//! File names that are not UTF-8 run: a task gets their bytes; names for people write
//! those bytes as `\xNN`; a persistent worker's item (JSON text) cannot hold them, so the
//! load report lists them as ignored, with why.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;

use common::*;

/// `caf\xe9` is Latin-1, `\xff` is never UTF-8.
const NAME: &[u8] = b"caf\xe9-\xff.txt";

#[test]
fn a_discovered_file_with_such_a_name_runs() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join(OsStr::from_bytes(b"task-\xff\xfe"));
    script(&file, "#!/bin/sh\nprintf '%s' \"$0\"\n");
    let out = tempfile::tempdir().expect("tmp");
    let o = run_into(dir.path(), out.path(), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let printed = fs::read(out.path().join("outputs/1.out")).expect("output");
    assert_eq!(
        printed,
        file.as_os_str().as_bytes(),
        "the task got its path's bytes"
    );
    let s = summary(out.path());
    assert_eq!(task(&s, 1)["name"], "task-\\xff\\xfe");
    assert_eq!(task(&s, 1)["status"], "ok");
}

#[test]
fn an_each_glob_passes_such_names_as_bytes_to_argv_and_sh() {
    for (program, expected) in [
        (
            "cmd = [\"printf\", \"%s|%s|%s\", \"{}\", \"{/.}\", \"{//}\"]",
            [b"in/".as_slice(), NAME, b"|caf\xe9-\xff|in"].concat(),
        ),
        (
            "sh = \"printf '%s|%s|%s' {} \\\"{/}\\\" '{.}'\"",
            [b"in/".as_slice(), NAME, b"|", NAME, b"|in/caf\xe9-\xff"].concat(),
        ),
    ] {
        let dir = task_dir(&format!("[each]\ninputs = \"in/*.txt\"\n{program}\n"));
        fs::create_dir(dir.path().join("in")).expect("in");
        fs::write(dir.path().join("in").join(OsStr::from_bytes(NAME)), "x").expect("file");
        fs::write(dir.path().join("in/plain.txt"), "x").expect("file");
        let out = tempfile::tempdir().expect("tmp");
        let o = run_into(dir.path(), out.path(), &[]);
        assert_eq!(o.status.code(), Some(0), "{program}: {}", stderr(&o));
        let s = summary(out.path());
        assert_eq!(s["totals"]["ok"], 2, "{program}: both files ran");
        assert_eq!(task(&s, 1)["name"], "in/caf\\xe9-\\xff.txt");
        let printed = fs::read(out.path().join("outputs/1.out")).expect("output");
        assert_eq!(
            String::from_utf8_lossy(&printed),
            String::from_utf8_lossy(&expected),
            "{program}"
        );
        assert_eq!(printed, expected, "{program}");
        let rows = joblog(out.path());
        let row = rows.iter().find(|r| r[0] == "1").expect("task 1's line");
        assert!(row[8].contains("caf\\xe9-\\xff"), "{row:?}");
    }
}

#[test]
fn a_worker_item_cannot_hold_such_a_name_and_the_load_report_says_why() {
    let dir = task_dir("[worker]\nbuiltin = \"noop\"\n\n[each]\ninputs = \"in/*\"\n");
    fs::create_dir(dir.path().join("in")).expect("in");
    fs::write(dir.path().join("in").join(OsStr::from_bytes(NAME)), "x").expect("file");
    fs::write(dir.path().join("in/plain.txt"), "x").expect("file");
    let o = app()
        .arg("run")
        .arg(dir.path())
        .arg("--dry-run")
        .output()
        .expect("poolscope runs");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let report = stdout(&o);
    assert!(report.contains("1 tasks:"), "{report}");
    assert!(
        report.contains("ignored:\n  in/caf\\xe9-\\xff.txt — its name is not valid UTF-8"),
        "{report}"
    );
}
