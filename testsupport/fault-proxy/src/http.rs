//! The wire: a small HTTP/1.1 server for the client side (so a connection
//! can be reset at a chosen moment), hyper-util's client towards moto, and
//! the rules applied in between.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{aws, Effect, Shared};

pub(crate) type Upstream = Client<HttpConnector, Full<Bytes>>;
type Headers = Vec<(String, Vec<u8>)>;

struct Request {
    method: String,
    target: String,
    headers: Headers,
    body: Bytes,
    close: bool,
}

struct Response {
    status: u16,
    headers: Headers,
    body: Bytes,
}

/// Headers that describe one connection, not the message.
fn hop_by_hop(name: &str) -> bool {
    [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "expect",
    ]
    .iter()
    .any(|h| name.eq_ignore_ascii_case(h))
}

/// One client connection: requests in turn (HTTP/1.1 keep-alive).
pub(crate) async fn serve(mut sock: TcpStream, shared: Arc<Shared>, client: Upstream) {
    let mut buf = Vec::with_capacity(16 * 1024);
    loop {
        let req = match read_request(&mut sock, &mut buf).await {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => {
                eprintln!("fault proxy: bad request: {e}");
                return;
            }
        };
        match handle(&shared, &client, &req).await {
            Some(bytes) => {
                if sock.write_all(&bytes).await.is_err() || req.close {
                    return;
                }
            }
            None => {
                // SO_LINGER 0: closing sends RST, not FIN; the client sees
                // "connection reset" with no answer.
                let _ = sock.set_zero_linger();
                return;
            }
        }
    }
}

fn invalid(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())
}

async fn read_request(sock: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Option<Request>> {
    let (head_len, method, target, headers) = loop {
        let mut hs = [httparse::EMPTY_HEADER; 128];
        let mut r = httparse::Request::new(&mut hs);
        if let httparse::Status::Complete(n) = r.parse(buf).map_err(invalid)? {
            let headers: Headers = r
                .headers
                .iter()
                .map(|h| (h.name.to_owned(), h.value.to_vec()))
                .collect();
            break (
                n,
                r.method.unwrap_or("GET").to_owned(),
                r.path.unwrap_or("/").to_owned(),
                headers,
            );
        }
        if sock.read_buf(buf).await? == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(std::io::ErrorKind::UnexpectedEof.into())
            };
        }
    };
    buf.drain(..head_len);
    let value = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).trim().to_ascii_lowercase())
    };
    if value("transfer-encoding").is_some() {
        return Err(invalid(
            "chunked request bodies are not supported; send Content-Length",
        ));
    }
    let len: usize = value("content-length")
        .map(|v| v.parse().map_err(invalid))
        .transpose()?
        .unwrap_or(0);
    if value("expect").as_deref() == Some("100-continue") && buf.len() < len {
        sock.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
    }
    while buf.len() < len {
        if sock.read_buf(buf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    let body = Bytes::from(buf.drain(..len).collect::<Vec<u8>>());
    let close = value("connection").as_deref() == Some("close");
    Ok(Some(Request {
        method,
        target,
        headers,
        body,
        close,
    }))
}

/// Apply the rules to one request; `None` means reset the connection.
async fn handle(shared: &Shared, client: &Upstream, req: &Request) -> Option<Vec<u8>> {
    let id = aws::identify(&req.method, &req.target, &req.headers, &req.body);
    let (i, delay, effect) = shared.arrive(&id, &req.body);
    let answer = match &effect {
        Some(Effect::ResetBefore) => None,
        Some(Effect::Answer(body)) => Some(Response {
            status: 200,
            headers: vec![("content-type".into(), answer_type(id.protocol).to_vec())],
            body: Bytes::from(body.clone()),
        }),
        None | Some(Effect::ResetAfter) | Some(Effect::Delay(_)) => {
            let resp = match forward(&shared.upstream, client, req).await {
                Ok(r) => {
                    shared.state().calls[i].forwarded = true;
                    r
                }
                Err(e) => Response {
                    status: 502,
                    headers: vec![("content-type".into(), b"text/plain".to_vec())],
                    body: Bytes::from(format!("fault proxy: upstream {}: {e}", shared.upstream)),
                },
            };
            (effect != Some(Effect::ResetAfter)).then_some(resp)
        }
        Some(e) => {
            let (status, code, message) = aws::error_of(id.protocol, e).expect("an error effect");
            let rid = {
                let mut st = shared.state();
                st.ids += 1;
                format!("fa0175e5-0000-4000-8000-{:012x}", st.ids)
            };
            let (headers, body) = aws::error_body(id.protocol, status, &code, &message, &rid);
            Some(Response {
                status,
                headers,
                body: body.into(),
            })
        }
    };
    tokio::time::sleep(delay).await;
    shared.state().calls[i].status = answer.as_ref().map(|r| r.status);
    answer.map(|r| encode(&r, req.method.eq_ignore_ascii_case("HEAD")))
}

/// The content type of a successful answer in `protocol`'s format.
fn answer_type(protocol: aws::Protocol) -> &'static [u8] {
    match protocol {
        aws::Protocol::Json => b"application/x-amz-json-1.1",
        aws::Protocol::RestXml => b"application/xml",
        aws::Protocol::Ec2 | aws::Protocol::Query => b"text/xml",
    }
}

async fn forward(upstream: &str, client: &Upstream, req: &Request) -> Result<Response, String> {
    let mut b = hyper::Request::builder()
        .method(req.method.as_bytes())
        .uri(format!("{upstream}{}", req.target));
    // Host and the rest as the client sent them: SigV4 signed them.
    for (k, v) in req.headers.iter().filter(|(k, _)| !hop_by_hop(k)) {
        b = b.header(k.as_str(), v.as_slice());
    }
    let r = b
        .body(Full::new(req.body.clone()))
        .map_err(|e| e.to_string())?;
    let resp = client.request(r).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .filter(|(k, _)| !hop_by_hop(k.as_str()))
        .map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn encode(r: &Response, head: bool) -> Vec<u8> {
    let reason = hyper::StatusCode::from_u16(r.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Unknown");
    let mut out = format!("HTTP/1.1 {} {reason}\r\n", r.status).into_bytes();
    // The body is whole here, so its length is known; a HEAD answer keeps
    // upstream's length and has no body.
    for (k, v) in r
        .headers
        .iter()
        .filter(|(k, _)| head || !k.eq_ignore_ascii_case("content-length"))
    {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
    }
    if !head && r.status != 204 && r.status != 304 {
        out.extend_from_slice(format!("content-length: {}\r\n", r.body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    if !head {
        out.extend_from_slice(&r.body);
    }
    out
}
