//! What the manifest fuzzer feeds the loader: values (plausible for their key half of the
//! time, hostile otherwise), manifests built from a grammar of the keys, manifests that
//! load with a value or two replaced, and random changes to any manifest's bytes.

/// xorshift64*: small, seeded, the same sequence on every machine.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

pub const NUMBERS: &[&str] = &[
    "0",
    "1",
    "2",
    "3",
    "-1",
    "-9223372036854775808",
    "9223372036854775807",
    "18446744073709551615",
    "99999999999999999999999",
    "4294967296",
    "4097",
    "31557601",
    "1e19",
    "1e400",
    "-0.0",
    "1.5",
    "0.001",
    "nan",
    "inf",
    "-inf",
    "0x7fffffff",
    "0o777",
    "0b1",
    "1_000",
];

pub const STRINGS: &[&str] = &[
    "\"\"",
    "\" \"",
    "\"30s\"",
    "\"500000000000y\"",
    "\"1y\"",
    "\"367 days\"",
    "\"2m 30s\"",
    "\"-5s\"",
    "\"1e19\"",
    "\"never\"",
    "\"now\"",
    "\"longest-first\"",
    "\"noop\"",
    "\"primes\"",
    "\"work.py:f\"",
    "\"work.py:\"",
    "\":f\"",
    "\"a:b:c\"",
    "\"./worker\"",
    "\"sub\"",
    "\"../..\"",
    "\"/\"",
    "\"a.txt\"",
    "\"*.txt\"",
    "\"**/*\"",
    "\"sub/*.{txt,jpg}\"",
    "\"{a,b\"",
    "\"[\"",
    "\"[!]\"",
    "\"\\\\\"",
    "\"{}\"",
    "\"{/}{//}{.}{/.}{#}{%}\"",
    "\"a\\nb\"",
    "\"\\r\\n\"",
    "\"\\u0000\"",
    "\"\\u001b[2J\\u001b]52;c;eA==\\u0007\"",
    "\"\\t\"",
    "\"é日本語🦀\"",
    "\"\\u202e\\u200b\"",
    "'literal \\ no escapes'",
    "\"\"\"\nmulti\nline\"\"\"",
    "'''\nraw\n'''",
    "\"\\uD800\"",
    "\"\\x41\"",
    "\"unterminated",
];

pub const OTHERS: &[&str] = &[
    "true",
    "false",
    "[]",
    "[1, 2, 3]",
    "[1]",
    "[1, 20]",
    "[20, 1]",
    "[-5, 5]",
    "[1, 1e10]",
    "[1, \"2\"]",
    "[\"a\", 1]",
    "[[1, 2]]",
    "[\"true\"]",
    "[\"\"]",
    "[\"echo\", \"{}\"]",
    "[\"sh\", \"-c\", \"exit 0\"]",
    "[\"./worker\"]",
    "{}",
    "{ a = 1 }",
    "{ A = \"x\", B = \"y\" }",
    "{ A = 1 }",
    "{ \"a\\nb\" = \"c\" }",
    "1979-05-27T07:32:00Z",
    "1979-05-27",
    "07:32:00",
    "",
];

/// A value written in TOML: plausible for `key` half of the time, anything otherwise.
pub fn value(rng: &mut Rng, key: &str) -> String {
    if rng.one_in(2) {
        let plausible: &[&str] = match key {
            "workers" => &["1", "2", "3", "4096", "0"],
            "timeout" => &["\"1s\"", "30", "0.5", "\"1y\"", "\"250ms\""],
            "retries" | "max_tasks_per_worker" => &["0", "1", "3", "4294967295"],
            "halt" => &["\"never\"", "\"soon\"", "\"now\""],
            "order" => &["\"listed\"", "\"longest-first\""],
            "pin" => &["true", "false"],
            "name" => &["\"x\"", "\"a b\""],
            "cmd" => &[
                "[\"true\"]",
                "[\"echo\", \"{}\"]",
                "[\"./worker\"]",
                "[\"sub/x\"]",
            ],
            "sh" => &["\"echo {}\"", "\"true\"", "\"echo '{}' \\\"{}\\\"\""],
            "env" => &["{ A = \"1\" }", "{}"],
            "cwd" => &["\"sub\"", "\".\"", "\"missing\""],
            "inputs" => &["\"*.txt\"", "[\"a\", \"b\"]", "\"sub/*\"", "\"none*\""],
            "range" => &["[1, 5]", "[0, 0]", "[-3, 3]"],
            "python" => &["\"work.py:f\"", "\"other.py:g\""],
            "builtin" => &["\"noop\"", "\"spin\"", "\"primes\""],
            "init" => &["\"work.py:setup\""],
            _ => &["1"],
        };
        return rng.pick(plausible).to_string();
    }
    match rng.below(40) {
        0..=12 => rng.pick(NUMBERS).to_string(),
        13..=25 => rng.pick(STRINGS).to_string(),
        26..=38 => rng.pick(OTHERS).to_string(),
        _ => huge_value(rng),
    }
}

/// A value of another size altogether.
pub fn huge_value(rng: &mut Rng) -> String {
    match rng.below(5) {
        0 => format!("\"{}\"", "x".repeat(20_000)),
        1 => format!("\"{}\"", "é\\n".repeat(2_000)),
        2 => format!("[{}]", vec!["1"; 2_000].join(", ")),
        3 => {
            let depth = 1 + rng.below(300);
            format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
        }
        _ => format!("{}9", "9".repeat(1 + rng.below(400))),
    }
}

pub const TABLES: &[(&str, &[&str])] = &[
    (
        "[pool]",
        &[
            "workers",
            "timeout",
            "retries",
            "halt",
            "order",
            "pin",
            "max_tasks_per_worker",
        ],
    ),
    ("[[task]]", &["name", "cmd", "sh", "env", "cwd", "timeout"]),
    (
        "[each]",
        &["inputs", "range", "cmd", "sh", "env", "cwd", "timeout"],
    ),
    (
        "[worker]",
        &[
            "python",
            "cmd",
            "builtin",
            "init",
            "max_tasks_per_worker",
            "timeout",
            "env",
        ],
    ),
];

/// A table header, now and then malformed.
pub fn header(rng: &mut Rng, header: &str) -> String {
    match rng.below(40) {
        0 => header.trim_end_matches(']').to_string(),
        1 => format!("[{header}]"),
        2 => header.trim_start_matches('[').to_string(),
        3 => format!("{header} # ]"),
        4 => header.to_uppercase(),
        5 => format!("{}.x]", header.trim_end_matches(']')),
        _ => header.to_string(),
    }
}

/// A key line, now and then a stray one.
pub fn key_line(rng: &mut Rng, keys: &[&str]) -> String {
    let key = rng.pick(keys);
    match rng.below(40) {
        0 => format!("{key}s = {}", value(rng, key)),
        1 => format!("{key} ="),
        2 => format!("= {}", value(rng, key)),
        3 => format!("\"{key}\" = {}", value(rng, key)),
        4 => format!("{key}.x = {}", value(rng, key)),
        5 => format!("{key} = {} {}", value(rng, key), value(rng, key)),
        _ => format!("{key} = {}", value(rng, key)),
    }
}

/// A manifest from the grammar: tables in any order, any of their keys, some twice.
pub fn grammar_manifest(rng: &mut Rng) -> Vec<u8> {
    let mut lines = Vec::new();
    if rng.one_in(3) {
        lines.push(key_line(rng, &["name"]));
    }
    for _ in 0..1 + rng.below(4) {
        let (head, keys) = TABLES[rng.below(TABLES.len())];
        lines.push(header(rng, head));
        for _ in 0..rng.below(keys.len() + 2) {
            lines.push(key_line(rng, keys));
        }
    }
    if rng.one_in(10) {
        lines.push(key_line(rng, &["name", "workers", "surprise"]));
    }
    let mut text = lines.join("\n").into_bytes();
    text.push(b'\n');
    text
}

/// Manifests that load in [`grammar_dir`], each key of the grammar in one of them.
pub const SKELETONS: &[&str] = &[
    "name = \"s\"\n[pool]\nworkers = 2\ntimeout = \"30s\"\nretries = 1\nhalt = \"soon\"\norder = \"listed\"\npin = false\nmax_tasks_per_worker = 0\n[[task]]\nname = \"t\"\ncmd = [\"true\"]\nenv = { A = \"1\" }\ncwd = \"sub\"\ntimeout = 5\n[each]\ninputs = \"*.txt\"\nsh = \"echo {}\"\nenv = {}\ncwd = \".\"\ntimeout = \"1s\"\n",
    "[pool]\nworkers = 3\n[worker]\nbuiltin = \"noop\"\nmax_tasks_per_worker = 2\ntimeout = \"2s\"\nenv = { A = \"1\" }\n[each]\nrange = [1, 5]\ntimeout = 1\n",
    "[worker]\ncmd = [\"./worker\"]\n[each]\ninputs = [\"a\", \"b\"]\n",
    "[pool]\nretries = 2\nhalt = \"never\"\n[worker]\ncmd = [\"./worker\"]\n[each]\nrange = [1, 3]\n",
    "[pool]\nretries = 2\nhalt = \"soon\"\n[[task]]\ncmd = [\"false\"]\n",
    "[[task]]\nsh = \"exit 0\"\n[[task]]\ncmd = [\"sub/x\", \"{#}\"]\n[each]\nrange = [-2, 2]\ncmd = [\"echo\", \"{}\", \"{%}\"]\n",
];

/// A manifest that loads, with one or two of its values replaced.
pub fn retouched(rng: &mut Rng) -> Vec<u8> {
    let skeleton = SKELETONS[rng.below(SKELETONS.len())];
    let mut lines: Vec<String> = skeleton.lines().map(str::to_string).collect();
    for _ in 0..1 + rng.below(2) {
        let at = rng.below(lines.len());
        if let Some((key, _)) = lines[at].split_once(" = ") {
            let key = key.to_string();
            lines[at] = format!("{key} = {}", value(rng, &key));
        }
    }
    let mut text = lines.join("\n").into_bytes();
    text.push(b'\n');
    text
}

/// Bytes worth inserting anywhere: brackets, quotes, control characters, unicode, and
/// bytes that are not UTF-8.
pub const SPLINTERS: &[&[u8]] = &[
    b"[",
    b"]",
    b"{",
    b"}",
    b"\"",
    b"'",
    b"=",
    b",",
    b"#",
    b".",
    b"\n",
    b"\r",
    b"\t",
    b"\0",
    b"\x1b",
    b"\x7f",
    b"\\",
    b"\xff",
    b"\xc3",
    "é".as_bytes(),
    "🦀".as_bytes(),
    "\u{feff}".as_bytes(),
    b"1",
    b"-",
    b"e",
];

/// `text` with one to three random changes.
pub fn mutate(rng: &mut Rng, text: &[u8]) -> Vec<u8> {
    let mut lines: Vec<Vec<u8>> = text.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    for _ in 0..1 + rng.below(3) {
        let n = lines.len().max(1);
        let at = rng.below(n);
        match rng.below(9) {
            // Another value for a key.
            0 | 1 => {
                if let Some(line) = lines.get_mut(at)
                    && let Some(eq) = line.iter().position(|&b| b == b'=')
                {
                    let key = String::from_utf8_lossy(&line[..eq]).trim().to_string();
                    line.truncate(eq + 1);
                    line.push(b' ');
                    line.extend(value(rng, &key).into_bytes());
                }
            }
            2 => {
                if at < lines.len() {
                    lines.remove(at);
                }
            }
            // A key or a table twice.
            3 => {
                if let Some(line) = lines.get(at).cloned() {
                    lines.insert(rng.below(lines.len() + 1), line);
                }
            }
            4 => {
                let (head, keys) = TABLES[rng.below(TABLES.len())];
                let line = if rng.one_in(3) {
                    header(rng, head)
                } else {
                    key_line(rng, keys)
                };
                lines.insert(rng.below(lines.len() + 1), line.into_bytes());
            }
            5 | 6 => {
                if let Some(line) = lines.get_mut(at) {
                    let splinter = SPLINTERS[rng.below(SPLINTERS.len())];
                    let pos = rng.below(line.len() + 1);
                    line.splice(pos..pos, splinter.iter().copied());
                }
            }
            7 => {
                if let Some(line) = lines.get_mut(at)
                    && !line.is_empty()
                {
                    let pos = rng.below(line.len());
                    line.remove(pos);
                }
            }
            _ => {
                let keep = rng.below(n + 1);
                lines.truncate(keep);
            }
        }
    }
    lines.join(&b'\n')
}
