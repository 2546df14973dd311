//! The store contract: each case is written once against `&dyn Store` and expanded by
//! `store_contract!` into a SQLite test and a PostgreSQL test, each on a fresh database.
//! SQLite-only behaviour (the WAL bound) is in `wal`.

/// Expands `case(&Fixture)` functions into `sqlite::case` and `postgres::case` tests. A
/// PostgreSQL test returns early, after velro-pgtest printed why, when no server is available.
macro_rules! store_contract {
    ($($case:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let fixture = crate::fixture::Fixture::sqlite().await;
                    super::$case(&fixture).await;
                    fixture.close().await;
                }
            )+
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(fixture) = crate::fixture::Fixture::postgres().await else {
                        return;
                    };
                    super::$case(&fixture).await;
                    fixture.close().await;
                }
            )+
        }
    };
}

mod accounts;
mod admin;
mod console;
mod fixture;
mod flow_states;
mod import;
mod mail_tokens;
mod purge;
mod resets;
mod rotation;
mod sessions;
mod status;
mod unavailable;
mod users;
mod wal;
