//! Watching the service: the audit trail ([`audit`]) and Prometheus metrics ([`metrics`]), both fed by the
//! engine's event seam ([`oauth_core::events`]), and the middleware that gives them what only HTTP knows
//! ([`request`]: the request's client and user agent for the audit trail, its route and status for the
//! metrics).
//!
//! Both are off by default; off, the middleware passes the request through untouched and the engine's sink is
//! the no-op one.

pub mod audit;
pub mod budget;
pub mod metrics;

use std::sync::Arc;

use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::web;
use oauth_core::{EventSink, Fanout};

use crate::state::AppState;

pub use audit::{AuditOpenError, AuditSink, RequestContext};
pub use budget::LineBudget;
pub use metrics::Metrics;

/// The sinks a configuration asks for, as one (`None` if it asks for none).
pub fn sink(
    audit: Option<Arc<AuditSink>>,
    metrics: Option<Arc<Metrics>>,
) -> Option<Arc<dyn EventSink>> {
    let mut sinks: Vec<Arc<dyn EventSink>> = Vec::new();
    if let Some(a) = audit {
        sinks.push(a);
    }
    if let Some(m) = metrics {
        sinks.push(m);
    }
    match sinks.len() {
        0 => None,
        1 => sinks.pop(),
        _ => Some(Arc::new(Fanout(sinks))),
    }
}

/// Around every request (wrap the `App` with it): with the audit trail on, the request's context in the
/// task-local the audit sink reads; with metrics on, the answer counted by route pattern and status.
pub fn request<S, B>(
    req: ServiceRequest,
    srv: &S,
) -> impl std::future::Future<Output = Result<ServiceResponse<B>, actix_web::Error>> + use<S, B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    S::Future: 'static,
    B: 'static,
{
    let state = req.app_data::<web::Data<AppState>>();
    let context = state
        .filter(|s| s.audit)
        .map(|s| RequestContext::of(req.request(), &s.gate));
    let metrics = state.and_then(|s| s.metrics.as_ref().map(|(m, _)| Arc::clone(m)));
    let fut = srv.call(req);
    async move {
        let res = match context {
            Some(ctx) => audit::REQUEST.scope(ctx, fut).await?,
            None => fut.await?,
        };
        if let Some(m) = metrics {
            m.request(
                res.request().match_pattern().as_deref(),
                res.status().as_u16(),
            );
        }
        Ok(res)
    }
}
