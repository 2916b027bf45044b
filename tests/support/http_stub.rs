//! A tiny scripted HTTP/1.1 server on 127.0.0.1:0 for integration tests, written on raw tokio
//! sockets so that a test controls the exact bytes and chunk boundaries a client receives.
//!
//! Each request is recorded (method, path, headers, body) and answered by a handler the test
//! supplies (or by a fixed script of responses). A response body is either fixed (sent with
//! `Content-Length`, keep-alive), a list of HTTP chunks each written and flushed on its own, or an
//! open-ended chunked stream fed by the test through a channel — the shape of a Mesos event
//! stream. Tests wait for requests with [`HttpStub::wait_for_requests`] rather than sleeping.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of this helper"
)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// One request as the stub received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    /// Path and query exactly as in the request line.
    pub path: String,
    /// Header names as sent (case preserved), in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The stub's own address, so a handler can build URLs pointing back at itself.
    pub local_addr: SocketAddr,
    /// Which connection (counted from 0 per stub) carried the request.
    pub connection: usize,
}

impl RecordedRequest {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// How many times a header appears.
    pub fn header_count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    }
}

/// What to send back.
#[derive(Debug)]
pub struct StubResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: StubBody,
}

#[derive(Debug)]
pub enum StubBody {
    /// Sent with `Content-Length`; the connection stays open for more requests.
    Full(Vec<u8>),
    /// Sent chunked, one HTTP chunk per element, each flushed separately; then the connection
    /// is closed.
    Chunks(Vec<Vec<u8>>),
    /// Sent chunked as the test pushes chunks; when the sender is dropped the stub writes the
    /// last chunk and closes. If the client goes away first, that is recorded (see
    /// [`HttpStub::wait_for_client_close`]).
    Stream(mpsc::UnboundedReceiver<Vec<u8>>),
}

impl StubResponse {
    /// A response with a full body and the given status.
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        StubResponse {
            status,
            headers: Vec::new(),
            body: StubBody::Full(body.into()),
        }
    }

    /// An empty-bodied response.
    pub fn empty(status: u16) -> Self {
        StubResponse::new(status, Vec::new())
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// A chunked body made of exactly these chunks.
    pub fn chunks(status: u16, chunks: Vec<Vec<u8>>) -> Self {
        StubResponse {
            status,
            headers: Vec::new(),
            body: StubBody::Chunks(chunks),
        }
    }

    /// An open chunked body and the sender that feeds it.
    pub fn stream(status: u16) -> (Self, mpsc::UnboundedSender<Vec<u8>>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let response = StubResponse {
            status,
            headers: Vec::new(),
            body: StubBody::Stream(rx),
        };
        (response, tx)
    }
}

type Handler = dyn Fn(&RecordedRequest) -> StubResponse + Send + Sync;

/// A running stub server; stops when dropped.
pub struct HttpStub {
    addr: SocketAddr,
    requests: watch::Receiver<Vec<RecordedRequest>>,
    client_closes: watch::Receiver<usize>,
    task: JoinHandle<()>,
}

impl Drop for HttpStub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How long the wait helpers wait before failing the test: generous for a loaded machine.
pub const WAIT: Duration = Duration::from_secs(30);

impl HttpStub {
    /// Starts a stub answering every request with `handler`.
    pub async fn start(
        handler: impl Fn(&RecordedRequest) -> StubResponse + Send + Sync + 'static,
    ) -> HttpStub {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let (requests_tx, requests) = watch::channel(Vec::new());
        let (closes_tx, client_closes) = watch::channel(0usize);
        let shared = Arc::new(Shared {
            handler: Box::new(handler),
            requests: requests_tx,
            client_closes: closes_tx,
        });
        let task = tokio::spawn(async move {
            let mut connection = 0;
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve_connection(
                    socket,
                    addr,
                    connection,
                    Arc::clone(&shared),
                ));
                connection += 1;
            }
        });
        HttpStub {
            addr,
            requests,
            client_closes,
            task,
        }
    }

    /// Starts a stub that answers requests with `responses` in order, then with 500.
    pub async fn scripted(responses: Vec<StubResponse>) -> HttpStub {
        let queue = Mutex::new(VecDeque::from(responses));
        HttpStub::start(move |_| {
            queue
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or_else(|| StubResponse::new(500, "http stub: no scripted response left"))
        })
        .await
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>/`
    pub fn url(&self) -> reqwest::Url {
        reqwest::Url::parse(&format!("http://{}/", self.addr)).expect("stub url")
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.requests.borrow().clone()
    }

    /// Waits (up to [`WAIT`]) until at least `n` requests have arrived; panics otherwise.
    pub async fn wait_for_requests(&self, n: usize) -> Vec<RecordedRequest> {
        let mut rx = self.requests.clone();
        let waited = tokio::time::timeout(WAIT, rx.wait_for(|r| r.len() >= n)).await;
        match waited {
            Ok(Ok(requests)) => requests.clone(),
            _ => panic!(
                "stub {} got {} requests, waited for {n}",
                self.addr,
                self.requests.borrow().len()
            ),
        }
    }

    /// Waits (up to [`WAIT`]) until the client has closed at least `n` streaming responses.
    pub async fn wait_for_client_close(&self, n: usize) {
        let mut rx = self.client_closes.clone();
        let waited = tokio::time::timeout(WAIT, rx.wait_for(|c| *c >= n)).await;
        assert!(
            matches!(waited, Ok(Ok(_))),
            "stub {}: the client did not close {n} streams",
            self.addr
        );
    }
}

struct Shared {
    handler: Box<Handler>,
    requests: watch::Sender<Vec<RecordedRequest>>,
    client_closes: watch::Sender<usize>,
}

/// Serves requests on one connection until either side closes it.
async fn serve_connection(
    mut socket: TcpStream,
    local_addr: SocketAddr,
    connection: usize,
    shared: Arc<Shared>,
) {
    let mut buf = Vec::new();
    loop {
        let Some(request) = read_request(&mut socket, &mut buf, local_addr, connection).await
        else {
            return;
        };
        let response = (shared.handler)(&request);
        shared.requests.send_modify(|r| r.push(request));
        match write_response(&mut socket, response, &mut buf).await {
            Ok(Outcome::KeepAlive) => {}
            Ok(Outcome::Closed) => return,
            Ok(Outcome::ClientClosed) | Err(_) => {
                shared.client_closes.send_modify(|c| *c += 1);
                return;
            }
        }
    }
}

enum Outcome {
    KeepAlive,
    Closed,
    ClientClosed,
}

async fn write_response(
    socket: &mut TcpStream,
    response: StubResponse,
    buf: &mut Vec<u8>,
) -> std::io::Result<Outcome> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\n",
        response.status,
        reason(response.status)
    );
    for (name, value) in &response.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    match response.body {
        StubBody::Full(body) => {
            head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
            socket.write_all(head.as_bytes()).await?;
            socket.write_all(&body).await?;
            socket.flush().await?;
            Ok(Outcome::KeepAlive)
        }
        StubBody::Chunks(chunks) => {
            head.push_str("Transfer-Encoding: chunked\r\n\r\n");
            socket.write_all(head.as_bytes()).await?;
            socket.flush().await?;
            for chunk in chunks.iter().filter(|c| !c.is_empty()) {
                write_chunk(socket, chunk).await?;
            }
            socket.write_all(b"0\r\n\r\n").await?;
            socket.flush().await?;
            Ok(Outcome::Closed)
        }
        StubBody::Stream(mut rx) => {
            head.push_str("Transfer-Encoding: chunked\r\n\r\n");
            socket.write_all(head.as_bytes()).await?;
            socket.flush().await?;
            let mut scratch = [0u8; 1024];
            loop {
                tokio::select! {
                    chunk = rx.recv() => match chunk {
                        Some(chunk) if chunk.is_empty() => {}
                        Some(chunk) => write_chunk(socket, &chunk).await?,
                        None => {
                            socket.write_all(b"0\r\n\r\n").await?;
                            socket.flush().await?;
                            return Ok(Outcome::Closed);
                        }
                    },
                    // A streaming client sends nothing more; a read of 0 (or an error) means it
                    // has closed its end.
                    read = socket.read(&mut scratch) => match read {
                        Ok(0) | Err(_) => return Ok(Outcome::ClientClosed),
                        Ok(n) => buf.extend_from_slice(&scratch[..n]),
                    },
                }
            }
        }
    }
}

async fn write_chunk(socket: &mut TcpStream, chunk: &[u8]) -> std::io::Result<()> {
    socket
        .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
        .await?;
    socket.write_all(chunk).await?;
    socket.write_all(b"\r\n").await?;
    socket.flush().await
}

/// Reads one request (head and body, `Content-Length` or chunked). `None` on EOF or garbage.
async fn read_request(
    socket: &mut TcpStream,
    buf: &mut Vec<u8>,
    local_addr: SocketAddr,
    connection: usize,
) -> Option<RecordedRequest> {
    let head_end = loop {
        if let Some(pos) = find(buf, b"\r\n\r\n") {
            break pos;
        }
        fill(socket, buf).await?;
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).ok()?;
    buf.drain(..head_end + 4);
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let path = request_line.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let body = if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        read_chunked_body(socket, buf).await?
    } else {
        let len: usize = header("content-length").map_or(Some(0), |v| v.parse().ok())?;
        while buf.len() < len {
            fill(socket, buf).await?;
        }
        buf.drain(..len).collect()
    };
    Some(RecordedRequest {
        method,
        path,
        headers,
        body,
        local_addr,
        connection,
    })
}

async fn read_chunked_body(socket: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(pos) = find(buf, b"\r\n") {
                break pos;
            }
            fill(socket, buf).await?;
        };
        let size_text = std::str::from_utf8(&buf[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        buf.drain(..line_end + 2);
        while buf.len() < size + 2 {
            fill(socket, buf).await?;
        }
        body.extend(buf.drain(..size));
        buf.drain(..2);
        if size == 0 {
            return Some(body);
        }
    }
}

async fn fill(socket: &mut TcpStream, buf: &mut Vec<u8>) -> Option<()> {
    let mut scratch = [0u8; 4096];
    match socket.read(&mut scratch).await {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            buf.extend_from_slice(&scratch[..n]);
            Some(())
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        415 => "Unsupported Media Type",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}
