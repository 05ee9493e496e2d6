#!/usr/bin/env bash
# The S3 benchmark of issue 13: BigFS's S3 gateway, BigFS's own CLI and SeaweedFS's S3
# gateway, the same workloads in one invocation, runs alternating. Run `scripts/bench-s3.sh --help`.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
SHARED=${BIGFS_SHARED_BENCH:-$REPO/../shared/bench}
PROG=$(basename "$0")

usage() {
    cat <<EOF
Usage: $PROG [OPTIONS]

Times, per run, on three systems one after the other (the order turns each run):
  bigfs-s3   BigFS's S3 gateway (scripts/cluster.sh up: 1 metadata server, 3 nodes, the
             gateway with its defaults), driven by boto3 (scripts/bench_s3.py)
  bigfs-cli  the same BigFS cluster through the bigfs CLI (put/get, put -r/get -r)
  seaweedfs  SeaweedFS's S3 gateway (\$BIGFS_SHARED_BENCH/seaweedfs-peer.sh start
             --replication R), driven by the same boto3 code
Both clusters keep R copies (BigFS --replication R --min-replicas min(R,2)) and run for the
whole invocation, on 127.0.0.1, data under /tmp; source data is random, in /dev/shm, fresh
for every system and run (nothing deduplicates against an earlier write).

Figures (each system, each run; medians and min-max at the end):
  put_1      MiB/s    one client uploads one big object (boto3 upload_file: 8 MiB parts,
                      10 at once; bigfs put)
  get_1      MiB/s    page cache dropped, one client downloads it to nowhere
  put_C      MiB/s    C clients at once (C processes), C distinct big objects, total bytes
                      over the time from the first start to the last end
  get_C      MiB/s    page cache dropped, C clients download them at once
  small_put  files/s  F files of K KiB: put_object from a pool of T threads (bigfs put -r)
  small_get  files/s  page cache dropped, get_object of each from T threads into /dev/shm
                      (bigfs get -r)
                      With --small-client rclone: 'rclone copy' of the directory up and down
                      with --transfers T instead of boto3 (a Go client: boto3 spends about
                      3 ms of Python per object, which bounds both S3 sides on 2 cores)
  STEP_gw    cpu-s/GiB  the S3 gateway process's CPU seconds (utime + stime from
                      /proc/PID/stat) per GiB moved, for the big steps; bigfs-gateway and
                      weed s3 (the SeaweedFS gateway alone, not its filer or volumes)
  STEP_cpu   cpu-s    the whole machine's busy CPU seconds during the step
Checks (untimed): the SHA-256 of one object of each big step read back, and every small
file compared with its source; a mismatch fails the run (exit 1).

Options:
  --runs N          runs (default 3)
  --size-mib M      size of each big object, MiB (default 1024)
  --clients C       clients at once for put_C/get_C (default 8)
  --files F         small files (default 2000)
  --file-kib K      size of each small file, KiB (default 64)
  --threads T       threads of the small-file client (default 16)
  --small-client C  boto3 (default) or rclone, for the small files on both S3 sides
  --replication R   copies kept by both systems, 1..3 (default 2)
  --base-port P     BigFS metadata server port (nodes P+1.., gateway S3 on P+81, HTTP on
                    P+100..; default 24600)
  --sw-port P       first of SeaweedFS's 28 ports (default 28333)
  --no-peer         leave SeaweedFS out
  --no-build        use the release binaries already built
  --out DIR         results (default /tmp/bigfs-bench-s3-<UTC date>)
  --step-timeout S  limit of every timed step, seconds (default 600)
  -h, --help        this text

Output: "run ..." lines as each figure is taken, "figure ..." lines per system, and a
markdown table (stdout and DIR/summary.md): the medians, BigFS S3 / BigFS CLI and
BigFS S3 / SeaweedFS S3. Logs and raw records in DIR.
Example, a check at a tiny scale:
  $PROG --runs 1 --size-mib 8 --clients 2 --files 20
EOF
}

die() { echo "$PROG: $*" >&2; exit 1; }
usage_error() { echo "$PROG: $*" >&2; exit 2; }

RUNS=3 SIZE_MIB=1024 CLIENTS=8 FILES=2000 FILE_KIB=64 THREADS=16 REPLICATION=2
BASE_PORT=24600 SW_PORT=28333 PEER=1 BUILD=1 OUT="" STEP_TIMEOUT=600 SMALL_CLIENT=boto3
while [ $# -gt 0 ]; do
    case $1 in
        --runs | --size-mib | --clients | --files | --file-kib | --threads | --replication | \
            --base-port | --sw-port | --step-timeout)
            [[ $# -ge 2 && $2 =~ ^[0-9]+$ ]] || usage_error "$1 needs a number"
            declare "$(echo "${1#--}" | tr a-z- A-Z_)=$2"
            shift 2 ;;
        --no-peer) PEER=""; shift ;;
        --no-build) BUILD=""; shift ;;
        --out) [ $# -ge 2 ] || usage_error "--out needs a directory"; OUT=$2; shift 2 ;;
        --small-client)
            [[ $# -ge 2 && $2 =~ ^(boto3|rclone)$ ]] || usage_error "--small-client is boto3 or rclone"
            SMALL_CLIENT=$2; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) usage_error "unknown option '$1' (see --help)" ;;
    esac
done
((REPLICATION >= 1 && REPLICATION <= 3)) || usage_error "--replication must be 1..3"
((RUNS >= 1 && CLIENTS >= 1 && FILES >= 1)) || usage_error "--runs, --clients and --files must be at least 1"
# shellcheck source=/dev/null
source "$SHARED/bench-lib.sh"
python3 -c 'import boto3' 2>/dev/null || die "needs boto3 (python3 -m pip install boto3)"
[ "$SMALL_CLIENT" = boto3 ] || command -v rclone >/dev/null || die "needs rclone (apt-get install rclone)"

OUT=${OUT:-/tmp/bigfs-bench-s3-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/bigfs-bench-s3.XXXXXX) # binaries, clusters
chmod 755 "$WORK" # seaweedfs-peer.sh: every directory above SW_PEER_DIR must be traversable
SHM=$(mktemp -d /dev/shm/bigfs-bench-s3.XXXXXX)
BIGFS_DIR=$WORK/cluster
export SW_PEER_DIR=$WORK/sw SW_PEER_PORT=$SW_PORT
PEER_STARTED=""
cleanup() {
    set +e
    BIGFS_CLUSTER_DIR=$BIGFS_DIR "$SCRIPT_DIR/cluster.sh" down >/dev/null 2>&1
    cp -r "$BIGFS_DIR/logs" "$OUT/bigfs-logs" 2>/dev/null
    if [ -n "$PEER_STARTED" ]; then
        cp -r "$SW_PEER_DIR/log" "$OUT/seaweedfs-logs" 2>/dev/null
        "$SHARED/seaweedfs-peer.sh" stop >/dev/null 2>&1
        "$SHARED/seaweedfs-peer.sh" clean >/dev/null 2>&1
    fi
    rm -rf "$WORK" "$SHM"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- binaries and clusters

target_dir() { echo "${CARGO_TARGET_DIR:-$REPO/target}"; }
if [ -n "$BUILD" ]; then
    echo "== cargo build --release" >&2
    (cd "$REPO" && cargo build --release -p bigfs-meta -p bigfs-node -p bigfs-client -p bigfs-gateway) \
        >"$OUT/build.log" 2>&1 || die "cargo build failed; see $OUT/build.log"
fi
mkdir -p "$WORK/bin" # private copies: a build beside us cannot swap them mid-run
for b in bigfs-meta bigfs-node bigfs bigfs-gateway; do
    cp "$(target_dir)/release/$b" "$WORK/bin/$b" || die "$(target_dir)/release/$b is not built"
done
BIGFS=$WORK/bin/bigfs
{
    echo "commit $(git -C "$REPO" rev-parse --short HEAD) $(git -C "$REPO" status --porcelain | grep -q . && echo '(dirty)')"
    echo "$(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; $(uname -r); $(python3 -c 'import boto3; print("boto3", boto3.__version__)')"
    echo "runs=$RUNS size=${SIZE_MIB}MiB clients=$CLIENTS files=${FILES}x${FILE_KIB}KiB threads=$THREADS small-client=$SMALL_CLIENT R=$REPLICATION"
} >"$OUT/env.txt"

echo "== BigFS: cluster.sh up on 127.0.0.1:$BASE_PORT" >&2
BIGFS_CLUSTER_DIR=$BIGFS_DIR BIGFS_BIN_DIR=$WORK/bin \
    BIGFS_META_ARGS="--replication $REPLICATION --min-replicas $((REPLICATION < 2 ? REPLICATION : 2))" \
    "$SCRIPT_DIR/cluster.sh" up --no-build --nodes 3 --base-port "$BASE_PORT" >"$OUT/cluster-up.log" 2>&1 ||
    { tail -n 20 "$OUT/cluster-up.log" >&2; die "cluster.sh up failed"; }
export BIGFS_META=http://127.0.0.1:$BASE_PORT
read -r BIGFS_ACCESS BIGFS_SECRET < <(grep -v '^#' "$BIGFS_DIR/s3-keys" | head -n 1)
BIGFS_GW_PID=$(<"$BIGFS_DIR/pids/gateway.pid")
SYSTEMS=(bigfs-s3 bigfs-cli)
if [ -n "$PEER" ]; then
    echo "== SeaweedFS: seaweedfs-peer.sh start --replication $REPLICATION (ports $SW_PORT..)" >&2
    PEER_STARTED=1
    "$SHARED/seaweedfs-peer.sh" start --replication "$REPLICATION" >"$OUT/seaweedfs-start.log" 2>&1 ||
        { tail -n 20 "$OUT/seaweedfs-start.log" >&2; die "seaweedfs-peer.sh start failed"; }
    read -r SW_ACCESS SW_SECRET < <(sed -n 's/.*access key \([^ ]*\)  secret key \(.*\)$/\1 \2/p' "$OUT/seaweedfs-start.log" | tail -n 1)
    SW_GW_PID=$(<"$SW_PEER_DIR/run/s3.pid")
    SYSTEMS+=(seaweedfs)
fi

# use SYSTEM: points bench_s3.py at SYSTEM's S3 endpoint; sets GW_PID (empty for the CLI).
use() {
    export BENCH_S3_BUCKET=bench
    case $1 in
        bigfs-s3 | bigfs-cli)
            export BENCH_S3_ENDPOINT=http://127.0.0.1:$((BASE_PORT + 81))
            export BENCH_S3_ACCESS_KEY=$BIGFS_ACCESS BENCH_S3_SECRET_KEY=$BIGFS_SECRET
            GW_PID=$BIGFS_GW_PID ;;
        seaweedfs)
            export BENCH_S3_ENDPOINT=http://127.0.0.1:$((SW_PORT + 4))
            export BENCH_S3_ACCESS_KEY=$SW_ACCESS BENCH_S3_SECRET_KEY=$SW_SECRET
            GW_PID=$SW_GW_PID ;;
    esac
    [ "$1" != bigfs-cli ] || GW_PID=""
    # rclone's remote "bench:", configured from the environment only.
    export RCLONE_CONFIG_BENCH_TYPE=s3 RCLONE_CONFIG_BENCH_PROVIDER=Other
    export RCLONE_CONFIG_BENCH_ENDPOINT=$BENCH_S3_ENDPOINT
    export RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=$BENCH_S3_ACCESS_KEY
    export RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=$BENCH_S3_SECRET_KEY
}
for s in "${SYSTEMS[@]}"; do
    use "$s"
    [ "$s" = bigfs-cli ] || python3 -c 'import boto3, os, sys
s3 = boto3.client("s3", endpoint_url=os.environ["BENCH_S3_ENDPOINT"], region_name="us-east-1",
    aws_access_key_id=os.environ["BENCH_S3_ACCESS_KEY"], aws_secret_access_key=os.environ["BENCH_S3_SECRET_KEY"])
s3.create_bucket(Bucket="bench")' || die "cannot create bucket 'bench' on $s ($BENCH_S3_ENDPOINT)"
done

# ---------------------------------------------------------------- one run of one system

DRIVER=$SCRIPT_DIR/bench_s3.py
gw_cpu() { [ -z "$GW_PID" ] || awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' "/proc/$GW_PID/stat"; }
failures=0
fail() { echo "run  FAILED $*" >&2; failures=$((failures + 1)); }

# span FILE...: seconds from the earliest T0 to the latest T1 in the "T0 T1" lines of FILEs.
span() { cat "$@" | awk 'NR == 1 || $1 < a { a = $1 } NR == 1 || $2 > b { b = $2 } END { printf "%.6f", b - a }'; }

# big SYSTEM NAME OP N: OP (put/get) of big objects 0..N-1 by N clients at once; records NAME's
# MiB/s, its gateway CPU per GiB and the machine's CPU.
big() {
    local sys=$1 name=$2 op=$3 n=$4 i cpu0 gw0 secs ok=1 pids=()
    [ "$op" = put ] || [ "$(drop_caches)" = ok ] || echo "run  drop_caches unavailable" >&2
    cpu0=$(cpu_busy) gw0=$(gw_cpu)
    local t0=$EPOCHREALTIME
    for ((i = 0; i < n; i++)); do
        if [ "$sys" = bigfs-cli ]; then
            if [ "$op" = put ]; then
                timeout "$STEP_TIMEOUT" "$BIGFS" put "$SHM/big$i" "/bench/big$i" >/dev/null 2>>"$OUT/client.log" &
            else
                timeout "$STEP_TIMEOUT" "$BIGFS" get "/bench/big$i" - 2>>"$OUT/client.log" >/dev/null &
            fi
        elif [ "$op" = put ]; then
            timeout "$STEP_TIMEOUT" python3 "$DRIVER" put "$SHM/big$i" "big$i" >"$WORK/t$i" 2>>"$OUT/client.log" &
        else
            timeout "$STEP_TIMEOUT" python3 "$DRIVER" get "big$i" >"$WORK/t$i" 2>>"$OUT/client.log" &
        fi
        pids+=($!)
    done
    for i in "${pids[@]}"; do wait "$i" || ok=""; done
    local t1=$EPOCHREALTIME
    if [ -z "$ok" ]; then
        record "$name" MiB/s failed
        fail "$sys $name (see $OUT/client.log)"
        return 1
    fi
    if [ "$sys" = bigfs-cli ]; then secs=$(elapsed "$t0" "$t1"); else secs=$(span $(seq -f "$WORK/t%g" 0 $((n - 1)))); fi
    record "$name" MiB/s "$(rate $((SIZE_MIB * n)) "$secs")"
    record "${name}_cpu" cpu-s "$(elapsed "$cpu0" "$(cpu_busy)")"
    [ -z "$GW_PID" ] || record "${name}_gw" cpu-s/GiB \
        "$(awk -v a="$gw0" -v b="$(gw_cpu)" -v g="$((SIZE_MIB * n))" 'BEGIN { printf "%.2f", (b - a) * 1024 / g }')"
}

# check SYSTEM KEY FILE: the object KEY (/bench/KEY for the CLI) reads back as FILE's bytes.
check() {
    local sys=$1 key=$2 file=$3 got
    if [ "$sys" = bigfs-cli ]; then
        got=$("$BIGFS" get "/bench/$key" - 2>>"$OUT/client.log" | sha256sum | cut -d' ' -f1)
    else
        got=$(python3 "$DRIVER" sum "$key" 2>>"$OUT/client.log")
    fi
    [ "$got" = "$(sha256sum "$file" | cut -d' ' -f1)" ] || fail "$sys: $key does not read back as written"
}

small() {
    local sys=$1 op=$2 name=small_$2 cpu0 t0 secs
    [ "$op" = put ] || drop_caches >/dev/null
    cpu0=$(cpu_busy) t0=$EPOCHREALTIME
    if [ "$sys" = bigfs-cli ]; then
        if [ "$op" = put ]; then
            timeout "$STEP_TIMEOUT" "$BIGFS" put -r "$SHM/small" /bench/small >/dev/null 2>>"$OUT/client.log"
        else
            timeout "$STEP_TIMEOUT" "$BIGFS" get -r /bench/small "$SHM/got" >/dev/null 2>>"$OUT/client.log"
        fi || { record "$name" files/s failed; fail "$sys $name"; return 1; }
        secs=$(elapsed "$t0" "$EPOCHREALTIME")
    elif [ "$SMALL_CLIENT" = rclone ]; then
        # Remote "bench:" (see use); a put neither lists nor HEADs the destination, known empty.
        # rclone 1.60 cannot start an S3 remote with AWS_CA_BUNDLE set, even over plain HTTP.
        local args=(--config /dev/null --transfers "$THREADS" --checkers "$THREADS" --retries 1 --low-level-retries 1)
        if [ "$op" = put ]; then
            env -u AWS_CA_BUNDLE timeout "$STEP_TIMEOUT" rclone copy "${args[@]}" --no-check-dest --no-traverse \
                --s3-no-check-bucket --s3-no-head "$SHM/small" bench:bench/small
        else
            env -u AWS_CA_BUNDLE timeout "$STEP_TIMEOUT" rclone copy "${args[@]}" bench:bench/small "$SHM/got"
        fi >/dev/null 2>>"$OUT/client.log" || { record "$name" files/s failed; fail "$sys $name"; return 1; }
        secs=$(elapsed "$t0" "$EPOCHREALTIME")
    else
        timeout "$STEP_TIMEOUT" python3 "$DRIVER" "$op-many" "$SHM/small" small/ "$THREADS" \
            >"$WORK/t" 2>>"$OUT/client.log" || { record "$name" files/s failed; fail "$sys $name"; return 1; }
        secs=$(span "$WORK/t")
    fi
    record "$name" files/s "$(rate "$FILES" "$secs")"
    record "${name}_cpu" cpu-s "$(elapsed "$cpu0" "$(cpu_busy)")"
}

one_run() {
    local sys=$1 run=$2 i
    use "$sys"
    export BENCH_RECORDS=$OUT/records-$sys.tsv
    echo "== run $run: $sys" >&2
    rm -rf "${SHM:?}"/*
    mkdir -p "$SHM/small"
    local made=()
    for ((i = 0; i < CLIENTS; i++)); do
        head -c $((SIZE_MIB << 20)) /dev/urandom >"$SHM/big$i" &
        made+=($!)
    done
    for ((i = 0; i < FILES; i++)); do head -c $((FILE_KIB << 10)) /dev/urandom >"$SHM/small/f$i"; done
    wait "${made[@]}"
    big "$sys" put_1 put 1 && big "$sys" get_1 get 1 && check "$sys" big0 "$SHM/big0"
    clear_big "$sys"
    # Fresh bytes for big0: the C-client step must not find its first object stored already.
    head -c $((SIZE_MIB << 20)) /dev/urandom >"$SHM/big0"
    big "$sys" "put_$CLIENTS" put "$CLIENTS" && big "$sys" "get_$CLIENTS" get "$CLIENTS" &&
        check "$sys" "big$((CLIENTS - 1))" "$SHM/big$((CLIENTS - 1))"
    clear_big "$sys"
    rm -f "$SHM"/big*
    if small "$sys" put && small "$sys" get; then
        diff -rq "$SHM/small" "$SHM/got" >/dev/null || fail "$sys: the small files read back differ"
    fi
    if [ "$sys" = bigfs-cli ]; then "$BIGFS" rm -r /bench/small >/dev/null 2>>"$OUT/client.log"; else python3 "$DRIVER" delete small/; fi
}
clear_big() {
    if [ "$1" = bigfs-cli ]; then
        for ((i = 0; i < CLIENTS; i++)); do "$BIGFS" rm "/bench/big$i" >/dev/null 2>&1 || true; done
    else
        python3 "$DRIVER" delete big
    fi
}

for ((run = 1; run <= RUNS; run++)); do
    n=${#SYSTEMS[@]}
    for ((k = 0; k < n; k++)); do one_run "${SYSTEMS[$(((k + run - 1) % n))]}" "$run" > >(tee -a "$OUT/runs.txt"); done
done

# ---------------------------------------------------------------- the table

for s in "${SYSTEMS[@]}"; do
    BENCH_RECORDS=$OUT/records-$s.tsv summarise | tee "$OUT/figures-$s.txt"
done
median() { awk -v f="$2" '$2 == f && $4 == "median" { print $5 }' "$OUT/figures-$1.txt"; }
{
    echo "| figure | unit | BigFS S3 | BigFS CLI | SeaweedFS S3 | S3 / CLI | BigFS S3 / SeaweedFS S3 |"
    echo "|---|---|---|---|---|---|---|"
    awk '{ print $2, $3 }' "$OUT/figures-bigfs-s3.txt" | while read -r fig unit; do
        a=$(median bigfs-s3 "$fig") b=$(median bigfs-cli "$fig")
        c=""
        [ -z "$PEER" ] || c=$(median seaweedfs "$fig")
        ratio() { awk -v x="$1" -v y="$2" 'BEGIN { if (x == "" || y == "" || y == 0) print "–"; else printf "%.2f", x / y }'; }
        echo "| $fig | $unit | ${a:-–} | ${b:-–} | ${c:-–} | $(ratio "$a" "$b") | $(ratio "$a" "$c") |"
    done
    echo
    echo "Medians of $RUNS runs; $(sed -n 3p "$OUT/env.txt"); $(sed -n 1p "$OUT/env.txt")."
} | tee "$OUT/summary.md"
echo "$PROG: results in $OUT; failures=$failures" >&2
[ "$failures" -eq 0 ]
