//! RFC 8414 authorization-server metadata and RFC 9728 protected-resource metadata.

use serde::{Deserialize, Serialize};

/// RFC 8414 §2, with the fields MCP clients require (see `shared/mcp-auth-requirements.md` §2.7).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AuthorizationServerMetadata {
    /// The issuer, byte for byte the one in tokens and PRM.
    pub issuer: String,
    /// Authorization endpoint.
    pub authorization_endpoint: String,
    /// Token endpoint.
    pub token_endpoint: String,
    /// Registration endpoint (RFC 7591).
    pub registration_endpoint: String,
    /// Revocation endpoint (RFC 7009).
    pub revocation_endpoint: String,
    /// Introspection endpoint (RFC 7662).
    pub introspection_endpoint: String,
    /// JWK set URL.
    pub jwks_uri: String,
    /// Supported scopes (plus `offline_access`, which is tolerated).
    pub scopes_supported: Vec<String>,
    /// `["code"]`.
    pub response_types_supported: Vec<String>,
    /// `["query"]`.
    pub response_modes_supported: Vec<String>,
    /// `["authorization_code", "refresh_token"]`.
    pub grant_types_supported: Vec<String>,
    /// `none`, `client_secret_basic`, `client_secret_post`, and `private_key_jwt` when client metadata
    /// documents are enabled.
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// The JWS algorithms accepted for `private_key_jwt` (present iff it is supported, RFC 8414 §2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_signing_alg_values_supported: Option<Vec<String>>,
    /// Same as the token endpoint's.
    pub revocation_endpoint_auth_methods_supported: Vec<String>,
    /// Same as the token endpoint's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint_auth_signing_alg_values_supported: Option<Vec<String>>,
    /// Same as the token endpoint's.
    pub introspection_endpoint_auth_methods_supported: Vec<String>,
    /// Same as the token endpoint's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introspection_endpoint_auth_signing_alg_values_supported: Option<Vec<String>>,
    /// `["S256"]`.
    pub code_challenge_methods_supported: Vec<String>,
    /// RFC 9207: `iss` is in every authorization response.
    pub authorization_response_iss_parameter_supported: bool,
    /// Whether a client may be identified by the URL of its metadata document
    /// (draft-ietf-oauth-client-id-metadata-document).
    pub client_id_metadata_document_supported: bool,
}

/// RFC 9728 §2.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ProtectedResourceMetadata {
    /// The canonical resource URI.
    pub resource: String,
    /// The issuer of this server, exactly.
    pub authorization_servers: Vec<String>,
    /// Scopes of this resource (never `offline_access`).
    pub scopes_supported: Vec<String>,
    /// `["header"]`.
    pub bearer_methods_supported: Vec<String>,
    /// Human-readable name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
}
