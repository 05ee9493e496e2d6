//! Loopback port allocation.
//!
//! Every listener is bound to `127.0.0.1:0` and held open until all ports of a cluster are
//! allocated, so the kernel cannot hand the same port out twice; they are closed just before the
//! servers are spawned. A port can still be taken by another program in that short gap, which
//! shows up as a server that exits at once (the harness retries such a spawn).

use std::net::{Ipv4Addr, TcpListener};

/// Allocates `n` distinct free loopback ports.
pub(crate) fn allocate(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| {
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .unwrap_or_else(|e| panic!("cannot bind a loopback port: {e}"))
        })
        .collect();
    let ports = listeners
        .iter()
        .map(|l| {
            l.local_addr()
                .expect("a bound listener has an address")
                .port()
        })
        .collect();
    drop(listeners);
    ports
}

/// A loopback port that nothing listens on (at the moment of the call).
pub fn free_port() -> u16 {
    allocate(1)[0]
}
