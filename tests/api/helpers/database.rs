//! Each test's own Postgres database, cloned from a template that has every
//! migration applied, and dropped (connections and all) at the end.

use std::sync::LazyLock;

use diesel::{Connection, PgConnection, RunQueryDsl};

use super::random_hex;

/// Where the tests find Postgres (trust auth); override with
/// `TEST_DATABASE_URL` (the server part only; the path is ignored).
fn server_url() -> url::Url {
    let raw = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    url::Url::parse(&raw).expect("TEST_DATABASE_URL is a URL")
}

fn database_url(name: &str) -> String {
    let mut url = server_url();
    url.set_path(&format!("/{name}"));
    // Loopback needs no TLS, and libpq's TLS state torn down at process exit
    // under live pool threads crashes the test process now and then.
    if url.query().is_none() {
        url.set_query(Some("sslmode=disable"));
    }
    url.to_string()
}

fn maintenance() -> PgConnection {
    PgConnection::establish(&database_url("postgres")).expect("connect to the test Postgres")
}

fn execute(conn: &mut PgConnection, sql: &str) {
    diesel::sql_query(sql)
        .execute(conn)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// A template database with every migration applied, built once per
/// migration set and shared by all test processes; cloning it is much
/// faster than migrating a fresh database per test.
fn template() -> String {
    static NAME: LazyLock<String> = LazyLock::new(|| {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
        let mut files: Vec<_> = walk(std::path::Path::new(dir));
        files.sort();
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325; // FNV-1a: stable across builds
        for (path, contents) in files {
            for byte in path.bytes().chain(contents) {
                hash = (hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3);
            }
        }
        let name = format!("authd_test_template_{hash:016x}");
        let mut conn = maintenance();
        // Serialise template creation across concurrently starting tests.
        execute(&mut conn, "SELECT pg_advisory_lock(7400)");
        let exists: bool = diesel::select(diesel::dsl::sql::<diesel::sql_types::Bool>(&format!(
            "EXISTS (SELECT 1 FROM pg_database WHERE datname = '{name}')"
        )))
        .get_result(&mut conn)
        .expect("query pg_database");
        if !exists {
            let building = format!("{name}_building");
            execute(
                &mut conn,
                &format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"),
            );
            execute(&mut conn, &format!("CREATE DATABASE {building}"));
            authd::db::migrations::prepare(&database_url(&building)).expect("migrate the template");
            execute(
                &mut conn,
                &format!("ALTER DATABASE {building} RENAME TO {name}"),
            );
        }
        execute(&mut conn, "SELECT pg_advisory_unlock(7400)");
        name
    });
    NAME.clone()
}

fn walk(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read migrations") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            let contents = std::fs::read(&path).expect("read migration");
            out.push((path.display().to_string(), contents));
        }
    }
    out
}

/// A database of one test's own, dropped (connections and all) at the end.
pub struct TestDatabase {
    pub name: String,
}

impl TestDatabase {
    /// A clone of the template. Blocks: call it from `spawn_blocking` in
    /// async code that has other work to do meanwhile.
    pub fn create() -> Self {
        let template = template();
        let name = format!("authd_test_{}", random_hex());
        let mut conn = maintenance();
        execute(
            &mut conn,
            &format!("CREATE DATABASE {name} TEMPLATE {template}"),
        );
        Self { name }
    }

    /// A database by this name, which Postgres may not have yet (a start-up
    /// or `authd migrate` is to create it); dropped at the end all the same.
    pub fn named(name: String) -> Self {
        Self { name }
    }

    pub fn url(&self) -> String {
        database_url(&self.name)
    }

    pub fn connect(&self) -> PgConnection {
        PgConnection::establish(&self.url()).expect("connect to the test database")
    }

    /// Runs SQL against this test's database (test set-up and inspection).
    pub fn execute(&self, sql: &str) {
        execute(&mut self.connect(), sql);
    }

    /// Lets new connections in, or not; existing ones are left alone.
    pub fn allow_connections(&self, allowed: bool) {
        execute(
            &mut maintenance(),
            &format!(
                "ALTER DATABASE {} WITH ALLOW_CONNECTIONS {allowed}",
                self.name
            ),
        );
    }

    /// Ends the connections to this database that carry `application_name`.
    pub fn terminate(&self, application_name: &str) {
        execute(
            &mut maintenance(),
            &format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = '{}' AND application_name = '{application_name}'",
                self.name
            ),
        );
    }

    /// Simulates Postgres going away for this database (existing
    /// connections killed, new ones refused) and coming back.
    pub fn set_reachable(&self, reachable: bool) {
        let mut conn = maintenance();
        execute(
            &mut conn,
            &format!(
                "ALTER DATABASE {} WITH ALLOW_CONNECTIONS {reachable}",
                self.name
            ),
        );
        if !reachable {
            execute(
                &mut conn,
                &format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}'",
                    self.name
                ),
            );
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let mut conn = maintenance();
        let _ = diesel::sql_query(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&mut conn);
    }
}
