//! Message framing and the few messages infrasql writes itself.
//!
//! Rows and most other messages are never decoded: the pump walks frame headers
//! and forwards the bytes. Messages that infrasql originates (errors, notices,
//! its own BackendKeyData and ReadyForQuery) are encoded with pgwire's codec.

use bytes::{BufMut, Bytes, BytesMut};
use pgwire::messages::extendedquery::Parse;
use pgwire::messages::response::{ErrorResponse, NoticeResponse, ReadyForQuery, TransactionStatus};
use pgwire::messages::startup::{BackendKeyData, SecretKey};
use pgwire::messages::Message;

use crate::engine::errors;
use crate::engine::report::Report;

mod private;

pub use private::{
    encode_private_parse, encode_private_query, encode_sync, parse_data_row, parse_row_description,
    PRIVATE_NAME,
};

/// Largest regular message accepted from a client. PostgreSQL allows up to
/// 1 GiB; infrasql holds a message whole (to classify a statement) and
/// copies it once on the way to the backend, so a smaller cap keeps one
/// client's share of the server's memory near twice this. A longer message
/// is refused by its length header, before any of it is read (54000). COPY
/// data arrives in many small CopyData messages, so this only limits single
/// statements and single parameter values.
pub const MAX_CLIENT_MESSAGE: usize = 64 * 1024 * 1024;

/// Startup-phase packets (StartupMessage, SSLRequest, CancelRequest) are
/// small; PostgreSQL caps them at 10,000 bytes too.
pub const MAX_STARTUP_PACKET: usize = 10_000;

pub const SSL_REQUEST_CODE: i32 = 80_877_103;
pub const GSSENC_REQUEST_CODE: i32 = 80_877_104;
pub const CANCEL_REQUEST_CODE: i32 = 80_877_102;

/// A complete tagged message: its type byte and its whole frame
/// (tag + length + body), ready to be forwarded as is.
#[derive(Debug, Clone)]
pub struct Frame {
    pub tag: u8,
    pub bytes: Bytes,
}

impl Frame {
    /// The body after the 5-byte header.
    pub fn body(&self) -> &[u8] {
        &self.bytes[5..]
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("invalid message length {0}")]
    BadLength(i64),
    #[error("message of {0} bytes exceeds the limit of {1} bytes")]
    TooLarge(usize, usize),
}

/// Length of the complete frame at the start of `buf`, if it is all there.
pub fn frame_len(buf: &[u8], max: usize) -> Result<Option<usize>, FrameError> {
    if buf.len() < 5 {
        return Ok(None);
    }
    let len = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
    if len < 4 {
        return Err(FrameError::BadLength(len as i64));
    }
    let total = len as usize + 1;
    if total > max {
        return Err(FrameError::TooLarge(total, max));
    }
    Ok((buf.len() >= total).then_some(total))
}

/// Spare room a socket read gets at least, and how much is reserved when
/// there is less. A read that fills all the room it was given must be
/// followed by another (only a short read shows the socket drained), so a
/// buffer whose spare room has dwindled below one message's size costs a
/// system call per message: 0.2 more `recvfrom` per `pgbench -S`
/// transaction than PgBouncer before this.
const MIN_READ_ROOM: usize = 4096;
const READ_RESERVE: usize = 16 * 1024;

/// Make room for the next read of a peer's messages into `buf`. The
/// frames split off it earlier are usually gone by now, so the reserve
/// reuses the buffer's own allocation.
///
/// An emptied buffer starts again at the front of its allocation, as
/// PgBouncer's do: the next read lands on the cache lines the last one
/// warmed. Otherwise every session's reads walk through 16 KiB of cold
/// memory between reclaims, and with a few sessions that evicts the
/// backends' and the clients' data from the caches of a small machine.
pub fn room_to_read(buf: &mut BytesMut) {
    if buf.is_empty() {
        // Reclaims without allocating, and only when nothing else holds
        // the allocation (frames split off it and still in use).
        let _ = buf.try_reclaim(buf.capacity() + 1);
    }
    if buf.capacity() - buf.len() < MIN_READ_ROOM {
        buf.reserve(READ_RESERVE);
    }
}

/// Split one complete tagged message off the front of `buf`.
pub fn next_frame(buf: &mut BytesMut, max: usize) -> Result<Option<Frame>, FrameError> {
    match frame_len(buf, max)? {
        Some(n) => {
            let bytes = buf.split_to(n).freeze();
            Ok(Some(Frame {
                tag: bytes[0],
                bytes,
            }))
        }
        None => Ok(None),
    }
}

/// Read a NUL-terminated name (of a statement or portal) from the front of
/// `buf` as bytes, advancing past it. Names are only compared, so they are
/// not checked as UTF-8: `Bind`/`Execute` pass here at every query.
pub fn read_name<'a>(buf: &mut &'a [u8]) -> Option<&'a [u8]> {
    let end = memchr::memchr(0, buf)?;
    let name = &buf[..end];
    *buf = &buf[end + 1..];
    Some(name)
}

/// Read a NUL-terminated string from the front of `buf`, advancing past it.
pub fn read_cstr<'a>(buf: &mut &'a [u8]) -> Option<&'a str> {
    // memchr: a query's whole text is scanned for its end at every Query.
    let end = memchr::memchr(0, buf)?;
    let s = std::str::from_utf8(&buf[..end]).ok()?;
    *buf = &buf[end + 1..];
    Some(s)
}

/// The fields of a report, by PostgreSQL's field codes.
fn report_fields(r: &Report) -> Vec<(u8, String)> {
    let mut f = vec![
        (b'S', r.severity.to_owned()),
        (b'V', r.severity.to_owned()),
        (b'C', r.code.clone()),
        (b'M', r.message.clone()),
    ];
    if let Some(d) = &r.detail {
        f.push((b'D', d.clone()));
    }
    if let Some(h) = &r.hint {
        f.push((b'H', h.clone()));
    }
    f
}

/// Parse an ErrorResponse or NoticeResponse body.
pub fn parse_report(body: &[u8]) -> Report {
    // A report without a code is still an error the user must see.
    let mut r = Report::error(errors::INTERNAL, "");
    let mut rest = body;
    while let Some((&code, tail)) = rest.split_first() {
        if code == 0 {
            break;
        }
        rest = tail;
        let Some(value) = read_cstr(&mut rest) else {
            break;
        };
        match code {
            b'V' | b'S' => {
                r.severity = match value {
                    "FATAL" => "FATAL",
                    "PANIC" => "PANIC",
                    "WARNING" => "WARNING",
                    "NOTICE" => "NOTICE",
                    "INFO" => "INFO",
                    "DEBUG" => "DEBUG",
                    "LOG" => "LOG",
                    _ => "ERROR",
                }
            }
            b'C' => r.code = value.to_owned(),
            b'M' => r.message = value.to_owned(),
            b'D' => r.detail = Some(value.to_owned()),
            b'H' => r.hint = Some(value.to_owned()),
            _ => {}
        }
    }
    r
}

/// `r` as an ErrorResponse.
pub fn encode_error(r: &Report, out: &mut BytesMut) {
    encode(&ErrorResponse::new(report_fields(r)), out);
}

/// `r` as a NoticeResponse.
pub fn encode_notice(r: &Report, out: &mut BytesMut) {
    encode(&NoticeResponse::new(report_fields(r)), out);
}

fn encode<M: Message>(m: &M, out: &mut BytesMut) {
    // Encoding into a BytesMut only fails for values out of protocol range,
    // which none of the messages built here can hold.
    m.encode(out).expect("encode protocol message");
}

/// Transaction status as carried by ReadyForQuery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxStatus {
    Idle,
    InBlock,
    Failed,
}

impl TxStatus {
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            b'I' => Some(TxStatus::Idle),
            b'T' => Some(TxStatus::InBlock),
            b'E' => Some(TxStatus::Failed),
            _ => None,
        }
    }
}

pub fn encode_ready(status: TxStatus, out: &mut BytesMut) {
    let s = match status {
        TxStatus::Idle => TransactionStatus::Idle,
        TxStatus::InBlock => TransactionStatus::Transaction,
        TxStatus::Failed => TransactionStatus::Error,
    };
    encode(&ReadyForQuery::new(s), out);
}

pub fn encode_backend_key(pid: i32, secret: i32, out: &mut BytesMut) {
    encode(&BackendKeyData::new(pid, SecretKey::I32(secret)), out);
}

/// A simple-protocol Query message.
pub fn encode_query(sql: &str, out: &mut BytesMut) {
    out.put_u8(b'Q');
    out.put_i32((4 + sql.len() + 1) as i32);
    out.put_slice(sql.as_bytes());
    out.put_u8(0);
}

/// The same Parse message with another query text; the statement name and
/// parameter types are kept. `None` if `f` is not a well-formed Parse.
pub fn rewrite_parse(f: &Frame, sql: &str) -> Option<Frame> {
    let mut body = f.body();
    let name = read_cstr(&mut body)?.to_owned();
    read_cstr(&mut body)?;
    if body.len() < 2 {
        return None;
    }
    let n = u16::from_be_bytes([body[0], body[1]]) as usize;
    let oids = body.get(2..2 + 4 * n)?;
    let parse = Parse::new(
        (!name.is_empty()).then_some(name),
        sql.to_owned(),
        oids.chunks(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    );
    let mut out = BytesMut::new();
    encode(&parse, &mut out);
    Some(Frame {
        tag: b'P',
        bytes: out.freeze(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_only_when_complete() {
        let mut buf = BytesMut::new();
        encode_query("select 1", &mut buf);
        let whole = buf.clone();
        let mut partial = BytesMut::from(&whole[..7]);
        assert!(next_frame(&mut partial, 100).unwrap().is_none());
        let f = next_frame(&mut buf, 100).unwrap().unwrap();
        assert_eq!(f.tag, b'Q');
        assert_eq!(f.body(), b"select 1\0");
        assert!(buf.is_empty());
    }

    #[test]
    fn an_emptied_buffer_reads_again_at_its_front() {
        use bytes::Buf;
        let mut buf = BytesMut::with_capacity(32 * 1024);
        let front = buf.as_ptr();
        // Walked in place and advanced, as the relay does.
        buf.extend_from_slice(&[b'x'; 300]);
        buf.advance(300);
        room_to_read(&mut buf);
        assert_eq!(buf.as_ptr(), front);
        // Split off as frames, as the driver does: the front is free again
        // only once no frame holds it.
        buf.extend_from_slice(&[b'y'; 300]);
        let frame = buf.split_to(300).freeze();
        room_to_read(&mut buf);
        assert_ne!(buf.as_ptr(), front);
        drop(frame);
        room_to_read(&mut buf);
        assert_eq!(buf.as_ptr(), front);
        // Bytes still waiting stay where they are.
        buf.extend_from_slice(&[b'z'; 10]);
        buf.advance(4);
        room_to_read(&mut buf);
        assert_eq!(&buf[..], &[b'z'; 6]);
        assert!(buf.capacity() - buf.len() >= MIN_READ_ROOM);
    }

    #[test]
    fn names_are_read_as_bytes_up_to_their_nul() {
        // A Bind's portal, then its statement: one unnamed, one not UTF-8.
        let body: &[u8] = b"\0s\xff1\0rest";
        let mut b = body;
        assert_eq!(read_name(&mut b), Some(&b""[..]));
        assert_eq!(read_name(&mut b), Some(&b"s\xff1"[..]));
        assert_eq!(b, b"rest");
        // No NUL: no name, and nothing consumed.
        assert_eq!(read_name(&mut b), None);
        assert_eq!(b, b"rest");
    }

    #[test]
    fn lengths_below_four_or_above_the_cap_are_rejected() {
        let bad = [b'Q', 0, 0, 0, 3];
        assert_eq!(frame_len(&bad, 100), Err(FrameError::BadLength(3)));
        let neg = [b'Q', 0xff, 0xff, 0xff, 0xff];
        assert_eq!(frame_len(&neg, 100), Err(FrameError::BadLength(-1)));
        let big = [b'Q', 0x7f, 0, 0, 0];
        assert!(matches!(
            frame_len(&big, 100),
            Err(FrameError::TooLarge(_, 100))
        ));
    }

    #[test]
    fn reports_round_trip_through_the_codec() {
        let r = Report::error("28P01", "bad")
            .with_detail("d")
            .with_hint("h");
        let mut out = BytesMut::new();
        encode_error(&r, &mut out);
        let f = next_frame(&mut out, 1000).unwrap().unwrap();
        assert_eq!(f.tag, b'E');
        assert_eq!(parse_report(f.body()), r);
    }
}
