//! infrasql's own connection mode, asked for in the startup packet.
//!
//! `infrasql plan` runs untrusted SQL (a pull request's), so the promise
//! that nothing is applied must hold whatever that SQL does. A backend GUC
//! could be `RESET` by the session, so the mode is infrasql's state: the
//! client sends `options=-c infrasql.mode=plan` (what a libpq URL and
//! tokio-postgres's `Config::options` can carry), infrasql reads it and
//! removes it before the backend sees the packet. The session then keeps
//! the mode until it ends.

/// The connection's mode, fixed at startup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Normal,
    /// Every COMMIT is a dry run: the session cannot leave this mode.
    PlanOnly,
}

const KEY: &str = "infrasql.mode";

/// The backend setting that marks a session as infrasql's proxied one:
/// the commit-path refusal (IX100, `schema/1030_commit_path_message.sql`)
/// then explains an unforeseen autocommit write, not a direct connection.
const PROXIED: &str = "infra.proxied";

/// Reads infrasql's mode from the startup packet (length, version, then
/// `key\0value\0` pairs and a final `\0`) and returns the packet without
/// it, marked `infra.proxied=on` for the backend. `Err` is the message for
/// an unknown mode value.
pub fn take_mode(packet: &[u8]) -> Result<(Mode, Vec<u8>), String> {
    let Some(params) = parse_params(packet) else {
        // Malformed packets are refused by the startup checks that follow.
        return Ok((Mode::Normal, packet.to_vec()));
    };
    let mut mode = Mode::Normal;
    let mut kept = Vec::with_capacity(params.len());
    for (k, v) in params {
        if k != "options" {
            kept.push((k, v));
            continue;
        }
        let (found, rest) = strip_option(&v);
        if let Some(value) = found {
            mode = match value.as_str() {
                "plan" => Mode::PlanOnly,
                "normal" => Mode::Normal,
                other => {
                    return Err(format!(
                        "invalid value for {KEY}: \"{other}\" (expected \"plan\" or \"normal\")"
                    ))
                }
            };
        }
        if !rest.is_empty() {
            kept.push((k, rest));
        }
    }
    kept.retain(|(k, _)| k != PROXIED);
    kept.push((PROXIED.to_owned(), "on".to_owned()));
    let mut out = Vec::with_capacity(packet.len());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&packet[4..8]);
    for (k, v) in kept {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out.push(0);
    let len = out.len() as u32;
    out[..4].copy_from_slice(&len.to_be_bytes());
    Ok((mode, out))
}

fn parse_params(packet: &[u8]) -> Option<Vec<(String, String)>> {
    let body = packet.get(8..)?;
    let mut fields = body.split(|b| *b == 0);
    let mut params = Vec::new();
    loop {
        let k = fields.next()?;
        if k.is_empty() {
            return Some(params);
        }
        let v = fields.next()?;
        params.push((
            String::from_utf8(k.to_vec()).ok()?,
            String::from_utf8(v.to_vec()).ok()?,
        ));
    }
}

/// Finds `-c infrasql.mode=X`, `-cinfrasql.mode=X` or `--infrasql.mode=X`
/// among the command-line style options; returns the last X and the other
/// options. (Backslash-escaped spaces are not split, as in PostgreSQL.)
fn strip_option(options: &str) -> (Option<String>, String) {
    let words = split_words(options);
    let mut found = None;
    let mut kept: Vec<&str> = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let w = words[i];
        let (setting, used) = if w == "-c" {
            (words.get(i + 1).copied(), 2)
        } else if let Some(s) = w.strip_prefix("--").or_else(|| w.strip_prefix("-c")) {
            (Some(s), 1)
        } else {
            (None, 1)
        };
        match setting.and_then(|s| s.split_once('=')) {
            Some((k, v)) if k.eq_ignore_ascii_case(KEY) => found = Some(v.to_string()),
            _ => kept.extend(&words[i..(i + used).min(words.len())]),
        }
        i += used;
    }
    (found, kept.join(" "))
}

fn split_words(s: &str) -> Vec<&str> {
    let mut words = Vec::new();
    let mut start = None;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        if c == '\\' {
            escaped = true;
            start.get_or_insert(i);
        } else if c.is_ascii_whitespace() {
            if let Some(st) = start.take() {
                words.push(&s[st..i]);
            }
        } else {
            start.get_or_insert(i);
        }
    }
    if let Some(st) = start {
        words.push(&s[st..]);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(params: &[(&str, &str)]) -> Vec<u8> {
        let mut b = vec![0, 0, 0, 0, 0, 3, 0, 0];
        for (k, v) in params {
            b.extend_from_slice(k.as_bytes());
            b.push(0);
            b.extend_from_slice(v.as_bytes());
            b.push(0);
        }
        b.push(0);
        let len = b.len() as u32;
        b[..4].copy_from_slice(&len.to_be_bytes());
        b
    }

    #[test]
    fn plan_mode_is_read_and_removed() {
        let p = packet(&[("user", "u"), ("options", "-c infrasql.mode=plan")]);
        let (mode, out) = take_mode(&p).unwrap();
        assert_eq!(mode, Mode::PlanOnly);
        assert_eq!(out, packet(&[("user", "u"), (PROXIED, "on")]));
    }

    #[test]
    fn other_options_are_kept() {
        let p = packet(&[
            ("user", "u"),
            (
                "options",
                "-c search_path=x --infrasql.mode=plan -cwork_mem=8MB",
            ),
            ("database", "d"),
        ]);
        let (mode, out) = take_mode(&p).unwrap();
        assert_eq!(mode, Mode::PlanOnly);
        assert_eq!(
            out,
            packet(&[
                ("user", "u"),
                ("options", "-c search_path=x -cwork_mem=8MB"),
                ("database", "d"),
                (PROXIED, "on"),
            ])
        );
    }

    #[test]
    fn no_mode_leaves_the_packet_as_it_was_but_marked_proxied() {
        let p = packet(&[("user", "u"), ("options", "-c a=b")]);
        let marked = packet(&[("user", "u"), ("options", "-c a=b"), (PROXIED, "on")]);
        assert_eq!(take_mode(&p).unwrap(), (Mode::Normal, marked));
    }

    #[test]
    fn a_clients_own_proxied_setting_is_replaced_by_infrasqls() {
        let p = packet(&[(PROXIED, "off"), ("user", "u")]);
        let (_, out) = take_mode(&p).unwrap();
        assert_eq!(out, packet(&[("user", "u"), (PROXIED, "on")]));
    }

    #[test]
    fn unknown_mode_is_refused() {
        let p = packet(&[("user", "u"), ("options", "-c infrasql.mode=apply")]);
        assert!(take_mode(&p).unwrap_err().contains("\"apply\""));
    }
}
