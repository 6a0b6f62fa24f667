//! Who may call what: API keys with scopes ([`keys`]), the route table ([`policy`]), rate
//! limits ([`limits`]) and the request guard that applies them together with the transport
//! rules (JSON bodies only, no cross-site writes).
//!
//! Invariant: until the first key is created every route is open (the demo on 127.0.0.1);
//! from then on every route but `/health`, the docs, the spec and the console's files needs a
//! key whose scope grants it, even after every key is revoked.

pub mod keys;
pub mod limits;
pub mod policy;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    extract::{ConnectInfo, MatchedPath, Request, State},
    http::{header, HeaderMap, HeaderValue, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{error::ApiError, state::AppState};
pub use keys::{Caller, Keys};
pub use limits::{Limiter, RateLimits};
use policy::Access;

/// The `[auth]` section.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Serve `/metrics` without a key (otherwise it needs a `read` key once keys exist).
    pub public_metrics: bool,
    /// Origins (`https://shop.example`) allowed to call the API from a browser (CORS); empty:
    /// none, and cross-site writes are refused.
    pub cors_origins: Vec<String>,
    /// Set by `serve --insecure-no-auth`: without keys, answer requests addressed to any host
    /// (otherwise a keyless server answers only requests addressed to localhost).
    #[serde(skip)]
    pub open_to_any_host: bool,
}

/// The guard's parts, shared by every request.
pub struct Auth {
    pub keys: Keys,
    pub limiter: Limiter,
    pub config: AuthConfig,
}

/// Header carrying a key, besides `Authorization: Bearer`.
pub const API_KEY_HEADER: &str = "x-api-key";

/// The key a request presents, from `Authorization: Bearer …` or `X-API-Key`.
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    bearer.or_else(|| headers.get(API_KEY_HEADER).and_then(|v| v.to_str().ok()).map(str::trim))
}

fn unauthorized(message: &str) -> Response {
    let mut r = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
    r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

fn too_many(wait: Duration, what: &str) -> Response {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let seconds = seconds.max(1);
    let mut r = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("too many requests {what}; retry in {seconds} s"),
    )
    .with_details(json!({ "retryAfterSeconds": seconds }))
    .into_response();
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    r
}

/// Whether a request's `Origin` is this server itself or an allowed origin.
fn origin_allowed(headers: &HeaderMap, host: Option<&str>, config: &AuthConfig) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else { return true };
    if config.cors_origins.iter().any(|o| o == origin) {
        return true;
    }
    let authority = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    host.is_some_and(|host| host.eq_ignore_ascii_case(authority))
}

/// The host the request was sent to: `Host`, or the URI's authority (HTTP/2 has no `Host`).
fn request_host(req: &Request) -> Option<String> {
    req.headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
}

/// Whether `host` (`name[:port]`) names this machine's loopback.
fn loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(n, _)| n),
    };
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A write must carry JSON if it carries anything: a form or `text/plain` body (what a
/// cross-site page can send without asking) is refused before any handler runs.
fn content_type_ok(headers: &HeaderMap, empty: bool) -> bool {
    // No body, nothing to type (whatever a client library puts in the header: axios sends
    // a form type with a bodiless PUT). Cross-site writes are refused by their origin.
    if empty {
        return true;
    }
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

/// The request guard: transport rules, then the address's rate limit, then the key and its
/// scope, then the key's rate limit.
pub async fn guard(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let auth = &s.auth;
    let host = request_host(&req);
    let headers = req.headers();
    let method = req.method().clone();
    if !auth.keys.enforced()
        && !auth.config.open_to_any_host
        && host.as_deref().is_some_and(|h| !loopback_host(h))
    {
        // Without keys the server is open: only to requests addressed to localhost, so a
        // page that rebinds its own name to 127.0.0.1 (DNS rebinding) gets nothing.
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this server has no API key yet and answers only requests addressed to localhost; create a key first",
        )
        .into_response();
    }
    if !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS) {
        if !origin_allowed(headers, host.as_deref(), &auth.config) {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "cross-site requests may not change anything; add the origin to [auth] cors_origins",
            )
            .into_response();
        }
        // Known to be empty: a length of 0 (HTTP/1.1 without a length or chunks has none).
        let empty = axum::body::HttpBody::size_hint(req.body()).exact() == Some(0);
        if !content_type_ok(headers, empty) {
            return ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "expected a body with content-type application/json",
            )
            .into_response();
        }
    }
    if let Some(ConnectInfo(addr)) = req.extensions().get::<ConnectInfo<SocketAddr>>() {
        if let Err(wait) = auth.limiter.check_address(addr.ip()) {
            return too_many(wait, "from this address");
        }
    }
    let route = req.extensions().get::<MatchedPath>().map(MatchedPath::as_str);
    if let Some(role) = route.and_then(|r| policy::role(&method, r)).filter(|r| !s.cluster.roles.has(*r)) {
        return ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            "wrong_role",
            format!(
                "{method} {} is served by a process with the '{role}' role; this one plays '{}'",
                route.unwrap_or_default(),
                s.cluster.roles
            ),
        )
        .with_details(json!({ "servedBy": role.as_str(), "roles": s.cluster.roles.to_string() }))
        .into_response();
    }
    if !auth.keys.enforced() {
        return next.run(req).await;
    }
    let needed = match policy::access(&method, route, auth.config.public_metrics) {
        Access::Public => return next.run(req).await,
        Access::AnyKey => None,
        Access::Needs(scope) => Some(scope),
    };
    let Some(secret) = presented_key(req.headers()) else {
        return unauthorized(
            "this endpoint needs an API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
        );
    };
    let Some(caller) = auth.keys.verify(secret) else {
        return unauthorized("the API key is not valid (unknown or revoked)");
    };
    if let Some(needed) = needed.filter(|n| !caller.scope.grants(*n)) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this endpoint needs a key with scope '{needed}'; this key has '{}'", caller.scope),
        )
        .with_details(json!({ "requiredScope": needed.as_str(), "keyScope": caller.scope.as_str() }))
        .into_response();
    }
    if let Err(wait) = auth.limiter.check_key(&caller.key_id, caller.scope) {
        return too_many(wait, "for this key");
    }
    let mut req = req;
    req.extensions_mut().insert(Arc::new(caller));
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn keys_come_from_bearer_or_x_api_key() {
        assert_eq!(presented_key(&headers(&[("authorization", "Bearer vk_1")])), Some("vk_1"));
        assert_eq!(presented_key(&headers(&[("authorization", "bearer  vk_1 ")])), Some("vk_1"));
        assert_eq!(presented_key(&headers(&[("x-api-key", "vk_2")])), Some("vk_2"));
        assert_eq!(presented_key(&headers(&[("authorization", "Basic abc")])), None);
        assert_eq!(presented_key(&headers(&[])), None);
    }

    #[test]
    fn only_json_or_nothing_may_be_sent_and_only_from_allowed_origins() {
        assert!(content_type_ok(&headers(&[("content-type", "application/json; charset=utf-8")]), false));
        assert!(content_type_ok(&headers(&[]), true));
        assert!(!content_type_ok(&headers(&[]), false), "a body of unknown type");
        assert!(!content_type_ok(&headers(&[("content-type", "text/plain")]), false));
        let form = ("content-type", "application/x-www-form-urlencoded");
        assert!(!content_type_ok(&headers(&[form]), false));
        assert!(content_type_ok(&headers(&[form]), true), "no body: nothing to type");

        let config = AuthConfig { cors_origins: vec!["https://shop.example".into()], ..Default::default() };
        let host = Some("127.0.0.1:8080");
        assert!(origin_allowed(&headers(&[]), host, &config));
        assert!(origin_allowed(&headers(&[("origin", "https://shop.example")]), host, &config));
        assert!(origin_allowed(&headers(&[("origin", "http://127.0.0.1:8080")]), host, &config));
        assert!(!origin_allowed(&headers(&[("origin", "https://evil.example")]), host, &config));
        assert!(!origin_allowed(&headers(&[("origin", "null")]), None, &AuthConfig::default()));

        for h in ["localhost", "localhost:8080", "127.0.0.1:8080", "127.9.9.9", "[::1]:8080", "LOCALHOST"] {
            assert!(loopback_host(h), "{h}");
        }
        for h in [
            "evil.example",
            "evil.example:8080",
            "10.0.0.1:8080",
            "[2001:db8::1]:80",
            "localhost.evil.example",
        ] {
            assert!(!loopback_host(h), "{h}");
        }
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up() {
        let r = too_many(Duration::from_millis(1500), "x");
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
        assert_eq!(too_many(Duration::from_millis(3), "x").headers()[header::RETRY_AFTER], "1");
    }
}
