//! `[tracing]`: OpenTelemetry trace export over OTLP/HTTP (protobuf), off unless an endpoint is configured.
//!
//! The endpoint is the collector's base URL, as in the OpenTelemetry specification's
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (which overrides it): spans are posted to `<endpoint>/v1/traces`. The service
//! name (`OTEL_SERVICE_NAME` overrides it) is the `service.name` of every exported span. What is exported, and
//! how, is [`crate::logging`]'s business; this module only checks the values.

use serde::Deserialize;

use super::ConfigError;
use super::source::Ctx;

/// The standard variable for the collector's base URL; wins over `tracing.otlp_endpoint`.
pub const ENV_OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// The standard variable for the service name; wins over `tracing.service_name`.
pub const ENV_SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
/// The `service.name` when none is configured.
pub const DEFAULT_SERVICE_NAME: &str = "forwardauth-svc";

/// Where and as what to export spans.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TracingConfig {
    /// The full URL spans are posted to (`<endpoint>/v1/traces`).
    pub traces_url: url::Url,
    /// The `service.name` resource attribute.
    pub service_name: String,
}

/// `[tracing]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTracing {
    otlp_endpoint: Option<String>,
    service_name: Option<String>,
}

/// The export settings, or `None` when no endpoint is configured (nothing is exported).
pub(super) fn tracing_config(
    ctx: &Ctx<'_>,
    raw: RawTracing,
) -> Result<Option<TracingConfig>, ConfigError> {
    let Some(traces_url) = ctx.setting(
        ENV_OTLP_ENDPOINT,
        "tracing.otlp_endpoint",
        raw.otlp_endpoint.as_deref(),
        traces_url,
    )?
    else {
        return Ok(None);
    };
    let service_name = ctx
        .setting(
            ENV_SERVICE_NAME,
            "tracing.service_name",
            raw.service_name.as_deref(),
            |v| {
                if v.trim().is_empty() || v.chars().any(char::is_control) {
                    Err("must be a non-empty name without control characters".to_owned())
                } else {
                    Ok(v.to_owned())
                }
            },
        )?
        .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_owned());
    Ok(Some(TracingConfig {
        traces_url,
        service_name,
    }))
}

/// `<base>/v1/traces` for an http(s) base URL without query, fragment or credentials.
fn traces_url(v: &str) -> Result<url::Url, String> {
    let base = url::Url::parse(v).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(base.scheme(), "http" | "https") {
        return Err(format!(
            "must be an http or https URL (OTLP/HTTP), not {}",
            base.scheme()
        ));
    }
    if base.query().is_some() || base.fragment().is_some() {
        return Err("must have no query or fragment".to_owned());
    }
    if !base.username().is_empty() || base.password().is_some() {
        return Err("must not carry credentials".to_owned());
    }
    let path = format!("{}/v1/traces", base.path().trim_end_matches('/'));
    let mut url = base;
    url.set_path(&path);
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_traces_path_goes_below_the_base_url() {
        for (base, full) in [
            ("http://127.0.0.1:4318", "http://127.0.0.1:4318/v1/traces"),
            ("http://127.0.0.1:4318/", "http://127.0.0.1:4318/v1/traces"),
            (
                "https://otel.example.com/otlp/",
                "https://otel.example.com/otlp/v1/traces",
            ),
        ] {
            assert_eq!(traces_url(base).unwrap().as_str(), full);
        }
        assert!(traces_url("grpc://x:4317").unwrap_err().contains("http"));
        assert!(traces_url("http://x/?a=b").is_err());
        assert!(traces_url("http://u:p@x/").is_err());
        assert!(traces_url("localhost:4318").is_err());
    }
}
