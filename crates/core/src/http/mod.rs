//! Serving HTTP on a public listener: a header-read timeout (a client trickling its headers is
//! cut off), a write-stall timeout (a client that stops reading its answer is cut off), a
//! maximum connection age (a kept-alive connection is closed after its request in flight), a
//! cap on open connections (past it, new ones wait in the kernel's backlog), and graceful
//! shutdown that ends, after a drain, with every connection closed. `axum::serve` has none of
//! these limits; this is the loop both HTTP services use.
//!
//! Also where `/metrics` lives: on each service's own listener, or, with `METRICS_ADDR`, on a
//! listener of its own that the public never reaches ([`MetricsAt`]).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{Request, header};
use axum::response::IntoResponse;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

/// The limits of a public listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// How long a client may take to send a request's headers (and, on a kept-alive
    /// connection, to start the next request).
    pub header_read_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
    /// How long a write may wait on a client that does not read: past it the connection is
    /// closed (a slow reader holds its connection, and the answer's memory, no longer).
    pub write_stall_timeout: Duration,
    /// How long a connection is kept alive: past it, it closes after the request in flight.
    pub max_connection_age: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            write_stall_timeout: Duration::from_secs(30),
            max_connection_age: Duration::from_secs(300),
        }
    }
}

/// How many connections a listener from [`bind`] queues before they are accepted. The
/// default of `listen()` callers (128) overflows on a burst of webhooks; the kernel caps this
/// at `net.core.somaxconn` (4096 on current Linux).
pub const LISTEN_BACKLOG: u32 = 4096;

/// Binds a public listener on `addr` with room for [`LISTEN_BACKLOG`] connections waiting to
/// be accepted (past the queue, the kernel drops handshakes: the client sees a reset or
/// retransmits for seconds).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// How long shutdown waits for requests in flight before closing their connections.
const DRAIN: Duration = Duration::from_secs(30);

/// Serves `app` on `listener` until `shutdown`, then lets requests in flight finish. Each
/// request carries its peer as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    serve_with_drain(listener, app, limits, shutdown, DRAIN).await
}

async fn serve_with_drain(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: CancellationToken,
    drain: Duration,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let mut connections = JoinSet::new();
    loop {
        // Reap finished connections so the set holds only open ones.
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, say: wait a moment rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Answers are small and latency matters: no Nagle delay on them.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let service = app.clone().map_request(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            req
        });
        let io = TokioIo::new(StallGuard::new(tcp, limits.write_stall_timeout));
        let connection = http.serve_connection(io, TowerToHyperService::new(service));
        let shutdown = shutdown.clone();
        let max_age = limits.max_connection_age;
        connections.spawn(async move {
            tokio::pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                _ = shutdown.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
                _ = tokio::time::sleep(max_age) => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = ended {
                tracing::debug!(error = %e, %peer, "connection ended");
            }
            drop(permit);
        });
    }
    drop(listener);
    let drained = tokio::time::timeout(drain, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            "requests still in flight {drain:?} after shutdown began; closing their connections"
        );
        connections.shutdown().await;
    }
    Ok(())
}

/// A connection whose writes may not wait on the client for longer than a timeout: a client
/// that stops reading gets its connection closed (a write error) instead of holding it.
struct StallGuard {
    io: TcpStream,
    timeout: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl StallGuard {
    fn new(io: TcpStream, timeout: Duration) -> Self {
        Self {
            io,
            timeout,
            stalled: None,
        }
    }

    /// Passes a write's outcome through, timing how long it has been pending.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        match polled {
            Poll::Ready(r) => {
                self.stalled = None;
                Poll::Ready(r)
            }
            Poll::Pending => {
                let timeout = self.timeout;
                let stalled = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                ready!(stalled.as_mut().poll(cx));
                Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the client stopped reading",
                )))
            }
        }
    }
}

impl AsyncRead for StallGuard {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for StallGuard {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        self.watch(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.watch(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.io).poll_flush(cx);
        self.watch(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.io).poll_shutdown(cx);
        self.watch(cx, polled)
    }
}

/// Renders a service's metrics in the OpenMetrics text format.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// The metrics of every service in the process, served together on `METRICS_ADDR`.
#[derive(Clone, Default)]
pub struct MetricsHub(Arc<Mutex<Vec<(&'static str, Render)>>>);

impl MetricsHub {
    /// Sets the renderer of the service named `service`: a service restarted by its
    /// supervisor replaces its old one (whose state it would otherwise keep alive, its metric
    /// families rendered twice).
    pub fn set(&self, service: &'static str, render: Render) {
        let mut renders = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match renders.iter_mut().find(|(name, _)| *name == service) {
            Some(slot) => slot.1 = render,
            None => renders.push((service, render)),
        }
    }

    /// Every service's metrics as one OpenMetrics document (one `# EOF`).
    pub fn render(&self) -> String {
        let renders: Vec<Render> = self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(_, r)| r.clone())
            .collect();
        let mut out = String::new();
        for r in renders {
            let text = r();
            out.push_str(text.strip_suffix("# EOF\n").unwrap_or(&text));
        }
        out.push_str("# EOF\n");
        out
    }

    /// `GET /metrics` over the hub.
    pub fn router(&self) -> Router {
        let hub = self.clone();
        Router::new().route(
            "/metrics",
            axum::routing::get(move || async move { metrics_response(hub.render()) }),
        )
    }
}

/// Where a service serves its `/metrics`.
#[derive(Clone, Default)]
pub enum MetricsAt {
    /// On its own listener, beside its routes.
    #[default]
    Public,
    /// On the process's metrics listener (`METRICS_ADDR`) only.
    Private(MetricsHub),
}

impl std::fmt::Debug for MetricsAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Public => "Public",
            Self::Private(_) => "Private",
        })
    }
}

/// An OpenMetrics answer.
pub fn metrics_response(body: String) -> axum::response::Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// The peer of a request served by [`serve`].
pub fn peer(req: &Request<axum::body::Body>) -> Option<SocketAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
}

#[cfg(test)]
mod tests;
