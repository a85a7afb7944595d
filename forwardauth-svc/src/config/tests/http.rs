//! `[http]`.

use super::*;

#[test]
fn the_idle_timeout_outlasts_the_proxies_by_default_and_is_configurable() {
    let c = Fixture::new(MINIMAL).load().unwrap();
    // Above Traefik's ForwardAuth (90 s), Caddy's forward_auth (120 s) and the nginx snippet's (60 s) idle
    // timeouts: the proxy, not the gate, closes an idle connection.
    assert!(c.http.keep_alive > Duration::from_secs(120), "{:?}", c.http);
    assert_eq!(c.http.keep_alive, Duration::from_secs(300));
    assert_eq!(c.http.max_connections, 10_000);

    let c = Fixture::new(&format!(
        "{MINIMAL}\n[http]\nkeep_alive_secs = 600\nmax_connections = 50\n"
    ))
    .load()
    .unwrap();
    assert_eq!(c.http.keep_alive, Duration::from_secs(600));
    assert_eq!(c.http.max_connections, 50);
}

#[test]
fn out_of_range_values_are_named() {
    let http = |text: &str| Fixture::new(&format!("{MINIMAL}\n[http]\n{text}\n"));
    for secs in [0, 3601] {
        http(&format!("keep_alive_secs = {secs}")).assert_error(&format!(
            "http.keep_alive_secs: must be between 1 and 3600 (seconds; the default, 300, outlasts the proxies' own \
             idle timeouts), not {secs}"
        ));
    }
    for n in [0, 1_000_001] {
        http(&format!("max_connections = {n}")).assert_error(&format!(
            "http.max_connections: must be between 1 and 1000000 (the default is 10000), not {n}"
        ));
    }
    http("keep_alive = 5").assert_error(
        "http.keep_alive: unknown field `keep_alive`, expected `keep_alive_secs` or `max_connections`",
    );
}

#[test]
fn max_connections_is_split_over_the_workers_rounding_up() {
    let c = Fixture::new(&format!("{MINIMAL}\n[http]\nmax_connections = 5\n"))
        .load()
        .unwrap();
    assert_eq!(c.http.max_connections_per_worker(1), 5);
    assert_eq!(c.http.max_connections_per_worker(2), 3);
    assert_eq!(c.http.max_connections_per_worker(8), 1);
    assert_eq!(c.http.max_connections_per_worker(0), 5);
}
