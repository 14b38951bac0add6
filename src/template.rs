//! Replacement strings, as GNU parallel spells them.
//!
//! `{}` input, `{/}` basename, `{//}` dirname, `{.}` input without extension,
//! `{/.}` basename without extension, `{#}` task number (1-based), `{%}` worker slot
//! (1-based). Any other brace is literal text.
//!
//! In an argv template every element expands to exactly one argument, whatever the
//! substituted value holds. In a shell template every substituted value is quoted for the
//! spot it sits in (outside quotes, inside `"..."` or inside `'...'`; see the private
//! `template::shell`), so a
//! file named `a b; rm -rf ~ $(x)` stays data; a line with a value where it cannot be
//! quoted is refused by [`check_shell`].
//!
//! Values are bytes, as paths are on Unix: a file name that is not UTF-8 expands to its
//! own bytes. Commands shown to people (joblog, load report) write such bytes as `\xNN`.

mod shell;

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::os::unix::ffi::{OsStrExt, OsStringExt};

/// The values a template can refer to.
#[derive(Debug, Clone, Copy)]
pub struct Values<'a> {
    /// The input (`{}`), empty for tasks without one.
    pub input: &'a OsStr,
    /// Task number, 1-based (`{#}`).
    pub seq: usize,
    /// Worker slot, 1-based (`{%}`); `None` renders `{%}` unexpanded (load report).
    pub slot: Option<usize>,
}

/// One piece of a parsed template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Input,
    Basename,
    Dirname,
    NoExt,
    BasenameNoExt,
    Seq,
    Slot,
}

const TOKENS: [(&str, Token); 7] = [
    ("{//}", Token::Dirname),
    ("{/.}", Token::BasenameNoExt),
    ("{/}", Token::Basename),
    ("{.}", Token::NoExt),
    ("{#}", Token::Seq),
    ("{%}", Token::Slot),
    ("{}", Token::Input),
];

fn token_at(s: &str) -> Option<(&'static str, Token)> {
    TOKENS.iter().find(|(text, _)| s.starts_with(text)).copied()
}

/// Does `s` hold any replacement string?
pub fn has_replacement(s: &str) -> bool {
    s.char_indices().any(|(i, _)| token_at(&s[i..]).is_some())
}

/// Does `s` refer to the input (any of `{}` `{/}` `{//}` `{.}` `{/.}`)?
pub fn refers_to_input(s: &str) -> bool {
    s.char_indices().any(|(i, _)| {
        token_at(&s[i..]).is_some_and(|(_, t)| !matches!(t, Token::Seq | Token::Slot))
    })
}

/// Does `s` refer to the worker slot (`{%}`)?
pub fn refers_to_slot(s: &str) -> bool {
    s.char_indices()
        .any(|(i, _)| token_at(&s[i..]).is_some_and(|(_, t)| t == Token::Slot))
}

fn render(token: Token, v: Values<'_>) -> Vec<u8> {
    let input = v.input.as_bytes();
    match token {
        Token::Input => input.to_vec(),
        Token::Basename => basename(input).to_vec(),
        Token::Dirname => dirname(input).to_vec(),
        Token::NoExt => strip_ext(input).to_vec(),
        Token::BasenameNoExt => strip_ext(basename(input)).to_vec(),
        Token::Seq => v.seq.to_string().into_bytes(),
        Token::Slot => v
            .slot
            .map(|s| s.to_string())
            .unwrap_or_default()
            .into_bytes(),
    }
}

/// Expand one argv element: the result is one argument, never split.
pub fn expand_arg(template: &str, values: Values<'_>) -> OsString {
    let mut out = Vec::with_capacity(template.len() + values.input.len());
    let mut rest = template;
    while let Some(pos) = rest.find('{') {
        out.extend_from_slice(&rest.as_bytes()[..pos]);
        rest = &rest[pos..];
        match token_at(rest) {
            Some((text, Token::Slot)) if values.slot.is_none() => {
                out.extend_from_slice(text.as_bytes());
                rest = &rest[text.len()..];
            }
            Some((text, token)) => {
                out.extend_from_slice(&render(token, values));
                rest = &rest[text.len()..];
            }
            None => {
                out.push(b'{');
                rest = &rest[1..];
            }
        }
    }
    out.extend_from_slice(rest.as_bytes());
    OsString::from_vec(out)
}

fn placeholder_len(rest: &str) -> Option<usize> {
    token_at(rest).map(|(text, _)| text.len())
}

/// Expand a shell line: every substituted value is quoted for its spot. `{#}` and `{%}`
/// are digits, which need no quoting anywhere; an input-derived value at a spot
/// [`check_shell`] refuses is left unexpanded (such a line never loads).
pub fn expand_shell(template: &str, values: Values<'_>) -> OsString {
    let mut out = Vec::with_capacity(template.len() + values.input.len() + 2);
    let mut from = 0;
    for (at, place) in shell::scan(template, placeholder_len).spots {
        let Some((text, token)) = token_at(&template[at..]) else {
            continue;
        };
        out.extend_from_slice(&template.as_bytes()[from..at]);
        from = at + text.len();
        match (token, place) {
            (Token::Slot, _) if values.slot.is_none() => out.extend_from_slice(text.as_bytes()),
            (Token::Seq | Token::Slot, _) => out.extend_from_slice(&render(token, values)),
            (_, Ok(context)) => {
                out.extend_from_slice(&shell::quote(context, &render(token, values)))
            }
            (_, Err(_)) => out.extend_from_slice(text.as_bytes()),
        }
    }
    out.extend_from_slice(&template.as_bytes()[from..]);
    OsString::from_vec(out)
}

/// Can every input-derived value of the shell line `template` be quoted where it sits?
/// `Err` is the sentence that says which one cannot, and what to do.
pub fn check_shell(template: &str) -> Result<(), String> {
    let scan = shell::scan(template, placeholder_len);
    let mut uses_input = false;
    for (at, place) in &scan.spots {
        let Some((text, token)) = token_at(&template[*at..]) else {
            continue;
        };
        if matches!(token, Token::Seq | Token::Slot) {
            continue;
        }
        uses_input = true;
        if let Err(why) = place {
            return Err(format!(
                "`{text}` in `sh` {why}, where no quoting keeps a value literal; poolscope quotes each placeholder itself, so put it outside, in \"...\" or in '...' (e.g. `f={text}; ... \"$f\"`)"
            ));
        }
    }
    match scan.unterminated {
        Some(why) if uses_input => Err(format!(
            "`sh` {why}, so poolscope cannot tell how the shell reads its placeholders; close it (poolscope quotes each placeholder itself)"
        )),
        _ => Ok(()),
    }
}

fn trim_slashes(path: &[u8]) -> &[u8] {
    let end = path.iter().rposition(|&b| b != b'/').map_or(0, |i| i + 1);
    &path[..end]
}

fn basename(path: &[u8]) -> &[u8] {
    let trimmed = trim_slashes(path);
    match trimmed.iter().rposition(|&b| b == b'/') {
        Some(i) => &trimmed[i + 1..],
        None => trimmed,
    }
}

fn dirname(path: &[u8]) -> &[u8] {
    let trimmed = trim_slashes(path);
    match trimmed.iter().rposition(|&b| b == b'/') {
        Some(0) => b"/",
        Some(i) => &trimmed[..i],
        None => b".",
    }
}

/// Remove the extension of the last path component (`dir/a.b.jpg` → `dir/a.b`).
fn strip_ext(path: &[u8]) -> &[u8] {
    let name_start = path.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1);
    match path[name_start..].iter().rposition(|&b| b == b'.') {
        Some(0) | None => path,
        Some(i) => &path[..name_start + i],
    }
}

/// Quote `s` for `/bin/sh`: safe characters pass, anything else is single-quoted.
pub fn shell_quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if safe {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// Render an argv as one shell-readable line (for the joblog and the load report); bytes
/// that are not UTF-8 are written `\xNN`.
pub fn join_argv<S: AsRef<OsStr>>(argv: &[S]) -> String {
    let mut line = String::new();
    for (i, arg) in argv.iter().enumerate() {
        if i > 0 {
            line.push(' ');
        }
        let _ = write!(line, "{}", shell_quote(&crate::human::name(arg.as_ref())));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(input: &str) -> Values<'_> {
        Values {
            input: OsStr::new(input),
            seq: 7,
            slot: Some(2),
        }
    }

    #[test]
    fn every_replacement_string() {
        let t = "{} {/} {//} {.} {/.} {#} {%}";
        assert_eq!(
            expand_arg(t, v("photos/a.b.jpg")),
            "photos/a.b.jpg a.b.jpg photos photos/a.b a.b 7 2"
        );
        assert_eq!(expand_arg(t, v("plain")), "plain plain . plain plain 7 2");
    }

    #[test]
    fn unknown_braces_are_literal() {
        assert_eq!(expand_arg("{x} {", v("a")), "{x} {");
        assert_eq!(expand_arg("{{}}", v("a")), "{a}");
    }

    #[test]
    fn shell_values_are_quoted() {
        let hostile = "a b; rm -rf ~ $(x) 'q'";
        let line = expand_shell("echo {}", v(hostile));
        assert_eq!(line, r#"echo 'a b; rm -rf ~ $(x) '\''q'\'''"#);
    }

    #[test]
    fn shell_values_are_quoted_for_their_spot() {
        let hostile = r#"a'b"c$d`e\f"#;
        let line = expand_shell(r#"x {} "{}" '{}' "$(cat {})" {#}"#, v(hostile));
        assert_eq!(
            line,
            r#"x 'a'\''b"c$d`e\f' "a'b\"c\$d\`e\\f" 'a'\''b"c$d`e\f' "$(cat 'a'\''b"c$d`e\f')" 7"#
        );
        assert_eq!(expand_shell("echo {} {}", v("a=b")), "echo 'a=b' 'a=b'");
        assert_eq!(
            expand_shell("echo `{}`", v("x")),
            "echo `{}`",
            "refused spot"
        );
        assert_eq!(expand_shell("echo `{#}`", v("x")), "echo `7`");
    }

    #[test]
    fn spots_that_cannot_be_quoted_are_refused() {
        for ok in [
            "cmd {}",
            "cmd \"{}\"",
            "cmd '{}'",
            "cmd \"a $(basename \"{}\") b\" '{/}'",
            "f={}; echo \"$f\" # a comment",
            "cmd '\\{}' \"${HOME}\" `date` {}",
            "echo $((1 + 2)) {} ${x:-'a b'} {}",
            "case {} in a) echo '{}';; esac",
            "echo `{#}` ${{#}} $(({%} + 1))",
        ] {
            assert_eq!(check_shell(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("cmd `{}`", "inside backquotes"),
            ("cmd ${x:-{}}", "inside `${...}`"),
            ("echo $(( {} ))", "inside `$((...))`"),
            ("(( {} > 1 ))", "inside `$((...))`"),
            ("echo $[{}]", "inside `$((...))`"),
            ("echo $'{}'", "inside `$'...'`"),
            ("echo # {}", "comment"),
            ("echo \\{}", "follows a backslash"),
            ("echo \"\\{}\"", "follows a backslash"),
            ("echo ${}", "follows a `$`"),
            ("echo \"${}\"", "follows a `$`"),
            ("cat <<EOF\n{}\nEOF", "here-document"),
            ("echo \"$(case x in a) echo;; esac)\" {}", "`case`"),
            ("echo \"{}", "ends inside a double quote"),
            ("echo '{}", "ends inside a single quote"),
            ("echo $(cat {}", "ends inside `$(...)`"),
        ] {
            let err = check_shell(bad).expect_err(bad);
            assert!(err.contains(why), "{bad}: {err}");
            assert!(err.contains("quotes each placeholder itself"), "{err}");
        }
    }

    /// Random byte strings (any byte but NUL, UTF-8 or not), in each context, reach
    /// `printf %s` exactly, through dash and bash.
    #[test]
    fn quoted_values_round_trip_through_a_real_shell() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let special = b"$`\"'\\;|&<>(){}*?[]~#!= \t\nab\xff\xc3";
        let mut values: Vec<Vec<u8>> = Vec::new();
        for _ in 0..300 {
            let len = (next() % 12) as usize;
            values.push(
                (0..len)
                    .map(|_| match next() % 3 {
                        0 => special[(next() % special.len() as u64) as usize],
                        _ => (next() % 255 + 1) as u8,
                    })
                    .collect(),
            );
        }
        values.push(Vec::new());
        values.push("héllo wörld".into());
        let shells = ["/bin/sh", "/bin/bash"]
            .into_iter()
            .filter(|s| std::path::Path::new(s).exists());
        let templates = [
            "printf %s {}",
            "printf %s \"{}\"",
            "printf %s '{}'",
            "printf %s \"$(printf %s {})\"",
        ];
        for (shell, template) in shells.flat_map(|s| templates.map(|t| (s, t))) {
            assert_eq!(check_shell(template), Ok(()));
            for value in &values {
                let values = Values {
                    input: OsStr::from_bytes(value),
                    seq: 1,
                    slot: Some(1),
                };
                let line = expand_shell(template, values);
                let out = std::process::Command::new(shell)
                    .arg("-c")
                    .arg(&line)
                    .output()
                    .expect("the shell runs");
                let mut expected = value.as_slice();
                if template.contains("$(") {
                    while let [rest @ .., b'\n'] = expected {
                        expected = rest;
                    }
                }
                assert_eq!(
                    out.stdout, expected,
                    "{shell}: {template} with {value:?}: {line:?}"
                );
            }
        }
    }

    #[test]
    fn values_are_bytes() {
        let values = Values {
            input: OsStr::from_bytes(b"in/caf\xe9.d/a\xff.jpg"),
            seq: 1,
            slot: Some(1),
        };
        let arg = expand_arg("{}|{/}|{//}|{.}|{/.}", values);
        assert_eq!(
            arg.as_bytes(),
            b"in/caf\xe9.d/a\xff.jpg|a\xff.jpg|in/caf\xe9.d|in/caf\xe9.d/a\xff|a\xff"
        );
        let line = expand_shell("cp {} \"{/.}\"", values);
        assert_eq!(line.as_bytes(), b"cp 'in/caf\xe9.d/a\xff.jpg' \"a\xff\"");
        assert_eq!(
            join_argv(&[OsStr::from_bytes(b"a\xff b"), OsStr::new("c")]),
            "'a\\xff b' c"
        );
    }

    #[test]
    fn slot_left_unexpanded_when_unknown() {
        let values = Values {
            input: OsStr::new(""),
            seq: 1,
            slot: None,
        };
        assert_eq!(expand_arg("w{%}", values), "w{%}");
    }

    #[test]
    fn detects_replacements() {
        assert!(has_replacement("x{#}"));
        assert!(!has_replacement("{x}"));
        assert!(refers_to_input("{/.}.png"));
        assert!(!refers_to_input("{#}"));
    }
}
