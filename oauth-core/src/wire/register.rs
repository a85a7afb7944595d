//! RFC 7591 §2 client metadata, §3.1 registration request and §3.2.1 response; RFC 7592 read/update bodies.
//!
//! The request (in an RFC 7592 update) and the response carry the client secret and the registration access
//! token: their `Debug` shows that these are present, never their values.

use serde::{Deserialize, Serialize};

use crate::types::debug_redacted;

/// A registration (or RFC 7592 update) request body. Unknown fields are ignored (RFC 7591 §2). `Debug` is
/// redacted.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ClientRegistrationRequest {
    /// Redirect URIs.
    pub redirect_uris: Option<Vec<String>>,
    /// Requested token endpoint authentication method.
    pub token_endpoint_auth_method: Option<String>,
    /// Grant types.
    pub grant_types: Option<Vec<String>>,
    /// Response types.
    pub response_types: Option<Vec<String>>,
    /// `native` or `web` (OpenID Connect Registration §2).
    pub application_type: Option<String>,
    /// Human-readable client name.
    pub client_name: Option<String>,
    /// Client home page.
    pub client_uri: Option<String>,
    /// Client logo.
    pub logo_uri: Option<String>,
    /// Space-separated scopes the client may request.
    pub scope: Option<String>,
    /// Contact e-mail addresses.
    pub contacts: Option<Vec<String>>,
    /// Terms of service.
    pub tos_uri: Option<String>,
    /// Privacy policy.
    pub policy_uri: Option<String>,
    /// Software identifier.
    pub software_id: Option<String>,
    /// Software version.
    pub software_version: Option<String>,
    /// RFC 7592 update: must equal the client being updated.
    pub client_id: Option<String>,
    /// RFC 7592 update: if present, must equal the current secret.
    pub client_secret: Option<String>,
    /// RFC 7592 §2.2: clients MUST NOT send this in an update.
    pub registration_access_token: Option<String>,
    /// RFC 7592 §2.2: clients MUST NOT send this in an update.
    pub registration_client_uri: Option<String>,
    /// RFC 7592 §2.2: clients MUST NOT send this in an update.
    pub client_id_issued_at: Option<serde_json::Value>,
    /// RFC 7592 §2.2: clients MUST NOT send this in an update.
    pub client_secret_expires_at: Option<serde_json::Value>,
}

debug_redacted!(ClientRegistrationRequest {
    redirect_uris,
    token_endpoint_auth_method,
    grant_types,
    response_types,
    application_type,
    client_name,
    client_uri,
    logo_uri,
    scope,
    contacts,
    tos_uri,
    policy_uri,
    software_id,
    software_version,
    client_id,
    client_secret: secret,
    registration_access_token: secret,
    registration_client_uri,
    client_id_issued_at,
    client_secret_expires_at,
});

/// Validated client metadata, as registered and echoed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ClientMetadata {
    /// Redirect URIs, exactly as registered.
    pub redirect_uris: Vec<String>,
    /// `none`, `client_secret_basic` or `client_secret_post`; `private_key_jwt` for a document client.
    pub token_endpoint_auth_method: String,
    /// Grant types.
    pub grant_types: Vec<String>,
    /// Response types.
    pub response_types: Vec<String>,
    /// `native` or `web`, when the client said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub application_type: Option<String>,
    /// Client name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    /// Client home page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_uri: Option<String>,
    /// Logo.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logo_uri: Option<String>,
    /// Scopes the client may request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Contacts.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub contacts: Vec<String>,
    /// Terms of service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tos_uri: Option<String>,
    /// Privacy policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_uri: Option<String>,
    /// Software identifier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub software_id: Option<String>,
    /// Software version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub software_version: Option<String>,
}

/// RFC 7591 §3.2.1 / RFC 7592 §3 response. `Debug` is redacted.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ClientRegistrationResponse {
    /// The client identifier.
    pub client_id: String,
    /// The secret, only at registration (and when an update issues one), only for secret methods.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// When the client id was issued.
    pub client_id_issued_at: u64,
    /// When the secret expires (0 = never); present iff the client has a secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret_expires_at: Option<u64>,
    /// RFC 7592 registration access token; present at registration and after an update (which rotates it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registration_access_token: Option<String>,
    /// RFC 7592 client configuration endpoint.
    pub registration_client_uri: String,
    /// The registered metadata.
    #[serde(flatten)]
    pub metadata: ClientMetadata,
}

debug_redacted!(ClientRegistrationResponse {
    client_id,
    client_secret: secret,
    client_id_issued_at,
    client_secret_expires_at,
    registration_access_token: secret,
    registration_client_uri,
    metadata,
});

/// A client ID metadata document (draft-ietf-oauth-client-id-metadata-document §4): RFC 7591 client metadata
/// plus the `client_id` (the document's own URL) and the client's public keys. Unknown fields are ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ClientIdMetadataDocument {
    /// The client metadata. Its `client_id` must equal the URL the document was fetched from.
    #[serde(flatten)]
    pub metadata: ClientRegistrationRequest,
    /// The client's public keys (RFC 7591 §2 `jwks`), for `private_key_jwt`.
    pub jwks: Option<serde_json::Value>,
    /// Where the client's public keys are (RFC 7591 §2 `jwks_uri`), for `private_key_jwt`.
    pub jwks_uri: Option<String>,
}
