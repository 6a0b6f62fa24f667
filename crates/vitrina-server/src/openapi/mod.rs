//! The published OpenAPI document: what the handlers declare (`routes::ApiDoc`), completed
//! here with what holds for every route, so that generated clients and fuzzers can trust it:
//! unique operation ids, query parameters in the query, id patterns, the security schemes
//! and each route's scope (from [`crate::auth::policy`], the table the guard enforces), and
//! every error status the server can answer; [`constraints`] adds the bounds of every field.

pub mod constraints;
pub mod examples;
mod gorse;

use std::collections::BTreeMap;

use axum::http::Method;
use utoipa::{
    openapi::{
        path::Operation,
        response::Response,
        schema::{ObjectBuilder, Type},
        security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityRequirement, SecurityScheme},
        Content, Ref, RefOr,
    },
    OpenApi,
};

use crate::{
    auth::policy::{access, Access},
    routes::ApiDoc,
    state::Limits,
};

/// The security schemes: a key in `Authorization: Bearer` or in `X-API-Key`.
const BEARER: &str = "bearerAuth";
const HEADER: &str = "apiKeyHeader";

/// The error answers every route may give, by status: component name and description.
const ERRORS: &[(&str, &str, &str)] = &[
    ("400", "BadRequest", "The request is invalid: `validation_failed` (with the fields in `details.errors`) or `invalid_json`."),
    ("401", "Unauthorized", "`unauthorized`: no API key, or one that is unknown or revoked (once keys exist)."),
    ("403", "Forbidden", "`forbidden`: the key's scope does not cover this route, or a cross-site write."),
    ("404", "NotFound", "`not_found`: no such resource."),
    ("409", "Conflict", "`conflict`: the request contradicts what is stored."),
    ("413", "PayloadTooLarge", "`payload_too_large`: the body is over the configured limit."),
    ("414", "UriTooLong", "`uri_too_long`: the path and query are over 8 KiB."),
    ("415", "UnsupportedMediaType", "`unsupported_media_type`: a body that is not `application/json`."),
    ("421", "MisdirectedRequest", "`wrong_role`: this process does not play the role that serves the route (`details.servedBy` names it); send it to one that does."),
    ("429", "TooManyRequests", "`rate_limited`: over the rate limit of the client address or key; see `Retry-After`."),
    ("500", "InternalError", "`internal_error`: never expected; the cause is in the server log."),
    ("503", "Unavailable", "`unavailable`: the store is shutting down or unreachable."),
];

fn methods(item: &mut utoipa::openapi::PathItem) -> Vec<(Method, &mut Operation)> {
    let mut out = Vec::new();
    for (m, op) in [
        (Method::GET, &mut item.get),
        (Method::POST, &mut item.post),
        (Method::PUT, &mut item.put),
        (Method::PATCH, &mut item.patch),
        (Method::DELETE, &mut item.delete),
    ] {
        if let Some(op) = op.as_mut() {
            out.push((m, op));
        }
    }
    out
}

fn error_response(description: &str) -> Response {
    let mut r = Response::new(description);
    r.content.insert(
        "application/json".into(),
        Content::new(Some(RefOr::Ref(Ref::from_schema_name("ErrorBody")))),
    );
    r
}

/// The complete document served at `/openapi.json`, with the configured limits.
pub fn spec(limits: &Limits, gorse: &crate::gorse::model::FeedbackTypes) -> serde_json::Value {
    let mut doc = ApiDoc::openapi();
    let components = doc.components.get_or_insert_with(Default::default);
    components
        .security_schemes
        .insert(BEARER.into(), SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    components
        .security_schemes
        .insert(HEADER.into(), SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))));
    for (_, name, description) in ERRORS {
        let mut response = error_response(description);
        if *name == "TooManyRequests" {
            let seconds = ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)).build();
            let mut header = utoipa::openapi::header::Header::new(seconds);
            header.description = Some("Seconds to wait before the next request.".into());
            response.headers.insert("Retry-After".into(), header);
        }
        components.responses.insert((*name).into(), RefOr::T(response));
    }

    let mut ids: BTreeMap<String, usize> = BTreeMap::new();
    for (path, item) in doc.paths.paths.iter_mut() {
        for (method, op) in methods(item) {
            complete(path, &method, op);
            *ids.entry(op.operation_id.clone().unwrap_or_default()).or_default() += 1;
        }
    }
    debug_assert!(ids.values().all(|n| *n == 1), "operation ids repeat: {ids:?}");
    let mut json = serde_json::to_value(&doc).expect("the document serialises");
    constraints::apply(&mut json, limits, gorse);
    examples::apply(&mut json);
    json
}

/// Adds to one operation what holds for every route.
fn complete(path: &str, method: &Method, op: &mut Operation) {
    let tag = op.tags.as_ref().and_then(|t| t.first()).cloned().unwrap_or_default();
    let name = op.operation_id.clone().unwrap_or_default();
    op.operation_id = Some(if name == tag || name.starts_with(&format!("{tag}_")) {
        name
    } else {
        format!("{tag}_{name}")
    });

    let has_input = op.request_body.is_some() || op.parameters.as_ref().is_some_and(|p| !p.is_empty());

    let writes = *method != Method::GET;
    let needs = access(method, Some(path), false);
    let mut statuses = vec!["414", "429", "500", "503"];
    if has_input {
        statuses.push("400");
    }
    if path.contains('{') {
        statuses.push("404");
    }
    if writes {
        statuses.extend(["403", "409", "413", "415"]);
    }
    if crate::auth::policy::role(method, path).is_some() {
        statuses.push("421");
    }
    match needs {
        Access::Public => op.security = Some(vec![SecurityRequirement::default()]),
        Access::AnyKey | Access::Needs(_) => {
            statuses.extend(["401", "403"]);
            op.security = Some(vec![
                SecurityRequirement::new(BEARER, Vec::<String>::new()),
                SecurityRequirement::new(HEADER, Vec::<String>::new()),
            ]);
            if let Access::Needs(scope) = needs {
                let note = format!("\n\nNeeds an API key with scope `{scope}` (or `admin`) once keys exist.");
                let description = op.description.get_or_insert_with(String::new);
                if !description.contains("Needs an API key") {
                    description.push_str(&note);
                }
            }
        }
    }
    for status in statuses {
        let (_, name, _) = ERRORS.iter().find(|(s, _, _)| *s == status).expect("a declared error status");
        op.responses
            .responses
            .entry(status.into())
            .or_insert_with(|| RefOr::Ref(Ref::from_response_name(*name)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_ids_are_unique_and_query_parameters_are_in_the_query() {
        let doc = spec(&Limits::default(), &Default::default());
        let mut ids = std::collections::HashSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let id = op["operationId"].as_str().unwrap().to_string();
                assert!(ids.insert(id.clone()), "{id} repeats");
                for p in op["parameters"].as_array().into_iter().flatten() {
                    let name = p["name"].as_str().unwrap();
                    let want = match () {
                        _ if path.contains(&format!("{{{name}}}")) => "path",
                        _ if name.starts_with("X-") => "header",
                        _ => "query",
                    };
                    assert_eq!(p["in"], want, "{method} {path} {name}");
                }
                let responses = op["responses"].as_object().unwrap();
                for status in ["429", "500"] {
                    assert!(responses.contains_key(status), "{method} {path} lacks {status}");
                }
                if method != "get" {
                    assert!(responses.contains_key("415"), "{method} {path} lacks 415");
                }
            }
        }
        let list = &doc["paths"]["/api/v1/recommendations/recommendations/{userId}"]["get"];
        assert_eq!(list["security"][0]["bearerAuth"], serde_json::json!([]), "{list}");
        assert!(list["responses"]["401"].is_object() && list["responses"]["403"].is_object());
        let user = list["parameters"].as_array().unwrap().iter().find(|p| p["name"] == "userId").unwrap();
        assert_eq!(user["schema"]["pattern"], constraints::ID_PATTERN);
        let force = &doc["paths"]["/api/v1/training/models/{version}/activate"]["post"]["parameters"][1];
        assert_eq!(
            (force["name"].as_str(), force["required"].as_bool()),
            (Some("force"), Some(false)),
            "{force}"
        );
        let limit = list["parameters"].as_array().unwrap().iter().find(|p| p["name"] == "limit").unwrap();
        assert_eq!(
            (limit["schema"]["minimum"].as_i64(), limit["schema"]["maximum"].as_i64()),
            (Some(1), Some(100))
        );
        assert_eq!(doc["components"]["schemas"]["TrackRequest"]["oneOf"].as_array().unwrap().len(), 3);
        let health = &doc["paths"]["/health"]["get"];
        assert_eq!(health["security"], serde_json::json!([{}]), "{health}");
        assert!(health["responses"].get("401").is_none());
        assert_eq!(doc["components"]["securitySchemes"]["apiKeyHeader"]["name"], "X-API-Key");
    }
}
