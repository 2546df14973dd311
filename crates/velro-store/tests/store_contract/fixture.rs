//! What every contract case starts from: a migrated store on a fresh database, a way to count
//! rows behind the trait's back, and builders for users, sessions and tokens.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sqlx::{Connection, PgConnection, SqliteConnection};
use tempfile::TempDir;
use time::OffsetDateTime;
use uuid::Uuid;
use velro_core::domain::{DisplayName, Email, NewUser, PasswordHash, SessionId, User, UserId};
use velro_core::store::{ImportStore, NewSession, RefreshPolicy, Store, TokenHash};
use velro_core::{Clock, SystemClock};
use velro_store::{PgConfig, PgStore, SqliteConfig, SqliteStore};

pub struct Fixture {
    store: Arc<dyn Store>,
    import: Arc<dyn ImportStore>,
    backend: Backend,
}

enum Backend {
    Sqlite {
        store: Arc<SqliteStore>,
        path: PathBuf,
        // Removed on drop, after the store is closed.
        _dir: TempDir,
    },
    Postgres {
        store: Arc<PgStore>,
        url: String,
    },
}

pub fn sqlite_config(path: PathBuf) -> SqliteConfig {
    SqliteConfig {
        path,
        max_connections: 4,
        acquire_timeout: Duration::from_secs(10),
        busy_timeout: Duration::from_secs(5),
    }
}

impl Fixture {
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        // A folder that does not exist yet: connect creates it.
        let path = dir.path().join("data").join("velro.db");
        let store = SqliteStore::connect(&sqlite_config(path.clone()))
            .await
            .expect("open SQLite");
        store.migrate().await.expect("migrate SQLite");
        let store = Arc::new(store);
        Self {
            store: store.clone(),
            import: store.clone(),
            backend: Backend::Sqlite {
                store,
                path,
                _dir: dir,
            },
        }
    }

    pub async fn postgres() -> Option<Self> {
        let url = velro_pgtest::fresh_database().await?;
        let config = PgConfig {
            url: url.clone(),
            max_connections: 12,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(10),
            statement_timeout: Duration::from_secs(10),
        };
        let store = PgStore::connect(&config).await.expect("connect PostgreSQL");
        store.migrate().await.expect("migrate PostgreSQL");
        let store = Arc::new(store);
        Some(Self {
            store: store.clone(),
            import: store.clone(),
            backend: Backend::Postgres { store, url },
        })
    }

    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.backend, Backend::Postgres { .. })
    }

    /// The same database's bulk-import writes.
    pub fn import(&self) -> &dyn ImportStore {
        self.import.as_ref()
    }

    /// For tasks that run at the same time.
    pub fn shared(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// `SELECT count(*) … WHERE … = $1` on a connection of its own, bypassing the store.
    pub async fn count(&self, sql: &str, id: Uuid) -> i64 {
        match &self.backend {
            Backend::Sqlite { path, .. } => {
                let url = format!("sqlite://{}?mode=ro", path.display());
                let mut conn = SqliteConnection::connect(&url).await.expect("raw SQLite");
                let n = sqlx::query_scalar(sql)
                    .bind(id)
                    .fetch_one(&mut conn)
                    .await
                    .expect("count");
                conn.close().await.expect("close raw SQLite");
                n
            }
            Backend::Postgres { url, .. } => {
                let mut conn = PgConnection::connect(url).await.expect("raw PostgreSQL");
                let n = sqlx::query_scalar(sql)
                    .bind(id)
                    .fetch_one(&mut conn)
                    .await
                    .expect("count");
                conn.close().await.expect("close raw PostgreSQL");
                n
            }
        }
    }

    /// Closes the store; it answers `Unavailable` from then on.
    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite { store, .. } => store.close().await,
            Backend::Postgres { store, .. } => store.close().await,
        }
    }
}

/// Now, to the microsecond, as the core's clocks give it.
pub fn t0() -> OffsetDateTime {
    SystemClock.now()
}

pub fn secs(n: i64) -> time::Duration {
    time::Duration::seconds(n)
}

pub fn policy() -> RefreshPolicy {
    RefreshPolicy {
        lifetime: time::Duration::days(7),
        remember_me_lifetime: time::Duration::days(30),
        reuse_grace: secs(10),
    }
}

pub fn token() -> TokenHash {
    let mut hash = [0_u8; 32];
    hash[..16].copy_from_slice(Uuid::new_v4().as_bytes());
    hash[16..].copy_from_slice(Uuid::new_v4().as_bytes());
    TokenHash(hash)
}

pub fn email(address: &str) -> Email {
    Email::parse(address).expect("a valid test address")
}

pub fn hash(label: &str) -> PasswordHash {
    PasswordHash::new(format!("$argon2id$v=19$m=19456,t=2,p=1${label}"))
}

pub fn new_user(address: &str, at: OffsetDateTime) -> NewUser {
    NewUser {
        id: UserId(Uuid::new_v4()),
        email: email(address),
        password_hash: hash(address),
        display_name: Some(DisplayName::parse("Ada Lovelace").expect("a valid name")),
        credits_balance: 1000,
        email_confirmed: false,
        avatar_url: None,
        user_metadata: None,
        app_metadata: None,
        now: at,
    }
}

pub fn new_session(user_id: UserId, at: OffsetDateTime, remember_me: bool) -> NewSession {
    NewSession {
        id: SessionId(Uuid::new_v4()),
        user_id,
        remember_me,
        user_agent: Some("Mozilla/5.0 (test)".into()),
        ip: Some("203.0.113.7".into()),
        refresh_token: token(),
        refresh_expires_at: at + policy().lifetime_for(remember_me),
        now: at,
    }
}

/// A user as registration leaves it: with one session and its first refresh token.
pub struct Registered {
    pub user: User,
    pub session: SessionId,
    pub refresh: TokenHash,
}

pub async fn register(store: &dyn Store, address: &str, at: OffsetDateTime) -> Registered {
    let user = new_user(address, at);
    let session = new_session(user.id, at, false);
    let (session_id, refresh) = (session.id, session.refresh_token);
    let user = store.create_user(user, session).await.expect("create_user");
    Registered {
        user,
        session: session_id,
        refresh,
    }
}

/// Another session for the user; returns its id and refresh token.
pub async fn sign_in(
    store: &dyn Store,
    user_id: UserId,
    at: OffsetDateTime,
) -> (SessionId, TokenHash) {
    let session = new_session(user_id, at, false);
    let ids = (session.id, session.refresh_token);
    store.create_session(session).await.expect("create_session");
    ids
}

pub async fn is_live(store: &dyn Store, session: SessionId) -> bool {
    store
        .find_live_session(session)
        .await
        .expect("find_live_session")
        .is_some()
}
