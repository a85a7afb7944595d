//! Logging and tracing setup: `tracing` events to stderr, human-readable or one JSON object per line, and, when
//! `[tracing]` names a collector, the spans exported over OTLP/HTTP (protobuf) through `tracing-opentelemetry`.
//!
//! The log filter comes from `RUST_LOG` (e.g. `RUST_LOG=debug,actix_server=warn`); without it,
//! [`DEFAULT_FILTER`]. stdout is left to the command's own output (the `serve` banner, `clients list`, hashes),
//! so scripts can read it while logs go elsewhere.
//!
//! The exporter has its own filter, independent of `RUST_LOG` ([`exported`]): every span of this service and of
//! the engine down to debug level (the per-request span of the hot paths `/verify`, `/health` and `/ready` is a
//! debug span, so that logging it costs nothing when nobody exports it; the engine's `store` spans), and their
//! events from info level. Nothing from other crates: the exporter's own HTTP client must not trace itself.
//! Spans are handed to a batch processor on its own thread, which posts them in batches (every five seconds, or
//! sooner when 512 are waiting); a full queue drops spans rather than slowing a request, and
//! [`Telemetry::shutdown`] posts what is left when the service stops.
//!
//! The request span continues the trace of the caller's W3C `traceparent` header (the proxy's, for `/verify`):
//! see [`crate::routes::request_log`], which also keeps secrets out of its attributes (the path without the
//! query, the route pattern, the method and the status).

use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::{Level, Metadata};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::{LogFormat, TracingConfig};

/// The filter used when `RUST_LOG` is unset.
pub const DEFAULT_FILTER: &str = "info,actix_server=warn";

/// How long one export may take before it is abandoned.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported (set once by [`init`]); the request span carries the trace context only then.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// The running exporter, if any; [`Telemetry::shutdown`] flushes it.
#[must_use = "spans still queued are lost unless `shutdown` is called before the process exits"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans still queued and stops the exporter (blocks for at most the export timeout).
    pub fn shutdown(self) {
        if let Some(provider) = self.provider {
            EXPORTING.store(false, Ordering::Relaxed);
            if let Err(e) = provider.shutdown() {
                tracing::warn!(error = %e, "could not export the last spans");
            }
        }
    }
}

/// The OTLP exporter could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("tracing: cannot set up the OTLP exporter: {0}")]
pub struct TelemetryError(String);

/// Installs the global subscriber, with the span exporter when `tracing` is set. Calling it again (tests,
/// embedders that installed their own) installs nothing and exports nothing.
///
/// # Errors
/// [`TelemetryError`] when the exporter cannot be built.
pub fn init(
    format: LogFormat,
    tracing: Option<&TracingConfig>,
) -> Result<Telemetry, TelemetryError> {
    let (filter, bad_rust_log) = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => match EnvFilter::try_new(&v) {
            Ok(f) => (f, None),
            Err(e) => (EnvFilter::new(DEFAULT_FILTER), Some(e.to_string())),
        },
        _ => (EnvFilter::new(DEFAULT_FILTER), None),
    };
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let fmt = match format {
        LogFormat::Human => fmt.with_filter(filter).boxed(),
        LogFormat::Json => fmt.json().with_filter(filter).boxed(),
    };
    let mut layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> = vec![fmt];
    let provider = match tracing {
        Some(t) => {
            let provider = provider(t)?;
            let layer = tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("forwardauth-svc"))
                .with_filter(tracing_subscriber::filter::filter_fn(exported));
            layers.push(layer.boxed());
            Some(provider)
        }
        None => None,
    };
    let installed = tracing_subscriber::registry()
        .with(layers)
        .try_init()
        .is_ok();
    if !installed {
        if let Some(p) = provider {
            let _ = p.shutdown();
        }
        return Ok(Telemetry { provider: None });
    }
    if let Some(e) = bad_rust_log {
        tracing::warn!(error = %e, default = DEFAULT_FILTER, "RUST_LOG is not a valid filter; using the default");
    }
    if let Some(t) = tracing {
        EXPORTING.store(true, Ordering::Relaxed);
        tracing::info!(endpoint = %t.traces_url, service_name = %t.service_name, "exporting spans over OTLP/HTTP");
    }
    Ok(Telemetry { provider })
}

/// The tracer provider: a batch processor posting protobuf bodies to the configured URL.
fn provider(t: &TracingConfig) -> Result<SdkTracerProvider, TelemetryError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(t.traces_url.as_str())
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|e| TelemetryError(e.to_string()))?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(t.service_name.clone())
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    // Every span is exported, whatever the sampled flag of the `traceparent` it continues: behind a proxy that
    // does not trace, that header is the client's, and the default sampler (follow the parent) would let any
    // client keep its requests, `/verify` probes included, out of the export with a flag of `00`.
    Ok(SdkTracerProvider::builder()
        .with_sampler(opentelemetry_sdk::trace::Sampler::AlwaysOn)
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// What the exporter sees: spans of this service and of the engine down to debug level, their events from info.
pub fn exported(meta: &Metadata<'_>) -> bool {
    let target = meta.target();
    let ours = target.starts_with("forwardauth_svc") || target.starts_with("oauth_core");
    let floor = if meta.is_span() {
        Level::DEBUG
    } else {
        Level::INFO
    };
    ours && *meta.level() <= floor
}
