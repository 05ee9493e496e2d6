//! The web console: a page that shows the cluster and moves files, and the JSON API it calls.
//!
//! The page ([`assets`], embedded in the binary) polls `/api/overview` every two seconds, so a
//! node that dies turns `dead` on screen without a reload. The overview needs a pass over the
//! whole chunk table on the metadata server, so the gateway makes that pass at most once per
//! [`OVERVIEW_TTL`] whatever the number of open pages, and answers the others from it.
//! [`guard`] keeps other web sites from driving the console through the user's browser. Every handler here only parses its
//! query, calls the client library or a core of this crate, and maps the result; errors answer
//! `{"error": "..."}` with a fitting status (see [`crate::error`]).
//!
//! | route | answers |
//! |---|---|
//! | `GET /api/overview` | nodes, chunk health, repairs, safe mode ([`crate::views::Overview`]) |
//! | `GET /api/list?path=&page=&per_page=` | a page of a directory ([`crate::views::Listing`]) |
//! | `GET /api/file?path=` | a file's details and its chunks' nodes |
//! | `PUT /api/file?path=&overwrite=` | stores the request body at `path` |
//! | `DELETE /api/file?path=&recursive=` | removes a file, or a directory with `recursive` |
//! | `GET /api/download?path=` | the file's bytes, streamed as chunks are verified |
//! | `POST /api/mkdir?dir=&name=` | a new directory `name` in `dir` |
//! | `POST /api/rename?path=&name=` | renames `path` to `name` in the same directory |

mod assets;
pub mod guard;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use axum::extract::{DefaultBodyLimit, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{middleware, Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use bigfs_client::Client;

use crate::error::ApiError;
use crate::paging::PageRequest;
use crate::views::{self, FileDetails, Listing, Overview, OVERVIEW_PROBLEMS};
use crate::{remote_path, transfer};
use guard::Guard;

/// How long an overview is served again before the metadata server is asked anew.
pub const OVERVIEW_TTL: Duration = Duration::from_secs(2);

/// How much the console's transfers may hold at once.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Chunks in flight per upload or download (each about three chunks of memory).
    pub parallel: usize,
    /// Uploads and downloads in flight at once; more are answered 503. With `parallel` this
    /// bounds the gateway's memory, whatever the number of users.
    pub transfers: usize,
}

/// What every handler shares: the cluster, the limits and the transfers they allow, and the
/// latest overview.
#[derive(Clone)]
struct Console {
    client: Client,
    parallel: usize,
    transfers: Arc<Semaphore>,
    max_transfers: usize,
    /// Held while the overview is asked for, so that requests arriving meanwhile wait for it
    /// rather than each asking.
    overview: Arc<tokio::sync::Mutex<Option<(Instant, Value)>>>,
}

/// The console's routes, over the cluster `client` talks to.
pub fn router(client: Client, limits: Limits, listen: SocketAddr) -> Router {
    Router::new()
        .route("/", get(assets::index))
        .route("/assets/{name}", get(assets::asset))
        .route("/api/overview", get(overview))
        .route("/api/list", get(list))
        .route("/api/file", get(file).put(upload).delete(remove))
        .route("/api/download", get(download))
        .route("/api/mkdir", post(mkdir))
        .route("/api/rename", post(rename))
        .fallback(not_found)
        // An upload's body streams into the chunker, however large; nothing buffers it.
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(
            Arc::new(Guard::new(listen)),
            guard::check,
        ))
        .with_state(Console {
            client,
            parallel: limits.parallel,
            transfers: Arc::new(Semaphore::new(limits.transfers)),
            max_transfers: limits.transfers,
            overview: Arc::default(),
        })
}

type ApiResult<T> = Result<T, ApiError>;

impl Console {
    /// A place for one more transfer, or 503 when all are taken (the page says to try again).
    fn transfer_slot(&self) -> ApiResult<OwnedSemaphorePermit> {
        self.transfers.clone().try_acquire_owned().map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the gateway is moving {} files already (--max-transfers); try again in a moment",
                    self.max_transfers
                ),
            )
        })
    }
}

/// Query parameters, with a malformed query answered as the API's other errors are.
struct Params<T>(T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> ApiResult<Self> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(params)) => Ok(Self(params)),
            Err(rejection) => Err(ApiError::bad_request(rejection.body_text())),
        }
    }
}

#[derive(Deserialize)]
struct PathParam {
    path: String,
}

async fn overview(State(console): State<Console>) -> ApiResult<Json<Value>> {
    let mut latest = console.overview.lock().await;
    if let Some((at, overview)) = latest.as_ref() {
        if at.elapsed() < OVERVIEW_TTL {
            return Ok(Json(overview.clone()));
        }
    }
    let (nodes, fsck) = tokio::try_join!(
        console.client.nodes(),
        console.client.fsck(OVERVIEW_PROBLEMS)
    )?;
    let overview = serde_json::to_value(Overview::new(nodes, fsck))
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    *latest = Some((Instant::now(), overview.clone()));
    Ok(Json(overview))
}

#[derive(Deserialize)]
struct ListParams {
    path: String,
    page: Option<usize>,
    per_page: Option<usize>,
}

async fn list(
    State(console): State<Console>,
    Params(params): Params<ListParams>,
) -> ApiResult<Json<Listing>> {
    let path = remote_path::parse(&params.path)?;
    let entries = console.client.list(&path).await?;
    let is_file = views::is_file_listing(path.as_str(), &entries);
    let pages = PageRequest {
        page: params.page,
        per_page: params.per_page,
    };
    Ok(Json(Listing {
        path: path.to_string(),
        is_file,
        page: pages.cut(entries.into_iter().map(Into::into).collect()),
    }))
}

async fn file(
    State(console): State<Console>,
    Params(params): Params<PathParam>,
) -> ApiResult<Json<FileDetails>> {
    let path = remote_path::parse_file(&params.path)?;
    Ok(Json(console.client.stat(&path).await?.into()))
}

#[derive(Deserialize)]
struct UploadParams {
    path: String,
    #[serde(default)]
    overwrite: bool,
}

async fn upload(
    State(console): State<Console>,
    Params(params): Params<UploadParams>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> ApiResult<Json<Value>> {
    let path = remote_path::parse_file(&params.path)?;
    let _slot = console.transfer_slot()?;
    let size = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let report = transfer::upload(
        &console.client,
        &path,
        params.overwrite,
        console.parallel,
        body,
        size,
    )
    .await?;
    tracing::info!(path = %report.path, size = report.size, "uploaded");
    Ok(Json(json!({
        "path": report.path.to_string(),
        "size": report.size,
        "chunks": report.chunks,
        "deduplicated": report.deduplicated,
        "version": report.version,
    })))
}

#[derive(Deserialize)]
struct RemoveParams {
    path: String,
    #[serde(default)]
    recursive: bool,
}

async fn remove(
    State(console): State<Console>,
    Params(params): Params<RemoveParams>,
) -> ApiResult<Json<Value>> {
    let path = remote_path::parse_file(&params.path)?;
    let files = console.client.remove(&path, params.recursive).await?;
    tracing::info!(%path, files, "removed");
    Ok(Json(
        json!({ "path": path.to_string(), "files_removed": files }),
    ))
}

async fn download(
    State(console): State<Console>,
    Params(params): Params<PathParam>,
) -> ApiResult<Response> {
    let path = remote_path::parse_file(&params.path)?;
    let slot = console.transfer_slot()?;
    Ok(transfer::download(&console.client, &path, console.parallel, slot).await?)
}

#[derive(Deserialize)]
struct MkdirParams {
    dir: String,
    name: String,
}

async fn mkdir(
    State(console): State<Console>,
    Params(params): Params<MkdirParams>,
) -> ApiResult<Json<Value>> {
    let path = remote_path::child(&remote_path::parse(&params.dir)?, params.name.trim())?;
    console.client.mkdir(&path, false).await?;
    Ok(Json(json!({ "path": path.to_string() })))
}

#[derive(Deserialize)]
struct RenameParams {
    path: String,
    name: String,
}

async fn rename(
    State(console): State<Console>,
    Params(params): Params<RenameParams>,
) -> ApiResult<Json<Value>> {
    let from = remote_path::parse_file(&params.path)?;
    let to = remote_path::child(&remote_path::parent(&from), params.name.trim())?;
    let moved = console.client.rename(&from, &to, false).await?;
    tracing::info!(%from, %to, "renamed");
    Ok(Json(
        json!({ "from": from.to_string(), "to": moved.path, "files": moved.files }),
    ))
}

/// An unknown API route is a JSON 404; any other path is the console itself.
async fn not_found(uri: Uri) -> Response {
    if uri.path().starts_with("/api/") {
        let message = format!("no such API route: {}", uri.path());
        ApiError::new(StatusCode::NOT_FOUND, message).into_response()
    } else {
        Redirect::to("/").into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    #[tokio::test]
    async fn transfers_beyond_the_limit_are_told_to_come_back() {
        // No transfer may run: the refusal comes before any call to the (absent) cluster.
        let client = Client::new("127.0.0.1:9").unwrap();
        let limits = Limits {
            parallel: 1,
            transfers: 0,
        };
        let app = router(client, limits, "127.0.0.1:9480".parse().unwrap());
        for (method, uri) in [
            ("PUT", "/api/file?path=/x"),
            ("GET", "/api/download?path=/x"),
        ] {
            let request = Request::builder()
                .method(method)
                .uri(uri)
                .header("host", "127.0.0.1:9480")
                .header(guard::CONSOLE_HEADER, "1")
                .body(Body::empty())
                .unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            assert_eq!(
                response.status(),
                StatusCode::SERVICE_UNAVAILABLE,
                "{method} {uri}"
            );
        }
    }
}
