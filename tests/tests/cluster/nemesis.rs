//! Randomized fault injection (a "nemesis", after Jepsen): a workload of puts, overwrites, gets
//! and rms runs against a 5-node cluster (R=3, W=2) while the test's thread kills, freezes and
//! restarts storage nodes, damages chunk files and restarts the metadata server at random.
//!
//! Environment:
//! - `BIGFS_NEMESIS_SECS`: how long faults are injected, in seconds (default 45). The test takes
//!   about 30 s more: start-up, the final healing and the final checks.
//! - `BIGFS_NEMESIS_SEED`: the seed of every random choice (default: taken from the clock). The
//!   test prints `nemesis seed: N` first, so a failure is replayed with `BIGFS_NEMESIS_SEED=N`
//!   (the same choices in the same order; process timing still varies).
//!
//! Every fault step is printed (`nemesis +12.34s: …`), so a failure can be read as a story.
//!
//! What is checked:
//! - A successful get never returns wrong bytes: every one is compared with the model
//!   ([`ContentModel`]) of what the path may hold. A put that exited 0 is acknowledged and
//!   must read back exactly; a put that failed leaves the old or the new content (or nothing for
//!   a new path), tracked as an explicit ambiguity; an rm likewise.
//! - After each fault step the workload reads back every file (a "sweep"). A get may fail only
//!   when the fault log explains it (see [`Workload::explain`]): the metadata server was
//!   restarting, or some chunk of every content the path may hold had no good copy on disk on a
//!   node that stayed up and unfrozen during the get (the nemesis keeps at most 2 of 5 nodes
//!   impaired, so W=2 stays reachable, but a chunk acknowledged with 2 copies can have both on
//!   impaired nodes). An unexplained failure is retried once after a heartbeat timeout: if that
//!   succeeds with the right bytes it is reported as a transient failure (the cluster may lag a
//!   heartbeat behind a copy it just made), otherwise the test fails.
//! - At the end, with every node resumed and restarted, the cluster must heal: fsck
//!   `healthy == chunks`, nothing missing or corrupt; then every file must read back with no
//!   failure allowed, every chunk must have exactly 3 good copies on disk, and the chunks of
//!   removed, overwritten and failed puts must be collected.

use std::collections::{BTreeMap, BTreeSet};
use std::env;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bigfs_tests::{
    distinct_chunks, expected_chunks, pseudo_random, CliRunner, Cluster, ContentModel, Damage,
    NodeDisks, Rng, KIB,
};

const NODES: usize = 5;
/// Nodes killed or frozen at once, at most: W=2 of the 3 others is always reachable.
const MAX_IMPAIRED: usize = 2;
const CHUNK: usize = 64 * KIB;
/// Files the workload keeps at most (more puts then overwrite instead of adding).
const MAX_FILES: usize = 10;
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long after a fault ends a failed get may still be blamed on it (a node that comes back
/// is listed again only once it has re-registered).
const SETTLE: Duration = Duration::from_secs(4);
/// The limit of one CLI command of the workload.
const OP_TIMEOUT: Duration = Duration::from_secs(90);

/// When each fault was in effect, written by the test's thread and read by the workload to
/// judge failed gets.
#[derive(Debug)]
struct FaultLog {
    /// Per node: the intervals it was killed or frozen (`None`: still is).
    impaired: Vec<Vec<(Instant, Option<Instant>)>>,
    /// Metadata server restarts, from the kill until it was serving again.
    meta_down: Vec<(Instant, Option<Instant>)>,
    /// Chunk files damaged behind a node's back: (node, chunk id, when).
    damaged: Vec<(usize, String, Instant)>,
}

fn overlaps(interval: &(Instant, Option<Instant>), from: Instant, to: Instant) -> bool {
    interval.0 <= to && interval.1.is_none_or(|end| end >= from)
}

impl FaultLog {
    fn new(nodes: usize) -> Self {
        Self {
            impaired: vec![Vec::new(); nodes],
            meta_down: Vec::new(),
            damaged: Vec::new(),
        }
    }

    fn start_impaired(&mut self, node: usize) {
        self.impaired[node].push((Instant::now(), None));
    }

    fn end_impaired(&mut self, node: usize) {
        if let Some(last) = self.impaired[node].last_mut() {
            last.1.get_or_insert_with(Instant::now);
        }
    }

    fn impaired_during(&self, from: Instant, to: Instant) -> BTreeSet<usize> {
        (0..self.impaired.len())
            .filter(|&n| self.impaired[n].iter().any(|iv| overlaps(iv, from, to)))
            .collect()
    }

    fn meta_down_during(&self, from: Instant, to: Instant) -> bool {
        self.meta_down.iter().any(|iv| overlaps(iv, from, to))
    }

    fn damaged_during(&self, node: usize, id: &str, from: Instant, to: Instant) -> bool {
        self.damaged
            .iter()
            .any(|(n, d, at)| *n == node && d == id && *at >= from && *at <= to)
    }
}

/// What the test's thread and the workload share.
struct Shared {
    faults: Mutex<FaultLog>,
    stop: AtomicBool,
    sweeps_requested: AtomicU64,
    sweeps_done: AtomicU64,
}

#[derive(Debug, Default)]
struct Stats {
    puts_ok: u32,
    puts_failed: u32,
    rms_ok: u32,
    rms_failed: u32,
    gets_ok: u32,
    gets_failed_explained: u32,
    gets_failed_transient: u32,
    sweeps: u32,
}

/// The workload, run in its own thread: it owns the model, so its own gets are checked against
/// exactly the operations that preceded them.
struct Workload {
    cli: CliRunner,
    disks: NodeDisks,
    shared: Arc<Shared>,
    rng: Rng,
    model: ContentModel,
    next_file: u32,
    stats: Stats,
    violations: Vec<String>,
    started: Instant,
}

impl Workload {
    fn run(mut self) -> Self {
        while !self.shared.stop.load(Ordering::SeqCst) {
            let wanted = self.shared.sweeps_requested.load(Ordering::SeqCst);
            if wanted > self.shared.sweeps_done.load(Ordering::SeqCst) {
                for path in self.live_paths() {
                    self.check(&path);
                }
                self.stats.sweeps += 1;
                self.shared.sweeps_done.store(wanted, Ordering::SeqCst);
            } else {
                self.step();
            }
        }
        self
    }

    /// Paths that may exist.
    fn live_paths(&self) -> Vec<String> {
        self.model
            .paths()
            .filter(|(path, _)| self.model.may_exist(path))
            .map(|(path, _)| path.clone())
            .collect()
    }

    fn step(&mut self) {
        let live = self.live_paths();
        let roll = self.rng.below(100);
        let existing = self.rng.pick(&live).cloned();
        match existing {
            Some(path) if roll >= 35 || live.len() >= MAX_FILES => match roll {
                0..=59 => self.put(&path, true),
                60..=89 => self.check(&path),
                _ => self.rm(&path),
            },
            _ => {
                let path = format!("/nemesis/f{:03}", self.next_file);
                self.next_file += 1;
                self.put(&path, false);
            }
        }
    }

    fn put(&mut self, path: &str, force: bool) {
        let len = self.rng.below((3 * CHUNK + CHUNK / 2 + 1) as u64) as usize;
        let data = Arc::new(pseudo_random(self.rng.next_u64(), len));
        let extra: &[&str] = if force { &["--force"] } else { &[] };
        match self.cli.put_bytes(path, &data, extra, OP_TIMEOUT) {
            Ok(out) if out.status.success() => {
                self.model.put_acked(path, data);
                self.stats.puts_ok += 1;
            }
            _ => {
                self.model.put_failed(path, data);
                self.stats.puts_failed += 1;
            }
        }
    }

    fn rm(&mut self, path: &str) {
        match self.cli.run(["rm", path], OP_TIMEOUT) {
            Ok(out) if out.status.success() => {
                self.model.rm_acked(path);
                self.stats.rms_ok += 1;
            }
            _ => {
                self.model.rm_failed(path);
                self.stats.rms_failed += 1;
            }
        }
    }

    /// Reads `path` back and judges the outcome against the model and the fault log.
    fn check(&mut self, path: &str) {
        let started = Instant::now();
        let err = match self.cli.get_bytes(path, OP_TIMEOUT) {
            Ok(got) => return self.judge_bytes(path, &got),
            Err(err) => err,
        };
        if self.model.may_be_absent(path) {
            return; // Failing is right if the path does not exist (a failed put or an rm).
        }
        if self.explain(path, started).is_some() {
            self.stats.gets_failed_explained += 1;
            return;
        }
        thread::sleep(HEARTBEAT_TIMEOUT);
        match self.cli.get_bytes(path, OP_TIMEOUT) {
            Ok(got) => {
                self.judge_bytes(path, &got);
                self.stats.gets_failed_transient += 1;
                eprintln!(
                    "nemesis +{:.2}s: transient get failure of {path} (retry succeeded): {}",
                    self.started.elapsed().as_secs_f64(),
                    one_line(&err)
                );
            }
            Err(err2) => match self.explain(path, started) {
                Some(_) => self.stats.gets_failed_explained += 1,
                None => self.violation(format!(
                    "get of {path} failed twice although every chunk had a good copy on a node \
                     that was up all along: {} / retry: {}",
                    one_line(&err),
                    one_line(&err2)
                )),
            },
        }
    }

    fn judge_bytes(&mut self, path: &str, got: &[u8]) {
        if self.model.accepts(path, got) {
            self.stats.gets_ok += 1;
        } else {
            let msg = format!(
                "get of {path} returned {} bytes ({}), none of the acceptable states: {}",
                got.len(),
                &blake3::hash(got).to_hex()[..12],
                self.model.describe(path)
            );
            self.violation(msg);
        }
    }

    /// Why a get of `path` started at `started` may legitimately have failed, if it may: the
    /// metadata server was down or restarting around it, or for some content the path may
    /// hold, some chunk has no good copy on disk on a node that was neither impaired nor had
    /// that copy damaged from `SETTLE` before the get until now.
    fn explain(&self, path: &str, started: Instant) -> Option<String> {
        let faults = self.shared.faults.lock().expect("fault log");
        let from = started.checked_sub(SETTLE).unwrap_or(started);
        let to = Instant::now();
        if faults.meta_down_during(from, to) {
            return Some("the metadata server restarted".to_string());
        }
        let impaired = faults.impaired_during(from, to);
        for data in self.model.states(path).into_iter().flatten() {
            for (id, _) in expected_chunks(&data, CHUNK) {
                let good = self
                    .disks
                    .good_copies(&id)
                    .into_iter()
                    .filter(|n| !impaired.contains(n) && !faults.damaged_during(*n, &id, from, to))
                    .count();
                if good == 0 {
                    return Some(format!("chunk {id} has no good copy on a node that was up"));
                }
            }
        }
        None
    }

    fn violation(&mut self, msg: String) {
        eprintln!(
            "nemesis +{:.2}s: VIOLATION: {msg}",
            self.started.elapsed().as_secs_f64()
        );
        self.violations.push(msg);
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The fault injector, driven from the test's thread (which owns the server processes).
struct Nemesis {
    rng: Rng,
    shared: Arc<Shared>,
    killed: BTreeSet<usize>,
    /// Frozen nodes and when to resume them.
    paused: BTreeMap<usize, Instant>,
    started: Instant,
    steps: u32,
}

impl Nemesis {
    fn log(&self, what: &str) {
        eprintln!(
            "nemesis +{:.2}s: {what}",
            self.started.elapsed().as_secs_f64()
        );
    }

    fn faults(&self) -> std::sync::MutexGuard<'_, FaultLog> {
        self.shared.faults.lock().expect("fault log")
    }

    fn resume_due(&mut self, c: &Cluster) {
        let now = Instant::now();
        let due: Vec<usize> = self
            .paused
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(n, _)| *n)
            .collect();
        for node in due {
            self.resume(c, node);
        }
    }

    fn resume(&mut self, c: &Cluster, node: usize) {
        c.resume_node(node);
        self.paused.remove(&node);
        self.faults().end_impaired(node);
        self.log(&format!("SIGCONT {}", c.node_id(node)));
    }

    fn restart(&mut self, c: &mut Cluster, node: usize) {
        c.restart_node(node);
        self.killed.remove(&node);
        self.faults().end_impaired(node);
        self.log(&format!("restarted {}", c.node_id(node)));
    }

    /// Waits `d`, resuming frozen nodes when their time comes.
    fn pause_for(&mut self, c: &Cluster, d: Duration) {
        let until = Instant::now() + d;
        while Instant::now() < until {
            self.resume_due(c);
            thread::sleep(Duration::from_millis(50).min(until - Instant::now()));
        }
    }

    /// One random fault.
    fn step(&mut self, c: &mut Cluster) {
        self.steps += 1;
        let impaired = self.killed.len() + self.paused.len();
        let healthy: Vec<usize> = (0..NODES)
            .filter(|n| !self.killed.contains(n) && !self.paused.contains_key(n))
            .collect();
        let roll = self.rng.below(100);
        match roll {
            0..=19 if impaired < MAX_IMPAIRED => {
                let node = *self.rng.pick(&healthy).expect("a healthy node");
                c.kill_node(node);
                self.killed.insert(node);
                self.faults().start_impaired(node);
                self.log(&format!("SIGKILL {}", c.node_id(node)));
            }
            20..=39 if impaired < MAX_IMPAIRED => {
                let node = *self.rng.pick(&healthy).expect("a healthy node");
                let for_ms = self.rng.between(500, 4000);
                c.pause_node(node);
                self.paused
                    .insert(node, Instant::now() + Duration::from_millis(for_ms));
                self.faults().start_impaired(node);
                self.log(&format!("SIGSTOP {} for {for_ms} ms", c.node_id(node)));
            }
            40..=59 if !self.killed.is_empty() => {
                let killed: Vec<usize> = self.killed.iter().copied().collect();
                let node = *self.rng.pick(&killed).expect("a killed node");
                self.restart(c, node);
            }
            60..=87 => self.damage(c),
            88..=99 => {
                let down = Instant::now();
                self.faults().meta_down.push((down, None));
                self.log("kill -9 and restart the metadata server");
                c.restart_meta();
                if let Some(last) = self.faults().meta_down.last_mut() {
                    last.1 = Some(Instant::now());
                }
                self.log("metadata server back");
            }
            // The fault drawn is not possible now (too many impaired, none killed): heal one.
            _ => {
                if let Some(&node) = self.killed.iter().next() {
                    self.restart(c, node);
                } else if let Some(&node) = self.paused.keys().next() {
                    self.resume(c, node);
                } else {
                    self.damage(c);
                }
            }
        }
    }

    /// Flips a bit in, truncates or deletes a random chunk file of a random node, provided two
    /// other good copies of that chunk remain on disk, so no chunk is ever lost for good.
    fn damage(&mut self, c: &Cluster) {
        let node = self.rng.below(NODES as u64) as usize;
        let ids: Vec<String> = c.disk_chunk_ids(node).into_iter().collect();
        let Some(id) = self.rng.pick(&ids).cloned() else {
            return self.log(&format!("{} has no chunk file to damage", c.node_id(node)));
        };
        let others = c
            .good_copies(&id)
            .into_iter()
            .filter(|&n| n != node)
            .count();
        if others < 2 || !c.has_good_copy(node, &id) {
            return self.log(&format!(
                "spare chunk {} on {}: only {others} other good copies",
                &id[..12],
                c.node_id(node)
            ));
        }
        let (damage, how) = match self.rng.below(3) {
            0 => (Damage::FlipBit, "flipped a bit in"),
            1 => (Damage::Truncate, "truncated"),
            _ => (Damage::Delete, "deleted"),
        };
        if !c.damage_unless_gone(node, &id, damage) {
            return self.log(&format!(
                "chunk {} left {} before it could be damaged",
                &id[..12],
                c.node_id(node)
            ));
        }
        self.faults()
            .damaged
            .push((node, id.clone(), Instant::now()));
        self.log(&format!("{how} chunk {} on {}", &id[..12], c.node_id(node)));
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let raw = env::var(name).ok()?;
    Some(
        raw.trim()
            .parse()
            .unwrap_or_else(|e| panic!("{name}={raw:?} is not a number: {e}")),
    )
}

#[test]
fn nemesis() {
    let secs = env_u64("BIGFS_NEMESIS_SECS").unwrap_or(45);
    let seed = env_u64("BIGFS_NEMESIS_SEED").unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    eprintln!("nemesis seed: {seed} (replay: BIGFS_NEMESIS_SEED={seed} BIGFS_NEMESIS_SECS={secs})");

    let grace = Duration::from_secs(2);
    let mut c = Cluster::builder(NODES)
        .replication(3)
        .min_replicas(2)
        .chunk_size(CHUNK as u64)
        .heartbeat_timeout(HEARTBEAT_TIMEOUT)
        .gc_grace(grace)
        .write_lease(grace)
        .safe_mode_timeout(Duration::from_secs(3))
        .scrub_interval(Duration::from_secs(2))
        .start();
    let shared = Arc::new(Shared {
        faults: Mutex::new(FaultLog::new(NODES)),
        stop: AtomicBool::new(false),
        sweeps_requested: AtomicU64::new(0),
        sweeps_done: AtomicU64::new(0),
    });
    let started = Instant::now();
    let workload = Workload {
        cli: c.cli(),
        disks: c.disks(),
        shared: Arc::clone(&shared),
        rng: Rng::new(seed ^ 0xA5A5_5A5A_0F0F_F0F0),
        model: ContentModel::new(),
        next_file: 0,
        stats: Stats::default(),
        violations: Vec::new(),
        started,
    };
    let worker = thread::spawn(move || workload.run());
    let mut nemesis = Nemesis {
        rng: Rng::new(seed),
        shared: Arc::clone(&shared),
        killed: BTreeSet::new(),
        paused: BTreeMap::new(),
        started,
        steps: 0,
    };

    // Let the workload create some files first.
    nemesis.pause_for(&c, Duration::from_secs(2));
    while started.elapsed() < Duration::from_secs(secs) && !worker.is_finished() {
        nemesis.step(&mut c);
        // The checker: after each fault, the workload reads every file back (a sweep).
        let wanted = shared.sweeps_requested.fetch_add(1, Ordering::SeqCst) + 1;
        let sweep_started = Instant::now();
        while shared.sweeps_done.load(Ordering::SeqCst) < wanted && !worker.is_finished() {
            if sweep_started.elapsed() > Duration::from_secs(180) {
                c.fail("the workload has not finished a sweep of reads in 180 s");
            }
            nemesis.pause_for(&c, Duration::from_millis(100));
        }
        let gap = Duration::from_millis(nemesis.rng.between(500, 1500));
        nemesis.pause_for(&c, gap);
    }

    // Everything comes back; the workload stops.
    for node in nemesis.paused.keys().copied().collect::<Vec<_>>() {
        nemesis.resume(&c, node);
    }
    for node in nemesis.killed.iter().copied().collect::<Vec<_>>() {
        nemesis.restart(&mut c, node);
    }
    shared.stop.store(true, Ordering::SeqCst);
    let workload = match worker.join() {
        Ok(w) => w,
        Err(panic) => std::panic::resume_unwind(panic),
    };
    c.wait_ready();
    let faults_ended = Instant::now();
    eprintln!(
        "nemesis: {} fault steps in {:.1?}; workload {:?}",
        nemesis.steps,
        started.elapsed(),
        workload.stats
    );
    if !workload.violations.is_empty() {
        c.fail(&format!(
            "nemesis seed {seed}: {} violations:\n{}",
            workload.violations.len(),
            workload.violations.join("\n")
        ));
    }

    // The cluster heals by itself.
    let (fsck, _) = c.wait_healthy(Duration::from_secs(120));
    let healed = faults_ended.elapsed();

    // Then every file reads back, with no failure allowed.
    let model = &workload.model;
    let cli = c.cli();
    let mut files = Vec::new();
    let mut problems = Vec::new();
    for (path, _) in model.paths() {
        match cli.get_bytes(path, OP_TIMEOUT) {
            Ok(got) if model.accepts(path, &got) => files.push((path.clone(), got)),
            Ok(got) => problems.push(format!(
                "{path} holds {} bytes, none of: {}",
                got.len(),
                model.describe(path)
            )),
            // Absent is fine if the path may be absent, but then it must really be absent.
            Err(err) if model.may_be_absent(path) => {
                let stat = c.bigfs(["stat", path.as_str()]);
                if stat.status.success() {
                    problems.push(format!(
                        "{path} exists but cannot be read after healing: {}",
                        one_line(&err)
                    ));
                }
            }
            Err(err) => problems.push(format!(
                "{path} ({}) cannot be read after healing: {}",
                model.describe(path),
                one_line(&err)
            )),
        }
    }
    if !problems.is_empty() {
        c.fail(&format!(
            "nemesis seed {seed}: after healing:\n{}",
            problems.join("\n")
        ));
    }
    // Exactly R good copies of every chunk still referenced, and nothing else on the disks
    // once the garbage is collected (an empty file may keep an empty chunk).
    let referenced = distinct_chunks(files.iter().map(|(_, d)| &d[..]), CHUNK);
    let empty = blake3::hash(b"").to_hex().to_string();
    c.wait_for(
        Duration::from_secs(60),
        "every file has 3 good copies and the garbage is collected",
        || {
            c.check_all_placed(&files, 3, &[]).err().or_else(|| {
                let on_disk: BTreeSet<String> =
                    (0..NODES).flat_map(|i| c.disk_chunk_ids(i)).collect();
                on_disk
                    .iter()
                    .find(|id| !referenced.contains_key(*id) && **id != empty)
                    .map(|id| format!("unreferenced chunk {id} is still on disk"))
                    .or_else(|| {
                        referenced.keys().find_map(|id| {
                            let n = c.good_copies(id).len();
                            (n != 3).then(|| format!("chunk {id} has {n} good copies on disk"))
                        })
                    })
            })
        },
    );
    eprintln!(
        "nemesis: seed {seed}, {secs} s of faults; healed {healed:.1?} after the last fault \
         (fsck {fsck}); {} files checked",
        files.len()
    );
    c.check_logs();
}
