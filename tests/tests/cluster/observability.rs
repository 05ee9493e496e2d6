//! Observability (issue 12): what an operator's tools see of a running cluster.
//!
//! - `/metrics` of the metadata server and of a node passes `promtool check metrics`, and its
//!   values move with the cluster: a put raises a node's chunks, bytes and write counters and
//!   the per-method request counters; a failed call counts its gRPC code; a dead node raises
//!   the under-replicated chunk gauge, which repair brings back to 0; a restart with a node
//!   down shows safe mode.
//! - The gRPC health checking protocol answers NOT_SERVING while the metadata server is in safe
//!   mode and while a node is draining, SERVING otherwise; `/healthz` is 200 throughout and
//!   `/readyz` 503 with the reason, or 200.
//! - `--log-format json` writes one JSON object per line, request spans included.
//! - The gateway's `/metrics` counts its console's requests and passes promtool; its `/readyz`
//!   is 503 while the metadata server does not answer.
//!
//! `promtool` comes from Debian's `prometheus` package; `scripts/test.sh` installs it.

use std::time::Duration;

use bigfs_tests::observe::{http_get, metric, promtool_check};
use bigfs_tests::{pseudo_random, Cluster, KIB, MIB};
use serde_json::Value;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::s;

/// Deadline of every wait: a bound on a broken cluster, not an expectation.
const WAIT: Duration = Duration::from_secs(60);

/// Sample `name` with `labels` in `text`, 0 when absent (a family with no sample yet).
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    metric(text, name, labels).unwrap_or(0.0)
}

/// Chunk writes a node received over gRPC, alone or batched.
fn node_put_calls(text: &str) -> f64 {
    ["PutChunk", "PutChunks"]
        .iter()
        .map(|method| {
            value(
                text,
                "bigfs_rpc_requests_total",
                &[("service", "bigfs.v1.Node"), ("method", method)],
            )
        })
        .sum()
}

#[test]
fn metrics_pass_promtool_and_move_with_a_put() {
    let c = Cluster::builder(3).replication(3).start();
    for (name, text) in [("meta", c.meta_metrics()), ("node0", c.metrics(0))] {
        if let Err(e) = promtool_check(&text) {
            c.fail(&format!("{name}'s /metrics:\n{e}\n\n{text}"));
        }
        let commit = build_commit(&text);
        assert!(
            !commit.is_empty(),
            "{name}: no bigfs_build_info{{version,commit}} 1:\n{text}"
        );
    }

    let before = c.metrics(0);
    let meta_before = c.meta_metrics();
    let size = 3 * MIB + 100 * KIB;
    let data = pseudo_random(12, size);
    let local = c.write_local("data", &data);
    c.must_put(&local, "/observed");
    let after = c.metrics(0);
    let meta_after = c.meta_metrics();

    // R=3 on three nodes: node0 holds all four chunks.
    let grew = |name: &str| value(&after, name, &[]) - value(&before, name, &[]);
    assert_eq!(grew("bigfs_node_chunks"), 4.0, "{after}");
    assert_eq!(grew("bigfs_node_stored_bytes"), size as f64, "{after}");
    // A chunk whose put is retried (a slow node on a loaded machine) is written again.
    assert!(grew("bigfs_node_chunk_writes_total") >= 4.0, "{after}");
    assert!(grew("bigfs_node_chunk_written_bytes_total") >= size as f64);
    assert_eq!(
        value(&after, "bigfs_node_free_bytes", &[]),
        value(&after, "bigfs_node_capacity_bytes", &[])
            - value(&after, "bigfs_node_stored_bytes", &[])
    );
    assert!(
        node_put_calls(&after) > node_put_calls(&before),
        "no PutChunk(s) counted on node0:\n{after}"
    );
    let received = |text: &str| {
        value(
            text,
            "bigfs_rpc_received_bytes_total",
            &[("service", "bigfs.v1.Node")],
        )
    };
    assert!(
        received(&after) - received(&before) >= size as f64,
        "{after}"
    );
    let commits = |text: &str| {
        value(
            text,
            "bigfs_rpc_requests_total",
            &[("service", "bigfs.v1.Meta"), ("method", "CommitFile")],
        )
    };
    // One commit, or more when the first found a chunk short of copies and was retried.
    assert!(
        commits(&meta_after) - commits(&meta_before) >= 1.0,
        "{meta_after}"
    );

    // A read counts on the node that served it, a failed call by its code.
    let reads: f64 = (0..3)
        .map(|i| value(&c.metrics(i), "bigfs_node_chunk_reads_total", &[]))
        .sum();
    c.must(["get", "/observed", s(&c.root().join("work/copy"))]);
    let reads_after: f64 = (0..3)
        .map(|i| value(&c.metrics(i), "bigfs_node_chunk_reads_total", &[]))
        .sum();
    assert_eq!(reads_after - reads, 4.0);
    let out = c.bigfs(["stat", "/missing"]);
    assert!(!out.status.success());
    let not_found = value(
        &c.meta_metrics(),
        "bigfs_rpc_errors_total",
        &[("method", "GetFile"), ("code", "NotFound")],
    );
    assert!(not_found >= 1.0, "{}", c.meta_metrics());

    // The namespace gauges come from a background survey, a few seconds behind.
    c.wait_until(
        WAIT,
        "the metadata server counts the file and its chunks",
        || {
            let text = c.meta_metrics();
            value(&text, "bigfs_meta_files", &[]) == 1.0
                && value(&text, "bigfs_meta_chunks", &[]) == 4.0
        },
    );
    let text = c.meta_metrics();
    assert_eq!(value(&text, "bigfs_meta_nodes", &[("state", "alive")]), 3.0);
    assert!(value(&text, "bigfs_meta_flush_duration_seconds_count", &[]) >= 1.0);
    c.check_logs();
}

/// The commit label of `bigfs_build_info` (with value 1), or "" when absent.
fn build_commit(text: &str) -> String {
    text.lines()
        .find(|l| {
            l.starts_with("bigfs_build_info{") && l.ends_with(" 1") && l.contains("version=\"")
        })
        .and_then(|l| l.split("commit=\"").nth(1))
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_string()
}

#[test]
fn under_replicated_gauge_rises_with_a_dead_node_and_falls_after_repair() {
    let mut c = Cluster::builder(4)
        .replication(3)
        .heartbeat_timeout(Duration::from_secs(2))
        .start();
    // Node 3 is down while the file is written, so the file's chunks live on nodes 0-2 and a
    // lost copy has nowhere to go until node 3 is back: the gauge cannot miss the damage.
    c.kill_node(3);
    c.wait_node_state(3, "dead", WAIT);
    let data = pseudo_random(13, 2 * MIB + 5);
    c.must_put_bytes("/r", &data);
    let gauge = |c: &Cluster, name: &str| value(&c.meta_metrics(), name, &[]);
    c.wait_until(WAIT, "3 chunks counted, none under-replicated", || {
        gauge(&c, "bigfs_meta_chunks") == 3.0
            && gauge(&c, "bigfs_meta_chunks_under_replicated") == 0.0
    });

    c.kill_node(0);
    c.wait_until(WAIT, "all 3 chunks under-replicated", || {
        gauge(&c, "bigfs_meta_chunks_under_replicated") == 3.0
    });
    let text = c.meta_metrics();
    assert_eq!(
        value(&text, "bigfs_meta_nodes", &[("state", "dead")]),
        2.0,
        "{text}"
    );
    assert_eq!(
        value(&text, "bigfs_meta_chunks_missing", &[]),
        0.0,
        "{text}"
    );

    c.restart_node(3);
    c.wait_until(WAIT, "repair brings under-replicated back to 0", || {
        gauge(&c, "bigfs_meta_chunks_under_replicated") == 0.0
    });
    // Three copies at least (a copy that timed out is ordered again); the senders count theirs
    // when the copy is done, which may come after the target has reported it.
    let copies = || {
        let received = value(
            &c.metrics(3),
            "bigfs_node_repair_copies_received_total",
            &[],
        );
        let sent: f64 = [1, 2]
            .iter()
            .map(|&i| value(&c.metrics(i), "bigfs_node_repair_copies_sent_total", &[]))
            .sum();
        (received, sent)
    };
    c.wait_until(WAIT, "three repair copies sent and received", || {
        let (received, sent) = copies();
        received >= 3.0 && sent >= 3.0
    });
    c.check_logs();
}

/// `/readyz` of the HTTP listener on `port`: status and body.
fn readyz(c: &Cluster, port: u16) -> (u16, String) {
    let reply = http_get(port, "/readyz").unwrap_or_else(|e| c.fail(&e));
    (reply.status, reply.body.trim().to_string())
}

#[track_caller]
fn assert_live(c: &Cluster, port: u16) {
    let reply = http_get(port, "/healthz").unwrap_or_else(|e| c.fail(&e));
    assert_eq!((reply.status, reply.body.trim()), (200, "ok"));
}

#[test]
fn safe_mode_is_not_serving_not_ready_and_a_gauge() {
    let mut c = Cluster::builder(3)
        .safe_mode_timeout(Duration::from_secs(120))
        .start();
    let port = c.meta_http_port();
    assert_eq!(c.meta_grpc_health(), Ok(ServingStatus::Serving));
    assert_eq!(readyz(&c, port), (200, "ready".to_string()));
    assert_live(&c, port);
    assert_eq!(value(&c.meta_metrics(), "bigfs_meta_safe_mode", &[]), 0.0);

    // Restarted with node 2 down, the metadata server waits for node 2's report.
    c.kill_node(2);
    c.restart_meta();
    assert_eq!(value(&c.meta_metrics(), "bigfs_meta_safe_mode", &[]), 1.0);
    assert_eq!(c.meta_grpc_health(), Ok(ServingStatus::NotServing));
    let service = bigfs_tests::observe::grpc_health(&c.meta_url(), "bigfs.v1.Meta");
    assert_eq!(service, Ok(ServingStatus::NotServing));
    let (status, reason) = readyz(&c, port);
    assert_eq!(status, 503, "{reason}");
    assert!(
        reason.contains("safe mode") && reason.contains(c.node_id(2)),
        "/readyz during safe mode: {reason:?}"
    );
    assert_live(&c, port);

    c.restart_node(2);
    c.wait_until(WAIT, "the metadata server is SERVING again", || {
        c.meta_grpc_health() == Ok(ServingStatus::Serving)
    });
    assert_eq!(readyz(&c, port), (200, "ready".to_string()));
    assert_eq!(value(&c.meta_metrics(), "bigfs_meta_safe_mode", &[]), 0.0);
    c.check_logs();
}

#[test]
fn a_draining_node_is_not_serving_until_undrained() {
    let c = Cluster::builder(3).replication(2).start();
    let port = c.node_http_port(1);
    assert_eq!(c.node_grpc_health(1), Ok(ServingStatus::Serving));
    assert_eq!(readyz(&c, port), (200, "ready".to_string()));

    c.drain_node(1);
    c.wait_until(WAIT, "the draining node says NOT_SERVING", || {
        c.node_grpc_health(1) == Ok(ServingStatus::NotServing)
    });
    let (status, reason) = readyz(&c, port);
    assert_eq!(status, 503, "{reason}");
    assert!(
        reason.contains("draining"),
        "/readyz while draining: {reason:?}"
    );
    assert_live(&c, port);
    assert_eq!(c.node_grpc_health(0), Ok(ServingStatus::Serving));

    c.must(["node", "undrain", c.node_id(1)]);
    c.wait_until(WAIT, "the undrained node says SERVING", || {
        c.node_grpc_health(1) == Ok(ServingStatus::Serving)
    });
    assert_eq!(readyz(&c, port), (200, "ready".to_string()));
    c.check_logs();
}

#[test]
fn json_logs_are_one_object_per_line_with_request_spans() {
    let c = Cluster::builder(2)
        .replication(2)
        .meta_args(&["--log-format", "json"])
        .all_node_args(&["--log-format", "json"])
        .start();
    c.must_put_bytes("/j", &pseudo_random(14, MIB + 1));
    let out = c.bigfs(["get", "/nothing-here", "-"]);
    assert!(!out.status.success());

    let mut spans = Vec::new();
    for (name, log) in [
        ("meta", c.meta_log()),
        ("node0", c.node_log(0)),
        ("node1", c.node_log(1)),
    ] {
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| !l.starts_with("=== bigfs-tests:") && !l.is_empty())
            .collect();
        assert!(!lines.is_empty(), "{name} logged nothing");
        for line in lines {
            let event: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| c.fail(&format!("{name} log line is not JSON ({e}): {line}")));
            assert!(
                event["level"].is_string() && event["fields"]["message"].is_string(),
                "{name} log line without level or message: {line}"
            );
            if let Some(span) = event.get("span") {
                spans.push(span.clone());
            }
        }
    }
    // The metadata server logs each registration inside its request's span, which names the
    // method and the node.
    assert!(
        spans.iter().any(|span| {
            span["name"] == "rpc"
                && span["method"] == "/bigfs.v1.Meta/RegisterNode"
                && span["node"] == c.node_id(0)
        }),
        "no RegisterNode span naming {} among {spans:?}",
        c.node_id(0)
    );
    c.check_logs();
}

#[test]
fn the_gateway_counts_its_requests_and_is_ready_while_the_metadata_server_answers() {
    let mut c = Cluster::start(3);
    let gateway = bigfs_tests::Gateway::start(&c);
    let port = gateway.http_port();
    c.wait_until(WAIT, "the gateway is ready", || readyz(&c, port).0 == 200);
    assert_live(&c, port);
    c.must_put_bytes("/g/file", &pseudo_random(9, 300 * KIB));
    let console = gateway.url();
    for path in [
        "/api/list?path=/g",
        "/api/download?path=/g/file",
        "/api/list?path=/nope",
    ] {
        bigfs_tests::http_get(&format!("{console}{path}"));
    }
    let text = http_get(port, "/metrics")
        .unwrap_or_else(|e| c.fail(&e))
        .body;
    promtool_check(&text).unwrap_or_else(|e| c.fail(&e));
    let requests = |status: &str| {
        value(
            &text,
            "bigfs_gateway_http_requests_total",
            &[("door", "console"), ("method", "GET"), ("status", status)],
        )
    };
    assert_eq!((requests("200"), requests("404")), (2.0, 1.0), "{text}");
    let sent = value(
        &text,
        "bigfs_gateway_http_sent_bytes_total",
        &[("door", "console")],
    );
    assert!(sent >= (300 * KIB) as f64, "bytes sent {sent}: {text}");

    // Without a metadata server the gateway can serve nothing: not ready, still alive.
    c.kill_meta();
    c.wait_until(WAIT, "the gateway is not ready", || {
        readyz(&c, port).0 == 503
    });
    let (_, reason) = readyz(&c, port);
    assert!(reason.contains("metadata server"), "/readyz: {reason:?}");
    assert_live(&c, port);
    c.restart_meta();
    c.wait_until(WAIT, "the gateway is ready again", || {
        readyz(&c, port).0 == 200
    });
    c.check_logs();
}
