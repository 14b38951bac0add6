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
fn a_python_worker_that_cannot_load_fails_its_items_with_the_reason() {
    let dir =
        task_dir("[pool]\nworkers = 1\n[worker]\npython = \"w.py:f\"\n[each]\nrange = [1, 2]\n");
    std::fs::write(dir.path().join("w.py"), "import no_such_module\n").expect("write");
    let out = dir.path().join("run");
    let o = run_into(dir.path(), &out, &[]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "tasks failed, poolscope did not: {}",
        stderr(&o)
    );
    let s = summary(&out);
    let t = task(&s, 1);
    assert_eq!(t["exit_code"], 1);
    let tail = t["stderr_tail"].as_str().expect("stderr");
    assert!(tail.contains("No module named 'no_such_module'"), "{tail}");
}
