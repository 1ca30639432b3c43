//! TLS for the client subcommands, with libpq's `sslmode` meanings:
//! `disable`; `allow`/`prefer` (TLS when the server offers it);
//! `require` (TLS or fail; the certificate is checked only when a root
//! certificate is given, as libpq does); `verify-ca` (the chain against the
//! root certificate); `verify-full` (the chain and the host name).
//!
//! tokio-postgres knows only disable/prefer/require and no `sslrootcert`,
//! so both are taken out of the connection string here and applied to the
//! rustls configuration. `PGSSLMODE` and `PGSSLROOTCERT` are the defaults,
//! and `~/.postgresql/root.crt` is the root certificate when none is named.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::crypto::{ring, CryptoProvider};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, Error as TlsError, RootCertStore,
    SignatureScheme,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// What the user asked of TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wish {
    pub mode: Mode,
    pub root_cert: Option<PathBuf>,
}

impl Mode {
    pub fn parse(s: &str) -> anyhow::Result<Mode> {
        Ok(match s {
            "disable" => Mode::Disable,
            "allow" | "prefer" => Mode::Prefer,
            "require" => Mode::Require,
            "verify-ca" => Mode::VerifyCa,
            "verify-full" => Mode::VerifyFull,
            // Fail closed: a typo must not mean "no TLS".
            other => bail!("invalid sslmode {other:?} (disable, allow, prefer, require, verify-ca or verify-full)"),
        })
    }

    pub fn ssl_mode(self) -> SslMode {
        match self {
            Mode::Disable => SslMode::Disable,
            Mode::Prefer => SslMode::Prefer,
            _ => SslMode::Require,
        }
    }
}

/// Takes `sslmode` and `sslrootcert` out of a URL or `key=value` string;
/// what is left is for tokio-postgres. The environment fills what the
/// string does not say.
pub fn split(conn: &str) -> anyhow::Result<(String, Wish)> {
    let (rest, mode, root) = if conn.starts_with("postgres://") || conn.starts_with("postgresql://")
    {
        split_url(conn)
    } else {
        split_pairs(conn)?
    };
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mode = Mode::parse(&mode.or_else(|| env("PGSSLMODE")).unwrap_or("prefer".into()))?;
    let root_cert = root.or_else(|| env("PGSSLROOTCERT")).map(PathBuf::from);
    Ok((rest, Wish { mode, root_cert }))
}

type Taken = (String, Option<String>, Option<String>);

fn split_url(url: &str) -> Taken {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), None, None);
    };
    let (mut mode, mut root) = (None, None);
    let kept: Vec<&str> = query
        .split('&')
        .filter(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            match k {
                "sslmode" => mode = Some(percent_decode(v)),
                "sslrootcert" => root = Some(percent_decode(v)),
                _ => return true,
            }
            false
        })
        .collect();
    let rest = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (rest, mode, root)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (b[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// libpq's `key = value` pairs: a value may be single-quoted, with `\`
/// escaping. The kept pairs are written back quoted.
fn split_pairs(conn: &str) -> anyhow::Result<Taken> {
    let (mut mode, mut root) = (None, None);
    let mut kept = Vec::new();
    let mut chars = conn.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let key: String =
            std::iter::from_fn(|| chars.next_if(|c| *c != '=' && !c.is_whitespace())).collect();
        if key.is_empty() {
            break;
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            bail!("invalid connection string: {key:?} has no value");
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\\') => value.extend(chars.next()),
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => bail!("invalid connection string: unterminated quote"),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        match key.as_str() {
            "sslmode" => mode = Some(value),
            "sslrootcert" => root = Some(value),
            _ => kept.push(format!(
                "{key}='{}'",
                value.replace('\\', "\\\\").replace('\'', "\\'")
            )),
        }
    }
    Ok((kept.join(" "), mode, root))
}

/// The connector for the wish. Certificates are checked for verify-ca and
/// verify-full, and for require when a root certificate exists.
pub fn connector(wish: &Wish) -> anyhow::Result<MakeRustlsConnect> {
    let provider = Arc::new(ring::default_provider());
    let root_file = wish.root_cert.clone().or_else(|| {
        let default = PathBuf::from(std::env::var_os("HOME")?).join(".postgresql/root.crt");
        default.exists().then_some(default)
    });
    let verify = match wish.mode {
        Mode::VerifyCa | Mode::VerifyFull => true,
        Mode::Require => root_file.is_some(),
        Mode::Disable | Mode::Prefer => false,
    };
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS setup")?;
    let config = if verify {
        let Some(path) = root_file else {
            bail!("sslmode {:?} needs a root certificate: set sslrootcert or PGSSLROOTCERT, or put it in ~/.postgresql/root.crt", wish.mode);
        };
        let mut roots = RootCertStore::empty();
        let pem = std::fs::read(&path)
            .with_context(|| format!("cannot read root certificate {}", path.display()))?;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            roots
                .add(cert.with_context(|| format!("invalid certificate in {}", path.display()))?)
                .with_context(|| format!("unusable root certificate in {}", path.display()))?;
        }
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .context("TLS setup")?;
        let check_name = wish.mode != Mode::VerifyCa;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Checked { webpki, check_name }))
            .with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unchecked(provider)))
            .with_no_client_auth()
    };
    Ok(MakeRustlsConnect::new(config))
}

/// The chain against the roots; the host name only for verify-full.
#[derive(Debug)]
struct Checked {
    webpki: Arc<WebPkiServerVerifier>,
    check_name: bool,
}

impl ServerCertVerifier for Checked {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        match self
            .webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(TlsError::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            r => r,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// Encryption without authentication (libpq's prefer/require without a
/// root certificate): the handshake's signatures are still checked.
#[derive(Debug)]
struct Unchecked(Arc<CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        tokio_rustls::rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        tokio_rustls::rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssl_keys_leave_a_url_and_the_rest_stays() {
        let (rest, mode, root) =
            split_url("postgresql://u@h:5/db?sslmode=verify-full&application_name=x&sslrootcert=%2Ftmp%2Fca.pem");
        assert_eq!(rest, "postgresql://u@h:5/db?application_name=x");
        assert_eq!(mode.as_deref(), Some("verify-full"));
        assert_eq!(root.as_deref(), Some("/tmp/ca.pem"));
        let (rest, mode, _) = split_url("postgresql://u@h/db?sslmode=require");
        assert_eq!(
            (rest.as_str(), mode.as_deref()),
            ("postgresql://u@h/db", Some("require"))
        );
    }

    #[test]
    fn ssl_keys_leave_key_value_pairs_and_quotes_survive() {
        let (rest, mode, root) = split_pairs(
            "host=h  sslmode = verify-ca password='it\\'s' sslrootcert='/a b/ca.pem' options='-c a=b'",
        )
        .unwrap();
        assert_eq!(mode.as_deref(), Some("verify-ca"));
        assert_eq!(root.as_deref(), Some("/a b/ca.pem"));
        let cfg: tokio_postgres::Config = rest.parse().unwrap();
        assert_eq!(cfg.get_options(), Some("-c a=b"));
        assert_eq!(cfg.get_password(), Some(&b"it's"[..]));
        assert!(split_pairs("host='h").is_err());
    }

    #[test]
    fn an_unknown_mode_is_refused() {
        assert!(Mode::parse("verify_full").is_err());
        assert_eq!(Mode::parse("allow").unwrap(), Mode::Prefer);
    }
}
