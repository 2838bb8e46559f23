//! Operations endpoints and the OpenAPI document.

use reqwest::{Method, StatusCode};

use crate::both_engines;
use crate::common::*;

both_engines!(health_ready_metrics, openapi_lists_every_route);

async fn health_ready_metrics(engine: Engine) {
    let app = spawn_app(engine).await;
    let r = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let r = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    app.signup("Ann").await;
    let _ = app.call(Method::GET, "/no/such/route", None, None).await;
    let text = app.metrics().await;
    for needle in [
        "huddle_http_requests_total{method=\"POST\",route=\"/api/auth/signup\",status=\"201\"} 1",
        "huddle_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"} 1",
        "huddle_http_request_duration_seconds_count{route=\"/api/auth/signup\"} 1",
        "huddle_db_pool_connections{state=\"max\"} 10",
        "huddle_bus_published_total 1",
        "huddle_bus_lost_total 0",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    app.stop().await;
}

/// Every route the server answers is in the document, and every documented
/// operation answers something other than "no such route".
async fn openapi_lists_every_route(engine: Engine) {
    let app = spawn_app(engine).await;
    let doc = app.call(Method::GET, "/api/openapi.json", None, None).await;
    assert_eq!(doc.status, StatusCode::OK);
    let paths = doc.body["paths"].as_object().expect("paths");
    let expected = [
        ("post", "/api/auth/signup"),
        ("post", "/api/auth/signin"),
        ("post", "/api/auth/refresh"),
        ("post", "/api/auth/signout"),
        ("get", "/api/me"),
        ("patch", "/api/me"),
        ("delete", "/api/me"),
        ("post", "/api/me/password"),
        ("post", "/api/me/app-settings"),
        ("get", "/api/users/{id}"),
        ("get", "/api/workspaces"),
        ("post", "/api/workspaces"),
        ("get", "/api/workspaces/{id}"),
        ("patch", "/api/workspaces/{id}"),
        ("delete", "/api/workspaces/{id}"),
        ("post", "/api/workspaces/{id}/invites"),
        ("post", "/api/join/{code}"),
        ("post", "/api/workspaces/{id}/leave"),
        ("get", "/api/workspaces/{id}/members"),
        ("delete", "/api/workspaces/{id}/members/{userId}"),
        ("patch", "/api/workspaces/{id}/members/{userId}"),
        ("get", "/api/workspaces/{id}/channels"),
        ("post", "/api/workspaces/{id}/channels"),
        ("get", "/api/channels/{id}"),
        ("patch", "/api/channels/{id}"),
        ("delete", "/api/channels/{id}"),
        ("get", "/api/channels/{id}/members"),
        ("post", "/api/channels/{id}/members"),
        ("delete", "/api/channels/{id}/members"),
        ("delete", "/api/channels/{id}/members/{userId}"),
        ("patch", "/api/channels/{id}/members/{userId}"),
        ("post", "/api/channels/{id}/select"),
        ("post", "/api/channels/{id}/unselect"),
        ("get", "/api/channels/{id}/active-users"),
        ("post", "/api/me/media-state"),
        ("post", "/api/me/online-status"),
        ("post", "/api/mute-for-all"),
        ("post", "/api/invites"),
        ("post", "/api/invites/{id}/response"),
        ("post", "/api/invites/{id}/cancel"),
        ("get", "/api/channels/{id}/chat"),
        ("post", "/api/channels/{id}/chat"),
        ("patch", "/api/channels/{id}/chats/{chatId}"),
        ("delete", "/api/channels/{id}/chats/{chatId}"),
        ("patch", "/api/channels/{id}/last-read"),
        ("get", "/api/channels/{id}/unread-chat"),
        ("post", "/api/comet/{devId}/pipes/{pipe}/messages"),
        ("get", "/api/comet/{devId}/pipes/{pipe}/messages"),
        ("delete", "/api/comet/{devId}/pipes/{pipe}/messages"),
        ("get", "/api/comet/{devId}/pipes/{pipe}"),
        ("put", "/api/comet/{devId}/pipes/{pipe}/settings"),
        ("get", "/api/comet/{devId}/pipes/{pipe}/settings"),
        ("delete", "/api/comet/{devId}/pipes/{pipe}/settings"),
        ("post", "/api/comet/{devId}/users/{userId}/messages"),
        ("get", "/api/comet/{devId}/users/{userId}/messages"),
        ("delete", "/api/comet/{devId}/users/{userId}/messages"),
        ("put", "/api/comet/{devId}/users/{userId}/auth"),
        ("get", "/api/comet/{devId}/users/{userId}/auth"),
        ("delete", "/api/comet/{devId}/users/{userId}/auth"),
        ("put", "/api/comet/{devId}/users/{userId}/data"),
        ("get", "/api/comet/{devId}/users/{userId}/data"),
        ("delete", "/api/comet/{devId}/users/{userId}/data"),
        ("get", "/api/comet/{devId}/users/{userId}/time"),
        ("post", "/api/comet/{devId}/revoked-tokens"),
        ("delete", "/api/comet/{devId}/revoked-tokens"),
        ("post", "/api/admin/users/{id}/activate"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
    ];
    for (method, path) in expected {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} is not documented"
        );
    }
    let documented: usize = paths
        .values()
        .map(|p| p.as_object().expect("ops").len())
        .sum();
    assert_eq!(
        documented,
        expected.len(),
        "a documented operation is missing from this test's list"
    );
    for (method, path) in expected {
        let concrete = path
            .replace("{id}", "00000000-0000-0000-0000-000000000000")
            .replace("{userId}", "00000000-0000-0000-0000-000000000000")
            .replace("{chatId}", "1")
            .replace("{devId}", "dev1")
            .replace("{pipe}", "web_x")
            .replace("{code}", "nocode");
        let m = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
        let r = app.call(m, &concrete, None, None).await;
        assert!(
            !(r.status == StatusCode::NOT_FOUND && r.body["error"]["message"] == "no such route")
                && r.status != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path} is documented but not routed: {:?}",
            r.body
        );
    }
    app.stop().await;
}
