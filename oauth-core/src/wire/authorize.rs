//! RFC 6749 §4.1.1 authorization request, with PKCE (RFC 7636 §4.3) and resource indicators (RFC 8707 §2).

use serde::{Deserialize, Serialize};

/// The query of `GET /authorize`. Every field is optional here; the flow decides what is required.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AuthorizationRequest {
    /// Must be `code`.
    pub response_type: Option<String>,
    /// The registered client.
    pub client_id: Option<String>,
    /// One of the client's registered redirect URIs.
    pub redirect_uri: Option<String>,
    /// Requested scope, space-separated.
    pub scope: Option<String>,
    /// Opaque client state, echoed back unmodified.
    pub state: Option<String>,
    /// PKCE challenge (RFC 7636 §4.2).
    pub code_challenge: Option<String>,
    /// PKCE method; only `S256` is accepted.
    pub code_challenge_method: Option<String>,
    /// The protected resource the token is for (RFC 8707).
    pub resource: Option<String>,
}
