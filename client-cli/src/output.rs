//! How the CLI prints results: aligned text for people, JSON (`--json`) for scripts.

use std::time::{Duration, UNIX_EPOCH};

use bytesize::ByteSize;
use serde_json::{json, Value};

use bigfs_client::bench::MetaBenchReport;
use bigfs_client::tree::TreeReport;
use bigfs_client::upload::PutReport;
use bigfs_proto::pb::{DirEntry, FsckResponse, GetFileResponse, ListNodesResponse};

fn rfc3339(mtime_ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(mtime_ms)).to_string()
}

fn human(bytes: u64) -> String {
    ByteSize(bytes).display().iec().to_string()
}

fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("JSON values serialise")
    );
}

pub fn put_report(report: &PutReport, json: bool) {
    if json {
        print_json(&json!({
            "path": report.path.as_str(),
            "size": report.size,
            "chunks": report.chunks,
            "deduplicated": report.deduplicated,
            "version": report.version,
            "seconds": report.elapsed.as_secs_f64(),
        }));
    } else if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        let secs = report.elapsed.as_secs_f64().max(1e-6);
        eprintln!(
            "put {}: {} in {:.2}s ({}/s), {} chunks, {} already stored",
            report.path,
            human(report.size),
            secs,
            human((report.size as f64 / secs) as u64),
            report.chunks,
            report.deduplicated
        );
    }
}

pub fn listing(entries: &[DirEntry], long: bool, json: bool) {
    if json {
        let items: Vec<Value> = entries
            .iter()
            .map(|e| {
                if e.is_dir {
                    json!({"path": e.path, "kind": "dir", "size": 0, "mtime": null})
                } else {
                    json!({
                        "path": e.path,
                        "kind": "file",
                        "size": e.size,
                        "mtime": rfc3339(e.mtime_ms),
                        "replication": e.replication,
                        "chunks": e.chunks,
                    })
                }
            })
            .collect();
        print_json(&Value::Array(items));
        return;
    }
    for e in entries {
        let name = e.path.rsplit('/').next().unwrap_or(&e.path);
        let name = if e.is_dir {
            format!("{name}/")
        } else {
            name.to_string()
        };
        if !long {
            println!("{name}");
        } else if e.is_dir {
            println!("d {:>2} {:>14} {:>24} {name}", "-", "-", "-");
        } else {
            println!(
                "- {:>2} {:>14} {:>24} {name}",
                e.replication,
                e.size,
                rfc3339(e.mtime_ms)
            );
        }
    }
}

pub fn stat(file: &GetFileResponse, json: bool) {
    let info = file.file.clone().unwrap_or_default();
    if json {
        let chunks: Vec<Value> = file
            .chunks
            .iter()
            .map(|c| {
                json!({
                    "index": c.index,
                    "id": c.id,
                    "size": c.size,
                    "replicas": c.replicas.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
                })
            })
            .collect();
        print_json(&json!({
            "path": info.path,
            "size": info.size,
            "replication": info.replication,
            "chunk_size": info.chunk_size,
            "version": info.version,
            "mtime": rfc3339(info.mtime_ms),
            "chunks": chunks,
        }));
        return;
    }
    println!("path:        {}", info.path);
    println!("size:        {} ({})", info.size, human(info.size));
    println!("replication: {}", info.replication);
    println!("chunk size:  {}", human(info.chunk_size));
    println!("version:     {}", info.version);
    println!("modified:    {}", rfc3339(info.mtime_ms));
    println!("chunks:      {}", file.chunks.len());
    for c in &file.chunks {
        let replicas: Vec<&str> = c.replicas.iter().map(|r| r.id.as_str()).collect();
        let replicas = if replicas.is_empty() {
            "(no live copy)".to_string()
        } else {
            replicas.join(",")
        };
        println!("  {:>6}  {}  {:>9}  {}", c.index, c.id, c.size, replicas);
    }
}

pub fn nodes(reply: &ListNodesResponse, json: bool) {
    if json {
        let items: Vec<Value> = reply
            .nodes
            .iter()
            .map(|n| {
                json!({
                    "id": n.id,
                    "addr": n.addr,
                    "state": n.state,
                    "capacity": n.capacity,
                    "used": n.used,
                    "chunks": n.chunks,
                    "last_heartbeat_ms": n.last_heartbeat_ms_ago,
                })
            })
            .collect();
        print_json(&Value::Array(items));
        return;
    }
    if reply.safe_mode {
        println!("(safe mode: waiting for known nodes to report; no deletions yet)");
    }
    println!(
        "{:<16} {:<26} {:<8} {:>23} {:>9} {:>10}",
        "ID", "ADDRESS", "STATE", "USED / CAPACITY", "CHUNKS", "HEARTBEAT"
    );
    for n in &reply.nodes {
        println!(
            "{:<16} {:<26} {:<8} {:>23} {:>9} {:>9.1}s",
            n.id,
            n.addr,
            n.state,
            format!("{} / {}", human(n.used), human(n.capacity)),
            n.chunks,
            n.last_heartbeat_ms_ago as f64 / 1000.0
        );
    }
}

pub fn fsck(report: &FsckResponse, json: bool) {
    if json {
        let problems: Vec<Value> = report
            .problems
            .iter()
            .map(|p| {
                json!({
                    "chunk_id": p.chunk_id,
                    "state": p.state,
                    "live_copies": p.live_copies,
                    "wanted_copies": p.wanted_copies,
                    "path": p.path,
                })
            })
            .collect();
        print_json(&json!({
            "files": report.files,
            "chunks": report.chunks,
            "healthy": report.healthy,
            "under_replicated": report.under_replicated,
            "missing": report.missing,
            "corrupt": report.corrupt,
            "repairs_in_flight": report.repairs_in_flight,
            "safe_mode": report.safe_mode,
            "problems": problems,
        }));
        return;
    }
    println!("files:             {}", report.files);
    println!("chunks:            {}", report.chunks);
    println!("healthy:           {}", report.healthy);
    println!("under-replicated:  {}", report.under_replicated);
    println!("missing:           {}", report.missing);
    println!("corrupt:           {}", report.corrupt);
    println!("repairs in flight: {}", report.repairs_in_flight);
    if report.safe_mode {
        println!("(safe mode: waiting for known nodes to report; no repair yet)");
    }
    for p in &report.problems {
        println!(
            "  {:<16} {}  {}/{} copies  {}",
            p.state, p.chunk_id, p.live_copies, p.wanted_copies, p.path
        );
    }
    if report.missing == 0 && report.under_replicated == 0 && report.corrupt == 0 {
        println!("status: healthy");
    }
}

pub fn drain(id: &str, chunks: u64, json: bool) {
    if json {
        print_json(&json!({"id": id, "state": "draining", "chunks": chunks}));
    } else {
        println!("draining {id}: {chunks} chunk(s) to copy elsewhere; `bigfs nodes` shows \"drained\" when it is safe to remove");
    }
}

pub fn tree_report(verb: &str, report: &TreeReport, json: bool) {
    if json {
        let failed: Vec<Value> = report
            .failed
            .iter()
            .map(|(path, error)| json!({"path": path, "error": error}))
            .collect();
        print_json(&json!({
            "files": report.files,
            "bytes": report.bytes,
            "failed": failed,
            "seconds": report.elapsed.as_secs_f64(),
        }));
    } else if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        let secs = report.elapsed.as_secs_f64().max(1e-6);
        eprintln!(
            "{verb}: {} files, {} in {:.2}s ({:.0} files/s)",
            report.files,
            human(report.bytes),
            secs,
            report.files as f64 / secs
        );
    }
}

pub fn meta_bench(report: &MetaBenchReport, json: bool) {
    if json {
        print_json(&json!({
            "files": report.files,
            "create_seconds": report.create_time.as_secs_f64(),
            "creates_per_sec": report.creates_per_sec(),
            "listed_entries": report.listed_entries,
            "list_seconds": report.list_time.as_secs_f64(),
        }));
    } else {
        println!(
            "created {} records in {:.2}s: {:.0} creates/s",
            report.files,
            report.create_time.as_secs_f64(),
            report.creates_per_sec()
        );
        println!(
            "listed {} entries in {:.3}s",
            report.listed_entries,
            report.list_time.as_secs_f64()
        );
    }
}
