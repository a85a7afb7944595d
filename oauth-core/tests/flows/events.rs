//! The event seam: each thing the engine does reaches the installed sink once, from the one place it happens,
//! with the subject and client it concerns and never a secret.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use oauth_core::upstream::{Credentials, LoginStart, UpstreamRequest};
use oauth_core::{
    AuthServer, Event, EventSink, Identity, IdentityProvider, Login, LoginError, Regulation,
    UpstreamError, UpstreamSession,
};
use parking_lot::Mutex;
use serde_json::Value;

use crate::common::*;

/// Keeps every event as the audit trail would serialize it.
#[derive(Default)]
pub struct Recording(Mutex<Vec<Value>>);

impl EventSink for Recording {
    fn record(&self, event: &Event<'_>) {
        let mut v = serde_json::to_value(event).unwrap();
        v["subject_of"] = event.subject().into();
        v["client_of"] = event.client_id().into();
        v["outcome"] = event.outcome().into();
        assert_eq!(v["event"], event.name());
        self.0.lock().push(v);
    }
}

impl Recording {
    pub fn named(&self, name: &str) -> Vec<Value> {
        self.0
            .lock()
            .iter()
            .filter(|e| e["event"] == name)
            .cloned()
            .collect()
    }

    fn text(&self) -> String {
        serde_json::to_string(&*self.0.lock()).unwrap()
    }
}

pub fn listening(mut h: Harness) -> (Harness, Arc<Recording>) {
    let rec = Arc::new(Recording::default());
    h.server = h.server.with_event_sink(rec.clone());
    (h, rec)
}

#[tokio::test]
async fn a_flow_emits_each_step_once_with_its_subject_and_client_and_no_secret() {
    let (h, rec) = listening(harness().await);
    let c = public_client(&h).await;
    let code = code_for(&h, &c.client_id, LOOPBACK, &for_resource()).await;
    let t0 = h
        .server
        .token(None, code_request(&c.client_id, &code, LOOPBACK))
        .await
        .unwrap();
    let r0 = t0.refresh_token.clone().unwrap();
    let t1 = h
        .server
        .token(None, refresh_request(&c.client_id, &r0, ""))
        .await
        .unwrap();
    let r1 = t1.refresh_token.clone().unwrap();
    assert!(matches!(
        gate_post(&h, &bearer(&t1.access_token)).await.outcome,
        oauth_core::GateOutcome::Admit(_)
    ));
    assert!(matches!(
        gate_post(&h, "Bearer not-a-token").await.outcome,
        oauth_core::GateOutcome::Reject(_)
    ));
    let revoke: oauth_core::wire::TokenReference = form(&format!(
        "client_id={}&token={}",
        enc(&c.client_id),
        enc(&r1)
    ));
    h.server.revoke(None, revoke).await.unwrap();

    let registered = rec.named("client_registered");
    assert_eq!(registered.len(), 1);
    assert_eq!(registered[0]["client_id"], c.client_id.as_str());
    assert_eq!(registered[0]["auth_method"], "none");
    let issued = rec.named("code_issued");
    assert_eq!(issued.len(), 1, "{}", rec.text());
    assert_eq!(issued[0]["subject"], "local:alice");
    assert_eq!(issued[0]["client_id"], c.client_id.as_str());
    assert_eq!(issued[0]["resource"], oauth_core::testing::RESOURCE);
    let tokens = rec.named("token_issued");
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0]["grant_type"], "authorization_code");
    assert_eq!(tokens[0]["scope"], "mcp");
    let refreshed = rec.named("token_refreshed");
    assert_eq!(refreshed.len(), 1);
    assert_eq!(refreshed[0]["retry"], false);
    assert_eq!(refreshed[0]["subject_of"], "local:alice");

    let gate = rec.named("gate");
    assert_eq!(gate.len(), 2, "{gate:?}");
    assert_eq!(gate[0]["outcome"], "success");
    assert_eq!(gate[0]["decision"], "allow");
    assert_eq!(gate[0]["subject"], "local:alice");
    assert_eq!(gate[0]["client_id"], c.client_id.as_str());
    assert_eq!(gate[0]["resource"], oauth_core::testing::RESOURCE);
    assert_eq!(gate[0]["reason"], "ok");
    assert_eq!(gate[0]["status"], 200);
    assert_eq!(gate[1]["outcome"], "failure");
    assert_eq!(gate[1]["decision"], "deny");
    assert_eq!(gate[1]["reason"], "invalid_token");
    assert_eq!(gate[1]["status"], 401);
    assert_eq!(gate[1]["subject"], Value::Null);

    let revoked = rec.named("token_revoked");
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0]["token_type"], "refresh_token");
    assert_eq!(revoked[0]["subject"], "local:alice");

    // Store operations are timed, named by the store method.
    let ops: Vec<String> = rec
        .named("store_call")
        .iter()
        .map(|e| e["op"].as_str().unwrap().to_owned())
        .collect();
    for op in [
        "insert_client",
        "put_code",
        "redeem_code",
        "rotate_grant",
        "add_revocation",
    ] {
        assert!(ops.iter().any(|o| o == op), "{op} not in {ops:?}");
    }

    let text = rec.text();
    for secret in [
        code.as_str(),
        &t0.access_token,
        &r0,
        &t1.access_token,
        &r1,
        c.registration_access_token.as_deref().unwrap(),
    ] {
        assert!(!text.contains(secret), "a secret in the events: {secret}");
    }
}

#[tokio::test]
async fn a_reused_refresh_token_is_reported_with_its_grant() {
    let mut config = oauth_core::testing::config();
    config.refresh_grace = Duration::ZERO;
    let (h, rec) = listening(harness_with(config).await);
    let c = public_client(&h).await;
    let t0 = tokens(&h, &c.client_id, &for_resource()).await;
    let r0 = t0.refresh_token.unwrap();
    h.server
        .token(None, refresh_request(&c.client_id, &r0, ""))
        .await
        .unwrap();
    token_refused(&h, refresh_request(&c.client_id, &r0, "")).await;
    let reused = rec.named("refresh_token_reused");
    assert_eq!(reused.len(), 1, "{}", rec.text());
    assert_eq!(reused[0]["subject"], "local:alice");
    assert_eq!(reused[0]["client_id"], c.client_id.as_str());
    assert_eq!(reused[0]["outcome"], "failure");
    assert!(!rec.text().contains(&r0));
}

/// Accepts `right` for anyone.
struct Passwords;

#[async_trait]
impl IdentityProvider for Passwords {
    fn id(&self) -> &str {
        "local"
    }
    fn display_name(&self) -> &str {
        "Local"
    }
    async fn start(&self, _: &UpstreamRequest) -> Result<LoginStart, UpstreamError> {
        Ok(LoginStart::PasswordForm)
    }
    async fn authenticate(&self, c: Credentials<'_>) -> Result<Login, UpstreamError> {
        match c {
            Credentials::Password {
                username,
                password: "right",
            } => Ok(Login::local(Identity {
                subject: format!("local:{username}"),
                username: Some(username.to_owned()),
                ..Identity::default()
            })),
            _ => Err(UpstreamError::LoginFailed),
        }
    }
    async fn recheck(
        &self,
        _: &Identity,
        _: Option<&UpstreamSession>,
    ) -> Result<oauth_core::Recheck, UpstreamError> {
        Ok(oauth_core::Recheck::Gone)
    }
}

#[tokio::test]
async fn logins_report_success_failure_and_ban_with_the_name_but_never_the_password() {
    let mut config = oauth_core::testing::config();
    config.regulation = Regulation::default();
    config.regulation.max_failures_per_account = 2;
    let mut h = harness_with(config).await;
    h.server = h
        .server
        .with_providers(vec![Arc::new(Passwords) as Arc<dyn IdentityProvider>]);
    let (h, rec) = listening(h);
    h.server.password_login("bob", "right", None).await.unwrap();
    for _ in 0..2 {
        assert!(matches!(
            h.server.password_login("alice", "hunter2", None).await,
            Err(LoginError::Failed)
        ));
    }
    assert!(matches!(
        h.server.password_login("alice", "right", None).await,
        Err(LoginError::Banned { .. })
    ));

    let ok = rec.named("login_succeeded");
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0]["subject"], "local:bob");
    assert_eq!(ok[0]["provider"], "local");
    let failed = rec.named("login_failed");
    let reasons: Vec<&str> = failed
        .iter()
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        ["wrong_credentials", "wrong_credentials", "banned"]
    );
    assert!(failed.iter().all(|e| e["username"] == "alice"));
    let banned = rec.named("login_banned");
    assert_eq!(banned.len(), 1);
    assert_eq!(banned[0]["banned"], "account");
    assert_eq!(banned[0]["failures"], 2);
    let text = rec.text();
    assert!(
        !text.contains("hunter2") && !text.contains("right"),
        "{text}"
    );
}

#[tokio::test]
async fn an_operators_revocation_is_reported_with_its_target_and_count() {
    let (h, rec) = listening(harness().await);
    let c = public_client(&h).await;
    tokens(&h, &c.client_id, &for_resource()).await;
    tokens(&h, &c.client_id, &for_resource()).await;
    let operator = h.server.admin().by("unix:uid=1000");
    assert_eq!(operator.actor(), Some("unix:uid=1000"));
    assert_eq!(h.server.admin().actor(), None);
    assert_eq!(operator.revoke_user("local:alice").await.unwrap(), 2);
    assert_eq!(
        h.server.admin().delete_client("nobody").await.unwrap(),
        None
    );
    let admin = rec.named("admin");
    assert_eq!(admin.len(), 2, "{admin:?}");
    assert_eq!(admin[0]["action"], "revoke_user");
    assert_eq!(admin[0]["target"], "local:alice");
    assert_eq!(
        admin[0]["actor"], "unix:uid=1000",
        "who acted, as the caller named them"
    );
    assert_eq!(
        admin[0]["subject_of"], "local:alice",
        "the subject stays the user acted on"
    );
    assert_eq!(admin[0]["grants"], 2);
    assert_eq!(admin[0]["result"], "ok");
    assert_eq!(admin[0]["outcome"], "success");
    assert_eq!(admin[1]["action"], "delete_client");
    assert_eq!(admin[1]["result"], "not_found");
    assert_eq!(
        admin[1]["actor"],
        Value::Null,
        "nobody named: no actor guessed"
    );
    assert!(rec.named("client_deleted").is_empty());

    // An import adds clients and signing keys: an operator's action too, and so is the export it came from.
    let export = operator.export().await.unwrap();
    h.server
        .admin()
        .by("embedder:ops")
        .import(&export)
        .await
        .unwrap();
    let admin = rec.named("admin");
    let actions: Vec<&str> = admin
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["revoke_user", "delete_client", "export", "import"],
        "{admin:?}"
    );
    assert_eq!(admin[3]["result"], "ok");
    assert_eq!(admin[2]["actor"], "unix:uid=1000");
    assert_eq!(admin[3]["actor"], "embedder:ops");
}

/// A logged-in user refused a code is reported with the reason: the access policy, or no scope they may hold.
#[tokio::test]
async fn a_refused_authorization_says_whether_the_policy_or_the_scopes_refused() {
    // `mcp:admin` only for a group alice is not in.
    let mut config = oauth_core::testing::config();
    let r = config.resources[0].clone();
    config.resources[0] = r.with_scope_grants(vec![oauth_core::ScopeGrant::new(
        "mcp:admin",
        oauth_core::AccessPolicy::new(vec![], vec![], vec![], vec!["local:admins".into()]),
    )]);
    let (h, rec) = listening(harness_with(config).await);
    let c = public_client(&h).await;
    let only_admin = format!("{}&scope=mcp%3Aadmin", for_resource());
    let prompt = h
        .server
        .authorize(form(&authorize_query(&c.client_id, LOOPBACK, &only_admin)))
        .await
        .unwrap();
    let refused = redirected(h.server.approve(&prompt.handle, alice()).await.unwrap_err());
    assert_eq!(refused["error"], "access_denied", "{refused:?}");
    let events = rec.named("authorization_refused");
    assert_eq!(events.len(), 1, "{}", rec.text());
    assert_eq!(events[0]["reason"], "no_scope");
    assert_eq!(events[0]["subject"], "local:alice");
    assert_eq!(events[0]["client_id"], c.client_id.as_str());
    assert_eq!(events[0]["outcome"], "failure");
    assert!(rec.named("code_issued").is_empty(), "{}", rec.text());

    // The access policy admits bob only: alice is refused before any scope is chosen.
    let mut config = oauth_core::testing::config();
    config.policy = oauth_core::AccessPolicy::new(vec!["local:bob".into()], vec![], vec![], vec![]);
    let (h, rec) = listening(harness_with(config).await);
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
    assert!(matches!(
        h.server.approve(&prompt.handle, alice()).await,
        Err(oauth_core::AuthorizeError::Forbidden(_))
    ));
    let events = rec.named("authorization_refused");
    assert_eq!(events.len(), 1, "{}", rec.text());
    assert_eq!(events[0]["reason"], "access_policy");
    assert_eq!(events[0]["subject_of"], "local:alice");
    assert_eq!(events[0]["outcome"], "failure");
}

#[tokio::test]
async fn another_instances_revocation_arrives_with_its_lag() {
    let a = harness().await;
    let b = AuthServer::new(
        oauth_core::testing::config(),
        a.store.clone(),
        oauth_core::testing::sealer(),
        a.clock.clone(),
    )
    .await
    .unwrap();
    let rec = Arc::new(Recording::default());
    let b = b.with_event_sink(rec.clone());
    let c = public_client(&a).await;
    let t = tokens(&a, &c.client_id, &for_resource()).await;
    let revoke: oauth_core::wire::TokenReference = form(&format!(
        "client_id={}&token={}",
        enc(&c.client_id),
        enc(&t.access_token)
    ));
    a.server.revoke(None, revoke).await.unwrap();
    a.clock.advance(Duration::from_secs(3));
    b.sync().await.unwrap();
    let applied = rec.named("revocation_applied");
    assert_eq!(applied.len(), 1, "{}", rec.text());
    assert_eq!(applied[0]["lag_ms"], 3000);
    // Applied once: the next sync brings nothing new.
    b.sync().await.unwrap();
    assert_eq!(rec.named("revocation_applied").len(), 1);
}

fn consent_form(page: &oauth_core::ConsentPage, decision: &str) -> Vec<u8> {
    format!(
        "handle={}&csrf={}&decision={decision}",
        enc(&page.prompt.handle),
        enc(&page.csrf)
    )
    .into_bytes()
}

#[tokio::test]
async fn consent_given_and_refused_on_the_pages_are_reported_with_the_user() {
    use oauth_core::{LocalUser, LocalUsers, Outcome, SessionCookie};
    let mut h = harness().await;
    let hash = LocalUsers::hash_password("correct horse").unwrap();
    h.server = h.server.with_providers(vec![Arc::new(
        LocalUsers::new(vec![LocalUser::new("alice", hash)]).unwrap(),
    ) as Arc<dyn IdentityProvider>]);
    let (h, rec) = listening(h);
    let c = public_client(&h).await;
    let query = authorize_query(&c.client_id, LOOPBACK, &for_resource());
    let opened = h.server.browser().authorize(&query, None).await;
    let (Outcome::SignIn(page), SessionCookie::Set { value, .. }) =
        (&opened.outcome, &opened.cookie)
    else {
        panic!("{opened:?}");
    };
    let form = format!(
        "handle={}&csrf={}&username=alice&password={}",
        enc(&page.prompt.handle),
        enc(&page.csrf),
        enc("correct horse")
    );
    let signed = h
        .server
        .browser()
        .sign_in(form.as_bytes(), Some(value), None)
        .await;
    let (Outcome::Consent(consent), SessionCookie::Set { value: session, .. }) =
        (&signed.outcome, &signed.cookie)
    else {
        panic!("{signed:?}");
    };
    let denied = h
        .server
        .browser()
        .consent(&consent_form(consent, "deny"), Some(session))
        .await;
    assert!(matches!(denied.outcome, Outcome::Redirect(_)), "{denied:?}");
    // Asked again (a loopback client's consent is never remembered), and approved.
    let again = h.server.browser().authorize(&query, Some(session)).await;
    let Outcome::Consent(consent) = &again.outcome else {
        panic!("{again:?}");
    };
    let approved = h
        .server
        .browser()
        .consent(&consent_form(consent, "approve"), Some(session))
        .await;
    assert!(
        matches!(approved.outcome, Outcome::Redirect(_)),
        "{approved:?}"
    );

    let refused = rec.named("consent_refused");
    assert_eq!(refused.len(), 1, "{}", rec.text());
    assert_eq!(refused[0]["subject"], "local:alice");
    assert_eq!(refused[0]["client_id"], c.client_id.as_str());
    assert_eq!(refused[0]["outcome"], "failure");
    let given = rec.named("consent_given");
    assert_eq!(given.len(), 1);
    assert_eq!(given[0]["subject"], "local:alice");
    assert_eq!(given[0]["scope"], "mcp");
    assert_eq!(given[0]["remembered"], false);
    assert_eq!(rec.named("code_issued").len(), 1);
    assert_eq!(rec.named("login_succeeded").len(), 1);
    assert!(!rec.text().contains("correct horse"));
}

#[tokio::test]
async fn a_throttled_request_is_reported_with_its_endpoint() {
    use oauth_core::{Limited, RateLimits};
    let mut config = oauth_core::testing::config();
    config.rate_limits = RateLimits::default();
    config.rate_limits.set_per_minute(Limited::Register, 1);
    let (h, rec) = listening(harness_with(config).await);
    let client = "192.0.2.1".parse().unwrap();
    let refused = (0..100)
        .map(|_| h.server.throttle(Limited::Register, client))
        .filter(Result::is_err)
        .count();
    assert!(refused > 0);
    let throttled = rec.named("throttled");
    assert_eq!(throttled.len(), refused);
    assert_eq!(throttled[0]["endpoint"], "register");
    assert_eq!(throttled[0]["outcome"], "failure");
}
