//! Request and response bodies exactly as the RFCs name them: serde only, no logic.
//!
//! Form and query bodies are flat structs of `Option<String>` (see STYLE.md §2.4: serde_urlencoded cannot
//! buffer tagged or flattened content into non-string fields). They are parsed into domain values in the flow
//! modules. [`parse_form`] is the one entry point for urlencoded input: it rejects what serde would otherwise
//! silently accept or turn into a framework's error page (invalid UTF-8, duplicate parameters, oversize values)
//! with `invalid_request`, and drops empty values as RFC 6749 §3.1 requires.

mod authorize;
#[cfg(test)]
mod debug_tests;
pub(crate) mod error;
mod introspect;
mod metadata;
mod register;
mod token;

pub use authorize::AuthorizationRequest;
pub use error::ErrorResponse;
pub use introspect::{IntrospectionResponse, TokenReference};
pub use metadata::{AuthorizationServerMetadata, ProtectedResourceMetadata};
pub use register::{
    ClientIdMetadataDocument, ClientMetadata, ClientRegistrationRequest, ClientRegistrationResponse,
};
pub use token::{ClientAuthentication, TokenRequest, TokenResponse};

use serde::de::DeserializeOwned;

use error::OAuthError;

/// Largest single parameter value accepted in a form or query.
pub const MAX_PARAM_BYTES: usize = 4096;

/// Parses an `application/x-www-form-urlencoded` body or a query string into a flat wire struct.
///
/// # Errors
/// `invalid_request`, naming the parameter, when the input is not UTF-8 after percent-decoding, repeats a
/// parameter (RFC 6749 §3.1: "Request and response parameters MUST NOT be included more than once"), or has a
/// value longer than [`MAX_PARAM_BYTES`].
pub fn parse_form<T: DeserializeOwned>(input: &[u8]) -> Result<T, OAuthError> {
    // The decoded pairs go straight into the target struct (all `Option<String>`, see the module docs) through a
    // JSON object of strings: no second urlencoded round.
    let mut fields = serde_json::Map::new();
    let mut seen: Vec<String> = Vec::new();
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
        // Repeated even if one of the values is empty: `code=&code=x` is as ambiguous as `code=a&code=b`.
        if seen.contains(&key) {
            return Err(OAuthError::invalid_request(format!(
                "parameter `{key}` is repeated"
            )));
        }
        if !value.is_empty() {
            fields.insert(key.clone(), serde_json::Value::String(value));
        }
        seen.push(key);
    }
    T::deserialize(serde_json::Value::Object(fields))
        .map_err(|e| OAuthError::invalid_request(format!("malformed parameters: {e}")))
}

/// `application/x-www-form-urlencoded` decoding of one name or value: `+` is a space, then percent-decoding;
/// `None` if the result is not UTF-8.
fn decode_component(raw: &[u8]) -> Option<String> {
    let decoded: Vec<u8> = if raw.contains(&b'+') {
        let plus_as_space: Vec<u8> = raw
            .iter()
            .map(|b| if *b == b'+' { b' ' } else { *b })
            .collect();
        percent_encoding::percent_decode(&plus_as_space).collect()
    } else {
        percent_encoding::percent_decode(raw).collect()
    };
    String::from_utf8(decoded).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_decodes_plus_and_percent_drops_empty_values_and_ignores_unknown_names() {
        let t: TokenRequest = parse_form(
            b"grant_type=refresh_token&scope=a+b%20c&refresh_token=x%2By&code=&extra=1&&client_id",
        )
        .unwrap();
        assert_eq!(t.grant_type.as_deref(), Some("refresh_token"));
        assert_eq!(t.scope.as_deref(), Some("a b c"));
        assert_eq!(t.refresh_token.as_deref(), Some("x+y"));
        assert_eq!((t.code, t.client.client_id), (None, None));
        let empty: TokenRequest = parse_form(b"").unwrap();
        assert_eq!(empty, TokenRequest::default());
    }

    #[test]
    fn a_form_refuses_repeats_even_of_an_empty_value_bad_utf8_and_oversize_values() {
        for (input, says) in [
            (&b"code=&code=x"[..], "parameter `code` is repeated"),
            (b"code=x&code=", "parameter `code` is repeated"),
            (b"scope=%FF", "parameter `scope` is not valid UTF-8"),
            (b"%FF=1", "a parameter name is not valid UTF-8"),
        ] {
            let e = parse_form::<TokenRequest>(input).unwrap_err();
            assert_eq!(e.description, says, "{input:?}");
        }
        let big = format!("scope={}", "a".repeat(MAX_PARAM_BYTES + 1));
        assert!(parse_form::<TokenRequest>(big.as_bytes()).is_err());
        let edge = format!("scope={}", "a".repeat(MAX_PARAM_BYTES));
        assert!(parse_form::<TokenRequest>(edge.as_bytes()).is_ok());
    }
}
