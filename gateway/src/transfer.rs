//! Uploads and downloads as streams: an HTTP body feeds the chunker as its bytes arrive, and
//! a file's verified chunks feed the response body in order. Neither is ever held whole: the
//! gateway's memory is bounded by the chunks in flight (`--parallel` per transfer), so a 5 GiB
//! file costs what a 5 MiB one does.

use std::io;

use axum::body::Body;
use axum::http::{header, HeaderValue, Response};
use futures::TryStreamExt;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use tokio_util::io::StreamReader;

use bigfs_client::download::check_plain;
use bigfs_client::progress::Progress;
use bigfs_client::upload::{PutOptions, PutReport, Source};
use bigfs_client::Client;
use bigfs_proto::FsPath;

/// Stores `body` at `path`. An existing file is replaced only with `overwrite`; without it the
/// put fails (409) before a byte of the body is read. Nothing is visible at `path` unless the
/// whole body arrived and was committed: a client that goes away mid-upload leaves the old
/// file (or none).
pub async fn upload(
    client: &Client,
    path: &FsPath,
    overwrite: bool,
    parallel: usize,
    body: Body,
    size: Option<u64>,
) -> anyhow::Result<PutReport> {
    let reader = StreamReader::new(body.into_data_stream().map_err(io::Error::other));
    let source = Source::async_reader(reader, "the uploaded body", size);
    let options = PutOptions {
        replication: None,
        overwrite,
        parallel,
        preserve: false,
        if_version: None,
    };
    client
        .put(source, path, &options, &Progress::hidden())
        .await
}

/// The response for a download of `path`: the headers from the file's metadata, then its
/// chunks as they are fetched and verified. A chunk with no good copy ends the body early, so
/// the client sees a transfer shorter than its Content-Length, never wrong bytes. `hold` is
/// kept until the body is done or dropped (a slot among the transfers in flight).
pub async fn download(
    client: &Client,
    path: &FsPath,
    parallel: usize,
    hold: impl Send + Sync + 'static,
) -> anyhow::Result<Response<Body>> {
    let file = client.stat(path).await?;
    check_plain(path, &file)?;
    let size = file.file.as_ref().map_or(0, |f| f.size);
    let logged = path.clone();
    let chunks = client
        .chunk_stream(path.clone(), file.chunks, parallel)
        .map_err(move |e| {
            // Moved into the stream: the slot is given back when the body ends or is dropped.
            let _held = &hold;
            tracing::warn!("download of {logged} cut short: {e:#}");
            io::Error::other(format!("{e:#}"))
        });
    let mut response = Response::new(Body::from_stream(chunks));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&content_disposition(path.name()))?,
    );
    Ok(response)
}

/// Characters that RFC 5987's `attr-char` allows unencoded, besides letters and digits.
const ATTR_CHAR: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// `Content-Disposition` for a download saved as `name`: a plain ASCII `filename` for old
/// clients (other characters become `_`) and the exact name, UTF-8 and percent-encoded, in
/// `filename*`, which browsers prefer (RFC 6266).
pub fn content_disposition(name: &str) -> String {
    let fallback: String = name
        .chars()
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' => c,
            _ => '_',
        })
        .collect();
    let exact = utf8_percent_encode(name, ATTR_CHAR);
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{exact}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disposition_keeps_the_exact_name_and_an_ascii_fallback() {
        assert_eq!(
            content_disposition("report.pdf"),
            "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
        );
        assert_eq!(
            content_disposition("été \"1\".txt"),
            "attachment; filename=\"_t_ _1_.txt\"; \
             filename*=UTF-8''%C3%A9t%C3%A9%20%221%22.txt"
        );
        // Every one is a valid header value.
        for name in ["a\u{7f}b", "x\ny", "日本"] {
            assert!(
                HeaderValue::from_str(&content_disposition(name)).is_ok(),
                "{name}"
            );
        }
    }
}
