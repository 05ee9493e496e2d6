//! A `bigfs-gateway` beside a test cluster, serving the web console on a loopback port, and its
//! metrics and probes on another (`--http-listen`).
//!
//! Its log is `logs/gateway.log` in the cluster's directory (kept with it when a test fails).
//! Like the cluster's servers, it is started from the test's thread and dies with it.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use crate::bins::{self, GATEWAY};
use crate::cluster::{Cluster, READY_TIMEOUT};
use crate::ports::free_port;
use crate::process::ServerProcess;
use crate::wait::poll_until;

/// A running gateway; killed when dropped.
pub struct Gateway {
    port: u16,
    http_port: u16,
    proc: ServerProcess,
}

impl Gateway {
    /// Starts a gateway for `cluster` and waits until its console accepts connections.
    pub fn start(cluster: &Cluster) -> Gateway {
        let (port, http_port) = (free_port(), free_port());
        let args = vec![
            "--meta".into(),
            cluster.meta_url().into(),
            "--console-listen".into(),
            format!("127.0.0.1:{port}").into(),
            "--http-listen".into(),
            format!("127.0.0.1:{http_port}").into(),
        ];
        let log = cluster.root().join("logs").join("gateway.log");
        let mut proc = ServerProcess::new("gateway", bins::bin(GATEWAY), args, log);
        if let Err(e) = proc.start() {
            cluster.fail(&format!("cannot spawn {GATEWAY}: {e}"));
        }
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let listening = poll_until(READY_TIMEOUT, || {
            proc.exited().is_some()
                || TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
        });
        if let Some(status) = proc.exited() {
            cluster.fail(&format!(
                "the gateway exited at start ({status}):\n{}",
                proc.log_tail(30)
            ));
        }
        if listening.is_err() {
            cluster.fail(&format!(
                "the gateway does not accept connections on port {port}:\n{}",
                proc.log_tail(30)
            ));
        }
        Gateway {
            port,
            http_port,
            proc,
        }
    }

    /// The port of its HTTP listener: `/metrics`, `/healthz`, `/readyz`.
    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    /// The console's URL, `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The last lines of its log, for failure messages.
    pub fn log_tail(&self) -> String {
        self.proc.log_tail(30)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.proc.kill();
        let log = self.proc.log_text();
        if log.contains("panicked") && !std::thread::panicking() {
            panic!("the gateway panicked:\n{}", self.proc.log_tail(40));
        }
    }
}
