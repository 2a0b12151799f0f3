//! A real nginx running deploy/nginx/authd.conf, the example the README
//! points operators to, in front of an authd and an upstream of the test's
//! own; and that upstream, which records what reaches it.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::json;

use super::{Server, random_hex};

/// The example as shipped; the test changes only the addresses in it.
const EXAMPLE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/deploy/nginx/authd.conf"
));

/// nginx as one process in the foreground, everything it writes (pid, logs,
/// request bodies) in a directory of its own; killed, and the directory
/// removed, when dropped.
pub struct Nginx {
    child: std::process::Child,
    dir: PathBuf,
    /// `http://127.0.0.1:port`: the origin browsers use.
    pub address: String,
}

impl Nginx {
    /// Starts the example on `port` (a [`free_port`](super::free_port),
    /// known before so that authd's `PUBLIC_URL` can name it) with its
    /// `authd` upstream at `authd` and its `app` upstream at `app`
    /// (`host:port` each), and waits until it accepts connections.
    pub async fn start(port: u16, authd: &str, app: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("authd-nginx-{}", random_hex()));
        std::fs::create_dir_all(&dir).unwrap();
        let site = [
            ("server 127.0.0.1:8080;", format!("server {authd};")),
            ("server 127.0.0.1:9000;", format!("server {app};")),
            ("listen 80;", format!("listen 127.0.0.1:{port};")),
        ]
        .into_iter()
        .fold(EXAMPLE.to_owned(), |text, (from, to)| {
            // If the example changes shape, this must change with it rather
            // than silently test something else.
            assert_eq!(
                text.matches(from).count(),
                1,
                "deploy/nginx/authd.conf no longer has `{from}` once"
            );
            text.replace(from, &to)
        });
        std::fs::write(dir.join("authd.conf"), site).unwrap();
        let d = dir.display();
        std::fs::write(
            dir.join("nginx.conf"),
            format!(
                "master_process off;\ndaemon off;\npid {d}/nginx.pid;\nlock_file {d}/nginx.lock;\n\
                 error_log {d}/error.log warn;\nevents {{ worker_connections 256; }}\n\
                 http {{\n    access_log off;\n    client_body_temp_path {d}/body;\n\
                 proxy_temp_path {d}/proxy;\n    fastcgi_temp_path {d}/fastcgi;\n\
                 uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;\n\
                 include {d}/authd.conf;\n}}\n"
            ),
        )
        .unwrap();
        // -e: the error log before the configuration is read, which would
        // otherwise be the build's default, outside the directory.
        let child = std::process::Command::new("nginx")
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nginx with auth_request (scripts/test-deps.sh installs nginx-light)");
        let mut nginx = Self {
            child,
            dir,
            address: format!("http://127.0.0.1:{port}"),
        };
        // nginx writes its pid file only once it holds its listening socket:
        // a connection alone could reach whatever else has the port.
        let pid_file = nginx.dir.join("nginx.pid");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !pid_file.exists() || std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = nginx.child.try_wait().unwrap() {
                panic!("nginx exited ({status}): {}", nginx.error_log());
            }
            assert!(Instant::now() < deadline, "nginx did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        nginx
    }

    /// Where its actors send their requests.
    pub fn server(&self) -> Server {
        Server::at(&self.address)
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A request as the upstream received it.
#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    /// The path and query.
    pub uri: String,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    /// Every value of the header `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
            .collect()
    }
}

/// The application behind the proxy: answers every request 200 with what
/// it received as JSON, and records it. Stopped when dropped.
pub struct Upstream {
    /// `127.0.0.1:port`.
    pub address: String,
    received: Arc<Mutex<Vec<Received>>>,
    handle: ServerHandle,
}

impl Upstream {
    pub fn start() -> Self {
        let received = Arc::new(Mutex::new(Vec::new()));
        let shared = web::Data::from(received.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                .app_data(web::PayloadConfig::new(16 << 20))
                .default_service(web::to(echo))
        })
        .workers(1)
        .disable_signals()
        .bind("127.0.0.1:0")
        .unwrap();
        let address = server.addrs()[0].to_string();
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            address,
            received,
            handle,
        }
    }

    /// What has reached it so far, oldest first.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

async fn echo(
    request: HttpRequest,
    body: web::Bytes,
    received: web::Data<Mutex<Vec<Received>>>,
) -> HttpResponse {
    let seen = Received {
        method: request.method().to_string(),
        uri: request.uri().to_string(),
        headers: request
            .headers()
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_owned(), value)
            })
            .collect(),
        body: body.to_vec(),
    };
    let answer = json!({
        "method": seen.method,
        "uri": seen.uri,
        "headers": seen.headers,
        "body": String::from_utf8_lossy(&seen.body),
    });
    received.lock().unwrap().push(seen);
    HttpResponse::Ok().json(answer)
}
