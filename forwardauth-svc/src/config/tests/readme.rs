//! The README's configuration examples: every ```` ```toml ```` block in it loads and passes `check-config`.

use super::*;

/// The ```` ```toml ```` blocks of the README, fence indentation removed, each with the line it starts on.
fn readme_toml_blocks() -> Vec<(usize, String)> {
    let readme = include_str!("../../../../README.md");
    let mut blocks = Vec::new();
    let mut current: Option<(usize, usize, Vec<&str>)> = None;
    for (n, line) in readme.lines().enumerate() {
        let indent = line.len() - line.trim_start().len();
        match (&mut current, line.trim()) {
            (None, "```toml") => current = Some((n + 1, indent, Vec::new())),
            (Some(_), "```") => {
                let (start, _, lines) = current.take().unwrap();
                blocks.push((start, lines.join("\n") + "\n"));
            }
            (Some((_, fence, lines)), _) => lines.push(line.get(*fence..).unwrap_or("")),
            (None, _) => {}
        }
    }
    blocks
}

#[test]
fn every_toml_example_in_the_readme_passes_check_config() {
    let blocks = readme_toml_blocks();
    // Step 1 of "From zero…" is the users file that step 2's complete configuration names.
    let (_, users) = blocks
        .iter()
        .find(|(_, b)| b.starts_with("# users.toml"))
        .expect("the README's users file example");
    let users = users.replace("$argon2id$v=19$...", hash());
    let mut checked = 0;
    for (line, block) in blocks
        .iter()
        .filter(|(_, b)| !b.starts_with("# users.toml"))
    {
        // A block with a top-level issuer is a whole file; any other is a table or two, added to a minimal file.
        let complete = block
            .lines()
            .take_while(|l| !l.starts_with('['))
            .any(|l| l.starts_with("issuer = "));
        let f = if complete {
            Fixture::new(block)
        } else {
            Fixture::new(&format!("{HTTPS_RESOURCE}{block}"))
        };
        f.write("users.toml", &users);
        f.write(
            "internal-ca.pem",
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        );
        let config = f
            .load_with(&[
                ("KEYCLOAK_CLIENT_SECRET", "from-the-environment"),
                // The Redis example's key file lives in /run/secrets; the variable it names stands in for it.
                (
                    "FORWARDAUTH_KEY_ENCRYPTION_KEY",
                    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
                ),
            ])
            .unwrap_or_else(|e| panic!("README.md line {line}:\n{block}\n{e}"));
        let mut out = Vec::new();
        crate::cli::check_config(&config, &mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(out.starts_with("configuration OK"), "line {line}: {out}");
        if complete {
            // Step 2 has tool rules, and check-config says where their calls are read from.
            assert!(
                out.contains("             tool scopes: tools/call:delete_repo needs mcp:admin\n"),
                "{out}"
            );
            assert!(out.contains("without it (nginx, Caddy)"), "{out}");
        }
        checked += 1;
    }
    assert!(checked >= 7, "only {checked} README examples found");
}
