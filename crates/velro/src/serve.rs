//! The accept loop: each connection served by hyper with a timer, so that a client trickling its
//! request head (slowloris) is cut off, and a graceful drain bounded by the grace period. What a
//! request may do once its head is in (body size, deadline) is the router's business. A closed
//! connection lingers briefly, so that an answer given before the request was read to its end
//! (a 413 during an upload) reaches the client instead of being lost to a reset.
//!
//! An idle keep-alive connection holds no hyper state. hyper keeps a connection's read and write
//! buffers (8 KiB each) and its dispatcher for as long as the connection lives, and has no call to
//! give them back; with thousands of idle clients that is most of the server's memory. So each
//! HTTP/1 connection is a loop: wait until the socket is readable, holding only the socket, then
//! serve with a fresh hyper connection; once its answer is out and hyper has waited `KEEP_WARM`
//! for the next request with nothing read, take the socket back (`graceful_shutdown` on an idle
//! connection plus `into_parts`), replay whatever hyper had read ahead, and wait again. HTTP/2
//! (prior knowledge) is recognised by its preface and served by hyper's HTTP/2 connection as
//! before.

use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body as AxumBody;
use axum::http::{header, HeaderMap, Request, Response, StatusCode, Version};
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower::{Service, ServiceExt as _};
use velro_http::CallerSlot;

#[derive(Debug, Clone, Copy)]
pub struct ConnectionSettings {
    /// Longest time a client may take to send a request head; on HTTP/1.1 this also closes a
    /// keep-alive connection that stays idle this long.
    pub header_read_timeout: Duration,
    /// Longest wait for in-flight requests once shutdown has begun.
    pub shutdown_grace: Duration,
}

/// How the drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drain {
    Complete,
    GraceExpired,
}

/// What every connection task shares: the protocol settings, built once.
struct Protocols {
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
    idle_timeout: Duration,
}

/// Serves `router` until `shutdown` resolves, then stops accepting and waits up to the grace
/// period for open connections to finish their requests.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    settings: ConnectionSettings,
    shutdown: impl Future<Output = ()>,
) -> Drain {
    let mut http1 = http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout);
    let mut http2 = http2::Builder::new(TokioExecutor::new());
    http2.timer(TokioTimer::new());
    let protocols = Arc::new(Protocols {
        http1,
        http2,
        idle_timeout: settings.header_read_timeout,
    });
    // `true` once shutdown has begun; the drain is over when every connection has dropped its
    // receiver.
    let (draining, drain_watch) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(connection) => connection,
                Err(error) => {
                    pause_after_accept_error(&error).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Small JSON answers go out in one write; Nagle would only hold them back.
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(
            stream,
            remote,
            router.clone(),
            Arc::clone(&protocols),
            drain_watch.clone(),
        ));
    }
    drop(listener);
    drop(drain_watch);
    tracing::info!("shutting down: no new connections; draining in-flight requests");
    let _ = draining.send(true);
    match tokio::time::timeout(settings.shutdown_grace, draining.closed()).await {
        Ok(()) => Drain::Complete,
        Err(_) => Drain::GraceExpired,
    }
}

/// What a client sends first on an HTTP/2 connection with prior knowledge.
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// One connection, from accept to close.
async fn connection<S>(
    mut stream: TcpStream,
    peer: SocketAddr,
    service: S,
    protocols: Arc<Protocols>,
    mut drain: watch::Receiver<bool>,
) where
    S: Service<Request<AxumBody>, Response = Response<AxumBody>, Error = Infallible>
        + Clone
        + Send
        + Unpin
        + 'static,
    S::Future: Send + 'static,
{
    if !wait_for_data(&stream, protocols.idle_timeout, &mut drain).await {
        return;
    }
    let Some((first, http2)) = sniff(&mut stream, protocols.idle_timeout).await else {
        return;
    };
    if http2 {
        serve_http2(stream, first, peer, service, &protocols, drain).await;
        return;
    }
    let mut replay = first;
    loop {
        let Some((released, read_ahead)) =
            serve_http1(stream, replay, peer, &service, &protocols, &mut drain).await
        else {
            return;
        };
        stream = released;
        replay = read_ahead;
        // Bytes hyper had read ahead are the start of the next request: no wait for those.
        if replay.is_empty() && !wait_for_data(&stream, protocols.idle_timeout, &mut drain).await {
            return;
        }
    }
}

/// Waits, holding nothing but the socket, until the client sends something. `false` when the
/// connection is to close instead: idle for the whole idle limit, or shutdown has begun (an idle
/// connection has nothing to finish).
async fn wait_for_data(
    stream: &TcpStream,
    idle_limit: Duration,
    drain: &mut watch::Receiver<bool>,
) -> bool {
    if *drain.borrow() {
        return false;
    }
    tokio::select! {
        ready = tokio::time::timeout(idle_limit, stream.readable()) => matches!(ready, Ok(Ok(()))),
        _ = drain.changed() => false,
    }
}

/// Reads the first bytes of a connection, as few as tell HTTP/2's preface from an HTTP/1
/// request line, within the head's time limit. Returns them (to be replayed) and whether the
/// connection speaks HTTP/2; `None` when the client closed or stalled.
async fn sniff(stream: &mut TcpStream, limit: Duration) -> Option<(Bytes, bool)> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut head = [0_u8; H2_PREFACE.len()];
    let mut filled = 0;
    while filled < head.len() {
        let read = match tokio::time::timeout_at(deadline, stream.read(&mut head[filled..])).await {
            Ok(Ok(read)) if read > 0 => read,
            _ => return None,
        };
        filled += read;
        if head[..filled] != H2_PREFACE[..filled] {
            return Some((Bytes::copy_from_slice(&head[..filled]), false));
        }
    }
    Some((Bytes::copy_from_slice(&head), true))
}

/// Serves HTTP/1 requests with a fresh hyper connection until it goes idle. Returns the socket
/// and the bytes hyper read past its last request when the connection is to wait for more;
/// `None` when it has closed (the client's wish, an error, hyper's own judgement, or shutdown).
async fn serve_http1<S>(
    stream: TcpStream,
    replay: Bytes,
    peer: SocketAddr,
    service: &S,
    protocols: &Protocols,
    drain: &mut watch::Receiver<bool>,
) -> Option<(TcpStream, Bytes)>
where
    S: Service<Request<AxumBody>, Response = Response<AxumBody>, Error = Infallible>
        + Clone
        + Send
        + Unpin
        + 'static,
    S::Future: Send + 'static,
{
    let cycle = Arc::new(Cycle::new());
    let io = TokioIo::new(Watched {
        replay,
        stream: LingeringClose(Some(stream)),
        cycle: Arc::clone(&cycle),
    });
    let answering = Answering {
        service: service.clone(),
        cycle: Arc::clone(&cycle),
        peer,
    };
    // Boxed so that the connection's task, which lives as long as the client stays, is small
    // while it waits.
    let mut conn = Box::new(protocols.http1.serve_connection(io, answering));
    let mut shutting = *drain.borrow();
    if shutting {
        Pin::new(&mut *conn).graceful_shutdown();
    }
    let mut released = false;
    let mut warm = Warm::default();
    let result = loop {
        tokio::select! {
            result = poll_fn(|cx| {
                let poll = conn.poll_without_shutdown(cx);
                if poll.is_pending()
                    && !released
                    && !shutting
                    && cycle.is_idle()
                    && warm.cooled(cx, cycle.answered.load(Ordering::Relaxed))
                {
                    // Idle: hyper closes its side at once and hands the socket back.
                    released = true;
                    Pin::new(&mut *conn).graceful_shutdown();
                    return conn.poll_without_shutdown(cx);
                }
                poll
            }) => break result,
            _ = drain.changed(), if !shutting => {
                // An in-flight request finishes (its answer says `Connection: close`); an idle
                // connection closes now.
                shutting = true;
                Pin::new(&mut *conn).graceful_shutdown();
            }
        }
    };
    match result {
        Ok(()) if released && !shutting => {
            let parts = conn.into_parts();
            let Watched {
                replay: unread,
                stream,
                ..
            } = parts.io.into_inner();
            let stream = stream.into_inner()?;
            Some((stream, detached(parts.read_buf, unread)))
        }
        // hyper closed the connection by its own rules (dropping it lingers, see below).
        Ok(()) => None,
        Err(error) => {
            // A client that hangs up, sends garbage or trickles its head ends here; it is the
            // client's doing, not the server's, so it is not logged as an error.
            tracing::debug!(error = %error, "connection closed with an error");
            None
        }
    }
}

/// What a released connection replays to the next hyper connection: what hyper read past its
/// last request, then what it had not yet taken of the previous replay. Always a copy, even an
/// empty one: hyper's `read_buf` is a view of its whole read buffer (8 KiB and more), and would
/// keep all of it alive for as long as the connection then waits.
fn detached(read_buf: Bytes, unread: Bytes) -> Bytes {
    if read_buf.is_empty() && unread.is_empty() {
        Bytes::new()
    } else {
        [read_buf, unread].concat().into()
    }
}

async fn serve_http2<S>(
    stream: TcpStream,
    preface: Bytes,
    peer: SocketAddr,
    service: S,
    protocols: &Protocols,
    mut drain: watch::Receiver<bool>,
) where
    S: Service<Request<AxumBody>, Response = Response<AxumBody>, Error = Infallible>
        + Clone
        + Send
        + Unpin
        + 'static,
    S::Future: Send + 'static,
{
    // The cycle's bookkeeping is unused here: an HTTP/2 connection keeps hyper's state.
    let cycle = Arc::new(Cycle::new());
    let io = TokioIo::new(Watched {
        replay: preface,
        stream: LingeringClose(Some(stream)),
        cycle: Arc::clone(&cycle),
    });
    let answering = Answering {
        service,
        cycle,
        peer,
    };
    let mut conn = Box::pin(protocols.http2.serve_connection(io, answering));
    let mut shutting = *drain.borrow();
    if shutting {
        conn.as_mut().graceful_shutdown();
    }
    let result = loop {
        tokio::select! {
            result = conn.as_mut() => break result,
            _ = drain.changed(), if !shutting => {
                shutting = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    };
    if let Err(error) = result {
        tracing::debug!(error = %error, "connection closed with an error");
    }
}

/// How long a connection keeps its hyper state after its last answer before giving it back. A
/// busy client's next request usually comes within a round trip; building a fresh hyper
/// connection for each one costs more than the buffers it frees, so only a connection that has
/// stayed idle this long (up to twice this long) is released.
const KEEP_WARM: Duration = Duration::from_millis(50);

/// The idle timer of one hyper connection: set the first time the connection goes idle, and
/// checked only while it is idle, so that a busy connection costs one timer per `KEEP_WARM`
/// rather than one per request.
#[derive(Default)]
struct Warm {
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Answers given when the timer was last set.
    answered_then: usize,
}

impl Warm {
    /// Whether a connection idle now, having given `answered` answers, has given none for a
    /// whole period; when `false`, `cx` is woken by the timer.
    fn cooled(&mut self, cx: &mut Context<'_>, answered: usize) -> bool {
        let timer = match &mut self.timer {
            Some(timer) => timer,
            None => {
                self.answered_then = answered;
                self.timer.insert(Box::pin(tokio::time::sleep(KEEP_WARM)))
            }
        };
        loop {
            if timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            if answered == self.answered_then {
                return true;
            }
            // Busy since the timer was set: one more period.
            self.answered_then = answered;
            timer
                .as_mut()
                .reset(tokio::time::Instant::now() + KEEP_WARM);
        }
    }
}

/// What one hyper HTTP/1 connection has done, kept by its service, its request and response
/// bodies and its socket, to tell when it is idle: every answer sent, every request body read to
/// its end, and hyper found the socket empty after the last answer (it only reads then when it
/// is waiting for a new request or watching for the client's hang-up).
struct Cycle {
    in_flight: AtomicUsize,
    answered: AtomicUsize,
    /// `answered` when a read last found the socket empty (`usize::MAX`: never).
    drained_at: AtomicUsize,
    unread_bodies: AtomicUsize,
    /// Something this connection did is left to hyper's own rules: a request body not read to
    /// its end (hyper drains or closes), or a connection that is to close (HTTP/1.0, `Connection:
    /// close`, a protocol switch). hyper then keeps the connection as it always did.
    leave_to_hyper: AtomicBool,
}

impl Cycle {
    fn new() -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            answered: AtomicUsize::new(0),
            drained_at: AtomicUsize::new(usize::MAX),
            unread_bodies: AtomicUsize::new(0),
            leave_to_hyper: AtomicBool::new(false),
        }
    }

    fn is_idle(&self) -> bool {
        // One task polls the connection, its service and its bodies: no ordering to keep.
        let answered = self.answered.load(Ordering::Relaxed);
        answered > 0
            && self.in_flight.load(Ordering::Relaxed) == 0
            && self.drained_at.load(Ordering::Relaxed) == answered
            && self.unread_bodies.load(Ordering::Relaxed) == 0
            && !self.leave_to_hyper.load(Ordering::Relaxed)
    }
}

/// The router as hyper's service, keeping the cycle's accounts and telling the router who is
/// on the other end.
struct Answering<S> {
    service: S,
    cycle: Arc<Cycle>,
    peer: SocketAddr,
}

impl<S> hyper::service::Service<Request<Incoming>> for Answering<S>
where
    S: Service<Request<AxumBody>, Response = Response<AxumBody>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Answered>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Answered>, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let turn = Turn::start(Arc::clone(&self.cycle));
        if request.version() < Version::HTTP_11 || says_close(request.headers()) {
            self.cycle.leave_to_hyper.store(true, Ordering::Relaxed);
        }
        let cycle = Arc::clone(&self.cycle);
        let mut request = request.map(|body| {
            let ended = body.is_end_stream();
            if !ended {
                cycle.unread_bodies.fetch_add(1, Ordering::Relaxed);
            }
            AxumBody::new(ReadToEnd { body, cycle, ended })
        });
        // The one extension the router needs from the server. It is also where the router
        // notes the caller: one insert per request, not one for the address and one for that.
        request
            .extensions_mut()
            .insert(CallerSlot::for_peer(self.peer));
        let service = self.service.clone();
        Box::pin(async move {
            let Ok(response) = service.oneshot(request).await;
            if response.status() == StatusCode::SWITCHING_PROTOCOLS
                || says_close(response.headers())
            {
                turn.0.leave_to_hyper.store(true, Ordering::Relaxed);
            }
            Ok(response.map(|body| Answered { body, _turn: turn }))
        })
    }
}

fn says_close(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("close"))
}

/// One request from its head to the end of its answer (hyper drops the answer's body once it
/// has written all of it, or gives up on it).
struct Turn(Arc<Cycle>);

impl Turn {
    fn start(cycle: Arc<Cycle>) -> Self {
        cycle.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(cycle)
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.0.answered.fetch_add(1, Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

struct Answered {
    body: AxumBody,
    _turn: Turn,
}

impl Body for Answered {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A request body that tells its cycle whether it was read to its end.
struct ReadToEnd {
    body: Incoming,
    cycle: Arc<Cycle>,
    ended: bool,
}

impl ReadToEnd {
    fn end(&mut self) {
        if !self.ended {
            self.ended = true;
            self.cycle.unread_bodies.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Body for ReadToEnd {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let poll = Pin::new(&mut self.body).poll_frame(cx);
        if matches!(poll, Poll::Ready(None)) || self.body.is_end_stream() {
            self.end();
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for ReadToEnd {
    fn drop(&mut self) {
        if self.body.is_end_stream() {
            self.end();
        } else if !self.ended {
            self.cycle.leave_to_hyper.store(true, Ordering::Relaxed);
        }
    }
}

/// The socket as hyper sees it: first the bytes already read (the sniffed start, or what the
/// previous hyper connection had read ahead), then the socket; a read that finds the socket
/// empty is noted in the cycle.
struct Watched {
    replay: Bytes,
    stream: LingeringClose,
    cycle: Arc<Cycle>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.replay.is_empty() {
            let n = self.replay.len().min(buf.remaining());
            let chunk = self.replay.split_to(n);
            buf.put_slice(&chunk);
            return Poll::Ready(Ok(()));
        }
        let poll = Pin::new(&mut self.stream).poll_read(cx, buf);
        if poll.is_pending() {
            let answered = self.cycle.answered.load(Ordering::Relaxed);
            self.cycle.drained_at.store(answered, Ordering::Relaxed);
        }
        poll
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// How long a closing connection waits for more of the client's data before it gives up, and
/// how long and how much it reads and discards at most: enough for an upload in flight on a
/// fast link, small enough that a client cannot hold the server with it.
const LINGER_IDLE: Duration = Duration::from_secs(1);
const LINGER_TOTAL: Duration = Duration::from_secs(5);
const LINGER_BYTES: usize = 16 * 1024 * 1024;

/// A connection's socket that is closed gently once hyper lets go of it. Closing a socket whose
/// client data is still unread makes the kernel reset the connection, and a reset drops the
/// part of the answer not yet delivered: a client still uploading past the body limit would see
/// a connection error instead of its 413. So the write side is shut (the client sees the end of
/// the answer) and what the client still sends is read and discarded, within bounds, until it
/// closes its side.
struct LingeringClose(Option<TcpStream>);

impl LingeringClose {
    /// The socket back, without the lingering close: the connection goes on.
    fn into_inner(mut self) -> Option<TcpStream> {
        self.0.take()
    }
}

fn released() -> io::Error {
    io::Error::from(io::ErrorKind::NotConnected)
}

impl AsyncRead for LingeringClose {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.0.as_mut() {
            Some(stream) => Pin::new(stream).poll_read(cx, buf),
            None => Poll::Ready(Err(released())),
        }
    }
}

impl AsyncWrite for LingeringClose {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.0.as_mut() {
            Some(stream) => Pin::new(stream).poll_write(cx, buf),
            None => Poll::Ready(Err(released())),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.0.as_mut() {
            Some(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            None => Poll::Ready(Err(released())),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.0.as_ref().is_some_and(AsyncWrite::is_write_vectored)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.0.as_mut() {
            Some(stream) => Pin::new(stream).poll_flush(cx),
            None => Poll::Ready(Err(released())),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.0.as_mut() {
            Some(stream) => Pin::new(stream).poll_shutdown(cx),
            None => Poll::Ready(Err(released())),
        }
    }
}

impl Drop for LingeringClose {
    fn drop(&mut self) {
        // Dropped on the connection's task, so a runtime is there; without one (the runtime
        // itself is going away) the socket simply closes.
        if let (Some(stream), Ok(runtime)) = (self.0.take(), tokio::runtime::Handle::try_current())
        {
            runtime.spawn(linger(stream));
        }
    }
}

async fn linger(mut stream: TcpStream) {
    // hyper has usually shut the write side already; this covers the paths where it did not.
    let _ = stream.shutdown().await;
    let discard = async {
        let mut buffer = vec![0_u8; 16 * 1024];
        let mut left = LINGER_BYTES;
        while left > 0 {
            match tokio::time::timeout(LINGER_IDLE, stream.read(&mut buffer)).await {
                Ok(Ok(n)) if n > 0 => left = left.saturating_sub(n),
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_TOTAL, discard).await;
}

/// Errors that concern one connection (reset before accept) are skipped at once; the others,
/// such as running out of file descriptors, would repeat in a tight loop, so the loop pauses.
async fn pause_after_accept_error(error: &std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %error, "could not accept a connection; pausing for 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Raises this process's soft limit on open files to its hard limit, as servers commonly do at
/// start-up: each connection is a file descriptor, and the usual soft limit (1024) would refuse
/// connections long before memory or CPU run out. The hard limit is the operator's (`ulimit -Hn`,
/// systemd's `LimitNOFILE=`); it is never raised here. Returns the soft limit in force.
#[cfg(unix)]
pub fn raise_open_file_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let limit = getrlimit(Resource::Nofile);
    let (Some(current), maximum) = (limit.current, limit.maximum) else {
        return None; // unlimited already
    };
    let Some(maximum) = maximum else {
        return Some(current);
    };
    if current >= maximum {
        return Some(current);
    }
    let raised = rustix::process::Rlimit {
        current: Some(maximum),
        maximum: Some(maximum),
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => Some(maximum),
        Err(error) => {
            tracing::warn!(%error, current, maximum, "could not raise the open-file limit");
            Some(current)
        }
    }
}

#[cfg(not(unix))]
pub fn raise_open_file_limit() -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Measured as about 12 KiB per idle connection before (`bench/conns.sh`), when an empty
    /// view of hyper's read buffer was kept for the replay.
    #[test]
    fn the_replay_keeps_none_of_hyper_read_buffer() {
        // What hyper hands back when it read nothing ahead: an empty view of its buffer.
        let hyper_buffer = Bytes::from(Vec::<u8>::with_capacity(8192));
        let view = hyper_buffer.clone();
        assert!(!hyper_buffer.is_unique());
        let replay = detached(view, Bytes::new());
        assert!(hyper_buffer.is_unique(), "the replay keeps hyper's buffer");
        assert!(replay.is_empty());

        let mut buffer = Bytes::from(b"GET /a HTTP/1.1\r\n\r\nGET /b".to_vec());
        let ahead = buffer.split_off(19);
        let replay = detached(ahead, Bytes::from_static(b" HTTP/1.1"));
        assert_eq!(&replay[..], b"GET /b HTTP/1.1");
        assert!(buffer.is_unique());
    }

    /// What an idle connection costs the server is mostly its task, sized by the largest state of
    /// `connection`'s future: hyper's connection is boxed so that it is not part of it, and the
    /// task must stay small when something is added to the loop.
    #[tokio::test]
    async fn a_connection_task_is_small() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let _client = TcpStream::connect(address).await.expect("connect");
        let (stream, remote) = listener.accept().await.expect("accept");
        let service = axum::Router::new();
        let protocols = Arc::new(Protocols {
            http1: http1::Builder::new(),
            http2: http2::Builder::new(TokioExecutor::new()),
            idle_timeout: Duration::from_secs(1),
        });
        let (_draining, drain) = watch::channel(false);
        let task = connection(stream, remote, service, protocols, drain);
        let size = std::mem::size_of_val(&task);
        println!("connection future: {size} bytes");
        assert!(size <= 1024, "the connection future takes {size} bytes");
    }
}
