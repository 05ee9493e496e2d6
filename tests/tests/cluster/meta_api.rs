//! The metadata server's calls that no CLI verb makes, driven over gRPC against the real
//! `bigfs-meta`: changes asked only at a file's version (what the S3 gateway's conditional
//! writes rely on) and extended attributes, which must survive a restart of the server and
//! follow their file or directory through a rename.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use bigfs_proto::pb::meta_client::MetaClient;
use bigfs_proto::pb::*;
use bigfs_tests::Cluster;
use tonic::transport::Channel;
use tonic::Code;

/// Runs `test` against a fresh client of `cluster`'s metadata server.
fn with_meta<T>(cluster: &Cluster, test: impl FnOnce(MetaClient<Channel>) -> T) -> T::Output
where
    T: Future,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(cluster.meta_url())
            .expect("the metadata server's URL")
            .timeout(Duration::from_secs(10))
            .connect()
            .await
            .expect("connect to the metadata server");
        test(MetaClient::new(channel)).await
    })
}

async fn version(meta: &mut MetaClient<Channel>, path: &str) -> u64 {
    let file = meta
        .get_file(GetFileRequest { path: path.into() })
        .await
        .expect("the file is there")
        .into_inner()
        .file
        .expect("file info");
    file.version
}

/// An empty file's commit at `path`, only over `if_version`.
fn empty_commit(path: &str, if_version: u64) -> CommitFileRequest {
    CommitFileRequest {
        path: path.into(),
        chunk_size: 1 << 20,
        if_version: Some(if_version),
        ..CommitFileRequest::default()
    }
}

/// Fails unless `result` is the refusal of a change at a version the file is no longer at.
fn assert_lost_race<T: std::fmt::Debug>(result: Result<T, tonic::Status>, path: &str) {
    let status = result.expect_err("the change at an old version must be refused");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    let message = status.message();
    assert!(
        message.contains(path) && message.contains(bigfs_proto::VERSION_CHANGED),
        "{message}"
    );
}

#[test]
fn changes_at_a_version_and_extended_attributes() {
    let mut cluster = Cluster::start(3);
    cluster.must_put_bytes("/b/obj", b"one");
    let again = cluster
        .cli()
        .put_bytes("/b/obj", b"two", &["--force"], Duration::from_secs(30));
    assert!(again.unwrap().status.success(), "the overwrite of /b/obj");

    with_meta(&cluster, |mut meta| async move {
        assert_eq!(version(&mut meta, "/b/obj").await, 2);
        // A writer that read version 1 loses to the one that wrote version 2.
        assert_lost_race(meta.commit_file(empty_commit("/b/obj", 1)).await, "/b/obj");
        let won = meta.commit_file(empty_commit("/b/obj", 2)).await.unwrap();
        assert_eq!(won.into_inner().version, 3);
        let missing = meta.commit_file(empty_commit("/b/none", 1)).await;
        assert_eq!(missing.unwrap_err().code(), Code::NotFound);

        // Object metadata replaced at a version keeps the version.
        let tagged = ObjectMeta {
            etag: "e".into(),
            tags: HashMap::from([("k".to_string(), "v".to_string())]),
            ..ObjectMeta::default()
        };
        let set_object = |if_version| SetAttrRequest {
            path: "/b/obj".into(),
            object: Some(tagged.clone()),
            if_version: Some(if_version),
            ..SetAttrRequest::default()
        };
        assert_lost_race(meta.set_attr(set_object(2)).await, "/b/obj");
        meta.set_attr(set_object(3)).await.unwrap();
        let file = meta
            .get_file(GetFileRequest {
                path: "/b/obj".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .file
            .unwrap();
        assert_eq!((file.version, file.object), (3, Some(tagged)));

        // Extended attributes on the file and on its directory.
        let set = |path: &str, name: &str, value: &[u8]| SetXattrsRequest {
            path: path.into(),
            set: HashMap::from([(name.to_string(), value.to_vec())]),
            remove: Vec::new(),
        };
        meta.set_xattrs(set("/b", "bucket", b"config"))
            .await
            .unwrap();
        meta.set_xattrs(set("/b/obj", "object", b"x"))
            .await
            .unwrap();
        let too_long = "n".repeat(256);
        let refused = meta.set_xattrs(set("/b/obj", &too_long, b"")).await;
        let status = refused.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains(&too_long), "{}", status.message());
        meta.rename(RenameRequest {
            src: "/b".into(),
            dst: "/c".into(),
            overwrite: false,
        })
        .await
        .unwrap();
    });

    // Durable: a restarted metadata server still has them, where the rename put them.
    cluster.restart_meta();
    with_meta(&cluster, |mut meta| async move {
        let xattrs = |path: &str| GetXattrsRequest { path: path.into() };
        let dir = meta.get_xattrs(xattrs("/c")).await.unwrap().into_inner();
        assert_eq!(dir.xattrs["bucket"], b"config");
        let file = meta
            .get_xattrs(xattrs("/c/obj"))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(file.xattrs["object"], b"x");
        let gone = meta.get_xattrs(xattrs("/b")).await.unwrap_err();
        assert_eq!(gone.code(), Code::NotFound);

        // A removal at an old version leaves the file; at its version removes it.
        let delete = |if_version| DeleteRequest {
            path: "/c/obj".into(),
            recursive: false,
            if_version: Some(if_version),
        };
        assert_lost_race(meta.delete(delete(2)).await, "/c/obj");
        assert_eq!(version(&mut meta, "/c/obj").await, 3);
        meta.delete(delete(3)).await.unwrap();
        let gone = meta.get_file(GetFileRequest {
            path: "/c/obj".into(),
        });
        assert_eq!(gone.await.unwrap_err().code(), Code::NotFound);
    });
    cluster.check_logs();
}
