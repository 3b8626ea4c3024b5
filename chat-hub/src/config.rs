//! [`Config`]: every limit and interval of the engine, with production defaults.

/// argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PasswordParams {
    /// Memory per hash, in KiB.
    pub memory_kib: u32,
    /// Passes over memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl PasswordParams {
    /// OWASP's recommended argon2id setting: 19 MiB, 2 iterations, 1 lane.
    pub const OWASP: Self = Self {
        memory_kib: 19 * 1024,
        iterations: 2,
        parallelism: 1,
    };

    /// The cheapest setting argon2 accepts. For tests only: it protects nothing.
    pub const INSECURE_FAST: Self = Self {
        memory_kib: 8,
        iterations: 1,
        parallelism: 1,
    };
}

/// An inconsistent [`Config`]: the sentence names the rule broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub &'static str);

/// Limits and intervals of the engine. `Config::default()` is the production setting.
#[derive(Clone, Debug)]
pub struct Config {
    /// Server name and version, sent in the welcome.
    pub server_name: String,
    /// Largest frame payload, both directions.
    pub max_frame_len: usize,
    /// Longest message text, in bytes.
    pub max_text_len: usize,
    /// Most rooms one user may be in.
    pub max_rooms_per_user: usize,
    /// Most messages in one history page.
    pub max_history_page: u16,
    /// Sustained requests per second per connection (token bucket rate).
    pub request_rate_per_sec: u32,
    /// Requests in a burst above the rate (token bucket capacity).
    pub request_burst: u32,
    /// Time from connect to a successful login before the connection is closed.
    pub login_timeout_ms: u64,
    /// A network connection silent this long is pinged (announced in the welcome; checked
    /// every quarter of the shorter of this and the timeout).
    pub keepalive_interval_ms: u64,
    /// A pinged network connection silent this long is closed (announced).
    pub keepalive_timeout_ms: u64,
    /// The public room every user joins at registration.
    pub default_room: String,
    /// Rooms with more members than this get no presence broadcasts, and their membership
    /// notices go only to the user concerned.
    pub presence_room_limit: usize,
    /// Presence changes are held this long, so a quick reconnect broadcasts nothing.
    pub presence_coalesce_ms: u64,
    /// At most one typing relay per user and target in this interval.
    pub typing_relay_interval_ms: u64,
    /// A typing state not refreshed for this long ends by itself.
    pub typing_expiry_ms: u64,
    /// Most simultaneous typing targets per user.
    pub max_typing_per_user: usize,
    /// Lifetime of a session token.
    pub token_ttl_ms: u64,
    /// Messages per backlog batch at login (a batch is also cut at
    /// [`backlog_bytes`](Self::backlog_bytes)).
    pub backlog_batch: usize,
    /// Devices remembered per user; the least recently used is forgotten past this.
    pub max_devices_per_user: usize,
    /// Password attempts for one username from one source address before each further one
    /// must wait (exponential back-off; see `hub/throttle.rs`).
    pub login_free_attempts: u32,
    /// Password attempts from one source address, over all usernames, before each further one
    /// must wait (against password spraying).
    pub login_source_free_attempts: u32,
    /// The first back-off; each further failure doubles it.
    pub login_backoff_base_ms: u64,
    /// The longest back-off.
    pub login_backoff_max_ms: u64,
    /// Password hashes (logins, registrations) one source address may have in flight.
    pub max_hashes_per_source: usize,
    /// Password hashes in flight overall; past it, logins fail at once with `RateLimited`.
    pub max_pending_hashes: usize,
    /// How often acknowledged positions are written to storage.
    pub cursor_flush_ms: u64,
    /// Queued outbound bytes past which typing and presence events are dropped.
    pub outbox_soft_bytes: usize,
    /// Queued outbound bytes past which the connection is closed as a slow consumer (live
    /// messages never take it there: past the soft bound a connection catches up from storage
    /// instead).
    pub outbox_hard_bytes: usize,
    /// A connection catching up from storage that takes nothing from its queue for this long
    /// is closed: it makes no progress at all.
    pub stall_timeout_ms: u64,
    /// *(v2)* Unread messages are counted per conversation up to this many (a count at the
    /// cap means at least that many): the cost of counting is bounded by it.
    pub unread_cap: u32,
    /// *(v2)* Most conversations whose unread messages are counted at a login (rooms first,
    /// then the newest direct conversations); the others are not listed.
    pub max_unread_convs: usize,
    /// argon2id cost.
    pub password: PasswordParams,
    /// Password hashes computed at once, each on a blocking thread (default: one fewer than
    /// the cores, at least one).
    pub max_concurrent_hashes: usize,
    /// *(cluster)* Whether other nodes write to the same database. Then every commit, this
    /// node's and the others' ([`Hub::handle_committed`](crate::Hub::handle_committed)), is
    /// applied in id order, and one that arrives above a hole waits for the batches below it.
    pub cluster: bool,
    /// *(cluster)* How long a hole below a commit may wait for the other nodes' batches before
    /// its messages are read from storage.
    pub cluster_wait_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server_name: concat!("chat/", env!("CARGO_PKG_VERSION")).into(),
            max_frame_len: chat_proto::DEFAULT_MAX_FRAME_LEN,
            max_text_len: 4096,
            max_rooms_per_user: 100,
            max_history_page: 100,
            request_rate_per_sec: 50,
            request_burst: 100,
            login_timeout_ms: 30_000,
            keepalive_interval_ms: 30_000,
            keepalive_timeout_ms: 15_000,
            default_room: "general".into(),
            presence_room_limit: 100,
            presence_coalesce_ms: 1000,
            typing_relay_interval_ms: 3000,
            typing_expiry_ms: 6000,
            max_typing_per_user: 8,
            token_ttl_ms: 30 * 24 * 3600 * 1000,
            backlog_batch: 256,
            max_devices_per_user: 16,
            login_free_attempts: 3,
            login_source_free_attempts: 20,
            login_backoff_base_ms: 1000,
            login_backoff_max_ms: 15 * 60 * 1000,
            max_hashes_per_source: 2,
            max_pending_hashes: 32,
            cursor_flush_ms: 1000,
            outbox_soft_bytes: 256 * 1024,
            outbox_hard_bytes: 1024 * 1024,
            stall_timeout_ms: 60_000,
            unread_cap: 1000,
            max_unread_convs: 1000,
            password: PasswordParams::OWASP,
            // Leave a core for delivering messages, so a login storm cannot stall chat.
            max_concurrent_hashes: std::thread::available_parallelism()
                .map_or(1, |n| n.get().saturating_sub(1).max(1)),
            cluster: false,
            cluster_wait_ms: 50,
        }
    }
}

impl Config {
    /// Checks that the limits are consistent with each other.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first inconsistency.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let checks = [
            (
                (1024..=chat_proto::MAX_FRAME_LEN_CAP).contains(&self.max_frame_len),
                "max_frame_len must be within 1 KiB..=16 MiB",
            ),
            (
                self.max_text_len >= 1 && self.max_text_len + 512 <= self.max_frame_len,
                "max_text_len must be at least 1 and leave 512 bytes of a frame for the envelope",
            ),
            (
                crate::names::room(&self.default_room).is_ok(),
                "default_room must be a valid room name",
            ),
            (
                self.keepalive_interval_ms >= 1 && self.keepalive_timeout_ms >= 1,
                "keepalive interval and timeout must be at least 1 ms",
            ),
            (
                self.max_history_page >= 1 && self.backlog_batch >= 1,
                "page and batch sizes must be at least 1",
            ),
            (
                self.unread_cap >= 1 && self.max_unread_convs >= 1,
                "the unread cap and the conversations counted must be at least 1",
            ),
            (
                self.request_rate_per_sec >= 1 && self.request_burst >= 1,
                "request rate and burst must be at least 1",
            ),
            (
                self.outbox_soft_bytes <= self.outbox_hard_bytes
                    && self.outbox_soft_bytes >= 2 * self.max_frame_len,
                "outbox bounds must satisfy soft <= hard and soft >= 2 frames",
            ),
            (
                self.max_devices_per_user >= 1
                    && self.max_concurrent_hashes >= 1
                    && self.max_hashes_per_source >= 1
                    && self.max_pending_hashes >= self.max_hashes_per_source,
                "device and hashing limits must be at least 1, the pending hashes at least those \
                 of one source",
            ),
        ];
        match checks.iter().find(|(ok, _)| !ok) {
            Some(&(_, why)) => Err(ConfigError(why)),
            None => Ok(()),
        }
    }

    /// Most bytes of one backlog batch: half the soft queue bound, so a replay never makes a
    /// connection look slow.
    pub fn backlog_bytes(&self) -> usize {
        self.outbox_soft_bytes / 2
    }

    /// Each connection's request budget.
    pub(crate) fn request_limit(&self) -> crate::rate::Limit {
        crate::rate::Limit::new(self.request_rate_per_sec, self.request_burst)
    }

    /// The limits announced to clients in the welcome.
    pub fn limits(&self) -> chat_proto::Limits {
        let clamp = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        chat_proto::Limits {
            max_frame_len: clamp(self.max_frame_len as u64),
            max_text_len: clamp(self.max_text_len as u64),
            max_rooms_per_user: clamp(self.max_rooms_per_user as u64),
            max_history_page: self.max_history_page,
            request_rate_per_sec: self.request_rate_per_sec,
            request_burst: self.request_burst,
            login_timeout_ms: clamp(self.login_timeout_ms),
            keepalive_interval_ms: clamp(self.keepalive_interval_ms),
            keepalive_timeout_ms: clamp(self.keepalive_timeout_ms),
        }
    }
}
