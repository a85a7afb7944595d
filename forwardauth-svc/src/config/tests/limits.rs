//! `[login]` and `[rate_limits]`.

use super::*;

#[test]
fn the_limits_example_loads_with_the_values_it_shows() {
    let doc: Vec<&str> = include_str!("../limits.rs")
        .lines()
        .take_while(|l| l.starts_with("//!"))
        .map(|l| {
            l.strip_prefix("//! ")
                .or_else(|| l.strip_prefix("//!"))
                .unwrap()
        })
        .collect();
    let start = doc.iter().position(|l| *l == "```toml").unwrap();
    let end = doc[start + 1..].iter().position(|l| *l == "```").unwrap();
    let block = doc[start + 1..start + 1 + end].join("\n");
    let f = Fixture::new(&format!(
        "[[resources]]\nresource = \"https://mcp.example.com/mcp\"\n{block}"
    ));
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
    let f = Fixture::new(
        "[[resources]]\nresource = \"https://mcp.example.com/mcp\"\n[login]\nregulation = false\n[rate_limits]\nregister = 0\nlogin = 0\n",
    );
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
        let f = Fixture::new(&format!(
            "[[resources]]\nresource = \"https://mcp.example.com/mcp\"\n[{section}]\n{key} = 0\n"
        ));
        let e = f.load().unwrap_err().to_string();
        assert!(
            e.contains(&format!("{section}.{key}")) && e.contains("at least 1"),
            "{e}"
        );
    }
    let f = Fixture::new(
        "[[resources]]\nresource = \"https://mcp.example.com/mcp\"\n[login]\nbans = 3\n",
    );
    let e = f.load().unwrap_err().to_string();
    assert!(e.contains("login") && e.contains("bans"), "{e}");
}

#[test]
fn the_readme_limits_block_is_the_module_example_and_loads() {
    let readme = include_str!("../../../../README.md");
    let block = readme
        .split("<!-- limits:begin -->\n```toml\n")
        .nth(1)
        .and_then(|r| r.split("```\n<!-- limits:end -->").next())
        .unwrap();
    let module: String = include_str!("../limits.rs")
        .lines()
        .take_while(|l| l.starts_with("//!"))
        .map(|l| {
            l.strip_prefix("//! ")
                .or_else(|| l.strip_prefix("//!"))
                .unwrap()
        })
        .skip_while(|l| *l != "```toml")
        .skip(1)
        .take_while(|l| *l != "```")
        .map(|l| format!("{l}\n"))
        .collect();
    let same = |s: &str| -> Vec<String> {
        s.lines()
            .map(|l| l.split('#').next().unwrap().trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect()
    };
    assert_eq!(
        same(block),
        same(&module),
        "README and config::limits show the same settings"
    );
    let f = Fixture::new(&format!(
        "[[resources]]\nresource = \"https://mcp.example.com/mcp\"\n{block}"
    ));
    let c = f.load().unwrap();
    assert_eq!(c.server.rate_limits, oauth_core::RateLimits::default());
}
