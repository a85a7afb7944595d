//! The authorization UI over HTTP: error pages vs redirects, login, CSRF, consent, cookies, page headers.

use actix_web::http::header;
use actix_web::test;
use serde_json::json;

use crate::common::*;

#[actix_web::test]
async fn unverified_requests_render_a_page_and_verified_ones_redirect_errors() {
    let (app, _) = app().await;
    let a = call(
        &app,
        test::TestRequest::get().uri("/authorize?client_id=nope&response_type=code"),
    )
    .await;
    assert_eq!(a.status, 400);
    assert!(
        a.header("location").is_none(),
        "never a redirect before the redirect URI is verified"
    );
    assert!(
        a.page()
            .contains("unknown client, or redirect_uri is not registered for this client")
    );
    assert_eq!(a.header("content-type"), Some("text/html; charset=utf-8"));
    let dup = call(
        &app,
        test::TestRequest::get().uri("/authorize?client_id=a&client_id=b"),
    )
    .await;
    assert_eq!(dup.status, 400);
    assert!(dup.text().contains("parameter `client_id` is repeated"));

    let client = register(&app, json!({})).await;
    let uri = authorize_uri(client["client_id"].as_str().unwrap(), "")
        .replace("code_challenge_method=S256", "code_challenge_method=plain");
    let a = call(&app, test::TestRequest::get().uri(&uri)).await;
    assert_eq!(a.status, 302);
    let loc = url::Url::parse(a.header("location").unwrap()).unwrap();
    let q: std::collections::HashMap<_, _> = loc.query_pairs().into_owned().collect();
    assert_eq!(q["error"], "invalid_request");
    assert_eq!(q["state"], "xyz");
    assert_eq!(q["iss"], ISSUER);
}

#[actix_web::test]
async fn login_page_sets_a_hardened_session_cookie_and_frame_protection() {
    let (app, _) = app().await;
    let client = register(&app, json!({"client_name": "<script>alert(1)</script>"})).await;
    let a = call(
        &app,
        test::TestRequest::get().uri(&authorize_uri(client["client_id"].as_str().unwrap(), "")),
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("x-frame-options"), Some("DENY"));
    assert!(
        a.header("content-security-policy")
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    assert_eq!(a.header("cache-control"), Some("no-store"));
    let cookie = a
        .cookies()
        .into_iter()
        .find(|c| c.contains("fa_session="))
        .unwrap();
    assert!(
        cookie.starts_with("__Host-fa_session="),
        "https issuer: __Host- prefix: {cookie}"
    );
    for attr in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/"] {
        assert!(cookie.contains(attr), "{attr} missing in {cookie}");
    }
    let html = a.page();
    assert!(
        !html.contains("<script>alert(1)</script>"),
        "client metadata is escaped"
    );
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{html}"
    );
}

#[actix_web::test]
async fn wrong_password_csrf_and_missing_session() {
    let (app, _) = app().await;
    let client = register(&app, json!({})).await;
    let page = call(
        &app,
        test::TestRequest::get().uri(&authorize_uri(client["client_id"].as_str().unwrap(), "")),
    )
    .await;
    let cookie = session_cookie(&page);
    let (handle, csrf) = (field(&page.text(), "handle"), field(&page.text(), "csrf"));
    let wrong = call(
        &app,
        form_post(
            "/login",
            &format!(
                "handle={}&csrf={}&username=alice&password=nope",
                enc(&handle),
                enc(&csrf)
            ),
        )
        .insert_header(("Cookie", cookie.clone())),
    )
    .await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.text().contains("Invalid username or password."));
    assert_eq!(field(&wrong.text(), "username"), "alice");
    let forged = call(
        &app,
        form_post(
            "/login",
            &format!(
                "handle={}&csrf=forged&username=alice&password=wonderland",
                enc(&handle)
            ),
        )
        .insert_header(("Cookie", cookie.clone())),
    )
    .await;
    assert_eq!(forged.status, 403);
    assert!(
        forged
            .text()
            .contains("The form is out of date or was not sent by this site.")
    );
    let no_cookie = call(
        &app,
        form_post(
            "/login",
            &format!(
                "handle={}&csrf={}&username=alice&password=wonderland",
                enc(&handle),
                enc(&csrf)
            ),
        ),
    )
    .await;
    assert_eq!(no_cookie.status, 400);
    let dup = call(
        &app,
        form_post("/login", "handle=a&handle=b").insert_header(("Cookie", cookie.clone())),
    )
    .await;
    assert_eq!(dup.status, 400);
    assert!(dup.text().contains("parameter `handle` is repeated"));
    assert_eq!(
        call(&app, test::TestRequest::get().uri("/login"))
            .await
            .status,
        405
    );
    assert_eq!(
        call(&app, test::TestRequest::post().uri("/authorize"))
            .await
            .status,
        405
    );
}

#[actix_web::test]
async fn consent_deny_returns_access_denied_and_remember_skips_the_page_except_for_loopback() {
    let (app, _) = app().await;
    let client = register(&app, json!({})).await;
    let client_id = client["client_id"].as_str().unwrap();
    let (login, handle) = log_in(&app, &authorize_uri(client_id, ""), "alice").await;
    let consent_page = login.page();
    assert!(consent_page.contains("<h1>Allow access to Demo?</h1>"));
    assert!(
        consent_page.contains(
            "An application calling itself <strong>“API test client”</strong> <span class=\"unverified\">(not verified)</span>"
        ),
        "a registered name is only a claim: {consent_page}"
    );
    assert!(
        consent_page.contains("127.0.0.1"),
        "the redirect host is shown"
    );
    assert!(
        consent_page.contains("on your own computer"),
        "loopback warning"
    );
    assert!(consent_page.contains(RESOURCE));
    let cookie = session_cookie(&login);
    let csrf = field(&consent_page, "csrf");
    let deny = call(
        &app,
        form_post(
            "/consent",
            &format!("handle={}&csrf={}&decision=deny", enc(&handle), enc(&csrf)),
        )
        .insert_header(("Cookie", cookie.clone())),
    )
    .await;
    assert_eq!(deny.status, 302);
    assert!(
        deny.header("location")
            .unwrap()
            .contains("error=access_denied")
    );

    // Approve with remember: a loopback client is asked again anyway (any local program could be it).
    let page = call(
        &app,
        test::TestRequest::get()
            .uri(&authorize_uri(client_id, ""))
            .insert_header(("Cookie", cookie.clone())),
    )
    .await;
    assert!(
        page.text().contains("<h1>Allow access to Demo?</h1>"),
        "logged in: consent, not login"
    );
    let handle = field(&page.text(), "handle");
    let approve = call(
        &app,
        form_post(
            "/consent",
            &format!(
                "handle={}&csrf={}&decision=approve&remember=on",
                enc(&handle),
                enc(&csrf)
            ),
        )
        .insert_header(("Cookie", cookie.clone())),
    )
    .await;
    assert_eq!(approve.status, 302);
    let again = call(
        &app,
        test::TestRequest::get()
            .uri(&authorize_uri(client_id, ""))
            .insert_header(("Cookie", cookie.clone())),
    )
    .await;
    assert_eq!(again.status, 200, "a loopback client is asked every time");
    let html = again.page();
    assert!(html.contains("you are asked every time") && !html.contains("name=\"remember\""));

    // A web client: remembered, the next authorization goes straight back to it.
    let web = "https://app.example.com/cb";
    let client = register(&app, json!({ "redirect_uris": [web] })).await;
    let web_uri =
        authorize_uri(client["client_id"].as_str().unwrap(), "").replace(&enc(REDIRECT), &enc(web));
    let page = call(
        &app,
        test::TestRequest::get()
            .uri(&web_uri)
            .insert_header(("Cookie", cookie.clone())),
    )
    .await;
    assert!(
        page.page().contains("name=\"remember\""),
        "a web client's consent may be remembered"
    );
    let approve = call(
        &app,
        form_post(
            "/consent",
            &format!(
                "handle={}&csrf={}&decision=approve&remember=on",
                enc(&field(&page.text(), "handle")),
                enc(&csrf)
            ),
        )
        .insert_header(("Cookie", cookie.clone())),
    )
    .await;
    assert_eq!(approve.status, 302);
    let again = call(
        &app,
        test::TestRequest::get()
            .uri(&web_uri)
            .insert_header(("Cookie", cookie)),
    )
    .await;
    assert_eq!(again.status, 302);
    let loc = again.header("location").unwrap();
    assert!(
        loc.starts_with(web) && loc.contains("code=") && loc.contains("iss="),
        "{loc}"
    );
}

#[actix_web::test]
async fn several_providers_show_a_chooser_with_the_password_form() {
    let mut config = config();
    let mut sso = oauth_core::upstream::OidcConfig::new(
        "corp",
        "https://sso.example.com",
        "fa",
        Some("s".into()),
    );
    sso.display_name = "Corp <SSO>".into();
    config.providers = vec![forwardauth_svc::config::ProviderConfig::Oidc(sso)];
    let clock = std::sync::Arc::new(oauth_core::SystemClock);
    let store = std::sync::Arc::new(oauth_core::EmbeddedStore::in_memory(clock.clone()).unwrap());
    let providers = forwardauth_svc::state::build_providers(&config, clock.clone()).unwrap();
    let auth = oauth_core::AuthServer::new(
        config.server.clone(),
        store,
        oauth_core::testing::sealer(),
        clock,
    )
    .await
    .unwrap()
    .with_providers(providers);
    let state = forwardauth_svc::AppState::with_auth(&config, std::sync::Arc::new(auth)).unwrap();
    let app = app_with(state).await;
    let client = register(&app, json!({})).await;
    let page = call(
        &app,
        test::TestRequest::get().uri(&authorize_uri(client["client_id"].as_str().unwrap(), "")),
    )
    .await;
    assert_eq!(page.status, 200);
    let html = page.page();
    assert!(
        html.contains("Sign in with Corp &lt;SSO&gt;"),
        "provider names are escaped: {html}"
    );
    assert!(html.contains("name=\"provider\" value=\"corp\""));
    assert!(
        html.contains("name=\"password\""),
        "local accounts still offered"
    );
    let cookie = session_cookie(&page);
    let (handle, csrf) = (field(&page.text(), "handle"), field(&page.text(), "csrf"));
    let unknown = call(
        &app,
        form_post(
            "/login/upstream",
            &format!("handle={}&csrf={}&provider=nope", enc(&handle), enc(&csrf)),
        )
        .insert_header(("Cookie", cookie.clone())),
    )
    .await;
    assert_eq!(unknown.status, 400);
    assert!(unknown.page().contains("unknown identity provider `nope`"));
    // Choosing a provider shows the consent page first; only its approval sends the user there.
    let chosen = call(
        &app,
        form_post(
            "/login/upstream",
            &format!("handle={}&csrf={}&provider=corp", enc(&handle), enc(&csrf)),
        )
        .insert_header(("Cookie", cookie.clone())),
    )
    .await;
    assert_eq!(chosen.status, 200);
    let html = chosen.page();
    assert!(
        html.contains("name=\"provider\" value=\"corp\"")
            && html.contains("you sign in with <strong>Corp &lt;SSO&gt;</strong>")
            && html.contains("Approve and sign in"),
        "{html}"
    );
    let forged = call(
        &app,
        form_post(
            "/login/upstream",
            &format!("handle={}&csrf=x&provider=corp", enc(&handle)),
        )
        .insert_header(("Cookie", cookie)),
    )
    .await;
    assert_eq!(forged.status, 403, "CSRF-protected like every form");
    assert_eq!(
        call(
            &app,
            test::TestRequest::get().uri("/callback?state=nope&code=x")
        )
        .await
        .status,
        400
    );
}

#[actix_web::test]
async fn logout_clears_the_cookie_ends_the_session_and_refuses_a_forged_form() {
    let (app, _) = app().await;
    let client = register(&app, json!({})).await;
    let client_id = client["client_id"].as_str().unwrap();
    let (login, _) = log_in(&app, &authorize_uri(client_id, ""), "alice").await;
    assert_eq!(login.status, 200, "{}", login.text());
    let cookie = session_cookie(&login);
    let csrf = field(&login.text(), "csrf");

    let forged = call(
        &app,
        form_post("/logout", "csrf=forged").insert_header((header::COOKIE, cookie.clone())),
    )
    .await;
    assert_eq!(forged.status, 403);
    assert!(
        forged.cookies().is_empty(),
        "a refused form changes no cookie"
    );

    let out = call(
        &app,
        form_post("/logout", &format!("csrf={}", enc(&csrf)))
            .insert_header((header::COOKIE, cookie.clone())),
    )
    .await;
    assert_eq!(out.status, 200);
    assert!(out.page().contains("Signed out"));
    let cleared = out
        .cookies()
        .into_iter()
        .find(|c| c.contains("fa_session="))
        .unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");

    // The old cookie no longer signs anyone in: the next authorization shows the sign-in page and a new cookie.
    let again = call(
        &app,
        test::TestRequest::get()
            .uri(&authorize_uri(client_id, ""))
            .insert_header((header::COOKIE, cookie.clone())),
    )
    .await;
    assert_eq!(again.status, 200);
    assert!(
        again.page().contains("name=\"password\""),
        "the sign-in page again"
    );
    assert_ne!(session_cookie(&again), cookie);
}
