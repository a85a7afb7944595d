//! `[gate]`.

use super::*;

#[test]
fn a_bad_cidr_is_named() {
    Fixture::new(&format!(
        "{MINIMAL}\n[gate]\ntrusted_proxies = [\"10.0.0.0/8\", \"10.0.0.0/33\"]\n"
    )).assert_error("gate.trusted_proxies[1]: not an IP address or CIDR range: \"10.0.0.0/33\" (invalid IP address syntax)");

    Fixture::new(&format!(
        "{MINIMAL}\n[gate]\ntrusted_proxies = [\"proxy.local\"]\n"
    )).assert_error("gate.trusted_proxies[0]: not an IP address or CIDR range: \"proxy.local\" (invalid IP address syntax)");
}

#[test]
fn the_verify_cache_size_is_in_mib_and_refuses_zero_and_absurd_values() {
    let cache =
        |value: &str| Fixture::new(&format!("{MINIMAL}\n[gate]\nverify_cache_mib = {value}\n"));
    for (mib, bytes) in [(1, 1 << 20), (4096, 4 << 30)] {
        let c = cache(&mib.to_string()).load().unwrap();
        assert_eq!(c.server.verify_cache_bytes, bytes, "{mib} MiB");
    }
    // 0, one past the bound, and bytes written where MiB are expected.
    for value in [0, 4097, 33_554_432] {
        let f = cache(&value.to_string());
        f.assert_error(&format!("gate.verify_cache_mib: must be between 1 and 4096 (MiB; the default, 32, holds about 208,000 tokens), not {value}"));
    }
    let f = cache("\"32MiB\"");
    f.assert_error("gate.verify_cache_mib: invalid type: string \"32MiB\", expected u64");
    let f = cache("-1");
    f.assert_error_starts("gate.verify_cache_mib: ");
}

#[test]
fn a_bad_header_name_is_named() {
    Fixture::new(&format!(
        "{MINIMAL}\n[gate.headers]\nuser_email = \"X User Email\"\n"
    ))
    .assert_error(
        "gate.headers.user_email: not a header name: \"X User Email\" (invalid HTTP header name)",
    );

    Fixture::new(&format!(
        "{MINIMAL}\n[gate.headers]\nscopes = \"x-user-id\"\n"
    ))
    .assert_error("gate.headers.scopes: \"x-user-id\" is also gate.headers.user_id");
}

#[test]
fn the_readme_verify_cache_example_loads() {
    let readme = include_str!("../../../../README.md");
    let line = readme
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("verify_cache_mib ="))
        .unwrap();
    let f = Fixture::new(&format!("{MINIMAL}\n[gate]\n{line}\n"));
    assert_eq!(
        f.load().unwrap().server.verify_cache_bytes,
        64 * 1024 * 1024
    );
}

#[test]
fn the_body_limit_is_in_kib_and_bounded() {
    let gate = |value: &str| Fixture::new(&format!("{MINIMAL}\n[gate]\nmax_body_kib = {value}\n"));
    assert_eq!(
        Fixture::new(MINIMAL).load().unwrap().gate.max_body_bytes,
        4 * 1024 * 1024,
        "the default, which the Traefik snippet's maxBodySize matches"
    );
    for (kib, bytes) in [(1, 1024), (65_536, 64 << 20)] {
        assert_eq!(
            gate(&kib.to_string()).load().unwrap().gate.max_body_bytes,
            bytes
        );
    }
    for value in [0, 65_537] {
        gate(&value.to_string()).assert_error(&format!(
            "gate.max_body_kib: must be between 1 and 65536 (KiB; the default is 4096), not {value}"
        ));
    }
}
