//! A fresh PostgreSQL database per test, cloned from a migrated template (made once per machine).

use std::path::{Path, PathBuf};
use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use sha2::{Digest, Sha256};

/// Where the tests find PostgreSQL (trust auth): `CREDITS_TEST_PG`, by default the local server.
pub fn pg_base() -> String {
    std::env::var("CREDITS_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
        .trim_end_matches('/')
        .to_string()
}

/// A database's URL. Tests talk to a local server: no TLS (libpq's OpenSSL teardown at process
/// exit can crash while pooled connections still live in other threads).
pub fn db_url(name: &str) -> String {
    format!("{}/{name}?sslmode=disable", pg_base())
}

fn admin_conn() -> PgConnection {
    PgConnection::establish(&db_url("postgres")).expect("PostgreSQL is reachable at CREDITS_TEST_PG")
}

fn migrations_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations")
}

/// The template's name carries a hash of the migrations, so a changed migration makes a new one.
fn template_name() -> String {
    let mut files: Vec<PathBuf> = Vec::new();
    let mut stack = vec![migrations_dir()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("migrations/ is readable").flatten() {
            let path = entry.path();
            if path.is_dir() { stack.push(path) } else { files.push(path) }
        }
    }
    files.sort();
    let mut hasher = Sha256::new();
    for f in files {
        hasher.update(f.strip_prefix(migrations_dir()).unwrap().to_string_lossy().as_bytes());
        hasher.update(std::fs::read(&f).unwrap());
    }
    format!("credits_test_tpl_{}", &hex::encode(hasher.finalize())[..16])
}

#[derive(QueryableByName)]
pub(crate) struct Count {
    #[diesel(sql_type = BigInt)]
    pub(crate) n: i64,
}

fn exists(conn: &mut PgConnection, db: &str) -> bool {
    diesel::sql_query("SELECT count(*) AS n FROM pg_database WHERE datname = $1")
        .bind::<Text, _>(db)
        .get_result::<Count>(conn)
        .unwrap()
        .n
        > 0
}

/// Make the migrated template once per machine (several test processes race for it: an
/// advisory lock lets one build it, under a temporary name, renamed when complete).
fn ensure_template() -> String {
    let name = template_name();
    let mut conn = admin_conn();
    if exists(&mut conn, &name) {
        return name;
    }
    diesel::sql_query("SELECT pg_advisory_lock(7263001)").execute(&mut conn).unwrap();
    if !exists(&mut conn, &name) {
        let building = format!("{name}_building");
        diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{building}\" WITH (FORCE)")).execute(&mut conn).unwrap();
        diesel::sql_query(format!("CREATE DATABASE \"{building}\"")).execute(&mut conn).unwrap();
        let pool = credits_db::pool(&db_url(&building), 1, Duration::from_secs(10));
        credits_db::migrate(&pool).expect("migrations apply to a fresh database");
        drop(pool);
        diesel::sql_query(format!("ALTER DATABASE \"{building}\" RENAME TO \"{name}\"")).execute(&mut conn).unwrap();
    }
    diesel::sql_query("SELECT pg_advisory_unlock(7263001)").execute(&mut conn).unwrap();
    name
}

/// A database of its own for one test, dropped when the test ends.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub fn new() -> TestDb {
        let template = ensure_template();
        let name = format!("credits_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = admin_conn();
        let mut tries = 0;
        loop {
            // Two clones of one template at the same moment can collide; try again shortly.
            match diesel::sql_query(format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\"")).execute(&mut conn) {
                Ok(_) => break,
                Err(e) if tries < 50 => {
                    tries += 1;
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("cannot clone the template database: {e}"),
            }
        }
        TestDb { url: db_url(&name), name }
    }

    /// An empty database (for the migration tests).
    pub fn empty() -> TestDb {
        let name = format!("credits_test_{}", uuid::Uuid::new_v4().simple());
        diesel::sql_query(format!("CREATE DATABASE \"{name}\"")).execute(&mut admin_conn()).unwrap();
        TestDb { url: db_url(&name), name }
    }

    pub fn conn(&self) -> PgConnection {
        PgConnection::establish(&self.url).unwrap()
    }
}

impl Default for TestDb {
    fn default() -> Self {
        TestDb::new()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Ok(mut conn) = PgConnection::establish(&db_url("postgres")) {
            let _ =
                diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name)).execute(&mut conn);
        }
    }
}
