//! `[login]` and `[rate_limits]`.

use super::*;

#[test]
fn the_limits_example_loads_with_the_values_it_shows() {
    let block = &toml_blocks(&module_doc(include_str!("../limits.rs")))[0];
    let f = Fixture::new(&format!("{HTTPS_RESOURCE}{block}"));
    let c = f.load().unwrap();
    assert_eq!(c.password_checks.concurrent, 2);
    assert_eq!(c.password_checks.queued, 16);
    let r = &c.server.regulation;
    assert!(r.enabled);
    assert_eq!(
        (r.max_failures_per_account, r.max_failures_per_address),
        (5, 20)
    );
    assert_eq!((r.window.as_secs(), r.ban.as_secs()), (600, 900));
    // Every rate shown is the default.
    assert_eq!(c.server.rate_limits, oauth_core::RateLimits::default());
    // And the regulation shown is the default.
    assert_eq!(*r, oauth_core::Regulation::default());
}

#[test]
fn limits_can_be_turned_off_and_zero_bounds_are_refused_by_key() {
    let f = Fixture::new(&format!(
        "{HTTPS_RESOURCE}[login]\nregulation = false\n[rate_limits]\nregister = 0\nlogin = 0\n"
    ));
    let c = f.load().unwrap();
    assert!(!c.server.regulation.enabled);
    assert_eq!(c.server.rate_limits.register_per_minute, 0);
    assert_eq!(c.server.rate_limits.login_per_minute, 0);
    assert_eq!(c.server.rate_limits.token_per_minute, 300);
    for (section, key) in [
        ("login", "password_checks"),
        ("login", "max_failures_per_account"),
        ("login", "max_failures_per_address"),
        ("login", "failure_window_secs"),
        ("login", "ban_secs"),
        ("rate_limits", "max_addresses"),
    ] {
        let f = Fixture::new(&format!("{HTTPS_RESOURCE}[{section}]\n{key} = 0\n"));
        let e = f.load().unwrap_err().to_string();
        assert!(
            e.contains(&format!("{section}.{key}")) && e.contains("at least 1"),
            "{e}"
        );
    }
    let f = Fixture::new(&format!("{HTTPS_RESOURCE}[login]\nbans = 3\n"));
    let e = f.load().unwrap_err().to_string();
    assert!(e.contains("login") && e.contains("bans"), "{e}");
}

#[test]
fn the_readme_limits_block_is_the_module_example_and_loads() {
    let readme: Vec<&str> = crate::testing::readme_section("limits").lines().collect();
    let block = &toml_blocks(&readme)[0];
    let module = &toml_blocks(&module_doc(include_str!("../limits.rs")))[0];
    let same = |s: &str| -> Vec<String> {
        s.lines()
            .map(|l| l.split('#').next().unwrap().trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect()
    };
    assert_eq!(
        same(block),
        same(module),
        "README and config::limits show the same settings"
    );
    let f = Fixture::new(&format!("{HTTPS_RESOURCE}{block}"));
    let c = f.load().unwrap();
    assert_eq!(c.server.rate_limits, oauth_core::RateLimits::default());
}
