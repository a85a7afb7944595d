//! RFC 8414 and RFC 9728 documents, and the one-issuer rule.

use oauth_core::testing::{ISSUER, RESOURCE};
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn authorization_server_metadata_has_every_field_mcp_clients_need() {
    let h = harness().await;
    let m = serde_json::to_value(h.server.authorization_server_metadata()).unwrap();
    assert_eq!(
        m,
        json!({
            "issuer": ISSUER,
            "authorization_endpoint": "https://auth.example.com/authorize",
            "token_endpoint": "https://auth.example.com/token",
            "registration_endpoint": "https://auth.example.com/register",
            "revocation_endpoint": "https://auth.example.com/revoke",
            "introspection_endpoint": "https://auth.example.com/introspect",
            "jwks_uri": "https://auth.example.com/jwks.json",
            "scopes_supported": ["mcp", "mcp:admin", "offline_access"],
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
            "revocation_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
            "introspection_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": true,
            "client_id_metadata_document_supported": false,
        })
    );
}

#[tokio::test]
async fn protected_resource_metadata_per_resource() {
    let h = harness().await;
    let prm = serde_json::to_value(h.server.protected_resource_metadata(resource(&h))).unwrap();
    assert_eq!(
        prm,
        json!({
            "resource": RESOURCE,
            "authorization_servers": [ISSUER],
            "scopes_supported": ["mcp", "mcp:admin"],
            "bearer_methods_supported": ["header"],
            "resource_name": "Example MCP",
        })
    );
    let found = h
        .server
        .resource_for_metadata_url(
            "https://mcp.example.com/.well-known/oauth-protected-resource/mcp",
        )
        .unwrap();
    assert_eq!(found.resource, RESOURCE);
    assert_eq!(
        h.server
            .resource_for_metadata_url(
                "https://tools.example.com/.well-known/oauth-protected-resource"
            )
            .unwrap()
            .resource,
        oauth_core::testing::OTHER_RESOURCE
    );
    assert!(
        h.server
            .resource_for_metadata_url(
                "https://mcp.example.com/.well-known/oauth-protected-resource"
            )
            .is_none()
    );
}

#[tokio::test]
async fn one_issuer_string_everywhere() {
    let h = harness().await;
    let c = public_client(&h).await;
    let p = h
        .server
        .authorize(form(&authorize_query(
            &c.client_id,
            LOOPBACK,
            &for_resource(),
        )))
        .await
        .unwrap();
    let url = h.server.approve(&p.handle, alice()).await.unwrap();
    let iss_param = query(&url)["iss"].clone();
    let code = query(&url)["code"].clone();
    let t = h
        .server
        .token(None, code_request(&c.client_id, &code, LOOPBACK))
        .await
        .unwrap();
    let introspected = h
        .server
        .introspect(
            None,
            form(&format!(
                "token={}&client_id={}",
                t.access_token, c.client_id
            )),
        )
        .await
        .unwrap();
    let prm = h.server.protected_resource_metadata(resource(&h));
    let asm = h.server.authorization_server_metadata();
    for iss in [
        iss_param,
        introspected.iss.unwrap(),
        prm.authorization_servers[0].clone(),
    ] {
        assert_eq!(iss, asm.issuer);
    }
}

#[tokio::test]
async fn config_validation_names_the_field() {
    let mut c = oauth_core::testing::config();
    c.issuer = "https://auth.example.com/".into();
    assert_eq!(
        c.validate().unwrap_err().to_string(),
        "issuer: must not end with `/` nor carry a query or fragment"
    );
    c.issuer = "http://auth.example.com".into();
    assert_eq!(
        c.validate().unwrap_err().to_string(),
        "issuer: must be https (http only on a loopback host)"
    );
    // RFC 8414 would put this issuer's metadata at `/.well-known/oauth-authorization-server/auth`; the service
    // answers at the root only.
    for with_path in ["https://auth.example.com/auth", "http://127.0.0.1:8080/a/b"] {
        c.issuer = with_path.into();
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "issuer: must be an origin without a path (https://auth.example.com): the service serves its metadata and endpoints at the root",
            "{with_path}"
        );
    }
    c.issuer = "https://auth.example.com:8443".into();
    c.validate().unwrap();
    c.issuer = "http://127.0.0.1:8080".into();
    c.validate().unwrap();
    c.resources[0].resource = "https://mcp.example.com/mcp/".into();
    assert_eq!(
        c.validate().unwrap_err().to_string(),
        "resources[0].resource: must not end with `/`"
    );
    // The path and the rule, typed: an embedder can report the problem under its own key.
    assert_eq!(
        c.validate().unwrap_err(),
        oauth_core::ConfigError::new(
            "resources[0].resource",
            oauth_core::ConfigProblem::TrailingSlash
        )
    );
    let mut c = oauth_core::testing::config();
    c.resources[0].default_scopes = vec!["mcp".into(), "bogus".into()];
    assert_eq!(
        c.validate().unwrap_err().to_string(),
        "resources[0].default_scopes[1]: scope `bogus` is not one of this resource's scopes"
    );
    let clock = oauth_core::testing::FixedClock::new();
    let store = std::sync::Arc::new(oauth_core::EmbeddedStore::in_memory(clock.clone()).unwrap());
    let err = oauth_core::AuthServer::new(c, store, oauth_core::testing::sealer(), clock)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid configuration: resources[0].default_scopes[1]: scope `bogus` is not one of this resource's scopes"
    );
}
