//! The `forwardauth-svc` binary: parse the command line, load the configuration, set up logging, dispatch.
//!
//! Everything with logic lives in the library ([`forwardauth_svc::cli`], [`forwardauth_svc::run`]) so tests reach
//! it. A failure is printed as `Error: …` lines on stderr, one per problem (a configuration lists every problem it
//! has), never with a backtrace; the exit status is 2 for a configuration that cannot be used, 1 otherwise.

use std::process::ExitCode;

use clap::Parser as _;
use forwardauth_svc::cli::{self, Cli, CliError, Command};

/// mimalloc rather than glibc's malloc: every request allocates and frees many small blocks on several threads
/// (actix workers, the store's writer, tokio's blocking pool). Measured side by side (BENCHMARKS.md, "Write path
/// and scale"): a quarter less CPU per refresh and per registration, for about 3.5 MiB more RSS at idle.
/// Without transparent huge pages (`no_thp`): with them, peak RSS under a write load doubled.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let env = |k: &str| std::env::var(k).ok();
    // These need no configuration, so a broken one cannot get in the way.
    match cli.command() {
        Command::HashPassword => return finish(cli::hash_password_stdin()),
        Command::Snippet(args) => {
            return finish(cli::print_snippet(&args, &mut std::io::stdout()));
        }
        _ => {}
    }
    let config = match cli::load_config(&cli, &env) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let telemetry = match forwardauth_svc::logging::init(config.log_format, config.tracing.as_ref())
    {
        Ok(t) => t,
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = cli::execute(&cli, config, &env).await;
    // Posts the spans still queued; it blocks, so off the runtime's threads.
    let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    finish(result)
}

fn finish(result: Result<(), CliError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// Prints `Error: …` for each problem and gives the exit status.
fn fail(e: &CliError) -> ExitCode {
    for line in cli::report_lines(e) {
        eprintln!("Error: {line}");
    }
    ExitCode::from(cli::exit_status(e))
}
