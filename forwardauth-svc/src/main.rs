//! The `forwardauth-svc` binary: parse the command line, load the configuration, set up logging, dispatch.
//!
//! Everything with logic lives in the library ([`forwardauth_svc::cli`], [`forwardauth_svc::run`]) so tests reach
//! it; this is the only place `anyhow` is used.

use clap::Parser as _;
use forwardauth_svc::cli::{self, Cli, CliError, Command};

/// mimalloc rather than glibc's malloc: every request allocates and frees many small blocks on several threads
/// (actix workers, the store's writer, tokio's blocking pool). Measured side by side (BENCHMARKS.md, "Write path
/// and scale"): a quarter less CPU per refresh and per registration, for about 3.5 MiB more RSS at idle.
/// Without transparent huge pages (`no_thp`): with them, peak RSS under a write load doubled.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let env = |k: &str| std::env::var(k).ok();
    // These need no configuration, so a broken one cannot get in the way.
    match cli.command() {
        Command::HashPassword => return cli::hash_password_stdin().map_err(fail),
        Command::Snippet(args) => {
            return cli::print_snippet(&args, &mut std::io::stdout()).map_err(fail);
        }
        _ => {}
    }
    let config = cli::load_config(&cli, &env).map_err(fail)?;
    forwardauth_svc::logging::init(config.log_format);
    cli::execute(&cli, config, &env).await.map_err(fail)
}

/// The error with its causes on one line; `main` prints it as `Error: …` and exits with status 1.
fn fail(e: CliError) -> anyhow::Error {
    anyhow::anyhow!(cli::report(&e))
}
