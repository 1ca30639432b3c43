//! A raw frontend for protocol tests: sends exactly the messages a driver
//! would (unnamed or named statements, pipelines, Flush, Sync) and returns
//! the backend's answers as they came, so a test can assert the sequence a
//! real driver sees. Trust auth only: the server under test runs with
//! `--auth trust`.
#![allow(dead_code)]

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One backend message: its type byte and, for errors and command tags, text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    ParseComplete,
    BindComplete,
    CloseComplete,
    NoData,
    RowDescription,
    DataRow(Vec<Option<String>>),
    Command(String),
    /// SQLSTATE and message.
    Error(String, String),
    Notice(String),
    Ready(char),
    Other(char),
}

pub struct Raw {
    s: TcpStream,
    buf: Vec<u8>,
    out: Vec<u8>,
}

fn cstr(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

fn frame(out: &mut Vec<u8>, tag: u8, body: &[u8]) {
    out.push(tag);
    out.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    out.extend_from_slice(body);
}

impl Raw {
    pub async fn connect(port: u16, user: &str) -> Raw {
        let s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut r = Raw {
            s,
            buf: Vec::new(),
            out: Vec::new(),
        };
        let mut body = Vec::new();
        body.extend_from_slice(&196608i32.to_be_bytes());
        for (k, v) in [("user", user), ("database", "infrasql")] {
            cstr(&mut body, k);
            cstr(&mut body, v);
        }
        body.push(0);
        let mut msg = ((body.len() + 4) as i32).to_be_bytes().to_vec();
        msg.extend_from_slice(&body);
        r.s.write_all(&msg).await.unwrap();
        let msgs = r.until_ready().await;
        assert!(
            !msgs.iter().any(|m| matches!(m, Msg::Error(..))),
            "startup failed: {msgs:?}"
        );
        r
    }

    pub fn parse(&mut self, name: &str, sql: &str) -> &mut Self {
        let mut b = Vec::new();
        cstr(&mut b, name);
        cstr(&mut b, sql);
        b.extend_from_slice(&0i16.to_be_bytes());
        frame(&mut self.out, b'P', &b);
        self
    }

    /// Bind with no parameters and text results.
    pub fn bind(&mut self, portal: &str, stmt: &str) -> &mut Self {
        let mut b = Vec::new();
        cstr(&mut b, portal);
        cstr(&mut b, stmt);
        b.extend_from_slice(&0i16.to_be_bytes());
        b.extend_from_slice(&0i16.to_be_bytes());
        b.extend_from_slice(&0i16.to_be_bytes());
        frame(&mut self.out, b'B', &b);
        self
    }

    pub fn describe_portal(&mut self, portal: &str) -> &mut Self {
        let mut b = vec![b'P'];
        cstr(&mut b, portal);
        frame(&mut self.out, b'D', &b);
        self
    }

    pub fn describe_statement(&mut self, name: &str) -> &mut Self {
        let mut b = vec![b'S'];
        cstr(&mut b, name);
        frame(&mut self.out, b'D', &b);
        self
    }

    pub fn execute(&mut self, portal: &str) -> &mut Self {
        let mut b = Vec::new();
        cstr(&mut b, portal);
        b.extend_from_slice(&0i32.to_be_bytes());
        frame(&mut self.out, b'E', &b);
        self
    }

    /// Parse, Bind, Describe and Execute of one unnamed statement, as
    /// pgJDBC and node-postgres send it.
    pub fn unnamed(&mut self, sql: &str) -> &mut Self {
        self.parse("", sql)
            .bind("", "")
            .describe_portal("")
            .execute("")
    }

    pub fn copy_data(&mut self, data: &str) -> &mut Self {
        frame(&mut self.out, b'd', data.as_bytes());
        self
    }

    pub fn copy_done(&mut self) -> &mut Self {
        frame(&mut self.out, b'c', &[]);
        self
    }

    pub fn flush_msg(&mut self) -> &mut Self {
        frame(&mut self.out, b'H', &[]);
        self
    }

    pub fn sync(&mut self) -> &mut Self {
        frame(&mut self.out, b'S', &[]);
        self
    }

    pub fn query(&mut self, sql: &str) -> &mut Self {
        let mut b = Vec::new();
        cstr(&mut b, sql);
        frame(&mut self.out, b'Q', &b);
        self
    }

    /// Send everything queued without waiting for answers.
    pub async fn send_only(&mut self) {
        let out = std::mem::take(&mut self.out);
        self.s.write_all(&out).await.unwrap();
    }

    /// Send everything queued and read until `n` ReadyForQuery messages.
    pub async fn send(&mut self, n: usize) -> Vec<Msg> {
        let out = std::mem::take(&mut self.out);
        self.s.write_all(&out).await.unwrap();
        let mut all = Vec::new();
        for _ in 0..n {
            all.extend(self.until_ready().await);
        }
        all
    }

    /// Send everything queued and read until `last` says a message is the last.
    pub async fn send_until(&mut self, last: impl Fn(&Msg) -> bool) -> Vec<Msg> {
        let out = std::mem::take(&mut self.out);
        self.s.write_all(&out).await.unwrap();
        self.read_until(last).await
    }

    /// Send everything queued and read until the backend asks for COPY data.
    pub async fn send_until_copy_in(&mut self) -> Vec<Msg> {
        let out = std::mem::take(&mut self.out);
        self.s.write_all(&out).await.unwrap();
        self.read_until(|m| *m == Msg::Other('G')).await
    }

    async fn until_ready(&mut self) -> Vec<Msg> {
        self.read_until(|m| matches!(m, Msg::Ready(_))).await
    }

    async fn read_until(&mut self, last: impl Fn(&Msg) -> bool) -> Vec<Msg> {
        let mut msgs = Vec::new();
        loop {
            while self.buf.len() >= 5 {
                let len = i32::from_be_bytes(self.buf[1..5].try_into().unwrap()) as usize;
                if self.buf.len() < len + 1 {
                    break;
                }
                let f: Vec<u8> = self.buf.drain(..len + 1).collect();
                let m = decode(f[0], &f[5..]);
                let done = last(&m);
                msgs.push(m);
                if done {
                    return msgs;
                }
            }
            let mut chunk = [0u8; 8192];
            let n =
                tokio::time::timeout(std::time::Duration::from_secs(60), self.s.read(&mut chunk))
                    .await
                    .expect("answer within 60 s")
                    .unwrap();
            assert!(n > 0, "server closed the connection; got {msgs:?}");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

fn fields(body: &[u8]) -> Vec<(u8, String)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < body.len() && body[i] != 0 {
        let code = body[i];
        let end = i + 1 + body[i + 1..].iter().position(|b| *b == 0).unwrap();
        out.push((
            code,
            String::from_utf8_lossy(&body[i + 1..end]).into_owned(),
        ));
        i = end + 1;
    }
    out
}

fn decode(tag: u8, body: &[u8]) -> Msg {
    let text = |b: &[u8]| String::from_utf8_lossy(&b[..b.len().saturating_sub(1)]).into_owned();
    match tag {
        b'1' => Msg::ParseComplete,
        b'2' => Msg::BindComplete,
        b'3' => Msg::CloseComplete,
        b'n' => Msg::NoData,
        b'T' => Msg::RowDescription,
        b'D' => {
            let n = i16::from_be_bytes([body[0], body[1]]) as usize;
            let mut vals = Vec::new();
            let mut i = 2;
            for _ in 0..n {
                let len = i32::from_be_bytes(body[i..i + 4].try_into().unwrap());
                i += 4;
                if len < 0 {
                    vals.push(None);
                } else {
                    let l = len as usize;
                    vals.push(Some(String::from_utf8_lossy(&body[i..i + l]).into_owned()));
                    i += l;
                }
            }
            Msg::DataRow(vals)
        }
        b'C' => Msg::Command(text(body)),
        b'E' => {
            let f = fields(body);
            let get = |c: u8| {
                f.iter()
                    .find(|(k, _)| *k == c)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            Msg::Error(get(b'C'), get(b'M'))
        }
        b'N' => Msg::Notice(
            fields(body)
                .into_iter()
                .find(|(k, _)| *k == b'M')
                .map(|(_, v)| v)
                .unwrap_or_default(),
        ),
        b'Z' => Msg::Ready(body[0] as char),
        other => Msg::Other(other as char),
    }
}

/// The answers without notices, for sequence assertions.
pub fn quiet(msgs: &[Msg]) -> Vec<Msg> {
    msgs.iter()
        .filter(|m| !matches!(m, Msg::Notice(_)))
        .cloned()
        .collect()
}

/// The first error among the answers: SQLSTATE and message.
pub fn first_error(msgs: &[Msg]) -> Option<(String, String)> {
    msgs.iter().find_map(|m| match m {
        Msg::Error(code, msg) => Some((code.clone(), msg.clone())),
        _ => None,
    })
}

/// Whether the answers hold an error with SQLSTATE `code`.
pub fn has_error(msgs: &[Msg], code: &str) -> bool {
    msgs.iter()
        .any(|m| matches!(m, Msg::Error(c, _) if c == code))
}
