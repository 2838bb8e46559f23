//! Input rules, applied at the domain's edge so every front door shares them.

use crate::{DomainError, DomainResult};

/// Longest name (user, workspace, channel), in characters.
pub const MAX_NAME: usize = 100;
/// Longest channel description, in characters.
pub const MAX_DESCRIPTION: usize = 150;
/// Password length bounds, in characters.
pub const PASSWORD_LEN: std::ops::RangeInclusive<usize> = 8..=256;

/// Trims and checks a name: 1..=100 characters, no control characters. Returns
/// the trimmed name; other characters (quotes, `;`, `--`) are stored verbatim.
pub fn name(field: &'static str, raw: &str) -> DomainResult<String> {
    let trimmed = raw.trim();
    let len = trimmed.chars().count();
    if len == 0 {
        return Err(DomainError::invalid(
            field,
            format!("{field} must not be empty"),
        ));
    }
    if len > MAX_NAME {
        return Err(DomainError::invalid(
            field,
            format!("{field} must be at most {MAX_NAME} characters"),
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            field,
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(trimmed.to_owned())
}

/// Checks an optional description (≤150 characters; newlines and tabs allowed,
/// other control characters — NUL included, which PostgreSQL cannot store — refused).
pub fn description(raw: Option<&str>) -> DomainResult<Option<String>> {
    match raw {
        None => Ok(None),
        Some(d) if d.chars().count() > MAX_DESCRIPTION => Err(DomainError::invalid(
            "description",
            format!("description must be at most {MAX_DESCRIPTION} characters"),
        )),
        Some(d)
            if d.chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r') =>
        {
            Err(DomainError::invalid(
                "description",
                "description must not contain control characters",
            ))
        }
        Some(d) => Ok(Some(d.to_owned())),
    }
}

/// Whether a lookup key (invite code, email) is plain text that could exist;
/// anything with control characters cannot, and is simply not found.
pub fn lookup_key(raw: &str) -> bool {
    !raw.is_empty() && raw.len() <= 320 && !raw.chars().any(char::is_control)
}

/// Normalises an email (trimmed, lower-cased) and checks its shape.
pub fn email(raw: &str) -> DomainResult<String> {
    let e = raw.trim().to_lowercase();
    let ok = e.len() <= 254
        && !e.chars().any(|c| c.is_whitespace() || c.is_control())
        && matches!(e.split_once('@'), Some((local, domain)) if !local.is_empty() && domain.contains('.') && !domain.contains('@') && !domain.starts_with('.') && !domain.ends_with('.'));
    if ok {
        Ok(e)
    } else {
        Err(DomainError::invalid(
            "email",
            "email is not a valid address",
        ))
    }
}

/// Checks a new password's length.
pub fn password(field: &'static str, raw: &str) -> DomainResult<()> {
    if PASSWORD_LEN.contains(&raw.chars().count()) {
        Ok(())
    } else {
        Err(DomainError::invalid(
            field,
            format!(
                "{field} must be {}..{} characters",
                PASSWORD_LEN.start(),
                PASSWORD_LEN.end()
            ),
        ))
    }
}

/// Checks an optional short text field such as `avatar` or `lang`: bounded,
/// no control characters (PostgreSQL cannot store NUL).
pub fn short_text(
    field: &'static str,
    raw: Option<&str>,
    max: usize,
) -> DomainResult<Option<String>> {
    match raw {
        Some(s) if s.chars().count() > max => Err(DomainError::invalid(
            field,
            format!("{field} must be at most {max} characters"),
        )),
        Some(s) if s.chars().any(char::is_control) => Err(DomainError::invalid(
            field,
            format!("{field} must not contain control characters"),
        )),
        other => Ok(other.map(str::to_owned)),
    }
}

/// For `Option<Option<T>>` fields: an absent field is `None`, an explicit `null`
/// is `Some(None)` (clear the value).
pub(crate) fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(name("name", "  x ").expect("ok"), "x");
        assert!(name("name", "   ").is_err());
        assert!(name("name", &"a".repeat(101)).is_err());
        assert!(name("name", &"é".repeat(100)).is_ok());
        assert_eq!(
            name("name", "'; DROP TABLE users; --").expect("ok"),
            "'; DROP TABLE users; --"
        );
        assert!(name("name", "a\u{0}b").is_err());
    }

    #[test]
    fn free_text_refuses_nul() {
        assert!(description(Some("a\u{0}b")).is_err());
        assert!(description(Some("line\nline")).is_ok());
        assert!(short_text("lang", Some("r\u{0}"), 16).is_err());
        assert!(!lookup_key("a\u{0}b") && lookup_key("abc"));
    }

    #[test]
    fn emails() {
        assert_eq!(email(" A@B.io ").expect("ok"), "a@b.io");
        for bad in [
            "", "a", "a@", "@b.io", "a@b", "a b@c.io", "a@b@c.io", "a@.io",
        ] {
            assert!(email(bad).is_err(), "{bad}");
        }
    }
}
