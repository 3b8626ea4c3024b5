//! Naming and size rules for usernames, rooms, devices, display names and passwords
//! (specified in docs/PROTOCOL.md §7). Pure functions returning the wire error to send.

use chat_proto::{ErrorCode, ErrorReply};

/// Longest username or room name, in characters.
pub const MAX_NAME_LEN: usize = 32;
/// Longest device id or display name.
pub const MAX_LABEL_LEN: usize = 64;
/// Shortest password, in bytes.
pub const MIN_PASSWORD_LEN: usize = 8;
/// Longest password, in bytes.
pub const MAX_PASSWORD_LEN: usize = 1024;

fn invalid(what: &str) -> ErrorReply {
    ErrorReply::new(ErrorCode::InvalidName, what)
}

fn is_name(s: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Checks a username; returns its case-folded key (usernames are unique without regard to case).
///
/// # Errors
/// `InvalidName` unless it is 1–32 of `a–z A–Z 0–9 _ -`, starting with a letter.
pub fn username(s: &str) -> Result<String, ErrorReply> {
    if is_name(s) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(invalid(
            "a username is 1-32 letters, digits, '_' or '-', starting with a letter",
        ))
    }
}

/// Checks a room name (a leading `#` is ignored); returns it normalised to lower case.
///
/// # Errors
/// `InvalidName` unless it follows the username rules.
pub fn room(s: &str) -> Result<String, ErrorReply> {
    let s = s.strip_prefix('#').unwrap_or(s);
    if is_name(s) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(invalid(
            "a room name is 1-32 letters, digits, '_' or '-', starting with a letter",
        ))
    }
}

/// Checks a device id.
///
/// # Errors
/// `InvalidName` unless it is 1–64 printable ASCII characters.
pub fn device(s: &str) -> Result<(), ErrorReply> {
    if (1..=MAX_LABEL_LEN).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(invalid("a device id is 1-64 printable ASCII characters"))
    }
}

/// Checks a display name.
///
/// # Errors
/// `InvalidName` unless it is 1–64 characters with no control characters.
pub fn display_name(s: &str) -> Result<(), ErrorReply> {
    let len = s.chars().count();
    if (1..=MAX_LABEL_LEN).contains(&len) && !s.chars().any(char::is_control) {
        Ok(())
    } else {
        Err(invalid(
            "a display name is 1-64 characters without control characters",
        ))
    }
}

/// Checks a new password's length.
///
/// # Errors
/// `WeakPassword` unless it is 8–1024 bytes.
pub fn password(s: &str) -> Result<(), ErrorReply> {
    if (MIN_PASSWORD_LEN..=MAX_PASSWORD_LEN).contains(&s.len()) {
        Ok(())
    } else {
        Err(ErrorReply::new(
            ErrorCode::WeakPassword,
            "a password is 8 to 1024 bytes",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert_eq!(username("Alice_1-x").as_deref(), Ok("alice_1-x"));
        for bad in ["", "1alice", "_a", "al ice", "alïce", &"a".repeat(33)] {
            assert!(username(bad).is_err(), "{bad:?}");
        }
        assert!(username(&"a".repeat(32)).is_ok());
    }

    #[test]
    fn rooms_ignore_hash_and_case() {
        assert_eq!(room("#Rust").as_deref(), Ok("rust"));
        assert_eq!(room("rust").as_deref(), Ok("rust"));
        assert!(room("#").is_err());
        assert!(room("##rust").is_err());
    }

    #[test]
    fn labels_and_passwords() {
        assert!(device("laptop-1").is_ok());
        assert!(device("has space").is_err());
        assert!(display_name("Zoë Q.").is_ok());
        assert!(display_name("bad\nname").is_err());
        assert!(password("1234567").is_err());
        assert!(password("12345678").is_ok());
    }
}
