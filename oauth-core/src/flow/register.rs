//! Dynamic client registration (RFC 7591) and its management protocol (RFC 7592).
//!
//! Validation follows RFC 7591 §2 and the MCP client landscape (`shared/mcp-auth-requirements.md` P3/P4):
//! * redirect URIs: https; http only on a loopback host (RFC 8252 §7.3); a private-use scheme only if the
//!   deployment allows it (RFC 8252 §7.1, e.g. `cursor`); never a fragment or userinfo;
//! * `grant_types` ⊆ {`authorization_code`, `refresh_token`} and consistent with `response_types` ⊆ {`code`};
//! * `token_endpoint_auth_method` ∈ {`none`, `client_secret_basic`, `client_secret_post`}, RFC default
//!   `client_secret_basic`; a deployment may downgrade secret methods to `none`, and the response says so;
//! * `application_type` `web` limits redirect URIs to https; `native` allows loopback and private-use schemes.
//!
//! Secrets and registration access tokens are returned once and stored as hashes. Errors name the field.
//!
//! The same validation applies to client metadata documents ([`crate::cimd`]), except that a document cannot
//! carry a shared secret: its methods are `none` (the default) and `private_key_jwt`. Registered ids are random
//! base64url, so they can never be mistaken for a document URL.

use crate::config::is_loopback_host;
use crate::error::{ErrorCode, OAuthError};
use crate::server::AuthServer;
use crate::store::ClientRecord;
use crate::types::{Secret, random_token};
use crate::wire::{ClientMetadata, ClientRegistrationRequest, ClientRegistrationResponse};
use crate::{Error, ScopeSet};

const AUTH_METHODS: &[&str] = &["none", "client_secret_basic", "client_secret_post"];
/// A metadata document is public, so it cannot hold a shared secret: only these (draft §4.1).
const DOCUMENT_AUTH_METHODS: &[&str] = &["none", "private_key_jwt"];

/// Where client metadata comes from: the rules differ only in the token endpoint authentication methods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MetadataSource {
    /// A registration request (RFC 7591): default `client_secret_basic`, secrets allowed.
    Registration,
    /// A client ID metadata document: default `none`, no shared secrets, `private_key_jwt` allowed.
    Document,
}
const MAX_TEXT: usize = 1024;

fn metadata_error(description: String) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidClientMetadata, description)
}

fn redirect_error(description: String) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidRedirectUri, description)
}

/// Parses a registration body, naming the field whose type is wrong.
pub(crate) fn parse_request(
    body: &[u8],
    max: usize,
) -> Result<ClientRegistrationRequest, OAuthError> {
    if body.len() > max {
        return Err(metadata_error(format!(
            "the registration request is larger than {max} bytes"
        )));
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let data_error = e.inner().classify() == serde_json::error::Category::Data;
        if !data_error || path == "." || path.is_empty() {
            metadata_error(format!(
                "the body is not a JSON object of client metadata: {}",
                e.inner()
            ))
        } else {
            metadata_error(format!("{path}: {}", e.inner()))
        }
    })
}

fn check_redirect_uri(
    raw: &str,
    application_type: Option<&str>,
    allowed_schemes: &[String],
) -> Result<(), OAuthError> {
    let u = url::Url::parse(raw).map_err(|e| {
        redirect_error(format!(
            "redirect_uris: `{raw}` is not an absolute URI: {e}"
        ))
    })?;
    if u.fragment().is_some() || raw.contains('#') {
        return Err(redirect_error(format!(
            "redirect_uris: `{raw}` must not contain a fragment"
        )));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(redirect_error(format!(
            "redirect_uris: `{raw}` must not contain userinfo"
        )));
    }
    let web = application_type == Some("web");
    match u.scheme() {
        "https" if u.host().is_some() => Ok(()),
        "http" if is_loopback_host(&u) && !web => Ok(()),
        "http" if web => Err(redirect_error(format!(
            "redirect_uris: `{raw}`: a `web` client must use https redirect URIs"
        ))),
        "http" => Err(redirect_error(format!(
            "redirect_uris: `{raw}`: http is allowed only on a loopback host (127.0.0.1, [::1], localhost)"
        ))),
        scheme
            if allowed_schemes
                .iter()
                .any(|s| s.eq_ignore_ascii_case(scheme))
                && !web =>
        {
            Ok(())
        }
        scheme => Err(redirect_error(format!(
            "redirect_uris: `{raw}`: scheme `{scheme}` is not allowed (use https, loopback http, or an allowed private-use scheme)"
        ))),
    }
}

/// A human-readable field: bounded, and without control characters (operators read these on consent pages, in
/// logs and on terminals, where an escape sequence or a line break would forge what they see).
fn check_text(field: &str, value: &Option<String>) -> Result<(), OAuthError> {
    match value {
        Some(v) if v.len() > MAX_TEXT => Err(metadata_error(format!(
            "{field}: longer than {MAX_TEXT} bytes"
        ))),
        Some(v) if v.chars().any(char::is_control) => Err(metadata_error(format!(
            "{field}: contains a control character"
        ))),
        _ => Ok(()),
    }
}

fn check_web_url(field: &str, value: &Option<String>) -> Result<(), OAuthError> {
    check_text(field, value)?;
    if let Some(v) = value {
        let ok = url::Url::parse(v)
            .is_ok_and(|u| matches!(u.scheme(), "https" | "http") && u.host().is_some());
        if !ok {
            return Err(metadata_error(format!(
                "{field}: `{v}` is not an http(s) URL"
            )));
        }
    }
    Ok(())
}

impl AuthServer {
    /// Validates registration metadata (or a metadata document) into what will be stored and echoed.
    pub(crate) fn validate_metadata(
        &self,
        req: &ClientRegistrationRequest,
        source: MetadataSource,
    ) -> Result<ClientMetadata, OAuthError> {
        let policy = &self.config.registration;
        let grant_types = req
            .grant_types
            .clone()
            .unwrap_or_else(|| vec!["authorization_code".into()]);
        for g in &grant_types {
            if !matches!(g.as_str(), "authorization_code" | "refresh_token") {
                return Err(metadata_error(format!(
                    "grant_types: `{g}` is not supported (authorization_code, refresh_token)"
                )));
            }
        }
        let response_types = req.response_types.clone().unwrap_or_else(|| {
            if grant_types.iter().any(|g| g == "authorization_code") {
                vec!["code".into()]
            } else {
                Vec::new()
            }
        });
        for r in &response_types {
            if r != "code" {
                return Err(metadata_error(format!(
                    "response_types: `{r}` is not supported (code)"
                )));
            }
        }
        let has_code_grant = grant_types.iter().any(|g| g == "authorization_code");
        if has_code_grant != response_types.iter().any(|r| r == "code") {
            return Err(metadata_error(
                "grant_types and response_types are inconsistent: authorization_code goes with code (RFC 7591 §2.1)".into(),
            ));
        }
        if !has_code_grant {
            return Err(metadata_error(
                "grant_types: must include authorization_code".into(),
            ));
        }
        let application_type = match req.application_type.as_deref() {
            None => None,
            Some(t @ ("web" | "native")) => Some(t.to_owned()),
            Some(other) => {
                return Err(metadata_error(format!(
                    "application_type: `{other}` is not `web` or `native`"
                )));
            }
        };
        let redirect_uris = req.redirect_uris.clone().unwrap_or_default();
        if redirect_uris.is_empty() {
            return Err(redirect_error("redirect_uris: at least one redirect URI is required for the authorization_code grant".into()));
        }
        if redirect_uris.len() > policy.max_redirect_uris {
            return Err(redirect_error(format!(
                "redirect_uris: at most {} redirect URIs may be registered",
                policy.max_redirect_uris
            )));
        }
        for uri in &redirect_uris {
            if uri.len() > MAX_TEXT {
                return Err(redirect_error(format!(
                    "redirect_uris: a URI is longer than {MAX_TEXT} bytes"
                )));
            }
            check_redirect_uri(uri, application_type.as_deref(), &policy.allowed_schemes)?;
        }
        let (default_method, methods) = match source {
            MetadataSource::Registration => ("client_secret_basic", AUTH_METHODS),
            MetadataSource::Document => ("none", DOCUMENT_AUTH_METHODS),
        };
        let requested = req
            .token_endpoint_auth_method
            .clone()
            .unwrap_or_else(|| default_method.into());
        if source == MetadataSource::Document && requested.starts_with("client_secret") {
            return Err(metadata_error(format!(
                "token_endpoint_auth_method: `{requested}` needs a shared secret, which a public metadata document cannot carry (use none or private_key_jwt)"
            )));
        }
        if !methods.contains(&requested.as_str()) {
            return Err(metadata_error(format!(
                "token_endpoint_auth_method: `{requested}` is not supported ({})",
                methods.join(", ")
            )));
        }
        let downgrade = source == MetadataSource::Registration && policy.downgrade_secret_to_none;
        let token_endpoint_auth_method = if requested != "none" && downgrade {
            "none".to_owned()
        } else {
            requested
        };
        let scope = match &req.scope {
            None => None,
            Some(s) => {
                let parsed = ScopeSet::parse(s).ok_or_else(|| {
                    metadata_error("scope: contains a character RFC 6749 §3.3 forbids".into())
                })?;
                // Unknown scopes are dropped rather than refused: clients often ask for more than a server offers.
                let known = ScopeSet::from_tokens(parsed.iter().filter(|t| {
                    self.config.scopes_supported.iter().any(|k| k == t) || *t == "offline_access"
                }));
                Some(known.to_string())
            }
        };
        for (field, value) in [
            ("client_uri", &req.client_uri),
            ("logo_uri", &req.logo_uri),
            ("tos_uri", &req.tos_uri),
            ("policy_uri", &req.policy_uri),
        ] {
            check_web_url(field, value)?;
        }
        for (field, value) in [
            ("client_name", &req.client_name),
            ("software_id", &req.software_id),
            ("software_version", &req.software_version),
        ] {
            check_text(field, value)?;
        }
        let contacts = req.contacts.clone().unwrap_or_default();
        if contacts.len() > 10 || contacts.iter().any(|c| c.len() > 256) {
            return Err(metadata_error(
                "contacts: at most 10 entries of 256 bytes".into(),
            ));
        }
        Ok(ClientMetadata {
            redirect_uris,
            token_endpoint_auth_method,
            grant_types,
            response_types,
            application_type,
            client_name: req.client_name.clone(),
            client_uri: req.client_uri.clone(),
            logo_uri: req.logo_uri.clone(),
            scope,
            contacts,
            tos_uri: req.tos_uri.clone(),
            policy_uri: req.policy_uri.clone(),
            software_id: req.software_id.clone(),
            software_version: req.software_version.clone(),
        })
    }

    /// Validates a registration body without registering anything: what `register` checks before it stores.
    ///
    /// # Errors
    /// As for [`Self::register`]'s metadata errors.
    pub fn check_registration(&self, body: &[u8]) -> Result<ClientMetadata, OAuthError> {
        self.validate_metadata(
            &parse_request(body, self.config.registration.max_metadata_bytes)?,
            MetadataSource::Registration,
        )
    }

    fn registration_client_uri(&self, client_id: &str) -> String {
        format!(
            "{}/{}",
            self.config.url(&self.config.endpoints.register),
            client_id
        )
    }

    /// `POST /register` (RFC 7591 §3). `body` is the raw JSON request; `initial_access_token` the bearer token
    /// of the request, if any.
    ///
    /// # Errors
    /// `invalid_client_metadata` / `invalid_redirect_uri` naming the field; `invalid_token` (401) when the
    /// policy requires an initial access token and none or a wrong one was presented; store failures.
    #[tracing::instrument(skip_all)]
    pub async fn register(
        &self,
        body: &[u8],
        initial_access_token: Option<&str>,
    ) -> Result<ClientRegistrationResponse, Error> {
        let policy = &self.config.registration;
        if !policy.initial_access_tokens.is_empty() {
            let presented = initial_access_token.map(Secret::new);
            let ok = presented
                .is_some_and(|t| policy.initial_access_tokens.iter().any(|h| t.matches(h)));
            if !ok {
                return Err(OAuthError::new(
                    ErrorCode::InvalidToken,
                    "registration requires a valid initial access token (RFC 7591 §3)",
                )
                .into());
            }
        }
        let req = parse_request(body, policy.max_metadata_bytes)?;
        let metadata = self.validate_metadata(&req, MetadataSource::Registration)?;
        if policy.max_clients > 0 && self.store.count_clients().await? >= policy.max_clients {
            tracing::warn!(
                max_clients = policy.max_clients,
                "registration refused: the client cap is reached"
            );
            return Err(OAuthError::new(
                ErrorCode::TemporarilyUnavailable,
                format!(
                    "this server holds its maximum of {} registered clients; try again later",
                    policy.max_clients
                ),
            )
            .into());
        }
        let now = self.clock.unix();
        let secret = (metadata.token_endpoint_auth_method != "none").then(Secret::generate);
        let registration_token = Secret::generate();
        let record = ClientRecord {
            client_id: random_token(16),
            secret_hash: secret.as_ref().map(Secret::hash),
            secret_expires_at: 0,
            registration_token_hash: registration_token.hash(),
            issued_at: now,
            metadata,
        };
        self.store.insert_client(&record).await?;
        tracing::info!(client_id = %record.client_id, method = %record.metadata.token_endpoint_auth_method, "client registered");
        self.emit(crate::events::Event::ClientRegistered {
            client_id: &record.client_id,
            auth_method: &record.metadata.token_endpoint_auth_method,
        });
        Ok(self.registration_response(&record, secret, Some(registration_token)))
    }

    fn registration_response(
        &self,
        record: &ClientRecord,
        secret: Option<Secret>,
        registration_token: Option<Secret>,
    ) -> ClientRegistrationResponse {
        ClientRegistrationResponse {
            client_id: record.client_id.clone(),
            client_secret: secret.map(Secret::into_exposed),
            client_id_issued_at: record.issued_at,
            client_secret_expires_at: record.secret_hash.map(|_| record.secret_expires_at),
            registration_access_token: registration_token.map(Secret::into_exposed),
            registration_client_uri: self.registration_client_uri(&record.client_id),
            metadata: record.metadata.clone(),
        }
    }

    /// Authenticates an RFC 7592 request. Unknown client and wrong token are indistinguishable (401).
    async fn managed_client(
        &self,
        client_id: &str,
        token: Option<&str>,
    ) -> Result<ClientRecord, Error> {
        let denied = || {
            OAuthError::new(
                ErrorCode::InvalidToken,
                "the registration access token is missing, invalid, or not for this client",
            )
        };
        let token = token.map(Secret::new).ok_or_else(denied)?;
        let client = self.store.client(client_id).await?.ok_or_else(denied)?;
        if !token.matches(&client.registration_token_hash) {
            return Err(denied().into());
        }
        Ok(client)
    }

    /// `GET /register/{client_id}` (RFC 7592 §2.1). The secret is never returned.
    ///
    /// # Errors
    /// `invalid_token` (401) for a missing or wrong registration access token or an unknown client.
    #[tracing::instrument(skip_all, fields(client_id = %client_id))]
    pub async fn read_client(
        &self,
        client_id: &str,
        token: Option<&str>,
    ) -> Result<ClientRegistrationResponse, Error> {
        let client = self.managed_client(client_id, token).await?;
        Ok(self.registration_response(&client, None, None))
    }

    /// `PUT /register/{client_id}` (RFC 7592 §2.2): full replacement, re-validated; rotates the registration
    /// access token (returned in the response). A secret client keeps its secret; a client switching to a
    /// secret method gets a new one.
    ///
    /// # Errors
    /// `invalid_token` (401) as for read; `invalid_request` if the body's `client_id` differs or it carries
    /// fields RFC 7592 §2.2 forbids, or a `client_secret` that is not the current one; metadata errors as for
    /// registration.
    #[tracing::instrument(skip_all, fields(client_id = %client_id))]
    pub async fn update_client(
        &self,
        client_id: &str,
        token: Option<&str>,
        body: &[u8],
    ) -> Result<ClientRegistrationResponse, Error> {
        let client = self.managed_client(client_id, token).await?;
        let req = parse_request(body, self.config.registration.max_metadata_bytes)?;
        if req.client_id.as_deref() != Some(client_id) {
            return Err(OAuthError::invalid_request(
                "client_id in the body must equal the client being updated (RFC 7592 §2.2)",
            )
            .into());
        }
        for (field, present) in [
            (
                "registration_access_token",
                req.registration_access_token.is_some(),
            ),
            (
                "registration_client_uri",
                req.registration_client_uri.is_some(),
            ),
            ("client_id_issued_at", req.client_id_issued_at.is_some()),
            (
                "client_secret_expires_at",
                req.client_secret_expires_at.is_some(),
            ),
        ] {
            if present {
                return Err(OAuthError::invalid_request(format!(
                    "{field} must not be sent in an update (RFC 7592 §2.2)"
                ))
                .into());
            }
        }
        if let Some(s) = &req.client_secret {
            let matches = client
                .secret_hash
                .as_ref()
                .is_some_and(|h| Secret::new(s.as_str()).matches(h));
            if !matches {
                return Err(OAuthError::invalid_request(
                    "client_secret does not match the current secret",
                )
                .into());
            }
        }
        let metadata = self.validate_metadata(&req, MetadataSource::Registration)?;
        let wants_secret = metadata.token_endpoint_auth_method != "none";
        let new_secret = (wants_secret && client.secret_hash.is_none()).then(Secret::generate);
        let secret_hash = match (&new_secret, wants_secret) {
            (Some(s), _) => Some(s.hash()),
            (None, true) => client.secret_hash,
            (None, false) => None,
        };
        let registration_token = Secret::generate();
        let record = ClientRecord {
            secret_hash,
            registration_token_hash: registration_token.hash(),
            metadata,
            ..client
        };
        if !self.store.replace_client(&record).await? {
            return Err(
                OAuthError::new(ErrorCode::InvalidToken, "the client no longer exists").into(),
            );
        }
        self.emit(crate::events::Event::ClientUpdated { client_id });
        Ok(self.registration_response(&record, new_secret, Some(registration_token)))
    }

    /// `DELETE /register/{client_id}` (RFC 7592 §2.3): deletes the client and revokes every token issued to it.
    ///
    /// # Errors
    /// `invalid_token` (401) as for read; store failures.
    #[tracing::instrument(skip_all, fields(client_id = %client_id))]
    pub async fn delete_client(&self, client_id: &str, token: Option<&str>) -> Result<(), Error> {
        self.managed_client(client_id, token).await?;
        self.remove_client(client_id).await?;
        tracing::info!("client deleted");
        self.emit(crate::events::Event::ClientDeleted {
            client_id,
            by: "client",
        });
        Ok(())
    }
}
