//! The records the store keeps, and the rules for the names in them.
//!
//! These are plain data types; the `db` module stores them.

pub(crate) mod file;
pub(crate) mod metric;
pub(crate) mod privacy;
pub(crate) mod profile;
pub(crate) mod session;
pub(crate) mod user;
pub(crate) mod validate;

#[cfg(test)]
mod tests {
    use super::file::{Codec, Encryption};
    use super::profile::ConsentKind;
    use super::session::Role;
    use super::user::UserStatus;

    fn same_name<T: std::fmt::Display + serde::Serialize>(values: &[T]) {
        for v in values {
            let json = serde_json::to_value(v).expect("serialises");
            assert_eq!(json.as_str(), Some(v.to_string().as_str()));
        }
    }

    /// Text output and JSON spell every enum the same way.
    #[test]
    fn display_names_are_the_serde_names() {
        same_name(&[UserStatus::Active, UserStatus::Suspended]);
        same_name(&[
            ConsentKind::AudioStorage,
            ConsentKind::Personalisation,
            ConsentKind::Analytics,
        ]);
        same_name(&[Encryption::None, Encryption::Aes256GcmSiv]);
        same_name(&[Codec::None, Codec::Zstd]);
        same_name(&[Role::User, Role::Assistant, Role::System]);
    }
}
