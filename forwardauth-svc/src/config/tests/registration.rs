//! `[registration]`.

use super::*;

#[test]
fn initial_access_tokens_never_appear_in_debug_output() {
    let f = Fixture::new(&format!(
        "{MINIMAL}\n[registration]\ninitial_access_tokens = [\"very-secret-token\"]\n"
    ));
    let text = std::fs::read_to_string(f.path()).unwrap();
    let raw = RawConfig::from_toml(&text, &f.path()).unwrap();
    assert!(!format!("{raw:?}").contains("very-secret-token"));
    let c = f.load().unwrap();
    assert!(!format!("{c:?}").contains("very-secret-token"));
}
