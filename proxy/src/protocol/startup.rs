//! The first packet of a connection (it has no tag byte): SSLRequest, GSSENCRequest,
//! CancelRequest or StartupMessage, and the StartupMessage the proxy sends upstream.

use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;

use super::MAX_STARTUP_LEN;

/// The request codes that stand where a StartupMessage has its protocol version.
pub const SSL_REQUEST_CODE: u32 = 80_877_103;
/// GSSAPI encryption request.
pub const GSSENC_REQUEST_CODE: u32 = 80_877_104;
/// Cancel request.
pub const CANCEL_REQUEST_CODE: u32 = 80_877_102;
/// Protocol 3.0.
pub const PROTOCOL_3_0: u32 = 3 << 16;

/// What a first packet asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirstPacket {
    /// Asks whether the server speaks TLS.
    SslRequest,
    /// Asks whether the server speaks GSSAPI encryption.
    GssEncRequest,
    /// Cancels the query running in the session with this key.
    CancelRequest {
        /// The process id from BackendKeyData.
        pid: u32,
        /// The secret key from BackendKeyData.
        secret: u32,
    },
    /// Starts a session.
    Startup(StartupMessage),
}

/// Startup parameters as (name, value) byte strings, in the order sent.
pub type StartupParams = Vec<(Vec<u8>, Vec<u8>)>;

/// A StartupMessage: protocol version and parameters in the order sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartupMessage {
    /// Major version in the high 16 bits, minor in the low 16.
    pub version: u32,
    /// Parameter names and values (`user`, `database`, `options`, `_pq_.*` ...). Values are
    /// kept as bytes: the proxy does not require UTF-8.
    pub params: StartupParams,
}

/// A first packet that cannot be accepted.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum StartupError {
    /// The length field is out of range.
    #[error("invalid length of startup packet: {0}")]
    BadLength(u32),
    /// A request code with the wrong packet size.
    #[error("invalid length of {what}: {len}")]
    BadRequestLength {
        /// Which request.
        what: &'static str,
        /// Its length.
        len: usize,
    },
    /// A protocol this proxy does not speak.
    #[error("unsupported frontend protocol {major}.{minor}: server supports 3.0 to 3.0")]
    UnsupportedProtocol {
        /// Major version.
        major: u16,
        /// Minor version.
        minor: u16,
    },
    /// Parameter list not made of NUL-terminated pairs.
    #[error("invalid startup packet layout: expected terminator as last byte")]
    BadLayout,
    /// No user name.
    #[error("no PostgreSQL user name specified in startup packet")]
    NoUser,
}

impl StartupError {
    /// The SQLSTATE PostgreSQL uses for this error.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            StartupError::UnsupportedProtocol { .. } => "0A000",
            StartupError::NoUser => "28000",
            _ => "08P01",
        }
    }
}

/// Checks the length field of a first packet (it counts itself) before the body is read.
pub fn check_length(len: u32) -> Result<usize, StartupError> {
    if !(8..=MAX_STARTUP_LEN).contains(&len) {
        return Err(StartupError::BadLength(len));
    }
    Ok(len as usize - 4)
}

/// Parses a first packet's body (everything after the length field).
pub fn parse_first_packet(body: &[u8]) -> Result<FirstPacket, StartupError> {
    if body.len() < 4 {
        return Err(StartupError::BadLength(body.len() as u32 + 4));
    }
    let code = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
    let rest = &body[4..];
    let exact = |what: &'static str, want: usize| {
        if rest.len() == want {
            Ok(())
        } else {
            Err(StartupError::BadRequestLength {
                what,
                len: body.len() + 4,
            })
        }
    };
    match code {
        SSL_REQUEST_CODE => exact("SSLRequest", 0).map(|_| FirstPacket::SslRequest),
        GSSENC_REQUEST_CODE => exact("GSSENCRequest", 0).map(|_| FirstPacket::GssEncRequest),
        CANCEL_REQUEST_CODE => {
            exact("CancelRequest", 8)?;
            Ok(FirstPacket::CancelRequest {
                pid: u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]),
                secret: u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]),
            })
        }
        version => {
            let (major, minor) = ((version >> 16) as u16, (version & 0xffff) as u16);
            if major != 3 {
                return Err(StartupError::UnsupportedProtocol { major, minor });
            }
            let params = parse_params(rest)?;
            if !params.iter().any(|(k, _)| k == b"user") {
                return Err(StartupError::NoUser);
            }
            Ok(FirstPacket::Startup(StartupMessage { version, params }))
        }
    }
}

fn parse_params(mut rest: &[u8]) -> Result<StartupParams, StartupError> {
    let mut params = Vec::new();
    loop {
        let name = take_cstr(&mut rest)?;
        if name.is_empty() {
            break;
        }
        let value = take_cstr(&mut rest)?;
        params.push((name.to_vec(), value.to_vec()));
    }
    if !rest.is_empty() {
        return Err(StartupError::BadLayout);
    }
    Ok(params)
}

fn take_cstr<'a>(rest: &mut &'a [u8]) -> Result<&'a [u8], StartupError> {
    let end = rest
        .iter()
        .position(|&b| b == 0)
        .ok_or(StartupError::BadLayout)?;
    let s = &rest[..end];
    *rest = &rest[end + 1..];
    Ok(s)
}

impl StartupMessage {
    /// The value of a parameter, if sent.
    pub fn param(&self, name: &str) -> Option<&[u8]> {
        self.params
            .iter()
            .find(|(k, _)| k == name.as_bytes())
            .map(|(_, v)| v.as_slice())
    }

    /// Protocol extension options (`_pq_.*`) the client asked for; the proxy speaks plain 3.0
    /// and names them as unrecognised in NegotiateProtocolVersion.
    pub fn protocol_options(&self) -> Vec<&[u8]> {
        self.params
            .iter()
            .filter(|(k, _)| k.starts_with(b"_pq_."))
            .map(|(k, _)| k.as_slice())
            .collect()
    }

    /// The minor protocol version asked for.
    pub fn minor_version(&self) -> u16 {
        (self.version & 0xffff) as u16
    }

    /// Encodes this message as protocol 3.0 without `_pq_.*` options, as sent upstream.
    pub fn encode_for_upstream(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(64);
        buf.put_u32(0);
        buf.put_u32(PROTOCOL_3_0);
        for (k, v) in self.params.iter().filter(|(k, _)| !k.starts_with(b"_pq_.")) {
            buf.put_slice(k);
            buf.put_u8(0);
            buf.put_slice(v);
            buf.put_u8(0);
        }
        buf.put_u8(0);
        let len = buf.len() as u32;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        buf.freeze()
    }
}

/// Encodes a CancelRequest for the given key.
pub fn encode_cancel_request(pid: u32, secret: u32) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..4].copy_from_slice(&16u32.to_be_bytes());
    out[4..8].copy_from_slice(&CANCEL_REQUEST_CODE.to_be_bytes());
    out[8..12].copy_from_slice(&pid.to_be_bytes());
    out[12..].copy_from_slice(&secret.to_be_bytes());
    out
}

/// Encodes an SSLRequest.
pub fn encode_ssl_request() -> [u8; 8] {
    let mut out = [0u8; 8];
    out[..4].copy_from_slice(&8u32.to_be_bytes());
    out[4..].copy_from_slice(&SSL_REQUEST_CODE.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn startup_body(version: u32, params: &[(&str, &str)]) -> Vec<u8> {
        let mut v = version.to_be_bytes().to_vec();
        for (k, val) in params {
            v.extend_from_slice(k.as_bytes());
            v.push(0);
            v.extend_from_slice(val.as_bytes());
            v.push(0);
        }
        v.push(0);
        v
    }

    #[test]
    fn parses_startup_and_reencodes_as_3_0() {
        let body = startup_body(
            PROTOCOL_3_0 | 2,
            &[("user", "alice"), ("database", "db"), ("_pq_.x", "1")],
        );
        let FirstPacket::Startup(msg) = parse_first_packet(&body).unwrap() else {
            panic!("not a startup")
        };
        assert_eq!(msg.param("user"), Some(&b"alice"[..]));
        assert_eq!(msg.minor_version(), 2);
        assert_eq!(msg.protocol_options(), vec![&b"_pq_.x"[..]]);
        let enc = msg.encode_for_upstream();
        let again = parse_first_packet(&enc[4..]).unwrap();
        let FirstPacket::Startup(again) = again else {
            panic!()
        };
        assert_eq!(again.version, PROTOCOL_3_0);
        assert_eq!(again.params.len(), 2);
    }

    #[test]
    fn parses_requests() {
        assert_eq!(
            parse_first_packet(&SSL_REQUEST_CODE.to_be_bytes()),
            Ok(FirstPacket::SslRequest)
        );
        let c = encode_cancel_request(7, 9);
        assert_eq!(
            parse_first_packet(&c[4..]),
            Ok(FirstPacket::CancelRequest { pid: 7, secret: 9 })
        );
        assert!(parse_first_packet(&c[4..12]).is_err());
    }

    #[test]
    fn rejects_bad_packets() {
        assert!(check_length(7).is_err());
        assert!(check_length(10_001).is_err());
        assert_eq!(
            parse_first_packet(&startup_body(2 << 16, &[("user", "a")])),
            Err(StartupError::UnsupportedProtocol { major: 2, minor: 0 })
        );
        assert_eq!(
            parse_first_packet(&startup_body(PROTOCOL_3_0, &[("database", "a")])),
            Err(StartupError::NoUser)
        );
        let mut body = startup_body(PROTOCOL_3_0, &[("user", "a")]);
        body.pop();
        assert_eq!(parse_first_packet(&body), Err(StartupError::BadLayout));
    }
}
