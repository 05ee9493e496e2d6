//! What an operator's tools see of a cluster: each server's HTTP listener (`/metrics`,
//! `/healthz`, `/readyz`), the gRPC health checking protocol, and `promtool`'s verdict on the
//! metrics exposition.
//!
//! The HTTP client is a plain HTTP/1.1 GET over a `TcpStream` (the servers answer with a
//! `Content-Length`), so the suites need no HTTP crate. [`metric`] reads one sample from the
//! Prometheus text format.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use crate::cluster::Cluster;

/// An HTTP response: status code and body.
#[derive(Debug)]
pub struct HttpReply {
    pub status: u16,
    pub body: String,
}

/// `GET path` from the HTTP listener on loopback `port`.
pub fn http_get(port: u16, path: &str) -> Result<HttpReply, String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| format!("set a read timeout: {e}"))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("send GET {path} to {addr}: {e}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| format!("read the reply to GET {path} from {addr}: {e}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("GET {path} from {addr}: no complete reply: {text:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("GET {path} from {addr}: no status line: {head:?}"))?;
    Ok(HttpReply {
        status,
        body: body.to_string(),
    })
}

/// The sum of the samples of metric `name` (the full sample name, e.g. `bigfs_rpc_requests_total`)
/// whose labels include every pair of `labels`, in a Prometheus text exposition; `None` when no
/// sample matches.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (sample, label_text) = match series.split_once('{') {
            Some((sample, rest)) => (sample, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let wanted = |(key, value): &(&str, &str)| {
            label_text
                .split(',')
                .any(|pair| pair == format!("{key}=\"{value}\""))
        };
        if sample != name || !labels.iter().all(wanted) {
            continue;
        }
        let value: f64 = value.parse().ok()?;
        found = Some(found.unwrap_or(0.0) + value);
    }
    found
}

/// Where `promtool` is: on `PATH`, or installed by `scripts/test.sh`.
fn promtool() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("promtool"))
        .find(|candidate| candidate.is_file())
}

/// Runs `promtool check metrics` (Prometheus's own linter and parser) on `exposition`:
/// `Err` with its complaints when it rejects it. A missing `promtool` is a failure, never a
/// skip: `scripts/test.sh` installs it.
pub fn promtool_check(exposition: &str) -> Result<(), String> {
    let Some(promtool) = promtool() else {
        panic!(
            "promtool is not installed: run the tests with scripts/test.sh, which installs it \
             (from Debian's prometheus package)"
        );
    };
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", promtool.display()));
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(exposition.as_bytes())
        .unwrap_or_else(|e| panic!("cannot feed promtool: {e}"));
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("cannot wait for promtool: {e}"));
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "promtool check metrics failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// Asks the gRPC health service at `addr` (e.g. `http://127.0.0.1:9400`) about `service` ("" for
/// the whole server).
pub fn grpc_health(addr: &str, service: &str) -> Result<ServingStatus, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("start a tokio runtime: {e}"))?;
    runtime.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(addr.to_string())
            .map_err(|e| format!("bad address {addr}: {e}"))?
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .connect()
            .await
            .map_err(|e| format!("connect to {addr}: {e}"))?;
        let reply = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: service.to_string(),
            })
            .await
            .map_err(|e| format!("health check of {service:?} at {addr}: {e}"))?;
        Ok(reply.into_inner().status())
    })
}

impl Cluster {
    /// The port of the metadata server's HTTP listener.
    pub fn meta_http_port(&self) -> u16 {
        self.meta_http_port
    }

    /// The port of storage node `i`'s HTTP listener.
    pub fn node_http_port(&self, i: usize) -> u16 {
        self.nodes[i].http_port
    }

    /// The metadata server's `/metrics`; fails the test unless it answers 200.
    #[track_caller]
    pub fn meta_metrics(&self) -> String {
        self.scrape("meta", self.meta_http_port)
    }

    /// Storage node `i`'s `/metrics`; fails the test unless it answers 200.
    #[track_caller]
    pub fn metrics(&self, i: usize) -> String {
        self.scrape(&self.nodes[i].id, self.nodes[i].http_port)
    }

    #[track_caller]
    fn scrape(&self, name: &str, port: u16) -> String {
        match http_get(port, "/metrics") {
            Ok(reply) if reply.status == 200 => reply.body,
            Ok(reply) => self.fail(&format!(
                "{name}'s /metrics answered {}: {}",
                reply.status, reply.body
            )),
            Err(e) => self.fail(&format!("cannot scrape {name}'s /metrics: {e}")),
        }
    }

    /// The gRPC health status of storage node `i` as a whole.
    pub fn node_grpc_health(&self, i: usize) -> Result<ServingStatus, String> {
        grpc_health(&format!("http://{}", self.node_addr(i)), "")
    }

    /// The gRPC health status of the metadata server as a whole.
    pub fn meta_grpc_health(&self) -> Result<ServingStatus, String> {
        grpc_health(&self.meta_url(), "")
    }
}
