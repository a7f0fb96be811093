//! Authentication requests (`R`) relayed from the server, and the one rewrite the proxy makes:
//! it removes `SCRAM-SHA-256-PLUS` from the SASL mechanisms, because channel binding covers the
//! TLS certificate of the proxy, which the server cannot verify (see docs/AUTHENTICATION.md).

use bytes::{BufMut, Bytes, BytesMut};

/// AuthenticationOk.
pub const AUTH_OK: u32 = 0;
/// AuthenticationCleartextPassword.
pub const AUTH_CLEARTEXT: u32 = 3;
/// AuthenticationMD5Password.
pub const AUTH_MD5: u32 = 5;
/// AuthenticationGSS.
pub const AUTH_GSS: u32 = 7;
/// AuthenticationGSSContinue.
pub const AUTH_GSS_CONTINUE: u32 = 8;
/// AuthenticationSSPI.
pub const AUTH_SSPI: u32 = 9;
/// AuthenticationSASL.
pub const AUTH_SASL: u32 = 10;
/// AuthenticationSASLContinue.
pub const AUTH_SASL_CONTINUE: u32 = 11;
/// AuthenticationSASLFinal.
pub const AUTH_SASL_FINAL: u32 = 12;

/// The channel-binding SCRAM mechanism the proxy never advertises.
pub const SCRAM_PLUS: &[u8] = b"SCRAM-SHA-256-PLUS";

/// The request code of an authentication message body.
pub fn request_code(body: &[u8]) -> Option<u32> {
    let b: &[u8; 4] = body.get(..4)?.try_into().ok()?;
    Some(u32::from_be_bytes(*b))
}

/// True when the client must answer this request with a message of its own.
pub fn expects_client_response(code: u32) -> bool {
    matches!(
        code,
        AUTH_CLEARTEXT
            | AUTH_MD5
            | AUTH_GSS
            | AUTH_GSS_CONTINUE
            | AUTH_SSPI
            | AUTH_SASL
            | AUTH_SASL_CONTINUE
    )
}

/// The mechanisms named in an AuthenticationSASL body.
pub fn sasl_mechanisms(body: &[u8]) -> Vec<&[u8]> {
    body.get(4..)
        .unwrap_or_default()
        .split(|&b| b == 0)
        .take_while(|m| !m.is_empty())
        .collect()
}

/// Re-encodes an AuthenticationSASL message without `SCRAM-SHA-256-PLUS`.
pub fn sasl_without_channel_binding(body: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(body.len() + 5);
    buf.put_u8(b'R');
    buf.put_u32(0);
    buf.put_u32(AUTH_SASL);
    for m in sasl_mechanisms(body)
        .into_iter()
        .filter(|m| *m != SCRAM_PLUS)
    {
        buf.put_slice(m);
        buf.put_u8(0);
    }
    buf.put_u8(0);
    let len = (buf.len() - 1) as u32;
    buf[1..5].copy_from_slice(&len.to_be_bytes());
    buf.freeze()
}

/// The GS2 channel-binding flag of a SCRAM client-first-message inside a SASLInitialResponse
/// body (`n`: no binding, `y`: client could bind but thinks the server cannot, `p`: binds).
pub fn sasl_initial_cbind_flag(body: &[u8]) -> Option<u8> {
    let nul = body.iter().position(|&b| b == 0)?;
    let rest = body.get(nul + 1..)?;
    // Int32 length of the initial response, then the response itself.
    let data = rest.get(4..)?;
    data.first().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_plus_mechanism() {
        let mut body = AUTH_SASL.to_be_bytes().to_vec();
        body.extend_from_slice(b"SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0");
        let out = sasl_without_channel_binding(&body);
        assert_eq!(sasl_mechanisms(&out[5..]), vec![&b"SCRAM-SHA-256"[..]]);
        assert_eq!(request_code(&out[5..]), Some(AUTH_SASL));
    }

    #[test]
    fn reads_cbind_flag() {
        let mut body = b"SCRAM-SHA-256\0".to_vec();
        let resp = b"y,,n=,r=abc";
        body.extend_from_slice(&(resp.len() as u32).to_be_bytes());
        body.extend_from_slice(resp);
        assert_eq!(sasl_initial_cbind_flag(&body), Some(b'y'));
        assert_eq!(sasl_initial_cbind_flag(b"x"), None);
    }
}
