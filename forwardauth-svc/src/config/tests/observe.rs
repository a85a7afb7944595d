//! `[audit]` and `[metrics]`.

use super::*;

#[test]
fn audit_and_metrics_are_off_by_default() {
    let c = Fixture::new(MINIMAL).load().unwrap();
    assert_eq!(c.audit, AuditTarget::Off);
    assert_eq!(c.metrics_listen, None);
}

#[test]
fn the_audit_file_resolves_against_the_config_directory_and_defaults_to_audit_jsonl() {
    let f = Fixture::new(&format!(
        "{MINIMAL}\n[audit]\ntarget = \"file\"\nfile = \"logs/audit.jsonl\"\n"
    ));
    assert_eq!(
        f.load().unwrap().audit,
        AuditTarget::File(f.dir.path().join("logs/audit.jsonl"))
    );
    let f = Fixture::new(&format!("{MINIMAL}\n[audit]\ntarget = \"file\"\n"));
    assert_eq!(
        f.load().unwrap().audit,
        AuditTarget::File(f.dir.path().join(DEFAULT_AUDIT_FILE))
    );
    let f = Fixture::new(&format!("{MINIMAL}\n[audit]\ntarget = \"stderr\"\n"));
    assert_eq!(f.load().unwrap().audit, AuditTarget::Stderr);
}

#[test]
fn audit_and_metrics_errors_name_the_key() {
    Fixture::new(&format!("{MINIMAL}\n[audit]\ntarget = \"syslog\"\n"))
        .assert_error("audit.target: expected \"off\", \"stderr\" or \"file\", not \"syslog\"");
    Fixture::new(&format!(
        "{MINIMAL}\n[audit]\ntarget = \"stderr\"\nfile = \"audit.jsonl\"\n"
    ))
    .assert_error("audit.file: is used only with target = \"file\"");
    Fixture::new(&format!("{MINIMAL}\n[audit]\npath = \"audit.jsonl\"\n"))
        .assert_error("audit.path: unknown field `path`, expected `target` or `file`");
    Fixture::new(&format!("{MINIMAL}\n[metrics]\nlisten = \"9090\"\n")).assert_error(
        "metrics.listen: not a socket address: invalid socket address syntax (expected IP:port, e.g. 127.0.0.1:9090)",
    );
    Fixture::new(&format!(
        "listen = \"127.0.0.1:8080\"\n{MINIMAL}\n[metrics]\nlisten = \"127.0.0.1:8080\"\n"
    ))
    .assert_error(
        "metrics.listen: must differ from `listen`: metrics are never served on the public port",
    );
    let c = Fixture::new(&format!(
        "{MINIMAL}\n[metrics]\nlisten = \"127.0.0.1:9090\"\n"
    ))
    .load()
    .unwrap();
    assert_eq!(c.metrics_listen, Some("127.0.0.1:9090".parse().unwrap()));
}
