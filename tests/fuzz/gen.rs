//! Inputs for the wire fuzzer: arbitrary bytes, and well-formed startup
//! packets, message streams and SQL-ish text that are then mutated (bytes
//! flipped, cut, inserted, length words set to edge values), since a
//! parser's bugs hide just past what it accepts.

use rand::rngs::StdRng;
use rand::Rng;

/// Bytes that parsers treat specially, drawn more often than chance would.
const INTERESTING: &[u8] = b"\0\xff\x80\xc3\xe2\x7f;'\"$-/*():\\\nEeQPBESDTZ";

/// Length words at the edges of what the framing accepts.
const EDGE_LENGTHS: &[i32] = &[
    -1,
    i32::MIN,
    0,
    3,
    4,
    5,
    7,
    8,
    9,
    16,
    10_000,
    10_001,
    i32::MAX,
];

pub fn bytes(rng: &mut StdRng, max: usize) -> Vec<u8> {
    let n = rng.random_range(0..=max);
    (0..n)
        .map(|_| {
            if rng.random_bool(0.3) {
                INTERESTING[rng.random_range(0..INTERESTING.len())]
            } else {
                rng.random()
            }
        })
        .collect()
}

/// A few random edits: flip, overwrite, cut, insert, or set a length word.
pub fn mutate(rng: &mut StdRng, mut b: Vec<u8>) -> Vec<u8> {
    for _ in 0..rng.random_range(0..4) {
        let at = if b.is_empty() {
            0
        } else {
            rng.random_range(0..b.len())
        };
        match rng.random_range(0..6) {
            0 if !b.is_empty() => b[at] ^= 1 << rng.random_range(0..8),
            1 if !b.is_empty() => b[at] = INTERESTING[rng.random_range(0..INTERESTING.len())],
            2 => b.truncate(at),
            3 => {
                let extra = bytes(rng, 8);
                b.splice(at..at, extra);
            }
            4 if b.len() >= at + 4 => {
                let len = EDGE_LENGTHS[rng.random_range(0..EDGE_LENGTHS.len())];
                b[at..at + 4].copy_from_slice(&len.to_be_bytes());
            }
            _ => {}
        }
    }
    b
}

const SQL_PIECES: &[&str] = &[
    "SELECT ",
    "select 1",
    "BEGIN",
    "begin isolation level serializable",
    "COMMIT",
    "commit and chain",
    "commit and no chain",
    "END",
    "end transaction",
    "ROLLBACK",
    "rollback to sp",
    "SAVEPOINT sp",
    "PREPARE TRANSACTION 'x'",
    "COMMIT PREPARED 'x'",
    "WITH x AS (",
    "INSERT INTO aws.vpc (cidr_block) VALUES (",
    "UPDATE aws.vpc SET ",
    "DELETE FROM aws.vpc",
    "COPY t FROM STDIN",
    "COPY (select 1) TO STDOUT",
    "VACUUM",
    "CREATE INDEX CONCURRENTLY",
    "EXPLAIN ANALYZE ",
    "SET infra.dry_run = ",
    "SET LOCAL infra.",
    "SET SESSION infra.wait TO ",
    "RESET infra.apply_timeout",
    "set infra.x to",
    "infra.sync(",
    "infra.sync('aws.vpc', 'us-east-1')",
    "infra.plan",
    " TO ",
    " FROM ",
    "'",
    "''",
    "\"",
    "E'",
    "e'\\'",
    "\\",
    "$$",
    "$q$",
    "$1",
    "a$b$",
    "--",
    "-- c\n",
    "/*",
    "*/",
    "/* /* */",
    ";",
    ";;",
    "(",
    ")",
    ":",
    "::",
    ":'v'",
    ":\"v\"",
    ":v",
    ":'unset'",
    "[1:2]",
    " ",
    "\n",
    "\t",
    "\0",
    "é",
    "日本",
    "🎉",
    "\u{feff}",
    "\r\n",
    "ESCAPE'\\'",
    "on",
    "off",
    "'T'",
    "default",
    "42",
    "-1",
    "1e999",
];

pub fn sql(rng: &mut StdRng) -> String {
    let mut s = String::new();
    for _ in 0..rng.random_range(0..24) {
        match rng.random_range(0..10) {
            0 => s.push(rng.random_range(' '..='~')),
            1 => s.push(rng.random::<char>()),
            _ => s.push_str(SQL_PIECES[rng.random_range(0..SQL_PIECES.len())]),
        }
    }
    s
}

/// SQL-ish text, sometimes mutated as bytes (the classifier sees it after
/// a lossy UTF-8 conversion, as the replay does).
pub fn sql_bytes(rng: &mut StdRng) -> Vec<u8> {
    let s = sql(rng).into_bytes();
    if rng.random_bool(0.3) {
        mutate(rng, s)
    } else {
        s
    }
}

fn cstr(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(s);
    out.push(0);
}

const PARAMS: &[(&str, &str)] = &[
    ("user", "infrasql"),
    ("user", "infrasql_engine"),
    ("database", "infrasql"),
    ("options", "-c infrasql.mode=plan"),
    ("options", "-c infrasql.mode=bogus"),
    ("options", "--infrasql.mode=normal -c search_path=x"),
    ("options", "-c"),
    ("options", "-cinfrasql.mode=plan\\ x"),
    ("replication", "database"),
    ("replication", "off"),
    ("application_name", "fuzz"),
    ("", ""),
];

/// A startup-phase packet (StartupMessage, SSLRequest, GSSENCRequest or
/// CancelRequest), then mutated.
pub fn startup(rng: &mut StdRng) -> Vec<u8> {
    let mut p = vec![0, 0, 0, 0];
    match rng.random_range(0..8) {
        0 => p.extend_from_slice(&80_877_103i32.to_be_bytes()),
        1 => p.extend_from_slice(&80_877_104i32.to_be_bytes()),
        2 => {
            p.extend_from_slice(&80_877_102i32.to_be_bytes());
            p.extend_from_slice(&rng.random::<[u8; 8]>());
        }
        _ => {
            let minor = [0u16, 2, 0xffff][rng.random_range(0..3)];
            let major = if rng.random_bool(0.9) {
                3u16
            } else {
                rng.random()
            };
            p.extend_from_slice(&major.to_be_bytes());
            p.extend_from_slice(&minor.to_be_bytes());
            for _ in 0..rng.random_range(0..5) {
                if rng.random_bool(0.8) {
                    let (k, v) = PARAMS[rng.random_range(0..PARAMS.len())];
                    cstr(&mut p, k.as_bytes());
                    cstr(&mut p, v.as_bytes());
                } else {
                    let k = bytes(rng, 12);
                    cstr(&mut p, &k);
                    let v = bytes(rng, 12);
                    cstr(&mut p, &v);
                }
            }
            p.push(0);
        }
    }
    let len = p.len() as i32;
    p[..4].copy_from_slice(&len.to_be_bytes());
    if rng.random_bool(0.7) {
        mutate(rng, p)
    } else {
        p
    }
}

fn frame(out: &mut Vec<u8>, tag: u8, body: &[u8]) {
    out.push(tag);
    out.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    out.extend_from_slice(body);
}

/// A stream of client (and backend) messages as the session's framing
/// sees it, then mutated.
pub fn frames(rng: &mut StdRng) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..rng.random_range(1..7) {
        let mut body = Vec::new();
        let tag = match rng.random_range(0..10) {
            0 => {
                cstr(&mut body, sql(rng).as_bytes());
                b'Q'
            }
            1 => {
                cstr(&mut body, if rng.random() { b"" } else { b"s1" });
                cstr(&mut body, sql(rng).as_bytes());
                let n: u16 = rng.random_range(0..4);
                body.extend_from_slice(&n.to_be_bytes());
                for _ in 0..rng.random_range(0..=n) {
                    body.extend_from_slice(&25u32.to_be_bytes());
                }
                b'P'
            }
            2 => {
                cstr(&mut body, b"");
                cstr(&mut body, b"s1");
                body.extend_from_slice(&bytes(rng, 16));
                b'B'
            }
            3 => {
                cstr(&mut body, b"");
                body.extend_from_slice(&0i32.to_be_bytes());
                b'E'
            }
            4 => b'S',
            5 => b'H',
            6 => {
                // A DataRow as the backend sends it: count, then length-prefixed values.
                let n: i16 = rng.random_range(-1..4);
                body.extend_from_slice(&n.to_be_bytes());
                for _ in 0..n.max(0) {
                    let len: i32 = [-1, 0, 3, 1_000_000][rng.random_range(0..4)];
                    body.extend_from_slice(&len.to_be_bytes());
                    body.extend_from_slice(&bytes(rng, 4));
                }
                b'D'
            }
            7 => {
                for code in [b'S', b'C', b'M', b'D', b'H'] {
                    body.push(code);
                    cstr(&mut body, &bytes(rng, 6));
                }
                body.push(0);
                b'E'
            }
            8 => {
                body.extend_from_slice(&rng.random_range(-1i16..3).to_be_bytes());
                cstr(&mut body, b"col");
                body.extend_from_slice(&bytes(rng, 18));
                b'T'
            }
            _ => {
                body = bytes(rng, 24);
                rng.random()
            }
        };
        frame(&mut out, tag, &body);
    }
    if rng.random_bool(0.7) {
        mutate(rng, out)
    } else {
        out
    }
}
