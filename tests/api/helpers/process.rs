//! The built `authd` binary as a child process: what a crash, a signal or
//! the process's own log is tested on.

use std::time::{Duration, Instant};

use super::{Server, TestDatabase, free_port};

/// The built `authd` binary, serving `db` on a free port of its own; killed
/// when dropped.
pub struct Process {
    pub child: std::process::Child,
    pub address: String,
    pub log: std::path::PathBuf,
}

impl Process {
    /// Starts it with `extra` environment variables and waits until it
    /// answers `/healthz`.
    pub async fn start(db: &TestDatabase, extra: &[(&str, &str)]) -> Self {
        let port = free_port();
        let address = format!("http://127.0.0.1:{port}");
        let log = std::env::temp_dir().join(format!("authd-test-{port}.log"));
        let output = std::fs::File::create(&log).expect("a log file");
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_authd"));
        command
            .env_clear()
            .env("DATABASE_URL", db.url())
            .env("BIND", format!("127.0.0.1:{port}"))
            .env("SECRET_KEY", "durability-test-secret-key-".repeat(3))
            .env("COOKIE_SECURE", "false")
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::from(
                output.try_clone().expect("a log file"),
            ))
            .stderr(std::process::Stdio::from(output));
        for (name, value) in extra {
            command.env(name, value);
        }
        let child = command.spawn().expect("start the authd binary");
        let process = Self {
            child,
            address,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while reqwest::get(format!("{}/healthz", process.address))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "authd did not start");
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
