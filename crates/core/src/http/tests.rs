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
    hub.set("ingest", Arc::new(|| "a 1\n# EOF\n".to_owned()));
    hub.set("api", Arc::new(|| "b 2\n# EOF\n".to_owned()));
    assert_eq!(hub.render(), "a 1\nb 2\n# EOF\n");
    // A restarted service replaces its renderer.
    hub.set("ingest", Arc::new(|| "a 3\n# EOF\n".to_owned()));
    assert_eq!(hub.render(), "a 3\nb 2\n# EOF\n");
}

/// A server whose one route answers 32 MiB (more than loopback socket buffers hold), to a client that never reads it.
async fn start_big(
    limits: Limits,
    drain: Duration,
) -> (
    SocketAddr,
    CancellationToken,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route(
        "/big",
        axum::routing::get(|| async { vec![b'x'; 32 << 20] }),
    );
    let shutdown = CancellationToken::new();
    let served = tokio::spawn(serve_with_drain(
        listener,
        app,
        limits,
        shutdown.clone(),
        drain,
    ));
    (addr, shutdown, served)
}

/// Issue 12 review: a client that stops reading a large answer loses its connection (and
/// its slot) after the write-stall timeout.
#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off() {
    let (addr, _stop, _) = start_big(
        Limits {
            write_stall_timeout: Duration::from_millis(300),
            max_connections: 1,
            ..Limits::default()
        },
        DRAIN,
    )
    .await;
    let mut stalled = tokio::net::TcpStream::connect(addr).await.unwrap();
    stalled
        .write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // Never read: the server's writes fill the socket buffers and stall. Within a few
    // stall timeouts its slot is free for the next client.
    let mut next = tokio::net::TcpStream::connect(addr).await.unwrap();
    next.write_all(b"GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), next.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "the next client was never served");
    assert!(got.len() > 32 << 20, "a whole answer: {} bytes", got.len());
    drop(stalled);
}

#[tokio::test]
async fn shutdown_closes_what_is_still_open_after_the_drain() {
    let (addr, stop, served) = start_big(
        Limits {
            write_stall_timeout: Duration::from_secs(3600),
            ..Limits::default()
        },
        Duration::from_millis(300),
    )
    .await;
    let mut stalled = tokio::net::TcpStream::connect(addr).await.unwrap();
    stalled
        .write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.cancel();
    let ended = tokio::time::timeout(Duration::from_secs(5), served).await;
    assert!(
        matches!(ended, Ok(Ok(Ok(())))),
        "serve returned after the drain"
    );
    // Its connection is closed: reading reaches the end (or a reset) after what was sent.
    let mut sink = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), stalled.read_to_end(&mut sink)).await;
    assert!(closed.is_ok(), "the connection is still open");
}

#[tokio::test]
async fn a_kept_alive_connection_is_closed_at_its_age() {
    let (addr, _stop) = start(Limits {
        max_connection_age: Duration::from_millis(300),
        ..Limits::default()
    })
    .await;
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    assert!(tcp.read(&mut buf).await.unwrap() > 0);
    // Idle, but within the header-read timeout: closed at its age all the same.
    let eof = tokio::time::timeout(Duration::from_secs(3), tcp.read(&mut buf)).await;
    assert!(matches!(eof, Ok(Ok(0)) | Ok(Err(_))), "{eof:?}");
}

/// CI found it (one run in eight of the slow-clients test lost answers to resets): a
/// listener bound the default way queues 128 connections, and a burst of more than that
/// overflows the queue; the kernel drops their handshakes and the clients see resets or
/// seconds of retransmits. [`bind`] queues [`LISTEN_BACKLOG`].
#[tokio::test]
async fn a_burst_of_connections_waits_in_the_queue_and_is_served() {
    let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    // 600 clients connect and send their request before the server accepts any.
    let mut clients = Vec::new();
    for i in 0..600 {
        let connect = tokio::net::TcpStream::connect(addr);
        let mut tcp = tokio::time::timeout(Duration::from_secs(2), connect)
            .await
            .unwrap_or_else(|_| panic!("client {i} could not connect: the queue is full"))
            .unwrap();
        tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        clients.push(tcp);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let app = Router::new().route("/", axum::routing::get(|| async { "hello" }));
    let stop = CancellationToken::new();
    tokio::spawn(serve(listener, app, Limits::default(), stop.clone()));
    let mut served = 0;
    let mut failed = Vec::new();
    for mut tcp in clients {
        let mut answer = Vec::new();
        match tokio::time::timeout(Duration::from_millis(900), tcp.read_to_end(&mut answer)).await {
            Ok(Ok(_)) if answer.starts_with(b"HTTP/1.1 200") => served += 1,
            other => failed.push(format!("{other:?}")),
        }
    }
    stop.cancel();
    assert_eq!(
        served,
        600,
        "not served: {:?}",
        &failed[..failed.len().min(3)]
    );
}
