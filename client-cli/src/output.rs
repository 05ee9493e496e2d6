//! How the CLI prints results: aligned text for people, JSON (`--json`) for scripts.

use std::io::{self, Write};
use std::time::{Duration, UNIX_EPOCH};

use bytesize::ByteSize;
use serde_json::{json, Value};

use bigfs_client::bench::load::LoadRound;
use bigfs_client::bench::small::SmallBenchReport;
use bigfs_client::bench::MetaBenchReport;
use bigfs_client::health::{self, Verdict};
use bigfs_client::tree::TreeReport;
use bigfs_client::upload::PutReport;
use bigfs_proto::pb::{DirEntry, FsckResponse, GetFileResponse, ListNodesResponse, UsageResponse};
use bigfs_proto::FsPath;

fn rfc3339(mtime_ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(mtime_ms)).to_string()
}

fn human(bytes: u64) -> String {
    ByteSize(bytes).display().iec().to_string()
}

fn print_json(out: &mut impl Write, value: &Value) -> io::Result<()> {
    writeln!(
        out,
        "{}",
        serde_json::to_string_pretty(value).expect("JSON values serialise")
    )
}

pub fn put_report(out: &mut impl Write, report: &PutReport, json: bool) -> io::Result<()> {
    if json {
        print_json(
            out,
            &json!({
                "path": report.path.as_str(),
                "size": report.size,
                "chunks": report.chunks,
                "deduplicated": report.deduplicated,
                "version": report.version,
                "seconds": report.elapsed.as_secs_f64(),
            }),
        )?;
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
    Ok(())
}

/// How `ls` prints entries.
pub struct ListFormat {
    /// Kind, replication, size and modification time, not just the name.
    pub long: bool,
    /// Sizes in KiB, MiB, GiB (long format only, as `ls -h`).
    pub human: bool,
    pub json: bool,
}

/// One directory's entries (or a file by itself).
pub fn listing(out: &mut impl Write, entries: &[DirEntry], format: &ListFormat) -> io::Result<()> {
    if format.json {
        return print_json(out, &entries.iter().map(entry_json).collect());
    }
    entry_lines(out, entries, format)
}

/// Directories and their entries, as `ls -R` prints them: each directory's entries under a
/// "/path:" header; with JSON, one flat array of every entry.
pub fn tree_listing(
    out: &mut impl Write,
    listings: &[(FsPath, Vec<DirEntry>)],
    format: &ListFormat,
) -> io::Result<()> {
    if format.json {
        let all = listings.iter().flat_map(|(_, entries)| entries);
        return print_json(out, &all.map(entry_json).collect());
    }
    for (i, (dir, entries)) in listings.iter().enumerate() {
        // A file lists as itself, without a header (as `ls -R FILE` does).
        let file = matches!(entries.as_slice(), [e] if !e.is_dir && e.path == dir.as_str());
        if i > 0 {
            writeln!(out)?;
        }
        if !file {
            writeln!(out, "{dir}:")?;
        }
        entry_lines(out, entries, format)?;
    }
    Ok(())
}

fn entry_json(e: &DirEntry) -> Value {
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
}

fn entry_lines(out: &mut impl Write, entries: &[DirEntry], format: &ListFormat) -> io::Result<()> {
    for e in entries {
        let name = e.path.rsplit('/').next().unwrap_or(&e.path);
        let name = if e.is_dir {
            format!("{name}/")
        } else {
            name.to_string()
        };
        if !format.long {
            writeln!(out, "{name}")?;
        } else if e.is_dir {
            writeln!(out, "d {:>2} {:>14} {:>24} {name}", "-", "-", "-")?;
        } else {
            let size = if format.human {
                human(e.size)
            } else {
                e.size.to_string()
            };
            writeln!(
                out,
                "- {:>2} {size:>14} {:>24} {name}",
                e.replication,
                rfc3339(e.mtime_ms)
            )?;
        }
    }
    Ok(())
}

pub fn stat(out: &mut impl Write, file: &GetFileResponse, json: bool) -> io::Result<()> {
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
        print_json(
            out,
            &json!({
                "path": info.path,
                "size": info.size,
                "replication": info.replication,
                "chunk_size": info.chunk_size,
                "version": info.version,
                "mtime": rfc3339(info.mtime_ms),
                "mtime_ms": info.mtime_ms,
                "mode": format!("{:o}", info.mode),
                "content_hash": info.content_hash,
                "chunks": chunks,
            }),
        )?;
        return Ok(());
    }
    writeln!(out, "path:        {}", info.path)?;
    writeln!(out, "size:        {} ({})", info.size, human(info.size))?;
    writeln!(out, "replication: {}", info.replication)?;
    writeln!(out, "chunk size:  {}", human(info.chunk_size))?;
    writeln!(out, "version:     {}", info.version)?;
    writeln!(out, "modified:    {}", rfc3339(info.mtime_ms))?;
    writeln!(out, "mode:        {:o}", info.mode)?;
    writeln!(
        out,
        "content:     {} (BLAKE3 of the chunk ids)",
        info.content_hash
    )?;
    writeln!(out, "chunks:      {}", file.chunks.len())?;
    for c in &file.chunks {
        let replicas: Vec<&str> = c.replicas.iter().map(|r| r.id.as_str()).collect();
        let replicas = if replicas.is_empty() {
            "(no live copy)".to_string()
        } else {
            replicas.join(",")
        };
        writeln!(
            out,
            "  {:>6}  {}  {:>9}  {}",
            c.index, c.id, c.size, replicas
        )?;
    }
    Ok(())
}

pub fn nodes(out: &mut impl Write, reply: &ListNodesResponse, json: bool) -> io::Result<()> {
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
        print_json(out, &Value::Array(items))?;
        return Ok(());
    }
    if reply.safe_mode {
        writeln!(
            out,
            "{}",
            safe_mode_line(&reply.safe_mode_waiting_for, Some(reply.safe_mode_left_ms))
        )?;
    }
    writeln!(
        out,
        "{:<16} {:<26} {:<8} {:>23} {:>9} {:>10}",
        "ID", "ADDRESS", "STATE", "USED / CAPACITY", "CHUNKS", "HEARTBEAT"
    )?;
    for n in &reply.nodes {
        writeln!(
            out,
            "{:<16} {:<26} {:<8} {:>23} {:>9} {:>9.1}s",
            n.id,
            n.addr,
            n.state,
            format!("{} / {}", human(n.used), human(n.capacity)),
            n.chunks,
            n.last_heartbeat_ms_ago as f64 / 1000.0
        )?;
    }
    Ok(())
}

pub fn fsck(out: &mut impl Write, report: &FsckResponse, json: bool) -> io::Result<()> {
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
        print_json(
            out,
            &json!({
                "files": report.files,
                "chunks": report.chunks,
                "healthy": report.healthy,
                "under_replicated": report.under_replicated,
                "missing": report.missing,
                "corrupt": report.corrupt,
                "repairs_in_flight": report.repairs_in_flight,
                "safe_mode": report.safe_mode,
                "safe_mode_waiting_for": report.safe_mode_waiting_for,
                "problem_chunks": report.problem_chunks,
                "problems": problems,
            }),
        )?;
        return Ok(());
    }
    writeln!(out, "files:             {}", report.files)?;
    writeln!(out, "chunks:            {}", report.chunks)?;
    writeln!(out, "healthy:           {}", report.healthy)?;
    writeln!(out, "under-replicated:  {}", report.under_replicated)?;
    writeln!(out, "missing:           {}", report.missing)?;
    writeln!(out, "corrupt:           {}", report.corrupt)?;
    writeln!(out, "repairs in flight: {}", report.repairs_in_flight)?;
    if report.safe_mode {
        writeln!(
            out,
            "{}",
            safe_mode_line(&report.safe_mode_waiting_for, None)
        )?;
    }
    for p in &report.problems {
        writeln!(
            out,
            "  {:<16} {}  {}/{} copies  {}",
            p.state, p.chunk_id, p.live_copies, p.wanted_copies, p.path
        )?;
    }
    let left_out = report
        .problem_chunks
        .saturating_sub(report.problems.len() as u64);
    if left_out > 0 {
        writeln!(
            out,
            "  … and {left_out} more problem chunk(s) not listed (--max-problems)"
        )?;
    }
    writeln!(out, "status: {}", fsck_status(report))?;
    Ok(())
}

/// The one-word verdict of a check, with the counts behind it.
fn fsck_status(report: &FsckResponse) -> String {
    let problems = health::problems(report);
    match Verdict::of(report) {
        Verdict::Healthy => "healthy".to_string(),
        Verdict::Unavailable => format!("DATA UNAVAILABLE: {problems}"),
        Verdict::Healing => format!("healing: {problems}"),
        Verdict::Degraded => format!("degraded: {problems}"),
    }
}

fn safe_mode_line(waiting_for: &[String], left_ms: Option<u64>) -> String {
    let left = left_ms.map_or(String::new(), |ms| {
        format!(", at most {:.0}s more", ms as f64 / 1000.0)
    });
    if waiting_for.is_empty() {
        format!("(safe mode: no repair or deletion yet{left})")
    } else {
        format!(
            "(safe mode: waiting for {} to report{left}; no repair or deletion yet; \
             `bigfs node remove ID` forgets a node that is gone for good)",
            waiting_for.join(", ")
        )
    }
}

pub fn drain(out: &mut impl Write, id: &str, chunks: u64, json: bool) -> io::Result<()> {
    if json {
        print_json(
            out,
            &json!({"id": id, "state": "draining", "chunks": chunks}),
        )?;
    } else {
        writeln!(out, "draining {id}: {chunks} chunk(s) to copy elsewhere; `bigfs nodes` shows \"drained\" when it is safe to remove")?;
    }
    Ok(())
}

pub fn tree_report(
    out: &mut impl Write,
    verb: &str,
    report: &TreeReport,
    json: bool,
) -> io::Result<()> {
    if json {
        let failed: Vec<Value> = report
            .failed
            .iter()
            .map(|(path, error)| json!({"path": path, "error": error}))
            .collect();
        print_json(
            out,
            &json!({
                "files": report.files,
                "bytes": report.bytes,
                "failed": failed,
                "seconds": report.elapsed.as_secs_f64(),
            }),
        )?;
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
    Ok(())
}

pub fn meta_bench(out: &mut impl Write, report: &MetaBenchReport, json: bool) -> io::Result<()> {
    if json {
        print_json(
            out,
            &json!({
                "files": report.files,
                "create_seconds": report.create_time.as_secs_f64(),
                "creates_per_sec": report.creates_per_sec(),
                "listed_entries": report.listed_entries,
                "list_seconds": report.list_time.as_secs_f64(),
                "copy_seconds": report.copy_time.as_secs_f64(),
                "move_seconds": report.move_time.as_secs_f64(),
            }),
        )?;
    } else {
        writeln!(
            out,
            "created {} records in {:.2}s: {:.0} creates/s",
            report.files,
            report.create_time.as_secs_f64(),
            report.creates_per_sec()
        )?;
        writeln!(
            out,
            "listed {} entries in {:.3}s",
            report.listed_entries,
            report.list_time.as_secs_f64()
        )?;
        writeln!(
            out,
            "cp -r of that directory in {:.3}s, mv in {:.3}s (one transaction each)",
            report.copy_time.as_secs_f64(),
            report.move_time.as_secs_f64()
        )?;
    }
    Ok(())
}

/// `bench small`: one line per phase, as `weed benchmark` prints its two.
pub fn small_bench(out: &mut impl Write, report: &SmallBenchReport, json: bool) -> io::Result<()> {
    if json {
        return print_json(
            out,
            &json!({"write": report.write.to_json(), "read": report.read.to_json()}),
        );
    }
    writeln!(out, "write: {}", report.write.line())?;
    writeln!(out, "read:  {}", report.read.line())
}

/// `bench load`: per number of clients, the four phases.
pub fn load_bench(out: &mut impl Write, rounds: &[LoadRound], json: bool) -> io::Result<()> {
    if json {
        let rounds: Vec<Value> = rounds
            .iter()
            .map(|r| {
                json!({
                    "clients": r.clients,
                    "big_put": r.big_put.to_json(),
                    "big_get": r.big_get.to_json(),
                    "small_put": r.small_put.to_json(),
                    "small_get": r.small_get.to_json(),
                })
            })
            .collect();
        return print_json(out, &Value::Array(rounds));
    }
    for r in rounds {
        writeln!(out, "{} client(s):", r.clients)?;
        writeln!(out, "  big put:   {}", r.big_put.line())?;
        writeln!(out, "  big get:   {}", r.big_get.line())?;
        writeln!(out, "  small put: {}", r.small_put.line())?;
        writeln!(out, "  small get: {}", r.small_get.line())?;
    }
    Ok(())
}

/// A rename's or copy's result.
pub fn moved(
    out: &mut impl Write,
    verb: &str,
    src: &FsPath,
    dst: &str,
    files: u64,
    bytes: Option<u64>,
    json: bool,
) -> io::Result<()> {
    if json {
        let mut value = json!({"from": src.as_str(), "to": dst, "files": files});
        if let Some(bytes) = bytes {
            value["bytes"] = json!(bytes);
            value["bytes_moved"] = json!(0);
        }
        print_json(out, &value)?;
    } else {
        let bytes = bytes.map_or(String::new(), |b| {
            format!(", {} shared, 0 B sent", human(b))
        });
        writeln!(out, "{verb} {src} -> {dst} ({files} file(s){bytes})")?;
    }
    Ok(())
}

fn size(bytes: u64, human_sizes: bool) -> String {
    if human_sizes {
        human(bytes)
    } else {
        bytes.to_string()
    }
}

/// `du`: a line per path, the last one the total.
pub fn du(
    out: &mut impl Write,
    rows: &[(FsPath, UsageResponse)],
    human_sizes: bool,
    json: bool,
) -> io::Result<()> {
    if json {
        let items: Vec<Value> = rows
            .iter()
            .map(|(path, u)| {
                json!({
                    "path": path.as_str(),
                    "files": u.files,
                    "dirs": u.dirs,
                    "bytes": u.bytes,
                    "raw_bytes": u.raw_bytes,
                })
            })
            .collect();
        return print_json(out, &Value::Array(items));
    }
    writeln!(
        out,
        "{:>14} {:>14} {:>9} {:>7}  PATH",
        "BYTES", "STORED", "FILES", "DIRS"
    )?;
    for (path, u) in rows {
        writeln!(
            out,
            "{:>14} {:>14} {:>9} {:>7}  {path}",
            size(u.bytes, human_sizes),
            size(u.raw_bytes, human_sizes),
            u.files,
            u.dirs
        )?;
    }
    Ok(())
}

/// `df`: the cluster's totals over the nodes that take new chunks (not dead, draining or
/// drained), and a line per node.
pub fn df(
    out: &mut impl Write,
    reply: &ListNodesResponse,
    human_sizes: bool,
    json: bool,
) -> io::Result<()> {
    let counted = reply
        .nodes
        .iter()
        .filter(|n| !matches!(n.state.as_str(), "dead" | "draining" | "drained"));
    let capacity: u64 = counted.clone().map(|n| n.capacity).sum();
    let used: u64 = counted.map(|n| n.used).sum();
    let free = capacity.saturating_sub(used);
    if json {
        let nodes: Vec<Value> = reply
            .nodes
            .iter()
            .map(|n| {
                json!({
                    "id": n.id,
                    "state": n.state,
                    "capacity": n.capacity,
                    "used": n.used,
                    "free": n.capacity.saturating_sub(n.used),
                })
            })
            .collect();
        return print_json(
            out,
            &json!({
                "capacity": capacity,
                "used": used,
                "free": free,
                "nodes": nodes,
            }),
        );
    }
    let percent = |used: u64, capacity: u64| {
        if capacity == 0 {
            "-".to_string()
        } else {
            format!("{:.0}%", used as f64 * 100.0 / capacity as f64)
        }
    };
    writeln!(
        out,
        "{:<16} {:<9} {:>14} {:>14} {:>14} {:>5}",
        "NODE", "STATE", "SIZE", "USED", "FREE", "USE%"
    )?;
    for n in &reply.nodes {
        writeln!(
            out,
            "{:<16} {:<9} {:>14} {:>14} {:>14} {:>5}",
            n.id,
            n.state,
            size(n.capacity, human_sizes),
            size(n.used, human_sizes),
            size(n.capacity.saturating_sub(n.used), human_sizes),
            percent(n.used, n.capacity)
        )?;
    }
    writeln!(
        out,
        "{:<16} {:<9} {:>14} {:>14} {:>14} {:>5}",
        "total",
        "",
        size(capacity, human_sizes),
        size(used, human_sizes),
        size(free, human_sizes),
        percent(used, capacity)
    )
}
