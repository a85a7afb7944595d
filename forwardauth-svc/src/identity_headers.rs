//! The names of the identity headers `/verify` answers with, parsed once from the configuration.
//!
//! They sit in a module of their own, below both the state that holds them and the handler that writes them:
//! the state is built from the configuration before any request, and the handler only reads what the state
//! holds, so neither needs the other's module for this.

use actix_web::http::header::HeaderName;

use crate::config::IdentityHeaders;

/// The identity header names of the configuration, parsed once (an empty name: the header is not sent).
#[derive(Clone, Debug)]
pub struct IdentityHeaderNames {
    pub(crate) user_id: Option<HeaderName>,
    pub(crate) user_name: Option<HeaderName>,
    pub(crate) user_email: Option<HeaderName>,
    pub(crate) client_id: Option<HeaderName>,
    pub(crate) scopes: Option<HeaderName>,
}

impl IdentityHeaderNames {
    /// Parses the configured names. The configuration has already refused invalid ones; an empty name parses
    /// to `None`, "do not send".
    pub fn new(names: &IdentityHeaders) -> Self {
        let parse = |n: &str| HeaderName::from_bytes(n.as_bytes()).ok();
        IdentityHeaderNames {
            user_id: parse(&names.user_id),
            user_name: parse(&names.user_name),
            user_email: parse(&names.user_email),
            client_id: parse(&names.client_id),
            scopes: parse(&names.scopes),
        }
    }
}
