//! The accept loop: each connection served by hyper with a timer, so that a client trickling its
//! request head (slowloris) is cut off, and a graceful drain bounded by the grace period. What a
//! request may do once its head is in (body size, deadline) is the router's business. A closed
//! connection lingers briefly, so that an answer given before the request was read to its end
//! (a 413 during an upload) reaches the client instead of being lost to a reset.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tower::Service as _;

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

/// Serves `router` until `shutdown` resolves, then stops accepting and waits up to the grace
/// period for open connections to finish their requests.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    settings: ConnectionSettings,
    shutdown: impl Future<Output = ()>,
) -> Drain {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    let mut make_service = router.into_make_service_with_connect_info::<SocketAddr>();
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
        let Ok(service) = make_service.call(remote).await;
        let connection = builder
            .serve_connection_with_upgrades(
                TokioIo::new(LingeringClose(Some(stream))),
                TowerToHyperService::new(service),
            )
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // A client that hangs up, sends garbage or trickles its head ends here; it is the
            // client's doing, not the server's, so it is not logged as an error.
            if let Err(error) = connection.await {
                tracing::debug!(error = %error, "connection closed with an error");
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: no new connections; draining in-flight requests");
    match tokio::time::timeout(settings.shutdown_grace, graceful.shutdown()).await {
        Ok(()) => Drain::Complete,
        Err(_) => Drain::GraceExpired,
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
