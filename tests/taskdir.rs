//! Loading task directories: discovery without a manifest, `[[task]]`, `[each]` over a
//! glob, a list and a range, and the load report.

mod common;

use std::fs;

use common::*;
use poolscope::task::Program;
use poolscope::taskdir;

#[test]
fn without_a_manifest_executables_and_shebang_files_are_tasks() {
    let dir = tempfile::tempdir().expect("tmp");
    script(&dir.path().join("b-run.sh"), "#!/bin/sh\necho b\n");
    fs::write(
        dir.path().join("a-script.py"),
        "#!/usr/bin/env python3 -u\nprint(1)\n",
    )
    .expect("write");
    fs::write(dir.path().join("data.csv"), "1,2\n").expect("write");
    fs::create_dir(dir.path().join("sub")).expect("mkdir");
    fs::write(dir.path().join(".hidden"), "#!/bin/sh\n").expect("write");
    let loaded = taskdir::load(dir.path()).expect("loads");
    let names: Vec<&str> = loaded.tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["a-script.py", "b-run.sh"]);
    let shebang = loaded.tasks[0].argv(Some(1));
    assert_eq!(shebang[..2], ["/usr/bin/env", "python3 -u"]);
    assert!(shebang[2].to_string_lossy().ends_with("a-script.py"));
    let ignored: Vec<(&str, &str)> = loaded
        .ignored
        .iter()
        .map(|i| (i.name.as_str(), i.reason.as_str()))
        .collect();
    assert_eq!(
        ignored,
        [
            (".hidden", "hidden"),
            ("data.csv", "not executable and has no #! line"),
            ("sub", "a directory"),
        ]
    );
    assert_eq!(loaded.manifest, None);
}

#[test]
fn discovered_file_names_are_not_templates() {
    let dir = tempfile::tempdir().expect("tmp");
    script(&dir.path().join("{}.sh"), "#!/bin/sh\necho ran\n");
    let loaded = taskdir::load(dir.path()).expect("loads");
    assert!(matches!(loaded.tasks[0].program, Program::Literal(_)));
    assert!(
        loaded.tasks[0].argv(Some(1))[0]
            .to_string_lossy()
            .ends_with("{}.sh")
    );
}

#[test]
fn each_over_a_glob_is_sorted_and_relative() {
    let dir = task_dir(
        "[each]\ninputs = \"in/*.txt\"\ncmd = [\"cat\", \"{}\"]\ncwd = \"in\"\ntimeout = \"2m\"\n",
    );
    fs::create_dir(dir.path().join("in")).expect("mkdir");
    for name in ["b.txt", "a.txt", "c.dat"] {
        fs::write(dir.path().join("in").join(name), "x").expect("write");
    }
    let loaded = taskdir::load(dir.path()).expect("loads");
    let inputs: Vec<&str> = loaded
        .tasks
        .iter()
        .map(|t| t.input.to_str().expect("utf8"))
        .collect();
    assert_eq!(inputs, ["in/a.txt", "in/b.txt"]);
    assert_eq!(loaded.tasks[1].seq, 2);
    assert!(loaded.tasks[0].cwd.ends_with("in"));
    assert_eq!(
        loaded.tasks[0].timeout,
        Some(std::time::Duration::from_secs(120))
    );
}

#[test]
fn listed_tasks_come_before_each_and_keep_their_settings() {
    let dir = task_dir(
        "name = \"demo\"\n[pool]\nworkers = 3\nhalt = \"soon\"\n\n[[task]]\nname = \"prep\"\nsh = \"make -C {} all\"\nenv = { A = \"1\" }\n\n[each]\ninputs = [\"x y\", \"z\"]\nsh = \"echo {}\"\n",
    );
    let loaded = taskdir::load(dir.path()).expect("loads");
    assert_eq!(loaded.name, "demo");
    assert_eq!(loaded.pool.workers, Some(3));
    assert_eq!(loaded.pool.halt, Some(poolscope::config::Halt::Soon));
    assert_eq!(loaded.tasks.len(), 3);
    assert_eq!(loaded.tasks[0].name, "prep");
    assert_eq!(loaded.tasks[0].env, [("A".to_string(), "1".to_string())]);
    assert_eq!(loaded.tasks[1].command_line(Some(1)), "echo 'x y'");
}

#[test]
fn range_inputs_are_numbers() {
    let dir = task_dir("[each]\nrange = [3, 5]\ncmd = [\"echo\", \"{}\", \"{#}\"]\n");
    let loaded = taskdir::load(dir.path()).expect("loads");
    let argv: Vec<Vec<std::ffi::OsString>> = loaded.tasks.iter().map(|t| t.argv(Some(1))).collect();
    assert_eq!(argv[0], ["echo", "3", "1"]);
    assert_eq!(argv[2], ["echo", "5", "3"]);
}

#[test]
fn a_glob_that_matches_nothing_explains_the_empty_directory() {
    let dir = task_dir("[each]\ninputs = \"photos/*.jpg\"\ncmd = [\"convert\", \"{}\"]\n");
    let err = taskdir::load(dir.path()).expect_err("no task").to_string();
    assert!(
        err.contains("photos/*.jpg") && err.contains("matched no file"),
        "{err}"
    );
}

#[test]
fn a_missing_cwd_is_located() {
    let dir = task_dir("[[task]]\ncmd = [\"true\"]\ncwd = \"nowhere\"\n");
    let err = taskdir::load(dir.path()).expect_err("bad cwd").to_string();
    assert!(
        err.contains("poolscope.toml:3:7") && err.contains("nowhere"),
        "{err}"
    );
}

#[test]
fn both_inputs_and_range_is_an_error() {
    let dir = task_dir("[each]\ninputs = [\"a\"]\nrange = [1, 2]\ncmd = [\"echo\", \"{}\"]\n");
    let err = taskdir::load(dir.path())
        .expect_err("ambiguous")
        .to_string();
    assert!(err.contains(":3:") && err.contains("keep one"), "{err}");
}

#[test]
fn globs_follow_the_shell_braces_and_dotfiles() {
    let dir = task_dir("[each]\ninputs = \"*.{jpg,png}\"\ncmd = [\"cat\", \"{}\"]\n");
    for name in ["b.png", "a.jpg", "c.gif", ".d.jpg", "e.jpg"] {
        fs::write(dir.path().join(name), "x").expect("write");
    }
    let loaded = taskdir::load(dir.path()).expect("loads");
    let inputs: Vec<&str> = loaded
        .tasks
        .iter()
        .map(|t| t.input.to_str().expect("utf8"))
        .collect();
    assert_eq!(inputs, ["a.jpg", "b.png", "e.jpg"]);
    fs::write(
        dir.path().join("poolscope.toml"),
        "[each]\ninputs = \"{.,}*.jpg\"\ncmd = [\"cat\", \"{}\"]\n",
    )
    .expect("write");
    let loaded = taskdir::load(dir.path()).expect("loads");
    let inputs: Vec<&str> = loaded
        .tasks
        .iter()
        .map(|t| t.input.to_str().expect("utf8"))
        .collect();
    assert_eq!(inputs, [".d.jpg", "a.jpg", "e.jpg"]);
}

#[test]
fn a_bad_glob_is_located() {
    let dir = task_dir("[each]\ninputs = \"photos/[a.jpg\"\ncmd = [\"cat\", \"{}\"]\n");
    let err = taskdir::load(dir.path()).expect_err("bad glob").to_string();
    assert!(
        err.contains("poolscope.toml:2:10")
            && err.contains("`inputs = \"photos/[a.jpg\"` is not a valid glob")
            && !err.contains('\n'),
        "{err}"
    );
}

/// `--dry-run` of `dir`, whose load report must not mention the records folder.
fn dry_run_without_records(dir: &std::path::Path) -> String {
    let o = run(&["run", dir.to_str().expect("utf8"), "--dry-run"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(
        !out.contains(".poolscope") && !err.contains(".poolscope"),
        "{out}{err}"
    );
    out
}

#[test]
fn the_records_folder_is_never_in_a_load_report() {
    let dir = task_dir("[each]\ninputs = \"*\"\ncmd = [\"test\", \"-e\", \"{}\"]\n");
    fs::write(dir.path().join(".keep"), "").expect("write");
    fs::write(dir.path().join("a.txt"), "").expect("write");
    let o = run(&["run", dir.path().to_str().expect("utf8")]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(dir.path().join(".poolscope/runs").is_dir());
    for (pattern, listed) in [
        ("*", &["a.txt", "poolscope.toml"][..]),
        (".*", &[".keep"][..]),
        ("**", &["a.txt", "poolscope.toml"][..]),
        ("{.,}*", &[".keep", "a.txt", "poolscope.toml"][..]),
    ] {
        fs::write(
            dir.path().join("poolscope.toml"),
            format!("[each]\ninputs = \"{pattern}\"\ncmd = [\"test\", \"-e\", \"{{}}\"]\n"),
        )
        .expect("write");
        let out = dry_run_without_records(dir.path());
        assert!(
            out.contains(&format!("{} tasks:", listed.len())),
            "{pattern}: {out}"
        );
        for name in listed {
            assert!(
                out.contains(&format!("$ test -e {name}")),
                "{pattern}: {out}"
            );
        }
    }

    let bare = tempfile::tempdir().expect("tmp");
    script(&bare.path().join("job.sh"), "#!/bin/sh\nexit 0\n");
    fs::write(bare.path().join(".hidden"), "").expect("write");
    let o = run(&["run", bare.path().to_str().expect("utf8")]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(bare.path().join(".poolscope/runs").is_dir());
    let out = dry_run_without_records(bare.path());
    assert!(
        out.contains("1 tasks:") && out.contains(".hidden — hidden"),
        "{out}"
    );
}
