//! `[client_metadata]`.

use super::*;

#[test]
fn client_metadata_documents_are_enabled_by_default_for_any_public_host() {
    let c = Fixture::new(MINIMAL).load().unwrap().server.client_metadata;
    assert!(c.enabled);
    assert_eq!(c.hosts, HostPolicy::Any);
    assert!(!c.allow_private_addresses && !c.allow_http_loopback);
    assert!(c.allowed_networks.is_empty());
    assert_eq!(
        (c.timeout, c.max_document_bytes),
        (Duration::from_secs(3), 5120)
    );
    assert_eq!(
        (c.cache_min, c.cache_max),
        (Duration::from_secs(300), Duration::from_secs(86400))
    );
    assert!(c.builtin_roots && c.extra_root_certificates.is_empty());
    assert!(load(None, &no_env).unwrap().server.client_metadata.enabled);
}

#[test]
fn client_metadata_maps_every_key() {
    let f = Fixture::new(&format!(
        r#"{MINIMAL}
[client_metadata]
allowed_hosts = ["claude.ai", "*.Example.com"]
allow_private_addresses = true
allowed_networks = ["127.0.0.1", "10.20.0.0/16"]
allow_http_loopback = true
timeout_ms = 1500
max_document_bytes = 4096
cache_min_secs = 60
cache_max_secs = 3600
cache_capacity = 50
ca_certificates = ["certs/ca.pem"]
builtin_roots = false
"#
    ));
    let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    f.write("certs/ca.pem", pem);
    let c = f.load().unwrap().server.client_metadata;
    assert_eq!(
        c.hosts,
        HostPolicy::Allow(vec![
            HostPattern::parse("claude.ai").unwrap(),
            HostPattern::parse("*.example.com").unwrap()
        ])
    );
    assert!(c.allow_private_addresses && c.allow_http_loopback);
    assert_eq!(
        c.allowed_networks,
        [
            "127.0.0.1/32".parse::<ipnet::IpNet>().unwrap(),
            "10.20.0.0/16".parse().unwrap()
        ]
    );
    assert_eq!(c.timeout, Duration::from_millis(1500));
    assert_eq!((c.max_document_bytes, c.cache_capacity), (4096, 50));
    assert_eq!(
        (c.cache_min, c.cache_max),
        (Duration::from_secs(60), Duration::from_secs(3600))
    );
    assert_eq!(c.extra_root_certificates, [pem.as_bytes().to_vec()]);
    assert!(!c.builtin_roots);

    let f = Fixture::new(&format!(
        "{MINIMAL}\n[client_metadata]\nenabled = false\ndenied_hosts = [\"evil.example\"]\n"
    ));
    let c = f.load().unwrap().server.client_metadata;
    assert!(!c.enabled);
    assert_eq!(
        c.hosts,
        HostPolicy::Deny(vec![HostPattern::parse("evil.example").unwrap()])
    );
}

#[test]
fn client_metadata_errors_name_the_key() {
    let cases = [
        (
            "allowed_hosts = [\"a.example\"]\ndenied_hosts = [\"b.example\"]",
            "client_metadata.denied_hosts: set allowed_hosts or denied_hosts, not both".to_owned(),
        ),
        (
            "allowed_hosts = [\"ok.example\", \"a*.example\"]",
            "client_metadata.allowed_hosts[1]: `a*.example` is not a host name or `*.domain` pattern"
                .to_owned(),
        ),
        (
            "allowed_hosts = []",
            "client_metadata.allowed_hosts: an empty list would refuse every client; set enabled = false instead"
                .to_owned(),
        ),
        (
            "allowed_networks = [\"10.0.0.0/40\"]",
            "client_metadata.allowed_networks[0]: not an IP address or CIDR range: \"10.0.0.0/40\" (invalid IP address syntax)"
                .to_owned(),
        ),
        (
            "timeout_ms = 0",
            "client_metadata.timeout_ms: must be greater than zero".to_owned(),
        ),
        (
            "max_document_bytes = 0",
            "client_metadata.max_document_bytes: must be greater than zero".to_owned(),
        ),
        (
            "cache_min_secs = 7200\ncache_max_secs = 3600",
            "client_metadata.cache_min_secs: 7200 s is more than cache_max_secs (3600 s)".to_owned(),
        ),
        (
            "builtin_roots = false",
            "client_metadata.builtin_roots: false needs at least one ca_certificates entry (nothing would be trusted)"
                .to_owned(),
        ),
        (
            "colour = \"blue\"",
            "client_metadata.colour: unknown field `colour`, expected one of `enabled`, `allowed_hosts`, `denied_hosts`, `allow_private_addresses`, `allowed_networks`, `allow_http_loopback`, `timeout_ms`, `max_document_bytes`, `cache_min_secs`, `cache_max_secs`, `cache_capacity`, `ca_certificates`, `builtin_roots`"
                .to_owned(),
        ),
    ];
    for (table, message) in cases {
        let f = Fixture::new(&format!("{MINIMAL}\n[client_metadata]\n{table}\n"));
        f.assert_error_because(&message, table);
    }
    let f = Fixture::new(&format!(
        "{MINIMAL}\n[client_metadata]\nca_certificates = [\"missing.pem\", \"not-pem.txt\"]\n"
    ));
    let missing = f.dir.path().join("missing.pem");
    f.assert_error_starts(&format!(
        "client_metadata.ca_certificates[0]: cannot read {}: ",
        missing.display()
    ));
    f.write("missing.pem", "-----BEGIN CERTIFICATE-----\n");
    f.write("not-pem.txt", "hello");
    f.assert_error(&format!(
        "client_metadata.ca_certificates[1]: {} holds no PEM certificate",
        f.dir.path().join("not-pem.txt").display()
    ));
}
