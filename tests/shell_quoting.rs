//! A `sh` line's placeholders are quoted for the spot they sit in: hostile inputs and file
//! names reach the command exactly, as data, outside quotes, inside "..." and inside '...'.

mod common;

use std::fs;
use std::path::Path;

use common::*;

/// Values that run as code if quoted for the wrong spot. Each would create a file in the
/// task's working directory.
const PAYLOADS: &[&str] = &[
    "$(touch dollar)",
    "`touch backquote`",
    ";touch semicolon",
    "a|touch pipe",
    "a>redirected",
    "a&touch amp",
    "'",
    "\"",
    "\\",
    "x'; touch single; '",
    "x\"; touch double; \"",
    "\\\"$(touch escaped)\\\"",
    "'\"$(touch mixed)\"'",
    "two\nlines;touch newline",
    "$HOME",
    "${HOME}",
    "*",
    "~",
    "#not a comment",
    "a=b",
    "$'\\x41'",
    "\\$(touch bs)",
];

/// Prints the value as it arrived in each context, NUL-separated.
const ALL_CONTEXTS: &str = r#"printf '%s\0%s\0%s\0%s' {} "{}" '{}' "$(printf '%s' {})"; printf '\0%s' "$(printf '%s' "{}")""#;

fn toml_string(s: &str) -> String {
    let escaped = s
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    format!("\"{escaped}\"")
}

/// Run `manifest` in a task directory with an empty `marks/` working directory; the
/// summary, the run directory and what `marks/` holds after the run.
fn run_in_marks(manifest: &str, files: &[&str]) -> (serde_json::Value, tempfile::TempDir) {
    let dir = task_dir(manifest);
    fs::create_dir(dir.path().join("marks")).expect("marks");
    fs::create_dir(dir.path().join("in")).expect("in");
    for name in files {
        fs::write(dir.path().join("in").join(name), "x").expect("input file");
    }
    let out = tempfile::tempdir().expect("tmp");
    let o = run_into(dir.path(), out.path(), &[]);
    let left: Vec<String> = fs::read_dir(dir.path().join("marks"))
        .expect("marks")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(left.is_empty(), "an input ran as code: {left:?}");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    (summary(out.path()), out)
}

fn printed(out: &Path, seq: usize) -> String {
    fs::read_to_string(out.join(format!("outputs/{seq}.out"))).expect("task output")
}

#[test]
fn hostile_inputs_stay_data_in_every_quoting_context() {
    let list: Vec<String> = PAYLOADS.iter().map(|p| toml_string(p)).collect();
    let manifest = format!(
        "[each]\ninputs = [{}]\ncwd = \"marks\"\nsh = {}\n",
        list.join(", "),
        toml_string(ALL_CONTEXTS)
    );
    let (s, out) = run_in_marks(&manifest, &[]);
    assert_eq!(s["totals"]["ok"], PAYLOADS.len());
    for (i, payload) in PAYLOADS.iter().enumerate() {
        let expected = [*payload; 5].join("\0");
        assert_eq!(printed(out.path(), i + 1), expected, "{payload:?}");
    }
}

#[test]
fn hostile_file_names_stay_data_in_every_quoting_context() {
    let names: Vec<&str> = PAYLOADS
        .iter()
        .copied()
        .filter(|p| !p.contains('/'))
        .collect();
    let manifest = format!(
        "[each]\ninputs = \"in/*\"\ncwd = \"marks\"\nsh = {}\n",
        toml_string(&ALL_CONTEXTS.replace("{}", "{/}"))
    );
    let (s, out) = run_in_marks(&manifest, &names);
    assert_eq!(s["totals"]["ok"], names.len());
    let tasks = s["tasks"].as_array().expect("tasks");
    let mut seen: Vec<String> = Vec::new();
    for (i, t) in tasks.iter().enumerate() {
        let name = t["name"].as_str().expect("name");
        let file = name.strip_prefix("in/").expect("an input of in/");
        assert_eq!(printed(out.path(), i + 1), [file; 5].join("\0"), "{file:?}");
        seen.push(file.to_string());
    }
    seen.sort();
    let mut expected: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    expected.sort();
    assert_eq!(seen, expected, "every file ran once");
}

#[test]
fn a_placeholder_where_no_quoting_holds_is_refused_at_its_key() {
    for sh in [
        "echo `cat {}`",
        "echo ${x:-{}}",
        "echo $(( {} + 1 ))",
        "echo \\{}",
        "echo \"{}",
    ] {
        let dir = task_dir(&format!(
            "[each]\ninputs = [\"a\"]\ncwd = \".\"\nsh = {}\n",
            toml_string(sh)
        ));
        let o = run(&["run", dir.path().to_str().expect("utf8"), "--dry-run"]);
        assert_eq!(o.status.code(), Some(2), "{sh}: {}", stderr(&o));
        let err = stderr(&o);
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "{err}");
        assert!(lines[0].starts_with("error: "), "{err}");
        assert!(lines[0].contains("poolscope.toml:4:"), "{sh}: {err}");
        assert!(
            lines[0].contains("quotes each placeholder itself"),
            "{sh}: {err}"
        );
    }
}
