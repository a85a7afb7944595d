//! Who a `client_id` names: a registered client (RFC 7591, from the store) or, for a URL, the client described by
//! the metadata document at that URL (see [`crate::cimd`]); and `private_key_jwt` authentication of the latter.
//!
//! Every flow looks clients up here, so a URL `client_id` can never reach the store (registration issues
//! base64url ids, which contain no `:`), and a document client looks to the flows exactly like a registered one:
//! the same [`ClientRecord`], built from the validated document and never persisted.

use std::sync::Arc;

use crate::cimd::assertion::{self, MAX_LIFETIME};
use crate::cimd::{self, ClientDocuments, ClientKeys, ResolvedClient};
use crate::error::{ErrorCode, OAuthError};
use crate::flow::register::MetadataSource;
use crate::server::AuthServer;
use crate::store::ClientRecord;
use crate::types::Secret;
use crate::wire::{ClientIdMetadataDocument, ClientMetadata};
use crate::{ClientMetadataDocuments, Error};

/// A client the server knows.
pub(crate) enum KnownClient {
    /// Registered through `/register`.
    Registered(Box<ClientRecord>),
    /// Described by its metadata document.
    Document(Arc<ResolvedClient>),
}

impl KnownClient {
    pub fn into_record(self) -> ClientRecord {
        match self {
            KnownClient::Registered(r) => *r,
            KnownClient::Document(d) => d.record.clone(),
        }
    }

    /// The host serving the client's document, for a document client.
    pub fn document_host(&self) -> Option<&str> {
        match self {
            KnownClient::Registered(_) => None,
            KnownClient::Document(d) => Some(&d.host),
        }
    }
}

fn invalid_client(description: String) -> Error {
    OAuthError::new(ErrorCode::InvalidClient, description).into()
}

impl AuthServer {
    /// The client `client_id` names; `Ok(None)` if there is none (a URL when documents are disabled, an
    /// unregistered id).
    ///
    /// # Errors
    /// `Error::OAuth` naming what is wrong with a URL client's document (`invalid_client` when it cannot be
    /// fetched or is not acceptable as a URL, `invalid_client_metadata` when its content is invalid); store
    /// failures.
    pub(crate) async fn find_client(&self, client_id: &str) -> Result<Option<KnownClient>, Error> {
        if !cimd::is_url_client_id(client_id) {
            return Ok(self
                .store
                .client(client_id)
                .await?
                .map(|c| KnownClient::Registered(Box::new(c))));
        }
        let Some(documents) = &self.documents else {
            return Ok(None);
        };
        let resolved = self.resolve_document(documents, client_id).await?;
        Ok(Some(KnownClient::Document(resolved)))
    }

    #[tracing::instrument(skip_all, fields(client_id = %client_id))]
    async fn resolve_document(
        &self,
        documents: &ClientDocuments,
        client_id: &str,
    ) -> Result<Arc<ResolvedClient>, OAuthError> {
        let fail = |code: ErrorCode, why: &str| {
            OAuthError::new(code, format!("client metadata document {client_id}: {why}"))
        };
        let url = cimd::document_url(client_id, &documents.config, "a client_id URL")
            .map_err(|why| fail(ErrorCode::InvalidClient, &why))?;
        let now = self.clock.unix();
        if let Some(hit) = documents.cached_client(client_id, now) {
            return Ok(hit);
        }
        if let Some(error) = documents.recent_failure(client_id, now) {
            return Err(error);
        }
        let remember = |e: OAuthError| {
            documents.remember_failure(client_id, &e, now);
            e
        };
        let fetched = documents
            .fetcher
            .fetch(&url)
            .await
            .map_err(|e| remember(fail(ErrorCode::InvalidClient, &e.to_string())))?;
        let (metadata, keys) = self
            .validate_document(client_id, &fetched.body, &documents.config)
            .map_err(|e| remember(fail(e.code, &e.description)))?;
        let resolved = Arc::new(ResolvedClient {
            record: ClientRecord {
                client_id: client_id.to_owned(),
                secret_hash: None,
                secret_expires_at: 0,
                // No registration access token exists for a document client; this hash matches nothing.
                registration_token_hash: Secret::generate().hash(),
                issued_at: now,
                metadata,
            },
            keys,
            host: url.host_str().unwrap_or_default().to_owned(),
        });
        let lifetime = documents.lifetime(fetched.cache_control.as_deref());
        documents.remember_client(
            client_id,
            Arc::clone(&resolved),
            now.saturating_add(lifetime.as_secs()),
        );
        tracing::info!(
            lifetime_secs = lifetime.as_secs(),
            "client metadata document fetched"
        );
        Ok(resolved)
    }

    /// Validates a fetched document: its `client_id`, then the RFC 7591 metadata with the document rules, then
    /// the keys `private_key_jwt` needs.
    fn validate_document(
        &self,
        url: &str,
        body: &[u8],
        config: &ClientMetadataDocuments,
    ) -> Result<(ClientMetadata, ClientKeys), OAuthError> {
        let invalid = |d: String| OAuthError::new(ErrorCode::InvalidClientMetadata, d);
        let de = &mut serde_json::Deserializer::from_slice(body);
        let doc: ClientIdMetadataDocument = serde_path_to_error::deserialize(de).map_err(|e| {
            invalid(format!(
                "not a JSON object of client metadata: {}",
                e.inner()
            ))
        })?;
        match doc.metadata.client_id.as_deref() {
            Some(id) if id == url => {}
            Some(other) => {
                return Err(invalid(format!(
                    "its client_id `{other}` is not the URL it was fetched from"
                )));
            }
            None => return Err(invalid("it has no client_id".into())),
        }
        if doc.metadata.client_secret.is_some() || doc.metadata.client_secret_expires_at.is_some() {
            return Err(invalid(
                "it must not contain client_secret or client_secret_expires_at (a document is public)"
                    .into(),
            ));
        }
        let metadata = self.validate_metadata(&doc.metadata, MetadataSource::Document)?;
        let keys = if metadata.token_endpoint_auth_method == "private_key_jwt" {
            match (doc.jwks, doc.jwks_uri) {
                (Some(jwks), None) => {
                    let has_keys = jwks
                        .get("keys")
                        .and_then(|k| k.as_array())
                        .is_some_and(|k| !k.is_empty());
                    if !has_keys {
                        return Err(invalid(
                            "jwks: must be a JWK set with at least one key".into(),
                        ));
                    }
                    ClientKeys::Jwks(jwks)
                }
                (None, Some(uri)) => ClientKeys::JwksUri(
                    cimd::document_url(&uri, config, "jwks_uri").map_err(invalid)?,
                ),
                (Some(_), Some(_)) => {
                    return Err(invalid(
                        "jwks and jwks_uri must not both be present (RFC 7591 §2)".into(),
                    ));
                }
                (None, None) => {
                    return Err(invalid(
                        "token_endpoint_auth_method private_key_jwt needs jwks or jwks_uri".into(),
                    ));
                }
            }
        } else {
            ClientKeys::None
        };
        Ok((metadata, keys))
    }

    /// The JWK set at a document client's `jwks_uri`, cached like documents.
    async fn client_jwks(&self, url: &url::Url) -> Result<Arc<serde_json::Value>, Error> {
        let Some(documents) = &self.documents else {
            return Err(invalid_client("client authentication failed".into()));
        };
        let now = self.clock.unix();
        if let Some(hit) = documents.cached_jwks(url.as_str(), now) {
            return Ok(hit);
        }
        let fetched = documents
            .fetcher
            .fetch(url)
            .await
            .map_err(|e| invalid_client(format!("the client's jwks_uri {url}: {e}")))?;
        let jwks: serde_json::Value = serde_json::from_slice(&fetched.body)
            .ok()
            .filter(|v: &serde_json::Value| v.get("keys").is_some_and(|k| k.is_array()))
            .ok_or_else(|| invalid_client(format!("the client's jwks_uri {url}: not a JWK set")))?;
        let jwks = Arc::new(jwks);
        let lifetime = documents.lifetime(fetched.cache_control.as_deref());
        documents.remember_jwks(
            url.as_str(),
            Arc::clone(&jwks),
            now.saturating_add(lifetime.as_secs()),
        );
        Ok(jwks)
    }

    /// RFC 7523 §3 / RFC 7521 §4.2: authenticates the client `client_id` by its signed assertion.
    pub(crate) async fn authenticate_with_assertion(
        &self,
        client_id: &str,
        assertion: &str,
    ) -> Result<ClientRecord, Error> {
        let failed = |why: &str| invalid_client(format!("client authentication failed: {why}"));
        let client = match self.find_client(client_id).await {
            Ok(Some(KnownClient::Document(d))) => d,
            Ok(Some(KnownClient::Registered(_)) | None) => {
                return Err(failed(
                    "only clients with a metadata document and private_key_jwt send client assertions",
                ));
            }
            Err(Error::OAuth(e)) => return Err(invalid_client(e.description.into_owned())),
            Err(e) => return Err(e),
        };
        let jwks = match &client.keys {
            ClientKeys::None => {
                return Err(failed(
                    "the client's document says token_endpoint_auth_method none; send no assertion",
                ));
            }
            ClientKeys::Jwks(j) => Arc::new(j.clone()),
            ClientKeys::JwksUri(u) => self.client_jwks(u).await?,
        };
        let claims = assertion::verify_signature(assertion, &jwks).map_err(failed)?;
        let now = self.clock.unix();
        let leeway = self.config.leeway.as_secs();
        let text = |name: &str| claims.get(name).and_then(|v| v.as_str());
        let number = |name: &str| claims.get(name).and_then(serde_json::Value::as_u64);
        if text("iss") != Some(client_id) || text("sub") != Some(client_id) {
            return Err(failed(
                "the assertion's iss and sub must both be the client_id",
            ));
        }
        let c = &self.config;
        let audiences = [
            c.issuer.clone(),
            c.url(&c.endpoints.token),
            c.url(&c.endpoints.revoke),
            c.url(&c.endpoints.introspect),
        ];
        let aud_ok = match claims.get("aud") {
            Some(serde_json::Value::String(a)) => audiences.contains(a),
            Some(serde_json::Value::Array(list)) => list
                .iter()
                .filter_map(|a| a.as_str())
                .any(|a| audiences.iter().any(|x| x == a)),
            _ => false,
        };
        if !aud_ok {
            return Err(failed(
                "the assertion's aud must be this server's issuer or token endpoint",
            ));
        }
        let exp = number("exp").ok_or_else(|| failed("the assertion has no exp"))?;
        if exp.saturating_add(leeway) <= now {
            return Err(failed("the assertion has expired"));
        }
        if exp > now.saturating_add(MAX_LIFETIME.as_secs() + leeway) {
            return Err(failed(&format!(
                "the assertion must expire within {} s",
                MAX_LIFETIME.as_secs()
            )));
        }
        if number("nbf").is_some_and(|nbf| nbf > now.saturating_add(leeway))
            || number("iat").is_some_and(|iat| iat > now.saturating_add(leeway))
        {
            return Err(failed("the assertion is not valid yet (nbf/iat)"));
        }
        let jti = text("jti")
            .filter(|j| !j.is_empty() && j.len() <= 256)
            .ok_or_else(|| failed("the assertion needs a jti (at most 256 bytes)"))?;
        match self
            .assertion_jtis
            .first_use(client_id, jti, exp.saturating_add(leeway), now)
        {
            Ok(true) => {}
            Ok(false) => return Err(failed("the assertion was already used (jti)")),
            Err(why) => {
                return Err(OAuthError::new(ErrorCode::TemporarilyUnavailable, why).into());
            }
        }
        Ok(client.record.clone())
    }
}
