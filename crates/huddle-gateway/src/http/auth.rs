//! `/api/auth/*`: sign-up, sign-in, refresh, sign-out.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use huddle_domain::model::{AuthResult, Refreshed};
use huddle_domain::SignupInput;

use super::error::{ApiResult, ErrorEnvelope};
use super::extract::{Auth, Json};
use super::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(signup))
        .routes(routes!(signin))
        .routes(routes!(refresh))
        .routes(routes!(signout))
}

#[derive(Deserialize, ToSchema)]
pub struct SigninInput {
    email: String,
    password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefreshInput {
    refresh_token: String,
}

/// The peer address of the connection as a rate-limit key (the sign-up and
/// sign-in limits): IPv4 as is, IPv6 by its /64 ([`huddle_core::client_key`],
/// as the connection caps), so one host cannot rotate its way past them.
/// huddle trusts no forwarding header: behind a reverse proxy every client has
/// the proxy's address, so raise the per-address limits there.
pub struct ClientAddr(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map_or_else(
                    || "unknown".to_owned(),
                    |c| huddle_core::client_key(c.0.ip()).to_string(),
                ),
        ))
    }
}

/// Create an account and sign in (rate-limited per address; 503 when password
/// hashing is at its bound).
#[utoipa::path(post, path = "/api/auth/signup", tag = "auth", request_body = SignupInput,
    responses((status = 201, body = AuthResult), (status = 400, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope)))]
async fn signup(
    State(s): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Json(input): Json<SignupInput>,
) -> ApiResult<(StatusCode, axum::Json<AuthResult>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(s.domain.signup(input, &addr).await?),
    ))
}

/// Sign in with email and password (rate-limited per account and per address).
#[utoipa::path(post, path = "/api/auth/signin", tag = "auth", request_body = SigninInput,
    responses((status = 200, body = AuthResult), (status = 401, body = ErrorEnvelope), (status = 429, body = ErrorEnvelope),
        (status = 503, body = ErrorEnvelope)))]
async fn signin(
    State(s): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Json(input): Json<SigninInput>,
) -> ApiResult<axum::Json<AuthResult>> {
    Ok(axum::Json(
        s.domain.signin(&input.email, input.password, &addr).await?,
    ))
}

/// Rotate a refresh token. Reusing an old one revokes the session.
#[utoipa::path(post, path = "/api/auth/refresh", tag = "auth", request_body = RefreshInput,
    responses((status = 200, body = Refreshed), (status = 401, body = ErrorEnvelope)))]
async fn refresh(
    State(s): State<AppState>,
    Json(input): Json<RefreshInput>,
) -> ApiResult<axum::Json<Refreshed>> {
    Ok(axum::Json(s.domain.refresh(&input.refresh_token).await?))
}

/// End this session.
#[utoipa::path(post, path = "/api/auth/signout", tag = "auth", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = ErrorEnvelope)))]
async fn signout(State(s): State<AppState>, Auth(caller): Auth) -> ApiResult<StatusCode> {
    s.domain.signout(&caller).await?;
    Ok(StatusCode::NO_CONTENT)
}
