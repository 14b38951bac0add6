//! The worker protocol (DESIGN §3): JSON lines, items to the worker's fd 3, replies from
//! its fd 4.
//!
//! ```text
//! poolscope → worker   {"id": 7, "input": "photos/a.jpg"}
//! worker → poolscope   {"ready": true}                       once, before any reply
//!                      {"id": 7, "ok": <any JSON>, "start_ns": 1, "end_ns": 2}
//!                      {"id": 7, "error": "text, e.g. a traceback"}
//! ```
//!
//! `start_ns` and `end_ns` are optional readings of CLOCK_MONOTONIC taken by the worker
//! around the item. EOF on fd 3 asks the worker to exit.

use serde::Deserialize;
use serde_json::value::RawValue;

/// The descriptor a worker reads items from.
pub const ITEMS_FD: i32 = 3;
/// The descriptor a worker writes replies to.
pub const REPLIES_FD: i32 = 4;

/// One work item as a worker receives it.
#[derive(Debug, Deserialize)]
pub struct Item<'a> {
    pub id: u64,
    #[serde(borrow)]
    pub input: &'a RawValue,
}

/// Parse one item line (without or with its newline).
pub fn parse_item(line: &[u8]) -> Result<Item<'_>, String> {
    serde_json::from_slice(line).map_err(|e| format!("not a work item: {e}"))
}

/// Append the item line `{"id":id,"input":input}` to `buf`; `input` is JSON text.
pub fn write_item(buf: &mut Vec<u8>, id: u64, input: &str) {
    buf.extend_from_slice(b"{\"id\":");
    buf.extend_from_slice(id.to_string().as_bytes());
    buf.extend_from_slice(b",\"input\":");
    buf.extend_from_slice(input.as_bytes());
    buf.extend_from_slice(b"}\n");
}

/// What a worker said in one line of fd 4.
#[derive(Debug, PartialEq)]
pub enum Reply<'a> {
    /// `{"ready": true}`: started and initialised.
    Ready,
    /// The answer for item `id`.
    Done {
        id: u64,
        start_ns: Option<u64>,
        end_ns: Option<u64>,
        /// The JSON result, or the error text.
        result: Result<&'a str, String>,
    },
}

/// Unknown fields are allowed, so a worker may say more than poolscope reads.
#[derive(Deserialize)]
struct RawReply<'a> {
    ready: Option<bool>,
    id: Option<u64>,
    /// Present (even as `null`) or absent.
    #[serde(default, borrow, deserialize_with = "present")]
    ok: Option<&'a RawValue>,
    error: Option<String>,
    start_ns: Option<u64>,
    end_ns: Option<u64>,
}

/// A field that is there, whatever its value (`null` included).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// Parse one reply line; an error says what is wrong with it.
pub fn parse_reply(line: &[u8]) -> Result<Reply<'_>, String> {
    let raw: RawReply<'_> =
        serde_json::from_slice(line).map_err(|e| format!("not a protocol reply ({e})"))?;
    match raw {
        RawReply {
            ready: Some(true),
            id: None,
            ok: None,
            error: None,
            ..
        } => Ok(Reply::Ready),
        RawReply {
            ready: None,
            id: Some(id),
            ok,
            error,
            start_ns,
            end_ns,
        } => {
            let result = match (ok, error) {
                (Some(ok), None) => Ok(ok.get()),
                (None, Some(error)) => Err(error),
                _ => return Err("a reply needs exactly one of \"ok\" and \"error\"".to_string()),
            };
            Ok(Reply::Done {
                id,
                start_ns,
                end_ns,
                result,
            })
        }
        _ => Err("a reply is {\"ready\": true} or has an \"id\"".to_string()),
    }
}

/// Append a successful reply line; `value` is JSON text.
pub fn write_ok(buf: &mut Vec<u8>, id: u64, start_ns: u64, end_ns: u64, value: &str) {
    write_head(buf, id, start_ns, end_ns);
    buf.extend_from_slice(b",\"ok\":");
    buf.extend_from_slice(value.as_bytes());
    buf.extend_from_slice(b"}\n");
}

/// Append a failed reply line.
pub fn write_error(buf: &mut Vec<u8>, id: u64, start_ns: u64, end_ns: u64, error: &str) {
    write_head(buf, id, start_ns, end_ns);
    buf.extend_from_slice(b",\"error\":");
    // Serializing a str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *buf, error);
    buf.extend_from_slice(b"}\n");
}

fn write_head(buf: &mut Vec<u8>, id: u64, start_ns: u64, end_ns: u64) {
    use std::io::Write;
    let _ = write!(
        buf,
        "{{\"id\":{id},\"start_ns\":{start_ns},\"end_ns\":{end_ns}"
    );
}

/// CLOCK_MONOTONIC now, in nanoseconds (what `Instant` and Python's `time.monotonic_ns()`
/// read).
pub fn monotonic_ns() -> u64 {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .unwrap_or_else(|_| nix::sys::time::TimeSpec::new(0, 0));
    (t.tv_sec().max(0) as u64) * 1_000_000_000 + t.tv_nsec().max(0) as u64
}

/// The first `max` bytes of `bytes` for an error message, lossily decoded, marked if cut.
pub fn excerpt(bytes: &[u8], max: usize) -> String {
    let cut = &bytes[..bytes.len().min(max)];
    let mut text = String::from_utf8_lossy(cut).into_owned();
    if bytes.len() > max {
        text.push_str(&format!("… ({} bytes in all)", bytes.len()));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_round_trip() {
        let mut buf = Vec::new();
        write_item(&mut buf, 7, "\"a b\"");
        let item = parse_item(&buf).expect("item");
        assert_eq!(item.id, 7);
        assert_eq!(item.input.get(), "\"a b\"");
    }

    #[test]
    fn replies_parse() {
        assert_eq!(parse_reply(b"{\"ready\": true}\n"), Ok(Reply::Ready));
        let mut buf = Vec::new();
        write_ok(&mut buf, 3, 10, 20, "[1,2]");
        assert_eq!(
            parse_reply(&buf),
            Ok(Reply::Done {
                id: 3,
                start_ns: Some(10),
                end_ns: Some(20),
                result: Ok("[1,2]")
            })
        );
        assert!(matches!(
            parse_reply(b"{\"id\": 5, \"ok\": null}"),
            Ok(Reply::Done {
                id: 5,
                result: Ok("null"),
                ..
            })
        ));
        buf.clear();
        write_error(&mut buf, 4, 1, 2, "Traceback\n  \"x\"");
        let Ok(Reply::Done { result, .. }) = parse_reply(&buf) else {
            panic!("not a reply");
        };
        assert_eq!(result, Err("Traceback\n  \"x\"".to_string()));
    }

    #[test]
    fn garbage_is_refused() {
        assert!(parse_reply(b"hello").is_err());
        assert!(parse_reply(b"{\"id\": 1}").is_err());
        assert!(parse_reply(b"{\"id\": 1, \"ok\": 1, \"error\": \"x\"}").is_err());
        assert!(parse_reply(b"{\"ready\": false}").is_err());
        assert!(parse_reply(b"{\"id\": 1, \"ok\": 1, \"extra\": 2}").is_ok());
    }

    #[test]
    fn excerpts_are_cut() {
        assert_eq!(excerpt(b"abc", 10), "abc");
        assert!(excerpt(&[b'x'; 300], 10).starts_with("xxxxxxxxxx…"));
    }
}
