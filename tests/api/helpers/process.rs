//! The built `authd` binary as a child process: what a crash, a signal or
//! the process's own log is tested on; and the examples, built and run as
//! their users would.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use super::{Server, TestDatabase, free_port};

/// The built `authd` binary, serving `db` on a free port of its own; killed
/// when dropped.
pub struct Process {
    pub child: std::process::Child,
    pub address: String,
    pub log: PathBuf,
}

impl Process {
    /// Starts it with `extra` environment variables and waits until it
    /// answers `/healthz`.
    pub async fn start(db: &TestDatabase, extra: &[(&str, &str)]) -> Self {
        Self::start_program(Path::new(env!("CARGO_BIN_EXE_authd")), db, extra).await
    }

    /// Starts `program`, a server configured as authd is (an example built
    /// on the library), as [`Process::start`] starts authd.
    pub async fn start_program(program: &Path, db: &TestDatabase, extra: &[(&str, &str)]) -> Self {
        Self::launch(program, db, extra, None).await
    }

    /// Starts authd as [`Process::start`] does, its stdout sent to `stdout`
    /// instead of the log file (which keeps stderr).
    pub async fn start_with_stdout(
        db: &TestDatabase,
        extra: &[(&str, &str)],
        stdout: std::process::Stdio,
    ) -> Self {
        let program = Path::new(env!("CARGO_BIN_EXE_authd"));
        Self::launch(program, db, extra, Some(stdout)).await
    }

    async fn launch(
        program: &Path,
        db: &TestDatabase,
        extra: &[(&str, &str)],
        stdout: Option<std::process::Stdio>,
    ) -> Self {
        let port = free_port();
        let address = format!("http://127.0.0.1:{port}");
        let log = std::env::temp_dir().join(format!("authd-test-{port}.log"));
        let output = std::fs::File::create(&log).expect("a log file");
        let mut command = std::process::Command::new(program);
        command
            .env_clear()
            .env("DATABASE_URL", db.url())
            .env("BIND", format!("127.0.0.1:{port}"))
            .env("SECRET_KEY", "durability-test-secret-key-".repeat(3))
            .env("COOKIE_SECURE", "false")
            .env("RUST_LOG", "warn")
            .stdout(stdout.unwrap_or_else(|| {
                std::process::Stdio::from(output.try_clone().expect("a log file"))
            }))
            .stderr(std::process::Stdio::from(output));
        for (name, value) in extra {
            command.env(name, value);
        }
        let child = command.spawn().expect("start the authd binary");
        let mut process = Self {
            child,
            address,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while reqwest::get(format!("{}/healthz", process.address))
            .await
            .is_err()
        {
            if let Some(status) = process.child.try_wait().unwrap() {
                panic!(
                    "{} exited ({status}): {}",
                    program.display(),
                    std::fs::read_to_string(&process.log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} did not start",
                program.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        process
    }

    /// Where it serves, for its actors.
    pub fn server(&self) -> Server {
        Server::at(&self.address)
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.send_term();
        self.child.wait().expect("the exit status")
    }

    /// Sends SIGTERM, without waiting for the process to exit.
    pub fn send_term(&self) {
        let pid = self.child.id().to_string();
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill -TERM");
    }

    /// Kills it (SIGKILL) and waits for it to be gone: a crash.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// The example `name`, built as `cargo build --example` builds it (for this
/// test binary's profile, into its target directory) and up to date; its
/// path. `cargo test` and `cargo nextest run` build the examples with the
/// tests, so this is usually a check that finds nothing to do, and neither
/// holds cargo's build lock while tests run, so it cannot wait on itself.
pub fn example(name: &str) -> PathBuf {
    static BUILT: LazyLock<std::sync::Mutex<Vec<String>>> = LazyLock::new(Default::default);
    // .../<target dir>/<profile dir>/deps/<this test binary>
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("a test binary in <target>/<profile>/deps");
    let target_dir = profile_dir.parent().expect("a target directory");
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev",
        Some(other) => other,
        None => panic!("no profile directory in {}", exe.display()),
    };
    let mut built = BUILT.lock().unwrap();
    if !built.iter().any(|done| done == name) {
        // The cargo running the tests, else the one that built them.
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
        let mut command = std::process::Command::new(cargo);
        command
            .args(["build", "--quiet", "--example", name, "--profile", profile])
            .env("CARGO_TARGET_DIR", target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        // What cargo and nextest set for running a test is not the
        // environment of a build: a build script that reads one (ring's
        // reads CARGO_MANIFEST_DIR) would rebuild half the dependencies,
        // here and again in the next build outside.
        for (variable, _) in std::env::vars_os() {
            let set_for_tests = variable.to_str().is_some_and(|name| {
                name == "OUT_DIR"
                    || name.starts_with("NEXTEST")
                    || [
                        "CARGO_MANIFEST_",
                        "CARGO_PKG_",
                        "CARGO_CRATE_",
                        "CARGO_BIN_",
                        "CARGO_PRIMARY_PACKAGE",
                        "CARGO_TARGET_TMPDIR",
                        "CARGO_RUSTC_CURRENT_DIR",
                    ]
                    .iter()
                    .any(|prefix| name.starts_with(prefix))
            });
            if set_for_tests {
                command.env_remove(variable);
            }
        }
        let output = command.output().expect("run cargo");
        assert!(
            output.status.success(),
            "cargo build --example {name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        built.push(name.to_owned());
    }
    profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}
