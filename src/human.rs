//! Durations, sizes and names written for people, the same in the terminal and the app.

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
}
