//! `[each] inputs` globs, expanded as the shell expands them: brace sets first
//! (`*.{jpg,png}`, nested too), then each path component against the entries of the folder
//! it names. `*`, `?` and `[...]` never match a name's leading `.` (`.*` does), `**` spans
//! any number of folders but no hidden one, and the records folder `.poolscope` is never
//! matched, however the pattern spells it.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs;
use std::path::{Component, Path, PathBuf};

use globset::{GlobBuilder, GlobMatcher};

use crate::record::rundir::RECORDS;

/// One component of a pattern, between slashes.
enum Part {
    /// A name without wildcards: looked up, not listed.
    Name(String),
    /// `**`: any number of folders, hidden ones excepted.
    AnyFolders,
    /// A component with wildcards; `dot` when it starts with a literal `.`, the only way
    /// to match a hidden name.
    Wild { matcher: GlobMatcher, dot: bool },
}

/// The paths `pattern` matches under `root`: relative to `root` (absolute for an absolute
/// pattern), each once, in no particular order. What cannot be read is not matched, as in
/// the shell. `Err` says why the pattern is not a valid glob.
pub fn expand(root: &Path, pattern: &str) -> Result<Vec<PathBuf>, String> {
    let records = normal(&root.join(RECORDS));
    let mut found = BTreeSet::new();
    for alternative in braces(pattern) {
        let parts = alternative
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .map(part)
            .collect::<Result<Vec<_>, _>>()?;
        let start = if alternative.starts_with('/') {
            PathBuf::from("/")
        } else {
            PathBuf::new()
        };
        let mut walk = Walk {
            root,
            records: &records,
            found: &mut found,
        };
        walk.walk(&start, &parts);
    }
    Ok(found.into_iter().collect())
}

fn part(text: &str) -> Result<Part, String> {
    if text == "**" {
        return Ok(Part::AnyFolders);
    }
    if !text.contains(['*', '?', '[', '\\']) {
        return Ok(Part::Name(text.to_string()));
    }
    let glob = GlobBuilder::new(text)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|e| e.kind().to_string())?;
    Ok(Part::Wild {
        matcher: glob.compile_matcher(),
        dot: text.starts_with('.') || text.starts_with("\\."),
    })
}

struct Walk<'a> {
    root: &'a Path,
    /// `root/.poolscope`, without `.` or `..` components.
    records: &'a Path,
    found: &'a mut BTreeSet<PathBuf>,
}

impl Walk<'_> {
    /// Match `parts` below `at` (relative to the root, or absolute).
    fn walk(&mut self, at: &Path, parts: &[Part]) {
        let Some((first, rest)) = parts.split_first() else {
            if !at.as_os_str().is_empty() && !self.is_records(at) {
                self.found.insert(at.to_path_buf());
            }
            return;
        };
        match first {
            Part::Name(name) => {
                let next = at.join(name);
                let full = self.root.join(&next);
                let there = if rest.is_empty() {
                    fs::symlink_metadata(&full).is_ok()
                } else {
                    full.is_dir()
                };
                if there && !self.is_records(&next) {
                    self.walk(&next, rest);
                }
            }
            Part::AnyFolders => {
                self.walk(at, rest);
                for (name, is_dir) in self.entries(at) {
                    if hidden(&name) {
                        continue;
                    }
                    let next = at.join(&name);
                    if is_dir {
                        // Symbolic links are not followed, as the shell's `**` does not.
                        self.walk(&next, parts);
                    } else if rest.is_empty() {
                        self.found.insert(next);
                    }
                }
            }
            Part::Wild { matcher, dot } => {
                for (name, _) in self.entries(at) {
                    if (hidden(&name) && !dot) || !matcher.is_match(Path::new(&name)) {
                        continue;
                    }
                    let next = at.join(&name);
                    if self.is_records(&next) {
                        continue;
                    }
                    if rest.is_empty() {
                        self.found.insert(next);
                    } else if self.root.join(&next).is_dir() {
                        self.walk(&next, rest);
                    }
                }
            }
        }
    }

    /// The entries of folder `at`, with whether each is a folder (not following links).
    fn entries(&self, at: &Path) -> Vec<(OsString, bool)> {
        let Ok(read) = fs::read_dir(self.root.join(at)) else {
            return Vec::new();
        };
        read.filter_map(Result::ok)
            .map(|e| (e.file_name(), e.file_type().is_ok_and(|t| t.is_dir())))
            .collect()
    }

    fn is_records(&self, path: &Path) -> bool {
        normal(&self.root.join(path)).starts_with(self.records)
    }
}

fn hidden(name: &OsString) -> bool {
    name.as_encoded_bytes().first() == Some(&b'.')
}

/// `path` without `.` components, and with each `..` taking away the name before it.
fn normal(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// `pattern` with its brace sets expanded, as the shell does before it globs: `a{b,c}d`
/// is `abd` and `acd`. A brace without a comma inside, or without its partner, is literal,
/// and comes out escaped (`\{`) for the glob; so does one inside `[...]`.
fn braces(pattern: &str) -> Vec<String> {
    match first_set(pattern) {
        None => vec![escape_braces(pattern)],
        Some((open, close, alternatives)) => alternatives
            .iter()
            .flat_map(|alt| {
                braces(&format!(
                    "{}{alt}{}",
                    &pattern[..open],
                    &pattern[close + 1..]
                ))
            })
            .collect(),
    }
}

/// The first brace set of `s`: where it opens and closes, and its alternatives.
fn first_set(s: &str) -> Option<(usize, usize, Vec<&str>)> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'[' => {
                if let Some(end) = class_end(bytes, i) {
                    i = end;
                }
            }
            b'{' => {
                if let Some((close, commas)) = set_end(bytes, i)
                    && !commas.is_empty()
                {
                    let mut alternatives = Vec::new();
                    let mut from = i + 1;
                    for comma in commas.into_iter().chain([close]) {
                        alternatives.push(&s[from..comma]);
                        from = comma + 1;
                    }
                    return Some((i, close, alternatives));
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The brace closing the one at `open`, and the commas between them at its own level.
fn set_end(bytes: &[u8], open: usize) -> Option<(usize, Vec<usize>)> {
    let mut depth = 0;
    let mut commas = Vec::new();
    let mut i = open;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'[' => {
                if let Some(end) = class_end(bytes, i) {
                    i = end;
                }
            }
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some((i, commas));
                }
            }
            b',' if depth == 1 => commas.push(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// The `]` that closes the class opening at `open` (`[]a]` and `[!]a]` hold a `]`).
fn class_end(bytes: &[u8], open: usize) -> Option<usize> {
    let mut i = open + 1;
    if matches!(bytes.get(i), Some(b'!' | b'^')) {
        i += 1;
    }
    if bytes.get(i) == Some(&b']') {
        i += 1;
    }
    bytes[i.min(bytes.len())..]
        .iter()
        .position(|&b| b == b']')
        .map(|p| i + p)
}

/// `s` with its braces outside classes escaped: they are literal once the sets are out.
fn escape_braces(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len() + 4);
    let mut from = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'[' => {
                if let Some(end) = class_end(bytes, i) {
                    i = end;
                }
            }
            b'{' | b'}' => {
                out.push_str(&s[from..i]);
                out.push('\\');
                from = i;
            }
            _ => {}
        }
        i += 1;
    }
    out.push_str(&s[from.min(s.len())..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tmp");
        for f in files {
            let path = dir.path().join(f);
            fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            if f.ends_with('/') {
                fs::create_dir_all(&path).expect("mkdir");
            } else {
                fs::write(&path, "x").expect("write");
            }
        }
        dir
    }

    fn names(root: &Path, pattern: &str) -> Vec<String> {
        let mut out: Vec<String> = expand(root, pattern)
            .expect("valid")
            .into_iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        out.sort();
        out
    }

    #[test]
    fn brace_sets_expand_before_globbing() {
        assert_eq!(braces("*.{jpg,png}"), ["*.jpg", "*.png"]);
        assert_eq!(braces("{a,b{c,d}}x"), ["ax", "bcx", "bdx"]);
        assert_eq!(braces("a{,b}"), ["a", "ab"]);
        assert_eq!(braces("{a}{b"), ["\\{a\\}\\{b"]);
        assert_eq!(braces("\\{a,b}"), ["\\{a,b\\}"]);
        assert_eq!(braces("[{,]x"), ["[{,]x"]);
        assert_eq!(braces("{x{a,b}}"), ["\\{xa\\}", "\\{xb\\}"]);
    }

    #[test]
    fn a_star_skips_dotfiles_and_records() {
        let dir = tree(&[
            "a.jpg",
            "b.png",
            ".c.jpg",
            ".poolscope/runs/1/joblog.tsv",
            "sub/d.jpg",
            "sub/.e.jpg",
            ".hid/f.jpg",
        ]);
        let root = dir.path();
        assert_eq!(names(root, "*"), ["a.jpg", "b.png", "sub"]);
        assert_eq!(names(root, "*.{jpg,png}"), ["a.jpg", "b.png"]);
        assert_eq!(names(root, ".*"), [".c.jpg", ".hid"]);
        assert_eq!(names(root, "{.,}*.jpg"), [".c.jpg", "a.jpg"]);
        assert_eq!(names(root, "?c.jpg"), Vec::<String>::new());
        assert_eq!(names(root, "[.]c.jpg"), Vec::<String>::new());
        assert_eq!(names(root, "*/*.jpg"), ["sub/d.jpg"]);
        assert_eq!(names(root, "*/.*.jpg"), ["sub/.e.jpg"]);
        assert_eq!(names(root, ".*/*.jpg"), [".hid/f.jpg"]);
        assert_eq!(
            names(root, "**/*.jpg"),
            ["a.jpg", "sub/d.jpg"],
            "`**` enters no hidden folder"
        );
        assert_eq!(names(root, "**"), ["a.jpg", "b.png", "sub", "sub/d.jpg"]);
        for records in [
            ".poolscope",
            ".poolscope/**",
            ".poolscope/runs/*/*",
            "./.poolscope/runs/1/joblog.tsv",
            "sub/../.poolscope/runs/1/joblog.tsv",
            ".p*/*",
            ".{poolscope,x}",
        ] {
            assert_eq!(names(root, records), Vec::<String>::new(), "{records}");
        }
        assert_eq!(names(root, "./sub/d.jpg"), ["sub/d.jpg"]);
    }

    #[test]
    fn braces_that_are_no_set_are_literal() {
        let dir = tree(&["{a}.txt", "{b.txt", "a.txt"]);
        let root = dir.path();
        assert_eq!(names(root, "{a}.txt"), ["{a}.txt"]);
        assert_eq!(names(root, "{a}*"), ["{a}.txt"]);
        assert_eq!(names(root, "[{]*"), ["{a}.txt", "{b.txt"]);
        assert_eq!(names(root, "{*"), ["{a}.txt", "{b.txt"]);
        assert_eq!(names(root, "{a,\\{b}*"), ["a.txt", "{b.txt"]);
        assert_eq!(
            names(root, "{a,{b}*"),
            Vec::<String>::new(),
            "no set: all literal"
        );
    }

    #[test]
    fn an_absolute_pattern_gives_absolute_paths() {
        let dir = tree(&["a.jpg", ".poolscope/x.jpg"]);
        let root = dir.path();
        let abs = format!("{}/*.jpg", root.display());
        assert_eq!(names(root, &abs), [format!("{}/a.jpg", root.display())]);
        let abs = format!("{}/.poolscope/*.jpg", root.display());
        assert_eq!(names(root, &abs), Vec::<String>::new());
    }

    #[test]
    fn a_bad_pattern_says_why() {
        let dir = tree(&[]);
        let err = expand(dir.path(), "photos/[a.jpg").expect_err("unclosed class");
        assert!(err.contains("unclosed character class"), "{err}");
    }
}
