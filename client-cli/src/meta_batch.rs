//! Metadata calls that arrive together leave together: lookups in one GetFiles call, commits
//! of small files in one CommitFiles call.
//!
//! A client moving many small files at once (the S3 gateway serving many clients, `bench
//! small`, an application with a thread per request) pays more for its metadata calls than the
//! metadata server spends answering them: each call is a few thread wake-ups and an HTTP/2
//! exchange on both sides, and the lookup itself is one sled read. Concurrent calls therefore
//! queue ([`BatchQueues`]) and share a call, as small chunks bound for the same node do. No call
//! waits for company: one leaves at once while fewer than two batches are under way, and the
//! calls that arrive meanwhile leave together in the next. A call that finds no company goes
//! as the single call it always was (GetFile, CommitFile), so a lone client's calls, and the
//! metadata server's per-method metrics of them, are unchanged.

use tonic::{Code, Response, Status};

use bigfs_proto::batch_queue::{BatchQueues, Unanswered};
use bigfs_proto::pb::{
    CommitFileRequest, CommitFileResponse, CommitFilesRequest, GetFileRequest, GetFileResponse,
    GetFilesRequest,
};
use bigfs_proto::{transport, FsPath};

use crate::client::Client;

/// The most lookups one GetFiles call carries. Each answer holds the file's chunk list, so a
/// batch of large files is a large message: kept to as many as a small-file burst needs.
const LOOKUP_BATCH: usize = 32;

/// The most commits one CommitFiles call carries.
const COMMIT_BATCH: usize = 64;

/// Commits of more chunks than this go in a call of their own: their messages are large, and
/// they are few (a large file's), so sharing a call saves nothing.
const BATCHED_CHUNKS: usize = 16;

/// The one queue key: a client talks to one metadata server.
const META: &str = "meta";

/// The queues of a client's metadata calls; clones share them.
#[derive(Clone, Default)]
pub(crate) struct MetaBatches {
    lookups: BatchQueues<String, Result<GetFileResponse, Status>>,
    commits: BatchQueues<CommitFileRequest, Result<CommitFileResponse, Status>>,
}

impl Client {
    /// GetFile of `path`, in a GetFiles call with the lookups made at the same time.
    pub(crate) async fn lookup(&self, path: &FsPath) -> Result<GetFileResponse, Status> {
        let client = self.clone();
        let send = move |paths: Vec<String>| {
            let client = client.clone();
            async move { client.get_files(paths).await }
        };
        let answer = self
            .batches
            .lookups
            .submit(
                META.to_string(),
                path.to_string(),
                LOOKUP_BATCH,
                transport::META_RPC_TIMEOUT,
                send,
            )
            .await;
        answer.unwrap_or_else(|unanswered| Err(unanswered_status(unanswered)))
    }

    /// CommitFile of `request`; a small file's commit shares a CommitFiles call with the
    /// commits made at the same time.
    pub(crate) async fn commit(
        &self,
        request: CommitFileRequest,
    ) -> Result<CommitFileResponse, Status> {
        if request.chunks.len() > BATCHED_CHUNKS {
            return self.commit_alone(request).await;
        }
        let client = self.clone();
        let send = move |files: Vec<CommitFileRequest>| {
            let client = client.clone();
            async move { client.commit_files(files).await }
        };
        let answer = self
            .batches
            .commits
            .submit(
                META.to_string(),
                request,
                COMMIT_BATCH,
                transport::META_RPC_TIMEOUT,
                send,
            )
            .await;
        answer.unwrap_or_else(|unanswered| Err(unanswered_status(unanswered)))
    }

    /// One GetFiles call (a GetFile for one path); the answers are in the order of `paths`,
    /// each as GetFile would have answered it. A call that fails as a whole fails every lookup
    /// with its status.
    async fn get_files(&self, mut paths: Vec<String>) -> Vec<Result<GetFileResponse, Status>> {
        if paths.len() == 1 {
            let path = paths.pop().unwrap_or_default();
            let (mut meta, request) = self.meta(GetFileRequest { path });
            return vec![meta.get_file(request).await.map(Response::into_inner)];
        }
        let count = paths.len();
        let (mut meta, request) = self.meta(GetFilesRequest { paths });
        let results = meta.get_files(request).await;
        each_answer(
            count,
            results.map(|r| r.into_inner().results),
            |result| match result.file {
                Some(file) => Ok(file),
                None => Err(Status::new(Code::from(result.error_code), result.error)),
            },
        )
    }

    async fn commit_alone(&self, file: CommitFileRequest) -> Result<CommitFileResponse, Status> {
        let (mut meta, request) = self.meta(file);
        Ok(meta.commit_file(request).await?.into_inner())
    }

    /// One CommitFiles call (a CommitFile for one file), answered as [`Self::get_files`] is.
    async fn commit_files(
        &self,
        mut files: Vec<CommitFileRequest>,
    ) -> Vec<Result<CommitFileResponse, Status>> {
        if files.len() == 1 {
            let file = files.pop().unwrap_or_default();
            return vec![self.commit_alone(file).await];
        }
        let count = files.len();
        let (mut meta, request) = self.meta(CommitFilesRequest { files });
        let results = meta.commit_files(request).await;
        each_answer(
            count,
            results.map(|r| r.into_inner().results),
            |result| match Code::from(result.error_code) {
                Code::Ok => Ok(result),
                code => Err(Status::new(code, result.error.clone())),
            },
        )
    }
}

/// The answer to each of a batch call's `count` requests: its own result, converted by `each`;
/// the call's status for all of them when the call failed as a whole, or when it answered for
/// a different number of requests than were asked.
fn each_answer<T, R>(
    count: usize,
    results: Result<Vec<R>, Status>,
    each: impl Fn(R) -> Result<T, Status>,
) -> Vec<Result<T, Status>> {
    match results {
        Ok(results) if results.len() == count => results.into_iter().map(each).collect(),
        Ok(results) => {
            let answered = results.len();
            let status = Status::internal(format!(
                "metadata server answered {answered} results for a batch of {count}"
            ));
            (0..count).map(|_| Err(status.clone())).collect()
        }
        Err(status) => (0..count).map(|_| Err(status.clone())).collect(),
    }
}

/// The status of a call that got no answer, as the call itself would have failed.
fn unanswered_status(unanswered: Unanswered) -> Status {
    let deadline = transport::META_RPC_TIMEOUT;
    match unanswered {
        Unanswered::TimedOut => Status::deadline_exceeded(format!(
            "no answer from the metadata server within {deadline:?}"
        )),
        Unanswered::SenderGone => Status::unavailable("the client is shutting down"),
    }
}
