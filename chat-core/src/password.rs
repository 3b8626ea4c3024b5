//! Password hashing (argon2id, PHC strings) and session tokens. CPU-heavy calls here are
//! blocking: the engine runs them with `spawn_blocking` behind a semaphore.

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::PasswordParams;

/// argon2 refused the configured password parameters.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("argon2 refuses the password parameters: {0}")]
pub struct PasswordParamsError(String);

/// Hashes and verifies passwords with one parameter set.
#[derive(Debug)]
pub(crate) struct Passwords {
    argon: Argon2<'static>,
    /// A hash of a random password with the same cost, verified when the user does not exist
    /// so that a failed login costs the same either way.
    dummy: String,
}

impl Passwords {
    /// # Errors
    /// If argon2 rejects the parameters.
    pub(crate) fn new(params: PasswordParams) -> Result<Self, PasswordParamsError> {
        let params = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            None,
        )
        .map_err(|e| PasswordParamsError(e.to_string()))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let mut passwords = Self {
            argon,
            dummy: String::new(),
        };
        passwords.dummy = passwords
            .hash(&new_token())
            .map_err(|e| PasswordParamsError(e.to_string()))?;
        Ok(passwords)
    }

    /// A PHC string for `password` with a fresh random salt. Blocking.
    pub(crate) fn hash(&self, password: &str) -> Result<String, argon2::password_hash::Error> {
        let salt = SaltString::generate(&mut OsRng);
        Ok(self
            .argon
            .hash_password(password.as_bytes(), &salt)?
            .to_string())
    }

    /// Whether `password` matches `stored` (the dummy hash when `None`, always false). Blocking.
    pub(crate) fn verify(&self, stored: Option<&str>, password: &str) -> bool {
        let phc = stored.unwrap_or(&self.dummy);
        let matches = PasswordHash::new(phc).is_ok_and(|hash| {
            self.argon
                .verify_password(password.as_bytes(), &hash)
                .is_ok()
        });
        matches && stored.is_some()
    }
}

/// A new session token: 256 random bits, hex-encoded.
pub(crate) fn new_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_differ() {
        let passwords = Passwords::new(PasswordParams::INSECURE_FAST).expect("valid params");
        let a = passwords.hash("correct horse").expect("hashes");
        let b = passwords.hash("correct horse").expect("hashes");
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b, "salted");
        assert!(passwords.verify(Some(&a), "correct horse"));
        assert!(!passwords.verify(Some(&a), "wrong horse"));
        assert!(!passwords.verify(None, "anything"));
        assert!(!passwords.verify(Some("not a phc string"), "x"));
    }

    #[test]
    fn owasp_parameters_are_in_the_hash() {
        let passwords = Passwords::new(PasswordParams::OWASP).expect("valid params");
        let hash = passwords.hash("correct horse").expect("hashes");
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
    }

    #[test]
    fn tokens_are_random() {
        let (a, b) = (new_token(), new_token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }
}
