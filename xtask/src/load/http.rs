//! Just enough blocking HTTP/1.1 client for the harness's own requests: readiness
//! probes, the one request that checks a server answers 200 before the load, and the
//! request each idle connection sends. The load itself is wrk's.
//!
//! Requests are sent one at a time per connection and every response here carries a
//! `content-length`, so a response ends exactly where its body does.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// The largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;

/// A response: status, head and body.
#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// The status line and the headers, as received.
    pub head: String,
    pub body: Vec<u8>,
}

impl Response {
    /// The value of the first header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.split("\r\n").skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then_some(value.trim())
        })
    }
}

/// `GET path` with keep-alive.
pub fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").into_bytes()
}

/// The seed `POST /widget/session` with `token`, as the wrk script sends it.
pub fn post_session(token: &str, body: &str) -> Vec<u8> {
    format!(
        "POST /widget/session HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// What each idle connection sends once: a cheap authenticated lookup of a
/// transaction that does not exist (answers 404), so the connection has been accepted
/// and served, with its buffers allocated, before it goes idle.
pub fn idle_request(token: &str) -> Vec<u8> {
    format!(
        "GET /widget/transactions/00000000-0000-0000-0000-000000000000 HTTP/1.1\r\n\
         Host: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n"
    )
    .into_bytes()
}

/// Sends `request` on a new connection to `addr` and reads the response.
pub fn once(addr: SocketAddr, request: &[u8], timeout: Duration) -> io::Result<Response> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    exchange(&mut stream, request)
}

/// Sends `request` on `stream` and reads one response.
pub fn exchange(stream: &mut (impl Read + Write), request: &[u8]) -> io::Result<Response> {
    stream.write_all(request)?;
    stream.flush()?;
    read_response(stream)
}

/// Reads one response with a `content-length` body from `reader`.
pub fn read_response(reader: &mut impl Read) -> io::Result<Response> {
    let mut buffer = Vec::with_capacity(2048);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = find(&buffer, b"\r\n\r\n") {
            break at + 4;
        }
        if buffer.len() > MAX_HEAD {
            return Err(invalid("response head larger than 64 KiB"));
        }
        let read = reader.read(&mut chunk)?;
        if read == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before a complete response head",
            ));
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = std::str::from_utf8(&buffer[..head_end])
        .map_err(|_| invalid("response head is not UTF-8"))?;
    let (status, length) = parse_head(head)?;
    let head = head.trim_end().to_owned();
    let mut body = buffer.split_off(head_end);
    while body.len() < length {
        let read = reader.read(&mut chunk)?;
        if read == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before the end of the response body",
            ));
        }
        body.extend_from_slice(&chunk[..read]);
    }
    body.truncate(length);
    Ok(Response { status, head, body })
}

/// The status and `content-length` of a response head.
fn parse_head(head: &str) -> io::Result<(u16, usize)> {
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut words = status_line.split(' ');
    let status = match (words.next(), words.next()) {
        (Some(version), Some(code)) if version.starts_with("HTTP/1.") => code
            .parse::<u16>()
            .map_err(|_| invalid("response status is not a number"))?,
        _ => return Err(invalid("not an HTTP/1.x status line")),
    };
    let mut length = None;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("content-length") {
                length = Some(
                    value
                        .trim()
                        .parse::<usize>()
                        .map_err(|_| invalid("content-length is not a number"))?,
                );
            } else if name.trim().eq_ignore_ascii_case("transfer-encoding") {
                return Err(invalid("chunked responses are not supported here"));
            }
        }
    }
    let length = length.ok_or_else(|| invalid("response has no content-length"))?;
    Ok((status, length))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out its bytes a few at a time, as a socket may.
    struct Trickle<'a> {
        bytes: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.bytes.len());
            buf[..n].copy_from_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            Ok(n)
        }
    }

    const OK: &[u8] =
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nContent-Length: 11\r\n\r\n{\"a\":\"bcd\"}";

    #[test]
    fn reads_a_response_however_it_is_split() {
        for step in [1, 3, 7, 4096] {
            let mut reader = Trickle { bytes: OK, step };
            let response = read_response(&mut reader).expect("parses");
            assert_eq!(
                (response.status, response.body.as_slice()),
                (200, b"{\"a\":\"bcd\"}".as_slice()),
                "read {step} bytes at a time"
            );
            assert_eq!(response.header("content-type"), Some("application/json"));
            assert_eq!(response.header("CONTENT-LENGTH"), Some("11"));
            assert_eq!(response.header("ratelimit"), None);
        }
    }

    #[test]
    fn reads_an_empty_body_and_stops_at_its_end() {
        let mut bytes = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n".to_vec();
        bytes.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        let response = read_response(&mut bytes.as_slice()).expect("parses");
        assert_eq!((response.status, response.body.len()), (404, 0));
    }

    #[test]
    fn rejects_what_it_cannot_frame() {
        let cases: [(&[u8], &str); 5] = [
            (b"HTTP/1.1 200 OK\r\n\r\n", "no content-length"),
            (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
                "chunked",
            ),
            (b"SSH-2.0-OpenSSH\r\n\r\n", "not HTTP"),
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nab",
                "short body",
            ),
            (b"HTTP/1.1 200 OK\r\ncontent-le", "short head"),
        ];
        for (bytes, why) in cases {
            let mut reader = bytes;
            assert!(read_response(&mut reader).is_err(), "{why}");
        }
    }

    #[test]
    fn the_post_has_the_exact_body_length() {
        let request = String::from_utf8(post_session("ct_test_x", "{\"a\":1}")).expect("utf8");
        assert!(request.contains("Content-Length: 7\r\n\r\n{\"a\":1}"));
        assert!(request.contains("Authorization: Bearer ct_test_x\r\n"));
    }
}
