//! The RPC layer against a fake server: what it counts for each kind of answer.

use std::collections::VecDeque;
use std::convert::Infallible;

use bytes::Bytes;
use prometheus_client::encoding::prometheus_text::encode;

use super::*;

/// A body of given frames.
struct Frames(VecDeque<Frame<Bytes>>);

impl Body for Frames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(Ok))
    }
}

fn trailers(code: i32) -> Frame<Bytes> {
    let mut map = http::HeaderMap::new();
    map.insert("grpc-status", code.into());
    Frame::trailers(map)
}

/// Reads every frame of `body`.
async fn drain<B: Body>(body: B) {
    let mut body = std::pin::pin!(body);
    while let Some(frame) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
        assert!(frame.is_ok());
    }
}

/// A server that reads the request, then answers with `headers_status` in its headers (an
/// error) or with a 7-byte message and `trailer_status` in its trailers.
#[derive(Clone)]
struct Fake {
    headers_status: Option<i32>,
    trailer_status: i32,
}

impl<B: Body + Send + 'static> Service<http::Request<B>> for Fake {
    type Response = http::Response<Frames>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let fake = self.clone();
        Box::pin(async move {
            drain(request.into_body()).await;
            let mut response = http::Response::new(Frames(VecDeque::new()));
            match fake.headers_status {
                Some(code) => {
                    response.headers_mut().insert("grpc-status", code.into());
                }
                None => {
                    let frames = response.body_mut();
                    frames
                        .0
                        .push_back(Frame::data(Bytes::from_static(b"1234567")));
                    frames.0.push_back(trailers(fake.trailer_status));
                }
            }
            Ok(response)
        })
    }
}

async fn call(metrics: &RpcMetrics, fake: Fake, path: &str) {
    let mut service = metrics.layer(fake);
    let body = Frames(VecDeque::from([Frame::data(Bytes::from_static(
        b"0123456789",
    ))]));
    let request = http::Request::builder().uri(path).body(body).unwrap();
    let response = service.call(request).await.unwrap();
    drain(response.into_body()).await;
}

#[tokio::test]
async fn calls_are_counted_by_method_and_code() {
    let mut registry = Registry::default();
    let metrics = RpcMetrics::register(&mut registry);
    let ok = Fake {
        headers_status: None,
        trailer_status: 0,
    };
    let not_found = Fake {
        headers_status: Some(5),
        trailer_status: 0,
    };
    let unimplemented = Fake {
        headers_status: Some(12),
        trailer_status: 0,
    };
    let late_error = Fake {
        headers_status: None,
        trailer_status: 14,
    };
    call(&metrics, ok.clone(), "/bigfs.v1.Node/PutChunk").await;
    call(&metrics, ok, "/bigfs.v1.Node/PutChunk").await;
    call(&metrics, not_found, "/bigfs.v1.Meta/GetFile").await;
    call(&metrics, unimplemented, "/made.up/Method").await;
    call(&metrics, late_error, "/bigfs.v1.Meta/Heartbeat").await;

    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    let put = r#"{service="bigfs.v1.Node",method="PutChunk"}"#;
    for line in [
        format!("rpc_requests_total{put} 2\n"),
        format!("rpc_received_bytes_total{put} 20\n"),
        format!("rpc_sent_bytes_total{put} 14\n"),
        format!("rpc_duration_seconds_count{put} 2\n"),
        r#"rpc_errors_total{service="bigfs.v1.Meta",method="GetFile",code="NotFound"} 1"#
            .to_string(),
        r#"rpc_errors_total{service="bigfs.v1.Meta",method="Heartbeat",code="Unavailable"} 1"#
            .to_string(),
        r#"rpc_requests_total{service="unknown",method="unknown"} 1"#.to_string(),
    ] {
        assert!(text.contains(&line), "no {line:?} in:\n{text}");
    }
    assert!(!text.contains("made.up"), "{text}");
    assert!(!text.contains(r#"method="PutChunk",code"#), "{text}");
}

#[tokio::test]
async fn a_call_dropped_before_its_answer_counts_as_cancelled() {
    let mut registry = Registry::default();
    let metrics = RpcMetrics::register(&mut registry);
    let mut service = metrics.layer(Fake {
        headers_status: None,
        trailer_status: 0,
    });
    let request = http::Request::builder()
        .uri("/bigfs.v1.Node/GetChunk")
        .body(Frames(VecDeque::new()))
        .unwrap();
    drop(service.call(request));
    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    let line = r#"rpc_errors_total{service="bigfs.v1.Node",method="GetChunk",code="Cancelled"} 1"#;
    assert!(text.contains(line), "{text}");
}
