//! infrasql's own statements on a client's session: sent under a private
//! name through the extended protocol, and their text results read back.

use bytes::{Buf, BufMut, BytesMut};
use pgwire::messages::extendedquery::{
    Bind, Close, Execute, Parse, Sync, TARGET_TYPE_BYTE_PORTAL, TARGET_TYPE_BYTE_STATEMENT,
};

use super::{encode, read_cstr};

/// The name of infrasql's own prepared statement and portal on a client's
/// session. Clients do not use it; it exists only while a statement runs.
pub const PRIVATE_NAME: &str = "__infrasql";

/// One statement of infrasql's own, run on a client's session through the
/// extended protocol under [`PRIVATE_NAME`]: a simple Query would destroy
/// the client's unnamed prepared statement and portal (a driver may Parse
/// the unnamed statement in one batch and Bind it in the next). Text
/// results, no RowDescription; answered by one ReadyForQuery.
pub fn encode_private_query(sql: &str, out: &mut BytesMut) {
    let name = || Some(PRIVATE_NAME.to_owned());
    // What an earlier error left behind would make the Parse or Bind fail.
    encode(&Close::new(TARGET_TYPE_BYTE_PORTAL, name()), out);
    encode(&Close::new(TARGET_TYPE_BYTE_STATEMENT, name()), out);
    encode(&Parse::new(name(), sql.to_owned(), Vec::new()), out);
    encode(
        &Bind::new(name(), name(), Vec::new(), Vec::new(), Vec::new()),
        out,
    );
    encode(&Execute::new(name(), 0), out);
    // A named portal lives until the transaction ends: close both now.
    encode(&Close::new(TARGET_TYPE_BYTE_PORTAL, name()), out);
    encode(&Close::new(TARGET_TYPE_BYTE_STATEMENT, name()), out);
    encode(&Sync::new(), out);
}

/// Parse `sql` as [`PRIVATE_NAME`] and close it again, then Sync: the
/// backend's parser checks it and nothing runs.
pub fn encode_private_parse(sql: &str, out: &mut BytesMut) {
    let name = || Some(PRIVATE_NAME.to_owned());
    encode(&Close::new(TARGET_TYPE_BYTE_STATEMENT, name()), out);
    encode(&Parse::new(name(), sql.to_owned(), Vec::new()), out);
    encode(&Close::new(TARGET_TYPE_BYTE_STATEMENT, name()), out);
    encode(&Sync::new(), out);
}

/// A Sync message.
pub fn encode_sync(out: &mut BytesMut) {
    out.put_slice(&[b'S', 0, 0, 0, 4]);
}

/// Decode a DataRow body into text values.
pub fn parse_data_row(body: &[u8]) -> Vec<Option<String>> {
    let mut b = body;
    if b.len() < 2 {
        return Vec::new();
    }
    let n = b.get_i16();
    let mut row = Vec::with_capacity(n.max(0) as usize);
    for _ in 0..n {
        if b.len() < 4 {
            break;
        }
        let len = b.get_i32();
        if len < 0 {
            row.push(None);
        } else {
            let len = (len as usize).min(b.len());
            row.push(Some(String::from_utf8_lossy(&b[..len]).into_owned()));
            b.advance(len);
        }
    }
    row
}

/// Column names from a RowDescription body.
pub fn parse_row_description(body: &[u8]) -> Vec<String> {
    let mut b = body;
    if b.len() < 2 {
        return Vec::new();
    }
    let n = b.get_i16();
    let mut cols = Vec::new();
    for _ in 0..n {
        let Some(name) = read_cstr(&mut b) else { break };
        cols.push(name.to_owned());
        if b.len() < 18 {
            break;
        }
        b.advance(18);
    }
    cols
}
