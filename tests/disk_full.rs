//! A disk that fills up mid-run, on a real 64 KiB tmpfs: the run goes on, every task runs,
//! `summary.json` and the last line of the summary say which records are incomplete, and
//! the exit code is 74.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// A tmpfs of its own, unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mount a tmpfs of `size` (e.g. `64k`), or say why not.
    fn mount(size: &str) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let o = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !o.status.success() {
            return Err(format!("mount refused: {}", stderr(&o).trim()));
        }
        Ok(Tmpfs {
            path: dir.path().to_path_buf(),
            _dir: dir,
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Bytes each filling task writes; the first writes more than the disk holds.
const OUTPUT: usize = 16384;
const FIRST: usize = 40000;
const FILLERS: usize = 20;

#[test]
fn a_full_disk_is_an_incomplete_record_and_exit_74_and_the_run_goes_on() {
    let disk = match Tmpfs::mount("64k") {
        Ok(disk) => disk,
        Err(why) => {
            println!("skipped: no small tmpfs for the test: {why}");
            return;
        }
    };
    // Half the disk is ballast, removed by the last task: by then every output file and
    // the joblog have met a full disk, and trace.json and summary.json find room.
    let ballast = disk.path.join("ballast");
    fs::write(&ballast, vec![0u8; 32 * 1024]).expect("ballast");
    let mut manifest =
        format!("[pool]\nworkers = 1\n[[task]]\nsh = \"head -c {FIRST} /dev/zero\"\n");
    for _ in 2..=FILLERS {
        manifest.push_str(&format!("[[task]]\nsh = \"head -c {OUTPUT} /dev/zero\"\n"));
    }
    manifest.push_str(&format!("[[task]]\nsh = \"rm {}\"\n", ballast.display()));
    let dir = task_dir(&manifest);
    let out = disk.path.join("run");
    let o = run_into(dir.path(), &out, &[]);
    let (text, err) = (stdout(&o), stderr(&o));
    assert_eq!(o.status.code(), Some(74), "{text}\n{err}");
    let last = text.trim_end().lines().last().unwrap_or_default();
    assert!(
        last.starts_with("records incomplete (exit code 74): ")
            && last.contains("No space left on device"),
        "{text}"
    );
    assert!(
        err.contains("joblog.tsv"),
        "the joblog's loss is warned: {err}"
    );

    let s = summary(&out);
    assert_eq!(s["totals"]["ok"], FILLERS + 1, "every task ran");
    let lost: BTreeSet<String> = s["incomplete_records"]
        .as_array()
        .expect("incomplete_records listed")
        .iter()
        .map(|l| {
            assert!(
                l["error"].as_str().is_some_and(|e| e.contains("No space")),
                "{l}"
            );
            l["file"].as_str().expect("file").to_string()
        })
        .collect();
    assert!(lost.contains("joblog.tsv"), "{lost:?}");
    assert!(lost.contains("outputs/1.out"), "{lost:?}");
    // Each output file is whole, or listed as incomplete.
    for n in 1..=FILLERS {
        let name = format!("outputs/{n}.out");
        let len = fs::metadata(out.join(&name)).map_or(0, |m| m.len());
        let whole = if n == 1 { FIRST } else { OUTPUT };
        assert!(
            lost.contains(&name) != (len == whole as u64),
            "{name}: {len} bytes, listed: {}",
            lost.contains(&name)
        );
        assert_eq!(
            task(&s, n)["stdout_bytes"],
            whole,
            "{name}: what the task wrote"
        );
    }
    // The joblog lost lines but holds no torn one; the last task's line came after the
    // disk had room again.
    let rows = joblog(&out);
    assert!(rows.iter().all(|r| r.len() == 9), "{rows:?}");
    assert!(
        rows.iter().any(|r| r[0] == (FILLERS + 1).to_string()),
        "{rows:?}"
    );
    // trace.json is whole unless listed; no temporary file is left.
    if !lost.contains("trace.json") {
        let trace = fs::read_to_string(out.join("trace.json")).expect("trace.json");
        serde_json::from_str::<serde_json::Value>(&trace).expect("trace.json is JSON");
    }
    assert!(no_temporary_files(&out));
}

fn no_temporary_files(run: &Path) -> bool {
    fs::read_dir(run).expect("run dir").all(|e| {
        !e.expect("entry")
            .file_name()
            .to_string_lossy()
            .ends_with(".tmp")
    })
}
