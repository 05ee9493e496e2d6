#!/usr/bin/env bash
# BigFS repair benchmark: fill a fresh local cluster with big and small files, SIGKILL the node
# holding the most, and time the way back to a clean fsck. Run `scripts/bench-repair.sh --help`.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
PROG=$(basename "$0")

usage() {
    cat <<EOF
Usage: $PROG [OPTIONS]

Starts its own cluster on 127.0.0.1 (1 bigfs-meta, N bigfs-node; no gateway), each process's
pid kept by this script, data under /tmp. Puts one big file and F small files (random bytes
from /dev/shm), waits for a clean fsck (every chunk at R copies), then kills with SIGKILL
the node that holds the most bytes and reports:

  dead_after_s       from the kill until 'bigfs nodes' shows the node dead
  clean_after_s      from the kill until 'bigfs fsck' is healthy again (polled every 0.2 s)
  lost_mib           the bytes the killed node held (its 'used' just before the kill)
  repair_mib_s       lost_mib / clean_after_s: the figure issue 14 compares with the
                     single-client put MiB/s of the same cluster (bench.sh's seq_write_fsync)
  put_mib_s          the single-client put of the big file into the healthy cluster, timed
                     like bench.sh's seq_write_fsync (one sample: for the issue's ratio, take
                     the median of bench.sh's runs at the same R)
  repair_to_put_ratio
                     repair_mib_s / put_mib_s (issue 14's target: at least 0.5)
  repair_mib_s_after_dead
                     lost_mib / (clean_after_s - dead_after_s): the copying alone, without
                     the failure detection (--heartbeat-timeout), which a small data set
                     cannot amortise
  repair_copies_answered, replicate_calls, put_calls_on_survivors
                     counts: copies the sources answered, Node.Replicate calls (orders per
                     call: their ratio), PutChunk and PutChunks calls the survivors received
                     from the kill to the clean fsck (copies per call; with --load-mib the
                     load's calls are in it too)
  in_flight_mean, in_flight_zero_samples
                     bigfs_meta_repair_copies_in_flight at each fsck poll: samples at 0
                     before fsck is clean are idle gaps (the failure detection included)

With --load-mib M, a client load runs as soon as the node is seen dead (so during the
repair): one 'bigfs put' of an M MiB file, then one 'bigfs get' of it to /dev/null; once the
repair is done the same load runs again on the same cluster, now without repair. Reported:
load_put_mib_s / load_get_mib_s during and without repair and their ratios, and
load_done_before_clean (1 when the loaded put and get both ended before fsck was clean, so
the whole load ran against the repair; 0 otherwise: make M bigger for a fair figure).

Options:
  --nodes N             storage nodes (default 4)
  --replication R       bigfs-meta --replication (default 2; --min-replicas min(R,2))
  --big-mib M           size of the big file, MiB (default 1024; 0 for none)
  --files F             number of small files (default 2000)
  --file-kib K          size of each small file, KiB (default 64)
  --load-mib M          client load during and without repair, see above (default 0: none)
  --heartbeat-timeout D bigfs-meta --heartbeat-timeout (default 3s); nodes beat every D/4
  --meta-args "..."     more flags for bigfs-meta (e.g. "--repair-concurrency 16")
  --node-args "..."     more flags for every bigfs-node (e.g. "--fsync")
  --base-port P         metadata server port, nodes on P+1..P+N (default 24600)
  --bin-dir DIR         where bigfs-meta, bigfs-node and bigfs are (default: target/release,
                        built first with cargo build --release unless --no-build)
  --no-build            do not build; use the binaries in --bin-dir
  --out DIR             where the logs and the report go (default /tmp/bigfs-bench-repair-<date>)
  --timeout S           give up waiting for a clean fsck after S seconds (default 600)
  -h, --help            this text

Output: "figure NAME VALUE" lines on stdout and in DIR/report.txt; process logs in DIR/logs.
Exit status 0 when the repair ended in a clean fsck, 1 otherwise, 2 on a usage error.
Example, a quick end-to-end check with debug binaries:
  cargo build -p bigfs-meta -p bigfs-node -p bigfs-client
  $PROG --bin-dir target/debug --no-build --big-mib 16 --files 50 --load-mib 8
EOF
}

die() { echo "$PROG: $*" >&2; exit 1; }
usage_error() { echo "$PROG: $*" >&2; echo "run '$PROG --help' for usage" >&2; exit 2; }
need_value() { [ $# -ge 2 ] || usage_error "$1 needs a value"; }

NODES=4 REPLICATION=2 BIG_MIB=1024 FILES=2000 FILE_KIB=64 LOAD_MIB=0 HB_TIMEOUT=3s
META_ARGS="" NODE_ARGS="" BASE_PORT=24600 BIN_DIR="" BUILD=1 OUT="" TIMEOUT=600
while [ $# -gt 0 ]; do
    case $1 in
        --nodes) need_value "$@"; NODES=$2; shift 2 ;;
        --replication) need_value "$@"; REPLICATION=$2; shift 2 ;;
        --big-mib) need_value "$@"; BIG_MIB=$2; shift 2 ;;
        --files) need_value "$@"; FILES=$2; shift 2 ;;
        --file-kib) need_value "$@"; FILE_KIB=$2; shift 2 ;;
        --load-mib) need_value "$@"; LOAD_MIB=$2; shift 2 ;;
        --heartbeat-timeout) need_value "$@"; HB_TIMEOUT=$2; shift 2 ;;
        --meta-args) need_value "$@"; META_ARGS=$2; shift 2 ;;
        --node-args) need_value "$@"; NODE_ARGS=$2; shift 2 ;;
        --base-port) need_value "$@"; BASE_PORT=$2; shift 2 ;;
        --bin-dir) need_value "$@"; BIN_DIR=$2; shift 2 ;;
        --no-build) BUILD=""; shift ;;
        --out) need_value "$@"; OUT=$2; shift 2 ;;
        --timeout) need_value "$@"; TIMEOUT=$2; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) usage_error "unknown option '$1'" ;;
    esac
done
for v in "$NODES" "$REPLICATION" "$BIG_MIB" "$FILES" "$FILE_KIB" "$LOAD_MIB" "$BASE_PORT" "$TIMEOUT"; do
    [[ $v =~ ^[0-9]+$ ]] || usage_error "expected a number, got '$v'"
done
((REPLICATION >= 1 && REPLICATION < NODES)) || usage_error "--replication must be 1..nodes-1: a node is killed"
[[ $HB_TIMEOUT =~ ^([0-9]+)s$ ]] || usage_error "--heartbeat-timeout takes whole seconds, like 3s"
BEAT_MS=$((BASH_REMATCH[1] * 250))
for tool in jq awk dd split; do command -v "$tool" >/dev/null || die "$tool is needed"; done

OUT=${OUT:-/tmp/bigfs-bench-repair-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT/logs"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d /tmp/bigfs-bench-repair.XXXXXX)
SHM=$(mktemp -d /dev/shm/bigfs-bench-repair.XXXXXX)
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK" "$SHM"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -z "$BIN_DIR" ]; then
    BIN_DIR=${CARGO_TARGET_DIR:-$REPO/target}/release
    if [ -n "$BUILD" ]; then
        echo "== cargo build --release -p bigfs-meta -p bigfs-node -p bigfs-client" >&2
        (cd "$REPO" && cargo build --release -p bigfs-meta -p bigfs-node -p bigfs-client) >"$OUT/build.log" 2>&1 ||
            die "cargo build failed; see $OUT/build.log"
    fi
fi
# Private copies: a concurrent build cannot swap them mid-run.
mkdir -p "$WORK/bin"
for b in bigfs-meta bigfs-node bigfs; do
    [ -x "$BIN_DIR/$b" ] || die "$BIN_DIR/$b not built"
    cp "$BIN_DIR/$b" "$WORK/bin/$b"
done
BIGFS=$WORK/bin/bigfs
export BIGFS_META=http://127.0.0.1:$BASE_PORT

now() { printf '%s' "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b <= 0) print "NA"; else printf "%.2f", a / b }'; }
figure() { echo "figure $1 $2" | tee -a "$OUT/report.txt"; }
# start NAME ARGS...: runs a server in the background with its log in DIR/logs/NAME.log.
start() {
    local name=$1
    shift
    RUST_LOG=${RUST_LOG:-info} NO_COLOR=1 "$@" >>"$OUT/logs/$name.log" 2>&1 </dev/null &
    PIDS+=($!)
}
nodes_json() { timeout 30 "$BIGFS" nodes --json 2>>"$OUT/logs/client.log"; }
fsck_healthy() {
    timeout 30 "$BIGFS" fsck --json 2>>"$OUT/logs/client.log" |
        jq -e '.healthy == .chunks and .under_replicated == 0 and .missing == 0 and .corrupt == 0' >/dev/null
}
# sum_metric PORT NAME [LABEL]: the sum of the samples of NAME (with LABEL, e.g.
# method="Replicate", among their labels) on the HTTP port PORT; 0 if none.
sum_metric() {
    curl -sf "http://127.0.0.1:$1/metrics" 2>/dev/null |
        awk -v n="$2" -v l="${3:-}" '$1 == n || (index($1, n "{") == 1 && (l == "" || index($1, l))) { s += $2 } END { print s + 0 }'
}
# node_sum NAME [LABEL]: sum_metric over the nodes still running.
node_sum() {
    local i total=0
    for ((i = 1; i <= NODES; i++)); do
        [ "node$i" = "${VICTIM:-}" ] && continue
        total=$(awk -v a="$total" -v b="$(sum_metric $((BASE_PORT + 100 + i)) "$@")" 'BEGIN { print a + b }')
    done
    echo "$total"
}
# repair_sampled: fsck_healthy, after noting the copies in flight (a line to $WORK/in-flight).
repair_sampled() {
    sum_metric $((BASE_PORT + 100)) bigfs_meta_repair_copies_in_flight >>"$WORK/in-flight"
    fsck_healthy
}
# wait_for SECONDS CMD...: polls CMD every 0.2 s until it succeeds.
wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}
all_alive() { [ "$(nodes_json | jq '[.[] | select(.state == "alive")] | length')" = "$1" ]; }
is_dead() { [ "$(nodes_json | jq -r --arg id "$1" '.[] | select(.id == $id) | .state')" = dead ]; }
# load NAME: one put of load file NAME, then one get of it; sets LOAD_PUT and LOAD_GET (MiB/s).
# Each NAME has its own random bytes: chunks are content-addressed, and a second put of the
# same bytes would store nothing.
load() {
    local t
    t=$(now)
    "$BIGFS" put "$SHM/load-$1" "/load-$1" 2>>"$OUT/logs/client.log" || die "load put failed"
    LOAD_PUT=$(awk -v n="$LOAD_MIB" -v s="$(since "$t")" 'BEGIN { printf "%.1f", n / s }')
    t=$(now)
    "$BIGFS" get "/load-$1" - 2>>"$OUT/logs/client.log" >/dev/null || die "load get failed"
    LOAD_GET=$(awk -v n="$LOAD_MIB" -v s="$(since "$t")" 'BEGIN { printf "%.1f", n / s }')
}

read -r -a META_EXTRA <<<"$META_ARGS" || true
read -r -a NODE_EXTRA <<<"$NODE_ARGS" || true
echo "== cluster: 1 metadata server on $BASE_PORT, $NODES nodes, R=$REPLICATION, data in $WORK" >&2
start meta "$WORK/bin/bigfs-meta" --listen "127.0.0.1:$BASE_PORT" --data "$WORK/meta" \
    --http-listen "127.0.0.1:$((BASE_PORT + 100))" \
    --replication "$REPLICATION" --min-replicas $((REPLICATION < 2 ? REPLICATION : 2)) \
    --heartbeat-timeout "$HB_TIMEOUT" "${META_EXTRA[@]}"
declare -A NODE_PID
for ((i = 1; i <= NODES; i++)); do
    start "node$i" "$WORK/bin/bigfs-node" --listen "127.0.0.1:$((BASE_PORT + i))" --meta "$BIGFS_META" \
        --http-listen "127.0.0.1:$((BASE_PORT + 100 + i))" \
        --data "$WORK/node$i" --id "node$i" --heartbeat-interval "${BEAT_MS}ms" "${NODE_EXTRA[@]}"
    NODE_PID[node$i]=${PIDS[-1]}
done
wait_for 60 all_alive "$NODES" || die "the nodes did not all come up; see $OUT/logs"

echo "== data: a ${BIG_MIB} MiB file and $FILES files of $FILE_KIB KiB" >&2
mkdir -p "$SHM/small"
if ((BIG_MIB > 0)); then
    dd if=/dev/urandom of="$SHM/big" bs=1M count="$BIG_MIB" iflag=fullblock status=none
    T_PUT=$(now)
    "$BIGFS" put "$SHM/big" /big 2>>"$OUT/logs/client.log" || die "put of the big file failed"
    PUT_MIB_S=$(awk -v n="$BIG_MIB" -v s="$(since "$T_PUT")" 'BEGIN { printf "%.1f", n / s }')
    rm -f "$SHM/big"
fi
if ((FILES > 0)); then
    dd if=/dev/urandom of="$SHM/small.blob" bs=1K count=$((FILES * FILE_KIB)) iflag=fullblock status=none
    split -b "${FILE_KIB}K" -a "${#FILES}" -d "$SHM/small.blob" "$SHM/small/f"
    rm -f "$SHM/small.blob"
    "$BIGFS" put -r "$SHM/small" /small 2>>"$OUT/logs/client.log" || die "put of the small files failed"
    rm -rf "$SHM/small"
fi
if ((LOAD_MIB > 0)); then
    for name in during after; do
        dd if=/dev/urandom of="$SHM/load-$name" bs=1M count="$LOAD_MIB" iflag=fullblock status=none
    done
fi
wait_for "$TIMEOUT" fsck_healthy || die "fsck not clean before the kill"
# Two beats, so that every node's usage in 'bigfs nodes' includes the data.
sleep "$(awk -v ms="$BEAT_MS" 'BEGIN { print 2 * ms / 1000 }')"

read -r VICTIM USED CHUNKS < <(nodes_json | jq -r 'max_by(.used) | "\(.id) \(.used) \(.chunks)"')
echo "== kill -9 $VICTIM (pid ${NODE_PID[$VICTIM]}, $USED bytes in $CHUNKS chunks)" >&2
CALLS_BEFORE=$(node_sum bigfs_rpc_requests_total 'method="PutChunk')
T_KILL=$(now)
kill -KILL "${NODE_PID[$VICTIM]}"
wait "${NODE_PID[$VICTIM]}" 2>/dev/null || true
wait_for 120 is_dead "$VICTIM" || die "$VICTIM was not seen dead within 120 s"
DEAD_AFTER=$(since "$T_KILL")

LOAD_PID=""
if ((LOAD_MIB > 0)); then
    # In a subshell: its figures come back through a file.
    (load during && echo "$LOAD_PUT $LOAD_GET $(since "$T_KILL")" >"$WORK/load-during") &
    LOAD_PID=$!
fi
wait_for "$TIMEOUT" repair_sampled || die "fsck not clean $TIMEOUT s after the kill"
CLEAN_AFTER=$(since "$T_KILL")
PUT_CALLS=$(awk -v a="$CALLS_BEFORE" -v b="$(node_sum bigfs_rpc_requests_total 'method="PutChunk')" 'BEGIN { print b - a }')
REPLICATE_CALLS=$(node_sum bigfs_rpc_requests_total 'method="Replicate"')
ANSWERED=$(sum_metric $((BASE_PORT + 100)) bigfs_meta_repair_copies_answered_total)

figure nodes "$NODES"
figure replication "$REPLICATION"
figure lost_chunks "$CHUNKS"
figure lost_mib "$(awk -v b="$USED" 'BEGIN { printf "%.1f", b / 1048576 }')"
figure dead_after_s "$DEAD_AFTER"
figure clean_after_s "$CLEAN_AFTER"
figure repair_mib_s "$(awk -v b="$USED" -v s="$CLEAN_AFTER" 'BEGIN { printf "%.1f", b / 1048576 / s }')"
if [ -n "${PUT_MIB_S:-}" ]; then
    figure put_mib_s "$PUT_MIB_S"
    figure repair_to_put_ratio "$(ratio "$(awk -v b="$USED" -v s="$CLEAN_AFTER" 'BEGIN { print b / 1048576 / s }')" "$PUT_MIB_S")"
fi
figure repair_mib_s_after_dead "$(awk -v b="$USED" -v s="$CLEAN_AFTER" -v d="$DEAD_AFTER" 'BEGIN { if (s <= d) print "NA"; else printf "%.1f", b / 1048576 / (s - d) }')"
# Counts, not times: how the copies travelled and whether the pipeline stayed full.
figure repair_copies_answered "$ANSWERED"
figure replicate_calls "$REPLICATE_CALLS"
figure put_calls_on_survivors "$PUT_CALLS"
awk '{ n++; s += $1; if ($1 == 0) z++ } END { printf "figure in_flight_mean %.1f\nfigure in_flight_zero_samples %d of %d\n", n ? s / n : 0, z, n }' \
    "$WORK/in-flight" | tee -a "$OUT/report.txt"
if [ -n "$LOAD_PID" ]; then
    wait "$LOAD_PID" || die "the load during repair failed; see $OUT/logs/client.log"
    read -r PUT_DURING GET_DURING LOAD_ENDED <"$WORK/load-during"
    load after
    figure load_mib "$LOAD_MIB"
    figure load_put_mib_s_during_repair "$PUT_DURING"
    figure load_put_mib_s_without_repair "$LOAD_PUT"
    figure load_put_ratio "$(ratio "$PUT_DURING" "$LOAD_PUT")"
    figure load_get_mib_s_during_repair "$GET_DURING"
    figure load_get_mib_s_without_repair "$LOAD_GET"
    figure load_get_ratio "$(ratio "$GET_DURING" "$LOAD_GET")"
    figure load_done_before_clean "$(awk -v l="$LOAD_ENDED" -v c="$CLEAN_AFTER" 'BEGIN { print (l <= c) ? 1 : 0 }')"
fi
curl -sf "http://127.0.0.1:$((BASE_PORT + 100))/metrics" 2>/dev/null | grep '^bigfs_meta_repair' >"$OUT/meta-repair-metrics.txt" || true
echo "report: $OUT/report.txt" >&2
