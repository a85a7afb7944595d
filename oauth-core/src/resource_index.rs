//! The configured resources, parsed once, and where a forwarded request falls among them.
//!
//! `AuthServer` builds this index at start and holds it; the gate (`flow::gate`) and `/verify`'s challenge
//! (`flow::verify`, the RFC 9728 metadata URL) read it. It sits below the server and knows nothing of either, so
//! the dependency runs one way: the endpoints decide what a location means (a refusal, a 401's metadata URL).

use crate::config::ResourceConfig;
use crate::forwarded::SiteOrigin;

const AUTHORIZATION_SERVER_METADATA: &str = "/.well-known/oauth-authorization-server";
const PROTECTED_RESOURCE_METADATA: &str = "/.well-known/oauth-protected-resource";

/// A configured resource's origin and path, parsed once, and its allowed origins.
pub(crate) struct ResourceLocation {
    /// `None` if the configured URL does not parse: it then contains nothing.
    https: bool,
    host: String,
    port: u16,
    /// The path without a trailing `/` (empty for an origin).
    base: String,
    /// `/.well-known/oauth-protected-resource` + `base`.
    metadata_path: String,
    /// Its RFC 9728 metadata URL, for the challenge of every 401.
    metadata_url: String,
    /// The configured URL, to find a location from a [`ResourceConfig`].
    resource: String,
    allowed_origins: Vec<(bool, String, u16)>,
    parsed: bool,
}

impl ResourceLocation {
    fn new(r: &ResourceConfig) -> Self {
        let parsed = url::Url::parse(&r.resource).ok();
        let origin = parsed.as_ref().and_then(|u| {
            Some((
                u.scheme() == "https",
                u.host_str()?.to_owned(),
                u.port_or_known_default()?,
            ))
        });
        let base = parsed
            .as_ref()
            .map_or_else(String::new, |u| u.path().trim_end_matches('/').to_owned());
        let (https, host, port) = origin.clone().unwrap_or((false, String::new(), 0));
        ResourceLocation {
            parsed: origin.is_some(),
            https,
            host,
            port,
            metadata_path: format!("{PROTECTED_RESOURCE_METADATA}{base}"),
            base,
            metadata_url: r.metadata_url(),
            resource: r.resource.clone(),
            allowed_origins: r
                .allowed_origins
                .iter()
                .filter_map(|o| SiteOrigin::parse(o))
                .map(|o| (o.https, o.host.to_ascii_lowercase(), o.port))
                .collect(),
        }
    }

    fn origin(&self) -> SiteOrigin<'_> {
        SiteOrigin {
            https: self.https,
            host: &self.host,
            port: self.port,
        }
    }

    fn on(&self, origin: &SiteOrigin<'_>) -> bool {
        self.parsed && self.origin() == *origin
    }

    /// Whether `path` is this resource's path or below it, on a segment boundary; `fold` ignores ASCII case.
    fn contains(&self, path: &str, fold: bool) -> bool {
        if self.base.is_empty() {
            return true;
        }
        let Some(head) = path.get(..self.base.len()) else {
            return false;
        };
        let same = if fold {
            head.eq_ignore_ascii_case(&self.base)
        } else {
            head == self.base
        };
        same && path
            .get(self.base.len()..)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }

    pub(crate) fn allows_origin(&self, o: &SiteOrigin<'_>) -> bool {
        *o == self.origin()
            || self.allowed_origins.iter().any(|(https, host, port)| {
                *o == SiteOrigin {
                    https: *https,
                    host,
                    port: *port,
                }
            })
    }
}

/// Where a request falls: the position of its resource, or why there is none.
pub(crate) enum Located {
    Resource(usize),
    Ambiguous,
    Nowhere,
}

/// The configured resources, parsed once. A protected host has a handful of resources, so locating a request
/// is a scan that compares strings: no URL parsing, no allocation, no memo to bound.
pub(crate) struct ResourceIndex {
    pub(crate) locations: Vec<ResourceLocation>,
}

impl ResourceIndex {
    pub(crate) fn new(resources: &[ResourceConfig]) -> Self {
        ResourceIndex {
            locations: resources.iter().map(ResourceLocation::new).collect(),
        }
    }

    /// `resource`'s metadata URL: computed once for the configured resources, on the spot for any other.
    pub(crate) fn metadata_url(&self, resource: &ResourceConfig) -> String {
        self.locations
            .iter()
            .find(|at| at.resource == resource.resource)
            .map_or_else(|| resource.metadata_url(), |at| at.metadata_url.clone())
    }

    /// The longest resource on `origin` whose path contains `path` as sent; ambiguous when one would match
    /// only if letter case were ignored.
    pub(crate) fn locate(&self, origin: &SiteOrigin<'_>, path: &str) -> Located {
        let on_origin = || {
            self.locations
                .iter()
                .enumerate()
                .filter(|(_, at)| at.on(origin))
        };
        let exact = on_origin()
            .filter(|(_, at)| at.contains(path, false))
            .max_by_key(|(_, at)| at.base.len());
        let folded = on_origin()
            .filter(|(_, at)| at.contains(path, true))
            .map(|(_, at)| at.base.len())
            .max();
        match (exact, folded) {
            (Some((i, at)), Some(len)) if len == at.base.len() => Located::Resource(i),
            (None, None) => Located::Nowhere,
            _ => Located::Ambiguous,
        }
    }

    /// Whether `path` is a discovery document the service serves for a resource on `origin`.
    pub(crate) fn is_discovery(&self, origin: &SiteOrigin<'_>, path: &str) -> bool {
        path == AUTHORIZATION_SERVER_METADATA
            || self
                .locations
                .iter()
                .any(|at| at.on(origin) && at.metadata_path == path)
    }
}
