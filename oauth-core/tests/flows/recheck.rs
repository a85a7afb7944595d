//! Re-checks at refresh that bite: what the engine does with each answer of a provider's re-check
//! ([`oauth_core::Recheck`]): a current identity renews the grant and the time the provider vouched; an identity
//! nobody could re-check stands only until `max_unverified_age` after that time, and the grant's expiry never
//! passes that point. The providers themselves are tested against real upstreams (`tests/tests/upstream_oidc.rs`,
//! `tests/tests/github.rs`); here a scripted one gives the answers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use oauth_core::upstream::UpstreamRequest;
use oauth_core::{
    Clock, Credentials, Identity, IdentityProvider, Login, LoginStart, Recheck, UpstreamError,
    UpstreamSession,
};

use crate::common::*;

const HOUR: u64 = 3600;
const MAX_UNVERIFIED: u64 = 24 * HOUR;

/// What the scripted provider answers next.
#[derive(Clone, Copy)]
enum Answer {
    Current,
    Unverifiable,
}

/// A provider `corp` whose re-check gives the scripted answer, and counts how often it was asked.
struct Scripted {
    answer: Mutex<Answer>,
    asked: Mutex<usize>,
}

#[async_trait]
impl IdentityProvider for Scripted {
    fn id(&self) -> &str {
        "corp"
    }
    fn display_name(&self) -> &str {
        "Corp SSO"
    }
    async fn start(&self, _: &UpstreamRequest) -> Result<LoginStart, UpstreamError> {
        Err(UpstreamError::Unsupported("logins in this test"))
    }
    async fn authenticate(&self, _: Credentials<'_>) -> Result<Login, UpstreamError> {
        Err(UpstreamError::LoginFailed)
    }
    async fn recheck(
        &self,
        identity: &Identity,
        session: Option<&UpstreamSession>,
    ) -> Result<Recheck, UpstreamError> {
        *self.asked.lock().unwrap() += 1;
        let answer = *self.answer.lock().unwrap();
        Ok(match answer {
            Answer::Current => {
                let mut renewed = session.cloned().unwrap();
                renewed.access_token = "renewed-upstream-token".into();
                // A provider leaves the time it vouched to the engine; a stale one here must be overwritten.
                renewed.verified_at = Some(1);
                Recheck::Current(Login::upstream(identity.clone(), renewed))
            }
            Answer::Unverifiable => Recheck::Unverifiable(None),
        })
    }
}

fn corp_alice() -> Identity {
    Identity {
        subject: "corp:alice".into(),
        ..alice()
    }
}

/// A server with the scripted provider, a client, and the grant of a login at `corp` the provider vouched for
/// now: the tokens and the grant id.
async fn logged_in(
    first: Answer,
) -> (
    Harness,
    Arc<Scripted>,
    String,
    oauth_core::wire::TokenResponse,
) {
    let mut h = harness().await;
    let scripted = Arc::new(Scripted {
        answer: Mutex::new(first),
        asked: Mutex::new(0),
    });
    h.server = h
        .server
        .with_providers(vec![scripted.clone() as Arc<dyn IdentityProvider>]);
    let c = public_client(&h).await;
    let prompt = h
        .server
        .authorize(form(&authorize_query(
            &c.client_id,
            LOOPBACK,
            &for_resource(),
        )))
        .await
        .unwrap();
    let session: UpstreamSession = serde_json::from_value(serde_json::json!({
        "provider": "corp",
        "access_token": "upstream-token",
        "verified_at": h.clock.unix(),
    }))
    .unwrap();
    let url = h
        .server
        .approve_with(&prompt.handle, corp_alice(), Some(session))
        .await
        .unwrap();
    let code = query(&url).remove("code").unwrap();
    let t = h
        .server
        .token(None, code_request(&c.client_id, &code, LOOPBACK))
        .await
        .unwrap();
    (h, scripted, c.client_id, t)
}

fn grant_id(t: &oauth_core::wire::TokenResponse) -> String {
    t.refresh_token
        .as_deref()
        .unwrap()
        .split('.')
        .next()
        .unwrap()
        .to_owned()
}

async fn refresh(
    h: &Harness,
    client_id: &str,
    t: &oauth_core::wire::TokenResponse,
) -> oauth_core::wire::TokenResponse {
    h.server
        .token(
            None,
            refresh_request(client_id, t.refresh_token.as_deref().unwrap(), ""),
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn an_identity_nobody_can_recheck_stands_until_max_unverified_age_after_the_login_and_no_longer()
 {
    let (h, scripted, client_id, t0) = logged_in(Answer::Unverifiable).await;
    let logged_in_at = h.clock.unix();
    h.clock.advance(Duration::from_secs(MAX_UNVERIFIED - HOUR));
    let t1 = refresh(&h, &client_id, &t0).await;
    assert_eq!(*scripted.asked.lock().unwrap(), 1);
    let grant = h.store.grant(&grant_id(&t1)).await.unwrap().unwrap();
    assert_eq!(
        grant.expires_at,
        logged_in_at + MAX_UNVERIFIED,
        "the grant's expiry stops where the unverified identity lapses, not 30 days on"
    );
    assert_eq!(
        opened(&grant).verified_at,
        Some(logged_in_at),
        "nobody vouched since the login"
    );
    h.clock.advance(Duration::from_secs(HOUR));
    assert_eq!(
        token_refused(
            &h,
            refresh_request(&client_id, t1.refresh_token.as_deref().unwrap(), "")
        )
        .await,
        (
            400,
            body(
                "invalid_grant",
                "the refresh token is invalid, expired or revoked"
            )
        ),
        "at the lapse the grant has expired"
    );
}

#[tokio::test]
async fn a_current_answer_renews_the_session_and_the_vouching_and_the_grant_slides() {
    let (h, _scripted, client_id, t0) = logged_in(Answer::Current).await;
    h.clock.advance(Duration::from_secs(MAX_UNVERIFIED + HOUR));
    let t1 = refresh(&h, &client_id, &t0).await;
    let now = h.clock.unix();
    let grant = h.store.grant(&grant_id(&t1)).await.unwrap().unwrap();
    let session = opened(&grant);
    assert_eq!(session.access_token, "renewed-upstream-token");
    assert_eq!(
        session.verified_at,
        Some(now),
        "the engine stamps the time the provider vouched"
    );
    assert_eq!(grant.expires_at, now + 30 * 24 * HOUR);
}

#[tokio::test]
async fn an_identity_unverifiable_past_max_unverified_age_since_the_provider_last_vouched_ends_the_grant()
 {
    let (h, scripted, client_id, t0) = logged_in(Answer::Current).await;
    h.clock.advance(Duration::from_secs(HOUR));
    let t1 = refresh(&h, &client_id, &t0).await;
    let vouched_at = h.clock.unix();
    *scripted.answer.lock().unwrap() = Answer::Unverifiable;
    h.clock.advance(Duration::from_secs(MAX_UNVERIFIED - 1));
    let t2 = refresh(&h, &client_id, &t1).await;
    assert_eq!(
        h.store
            .grant(&grant_id(&t2))
            .await
            .unwrap()
            .unwrap()
            .expires_at,
        vouched_at + MAX_UNVERIFIED
    );
    // The grant's expiry is capped, but a grant still on its earlier (uncapped) expiry meets the same end at its
    // re-check: put the 30-day expiry back and ask once the age has passed.
    let mut grant = h.store.grant(&grant_id(&t2)).await.unwrap().unwrap();
    grant.expires_at = vouched_at + 30 * 24 * HOUR;
    h.store
        .put_grant(&grant, Duration::from_secs(30 * 24 * HOUR))
        .await
        .unwrap();
    h.clock.advance(Duration::from_secs(1));
    assert_eq!(
        token_refused(
            &h,
            refresh_request(&client_id, t2.refresh_token.as_deref().unwrap(), "")
        )
        .await,
        (
            400,
            body(
                "invalid_grant",
                "the identity provider could not confirm this user recently enough; sign in again"
            )
        )
    );
    assert_eq!(
        h.store.grant(&grant_id(&t2)).await.unwrap(),
        None,
        "the grant ended"
    );
    let r = h
        .server
        .verify(Some(&bearer(&t2.access_token)), resource(&h))
        .unwrap_err();
    assert_eq!(r.description, "the access token has been revoked");
}

#[tokio::test]
async fn a_grant_whose_provider_is_no_longer_configured_cannot_be_rechecked() {
    // The default harness configures no identity provider: `local:alice` has nobody to vouch for her.
    let h = harness().await;
    let c = public_client(&h).await;
    let t0 = tokens(&h, &c.client_id, &for_resource()).await;
    let created = h.clock.unix();
    h.clock.advance(Duration::from_secs(HOUR));
    let t1 = refresh(&h, &c.client_id, &t0).await;
    assert_eq!(
        h.store
            .grant(&grant_id(&t1))
            .await
            .unwrap()
            .unwrap()
            .expires_at,
        created + MAX_UNVERIFIED,
        "without a provider, the grant's creation is the last time anyone vouched"
    );
}

/// The grant's upstream session, opened with the tests' key-encryption key.
fn opened(grant: &oauth_core::store::GrantRecord) -> oauth_core::UpstreamSession {
    oauth_core::testing::sealer()
        .open(grant.upstream.as_ref().unwrap(), &grant.identity.subject)
        .unwrap()
}
