//! Loading a task directory: its manifest, or the executable files it holds.

mod glob;

use std::ffi::OsString;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use toml::Spanned;

use crate::config::PoolSettings;
use crate::error::LoadError;
use crate::human::excerpt;
use crate::limits::MAX_TASKS;
use crate::manifest::{EachTable, Inputs, Manifest, RunKeys, WorkerTable};
use crate::task::{Program, Task};
use crate::template;
use crate::worker::check::Checked;
use crate::worker::{Kernel, PyFunction, WorkerProgram, WorkerSpec};

/// The manifest's file name.
pub const MANIFEST: &str = "poolscope.toml";

/// A loaded task directory: the load report.
#[derive(Debug, Clone, Serialize)]
pub struct TaskDir {
    /// The directory, absolute.
    pub root: PathBuf,
    /// Shown in titles: the manifest's `name`, or the folder's name.
    pub name: String,
    /// The manifest, if the directory has one.
    pub manifest: Option<PathBuf>,
    /// What `[pool]` says.
    #[serde(skip)]
    pub pool: PoolSettings,
    /// The tasks, numbered from 1 in listed order (shared with the runs of the directory).
    pub tasks: Vec<Arc<Task>>,
    /// Files that are not tasks, with the reason.
    pub ignored: Vec<Ignored>,
    /// Things worth knowing that are not errors (an `[each]` glob that matched nothing).
    pub notes: Vec<String>,
    /// `[worker]`: the tasks are items for persistent workers.
    pub worker: Option<WorkerSpec>,
}

impl TaskDir {
    /// What running `task` means, for people: `$ convert a.jpg …` for a command, or
    /// `→ work.py:process("a.jpg")` for an item sent to a persistent worker.
    pub fn shown_command(&self, task: &Task) -> String {
        match (&self.worker, task.item()) {
            (Some(worker), Some(item)) => format!("→ {}({item})", worker.label()),
            _ => format!("$ {}", task.command_line(None)),
        }
    }

    /// `[worker]` in one line, e.g. `python work.py:process, init work.py:setup`.
    pub fn worker_line(&self) -> Option<String> {
        let worker = self.worker.as_ref()?;
        let mut line = match &worker.program {
            crate::worker::WorkerProgram::Python { function, init } => {
                let mut l = format!("python {}", function.spec());
                if let Some(init) = init {
                    l.push_str(&format!(", init {}", init.spec()));
                }
                l
            }
            crate::worker::WorkerProgram::Cmd(_) => format!("cmd {}", worker.label()),
            crate::worker::WorkerProgram::Builtin(k) => format!("built-in kernel {}", k.name()),
        };
        if let Some(max) = self.pool.max_tasks_per_worker.filter(|m| *m > 0) {
            line.push_str(&format!(", recycled after {max} items"));
        }
        Some(line)
    }
}

/// A file of the directory that is not a task.
#[derive(Debug, Clone, Serialize)]
pub struct Ignored {
    pub name: String,
    pub reason: String,
}

/// Load the task directory at `dir`.
///
/// As few system calls as it takes (`poolscope run` waits for them before its first task):
/// the path is resolved, then the manifest read, and what failed says what `dir` is.
pub fn load(dir: &Path) -> Result<TaskDir, LoadError> {
    let root = fs::canonicalize(dir).map_err(|e| unreachable(dir, e))?;
    let folder_name = root
        .file_name()
        .map_or_else(|| "tasks".to_string(), |n| n.to_string_lossy().into_owned());
    let manifest_path = root.join(MANIFEST);
    match fs::read_to_string(&manifest_path) {
        Ok(text) => from_manifest(root, folder_name, manifest_path, text),
        Err(e) if e.kind() == io::ErrorKind::NotADirectory => {
            Err(LoadError::NotADirectory(dir.to_path_buf()))
        }
        // No manifest (or a folder by its name): the files are the tasks.
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::IsADirectory
            ) =>
        {
            discover(root, folder_name)
        }
        Err(source) => Err(LoadError::Io {
            path: manifest_path,
            source,
        }),
    }
}

/// Why `dir` cannot be resolved to a folder: what it really is.
fn unreachable(dir: &Path, e: io::Error) -> LoadError {
    match e.kind() {
        io::ErrorKind::NotFound => LoadError::Missing(dir.to_path_buf()),
        io::ErrorKind::NotADirectory => {
            let text = dir.as_os_str().as_encoded_bytes();
            let trimmed = Path::new(dir.to_str().map_or("", |s| s.trim_end_matches('/')));
            if text.ends_with(b"/") && !trimmed.as_os_str().is_empty() && trimmed.is_file() {
                LoadError::FileWithSlash {
                    dir: dir.to_path_buf(),
                    file: trimmed.to_path_buf(),
                }
            } else {
                LoadError::NotADirectory(dir.to_path_buf())
            }
        }
        _ if e.raw_os_error() == Some(libc::ELOOP) => LoadError::LinkLoop(dir.to_path_buf()),
        _ => LoadError::Io {
            path: dir.to_path_buf(),
            source: e,
        },
    }
}

fn from_manifest(
    root: PathBuf,
    folder: String,
    path: PathBuf,
    text: String,
) -> Result<TaskDir, LoadError> {
    let manifest: Manifest = toml::from_str(&text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        LoadError::at(
            path.clone(),
            &text,
            offset,
            e.message().trim_end().to_string(),
        )
    })?;
    let at = |offset: usize, msg: String| LoadError::at(path.clone(), &text, offset, msg);
    let mut pool = manifest.pool.clone();
    let worker = match &manifest.worker {
        None => None,
        Some(table) => {
            if let (Some(_), Some(max)) = (
                manifest.pool.max_tasks_per_worker,
                &table.get_ref().max_tasks_per_worker,
            ) {
                return Err(at(
                    max.span().start,
                    "`max_tasks_per_worker` is set in both [pool] and [worker]; keep one"
                        .to_string(),
                ));
            }
            if let Some(max) = &table.get_ref().max_tasks_per_worker {
                pool.max_tasks_per_worker = Some(*max.get_ref());
            }
            Some(worker_spec(&root, table).map_err(|(offset, m)| at(offset, m))?)
        }
    };
    let mut dir = TaskDir {
        name: manifest.name.clone().unwrap_or(folder),
        manifest: Some(path.clone()),
        pool,
        tasks: Vec::new(),
        ignored: Vec::new(),
        notes: Vec::new(),
        root,
        worker,
    };
    if let (Some(_), Some(first)) = (&dir.worker, manifest.task.first()) {
        return Err(at(
            first.span().start,
            "[[task]] runs a command, but this manifest has [worker]; list the items in [each] instead"
                .to_string(),
        ));
    }
    for entry in &manifest.task {
        let keys = entry.get_ref().run_keys();
        let program = program_of(keys, false, entry.span().start).map_err(|(o, m)| at(o, m))?;
        let name = entry
            .get_ref()
            .name
            .clone()
            .unwrap_or_else(|| default_name(&program));
        push_task(&mut dir, name, program, OsString::new(), keys)
            .map_err(|(offset, m)| at(offset, m))?;
    }
    if let Some(each) = &manifest.each {
        let worker_timeout = manifest.worker.as_ref().and_then(|w| w.get_ref().timeout);
        if dir.worker.is_some() {
            expand_items(&mut dir, each, worker_timeout)
        } else {
            expand_each(&mut dir, each)
        }
        .map_err(|(offset, m)| at(offset, m))?;
    }
    if dir.tasks.len() > MAX_TASKS {
        return Err(LoadError::TooManyTasks {
            dir: dir.root.clone(),
            count: dir.tasks.len(),
        });
    }
    if dir.tasks.is_empty() && dir.worker.is_some() {
        let mut why = format!(
            "{} has [worker] but no items; add [each] with `inputs` or `range`",
            path.display()
        );
        for note in &dir.notes {
            why.push_str(&format!(" ({note})"));
        }
        return Err(LoadError::NoTasks {
            dir: dir.root.clone(),
            why,
        });
    }
    if dir.tasks.is_empty() {
        let mut why = format!("{} lists no [[task]]", path.display());
        if manifest.each.is_some() {
            why.push_str(" and its [each] has no input");
        }
        for note in &dir.notes {
            why.push_str(&format!(" ({note})"));
        }
        why.push_str("; add a [[task]] with `cmd` or an [each] whose inputs exist");
        return Err(LoadError::NoTasks {
            dir: dir.root.clone(),
            why,
        });
    }
    if let (Some(worker), Some(table)) = (&dir.worker, &manifest.worker) {
        // Last, once nothing cheaper is wrong: it starts one interpreter.
        match crate::worker::check::check(worker) {
            Checked::Ok => {}
            Checked::Unknown(note) => dir.notes.push(note),
            Checked::Failed(failure) => {
                let w = table.get_ref();
                let key = match failure.key {
                    Some("init") => w.init.as_ref(),
                    _ => w.python.as_ref(),
                };
                let offset = key.map_or(table.span().start, |k| k.span().start);
                return Err(LoadError::worker_at(
                    path,
                    &text,
                    offset,
                    failure.sentence,
                    failure.traceback,
                ));
            }
        }
    }
    Ok(dir)
}

/// A located problem: byte offset in the manifest, and the message.
type Located = (usize, String);

/// The command of a `[[task]]` or `[each]` that starts at byte `start`.
fn program_of(keys: RunKeys<'_>, each: bool, start: usize) -> Result<Program, Located> {
    let table = if each { "[each]" } else { "a [[task]]" };
    if let Some(sh) = keys.sh {
        template::check_shell(sh.get_ref()).map_err(|m| (sh.span().start, m))?;
    }
    let located = |m: String| (start, m);
    match (keys.cmd, keys.sh) {
        (Some(_), Some(_)) => Err(format!(
            "{table} has both `cmd` and `sh`; keep one (`cmd` runs an argv, `sh` a shell line)"
        )),
        (None, None) => Err(format!(
            "{table} needs `cmd = [\"program\", \"arg\"]` or `sh = \"shell line\"`"
        )),
        (Some(cmd), None) if cmd.is_empty() => Err(format!(
            "{table} has an empty `cmd`; give at least the program to run"
        )),
        (Some(cmd), None) => Ok(Program::Argv(cmd.clone())),
        (None, Some(sh)) => Ok(Program::Shell(sh.get_ref().clone())),
    }
    .map_err(located)
}

fn uses_input(program: &Program) -> bool {
    match program {
        Program::Argv(argv) => argv.iter().any(|a| template::refers_to_input(a)),
        Program::Shell(line) => template::refers_to_input(line),
        Program::Literal(_) => false,
        Program::Item(_) => true,
    }
}

fn default_name(program: &Program) -> String {
    match program {
        Program::Argv(argv) => argv
            .first()
            .map(|p| p.rsplit('/').next().unwrap_or(p).to_string())
            .unwrap_or_default(),
        Program::Literal(argv) => argv
            .first()
            .map(|p| crate::human::name(Path::new(p).file_name().unwrap_or(p)))
            .unwrap_or_default(),
        Program::Shell(line) => line.chars().take(40).collect(),
        Program::Item(json) => json.chars().take(40).collect(),
    }
}

fn push_task(
    dir: &mut TaskDir,
    name: String,
    program: Program,
    input: OsString,
    keys: RunKeys<'_>,
) -> Result<(), Located> {
    let cwd = match keys.cwd {
        None => dir.root.clone(),
        Some(cwd) => {
            let path = dir.root.join(cwd.get_ref());
            if !path.is_dir() {
                return Err((
                    cwd.span().start,
                    format!(
                        "`cwd = \"{}\"` is not a directory inside {}; create it or fix the path",
                        excerpt(cwd.get_ref()),
                        dir.root.display()
                    ),
                ));
            }
            path
        }
    };
    let program = match program {
        Program::Argv(mut argv) => {
            // A relative program path with a slash is relative to the task's cwd.
            if argv[0].contains('/') && !argv[0].starts_with('/') && !argv[0].contains('{') {
                argv[0] = cwd.join(&argv[0]).to_string_lossy().into_owned();
            }
            Program::Argv(argv)
        }
        other => other,
    };
    dir.tasks.push(Arc::new(Task {
        seq: dir.tasks.len() + 1,
        name,
        program,
        input,
        env: keys
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        cwd,
        timeout: keys.timeout.map(|d| d.0),
    }));
    Ok(())
}

/// `[worker]`: which program serves the items, checked against the directory.
fn worker_spec(root: &Path, table: &Spanned<WorkerTable>) -> Result<WorkerSpec, Located> {
    let w = table.get_ref();
    let start = table.span().start;
    let given = [w.python.is_some(), w.cmd.is_some(), w.builtin.is_some()];
    if given.iter().filter(|g| **g).count() != 1 {
        return Err((
            start,
            "[worker] needs exactly one of `python = \"file.py:function\"`, `cmd = [\"./worker\"]` or `builtin = \"noop\"`"
                .to_string(),
        ));
    }
    let python_function = |spec: &Spanned<String>| -> Result<PyFunction, Located> {
        let function = PyFunction::parse(spec.get_ref()).map_err(|m| (spec.span().start, m))?;
        if !root.join(&function.file).is_file() {
            return Err((
                spec.span().start,
                format!(
                    "`{}` names {}, which is not a file in {}; fix the path (it is relative to the task directory)",
                    excerpt(spec.get_ref()),
                    excerpt(&function.file),
                    root.display()
                ),
            ));
        }
        Ok(function)
    };
    if let (Some(init), None) = (&w.init, &w.python) {
        return Err((
            init.span().start,
            "`init` is for Python workers (`python = ...`); a `cmd` worker initialises itself"
                .to_string(),
        ));
    }
    let program = if let Some(python) = &w.python {
        WorkerProgram::Python {
            function: python_function(python)?,
            init: w.init.as_ref().map(python_function).transpose()?,
        }
    } else if let Some(cmd) = &w.cmd {
        let mut argv = cmd.get_ref().clone();
        let Some(program) = argv.first_mut() else {
            return Err((
                cmd.span().start,
                "[worker] has an empty `cmd`; give at least the program to run".to_string(),
            ));
        };
        if program.contains('/') && !program.starts_with('/') {
            *program = root.join(&*program).to_string_lossy().into_owned();
        }
        WorkerProgram::Cmd(argv)
    } else if let Some(builtin) = &w.builtin {
        let kernel = Kernel::from_name(builtin.get_ref()).ok_or_else(|| {
            let names: Vec<&str> = Kernel::ALL.iter().map(|k| k.name()).collect();
            (
                builtin.span().start,
                format!(
                    "there is no built-in kernel `{}`; poolscope has {}",
                    excerpt(builtin.get_ref()),
                    names.join(", ")
                ),
            )
        })?;
        WorkerProgram::Builtin(kernel)
    } else {
        return Err((start, "[worker] names no program".to_string()));
    };
    Ok(WorkerSpec {
        program,
        cwd: root.to_path_buf(),
        env: w.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        ready_timeout: w
            .ready_timeout
            .map_or(crate::worker::READY_TIMEOUT, |d| d.0),
        max_result: w
            .max_result
            .map_or(crate::worker::DEFAULT_MAX_RESULT, |s| s.0),
    })
}

/// `[each]` with `[worker]`: one item per input, sent as a JSON string (`range`: a number).
fn expand_items(
    dir: &mut TaskDir,
    each: &Spanned<EachTable>,
    worker_timeout: Option<crate::manifest::HumanDuration>,
) -> Result<(), Located> {
    let table = each.get_ref();
    if table.cmd.is_some() || table.sh.is_some() {
        return Err((
            each.span().start,
            "[each] has a command, but with [worker] each input is an item sent to a worker; remove `cmd`/`sh` from [each]"
                .to_string(),
        ));
    }
    if !table.env.is_empty() || table.cwd.is_some() {
        return Err((
            each.span().start,
            "[each] has `env` or `cwd`, but with [worker] the items run in the workers; put `env` in [worker] (workers run in the task directory)"
                .to_string(),
        ));
    }
    // Inputs are sent as JSON strings, `range` items as numbers.
    let items: Vec<(String, String)> = match each_values(dir, each, true)? {
        EachValues::Numbers(numbers) => numbers
            .into_iter()
            .map(|n| (n.to_string(), n.to_string()))
            .collect(),
        EachValues::Strings(strings) => strings
            .into_iter()
            .filter_map(|s| match s.into_string() {
                Ok(s) => {
                    let json = serde_json::to_string(&s).unwrap_or_else(|_| "null".to_string());
                    Some((s, json))
                }
                Err(bytes) => {
                    dir.ignored.push(Ignored {
                        name: crate::human::name(&bytes),
                        reason: "its name is not valid UTF-8, and a worker's item is JSON text; rename it to send it".to_string(),
                    });
                    None
                }
            })
            .collect(),
    };
    let timeout = table.timeout.or(worker_timeout).map(|d| d.0);
    for (input, json) in items {
        dir.tasks.push(Arc::new(Task {
            seq: dir.tasks.len() + 1,
            name: input.clone(),
            program: Program::Item(json),
            input: input.into(),
            env: Vec::new(),
            cwd: dir.root.clone(),
            timeout,
        }));
    }
    Ok(())
}

fn expand_each(dir: &mut TaskDir, each: &Spanned<EachTable>) -> Result<(), Located> {
    let table = each.get_ref();
    let keys = table.run_keys();
    let program = program_of(keys, true, each.span().start)?;
    let inputs: Vec<OsString> = match each_values(dir, each, uses_input(&program))? {
        EachValues::Numbers(numbers) => numbers.into_iter().map(|n| n.to_string().into()).collect(),
        EachValues::Strings(strings) => strings,
    };
    for input in inputs {
        push_task(
            dir,
            crate::human::name(&input),
            program.clone(),
            input,
            keys,
        )?;
    }
    Ok(())
}

/// What `[each]` runs over.
enum EachValues {
    /// `inputs`: a list, or the files a glob matched (names are bytes).
    Strings(Vec<OsString>),
    /// `range = [first, last]`.
    Numbers(Vec<i64>),
}

/// The values of `[each]`: its `inputs` or its `range`. `inputs_used` says whether what
/// runs refers to the input; `inputs` that nothing uses are an error.
fn each_values(
    dir: &mut TaskDir,
    each: &Spanned<EachTable>,
    inputs_used: bool,
) -> Result<EachValues, Located> {
    let table = each.get_ref();
    match (&table.inputs, &table.range) {
        (Some(_), Some(r)) => Err((
            r.span().start,
            "[each] has both `inputs` and `range`; keep one".to_string(),
        )),
        (None, None) => Err((
            each.span().start,
            "[each] needs `inputs = \"glob/*\"`, `inputs = [\"a\", \"b\"]` or `range = [1, 20]`"
                .to_string(),
        )),
        (None, Some(range)) => {
            let crate::manifest::Range { first, last } = *range.get_ref();
            if first > last {
                return Err((
                    range.span().start,
                    format!(
                        "`range = [{first}, {last}]` is empty; write [first, last] with first <= last"
                    ),
                ));
            }
            let count = i128::from(last) - i128::from(first) + 1;
            if count > MAX_TASKS as i128 {
                return Err((
                    range.span().start,
                    format!(
                        "`range = [{first}, {last}]` has {count} numbers, more than poolscope's {MAX_TASKS} tasks; split it over several runs"
                    ),
                ));
            }
            Ok(EachValues::Numbers((first..=last).collect()))
        }
        (Some(inputs), None) if !inputs_used => Err((
            inputs.span().start,
            "[each] has `inputs` but its command never uses them; put {} (or {/}, {.} ...) where the input goes"
                .to_string(),
        )),
        (Some(inputs), None) => match inputs.get_ref() {
            Inputs::List(list) => Ok(EachValues::Strings(
                list.iter().map(OsString::from).collect(),
            )),
            Inputs::Glob(pattern) => glob_inputs(dir, pattern)
                .map(EachValues::Strings)
                .map_err(|m| (inputs.span().start, m)),
        },
    }
}

fn glob_inputs(dir: &mut TaskDir, pattern: &str) -> Result<Vec<OsString>, String> {
    let paths = glob::expand(&dir.root, pattern).map_err(|why| {
        format!(
            "`inputs = \"{}\"` is not a valid glob: {why}",
            excerpt(pattern)
        )
    })?;
    let mut inputs: Vec<OsString> = paths
        .iter()
        .map(|path| {
            let rel = path.strip_prefix(&dir.root).unwrap_or(path);
            rel.as_os_str().to_owned()
        })
        .collect();
    inputs.sort();
    if inputs.is_empty() {
        dir.notes.push(format!(
            "[each] inputs `{}` matched no file",
            excerpt(pattern)
        ));
    }
    Ok(inputs)
}

/// No manifest: every executable file, or file starting with `#!`, is a task; the records
/// folder is not even listed.
fn discover(root: PathBuf, folder: String) -> Result<TaskDir, LoadError> {
    let io = |source| LoadError::Io {
        path: root.clone(),
        source,
    };
    let mut entries: Vec<_> = fs::read_dir(&root)
        .map_err(io)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| !p.ends_with(crate::record::rundir::RECORDS))
        .collect();
    entries.sort();
    let mut dir = TaskDir {
        root: root.clone(),
        name: folder,
        manifest: None,
        pool: PoolSettings::default(),
        tasks: Vec::new(),
        ignored: Vec::new(),
        notes: Vec::new(),
        worker: None,
    };
    for path in entries {
        let name = path.file_name().map(crate::human::name).unwrap_or_default();
        match classify(&path, &name) {
            Ok(argv) => dir.tasks.push(Arc::new(Task {
                seq: dir.tasks.len() + 1,
                name,
                program: Program::Literal(argv),
                input: OsString::new(),
                env: Vec::new(),
                cwd: root.clone(),
                timeout: None,
            })),
            Err(reason) => dir.ignored.push(Ignored { name, reason }),
        }
    }
    if dir.tasks.len() > MAX_TASKS {
        return Err(LoadError::TooManyTasks {
            dir: dir.root.clone(),
            count: dir.tasks.len(),
        });
    }
    if dir.tasks.is_empty() {
        let why = if dir.ignored.is_empty() {
            "it is empty; add executable files, or a poolscope.toml that lists tasks".to_string()
        } else {
            let looked: Vec<String> = dir
                .ignored
                .iter()
                .map(|i| format!("{} ({})", i.name, i.reason))
                .collect();
            format!(
                "it has no poolscope.toml and none of its files is executable or starts with #!; looked at: {}; hint: chmod +x the scripts, or write a poolscope.toml",
                looked.join(", ")
            )
        };
        return Err(LoadError::NoTasks { dir: root, why });
    }
    Ok(dir)
}

/// The argv that runs `path` (its bytes, whatever its name), or why it is not a task.
fn classify(path: &Path, name: &str) -> Result<Vec<OsString>, String> {
    if name.starts_with('.') {
        return Err("hidden".to_string());
    }
    let meta = fs::metadata(path).map_err(|e| format!("unreadable: {e}"))?;
    if meta.is_dir() {
        return Err("a directory".to_string());
    }
    if !meta.is_file() {
        return Err("not a regular file".to_string());
    }
    let file = path.as_os_str().to_owned();
    if meta.permissions().mode() & 0o111 != 0 {
        return Ok(vec![file]);
    }
    match shebang(path) {
        Some(interpreter) => {
            let mut argv: Vec<OsString> = interpreter.into_iter().map(OsString::from).collect();
            argv.push(file);
            Ok(argv)
        }
        None => Err("not executable and has no #! line".to_string()),
    }
}

/// The interpreter argv of a `#!` line, if the file starts with one.
fn shebang(path: &Path) -> Option<Vec<String>> {
    let mut head = [0u8; 256];
    let n = fs::File::open(path).ok()?.read(&mut head).ok()?;
    let head = &head[..n];
    let line = head.strip_prefix(b"#!")?;
    let end = line.iter().position(|&b| b == b'\n').unwrap_or(line.len());
    let line = std::str::from_utf8(&line[..end]).ok()?.trim();
    let mut parts = line.splitn(2, char::is_whitespace);
    let program = parts.next().filter(|p| !p.is_empty())?.to_string();
    let mut argv = vec![program];
    if let Some(arg) = parts.next().map(str::trim).filter(|a| !a.is_empty()) {
        argv.push(arg.to_string());
    }
    Some(argv)
}
