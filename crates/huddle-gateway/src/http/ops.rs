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
    render_hashing(&s.domain.hash_stats(), &mut out);
    for source in s.extra_metrics.iter() {
        source.render(&mut out);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

/// The password-hashing bound's gauges.
fn render_hashing(h: &huddle_domain::HashStats, out: &mut String) {
    use std::fmt::Write;
    out.push_str("# HELP huddle_password_hashes_in_flight Password hashes running now (bounded by auth.hash_concurrency).\n# TYPE huddle_password_hashes_in_flight gauge\n");
    let _ = writeln!(out, "huddle_password_hashes_in_flight {}", h.in_flight);
    out.push_str("# HELP huddle_password_hashes_in_flight_max The most password hashes that ran at once since start.\n# TYPE huddle_password_hashes_in_flight_max gauge\n");
    let _ = writeln!(out, "huddle_password_hashes_in_flight_max {}", h.peak);
    out.push_str("# HELP huddle_password_hashes_waiting Callers waiting to hash a password (bounded by auth.hash_queue).\n# TYPE huddle_password_hashes_waiting gauge\n");
    let _ = writeln!(out, "huddle_password_hashes_waiting {}", h.waiting);
    out.push_str("# HELP huddle_password_hash_concurrency The bound on password hashes running at once.\n# TYPE huddle_password_hash_concurrency gauge\n");
    let _ = writeln!(out, "huddle_password_hash_concurrency {}", h.concurrency);
}
