//! `[pages]`: the brand, and the templates folder checked at startup.

use super::*;

#[test]
fn the_brand_is_read_and_checked() {
    let c = Fixture::new(&format!(
        "{MINIMAL}\n[pages]\nservice_name = \" Acme MCP \"\nlogo_url = \"/static/logo.svg\"\naccent_color = \"#0A7CFF\"\n"
    ))
    .load()
    .unwrap();
    assert_eq!(c.pages.service_name.as_deref(), Some("Acme MCP"));
    assert_eq!(c.pages.logo_url.as_deref(), Some("/static/logo.svg"));
    assert_eq!(c.pages.accent_color.as_deref(), Some("#0a7cff"));
    assert!(c.pages.templates.is_empty());

    let brand = |line: &str| Fixture::new(&format!("{MINIMAL}\n[pages]\n{line}\n"));
    brand("accent_color = \"red\"").assert_error(
        "pages.accent_color: expected a colour as #rrggbb (six hex digits, e.g. \"#0969da\"), not \"red\"",
    );
    brand("logo_url = \"http://cdn.acme.test/logo.svg\"").assert_error(
        "pages.logo_url: a http URL; expected an https URL or an absolute path on this server (`/static/logo.svg`)",
    );
    brand("service_name = \"\"").assert_error("pages.service_name: must not be empty");
    brand("title = \"x\"").assert_error_starts("pages.title: unknown field `title`");
}

#[test]
fn templates_replace_the_built_in_ones_of_the_same_name() {
    let f = Fixture::new(&format!("{MINIMAL}\n[pages]\ntemplates_dir = \"look\"\n"));
    let dir = f.dir.path().join("look");
    f.write(
        "look/signed_out.html",
        "{% extends \"base.html\" %}{% block body %}<p>Bye</p>{% endblock %}",
    );
    f.write("look/.gitkeep", "");
    let c = f.load().unwrap();
    assert_eq!(c.pages.templates.len(), 1);
    assert_eq!(c.pages.templates[0].name, "signed_out.html");
    assert_eq!(c.pages.templates[0].path, dir.join("signed_out.html"));

    // A broken template names the key and its file.
    let broken = f.write("look/consent.html", "{% if user %}unclosed");
    let message = f.error();
    assert_starts_with(
        &message,
        &format!("{}: pages.templates_dir: {}: ", f.file(), broken.display()),
    );
    assert!(message.contains("syntax error"), "{message}");
    std::fs::remove_file(&broken).unwrap();

    // A name no built-in template has is refused rather than never used.
    let typo = f.write("look/concent.html", "");
    f.assert_error(&format!(
        "pages.templates_dir: {}: not the name of a built-in template (one of base.html, login.html, consent.html, error.html, signed_out.html, sign_out.html)",
        typo.display()
    ));
    std::fs::remove_file(&typo).unwrap();

    std::fs::remove_dir_all(&dir).unwrap();
    assert_starts_with(
        &f.error(),
        &format!(
            "{}: pages.templates_dir: cannot read {}: ",
            f.file(),
            dir.display()
        ),
    );
}
