//! Browser sessions at the authorization server, and remembered consent.
//!
//! The login and consent pages are the service's, but what they rely on is protocol state and lives here:
//! * a session is a random cookie value whose hash names a [`SessionRecord`](crate::store::SessionRecord) holding
//!   a CSRF token and, after login, the [`Identity`]. Before a login it lives as long as a pending
//!   authorization (anyone can make one), after it for `session_ttl`. Logging in issues a *new* session id (the old one is
//!   deleted), so a session id planted before login is worthless after it (session fixation);
//! * every form carries the session's CSRF token, compared in constant time;
//! * consent is remembered per user and client (MCP security best practices, "confused deputy"), and covers
//!   only the scopes and resources actually consented to.

use subtle::ConstantTimeEq as _;

use crate::Error;
use crate::flow::authorize::AuthorizationPrompt;
use crate::server::AuthServer;
use crate::store::{ConsentRecord, SessionRecord};
use crate::types::{Identity, ScopeSet, Secret, UpstreamSession, random_token};
use crate::upstream::Login;

/// A browser session, as the service needs it.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BrowserSession {
    /// The cookie value (secret).
    pub id: String,
    /// The CSRF token for this session's forms.
    pub csrf: String,
    /// Who is logged in, if anyone.
    pub identity: Option<Identity>,
    /// The upstream session of that login, if any (opened: the record holds it sealed).
    pub upstream: Option<UpstreamSession>,
    /// When the session ends.
    pub expires_at: u64,
    /// Whether this session was just created (the service must set the cookie).
    pub is_new: bool,
}

impl std::fmt::Debug for BrowserSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrowserSession")
            .field("identity", &self.identity.as_ref().map(|i| &i.subject))
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl BrowserSession {
    /// Whether `presented` is this session's CSRF token (constant time).
    pub fn csrf_matches(&self, presented: &str) -> bool {
        self.csrf.as_bytes().ct_eq(presented.as_bytes()).into()
    }
}

impl AuthServer {
    async fn new_session(&self, login: Option<Login>) -> Result<BrowserSession, Error> {
        let id = Secret::generate();
        // Anyone gets a session by opening an authorization request; until a login it need only outlive the
        // pending authorization, so anonymous sessions cost the store minutes, not `session_ttl`.
        let ttl = if login.is_some() {
            self.config.session_ttl
        } else {
            self.config.pending_ttl.min(self.config.session_ttl)
        };
        let (identity, upstream) = login.map_or((None, None), |l| (Some(l.identity), l.session));
        let sealed = match &identity {
            Some(who) => self.seal_upstream(&who.subject, upstream.as_ref())?,
            None => None,
        };
        let record = SessionRecord {
            csrf: random_token(32),
            identity,
            upstream: sealed,
            expires_at: self.clock.unix().saturating_add(ttl.as_secs()),
        };
        self.store.put_session(&id.hash(), &record, ttl).await?;
        Ok(BrowserSession {
            id: id.into_exposed(),
            csrf: record.csrf,
            identity: record.identity,
            upstream,
            expires_at: record.expires_at,
            is_new: true,
        })
    }

    /// The session named by the cookie, or a new one if there is none (or it expired).
    ///
    /// # Errors
    /// Store failures.
    pub async fn browser_session(&self, cookie: Option<&str>) -> Result<BrowserSession, Error> {
        match self.existing_session(cookie).await? {
            Some(session) => Ok(session),
            None => self.new_session(None).await,
        }
    }

    /// The session only if it exists; never creates one (for POSTs, which must follow a page that set it).
    ///
    /// # Errors
    /// Store failures.
    pub async fn existing_session(
        &self,
        cookie: Option<&str>,
    ) -> Result<Option<BrowserSession>, Error> {
        let Some(id) = cookie else { return Ok(None) };
        let Some(rec) = self.store.session(&Secret::new(id).hash()).await? else {
            return Ok(None);
        };
        if rec.expires_at <= self.clock.unix() {
            return Ok(None);
        }
        let upstream = match &rec.identity {
            Some(who) => self.open_upstream(&who.subject, rec.upstream.as_ref())?,
            None => None,
        };
        Ok(Some(BrowserSession {
            id: id.to_owned(),
            csrf: rec.csrf,
            identity: rec.identity,
            upstream,
            expires_at: rec.expires_at,
            is_new: false,
        }))
    }

    /// Records a login: the old session is deleted and a new one (new id, new CSRF token) carries the identity.
    ///
    /// # Errors
    /// Store failures.
    pub async fn log_in(
        &self,
        old: &BrowserSession,
        login: Login,
    ) -> Result<BrowserSession, Error> {
        self.store
            .delete_session(&Secret::new(old.id.as_str()).hash())
            .await?;
        tracing::info!(subject = %login.identity.subject, "user logged in");
        self.new_session(Some(login)).await
    }

    /// Ends a session: deleted from the store, so the cookie is worthless wherever a copy of it is.
    ///
    /// # Errors
    /// Store failures.
    pub async fn log_out(&self, session: &BrowserSession) -> Result<(), Error> {
        self.store
            .delete_session(&Secret::new(session.id.as_str()).hash())
            .await?;
        if let Some(who) = &session.identity {
            tracing::info!(subject = %who.subject, "user logged out");
        }
        Ok(())
    }

    /// Whether `subject` has already consented to `scope` at `prompt`'s resource for its client.
    ///
    /// # Errors
    /// Store failures.
    pub async fn has_consented(
        &self,
        subject: &str,
        prompt: &AuthorizationPrompt,
        scope: &ScopeSet,
    ) -> Result<bool, Error> {
        let Some(c) = self.store.consent(subject, &prompt.client_id).await? else {
            return Ok(false);
        };
        Ok(scope.is_subset_of(&c.scope) && c.resources.contains(&prompt.resource))
    }

    /// Remembers that `subject` consented to `scope` at `prompt`'s resource (merged with earlier consent for the
    /// same client).
    ///
    /// # Errors
    /// Store failures.
    pub async fn remember_consent(
        &self,
        subject: &str,
        prompt: &AuthorizationPrompt,
        scope: &ScopeSet,
    ) -> Result<(), Error> {
        let earlier = self.store.consent(subject, &prompt.client_id).await?;
        let (mut all, mut resources) = earlier
            .map(|c| {
                (
                    c.scope.iter().map(str::to_owned).collect::<Vec<_>>(),
                    c.resources,
                )
            })
            .unwrap_or_default();
        all.extend(scope.iter().map(str::to_owned));
        if !resources.contains(&prompt.resource) {
            resources.push(prompt.resource.clone());
        }
        let record = ConsentRecord {
            scope: ScopeSet::from_tokens(all),
            resources,
            granted_at: self.clock.unix(),
        };
        self.store
            .put_consent(subject, &prompt.client_id, &record, self.config.consent_ttl)
            .await?;
        Ok(())
    }
}
