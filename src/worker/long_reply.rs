//! A reply line too long to hold whole (over [`super::HELD_RESULT`]), read as it arrives:
//! the value of its `"ok"` field is handed on in pieces (to a file), the fields a reply may
//! have besides are held, at most `max` bytes each, and once the line ends it is checked
//! as [`super::protocol::parse_reply`] checks a line. Of the `ok` value, only its strings
//! and brackets are checked as it goes by (one small enough to hold is parsed whole).

/// Bytes of the line kept for an error message.
const HEAD: usize = 200;

/// Keys longer than this are no field poolscope reads; only this much of one is kept.
const KEY_MAX: usize = 16;

/// The fields held for the check at the end of the line (`ok` goes on instead).
const HELD_KEYS: [&[u8]; 5] = [b"ready", b"id", b"error", b"start_ns", b"end_ns"];

/// A long reply line, part read.
#[derive(Debug)]
pub struct LongReply {
    at: At,
    /// The key being read, or the last one read (raw, between its quotes).
    key: Vec<u8>,
    /// A backslash came last in the key.
    key_escaped: bool,
    /// Where the value being read goes.
    to: To,
    value: Value,
    /// Raw JSON of the held fields, by key.
    held: Vec<(Vec<u8>, Vec<u8>)>,
    /// An `ok` field was read.
    ok: bool,
    /// Most bytes a held field may have.
    max: usize,
    /// The line's first bytes.
    head: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    /// Before the `{`.
    Start,
    /// After `{`: a key or `}`.
    FirstKey,
    /// After `,`: a key.
    Key,
    InKey,
    Colon,
    ValueStart,
    InValue,
    /// A `,` or the `}`.
    AfterValue,
    /// After the `}`: only the newline (and blanks).
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum To {
    Ok,
    Held,
    Skip,
}

/// Where a value being read stands.
#[derive(Debug, Default, Clone, Copy)]
struct Value {
    depth: u32,
    in_string: bool,
    escaped: bool,
    /// A number, `true`, `false` or `null`: it ends before a blank, `,`, `}` or `]`.
    scalar: bool,
}

/// How far a piece of the line took it.
#[derive(Debug, PartialEq, Eq)]
pub enum Fed {
    /// The line goes on.
    More,
    /// The line ended: its newline is the last of this many bytes of the piece.
    Ended(usize),
}

impl LongReply {
    /// A line whose held fields may have at most `max` bytes each.
    pub fn new(max: usize) -> Self {
        LongReply {
            at: At::Start,
            key: Vec::new(),
            key_escaped: false,
            to: To::Skip,
            value: Value::default(),
            held: Vec::new(),
            ok: false,
            max,
            head: Vec::new(),
        }
    }

    /// The line's first bytes, for an error message.
    pub fn head(&self) -> &[u8] {
        &self.head
    }

    /// Its closing brace has been read (a line that ends at end of file without its
    /// newline counts if so).
    pub fn complete(&self) -> bool {
        self.at == At::End
    }

    /// Read `piece`, handing the bytes of the `ok` value to `ok`; an error says what is
    /// wrong with the line.
    pub fn feed(&mut self, piece: &[u8], ok: &mut dyn FnMut(&[u8])) -> Result<Fed, String> {
        let room = HEAD.saturating_sub(self.head.len());
        self.head.extend_from_slice(&piece[..piece.len().min(room)]);
        let mut i = 0;
        while i < piece.len() {
            if self.at == At::ValueStart && !matches!(piece[i], b' ' | b'\t' | b'\r' | b'\n') {
                self.start_value(piece[i])?;
            }
            if self.at == At::InValue {
                let (len, ended) = self.value.scan(&piece[i..])?;
                self.take_value(&piece[i..i + len], ok)?;
                i += len;
                if ended {
                    self.at = At::AfterValue;
                }
                continue;
            }
            let b = piece[i];
            i += 1;
            if b == b'\n' {
                return match self.at {
                    At::End => Ok(Fed::Ended(i)),
                    _ => Err("the line ended before its closing brace".to_string()),
                };
            }
            self.step(b)?;
        }
        Ok(Fed::More)
    }

    /// One byte outside a value.
    fn step(&mut self, b: u8) -> Result<(), String> {
        let blank = matches!(b, b' ' | b'\t' | b'\r');
        match self.at {
            _ if blank && self.at != At::InKey => {}
            At::Start if b == b'{' => self.at = At::FirstKey,
            At::Start => return Err("a reply is a JSON object".to_string()),
            At::FirstKey if b == b'}' => self.at = At::End,
            At::FirstKey | At::Key if b == b'"' => {
                self.key.clear();
                self.key_escaped = false;
                self.at = At::InKey;
            }
            At::FirstKey | At::Key => return Err("a key is missing".to_string()),
            At::InKey => {
                if self.key_escaped {
                    self.key_escaped = false;
                } else if b == b'\\' {
                    self.key_escaped = true;
                } else if b == b'"' {
                    self.at = At::Colon;
                    return Ok(());
                }
                if self.key.len() < KEY_MAX {
                    self.key.push(b);
                }
            }
            At::Colon if b == b':' => {
                self.to = self.field()?;
                self.at = At::ValueStart;
            }
            At::Colon => return Err("a `:` is missing after a key".to_string()),
            // Values are read in `feed`.
            At::ValueStart | At::InValue => {}
            At::AfterValue if b == b',' => self.at = At::Key,
            At::AfterValue if b == b'}' => self.at = At::End,
            At::AfterValue => return Err("a `,` or `}` is missing after a value".to_string()),
            At::End => return Err("there is more after the reply's closing brace".to_string()),
        }
        Ok(())
    }

    /// A value starts with `b`, which it scans again.
    fn start_value(&mut self, b: u8) -> Result<(), String> {
        if matches!(b, b'}' | b']' | b',' | b':') {
            return Err("a value is missing".to_string());
        }
        self.value = Value {
            scalar: !matches!(b, b'"' | b'{' | b'['),
            ..Value::default()
        };
        self.at = At::InValue;
        Ok(())
    }

    /// Where the value of the key just read goes.
    fn field(&mut self) -> Result<To, String> {
        let key = self.key.as_slice();
        let to = if key == b"ok" {
            if std::mem::replace(&mut self.ok, true) {
                return Err("a reply has one \"ok\"".to_string());
            }
            To::Ok
        } else if HELD_KEYS.contains(&key) {
            if self.held.iter().any(|(k, _)| k == key) {
                return Err(format!(
                    "a reply has one \"{}\"",
                    String::from_utf8_lossy(key)
                ));
            }
            self.held.push((key.to_vec(), Vec::new()));
            To::Held
        } else {
            To::Skip
        };
        Ok(to)
    }

    /// Bytes of the value being read.
    fn take_value(&mut self, bytes: &[u8], ok: &mut dyn FnMut(&[u8])) -> Result<(), String> {
        match self.to {
            To::Ok => ok(bytes),
            To::Held => {
                if let Some((key, value)) = self.held.last_mut() {
                    if value.len() + bytes.len() > self.max {
                        return Err(format!(
                            "its \"{}\" is longer than {} bytes",
                            String::from_utf8_lossy(key),
                            self.max
                        ));
                    }
                    value.extend_from_slice(bytes);
                }
            }
            To::Skip => {}
        }
        Ok(())
    }

    /// The line as [`super::protocol::parse_reply`] checks it: the held fields, and
    /// `"ok": 0` standing for the value handed on.
    pub fn into_line(self) -> Vec<u8> {
        let mut line = b"{".to_vec();
        for (key, value) in &self.held {
            line.push(b'"');
            line.extend_from_slice(key);
            line.extend_from_slice(b"\":");
            line.extend_from_slice(value);
            line.push(b',');
        }
        if self.ok {
            line.extend_from_slice(b"\"ok\":0");
        } else {
            line.pop_if(|b| *b == b',');
        }
        line.push(b'}');
        line
    }
}

impl Value {
    /// Scan the start of `bytes`, from the value's first byte on: how many of them belong
    /// to it, and whether it ended with them.
    fn scan(&mut self, bytes: &[u8]) -> Result<(usize, bool), String> {
        for (i, &b) in bytes.iter().enumerate() {
            if self.scalar {
                if matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b',' | b'}' | b']') {
                    return Ok((i, true));
                }
                continue;
            }
            if b == b'\n' {
                return Err("the line ended inside a value".to_string());
            }
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                    if self.depth == 0 {
                        return Ok((i + 1, true));
                    }
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        return Ok((i + 1, true));
                    }
                }
                _ => {}
            }
        }
        Ok((bytes.len(), false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::protocol::{Reply, parse_reply};

    /// Feed `line` in pieces of `size`: the `ok` bytes, the line to check, and how many
    /// bytes the line took.
    fn read(line: &[u8], size: usize) -> Result<(Vec<u8>, Vec<u8>, usize), String> {
        let mut reply = LongReply::new(1000);
        let mut ok = Vec::new();
        let mut taken = 0;
        for piece in line.chunks(size) {
            match reply.feed(piece, &mut |b| ok.extend_from_slice(b))? {
                Fed::More => taken += piece.len(),
                Fed::Ended(n) => {
                    taken += n;
                    return Ok((ok, reply.into_line(), taken));
                }
            }
        }
        Err(format!("no end; complete: {}", reply.complete()))
    }

    #[test]
    fn the_ok_value_goes_on_whatever_its_kind_and_the_rest_is_checked() {
        let values: [&[u8]; 7] = [
            br#""a \"quoted\" } ] \\ string""#,
            br#"{"nested": [1, {"x": "}"}], "y": null}"#,
            b"[1, 2, [3]]",
            b"12345",
            b"-1.5e3",
            b"true",
            b"null",
        ];
        for value in values {
            for size in [1, 3, 1000] {
                let mut line = br#"{"start_ns": 5, "ok": "#.to_vec();
                line.extend_from_slice(value);
                line.extend_from_slice(br#" , "extra": {"k": "v"}, "id": 7}  "#);
                line.extend_from_slice(b"\nnext");
                let (ok, checked, taken) = read(&line, size).expect("a reply");
                assert_eq!(ok, value, "{}", String::from_utf8_lossy(value));
                assert_eq!(taken, line.len() - 4, "up to its newline");
                let Ok(Reply::Done {
                    id,
                    start_ns,
                    result,
                    ..
                }) = parse_reply(&checked)
                else {
                    panic!("{}", String::from_utf8_lossy(&checked));
                };
                assert_eq!((id, start_ns, result), (7, Some(5), Ok("0")));
            }
        }
    }

    #[test]
    fn held_fields_are_checked_at_the_end() {
        let line = b"{\"error\": \"boom \\\"x\\\"\", \"id\": 3}\n";
        let (ok, checked, _) = read(line, 2).expect("line");
        assert!(ok.is_empty());
        assert_eq!(
            parse_reply(&checked),
            Ok(Reply::Done {
                id: 3,
                start_ns: None,
                end_ns: None,
                result: Err("boom \"x\"".to_string())
            })
        );
        let (_, checked, _) = read(b"{\"id\": \"seven\", \"ok\": 1}\n", 4).expect("line");
        assert!(parse_reply(&checked).is_err(), "an id that is not a number");
        let (_, checked, _) = read(b"{\"ready\": true}\n", 4).expect("line");
        assert_eq!(parse_reply(&checked), Ok(Reply::Ready));
    }

    #[test]
    fn broken_lines_are_refused() {
        let bad: [&[u8]; 9] = [
            b"[1]\n",
            b"{\"ok\": 1\n",
            b"{\"ok\" 1}\n",
            b"{\"ok\": }\n",
            b"{\"ok\": 1 \"id\": 2}\n",
            b"{\"ok\": 1} x\n",
            b"{\"ok\": \"cut\n",
            b"{\"ok\": 1, \"ok\": 2}\n",
            b"{\"id\": 1, \"id\": 2}\n",
        ];
        for line in bad {
            assert!(read(line, 2).is_err(), "{}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn a_held_field_is_bounded() {
        let mut reply = LongReply::new(10);
        let line = b"{\"error\": \"0123456789abcdef\"}\n";
        let err = reply.feed(line, &mut |_| {}).expect_err("too long");
        assert!(err.contains("\"error\" is longer than 10 bytes"), "{err}");
        assert_eq!(reply.head(), line);
    }

    #[test]
    fn a_line_cut_short_is_not_complete() {
        let mut reply = LongReply::new(10);
        assert_eq!(reply.feed(b"{\"ok\": [1", &mut |_| {}), Ok(Fed::More));
        assert!(!reply.complete());
        assert_eq!(reply.feed(b"]}", &mut |_| {}), Ok(Fed::More));
        assert!(reply.complete(), "whole but for its newline");
    }
}
