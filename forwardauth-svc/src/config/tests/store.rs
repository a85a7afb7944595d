//! `[store]`.

use super::*;

/// The base64 of 32 bytes of `byte`.
fn kek_text(byte: u8) -> String {
    oauth_core::KeyEncryptionKey::from_bytes([byte; 32]).expose_base64()
}

fn kek_id(byte: u8) -> String {
    oauth_core::KeyEncryptionKey::from_bytes([byte; 32])
        .id()
        .to_owned()
}

#[test]
fn the_redis_backend_takes_url_prefix_pool_and_timeout_and_tightens_the_engine() {
    let f = Fixture::new(&format!(
        "{MINIMAL}\n[store]\nbackend = \"redis\"\nurl = \"rediss://:hunter2@redis.internal:6380/3\"\nkey_prefix = \"fa-prod\"\npool_size = 4\ntimeout_ms = 750\nkey_encryption_key_file = \"kek\"\n"
    ));
    f.write("kek", &kek_text(1));
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
        .load_with(&[
            ("FORWARDAUTH_REDIS_URL", "redis://127.0.0.1:6379"),
            ("FORWARDAUTH_KEY_ENCRYPTION_KEY", &kek_text(1)),
        ])
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

#[test]
fn the_key_encryption_key_comes_from_a_file_or_the_environment_and_redis_needs_one() {
    // Embedded, nothing configured: generated beside the store at start.
    let c = Fixture::new(MINIMAL).load().unwrap();
    assert!(c.key_encryption.current.is_none() && c.key_encryption.previous.is_empty());

    // Files, relative to the configuration's directory; the environment wins over them.
    let f = Fixture::new(&format!(
        "{MINIMAL}\n[store]\nkey_encryption_key_file = \"secrets/kek\"\nkey_encryption_key_previous_files = [\"secrets/old\"]\n"
    ));
    f.write("secrets/kek", &format!("{}\n", kek_text(1)));
    f.write("secrets/old", &kek_text(2));
    let c = f.load().unwrap();
    let ids = |c: &Config| {
        (
            c.key_encryption.current.as_ref().map(|k| k.id().to_owned()),
            c.key_encryption
                .previous
                .iter()
                .map(|k| k.id().to_owned())
                .collect::<Vec<_>>(),
        )
    };
    assert_eq!(ids(&c), (Some(kek_id(1)), vec![kek_id(2)]));
    let debug = format!("{c:?}");
    assert!(
        !debug.contains(&kek_text(1)) && debug.contains(&kek_id(1)),
        "{debug}"
    );
    let c = f
        .load_with(&[
            ("FORWARDAUTH_KEY_ENCRYPTION_KEY", &kek_text(3)),
            (
                "FORWARDAUTH_KEY_ENCRYPTION_KEY_PREVIOUS",
                &format!("{},{}", kek_text(1), kek_text(2)),
            ),
        ])
        .unwrap();
    assert_eq!(ids(&c), (Some(kek_id(3)), vec![kek_id(1), kek_id(2)]));

    // Redis without one: several instances must share it.
    let f = Fixture::new(&format!(
        "{MINIMAL}\n[store]\nbackend = \"redis\"\nurl = \"redis://h\"\n"
    ));
    f.assert_error(
        "store.key_encryption_key_file: backend = \"redis\" needs a key-encryption key that every instance shares (a file holding the base64 of 32 random bytes, or FORWARDAUTH_KEY_ENCRYPTION_KEY)",
    );

    // Bad material: named by key and file (or variable), never quoted.
    let short = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [5u8; 16]);
    let f = Fixture::new(&format!(
        "{MINIMAL}\n[store]\nkey_encryption_key_file = \"kek\"\n"
    ));
    let missing = f.dir.path().join("kek");
    assert_starts_with(
        &f.error(),
        &format!(
            "{}: store.key_encryption_key_file: cannot read {}: ",
            f.file(),
            missing.display()
        ),
    );
    f.write("kek", &short);
    f.assert_error(&format!(
        "store.key_encryption_key_file: {}: decodes to 16 bytes, not 32 (expected the base64 of 32 random bytes)",
        missing.display()
    ));
    let f = Fixture::new(&format!(
        "{MINIMAL}\n[store]\nkey_encryption_key_previous_files = [\"a\", \"b\"]\n"
    ));
    f.write("a", &kek_text(1));
    f.write("b", "not a key");
    let err = f.error();
    assert_starts_with(
        &err,
        &format!(
            "{}: store.key_encryption_key_previous_files[1]: {}: not base64",
            f.file(),
            f.dir.path().join("b").display()
        ),
    );
    let err = Fixture::new(MINIMAL)
        .load_with(&[("FORWARDAUTH_KEY_ENCRYPTION_KEY", &short)])
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "FORWARDAUTH_KEY_ENCRYPTION_KEY: decodes to 16 bytes, not 32 (expected the base64 of 32 random bytes)"
    );
    assert!(!err.contains(&short));
}

#[test]
fn the_signing_key_rotates_every_30_days_unless_configured_otherwise() {
    let c = Fixture::new(MINIMAL).load().unwrap();
    assert_eq!(
        c.server.signing_key_rotation,
        Some(Duration::from_secs(30 * 24 * 3600))
    );
    let c = Fixture::new(&format!(
        "{MINIMAL}\n[tokens]\nsigning_key_rotation_secs = 0\n"
    ))
    .load()
    .unwrap();
    assert_eq!(c.server.signing_key_rotation, None, "0 turns it off");
}
