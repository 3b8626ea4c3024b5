//! Password hashing (argon2id, PHC strings) on a fixed pool of hashing threads, and session
//! tokens.
//!
//! argon2id with the OWASP setting needs 19 MiB per hash. Allocated per hash, that memory is
//! kept by the allocator's per-thread arenas and never returned (a login storm left a server at
//! ~380 MB). Instead each hashing thread owns one block of argon2 memory, allocated at its
//! first hash and reused by every hash after it, so hashing costs `threads × 19 MiB` at most,
//! however many logins come. The threads take jobs from one bounded queue; the hub bounds how
//! many are queued (`max_pending_hashes`) and how many one address may queue.

use std::sync::{Arc, Mutex, PoisonError};
use std::thread;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::{mpsc, oneshot};

use crate::PasswordParams;

/// argon2 refused the configured password parameters.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("argon2 refuses the password parameters: {0}")]
pub struct PasswordParamsError(String);

/// Why a hashing job failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HashError {
    /// argon2 failed (it does not with valid parameters).
    #[error("argon2 failed: {0}")]
    Argon2(String),
    /// The hashing threads have stopped.
    #[error("the hashing threads have stopped")]
    Stopped,
}

/// Largest argon2 memory a stored hash may ask for when verified (a damaged or foreign
/// hash must not make the server allocate without bound): 256 MiB.
const MAX_VERIFY_KIB: u32 = 256 * 1024;

/// One job for a hashing thread.
enum Job {
    Hash {
        password: String,
        done: oneshot::Sender<Result<String, HashError>>,
    },
    Verify {
        stored: Option<String>,
        password: String,
        done: oneshot::Sender<bool>,
    },
}

/// Hashes and verifies passwords with one parameter set, on `threads` hashing threads. Cheap
/// to clone; the threads stop when the last clone is dropped.
#[derive(Clone, Debug)]
pub(crate) struct Passwords {
    jobs: mpsc::Sender<Job>,
}

/// What each hashing thread shares.
#[derive(Debug)]
struct Hashing {
    argon: Argon2<'static>,
    params: Params,
    /// A hash of a random password with the same cost, verified when the user does not exist
    /// so that a failed login costs the same either way.
    dummy: String,
}

impl Passwords {
    /// Starts `threads` hashing threads, with room for `queue` jobs waiting.
    ///
    /// # Errors
    /// If argon2 rejects the parameters.
    pub(crate) fn start(
        params: PasswordParams,
        threads: usize,
        queue: usize,
    ) -> Result<Self, PasswordParamsError> {
        let params = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            None,
        )
        .map_err(|e| PasswordParamsError(e.to_string()))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let mut hashing = Hashing {
            argon,
            params,
            dummy: String::new(),
        };
        let mut memory = Vec::new();
        hashing.dummy = hashing
            .hash(&mut memory, &new_token())
            .map_err(|e| PasswordParamsError(e.to_string()))?;
        drop(memory);
        let hashing = Arc::new(hashing);
        let (jobs, queue) = mpsc::channel(queue.max(1));
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..threads.max(1) {
            let (hashing, queue) = (hashing.clone(), queue.clone());
            thread::Builder::new()
                .name(format!("chat-hash-{i}"))
                .spawn(move || work(&hashing, &queue))
                .map_err(|e| PasswordParamsError(format!("cannot start a hashing thread: {e}")))?;
        }
        Ok(Self { jobs })
    }

    /// A PHC string for `password` with a fresh random salt.
    pub(crate) async fn hash(&self, password: String) -> Result<String, HashError> {
        let (done, result) = oneshot::channel();
        self.jobs
            .send(Job::Hash { password, done })
            .await
            .map_err(|_| HashError::Stopped)?;
        result.await.map_err(|_| HashError::Stopped)?
    }

    /// Whether `password` matches `stored` (the dummy hash when `None`, always false).
    pub(crate) async fn verify(
        &self,
        stored: Option<String>,
        password: String,
    ) -> Result<bool, HashError> {
        let (done, result) = oneshot::channel();
        self.jobs
            .send(Job::Verify {
                stored,
                password,
                done,
            })
            .await
            .map_err(|_| HashError::Stopped)?;
        result.await.map_err(|_| HashError::Stopped)
    }
}

/// A hashing thread: takes jobs until every sender is gone, hashing in its own memory block.
fn work(hashing: &Hashing, queue: &Mutex<mpsc::Receiver<Job>>) {
    let mut memory: Vec<Block> = Vec::new();
    loop {
        let job = queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .blocking_recv();
        match job {
            Some(Job::Hash { password, done }) => {
                let _ = done.send(hashing.hash(&mut memory, &password));
            }
            Some(Job::Verify {
                stored,
                password,
                done,
            }) => {
                let matches = hashing.verify(&mut memory, stored.as_deref(), &password);
                let _ = done.send(matches);
            }
            None => return,
        }
    }
}

impl Hashing {
    /// A PHC string for `password` with a fresh random salt, computed in `memory`.
    fn hash(&self, memory: &mut Vec<Block>, password: &str) -> Result<String, HashError> {
        let fail = |e: &dyn std::fmt::Display| HashError::Argon2(e.to_string());
        let salt = SaltString::generate(&mut OsRng);
        let mut salt_bytes = [0u8; 64];
        let salt_bytes = salt
            .as_salt()
            .decode_b64(&mut salt_bytes)
            .map_err(|e| fail(&e))?;
        let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
        let blocks = blocks(memory, self.params.block_count());
        self.argon
            .hash_password_into_with_memory(password.as_bytes(), salt_bytes, &mut out, blocks)
            .map_err(|e| fail(&e))?;
        let phc = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&self.params).map_err(|e| fail(&e))?,
            salt: Some(salt.as_salt()),
            hash: Some(Output::new(&out).map_err(|e| fail(&e))?),
        };
        Ok(phc.to_string())
    }

    /// Whether `password` matches `stored` (the dummy when `None`: then always false, at the
    /// same cost). The stored hash's own parameters are used; a hash that cannot be parsed, or
    /// asks for more than [`MAX_VERIFY_KIB`], matches nothing.
    fn verify(&self, memory: &mut Vec<Block>, stored: Option<&str>, password: &str) -> bool {
        let phc = stored.unwrap_or(&self.dummy);
        let matches = self.verify_phc(memory, phc, password).unwrap_or(false);
        matches && stored.is_some()
    }

    fn verify_phc(&self, memory: &mut Vec<Block>, phc: &str, password: &str) -> Option<bool> {
        let hash = PasswordHash::new(phc).ok()?;
        let (salt, expected) = (hash.salt?, hash.hash?);
        let algorithm = Algorithm::try_from(hash.algorithm).ok()?;
        let version = match hash.version {
            Some(v) => Version::try_from(v).ok()?,
            None => Version::default(),
        };
        let params = Params::try_from(&hash).ok()?;
        if params.m_cost() > MAX_VERIFY_KIB {
            return None;
        }
        let mut salt_bytes = [0u8; 64];
        let salt_bytes = salt.decode_b64(&mut salt_bytes).ok()?;
        let mut out = vec![0u8; expected.len()];
        let argon = Argon2::new(algorithm, version, params.clone());
        if params.block_count() <= self.params.block_count() {
            let blocks = blocks(memory, params.block_count());
            argon
                .hash_password_into_with_memory(password.as_bytes(), salt_bytes, &mut out, blocks)
                .ok()?;
        } else {
            // A hash made with a larger memory cost (an older setting): its own memory, freed
            // after, so the reused block keeps the configured size.
            let mut own = vec![Block::default(); params.block_count()];
            argon
                .hash_password_into_with_memory(password.as_bytes(), salt_bytes, &mut out, &mut own)
                .ok()?;
        }
        // `Output`'s equality is constant-time.
        Some(Output::new(&out).ok()? == expected)
    }
}

/// The first `count` blocks of `memory`, grown to that size if smaller.
fn blocks(memory: &mut Vec<Block>, count: usize) -> &mut [Block] {
    if memory.len() < count {
        memory.resize(count, Block::default());
    }
    &mut memory[..count]
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

    #[tokio::test]
    async fn hashes_verify_and_differ() {
        let passwords = Passwords::start(PasswordParams::INSECURE_FAST, 2, 4).expect("valid");
        let a = passwords
            .hash("correct horse".into())
            .await
            .expect("hashes");
        let b = passwords
            .hash("correct horse".into())
            .await
            .expect("hashes");
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b, "salted");
        let verify = |stored: Option<&str>, password: &str| {
            passwords.verify(stored.map(str::to_owned), password.into())
        };
        assert!(verify(Some(&a), "correct horse").await.expect("runs"));
        assert!(!verify(Some(&a), "wrong horse").await.expect("runs"));
        assert!(!verify(None, "anything").await.expect("runs"));
        assert!(!verify(Some("not a phc string"), "x").await.expect("runs"));
    }

    #[tokio::test]
    async fn hashes_of_the_argon2_crate_and_of_other_parameters_verify() {
        use argon2::password_hash::PasswordHasher;
        let passwords = Passwords::start(PasswordParams::INSECURE_FAST, 1, 1).expect("valid");
        // Made by the argon2 crate's own hasher with a different cost: still verifies.
        let params = Params::new(64, 2, 1, None).expect("valid");
        let other = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(b"old password", &SaltString::generate(&mut OsRng))
            .expect("hashes")
            .to_string();
        assert!(passwords
            .verify(Some(other.clone()), "old password".into())
            .await
            .expect("runs"));
        assert!(!passwords
            .verify(Some(other), "new password".into())
            .await
            .expect("runs"));
        // A stored hash asking for 4 GiB is refused, not computed.
        let huge = "$argon2id$v=19$m=4194304,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$\
                    AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        assert!(!passwords
            .verify(Some(huge.into()), "x".into())
            .await
            .expect("runs"));
    }

    #[tokio::test]
    async fn owasp_parameters_are_in_the_hash() {
        let passwords = Passwords::start(PasswordParams::OWASP, 1, 1).expect("valid");
        let hash = passwords
            .hash("correct horse".into())
            .await
            .expect("hashes");
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
