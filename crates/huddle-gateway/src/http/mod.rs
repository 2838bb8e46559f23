//! The HTTP front door: REST under `/api`, plus `/healthz`, `/readyz`,
//! `/metrics` and `/api/openapi.json`. One file per resource; every route is
//! registered through `utoipa-axum`, so the OpenAPI document is generated from
//! the same list that builds the router and cannot drift from it.

mod admin;
mod auth;
mod channels;
mod chat;
mod common_errors;
pub mod error;
pub(crate) mod extract;
mod me;
pub mod metrics;
mod ops;
mod users;
mod voice;
mod workspaces;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use huddle_domain::Domain;

use error::ApiError;

/// A source of extra Prometheus text (other front doors, the bus), appended to `/metrics`.
pub trait MetricsSource: Send + Sync + 'static {
    fn render(&self, out: &mut String);
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub domain: Arc<Domain>,
    pub metrics: Arc<metrics::HttpMetrics>,
    pub extra_metrics: Arc<Vec<Arc<dyn MetricsSource>>>,
    /// The comet front door (its hub answers subscriber counts).
    pub comet: Option<Arc<crate::comet::CometGateway>>,
}

/// HTTP limits.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Largest request body accepted, in bytes (default 64 KiB); larger is 413.
    pub max_body_bytes: usize,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "huddle", description = "Self-hosted real-time team communication server."),
    modifiers(&BearerAuth),
    components(schemas(error::ErrorEnvelope))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Every documented route, each registered together with its OpenAPI entry.
fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(auth::routes())
        .merge(me::routes())
        .merge(users::routes())
        .merge(workspaces::routes())
        .merge(channels::routes())
        .merge(voice::routes())
        .merge(chat::routes())
        .merge(crate::comet::api_routes())
        .merge(admin::routes())
        .merge(ops::routes())
}

/// Builds the router; `/api/openapi.json` serves the document of exactly these
/// routes. `socketio` (the Socket.IO server) serves `/socket.io/` on the same port.
pub fn router(
    state: AppState,
    limits: HttpLimits,
    socketio: Option<&crate::socketio::Realtime>,
) -> Router {
    let (router, mut api) = api_router().split_for_parts();
    common_errors::document(&mut api);
    let api = Arc::new(api);
    let router = router
        .route(
            "/api/openapi.json",
            axum::routing::get(move || {
                let api = api.clone();
                async move { axum::Json(api.as_ref().clone()) }
            }),
        )
        .fallback(|| async { ApiError::RouteNotFound })
        .layer(axum::middleware::map_response(envelope_for_bare_errors))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes));
    let router = match socketio {
        Some(rt) => router.merge(rt.router()),
        None => router,
    };
    router.with_state(state)
}

/// The OpenAPI document of [`router`].
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut api = api_router().split_for_parts().1;
    common_errors::document(&mut api);
    api
}

/// axum answers a wrong method with a bare 405; give it the envelope too.
async fn envelope_for_bare_errors(response: Response) -> Response {
    if response.status() == StatusCode::METHOD_NOT_ALLOWED
        && !response.headers().contains_key(header::CONTENT_TYPE)
    {
        let allow = response.headers().get(header::ALLOW).cloned();
        let mut r = ApiError::MethodNotAllowed.into_response();
        if let Some(allow) = allow {
            r.headers_mut().insert(header::ALLOW, allow);
        }
        return r;
    }
    response
}
