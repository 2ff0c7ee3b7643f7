//! A deliberately small HTTP/1 client over a raw socket: tests need exact
//! control of what goes on the wire (Host headers, keep-alive, pipelining,
//! aborted transfers), which a full client library would hide.

use std::io::{BufRead, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

pub fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect to lighttpd");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

/// Sends `raw` as is, half-closes, and reads everything until the server
/// closes the connection.
pub fn exchange(port: u16, raw: &[u8]) -> Vec<u8> {
    let mut s = connect(port);
    s.write_all(raw).expect("send request");
    let _ = s.shutdown(Shutdown::Write);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

/// Splits a byte stream of HTTP/1 responses (Content-Length framed, or to
/// the end). `head_only` marks responses to HEAD, which have no body.
pub fn parse_responses(mut data: &[u8], head_only: &[bool]) -> Vec<Response> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
            break;
        };
        let head = String::from_utf8_lossy(&data[..end]).into_owned();
        data = &data[end + 4..];
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let len = if head_only.get(out.len()).copied().unwrap_or(false) {
            0
        } else {
            head.lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(data.len())
        };
        let len = len.min(data.len());
        out.push(Response {
            status,
            head,
            body: data[..len].to_vec(),
        });
        data = &data[len..];
    }
    out
}

/// One HTTP/1.0 GET with the given Host header (None: no Host header).
pub fn get(port: u16, host: Option<&str>, path: &str) -> Response {
    let mut req = format!("GET {path} HTTP/1.0\r\n");
    if let Some(h) = host {
        req.push_str(&format!("Host: {h}\r\n"));
    }
    req.push_str("\r\n");
    let raw = exchange(port, req.as_bytes());
    parse_responses(&raw, &[])
        .into_iter()
        .next()
        .unwrap_or_else(|| {
            panic!(
                "no HTTP response to GET {path}: {:?}",
                String::from_utf8_lossy(&raw)
            )
        })
}

/// Reads one Content-Length framed response (head, then that many body
/// bytes) from a keep-alive connection, leaving what follows unread;
/// returns the body's length.
pub fn read_framed_response(reader: &mut impl BufRead) -> usize {
    let (mut line, mut length) = (String::new(), 0);
    loop {
        line.clear();
        reader.read_line(&mut line).expect("response head");
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().expect("a Content-Length number");
            }
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).expect("response body");
    length
}
