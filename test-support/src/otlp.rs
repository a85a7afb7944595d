//! An OpenTelemetry collector for tests: an OTLP/HTTP receiver (`POST /v1/traces`, protobuf) that decodes each
//! batch with the `opentelemetry-proto` types, and readers of what it received. The service's exporter is the
//! real one; only the collector is the test's, following the OTLP/HTTP specification (protobuf body, a protobuf
//! `ExportTraceServiceResponse`, here empty).

use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;

/// The batches received, decoded.
pub type Received = Arc<Mutex<Vec<ExportTraceServiceRequest>>>;

/// Starts a receiver on a free loopback port, pushing every batch posted to it into `received`; returns its base
/// URL (the service's `otlp_endpoint`).
pub async fn receiver(received: Received) -> String {
    use axum::body::Bytes;
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: Bytes| {
            let received = received.clone();
            async move {
                assert_eq!(
                    headers.get("content-type").unwrap(),
                    "application/x-protobuf"
                );
                let batch = ExportTraceServiceRequest::decode(body).unwrap();
                received.lock().unwrap().push(batch);
                (
                    [("content-type", "application/x-protobuf")],
                    Vec::<u8>::new(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// Every span of every batch, in the order received.
pub fn spans(batches: &[ExportTraceServiceRequest]) -> Vec<Span> {
    batches
        .iter()
        .flat_map(|b| &b.resource_spans)
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|s| &s.spans)
        .cloned()
        .collect()
}

/// An attribute value as text (strings as they are, numbers and booleans written out).
pub fn text(v: &Option<AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

/// The span's attribute `key`, as [`text`].
pub fn attr(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| text(&kv.value))
}

/// A trace or span id as the lower-case hex of `traceparent`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
