//! Request and response bodies exactly as the RFCs name them: serde only, no logic.
//!
//! Form and query bodies are flat structs of `Option<String>` (see STYLE.md §2.4: serde_urlencoded cannot
//! buffer tagged or flattened content into non-string fields). They are parsed into domain values in the flow
//! modules. [`parse_form`] is the one entry point for urlencoded input: it rejects what serde would otherwise
//! silently accept or turn into a framework's error page (invalid UTF-8, duplicate parameters, oversize values)
//! with `invalid_request`, and drops empty values as RFC 6749 §3.1 requires.

mod authorize;
mod introspect;
mod metadata;
mod register;
mod token;

pub use authorize::AuthorizationRequest;
pub use introspect::{IntrospectionRequest, IntrospectionResponse, RevocationRequest};
pub use metadata::{AuthorizationServerMetadata, ProtectedResourceMetadata};
pub use register::{
    ClientIdMetadataDocument, ClientMetadata, ClientRegistrationRequest, ClientRegistrationResponse,
};
pub use token::{TokenRequest, TokenResponse};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::OAuthError;

/// The RFC 6749 §5.2 error body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// The error code.
    pub error: String,
    /// A description for the client developer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}

/// Largest single parameter value accepted in a form or query.
pub const MAX_PARAM_BYTES: usize = 4096;

/// Parses an `application/x-www-form-urlencoded` body or a query string into a flat wire struct.
///
/// # Errors
/// `invalid_request`, naming the parameter, when the input is not UTF-8 after percent-decoding, repeats a
/// parameter (RFC 6749 §3.1: "Request and response parameters MUST NOT be included more than once"), or has a
/// value longer than [`MAX_PARAM_BYTES`].
pub fn parse_form<T: DeserializeOwned>(input: &[u8]) -> Result<T, OAuthError> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for piece in input.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let (k, v) = match piece.iter().position(|b| *b == b'=') {
            Some(i) => (
                piece.get(..i).unwrap_or_default(),
                piece.get(i + 1..).unwrap_or_default(),
            ),
            None => (piece, &[][..]),
        };
        let key = decode_component(k)
            .ok_or_else(|| OAuthError::invalid_request("a parameter name is not valid UTF-8"))?;
        let value = decode_component(v).ok_or_else(|| {
            OAuthError::invalid_request(format!("parameter `{key}` is not valid UTF-8"))
        })?;
        if value.len() > MAX_PARAM_BYTES {
            return Err(OAuthError::invalid_request(format!(
                "parameter `{key}` is longer than {MAX_PARAM_BYTES} bytes"
            )));
        }
        if pairs.iter().any(|(seen, _)| *seen == key) {
            return Err(OAuthError::invalid_request(format!(
                "parameter `{key}` is repeated"
            )));
        }
        if !value.is_empty() {
            pairs.push((key, value));
        }
    }
    let reencoded = serde_urlencoded::to_string(&pairs)
        .map_err(|e| OAuthError::invalid_request(format!("malformed parameters: {e}")))?;
    serde_urlencoded::from_str(&reencoded)
        .map_err(|e| OAuthError::invalid_request(format!("malformed parameters: {e}")))
}

fn decode_component(raw: &[u8]) -> Option<String> {
    let plus_as_space: Vec<u8> = raw
        .iter()
        .map(|b| if *b == b'+' { b' ' } else { *b })
        .collect();
    let decoded: Vec<u8> = percent_encoding::percent_decode(&plus_as_space).collect();
    String::from_utf8(decoded).ok()
}
