//! Serving HTTP on a public listener: a header-read timeout (a client trickling its headers is
//! cut off), a cap on open connections (past it, new ones wait in the kernel's backlog), and
//! graceful shutdown. `axum::serve` has neither limit; this is the loop both HTTP services use.
//!
//! Also where `/metrics` lives: on each service's own listener, or, with `METRICS_ADDR`, on a
//! listener of its own that the public never reaches ([`MetricsAt`]).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{Request, header};
use axum::response::IntoResponse;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
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
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 10_000,
        }
    }
}

/// How long shutdown waits for requests in flight.
const DRAIN: Duration = Duration::from_secs(30);

/// Serves `app` on `listener` until `shutdown`, then lets requests in flight finish. Each
/// request carries its peer as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    loop {
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
        let connection = graceful
            .watch(http.serve_connection(TokioIo::new(tcp), TowerToHyperService::new(service)));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %peer, "connection ended");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight {DRAIN:?} after shutdown began; closing");
    }
    Ok(())
}

/// Renders a service's metrics in the OpenMetrics text format.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// The metrics of every service in the process, served together on `METRICS_ADDR`.
#[derive(Clone, Default)]
pub struct MetricsHub(Arc<Mutex<Vec<Render>>>);

impl MetricsHub {
    pub fn add(&self, render: Render) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(render);
    }

    /// Every service's metrics as one OpenMetrics document (one `# EOF`).
    pub fn render(&self) -> String {
        let renders = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
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
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn start(limits: Limits) -> (SocketAddr, CancellationToken) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route("/", axum::routing::get(|| async { "hello" }));
        let shutdown = CancellationToken::new();
        tokio::spawn(serve(listener, app, limits, shutdown.clone()));
        (addr, shutdown)
    }

    /// Issue 12: a client trickling its headers is cut off within the header-read timeout.
    #[tokio::test]
    async fn a_client_trickling_its_headers_is_cut_off() {
        let (addr, _stop) = start(Limits {
            header_read_timeout: Duration::from_millis(500),
            ..Limits::default()
        })
        .await;
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let started = std::time::Instant::now();
        let trickle = async {
            for b in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ".iter().cycle() {
                if tcp.write_all(&[*b]).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), trickle).await;
        let cut_after = started.elapsed();
        assert!(
            cut_after < Duration::from_secs(2),
            "still connected after {cut_after:?}"
        );
    }

    #[tokio::test]
    async fn no_more_than_the_cap_are_served_at_once() {
        let (addr, _stop) = start(Limits {
            max_connections: 1,
            ..Limits::default()
        })
        .await;
        let mut first = tokio::net::TcpStream::connect(addr).await.unwrap();
        first
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 256];
        assert!(first.read(&mut buf).await.unwrap() > 0);
        // The first connection stays open: the second is not served until it closes.
        let mut second = tokio::net::TcpStream::connect(addr).await.unwrap();
        second
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let waiting = tokio::time::timeout(Duration::from_millis(300), second.read(&mut buf)).await;
        assert!(waiting.is_err(), "served beyond the cap");
        drop(first);
        let served = tokio::time::timeout(Duration::from_secs(2), second.read(&mut buf)).await;
        assert!(matches!(served, Ok(Ok(n)) if n > 0));
    }

    #[test]
    fn the_hub_renders_one_document() {
        let hub = MetricsHub::default();
        hub.add(Arc::new(|| "a 1\n# EOF\n".to_owned()));
        hub.add(Arc::new(|| "b 2\n# EOF\n".to_owned()));
        assert_eq!(hub.render(), "a 1\nb 2\n# EOF\n");
    }
}
