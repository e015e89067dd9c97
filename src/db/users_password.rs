//! argon2id password hashing, off the async threads (one hash costs tens of
//! milliseconds at the default cost). Hashes are PHC strings kept in the
//! `credentials` table; they never leave this module except to be stored.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::db::DbSettings;
use crate::error::Error;
use crate::types::UserId;

/// Hashes `password` with a fresh random salt.
pub(crate) async fn hash(password: &str, settings: &DbSettings) -> Result<String, Error> {
    let params = Params::new(
        settings.password_memory_kib,
        settings.password_iterations,
        1,
        None,
    )
    .map_err(|e| Error::Config {
        reason: format!("argon2 parameters: {e}"),
    })?;
    let password = password.to_string();
    tokio::task::spawn_blocking(move || {
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt)
            .map_err(|e| Error::io("reading random bytes", std::io::Error::other(e.to_string())))?;
        let salt =
            SaltString::encode_b64(&salt).map_err(|e| Error::invalid("salt", e.to_string()))?;
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::invalid("password", e.to_string()))
    })
    .await
    .map_err(|e| Error::join("password hashing task", e))?
}

/// Checks `password` against a stored PHC string (its own parameters apply).
pub(crate) async fn verify(password: &str, stored: String, user: UserId) -> Result<bool, Error> {
    let password = password.to_string();
    tokio::task::spawn_blocking(move || {
        let parsed = PasswordHash::new(&stored)
            .map_err(|e| Error::corrupt(format!("password hash of user {user}"), e.to_string()))?;
        Ok(Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await
    .map_err(|e| Error::join("password hashing task", e))?
}
