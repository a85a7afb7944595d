//! `AuthServer::verify`: a bearer token → [`Principal`] for one configured resource, and what to answer when it
//! does not admit the request. The work is the instance's `Verifier` (its cache and revocation set, in
//! `crate::verifier`); this module holds the endpoint's rules and its outcomes.
//!
//! Rejections say exactly what the gate must answer (RFC 6750 §3): no token → 401 with a plain `Bearer`
//! challenge; a bad token → 401 `invalid_token`; too little scope → 403 `insufficient_scope` with the scope
//! needed; always with the RFC 9728 `resource_metadata` URL so that MCP clients can discover the authorization
//! server.

use crate::config::ResourceConfig;
use crate::jwt::ClaimsRejection;
pub use crate::verifier::Principal;
use crate::verifier::TokenCheck;

/// Which answer the gate must give.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectionKind {
    /// No bearer token: 401 with a challenge but no error code (RFC 6750 §3.1).
    MissingToken,
    /// Invalid, expired, revoked or wrong-audience token: 401 `invalid_token`.
    InvalidToken,
    /// Valid token without the required scope: 403 `insufficient_scope`.
    InsufficientScope,
    /// Valid token of a user the resource's access policy does not admit: 403, no challenge error code, since
    /// no other token of this user would do.
    AccessDenied,
}

/// A `/verify` rejection, with everything the gate's response needs.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{} ({})", self.description, self.status())]
#[non_exhaustive]
pub struct VerifyRejection {
    /// The kind.
    pub kind: RejectionKind,
    /// Why, for `error_description` (never contains the token).
    pub description: &'static str,
    /// The scope needed (for `insufficient_scope`), space-separated.
    pub scope: Option<String>,
    /// Absolute URL of the resource's RFC 9728 metadata.
    pub resource_metadata: String,
}

impl VerifyRejection {
    /// 401 or 403.
    pub fn status(&self) -> u16 {
        match self.kind {
            RejectionKind::MissingToken | RejectionKind::InvalidToken => 401,
            RejectionKind::InsufficientScope | RejectionKind::AccessDenied => 403,
        }
    }

    /// The RFC 6750 §3 error code, if any.
    pub fn error_code(&self) -> Option<&'static str> {
        match self.kind {
            RejectionKind::MissingToken | RejectionKind::AccessDenied => None,
            RejectionKind::InvalidToken => Some("invalid_token"),
            RejectionKind::InsufficientScope => Some("insufficient_scope"),
        }
    }

    /// The `WWW-Authenticate` header value (RFC 6750 §3, RFC 9728 §5.1).
    pub fn www_authenticate(&self) -> String {
        let mut out = String::from("Bearer");
        let mut sep = " ";
        if let Some(code) = self.error_code() {
            out.push_str(&format!(
                "{sep}error=\"{code}\", error_description=\"{}\"",
                self.description
            ));
            sep = ", ";
        }
        if let Some(scope) = &self.scope {
            out.push_str(&format!("{sep}scope=\"{scope}\""));
            sep = ", ";
        }
        out.push_str(&format!(
            "{sep}resource_metadata=\"{}\"",
            self.resource_metadata
        ));
        out
    }
}

/// Extracts the token from an `Authorization` header value; `None` if there is no Bearer credential.
pub fn bearer_token(authorization: Option<&str>) -> Option<&str> {
    let value = authorization?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

impl crate::AuthServer {
    /// `token`, to be checked against our keys and issuer now; `/verify` and introspection check the same.
    pub(crate) fn token_check<'a>(&'a self, token: &'a str) -> TokenCheck<'a> {
        TokenCheck {
            token,
            keys: &self.keys,
            issuer: &self.config.issuer,
            now: self.clock.unix(),
            leeway: self.config.leeway.as_secs(),
        }
    }

    /// Verifies the `Authorization` header of a request to `resource` (one of the configured resources, see
    /// [`Self::resource_for_url`]): signature, expiry, revocation, audience and the resource's required scopes.
    ///
    /// This is the lower-level token check. It knows nothing of the request: no access policy, no per-tool
    /// scopes, no `Origin`, no key reload. A gate in front of an MCP server calls [`Self::gate`], which does all
    /// of that.
    ///
    /// # Errors
    /// A [`VerifyRejection`] that says exactly what to answer.
    pub fn verify(
        &self,
        authorization: Option<&str>,
        resource: &ResourceConfig,
    ) -> Result<Principal, VerifyRejection> {
        let reject = |kind, description, scope| VerifyRejection {
            kind,
            description,
            scope,
            resource_metadata: self.resource_index.metadata_url(resource),
        };
        let required =
            || (!resource.required_scopes.is_empty()).then(|| resource.required_scopes.join(" "));
        let Some(token) = bearer_token(authorization) else {
            return Err(reject(
                RejectionKind::MissingToken,
                "no bearer token",
                required(),
            ));
        };
        if token.is_empty() {
            return Err(reject(
                RejectionKind::InvalidToken,
                "the bearer token is empty",
                None,
            ));
        }
        let principal = self
            .verifier
            .principal(&self.token_check(token))
            .map_err(|why| reject(RejectionKind::InvalidToken, why, None))?;
        if let Some(max) = self.config.revocation_max_staleness
            && self.verifier.is_stale(self.clock.unix_millis(), max)
        {
            return Err(reject(
                RejectionKind::InvalidToken,
                "the authorization server cannot currently confirm that the token is not revoked; try again shortly",
                None,
            ));
        }
        if principal.audience() != resource.resource {
            return Err(reject(
                RejectionKind::InvalidToken,
                ClaimsRejection::WrongAudience.describe(),
                None,
            ));
        }
        if !resource
            .required_scopes
            .iter()
            .all(|s| principal.scope().contains(s))
        {
            return Err(reject(
                RejectionKind::InsufficientScope,
                "the access token lacks a scope this resource requires",
                required(),
            ));
        }
        Ok(principal)
    }
}
