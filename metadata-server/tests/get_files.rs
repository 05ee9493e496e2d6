//! `GetFiles` against a metadata server running on a loopback port: every path gets the answer
//! `GetFile` would give, in request order, errors included, and an oversized batch is refused.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tonic::Code;

use bigfs_meta::cluster::ClusterConfig;
use bigfs_meta::MetaConfig;
use bigfs_proto::limits::MAX_LOOKUP_BATCH;
use bigfs_proto::pb::meta_client::MetaClient;
use bigfs_proto::pb::{CommitFileRequest, CommitFilesRequest, GetFileRequest, GetFilesRequest};
use bigfs_proto::transport;

#[tokio::test]
async fn get_files_answers_each_path_as_get_file_would() {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let config = MetaConfig {
        data_dir: dir.path().join("meta"),
        chunk_size: 1 << 20,
        cluster: ClusterConfig {
            replication: 1,
            min_replicas: 1,
            heartbeat_timeout: Duration::from_secs(10),
            gc_grace: Duration::from_secs(30),
            write_lease: Duration::from_secs(30),
            safe_mode_timeout: Duration::from_secs(60),
            repair_concurrency: 1,
            chunk_size: 1 << 20,
        },
    };
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(bigfs_meta::run(listener, None, config, shutdown.clone()));
    let mut meta = MetaClient::new(transport::endpoint(&url).unwrap().connect_lazy());

    // Empty files need no chunks, so no storage node.
    let empty = |path: &str| CommitFileRequest {
        path: path.to_string(),
        chunk_size: 1 << 20,
        replication: 1,
        ..CommitFileRequest::default()
    };
    let committed = meta
        .commit_files(CommitFilesRequest {
            files: vec![empty("/d/a"), empty("/d/b")],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        committed.results.iter().all(|r| r.committed),
        "{committed:?}"
    );

    let paths = ["/d/b", "/d/missing", "/d", "no-slash", "/d/a"];
    let results = meta
        .get_files(GetFilesRequest {
            paths: paths.iter().map(|p| p.to_string()).collect(),
        })
        .await
        .unwrap()
        .into_inner()
        .results;
    assert_eq!(results.len(), paths.len());
    for (path, result) in paths.iter().zip(&results) {
        let single = meta
            .get_file(GetFileRequest {
                path: path.to_string(),
            })
            .await;
        match single {
            Ok(file) => {
                assert_eq!(result.file.as_ref(), Some(file.get_ref()), "{path}");
                assert!(result.error.is_empty(), "{path}: {}", result.error);
            }
            Err(status) => {
                assert!(result.file.is_none(), "{path}");
                assert_eq!(Code::from(result.error_code), status.code(), "{path}");
                assert_eq!(result.error, status.message(), "{path}");
            }
        }
    }
    let codes: Vec<Code> = results.iter().map(|r| Code::from(r.error_code)).collect();
    assert_eq!(
        codes,
        [
            Code::Ok,
            Code::NotFound,
            Code::FailedPrecondition,
            Code::InvalidArgument,
            Code::Ok
        ]
    );
    assert_eq!(
        results[0]
            .file
            .as_ref()
            .unwrap()
            .file
            .as_ref()
            .unwrap()
            .path,
        "/d/b"
    );

    let too_many = meta
        .get_files(GetFilesRequest {
            paths: vec!["/d/a".to_string(); MAX_LOOKUP_BATCH + 1],
        })
        .await
        .unwrap_err();
    assert_eq!(too_many.code(), Code::InvalidArgument, "{too_many:?}");

    shutdown.cancel();
    server.await.unwrap().unwrap();
}
