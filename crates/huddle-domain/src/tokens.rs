//! Access tokens (HS256 JWT: `sub`, `sid`, `iat`, `exp`) and opaque refresh tokens
//! (random, stored only as their SHA-256).

use jsonwebtoken::{
    decode, encode, errors::ErrorKind, Algorithm, DecodingKey, EncodingKey, Header, Validation,
};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{DomainError, DomainResult};

/// The claims huddle puts in an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// User id.
    pub sub: String,
    /// Session id.
    pub sid: String,
    pub iat: i64,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
}

/// Signs and checks access tokens with one HS256 secret.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl TokenKeys {
    pub fn new(secret: &[u8]) -> TokenKeys {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        TokenKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    pub fn sign(&self, claims: &Claims) -> DomainResult<String> {
        encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(|e| DomainError::Internal(format!("jwt encode: {e}")))
    }

    /// Checks signature, algorithm and expiry.
    pub fn verify(&self, token: &str) -> DomainResult<Claims> {
        decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|d| d.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => DomainError::Unauthorized("access token is expired"),
                _ => DomainError::Unauthorized("invalid access token"),
            })
    }
}

/// A new opaque refresh token (256 random bits, hex).
pub fn new_refresh_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// What is stored for a refresh token.
pub fn hash_refresh_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Claims {
        Claims {
            sub: "u".into(),
            sid: "s".into(),
            iat: 0,
            exp,
        }
    }

    #[test]
    fn round_trip_and_rejections() {
        let keys = TokenKeys::new(b"secret");
        let now = chrono::Utc::now().timestamp();
        let t = keys.sign(&claims(now + 60)).expect("sign");
        assert_eq!(keys.verify(&t).expect("verify").sub, "u");
        let expired = keys.sign(&claims(now - 1)).expect("sign");
        assert!(matches!(
            keys.verify(&expired),
            Err(DomainError::Unauthorized("access token is expired"))
        ));
        let other = TokenKeys::new(b"other")
            .sign(&claims(now + 60))
            .expect("sign");
        assert!(matches!(
            keys.verify(&other),
            Err(DomainError::Unauthorized("invalid access token"))
        ));
        let mut tampered = t.clone();
        tampered.pop();
        assert!(keys.verify(&tampered).is_err());
    }

    #[test]
    fn refresh_tokens_are_random_and_hashed() {
        let (a, b) = (new_refresh_token(), new_refresh_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_eq!(hash_refresh_token(&a), hash_refresh_token(&a));
        assert_ne!(hash_refresh_token(&a), a);
    }
}
