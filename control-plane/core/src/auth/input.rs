//! Bounds on every credential a caller sends, checked before any work: before a password is
//! hashed, a throttle key is made or anything is stored.

use crate::error::{Error, Result};

/// The longest email address (RFC 5321's path limit).
pub const MAX_EMAIL_BYTES: usize = 254;
/// The shortest password a new one may be.
pub const MIN_PASSWORD_BYTES: usize = 8;
/// The longest password: argon2 would take more, but nobody types more.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// The longest refresh or invitation token (ours are under 80 bytes).
pub const MAX_TOKEN_BYTES: usize = 256;

/// An email address: at most [`MAX_EMAIL_BYTES`], `local@domain`, no spaces or controls.
pub fn email(email: &str) -> Result<&str> {
    let email = email.trim();
    let valid = email.len() <= MAX_EMAIL_BYTES
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(email)
    } else {
        Err(Error::invalid(format!(
            "email must look like name@domain, at most {MAX_EMAIL_BYTES} bytes"
        )))
    }
}

/// A password being checked (login, current password): only its length is bounded.
pub fn password(password: &str) -> Result<()> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(Error::invalid(format!(
            "a password has at most {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    Ok(())
}

/// A password being chosen.
pub fn new_password(password: &str) -> Result<()> {
    if !(MIN_PASSWORD_BYTES..=MAX_PASSWORD_BYTES).contains(&password.len()) {
        return Err(Error::invalid(format!(
            "a new password has {MIN_PASSWORD_BYTES} to {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    Ok(())
}

/// An opaque token (refresh, invitation).
pub fn token(token: &str) -> Result<()> {
    if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
        return Err(Error::invalid(format!(
            "a token has 1 to {MAX_TOKEN_BYTES} bytes"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn bounds() {
        assert_eq!(super::email(" a@b ").expect("valid"), "a@b");
        assert!(super::email(&format!("{}@b", "a".repeat(300))).is_err());
        assert!(super::email("no-at").is_err());
        assert!(super::password(&"x".repeat(1025)).is_err());
        assert!(super::password("").is_ok());
        assert!(super::new_password("short").is_err());
        assert!(super::new_password("long enough").is_ok());
        assert!(super::token("").is_err());
        assert!(super::token(&"t".repeat(257)).is_err());
    }
}
