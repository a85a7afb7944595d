//! `[admin]`.

use super::*;

#[test]
fn the_admin_socket_defaults_to_beside_the_embedded_store_and_can_be_moved_or_turned_off() {
    let f = Fixture::new(&format!("{MINIMAL}\n[store]\npath = \"data/x.redb\"\n"));
    let c = f.load().unwrap();
    assert_eq!(c.admin, AdminSocket::Default);
    assert_eq!(
        c.admin_socket(),
        Some(f.dir.path().join("data").join("x.redb.admin.sock"))
    );

    let f = Fixture::new(&format!(
        "{MINIMAL}\n[admin]\nsocket = \"run/admin.sock\"\n"
    ));
    assert_eq!(
        f.load().unwrap().admin_socket(),
        Some(f.dir.path().join("run").join("admin.sock"))
    );
    for off in ["", "off"] {
        let f = Fixture::new(&format!("{MINIMAL}\n[admin]\nsocket = \"{off}\"\n"));
        assert_eq!(f.load().unwrap().admin_socket(), None, "{off:?}");
    }
    // The variable wins; `off` turns it off.
    let f = Fixture::new(&format!("{MINIMAL}\n[admin]\nsocket = \"a.sock\"\n"));
    assert_eq!(
        f.load_with(&[(ENV_ADMIN_SOCKET, "/run/fa/admin.sock")])
            .unwrap()
            .admin_socket(),
        Some(PathBuf::from("/run/fa/admin.sock"))
    );
    assert_eq!(
        f.load_with(&[(ENV_ADMIN_SOCKET, "off")])
            .unwrap()
            .admin_socket(),
        None
    );

    // Redis and memory have no default: the commands open Redis themselves, and memory has nothing to open.
    let f = Fixture::new(&format!("{MINIMAL}\n[store]\nbackend = \"memory\"\n"));
    assert_eq!(f.load().unwrap().admin_socket(), None);
}

#[test]
fn an_admin_socket_path_too_long_for_a_unix_socket_is_refused() {
    let long = "s".repeat(120);
    let f = Fixture::new(&format!("{MINIMAL}\n[admin]\nsocket = \"/{long}\"\n"));
    f.assert_error(&format!(
        "admin.socket: /{long}: longer than the 92 bytes an admin socket path may have (a Unix socket path \
         holds 107, and the socket is first bound under a name 12 bytes longer); choose a shorter path"
    ));
    // The longest path that binds: its temporary name fits too.
    let fits = format!("/tmp/{}", "s".repeat(92 - 5));
    let f = Fixture::new(&format!("{MINIMAL}\n[admin]\nsocket = \"{fits}\"\n"));
    assert_eq!(
        f.load().unwrap().admin_socket(),
        Some(std::path::PathBuf::from(&fits))
    );
    let f = Fixture::new(&format!("{MINIMAL}\n[admin]\nsocket = 1\n"));
    f.assert_error_starts("admin.socket: invalid type");
}

#[test]
fn a_store_too_deep_for_a_socket_path_gets_no_default_socket() {
    // The service must start wherever the store is; the socket is left out instead.
    let deep = format!("/{}/oauth.redb", "d".repeat(80));
    let f = Fixture::new(&format!("{MINIMAL}\n[store]\npath = \"{deep}\"\n"));
    assert_eq!(f.load().unwrap().admin_socket(), None);
    let f = Fixture::new(&format!(
        "{MINIMAL}\n[store]\npath = \"/var/lib/fa/oauth.redb\"\n"
    ));
    assert_eq!(
        f.load().unwrap().admin_socket(),
        Some(std::path::PathBuf::from(
            "/var/lib/fa/oauth.redb.admin.sock"
        ))
    );
}
