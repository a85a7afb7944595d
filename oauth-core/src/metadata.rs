//! Discovery documents: RFC 8414 authorization-server metadata and RFC 9728 protected-resource metadata.
//!
//! One issuer string everywhere (`shared/mcp-auth-requirements.md`, P1): the `issuer` here, every PRM's
//! `authorization_servers`, the RFC 9207 `iss` parameter and the JWT `iss` all come from
//! [`ServerConfig::issuer`](crate::ServerConfig::issuer) unchanged.

use crate::config::ResourceConfig;
use crate::server::AuthServer;
use crate::wire::{AuthorizationServerMetadata, ProtectedResourceMetadata};

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

impl AuthServer {
    /// The RFC 8414 document for `/.well-known/oauth-authorization-server`.
    pub fn authorization_server_metadata(&self) -> AuthorizationServerMetadata {
        let c = &self.config;
        let mut auth_methods = strings(&["none", "client_secret_basic", "client_secret_post"]);
        // private_key_jwt exists only for document clients (registration issues secrets or nothing).
        let documents = self.documents.is_some();
        let signing_algs = documents.then(|| strings(crate::cimd::assertion::SIGNING_ALGS));
        if documents {
            auth_methods.push("private_key_jwt".into());
        }
        let mut scopes = c.scopes_supported.clone();
        scopes.push("offline_access".into());
        AuthorizationServerMetadata {
            issuer: c.issuer.clone(),
            authorization_endpoint: c.url(&c.endpoints.authorize),
            token_endpoint: c.url(&c.endpoints.token),
            registration_endpoint: c.url(&c.endpoints.register),
            revocation_endpoint: c.url(&c.endpoints.revoke),
            introspection_endpoint: c.url(&c.endpoints.introspect),
            jwks_uri: c.url(&c.endpoints.jwks),
            scopes_supported: scopes,
            response_types_supported: strings(&["code"]),
            response_modes_supported: strings(&["query"]),
            grant_types_supported: strings(&["authorization_code", "refresh_token"]),
            token_endpoint_auth_methods_supported: auth_methods.clone(),
            token_endpoint_auth_signing_alg_values_supported: signing_algs.clone(),
            revocation_endpoint_auth_methods_supported: auth_methods.clone(),
            revocation_endpoint_auth_signing_alg_values_supported: signing_algs.clone(),
            introspection_endpoint_auth_methods_supported: auth_methods,
            introspection_endpoint_auth_signing_alg_values_supported: signing_algs,
            code_challenge_methods_supported: strings(&["S256"]),
            authorization_response_iss_parameter_supported: true,
            client_id_metadata_document_supported: documents,
        }
    }

    /// The RFC 9728 document of one protected resource.
    pub fn protected_resource_metadata(
        &self,
        resource: &ResourceConfig,
    ) -> ProtectedResourceMetadata {
        ProtectedResourceMetadata {
            resource: resource.resource.clone(),
            authorization_servers: vec![self.config.issuer.clone()],
            scopes_supported: resource
                .scopes_supported
                .iter()
                .filter(|s| *s != "offline_access")
                .cloned()
                .collect(),
            bearer_methods_supported: strings(&["header"]),
            resource_name: resource.name.clone(),
        }
    }

    /// The resource whose RFC 9728 metadata URL is `url` (the service routes the well-known paths of every MCP host
    /// here).
    pub fn resource_for_metadata_url(&self, url: &str) -> Option<&ResourceConfig> {
        let wanted = url.trim_end_matches('/');
        self.config
            .resources
            .iter()
            .find(|r| r.metadata_url() == wanted)
    }

    /// The JWK set for `jwks_uri`.
    pub fn jwks(&self) -> serde_json::Value {
        self.keys.jwks()
    }
}
