//! The lexical layer under classification: statement splitting and word
//! scans that skip quotes, dollar quotes and comments as PostgreSQL's lexer
//! would. Nothing here knows what a statement means.

/// Split a simple-protocol query string into statements, respecting quotes,
/// dollar quotes and comments. Each slice excludes the terminating `;`.
/// Empty trailing pieces are dropped.
///
/// Inline room for two pieces: nearly every query is one statement (or
/// one and a trailing blank), and this runs at every simple Query, where
/// a heap allocation would be most of its cost.
pub fn split_statements(sql: &str) -> Statements<'_> {
    let b = sql.as_bytes();
    // Most queries hold no quote, comment, dollar quote or parenthesis:
    // their statements end at each ';', which memchr finds many bytes at a
    // time (the byte-by-byte scan below was the proxy's costliest step for
    // a simple query; callgrind, bench/README.md).
    if memchr::memchr3(b'\'', b'"', b'$', b).is_none()
        && memchr::memchr3(b'-', b'/', b'(', b).is_none()
    {
        let mut out = Statements::new();
        let mut start = 0;
        for i in memchr::memchr_iter(b';', b) {
            out.push(&sql[start..i]);
            start = i + 1;
        }
        out.push(&sql[start..]);
        drop_trailing_blank(&mut out);
        return out;
    }
    split_scanning(sql)
}

/// [`split_statements`] for any text: a scan past quotes, comments and
/// parentheses.
fn split_scanning(sql: &str) -> Statements<'_> {
    let b = sql.as_bytes();
    let mut out = Statements::new();
    let mut start = 0;
    let mut i = 0;
    let mut depth = 0i32; // parentheses: a ';' inside CREATE RULE (...) is not a separator
    while i < b.len() {
        // Most bytes are none of the ones below: skip them in a tight loop.
        if !SPLIT_SPECIAL[b[i] as usize] {
            i += 1;
            continue;
        }
        match b[i] {
            b'\'' | b'"' => i = skip_quoted(b, i, b[i]),
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => i = skip_block_comment(b, i),
            // `$` inside an identifier (`a$q$`) starts no dollar quote.
            b'$' if i > 0 && is_ident_byte(b[i - 1]) => i += 1,
            b'$' => i = skip_dollar(b, i),
            b'(' => {
                depth += 1;
                i += 1;
            }
            b')' => {
                depth -= 1;
                i += 1;
            }
            b';' if depth <= 0 => {
                out.push(&sql[start..i]);
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    out.push(&sql[start..]);
    drop_trailing_blank(&mut out);
    out
}

/// Keep interior empties (PostgreSQL answers them), drop a trailing blank
/// one. A trailing comment stays: an unterminated one is an error
/// PostgreSQL reports.
fn drop_trailing_blank(out: &mut Statements<'_>) {
    while out.len() > 1 && out[out.len() - 1].trim().is_empty() {
        out.pop();
    }
}

/// The statements of one query string, as `split_statements` found them.
pub type Statements<'a> = smallvec::SmallVec<[&'a str; 2]>;

/// The bytes `split_statements` acts on; every other byte is skipped.
const SPLIT_SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    let special = b"'\"-/$();";
    let mut k = 0;
    while k < special.len() {
        t[special[k] as usize] = true;
        k += 1;
    }
    t
};

fn is_ident_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

fn skip_quoted(b: &[u8], mut i: usize, q: u8) -> usize {
    // E'' strings use backslash escapes; plain '' strings double the quote.
    // Only a lone `E` makes one: in `ESCAPE'\'` the `E` ends a keyword.
    let backslash = q == b'\''
        && i > 0
        && matches!(b[i - 1], b'e' | b'E')
        && (i < 2 || !is_ident_byte(b[i - 2]));
    i += 1;
    while i < b.len() {
        if backslash && b[i] == b'\\' {
            i += 2;
            continue;
        }
        if b[i] == q {
            if b.get(i + 1) == Some(&q) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    i
}

fn skip_block_comment(b: &[u8], mut i: usize) -> usize {
    let mut depth = 0;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            depth += 1;
            i += 2;
        } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    i
}

fn skip_dollar(b: &[u8], i: usize) -> usize {
    // $tag$ ... $tag$ where tag is empty or an identifier; `$1` is a parameter.
    let mut j = i + 1;
    while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
        j += 1;
    }
    if j >= b.len() || b[j] != b'$' || (j > i + 1 && b[i + 1].is_ascii_digit()) {
        return i + 1;
    }
    let tag = &b[i..=j];
    let mut k = j + 1;
    while k + tag.len() <= b.len() {
        if &b[k..k + tag.len()] == tag {
            return k + tag.len();
        }
        k += 1;
    }
    b.len()
}

/// psql's variable interpolation, with psql's rules: `:'name'` is the value
/// as a quoted literal, `:"name"` as a quoted identifier, `:name` as raw
/// text. Quotes, dollar quotes, comments and `::` casts are left alone. A
/// name starts with a letter or `_` (so an array slice `a[1:2]` is not a
/// variable). A variable `value` does not know is an error naming it.
pub fn interpolate<'v>(
    sql: &str,
    value: impl Fn(&str) -> Option<&'v str>,
) -> Result<String, UnsetVariable> {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let (mut i, mut copied) = (0, 0);
    while i < b.len() {
        let next = match b[i] {
            b'\'' | b'"' => skip_quoted(b, i, b[i]),
            b'-' if b.get(i + 1) == Some(&b'-') => {
                let mut j = i;
                while j < b.len() && b[j] != b'\n' {
                    j += 1;
                }
                j
            }
            b'/' if b.get(i + 1) == Some(&b'*') => skip_block_comment(b, i),
            b'$' if i > 0 && is_ident_byte(b[i - 1]) => i + 1,
            b'$' => skip_dollar(b, i),
            b':' if b.get(i + 1) == Some(&b':') => i + 2,
            b':' => {
                let (quote, start) = match b.get(i + 1) {
                    Some(q @ (b'\'' | b'"')) => (Some(*q), i + 2),
                    _ => (None, i + 1),
                };
                let mut end = start;
                while end < b.len() && (b[end].is_ascii_alphanumeric() || b[end] == b'_') {
                    end += 1;
                }
                let named = end > start && !b[start].is_ascii_digit();
                let closed = quote.is_none_or(|q| b.get(end) == Some(&q));
                if !named || !closed {
                    i + 1
                } else {
                    let name = &sql[start..end];
                    let v = value(name).ok_or_else(|| UnsetVariable {
                        name: name.to_owned(),
                        offset: i,
                    })?;
                    out.push_str(&sql[copied..i]);
                    match quote {
                        Some(b'\'') if v.contains('\\') => out.push_str(&format!(
                            "E'{}'",
                            v.replace('\\', "\\\\").replace('\'', "''")
                        )),
                        Some(b'\'') => out.push_str(&format!("'{}'", v.replace('\'', "''"))),
                        Some(_) => out.push_str(&format!("\"{}\"", v.replace('"', "\"\""))),
                        None => out.push_str(v),
                    }
                    copied = end + usize::from(quote.is_some());
                    copied
                }
            }
            _ => i + 1,
        };
        i = next.max(i + 1);
    }
    out.push_str(&sql[copied.min(sql.len())..]);
    Ok(out)
}

/// A `:name` with no value; `offset` is where it stands in the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("variable \"{name}\" is not set")]
pub struct UnsetVariable {
    pub name: String,
    pub offset: usize,
}

/// The first `n` words of a statement, lowercased, skipping comments and
/// opening parentheses.
pub fn first_words(sql: &str, n: usize) -> Vec<String> {
    words(sql).take(n).map(str::to_ascii_lowercase).collect()
}

/// The leading words of a statement as they are written, skipping
/// whitespace, comments and opening parentheses, up to the first character
/// that is none of these. Borrowed, not lowercased: classifying every
/// simple query allocated a string per word.
pub fn words(sql: &str) -> Words<'_> {
    Words { sql, i: 0 }
}

pub struct Words<'a> {
    sql: &'a str,
    i: usize,
}

impl<'a> Iterator for Words<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let b = self.sql.as_bytes();
        let mut i = self.i;
        let word = loop {
            let Some(&c) = b.get(i) else { break None };
            if c.is_ascii_whitespace() || c == b'(' {
                i += 1;
            } else if c == b'-' && b.get(i + 1) == Some(&b'-') {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
                i = skip_block_comment(b, i);
            } else if c.is_ascii_alphabetic() || c == b'_' {
                let s = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                break Some(&self.sql[s..i]);
            } else {
                // Anything else ends the leading words for good.
                i = b.len();
                break None;
            }
        };
        self.i = i;
        word
    }
}

/// The statement without its comments (quotes are not expected here: only
/// words may remain).
pub fn strip_comments(sql: &str) -> String {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'-' && b.get(i + 1) == Some(&b'-') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            out.push(' ');
        } else if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            i = skip_block_comment(b, i);
            // A comment separates words, as in PostgreSQL.
            out.push(' ');
        } else {
            let c = sql[i..].chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

pub fn top_level_words(sql: &str) -> Vec<String> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut depth = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\'' | b'"' => i = skip_quoted(b, i, b[i]),
            // `$` inside an identifier (`a$q$`) starts no dollar quote.
            b'$' if i > 0 && is_ident_byte(b[i - 1]) => i += 1,
            b'$' => i = skip_dollar(b, i),
            b'(' => {
                depth += 1;
                i += 1
            }
            b')' => {
                depth -= 1;
                i += 1
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let s = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                if depth == 0 {
                    out.push(sql[s..i].to_ascii_lowercase());
                }
            }
            _ => i += 1,
        }
    }
    out
}

#[cfg(test)]
mod tests;
