//! Just enough ZeroMQ (ZMTP 3.0, NULL security) over TCP to follow vLLM's KV-event publisher:
//! a SUB socket that binds or connects, a DEALER for its replay socket, and the PUB and ROUTER
//! ends for scripted publishers in tests. No dependency; libzmq and pyzmq peers interoperate.
//!
//! Wire summary: each side sends a 64-byte greeting (signature `FF 00…00 7F`, version 3.0,
//! mechanism "NULL"), then a READY command with its `Socket-Type`; then frames: a flags byte
//! (`0x01` more, `0x02` 8-byte length, `0x04` command), the length, the body. A SUB subscribes
//! by sending a message `0x01 + prefix`.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Frames larger than this are refused (KV-event batches are kilobytes).
const MAX_FRAME: u64 = 64 << 20;

fn bad(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

/// Where the SUB side listens or connects, following vLLM's rule: its publisher binds when its
/// endpoint has `*` (then we connect to 127.0.0.1), else it connects (then we bind there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriberEndpoint {
    Bind(SocketAddr),
    Connect(SocketAddr),
}

impl SubscriberEndpoint {
    pub fn parse(endpoint: &str) -> Result<Self, String> {
        let rest = endpoint
            .strip_prefix("tcp://")
            .ok_or_else(|| format!("{endpoint:?}: only tcp:// KV-event endpoints are supported"))?;
        if let Some(port) = rest.strip_prefix("*:") {
            let port: u16 = port
                .parse()
                .map_err(|_| format!("{endpoint:?}: bad port"))?;
            return Ok(Self::Connect(SocketAddr::from(([127, 0, 0, 1], port))));
        }
        rest.parse()
            .map(Self::Bind)
            .map_err(|_| format!("{endpoint:?}: expected tcp://IP:PORT or tcp://*:PORT"))
    }
}

/// A `tcp://IP:PORT` (or `tcp://*:PORT`, meaning this machine) endpoint to connect to.
pub fn parse_connect_endpoint(endpoint: &str) -> Result<SocketAddr, String> {
    match SubscriberEndpoint::parse(endpoint)? {
        SubscriberEndpoint::Bind(a) | SubscriberEndpoint::Connect(a) => Ok(a),
    }
}

/// One ZMTP connection after its handshake.
pub struct Conn {
    stream: TcpStream,
    /// The peer's `Socket-Type`.
    pub peer_type: String,
}

fn greeting() -> [u8; 64] {
    let mut g = [0u8; 64];
    g[0] = 0xff;
    g[9] = 0x7f;
    g[10] = 3;
    g[11] = 0;
    g[12..16].copy_from_slice(b"NULL");
    g
}

fn ready(socket_type: &str) -> Vec<u8> {
    let mut body = vec![5];
    body.extend_from_slice(b"READY");
    let mut prop = |name: &str, value: &[u8]| {
        body.push(name.len() as u8);
        body.extend_from_slice(name.as_bytes());
        body.extend_from_slice(&(value.len() as u32).to_be_bytes());
        body.extend_from_slice(value);
    };
    prop("Socket-Type", socket_type.as_bytes());
    if matches!(socket_type, "DEALER" | "ROUTER") {
        prop("Identity", b"");
    }
    frame_bytes(&body, false, true)
}

fn frame_bytes(body: &[u8], more: bool, command: bool) -> Vec<u8> {
    let mut flags = u8::from(more) | if command { 0x04 } else { 0 };
    let mut out = Vec::with_capacity(body.len() + 9);
    if body.len() > 255 {
        flags |= 0x02;
        out.push(flags);
        out.extend_from_slice(&(body.len() as u64).to_be_bytes());
    } else {
        out.push(flags);
        out.push(body.len() as u8);
    }
    out.extend_from_slice(body);
    out
}

fn property(body: &[u8], name: &str) -> Option<String> {
    let mut i = 0;
    while i < body.len() {
        let n = usize::from(body[i]);
        let key = body.get(i + 1..i + 1 + n)?;
        i += 1 + n;
        let len = u32::from_be_bytes(body.get(i..i + 4)?.try_into().ok()?) as usize;
        let value = body.get(i + 4..i + 4 + len)?;
        i += 4 + len;
        if key.eq_ignore_ascii_case(name.as_bytes()) {
            return Some(String::from_utf8_lossy(value).into_owned());
        }
    }
    None
}

impl Conn {
    /// Greets the peer and exchanges READY as `socket_type`.
    pub async fn handshake(mut stream: TcpStream, socket_type: &str) -> io::Result<Conn> {
        stream.set_nodelay(true)?;
        stream.write_all(&greeting()).await?;
        let mut theirs = [0u8; 64];
        stream.read_exact(&mut theirs).await?;
        if theirs[0] != 0xff || theirs[9] & 1 != 1 {
            return Err(bad("the peer is not a ZMTP 3 socket"));
        }
        if theirs[10] < 3 {
            return Err(bad(format!(
                "the peer speaks ZMTP {}; 3 is needed",
                theirs[10]
            )));
        }
        if &theirs[12..16] != b"NULL" {
            return Err(bad("the peer wants a security mechanism other than NULL"));
        }
        stream.write_all(&ready(socket_type)).await?;
        let mut conn = Conn {
            stream,
            peer_type: String::new(),
        };
        let (command, body) = conn.read_frame().await?;
        if !command.command {
            return Err(bad("the peer sent a message before READY"));
        }
        let name_len = usize::from(*body.first().ok_or_else(|| bad("empty command"))?);
        let name = body
            .get(1..1 + name_len)
            .ok_or_else(|| bad("short command"))?;
        if name != b"READY" {
            return Err(bad(format!(
                "the peer sent {} instead of READY",
                String::from_utf8_lossy(name)
            )));
        }
        conn.peer_type = property(&body[1 + name_len..], "Socket-Type").unwrap_or_default();
        Ok(conn)
    }

    async fn read_frame(&mut self) -> io::Result<(Flags, Vec<u8>)> {
        let flags = self.stream.read_u8().await?;
        let len = if flags & 0x02 != 0 {
            self.stream.read_u64().await?
        } else {
            u64::from(self.stream.read_u8().await?)
        };
        if len > MAX_FRAME {
            return Err(bad(format!("a {len}-byte frame")));
        }
        let mut body = vec![0u8; len as usize];
        self.stream.read_exact(&mut body).await?;
        Ok((
            Flags {
                more: flags & 0x01 != 0,
                command: flags & 0x04 != 0,
            },
            body,
        ))
    }

    /// The next multipart message (commands such as PING are skipped).
    pub async fn recv(&mut self) -> io::Result<Vec<Vec<u8>>> {
        let mut frames = Vec::new();
        loop {
            let (flags, body) = self.read_frame().await?;
            if flags.command {
                continue;
            }
            frames.push(body);
            if !flags.more {
                return Ok(frames);
            }
        }
    }

    /// Sends a multipart message.
    pub async fn send(&mut self, frames: &[&[u8]]) -> io::Result<()> {
        let mut out = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            out.extend(frame_bytes(f, i + 1 < frames.len(), false));
        }
        self.stream.write_all(&out).await
    }
}

struct Flags {
    more: bool,
    command: bool,
}

/// One KV-event message: `[topic, seq (8 bytes big-endian), payload]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMessage {
    pub topic: Vec<u8>,
    /// `None` when the message does not have the three frames.
    pub seq: Option<u64>,
    pub payload: Vec<u8>,
}

impl EventMessage {
    fn from_frames(mut frames: Vec<Vec<u8>>) -> Self {
        if frames.len() == 3 && frames[1].len() == 8 {
            let payload = frames.pop().unwrap_or_default();
            let seq = u64::from_be_bytes(frames[1][..8].try_into().expect("8 bytes"));
            let topic = std::mem::take(&mut frames[0]);
            EventMessage {
                topic,
                seq: Some(seq),
                payload,
            }
        } else {
            EventMessage {
                topic: Vec::new(),
                seq: None,
                payload: frames.pop().unwrap_or_default(),
            }
        }
    }
}

/// The subscriber: follows the publisher across reconnects, and fetches lost messages from its
/// replay socket when there is one.
pub struct EventSource {
    endpoint: SubscriberEndpoint,
    listener: Option<TcpListener>,
    conn: Option<Conn>,
    replay: Option<SocketAddr>,
}

impl EventSource {
    /// Binds now (so the engine can connect as soon as it starts) or prepares to connect.
    pub async fn open(
        endpoint: SubscriberEndpoint,
        replay: Option<SocketAddr>,
    ) -> io::Result<Self> {
        let listener = match endpoint {
            SubscriberEndpoint::Bind(addr) => Some(TcpListener::bind(addr).await?),
            SubscriberEndpoint::Connect(_) => None,
        };
        Ok(Self {
            endpoint,
            listener,
            conn: None,
            replay,
        })
    }

    /// The bound address (bind mode).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub fn has_replay(&self) -> bool {
        self.replay.is_some()
    }

    async fn subscribe(stream: TcpStream) -> io::Result<Conn> {
        let mut conn = Conn::handshake(stream, "SUB").await?;
        if !matches!(conn.peer_type.as_str(), "PUB" | "XPUB") {
            return Err(bad(format!(
                "the peer is a {} socket, not PUB",
                conn.peer_type
            )));
        }
        conn.send(&[&[1u8]]).await?; // subscribe to every topic
        Ok(conn)
    }

    /// The next message. After a connection error the next call reconnects (bind mode: waits
    /// for the publisher to connect again; a newer connection replaces the current one).
    pub async fn next(&mut self) -> io::Result<EventMessage> {
        loop {
            if self.conn.is_none() {
                let stream = match (&self.listener, self.endpoint) {
                    (Some(listener), _) => listener.accept().await?.0,
                    (None, SubscriberEndpoint::Connect(addr)) => {
                        match TcpStream::connect(addr).await {
                            Ok(s) => s,
                            Err(e) => {
                                tokio::time::sleep(Duration::from_millis(200)).await;
                                return Err(e);
                            }
                        }
                    }
                    (None, SubscriberEndpoint::Bind(_)) => unreachable!("bind mode has a listener"),
                };
                self.conn = Some(Self::subscribe(stream).await?);
                tracing::info!("KV events: the engine's publisher is connected");
            }
            let conn = self.conn.as_mut().expect("connected above");
            let received = match &self.listener {
                Some(listener) => tokio::select! {
                    frames = conn.recv() => Some(frames),
                    accepted = listener.accept() => {
                        let (stream, _) = accepted?;
                        self.conn = Some(Self::subscribe(stream).await?);
                        tracing::info!("KV events: the engine's publisher reconnected");
                        None
                    }
                },
                None => Some(conn.recv().await),
            };
            match received {
                None => continue,
                Some(Ok(frames)) => return Ok(EventMessage::from_frames(frames)),
                Some(Err(e)) => {
                    self.conn = None;
                    return Err(e);
                }
            }
        }
    }

    /// Asks the replay socket for every message from `start` on, until its end marker.
    pub async fn replay(&self, start: u64, within: Duration) -> io::Result<Vec<EventMessage>> {
        let addr = self.replay.ok_or_else(|| bad("no replay endpoint"))?;
        tokio::time::timeout(within, async {
            let stream = TcpStream::connect(addr).await?;
            let mut conn = Conn::handshake(stream, "DEALER").await?;
            conn.send(&[b"", &start.to_be_bytes()]).await?;
            let mut out = Vec::new();
            loop {
                let mut frames = conn.recv().await?;
                if frames.first().is_some_and(|f| f.is_empty()) {
                    frames.remove(0);
                }
                if frames.len() != 2 || frames[0].len() != 8 {
                    return Err(bad("a malformed replay message"));
                }
                let seq = u64::from_be_bytes(frames[0][..8].try_into().expect("8 bytes"));
                if seq == u64::MAX {
                    return Ok(out);
                }
                out.push(EventMessage {
                    topic: Vec::new(),
                    seq: Some(seq),
                    payload: std::mem::take(&mut frames[1]),
                });
            }
        })
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the replay timed out"))?
    }
}

/// The publishing end, as vLLM's PUB socket behaves, for scripted tests: connects to (or is
/// connected by) one subscriber, waits for its subscription, then sends 3-frame messages.
pub struct ScriptedPublisher {
    conn: Conn,
    pub topic: Vec<u8>,
}

impl ScriptedPublisher {
    /// Connects to a subscriber bound at `addr` and waits for its subscription.
    pub async fn connect(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        let mut conn = Conn::handshake(stream, "PUB").await?;
        let sub = conn.recv().await?;
        if sub.first().and_then(|f| f.first()) != Some(&1) {
            return Err(bad("expected a subscription"));
        }
        Ok(Self {
            conn,
            topic: b"kv-events".to_vec(),
        })
    }

    pub async fn send(&mut self, seq: u64, payload: &[u8]) -> io::Result<()> {
        let topic = self.topic.clone();
        self.conn.send(&[&topic, &seq.to_be_bytes(), payload]).await
    }
}

/// A replay socket (ROUTER) serving `messages` (seq, payload), as vLLM's does: every buffered
/// message from the requested seq on, then the end marker. Serves `requests` requests.
pub async fn serve_replay(
    listener: TcpListener,
    messages: Vec<(u64, Vec<u8>)>,
    requests: usize,
) -> io::Result<()> {
    for _ in 0..requests {
        let (stream, _) = listener.accept().await?;
        let mut conn = Conn::handshake(stream, "ROUTER").await?;
        let frames = conn.recv().await?;
        let start = frames
            .last()
            .filter(|f| f.len() == 8)
            .map(|f| u64::from_be_bytes(f[..8].try_into().expect("8 bytes")))
            .ok_or_else(|| bad("a malformed replay request"))?;
        for (seq, payload) in messages.iter().filter(|(s, _)| *s >= start) {
            conn.send(&[b"", &seq.to_be_bytes(), payload]).await?;
        }
        conn.send(&[b"", &u64::MAX.to_be_bytes(), b""]).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_follow_vllms_bind_rule() {
        assert_eq!(
            SubscriberEndpoint::parse("tcp://127.0.0.1:5557").unwrap(),
            SubscriberEndpoint::Bind("127.0.0.1:5557".parse().unwrap())
        );
        assert_eq!(
            SubscriberEndpoint::parse("tcp://*:5557").unwrap(),
            SubscriberEndpoint::Connect("127.0.0.1:5557".parse().unwrap())
        );
        assert!(SubscriberEndpoint::parse("ipc:///tmp/x").is_err());
        assert!(SubscriberEndpoint::parse("tcp://host:1").is_err());
    }

    #[tokio::test]
    async fn subscriber_receives_long_and_short_frames() {
        let mut source = EventSource::open(
            SubscriberEndpoint::Bind("127.0.0.1:0".parse().unwrap()),
            None,
        )
        .await
        .unwrap();
        let addr = source.local_addr().unwrap();
        let publisher = tokio::spawn(async move {
            let mut p = ScriptedPublisher::connect(addr).await.unwrap();
            p.send(0, b"small").await.unwrap();
            p.send(1, &vec![7u8; 1000]).await.unwrap();
        });
        let a = source.next().await.unwrap();
        assert_eq!(
            (a.topic.as_slice(), a.seq, a.payload.as_slice()),
            (&b"kv-events"[..], Some(0), &b"small"[..])
        );
        let b = source.next().await.unwrap();
        assert_eq!((b.seq, b.payload.len()), (Some(1), 1000));
        publisher.await.unwrap();
    }
}
