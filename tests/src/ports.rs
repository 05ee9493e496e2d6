//! Loopback port allocation.
//!
//! Ports are picked below the kernel's ephemeral range (`net.ipv4.ip_local_port_range`), which
//! is where every outgoing connection takes its local port from. A port the kernel handed out
//! with `bind(0)` could be taken by some client's connection between the allocation and the
//! server's bind, or while a killed node waits to restart on it; a test then failed with
//! "Address already in use".
//!
//! No port is handed out twice in a test process, so a cluster's ports stay its own while its
//! servers restart; each is bound once first, to skip ports some other program uses.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, TcpListener};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::rng::Rng;

/// Where ports are picked from when the ephemeral range leaves room below it.
const LOWEST: u16 = 10_000;
const MIN_CHOICE: u16 = 4_096;

/// Every port handed out by this process.
static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// Allocates `n` distinct free loopback ports.
pub(crate) fn allocate(n: usize) -> Vec<u16> {
    let Some(range) = below_ephemeral() else {
        return allocate_ephemeral(n);
    };
    let range = split(range).1;
    let mut rng = Rng::new(seed());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|p| p.into_inner());
    let mut ports = Vec::with_capacity(n);
    let mut attempts = 0;
    while ports.len() < n {
        attempts += 1;
        assert!(attempts < 10_000, "no free loopback port in {range:?}");
        let port = rng.between(range.start.into(), (range.end - 1).into()) as u16;
        if !handed_out.contains(&port) && TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            handed_out.insert(port);
            ports.push(port);
        }
    }
    ports
}

/// A loopback port that nothing listens on (at the moment of the call).
pub fn free_port() -> u16 {
    allocate(1)[0]
}

/// The first of `n` consecutive loopback ports that nothing listens on (at the moment of the
/// call), for programs that take a base port and count up from it, such as
/// `scripts/cluster.sh`. Like [`free_port`], it never hands out a port twice; where the
/// ephemeral range leaves no room below it, the ports are picked above [`LOWEST`] all the same,
/// since the kernel hands out single ports only.
pub fn free_port_range(n: usize) -> u16 {
    assert!((1..1024).contains(&n), "{n} consecutive ports asked for");
    let range = below_ephemeral().map_or(LOWEST..u16::MAX, |range| split(range).0);
    let last_start = range.end - n as u16;
    let mut rng = Rng::new(seed());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|p| p.into_inner());
    for _ in 0..10_000 {
        let start = rng.between(range.start.into(), last_start.into()) as u16;
        let ports = start..start + n as u16;
        let free = ports.clone().all(|port| {
            !handed_out.contains(&port) && TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
        });
        if free {
            handed_out.extend(ports);
            return start;
        }
    }
    panic!("no {n} consecutive free loopback ports in {range:?}");
}

/// Splits the ports below the ephemeral range: the lower half for runs of consecutive ports
/// ([`free_port_range`]), the upper half for single ones ([`allocate`]). A suite hands out
/// thousands of single ports, never twice; scattered over the whole range they would leave no
/// run of a few hundred free, and a later `free_port_range` would find none.
fn split(range: Range<u16>) -> (Range<u16>, Range<u16>) {
    let middle = range.start + (range.end - range.start) / 2;
    (range.start..middle, middle..range.end)
}

/// The ports between [`LOWEST`] and the ephemeral range, if there are enough of them.
fn below_ephemeral() -> Option<Range<u16>> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let first: u16 = text.split_whitespace().next()?.parse().ok()?;
    (first >= LOWEST + MIN_CHOICE).then_some(LOWEST..first)
}

/// Ports handed out by the kernel, for a machine whose ephemeral range leaves no room below.
fn allocate_ephemeral(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| {
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .unwrap_or_else(|e| panic!("cannot bind a loopback port: {e}"))
        })
        .collect();
    ports_of(&held)
}

fn ports_of(listeners: &[TcpListener]) -> Vec<u16> {
    listeners
        .iter()
        .map(|l| {
            l.local_addr()
                .expect("a bound listener has an address")
                .port()
        })
        .collect()
}

/// A seed that differs between the test processes and calls running at the same time.
fn seed() -> u64 {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ u64::from(std::process::id()).rotate_left(32) ^ CALLS.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_free_and_outside_the_ephemeral_range() {
        let ports = allocate(64);
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ports.len(), "{ports:?}");
        if let Some(range) = below_ephemeral() {
            assert!(ports.iter().all(|p| range.contains(p)), "{ports:?}");
        }
        for port in ports {
            TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("an allocated port is free");
        }
    }

    #[test]
    fn a_range_is_free_and_never_handed_out_again() {
        let start = free_port_range(6);
        let range = start..start + 6;
        for port in range.clone() {
            TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("an allocated port is free");
        }
        let later = allocate(64);
        assert!(
            later.iter().all(|p| !range.contains(p)),
            "{range:?} {later:?}"
        );
        let next = free_port_range(6);
        assert!(
            next + 6 <= start || next >= start + 6,
            "{start} then {next}"
        );
    }

    /// A whole suite's worth of single ports (a few thousand) leaves runs of consecutive ports
    /// for the cluster.sh tests; scattered over one shared range they left none.
    #[test]
    fn a_long_run_is_found_after_thousands_of_single_ports() {
        if below_ephemeral().is_none() {
            return; // single ports come from the kernel's range there
        }
        allocate(4000);
        let start = free_port_range(200);
        for port in start..start + 200 {
            TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("an allocated port is free");
        }
    }
}
