#!/usr/bin/env bash
# The gateway's peak memory while a large stream goes through the web console's API: starts a
# throw-away cluster (scripts/cluster.sh, release binaries), uploads SIZE bytes from
# /dev/urandom with `curl -T -` (a chunked body, never held whole by curl), downloads them back,
# checks that the bytes match (sha256), and reports the gateway's VmHWM (peak resident memory)
# for each half; the peak is reset in between (/proc/PID/clear_refs). A benchmark, not a test:
# run it on an otherwise idle machine.
#
#   scripts/gateway-rss.sh [--size-mib N] [--base-port P] [--no-build]
#
# N defaults to 5120 (5 GiB). The cluster keeps one copy of each chunk (BIGFS_META_ARGS, unless
# set) so that the disk needs N MiB, not three times that; the gateway sends each chunk once
# either way. The cluster lives in a temporary directory, removed at the end.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
size_mib=5120 base_port=29400 build=()
while (($#)); do
    case $1 in
        --size-mib) size_mib=$2; shift 2 ;;
        --base-port) base_port=$2; shift 2 ;;
        --no-build) build=(--no-build); shift ;;
        -h | --help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "gateway-rss.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
[[ $size_mib =~ ^[0-9]+$ ]] || { echo "gateway-rss.sh: --size-mib needs a number" >&2; exit 2; }
command -v curl >/dev/null || { echo "gateway-rss.sh: needs curl (apt-get install curl)" >&2; exit 1; }

export BIGFS_CLUSTER_DIR
BIGFS_CLUSTER_DIR=$(mktemp -d /tmp/bigfs-rss.XXXXXX)
export BIGFS_META_ARGS=${BIGFS_META_ARGS:---replication 1 --min-replicas 1}
export BIGFS_NODE_ARGS=${BIGFS_NODE_ARGS:---capacity $((size_mib * 2))MiB}
cleanup() { "$SCRIPT_DIR/cluster.sh" down --wipe >/dev/null 2>&1 || true; }
trap cleanup EXIT

"$SCRIPT_DIR/cluster.sh" up --base-port "$base_port" "${build[@]}" >/dev/null
pid=$(<"$BIGFS_CLUSTER_DIR/pids/gateway.pid")
url=http://127.0.0.1:$((base_port + 80))/api
peak() { awk '/^VmHWM/ { printf "%.1f MiB", $2 / 1024 }' "/proc/$pid/status"; }
echo "gateway pid $pid, after start: VmHWM $(peak)"

sums=$BIGFS_CLUSTER_DIR/sums
start=$SECONDS
head -c "$((size_mib * 1024 * 1024))" /dev/urandom | tee >(sha256sum >"$sums.up") |
    curl -sS --fail-with-body -T - "$url/file?path=/rss/blob" >/dev/null
echo "upload of $size_mib MiB in $((SECONDS - start)) s: VmHWM $(peak)"

echo 5 >"/proc/$pid/clear_refs" # resets VmHWM to the current RSS
start=$SECONDS
curl -sS --fail "$url/download?path=/rss/blob" | sha256sum >"$sums.down"
echo "download of $size_mib MiB in $((SECONDS - start)) s: VmHWM $(peak)"
sleep 0.2 # the upload's sha256sum runs in a process substitution
if [[ $(cut -d' ' -f1 "$sums.up") == $(cut -d' ' -f1 "$sums.down") ]]; then
    echo "the download matches the upload (sha256 $(cut -c1-16 "$sums.down")…)"
else
    echo "gateway-rss.sh: the download differs from the upload" >&2
    exit 1
fi
