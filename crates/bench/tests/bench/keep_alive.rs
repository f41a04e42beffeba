//! Stale keep-alive connections: a tiny HTTP/1.1 server on a std `TcpListener` that answers the
//! first request of every connection (keeping it open, as keep-alive allows) and then, when the
//! client reuses the connection, reads the next request and closes without a word. Every reused
//! send fails before any status; the client must resend on a new connection and count it. A
//! server that breaks off mid-stream must still be an error, and not be retried.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use rotor_bench::client::Outcome;
use tokio_util::sync::CancellationToken;

use super::args::parse;

/// What the server does with the first request on a connection.
#[derive(Clone, Copy)]
enum Mode {
    /// Answer it in full, then close the connection at the next request.
    AnswerOnceThenClose,
    /// Send the status, headers and one chunk of a longer body, then close.
    BreakMidStream,
}

struct TinyServer {
    addr: SocketAddr,
    /// Requests read, over all connections (answered or not).
    requests: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
}

const SSE_BODY: &str = concat!(
    "data: {\"choices\":[{\"text\":\" a\",\"index\":0,\"finish_reason\":null}]}\n\n",
    "data: {\"choices\":[{\"text\":\" b\",\"index\":0,\"finish_reason\":\"length\"}],",
    "\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":2,\"total_tokens\":6}}\n\n",
    "data: [DONE]\n\n",
);

fn start(mode: Mode) -> TinyServer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let connections = Arc::new(AtomicUsize::new(0));
    let (req, conns) = (requests.clone(), connections.clone());
    // The accept thread lives until the test process ends (the listener is never closed).
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            conns.fetch_add(1, Ordering::SeqCst);
            let req = req.clone();
            thread::spawn(move || serve(stream, mode, &req));
        }
    });
    TinyServer {
        addr,
        requests,
        connections,
    }
}

fn serve(stream: TcpStream, mode: Mode, requests: &AtomicUsize) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    if !read_request(&mut reader) {
        return;
    }
    requests.fetch_add(1, Ordering::SeqCst);
    match mode {
        Mode::AnswerOnceThenClose => {
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\n\r\n",
                SSE_BODY.len()
            );
            let _ = writer.write_all(head.as_bytes());
            let _ = writer.write_all(SSE_BODY.as_bytes());
            let _ = writer.flush();
            // Keep-alive: wait for the client to reuse the connection, take its request, and
            // close without answering.
            if read_request(&mut reader) {
                requests.fetch_add(1, Ordering::SeqCst);
            }
        }
        Mode::BreakMidStream => {
            let first = SSE_BODY.split_inclusive("\n\n").next().unwrap_or_default();
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\n\r\n",
                SSE_BODY.len()
            );
            let _ = writer.write_all(head.as_bytes());
            let _ = writer.write_all(first.as_bytes());
            let _ = writer.flush();
        }
    }
    let _ = writer.shutdown(std::net::Shutdown::Both);
}

/// Reads one request (head and `content-length` body); false if the connection ended first.
fn read_request(reader: &mut BufReader<TcpStream>) -> bool {
    let mut content_length = 0usize;
    let mut saw_line = false;
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return false,
            Ok(_) => {}
        }
        if line == "\r\n" {
            if !saw_line {
                continue;
            }
            break;
        }
        saw_line = true;
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                content_length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; content_length];
    reader.read_exact(&mut body).is_ok()
}

async fn run(addr: SocketAddr, requests: usize) -> rotor_bench::Report {
    let url = format!("http://{addr}");
    let n = requests.to_string();
    let args = parse(&[
        "--url",
        &url,
        "--model",
        "tiny",
        "--concurrency",
        "1",
        "--num-requests",
        &n,
        "--input-len",
        "4",
        "--output-len",
        "2",
        "--no-progress",
        "--no-metrics",
    ]);
    rotor_bench::run(args, CancellationToken::new())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_on_connections_the_server_closed_are_resent_once_and_counted() {
    let srv = start(Mode::AnswerOnceThenClose);
    let report = run(srv.addr, 10).await;
    let s = &report.summary;
    assert_eq!(
        (s.ok, s.errors, s.cancelled),
        (10, 0, 0),
        "errors: {:?}",
        s.error_kinds
    );
    assert_eq!(s.output_tokens, 20);
    // Every reuse of a pooled connection is dropped by the server and sent once more on a new,
    // pool-less connection. Whether a request finds the previous connection back in the pool
    // depends on when hyper returns it (after reading the body, on its own task), so the count
    // of reuses varies with load; what cannot vary: each request is retried at most once, the
    // first never (the pool is empty), every retry is counted, and the server read exactly one
    // extra request per retry and saw one new connection per request.
    let retries: Vec<u32> = report.records.iter().map(|r| r.retries).collect();
    assert!(retries.iter().all(|&r| r <= 1), "{retries:?}");
    assert_eq!(retries[0], 0);
    let retried = retries.iter().filter(|&&r| r == 1).count();
    assert!(
        retried >= 1,
        "no request reused a pooled connection: {retries:?}"
    );
    assert_eq!(s.retried, retried);
    assert_eq!(
        srv.requests.load(Ordering::SeqCst),
        10 + retried,
        "10 answered + one dropped per retry"
    );
    assert_eq!(srv.connections.load(Ordering::SeqCst), 10);
    assert!(report.to_string().contains("retried"), "{report}");
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["summary"]["retried"], retried);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_broken_after_the_response_began_is_an_error_and_not_resent() {
    let srv = start(Mode::BreakMidStream);
    let report = run(srv.addr, 2).await;
    let s = &report.summary;
    assert_eq!(
        (s.ok, s.errors, s.retried),
        (0, 2, 0),
        "{:?}",
        s.error_kinds
    );
    for r in &report.records {
        assert_eq!(r.outcome, Outcome::Error);
        assert_eq!(r.retries, 0);
        let err = r.error.as_deref().unwrap_or_default();
        assert!(err.starts_with("stream broken"), "{err}");
    }
    assert_eq!(
        srv.requests.load(Ordering::SeqCst),
        2,
        "each sent exactly once"
    );
}
