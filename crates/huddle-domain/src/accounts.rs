//! Accounts and sessions: sign-up, sign-in, refresh with reuse detection,
//! sign-out, profile, password, app settings, deletion.

use serde::Deserialize;
use utoipa::ToSchema;

use huddle_store::sessions::RefreshLookup;
use huddle_store::{now_ms, ProfilePatch, RefreshTokenRecord, SessionRecord, UserRecord};

use huddle_core::Refusal;

use crate::events::SessionEnd;
use crate::model::{AuthResult, Credentials, Me, Refreshed, User};
use crate::roles::WorkspaceRole;
use crate::tokens::{hash_refresh_token, new_refresh_token, Claims};
use crate::{
    model, new_id, parse_id, validate, Caller, Domain, DomainError, DomainEvent, DomainResult,
};

/// Sign-up input.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct SignupInput {
    pub email: String,
    pub password: String,
    pub name: String,
}

/// Profile update; absent fields are left alone, `null` clears `avatar`/`lang`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct ProfileUpdate {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "crate::validate::double_option")]
    #[schema(value_type = Option<String>)]
    pub avatar: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::validate::double_option")]
    #[schema(value_type = Option<String>)]
    pub lang: Option<Option<String>>,
}

fn ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Domain {
    /// Creates an account and signs it in. Limited per client address
    /// (`limits.signup_ip_attempts` per `limits.signup_ip_window`, every
    /// well-formed attempt counts): each sign-up costs a password hash.
    pub async fn signup(&self, input: SignupInput, client: &str) -> DomainResult<AuthResult> {
        let email = validate::email(&input.email)?;
        let name = validate::name("name", &input.name)?;
        validate::password("password", &input.password)?;
        self.signup_by_ip
            .hit(client)
            .map_err(|d| self.limited(Refusal::SignupRate, d))?;
        let now = now_ms();
        let user = UserRecord {
            id: new_id(),
            email,
            name,
            password_hash: self.passwords.hash(input.password).await?,
            avatar: None,
            lang: None,
            app_settings: "{}".into(),
            activated: !self.cfg.require_activation,
            created_at: now,
            updated_at: now,
        };
        self.db.insert_user(&user).await.map_err(|e| match e {
            huddle_store::StoreError::Conflict(_) => {
                DomainError::Conflict("email is already registered".into())
            }
            other => other.into(),
        })?;
        let credentials = if user.activated {
            Some(self.open_session(&user).await?)
        } else {
            None
        };
        Ok(AuthResult {
            user: Me::from(&user),
            credentials,
        })
    }

    /// Signs in. Unknown email and wrong password are indistinguishable (same
    /// error, same work).
    ///
    /// Three limits, so that guessing is slow but a third party cannot lock
    /// the owner out:
    /// - every attempt per client address (`limits.signin_ip_attempts`,
    ///   `Refusal::SigninRate`);
    /// - failures per (account, address) (`limits.signin_account_failures`):
    ///   an address that guessed wrong too often is locked out of that account
    ///   only; the owner elsewhere still signs in (`Refusal::SigninLocked`);
    /// - failures per account from every address together
    ///   (`limits.signin_account_total_failures`, higher): the ceiling a
    ///   distributed guesser hits, which does lock the account for everyone
    ///   until the window passes (`Refusal::SigninLocked`).
    ///
    /// A success forgets its (account, address) failures, not the account's total.
    pub async fn signin(
        &self,
        email: &str,
        password: String,
        client: &str,
    ) -> DomainResult<AuthResult> {
        self.signin_by_ip
            .hit(client)
            .map_err(|d| self.limited(Refusal::SigninRate, d))?;
        let email = email.trim().to_lowercase();
        let pair = format!("{email}\n{client}");
        self.signin_by_account_address
            .check(&pair)
            .and_then(|()| self.signin_by_account.check(&email))
            .map_err(|d| self.limited(Refusal::SigninLocked, d))?;
        let user = if validate::lookup_key(&email) {
            self.db.user_by_email(&email).await?
        } else {
            None
        };
        let ok = self
            .passwords
            .verify(password, user.as_ref().map(|u| u.password_hash.clone()))
            .await?;
        let Some(user) = user.filter(|_| ok) else {
            // Only an address that can be an account is remembered: a limiter
            // must not keep 64 KiB keys a client made up.
            if validate::lookup_key(&email) {
                self.signin_by_account_address.record(&pair);
                self.signin_by_account.record(&email);
            }
            return Err(DomainError::Unauthorized("invalid email or password"));
        };
        self.signin_by_account_address.reset(&pair);
        if !user.activated {
            return Err(DomainError::Forbidden("account is not activated"));
        }
        let credentials = Some(self.open_session(&user).await?);
        Ok(AuthResult {
            user: Me::from(&user),
            credentials,
        })
    }

    async fn open_session(&self, user: &UserRecord) -> DomainResult<Credentials> {
        let now = now_ms();
        let session = SessionRecord {
            id: new_id(),
            user_id: user.id.clone(),
            created_at: now,
            expires_at: now + ms(self.cfg.refresh_token_ttl),
            revoked_at: None,
        };
        let refresh = new_refresh_token();
        let record = RefreshTokenRecord {
            token_hash: hash_refresh_token(&refresh),
            session_id: session.id.clone(),
            expires_at: session.expires_at,
            used_at: None,
        };
        self.db.insert_session(&session, &record).await?;
        self.emit(DomainEvent::SignedIn {
            user_id: user.id.clone(),
            email: user.email.clone(),
            session_id: session.id.clone(),
        })
        .await;
        self.credentials(&user.id, &session.id, refresh, record.expires_at)
    }

    fn credentials(
        &self,
        user_id: &str,
        session_id: &str,
        refresh: String,
        refresh_exp: i64,
    ) -> DomainResult<Credentials> {
        let now = chrono::Utc::now().timestamp();
        let exp = now + i64::try_from(self.cfg.access_token_ttl.as_secs()).unwrap_or(i64::MAX / 2);
        let access = self.keys.sign(&Claims {
            sub: user_id.into(),
            sid: session_id.into(),
            iat: now,
            exp,
        })?;
        Ok(Credentials {
            session_id: session_id.into(),
            access_token: access,
            refresh_token: refresh,
            access_token_expired_at: model::time(exp.saturating_mul(1000)),
            refresh_token_expired_at: model::time(refresh_exp),
        })
    }

    /// Rotates a refresh token. Presenting an already-rotated token is reuse:
    /// the whole session is revoked and every token of it stops working.
    pub async fn refresh(&self, refresh_token: &str) -> DomainResult<Refreshed> {
        let hash = hash_refresh_token(refresh_token);
        let RefreshLookup::Found(token, session) = self.db.refresh_token(&hash).await? else {
            return Err(DomainError::Unauthorized("invalid refresh token"));
        };
        if session.revoked_at.is_some() {
            return Err(DomainError::Unauthorized("session is revoked"));
        }
        if token.used_at.is_some() {
            self.end_session(&session.user_id, &session.id, SessionEnd::Revoked)
                .await?;
            return Err(DomainError::Unauthorized(
                "refresh token reuse detected; session revoked",
            ));
        }
        let now = now_ms();
        if token.expires_at <= now {
            return Err(DomainError::Unauthorized("refresh token is expired"));
        }
        let refresh = new_refresh_token();
        let next = RefreshTokenRecord {
            token_hash: hash_refresh_token(&refresh),
            session_id: session.id.clone(),
            expires_at: now + ms(self.cfg.refresh_token_ttl),
            used_at: None,
        };
        if !self.db.rotate_refresh_token(&hash, &next).await? {
            // Lost a race with another use of the same token: that is reuse too.
            self.end_session(&session.user_id, &session.id, SessionEnd::Revoked)
                .await?;
            return Err(DomainError::Unauthorized(
                "refresh token reuse detected; session revoked",
            ));
        }
        Ok(Refreshed {
            credentials: self.credentials(
                &session.user_id,
                &session.id,
                refresh,
                next.expires_at,
            )?,
        })
    }

    async fn end_session(
        &self,
        user_id: &str,
        session_id: &str,
        reason: SessionEnd,
    ) -> DomainResult<()> {
        if self.db.revoke_session(session_id).await? {
            let email = self
                .db
                .user_by_id(user_id)
                .await?
                .map(|u| u.email)
                .unwrap_or_default();
            self.emit(DomainEvent::SessionEnded {
                user_id: user_id.into(),
                email,
                session_id: session_id.into(),
                reason,
            })
            .await;
        }
        Ok(())
    }

    /// Checks an access token and that its session is still live.
    pub async fn authenticate(&self, access_token: &str) -> DomainResult<Caller> {
        let claims = self.keys.verify(access_token)?;
        let session = self
            .db
            .session_by_id(&claims.sid)
            .await?
            .filter(|s| s.user_id == claims.sub)
            .ok_or(DomainError::Unauthorized("invalid access token"))?;
        if session.revoked_at.is_some() {
            return Err(DomainError::Unauthorized("session is revoked"));
        }
        Ok(Caller {
            user_id: claims.sub,
            session_id: claims.sid,
        })
    }

    /// Mints an access token for `user_id` in a new session (for scripts: `huddle token`).
    pub async fn mint_token(&self, user_id: &str) -> DomainResult<Credentials> {
        let id = parse_id(user_id, "user")?;
        let user = self
            .db
            .user_by_id(&id)
            .await?
            .ok_or(DomainError::NotFound("user"))?;
        self.open_session(&user).await
    }

    /// Ends the caller's session.
    pub async fn signout(&self, caller: &Caller) -> DomainResult<()> {
        self.end_session(&caller.user_id, &caller.session_id, SessionEnd::SignedOut)
            .await
    }

    async fn me_record(&self, caller: &Caller) -> DomainResult<UserRecord> {
        self.db
            .user_by_id(&caller.user_id)
            .await?
            .ok_or(DomainError::Unauthorized("account no longer exists"))
    }

    /// The caller's own account with confidential fields.
    pub async fn me(&self, caller: &Caller) -> DomainResult<Me> {
        Ok(Me::from(&self.me_record(caller).await?))
    }

    /// Updates name/avatar/lang; tells the user's workspaces and devices.
    pub async fn update_me(&self, caller: &Caller, update: ProfileUpdate) -> DomainResult<Me> {
        let patch = ProfilePatch {
            name: update
                .name
                .as_deref()
                .map(|n| validate::name("name", n))
                .transpose()?,
            avatar: match update.avatar {
                Some(a) => Some(validate::short_text("avatar", a.as_deref(), 2048)?),
                None => None,
            },
            lang: match update.lang {
                Some(l) => Some(validate::short_text("lang", l.as_deref(), 16)?),
                None => None,
            },
        };
        let user = self
            .db
            .update_profile(&caller.user_id, &patch)
            .await?
            .ok_or(DomainError::Unauthorized("account no longer exists"))?;
        let workspace_ids = self.db.workspace_ids_of_user(&user.id).await?;
        self.emit(DomainEvent::UserUpdated {
            user_id: user.id.clone(),
            workspace_ids,
        })
        .await;
        self.emit(DomainEvent::MeUpdated {
            user_id: user.id.clone(),
            what: None,
        })
        .await;
        Ok(Me::from(&user))
    }

    /// Changes the password after checking the old one; every other session is revoked.
    pub async fn change_password(
        &self,
        caller: &Caller,
        old: String,
        new: String,
    ) -> DomainResult<()> {
        validate::password("newPassword", &new)?;
        let user = self.me_record(caller).await?;
        if !self
            .passwords
            .verify(old, Some(user.password_hash.clone()))
            .await?
        {
            return Err(DomainError::Forbidden("old password is wrong"));
        }
        let hash = self.passwords.hash(new).await?;
        self.db.set_password_hash(&user.id, &hash).await?;
        // Every device hears of the change before the other sessions' end.
        self.emit(DomainEvent::PasswordChanged {
            user_id: user.id.clone(),
        })
        .await;
        for sid in self
            .db
            .revoke_other_sessions(&user.id, &caller.session_id)
            .await?
        {
            self.emit(DomainEvent::SessionEnded {
                user_id: user.id.clone(),
                email: user.email.clone(),
                session_id: sid,
                reason: SessionEnd::Revoked,
            })
            .await;
        }
        Ok(())
    }

    /// Replaces the app settings (a JSON object of at most 16 KiB).
    pub async fn set_app_settings(
        &self,
        caller: &Caller,
        settings: serde_json::Value,
    ) -> DomainResult<Me> {
        if !settings.is_object() {
            return Err(DomainError::invalid(
                "appSettings",
                "app settings must be a JSON object",
            ));
        }
        let text = settings.to_string();
        if text.len() > 16 * 1024 {
            return Err(DomainError::invalid(
                "appSettings",
                "app settings must be at most 16 KiB",
            ));
        }
        self.db.set_app_settings(&caller.user_id, &text).await?;
        self.emit(DomainEvent::MeUpdated {
            user_id: caller.user_id.clone(),
            what: Some("app-settings".into()),
        })
        .await;
        self.me(caller).await
    }

    /// Deletes the caller's account. Workspaces where the caller is the only member
    /// go with it; being the last admin of a workspace with other members is a
    /// conflict (promote someone first).
    pub async fn delete_account(&self, caller: &Caller) -> DomainResult<()> {
        let user = self.me_record(caller).await?;
        let mut sole = Vec::new();
        let workspaces = self.db.workspaces_of_user(&user.id).await?;
        for w in &workspaces {
            let members = self.db.members(&w.workspace.id).await?;
            if members.len() == 1 {
                sole.push(w.workspace.id.clone());
            } else if w.role == WorkspaceRole::Admin.as_str()
                && self.db.count_role(&w.workspace.id, "admin").await? == 1
            {
                return Err(DomainError::Conflict(format!(
                    "you are the last admin of workspace {}; make another member admin first",
                    w.workspace.id
                )));
            }
        }
        for id in &sole {
            self.db.delete_workspace(id).await?;
        }
        self.db.delete_user(&user.id).await?;
        let workspace_ids: Vec<String> = workspaces
            .into_iter()
            .map(|w| w.workspace.id)
            .filter(|id| !sole.contains(id))
            .collect();
        for id in &workspace_ids {
            self.emit(DomainEvent::MemberLeft {
                workspace_id: id.clone(),
                user_id: user.id.clone(),
                kicked: false,
            })
            .await;
        }
        self.emit(DomainEvent::AccountRemoved {
            user_id: user.id,
            email: user.email,
            workspace_ids,
        })
        .await;
        Ok(())
    }

    /// Another user's public profile: visible to users who share a workspace with them.
    pub async fn user_profile(&self, caller: &Caller, user_id: &str) -> DomainResult<User> {
        let id = parse_id(user_id, "user")?;
        if id != caller.user_id && !self.db.share_a_workspace(&caller.user_id, &id).await? {
            return Err(DomainError::NotFound("user"));
        }
        let user = self
            .db
            .user_by_id(&id)
            .await?
            .ok_or(DomainError::NotFound("user"))?;
        Ok(User::from(&user))
    }
}
