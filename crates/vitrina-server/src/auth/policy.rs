//! Which key a route needs and which role serves it: the tables that both the request guard
//! and the OpenAPI document read, so what is enforced and what is published cannot drift
//! apart.

use axum::http::Method;
use vitrina_core::{keys::Scope, roles::Role};

/// What a request to a route needs once keys exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Open to anyone: `/health`, the docs, the spec, the console's files (and `/metrics` when
    /// configured).
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
        "/health" | "/openapi.json" | "/api/health/live" | "/api/health/ready" => Access::Public,
        r if r == "/docs" || r.starts_with("/docs/") => Access::Public,
        // The console's files: the pages, not the data (which they fetch with the signed-in key).
        "/" | "/console" => Access::Public,
        r if r.starts_with("/console/") => Access::Public,
        "/metrics" if public_metrics => Access::Public,
        "/metrics" => Access::Needs(Scope::Read),
        "/api/v1/activity/track" | "/api/v1/activity/track/batch" => Access::Needs(Scope::Track),
        r if r.starts_with("/api/v1/") && r.ends_with("/health") => Access::Needs(Scope::Read),
        r if r.starts_with("/api/v1/recommendations/") => Access::Needs(Scope::Read),
        "/api/v1/catalog/products" | "/api/v1/catalog/products/{productId}" if method == Method::GET => {
            Access::Needs(Scope::Read)
        }
        r if gorse_route(r) => gorse_access(method, r),
        _ => Access::Needs(Scope::Admin),
    }
}

/// A route of the Gorse-compatible API (`/api/…` but not `/api/v1/…`).
fn gorse_route(route: &str) -> bool {
    route.starts_with("/api/") && !route.starts_with("/api/v1/")
}

/// Gorse's routes need what their `/api/v1` counterparts need: feedback writes `track`;
/// lists, item reads and one user's feedback `read` (as a visitor's history); everything
/// else (users, item writes, the whole feedback log) `admin`.
fn gorse_access(method: &Method, route: &str) -> Access {
    let lists = ["/api/recommend/", "/api/session/recommend", "/api/popular", "/api/latest"];
    let list =
        lists.iter().any(|l| route.starts_with(l)) || route.starts_with("/api/item/{itemId}/neighbors");
    let read = method == Method::GET
        && (route == "/api/items"
            || route == "/api/item/{itemId}"
            || route.starts_with("/api/feedback/{userId}/")
            || route.starts_with("/api/feedback/{feedbackType}/{userId}/")
            || route.starts_with("/api/user/{userId}/feedback"));
    if route == "/api/feedback" && (method == Method::POST || method == Method::PUT) {
        Access::Needs(Scope::Track)
    } else if list || read {
        Access::Needs(Scope::Read)
    } else {
        Access::Needs(Scope::Admin)
    }
}

/// The role that serves `method` on the route template `route`; `None`: every process
/// (health, docs, spec, metrics, keys, and paths no route matched).
pub fn role(method: &Method, route: &str) -> Option<Role> {
    let read = method == Method::GET || method == Method::HEAD;
    match route {
        "/health" | "/openapi.json" | "/metrics" => None,
        r if r == "/docs" || r.starts_with("/docs/") || r.starts_with("/api/v1/keys") => None,
        "/" | "/console" => None,
        r if r.starts_with("/console/") => None,
        r if r.starts_with("/api/v1/activity/") => Some(Role::Activity),
        r if r.starts_with("/api/v1/engine/") => Some(Role::Api),
        r if r.starts_with("/api/v1/recommendations/") => Some(Role::Api),
        r if r.starts_with("/api/v1/training/") => Some(Role::Training),
        // Writes to the catalogue and users go where events go; an erasure too.
        r if r.starts_with("/api/v1/catalog/") || r.starts_with("/api/v1/users") => {
            Some(if read { Role::Api } else { Role::Activity })
        }
        // Experiments are changed where training runs and read where lists are served.
        r if r.starts_with("/api/v1/experiments") => Some(if read { Role::Api } else { Role::Training }),
        // Gorse's API: writes where events go, reads and lists (with a list's write-back)
        // where lists are served.
        r if r.starts_with("/api/health/") => None,
        r if r.starts_with("/api/session/recommend") => Some(Role::Api),
        r if gorse_route(r) => Some(if read { Role::Api } else { Role::Activity }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_route_group_is_served_by_its_role() {
        let (get, post, delete) = (Method::GET, Method::POST, Method::DELETE);
        let cases: &[(&Method, &str, Option<Role>)] = &[
            (&get, "/health", None),
            (&get, "/metrics", None),
            (&get, "/docs/{*rest}", None),
            (&get, "/console/{*path}", None),
            (&post, "/api/v1/keys", None),
            (&delete, "/api/v1/keys/{keyId}", None),
            (&post, "/api/v1/activity/track", Some(Role::Activity)),
            (&post, "/api/v1/activity/track/batch", Some(Role::Activity)),
            (&get, "/api/v1/activity/health", Some(Role::Activity)),
            (&get, "/api/v1/engine/health", Some(Role::Api)),
            (&get, "/api/v1/engine/state", Some(Role::Api)),
            (&get, "/api/v1/recommendations/recommendations/{userId}", Some(Role::Api)),
            (&get, "/api/v1/recommendations/activity/{userId}", Some(Role::Api)),
            (&post, "/api/v1/recommendations/session", Some(Role::Api)),
            (&get, "/api/v1/catalog/products", Some(Role::Api)),
            (&post, "/api/v1/catalog/products/bulk", Some(Role::Activity)),
            (&Method::PATCH, "/api/v1/catalog/products/{productId}", Some(Role::Activity)),
            (&get, "/api/v1/catalog/products/{productId}/exposure", Some(Role::Api)),
            (&get, "/api/v1/users/{userId}", Some(Role::Api)),
            (&delete, "/api/v1/users/{userId}", Some(Role::Activity)),
            (&get, "/api/v1/training/health", Some(Role::Training)),
            (&post, "/api/v1/training/train", Some(Role::Training)),
            (&get, "/api/v1/experiments/{id}/results", Some(Role::Api)),
            (&post, "/api/v1/experiments/{id}/start", Some(Role::Training)),
            (&get, "/api/health/ready", None),
            (&post, "/api/feedback", Some(Role::Activity)),
            (&Method::PUT, "/api/feedback", Some(Role::Activity)),
            (&get, "/api/feedback", Some(Role::Api)),
            (&post, "/api/item", Some(Role::Activity)),
            (&delete, "/api/user/{userId}", Some(Role::Activity)),
            (&delete, "/api/feedback/{userId}/{itemId}", Some(Role::Activity)),
            (&get, "/api/item/{itemId}/feedback", Some(Role::Api)),
            (&get, "/api/user/{userId}/neighbors", Some(Role::Api)),
            (&delete, "/api/feedback/{feedbackType}/{userId}/{itemId}", Some(Role::Activity)),
            (&get, "/api/recommend/{userId}/{category}", Some(Role::Api)),
            (&post, "/api/session/recommend/{category}", Some(Role::Api)),
            (&get, "/api/latest", Some(Role::Api)),
        ];
        for (method, route, want) in cases {
            assert_eq!(role(method, route), *want, "{method} {route}");
        }
    }

    #[test]
    fn each_route_group_needs_its_scope() {
        let get = Method::GET;
        let post = Method::POST;
        let cases: &[(&Method, &str, Access)] = &[
            (&get, "/health", Access::Public),
            (&get, "/openapi.json", Access::Public),
            (&get, "/docs/", Access::Public),
            (&get, "/docs/{*rest}", Access::Public),
            (&get, "/", Access::Public),
            (&get, "/console/", Access::Public),
            (&get, "/console/{*path}", Access::Public),
            (&get, "/metrics", Access::Needs(Scope::Read)),
            (&post, "/api/v1/activity/track", Access::Needs(Scope::Track)),
            (&post, "/api/v1/activity/track/batch", Access::Needs(Scope::Track)),
            (&get, "/api/v1/engine/health", Access::Needs(Scope::Read)),
            (&get, "/api/v1/engine/state", Access::Needs(Scope::Admin)),
            (&get, "/api/v1/recommendations/recommendations/{userId}", Access::Needs(Scope::Read)),
            (&post, "/api/v1/recommendations/session", Access::Needs(Scope::Read)),
            (&get, "/api/v1/recommendations/activity/{userId}", Access::Needs(Scope::Read)),
            (&get, "/api/v1/catalog/products", Access::Needs(Scope::Read)),
            (&get, "/api/v1/catalog/products/{productId}", Access::Needs(Scope::Read)),
            (&post, "/api/v1/catalog/products", Access::Needs(Scope::Admin)),
            (&Method::PATCH, "/api/v1/catalog/products/{productId}", Access::Needs(Scope::Admin)),
            (&get, "/api/v1/catalog/products/{productId}/exposure", Access::Needs(Scope::Admin)),
            (&get, "/api/v1/users/{userId}", Access::Needs(Scope::Admin)),
            (&Method::DELETE, "/api/v1/users/{userId}", Access::Needs(Scope::Admin)),
            (&post, "/api/v1/training/rollback", Access::Needs(Scope::Admin)),
            (&get, "/api/v1/training/status", Access::Needs(Scope::Admin)),
            (&get, "/api/v1/keys", Access::Needs(Scope::Admin)),
            (&get, "/api/v1/experiments", Access::Needs(Scope::Admin)),
            (&get, "/api/health/live", Access::Public),
            (&post, "/api/feedback", Access::Needs(Scope::Track)),
            (&Method::PUT, "/api/feedback", Access::Needs(Scope::Track)),
            (&get, "/api/feedback", Access::Needs(Scope::Admin)),
            (&get, "/api/feedback/{feedbackType}", Access::Needs(Scope::Admin)),
            (&get, "/api/feedback/{userId}/{itemId}", Access::Needs(Scope::Read)),
            (&get, "/api/feedback/{feedbackType}/{userId}/{itemId}", Access::Needs(Scope::Read)),
            (&Method::DELETE, "/api/feedback/{userId}/{itemId}", Access::Needs(Scope::Admin)),
            (&get, "/api/item/{itemId}/feedback/{feedbackType}", Access::Needs(Scope::Admin)),
            (&get, "/api/user/{userId}/neighbors", Access::Needs(Scope::Admin)),
            (&Method::DELETE, "/api/feedback/{feedbackType}/{userId}/{itemId}", Access::Needs(Scope::Admin)),
            (&get, "/api/user/{userId}/feedback/{feedbackType}", Access::Needs(Scope::Read)),
            (&get, "/api/recommend/{userId}/", Access::Needs(Scope::Read)),
            (&post, "/api/session/recommend", Access::Needs(Scope::Read)),
            (&get, "/api/item/{itemId}/neighbors/{category}", Access::Needs(Scope::Read)),
            (&get, "/api/items", Access::Needs(Scope::Read)),
            (&get, "/api/item/{itemId}", Access::Needs(Scope::Read)),
            (&post, "/api/item", Access::Needs(Scope::Admin)),
            (&get, "/api/user/{userId}", Access::Needs(Scope::Admin)),
            (&get, "/api/users", Access::Needs(Scope::Admin)),
            (&get, "/api/item/{itemId}/feedback", Access::Needs(Scope::Admin)),
        ];
        for (method, route, want) in cases {
            assert_eq!(access(method, Some(route), false), *want, "{method} {route}");
        }
        assert_eq!(access(&get, Some("/metrics"), true), Access::Public);
        assert_eq!(access(&get, None, false), Access::AnyKey);
    }
}
