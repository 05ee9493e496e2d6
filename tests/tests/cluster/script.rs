//! `scripts/cluster.sh`, run as a new user runs it: `up`, `status`, `restart`, `add-node`, a
//! drain, `down` and `up` again, `down --wipe`; the S3 API reached with the keys `up` prints,
//! which stay the same across `down` and `up`; and `up` failing for a node that never reports.
//!
//! The script starts detached servers of its own (not children of the test), so every test
//! holds a [`Script`], whose drop runs `down` (and SIGKILLs what that leaves), pass or fail. The
//! script gets the harness's binaries (`BIGFS_BIN_DIR`, `--no-build`), a temporary cluster
//! directory, a free range of consecutive ports (82: the gateway's console is at the base port
//! plus 80, its S3 API at plus 81) and 200 ms heartbeats.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread;
use std::time::Duration;

use bigfs_tests::s3::aws_command;
use bigfs_tests::wait::poll_until;
use bigfs_tests::{
    bins, describe, free_port_range, pseudo_random, run_cli, run_with_timeout, stderr_of,
    stdout_of, CLI_TIMEOUT, KIB,
};
use serde_json::Value;

use crate::s;

/// What `up`, `restart` and `add-node` wait at most (`BIGFS_CLUSTER_TIMEOUT`); a bound on a
/// broken cluster: a working one is up in a second or two.
const SCRIPT_WAIT_SECS: u64 = 30;
/// The time limit of one script command: its own wait plus a stop that ends in SIGKILL.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(SCRIPT_WAIT_SECS + 30);
/// Deadline of the test's own waits.
const WAIT: Duration = Duration::from_secs(30);

/// A cluster directory run by `scripts/cluster.sh`; dropping it runs `down`.
struct Script {
    /// The cluster directory (`BIGFS_CLUSTER_DIR`); kept if the test fails.
    dir: Option<tempfile::TempDir>,
    root: PathBuf,
    base_port: u16,
    bin_dir: PathBuf,
}

/// How far above its gRPC port cluster.sh puts each server's HTTP listener.
const HTTP_OFFSET: u16 = 100;

/// The columns `status` shows for a server on gRPC port `port`: its listen address and the URL
/// of its metrics.
fn status_columns(port: u16) -> (String, String) {
    (
        format!("127.0.0.1:{port} "),
        format!("http://127.0.0.1:{}/metrics", port + HTTP_OFFSET),
    )
}

impl Script {
    /// A cluster directory for `ports` consecutive ports (meta and every node the test will
    /// start), and as many [`HTTP_OFFSET`] above them for their HTTP listeners, with the
    /// harness's binaries.
    fn new(ports: usize, bin_dir: &Path) -> Script {
        let dir = tempfile::Builder::new()
            .prefix("bigfs-script-")
            .tempdir()
            .expect("create a temporary directory");
        Script {
            root: dir.path().join("cluster"),
            dir: Some(dir),
            base_port: free_port_range(HTTP_OFFSET as usize + ports),
            bin_dir: bin_dir.to_path_buf(),
        }
    }

    fn meta_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.base_port)
    }

    fn script() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/cluster.sh")
    }

    /// `bash -c SHELL_CODE cluster.sh` in the script's environment: the code runs the script
    /// as "$0".
    fn shell(&self, code: &str) -> Output {
        let mut cmd = Command::new("bash");
        cmd.arg("-c").arg(code).arg(Self::script());
        self.environment(&mut cmd);
        self.run_command(&mut cmd, code)
    }

    /// `scripts/cluster.sh ARGS` in the test's environment for it.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(Self::script());
        cmd.args(args);
        self.environment(&mut cmd);
        cmd
    }

    fn environment(&self, cmd: &mut Command) {
        cmd.env("BIGFS_CLUSTER_DIR", &self.root)
            .env("BIGFS_BIN_DIR", &self.bin_dir)
            .env("BIGFS_CLUSTER_TIMEOUT", SCRIPT_WAIT_SECS.to_string())
            .env("BIGFS_NODE_ARGS", "--heartbeat-interval 200ms")
            .env("BIGFS_META_ARGS", "--heartbeat-timeout 5s")
            .env_remove("BIGFS_META")
            .env_remove("BIGFS_TMUX_SESSION")
            .env_remove("RUST_LOG");
    }

    /// `scripts/cluster.sh ARGS`.
    fn run(&self, args: &[&str]) -> Output {
        self.run_command(&mut self.command(args), &args.join(" "))
    }

    fn run_command(&self, cmd: &mut Command, what: &str) -> Output {
        run_with_timeout(cmd, None, SCRIPT_TIMEOUT)
            .unwrap_or_else(|e| panic!("cluster.sh {what}: {e}{}", self.logs()))
    }

    /// `scripts/cluster.sh ARGS`, which must succeed; returns its stdout.
    #[track_caller]
    fn must(&self, args: &[&str]) -> String {
        let out = self.run(args);
        if !out.status.success() {
            panic!(
                "cluster.sh {} failed:\n{}{}",
                args.join(" "),
                describe(&out),
                self.logs()
            );
        }
        stdout_of(&out)
    }

    /// `bigfs ARGS` against the cluster, which must succeed; returns its stdout.
    #[track_caller]
    fn bigfs(&self, args: &[&str]) -> String {
        let out = run_cli(Some(&self.meta_url()), args, CLI_TIMEOUT);
        if !out.status.success() {
            panic!(
                "bigfs {} failed:\n{}{}",
                args.join(" "),
                describe(&out),
                self.logs()
            );
        }
        stdout_of(&out)
    }

    /// Node id → state, from `bigfs nodes --json`.
    fn node_states(&self) -> Vec<(String, String)> {
        let out = run_cli(Some(&self.meta_url()), ["nodes", "--json"], CLI_TIMEOUT);
        if !out.status.success() {
            return Vec::new();
        }
        let nodes: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        nodes
            .as_array()
            .into_iter()
            .flatten()
            .map(|n| {
                let field = |k: &str| n[k].as_str().unwrap_or_default().to_string();
                (field("id"), field("state"))
            })
            .collect()
    }

    fn state_of(&self, id: &str) -> Option<String> {
        let states = self.node_states();
        states.into_iter().find(|(i, _)| i == id).map(|(_, s)| s)
    }

    /// Waits until `bigfs nodes` shows exactly the `expected` (id, state) pairs.
    #[track_caller]
    fn wait_states(&self, expected: &[(&str, &str)]) {
        let want: Vec<(String, String)> = expected
            .iter()
            .map(|(i, s)| (i.to_string(), s.to_string()))
            .collect();
        let mut last = Vec::new();
        let waited = poll_until(WAIT, || {
            last = self.node_states();
            last.sort();
            last == want
        });
        if let Err(waited) = waited {
            panic!(
                "after {waited:?} `bigfs nodes` shows {last:?}, not {want:?}{}",
                self.logs()
            );
        }
    }

    /// The pid recorded in pids/NAME.pid.
    fn pid(&self, name: &str) -> u32 {
        let path = self.root.join("pids").join(format!("{name}.pid"));
        let text = fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}{}", path.display(), self.logs()));
        text.trim()
            .parse()
            .unwrap_or_else(|e| panic!("{}: {text:?}: {e}", path.display()))
    }

    /// Every recorded pid, by name.
    fn pids(&self) -> Vec<(String, u32)> {
        let Ok(entries) = fs::read_dir(self.root.join("pids")) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_str()?.strip_suffix(".pid")?.to_string();
                let pid = fs::read_to_string(e.path()).ok()?.trim().parse().ok()?;
                Some((name, pid))
            })
            .collect()
    }

    /// The processes whose command line names the cluster directory (every server the script
    /// started has its data directory there), as (pid, command line).
    fn processes(&self) -> Vec<(u32, String)> {
        let root = self.root.to_string_lossy().into_owned();
        let Ok(entries) = fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| {
                let pid: u32 = e.file_name().to_str()?.parse().ok()?;
                let cmdline = fs::read(e.path().join("cmdline")).ok()?;
                let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                cmdline.contains(&root).then_some((pid, cmdline))
            })
            .collect()
    }

    /// The logs that contain `needle`.
    fn logs_with(&self, needle: &str) -> Vec<PathBuf> {
        let Ok(entries) = fs::read_dir(self.root.join("logs")) else {
            return Vec::new();
        };
        entries
            .flatten()
            .map(|e| e.path())
            .filter(|log| fs::read_to_string(log).is_ok_and(|text| text.contains(needle)))
            .collect()
    }

    /// The end of every process's log, for failure messages.
    fn logs(&self) -> String {
        let mut text = format!("\ncluster dir: {}", self.root.display());
        let Ok(entries) = fs::read_dir(self.root.join("logs")) else {
            return text;
        };
        let mut logs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        logs.sort();
        for log in logs {
            let content = fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = content.lines().collect();
            let tail = lines[lines.len().saturating_sub(15)..].join("\n");
            text.push_str(&format!("\n---- {} ----\n{tail}", log.display()));
        }
        text
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        if !self.pids().is_empty() {
            let mut cmd = self.command(&["down"]);
            match run_with_timeout(&mut cmd, None, SCRIPT_TIMEOUT) {
                Ok(out) if out.status.success() => {}
                Ok(out) => eprintln!("cluster.sh down failed:\n{}", describe(&out)),
                Err(e) => eprintln!("cluster.sh down: {e}"),
            }
        }
        // Whatever `down` left (it failed, or a pid file was missing): only this cluster's.
        for (pid, cmdline) in self.processes() {
            eprintln!("killing pid {pid}, left running: {cmdline}");
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
        if thread::panicking() {
            if let Some(dir) = self.dir.take() {
                eprintln!(
                    "bigfs-tests: kept the cluster directory {}",
                    dir.keep().display()
                );
            }
        }
    }
}

/// The S3 endpoint and key pair that `up` and `status` print, read from their ready-to-paste
/// `AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… aws --endpoint-url URL s3 ls` line.
#[derive(Debug, PartialEq)]
struct S3Line {
    line: String,
    endpoint: String,
    access: String,
    secret: String,
}

impl S3Line {
    #[track_caller]
    fn find(output: &str) -> S3Line {
        let line = output
            .lines()
            .find(|l| l.starts_with("AWS_ACCESS_KEY_ID="))
            .unwrap_or_else(|| panic!("no `AWS_ACCESS_KEY_ID=… aws` line in:\n{output}"));
        let words: Vec<&str> = line.split_whitespace().collect();
        let value = |i: usize, name: &str| {
            words
                .get(i)
                .and_then(|w| w.strip_prefix(name))
                .unwrap_or_else(|| panic!("word {i} of {line:?} is not {name}…"))
                .to_string()
        };
        assert_eq!(
            words.get(2..4),
            Some(&["aws", "--endpoint-url"][..]),
            "{line}"
        );
        S3Line {
            line: line.to_string(),
            access: value(0, "AWS_ACCESS_KEY_ID="),
            secret: value(1, "AWS_SECRET_ACCESS_KEY="),
            endpoint: value(4, ""),
        }
    }

    /// `aws ARGS` with these keys, which must succeed; returns its stdout.
    #[track_caller]
    fn must_aws(&self, c: &Script, args: &[&str]) -> String {
        let mut cmd = aws_command(&self.endpoint, &self.access, &self.secret);
        cmd.args(args);
        let out = run_with_timeout(&mut cmd, None, CLI_TIMEOUT)
            .unwrap_or_else(|e| panic!("aws {args:?}: {e}"));
        if !out.status.success() {
            panic!("aws {args:?} failed:\n{}{}", describe(&out), c.logs());
        }
        stdout_of(&out)
    }
}

/// Whether `pid` runs one of the BigFS servers.
fn is_server(pid: u32) -> bool {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains("bigfs-"))
        .unwrap_or(false)
}

#[test]
fn up_restart_add_node_drain_down_and_up_again() {
    // meta, node1..node4, the gateway's console at base + 80 and its S3 API at base + 81.
    let c = Script::new(82, bins::bin_dir());
    let base = c.base_port.to_string();
    let up = c.must(&["up", "--nodes", "3", "--base-port", &base, "--no-build"]);
    let console = format!("http://127.0.0.1:{}/", c.base_port + 80);
    assert!(
        up.contains(&format!("Web console: {console}")),
        "up does not print the console's URL {console}:\n{up}"
    );
    c.wait_states(&[("node1", "alive"), ("node2", "alive"), ("node3", "alive")]);

    let status = c.must(&["status"]);
    for (i, name) in ["meta", "node1", "node2", "node3"].iter().enumerate() {
        let pid = c.pid(name);
        let (listen, metrics) = status_columns(c.base_port + i as u16);
        assert!(
            status.lines().any(|l| l.starts_with(name)
                && l.contains(&pid.to_string())
                && l.contains("running")
                && l.contains(&listen)
                && l.ends_with(&metrics)),
            "status does not show {name} (pid {pid}) running on {listen}with {metrics}:\n{status}"
        );
        let scraped =
            bigfs_tests::observe::http_get(c.base_port + HTTP_OFFSET + i as u16, "/metrics");
        assert!(
            scraped.is_ok_and(|r| r.status == 200 && r.body.contains("bigfs_build_info")),
            "{name} serves no metrics at {metrics}"
        );
    }
    let gateway = c.pid("gateway");
    assert!(
        status.lines().any(|l| l.starts_with("gateway")
            && l.contains(&gateway.to_string())
            && l.contains("running"))
            && status.contains(&format!("web console: {console}")),
        "status does not show the gateway (pid {gateway}) and its console:\n{status}"
    );
    let page = bigfs_tests::http_get(&console);
    assert_eq!(
        page.status, 200,
        "the console at {console} answers {}",
        page.status
    );
    let s3 = s3_works_as_printed(&c, &up, &status);

    // A put and a get through the cluster.
    let work = c.dir.as_ref().expect("dir").path().to_path_buf();
    let data = pseudo_random(7, 300 * KIB);
    let local = work.join("payload");
    fs::write(&local, &data).expect("write payload");
    c.bigfs(&["put", s(&local), "/script/payload"]);
    let back = work.join("payload.back");
    c.bigfs(&["get", "/script/payload", s(&back)]);
    assert!(
        fs::read(&back).expect("read back") == data,
        "get returned other bytes"
    );

    // restart: a new process on the same port and data, reporting again.
    let old = c.pid("node2");
    let out = c.must(&["restart", "node2"]);
    let new = c.pid("node2");
    assert_ne!(old, new, "restart kept node2's pid:\n{out}");
    assert!(!is_server(old), "node2's old pid {old} still runs a server");
    c.wait_states(&[("node1", "alive"), ("node2", "alive"), ("node3", "alive")]);
    // The gateway too, with the same keys (they come from the cluster directory, not argv).
    let old = c.pid("gateway");
    c.must(&["restart", "gateway"]);
    assert_ne!(old, c.pid("gateway"), "restart kept the gateway's pid");
    assert!(s3.must_aws(&c, &["s3", "ls"]).contains(" scripted"));

    // add-node: node4 on the next port, known to status.
    c.must(&["add-node"]);
    c.wait_states(&[
        ("node1", "alive"),
        ("node2", "alive"),
        ("node3", "alive"),
        ("node4", "alive"),
    ]);
    let status = c.must(&["status"]);
    let (node4, metrics) = status_columns(c.base_port + 4);
    assert!(
        status.lines().any(|l| l.starts_with("node4")
            && l.contains("running")
            && l.contains(&node4)
            && l.ends_with(&metrics)),
        "status does not show node4 running on {node4}with {metrics}:\n{status}"
    );

    // A drained node stays drained across down and up, and up accepts it (it used to wait for
    // "alive" until its timeout, then stop the whole cluster).
    c.bigfs(&["node", "drain", "node4"]);
    let drained = poll_until(WAIT, || c.state_of("node4").as_deref() == Some("drained"));
    assert!(
        drained.is_ok(),
        "node4 is {:?}, not drained{}",
        c.state_of("node4"),
        c.logs()
    );
    let before_down = c.pids();
    c.must(&["down"]);
    for (name, pid) in &before_down {
        assert!(!is_server(*pid), "{name} (pid {pid}) still runs after down");
    }
    // No --nodes, no --base-port: those recorded, node4 included.
    let up_again = c.must(&["up", "--no-build"]);
    let states = c.node_states();
    assert_eq!(states.len(), 4, "after up again: {states:?}");
    assert!(
        matches!(c.state_of("node4").as_deref(), Some("draining" | "drained")),
        "node4 after up again: {states:?}"
    );
    c.bigfs(&["get", "--force", "/script/payload", s(&back)]);
    assert!(
        fs::read(&back).expect("read back") == data,
        "data changed across down/up"
    );
    // The same S3 keys, still accepted.
    assert_eq!(
        S3Line::find(&up_again),
        s3,
        "the S3 keys changed across down/up"
    );
    let s3_back = work.join("s3.back");
    // The SSE-S3 object too: the master key was kept.
    for key in ["payload", "sealed"] {
        s3.must_aws(
            &c,
            &["s3", "cp", &format!("s3://scripted/{key}"), s(&s3_back)],
        );
        assert!(
            fs::read(&s3_back).expect("read back") == fs::read(work.join("s3.up")).expect("read"),
            "S3 get of {key} returned other bytes after down/up"
        );
    }

    // A reader that goes away early: no error, and the script ends as if by SIGPIPE or
    // normally; also where SIGPIPE is ignored (then writes fail with EPIPE instead).
    for cmd in ["status", "env", "help", "logs meta"] {
        for ignore in ["", "trap '' PIPE; "] {
            for reader in ["head -1", "head -c 0"] {
                let code = format!("{ignore}\"$0\" {cmd} | {reader}; exit ${{PIPESTATUS[0]}}");
                let out = c.shell(&code);
                let status = out.status.code();
                assert!(
                    matches!(status, Some(0 | 141)) && stderr_of(&out).is_empty(),
                    "`{code}`:\n{}",
                    describe(&out)
                );
            }
        }
    }
    let first = c.shell("\"$0\" status | head -1");
    assert!(
        stdout_of(&first).starts_with("cluster dir ") && stdout_of(&first).lines().count() == 1,
        "status | head -1:\n{}",
        describe(&first)
    );

    let panicked = c.logs_with("panicked");
    assert!(panicked.is_empty(), "panics in {panicked:?}{}", c.logs());

    let before_down = c.pids();
    c.must(&["down", "--wipe"]);
    for (name, pid) in &before_down {
        assert!(
            !is_server(*pid),
            "{name} (pid {pid}) still runs after down --wipe"
        );
    }
    assert!(!c.root.exists(), "down --wipe left {}", c.root.display());
    let left = c.processes();
    assert!(
        left.is_empty(),
        "processes left after down --wipe: {left:?}"
    );
}

/// The S3 API of a cluster `up` started (its output `up`, and `status`'s): the line both print
/// works as pasted, `s3-env` exports the same keys, a bucket and an object can be made and read
/// back with them, and the secret is in a file only its owner reads, not on a command line.
fn s3_works_as_printed(c: &Script, up: &str, status: &str) -> S3Line {
    let s3 = S3Line::find(up);
    assert_eq!(
        s3.endpoint,
        format!("http://127.0.0.1:{}", c.base_port + 81),
        "{up}"
    );
    assert_eq!(
        S3Line::find(status),
        s3,
        "status prints other keys:\n{status}"
    );
    // As pasted into a shell with no aws configuration at all (no region either).
    let mut pasted = Command::new("bash");
    pasted
        .arg("-c")
        .arg(&s3.line)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("AWS_REGION")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_PROFILE");
    let out = run_with_timeout(&mut pasted, None, CLI_TIMEOUT).expect("run the pasted line");
    assert!(out.status.success(), "{}:\n{}", s3.line, describe(&out));

    let work = c.dir.as_ref().expect("dir").path().to_path_buf();
    let data = pseudo_random(8, 700 * KIB);
    let (local, back) = (work.join("s3.up"), work.join("s3.down"));
    fs::write(&local, &data).expect("write payload");
    s3.must_aws(c, &["s3", "mb", "s3://scripted"]);
    s3.must_aws(c, &["s3", "cp", s(&local), "s3://scripted/payload"]);
    s3.must_aws(c, &["s3", "cp", "s3://scripted/payload", s(&back)]);
    assert!(
        fs::read(&back).expect("read back") == data,
        "S3 get returned other bytes"
    );

    // s3-env, evaluated, points aws at the same endpoint with the same keys.
    let env = c.must(&["s3-env"]);
    for line in [
        format!("export AWS_ENDPOINT_URL={}", s3.endpoint),
        format!("export AWS_ACCESS_KEY_ID={}", s3.access),
        format!("export AWS_SECRET_ACCESS_KEY={}", s3.secret),
    ] {
        assert!(
            env.lines().any(|l| l == line),
            "s3-env lacks {line:?}:\n{env}"
        );
    }
    let listed = c.shell(
        "export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null; \
         eval \"$(\"$0\" s3-env)\" && aws s3 ls s3://scripted/",
    );
    assert!(
        listed.status.success() && stdout_of(&listed).contains("payload"),
        "aws after eval s3-env:\n{}",
        describe(&listed)
    );

    // The S3 keys and the gateway's SSE-S3 master key (32 bytes) are its owner's only.
    for name in ["s3-keys", "sse-master-key"] {
        let file = c.root.join(name);
        let meta = fs::metadata(&file).unwrap_or_else(|e| panic!("stat {name}: {e}"));
        let mode = {
            use std::os::unix::fs::PermissionsExt;
            meta.permissions().mode() & 0o777
        };
        assert_eq!(mode, 0o600, "{} has mode {mode:o}", file.display());
    }
    assert_eq!(
        fs::read(c.root.join("sse-master-key")).expect("read").len(),
        32
    );
    // With it, SSE-S3 works as cluster.sh started the gateway (checked again after down/up).
    s3.must_aws(
        c,
        &[
            "s3",
            "cp",
            "--sse",
            "AES256",
            s(&local),
            "s3://scripted/sealed",
        ],
    );
    let cmdline = fs::read(format!("/proc/{}/cmdline", c.pid("gateway"))).expect("cmdline");
    assert!(
        !String::from_utf8_lossy(&cmdline).contains(&s3.secret),
        "the secret key is on the gateway's command line"
    );
    s3
}

#[test]
fn up_fails_for_a_node_that_never_reports() {
    // The real metadata server and CLI, and a "storage node" that runs but never registers.
    let real = bins::bin_dir();
    let fake = tempfile::Builder::new()
        .prefix("bigfs-fake-bin-")
        .tempdir()
        .expect("create a temporary directory");
    for name in [bins::META, bins::CLI, bins::GATEWAY] {
        std::os::unix::fs::symlink(real.join(name), fake.path().join(name)).expect("symlink");
    }
    let node = fake.path().join(bins::NODE);
    fs::write(&node, "#!/bin/sh\nwhile :; do sleep 0.2; done\n").expect("write fake node");
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&node, fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    let c = Script::new(82, fake.path());
    let base = c.base_port.to_string();
    let mut cmd = c.command(&["up", "--nodes", "1", "--base-port", &base, "--no-build"]);
    cmd.env("BIGFS_CLUSTER_TIMEOUT", "2");
    let out = c.run_command(&mut cmd, "up");
    // It names the node and stops what it started.
    assert!(
        !out.status.success()
            && stderr_of(&out).contains("up failed")
            && stderr_of(&out).contains("node1"),
        "up with a node that never reports:\n{}",
        describe(&out)
    );
    assert!(c.pids().is_empty(), "pid files left: {:?}", c.pids());
    let left = c.processes();
    assert!(
        left.is_empty(),
        "processes left after the failed up: {left:?}"
    );
}
