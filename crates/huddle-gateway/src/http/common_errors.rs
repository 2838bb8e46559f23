//! The answers every route can give whatever its handler does, written into
//! the OpenAPI document in one place so that it states them (schemathesis
//! checks every status against it): a route behind a credential answers 401
//! without a valid one; a route that reads a JSON body answers 400 for
//! unreadable JSON, 413 past `limits.max_body_bytes` and 415 without a JSON
//! content type; a route with path parameters answers 400 for one that does
//! not parse; an authenticated write (POST, PUT, PATCH, DELETE) answers 429
//! past the caller's write budget and 503 when the database stays busy. Each
//! with the error envelope.

use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::Ref;
use utoipa::openapi::{ContentBuilder, OpenApi, RefOr, ResponseBuilder};

/// Adds the common answers an operation does not document itself.
pub(super) fn document(api: &mut OpenApi) {
    for item in api.paths.paths.values_mut() {
        let path_params = item.parameters.as_ref().is_some_and(|p| !p.is_empty());
        for (write, op) in [
            (false, &mut item.get),
            (true, &mut item.put),
            (true, &mut item.post),
            (true, &mut item.delete),
            (true, &mut item.patch),
        ] {
            let Some(op) = op else { continue };
            let has_params = path_params || op.parameters.as_ref().is_some_and(|p| !p.is_empty());
            if op.security.as_ref().is_some_and(|s| !s.is_empty()) {
                add(op, "401", "Missing, invalid or expired credentials");
                if write {
                    add(
                        op,
                        "429",
                        "Past the caller's REST write budget (limits.rest_writes_*); see Retry-After",
                    );
                    add(
                        op,
                        "503",
                        "The database stayed busy; retry after Retry-After",
                    );
                }
            }
            if op.request_body.is_some() {
                add(op, "400", "The body is not the JSON this route reads");
                add(op, "413", "The body is larger than limits.max_body_bytes");
                add(op, "415", "The body is not sent as application/json");
            }
            if has_params {
                add(op, "400", "A parameter does not parse");
            }
        }
    }
}

fn add(op: &mut Operation, status: &str, description: &str) {
    op.responses
        .responses
        .entry(status.to_owned())
        .or_insert_with(|| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ErrorEnvelope")))
                            .build(),
                    )
                    .build(),
            )
        });
}

#[cfg(test)]
mod tests {
    /// What schemathesis found undocumented (scripts/schemathesis, seed 14):
    /// 401 without a token, 400 and 415 for a body that is not JSON.
    #[test]
    fn every_route_documents_the_answers_it_can_give() {
        let api = super::super::openapi();
        let statuses = |path: &str, method: &str| -> Vec<String> {
            let item = &api.paths.paths[path];
            let op = match method {
                "get" => item.get.as_ref(),
                "post" => item.post.as_ref(),
                _ => None,
            };
            op.map(|op| op.responses.responses.keys().cloned().collect())
                .unwrap_or_default()
        };
        let leave = statuses("/api/workspaces/{id}/leave", "post");
        assert!(leave.contains(&"401".to_owned()), "{leave:?}");
        assert!(leave.contains(&"400".to_owned()), "{leave:?}");
        assert!(leave.contains(&"429".to_owned()), "{leave:?}");
        let list = statuses("/api/workspaces", "get");
        assert!(!list.contains(&"429".to_owned()), "{list:?}");
        let signin = statuses("/api/auth/signin", "post");
        for s in ["400", "413", "415"] {
            assert!(signin.contains(&s.to_owned()), "{s} in {signin:?}");
        }
        let health = statuses("/healthz", "get");
        assert!(!health.contains(&"401".to_owned()), "{health:?}");
    }
}
