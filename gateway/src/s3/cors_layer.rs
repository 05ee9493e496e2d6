//! CORS on the wire, in front of s3s (which routes no `OPTIONS`): a preflight is answered from
//! the bucket's rules, and the answer to any other request that names an `Origin` gets the
//! `Access-Control-*` headers of the rule that allows it. A request without `Origin` costs
//! nothing more; one with it costs a read of the bucket's rules.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use s3s::dto::CORSConfiguration;

use super::bucket_config::CORS;
use super::cors::{self, Allowed};
use super::Gateway;

const REQUEST_METHOD: &str = "access-control-request-method";
const REQUEST_HEADERS: &str = "access-control-request-headers";

pub async fn layer(State(gateway): State<Gateway>, request: Request, next: Next) -> Response {
    let bucket = bucket_of(request.uri().path()).map(str::to_string);
    let origin = header(request.headers(), "origin");
    if request.method() == Method::OPTIONS {
        return preflight(&gateway, bucket.as_deref(), origin, request.headers()).await;
    }
    let (Some(bucket), Some(origin)) = (bucket, origin) else {
        return next.run(request).await;
    };
    // As RGW, a request that names the method it stands for is matched with that method.
    let method = header(request.headers(), REQUEST_METHOD)
        .unwrap_or_else(|| request.method().as_str().to_string());
    let mut response = next.run(request).await;
    if let Some(allowed) = rules(&gateway, &bucket)
        .await
        .and_then(|c| cors::allow(&c, &origin, &method, None))
    {
        add_headers(response.headers_mut(), &allowed);
    }
    response
}

async fn preflight(
    gateway: &Gateway,
    bucket: Option<&str>,
    origin: Option<String>,
    headers: &HeaderMap,
) -> Response {
    let (Some(bucket), Some(origin), Some(method)) =
        (bucket, origin, header(headers, REQUEST_METHOD))
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "a CORS preflight names a bucket, an Origin and an Access-Control-Request-Method",
        );
    };
    let asked = header(headers, REQUEST_HEADERS);
    match rules(gateway, bucket)
        .await
        .and_then(|c| cors::allow(&c, &origin, &method, asked.as_deref()))
    {
        Some(allowed) => {
            let mut response = StatusCode::OK.into_response();
            add_headers(response.headers_mut(), &allowed);
            response
        }
        None => error(
            StatusCode::FORBIDDEN,
            "AccessForbidden",
            "CORSResponse: this CORS request is not allowed by the bucket's CORS rules",
        ),
    }
}

/// The bucket's CORS rules; none when it has none, or cannot be read (a request is then
/// answered as without rules, never with more than they allow).
async fn rules(gateway: &Gateway, bucket: &str) -> Option<CORSConfiguration> {
    gateway.bucket_config(bucket, CORS).await.ok().flatten()
}

/// The bucket a path-style request names.
fn bucket_of(path: &str) -> Option<&str> {
    let bucket = path.trim_start_matches('/').split('/').next()?;
    (!bucket.is_empty()).then_some(bucket)
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name)?.to_str().ok().map(str::to_string)
}

fn add_headers(headers: &mut HeaderMap, allowed: &Allowed) {
    let mut set = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    };
    set("access-control-allow-origin", &allowed.origin);
    set("access-control-allow-methods", &allowed.methods);
    if let Some(asked) = &allowed.headers {
        set("access-control-allow-headers", asked);
    }
    if let Some(expose) = &allowed.expose {
        set("access-control-expose-headers", expose);
    }
    if let Some(age) = allowed.max_age {
        set("access-control-max-age", &age.to_string());
    }
    headers.append(axum::http::header::VARY, HeaderValue::from_static("Origin"));
}

/// An error as S3 writes one.
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    (status, [("content-type", "application/xml")], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_is_the_first_path_segment() {
        assert_eq!(bucket_of("/b/k/x"), Some("b"));
        assert_eq!(bucket_of("/b"), Some("b"));
        assert_eq!(bucket_of("/"), None);
    }
}
