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
/// `InvalidName` unless it is 1–64 characters of printable text: no control characters, no
/// bidirectional or zero-width formatting characters (which can make a name read as another),
/// no quotes or angle brackets (which can make it read as a username), not only spaces.
pub fn display_name(s: &str) -> Result<(), ErrorReply> {
    let len = s.chars().count();
    let printable = s
        .chars()
        .all(|c| !c.is_control() && !is_format(c) && !matches!(c, '"' | '<' | '>'));
    if (1..=MAX_LABEL_LEN).contains(&len) && printable && !s.trim().is_empty() {
        Ok(())
    } else {
        Err(invalid(
            "a display name is 1-64 printable characters, without quotes, angle brackets \
             or direction controls",
        ))
    }
}

/// Unicode format characters that reorder or hide text: bidirectional embeddings, overrides
/// and isolates, marks, zero-width characters, the BOM.
fn is_format(c: char) -> bool {
    matches!(c,
        '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{2069}' | '\u{061C}' | '\u{FEFF}' | '\u{00AD}')
}

/// The look-alike skeleton of a username: two names with the same skeleton are too easily
/// mistaken for each other (`aIice` and `alice`, `rn` and `m`, `0` and `o`), so only one of
/// them may be registered.
pub fn skeleton(name: &str) -> String {
    let folded: String = name
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            '1' | 'i' | '|' => 'l',
            '0' => 'o',
            '_' => '-',
            c => c,
        })
        .collect();
    folded.replace("rn", "m").replace("vv", "w")
}

/// Message text as stored and delivered: line breaks normalised to `\n` (`\r\n` and a lone
/// `\r` become `\n`), tab kept, every other control character (C0, DEL, C1) replaced with
/// U+FFFD, so text can never carry terminal escapes or fake a line of its own.
pub fn text(s: &str) -> String {
    into_text(s.to_owned())
}

/// [`text`] of a string already owned: given back as it is when nothing needs replacing.
pub fn into_text(s: String) -> String {
    if needs_nothing(&s) {
        s
    } else {
        replace_controls(&s)
    }
}

/// Whether [`text`] would change nothing (most texts: plain ASCII is checked byte by byte).
fn needs_nothing(s: &str) -> bool {
    let plain = |b: u8| (b' '..0x7f).contains(&b) || b == b'\n' || b == b'\t';
    s.bytes().all(plain)
        || !s
            .chars()
            .any(|c| c == '\r' || (c.is_control() && c != '\n' && c != '\t'))
}

/// [`text`]'s rule, a character at a time.
fn replace_controls(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                chars.next_if_eq(&'\n');
                out.push('\n');
            }
            '\n' | '\t' => out.push(c),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Longest search text, in bytes.
pub const MAX_SEARCH_LEN: usize = 256;
/// Most words in one search.
pub const MAX_SEARCH_WORDS: usize = 8;

/// The words of a text as search sees them: runs of letters and digits, lower-cased. Every
/// other character separates words, as SQLite's `unicode61` tokenizer and PostgreSQL's
/// `simple` configuration (over text whose punctuation is blanked) do.
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

/// Checks a search's text; returns its distinct words (see [`words`]), in order.
///
/// # Errors
/// `TooLarge` over 256 bytes or 8 words; `BadRequest` without any word.
pub fn search_words(text: &str) -> Result<Vec<String>, ErrorReply> {
    if text.len() > MAX_SEARCH_LEN {
        return Err(ErrorReply::new(
            ErrorCode::TooLarge,
            format!("a search is at most {MAX_SEARCH_LEN} bytes"),
        ));
    }
    let mut found: Vec<String> = Vec::new();
    for word in words(text) {
        if !found.contains(&word) {
            found.push(word);
        }
    }
    if found.is_empty() {
        return Err(ErrorReply::new(
            ErrorCode::BadRequest,
            "nothing to search for: give a word",
        ));
    }
    if found.len() > MAX_SEARCH_WORDS {
        return Err(ErrorReply::new(
            ErrorCode::TooLarge,
            format!("a search has at most {MAX_SEARCH_WORDS} words"),
        ));
    }
    Ok(found)
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
    fn look_alike_names_share_a_skeleton() {
        assert_eq!(skeleton("aIice"), skeleton("alice"));
        assert_eq!(skeleton("a1ice"), skeleton("ALICE"));
        assert_eq!(skeleton("bob0"), skeleton("bobo"));
        assert_eq!(skeleton("rnallory"), skeleton("mallory"));
        assert_ne!(skeleton("alice"), skeleton("alicia"));
    }

    #[test]
    fn text_keeps_lines_and_tabs_and_drops_escapes() {
        assert_eq!(text("a\r\nb\rc\td"), "a\nb\nc\td");
        assert_eq!(
            text("ok\u{1b}]0;pwned\u{7}\u{1b}[2J\u{9b}x\u{7f}"),
            "ok\u{FFFD}]0;pwned\u{FFFD}\u{FFFD}[2J\u{FFFD}x\u{FFFD}"
        );
        assert_eq!(text("plain ünïcode"), "plain ünïcode");
        assert_eq!(text("ünï\u{85}code\r"), "ünï\u{FFFD}code\n");
    }

    proptest::proptest! {
        /// Text copied whole is exactly what the rule a character at a time gives.
        #[test]
        fn text_copied_whole_is_what_the_rule_gives(s in "(?s).{0,40}") {
            proptest::prop_assert_eq!(text(&s), replace_controls(&s));
            proptest::prop_assert_eq!(into_text(s.clone()), replace_controls(&s));
        }
    }

    #[test]
    fn search_words_are_lower_case_runs_of_letters_and_digits() {
        assert_eq!(
            search_words("Deploy, the E-mail! deploy v2.0 Zoë").as_deref(),
            Ok(&["deploy", "the", "e", "mail", "v2", "0", "zoë"].map(String::from)[..])
        );
        assert_eq!(
            search_words(" ,.- ").map_err(|e| e.code),
            Err(ErrorCode::BadRequest)
        );
        assert_eq!(
            search_words("a b c d e f g h i").map_err(|e| e.code),
            Err(ErrorCode::TooLarge)
        );
        assert_eq!(
            search_words(&"a".repeat(MAX_SEARCH_LEN + 1)).map_err(|e| e.code),
            Err(ErrorCode::TooLarge)
        );
    }

    #[test]
    fn labels_and_passwords() {
        assert!(device("laptop-1").is_ok());
        assert!(device("has space").is_err());
        assert!(display_name("Zoë Q.").is_ok());
        assert!(display_name("bad\nname").is_err());
        for bad in [
            "evil\u{202E}txt",
            "mallory \"alice\"",
            "<alice>",
            "   ",
            "a\u{200B}b",
        ] {
            assert!(display_name(bad).is_err(), "{bad:?}");
        }
        assert!(password("1234567").is_err());
        assert!(password("12345678").is_ok());
    }
}
