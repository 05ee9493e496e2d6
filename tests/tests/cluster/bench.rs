//! The benchmark commands run end to end at a small scale: every operation they count really
//! happened (the files are there, each read was verified and had the size put). Their figures
//! are not checked here: performance lives in benchmarks, not in timed tests.

use bigfs_tests::Cluster;

#[test]
fn bench_small_and_load_count_what_they_did() {
    let c = Cluster::start(3);
    let small = c.must_json([
        "bench", "small", "--files", "40", "--size", "3KiB", "-c", "8", "--root", "/bs", "--json",
    ]);
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
