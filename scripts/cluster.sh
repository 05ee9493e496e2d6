#!/usr/bin/env bash
# BigFS local cluster manager: one metadata server, N storage nodes and a gateway (the web
# console and the S3 API) on 127.0.0.1.
# Run `scripts/cluster.sh --help` for usage.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
PROG=$0

DIR=${BIGFS_CLUSTER_DIR:-$REPO/.bigfs-cluster}
case $DIR in
    /*) ;;
    *) DIR=$PWD/$DIR ;;
esac
while [[ $DIR == */ && $DIR != / ]]; do DIR=${DIR%/}; done
PID_DIR=$DIR/pids
LOG_DIR=$DIR/logs
CMD_DIR=$DIR/cmd                  # each process's command line, for `restart`
STATE_FILE=$DIR/cluster.conf      # nodes, base port, binaries, flags: see write_state
S3_KEYS_FILE=$DIR/s3-keys         # the S3 key pair, made once per cluster directory
SSE_KEY_FILE=$DIR/sse-master-key  # the gateway's SSE-S3 master key, made once likewise
TMUX_FILE=$DIR/tmux-session       # present only while a tmux session created by `up` exists
START_TIMEOUT=${BIGFS_CLUSTER_TIMEOUT:-30}
STOP_TIMEOUT=10
HOST=127.0.0.1

usage() {
    emit "$(usage_text)"
}

usage_text() {
    cat <<EOF
Usage: $PROG COMMAND [OPTIONS]

Local BigFS cluster: one metadata server (bigfs-meta), N storage nodes
(bigfs-node) and one gateway serving the web console and the S3 API
(bigfs-gateway), all listening on $HOST only.

Commands:
  up [--nodes N] [--base-port P] [--tmux] [--release|--debug] [--no-build]
        Build the binaries (cargo build -p bigfs-meta -p bigfs-node -p bigfs-client
        -p bigfs-gateway), start the metadata server on port P (default 9400), nodes
        node1..nodeN (default N=3) on ports P+1..P+N and the gateway, whose web
        console listens on port P+80 and its S3 API on P+81, with the key pair of
        the cluster directory (made at the first 'up', kept across 'down' and
        'up': see s3-env); the metadata server and each node get an HTTP
        listener 100 ports up (meta P+100, node i P+100+i: Prometheus metrics at
        /metrics, liveness at /healthz, readiness at /readyz); then wait (up to
        \$BIGFS_CLUSTER_TIMEOUT s) until the metadata server answers, 'bigfs nodes --json' shows every node
        up: "alive", or "draining"/"drained" after 'bigfs node drain' (such a node
        still runs and reports), with a heartbeat since the start, and the console
        and the S3 API accept connections; prints the console's URL, the S3
        endpoint, its keys and an 'aws ... s3 ls' line to paste. On failure
        prints the failing process's log tail, stops what it started and exits
        non-zero. If any process of the cluster is already running, says so and
        exits 0 without starting anything.
          --nodes N      number of storage nodes, at most 79 (default 3, or as many as the last
                         'up' and 'add-node's in this directory; with N < 3 the metadata
                         server gets --replication N --min-replicas min(N,2))
          --base-port P  metadata server port; node i listens on P+i (default 9400,
                         or the one the last 'up' in this directory used)
          --tmux         run every process in its own window of tmux session
                         '\$BIGFS_TMUX_SESSION' (output shown live and appended to its log)
          --release      use target/release binaries (default)
          --debug        use target/debug binaries
          --no-build     skip cargo build, use the binaries already built
  restart NAME
        Stop one server (NAME: meta, node1, node2, ..., gateway) by its recorded pid (SIGTERM,
        up to ${STOP_TIMEOUT}s, then SIGKILL), or find it stopped, and start it again with
        the same command line (port, data directory, flags), in its tmux window for a
        '--tmux' cluster. Waits until the metadata server answers (meta), the node
        reports alive, draining or drained, or the console accepts connections
        (gateway); exits non-zero if it does not within
        \$BIGFS_CLUSTER_TIMEOUT s, leaving it as it is.
  add-node
        Start one more storage node, node(N+1) on port P+N+1 (HTTP on P+100+N+1),
        with the flags the
        others got (or \$BIGFS_NODE_ARGS if set now), in a new tmux window for a
        '--tmux' cluster; count it in, so status, logs, restart, down and a later
        'up' know it; wait until it is alive. If it is not within
        \$BIGFS_CLUSTER_TIMEOUT s, it is stopped and not counted.
  status
        For each process: name, pid, running or stopped, listen address, metrics URL;
        the console's URL; the S3 endpoint and its keys; then 'bigfs nodes' if the
        metadata server is running. Exits 0 if every process
        is running, 3 otherwise.
  logs NAME [-f] [-n LINES]
        Show the end of a process's log (NAME: meta, node1, node2, ..., gateway); -f
        follows it.
  env
        Print 'export BIGFS_META=http://$HOST:PORT' for the cluster; use it as
          eval "\$($PROG env)"
  s3-env
        Print the export lines that point aws-cli and boto3 at the cluster's S3
        API (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
        AWS_DEFAULT_REGION); use it as
          eval "\$($PROG s3-env)"
  down [--wipe]
        Stop the processes recorded in the pid files (SIGTERM, up to ${STOP_TIMEOUT}s,
        then SIGKILL), only after checking each pid still runs a bigfs- binary;
        remove the pid files and the tmux session 'up --tmux' created. Data is
        kept; --wipe also deletes the cluster directory.
  help, --help, -h
        This text.

Layout under the cluster directory:
  meta/  node1/ node2/ ...        data directories
  logs/meta.log logs/nodeI.log    process output (appended across restarts),
  logs/gateway.log                and the gateway's
  pids/meta.pid pids/nodeI.pid    pids of the running servers (pids/gateway.pid too)
  cmd/meta.args cmd/nodeI.args    command lines, for 'restart' (cmd/gateway.args too)
  s3-keys                         the S3 key pair (mode 0600), read by the gateway
                                  (--s3-keys-file), so that no key is on a command line
  sse-master-key                  32 random bytes (mode 0600): the master key of SSE-S3
                                  (--sse-master-key-file); lose it and SSE-S3 objects are lost
  cluster.conf                    nodes, base port, binaries and flags, for the commands

Environment:
  BIGFS_CLUSTER_DIR      cluster directory (default: <repo>/.bigfs-cluster; now: $DIR)
  BIGFS_CLUSTER_TIMEOUT  seconds up, restart and add-node wait for the servers (default 30)
  BIGFS_TMUX_SESSION     tmux session name for --tmux (default: bigfs)
  BIGFS_BIN_DIR          take bigfs-meta, bigfs-node, bigfs and bigfs-gateway from this directory
                         instead of the cargo target directory (implies --no-build)
  BIGFS_META_ARGS        extra flags for bigfs-meta, e.g. "--heartbeat-timeout 5s"
  BIGFS_NODE_ARGS        extra flags for every bigfs-node, e.g. "--capacity 1GiB --fsync"
  BIGFS_GATEWAY_ARGS     extra flags for bigfs-gateway, e.g. "--sse-kms-keys FILE"
  RUST_LOG               log filter passed to the servers (default: info; restart and
                         add-node: the one 'up' used)
  CARGO_TARGET_DIR       honoured when locating the built binaries
EOF
}

die() {
    echo "cluster.sh: $*" >&2
    exit 1
}

# Prints each argument on a line. If the reader has gone (`status | head -1`), ends the script
# quietly with status 141, as SIGPIPE does by default, also where SIGPIPE is ignored (then the
# write fails with EPIPE, and bash would print a "write error" and go on).
emit() {
    printf '%s\n' "$@" 2>/dev/null || exit 141
}

# ---------------------------------------------------------------- helpers

# Succeeds if PID is a live process running a bigfs- binary (guards against pid reuse).
is_bigfs_pid() {
    local pid=$1 cmdline
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    if [[ -r /proc/$pid/cmdline ]]; then
        cmdline=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
    else
        cmdline=$(ps -p "$pid" -o args= 2>/dev/null) || return 1
    fi
    [[ $cmdline == *bigfs-* ]]
}

# Prints the pid recorded for process NAME (empty if none).
pid_of() {
    local f=$PID_DIR/$1.pid pid=""
    if [[ -f $f ]]; then read -r pid <"$f" 2>/dev/null || true; fi
    printf '%s' "$pid"
}

is_running() {
    local pid
    pid=$(pid_of "$1")
    [[ -n $pid ]] && is_bigfs_pid "$pid"
}

# Names of the processes that have a pid file: the gateway first (it depends on the others),
# then the storage nodes, meta last.
pidfile_names() {
    local f name names=() meta="" gateway=""
    for f in "$PID_DIR"/*.pid; do
        [[ -e $f ]] || continue
        name=$(basename "$f" .pid)
        case $name in
            meta) meta=meta ;;
            gateway) gateway=gateway ;;
            *) names+=("$name") ;;
        esac
    done
    [[ -z $gateway ]] || echo gateway
    if ((${#names[@]})); then printf '%s\n' "${names[@]}" | sort -V; fi
    [[ -z $meta ]] || echo meta
}

# Reads the state file into ST_* variables (defaults if absent).
load_state() {
    ST_NODES=3 ST_BASE_PORT=9400 ST_PROFILE=release ST_BIN_DIR="" ST_FOUND=""
    ST_RUST_LOG="" ST_NODE_ARGS=""
    [[ -f $STATE_FILE ]] || return 0
    ST_FOUND=1
    local line value
    while IFS= read -r line; do
        value=${line#*=}
        case $line in
            nodes=*) ST_NODES=$value ;;
            base_port=*) ST_BASE_PORT=$value ;;
            profile=*) ST_PROFILE=$value ;;
            bin_dir=*) ST_BIN_DIR=$value ;;
            rust_log=*) ST_RUST_LOG=$value ;;
            node_args=*) ST_NODE_ARGS=$value ;;
        esac
    done <"$STATE_FILE"
}

# Writes the ST_* variables to the state file (via a temporary file, so that a reader never
# sees half of it). `up` writes it, `add-node` counts its node in.
write_state() {
    {
        echo "nodes=$ST_NODES"
        echo "base_port=$ST_BASE_PORT"
        echo "profile=$ST_PROFILE"
        echo "bin_dir=$ST_BIN_DIR"
        echo "rust_log=$ST_RUST_LOG"
        echo "node_args=$ST_NODE_ARGS"
    } >"$STATE_FILE.tmp"
    mv -f "$STATE_FILE.tmp" "$STATE_FILE"
}

target_dir() {
    local t=${CARGO_TARGET_DIR:-$REPO/target}
    case $t in
        /*) printf '%s' "$t" ;;
        *) printf '%s' "$REPO/$t" ;;
    esac
}

# The gateway's console listens on the base port plus this (nodes take P+1..P+79).
GATEWAY_OFFSET=80

# Port of process NAME given the base port.
port_of() {
    local name=$1 base=$2
    case $name in
        meta) echo "$base" ;;
        gateway) echo $((base + GATEWAY_OFFSET)) ;;
        *) echo $((base + ${name#node})) ;;
    esac
}

# How far above its gRPC port each server's HTTP listener (metrics, health) is.
HTTP_OFFSET=100

# The metrics URL of process NAME given the base port.
metrics_url_of() {
    echo "http://$HOST:$(($(port_of "$1" "$2") + HTTP_OFFSET))/metrics"
}

port_in_use() {
    (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

# ---------------------------------------------------------------- the S3 API

# The gateway's S3 API listens on the base port plus this, beside the console.
S3_OFFSET=81

s3_url_of() {
    echo "http://$HOST:$(($1 + S3_OFFSET))"
}

# Creates the cluster's S3 key pair unless it exists: a 20-character access key and a
# 40-character secret from /dev/urandom, in the format of the gateway's --s3-keys-file. Made
# once, so that the keys a user configured keep working across `down` and `up`; the file is
# readable by its owner only (umask in a subshell, so the script's own stays as it was).
ensure_s3_keys() {
    [[ -s $S3_KEYS_FILE ]] && return 0
    local access secret
    access=BF$(od -An -tx1 -N9 /dev/urandom | tr -d ' \n' | tr a-f A-F)
    secret=$(od -An -tx1 -N20 /dev/urandom | tr -d ' \n')
    ((${#access} == 20 && ${#secret} == 40)) || die "cannot read random bytes from /dev/urandom"
    (
        umask 077
        {
            echo "# The S3 key pair of the BigFS cluster in this directory, made by 'cluster.sh up'."
            echo "# bigfs-gateway reads it (--s3-keys-file): one 'ACCESS_KEY SECRET_KEY' pair a line."
            echo "$access $secret"
        } >"$S3_KEYS_FILE.tmp"
    )
    mv -f "$S3_KEYS_FILE.tmp" "$S3_KEYS_FILE"
}

# Creates the gateway's SSE-S3 master key unless it exists: 32 bytes from /dev/urandom, readable
# by its owner only, kept across `down` and `up` like the S3 keys (objects stored under SSE-S3
# cannot be read without it).
ensure_sse_key() {
    [[ -s $SSE_KEY_FILE ]] && return 0
    (
        umask 077
        head -c 32 /dev/urandom >"$SSE_KEY_FILE.tmp"
    )
    [[ $(wc -c <"$SSE_KEY_FILE.tmp") -eq 32 ]] || die "cannot read random bytes from /dev/urandom"
    mv -f "$SSE_KEY_FILE.tmp" "$SSE_KEY_FILE"
}

# Sets S3_ACCESS and S3_SECRET from the first pair in the keys file; fails if there is none.
read_s3_keys() {
    S3_ACCESS="" S3_SECRET=""
    [[ -r $S3_KEYS_FILE ]] || return 1
    local line rest
    while IFS= read -r line; do
        line=${line%%#*}
        read -r S3_ACCESS S3_SECRET rest <<<"$line" || true
        [[ -z $S3_ACCESS ]] || break
    done <"$S3_KEYS_FILE"
    [[ -n $S3_ACCESS && -n $S3_SECRET ]]
}

# Succeeds if the gateway's recorded command line serves the S3 API (a cluster started by an
# older cluster.sh has none until its next `up`).
gateway_serves_s3() {
    local arg
    [[ -f $CMD_DIR/gateway.args ]] || return 1
    while IFS= read -r -d '' arg; do
        [[ $arg != --s3-listen ]] || return 0
    done <"$CMD_DIR/gateway.args"
    return 1
}

# Prints the S3 endpoint of the cluster on base port $1, its keys and a command to paste.
print_s3() {
    local url
    url=$(s3_url_of "$1")
    if ! read_s3_keys; then
        echo "S3 API: $url (no key pair in $S3_KEYS_FILE)"
        return 0
    fi
    echo "S3 API: $url    access key: $S3_ACCESS    secret key: $S3_SECRET"
    echo "  (keys in $S3_KEYS_FILE; for aws-cli and boto3: eval \"\$($PROG s3-env)\")"
    echo "AWS_ACCESS_KEY_ID=$S3_ACCESS AWS_SECRET_ACCESS_KEY=$S3_SECRET aws --endpoint-url $url s3 ls"
}

show_log_tail() {
    local name=$1 lines=${2:-30} log=$LOG_DIR/$1.log
    echo "---- $log (last $lines lines of this run) ----" >&2
    if [[ -f $log ]]; then
        # Only the output since the last start marker written by launch().
        awk '/^==== .*: starting / { n = 0 } { line[n++] = $0 } END { for (i = 0; i < n; i++) print line[i] }' \
            "$log" | tail -n "$lines" >&2
    else
        echo "(no log file)" >&2
    fi
    echo "----" >&2
}

# Milliseconds since the epoch (whole seconds where neither bash 5 nor date +%N can tell more).
now_ms() {
    local t
    if [[ -n ${EPOCHREALTIME:-} ]]; then
        t=${EPOCHREALTIME//[!0-9]/} # seconds and microseconds, without the decimal separator
        echo $((10#$t / 1000))
        return
    fi
    t=$(date +%s%N 2>/dev/null) || t=""
    if [[ $t =~ ^[0-9]{13,}$ ]]; then
        echo $((t / 1000000))
    else
        echo $(($(date +%s) * 1000))
    fi
}

# up_ids MAX_AGE_MS ID...: prints the IDs that the 'bigfs nodes --json' output on stdin lists
# as up: "alive", "draining" or "drained" (a drained node still runs and reports; `node drain`
# only moves its chunks away), with a heartbeat at most MAX_AGE_MS ago. The age check tells a
# node that reported since it was (re)started from the metadata server's memory of an earlier
# run: a stopped node stays "alive" or "drained" there until its heartbeat timeout.
up_ids() {
    local max_age=$1
    shift
    if command -v python3 >/dev/null 2>&1; then
        python3 -c '
import json, sys
max_age = int(sys.argv[1])
want = set(sys.argv[2:])
try:
    nodes = json.load(sys.stdin)
except ValueError:
    sys.exit(0)
if isinstance(nodes, dict):
    nodes = nodes.get("nodes", [])
for n in nodes if isinstance(nodes, list) else []:
    if not isinstance(n, dict) or n.get("id") not in want:
        continue
    if n.get("state") not in ("alive", "draining", "drained"):
        continue
    age = n.get("last_heartbeat_ms")
    if isinstance(age, int) and age > max_age:
        continue
    print(n["id"])
' "$max_age" "$@"
    else
        # The CLI prints one field per line ('serde_json::to_string_pretty'), each object
        # closed by a line holding '}'.
        awk -v max_age="$max_age" -v want=" $* " '
            function value(line) {
                sub(/^[^:]*:[[:space:]]*"?/, "", line)
                sub(/"?,?[[:space:]]*$/, "", line)
                return line
            }
            /"id"[[:space:]]*:/ { id = value($0) }
            /"state"[[:space:]]*:/ { state = value($0) }
            /"last_heartbeat_ms"[[:space:]]*:/ { age = value($0) }
            /}/ {
                if (id != "" && index(want, " " id " ") &&
                    (state == "alive" || state == "draining" || state == "drained") &&
                    (age == "" || age + 0 <= max_age + 0)) print id
                id = ""; state = ""; age = ""
            }'
    fi
}

# ---------------------------------------------------------------- stopping

# stop_names NAME...: stops those processes that have a pid file (SIGTERM, then SIGKILL after
# STOP_TIMEOUT s), waits until they are gone and removes their pid files. Prints what it does;
# returns 0.
stop_names() {
    local name pid
    local -a pids=() names=()
    for name in "$@"; do
        pid=$(pid_of "$name")
        if [[ -n $pid ]] && is_bigfs_pid "$pid"; then
            if kill -TERM "$pid" 2>/dev/null; then
                echo "stopping $name (pid $pid)"
                pids+=("$pid")
                names+=("$name")
            fi
        else
            if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
                echo "$name: pid $pid is no longer a bigfs process; not signalled"
            else
                echo "$name: not running${pid:+ (pid $pid already exited)}"
            fi
        fi
    done

    local deadline=$((SECONDS + STOP_TIMEOUT)) left i killed=""
    while ((${#pids[@]})); do
        left=0
        for i in "${!pids[@]}"; do
            if is_bigfs_pid "${pids[$i]}"; then left=1; fi
        done
        ((left)) || break
        if [[ -z $killed ]] && ((SECONDS >= deadline)); then
            for i in "${!pids[@]}"; do
                if is_bigfs_pid "${pids[$i]}"; then
                    echo "${names[$i]} (pid ${pids[$i]}) did not stop in ${STOP_TIMEOUT}s: SIGKILL"
                    kill -KILL "${pids[$i]}" 2>/dev/null || true
                fi
            done
            # A killed process is gone at once unless stuck in the kernel: wait a little more.
            killed=1 deadline=$((SECONDS + 5))
        elif [[ -n $killed ]] && ((SECONDS >= deadline)); then
            echo "some processes outlived SIGKILL by 5s; not waiting for them" >&2
            break
        fi
        sleep 0.2
    done
    for name in "$@"; do rm -f "$PID_DIR/$name.pid"; done
}

# Stops every process that has a pid file and the tmux session `up --tmux` created.
stop_all() {
    local name
    local -a names=()
    while IFS= read -r name; do
        [[ -z $name ]] || names+=("$name")
    done < <(pidfile_names)
    stop_names ${names[@]+"${names[@]}"}
    rm -f "$PID_DIR"/*.pid

    if [[ -f $TMUX_FILE ]]; then
        local session
        read -r session <"$TMUX_FILE" || true
        if [[ -n $session ]] && command -v tmux >/dev/null 2>&1 &&
            tmux has-session -t "=$session" 2>/dev/null; then
            tmux kill-session -t "=$session" 2>/dev/null || true
            echo "killed tmux session $session"
        fi
        rm -f "$TMUX_FILE"
    fi
}

# ---------------------------------------------------------------- up

# launch NAME CMD...: starts CMD with its output appended to logs/NAME.log and its own pid
# (the server binary's, not a wrapper's) in pids/NAME.pid, and records CMD in cmd/NAME.args
# (NUL-separated) for `restart`. With USE_TMUX set, in window NAME of session TMUX_SESSION.
# BIGFS_S3_ACCESS_KEY and BIGFS_S3_SECRET_KEY are not passed on: the gateway takes its keys
# from the cluster's keys file only, so that the keys `up` prints are the ones that work.
launch() {
    local name=$1
    shift
    local log=$LOG_DIR/$name.log pidfile=$PID_DIR/$name.pid
    rm -f "$pidfile"
    mkdir -p "$CMD_DIR"
    printf '%s\0' "$@" >"$CMD_DIR/$name.args"
    printf '==== %s: starting %s: %s\n' "$(date '+%Y-%m-%d %H:%M:%S')" "$name" "$*" >>"$log"
    if [[ -n $USE_TMUX ]]; then
        # The wrapper writes its own pid, sends its output to the window and to the log
        # (tee runs in a process substitution, so the pid stays the shell's), then execs
        # the server, which keeps that pid.
        # shellcheck disable=SC2016 # expanded by the inner bash
        local -a wrapper=(env -u BIGFS_S3_ACCESS_KEY -u BIGFS_S3_SECRET_KEY "RUST_LOG=$RUST_LOG_VALUE" bash -c 'echo $$ >"$1"; log=$2; shift 2; exec > >(tee -a "$log") 2>&1; exec "$@"'
            "bigfs-$name" "$pidfile" "$log" "$@")
        tmux_window "$name" "${wrapper[@]}"
    else
        local -a detach=()
        if command -v setsid >/dev/null 2>&1; then detach=(setsid); else detach=(nohup); fi
        # Output goes only to the log file: no colour escapes (tracing honours NO_COLOR).
        # shellcheck disable=SC2016 # expanded by the inner bash
        "${detach[@]}" env -u BIGFS_S3_ACCESS_KEY -u BIGFS_S3_SECRET_KEY "RUST_LOG=$RUST_LOG_VALUE" "NO_COLOR=${NO_COLOR:-1}" bash -c 'echo $$ >"$1"; shift; exec "$@"' \
            "bigfs-$name" "$pidfile" "$@" >>"$log" 2>&1 </dev/null &
    fi
    local i
    for ((i = 0; i < 50; i++)); do
        [[ -s $pidfile ]] && return 0
        sleep 0.1
    done
    return 1
}

# wait_ready SINCE_MS NAME...: waits up to $START_TIMEOUT s until the metadata server at
# $META_URL answers and every storage node among NAMEs is up (see up_ids) with a heartbeat
# since SINCE_MS. Fails at once if a NAMEd process (meta included) stops running. On failure
# sets WAIT_PROBLEM to what went wrong and WAIT_FAULTY to the processes whose logs tell why.
wait_ready() {
    local since_ms=$1
    shift
    local name out="" up="" answered="" err_file before_ms
    local -a ids=() missing=() to=()
    local gateway=""
    for name in "$@"; do
        case $name in
            meta) ;;
            gateway) gateway=1 ;;
            *) ids+=("$name") ;;
        esac
    done
    command -v timeout >/dev/null 2>&1 && to=(timeout 5)
    WAIT_PROBLEM="" WAIT_FAULTY=()
    err_file=$(mktemp)
    local deadline=$((SECONDS + START_TIMEOUT))
    while :; do
        for name in "$@"; do
            if ! is_running "$name"; then
                rm -f "$err_file"
                WAIT_PROBLEM="$name exited during start-up" WAIT_FAULTY=("$name")
                return 1
            fi
        done
        before_ms=$(now_ms)
        if out=$(${to[@]+"${to[@]}"} "$CLI_BIN" --meta "$META_URL" nodes --json 2>"$err_file"); then
            answered=1
            ((${#ids[@]})) || break
            up=$(up_ids "$((before_ms - since_ms))" "${ids[@]}" <<<"$out")
            if [[ -n $up ]] && (($(wc -l <<<"$up") >= ${#ids[@]})); then break; fi
        fi
        if ((SECONDS >= deadline)); then
            if [[ -z $answered ]]; then
                echo "last 'bigfs nodes' error: $(tail -n 3 "$err_file")" >&2
                WAIT_PROBLEM="metadata server did not answer at $META_URL within ${START_TIMEOUT}s"
                WAIT_FAULTY=(meta)
            else
                for name in "${ids[@]}"; do
                    grep -qxF -- "$name" <<<"$up" || missing+=("$name")
                done
                echo "last 'bigfs nodes --json': $out" >&2
                WAIT_PROBLEM="not up (alive, draining or drained, reporting since the start) after ${START_TIMEOUT}s: ${missing[*]}"
                WAIT_FAULTY=("${missing[@]}")
            fi
            rm -f "$err_file"
            return 1
        fi
        sleep 0.5
    done
    rm -f "$err_file"
    [[ -n $gateway ]] || return 0
    # The gateway binds its listeners one after the other: wait for each.
    local port what
    local -a doors=("$(port_of gateway "$ST_BASE_PORT") console")
    if gateway_serves_s3; then doors+=("$((ST_BASE_PORT + S3_OFFSET)) S3 API"); fi
    for what in "${doors[@]}"; do
        port=${what%% *}
        until port_in_use "$port"; do
            if ! is_running gateway; then
                WAIT_PROBLEM="gateway exited during start-up" WAIT_FAULTY=(gateway)
                return 1
            fi
            if ((SECONDS >= deadline)); then
                WAIT_PROBLEM="the ${what#* } does not listen on $HOST:$port after ${START_TIMEOUT}s"
                WAIT_FAULTY=(gateway)
                return 1
            fi
            sleep 0.2
        done
    done
}

# tmux_window NAME CMD...: runs CMD in window NAME of session TMUX_SESSION: in a new session if
# there is none (recorded in TMUX_FILE for `down`), in the window of that name if it is still
# there (`restart`: remain-on-exit keeps a stopped server's window), else in a new window.
tmux_window() {
    local name=$1
    shift
    if ! tmux has-session -t "=$TMUX_SESSION" 2>/dev/null; then
        tmux new-session -d -s "$TMUX_SESSION" -n "$name" -c "$REPO" "$@"
        echo "$TMUX_SESSION" >"$TMUX_FILE"
    elif tmux list-windows -t "=$TMUX_SESSION" -F '#{window_name}' 2>/dev/null | grep -qxF -- "$name"; then
        tmux respawn-window -k -t "=$TMUX_SESSION:=$name" -c "$REPO" "$@"
    else
        tmux new-window -d -t "=$TMUX_SESSION:" -n "$name" -c "$REPO" "$@"
    fi
    # Keep a crashed server's last words on screen.
    tmux set-option -w -t "=$TMUX_SESSION:=$name" remain-on-exit on 2>/dev/null || true
}

# Called when `up` fails: show the log, stop what was started, exit 1.
up_failed() {
    local msg=$1
    shift
    echo "cluster.sh: up failed: $msg" >&2
    local name
    for name in "$@"; do show_log_tail "$name" 30; done
    echo "stopping the processes that were started (logs kept in $LOG_DIR)" >&2
    stop_all >&2
    exit 1
}

cmd_up() {
    # Without --nodes and --base-port, those of the last `up` (and `add-node`s) in this cluster
    # directory, so that `down` then `up` brings back the same cluster.
    load_state
    local nodes=$ST_NODES base_port=$ST_BASE_PORT profile=release build=1
    USE_TMUX=""
    while (($#)); do
        case $1 in
            --nodes) [[ $# -ge 2 ]] || die "--nodes needs a value"; nodes=$2; shift 2 ;;
            --nodes=*) nodes=${1#*=}; shift ;;
            --base-port) [[ $# -ge 2 ]] || die "--base-port needs a value"; base_port=$2; shift 2 ;;
            --base-port=*) base_port=${1#*=}; shift ;;
            --tmux) USE_TMUX=1; shift ;;
            --release) profile=release; shift ;;
            --debug) profile=debug; shift ;;
            --no-build) build=""; shift ;;
            -h | --help) usage; exit 0 ;;
            *) echo "cluster.sh: up: unknown option '$1'" >&2; usage >&2; exit 2 ;;
        esac
    done
    if ! [[ $nodes =~ ^[0-9]+$ ]] || ((nodes < 1 || nodes >= GATEWAY_OFFSET)); then
        die "--nodes must be a number from 1 to $((GATEWAY_OFFSET - 1)) (got '$nodes'; port P+$GATEWAY_OFFSET is the console's)"
    fi
    if ! [[ $base_port =~ ^[0-9]+$ ]] || ((base_port < 1024 || base_port + HTTP_OFFSET + GATEWAY_OFFSET > 65535)); then
        die "--base-port must be a number from 1024 to $((65535 - HTTP_OFFSET - GATEWAY_OFFSET)) (got '$base_port')"
    fi

    # Already running?
    mkdir -p "$PID_DIR" "$LOG_DIR"
    local name running=()
    while IFS= read -r name; do
        [[ -n $name ]] || continue
        if is_running "$name"; then running+=("$name (pid $(pid_of "$name"))"); fi
    done < <(pidfile_names)
    if ((${#running[@]})); then
        load_state
        echo "cluster already running in $DIR: ${running[*]}"
        echo "nothing started; see '$PROG status', or '$PROG down' first to restart."
        echo "export BIGFS_META=http://$HOST:$ST_BASE_PORT"
        if gateway_serves_s3; then print_s3 "$ST_BASE_PORT"; fi
        return 0
    fi
    rm -f "$PID_DIR"/*.pid "$CMD_DIR"/*.args

    TMUX_SESSION=${BIGFS_TMUX_SESSION:-bigfs}
    if [[ -n $USE_TMUX ]]; then
        command -v tmux >/dev/null 2>&1 ||
            die "--tmux needs tmux, which is not installed; install it with 'apt-get install tmux' (Debian/Ubuntu) or 'brew install tmux' (macOS), or run without --tmux"
        if tmux has-session -t "=$TMUX_SESSION" 2>/dev/null; then
            die "tmux session '$TMUX_SESSION' already exists; close it (tmux kill-session -t $TMUX_SESSION) or set BIGFS_TMUX_SESSION"
        fi
    fi
    rm -f "$TMUX_FILE"

    # Binaries.
    local bin_dir
    if [[ -n ${BIGFS_BIN_DIR:-} ]]; then
        bin_dir=$BIGFS_BIN_DIR
        [[ $bin_dir == /* ]] || bin_dir=$PWD/$bin_dir # recorded for later commands run elsewhere
        build=""
    else
        bin_dir=$(target_dir)/$profile
    fi
    if [[ -n $build ]]; then
        command -v cargo >/dev/null 2>&1 || die "cargo not found; install the Rust toolchain (https://rustup.rs)"
        local -a cargo_profile=()
        [[ $profile == release ]] && cargo_profile=(--release)
        echo "building ($profile): cargo build ${cargo_profile[*]} -p bigfs-meta -p bigfs-node -p bigfs-client -p bigfs-gateway"
        (cd "$REPO" && cargo build "${cargo_profile[@]}" -p bigfs-meta -p bigfs-node -p bigfs-client -p bigfs-gateway) ||
            die "cargo build failed"
    fi
    local meta_bin=$bin_dir/bigfs-meta node_bin=$bin_dir/bigfs-node cli_bin=$bin_dir/bigfs b
    local gateway_bin=$bin_dir/bigfs-gateway
    for b in "$meta_bin" "$node_bin" "$cli_bin" "$gateway_bin"; do
        [[ -x $b ]] || die "binary $b not found${build:+ after the build}${build:- (run without --no-build to build it)}"
    done

    # Ports must be free.
    local i port
    for ((i = 0; i <= nodes; i++)); do
        for port in $((base_port + i)) $((base_port + HTTP_OFFSET + i)); do
            if port_in_use "$port"; then
                die "port $HOST:$port is already in use; stop whatever holds it or choose another --base-port"
            fi
        done
    done
    for port in $((base_port + GATEWAY_OFFSET)) $((base_port + S3_OFFSET)) $((base_port + GATEWAY_OFFSET + HTTP_OFFSET)); do
        if port_in_use "$port"; then
            die "port $HOST:$port is already in use; stop whatever holds it or choose another --base-port"
        fi
    done

    RUST_LOG_VALUE=${RUST_LOG:-info}
    ST_NODES=$nodes ST_BASE_PORT=$base_port ST_PROFILE=$profile ST_BIN_DIR=$bin_dir
    ST_RUST_LOG=$RUST_LOG_VALUE ST_NODE_ARGS=${BIGFS_NODE_ARGS:-}
    write_state
    CLI_BIN=$cli_bin
    META_URL=http://$HOST:$base_port
    local meta_url=$META_URL
    local -a meta_extra=() node_extra=() gateway_extra=()
    read -r -a meta_extra <<<"${BIGFS_META_ARGS:-}" || true
    read -r -a gateway_extra <<<"${BIGFS_GATEWAY_ARGS:-}" || true
    read -r -a node_extra <<<"${BIGFS_NODE_ARGS:-}" || true
    if ((nodes < 3)); then
        # The defaults (R=3, W=2) could never be met with fewer nodes.
        [[ " ${meta_extra[*]} " == *" --replication"* ]] || meta_extra+=(--replication "$nodes")
        [[ " ${meta_extra[*]} " == *" --min-replicas"* ]] || meta_extra+=(--min-replicas "$((nodes < 2 ? nodes : 2))")
    fi

    trap 'echo; up_failed "interrupted" ' INT TERM

    local -a names=(meta)
    local started_ms
    started_ms=$(now_ms)
    mkdir -p "$DIR/meta"
    launch meta "$meta_bin" --listen "$HOST:$base_port" --http-listen "$HOST:$((base_port + HTTP_OFFSET))" \
        --data "$DIR/meta" ${meta_extra[@]+"${meta_extra[@]}"} ||
        up_failed "meta did not start (no pid file)" meta
    for ((i = 1; i <= nodes; i++)); do
        name=node$i
        names+=("$name")
        mkdir -p "$DIR/$name"
        launch "$name" "$node_bin" --listen "$HOST:$((base_port + i))" \
            --http-listen "$HOST:$((base_port + HTTP_OFFSET + i))" --meta "$meta_url" --data "$DIR/$name" --id "$name" ${node_extra[@]+"${node_extra[@]}"} ||
            up_failed "$name did not start (no pid file)" "$name"
    done
    local console_url=http://$HOST:$((base_port + GATEWAY_OFFSET))/
    names+=(gateway)
    ensure_s3_keys
    ensure_sse_key
    launch gateway "$gateway_bin" --meta "$meta_url" --console-listen "$HOST:$((base_port + GATEWAY_OFFSET))" \
        --s3-listen "$HOST:$((base_port + S3_OFFSET))" --s3-keys-file "$S3_KEYS_FILE" \
        --sse-master-key-file "$SSE_KEY_FILE" \
        --http-listen "$HOST:$((base_port + GATEWAY_OFFSET + HTTP_OFFSET))" ${gateway_extra[@]+"${gateway_extra[@]}"} ||
        up_failed "gateway did not start (no pid file)" gateway

    # Wait until the metadata server answers and lists every node as up.
    echo "started ${#names[@]} processes; waiting up to ${START_TIMEOUT}s for meta, $nodes nodes (alive, draining or drained), the console and the S3 API"
    wait_ready "$started_ms" "${names[@]}" || up_failed "$WAIT_PROBLEM" "${WAIT_FAULTY[@]}"
    trap - INT TERM

    echo
    echo "BigFS cluster is up ($nodes storage nodes, binaries in $bin_dir, data in $DIR)"
    for name in "${names[@]}"; do
        printf '  %-7s pid %-8s %s:%-6s log %s, metrics %s\n' "$name" "$(pid_of "$name")" "$HOST" \
            "$(port_of "$name" "$base_port")" "$LOG_DIR/$name.log" "$(metrics_url_of "$name" "$base_port")"
    done
    if [[ -n $USE_TMUX ]]; then
        if [[ -n ${TMUX:-} ]]; then
            echo "tmux session '$TMUX_SESSION': tmux switch-client -t $TMUX_SESSION"
        else
            echo "tmux session '$TMUX_SESSION': tmux attach -t $TMUX_SESSION"
        fi
    fi
    echo
    echo "Web console: $console_url"
    print_s3 "$base_port"
    echo
    echo "Point the client at it (or: eval \"\$($PROG env)\"):"
    echo "export BIGFS_META=$meta_url"
    echo "Client: $cli_bin    Stop: $PROG down"
}

# ---------------------------------------------------------------- restart, add-node

# For a cluster that `up --tmux` started (TMUX_FILE names its session), sets USE_TMUX and
# TMUX_SESSION so that launch() starts servers in windows of that session.
use_recorded_session() {
    USE_TMUX="" TMUX_SESSION=""
    [[ -f $TMUX_FILE ]] || return 0
    read -r TMUX_SESSION <"$TMUX_FILE" || true
    [[ -n $TMUX_SESSION ]] || return 0
    command -v tmux >/dev/null 2>&1 ||
        die "this cluster runs in tmux session '$TMUX_SESSION', but tmux is not installed"
    USE_TMUX=1
}

# Sets RUST_LOG_VALUE, CLI_BIN and META_URL for launch() and wait_ready() from the state file.
use_recorded_cluster() {
    RUST_LOG_VALUE=${RUST_LOG:-${ST_RUST_LOG:-info}}
    CLI_BIN=${ST_BIN_DIR:-$(target_dir)/$ST_PROFILE}/bigfs
    META_URL=http://$HOST:$ST_BASE_PORT
}

# Prints why a start failed (WAIT_PROBLEM and the logs of WAIT_FAULTY) on stderr.
report_wait_failure() {
    local what=$1 name
    echo "cluster.sh: $what failed: $WAIT_PROBLEM" >&2
    for name in "${WAIT_FAULTY[@]}"; do show_log_tail "$name" 30; done
}

cmd_restart() {
    local name=""
    while (($#)); do
        case $1 in
            -h | --help) usage; exit 0 ;;
            -*) echo "cluster.sh: restart: unknown option '$1'" >&2; exit 2 ;;
            *) [[ -z $name ]] || { echo "cluster.sh: restart takes one NAME" >&2; exit 2; }; name=$1; shift ;;
        esac
    done
    [[ -n $name ]] || { echo "cluster.sh: usage: restart NAME (NAME: meta, node1, node2, ..., gateway)" >&2; exit 2; }
    [[ $name =~ ^(meta|node[0-9]+|gateway)$ ]] || die "unknown process '$name' (expected meta, node1, node2, ..., gateway)"
    load_state
    [[ -n $ST_FOUND ]] || die "no cluster in $DIR (start one with '$PROG up')"
    local args_file=$CMD_DIR/$name.args
    # `up` and `add-node` record the command line of every process they start.
    [[ -f $args_file ]] ||
        die "$name is not part of the cluster in $DIR (no $args_file; a cluster started by an older cluster.sh needs '$PROG down' and '$PROG up' first)"
    local arg
    local -a argv=()
    while IFS= read -r -d '' arg; do argv+=("$arg"); done <"$args_file"
    ((${#argv[@]})) || die "empty command line in $args_file"
    use_recorded_session
    use_recorded_cluster

    if is_running "$name"; then
        stop_names "$name"
    else
        echo "$name is not running; starting it"
        rm -f "$PID_DIR/$name.pid"
    fi
    local port p i
    port=$(port_of "$name" "$ST_BASE_PORT")
    local -a ports=("$port")
    if [[ $name == gateway ]] && gateway_serves_s3; then ports+=("$((ST_BASE_PORT + S3_OFFSET))"); fi
    for p in "${ports[@]}"; do
        for ((i = 0; i < 25; i++)); do
            port_in_use "$p" || break
            sleep 0.2
        done
        if port_in_use "$p"; then
            die "port $HOST:$p of $name is held by another program; stop it and run '$PROG restart $name' again"
        fi
    done

    local started_ms
    started_ms=$(now_ms)
    mkdir -p "$PID_DIR" "$LOG_DIR"
    if ! launch "$name" "${argv[@]}"; then
        show_log_tail "$name" 30
        die "$name did not start (no pid file)"
    fi
    if [[ $name == meta ]]; then
        echo "started meta (pid $(pid_of meta)); waiting up to ${START_TIMEOUT}s for it to answer"
    elif [[ $name == gateway ]]; then
        echo "started gateway (pid $(pid_of gateway)); waiting up to ${START_TIMEOUT}s for the console and the S3 API"
    else
        echo "started $name (pid $(pid_of "$name")); waiting up to ${START_TIMEOUT}s for it to report"
    fi
    if ! wait_ready "$started_ms" "$name"; then
        report_wait_failure "restart $name"
        echo "$name is left as it is; see '$PROG status'" >&2
        exit 1
    fi
    echo "$name is up again: pid $(pid_of "$name"), $HOST:$port, log $LOG_DIR/$name.log"
    if [[ $name == meta ]]; then
        echo "(the storage nodes register again with their next heartbeat)"
    fi
}

cmd_add_node() {
    while (($#)); do
        case $1 in
            -h | --help) usage; exit 0 ;;
            *) echo "cluster.sh: add-node: unknown argument '$1'" >&2; exit 2 ;;
        esac
    done
    load_state
    [[ -n $ST_FOUND ]] || die "no cluster in $DIR (start one with '$PROG up')"
    is_running meta || die "the metadata server of the cluster in $DIR is not running (see '$PROG status')"
    local i=$((ST_NODES + 1))
    local name=node$i port=$((ST_BASE_PORT + i)) http_port=$((ST_BASE_PORT + HTTP_OFFSET + i))
    ((i < GATEWAY_OFFSET)) || die "a cluster has at most $((GATEWAY_OFFSET - 1)) storage nodes (port P+$GATEWAY_OFFSET is the console's)"
    ((http_port <= 65535)) || die "no port left for $name above base port $ST_BASE_PORT"
    if is_running "$name"; then
        die "$name already runs (pid $(pid_of "$name")) though $STATE_FILE counts $ST_NODES nodes; run '$PROG down' and '$PROG up'"
    fi
    local p
    for p in "$port" "$http_port"; do
        if port_in_use "$p"; then
            die "port $HOST:$p for $name is already in use; stop whatever holds it and try again"
        fi
    done
    use_recorded_session
    use_recorded_cluster
    local node_bin=${ST_BIN_DIR:-$(target_dir)/$ST_PROFILE}/bigfs-node
    [[ -x $node_bin ]] || die "binary $node_bin not found"
    # The flags the other nodes got at `up`, unless BIGFS_NODE_ARGS is set now.
    local -a node_extra=()
    read -r -a node_extra <<<"${BIGFS_NODE_ARGS-$ST_NODE_ARGS}" || true

    local started_ms
    started_ms=$(now_ms)
    mkdir -p "$DIR/$name" "$PID_DIR" "$LOG_DIR"
    if ! launch "$name" "$node_bin" --listen "$HOST:$port" --http-listen "$HOST:$http_port" --meta "$META_URL" \
        --data "$DIR/$name" --id "$name" ${node_extra[@]+"${node_extra[@]}"}; then
        show_log_tail "$name" 30
        stop_names "$name" >&2
        die "$name did not start (no pid file)"
    fi
    # Counted in at once, so that status, logs, restart and down know it while it starts.
    ST_NODES=$i
    write_state
    echo "started $name (pid $(pid_of "$name")) on $HOST:$port; waiting up to ${START_TIMEOUT}s for it to be alive"
    if ! wait_ready "$started_ms" "$name"; then
        report_wait_failure "add-node"
        echo "stopping $name (log kept in $LOG_DIR)" >&2
        stop_names "$name" >&2
        ST_NODES=$((i - 1))
        write_state
        exit 1
    fi
    echo "$name is up: pid $(pid_of "$name"), $HOST:$port, data $DIR/$name, log $LOG_DIR/$name.log, metrics $(metrics_url_of "$name" "$ST_BASE_PORT")"
}

# ---------------------------------------------------------------- other commands

cmd_status() {
    [[ $# -eq 0 ]] || { echo "cluster.sh: status takes no arguments" >&2; exit 2; }
    # The report is gathered first and written at once, so that no child writes to a reader
    # that may have gone (`status | head -1`): the bigfs CLI panics on a closed stdout.
    local report rc=0
    report=$(status_report) || rc=$?
    emit "$report"
    return "$rc"
}

# Prints the status report; returns 0 if every process runs, 3 otherwise.
status_report() {
    load_state
    local -a names=()
    local name i
    if [[ -n $ST_FOUND ]]; then
        names=(meta)
        for ((i = 1; i <= ST_NODES; i++)); do names+=("node$i"); done
        # A cluster from before the gateway has no command line recorded for it.
        [[ ! -f $CMD_DIR/gateway.args ]] || names+=(gateway)
    fi
    # Also any process with a pid file beyond the recorded ones.
    while IFS= read -r name; do
        if [[ -n $name && " ${names[*]} " != *" $name "* ]]; then names+=("$name"); fi
    done < <(pidfile_names)
    if ((${#names[@]} == 0)); then
        echo "no cluster in $DIR (start one with '$PROG up')"
        return 3
    fi
    local bin_dir=${ST_BIN_DIR:-$(target_dir)/$ST_PROFILE}
    echo "cluster dir $DIR (storage nodes: $ST_NODES, base port: $ST_BASE_PORT, binaries: $bin_dir)"
    printf '%-7s %-8s %-8s %-21s %s\n' NAME PID STATE LISTEN METRICS
    local all=0 pid state
    for name in "${names[@]}"; do
        pid=$(pid_of "$name")
        if [[ -n $pid ]] && is_bigfs_pid "$pid"; then state=running; else state=stopped; all=3; pid=""; fi
        printf '%-7s %-8s %-8s %-21s %s\n' "$name" "${pid:--}" "$state" \
            "$HOST:$(port_of "$name" "$ST_BASE_PORT")" "$(metrics_url_of "$name" "$ST_BASE_PORT")"
    done
    if [[ " ${names[*]} " == *" gateway "* ]]; then
        echo "web console: http://$HOST:$(port_of gateway "$ST_BASE_PORT")/"
        if gateway_serves_s3; then print_s3 "$ST_BASE_PORT"; fi
    fi
    if [[ -f $TMUX_FILE ]]; then echo "tmux session: $(<"$TMUX_FILE")"; fi
    if is_running meta && [[ -x $bin_dir/bigfs ]]; then
        echo
        echo "bigfs nodes:"
        local -a to=()
        command -v timeout >/dev/null 2>&1 && to=(timeout 5)
        ${to[@]+"${to[@]}"} "$bin_dir/bigfs" --meta "http://$HOST:$ST_BASE_PORT" nodes 2>&1 ||
            echo "(bigfs nodes failed)"
    fi
    return "$all"
}

cmd_logs() {
    local name="" follow="" lines=50
    while (($#)); do
        case $1 in
            -f | --follow) follow=1; shift ;;
            -n) [[ $# -ge 2 ]] || die "-n needs a value"; lines=$2; shift 2 ;;
            -h | --help) usage; exit 0 ;;
            -*) echo "cluster.sh: logs: unknown option '$1'" >&2; exit 2 ;;
            *) [[ -z $name ]] || { echo "cluster.sh: logs takes one NAME" >&2; exit 2; }; name=$1; shift ;;
        esac
    done
    [[ -n $name ]] || { echo "cluster.sh: usage: logs NAME [-f] [-n LINES] (NAME: meta, node1, ..., gateway)" >&2; exit 2; }
    [[ $name =~ ^(meta|node[0-9]+|gateway)$ ]] || die "unknown process '$name' (expected meta, node1, node2, ..., gateway)"
    [[ $lines =~ ^[0-9]+$ ]] || die "-n needs a number"
    local log=$LOG_DIR/$name.log
    if [[ ! -f $log ]]; then
        local avail="" f
        for f in "$LOG_DIR"/*.log; do
            if [[ -e $f ]]; then avail+="$(basename "$f" .log) "; fi
        done
        die "no log $log${avail:+ (logs: $avail)}"
    fi
    if [[ -n $follow ]]; then exec tail -n "$lines" -F "$log"; fi
    local text
    text=$(tail -n "$lines" "$log") || die "cannot read $log"
    [[ -z $text ]] || emit "$text"
}

cmd_env() {
    [[ $# -eq 0 ]] || { echo "cluster.sh: env takes no arguments" >&2; exit 2; }
    load_state
    emit "export BIGFS_META=http://$HOST:$ST_BASE_PORT"
}

cmd_s3_env() {
    [[ $# -eq 0 ]] || { echo "cluster.sh: s3-env takes no arguments" >&2; exit 2; }
    load_state
    read_s3_keys || die "no S3 key pair in $S3_KEYS_FILE (it is made by '$PROG up')"
    # us-east-1: what the gateway answers GetBucketLocation with; some clients want a region.
    emit "export AWS_ENDPOINT_URL=$(s3_url_of "$ST_BASE_PORT")" \
        "export AWS_ACCESS_KEY_ID=$S3_ACCESS" \
        "export AWS_SECRET_ACCESS_KEY=$S3_SECRET" \
        "export AWS_DEFAULT_REGION=us-east-1"
}

cmd_down() {
    local wipe=""
    while (($#)); do
        case $1 in
            --wipe) wipe=1; shift ;;
            -h | --help) usage; exit 0 ;;
            *) echo "cluster.sh: down: unknown option '$1'" >&2; exit 2 ;;
        esac
    done
    if [[ -d $PID_DIR ]]; then
        stop_all
    else
        echo "no pid files in $PID_DIR: nothing to stop"
    fi
    if [[ -n $wipe ]]; then
        [[ -d $DIR ]] || { echo "nothing to wipe: $DIR does not exist"; return 0; }
        # Refuse to delete something that is obviously not a cluster directory.
        case $DIR in
            / | "$HOME" | "$REPO") die "refusing to wipe $DIR" ;;
        esac
        if [[ ! -f $STATE_FILE && ! -d $PID_DIR && ! -d $LOG_DIR && ! -d $DIR/meta ]]; then
            die "refusing to wipe $DIR: it does not look like a cluster directory"
        fi
        rm -rf -- "$DIR"
        echo "wiped $DIR"
    else
        echo "data kept in $DIR ('$PROG down --wipe' deletes it)"
    fi
}

main() {
    local cmd=${1:-}
    [[ $# -eq 0 ]] || shift
    case $cmd in
        up) cmd_up "$@" ;;
        restart) cmd_restart "$@" ;;
        add-node) cmd_add_node "$@" ;;
        status) cmd_status "$@" ;;
        logs | log) cmd_logs "$@" ;;
        env) cmd_env "$@" ;;
        s3-env) cmd_s3_env "$@" ;;
        down | stop) cmd_down "$@" ;;
        help | -h | --help) usage ;;
        "") usage; exit 2 ;;
        *) echo "cluster.sh: unknown command '$cmd'" >&2; usage >&2; exit 2 ;;
    esac
}

main "$@"
