//! A 3-node NATS JetStream cluster of the suite's own, each node configured from the deploy
//! file (`deploy/nats/cluster.conf`, the shape docker-compose.cluster.yml and the Helm values
//! use) with this machine's ports and directories put in.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::bin::free_port;
use showpass_testkit::nats_server_binary;

const ROUTE_PASSWORD: &str = "chaosroutepw";

/// One node: its ports, its store and configuration, and its process while it runs.
struct Node {
    name: String,
    port: u16,
    config: std::path::PathBuf,
    child: Option<Child>,
}

pub struct NatsCluster {
    nodes: Vec<Node>,
    _dir: tempfile::TempDir,
}

impl NatsCluster {
    /// Three nodes, started and routed to each other.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let deployed = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/nats/cluster.conf"),
        )
        .expect("reading deploy/nats/cluster.conf");
        let ports: Vec<(u16, u16, u16)> = (0..3)
            .map(|_| (free_port(), free_port(), free_port()))
            .collect();
        let nodes = (0..3)
            .map(|i| {
                let (client, http, route) = ports[i];
                let store = dir.path().join(format!("n{}", i + 1));
                std::fs::create_dir_all(&store).unwrap();
                let config = dir.path().join(format!("n{}.conf", i + 1));
                std::fs::write(
                    &config,
                    node_config(&deployed, &ports, client, http, route, &store),
                )
                .unwrap();
                Node {
                    name: format!("n{}", i + 1),
                    port: client,
                    config,
                    child: None,
                }
            })
            .collect();
        let mut cluster = Self { nodes, _dir: dir };
        for i in 0..3 {
            cluster.restart(i);
        }
        cluster
    }

    /// Every node's client URL, as clients are given them (`NATS_URL`).
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("nats://127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The node of a server name (`n1`..`n3`).
    pub fn index_of(&self, server_name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == server_name)
    }

    /// SIGKILL one node.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts one node again, on its store; waits until it takes clients.
    pub fn restart(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let child = Command::new(nats_server_binary())
            .arg("-c")
            .arg(&node.config)
            .env("SERVER_NAME", &node.name)
            .env("NATS_ROUTE_PASSWORD", ROUTE_PASSWORD)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting nats-server");
        node.child = Some(child);
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", node.port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "node {} did not start",
                node.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

/// The deploy file with this node's ports and store, routes to the other nodes on
/// 127.0.0.1, and no users (the suite's services connect without credentials; the users
/// file is tried by crates/e2e's least-privilege test). Each substitution must take: a
/// changed deploy file fails here, not quietly.
fn node_config(
    deployed: &str,
    ports: &[(u16, u16, u16)],
    client: u16,
    http: u16,
    route: u16,
    store: &Path,
) -> String {
    let mut text = deployed.to_owned();
    let mut replace = |from: &str, to: &str| {
        assert!(
            text.contains(from),
            "deploy/nats/cluster.conf has no `{from}`"
        );
        text = text.replacen(from, to, 1);
    };
    replace(
        "\nport: 4222",
        &format!("\nhost: 127.0.0.1\nport: {client}"),
    );
    replace("http_port: 8222", &format!("http_port: {http}"));
    replace(
        "store_dir: /data",
        &format!("store_dir: \"{}\"", store.display()),
    );
    replace(
        "  port: 6222",
        &format!("  host: 127.0.0.1\n  port: {route}"),
    );
    for (n, (_, _, p)) in ports.iter().enumerate() {
        replace(
            &format!("nats-route://ROUTE_CREDENTIALS@nats-{}:6222", n + 1),
            &format!("nats-route://route:{ROUTE_PASSWORD}@127.0.0.1:{p}"),
        );
    }
    replace("include ./authorization.conf", "");
    if nats_server_version() < (2, 10) {
        // Debian's 2.9 does not know `sync_interval` (2.10's); the images run 2.11.
        replace("  sync_interval: 10s\n", "");
    }
    text
}

/// `nats-server --version`: `nats-server: v2.9.10`.
fn nats_server_version() -> (u32, u32) {
    let out = Command::new(nats_server_binary())
        .arg("--version")
        .output()
        .expect("running nats-server --version");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text
        .trim()
        .rsplit('v')
        .next()
        .unwrap_or("")
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}
