//! Health: the whole system and each service.

use axum::{extract::State, http::StatusCode, Json};
use serde::Serialize;
use utoipa::ToSchema;

use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    pub success: bool,
    /// `healthy` or `unhealthy`.
    pub status: String,
    /// `Recommendation System is healthy` when everything is up.
    pub message: String,
    pub uptime_seconds: u64,
    pub checks: Vec<Check>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    pub service: String,
    pub healthy: bool,
    pub detail: String,
}

async fn check(s: &AppState, service: &str) -> Check {
    let (healthy, detail) = match service {
        "activity" => match (s.ports.log.health(), s.ports.log.stats().await) {
            (Err(why), _) => (false, why),
            (Ok(()), Ok(st)) => (true, format!("event log at sequence {}", st.max_seq)),
            (Ok(()), Err(e)) => (false, format!("event log unreachable: {e}")),
        },
        "engine" => engine_check(s).await,
        "recommendations" => {
            match (s.ports.impressions.health(), s.ports.catalog.products(Default::default()).await) {
                (Err(why), _) => (false, why),
                (Ok(()), Ok((_, n))) => (true, format!("{n} products in the catalogue")),
                (Ok(()), Err(e)) => (false, format!("catalogue unreachable: {e}")),
            }
        }
        _ => match s.training.health() {
            Ok(detail) => (true, detail),
            Err(why) => (false, why),
        },
    };
    Check { service: service.into(), healthy, detail }
}

/// The engine serves the registry's active model; with events to learn from and no model,
/// lists come from live popularity alone, which is not healthy either.
async fn engine_check(s: &AppState) -> (bool, String) {
    if let Err(why) = s.follower.health() {
        return (false, why);
    }
    let serving = s.engine.model();
    let st = s.engine.stats();
    let online = format!(
        "{} products, {} visitors online, the event log applied up to sequence {}",
        st.products,
        st.visitors,
        s.follower.applied()
    );
    let models = match s.ports.registry.models().await {
        Ok(m) => m,
        Err(e) => return (false, format!("model registry unreachable: {e}")),
    };
    let active = models.iter().find(|m| m.status == vitrina_core::ports::ModelStatus::Active);
    match active {
        Some(m) if m.version == serving.version => (true, format!("model {} over {online}", m.version)),
        Some(m) => (
            false,
            format!(
                "the active model {} is not loaded (serving {}); see the log",
                m.version, serving.version
            ),
        ),
        None => match s.ports.log.stats().await {
            Ok(st) if st.events > 0 => (
                false,
                format!(
                    "no model trained yet for {} events: lists come from live popularity alone; train one",
                    st.events
                ),
            ),
            Ok(_) => (true, format!("no events to learn from yet; {online}")),
            Err(e) => (false, format!("event log unreachable: {e}")),
        },
    }
}

fn answer(checks: Vec<Check>, up: &str, down: &str, s: &AppState) -> (StatusCode, Json<Health>) {
    let healthy = checks.iter().all(|c| c.healthy);
    let status = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (
        status,
        Json(Health {
            success: healthy,
            status: if healthy { "healthy" } else { "unhealthy" }.into(),
            message: if healthy { up } else { down }.into(),
            uptime_seconds: s.started.elapsed().as_secs(),
            checks,
        }),
    )
}

/// Whole-system health: 200 with `Recommendation System is healthy`, or 503. A process
/// that plays only some roles checks the services of those roles.
#[utoipa::path(get, path = "/health", tag = "health",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn health(State(s): State<AppState>) -> (StatusCode, Json<Health>) {
    let mut checks = Vec::new();
    for (service, route) in [
        ("activity", "/api/v1/activity/health"),
        ("engine", "/api/v1/engine/health"),
        ("recommendations", "/api/v1/recommendations/health"),
        ("training", "/api/v1/training/health"),
    ] {
        let role = crate::auth::policy::role(&axum::http::Method::GET, route);
        if role.is_none_or(|r| s.cluster.roles.has(r)) {
            checks.push(check(&s, service).await);
        }
    }
    answer(checks, "Recommendation System is healthy", "Recommendation System is unhealthy", &s)
}

macro_rules! service_health {
    ($fn:ident, $service:literal, $path:literal, $name:literal) => {
        #[doc = concat!("Health of the ", $service, " service.")]
        #[utoipa::path(get, path = $path, tag = "health",
                                    responses((status = 200, body = Health), (status = 503, body = Health)))]
        pub async fn $fn(State(s): State<AppState>) -> (StatusCode, Json<Health>) {
            let checks = vec![check(&s, $service).await];
            answer(checks, concat!($name, " is healthy"), concat!($name, " is unhealthy"), &s)
        }
    };
}

service_health!(activity, "activity", "/api/v1/activity/health", "Activity Service");
service_health!(engine, "engine", "/api/v1/engine/health", "Recommendation Engine");
service_health!(
    recommendations,
    "recommendations",
    "/api/v1/recommendations/health",
    "Recommendation Service"
);
service_health!(training, "training", "/api/v1/training/health", "Training Service");
