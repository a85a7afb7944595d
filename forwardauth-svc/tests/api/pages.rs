//! The pages as a browser gets them, under a brand: sign-in (and again after a wrong password), consent with
//! "Not you?", the sign-out confirmation, signed out, and the policy's 403 to a signed-in user. Each page is
//! pinned as a snapshot (random values redacted) for review, and the properties that matter are asserted.

use actix_web::http::header;
use actix_web::test;
use serde_json::json;

use crate::common::*;

fn branded() -> forwardauth_svc::config::Config {
    let mut c = config();
    c.server.resources[0] = c.server.resources[0]
        .clone()
        .with_scope_descriptions(vec![("mcp".into(), "Use the Demo tools".into())]);
    c.pages = forwardauth_svc::config::PagesConfig {
        service_name: Some("Acme MCP".into()),
        logo_url: Some("https://cdn.acme.test/logo.svg".into()),
        accent_color: Some("#6e40c9".into()),
        templates: vec![],
    };
    c
}

/// The page with every hidden input's value, and `secrets` (client id, …), replaced by placeholders.
fn redacted(page: &str, secrets: &[(&str, &str)]) -> String {
    let mut out = page.to_owned();
    for name in ["handle", "csrf"] {
        let marker = format!("name=\"{name}\" value=\"");
        let mut from = 0;
        while let Some(i) = out[from..].find(&marker) {
            let start = from + i + marker.len();
            let end = start + out[start..].find('"').unwrap();
            out.replace_range(start..end, &format!("[{name}]"));
            from = start;
        }
    }
    for (secret, placeholder) in secrets {
        out = out.replace(secret, placeholder);
    }
    out
}

/// The attributes of the `<input>` with `id`.
fn input(page: &str, id: &str) -> String {
    let at = page.find(&format!("id=\"{id}\"")).unwrap();
    let start = page[..at].rfind('<').unwrap();
    let end = at + page[at..].find('>').unwrap();
    page[start..=end].to_owned()
}

#[actix_web::test]
async fn every_page_names_the_service_and_its_host_and_a_signed_in_user_can_sign_out() {
    let state = state_with(branded()).await;
    let app = app_with(state).await;
    let client = register(&app, json!({})).await;
    let client_id = client["client_id"].as_str().unwrap();
    let ids = [(client_id, "[client_id]")];

    // The sign-in page: the brand, the host, the client as a claim.
    let login = call(
        &app,
        test::TestRequest::get().uri(&authorize_uri(client_id, "")),
    )
    .await;
    assert_eq!(login.status, 200);
    let csp = login.header("content-security-policy").unwrap();
    assert!(csp.ends_with("; img-src https://cdn.acme.test"), "{csp}");
    let html = login.page();
    assert!(html.contains("<h1>Sign in to Acme MCP</h1>"), "{html}");
    assert!(
        html.contains("<div class=\"host\">auth.example.com</div>"),
        "{html}"
    );
    assert!(html.contains("--accent: #6e40c9;"), "{html}");
    insta::assert_snapshot!("login", redacted(&html, &ids));
    let cookie = session_cookie(&login);
    let (handle, csrf) = (field(&html, "handle"), field(&html, "csrf"));

    // A wrong password: the name kept, the focus in the password field.
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
        .insert_header((header::COOKIE, cookie.clone())),
    )
    .await;
    assert_eq!(wrong.status, 401);
    let html = wrong.page();
    let (user, password) = (input(&html, "username"), input(&html, "password"));
    assert!(
        user.contains("value=\"alice\"") && !user.contains("autofocus"),
        "{user}"
    );
    assert!(password.contains("autofocus"), "{password}");
    insta::assert_snapshot!("login_failed", redacted(&html, &ids));

    // The consent page: the resource by name, scope descriptions, distinct buttons, "Not you?".
    let consent = call(
        &app,
        form_post(
            "/login",
            &format!(
                "handle={}&csrf={}&username=alice&password=wonderland",
                enc(&handle),
                enc(&csrf)
            ),
        )
        .insert_header((header::COOKIE, cookie.clone())),
    )
    .await;
    assert_eq!(consent.status, 200, "{}", consent.text());
    let signed_in = session_cookie(&consent);
    let html = consent.page();
    assert!(html.contains("<h1>Allow access to Demo?</h1>"), "{html}");
    assert!(
        html.contains("value=\"approve\" class=\"primary\""),
        "{html}"
    );
    assert!(
        html.contains("value=\"deny\" class=\"secondary\""),
        "{html}"
    );
    assert!(html.contains("Not you? Sign out"), "{html}");
    insta::assert_snapshot!("consent", redacted(&html, &ids));
    let csrf = field(&html, "csrf");

    // GET /logout asks and signs nobody out.
    let ask = call(
        &app,
        test::TestRequest::get()
            .uri(&format!("/logout?handle={}", enc(&handle)))
            .insert_header((header::COOKIE, signed_in.clone())),
    )
    .await;
    assert_eq!(ask.status, 200);
    assert!(ask.cookies().is_empty(), "a GET changes no cookie");
    insta::assert_snapshot!("sign_out", redacted(&ask.page(), &ids));
    let still = call(
        &app,
        test::TestRequest::get()
            .uri(&authorize_uri(client_id, ""))
            .insert_header((header::COOKIE, signed_in.clone())),
    )
    .await;
    assert!(
        still.page().contains("Allow access to Demo?"),
        "still signed in"
    );

    // The policy's 403 to a signed-in user offers to sign out.
    let admin = authorize_uri(client_id, "").replace(&enc(RESOURCE), &enc(ADMIN_RESOURCE));
    let refused = call(
        &app,
        test::TestRequest::get()
            .uri(&admin)
            .insert_header((header::COOKIE, signed_in.clone())),
    )
    .await;
    assert_eq!(refused.status, 403);
    let html = refused.page();
    assert!(
        html.contains("Signed in as <strong>alice</strong>"),
        "{html}"
    );
    assert_eq!(field(&html, "csrf"), csrf);
    insta::assert_snapshot!("forbidden", redacted(&html, &ids));

    // "Not you?" on the consent page: signed out, and the same authorization's sign-in page in a new session.
    let not_you = call(
        &app,
        form_post(
            "/logout",
            &format!("csrf={}&handle={}", enc(&csrf), enc(&handle)),
        )
        .insert_header((header::COOKIE, signed_in.clone())),
    )
    .await;
    assert_eq!(not_you.status, 200);
    let html = not_you.page();
    assert!(html.contains("<h1>Sign in to Acme MCP</h1>"), "{html}");
    assert_eq!(field(&html, "handle"), handle, "the same authorization");
    let fresh = session_cookie(&not_you);
    assert_ne!(fresh, signed_in);
    let old = call(
        &app,
        test::TestRequest::get()
            .uri(&authorize_uri(client_id, ""))
            .insert_header((header::COOKIE, signed_in.clone())),
    )
    .await;
    assert!(
        old.page().contains("Sign in to Acme MCP"),
        "the old session ended in the store"
    );

    // Signing out without a handle: the signed-out page, the cookie cleared.
    let (consent, _) = log_in(&app, &authorize_uri(client_id, ""), "alice").await;
    let out = call(
        &app,
        form_post(
            "/logout",
            &format!("csrf={}", enc(&field(&consent.text(), "csrf"))),
        )
        .insert_header((header::COOKIE, session_cookie(&consent))),
    )
    .await;
    assert_eq!(out.status, 200);
    assert!(out.cookies().iter().any(|c| c.contains("Max-Age=0")));
    insta::assert_snapshot!("signed_out", redacted(&out.page(), &ids));

    // With nobody signed in, GET /logout has no form.
    let nobody = call(&app, test::TestRequest::get().uri("/logout")).await;
    assert_eq!(nobody.status, 200);
    assert!(nobody.page().contains("You are not signed in") && !nobody.page().contains("<form"));
}

#[actix_web::test]
async fn a_template_folder_replaces_a_page() {
    let mut c = branded();
    c.pages.templates = vec![forwardauth_svc::pages::TemplateOverride {
        name: "signed_out.html".into(),
        path: "look/signed_out.html".into(),
        source: "{% extends \"base.html\" %}{% block body %}<p>See you, from {{ service_name }}.</p>{% endblock %}".into(),
    }];
    let app = app_with(state_with(c).await).await;
    let out = call(&app, form_post("/logout", "")).await;
    assert_eq!(out.status, 200);
    let html = out.page();
    assert!(html.contains("<p>See you, from Acme MCP.</p>"), "{html}");
    assert!(
        html.contains("<div class=\"host\">auth.example.com</div>"),
        "the base keeps the brand"
    );
}
