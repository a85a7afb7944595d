//! `[audit]` and `[metrics]`: where the audit trail goes, and where Prometheus scrapes.
//!
//! Both are off by default. The metrics listener must be an address of its own: the public port serves the
//! internet through the proxy, and what the metrics tell (client ids, resources, refusal counts) is for the
//! operator.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;
use super::source::Ctx;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAudit {
    target: Option<String>,
    file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    listen: Option<String>,
}

/// Where the audit trail goes: one JSON object per line per security event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum AuditTarget {
    /// No audit trail (the default).
    #[default]
    Off,
    /// Standard error, beside (not inside) the log.
    Stderr,
    /// Appended to this file (created with mode 0600).
    File(PathBuf),
}

/// The audit file when `target = "file"` names none, relative to the configuration file.
pub const DEFAULT_AUDIT_FILE: &str = "audit.jsonl";

pub(super) fn audit(ctx: &Ctx<'_>, raw: RawAudit) -> Result<AuditTarget, ConfigError> {
    let target = match raw.target.as_deref() {
        None | Some("off") => AuditTarget::Off,
        Some("stderr") => AuditTarget::Stderr,
        Some("file") => AuditTarget::File(
            ctx.base
                .join(raw.file.as_deref().unwrap_or(DEFAULT_AUDIT_FILE.as_ref())),
        ),
        Some(other) => {
            return Err(ctx.invalid(
                "audit.target",
                format!("expected \"off\", \"stderr\" or \"file\", not {other:?}"),
            ));
        }
    };
    if raw.file.is_some() && !matches!(target, AuditTarget::File(_)) {
        return Err(ctx.invalid("audit.file", "is used only with target = \"file\""));
    }
    Ok(target)
}

pub(super) fn metrics(
    ctx: &Ctx<'_>,
    raw: RawMetrics,
    listen: SocketAddr,
) -> Result<Option<SocketAddr>, ConfigError> {
    let Some(text) = raw.listen else {
        return Ok(None);
    };
    let addr: SocketAddr = text.parse().map_err(|e| {
        ctx.invalid(
            "metrics.listen",
            format!("not a socket address: {e} (expected IP:port, e.g. 127.0.0.1:9090)"),
        )
    })?;
    if addr == listen {
        return Err(ctx.invalid(
            "metrics.listen",
            "must differ from `listen`: metrics are never served on the public port",
        ));
    }
    Ok(Some(addr))
}
