//! HTTP metrics in Prometheus text format: requests by route and status, and a
//! latency histogram per route. Keys are route *templates* (`/api/channels/{id}`),
//! so the maps are bounded by the number of routes; unknown paths count as
//! `unmatched`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::AppState;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
struct Inner {
    requests: BTreeMap<(String, String, u16), u64>,
    latency: BTreeMap<String, Histogram>,
}

/// Counters shared by every request. One std `Mutex`, held for a few map
/// operations and never across an `.await`.
#[derive(Default)]
pub struct HttpMetrics {
    inner: Mutex<Inner>,
}

impl HttpMetrics {
    fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *inner
            .requests
            .entry((method.to_owned(), route.to_owned(), status))
            .or_default() += 1;
        let h = inner.latency.entry(route.to_owned()).or_default();
        h.count += 1;
        h.sum += seconds;
        for (i, le) in BUCKETS.iter().enumerate() {
            if seconds <= *le {
                h.counts[i] += 1;
            }
        }
    }

    /// Appends the HTTP families to `out`.
    pub fn render(&self, out: &mut String) {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        out.push_str(
            "# HELP huddle_http_requests_total HTTP requests by method, route and status.\n",
        );
        out.push_str("# TYPE huddle_http_requests_total counter\n");
        for ((method, route, status), n) in &inner.requests {
            let _ = writeln!(out, "huddle_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}");
        }
        out.push_str(
            "# HELP huddle_http_request_duration_seconds HTTP request latency by route.\n",
        );
        out.push_str("# TYPE huddle_http_request_duration_seconds histogram\n");
        for (route, h) in &inner.latency {
            for (i, le) in BUCKETS.iter().enumerate() {
                let _ = writeln!(out, "huddle_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{le}\"}} {}", h.counts[i]);
            }
            let _ = writeln!(
                out,
                "huddle_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "huddle_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "huddle_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                h.count
            );
        }
    }
}

/// Middleware recording every request.
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(req).await;
    if response
        .extensions()
        .get::<super::error::DatabaseBusy>()
        .is_some()
    {
        state
            .domain
            .refusals()
            .count(huddle_core::Refusal::DatabaseBusy);
    }
    state.metrics.observe(
        &method,
        &route,
        response.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    response
}
