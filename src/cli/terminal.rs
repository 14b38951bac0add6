//! Text for a terminal: what a task or a file name holds is shown, never obeyed.
//!
//! A task's stderr, a file's name or a manifest's string may hold control characters
//! (`ESC ] 52` writes the clipboard, `ESC ] 0` the window title, `ESC [ 2J` clears the
//! screen). Everything the command line prints passes through [`escape`], which writes
//! each control character as text: C0 and DEL as `\x1b`, C1 as `\u{9b}`. A line break
//! and a tab stay as they are (they move the cursor, nothing more). The progress bar's
//! own drawing (indicatif) does not pass through here: it holds no task text.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Is `c` shown escaped?
fn is_control(c: char) -> bool {
    c.is_control() && c != '\n' && c != '\t'
}

/// `text` with every control character but `\n` and `\t` written out.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            c if !is_control(c) => out.push(c),
            c if (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
    }
    Cow::Owned(out)
}

/// JSON text with DEL and the C1 controls (which JSON lets through raw) written as
/// `\u00XX` escapes: the same JSON value, safe on a terminal. (JSON escapes C0 itself.)
pub fn escape_json(json: &str) -> Cow<'_, str> {
    let raw = |c: char| c == '\u{7f}' || ('\u{80}'..='\u{9f}').contains(&c);
    if !json.chars().any(raw) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 8);
    for c in json.chars() {
        if raw(c) {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A serde_json formatter that writes DEL and the C1 controls as `\u00XX`, as
/// [`escape_json`] does, for JSON streamed to standard output.
pub struct JsonFormatter;

impl serde_json::ser::Formatter for JsonFormatter {
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        writer.write_all(escape_json(fragment).as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_written_out() {
        assert_eq!(
            escape("a\x1b]52;c;SGk=\x07b\r\x1b[2J\x7f\u{9b}c\n\td"),
            "a\\x1b]52;c;SGk=\\x07b\\x0d\\x1b[2J\\x7f\\u{9b}c\n\td"
        );
        assert!(matches!(escape("plain\ttext\n"), Cow::Borrowed(_)));
    }

    #[test]
    fn json_stays_the_same_value() {
        let value = serde_json::json!({"name": "a\u{1b}[2J\u{9b}\u{7f}b"});
        let text = serde_json::to_string(&value).expect("json");
        let safe = escape_json(&text);
        assert!(!safe.chars().any(|c| c.is_control()), "{safe}");
        let back: serde_json::Value = serde_json::from_str(&safe).expect("still JSON");
        assert_eq!(back, value);
        let mut streamed = Vec::new();
        let mut ser = serde_json::Serializer::with_formatter(&mut streamed, JsonFormatter);
        serde::Serialize::serialize(&value, &mut ser).expect("streamed");
        assert_eq!(String::from_utf8_lossy(&streamed), safe);
    }
}
