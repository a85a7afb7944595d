//! JSON-RPC 2.0 shapes the bridge itself produces: error objects for refusals and failures, and the
//! classification of a message as request, notification or response.
//!
//! The bridge forwards messages as JSON values rather than typed structs, so that fields it does not know
//! (`_meta`, new methods, new capabilities) pass through untouched; only `id`, `method` and a progress token are
//! ever rewritten.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The child died or could not be reached (JSON-RPC implementation-defined server error).
pub const SERVER_ERROR: i64 = -32000;
/// The session is unknown (or not the caller's).
pub const UNKNOWN_SESSION: i64 = -32001;
/// A limit of the bridge refused the request.
pub const LIMIT: i64 = -32002;
/// The child did not answer within `--request-timeout`.
pub const TIMEOUT: i64 = -32003;
pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const INVALID_PARAMS: i64 = -32602;

/// A JSON-RPC error response.
pub fn error(id: Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

/// An HTTP response carrying a JSON-RPC error body.
pub fn http_error(status: StatusCode, id: Value, code: i64, message: &str) -> Response {
    (status, Json(error(id, code, message))).into_response()
}

/// What a JSON-RPC message is.
#[derive(Debug)]
pub enum Kind {
    Request { id: Value, method: String },
    Notification { method: String },
    Response { id: Value },
    Invalid,
}

/// Classifies a message by its `id`, `method`, `result` and `error` members.
pub fn classify(message: &Value) -> Kind {
    let Some(object) = message.as_object() else {
        return Kind::Invalid;
    };
    let id = object
        .get("id")
        .filter(|id| id.is_string() || id.is_number())
        .cloned();
    match (object.get("method").and_then(Value::as_str), id) {
        (Some(method), Some(id)) => Kind::Request {
            id,
            method: method.to_owned(),
        },
        (Some(method), None) if !object.contains_key("id") => Kind::Notification {
            method: method.to_owned(),
        },
        (None, Some(id)) if object.contains_key("result") || object.contains_key("error") => {
            Kind::Response { id }
        }
        _ => Kind::Invalid,
    }
}
