//! The startup-phase packets as bytes, without I/O: the length word, what
//! kind of packet it is, a CancelRequest's key, and the checks a
//! StartupMessage must pass before the backend sees it. `negotiate` and
//! `Frontend::startup` read the socket and call these; the wire fuzzer
//! (`tests/fuzz_wire.rs`) calls them on arbitrary bytes, so nothing here
//! may assume the packet is well formed.

use bytes::BytesMut;
use pgwire::messages::startup::Startup;
use pgwire::messages::{DecodeContext, Message, ProtocolVersion};

use super::mode::{self, Mode};
use crate::engine::errors;
use crate::engine::report::Report;
use crate::wire::protocol::{
    CANCEL_REQUEST_CODE, GSSENC_REQUEST_CODE, MAX_STARTUP_PACKET, SSL_REQUEST_CODE,
};

/// What the first 8 bytes of a startup-phase packet ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind {
    SslRequest,
    GssEncRequest,
    CancelRequest,
    /// A StartupMessage, or one of a protocol version the checks refuse.
    Startup,
}

/// The whole packet's length from its 4-byte length word: at least the
/// length word and the code, at most [`MAX_STARTUP_PACKET`]. `Err` is the
/// message PostgreSQL gives.
pub fn packet_len(word: [u8; 4]) -> Result<usize, String> {
    let len = i32::from_be_bytes(word);
    if len < 8 || len as usize > MAX_STARTUP_PACKET {
        return Err(format!("invalid length of startup packet: {len}"));
    }
    Ok(len as usize)
}

/// The kind of a packet; `None` when it is shorter than its code.
pub fn packet_kind(packet: &[u8]) -> Option<PacketKind> {
    let code = i32::from_be_bytes(packet.get(4..8)?.try_into().ok()?);
    Some(match code {
        SSL_REQUEST_CODE => PacketKind::SslRequest,
        GSSENC_REQUEST_CODE => PacketKind::GssEncRequest,
        CANCEL_REQUEST_CODE => PacketKind::CancelRequest,
        _ => PacketKind::Startup,
    })
}

/// A CancelRequest's process id and secret; `None` when it is too short.
/// (Protocol 3.2's longer secrets are longer than 4 bytes; infrasql hands
/// out 4-byte ones, so only those can match.)
pub fn cancel_key(packet: &[u8]) -> Option<(i32, i32)> {
    let pid = i32::from_be_bytes(packet.get(8..12)?.try_into().ok()?);
    let secret = i32::from_be_bytes(packet.get(12..16)?.try_into().ok()?);
    Some((pid, secret))
}

/// A StartupMessage accepted for the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub mode: Mode,
    /// The packet without infrasql's own option, as the backend gets it.
    pub packet: Vec<u8>,
    pub user: String,
}

/// Everything infrasql checks in a StartupMessage before the backend sees
/// it: infrasql's own mode option (read and removed), protocol 3.x, the
/// layout, a user, not a role reserved to the engine, no replication.
/// `Err` is the FATAL report to send before closing.
pub fn accept_startup(packet: &[u8], reserved_roles: &[String]) -> Result<Accepted, Report> {
    let (mode, packet) = mode::take_mode(packet)
        .map_err(|message| Report::fatal(errors::BAD_SETTING_VALUE, message))?;
    let user = check_startup(&packet, reserved_roles)?;
    Ok(Accepted { mode, packet, user })
}

/// The checks after the mode is taken out. `Ok` is the user.
fn check_startup(packet: &[u8], reserved_roles: &[String]) -> Result<String, Report> {
    let layout = || Report::fatal(errors::PROTOCOL_VIOLATION, "invalid startup packet layout");
    let version = packet.get(4..8).ok_or_else(layout)?;
    let major = u16::from_be_bytes([version[0], version[1]]);
    let minor = u16::from_be_bytes([version[2], version[3]]);
    if major != 3 {
        return Err(Report::fatal(
            errors::UNSUPPORTED_CONNECTION,
            format!("unsupported frontend protocol {major}.{minor}: infrasql supports 3.0 and later minor versions"),
        ));
    }
    let mut pb = BytesMut::from(packet);
    let Ok(Some(startup)) =
        Startup::decode(&mut pb, &DecodeContext::new(ProtocolVersion::PROTOCOL3_0))
    else {
        return Err(layout());
    };
    let Some(user) = startup.parameters.get("user").cloned() else {
        return Err(Report::fatal(
            errors::LOGIN_REFUSED,
            "no PostgreSQL user name specified in startup packet",
        ));
    };
    if reserved_roles.iter().any(|r| r == &user) {
        return Err(Report::fatal(
            errors::LOGIN_REFUSED,
            format!("role \"{user}\" cannot log in through infrasql"),
        )
        .with_detail("This role belongs to infrasql's engine; its writes bypass change capture."));
    }
    if startup
        .parameters
        .get("replication")
        .is_some_and(|v| v != "false" && v != "0" && v != "off")
    {
        return Err(Report::fatal(
            errors::UNSUPPORTED_CONNECTION,
            "replication connections are not supported by infrasql",
        ));
    }
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn startup(params: &[(&str, &str)]) -> Vec<u8> {
        let mut p = vec![0, 0, 0, 0, 0, 3, 0, 0];
        for (k, v) in params {
            p.extend_from_slice(k.as_bytes());
            p.push(0);
            p.extend_from_slice(v.as_bytes());
            p.push(0);
        }
        p.push(0);
        let len = (p.len() as u32).to_be_bytes();
        p[..4].copy_from_slice(&len);
        p
    }

    #[test]
    fn a_startup_message_yields_its_user_and_short_packets_are_refused() {
        let ok = accept_startup(&startup(&[("user", "alice")]), &[]).unwrap();
        assert_eq!(ok.user, "alice");
        assert_eq!(ok.mode, Mode::Normal);
        let no_user = accept_startup(&startup(&[("database", "x")]), &[]).unwrap_err();
        assert_eq!(no_user.code, errors::LOGIN_REFUSED);
        let short = accept_startup(&[0, 0, 0, 6, 0, 3], &[]).unwrap_err();
        assert_eq!(short.code, errors::PROTOCOL_VIOLATION);
        let reserved = accept_startup(&startup(&[("user", "eng")]), &["eng".into()]).unwrap_err();
        assert_eq!(reserved.code, errors::LOGIN_REFUSED);
    }

    #[test]
    fn lengths_kinds_and_cancel_keys() {
        assert_eq!(packet_len(8i32.to_be_bytes()), Ok(8));
        assert!(packet_len(7i32.to_be_bytes()).is_err());
        assert!(packet_len((-1i32).to_be_bytes()).is_err());
        assert!(packet_len(10_001i32.to_be_bytes()).is_err());
        let mut cancel = vec![0, 0, 0, 16];
        cancel.extend_from_slice(&CANCEL_REQUEST_CODE.to_be_bytes());
        cancel.extend_from_slice(&7i32.to_be_bytes());
        cancel.extend_from_slice(&9i32.to_be_bytes());
        assert_eq!(packet_kind(&cancel), Some(PacketKind::CancelRequest));
        assert_eq!(cancel_key(&cancel), Some((7, 9)));
        assert_eq!(cancel_key(&cancel[..15]), None);
        assert_eq!(packet_kind(&cancel[..7]), None);
    }
}
