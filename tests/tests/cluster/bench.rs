//! The benchmark commands run end to end at a small scale: every operation they count really
//! happened (the files are there, each read was verified and had the size put). Their figures
//! are not checked here: performance lives in benchmarks, not in timed tests.

use bigfs_tests::observe::metric;
use bigfs_tests::Cluster;

/// Calls of metadata method `method` between two scrapes of its metrics.
fn meta_calls(before: &str, after: &str, method: &str) -> f64 {
    let calls =
        |text| metric(text, "bigfs_rpc_requests_total", &[("method", method)]).unwrap_or(0.0);
    calls(after) - calls(before)
}

#[test]
fn bench_small_and_load_count_what_they_did() {
    let c = Cluster::start(3);
    let before = c.meta_metrics();
    let small = c.must_json([
        "bench", "small", "--files", "40", "--size", "3KiB", "-c", "8", "--root", "/bs", "--json",
    ]);
    let after = c.meta_metrics();
    // One client's small puts: the path's check and the cluster's settings ride on the first
    // placement call, so a put is one AllocateChunks and one commit (plus, for the first puts
    // in flight, one AllocateChunks that learns the settings). Commits made at the same time
    // share a CommitFiles call, as the reads' lookups share a GetFiles call: never more calls
    // than files.
    let calls = |method| meta_calls(&before, &after, method);
    assert_eq!((calls("CheckCreate"), calls("ClusterInfo")), (0.0, 0.0));
    let commits = calls("CommitFile") + calls("CommitFiles");
    let lookups = calls("GetFile") + calls("GetFiles");
    assert!((1.0..=40.0).contains(&commits), "{after}");
    assert!((1.0..=40.0).contains(&lookups), "{after}");
    assert!(calls("AllocateChunks") <= 40.0 + 8.0, "{after}");
    // Commits that arrive together share a transaction and a flush (group commit): never
    // more flushes than changes that waited for one.
    let counter = |name| metric(&after, name, &[]).unwrap_or(0.0);
    let (flushes, waits) = (
        counter("bigfs_meta_flushes_total"),
        counter("bigfs_meta_flush_requests_total"),
    );
    assert!(
        flushes <= waits && waits >= 1.0,
        "{flushes} flushes, {waits} waits"
    );

    // A CLI put of a small file, a fresh client: one AllocateChunks for the path's check and
    // the settings, one for the chunk's placement, the commit. A CLI get: one lookup.
    let before = c.meta_metrics();
    c.must_put_bytes("/one", b"one small file");
    assert_eq!(c.must_get("/one"), b"one small file");
    let after = c.meta_metrics();
    let calls = |method| meta_calls(&before, &after, method);
    let counted = [
        "AllocateChunks",
        "CommitFile",
        "GetFile",
        "CheckCreate",
        "ClusterInfo",
    ]
    .map(calls);
    assert_eq!(counted, [2.0, 1.0, 1.0, 0.0, 0.0], "{after}");
    assert_eq!(small["write"]["ops"], 40, "{small}");
    assert_eq!(small["read"]["ops"], 40, "{small}");
    assert_eq!(small["read"]["bytes"], 40 * 3 * 1024, "{small}");
    assert!(small["write"]["p99_ms"].as_f64() >= small["write"]["p50_ms"].as_f64());
    let du = c.must_json(["du", "-s", "/bs", "--json"]);
    assert_eq!(
        (&du[0]["files"], &du[0]["bytes"]),
        (&40.into(), &(40 * 3 * 1024).into())
    );

    let load = c.must_json([
        "bench",
        "load",
        "--clients",
        "1,3",
        "--big-size",
        "2MiB",
        "--small-files",
        "4",
        "--small-size",
        "5KiB",
        "--root",
        "/bl",
        "--json",
    ]);
    let rounds = load.as_array().expect("one object per round");
    assert_eq!(rounds.len(), 2, "{load}");
    for (round, clients) in rounds.iter().zip([1u64, 3]) {
        assert_eq!(round["clients"], clients, "{round}");
        assert_eq!(
            round["big_get"]["bytes"],
            clients * 2 * 1024 * 1024,
            "{round}"
        );
        assert_eq!(round["small_get"]["ops"], clients * 4, "{round}");
    }
    // A root that exists is refused: a benchmark writes only its own files.
    let out = c.bigfs(["bench", "small", "--files", "1", "--root", "/bs"]);
    c.assert_failed(&out, "bench over an existing root", &["/bs", "--root"]);
    c.check_logs();
}
