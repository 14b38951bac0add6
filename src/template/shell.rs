//! How `/bin/sh` reads each spot of a `sh` line, and how a value is quoted there.
//!
//! The line is scanned as the shell scans it, up to each replacement string: outside
//! quotes, inside `"..."` or inside `'...'` (at any depth of `$(...)`, which starts afresh)
//! a value can be quoted so that it reaches the command as the literal text it is. Other
//! spots (inside backquotes, `${...}`, `$((...))`, `$[...]`, `$'...'` or a comment, right
//! after a `\` or a `$`, anywhere after a here-document) are refused: the value could not
//! be quoted there with certainty.

/// How a value is quoted at its spot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// Outside quotes: safe text as is, anything else single-quoted.
    Unquoted,
    /// Inside `"..."`: `$`, `` ` ``, `"` and `\` backslash-escaped.
    Double,
    /// Inside `'...'`: each `'` closed, escaped and reopened (`'\''`).
    Single,
}

/// Where a value cannot go, as the end of a sentence ("`{}` in `sh` ...").
pub type Refusal = &'static str;

/// Quote `value` (bytes, as a file name is) for `context`.
pub fn quote(context: Context, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 2);
    match context {
        Context::Unquoted => {
            let safe = !value.is_empty()
                && value
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./:,+@%".contains(b));
            if safe {
                // One word, never an assignment, a glob, a comment or a tilde.
                out.extend_from_slice(value);
            } else {
                out.push(b'\'');
                out.extend_from_slice(&quote(Context::Single, value));
                out.push(b'\'');
            }
        }
        Context::Double => {
            for &b in value {
                if matches!(b, b'$' | b'`' | b'"' | b'\\') {
                    out.push(b'\\');
                }
                out.push(b);
            }
        }
        Context::Single => {
            for &b in value {
                if b == b'\'' {
                    out.extend_from_slice(b"'\\''");
                } else {
                    out.push(b);
                }
            }
        }
    }
    out
}

/// One frame of the shell's reading: what the text at hand is inside of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frame {
    /// Commands: the line itself (`nested: false`) or inside `$(...)`, with the `(` open.
    Code {
        nested: bool,
        parens: usize,
    },
    Double,
    Single,
    /// `$'...'`.
    Ansi,
    Backtick,
    /// `${...}`.
    Param,
    /// `$((...))` or `((...))`, with the `(` open inside.
    Arith {
        parens: usize,
    },
    /// `$[...]`, bash's old arithmetic.
    OldArith,
    /// From `#` to the end of the line.
    Comment,
}

/// The reading of a `sh` line.
#[derive(Debug, Default)]
pub struct Scan {
    /// Each replacement string's byte offset, and its context or why it has none.
    pub spots: Vec<(usize, Result<Context, Refusal>)>,
    /// Why the line does not end where it began (an open quote), if it does not.
    pub unterminated: Option<Refusal>,
}

/// Read `line`; `placeholder(rest)` gives the length of the replacement string that
/// starts `rest`, if one does.
pub fn scan(line: &str, placeholder: impl Fn(&str) -> Option<usize>) -> Scan {
    let mut reader = Reader {
        bytes: line.as_bytes(),
        stack: vec![Frame::Code {
            nested: false,
            parens: 0,
        }],
        lost: None,
        word_start: true,
        pending: None,
        placeholder_at: |j: usize| {
            line.as_bytes().get(j) == Some(&b'{') && placeholder(&line[j..]).is_some()
        },
    };
    let mut out = Scan::default();
    let mut i = 0;
    while i < line.len() {
        if line.as_bytes()[i] == b'{'
            && let Some(len) = placeholder(&line[i..])
        {
            let place = match (reader.pending.take(), reader.lost) {
                (Some(why), _) | (None, Some(why)) => Err(why),
                (None, None) => context(&reader.stack),
            };
            out.spots.push((i, place));
            reader.word_start = false;
            i += len;
        } else {
            reader.pending = None;
            i += reader.step(i);
        }
    }
    if reader.lost.is_none() {
        out.unterminated = match reader.stack.last() {
            Some(Frame::Double) => Some("ends inside a double quote"),
            Some(Frame::Single) => Some("ends inside a single quote"),
            Some(Frame::Ansi) => Some("ends inside `$'...'`"),
            Some(Frame::Backtick) => Some("ends inside backquotes"),
            Some(Frame::Param) => Some("ends inside `${...}`"),
            Some(Frame::Arith { .. } | Frame::OldArith) => Some("ends inside `((...))`"),
            Some(Frame::Code { nested: true, .. }) => Some("ends inside `$(...)`"),
            Some(Frame::Code { nested: false, .. } | Frame::Comment) | None => None,
        };
    }
    out
}

/// The context of a spot with `stack` open.
fn context(stack: &[Frame]) -> Result<Context, Refusal> {
    for frame in stack {
        match frame {
            Frame::Backtick => return Err("sits inside backquotes"),
            Frame::Param => return Err("sits inside `${...}`"),
            Frame::Arith { .. } | Frame::OldArith => {
                return Err("sits inside `$((...))` or `((...))`");
            }
            Frame::Ansi => return Err("sits inside `$'...'`"),
            Frame::Comment => return Err("sits in a shell comment"),
            Frame::Code { .. } | Frame::Double | Frame::Single => {}
        }
    }
    Ok(match stack.last() {
        Some(Frame::Double) => Context::Double,
        Some(Frame::Single) => Context::Single,
        _ => Context::Unquoted,
    })
}

/// The scanner's state between two characters of the line.
struct Reader<'a, P> {
    bytes: &'a [u8],
    stack: Vec<Frame>,
    /// Once set, the shell's reading cannot be followed further: no later spot is quoted.
    lost: Option<Refusal>,
    /// At the start of a word (where `#` starts a comment and `((` arithmetic).
    word_start: bool,
    /// Set by a `\` or `$` right before a replacement string.
    pending: Option<Refusal>,
    placeholder_at: P,
}

impl<P: Fn(usize) -> bool> Reader<'_, P> {
    fn at(&self, i: usize) -> Option<u8> {
        self.bytes.get(i).copied()
    }

    fn lose(&mut self, why: Refusal) {
        self.lost.get_or_insert(why);
    }

    /// Read the character at `i` (not a replacement string); returns how far to step.
    fn step(&mut self, i: usize) -> usize {
        let b = self.bytes[i];
        let Some(&top) = self.stack.last() else {
            return 1;
        };
        match top {
            Frame::Code { nested, parens } => return self.code(i, b, nested, parens),
            Frame::Double => match b {
                b'"' => self.pop(),
                b'\\' => return self.backslash(i),
                b'$' => return self.dollar(i, false),
                b'`' => self.stack.push(Frame::Backtick),
                _ => {}
            },
            Frame::Single if b == b'\'' => self.pop(),
            Frame::Single => {}
            Frame::Ansi => match b {
                b'\\' => return self.backslash(i),
                b'\'' => self.pop(),
                _ => {}
            },
            Frame::Backtick => match b {
                b'\\' => return self.backslash(i),
                b'`' => self.pop(),
                b'$' if matches!(self.at(i + 1), Some(b'(' | b'{' | b'\'')) => {
                    self.lose("comes after an expansion inside backquotes")
                }
                b'\'' | b'"' | b'#' => self.lose("comes after quotes inside backquotes"),
                _ => {}
            },
            Frame::Param => {
                let n = self.stack.len();
                let in_double = n >= 2 && self.stack[n - 2] == Frame::Double;
                match b {
                    b'}' => self.pop(),
                    b'\\' => return self.backslash(i),
                    b'$' => return self.dollar(i, false),
                    b'`' => self.stack.push(Frame::Backtick),
                    b'\'' if !in_double => self.stack.push(Frame::Single),
                    b'"' if !in_double => self.stack.push(Frame::Double),
                    b'\'' | b'"' => self.lose("comes after quotes inside `\"${...}\"`"),
                    _ => {}
                }
            }
            Frame::Arith { parens } => match b {
                b'(' => self.set_parens(parens + 1),
                b')' if parens > 0 => self.set_parens(parens - 1),
                b')' if self.at(i + 1) == Some(b')') => {
                    self.pop();
                    return 2;
                }
                b')' => self.lose("comes after a `((` that does not close with `))`"),
                b'$' => return self.dollar(i, false),
                b'`' => self.stack.push(Frame::Backtick),
                b'\'' | b'"' => self.lose("comes after quotes inside `((...))`"),
                _ => {}
            },
            Frame::OldArith => match b {
                b']' => self.pop(),
                b'$' => return self.dollar(i, false),
                b'`' => self.stack.push(Frame::Backtick),
                b'\'' | b'"' => self.lose("comes after quotes inside `$[...]`"),
                _ => {}
            },
            Frame::Comment => {
                if b == b'\n' {
                    self.pop();
                    self.word_start = true;
                }
            }
        }
        1
    }

    /// A character of commands (outside quotes).
    fn code(&mut self, i: usize, b: u8, nested: bool, parens: usize) -> usize {
        let starts = self.word_start;
        self.word_start = matches!(
            b,
            b' ' | b'\t' | b'\n' | b';' | b'&' | b'|' | b'(' | b')' | b'<' | b'>'
        );
        match b {
            b'\'' => self.stack.push(Frame::Single),
            b'"' => self.stack.push(Frame::Double),
            b'`' => self.stack.push(Frame::Backtick),
            b'#' if starts => self.stack.push(Frame::Comment),
            b'\\' => return self.backslash(i),
            b'$' => return self.dollar(i, true),
            b'<' if self.at(i + 1) == Some(b'<') => {
                self.lose("comes after a here-document (`<<`)");
                return 2;
            }
            b'(' if starts && self.at(i + 1) == Some(b'(') => {
                self.stack.push(Frame::Arith { parens: 0 });
                return 2;
            }
            b'(' if nested => self.set_parens(parens + 1),
            b')' if nested && parens == 0 => self.pop(),
            b')' if nested => self.set_parens(parens - 1),
            b'c' if starts && nested && self.keyword(i, b"case") => {
                self.lose("comes after a `case` inside `$(...)`");
            }
            _ => {}
        }
        1
    }

    /// Does the word `word` start at `i`?
    fn keyword(&self, i: usize, word: &[u8]) -> bool {
        self.bytes[i..].starts_with(word)
            && matches!(self.at(i + word.len()), Some(b' ' | b'\t' | b'\n'))
    }

    /// A `\` outside single quotes escapes the next character.
    fn backslash(&mut self, i: usize) -> usize {
        if (self.placeholder_at)(i + 1) {
            self.pending = Some("follows a backslash");
            return 1;
        }
        2
    }

    /// A `$` outside single quotes: what it opens. `code`: outside quotes, where `$'`
    /// opens `$'...'`.
    fn dollar(&mut self, i: usize, code: bool) -> usize {
        if (self.placeholder_at)(i + 1) {
            self.pending = Some("follows a `$`");
            return 1;
        }
        match (self.at(i + 1), self.at(i + 2)) {
            (Some(b'('), Some(b'(')) => {
                self.stack.push(Frame::Arith { parens: 0 });
                3
            }
            (Some(b'('), _) => {
                self.stack.push(Frame::Code {
                    nested: true,
                    parens: 0,
                });
                self.word_start = true;
                2
            }
            (Some(b'{'), _) => {
                self.stack.push(Frame::Param);
                2
            }
            (Some(b'['), _) => {
                self.stack.push(Frame::OldArith);
                2
            }
            (Some(b'\''), _) if code => {
                self.stack.push(Frame::Ansi);
                2
            }
            _ => 1,
        }
    }

    fn pop(&mut self) {
        if self.stack.len() > 1 {
            self.stack.pop();
        }
    }

    fn set_parens(&mut self, n: usize) {
        if let Some(Frame::Code { parens, .. } | Frame::Arith { parens }) = self.stack.last_mut() {
            *parens = n;
        }
    }
}
