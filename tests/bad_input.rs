//! Bad input: one clear sentence with the location, exit code 2, never a panic.

mod common;

use common::*;

fn one_error_line(o: &std::process::Output) -> String {
    assert_eq!(o.status.code(), Some(2), "{}", stderr(o));
    let err = stderr(o);
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    lines[0].to_string()
}

#[test]
fn malformed_manifest_names_file_line_and_column() {
    let dir = task_dir("name = \"x\"\n[pool\nworkers = 2\n");
    let line = one_error_line(&run(&["run", dir.path().to_str().expect("utf8")]));
    assert!(line.contains("poolscope.toml:2:"), "{line}");
}

#[test]
fn unknown_key_is_an_error_with_the_expected_keys() {
    let dir = task_dir("[pool]\nworkers = 2\nwokers = 3\n");
    let line = one_error_line(&run(&["run", dir.path().to_str().expect("utf8")]));
    assert!(line.contains("poolscope.toml:3:1"), "{line}");
    assert!(
        line.contains("wokers") && line.contains("workers"),
        "{line}"
    );
}

#[test]
fn bad_value_names_its_line() {
    let dir = task_dir("[pool]\nworkers = 2\ntimeout = \"soon\"\n\n[[task]]\ncmd = [\"true\"]\n");
    let line = one_error_line(&run(&["run", dir.path().to_str().expect("utf8")]));
    assert!(line.contains("poolscope.toml:3:"), "{line}");
    assert!(line.contains("30s"), "{line}");
}

#[test]
fn values_with_line_breaks_are_shown_on_one_line() {
    let long = "x".repeat(5000);
    let cases = [
        (
            "[[task]]\ncmd = [\"true\"]\ncwd = \"a\\nb\"\n",
            "`cwd = \"a\\nb\"`",
        ),
        (
            "[[task]]\ncmd = [\"true\"]\ncwd = \"\"\"\nsecond\nthird\"\"\"\n",
            "`cwd = \"second\\nthird\"`",
        ),
        (
            "[pool]\nhalt = \"a\\nb\"\n[[task]]\ncmd = [\"true\"]\n",
            "`a\\nb` is not a halt mode",
        ),
        (
            "[pool]\norder = \"a\\r\\nb\"\n[[task]]\ncmd = [\"true\"]\n",
            "`a\\r\\nb` is not an order",
        ),
        (
            "[pool]\ntimeout = \"a\\nb\"\n[[task]]\ncmd = [\"true\"]\n",
            "`a\\nb` is not a duration",
        ),
        (
            "[worker]\nbuiltin = \"a\\nb\"\n[each]\nrange = [1, 2]\n",
            "no built-in kernel `a\\nb`",
        ),
        (
            "[worker]\npython = \"a\\nb\"\n[each]\nrange = [1, 2]\n",
            "`a\\nb` does not name a Python function",
        ),
        (
            "[worker]\npython = \"a\\nb.py:f\"\n[each]\nrange = [1, 2]\n",
            "names a\\nb.py, which is not a file",
        ),
        (
            "[each]\ninputs = \"[\\n\"\ncmd = [\"echo\", \"{}\"]\n",
            "`inputs = \"[\\n\"` is not a valid glob",
        ),
        ("[pool]\n\"a\\nb\" = 1\n", "unknown field `a\\nb`"),
        ("\"\\u001b[2J\" = 1\n", "unknown field `\\x1b[2J`"),
    ];
    for (manifest, shown) in cases {
        let dir = task_dir(manifest);
        let line = one_error_line(&run(&[
            "run",
            dir.path().to_str().expect("utf8"),
            "--dry-run",
        ]));
        assert!(line.contains(shown), "{manifest}\n→ {line}");
    }
    let dir = task_dir(&format!("[[task]]\ncmd = [\"true\"]\ncwd = \"{long}\"\n"));
    let line = one_error_line(&run(&[
        "run",
        dir.path().to_str().expect("utf8"),
        "--dry-run",
    ]));
    assert!(
        line.contains(&format!("`cwd = \"{}…\"`", &long[..60])),
        "{line}"
    );
}

#[test]
fn task_without_command_is_located() {
    let dir = task_dir("[[task]]\nname = \"a\"\ncmd = [\"true\"]\n\n[[task]]\nname = \"b\"\n");
    let line = one_error_line(&run(&["run", dir.path().to_str().expect("utf8")]));
    assert!(line.contains("poolscope.toml:5:"), "{line}");
    assert!(line.contains("needs `cmd"), "{line}");
}

#[test]
fn each_inputs_must_be_used() {
    let dir = task_dir("[each]\ninputs = [\"a\", \"b\"]\ncmd = [\"echo\"]\n");
    let line = one_error_line(&run(&["run", dir.path().to_str().expect("utf8")]));
    assert!(line.contains("never uses them"), "{line}");
}

#[test]
fn missing_directory() {
    let line = one_error_line(&run(&["run", "/no/such/poolscope/dir"]));
    assert!(
        line.contains("/no/such/poolscope/dir") && line.contains("does not exist"),
        "{line}"
    );
}

#[test]
fn a_file_with_a_slash_is_a_file_not_a_missing_directory() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, "hello").expect("write");
    let given = format!("{}/", file.display());
    let line = one_error_line(&run(&["run", &given]));
    assert!(
        line.contains(&format!(
            "`{given}` ends in `/`, but `{}` is a file",
            file.display()
        )),
        "{line}"
    );
    let inside = format!("{}/tasks", file.display());
    let line = one_error_line(&run(&["run", &inside]));
    assert!(
        line.contains("is not a directory") && !line.contains("does not exist"),
        "{line}"
    );
}

#[test]
fn a_link_that_loops_is_named_so() {
    let dir = tempfile::tempdir().expect("tmp");
    let link = dir.path().join("loop");
    std::os::unix::fs::symlink(&link, &link).expect("symlink");
    for given in [link.clone(), link.join("tasks")] {
        let given = given.to_str().expect("utf8");
        let line = one_error_line(&run(&["run", given]));
        assert!(
            line.contains(&format!(
                "`{given}` leads through a symbolic link that loops"
            )),
            "{line}"
        );
    }
}

#[test]
fn empty_directory() {
    let dir = tempfile::tempdir().expect("tmp");
    let line = one_error_line(&run(&["run", dir.path().to_str().expect("utf8")]));
    assert!(
        line.contains("has no task") && line.contains("empty"),
        "{line}"
    );
}

#[test]
fn directory_of_data_files_lists_what_it_looked_at() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("notes.txt"), "hello").expect("write");
    let line = one_error_line(&run(&["run", dir.path().to_str().expect("utf8")]));
    assert!(
        line.contains("notes.txt (not executable and has no #! line)"),
        "{line}"
    );
}

#[test]
fn bad_flag_value() {
    let o = run(&["run", ".", "--halt", "later"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not a halt mode"), "{}", stderr(&o));
}

#[test]
fn unwritable_run_directory() {
    let dir = task_dir("[[task]]\ncmd = [\"true\"]\n");
    let file = dir.path().join("poolscope.toml");
    let line = one_error_line(&run(&[
        "run",
        dir.path().to_str().expect("utf8"),
        "--out",
        file.join("run").to_str().expect("utf8"),
    ]));
    assert!(line.contains("cannot create the run directory"), "{line}");
}

#[test]
fn worker_mistakes_are_located() {
    let cases: [(&str, &str, &str); 5] = [
        (
            "[worker]\nbuiltin = \"nop\"\n[each]\nrange = [1, 3]\n",
            "poolscope.toml:2:",
            "noop, sleep, primes, spin",
        ),
        (
            "[worker]\nbuiltin = \"noop\"\npython = \"w.py:f\"\n[each]\nrange = [1, 3]\n",
            "poolscope.toml:1:",
            "exactly one of",
        ),
        (
            "[worker]\npython = \"missing.py:f\"\n[each]\nrange = [1, 3]\n",
            "poolscope.toml:2:",
            "not a file",
        ),
        (
            "[worker]\nbuiltin = \"noop\"\n\n[[task]]\ncmd = [\"true\"]\n",
            "poolscope.toml:4:",
            "list the items in [each]",
        ),
        (
            "[worker]\nbuiltin = \"noop\"\ninit = \"w.py:setup\"\n[each]\nrange = [1, 3]\n",
            "poolscope.toml:3:",
            "for Python workers",
        ),
    ];
    for (manifest, at, hint) in cases {
        let dir = task_dir(manifest);
        let line = one_error_line(&run(&["run", dir.path().to_str().expect("utf8")]));
        assert!(
            line.contains(at) && line.contains(hint),
            "{manifest}\n→ {line}"
        );
    }
}

#[test]
fn durations_longer_than_a_year_are_refused_at_their_key() {
    let values = [
        "1e19",
        "\"500000000000y\"",
        "18446744073709551615",
        "31557601",
        "\"367 days\"",
    ];
    for value in values {
        let manifests = [
            format!("[pool]\ntimeout = {value}\n[[task]]\ncmd = [\"true\"]\n"),
            format!("[[task]]\ncmd = [\"true\"]\ntimeout = {value}\n"),
            format!("[each]\nrange = [1, 2]\ntimeout = {value}\ncmd = [\"true\"]\n"),
            format!("[worker]\nbuiltin = \"noop\"\ntimeout = {value}\n[each]\nrange = [1, 2]\n"),
        ];
        for (manifest, at) in manifests
            .iter()
            .zip([":2:11: ", ":3:11: ", ":3:11: ", ":3:11: "])
        {
            let dir = task_dir(manifest);
            let path = dir.path().to_str().expect("utf8");
            for o in [run(&["run", path, "--dry-run"]), run(&["run", path])] {
                let line = one_error_line(&o);
                assert!(
                    line.contains(&format!("poolscope.toml{at}")) && line.contains("too long"),
                    "{manifest}\n→ {line}"
                );
            }
            assert!(!dir.path().join(".poolscope").exists(), "nothing ran");
        }
    }
}

#[test]
fn a_timeout_flag_longer_than_a_year_is_refused() {
    let dir = task_dir("[[task]]\ncmd = [\"true\"]\n");
    let path = dir.path().to_str().expect("utf8");
    for value in ["1e19", "500000000000y", "18446744073709551615", "-1", "nan"] {
        let o = run(&["run", path, "--dry-run", &format!("--timeout={value}")]);
        assert_eq!(o.status.code(), Some(2), "{value}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.starts_with("error: ") && err.contains("--timeout") && !err.contains("panicked"),
            "{value}: {err}"
        );
    }
}

#[test]
fn a_timeout_of_a_year_runs() {
    let dir = task_dir(
        "[pool]\ntimeout = \"1y\"\n[worker]\nbuiltin = \"noop\"\ntimeout = 31557600\n[each]\nrange = [1, 3]\n",
    );
    let out = dir.path().join("run");
    let o = run_into(dir.path(), &out, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(summary(&out)["totals"]["ok"], 3);
}

#[test]
fn worker_counts_past_the_limit_are_refused() {
    for workers in ["4097", "4294967296", "9223372036854775807"] {
        let manifest = format!(
            "[pool]\nworkers = {workers}\n[worker]\nbuiltin = \"noop\"\n[each]\nrange = [1, 3]\n"
        );
        let dir = task_dir(&manifest);
        let path = dir.path().to_str().expect("utf8");
        for o in [run(&["run", path, "--dry-run"]), run(&["run", path])] {
            let line = one_error_line(&o);
            assert!(
                line.contains("poolscope.toml:2:11: ") && line.contains("4096"),
                "{workers}: {line}"
            );
        }
        for args in [
            vec!["run", path, "--dry-run", "-j", workers],
            vec!["run", path, "-j", workers],
            vec!["bench", path, "--workers", workers],
        ] {
            let o = run(&args);
            assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
            let err = stderr(&o);
            assert!(
                err.starts_with("error: ")
                    && err.contains("--workers")
                    && !err.contains("panicked"),
                "{args:?}: {err}"
            );
        }
    }
    let dir = task_dir("[[task]]\ncmd = [\"true\"]\n");
    let path = dir.path().to_str().expect("utf8");
    let o = run(&["bench", path, "--workers", "1..=100000000000"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn retries_past_the_limit_are_refused() {
    for retries in ["101", "4294967295", "18446744073709551615"] {
        let dir = task_dir(&format!(
            "[pool]\nretries = {retries}\n[[task]]\ncmd = [\"false\"]\n"
        ));
        let path = dir.path().to_str().expect("utf8");
        let line = one_error_line(&run(&["run", path]));
        assert!(
            line.contains("poolscope.toml:2:11: ") && line.contains("100 retries"),
            "{retries}: {line}"
        );
        let o = run(&["run", path, "--retries", retries]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains("--retries"), "{}", stderr(&o));
    }
}

#[test]
fn ranges_of_more_than_a_million_tasks_are_refused_at_their_key() {
    for range in [
        "[1, 1000001]",
        "[1, 10000000000]",
        "[-9223372036854775808, 9223372036854775807]",
    ] {
        for manifest in [
            format!("[each]\nrange = {range}\ncmd = [\"echo\", \"{{}}\"]\n"),
            format!("[worker]\nbuiltin = \"noop\"\n[each]\nrange = {range}\n"),
        ] {
            let dir = task_dir(&manifest);
            let path = dir.path().to_str().expect("utf8");
            let line = one_error_line(&run(&["run", path, "--dry-run"]));
            let at = if manifest.starts_with("[each]") {
                ":2:9: "
            } else {
                ":4:9: "
            };
            assert!(
                line.contains(&format!("poolscope.toml{at}")) && line.contains("1000000 tasks"),
                "{manifest}\n→ {line}"
            );
        }
    }
}

#[test]
fn a_range_is_two_numbers() {
    for (range, count) in [("[1, 2, 3]", 3), ("[1]", 1), ("[]", 0)] {
        let dir = task_dir(&format!(
            "[each]\nrange = {range}\ncmd = [\"echo\", \"{{}}\"]\n"
        ));
        let line = one_error_line(&run(&[
            "run",
            dir.path().to_str().expect("utf8"),
            "--dry-run",
        ]));
        assert!(
            line.contains("poolscope.toml:2:9: ")
                && line.contains(&format!(
                    "`range` takes two numbers, [first, last], and this one has {count}"
                )),
            "{range}: {line}"
        );
    }
}

#[test]
fn counts_written_as_decimals_or_exponents_are_refused_at_their_key() {
    for (manifest, at, says) in [
        (
            "[pool]\nworkers = 1e9\n[[task]]\ncmd = [\"true\"]\n",
            "poolscope.toml:2:11: ",
            "`workers` is a whole number from 1 to 4096",
        ),
        (
            "[pool]\nretries = 2.5\n[[task]]\ncmd = [\"true\"]\n",
            "poolscope.toml:2:11: ",
            "`retries` is a whole number from 0 to 100",
        ),
        (
            "[each]\nrange = [1, 1e10]\ncmd = [\"echo\", \"{}\"]\n",
            "poolscope.toml:2:9: ",
            "`range` takes two whole numbers",
        ),
    ] {
        let dir = task_dir(manifest);
        let line = one_error_line(&run(&[
            "run",
            dir.path().to_str().expect("utf8"),
            "--dry-run",
        ]));
        assert!(
            line.contains(at) && line.contains(says),
            "{manifest}: {line}"
        );
    }
    let dir = task_dir("[[task]]\ncmd = [\"true\"]\n");
    let o = run(&["run", dir.path().to_str().expect("utf8"), "-j", "1e9"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.starts_with("error: ") && err.contains("--workers") && !err.contains("panicked"),
        "{err}"
    );
}

#[test]
fn more_than_a_million_tasks_in_all_are_refused() {
    let dir = task_dir(
        "[[task]]\ncmd = [\"true\"]\n[each]\nrange = [1, 1000000]\ncmd = [\"echo\", \"{}\"]\n",
    );
    let line = one_error_line(&run(&[
        "run",
        dir.path().to_str().expect("utf8"),
        "--dry-run",
    ]));
    assert!(
        line.contains("has 1000001 tasks, more than poolscope's 1000000"),
        "{line}"
    );
}

/// A Python worker's task directory: `manifest`, and `work.py` holding `python`, whose
/// top level appends `POOLSCOPE_SLOT` (or `check`, without one) to the file `imports`.
fn python_dir(manifest: &str, python: &str) -> tempfile::TempDir {
    let dir = task_dir(manifest);
    let logged = format!(
        "import os\nwith open('imports', 'a') as log:\n    log.write(os.environ.get('POOLSCOPE_SLOT', 'check') + '\\n')\n{python}"
    );
    std::fs::write(dir.path().join("work.py"), logged).expect("write work.py");
    dir
}

/// Who imported `work.py` (see [`python_dir`]): `check`, or a slot's number.
fn imports(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("imports"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The error of a load that failed on `[worker]`: exit 2, the sentence on the first line,
/// the traceback on the lines after it.
fn worker_load_error(o: &std::process::Output) -> (String, Vec<String>) {
    assert_eq!(o.status.code(), Some(2), "{}", stderr(o));
    let err = stderr(o);
    assert!(!err.contains("panicked"), "{err}");
    let mut lines = err.lines().map(str::to_string);
    let sentence = lines.next().unwrap_or_default();
    assert!(sentence.starts_with("error: "), "{err}");
    (sentence, lines.collect())
}

#[test]
fn a_misspelt_worker_function_fails_the_load() {
    let dir = python_dir(
        "[pool]\nworkers = 2\n[worker]\npython = \"work.py:proc\"\n[each]\nrange = [1, 200]\n",
        "def process(x):\n    return x\n",
    );
    let path = dir.path().to_str().expect("utf8");
    let (sentence, traceback) = worker_load_error(&run(&["run", path, "--dry-run"]));
    assert!(sentence.contains("poolscope.toml:4:10: "), "{sentence}");
    assert!(
        sentence.contains("`python = \"work.py:proc\"` names a function work.py does not have"),
        "{sentence}"
    );
    assert!(sentence.contains("did you mean `process`?"), "{sentence}");
    assert_eq!(
        traceback,
        ["AttributeError: work.py has no attribute 'proc'"],
        "what Python said follows"
    );
    assert_eq!(
        imports(dir.path()),
        ["check"],
        "one interpreter for the load"
    );

    // `run` stops at the same place, before the run: no run directory, no worker.
    let out = dir.path().join("run");
    let o = run_into(dir.path(), &out, &[]);
    let (again, _) = worker_load_error(&o);
    assert_eq!(again, sentence);
    assert!(!out.exists(), "nothing ran");
    assert_eq!(imports(dir.path()), ["check", "check"], "no worker started");
}

#[test]
fn a_worker_module_whose_import_fails_fails_the_load_with_its_traceback() {
    let dir = python_dir(
        "[pool]\nworkers = 1\n[worker]\npython = \"work.py:f\"\n[each]\nrange = [1, 120]\n",
        "import no_such_module\ndef f(x):\n    return x\n",
    );
    let out = dir.path().join("run");
    for o in [
        run(&["run", dir.path().to_str().expect("utf8"), "--dry-run"]),
        run_into(dir.path(), &out, &[]),
    ] {
        let (sentence, traceback) = worker_load_error(&o);
        assert!(sentence.contains("poolscope.toml:4:10: "), "{sentence}");
        assert!(
            sentence.contains(
                "`python = \"work.py:f\"` cannot be loaded: importing work.py raised ModuleNotFoundError: No module named 'no_such_module'; install what work.py imports"
            ),
            "{sentence}"
        );
        assert_eq!(
            traceback.first().map(String::as_str),
            Some("Traceback (most recent call last):")
        );
        assert!(
            traceback
                .iter()
                .any(|l| l.contains("work.py\", line 4, in <module>")),
            "the user's frame, where the import is: {traceback:?}"
        );
        assert!(
            !traceback
                .iter()
                .any(|l| l.contains("<string>") || l.contains("<frozen")),
            "without the adapter's and importlib's frames: {traceback:?}"
        );
        assert_eq!(
            traceback.last().map(String::as_str),
            Some("ModuleNotFoundError: No module named 'no_such_module'")
        );
    }
    assert!(!out.exists(), "nothing ran");
    assert_eq!(imports(dir.path()), ["check", "check"], "no worker started");
}

#[test]
fn a_misspelt_init_fails_the_load_at_its_key() {
    let dir = python_dir(
        "[worker]\npython = \"work.py:f\"\ninit = \"work.py:setpu\"\n[each]\nrange = [1, 3]\n",
        "def setup():\n    raise SystemExit('init is not called by the check')\ndef f(x):\n    return x\n",
    );
    let (sentence, _) = worker_load_error(&run(&[
        "run",
        dir.path().to_str().expect("utf8"),
        "--dry-run",
    ]));
    assert!(sentence.contains("poolscope.toml:3:8: "), "{sentence}");
    assert!(
        sentence.contains("`init = \"work.py:setpu\"` names a function work.py does not have; did you mean `setup`?"),
        "{sentence}"
    );
}

#[test]
fn a_worker_module_that_loads_passes_the_check_without_its_init() {
    let dir = python_dir(
        "[worker]\npython = \"work.py:f\"\ninit = \"work.py:setup\"\n[each]\nrange = [1, 3]\n",
        "print('imported')\ndef setup():\n    raise SystemExit('init is not called by the check')\ndef f(x):\n    return x\n",
    );
    let o = run(&["run", dir.path().to_str().expect("utf8"), "--dry-run"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        !stdout(&o).contains("imported"),
        "what the module prints at import is not the report's: {}",
        stdout(&o)
    );
    assert_eq!(imports(dir.path()), ["check"]);
}
