//! Which key a route needs: the one table that both the request guard and the OpenAPI
//! document read, so what is enforced and what is published cannot drift apart.

use axum::http::Method;
use vitrina_core::keys::Scope;

/// What a request to a route needs once keys exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Open to anyone: `/health`, the docs and the spec (and `/metrics` when configured).
    Public,
    /// Any valid key: no route matched, and a key of any scope may learn that a path does
    /// not exist (without one, unknown paths reveal nothing).
    AnyKey,
    /// A key that grants this scope.
    Needs(Scope),
}

/// The access rule for `method` on the route template `route` (`None`: no route matched).
pub fn access(method: &Method, route: Option<&str>, public_metrics: bool) -> Access {
    let Some(route) = route else { return Access::AnyKey };
    match route {
        "/health" | "/openapi.json" => Access::Public,
        r if r == "/docs" || r.starts_with("/docs/") => Access::Public,
        "/metrics" if public_metrics => Access::Public,
        "/metrics" => Access::Needs(Scope::Read),
        "/api/v1/activity/track" | "/api/v1/activity/track/batch" => Access::Needs(Scope::Track),
        r if r.starts_with("/api/v1/") && r.ends_with("/health") => Access::Needs(Scope::Read),
        r if r.starts_with("/api/v1/recommendations/") => Access::Needs(Scope::Read),
        "/api/v1/catalog/products" | "/api/v1/catalog/products/{productId}" if method == Method::GET => {
            Access::Needs(Scope::Read)
        }
        _ => Access::Needs(Scope::Admin),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_route_group_needs_its_scope() {
        let get = Method::GET;
        let post = Method::POST;
        let cases: &[(&Method, &str, Access)] = &[
            (&get, "/health", Access::Public),
            (&get, "/openapi.json", Access::Public),
            (&get, "/docs/", Access::Public),
            (&get, "/docs/{*rest}", Access::Public),
            (&get, "/metrics", Access::Needs(Scope::Read)),
            (&post, "/api/v1/activity/track", Access::Needs(Scope::Track)),
            (&post, "/api/v1/activity/track/batch", Access::Needs(Scope::Track)),
            (&get, "/api/v1/engine/health", Access::Needs(Scope::Read)),
            (&get, "/api/v1/recommendations/recommendations/{userId}", Access::Needs(Scope::Read)),
            (&post, "/api/v1/recommendations/session", Access::Needs(Scope::Read)),
            (&get, "/api/v1/recommendations/activity/{userId}", Access::Needs(Scope::Read)),
            (&get, "/api/v1/catalog/products", Access::Needs(Scope::Read)),
            (&get, "/api/v1/catalog/products/{productId}", Access::Needs(Scope::Read)),
            (&post, "/api/v1/catalog/products", Access::Needs(Scope::Admin)),
            (&Method::PATCH, "/api/v1/catalog/products/{productId}", Access::Needs(Scope::Admin)),
            (&get, "/api/v1/users/{userId}", Access::Needs(Scope::Admin)),
            (&Method::DELETE, "/api/v1/users/{userId}", Access::Needs(Scope::Admin)),
            (&post, "/api/v1/training/rollback", Access::Needs(Scope::Admin)),
            (&get, "/api/v1/training/status", Access::Needs(Scope::Admin)),
            (&get, "/api/v1/keys", Access::Needs(Scope::Admin)),
            (&get, "/api/v1/experiments", Access::Needs(Scope::Admin)),
        ];
        for (method, route, want) in cases {
            assert_eq!(access(method, Some(route), false), *want, "{method} {route}");
        }
        assert_eq!(access(&get, Some("/metrics"), true), Access::Public);
        assert_eq!(access(&get, None, false), Access::AnyKey);
    }
}
