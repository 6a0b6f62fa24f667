//! API keys: create (the key is shown once), list, revoke. Needs an `admin` key once keys
//! exist; the first key may be created on an open server (the demo on 127.0.0.1), which
//! closes it.

use axum::{extract::State, http::StatusCode, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vitrina_core::{catalog::check_text, keys::ApiKey, keys::Scope, time::format_ts, ValidationError};

use crate::{
    error::{ApiError, ApiResult, ErrorBody},
    extract::{ApiJson, ApiPath},
    state::AppState,
};

/// A key as listed: never the key itself.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyDto {
    #[schema(example = "key_3f9a1c2b4d5e")]
    pub id: String,
    pub name: Option<String>,
    /// `track`, `read` or `admin`.
    #[schema(example = "read")]
    pub scope: String,
    /// The key's first characters, to recognise it.
    #[schema(example = "vk_3f9a1c2b")]
    pub prefix: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
    pub active: bool,
}

impl From<&ApiKey> for KeyDto {
    fn from(k: &ApiKey) -> Self {
        Self {
            id: k.id.clone(),
            name: k.name.clone(),
            scope: k.scope.as_str().into(),
            prefix: k.prefix.clone(),
            created_at: format_ts(k.created_at),
            revoked_at: k.revoked_at.map(format_ts),
            active: k.active(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateKey {
    /// `track` (activity endpoints), `read` (lists, history, stats, catalogue reads) or
    /// `admin` (everything).
    #[schema(example = "read")]
    pub scope: String,
    /// A label for people (≤ 200 characters).
    #[schema(example = "storefront")]
    pub name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedKey {
    pub success: bool,
    /// The key. It is shown this once: only its hash is stored.
    #[schema(example = "vk_3f9a1c2b…")]
    pub key: String,
    pub api_key: KeyDto,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyList {
    pub success: bool,
    pub keys: Vec<KeyDto>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevokedKey {
    pub success: bool,
    pub api_key: KeyDto,
}

/// Creates a key. The answer holds the key itself, which is never shown again.
#[utoipa::path(post, path = "/api/v1/keys", tag = "keys", request_body = CreateKey,
    responses((status = 201, body = CreatedKey), (status = 400, body = ErrorBody)))]
pub async fn create(
    State(s): State<AppState>,
    ApiJson(input): ApiJson<CreateKey>,
) -> ApiResult<(StatusCode, Json<CreatedKey>)> {
    let scope = Scope::parse(&input.scope)
        .ok_or_else(|| ValidationError::new("scope", "must be one of track, read, admin"))?;
    let name = input.name.as_deref().map(|n| check_text("name", n)).transpose()?;
    let key = s.auth.keys.create(scope, name).await?;
    tracing::info!(key_id = %key.record.id, scope = %scope, "api key created");
    s.cluster.tell(vitrina_core::changes::Change::Keys);
    Ok((
        StatusCode::CREATED,
        Json(CreatedKey { success: true, key: key.secret, api_key: KeyDto::from(&key.record) }),
    ))
}

/// Lists every key, revoked ones included (never the keys themselves).
#[utoipa::path(get, path = "/api/v1/keys", tag = "keys", responses((status = 200, body = KeyList)))]
pub async fn list(State(s): State<AppState>) -> ApiResult<Json<KeyList>> {
    let keys = s.auth.keys.list().await?;
    Ok(Json(KeyList { success: true, keys: keys.iter().map(KeyDto::from).collect() }))
}

/// Revokes a key: from this request on it is refused. Revoking twice is harmless.
#[utoipa::path(delete, path = "/api/v1/keys/{keyId}", tag = "keys", params(("keyId" = String, Path)),
    responses((status = 200, body = RevokedKey), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn revoke(
    State(s): State<AppState>,
    caller: Option<axum::Extension<std::sync::Arc<crate::auth::Caller>>>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<RevokedKey>> {
    if caller.is_some_and(|c| c.key_id == id) {
        return Err(ApiError::conflict(
            "a key cannot revoke itself: use another admin key, or `vitrina keys revoke` on the stopped server's data directory",
        ));
    }
    if !s.auth.keys.revoke(&id).await? {
        return Err(ApiError::not_found(format!("api key {id} not found")));
    }
    tracing::info!(key_id = %id, "api key revoked");
    s.cluster.tell(vitrina_core::changes::Change::Keys);
    let keys = s.auth.keys.list().await?;
    let key = keys
        .iter()
        .find(|k| k.id == id)
        .ok_or_else(|| ApiError::not_found(format!("api key {id} not found")))?;
    Ok(Json(RevokedKey { success: true, api_key: KeyDto::from(key) }))
}
