//! The manifest fuzzer: thousands of hostile manifests, seeded and deterministic. Each one
//! must load, or be refused with one sentence (exit 2 from the binary); none may panic or
//! take more than 10 s. Two sources: mutations of the bundled examples' manifests, and
//! manifests built from a grammar of the keys with hostile values (huge, negative,
//! fractional, of the wrong type, huge strings, unicode, control characters, brackets
//! missing or extra, keys and tables twice). All go through the library's
//! `taskdir::load` in-process; every [`BINARY_EVERY`]th also through `poolscope run
//! --dry-run`, which must agree.
//!
//! Python's check of a `[worker]` starts an interpreter (about 0.3 s here), so the
//! directories loaded in-process hold no `.py` file and such loads stop before it; a few
//! mutations of the Python examples go through the binary with their `work.py`.

mod common;
#[path = "manifest_fuzz/grammar.rs"]
mod grammar;

use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use grammar::{Rng, SKELETONS, grammar_manifest, mutate, retouched};
use poolscope::error::LoadError;

/// Mutations of each bundled example.
const EXAMPLE_MUTATIONS: usize = 250;
/// Manifests built from the grammar.
const GRAMMAR_MANIFESTS: usize = 2000;
/// One manifest in this many also goes through the binary.
const BINARY_EVERY: usize = 16;
/// One grammar-built manifest in this many that loads is also run for real.
const RUN_EVERY: usize = 6;
/// Mutations of the Python examples that go through the binary with their `work.py`.
const PYTHON_MUTATIONS: usize = 12;
/// A load or a run of the binary longer than this is a hang.
const HANG: Duration = Duration::from_secs(10);
/// A sentence longer than this is no sentence.
const SENTENCE_CHARS: usize = 1500;

/// How a load went.
#[derive(Debug, PartialEq)]
enum Loaded {
    Ok,
    Refused,
}

/// What went wrong with one manifest.
type Fault = String;

/// Load `dir` in-process: it loads, or it is refused with one sentence (a Python function
/// that cannot load adds its traceback after it); no panic, no hang.
fn load_in_process(dir: &Path) -> Result<Loaded, Fault> {
    let (tx, rx) = mpsc::channel();
    let owned = dir.to_path_buf();
    std::thread::Builder::new()
        .name("fuzz-load".to_string())
        .spawn(move || {
            let loaded = std::panic::catch_unwind(|| poolscope::taskdir::load(&owned));
            let _ = tx.send(loaded.map(|r| r.map(|_| ()).map_err(|e| sentence_of(&e))));
        })
        .expect("a thread");
    match rx.recv_timeout(HANG) {
        Ok(Ok(Ok(()))) => Ok(Loaded::Ok),
        Ok(Ok(Err(sentence))) => check_sentence(&sentence).map(|()| Loaded::Refused),
        Ok(Err(_)) => Err("the load panicked".to_string()),
        Err(_) => Err(format!("the load took more than {HANG:?}")),
    }
}

/// The sentence of a load error: its first line when a traceback follows it.
fn sentence_of(e: &LoadError) -> String {
    let text = e.to_string();
    match e {
        LoadError::Worker { .. } => text.lines().next().unwrap_or_default().to_string(),
        _ => text,
    }
}

fn check_sentence(sentence: &str) -> Result<(), Fault> {
    if sentence.trim().is_empty() || sentence.contains(['\n', '\r']) {
        return Err(format!("not one line: {sentence:?}"));
    }
    if sentence.chars().count() > SENTENCE_CHARS {
        return Err(format!("{} characters", sentence.chars().count()));
    }
    if sentence.chars().any(char::is_control) {
        return Err(format!("control characters in {sentence:?}"));
    }
    Ok(())
}

/// `poolscope run DIR --dry-run`: exit 0, or 2 with one `error:` line (a traceback may
/// follow a `[worker]` sentence); never a panic, an abort or a hang.
fn load_with_binary(dir: &Path, manifest: &[u8]) -> Result<Loaded, Fault> {
    let err_path = dir.join("stderr.txt");
    let mut child = app()
        .arg("run")
        .arg(dir)
        .arg("--dry-run")
        .stdout(Stdio::null())
        .stderr(fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("poolscope runs");
    let mut status = None;
    let ended = wait_for(HANG, || {
        status = child.try_wait().expect("wait");
        status.is_some()
    });
    if !ended {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("`run --dry-run` took more than {HANG:?}"));
    }
    let err = fs::read_to_string(&err_path).unwrap_or_default();
    let first = err.lines().next().unwrap_or_default();
    let code = status.and_then(|s| s.code());
    if !matches!(code, Some(0 | 2)) || err.contains("panicked") {
        return Err(format!("`run --dry-run` ended with {status:?}: {first}"));
    }
    if code == Some(0) {
        return Ok(Loaded::Ok);
    }
    if !first.starts_with("error: ") {
        return Err(format!("stderr is not an error line: {err:?}"));
    }
    let python = String::from_utf8_lossy(manifest).contains("python");
    if err.lines().count() > 1 && !(python && first.contains("[worker]")) {
        return Err(format!("more than one line: {err:?}"));
    }
    check_sentence(first).map(|()| Loaded::Refused)
}

/// `poolscope run DIR --out OUT` of a manifest that loads: it ends with 0 or 1 (tasks
/// may fail) and a valid `summary.json`; never a panic, an abort or a hang.
fn run_for_real(dir: &Path) -> Result<(), Fault> {
    let out = tempfile::tempdir().expect("tmp");
    let err_path = out.path().join("stderr.txt");
    let records = out.path().join("run");
    let mut child = app()
        .arg("run")
        .arg(dir)
        .arg("--out")
        .arg(&records)
        .stdout(Stdio::null())
        .stderr(fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("poolscope runs");
    let mut status = None;
    let ended = wait_for(HANG, || {
        status = child.try_wait().expect("wait");
        status.is_some()
    });
    if !ended {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("`run` took more than {HANG:?}"));
    }
    let err = fs::read_to_string(&err_path).unwrap_or_default();
    let code = status.and_then(|s| s.code());
    if !matches!(code, Some(0 | 1)) || err.contains("panicked") {
        let last = err.lines().last().unwrap_or_default();
        return Err(format!("`run` ended with {status:?}: {last}"));
    }
    let summary = fs::read_to_string(records.join("summary.json")).unwrap_or_default();
    if serde_json::from_str::<serde_json::Value>(&summary).is_err() {
        return Err("`run` left no valid summary.json".to_string());
    }
    Ok(())
}

/// A copy of the bundled example `name` (its `.py` files only if `python`), as a task
/// directory to load mutations of its manifest in. Its manifest's ranges are cut to at
/// most 100 numbers, so that a load is cheap.
fn example_copy(name: &str, python: bool) -> (tempfile::TempDir, Vec<u8>) {
    let copy = tempfile::tempdir().expect("tmp");
    copy_tree(&example(name), copy.path(), python);
    let manifest = fs::read_to_string(copy.path().join("poolscope.toml")).expect("manifest");
    let manifest = manifest.replace("range = [1, 100000]", "range = [1, 100]");
    (copy, manifest.into_bytes())
}

fn copy_tree(from: &Path, to: &Path, python: bool) {
    for entry in fs::read_dir(from).expect("read example") {
        let entry = entry.expect("entry");
        let path = entry.path();
        let target = to.join(entry.file_name());
        if path.is_dir() {
            fs::create_dir_all(&target).expect("mkdir");
            copy_tree(&path, &target, python);
        } else if python || path.extension().is_none_or(|e| e != "py") {
            fs::copy(&path, &target).expect("copy");
        }
    }
}

/// The directory grammar-built manifests load in: a few files, a folder, a worker.
fn grammar_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tmp");
    for file in ["a.txt", "b.jpg", "sub/c.txt"] {
        let path = dir.path().join(file);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(path, "x").expect("write");
    }
    script(
        &dir.path().join("worker"),
        "#!/bin/sh\necho '{\"ready\": true}' >&4\n",
    );
    script(&dir.path().join("sub/x"), "#!/bin/sh\n");
    dir
}

/// Every bundled example.
fn examples() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(example(""))
        .expect("examples")
        .filter_map(Result::ok)
        .filter(|e| e.path().join("poolscope.toml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[derive(Default)]
struct Tally {
    manifests: usize,
    loaded: usize,
    refused: usize,
    through_binary: usize,
    run: usize,
    /// The manifests that went wrong, with what went wrong.
    faults: Vec<(Fault, Vec<u8>)>,
}

impl Tally {
    /// Load `manifest` in `dir` in-process, and every so often with the binary too.
    fn try_manifest(&mut self, dir: &Path, manifest: &[u8]) -> Option<Loaded> {
        fs::write(dir.join("poolscope.toml"), manifest).expect("write manifest");
        self.manifests += 1;
        let loaded = match load_in_process(dir) {
            Ok(loaded) => loaded,
            Err(fault) => {
                self.faults.push((fault, manifest.to_vec()));
                return None;
            }
        };
        match loaded {
            Loaded::Ok => self.loaded += 1,
            Loaded::Refused => self.refused += 1,
        }
        if self.manifests.is_multiple_of(BINARY_EVERY) {
            self.through_binary += 1;
            match load_with_binary(dir, manifest) {
                Ok(by_binary) if by_binary == loaded => {}
                Ok(by_binary) => self.faults.push((
                    format!("the library says {loaded:?}, the binary {by_binary:?}"),
                    manifest.to_vec(),
                )),
                Err(fault) => self.faults.push((fault, manifest.to_vec())),
            }
        }
        Some(loaded)
    }

    /// Run `manifest`, which loads in `dir`, for real.
    fn run(&mut self, dir: &Path, manifest: &[u8]) {
        self.run += 1;
        if let Err(fault) = run_for_real(dir) {
            self.faults.push((fault, manifest.to_vec()));
        }
    }
}

#[test]
fn hostile_manifests_load_or_are_refused_with_one_sentence() {
    let mut rng = Rng(0x005e_ed0f_9001_5c0e);
    let mut tally = Tally::default();
    let names = examples();
    assert!(names.len() >= 7, "{names:?}");
    for name in &names {
        let (copy, original) = example_copy(name, false);
        let _ = tally.try_manifest(copy.path(), &original);
        for _ in 0..EXAMPLE_MUTATIONS {
            let mutated = mutate(&mut rng, &original);
            let _ = tally.try_manifest(copy.path(), &mutated);
        }
    }
    let dir = grammar_dir();
    for skeleton in SKELETONS {
        fs::write(dir.path().join("poolscope.toml"), skeleton).expect("write");
        assert_eq!(load_in_process(dir.path()), Ok(Loaded::Ok), "{skeleton}");
    }
    for _ in 0..GRAMMAR_MANIFESTS {
        let manifest = match rng.below(4) {
            0 | 1 => retouched(&mut rng),
            2 => grammar_manifest(&mut rng),
            _ => {
                let built = grammar_manifest(&mut rng);
                mutate(&mut rng, &built)
            }
        };
        if tally.try_manifest(dir.path(), &manifest) == Some(Loaded::Ok)
            && tally.loaded.is_multiple_of(RUN_EVERY)
        {
            tally.run(dir.path(), &manifest);
        }
    }
    // The Python examples with their `work.py`: the check runs, through the binary only.
    let mut python_runs = 0;
    for name in names
        .iter()
        .filter(|n| example(n).join("work.py").is_file())
    {
        let (copy, original) = example_copy(name, true);
        for _ in 0..PYTHON_MUTATIONS {
            let mutated = mutate(&mut rng, &original);
            fs::write(copy.path().join("poolscope.toml"), &mutated).expect("write");
            if let Err(fault) = load_with_binary(copy.path(), &mutated) {
                tally.faults.push((fault, mutated));
            }
            python_runs += 1;
        }
    }
    let summary = format!(
        "{} manifests: {} loaded, {} refused with one sentence, {} faults; {} of them and {} mutations of the Python examples also through the binary, {} run for real",
        tally.manifests,
        tally.loaded,
        tally.refused,
        tally.faults.len(),
        tally.through_binary,
        python_runs,
        tally.run
    );
    println!("{summary}");
    let shown: Vec<String> = tally
        .faults
        .iter()
        .take(10)
        .map(|(fault, manifest)| {
            let text = String::from_utf8_lossy(manifest);
            let text: String = text.chars().take(400).collect();
            format!("{fault}, for:\n{text}\n")
        })
        .collect();
    assert!(tally.faults.is_empty(), "{summary}\n\n{}", shown.join("\n"));
    assert_eq!(
        tally.manifests,
        names.len() * (EXAMPLE_MUTATIONS + 1) + GRAMMAR_MANIFESTS,
        "{summary}"
    );
    assert!(tally.loaded > 0 && tally.refused > 0, "{summary}");
}
