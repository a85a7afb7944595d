//! Local users: argon2id hashes, uniform failures.

use oauth_core::upstream::{Credentials, LoginStart, UpstreamRequest};
use oauth_core::{IdentityProvider, LocalUser, LocalUsers, UpstreamError};

fn users() -> LocalUsers {
    let hash = LocalUsers::hash_password("correct horse").unwrap();
    LocalUsers::new(vec![
        LocalUser::new("alice", hash)
            .with_email("alice@example.com")
            .with_groups(vec!["staff".into()]),
    ])
    .unwrap()
}

#[tokio::test]
async fn password_login() {
    let u = users();
    let login = u
        .authenticate(Credentials::Password {
            username: "alice",
            password: "correct horse",
        })
        .await
        .unwrap();
    assert_eq!(login.session, None, "local logins have no upstream session");
    let id = login.identity;
    assert_eq!(id.subject, "local:alice");
    assert_eq!(id.email.as_deref(), Some("alice@example.com"));
    assert_eq!(id.groups, vec!["staff"]);
    let wrong = u
        .authenticate(Credentials::Password {
            username: "alice",
            password: "wrong",
        })
        .await
        .unwrap_err();
    assert!(matches!(wrong, UpstreamError::LoginFailed));
    let unknown = u
        .authenticate(Credentials::Password {
            username: "mallory",
            password: "correct horse",
        })
        .await
        .unwrap_err();
    assert!(
        matches!(unknown, UpstreamError::LoginFailed),
        "unknown users fail the same way"
    );
}

#[tokio::test]
async fn local_users_show_a_form_and_refuse_callbacks() {
    let u = users();
    let req = UpstreamRequest::new(
        "s".into(),
        "n".into(),
        "v".into(),
        "https://auth.example.com/callback".into(),
    );
    assert_eq!(u.start(&req).await.unwrap(), LoginStart::PasswordForm);
    let e = u
        .authenticate(Credentials::Callback {
            code: "c",
            request: &req,
        })
        .await
        .unwrap_err();
    assert!(matches!(e, UpstreamError::Unsupported(_)));
}

#[test]
fn bad_user_files_are_refused_with_the_user_named() {
    let err = LocalUsers::new(vec![LocalUser::new("bob", "plaintext")]).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("user `bob`: password_hash is not a valid PHC hash"),
        "{err}"
    );
    let h = LocalUsers::hash_password("x").unwrap();
    let err = LocalUsers::new(vec![
        LocalUser::new("bob", h.clone()),
        LocalUser::new("bob", h),
    ])
    .unwrap_err();
    assert_eq!(err.to_string(), "user `bob` is listed twice");
    assert_eq!(
        err,
        oauth_core::LocalUsersError::Duplicate {
            username: "bob".into()
        }
    );
}
