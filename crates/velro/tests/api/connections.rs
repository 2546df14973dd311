//! Connections as clients use them, on raw sockets: keep-alive over many requests, pipelining,
//! requests that arrive in pieces, a request head cut by the previous answer, HTTP/2 with prior
//! knowledge, and the idle limit. The server gives an idle HTTP/1 connection's hyper state back
//! between requests (see serve.rs); these hold that it does so without a client noticing.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{unique_email, TestApp, PASSWORD};

/// Long enough for any answer on a loaded machine; only a guard against a hang.
const PATIENCE: Duration = Duration::from_secs(30);

/// A pause between the pieces of a request, so that each arrives in its own read, and between
/// requests, so that the server gives the connection's hyper state back in between: longer than
/// it keeps an idle connection's state (serve.rs's `KEEP_WARM`, 50 ms, at most twice that).
const PAUSE: Duration = Duration::from_millis(150);

struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then_some(value.trim())
        })
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// A client connection that reads answers one at a time, keeping what it read past each.
struct Client {
    stream: TcpStream,
    pending: Vec<u8>,
}

impl Client {
    async fn connect(app: &TestApp) -> Self {
        let address = app.address.trim_start_matches("http://");
        Self {
            stream: TcpStream::connect(address).await.expect("connects"),
            pending: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("sent");
    }

    /// The next whole answer (a Content-Length body, as every answer of this server has).
    async fn answer(&mut self) -> Answer {
        tokio::time::timeout(PATIENCE, async {
            loop {
                if let Some(answer) = self.take_answer() {
                    return answer;
                }
                let mut buffer = [0_u8; 16 * 1024];
                let n = self.stream.read(&mut buffer).await.expect("reads");
                assert!(
                    n > 0,
                    "the server closed the connection; read so far: {:?}",
                    String::from_utf8_lossy(&self.pending)
                );
                self.pending.extend_from_slice(&buffer[..n]);
            }
        })
        .await
        .expect("an answer in time")
    }

    fn take_answer(&mut self) -> Option<Answer> {
        let end = self.pending.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&self.pending[..end]).to_string();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .expect("a status line");
        let length: usize = head
            .lines()
            .skip(1)
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.trim()
                    .eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .unwrap_or(0);
        if self.pending.len() < end + 4 + length {
            return None;
        }
        let body = self.pending[end + 4..end + 4 + length].to_vec();
        self.pending.drain(..end + 4 + length);
        Some(Answer { status, head, body })
    }

    /// Whether the server closes the connection (end of stream, or a reset) within the patience.
    async fn closed_by_server(&mut self) -> bool {
        let mut buffer = [0_u8; 1024];
        matches!(
            tokio::time::timeout(PATIENCE, self.stream.read(&mut buffer)).await,
            Ok(Ok(0) | Err(_))
        )
    }
}

fn health(id: &str) -> String {
    format!("GET /health HTTP/1.1\r\nHost: test\r\nx-request-id: {id}\r\n\r\n")
}

fn register(body: &str) -> String {
    format!(
        "POST /api/v1/auth/register HTTP/1.1\r\nHost: test\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn register_body() -> String {
    json!({"email": unique_email("conn"), "password": PASSWORD}).to_string()
}

/// Sixty requests on one connection, waiting for each answer, with sign-ups (bodies read) among
/// them, a pipelined pair in one write every tenth round, and a pause long enough for the
/// server to release the connection every sixth: each answer is the right one, in order, on
/// the same connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_keep_alive_connection_serves_many_requests_and_pipelined_pairs() {
    let app = TestApp::sqlite().await;
    let mut client = Client::connect(&app).await;
    for round in 0..60 {
        if round % 6 == 5 {
            tokio::time::sleep(PAUSE).await;
        }
        if round % 10 == 9 {
            let (first, second) = (format!("pair-a-{round}"), format!("pair-b-{round}"));
            client
                .send(format!("{}{}", health(&first), health(&second)).as_bytes())
                .await;
            for id in [first, second] {
                let answer = client.answer().await;
                assert_eq!(answer.status, 200, "round {round}: {}", answer.head);
                assert_eq!(answer.header("x-request-id"), Some(id.as_str()));
            }
        } else if round % 10 == 4 {
            client.send(register(&register_body()).as_bytes()).await;
            let answer = client.answer().await;
            assert_eq!(answer.status, 201, "round {round}: {}", answer.head);
            assert!(answer.json()["access_token"].is_string());
        } else {
            let id = format!("single-{round}");
            client.send(health(&id).as_bytes()).await;
            let answer = client.answer().await;
            assert_eq!(answer.status, 200, "round {round}: {}", answer.head);
            assert_eq!(answer.header("x-request-id"), Some(id.as_str()));
            assert_ne!(answer.header("connection"), Some("close"));
        }
    }
}

/// A request that arrives in pieces with pauses between them, the first piece a single byte
/// (which could still be the start of HTTP/2's preface), and the body in two pieces; then, on the
/// same connection once idle, another one cut the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_sent_in_pieces_with_pauses_is_served() {
    let app = TestApp::sqlite().await;
    let mut client = Client::connect(&app).await;
    let request = register(&register_body());
    let (head, body) = request.split_at(request.find("\r\n\r\n").expect("a head") + 4);
    let (body_start, body_end) = body.split_at(body.len() / 2);
    for piece in [&head[..1], &head[1..20], &head[20..], body_start, body_end] {
        client.send(piece.as_bytes()).await;
        tokio::time::sleep(PAUSE).await;
    }
    let answer = client.answer().await;
    assert_eq!(answer.status, 201, "{}", answer.head);
    tokio::time::sleep(PAUSE).await;

    let request = health("pieces-2");
    for piece in [&request[..1], &request[1..9], &request[9..]] {
        client.send(piece.as_bytes()).await;
        tokio::time::sleep(PAUSE).await;
    }
    let answer = client.answer().await;
    assert_eq!(answer.status, 200, "{}", answer.head);
    assert_eq!(answer.header("x-request-id"), Some("pieces-2"));
}

/// The start of the next request sent together with the end of the previous one: the server
/// reads it along with the first, and must not lose it while the connection waits for the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_start_of_the_next_request_sent_with_the_previous_one_is_kept() {
    let app = TestApp::sqlite().await;
    let mut client = Client::connect(&app).await;
    let next = health("read-ahead-2");
    let (next_start, next_end) = next.split_at(12);
    client
        .send(format!("{}{next_start}", health("read-ahead-1")).as_bytes())
        .await;
    let answer = client.answer().await;
    assert_eq!(answer.header("x-request-id"), Some("read-ahead-1"));
    tokio::time::sleep(PAUSE).await;
    client.send(next_end.as_bytes()).await;
    let answer = client.answer().await;
    assert_eq!(answer.status, 200, "{}", answer.head);
    assert_eq!(answer.header("x-request-id"), Some("read-ahead-2"));
}

/// A request whose body the server does not read (a wrong method) is answered, and the
/// connection still serves the next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_body_is_not_read_leaves_the_connection_usable() {
    let app = TestApp::sqlite().await;
    let mut client = Client::connect(&app).await;
    client
        .send(
            b"PUT /health HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
              Content-Length: 2\r\n\r\n{}",
        )
        .await;
    let answer = client.answer().await;
    assert_eq!(answer.status, 405, "{}", answer.head);
    tokio::time::sleep(PAUSE).await;
    client.send(health("after-unread").as_bytes()).await;
    let answer = client.answer().await;
    assert_eq!(answer.status, 200, "{}", answer.head);
    assert_eq!(answer.header("x-request-id"), Some("after-unread"));
}

/// `Connection: close` from the client still closes the connection after the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_close_closes_after_the_answer() {
    let app = TestApp::sqlite().await;
    let mut client = Client::connect(&app).await;
    client.send(health("first").as_bytes()).await;
    assert_eq!(client.answer().await.status, 200);
    client
        .send(b"GET /health HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await;
    let answer = client.answer().await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("connection"), Some("close"));
    assert!(client.closed_by_server().await);
}

/// A keep-alive connection left idle is closed after the idle limit (the request-head
/// timeout), and so is one that never sends anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_after_the_idle_limit() {
    let app = TestApp::sqlite()
        .await
        .with_config(|config| config.header_read_timeout_ms = 300)
        .await;
    let mut used = Client::connect(&app).await;
    used.send(health("before-idle").as_bytes()).await;
    assert_eq!(used.answer().await.status, 200);
    let mut silent = Client::connect(&app).await;
    assert!(
        used.closed_by_server().await,
        "an idle connection stayed open"
    );
    assert!(
        silent.closed_by_server().await,
        "a silent connection stayed open"
    );
}

/// HTTP/2 with prior knowledge (no upgrade): several requests, one after the other and at once,
/// on one connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_with_prior_knowledge_is_served() {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let app = TestApp::sqlite().await;
    let address = app.address.trim_start_matches("http://").to_string();
    let stream = TcpStream::connect(&address).await.expect("connects");
    let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake::<_, axum::body::Body>(TokioIo::new(stream))
        .await
        .expect("an HTTP/2 handshake");
    tokio::spawn(connection);
    let get = |id: String| {
        let mut sender = sender.clone();
        let address = address.clone();
        async move {
            let request = axum::http::Request::get(format!("http://{address}/health"))
                .header("x-request-id", &id)
                .body(axum::body::Body::empty())
                .expect("a request");
            let response = tokio::time::timeout(PATIENCE, sender.send_request(request))
                .await
                .expect("an answer in time")
                .expect("an answer");
            assert_eq!(response.version(), axum::http::Version::HTTP_2);
            assert_eq!(response.status(), 200);
            assert_eq!(
                response.headers().get("x-request-id").map(|v| v.as_bytes()),
                Some(id.as_bytes())
            );
            let body = axum::body::to_bytes(axum::body::Body::new(response.into_body()), 1 << 20)
                .await
                .expect("a body");
            let body: Value = serde_json::from_slice(&body).expect("JSON");
            assert_eq!(body["status"], "ok");
        }
    };
    get("h2-1".into()).await;
    get("h2-2".into()).await;
    let at_once: Vec<_> = (3..8)
        .map(|i| tokio::spawn(get(format!("h2-{i}"))))
        .collect();
    for task in at_once {
        task.await.expect("the request task");
    }
}
