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

/// The users file the README's whole-file examples name (`file = "users.toml"`): the guide writes it with a
/// heredoc in step 1, so the test writes the same users here.
fn users_file() -> String {
    format!(
        "[[users]]\nusername = \"alice\"\npassword_hash = \"{}\"\nemail = \"alice@example.com\"\ngroups = [\"staff\"]\n",
        hash()
    )
}

#[test]
fn every_toml_example_in_the_readme_passes_check_config() {
    let blocks = readme_toml_blocks();
    let mut checked = 0;
    let mut with_tool_rules = 0;
    for (line, block) in &blocks {
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
        f.write("users.toml", &users_file());
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
        if block.contains("[resources.tool_scopes]") {
            // The tool rules example: check-config says where their calls are read from.
            assert!(
                out.contains("             tool scopes: tools/call:delete_repo needs mcp:admin\n"),
                "{out}"
            );
            assert!(out.contains("without it (nginx, Caddy)"), "{out}");
            with_tool_rules += 1;
        }
        checked += 1;
    }
    assert!(checked >= 7, "only {checked} README examples found");
    assert_eq!(with_tool_rules, 1, "the README's tool rules example");
}

/// Every configuration file under `examples/` and `deploy/` loads and passes `check-config`: whole files (with a
/// `[[resources]]` table) where they are, so that the users files they name are the shipped ones; fragments (the
/// provider examples, "add to your configuration file") appended to a minimal file. Users files are loaded by the
/// configurations that name them.
#[test]
fn every_configuration_in_examples_and_deploy_passes_check_config() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    let mut dirs = vec![root.join("examples"), root.join("deploy")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "toml")
                && path.file_name().is_some_and(|n| n != "Cargo.toml")
            {
                files.push(path);
            }
        }
    }
    files.sort();
    // Client secrets come from the variables the examples name; any `*_CLIENT_SECRET` stands in.
    let env = |k: &str| {
        k.ends_with("_CLIENT_SECRET")
            .then(|| "from-the-environment".to_owned())
    };
    let mut checked = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let has = |table: &str| text.lines().any(|l| l.trim() == table);
        if has("[[users]]") && !has("[[resources]]") {
            continue; // a users file
        }
        let fragment =
            (!has("[[resources]]")).then(|| Fixture::new(&format!("{HTTPS_RESOURCE}{text}")));
        let config_path = fragment
            .as_ref()
            .map_or_else(|| path.clone(), Fixture::path);
        let config =
            load(Some(&config_path), &env).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut out = Vec::new();
        crate::cli::check_config(&config, &mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.starts_with("configuration OK"),
            "{}: {out}",
            path.display()
        );
        checked.push(path.strip_prefix(&root).unwrap().display().to_string());
    }
    for expected in [
        "examples/quickstart.toml",
        "examples/providers/github.toml",
        "deploy/traefik/forwardauth.toml",
    ] {
        assert!(
            checked.iter().any(|c| c == expected),
            "{expected} not checked: {checked:?}"
        );
    }
}

/// The README's "Command line" list names every command the binary has (`serve`, `clients list`, `keys rotate`,
/// …), read from the command-line parser itself, so a new command cannot go undocumented.
#[test]
fn the_readme_command_line_list_names_every_command() {
    use clap::CommandFactory;
    let readme = include_str!("../../../../README.md");
    let start = readme
        .find("### Command line\n")
        .expect("a Command line section");
    let section = &readme[start..];
    let section = &section[..section[1..].find("\n## ").map_or(section.len(), |e| e + 1)];
    let mut missing = Vec::new();
    for command in <crate::cli::Cli as CommandFactory>::command().get_subcommands() {
        let name = command.get_name();
        let subcommands: Vec<&str> = command.get_subcommands().map(|s| s.get_name()).collect();
        if subcommands.is_empty() {
            if !section.contains(&format!("`{name}")) {
                missing.push(name.to_owned());
            }
        } else {
            for sub in subcommands {
                if !section.contains(&format!("`{name} {sub}")) {
                    missing.push(format!("{name} {sub}"));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "commands missing from the README's \"Command line\" list: {missing:?}"
    );
}
