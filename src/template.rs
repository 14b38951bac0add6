//! Replacement strings, as GNU parallel spells them.
//!
//! `{}` input, `{/}` basename, `{//}` dirname, `{.}` input without extension,
//! `{/.}` basename without extension, `{#}` task number (1-based), `{%}` worker slot
//! (1-based). Any other brace is literal text.
//!
//! In an argv template every element expands to exactly one argument, whatever the
//! substituted value holds. In a shell template every substituted value is single-quoted,
//! so a file named `a b; rm -rf ~ $(x)` stays data.

use std::fmt::Write as _;

/// The values a template can refer to.
#[derive(Debug, Clone, Copy)]
pub struct Values<'a> {
    /// The input (`{}`), empty for tasks without one.
    pub input: &'a str,
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

/// Expand `template`, passing each substituted value through `quote`.
fn expand_with(template: &str, values: Values<'_>, quote: fn(&str) -> String) -> String {
    let mut out = String::with_capacity(template.len() + values.input.len());
    let mut rest = template;
    while let Some(pos) = rest.find('{') {
        out.push_str(&rest[..pos]);
        rest = &rest[pos..];
        match token_at(rest) {
            Some((text, token)) => {
                let value = match (token, values.slot) {
                    (Token::Slot, None) => text.to_string(),
                    _ => quote(&render(token, values)),
                };
                out.push_str(&value);
                rest = &rest[text.len()..];
            }
            None => {
                out.push('{');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn render(token: Token, v: Values<'_>) -> String {
    match token {
        Token::Input => v.input.to_string(),
        Token::Basename => basename(v.input).to_string(),
        Token::Dirname => dirname(v.input).to_string(),
        Token::NoExt => strip_ext(v.input).to_string(),
        Token::BasenameNoExt => strip_ext(basename(v.input)).to_string(),
        Token::Seq => v.seq.to_string(),
        Token::Slot => v.slot.map(|s| s.to_string()).unwrap_or_default(),
    }
}

/// Expand one argv element: the result is one argument, never split.
pub fn expand_arg(template: &str, values: Values<'_>) -> String {
    expand_with(template, values, str::to_string)
}

/// Expand a shell line: every substituted value is single-quoted.
pub fn expand_shell(template: &str, values: Values<'_>) -> String {
    expand_with(template, values, shell_quote)
}

fn basename(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    match trimmed.rfind('/') {
        Some(i) => &trimmed[i + 1..],
        None => trimmed,
    }
}

fn dirname(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    match trimmed.rfind('/') {
        Some(0) => "/",
        Some(i) => &trimmed[..i],
        None => ".",
    }
}

/// Remove the extension of the last path component (`dir/a.b.jpg` → `dir/a.b`).
fn strip_ext(path: &str) -> &str {
    let name_start = path.rfind('/').map_or(0, |i| i + 1);
    match path[name_start..].rfind('.') {
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

/// Render an argv as one shell-readable line (for the joblog and the load report).
pub fn join_argv(argv: &[String]) -> String {
    let mut line = String::new();
    for (i, arg) in argv.iter().enumerate() {
        if i > 0 {
            line.push(' ');
        }
        let _ = write!(line, "{}", shell_quote(arg));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(input: &str) -> Values<'_> {
        Values {
            input,
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
    fn slot_left_unexpanded_when_unknown() {
        let values = Values {
            input: "",
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
