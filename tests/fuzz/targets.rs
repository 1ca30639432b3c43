//! What the fuzzer runs each input through: the same pure functions the
//! server runs on a client's bytes, plus the properties their results
//! must have. A panic here is a bug (the session task would die with it);
//! a failed property is one too.

use bytes::BytesMut;
use infrasql::wire::classify::{
    chains, classify, interpolate, is_copy_from, query_intercepts, split_statements,
    statement_intercepts, strip_comments, StmtKind,
};
use infrasql::wire::frontend::mode::Mode;
use infrasql::wire::frontend::packet::{
    accept_startup, cancel_key, packet_kind, packet_len, PacketKind,
};
use infrasql::wire::protocol::{
    next_frame, parse_data_row, parse_report, parse_row_description, read_cstr, rewrite_parse,
    MAX_STARTUP_PACKET,
};

/// The startup phase: the length word, the kind, a cancel key, the checks.
pub fn startup(data: &[u8]) {
    let reserved = ["infrasql_engine".to_owned()];
    // The checks never see a packet the length word refused, but they must
    // not trust that.
    let _ = accept_startup(data, &reserved);
    let Some(word) = data.get(..4) else { return };
    let Ok(n) = packet_len(word.try_into().unwrap()) else {
        return;
    };
    assert!((8..=MAX_STARTUP_PACKET).contains(&n));
    let Some(packet) = data.get(..n) else { return };
    let kind = packet_kind(packet).expect("an accepted length covers the code");
    if kind == PacketKind::CancelRequest {
        let _ = cancel_key(packet);
    }
    if let Ok(acc) = accept_startup(packet, &reserved) {
        // What goes to the backend is a well-formed packet without the
        // mode option: checking it again yields the same user, mode Normal.
        let len = i32::from_be_bytes(acc.packet[..4].try_into().unwrap());
        assert_eq!(len as usize, acc.packet.len(), "rewritten length word");
        assert_ne!(acc.user, "infrasql_engine", "a reserved role got through");
        let again = accept_startup(&acc.packet, &reserved).expect("rewritten packet accepted");
        assert_eq!(again.user, acc.user);
        assert_eq!(again.mode, Mode::Normal);
        assert_eq!(again.packet, acc.packet);
    }
}

/// The session's framing and the few messages infrasql decodes itself.
pub fn frames(data: &[u8]) {
    let max = 4096;
    let mut buf = BytesMut::from(data);
    let mut consumed = 0;
    // A frame error ends the stream, as it ends the session.
    while let Ok(Some(f)) = next_frame(&mut buf, max) {
        assert!(f.bytes.len() >= 5 && f.bytes.len() <= max);
        assert_eq!(&f.bytes[..], &data[consumed..consumed + f.bytes.len()]);
        consumed += f.bytes.len();
        message(&f);
    }
    assert_eq!(consumed + buf.len(), data.len(), "framing lost bytes");
}

fn message(f: &infrasql::wire::protocol::Frame) {
    let mut body = f.body();
    match f.tag {
        b'Q' => {
            if let Some(sql) = read_cstr(&mut body) {
                text(sql);
            }
        }
        b'P' => {
            let _name = read_cstr(&mut body);
            if let Some(sql) = read_cstr(&mut body) {
                let _ = classify(sql);
                let _ = statement_intercepts(sql);
            }
            if let Some(r) = rewrite_parse(f, "SELECT 1") {
                let mut b = BytesMut::from(&r.bytes[..]);
                let again = next_frame(&mut b, usize::MAX).unwrap().unwrap();
                assert_eq!(again.bytes.len(), r.bytes.len(), "rewritten Parse framing");
                assert!(b.is_empty());
            }
        }
        b'B' => {
            let _portal = read_cstr(&mut body);
            let _stmt = read_cstr(&mut body);
        }
        b'E' => {
            let _portal = read_cstr(&mut body);
        }
        _ => {}
    }
    // The relay and infrasql's own statements decode these from the
    // backend; a broken backend must not take the session down either.
    let _ = parse_report(f.body());
    let _ = parse_data_row(f.body());
    let _ = parse_row_description(f.body());
}

/// The classifier over text, as a Query or Parse carries it.
pub fn classify_text(data: &[u8]) {
    text(&String::from_utf8_lossy(data));
}

fn text(sql: &str) {
    let kind = classify(sql);
    if kind == StmtKind::Commit {
        let _ = chains(sql);
    }
    let _ = is_copy_from(sql);
    let _ = query_intercepts(sql);
    let _ = strip_comments(sql);
    let pieces = split_statements(sql);
    assert!(!pieces.is_empty());
    // Pieces are the input in order, separated by one `;` each; only blank
    // pieces may be dropped at the end.
    let joined = pieces.join(";");
    assert!(sql.starts_with(&joined), "pieces do not rebuild the input");
    assert!(
        sql[joined.len()..]
            .chars()
            .all(|c| c == ';' || c.is_whitespace()),
        "a non-blank tail was dropped"
    );
    for p in &pieces {
        let _ = classify(p);
        let _ = statement_intercepts(p);
    }
    let vars = |n: &str| match n {
        "v" => Some("it's \"q\" \\ $$"),
        _ => None,
    };
    match interpolate(sql, vars) {
        Ok(out) if !sql.contains(':') => assert_eq!(out, sql, "text without `:` changed"),
        Ok(_) => {}
        Err(e) => assert!(e.offset < sql.len() && sql[e.offset..].starts_with(':')),
    }
}
