//! The validity a presigned URL claims, checked before s3s checks its signature: S3 signs for
//! at most seven days, and a negative `X-Amz-Expires` is a URL that expired before it was made.
//! s3s accepts the first and answers the second 400 (a malformed query); S3 and the clients'
//! tests expect both refused as 403 AccessDenied.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

/// The longest validity SigV4 allows a presigned URL: seven days, in seconds.
pub const MAX_EXPIRES: i64 = 7 * 24 * 3600;

/// Why the `X-Amz-Expires` in `query` is refused, if it is.
pub fn refusal(query: &str) -> Option<String> {
    let value = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("X-Amz-Expires="))?;
    match value.parse::<i64>() {
        Ok(secs) if secs < 0 => Some(format!("X-Amz-Expires={secs}: the URL has expired")),
        Ok(secs) if secs > MAX_EXPIRES => Some(format!(
            "X-Amz-Expires={secs}: a presigned URL is valid for at most {MAX_EXPIRES} seconds"
        )),
        // Anything else, a malformed number included, is s3s's to judge.
        _ => None,
    }
}

/// The middleware: a refused URL gets S3's AccessDenied error document.
pub async fn check(request: Request, next: Next) -> Response {
    let Some(reason) = request.uri().query().and_then(refusal) else {
        return next.run(request).await;
    };
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <Error><Code>AccessDenied</Code><Message>{reason}</Message></Error>"
    );
    Response::builder()
        .status(StatusCode::FORBIDDEN)
        .header(header::CONTENT_TYPE, "application/xml")
        .body(Body::from(body))
        .expect("a static status and header")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_negative_or_over_a_week_is_refused() {
        let q = |e: &str| format!("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires={e}&x=y");
        assert!(refusal(&q("3600")).is_none());
        assert!(refusal(&q("0")).is_none());
        assert!(refusal(&q("604800")).is_none());
        assert!(refusal(&q("604801")).is_some());
        assert!(refusal(&q("-7")).is_some());
        assert!(refusal(&q("abc")).is_none());
        assert!(refusal("list-type=2&prefix=a").is_none());
    }
}
