//! Parsing the `--upstream` URL: `postgres://USER[:PASSWORD]@HOST[:PORT]/DB?sslmode=...`.
//!
//! User and database in the URL are the proxy's own (for the connections it opens itself);
//! client sessions log in with the user and database their own StartupMessage names.

use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

/// libpq's `sslmode` values that the proxy honours towards the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// TLS if the server offers it, plain otherwise; certificate not verified.
    Prefer,
    /// TLS or fail; certificate not verified.
    Require,
    /// TLS, certificate chain verified against the root certificates.
    VerifyCa,
    /// As verify-ca, and the host name must match the certificate.
    VerifyFull,
}

impl SslMode {
    fn parse(s: &str) -> Result<SslMode, TargetError> {
        Ok(match s {
            "disable" => SslMode::Disable,
            // libpq's allow tries plain first and TLS only if the server refuses plain; the
            // proxy does not retry, so allow means plain.
            "allow" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => return Err(TargetError::BadSslMode(other.to_string())),
        })
    }
}

/// Where the upstream server is and how to talk to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTarget {
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// The proxy's own user.
    pub user: String,
    /// The proxy's own password, if the URL has one (kept in memory only).
    pub password: Option<String>,
    /// The proxy's own database.
    pub database: String,
    /// TLS policy.
    pub sslmode: SslMode,
    /// Root certificates for verify-ca / verify-full (PEM file); the system's roots otherwise.
    pub sslrootcert: Option<PathBuf>,
    /// Client certificate and key for the upstream (PEM files).
    pub sslcert: Option<(PathBuf, PathBuf)>,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
}

/// An `--upstream` value that cannot be used.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TargetError {
    /// Not a URL.
    #[error("invalid upstream URL: {0}")]
    BadUrl(String),
    /// Wrong scheme.
    #[error("upstream URL must start with postgres:// or postgresql://, not {0}://")]
    BadScheme(String),
    /// No host.
    #[error("upstream URL has no host")]
    NoHost,
    /// Unknown sslmode.
    #[error(
        "invalid sslmode {0:?}: expected disable, allow, prefer, require, verify-ca or verify-full"
    )]
    BadSslMode(String),
    /// Unknown query parameter.
    #[error("unsupported upstream URL parameter {0:?}")]
    BadParam(String),
    /// A parameter with a bad value.
    #[error("invalid value {value:?} for upstream URL parameter {name}")]
    BadValue {
        /// Parameter.
        name: String,
        /// Value.
        value: String,
    },
}

impl UpstreamTarget {
    /// Parses a `postgres://` URL.
    pub fn parse(s: &str) -> Result<UpstreamTarget, TargetError> {
        let url = url::Url::parse(s).map_err(|e| TargetError::BadUrl(e.to_string()))?;
        if url.scheme() != "postgres" && url.scheme() != "postgresql" {
            return Err(TargetError::BadScheme(url.scheme().to_string()));
        }
        let decode = |v: &str| {
            url::form_urlencoded::parse(format!("x={v}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or(TargetError::NoHost)?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let user = match url.username() {
            "" => "postgres".to_string(),
            u => decode(u),
        };
        let database = match url.path().trim_start_matches('/') {
            "" => user.clone(),
            d => decode(d),
        };
        let mut target = UpstreamTarget {
            host,
            port: url.port().unwrap_or(5432),
            user,
            password: url.password().map(decode),
            database,
            sslmode: SslMode::Prefer,
            sslrootcert: None,
            sslcert: None,
            connect_timeout: Duration::from_secs(10),
        };
        let mut cert = None;
        let mut key = None;
        for (name, value) in url.query_pairs() {
            match &*name {
                "sslmode" => target.sslmode = SslMode::parse(&value)?,
                "sslrootcert" => target.sslrootcert = Some(PathBuf::from(&*value)),
                "sslcert" => cert = Some(PathBuf::from(&*value)),
                "sslkey" => key = Some(PathBuf::from(&*value)),
                "connect_timeout" => {
                    let secs: u64 = value.parse().map_err(|_| TargetError::BadValue {
                        name: name.to_string(),
                        value: value.to_string(),
                    })?;
                    target.connect_timeout = Duration::from_secs(secs.max(1));
                }
                "application_name" => {}
                other => return Err(TargetError::BadParam(other.to_string())),
            }
        }
        match (cert, key) {
            (Some(c), Some(k)) => target.sslcert = Some((c, k)),
            (None, None) => {}
            _ => {
                return Err(TargetError::BadValue {
                    name: "sslcert/sslkey".into(),
                    value: "only one of the pair given".into(),
                })
            }
        }
        Ok(target)
    }

    /// `host:port` for connecting and logging.
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_url() {
        let t = UpstreamTarget::parse(
            "postgresql://al%20ice:s%3Acret@db.example:5433/my%20db?sslmode=verify-full&sslrootcert=/r.pem",
        )
        .unwrap();
        assert_eq!(t.host, "db.example");
        assert_eq!(t.port, 5433);
        assert_eq!(t.user, "al ice");
        assert_eq!(t.password.as_deref(), Some("s:cret"));
        assert_eq!(t.database, "my db");
        assert_eq!(t.sslmode, SslMode::VerifyFull);
        assert_eq!(t.sslrootcert, Some(PathBuf::from("/r.pem")));
    }

    #[test]
    fn defaults_and_errors() {
        let t = UpstreamTarget::parse("postgres://127.0.0.1").unwrap();
        assert_eq!(
            (t.port, t.user.as_str(), t.database.as_str()),
            (5432, "postgres", "postgres")
        );
        assert_eq!(t.sslmode, SslMode::Prefer);
        assert_eq!(t.addr(), "127.0.0.1:5432");
        assert!(matches!(
            UpstreamTarget::parse("mysql://x"),
            Err(TargetError::BadScheme(_))
        ));
        assert!(matches!(
            UpstreamTarget::parse("postgres://x/db?sslmode=always"),
            Err(TargetError::BadSslMode(_))
        ));
        assert!(matches!(
            UpstreamTarget::parse("postgres://x/db?nope=1"),
            Err(TargetError::BadParam(_))
        ));
    }
}
