//! The README runs top to bottom: its shell blocks (```sh, ```bash or
//! ```shell), in order, as a new user pasting them would run them, against
//! a fresh authd (the built binary, with a real SMTP server for its mail),
//! each checked against what the README says it does.
//!
//! Each shell block has an HTML comment on the line before its fence, which
//! GitHub does not render:
//!
//! ```text
//! <!-- readme-test: CLAUSE; CLAUSE; ... -->
//! ```
//!
//! - `skip (why)`: not run, alone. For what this test does itself or cannot
//!   do: starting a server, the suite, a deployment of one's own.
//! - `exit N`: the block's exit status (without it, 0).
//! - `status N N ...`: the HTTP status of every response the block's `curl`
//!   and `http` commands got, in order. Without it the block may make no
//!   request.
//! - `stdout contains "TEXT"`: the block's standard output has TEXT; may be
//!   repeated.
//! - `stdin link PATH mailed to ADDRESS`: the block reads a link the way a
//!   reader pastes one; this test waits for the first mail to ADDRESS
//!   arriving after the block starts whose link has PATH, and types that
//!   link and Enter. Without it the block's standard input is empty.
//!
//! A shell block without a comment, or a comment without a shell block
//! after it, fails the test: each new block gets a decision.
//!
//! How a block runs: `bash -euo pipefail` in one directory shared by all
//! blocks (cookie jars and HTTPie sessions stay there), starting with the
//! variables the earlier blocks set (new variables only: a changed `PATH`
//! does not carry over). Only the ports change: `:8080` becomes the
//! server's, `:8081` the microblog example's. The environment is the
//! quick start's (no configuration) and the mail settings of "Forgotten
//! passwords": `SMTP_URL` names the test's SMTP server, the command line's
//! `DATABASE_URL` the server's database, `BCRYPT_COST` is the lowest (no
//! block depends on it). `curl` and `http` are shims that run the real ones
//! and note each response's status; `authd` is the built binary; HTTPie is
//! told to ignore standard input, which a terminal's paste never needs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::mail_sink::MailSink;
use crate::helpers::{TestDatabase, free_port};

const README: &str = include_str!("../../README.md");

#[test]
fn the_readme_runs_top_to_bottom() {
    let blocks = shell_blocks(README);
    assert!(
        blocks.iter().filter(|block| block.expect.is_some()).count() >= 10,
        "the README's runnable blocks were not found: {blocks:#?}"
    );

    let db = TestDatabase::create();
    let sink = MailSink::start();
    let dir = WorkDir::new();
    let tools = Tools::find();
    let mut env = BTreeMap::from([
        ("DATABASE_URL".to_owned(), db.url()),
        ("SMTP_URL".to_owned(), sink.url()),
        ("BCRYPT_COST".to_owned(), "4".to_owned()),
    ]);
    let authd = Server::start(&dir, "authd", Path::new(env!("CARGO_BIN_EXE_authd")), &env);
    let microblog = Server::start(&dir, "microblog", &microblog_binary(), &env);

    tools.install(&dir);
    let path = std::env::var("PATH").unwrap_or_default();
    env.extend([
        ("PATH".to_owned(), format!("{}:{path}", dir.bin().display())),
        ("HOME".to_owned(), dir.home().display().to_string()),
        (
            "HTTPIE_CONFIG_DIR".to_owned(),
            dir.httpie().display().to_string(),
        ),
        (
            "README_TEST_STATUSES".to_owned(),
            dir.statuses().display().to_string(),
        ),
    ]);

    for block in &blocks {
        let Some(expect) = &block.expect else {
            continue;
        };
        let code = block
            .code
            .replace(":8080", &format!(":{}", authd.port))
            .replace(":8081", &format!(":{}", microblog.port));
        let run = run_block(&dir, &env, &code, expect, &sink);
        let problems = expect.check(&run);
        if !problems.is_empty() {
            panic!(
                "README.md line {}: the block does not do what its comment says.\n\
                 --- ran (bash -euo pipefail):\n{}\
                 --- expected: {}\n\
                 --- happened: {}\n\
                 --- stdout:\n{}\n--- stderr:\n{}\n\
                 --- authd's log, last lines:\n{}",
                block.line,
                indent(&code),
                expect.describe(),
                problems.join("; "),
                run.stdout,
                run.stderr,
                authd.log_tail(),
            );
        }
    }
}

/// A fenced block of the README.
#[derive(Debug)]
struct Block {
    /// The line of its opening fence, from 1.
    line: usize,
    code: String,
    /// What its comment says; `None` for `skip`.
    expect: Option<Expect>,
}

#[derive(Debug, Default)]
struct Expect {
    exit: i32,
    statuses: Vec<u16>,
    stdout: Vec<String>,
    /// The link's path and the address it is mailed to.
    stdin_link: Option<(String, String)>,
}

const MARK: &str = "<!-- readme-test:";

/// Every shell block, in order, with its comment parsed; panics naming the
/// line of a block without one or of a comment it cannot read.
fn shell_blocks(readme: &str) -> Vec<Block> {
    let lines: Vec<&str> = readme.lines().collect();
    let mut blocks = Vec::new();
    let mut comment: Option<(usize, &str)> = None;
    let mut index = 0;
    while index < lines.len() {
        let line = lines[index];
        let trimmed = line.trim_start();
        if trimmed.starts_with(MARK) {
            assert!(
                comment.is_none(),
                "README.md line {}: a readme-test comment with no shell block after it",
                comment.unwrap().0
            );
            comment = Some((index + 1, trimmed));
            index += 1;
            continue;
        }
        if let Some(info) = trimmed.strip_prefix("```") {
            let indent = line.len() - trimmed.len();
            let start = index + 1;
            let mut end = start;
            while end < lines.len() && !lines[end].trim_start().starts_with("```") {
                end += 1;
            }
            let shell = matches!(info.trim(), "sh" | "bash" | "shell");
            if shell {
                let (_, text) = comment.take().unwrap_or_else(|| {
                    panic!(
                        "README.md line {start}: a shell block without a readme-test comment \
                         before it (see tests/api/readme.rs)"
                    )
                });
                let code: String = lines[start..end]
                    .iter()
                    .map(|l| format!("{}\n", l.get(indent..).unwrap_or_else(|| l.trim_start())))
                    .collect();
                let expect = parse_comment(text).unwrap_or_else(|error| {
                    panic!("README.md line {}: {error}: {text}", start - 1)
                });
                blocks.push(Block {
                    line: start,
                    code,
                    expect,
                });
            } else if let Some((at, _)) = comment {
                panic!("README.md line {at}: a readme-test comment before a block that is not sh");
            }
            index = end + 1;
            continue;
        }
        if !trimmed.is_empty()
            && let Some((at, _)) = comment
        {
            panic!("README.md line {at}: a readme-test comment with no shell block after it");
        }
        index += 1;
    }
    if let Some((at, _)) = comment {
        panic!("README.md line {at}: a readme-test comment with no shell block after it");
    }
    blocks
}

/// `Ok(None)` for `skip`.
fn parse_comment(comment: &str) -> Result<Option<Expect>, String> {
    let body = comment
        .strip_prefix(MARK)
        .and_then(|rest| rest.trim_end().strip_suffix("-->"))
        .ok_or("not one line of <!-- readme-test: ... -->")?
        .trim();
    if body.starts_with("skip") {
        return Ok(None);
    }
    let mut expect = Expect::default();
    for clause in body.split(';').map(str::trim) {
        if let Some(code) = clause.strip_prefix("exit ") {
            expect.exit = code.trim().parse().map_err(|_| "exit takes a number")?;
        } else if let Some(codes) = clause.strip_prefix("status ") {
            expect.statuses = codes
                .split_whitespace()
                .map(|code| code.parse().map_err(|_| format!("not a status: {code}")))
                .collect::<Result<_, _>>()?;
        } else if let Some(text) = clause.strip_prefix("stdout contains ") {
            let text = text
                .strip_prefix('"')
                .and_then(|t| t.strip_suffix('"'))
                .ok_or("stdout contains takes a \"quoted\" text")?;
            expect.stdout.push(text.to_owned());
        } else if let Some(rest) = clause.strip_prefix("stdin link ") {
            let (path, address) = rest
                .split_once(" mailed to ")
                .ok_or("stdin link PATH mailed to ADDRESS")?;
            expect.stdin_link = Some((path.trim().to_owned(), address.trim().to_owned()));
        } else {
            return Err(format!("an unknown clause {clause:?}"));
        }
    }
    Ok(Some(expect))
}

impl Expect {
    fn describe(&self) -> String {
        let mut out = format!("exit {}", self.exit);
        if self.statuses.is_empty() {
            out.push_str("; no HTTP request");
        } else {
            let _ = write!(out, "; status {}", join(&self.statuses));
        }
        for text in &self.stdout {
            let _ = write!(out, "; stdout contains {text:?}");
        }
        if let Some((path, address)) = &self.stdin_link {
            let _ = write!(out, "; a link to {path} mailed to {address}");
        }
        out
    }

    /// What differs from the expectation; empty when nothing does.
    fn check(&self, run: &Run) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(problem) = &run.problem {
            problems.push(problem.clone());
        }
        if run.problem.is_none() && run.exit != Some(self.exit) {
            problems.push(match run.exit {
                Some(code) => format!("exit {code}"),
                None => "killed by a signal".into(),
            });
        }
        if run.statuses != self.statuses {
            problems.push(if run.statuses.is_empty() {
                "no HTTP response".into()
            } else {
                format!("status {}", join(&run.statuses))
            });
        }
        for text in &self.stdout {
            if !run.stdout.contains(text) {
                problems.push(format!("stdout lacks {text:?}"));
            }
        }
        problems
    }
}

struct Run {
    exit: Option<i32>,
    statuses: Vec<u16>,
    stdout: String,
    stderr: String,
    /// What went wrong around the block: no mail, a timeout.
    problem: Option<String>,
}

/// Runs one block, with the variables the blocks before it left, and keeps
/// the new ones for the next.
fn run_block(
    dir: &WorkDir,
    env: &BTreeMap<String, String>,
    code: &str,
    expect: &Expect,
    sink: &MailSink,
) -> Run {
    let state = dir.root.join("state.sh");
    // The variables this block sets are those bash did not have before the
    // state was read (bash's own changing ones aside).
    let script = format!(
        "__readme_test_before=$(compgen -v)\n\
         [ ! -e {state} ] || . {state}\n\
         {code}\
         __readme_test_new=$(comm -13 <(sort <<<\"$__readme_test_before\") <(compgen -v | sort) |\n\
           grep -Ev '^(_|__readme_test.*|BASH_.*|PIPESTATUS|REPLY|OPTARG|OPTIND|COLUMNS|LINES)$' || true)\n\
         if [ -n \"$__readme_test_new\" ]; then declare -p $__readme_test_new >{state}.new && mv {state}.new {state}; fi\n",
        state = state.display(),
    );
    let script_path = dir.root.join("block.sh");
    std::fs::write(&script_path, script).unwrap();
    std::fs::write(dir.statuses(), "").unwrap();
    let (stdout_path, stderr_path) = (dir.root.join("stdout"), dir.root.join("stderr"));
    let mails_before = sink.mails().len();
    let mut child = Command::new("bash")
        .args(["--noprofile", "--norc", "-euo", "pipefail"])
        .arg(&script_path)
        .current_dir(dir.shell())
        .env_clear()
        .envs(env)
        .stdin(if expect.stdin_link.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .expect("run bash");

    let started = Instant::now();
    let mut stdin = child.stdin.take();
    let mut problem = None;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if let (Some(input), Some((path, address))) = (&mut stdin, &expect.stdin_link) {
            let mails = sink.mails();
            let link = mails[mails_before..]
                .iter()
                .filter(|mail| &mail.to == address)
                .filter_map(|mail| link_in(&mail.body))
                .find(|link| link.contains(path.as_str()));
            if let Some(link) = link {
                input.write_all(format!("{link}\n").as_bytes()).unwrap();
                stdin = None;
            } else if started.elapsed() > Duration::from_secs(15) {
                problem = Some(format!(
                    "no mail to {address} with a link to {path} within 15 s; received since the \
                     block began: {:#?}",
                    &sink.mails()[mails_before..]
                ));
            }
        }
        if problem.is_none() && started.elapsed() > Duration::from_secs(60) {
            problem = Some("still running after 60 s".into());
        }
        if problem.is_some() {
            child.kill().ok();
            child.wait().ok();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let statuses = std::fs::read_to_string(dir.statuses())
        .unwrap()
        .lines()
        .map(|line| line.trim().parse().unwrap_or(0))
        .collect();
    Run {
        exit: status.and_then(|status| status.code()),
        statuses,
        stdout: std::fs::read_to_string(stdout_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(stderr_path).unwrap_or_default(),
        problem,
    }
}

fn link_in(body: &str) -> Option<&str> {
    body.split_whitespace()
        .find(|word| word.starts_with("http"))
}

fn join(codes: &[u16]) -> String {
    codes
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

fn indent(code: &str) -> String {
    code.lines().map(|line| format!("    {line}\n")).collect()
}

/// The microblog example, which the test build compiles beside authd
/// (`cargo test` and nextest build a package's examples).
fn microblog_binary() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_authd"))
        .parent()
        .unwrap()
        .join("examples/microblog");
    assert!(
        path.exists(),
        "{} is not built: cargo build --example microblog",
        path.display()
    );
    path
}

/// The test's directory, removed at the end: the shell's working directory,
/// its home, the shims, the servers' logs.
struct WorkDir {
    root: PathBuf,
}

impl WorkDir {
    fn new() -> Self {
        let root = std::env::temp_dir().join(format!(
            "authd-readme-{}-{}",
            std::process::id(),
            free_port()
        ));
        let dir = Self { root };
        for sub in [dir.shell(), dir.home(), dir.bin(), dir.httpie()] {
            std::fs::create_dir_all(sub).unwrap();
        }
        dir
    }
    fn shell(&self) -> PathBuf {
        self.root.join("shell")
    }
    fn home(&self) -> PathBuf {
        self.root.join("home")
    }
    fn bin(&self) -> PathBuf {
        self.root.join("bin")
    }
    fn httpie(&self) -> PathBuf {
        self.root.join("httpie")
    }
    fn statuses(&self) -> PathBuf {
        self.root.join("statuses")
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.root).ok();
    }
}

/// The real curl and HTTPie, which the shims run.
struct Tools {
    curl: PathBuf,
    /// The interpreter of HTTPie's script (its `#!` line), which has HTTPie.
    httpie_python: Vec<String>,
}

impl Tools {
    fn find() -> Self {
        let which = |name: &str| {
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
                .map(|dir| dir.join(name))
                .find(|path| path.is_file())
                .unwrap_or_else(|| {
                    panic!("{name} is not installed: run scripts/test-deps.sh (curl, jq, httpie)")
                })
        };
        for needed in ["bash", "jq"] {
            which(needed);
        }
        let http = std::fs::read_to_string(which("http")).expect("HTTPie's script");
        let httpie_python = http
            .lines()
            .next()
            .and_then(|line| line.strip_prefix("#!"))
            .expect("HTTPie's #! line")
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        Self {
            curl: which("curl"),
            httpie_python,
        }
    }

    /// Writes the shims, `authd`, and HTTPie's configuration.
    fn install(&self, dir: &WorkDir) {
        let bin = dir.bin();
        // -D keeps the response heads apart from what the block prints; the
        // last status line is the final answer's.
        let curl = format!(
            "#!/usr/bin/env bash\n\
             heads=$(mktemp)\n\
             code=0\n\
             '{curl}' -D \"$heads\" \"$@\" || code=$?\n\
             grep -a '^HTTP/' \"$heads\" | tail -n 1 | cut -d' ' -f2 >>\"$README_TEST_STATUSES\"\n\
             rm -f \"$heads\"\n\
             exit \"$code\"\n",
            curl = self.curl.display()
        );
        // HTTPie prints no status when its output is not a terminal, and
        // --check-status only gives its class: its requests are watched
        // from inside instead. The script stays out of bin/, where Python
        // would import it in place of the standard library's `http`.
        let watcher = dir.root.join("httpie_statuses.py");
        std::fs::write(&watcher, HTTPIE_WATCHER).unwrap();
        let http = format!(
            "#!/usr/bin/env bash\nexec {} '{}' \"$@\"\n",
            self.httpie_python.join(" "),
            watcher.display()
        );
        for (name, text) in [("curl", curl), ("http", http)] {
            let path = bin.join(name);
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
        }
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_authd"), bin.join("authd")).unwrap();
        std::fs::write(
            dir.httpie().join("config.json"),
            r#"{"default_options": ["--ignore-stdin"]}"#,
        )
        .unwrap();
    }
}

/// HTTPie, noting the status of each response it gets.
const HTTPIE_WATCHER: &str = r#"import os
import sys

import requests

send = requests.Session.send


def noting(self, request, **kwargs):
    response = send(self, request, **kwargs)
    with open(os.environ["README_TEST_STATUSES"], "a") as statuses:
        statuses.write(f"{response.status_code}\n")
    return response


requests.Session.send = noting
sys.argv[0] = "http"
from httpie.__main__ import main  # noqa: E402

sys.exit(main())
"#;

/// A server binary on a port of its own, killed when dropped.
struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Server {
    /// Starts it in the test's directory (so no `.env` of the checkout's is
    /// read) and waits until `/readyz` answers 200.
    fn start(dir: &WorkDir, name: &str, binary: &Path, env: &BTreeMap<String, String>) -> Self {
        let port = free_port();
        let log = dir.root.join(format!("{name}.log"));
        let output = std::fs::File::create(&log).unwrap();
        let child = Command::new(binary)
            .current_dir(&dir.root)
            .env_clear()
            .envs(env)
            .env("BIND", format!("127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(output.try_clone().unwrap())
            .stderr(output)
            .spawn()
            .unwrap_or_else(|error| panic!("start {}: {error}", binary.display()));
        let mut server = Self { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !server.ready() {
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!("{name} exited ({status}): {}", server.log_tail());
            }
            assert!(
                Instant::now() < deadline,
                "{name} not ready: {}",
                server.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn ready(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        // A server still starting may accept and not answer yet.
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let request = "GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
        let mut answer = String::new();
        stream.write_all(request.as_bytes()).is_ok()
            && stream.read_to_string(&mut answer).is_ok()
            && answer.starts_with("HTTP/1.1 200")
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}
