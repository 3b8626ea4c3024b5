//! [`TestDb`]: a fresh database for one test, on SQLite (a temporary file) or PostgreSQL (a
//! database created for the test on the server named by [`POSTGRES_ENV`], dropped with the
//! last clone of its `TestDb`), and [`on_every_backend!`](crate::on_every_backend), which runs
//! a test on each.
//!
//! Without [`POSTGRES_ENV`] the PostgreSQL tests are skipped, with the reason printed once per
//! test binary, so `cargo test --workspace` passes on a machine without PostgreSQL; under
//! `CI=true` a missing PostgreSQL fails them instead.

use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Once};
use std::time::{SystemTime, UNIX_EPOCH};

use chat_core::{Database, Durability, Location};
use sqlx::{Connection, PgConnection};

/// The environment variable naming a PostgreSQL server for tests: a URL such as
/// `postgres://chat@127.0.0.1:5432/postgres` whose user may create databases. Each test gets
/// its own database there.
pub const POSTGRES_ENV: &str = "CHAT_TEST_POSTGRES";

/// A database for one test. Clones share it; it is deleted when the last clone is dropped.
#[derive(Clone, Debug)]
pub struct TestDb {
    location: Location,
    _guard: Arc<Guard>,
}

#[derive(Debug)]
enum Guard {
    Dir(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin: String, name: String },
}

impl TestDb {
    /// A new SQLite file in a temporary directory.
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        Self {
            location: Location::Sqlite(dir.path().join("chat.db")),
            _guard: Arc::new(Guard::Dir(dir)),
        }
    }

    /// A new, empty PostgreSQL database on the server named by [`POSTGRES_ENV`], or `None`
    /// (the test is skipped, said once on stderr) when it is not set.
    ///
    /// # Panics
    /// If [`POSTGRES_ENV`] is not set and `CI=true` (CI must test PostgreSQL), or the server
    /// cannot be reached or refuses to create the database.
    pub async fn postgres() -> Option<Self> {
        let Ok(admin) = std::env::var(POSTGRES_ENV) else {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            assert!(
                !ci,
                "CI=true but {POSTGRES_ENV} is not set: CI must run the PostgreSQL tests"
            );
            static SKIP: Once = Once::new();
            SKIP.call_once(|| {
                // Straight to the stderr stream: the test harness captures `eprintln!`.
                let _ = writeln!(
                    std::io::stderr(),
                    "note: PostgreSQL tests skipped: {POSTGRES_ENV} is not set \
                     (e.g. {POSTGRES_ENV}=postgres://USER@127.0.0.1/postgres; .ci/run starts one)"
                );
            });
            return None;
        };
        Some(Self::postgres_on(&admin).await)
    }

    /// A new, empty PostgreSQL database on the server of `admin` (a URL whose user may create
    /// databases), dropped with the last clone.
    ///
    /// # Panics
    /// If the server cannot be reached or refuses to create the database.
    pub async fn postgres_on(admin: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "chat_test_{}_{}_{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let shown = chat_core::redact_url(admin);
        let mut admin_conn = PgConnection::connect(admin)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {shown}: {e}"));
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin_conn)
            .await
            .unwrap_or_else(|e| panic!("{shown}: cannot create a database: {e}"));
        let _ = admin_conn.close().await;
        Self {
            location: Location::Postgres(with_database(admin, &name)),
            _guard: Arc::new(Guard::Postgres {
                admin: admin.to_owned(),
                name,
            }),
        }
    }

    /// Where the database is.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The `--db` value naming it, for the server binary.
    pub fn arg(&self) -> String {
        match &self.location {
            Location::Sqlite(path) => path.display().to_string(),
            Location::Postgres(url) => url.clone(),
        }
    }

    /// Bytes on disk of a SQLite database (the file and its write-ahead log); `None` on
    /// PostgreSQL.
    pub fn sqlite_bytes(&self) -> Option<u64> {
        let Location::Sqlite(path) = &self.location else {
            return None;
        };
        let mut wal = path.clone().into_os_string();
        wal.push("-wal");
        let size = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
        Some(size(path) + size(std::path::Path::new(&wal)))
    }

    /// `"sqlite"` or `"postgres"`, for messages.
    pub fn backend(&self) -> &'static str {
        match self.location {
            Location::Sqlite(_) => "sqlite",
            Location::Postgres(_) => "postgres",
        }
    }

    /// Cuts every connection to this PostgreSQL database, as a restart of the database server
    /// does (`pg_terminate_backend`); returns how many were cut.
    ///
    /// # Panics
    /// If this is not a PostgreSQL database, or the server cannot be reached.
    pub async fn disconnect_all(&self) -> i64 {
        let Guard::Postgres { admin, name } = &*self._guard else {
            panic!("disconnect_all: not a PostgreSQL database");
        };
        let mut conn = PgConnection::connect(admin).await.expect("connects");
        let cut: i64 = sqlx::query_scalar(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(name)
        .fetch_one(&mut conn)
        .await
        .expect("terminates");
        let _ = conn.close().await;
        cut
    }

    /// Refuses (`false`) or allows again (`true`) new connections to this PostgreSQL
    /// database; refusing also cuts the open ones: the database is down until allowed again.
    ///
    /// # Panics
    /// If this is not a PostgreSQL database, or the server cannot be reached.
    pub async fn allow_connections(&self, allow: bool) {
        let Guard::Postgres { admin, name } = &*self._guard else {
            panic!("allow_connections: not a PostgreSQL database");
        };
        let mut conn = PgConnection::connect(admin).await.expect("connects");
        sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS {allow}"))
            .execute(&mut conn)
            .await
            .expect("alters");
        let _ = conn.close().await;
        if !allow {
            self.disconnect_all().await;
        }
    }

    /// Opens it (migrating it), with full durability.
    pub async fn open(&self) -> Database {
        Database::open(&self.location, Durability::Full)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let Self::Postgres { admin, name } = self else {
            return;
        };
        let (admin, name) = (admin.clone(), name.clone());
        // Drop runs inside a test's runtime, which must not block on itself: a thread of its
        // own with a runtime of its own. Best effort: a throw-away server loses it anyway.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut conn = PgConnection::connect(&admin).await.ok()?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await
                    .ok()?;
                conn.close().await.ok()
            })
        });
        let _ = dropped.join();
    }
}

/// `url` with its database (the path) replaced by `name`, the query kept.
fn with_database(url: &str, name: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let query = tail.find('?').map_or("", |i| &tail[i..]);
    format!("{scheme}://{authority}/{name}{query}")
}

/// Runs each listed test, an `async fn(TestDb)` of the calling module, once per backend: a
/// `#[tokio::test]` of the same name in module `sqlite` and in module `postgres` (skipped
/// without [`POSTGRES_ENV`], see [`TestDb::postgres`]).
#[macro_export]
macro_rules! on_every_backend {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test($crate::TestDb::sqlite()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $test() {
                    if let Some(db) = $crate::TestDb::postgres().await {
                        super::$test(db).await;
                    }
                }
            )*
        }
    };
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_database_is_replaced_and_the_rest_kept() {
        assert_eq!(
            with_database("postgres://chat@127.0.0.1:5432/postgres", "t1"),
            "postgres://chat@127.0.0.1:5432/t1"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "t2"),
            "postgres://u:p@h/t2?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "t3"), "postgres://h/t3");
    }
}
