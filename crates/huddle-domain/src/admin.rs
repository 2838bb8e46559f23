//! Operator actions: account activation (with `auth.require_activation`),
//! session expiry, and the per-user meta object of seed 004's MetaRequest.

use huddle_store::now_ms;

use crate::events::SessionEnd;
use crate::{parse_id, Domain, DomainError, DomainEvent, DomainResult};

impl Domain {
    /// Checks the admin API's bearer token, in constant time.
    pub fn check_admin(&self, presented: &str) -> DomainResult<()> {
        let Some(expected) = self.cfg.admin_token.as_deref() else {
            return Err(DomainError::Forbidden(
                "the admin API is disabled (set auth.admin_token)",
            ));
        };
        let (a, b) = (expected.as_bytes(), presented.as_bytes());
        if a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0 {
            Ok(())
        } else {
            Err(DomainError::Unauthorized("invalid admin token"))
        }
    }

    /// Activates an account (idempotent); the first activation is announced.
    pub async fn activate_account(&self, admin_token: &str, user_id: &str) -> DomainResult<()> {
        self.check_admin(admin_token)?;
        let id = parse_id(user_id, "user")?;
        let user = self
            .db
            .user_by_id(&id)
            .await?
            .ok_or(DomainError::NotFound("user"))?;
        if self.db.set_activated(&id, true).await? {
            self.emit(DomainEvent::AccountActivated {
                user_id: id,
                email: user.email,
            })
            .await;
        }
        Ok(())
    }

    /// Ends sessions whose refresh tokens expired, announcing each; returns how many.
    pub async fn expire_sessions(&self) -> DomainResult<usize> {
        let expired = self.db.expired_sessions(now_ms()).await?;
        let n = expired.len();
        for (session_id, user_id) in expired {
            if self.db.revoke_session(&session_id).await? {
                let email = self
                    .db
                    .user_by_id(&user_id)
                    .await?
                    .map(|u| u.email)
                    .unwrap_or_default();
                self.emit(DomainEvent::SessionEnded {
                    user_id,
                    email,
                    session_id,
                    reason: SessionEnd::Expired,
                })
                .await;
            }
        }
        Ok(n)
    }

    /// Reads a user's meta object, or one property of it. `username` is the email.
    pub async fn user_meta(
        &self,
        username: &str,
        property: Option<&str>,
    ) -> DomainResult<serde_json::Value> {
        let text = self
            .db
            .user_meta(&username.trim().to_lowercase())
            .await?
            .ok_or(DomainError::NotFound("user"))?;
        let meta: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|_| serde_json::json!({}));
        Ok(match property {
            Some(p) => meta.get(p).cloned().unwrap_or(serde_json::Value::Null),
            None => meta,
        })
    }

    /// Sets one property (`property` given) or replaces the whole meta object;
    /// returns the value written. At most 16 KiB.
    pub async fn set_user_meta(
        &self,
        username: &str,
        property: Option<&str>,
        val: serde_json::Value,
    ) -> DomainResult<serde_json::Value> {
        let email = username.trim().to_lowercase();
        let text = self
            .db
            .user_meta(&email)
            .await?
            .ok_or(DomainError::NotFound("user"))?;
        let mut meta: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|_| serde_json::json!({}));
        match property {
            Some(p) => {
                if !meta.is_object() {
                    meta = serde_json::json!({});
                }
                meta[p] = val.clone();
            }
            None if val.is_object() => meta = val.clone(),
            None => {
                return Err(DomainError::invalid(
                    "val",
                    "the whole meta must be an object",
                ))
            }
        }
        let text = meta.to_string();
        if text.len() > 16 * 1024 {
            return Err(DomainError::invalid("val", "meta must be at most 16 KiB"));
        }
        self.db.set_user_meta(&email, &text).await?;
        Ok(val)
    }
}
