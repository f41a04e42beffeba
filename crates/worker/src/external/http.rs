//! A minimal HTTP/1.1 client for engines on this machine or a trusted network: one request per
//! connection (`Connection: close`), plain `http://` only, bodies framed by `Content-Length`,
//! `chunked` or the end of the connection. The worker layer must not depend on HTTP frameworks
//! (docs/ARCHITECTURE.md), and an engine's local API needs nothing more.
//!
//! Dropping a [`Response`] closes its connection: that is how a relayed request is cancelled
//! upstream (llama.cpp and vLLM both abort a streaming request whose client went away).

use std::io;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// How long connecting to the engine may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Headers larger than this are refused.
const MAX_HEADER_BYTES: usize = 64 << 10;

/// An engine's base URL: `http://HOST:PORT[/PREFIX]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    /// `HOST:PORT`, as connected to and sent in `Host:`.
    pub authority: String,
    /// Path prefix without a trailing slash ("" for none).
    pub prefix: String,
}

impl BaseUrl {
    /// Parses `http://HOST[:PORT][/PREFIX]` (port 80 when left out).
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{url:?}: the engine URL must start with http://"))?;
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(format!("{url:?}: no host"));
        }
        let has_port = match authority.rfind(':') {
            Some(i) => !authority.ends_with(']') && authority[i + 1..].parse::<u16>().is_ok(),
            None => false,
        };
        let authority = if has_port {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        Ok(Self {
            authority,
            prefix: prefix.to_string(),
        })
    }

    /// The URL again, for messages.
    pub fn display(&self) -> String {
        format!("http://{}{}", self.authority, self.prefix)
    }
}

/// Framing of a response body.
#[derive(Debug)]
enum Framing {
    Length(u64),
    /// Bytes left in the current chunk; `None` before a chunk header.
    Chunked(Option<u64>),
    UntilClose,
    Done,
}

/// A response whose body is read piece by piece.
pub struct Response {
    pub status: u16,
    pub content_type: String,
    reader: BufReader<TcpStream>,
    framing: Framing,
}

fn bad(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

/// Sends one request and reads the status line and headers.
pub async fn request(
    base: &BaseUrl,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
) -> io::Result<Response> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&base.authority))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connecting timed out"))??;
    stream.set_nodelay(true)?;
    let mut head = format!(
        "{method} {}{path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAccept: */*\r\n",
        base.prefix, base.authority
    );
    if let Some(body) = body {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    let mut reader = BufReader::new(stream);
    let mut message = head.into_bytes();
    if let Some(body) = body {
        message.extend_from_slice(body);
    }
    reader.get_mut().write_all(&message).await?;

    let mut line = String::new();
    let mut header_bytes = 0;
    read_line(&mut reader, &mut line, &mut header_bytes).await?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| bad(format!("bad status line {:?}", line.trim_end())))?;
    let mut length = None;
    let mut chunked = false;
    let mut content_type = String::new();
    loop {
        line.clear();
        read_line(&mut reader, &mut line, &mut header_bytes).await?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse::<u64>()
                    .map_err(|_| bad("bad Content-Length"))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("content-type") {
            content_type = value.to_ascii_lowercase();
        }
    }
    let framing = if chunked {
        Framing::Chunked(None)
    } else if let Some(n) = length {
        Framing::Length(n)
    } else if method == "HEAD" || status == 204 || status == 304 {
        Framing::Done
    } else {
        Framing::UntilClose
    };
    Ok(Response {
        status,
        content_type,
        reader,
        framing,
    })
}

async fn read_line(
    reader: &mut BufReader<TcpStream>,
    line: &mut String,
    total: &mut usize,
) -> io::Result<()> {
    let n = reader.read_line(line).await?;
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the engine closed the connection",
        ));
    }
    *total += n;
    if *total > MAX_HEADER_BYTES {
        return Err(bad("response headers too large"));
    }
    Ok(())
}

impl Response {
    /// The next piece of the body; `None` at its end. A connection closed before the framing
    /// says the body ends is an `UnexpectedEof` error.
    pub async fn chunk(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            match self.framing {
                Framing::Done => return Ok(None),
                Framing::Length(0) => {
                    self.framing = Framing::Done;
                    return Ok(None);
                }
                Framing::Length(left) => {
                    let mut buf = vec![0u8; left.min(16 << 10) as usize];
                    let n = self.reader.read(&mut buf).await?;
                    if n == 0 {
                        return Err(eof());
                    }
                    buf.truncate(n);
                    self.framing = Framing::Length(left - n as u64);
                    return Ok(Some(buf));
                }
                Framing::UntilClose => {
                    let mut buf = vec![0u8; 16 << 10];
                    let n = self.reader.read(&mut buf).await?;
                    if n == 0 {
                        self.framing = Framing::Done;
                        return Ok(None);
                    }
                    buf.truncate(n);
                    return Ok(Some(buf));
                }
                Framing::Chunked(None) => {
                    let mut line = String::new();
                    if self.reader.read_line(&mut line).await? == 0 {
                        return Err(eof());
                    }
                    let size = line.trim().split(';').next().unwrap_or("");
                    if size.is_empty() {
                        continue; // the CRLF after a chunk's data
                    }
                    let size = u64::from_str_radix(size, 16)
                        .map_err(|_| bad(format!("bad chunk size {size:?}")))?;
                    if size == 0 {
                        self.framing = Framing::Done;
                        return Ok(None);
                    }
                    self.framing = Framing::Chunked(Some(size));
                }
                Framing::Chunked(Some(left)) => {
                    let mut buf = vec![0u8; left.min(16 << 10) as usize];
                    let n = self.reader.read(&mut buf).await?;
                    if n == 0 {
                        return Err(eof());
                    }
                    buf.truncate(n);
                    let left = left - n as u64;
                    self.framing = Framing::Chunked((left > 0).then_some(left));
                    return Ok(Some(buf));
                }
            }
        }
    }

    /// The whole body (at most `limit` bytes).
    pub async fn body(mut self, limit: usize) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(piece) = self.chunk().await? {
            out.extend_from_slice(&piece);
            if out.len() > limit {
                return Err(bad("response body too large"));
            }
        }
        Ok(out)
    }
}

fn eof() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the engine closed the connection mid-response",
    )
}

/// `GET path`, the status and the body as text (at most 4 MiB).
pub async fn get_text(base: &BaseUrl, path: &str) -> io::Result<(u16, String)> {
    let response = request(base, "GET", path, None).await?;
    let status = response.status;
    let body = response.body(4 << 20).await?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Splits a `text/event-stream` into the `data:` payloads of its events.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
}

impl SseParser {
    /// Feeds body bytes; returns the `data` of every event completed by them.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.buf.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some((end, sep)) = find_event_end(&self.buf) {
            let raw: Vec<u8> = self.buf.drain(..end + sep).collect();
            let text = String::from_utf8_lossy(&raw[..end]);
            let mut data = String::new();
            let mut name = String::new();
            for line in text.lines() {
                if let Some(rest) = line.strip_prefix("data:") {
                    if !data.is_empty() {
                        data.push('\n');
                    }
                    data.push_str(rest.strip_prefix(' ').unwrap_or(rest));
                } else if let Some(rest) = line.strip_prefix("event:") {
                    name = rest.trim().to_string();
                } else if let Some(rest) = line.strip_prefix("error:") {
                    name = "error".into();
                    data = rest.trim().to_string();
                }
            }
            if !data.is_empty() {
                events.push(SseEvent { name, data });
            }
        }
        events
    }
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// `event:` name ("" when absent; "error" for llama.cpp's `error:` lines).
    pub name: String,
    pub data: String,
}

fn find_event_end(buf: &[u8]) -> Option<(usize, usize)> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    let crlf = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_parse() {
        let b = BaseUrl::parse("http://127.0.0.1:8002").unwrap();
        assert_eq!(b.authority, "127.0.0.1:8002");
        assert_eq!(b.prefix, "");
        let b = BaseUrl::parse("http://localhost/api/").unwrap();
        assert_eq!(b.authority, "localhost:80");
        assert_eq!(b.prefix, "/api");
        assert!(BaseUrl::parse("https://x").is_err());
        assert!(BaseUrl::parse("http://").is_err());
    }

    #[test]
    fn sse_events_split_across_reads() {
        let mut p = SseParser::default();
        assert!(p.feed(b"data: {\"a\":").is_empty());
        let ev = p.feed(b"1}\n\ndata: [DONE]\r\n\r\nerror: {\"x\":2}\n\n");
        assert_eq!(ev.len(), 3);
        assert_eq!(ev[0].data, "{\"a\":1}");
        assert_eq!(ev[1].data, "[DONE]");
        assert_eq!(ev[2].name, "error");
        assert_eq!(ev[2].data, "{\"x\":2}");
    }
}
