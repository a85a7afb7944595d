use clap::Parser;
use mcp_bridge::cli::{Cli, Command};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Echo(_args)) => {
            eprintln!("mcp-bridge echo: not built yet");
            std::process::ExitCode::from(2)
        }
        None => mcp_bridge::bridge::run(cli.bridge),
    }
}
