//! Durations, sizes, names and values written for people, the same in the terminal and
//! the app.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

/// A name or path as text: bytes that are not UTF-8 written `\xNN` (the name itself, as
/// a program is given it, keeps its bytes).
pub fn name(os: &OsStr) -> String {
    let mut out = String::with_capacity(os.len());
    for chunk in os.as_bytes().utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// Characters of a value a sentence shows before it cuts it short.
const EXCERPT_CHARS: usize = 60;

/// A value as a one-line sentence shows it: see [`one_line`], cut after
/// `EXCERPT_CHARS` characters.
pub fn excerpt(text: &str) -> String {
    one_line(text, EXCERPT_CHARS)
}

/// `text` on one line: control characters escaped as the command line writes them (a
/// line break is `\n`, a tab `\t`, ESC `\x1b`), and cut after `max` characters with `…`.
pub fn one_line(text: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() && (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// `1.234s`, or `2m03.4s` past a minute.
pub fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.3}s")
    } else {
        format!("{}m{:04.1}s", (s / 60.0).floor(), s % 60.0)
    }
}

/// `512 B`, `1.5 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Parse a size such as `100MiB`, `64KiB` or a bare number of bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size; write e.g. 100MiB, 64KiB or 1048576"))?;
    let mult = match unit.trim() {
        "" | "B" => 1,
        "K" | "KB" | "KiB" => 1 << 10,
        "M" | "MB" | "MiB" => 1 << 20,
        "G" | "GB" | "GiB" => 1 << 30,
        _ => return Err(format!("`{s}` has an unknown unit; use B, KiB, MiB or GiB")),
    };
    Ok(n.saturating_mul(mult))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_read_well() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 * 1024 * 1024 / 2), "1.5 MiB");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.500s");
        assert_eq!(seconds(Duration::from_secs(123)), "2m03.0s");
        use std::os::unix::ffi::OsStrExt as _;
        assert_eq!(
            name(OsStr::from_bytes(b"caf\xc3\xa9-\xff\xfe.txt")),
            "café-\\xff\\xfe.txt"
        );
    }

    #[test]
    fn excerpts_stay_on_one_short_line() {
        assert_eq!(excerpt("a\nb\t\u{1b}[2J"), "a\\nb\\t\\x1b[2J");
        let long = "é".repeat(100);
        assert_eq!(excerpt(&long), format!("{}…", "é".repeat(60)));
        assert_eq!(excerpt("plain"), "plain");
    }
}
