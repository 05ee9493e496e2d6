//! A `bigfs-gateway` beside a test cluster, serving the web console on a loopback port, its
//! metrics and probes on another (`--http-listen`) and, started with [`Gateway::start_s3`],
//! the S3 API on a third with a test key pair.
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
    /// The S3 listener's port, when it has one.
    s3_port: Option<u16>,
    proc: ServerProcess,
}

/// The key pair a test gateway's S3 listener accepts.
pub const S3_ACCESS_KEY: &str = "BIGFSTESTACCESSKEY";
pub const S3_SECRET_KEY: &str = "bigfs-test-secret-key/0123456789";

impl Gateway {
    /// Starts a gateway for `cluster` and waits until its console accepts connections.
    pub fn start(cluster: &Cluster) -> Gateway {
        Self::start_with(cluster, false, &[])
    }

    /// A gateway that serves the S3 API too, with [`S3_ACCESS_KEY`] and [`S3_SECRET_KEY`].
    pub fn start_s3(cluster: &Cluster) -> Gateway {
        Self::start_with(cluster, true, &[])
    }

    /// [`Gateway::start_s3`] with more flags (`--sse-master-key-file FILE`...).
    pub fn start_s3_with(cluster: &Cluster, extra: &[&str]) -> Gateway {
        Self::start_with(cluster, true, extra)
    }

    fn start_with(cluster: &Cluster, s3: bool, extra: &[&str]) -> Gateway {
        let (port, http_port) = (free_port(), free_port());
        let mut args: Vec<std::ffi::OsString> = vec![
            "--meta".into(),
            cluster.meta_url().into(),
            "--console-listen".into(),
            format!("127.0.0.1:{port}").into(),
            "--http-listen".into(),
            format!("127.0.0.1:{http_port}").into(),
        ];
        let s3_port = s3.then(free_port);
        if let Some(s3_port) = s3_port {
            args.extend([
                "--s3-listen".into(),
                format!("127.0.0.1:{s3_port}").into(),
                "--s3-access-key".into(),
                S3_ACCESS_KEY.into(),
                "--s3-secret-key".into(),
                S3_SECRET_KEY.into(),
            ]);
        }
        args.extend(extra.iter().map(Into::into));
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
            s3_port,
            proc,
        }
    }

    /// The port of its HTTP listener: `/metrics`, `/healthz`, `/readyz`.
    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    /// The S3 endpoint, `http://127.0.0.1:PORT`, for `--endpoint-url`.
    pub fn s3_url(&self) -> String {
        let port = self.s3_port.expect("a gateway started with start_s3");
        format!("http://127.0.0.1:{port}")
    }

    /// Kills the gateway (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        self.proc.kill();
    }

    /// The console's URL, `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Its peak resident memory so far, in bytes (`VmHWM` in /proc/PID/status).
    pub fn peak_rss(&self) -> u64 {
        let pid = self.proc.pid().expect("the gateway runs");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let kib = status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmHWM in /proc/PID/status");
        kib * 1024
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
