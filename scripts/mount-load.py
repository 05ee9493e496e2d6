#!/usr/bin/env python3
"""The workload of `bigfs bench load`, through a mounted file system (a peer's FUSE mount).

Rounds of N clients at once; each client is a thread (file I/O releases the GIL) that puts one
big file, then gets it, then puts its small files one by one, then gets them. Every put is
written, fsynced and closed before it counts (what a BigFS put acknowledges); every get reads
the whole file back and compares it with what was written. Reported per round and phase, in
the JSON shape of `bigfs bench load --json`: bytes, seconds, ops/s, MiB/s and per-file latency
percentiles (nearest rank), so that scripts/bench.sh sets both side by side.

Between a round's puts and its gets the page cache is dropped where this runs as root, so the
gets read from the servers (the mount's own caches, if it has any, stay: say so when quoting).

  mount-load.py --dir MOUNT/subdir [--clients 1,4,8,16] [--big-mib 256] [--small-files 200]
                [--small-kib 64]
"""

import argparse
import json
import os
import sys
import threading
import time

BLOCK = 1 << 20


def percentile(sorted_values, percent):
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), -(-len(sorted_values) * percent // 100)))
    return sorted_values[int(rank) - 1]


def phase(total_bytes, seconds, latencies):
    lat = sorted(latencies)
    ms = [x * 1000.0 for x in lat]
    return {
        "ops": len(lat),
        "bytes": total_bytes,
        "seconds": seconds,
        "ops_per_sec": len(lat) / max(seconds, 1e-9),
        "mib_per_sec": total_bytes / (1 << 20) / max(seconds, 1e-9),
        "p50_ms": percentile(ms, 50),
        "p90_ms": percentile(ms, 90),
        "p99_ms": percentile(ms, 99),
        "max_ms": percentile(ms, 100),
    }


def put(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        view = memoryview(data)
        for off in range(0, len(data), BLOCK):
            chunk = view[off : off + BLOCK]
            while chunk:
                chunk = chunk[os.write(fd, chunk) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def get(path, data):
    with open(path, "rb", buffering=0) as f:
        got = bytearray()
        while True:
            block = f.read(BLOCK)
            if not block:
                break
            got += block
    if got != data:
        raise RuntimeError(f"{path}: read {len(got)} bytes that differ from the {len(data)} written")


def drop_caches():
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError:
        pass


def run_phase(jobs):
    """Runs one list of (function, path, data) per client at once; returns (bytes, secs, lats)."""
    latencies, errors = [], []
    lock = threading.Lock()

    def client(work):
        mine = []
        try:
            for fn, path, data in work:
                t = time.perf_counter()
                fn(path, data)
                mine.append(time.perf_counter() - t)
        except Exception as e:  # reported below, the round fails
            errors.append(e)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(w,)) for w in jobs]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    if errors:
        raise errors[0]
    return sum(len(d) for w in jobs for _, _, d in w), seconds, latencies


def round_of(clients, root, big, smalls):
    dirs = [os.path.join(root, f"c{clients:03}", f"client{i:02}") for i in range(clients)]
    for d in dirs:
        os.makedirs(d)
    result = {"clients": clients}
    if big:
        works = [[(put, os.path.join(d, "big"), big[i])] for i, d in enumerate(dirs)]
        result["big_put"] = phase(*run_phase(works))
        drop_caches()
        result["big_get"] = phase(*run_phase([[(get, p, data) for _, p, data in w] for w in works]))
    if smalls:
        works = [
            [(put, os.path.join(d, f"s{j:05}"), smalls[i][j]) for j in range(len(smalls[i]))]
            for i, d in enumerate(dirs)
        ]
        result["small_put"] = phase(*run_phase(works))
        drop_caches()
        result["small_get"] = phase(*run_phase([[(get, p, data) for _, p, data in w] for w in works]))
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", required=True, help="where to write; must not exist yet")
    ap.add_argument("--clients", default="1,4,8,16")
    ap.add_argument("--big-mib", type=int, default=256)
    ap.add_argument("--small-files", type=int, default=200)
    ap.add_argument("--small-kib", type=int, default=64)
    args = ap.parse_args()
    counts = [int(c) for c in args.clients.split(",")]
    if any(c <= 0 for c in counts) or args.big_mib < 0 or args.small_files < 0:
        sys.exit("mount-load.py: --clients must be positive numbers, sizes not negative")
    if os.path.exists(args.dir):
        sys.exit(f"mount-load.py: {args.dir} exists already")
    rounds = []
    for clients in counts:
        # Fresh random data per client and round (not timed): nothing deduplicates.
        big = [os.urandom(args.big_mib << 20) for _ in range(clients)] if args.big_mib else []
        smalls = [
            [os.urandom(args.small_kib << 10) for _ in range(args.small_files)]
            for _ in range(clients)
        ]
        rounds.append(round_of(clients, args.dir, big, smalls if args.small_files else []))
        del big, smalls
    json.dump(rounds, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
