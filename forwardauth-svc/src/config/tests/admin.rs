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
        "admin.socket: /{long}: longer than the 100 bytes a Unix socket path may have; choose a shorter path"
    ));
    let f = Fixture::new(&format!("{MINIMAL}\n[admin]\nsocket = 1\n"));
    f.assert_error_starts("admin.socket: invalid type");
}
