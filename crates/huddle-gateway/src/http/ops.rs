//! Operations endpoints: liveness, readiness, metrics.

use std::fmt::Write;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    status: &'static str,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, body = Health)))]
async fn healthz() -> axum::Json<Health> {
    axum::Json(Health { status: "ok" })
}

/// The database answers (503 otherwise).
#[utoipa::path(get, path = "/readyz", tag = "ops", responses((status = 200, body = Health), (status = 503, body = Health)))]
async fn readyz(State(s): State<AppState>) -> (StatusCode, axum::Json<Health>) {
    match s.domain.db().ping().await {
        Ok(()) => (StatusCode::OK, axum::Json(Health { status: "ok" })),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(Health {
                    status: "database unavailable",
                }),
            )
        }
    }
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, content_type = "text/plain", body = String)))]
async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    let mut out = String::with_capacity(4096);
    s.metrics.render(&mut out);
    let (size, idle, max) = s.domain.db().pool_stats();
    out.push_str("# HELP huddle_db_pool_connections Database pool connections by state.\n");
    out.push_str("# TYPE huddle_db_pool_connections gauge\n");
    let _ = writeln!(out, "huddle_db_pool_connections{{state=\"open\"}} {size}");
    let _ = writeln!(out, "huddle_db_pool_connections{{state=\"idle\"}} {idle}");
    let _ = writeln!(out, "huddle_db_pool_connections{{state=\"max\"}} {max}");
    for source in s.extra_metrics.iter() {
        source.render(&mut out);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
