//! Keeps other web sites from driving the console through the user's browser. The console has
//! no login (it is meant for 127.0.0.1), so two attacks must be shut out:
//!
//! - **Cross-site requests** (a page elsewhere posting a form to `/api/rename`): every request
//!   that changes something (any method but GET and HEAD) must carry `X-BigFS-Console: 1`,
//!   which a form cannot send and a cross-site script can send only after a CORS preflight the
//!   console never grants; and where the browser names the page it comes from (`Origin`), that
//!   page must be the console itself.
//! - **DNS rebinding** (a site's own name re-pointed at 127.0.0.1, so the browser thinks the
//!   console is that site): on a loopback listener, the `Host` a request names must be a
//!   loopback name with the console's port. (On another address the operator chose to expose
//!   the console, and names cannot be known in advance.)

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// The header the console's own page sends with every request.
pub const CONSOLE_HEADER: &str = "x-bigfs-console";

/// What the guard knows of the console: the address it listens on.
#[derive(Clone, Debug)]
pub struct Guard {
    listen: SocketAddr,
}

impl Guard {
    pub fn new(listen: SocketAddr) -> Self {
        Self { listen }
    }

    /// Why a request may not reach the console, if it may not.
    pub fn refusal(&self, method: &Method, headers: &HeaderMap) -> Option<&'static str> {
        if self.listen.ip().is_loopback() && !self.is_own_host(headers) {
            return Some("the request names another host than the console's");
        }
        if matches!(*method, Method::GET | Method::HEAD) {
            return None;
        }
        if headers.get(CONSOLE_HEADER).and_then(|v| v.to_str().ok()) != Some("1") {
            return Some("a change must come from the console's own page");
        }
        match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
            Some(origin) if !self.is_own_origin(origin, headers) => {
                Some("a change must come from the console's own page")
            }
            _ => None,
        }
    }

    fn is_own_host(&self, headers: &HeaderMap) -> bool {
        let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
            // HTTP/1.0 without Host: not a browser, so no rebinding.
            return true;
        };
        let port = self.listen.port().to_string();
        let Some((name, host_port)) = host.rsplit_once(':') else {
            return false;
        };
        host_port == port && matches!(name, "127.0.0.1" | "localhost" | "[::1]")
    }

    fn is_own_origin(&self, origin: &str, headers: &HeaderMap) -> bool {
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
        host.is_some_and(|host| origin == format!("http://{host}"))
    }
}

/// The middleware: a refused request gets 403 and the reason, as the API's other errors.
pub async fn check(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    match guard.refusal(request.method(), request.headers()) {
        Some(reason) => ApiError::forbidden(reason).into_response(),
        None => next.run(request).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn only_the_consoles_own_page_may_change_things() {
        let guard = Guard::new("127.0.0.1:9480".parse().unwrap());
        let own = [("host", "127.0.0.1:9480"), (CONSOLE_HEADER, "1")];
        assert_eq!(guard.refusal(&Method::GET, &headers(&own[..1])), None);
        assert_eq!(guard.refusal(&Method::POST, &headers(&own)), None);
        let with_origin = [own[0], own[1], ("origin", "http://127.0.0.1:9480")];
        assert_eq!(guard.refusal(&Method::DELETE, &headers(&with_origin)), None);
        // A form posted from elsewhere: no header.
        let form = [
            ("host", "localhost:9480"),
            ("origin", "http://evil.example"),
        ];
        assert!(guard.refusal(&Method::POST, &headers(&form)).is_some());
        // A script elsewhere that got the header through: its origin gives it away.
        let script = [own[0], own[1], ("origin", "http://evil.example")];
        assert!(guard.refusal(&Method::PUT, &headers(&script)).is_some());
        // DNS rebinding: the browser names the attacker's host, even for a GET.
        let rebound = [("host", "evil.example:9480")];
        assert!(guard.refusal(&Method::GET, &headers(&rebound)).is_some());
        assert!(guard
            .refusal(&Method::GET, &headers(&[("host", "localhost:9999")]))
            .is_some());
        // A console exposed on purpose answers to any name.
        let exposed = Guard::new("0.0.0.0:9480".parse().unwrap());
        assert_eq!(exposed.refusal(&Method::GET, &headers(&rebound)), None);
    }
}
