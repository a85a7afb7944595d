//! Who a `client_id` names: a registered client (RFC 7591, from the store) or, for a URL, the client described by
//! the metadata document at that URL (see [`crate::cimd`]); and how a client proves it is that client (RFC 6749
//! §2.3): [`AuthServer::authenticate_client`], the one step `/token`, `/revoke` and `/introspect` start with —
//! client secrets (Basic header or form) for registered clients, `none` or `private_key_jwt` (RFC 7523) for
//! metadata-document clients.
//!
//! Client authentication lives here, below the endpoints that use it, so that each endpoint only hands over
//! what it received and none of them restates the rules (exactly one method, unknown client and wrong secret
//! indistinguishable).
//!
//! Every flow looks clients up here, so a URL `client_id` can never reach the store (registration issues
//! base64url ids, which contain no `:`), and a document client looks to the flows exactly like a registered one:
//! the same [`ClientRecord`], built from the validated document and never persisted.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::cimd::assertion::{self, MAX_LIFETIME};
use crate::cimd::{self, ClientDocuments, ClientKeys, ResolvedClient};
use crate::error::{ErrorCode, OAuthError};
use crate::flow::register::MetadataSource;
use crate::server::AuthServer;
use crate::store::ClientRecord;
use crate::types::{Secret, redacted};
use crate::wire::{ClientAuthentication, ClientIdMetadataDocument, ClientMetadata};
use crate::{ClientMetadataDocuments, Error};

/// Client credentials from an HTTP `Authorization: Basic` header (RFC 6749 §2.3.1).
#[derive(Debug)]
pub struct ClientCredentials {
    /// The client identifier.
    pub client_id: String,
    /// The client secret.
    pub secret: Secret,
}

impl ClientCredentials {
    /// Parses the value of an `Authorization` header. `Ok(None)` if it is not a Basic header.
    ///
    /// # Errors
    /// `invalid_client` for a malformed Basic header.
    pub fn from_authorization_header(value: &str) -> Result<Option<Self>, OAuthError> {
        let Some((scheme, rest)) = value.trim().split_once(' ') else {
            return Ok(None);
        };
        if !scheme.eq_ignore_ascii_case("basic") {
            return Ok(None);
        }
        let malformed = || OAuthError::new(ErrorCode::InvalidClient, "malformed Basic credentials");
        let raw = STANDARD.decode(rest.trim()).map_err(|_| malformed())?;
        let text = String::from_utf8(raw).map_err(|_| malformed())?;
        let (id, secret) = text.split_once(':').ok_or_else(malformed)?;
        // RFC 6749 §2.3.1: both parts are form-urlencoded before base64.
        let decode = |s: &str| {
            let plus: String = s.replace('+', " ");
            percent_encoding::percent_decode_str(&plus)
                .decode_utf8()
                .map(|c| c.into_owned())
        };
        Ok(Some(ClientCredentials {
            client_id: decode(id).map_err(|_| malformed())?,
            secret: Secret::new(decode(secret).map_err(|_| malformed())?),
        }))
    }
}

/// Client credentials from a form body: `client_id` with `client_secret` (RFC 6749 §2.3.1) or with a
/// `client_assertion` (RFC 7521 §4.2, `private_key_jwt`). `Debug` shows neither secret nor assertion.
#[derive(Clone, Copy, Default)]
#[non_exhaustive]
pub struct FormCredentials<'a> {
    /// `client_id`.
    pub client_id: Option<&'a str>,
    /// `client_secret`.
    pub client_secret: Option<&'a str>,
    /// `client_assertion_type`.
    pub client_assertion_type: Option<&'a str>,
    /// `client_assertion`.
    pub client_assertion: Option<&'a str>,
}

impl<'a> FormCredentials<'a> {
    /// `client_id` and, for `client_secret_post`, `client_secret`.
    pub fn new(client_id: Option<&'a str>, client_secret: Option<&'a str>) -> Self {
        FormCredentials {
            client_id,
            client_secret,
            client_assertion_type: None,
            client_assertion: None,
        }
    }

    /// Adds `client_assertion_type` and `client_assertion`.
    #[must_use]
    pub fn with_assertion(
        mut self,
        client_assertion_type: Option<&'a str>,
        client_assertion: Option<&'a str>,
    ) -> Self {
        self.client_assertion_type = client_assertion_type;
        self.client_assertion = client_assertion;
        self
    }
}

impl std::fmt::Debug for FormCredentials<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FormCredentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &redacted(&self.client_secret))
            .field("client_assertion_type", &self.client_assertion_type)
            .field("client_assertion", &redacted(&self.client_assertion))
            .finish()
    }
}

/// The credentials of a `POST /token`, `/revoke` or `/introspect` form.
impl<'a> From<&'a ClientAuthentication> for FormCredentials<'a> {
    fn from(form: &'a ClientAuthentication) -> Self {
        FormCredentials::new(form.client_id.as_deref(), form.client_secret.as_deref())
            .with_assertion(
                form.client_assertion_type.as_deref(),
                form.client_assertion.as_deref(),
            )
    }
}

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
    /// Authenticates the client of a token, revocation or introspection request: Basic header, form secret,
    /// client assertion (`private_key_jwt`, document clients), or none (public clients), exactly one method.
    /// Unknown client and wrong secret are indistinguishable; a document client's failures say what is wrong
    /// with its document or assertion (the document is public, so nothing is revealed).
    ///
    /// Every endpoint that authenticates clients (`/token`, `/revoke`, `/introspect`) calls this, once, first,
    /// with the header's credentials and its form (anything that yields [`FormCredentials`]), so the three answer
    /// a failed authentication alike.
    ///
    /// # Errors
    /// `invalid_request` when two methods are used or the ids disagree; `invalid_client` (401) otherwise.
    pub async fn authenticate_client<'f>(
        &self,
        basic: Option<ClientCredentials>,
        form: impl Into<FormCredentials<'f>>,
    ) -> Result<ClientRecord, Error> {
        let form = form.into();
        let failed = || OAuthError::new(ErrorCode::InvalidClient, "client authentication failed");
        let assertion = match (form.client_assertion_type, form.client_assertion) {
            (None, None) => None,
            (Some(assertion::JWT_BEARER), Some(a)) => Some(a),
            (Some(other), Some(_)) => {
                return Err(OAuthError::new(
                    ErrorCode::InvalidClient,
                    format!(
                        "client_assertion_type `{other}` is not supported (use {})",
                        assertion::JWT_BEARER
                    ),
                )
                .into());
            }
            _ => {
                return Err(OAuthError::invalid_request(
                    "client_assertion and client_assertion_type go together (RFC 7521 §4.2)",
                )
                .into());
            }
        };
        let methods = [
            basic.is_some(),
            form.client_secret.is_some(),
            assertion.is_some(),
        ];
        if methods.iter().filter(|m| **m).count() > 1 {
            return Err(OAuthError::invalid_request(
                "use exactly one client authentication method (RFC 6749 §2.3)",
            )
            .into());
        }
        if let Some(a) = assertion {
            // RFC 7521 §4.2: client_id is optional beside an assertion; its `sub` names the client.
            let id = match form.client_id {
                Some(id) => id.to_owned(),
                None => assertion::claimed_client(a).ok_or_else(failed)?,
            };
            return self.authenticate_with_assertion(&id, a).await;
        }
        let (client_id, secret) = match basic {
            Some(b) => {
                if form.client_id.is_some_and(|id| id != b.client_id) {
                    return Err(OAuthError::invalid_request(
                        "client_id does not match the Basic credentials",
                    )
                    .into());
                }
                (b.client_id, Some(b.secret))
            }
            None => {
                let id = form.client_id.ok_or_else(|| {
                    OAuthError::new(
                        ErrorCode::InvalidClient,
                        "client authentication is required (client_id)",
                    )
                })?;
                (id.to_owned(), form.client_secret.map(Secret::new))
            }
        };
        let client = match self.find_client(&client_id).await {
            Ok(Some(c)) => c,
            Ok(None) => return Err(failed().into()),
            Err(Error::OAuth(e)) => {
                return Err(OAuthError::new(ErrorCode::InvalidClient, e.description).into());
            }
            Err(e) => return Err(e),
        };
        if let KnownClient::Document(d) = &client
            && d.record.metadata.token_endpoint_auth_method != "none"
        {
            return Err(OAuthError::new(
                ErrorCode::InvalidClient,
                "client authentication failed: this client authenticates with private_key_jwt (client_assertion)",
            )
            .into());
        }
        let client = client.into_record();
        match (&client.secret_hash, secret) {
            (None, None) => {}
            (Some(hash), Some(secret)) if secret.matches(hash) => {
                if client.secret_expires_at != 0 && client.secret_expires_at <= self.clock.unix() {
                    return Err(failed().into());
                }
            }
            _ => return Err(failed().into()),
        }
        Ok(client)
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_show_the_client_but_not_the_secret() {
        let header = format!("Basic {}", STANDARD.encode("client-a:secret-value-1"));
        let creds = ClientCredentials::from_authorization_header(&header)
            .unwrap()
            .unwrap();
        let shown = format!("{creds:?}");
        assert!(!shown.contains("secret-value-1"), "{shown}");
        assert!(shown.contains(r#"client_id: "client-a""#), "{shown}");
        assert!(shown.contains("[redacted]"), "{shown}");
    }

    #[test]
    fn every_form_yields_the_same_four_credentials() {
        use crate::wire::{TokenReference, TokenRequest};

        let token: TokenRequest = crate::wire::parse_form(
            b"grant_type=refresh_token&client_id=c&client_secret=s&client_assertion_type=t&client_assertion=a",
        )
        .unwrap();
        let reference: TokenReference = crate::wire::parse_form(
            b"token=x&client_id=c&client_secret=s&client_assertion_type=t&client_assertion=a",
        )
        .unwrap();
        for form in [
            FormCredentials::from(&token.client),
            FormCredentials::from(&reference.client),
        ] {
            assert_eq!(
                (
                    form.client_id,
                    form.client_secret,
                    form.client_assertion_type,
                    form.client_assertion
                ),
                (Some("c"), Some("s"), Some("t"), Some("a"))
            );
        }
    }
}
