//! The accept loop: each connection served by hyper with a timer, so that a client trickling its
//! request head (slowloris) is cut off, and a graceful drain bounded by the grace period. What a
//! request may do once its head is in (body size, deadline) is the router's business.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
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
            .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service))
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
