//! `[store]`.

use super::*;

#[test]
fn the_redis_backend_takes_url_prefix_pool_and_timeout_and_tightens_the_engine() {
    let f = Fixture::new(&format!(
        "{MINIMAL}\n[store]\nbackend = \"redis\"\nurl = \"rediss://:hunter2@redis.internal:6380/3\"\nkey_prefix = \"fa-prod\"\npool_size = 4\ntimeout_ms = 750\n"
    ));
    let c = f.load().unwrap();
    assert_eq!(
        c.store,
        StoreConfig::Redis(RedisStoreConfig {
            url: RedisUrl("rediss://:hunter2@redis.internal:6380/3".into()),
            key_prefix: "fa-prod".into(),
            pool_size: 4,
            timeout: Duration::from_millis(750),
        })
    );
    assert_eq!(
        c.server.revocation_max_staleness,
        Some(REDIS_REVOCATION_MAX_STALENESS)
    );
    assert_eq!(c.server.key_activation_delay, REDIS_KEY_ACTIVATION_DELAY);
    let debug = format!("{c:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(
        debug.contains("rediss://:redacted@redis.internal:6380/3"),
        "{debug}"
    );

    // The environment's URL wins, and the defaults fill the rest.
    let f = Fixture::new(&format!("{MINIMAL}\n[store]\nbackend = \"redis\"\n"));
    let c = f
        .load_with(&[("FORWARDAUTH_REDIS_URL", "redis://127.0.0.1:6379")])
        .unwrap();
    assert_eq!(
        c.store,
        StoreConfig::Redis(RedisStoreConfig {
            url: RedisUrl("redis://127.0.0.1:6379".into()),
            key_prefix: "forwardauth".into(),
            pool_size: 16,
            timeout: Duration::from_secs(2),
        })
    );
    // The embedded store keeps the single-instance engine settings.
    let c = Fixture::new(MINIMAL).load().unwrap();
    assert_eq!(c.server.revocation_max_staleness, None);
}

#[test]
fn a_bad_redis_setting_names_the_key_and_never_quotes_the_url() {
    let cases = [
        (
            "backend = \"redis\"",
            "store.url: backend = \"redis\" needs a URL (or FORWARDAUTH_REDIS_URL)",
        ),
        (
            "backend = \"redis\"\nurl = \"http://:hunter2@h\"",
            "store.url: expected redis://[user:password@]host[:port][/db] or rediss://… (TLS)",
        ),
        (
            "backend = \"redis\"\nurl = \"redis://h\"\nkey_prefix = \"a{b}\"",
            "store.key_prefix: must be non-empty, without braces, whitespace or control characters",
        ),
        (
            "backend = \"redis\"\nurl = \"redis://h\"\npool_size = 0",
            "store.pool_size: must be at least 1",
        ),
        (
            "backend = \"redis\"\nurl = \"redis://h\"\ntimeout_ms = 0",
            "store.timeout_ms: must be greater than zero",
        ),
        (
            "backend = \"redis\"\nurl = \"redis://h\"\npath = \"x.redb\"",
            "store.path: applies to the embedded backend only",
        ),
        (
            "url = \"redis://h\"",
            "store.url: applies to backend = \"redis\" only",
        ),
    ];
    for (store, expected) in cases {
        let f = Fixture::new(&format!("{MINIMAL}\n[store]\n{store}\n"));
        let err = f.error();
        assert_eq!(err, format!("{}: {expected}", f.file()));
        assert!(!err.contains("hunter2"));
    }
    let f = Fixture::new(&format!("{MINIMAL}\n[store]\nbackend = \"redis\"\n"));
    assert_eq!(
        f.load_with(&[("FORWARDAUTH_REDIS_URL", "redis:/nohost")])
            .unwrap_err()
            .to_string(),
        "FORWARDAUTH_REDIS_URL: expected redis://[user:password@]host[:port][/db] or rediss://… (TLS)"
    );
}

#[test]
fn the_embedded_store_cache_is_configurable_within_bounds() {
    let f = Fixture::new(&format!("{MINIMAL}\n[store]\ncache_mib = 8\n"));
    let StoreConfig::Embedded { cache_bytes, .. } = f.load().unwrap().store else {
        panic!("embedded store expected")
    };
    assert_eq!(cache_bytes, 8 * 1024 * 1024);
    for (store, expected) in [
        (
            "cache_mib = 0",
            "store.cache_mib: must be between 1 and 65536 (MiB)",
        ),
        (
            "cache_mib = 65537",
            "store.cache_mib: must be between 1 and 65536 (MiB)",
        ),
        (
            "backend = \"redis\"\nurl = \"redis://h\"\ncache_mib = 8",
            "store.cache_mib: applies to the embedded backend only",
        ),
    ] {
        Fixture::new(&format!("{MINIMAL}\n[store]\n{store}\n")).assert_error(expected);
    }
}
