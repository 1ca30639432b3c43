//! moto's server (`moto_server` on PATH) as a child process on a free
//! loopback port: the cloud for integration tests, real HTTP and real SigV4
//! to a real emulator, nothing mocked. One harness for the server's tests
//! (`tests/`) and the AWS provider's (`providers/aws/tests/`); each builds
//! its own SDK clients on [`Moto::url`].
//!
//! ```no_run
//! let moto = infrasql_moto::Moto::start();
//! // ... point an SDK client or `infrasql serve --aws-endpoint-url` at moto.url ...
//! moto.reset(); // forget every resource
//! // dropping it kills the server
//! ```

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running moto server, killed when dropped.
pub struct Moto {
    child: Child,
    port: u16,
    /// `http://127.0.0.1:<port>`, the AWS endpoint URL.
    pub url: String,
}

impl Moto {
    pub fn start() -> Moto {
        Self::start_with_env(&[])
    }

    /// moto with settings, e.g. `MOTO_ENABLE_AMI_VALIDATION=true`.
    pub fn start_with_env(env: &[(&str, &str)]) -> Moto {
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("a free loopback port")
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server on PATH (pip install 'moto[server]')");
        // From here on, Drop kills it even if the wait below panics.
        let moto = Moto {
            child,
            port,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        // A first request through moto's own API: listening is not yet
        // answering, and a test's first AWS call should not be the one to
        // find out.
        moto.reset();
        moto
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Forget every resource (POST /moto-api/reset).
    pub fn reset(&self) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to moto");
        s.write_all(
            b"POST /moto-api/reset HTTP/1.1\r\nHost: localhost\r\n\
              Content-Length: 0\r\nConnection: close\r\n\r\n",
        )
        .expect("send the reset to moto");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        assert!(out.starts_with("HTTP/1.1 200"), "moto reset failed: {out}");
    }

    /// A bucket's versioning status in moto ("Enabled", "Suspended"), or
    /// `None` when never set: a raw GET, because moto 5.2.1 answers
    /// GetBucketVersioning under a root element the Rust SDK refuses
    /// (`GetBucketVersioningResponse` instead of `VersioningConfiguration`).
    pub fn s3_versioning(&self, bucket: &str) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to moto");
        s.write_all(
            format!(
                "GET /{bucket}?versioning HTTP/1.1\r\nHost: localhost\r\n\
                 Connection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .expect("send the request to moto");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        assert!(
            out.starts_with("HTTP/1.1 200"),
            "GetBucketVersioning: {out}"
        );
        let start = out.find("<Status>")? + "<Status>".len();
        let len = out[start..].find("</Status>")?;
        Some(out[start..start + len].to_owned())
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moto_answers_while_held_and_is_gone_once_dropped() {
        let moto = Moto::start();
        let port = moto.port();
        assert_eq!(moto.url, format!("http://127.0.0.1:{port}"));
        moto.reset();
        drop(moto);
        // Drop waited for the process: nothing listens on the port now.
        assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    }
}
