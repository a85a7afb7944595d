//! `/verify`: the rejection kinds and their challenges, signature attacks, audience, expiry, revocation (also
//! across instances sharing a store), key rotation, and request-URL → resource mapping.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use josekit::jws::{ES256, HS256, JwsHeader};
use josekit::jwt::{self, JwtPayload};
use oauth_core::testing::{self, OTHER_RESOURCE, RESOURCE};
use oauth_core::{AuthServer, RejectionKind, ResourceConfig};

use crate::common::*;

const PRM: &str = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";

fn invalid(h: &Harness, token: &str) -> (u16, &'static str, String) {
    let r = h
        .server
        .verify(Some(&bearer(token)), resource(h))
        .unwrap_err();
    (r.status(), r.description, r.www_authenticate())
}

fn challenge(description: &str) -> String {
    format!(
        "Bearer error=\"invalid_token\", error_description=\"{description}\", resource_metadata=\"{PRM}\""
    )
}

/// The payload segment of a token, decoded.
fn claims_of(token: &str) -> serde_json::Map<String, serde_json::Value> {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&B64.decode(payload).unwrap()).unwrap()
}

fn kid_of(h: &Harness) -> String {
    h.server.jwks()["keys"][0]["kid"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn valid_token(h: &Harness) -> String {
    let c = public_client(h).await;
    tokens(h, &c.client_id, &for_resource()).await.access_token
}

#[tokio::test]
async fn a_valid_token_yields_the_principal() {
    let h = harness().await;
    let token = valid_token(&h).await;
    let p = h
        .server
        .verify(Some(&bearer(&token)), resource(&h))
        .unwrap();
    assert_eq!(p.subject(), "local:alice");
    assert_eq!(p.username(), Some("alice"));
    assert_eq!(p.groups(), ["staff"]);
    assert_eq!(p.audience(), RESOURCE);
    assert!(p.scope().contains("mcp"));
    // A cache hit gives the same answer.
    assert_eq!(
        h.server
            .verify(Some(&format!("bearer  {token} ")), resource(&h))
            .unwrap(),
        p
    );
    let claims = claims_of(&token);
    assert_eq!(claims["iss"], testing::ISSUER);
    assert_eq!(claims["aud"], RESOURCE);
    let header: serde_json::Value =
        serde_json::from_slice(&B64.decode(token.split('.').next().unwrap()).unwrap()).unwrap();
    assert_eq!(
        (header["typ"].as_str(), header["alg"].as_str()),
        (Some("at+jwt"), Some("ES256"))
    );
}

#[tokio::test]
async fn missing_token_gets_a_plain_challenge_with_resource_metadata() {
    let h = harness().await;
    for header in [
        None,
        Some("Basic abc"),
        Some("Bearer"),
        Some("Bearer   "),
        Some(""),
    ] {
        let r = h.server.verify(header, resource(&h)).unwrap_err();
        assert_eq!(r.kind, RejectionKind::MissingToken, "{header:?}");
        assert_eq!(r.status(), 401);
        assert_eq!(
            r.www_authenticate(),
            format!("Bearer scope=\"mcp\", resource_metadata=\"{PRM}\"")
        );
    }
    let origin = h.server.verify(None, other_resource(&h)).unwrap_err();
    assert_eq!(
        origin.www_authenticate(),
        "Bearer resource_metadata=\"https://tools.example.com/.well-known/oauth-protected-resource\""
    );
}

#[tokio::test]
async fn garbage_and_tampered_tokens_are_invalid() {
    let h = harness().await;
    let token = valid_token(&h).await;
    assert_eq!(
        invalid(&h, "not-a-jwt"),
        (401, "malformed token", challenge("malformed token"))
    );
    let mut claims = claims_of(&token);
    claims.insert("scope".into(), "mcp mcp:admin".into());
    let parts: Vec<&str> = token.split('.').collect();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        B64.encode(serde_json::to_vec(&claims).unwrap()),
        parts[2]
    );
    assert_eq!(invalid(&h, &forged).1, "token signature is invalid");
}

#[tokio::test]
async fn alg_none_is_rejected() {
    let h = harness().await;
    let token = valid_token(&h).await;
    let header = serde_json::json!({"alg": "none", "typ": "at+jwt", "kid": kid_of(&h)});
    let unsigned = format!(
        "{}.{}.",
        B64.encode(header.to_string()),
        token.split('.').nth(1).unwrap()
    );
    assert_eq!(invalid(&h, &unsigned).1, "token algorithm is not accepted");
}

#[tokio::test]
async fn hs256_keyed_with_the_public_key_is_rejected() {
    let h = harness().await;
    let token = valid_token(&h).await;
    let public_jwk = h.server.jwks()["keys"][0].to_string();
    let mut header = JwsHeader::new();
    header.set_token_type("at+jwt");
    header.set_key_id(kid_of(&h));
    let signer = HS256.signer_from_bytes(public_jwk.as_bytes()).unwrap();
    let payload = JwtPayload::from_map(claims_of(&token)).unwrap();
    let forged = jwt::encode_with_signer(&payload, &header, &signer).unwrap();
    assert_eq!(invalid(&h, &forged).1, "token algorithm is not accepted");
}

#[tokio::test]
async fn unknown_kid_and_foreign_keys_are_rejected() {
    use josekit::jwk::KeyPair as _;
    let h = harness().await;
    let token = valid_token(&h).await;
    let foreign = ES256.generate_key_pair().unwrap().to_jwk_key_pair();
    let signer = ES256.signer_from_jwk(&foreign).unwrap();
    let payload = JwtPayload::from_map(claims_of(&token)).unwrap();
    let mut header = JwsHeader::new();
    header.set_token_type("at+jwt");
    header.set_key_id("someone-elses-key");
    assert_eq!(
        invalid(
            &h,
            &jwt::encode_with_signer(&payload, &header, &signer).unwrap()
        )
        .1,
        "token signed by an unknown key"
    );
    header.set_key_id(kid_of(&h));
    assert_eq!(
        invalid(
            &h,
            &jwt::encode_with_signer(&payload, &header, &signer).unwrap()
        )
        .1,
        "token signature is invalid"
    );
    let mut no_typ = JwsHeader::new();
    no_typ.set_key_id(kid_of(&h));
    assert_eq!(
        invalid(
            &h,
            &jwt::encode_with_signer(&payload, &no_typ, &signer).unwrap()
        )
        .1,
        "token is not an access token (typ)"
    );
}

#[tokio::test]
async fn wrong_audience_is_invalid_token() {
    let h = harness().await;
    let token = valid_token(&h).await;
    let r = h
        .server
        .verify(Some(&bearer(&token)), other_resource(&h))
        .unwrap_err();
    assert_eq!(
        (r.status(), r.description),
        (401, "the access token was not issued for this resource")
    );
}

#[tokio::test]
async fn wrong_issuer_is_invalid_token() {
    let h = harness().await;
    let mut config = testing::config();
    config.issuer = "https://impostor.example.com".into();
    // Same store, so same keys: only the issuer differs.
    let other = AuthServer::new(
        config,
        h.store.clone(),
        oauth_core::testing::sealer(),
        h.clock.clone(),
    )
    .await
    .unwrap();
    let c = public_client(&h).await;
    let q = authorize_query(&c.client_id, LOOPBACK, &for_resource());
    let p = other.authorize(form(&q)).await.unwrap();
    let code = query(&other.approve(&p.handle, alice()).await.unwrap())["code"].clone();
    let t = other
        .token(None, code_request(&c.client_id, &code, LOOPBACK))
        .await
        .unwrap();
    assert_eq!(
        invalid(&h, &t.access_token).1,
        "the access token was not issued by this authorization server"
    );
}

#[tokio::test]
async fn expiry_holds_even_for_cached_tokens() {
    let h = harness().await;
    let token = valid_token(&h).await;
    h.server
        .verify(Some(&bearer(&token)), resource(&h))
        .unwrap();
    h.clock.advance(Duration::from_secs(3600 + 29));
    h.server
        .verify(Some(&bearer(&token)), resource(&h))
        .expect("within leeway");
    h.clock.advance(Duration::from_secs(2));
    assert_eq!(
        invalid(&h, &token),
        (
            401,
            "the access token has expired",
            challenge("the access token has expired")
        )
    );
}

#[tokio::test]
async fn insufficient_scope_is_403_with_the_scope_needed() {
    let mut config = testing::config();
    config.resources[0] = ResourceConfig::new(RESOURCE, vec!["mcp".into(), "mcp:admin".into()])
        .require(vec!["mcp".into(), "mcp:admin".into()])
        .with_default_scopes(vec!["mcp".into()]);
    let h = harness_with(config).await;
    let token = valid_token(&h).await;
    let r = h
        .server
        .verify(Some(&bearer(&token)), resource(&h))
        .unwrap_err();
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.www_authenticate(),
        format!(
            "Bearer error=\"insufficient_scope\", error_description=\"the access token lacks a scope this resource requires\", scope=\"mcp mcp:admin\", resource_metadata=\"{PRM}\""
        )
    );
}

#[tokio::test]
async fn revoked_tokens_fail_even_after_a_cache_hit_and_on_other_instances_after_sync() {
    let h = harness().await;
    let peer = AuthServer::new(
        testing::config(),
        h.store.clone(),
        oauth_core::testing::sealer(),
        h.clock.clone(),
    )
    .await
    .unwrap();
    let c = public_client(&h).await;
    let t = tokens(&h, &c.client_id, &for_resource()).await;
    h.server
        .verify(Some(&bearer(&t.access_token)), resource(&h))
        .unwrap();
    peer.verify(Some(&bearer(&t.access_token)), resource(&h))
        .expect("a token from one instance verifies at another");
    h.server
        .revoke(
            None,
            form(&format!(
                "token={}&client_id={}",
                enc(&t.access_token),
                c.client_id
            )),
        )
        .await
        .unwrap();
    assert_eq!(
        invalid(&h, &t.access_token).1,
        "the access token has been revoked"
    );
    peer.verify(Some(&bearer(&t.access_token)), resource(&h))
        .expect("the peer has not synced yet");
    peer.sync().await.unwrap();
    let r = peer
        .verify(Some(&bearer(&t.access_token)), resource(&h))
        .unwrap_err();
    assert_eq!(r.description, "the access token has been revoked");
}

#[tokio::test]
async fn key_rotation_keeps_old_tokens_valid_until_they_expire() {
    let h = harness().await;
    let old_kid = kid_of(&h);
    let old = valid_token(&h).await;
    let new_kid = h.server.rotate_keys().await.unwrap();
    assert_ne!(new_kid, old_kid);
    let kids: Vec<String> = h.server.jwks()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kids.len(), 2, "the retired key stays published");
    assert!(kids.contains(&old_kid) && kids.contains(&new_kid));
    for k in h.server.jwks()["keys"].as_array().unwrap() {
        assert!(k.get("d").is_none(), "no private material in the JWKS: {k}");
    }
    let fresh = valid_token(&h).await;
    let header: serde_json::Value =
        serde_json::from_slice(&B64.decode(fresh.split('.').next().unwrap()).unwrap()).unwrap();
    assert_eq!(header["kid"], new_kid.as_str());
    h.server.verify(Some(&bearer(&old)), resource(&h)).unwrap();
    h.clock.advance(Duration::from_secs(3600 + 31));
    h.server.reload_keys().await.unwrap();
    assert_eq!(
        h.server.jwks()["keys"].as_array().unwrap().len(),
        1,
        "retired key gone once its tokens expired"
    );
}

#[tokio::test]
async fn rs256_and_eddsa_are_selectable() {
    for alg in [oauth_core::SigningAlg::Rs256, oauth_core::SigningAlg::EdDsa] {
        let mut config = testing::config();
        config.signing_alg = alg;
        let h = harness_with(config).await;
        let token = valid_token(&h).await;
        let header: serde_json::Value =
            serde_json::from_slice(&B64.decode(token.split('.').next().unwrap()).unwrap()).unwrap();
        assert_eq!(header["alg"], alg.name());
        h.server
            .verify(Some(&bearer(&token)), resource(&h))
            .unwrap();
    }
}

#[tokio::test]
async fn request_urls_map_to_resources_on_segment_boundaries() {
    let h = harness().await;
    let at = |u: &str| h.server.resource_for_url(u).map(|r| r.resource.clone());
    assert_eq!(at("https://mcp.example.com/mcp").as_deref(), Some(RESOURCE));
    assert_eq!(
        at("https://mcp.example.com/mcp/sse?x=1").as_deref(),
        Some(RESOURCE)
    );
    assert_eq!(at("https://mcp.example.com/mcpx"), None);
    assert_eq!(at("https://mcp.example.com/"), None);
    assert_eq!(
        at("http://mcp.example.com/mcp"),
        None,
        "scheme is part of the origin"
    );
    assert_eq!(
        at("https://tools.example.com/anything").as_deref(),
        Some(OTHER_RESOURCE)
    );
    assert_eq!(at("not a url"), None);
}

#[tokio::test]
async fn verification_shares_no_state_between_servers_except_the_store() {
    // A fresh instance on the same store verifies what the first issued: keys come from the store.
    let h = harness().await;
    let token = valid_token(&h).await;
    let second = Arc::new(
        AuthServer::new(
            testing::config(),
            h.store.clone(),
            oauth_core::testing::sealer(),
            h.clock.clone(),
        )
        .await
        .unwrap(),
    );
    second.verify(Some(&bearer(&token)), resource(&h)).unwrap();
}
