//! `[users]` and the users file.

use super::*;

#[test]
fn a_missing_users_file_is_named() {
    let f = Fixture::new(&format!("{MINIMAL}\n[users]\nfile = \"users.toml\"\n"));
    let users = f.dir.path().join("users.toml");
    f.assert_error_starts(&format!("users.file: cannot read {}: ", users.display()));
}

#[test]
fn users_file_errors_name_the_file_and_the_user() {
    let f = Fixture::new(&format!("{MINIMAL}\n[users]\nfile = \"users.toml\"\n"));
    let users = f.dir.path().join("users.toml").display().to_string();

    f.write(
        "users.toml",
        "[[users]]\nusername = \"bob\"\npassword_hash = \"hunter2\"\n",
    );
    assert_starts_with(
        &f.error(),
        &format!("{users}: user `bob`: password_hash is not a valid PHC hash: "),
    );

    f.write("users.toml", "[[users]]\nusername = \"bob\"\npassword_hash = \"$pbkdf2-sha256$i=1000$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g\"\n");
    assert_eq!(
        f.error(),
        format!(
            "{users}: users[0].password_hash (user `bob`): not an argon2id hash; make one with `forwardauth-svc hash-password`"
        )
    );

    f.write(
        "users.toml",
        &format!("[[users]]\nusername = \"bob\"\npassword_hash = \"{h}\"\n[[users]]\nusername = \"bob\"\npassword_hash = \"{h}\"\n", h = hash()),
    );
    assert_eq!(f.error(), format!("{users}: user `bob` is listed twice"));

    f.write(
        "users.toml",
        "[[users]]\nusername = \"bob\"\npasword_hash = \"x\"\n",
    );
    assert_starts_with(
        &f.error(),
        &format!("{users}: users[0].pasword_hash: unknown field `pasword_hash`"),
    );
}
