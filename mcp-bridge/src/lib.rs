//! `mcp-bridge`: Streamable HTTP in front of any stdio MCP server, with a process per user (or per session), and a
//! diagnostic MCP server (`mcp-bridge echo`) that shows what reaches a server behind the gate.

pub mod bridge;
pub mod cli;
pub mod echo;
