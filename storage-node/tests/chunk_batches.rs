//! Batched puts and reads (`PutChunks` and `GetChunks`, and `NodePool` batching small chunks)
//! against two storage nodes serving on loopback ports: each chunk is answered as if it had
//! gone alone, and a bad one (wrong or corrupt bytes, an invalid id, a chunk not stored) fails
//! alone. A dead head fails every chunk of its put batch over to the tail, and every chunk of a
//! read batch from a dead node fails. A batch over the limit, or with a chain naming the node
//! it is sent to, is refused whole; an empty one is answered empty.

use std::time::Duration;

use bytes::Bytes;
use futures::future::join_all;
use tokio_util::sync::CancellationToken;

use bigfs_node::chunk_io::IoMode;
use bigfs_node::chunk_store::{volume, DEFAULT_SMALL_CHUNK_MAX};
use bigfs_node::NodeConfig;
use bigfs_proto::limits::{MAX_GET_BATCH, MAX_PUT_BATCH};
use bigfs_proto::node_pool::NodePool;
use bigfs_proto::pb::{
    ChunkData, GetChunkRequest, GetChunksRequest, NodeAddr, PutChunkResponse, PutChunksRequest,
};
use bigfs_proto::ChunkId;

struct TwoNodes {
    dir: tempfile::TempDir,
    chain: Vec<NodeAddr>,
    shutdown: CancellationToken,
}

impl Drop for TwoNodes {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Two nodes, `a` and `b`, whose metadata server never answers: chunk calls need none.
async fn two_nodes() -> TwoNodes {
    let dir = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();
    let mut chain = Vec::new();
    for id in ["a", "b"] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let config = NodeConfig {
            data_dir: dir.path().join(id),
            meta_url: "http://127.0.0.1:1".into(),
            id: Some(id.into()),
            capacity: 1 << 30,
            heartbeat_interval: Duration::from_secs(60),
            fsync: false,
            io: IoMode::Direct,
            scrub_interval: Duration::ZERO,
            scrub_rate: 1 << 20,
            repair_window: 8 << 20,
            small_chunk_max: DEFAULT_SMALL_CHUNK_MAX,
            volume_size: volume::DEFAULT_VOLUME_SIZE,
            compact_interval: Duration::ZERO,
            compact_rate: bigfs_node::chunk_store::compaction::DEFAULT_RATE,
        };
        tokio::spawn(bigfs_node::run(listener, None, config, shutdown.clone()));
        chain.push(NodeAddr {
            id: id.into(),
            addr,
        });
    }
    TwoNodes {
        dir,
        chain,
        shutdown,
    }
}

impl TwoNodes {
    /// Overwrites node `node`'s copy of `chunk_id`, a needle in a volume, with as many other
    /// bytes.
    fn corrupt(&self, node: &str, chunk_id: &str) {
        use std::os::unix::fs::FileExt;
        let data_dir = self.dir.path().join(node);
        let id = chunk_id.parse().unwrap();
        let needle = volume::locate(&data_dir, id)
            .unwrap()
            .expect("a small chunk's needle");
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&needle.path)
            .unwrap();
        file.write_all_at(&vec![0x5a; needle.len as usize], needle.offset)
            .unwrap();
    }
}

/// A privileged port that nothing listens on and no test can bind.
const DEAD_ADDR: &str = "http://127.0.0.1:1";

fn chunk(seed: u32, len: usize) -> (String, Bytes) {
    let data: Bytes = (0..len)
        .map(|i| (i as u32 * 31 + seed * 7 + i as u32 / 251) as u8)
        .collect();
    (ChunkId::of(&data).to_hex(), data)
}

/// The nodes `reply` lists as failed, in order.
fn failed_on(reply: &PutChunkResponse) -> Vec<&str> {
    reply.failed.iter().map(|f| f.node_id.as_str()).collect()
}

async fn read(pool: &NodePool, node: &NodeAddr, chunk_id: &str) -> Option<Bytes> {
    let request = GetChunkRequest {
        chunk_id: chunk_id.into(),
    };
    let reply = pool.client(&node.addr).unwrap().get_chunk(request).await;
    reply.ok().map(|r| r.into_inner().data)
}

#[tokio::test]
async fn a_bad_chunk_fails_alone_and_the_others_reach_both_nodes() {
    let nodes = two_nodes().await;
    let pool = NodePool::default();
    let (good1, data1) = chunk(1, 70_000);
    let (good2, data2) = chunk(2, 1);
    let (bad, _) = chunk(3, 4096);
    let chunks = vec![
        ChunkData {
            chunk_id: good1.clone(),
            data: data1.clone(),
        },
        ChunkData {
            chunk_id: bad.clone(),
            data: chunk(4, 4096).1,
        },
        ChunkData {
            chunk_id: good2.clone(),
            data: data2.clone(),
        },
        ChunkData {
            chunk_id: "not-an-id".into(),
            data: data2.clone(),
        },
    ];
    let replies = pool.put_chain_batch(chunks, &nodes.chain).await;

    assert_eq!(replies.len(), 4);
    for (i, id) in [(0, &good1), (2, &good2)] {
        assert_eq!(replies[i].stored, ["a", "b"], "{id}: {:?}", replies[i]);
        assert!(replies[i].failed.is_empty(), "{id}: {:?}", replies[i]);
    }
    assert_eq!(failed_on(&replies[1]), ["a", "b"], "{:?}", replies[1]);
    assert!(replies[1].stored.is_empty());
    assert!(
        replies[1].failed[0]
            .error
            .contains("does not hash to its id"),
        "{:?}",
        replies[1].failed
    );
    assert_eq!(failed_on(&replies[3]), ["a", "b"], "{:?}", replies[3]);
    assert!(replies[3].stored.is_empty());
    assert!(
        replies[3].failed[0].error.contains("not-an-id"),
        "{:?}",
        replies[3].failed
    );
    for node in &nodes.chain {
        assert_eq!(read(&pool, node, &good1).await, Some(data1.clone()));
        assert_eq!(read(&pool, node, &good2).await, Some(data2.clone()));
        assert_eq!(read(&pool, node, &bad).await, None);
    }
}

#[tokio::test]
async fn concurrent_small_puts_are_each_answered_for_their_own_chunk() {
    let nodes = two_nodes().await;
    let pool = NodePool::default();
    // More than a batch holds, so that some wait and go in later batches; one big chunk goes
    // alone among them; every seventh chunk's bytes do not match its id, so an answer routed
    // to the wrong caller shows.
    let bad = |i: u32| i % 7 == 3;
    let chunks: Vec<(String, Bytes)> = (0..150)
        .map(|i| {
            let len = if i == 70 {
                300 * 1024
            } else {
                1000 + i as usize
            };
            let (id, data) = chunk(i, len);
            (id, if bad(i) { chunk(i + 1000, 10).1 } else { data })
        })
        .collect();
    let puts = chunks
        .iter()
        .map(|(id, data)| pool.put_chain(id, data.clone(), &nodes.chain));
    let replies = join_all(puts).await;
    for (i, ((id, data), reply)) in (0..).zip(chunks.iter().zip(&replies)) {
        if bad(i) {
            assert!(reply.stored.is_empty(), "{i} {id}: {reply:?}");
            assert_eq!(read(&pool, &nodes.chain[1], id).await, None, "{i} {id}");
            continue;
        }
        assert_eq!(reply.stored, ["a", "b"], "{i} {id}: {reply:?}");
        assert!(reply.failed.is_empty(), "{i} {id}: {reply:?}");
        assert_eq!(read(&pool, &nodes.chain[1], id).await.as_ref(), Some(data));
    }
}

#[tokio::test]
async fn a_dead_head_fails_the_batch_over_to_the_tail() {
    let nodes = two_nodes().await;
    let pool = NodePool::default();
    let dead = NodeAddr {
        id: "dead".into(),
        addr: DEAD_ADDR.into(),
    };
    let chain = [dead, nodes.chain[1].clone()];
    let chunks: Vec<(String, Bytes)> = (0..5).map(|i| chunk(i, 2000)).collect();
    let replies =
        join_all((chunks.iter()).map(|(id, data)| pool.put_chain(id, data.clone(), &chain))).await;
    for ((id, _), reply) in chunks.iter().zip(&replies) {
        assert_eq!(reply.stored, ["b"], "{id}: {reply:?}");
        assert_eq!(failed_on(reply), ["dead"], "{id}: {reply:?}");
    }
}

#[tokio::test]
async fn oversized_and_looping_batches_are_refused_and_an_empty_one_is_answered() {
    let nodes = two_nodes().await;
    let pool = NodePool::default();
    let mut a = pool.client(&nodes.chain[0].addr).unwrap();
    let chunks = |n: u32| -> Vec<ChunkData> {
        (0..n)
            .map(|i| {
                let (chunk_id, data) = chunk(i, 100);
                ChunkData { chunk_id, data }
            })
            .collect()
    };

    let too_many = PutChunksRequest {
        chunks: chunks(MAX_PUT_BATCH as u32 + 1),
        chain: vec![nodes.chain[1].clone()],
    };
    let status = a.put_chunks(too_many).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("chunks in one call"),
        "{status:?}"
    );

    let looping = PutChunksRequest {
        chunks: chunks(2),
        chain: vec![nodes.chain[1].clone(), nodes.chain[0].clone()],
    };
    let status = a.put_chunks(looping).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    let (first, _) = chunk(0, 100);
    assert_eq!(read(&pool, &nodes.chain[1], &first).await, None);

    let empty = PutChunksRequest {
        chunks: Vec::new(),
        chain: vec![nodes.chain[1].clone()],
    };
    let results = a.put_chunks(empty).await.unwrap().into_inner().results;
    assert!(results.is_empty());
}

#[tokio::test]
async fn a_read_batch_answers_each_chunk_on_its_own() {
    let nodes = two_nodes().await;
    let pool = NodePool::default();
    let a = &nodes.chain[..1];
    let (good, good_data) = chunk(1, 5000);
    let (corrupt, corrupt_data) = chunk(2, 5000);
    let (absent, _) = chunk(3, 5000);
    let (big, big_data) = chunk(4, 300 * 1024);
    for (id, data) in [
        (&good, &good_data),
        (&corrupt, &corrupt_data),
        (&big, &big_data),
    ] {
        assert_eq!(pool.put_chain(id, data.clone(), a).await.stored, ["a"]);
    }
    nodes.corrupt("a", &corrupt);

    let request = GetChunksRequest {
        chunk_ids: vec![
            absent.clone(),
            good.clone(),
            "not-an-id".into(),
            corrupt.clone(),
            big.clone(),
        ],
    };
    let mut client = pool.client(&a[0].addr).unwrap();
    let results = client
        .get_chunks(request)
        .await
        .unwrap()
        .into_inner()
        .results;

    let codes: Vec<tonic::Code> = results.iter().map(|r| r.error_code.into()).collect();
    use tonic::Code::{DataLoss, InvalidArgument, NotFound, Ok};
    assert_eq!(
        codes,
        [NotFound, Ok, InvalidArgument, DataLoss, InvalidArgument],
        "{results:?}"
    );
    // A big chunk is refused by size, before its bytes are read; GetChunk still serves it.
    assert!(results[4].error.contains("GetChunk"), "{:?}", results[4]);
    let read_alone = pool
        .get_chunk(&a[0].addr, &big, big_data.len() as u64)
        .await;
    assert_eq!(read_alone.unwrap(), big_data);
    assert_eq!(results[1].data, good_data);
    assert!(results[0].error.contains(&absent), "{:?}", results[0]);
    assert!(results[3].error.contains("quarantined"), "{:?}", results[3]);
    assert!(results
        .iter()
        .all(|r| r.error_code == 0 || r.data.is_empty()));
    // The corrupt copy is out of service: read alone, it is not found.
    let status = pool
        .get_chunk(&a[0].addr, &corrupt, 5000)
        .await
        .unwrap_err();
    assert_eq!(status.code(), NotFound, "{status:?}");
}

#[tokio::test]
async fn concurrent_small_reads_are_each_answered_with_their_own_chunk() {
    let nodes = two_nodes().await;
    let pool = NodePool::default();
    let a = &nodes.chain[..1];
    // More than a batch holds, so that some wait and go in later batches; one big chunk goes
    // alone among them; every seventh chunk is not stored, so an answer routed to the wrong
    // caller shows.
    let absent = |i: u32| i % 7 == 3;
    let chunks: Vec<(String, Bytes)> = (0..150)
        .map(|i| {
            chunk(
                i,
                if i == 70 {
                    300 * 1024
                } else {
                    1000 + i as usize
                },
            )
        })
        .collect();
    for (i, (id, data)) in (0..).zip(&chunks) {
        if !absent(i) {
            assert_eq!(pool.put_chain(id, data.clone(), a).await.stored, ["a"]);
        }
    }
    let reads = (chunks.iter()).map(|(id, data)| pool.get_chunk(&a[0].addr, id, data.len() as u64));
    let answers = join_all(reads).await;
    for (i, ((id, data), answer)) in (0..).zip(chunks.iter().zip(answers)) {
        match answer {
            Ok(got) => assert!(!absent(i) && got == data, "{i} {id}: wrong bytes"),
            Err(status) => {
                assert!(absent(i), "{i} {id}: {status:?}");
                assert_eq!(status.code(), tonic::Code::NotFound, "{i} {id}: {status:?}");
            }
        }
    }
}

#[tokio::test]
async fn reads_from_a_dead_node_all_fail_and_oversized_read_batches_are_refused() {
    let nodes = two_nodes().await;
    let pool = NodePool::default();
    let chunks: Vec<(String, Bytes)> = (0..5).map(|i| chunk(i, 2000)).collect();
    let reads = (chunks.iter()).map(|(id, data)| pool.get_chunk(DEAD_ADDR, id, data.len() as u64));
    for answer in join_all(reads).await {
        let status = answer.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    }

    let mut a = pool.client(&nodes.chain[0].addr).unwrap();
    let too_many = GetChunksRequest {
        chunk_ids: (0..=MAX_GET_BATCH as u32).map(|i| chunk(i, 10).0).collect(),
    };
    let status = a.get_chunks(too_many).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    let empty = GetChunksRequest::default();
    assert!(a
        .get_chunks(empty)
        .await
        .unwrap()
        .into_inner()
        .results
        .is_empty());
}
