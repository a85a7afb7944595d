use clap::Parser;
use mcp_bridge::cli::{Cli, Command};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Echo(args)) => mcp_bridge::echo::run(args),
        None => mcp_bridge::bridge::run(cli.bridge),
    }
}
