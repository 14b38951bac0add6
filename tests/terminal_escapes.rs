//! What tasks and file names hold reaches the terminal as text: control characters are
//! written out (`\x1b`), never obeyed, on a pipe and on a terminal alike.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::*;

/// Clipboard write (OSC 52), window title (OSC 0), clear screen, a carriage return and
/// an 8-bit CSI (U+009B), then a line break.
const PAYLOAD: &str = r"\033]52;c;SGk=\007\033]0;pwned\007\033[2J\r\302\233x\n";

/// A task directory without a manifest: one executable, its name full of escapes, that
/// writes them to stdout and stderr and fails.
fn hostile_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tmp");
    script(
        &dir.path().join("evil\x1b]0;title\x07\x1b[2J"),
        &format!("#!/bin/sh\nprintf '{PAYLOAD}'\nprintf '{PAYLOAD}' >&2\nexit 1\n"),
    );
    dir
}

/// The control characters of `bytes` that are not `\n` or `\t` (C1 ones as UTF-8).
fn raw_controls(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    text.char_indices()
        .filter(|(_, c)| c.is_control() && *c != '\n' && *c != '\t')
        .map(|(i, c)| format!("{c:?} at {i}"))
        .collect()
}

#[test]
fn task_text_on_a_pipe_has_its_control_characters_written_out() {
    let dir = hostile_dir();
    let out = tempfile::tempdir().expect("tmp");
    for extra in [&[][..], &["--dry-run"]] {
        let o = run_into(dir.path(), out.path(), extra);
        assert_eq!(
            o.status.code(),
            Some(i32::from(extra.is_empty())),
            "{}",
            stderr(&o)
        );
        assert_eq!(
            raw_controls(&o.stdout),
            Vec::<String>::new(),
            "stdout: {}",
            stdout(&o)
        );
        assert_eq!(
            raw_controls(&o.stderr),
            Vec::<String>::new(),
            "stderr: {}",
            stderr(&o)
        );
        assert!(
            stdout(&o).contains("evil\\x1b]0;title\\x07\\x1b[2J"),
            "{}",
            stdout(&o)
        );
    }
    let o = run_into(dir.path(), out.path(), &[]);
    assert!(
        stdout(&o).contains("\\x1b]52;c;SGk=\\x07\\x1b]0;pwned\\x07\\x1b[2J\\x0d\\u{9b}x"),
        "the failure's last stderr line is shown, escaped: {}",
        stdout(&o)
    );
    assert!(stderr(&o).contains("\\x1b]52;c;SGk="), "{}", stderr(&o));
}

#[test]
fn json_on_a_pipe_is_the_same_value_without_raw_controls() {
    let dir = task_dir("[[task]]\nname = \"a\\u001b[2J\\u009b\\u007f\"\nsh = \"exit 1\"\n");
    let out = tempfile::tempdir().expect("tmp");
    let o = run_into(dir.path(), out.path(), &["--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(
        raw_controls(&o.stdout),
        Vec::<String>::new(),
        "{}",
        stdout(&o)
    );
    let printed: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(printed, summary(out.path()));
    assert_eq!(
        summary(out.path())["tasks"][0]["name"],
        "a\u{1b}[2J\u{9b}\u{7f}"
    );
}

#[test]
fn an_error_naming_task_text_has_its_control_characters_written_out() {
    let dir = task_dir("[[task]]\ncmd = [\"true\"]\ncwd = \"\\u001b]0;x\\u0007\"\n");
    let o = run(&["run", dir.path().to_str().expect("utf8")]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(
        raw_controls(&o.stderr),
        Vec::<String>::new(),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("\\x1b]0;x\\x07"), "{}", stderr(&o));
}

/// On a terminal (a pty from `script`), the progress bar draws with its own escapes, but
/// nothing of the task's arrives raw: no OSC, no BEL, no clear screen, no 8-bit CSI.
#[test]
fn task_text_on_a_terminal_has_its_control_characters_written_out() {
    let dir = hostile_dir();
    let out = tempfile::tempdir().expect("tmp");
    let typescript = out.path().join("typescript");
    let line = format!(
        "{} run {} --out {}",
        env!("CARGO_BIN_EXE_poolscope"),
        shell_word(dir.path()),
        shell_word(&out.path().join("run"))
    );
    let status = Command::new("script")
        .args(["-q", "-e", "-c", &line])
        .arg(&typescript)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("script (util-linux) runs poolscope on a pty");
    assert_eq!(status.code(), Some(1));
    let seen = fs::read(&typescript).expect("typescript");
    let text = String::from_utf8_lossy(&seen);
    assert!(
        text.contains("\\x1b]52;c;SGk="),
        "the failure is shown: {text:?}"
    );
    for raw in ["\x1b]", "\x07", "\x1b[2J", "\u{9b}"] {
        assert!(
            !text.contains(raw),
            "{raw:?} reached the terminal: {text:?}"
        );
    }
}

fn shell_word(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', "'\\''"))
}
