//! Extractors whose rejections speak the error envelope.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use huddle_domain::{Caller, DomainError};

use super::error::ApiError;
use super::AppState;

/// `axum::Json` whose rejections become [`ApiError`]s. Unknown fields are
/// ignored (forward compatibility with clients of the seed APIs); wrong types and
/// missing required fields are 400.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(v) = axum::Json::<T>::from_request(req, state).await?;
        Ok(Json(v))
    }
}

/// The authenticated caller, from `Authorization: Bearer <accessToken>`.
/// A write (any method but GET, HEAD, OPTIONS; sign-out excepted) also takes
/// one from the caller's REST write budget (429 past it).
pub struct Auth(pub Caller);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or(DomainError::Unauthorized("missing access token"))?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(DomainError::Unauthorized(
                "expected Authorization: Bearer <accessToken>",
            ))?;
        let caller = state.domain.authenticate(token).await?;
        // Signing out is never refused (as leaving a socket is not).
        if !parts.method.is_safe() && parts.uri.path() != "/api/auth/signout" {
            state.domain.take_rest_write(&caller)?;
        }
        Ok(Auth(caller))
    }
}

/// A path segment; a malformed one is a 404 like any unknown id.
pub struct PathId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(id) =
            axum::extract::Path::<String>::from_request_parts(parts, state).await?;
        Ok(PathId(id))
    }
}

/// Two path segments.
pub struct PathIds(pub String, pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathIds {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path((a, b)) =
            axum::extract::Path::<(String, String)>::from_request_parts(parts, state).await?;
        Ok(PathIds(a, b))
    }
}
