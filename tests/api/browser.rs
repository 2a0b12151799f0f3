//! The example page, examples/spa/, clicked through in headless Chromium
//! against a real authd on another origin: what the README shows people
//! keeps working, credentialed CORS and the CSRF token included, and
//! passkeys with Chromium's virtual authenticator.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use reqwest::Method;
use serde_json::{Value, json};
use url::{ParseError, Url};

use crate::helpers::{PASSWORD, TestApp, free_port};

#[tokio::test]
async fn the_example_page_registers_logs_in_manages_sessions_and_logs_out() {
    let site = Site::start();
    let app = TestApp::spawn_with(|s| s.http.cors_origins = vec![site.origin.clone()]).await;
    let chromium = Chromium::start().await;
    let page = &chromium.client;
    page.goto(&format!("{}/?api={}", site.origin, api_address(&app)))
        .await
        .unwrap();
    wait_for_text(page, "#me-status", "Not logged in.").await;

    // A mistake first: authd's message for it shows under its field.
    type_into(page, "#register-username", "susan").await;
    type_into(page, "#register-email", "susan@example.com").await;
    type_into(page, "#register-password", PASSWORD).await;
    type_into(page, "#register-password2", "not the same").await;
    click(page, "#register button[type=submit]").await;
    wait_for_text(page, "#register-password2-error", "equal to password").await;
    page.find(Locator::Css("#register-password2"))
        .await
        .unwrap()
        .clear()
        .await
        .unwrap();
    type_into(page, "#register-password2", PASSWORD).await;
    click(page, "#register button[type=submit]").await;
    wait_for_text(page, "#message", "Account susan created").await;

    // The login form has the new username already.
    type_into(page, "#login-password", PASSWORD).await;
    click(page, "#login-remember").await;
    click(page, "#login button[type=submit]").await;
    wait_for_text(page, "#me-status", "Logged in as susan (susan@example.com)").await;
    // Remembered: the cookie outlives the browser (REMEMBER_TTL, 30 days).
    let cookie = page.get_named_cookie("authd_session").await.unwrap();
    let expires = cookie
        .expires_datetime()
        .expect("a persistent cookie")
        .unix_timestamp();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    assert!(expires - now.as_secs() as i64 > 29 * 24 * 3600, "{cookie}");
    wait_for_sessions(page, &["this"]).await;
    wait_for_text(page, "#sessions li[data-current=true]", "This device").await;

    // Another device logs in; the list shows it once asked again.
    let (phone, _) = app.app_login("susan", false).await;
    click(page, "#sessions-refresh").await;
    wait_for_sessions(page, &["other", "this"]).await;

    // After a reload the page knows nothing but what authd tells it: the
    // CSRF token that ending a session needs comes from GET /api/me.
    page.refresh().await.unwrap();
    wait_for_text(page, "#me-status", "Logged in as susan").await;
    wait_for_sessions(page, &["other", "this"]).await;
    click(page, "#sessions li[data-current=false] button").await;
    wait_for_sessions(page, &["this"]).await;
    phone.get("/api/me").await.problem(401);

    click(page, "#logout").await;
    wait_for_text(page, "#message", "Logged out.").await;
    wait_for_text(page, "#me-status", "Not logged in.").await;
    let cookies = page.get_all_cookies().await.unwrap();
    assert!(
        cookies.iter().all(|c| c.name() != "authd_session"),
        "{cookies:?}"
    );

    // A wrong password gets authd's one message for every failed login.
    type_into(page, "#login-username", "susan").await;
    type_into(page, "#login-password", "not the password").await;
    click(page, "#login button[type=submit]").await;
    wait_for_text(page, "#login-error", "Invalid username or password").await;
}

#[tokio::test]
async fn the_example_page_adds_a_passkey_and_logs_in_with_it_alone_and_after_the_password() {
    let site = Site::start();
    let app = spawn_with_passkeys(&site).await;
    let chromium = Chromium::start().await;
    let page = &chromium.client;
    page.issue_cmd(AddVirtualAuthenticator).await.unwrap();
    let api = api_address(&app);
    page.goto(&format!("{}/?api={api}", site.origin))
        .await
        .unwrap();
    wait_for_text(page, "#me-status", "Not logged in.").await;
    let shown = "return document.querySelector('#second-step').checkVisibility()";
    assert_eq!(page.execute(shown, vec![]).await.unwrap(), json!(false));

    type_into(page, "#register-username", "susan").await;
    type_into(page, "#register-email", "susan@example.com").await;
    type_into(page, "#register-password", PASSWORD).await;
    type_into(page, "#register-password2", PASSWORD).await;
    click(page, "#register button[type=submit]").await;
    wait_for_text(page, "#message", "Account susan created").await;
    type_into(page, "#login-password", PASSWORD).await;
    click(page, "#login button[type=submit]").await;
    wait_for_text(page, "#me-status", "Logged in as susan").await;
    wait_for_text(page, "#me-amr", "made with a password.").await;

    // Adding a passkey takes the password again; a wrong one makes none.
    type_into(page, "#passkey-add-name", "Laptop").await;
    type_into(page, "#passkey-add-password", "not the password").await;
    click(page, "#passkey-add button[type=submit]").await;
    wait_for_text(page, "#passkey-add-error", "The current password is wrong.").await;
    let password = page.find(Locator::Css("#passkey-add-password"));
    password.await.unwrap().clear().await.unwrap();
    type_into(page, "#passkey-add-password", PASSWORD).await;
    click(page, "#passkey-add button[type=submit]").await;
    wait_for_text(page, "#message", "Passkey Laptop added").await;
    wait_for_text(page, "#passkeys li", "Laptop: added").await;
    wait_for_text(page, "#passkeys li", "last used never").await;

    click(page, "#logout").await;
    wait_for_text(page, "#me-status", "Not logged in.").await;

    // No username, no password: the authenticator offers the passkey it
    // keeps for localhost, and the passkey says whose it is.
    click(page, "#passkey-login-button").await;
    wait_for_text(page, "#me-status", "Logged in as susan (susan@example.com)").await;
    wait_for_text(page, "#me-amr", "made with a passkey.").await;
    assert_eq!(session_amr(page, &api).await, json!(["passkey"]));
    wait_for(
        page,
        "the passkey to show it was used",
        "return document.querySelector('#passkeys li')?.textContent ?? null",
        vec![],
        |text| text.as_str().is_some_and(|text| !text.contains("never")),
    )
    .await;

    click(page, "#logout").await;
    wait_for_text(page, "#me-status", "Not logged in.").await;

    // The password alone no longer logs in: the passkey is the second step.
    type_into(page, "#login-username", "susan").await;
    type_into(page, "#login-password", PASSWORD).await;
    click(page, "#login button[type=submit]").await;
    wait_until_visible(page, "#second-step-passkey").await;
    assert_eq!(session_amr(page, &api).await, json!(null), "no session yet");
    click(page, "#second-step-passkey").await;
    wait_for_text(page, "#me-status", "Logged in as susan").await;
    wait_for_text(page, "#me-amr", "made with a password and a passkey.").await;
    assert_eq!(session_amr(page, &api).await, json!(["pwd", "passkey"]));
}

/// The README's page-side passkey example, pasted into a page on an origin
/// of WEBAUTHN_ORIGINS (the example page's): it adds a passkey, logs in
/// with it alone, and answers a password login's second step with it.
#[tokio::test]
async fn the_readmes_passkey_example_works_in_the_browser() {
    let site = Site::start();
    let app = spawn_with_passkeys(&site).await;
    app.user("susan").await;
    let chromium = Chromium::start().await;
    let page = &chromium.client;
    page.issue_cmd(AddVirtualAuthenticator).await.unwrap();
    let api = api_address(&app);
    page.goto(&format!("{}/?api={api}", site.origin))
        .await
        .unwrap();
    wait_for_text(page, "#me-status", "Not logged in.").await;

    let readme = include_str!("../../README.md");
    let (_, example) = readme
        .split_once("```js\n")
        .expect("the README's passkey example");
    let (example, _) = example.split_once("```").unwrap();
    let authd = r#"const API = "http://localhost:8080";"#;
    assert!(example.contains(authd), "{example}");
    let example = example.replace(authd, &format!("const API = {api:?};"));
    let script = format!(
        "const [password, done] = arguments;
        {example}
        const amr = () => fetch(API + '/api/me', {{credentials: 'include'}})
          .then((response) => response.json())
          .then((me) => me.session?.amr ?? null);
        (async () => {{
          csrfToken = (await api('/api/login', {{username: 'susan', password}})).csrf_token;
          const added = await addPasskey(password, 'Phone');
          await api('/api/logout', {{}});
          csrfToken = null;
          await logInWithPasskey();
          const alone = await amr();
          await api('/api/logout', {{}});
          csrfToken = null;
          const refused = await api('/api/login', {{username: 'susan', password}})
            .catch((error) => error.problem);
          await secondStepWithPasskey(refused.mfa_token);
          return {{added: added.name, alone, methods: refused.methods, second: await amr()}};
        }})().then(done, (error) => done(`${{error}} ${{JSON.stringify(error.problem)}}`));"
    );
    let seen = page.execute_async(&script, vec![json!(PASSWORD)]).await;
    assert_eq!(
        seen.unwrap(),
        json!({
            "added": "Phone",
            "alone": ["passkey"],
            "methods": ["passkey"],
            "second": ["pwd", "passkey"],
        })
    );
}

/// authd for pages at `site`, passkeys included: the relying party
/// `localhost` and the page's origin, as WEBAUTHN_RP_ID's and
/// WEBAUTHN_ORIGINS' defaults make them from a `PUBLIC_APP_URL` on
/// localhost and `CORS_ORIGINS`.
async fn spawn_with_passkeys(site: &Site) -> TestApp {
    TestApp::spawn_with(|s| {
        s.http.cors_origins = vec![site.origin.clone()];
        s.webauthn.rp_id = Some("localhost".into());
        s.webauthn.origins = vec![Url::parse(&site.origin).unwrap()];
    })
    .await
}

/// WebDriver's WebAuthn extension: a virtual authenticator for the
/// session, built into the device as a laptop's or a phone's is (CTAP2,
/// "internal"), which keeps discoverable passkeys and verifies its user,
/// who always agrees. Chromium's makes synced passkeys (counter 0).
#[derive(Debug)]
struct AddVirtualAuthenticator;

impl WebDriverCompatibleCommand for AddVirtualAuthenticator {
    fn endpoint(&self, base_url: &Url, session_id: Option<&str>) -> Result<Url, ParseError> {
        let session = session_id.unwrap_or_default();
        base_url.join(&format!("session/{session}/webauthn/authenticator"))
    }

    fn method_and_body(&self, _: &Url) -> (Method, Option<String>) {
        let authenticator = json!({
            "protocol": "ctap2",
            "transport": "internal",
            "hasResidentKey": true,
            "hasUserVerification": true,
            "isUserVerified": true,
        });
        (Method::POST, Some(authenticator.to_string()))
    }
}

/// authd's address as the page names it: localhost, the page's own site
/// (the session cookie is SameSite=Lax), and a domain, as a relying party
/// must be.
fn api_address(app: &TestApp) -> String {
    app.address().replace("://127.0.0.1:", "://localhost:")
}

/// The `amr` of the session the page's cookie carries, as GET /api/me
/// answers it to the page; `null` with no session.
async fn session_amr(page: &Client, api: &str) -> Value {
    let script = "const [api, done] = arguments;
        fetch(api + '/api/me', {credentials: 'include'})
          .then((response) => response.json())
          .then((me) => done(me.session?.amr ?? null), (error) => done(String(error)));";
    page.execute_async(script, vec![json!(api)]).await.unwrap()
}

/// How long the page may take to show what a step brought about.
const PATIENCE: Duration = Duration::from_secs(10);

async fn type_into(page: &Client, css: &str, text: &str) {
    let field = page.wait().at_most(PATIENCE).for_element(Locator::Css(css));
    field.await.unwrap().send_keys(text).await.unwrap();
}

async fn click(page: &Client, css: &str) {
    let target = page.wait().at_most(PATIENCE).for_element(Locator::Css(css));
    target.await.unwrap().click().await.unwrap();
}

/// Waits until the text of the element `css` contains `expected`.
async fn wait_for_text(page: &Client, css: &str, expected: &str) {
    wait_for(
        page,
        &format!("{css} to say {expected:?}"),
        "return document.querySelector(arguments[0])?.textContent ?? null",
        vec![json!(css)],
        |text| text.as_str().is_some_and(|text| text.contains(expected)),
    )
    .await;
}

/// Waits until the page lists these sessions, in this order: `this` for
/// the browser's own, `other` for another.
async fn wait_for_sessions(page: &Client, expected: &[&str]) {
    let expected: Vec<Value> = expected
        .iter()
        .map(|which| json!(if *which == "this" { "true" } else { "false" }))
        .collect();
    wait_for(
        page,
        &format!("the sessions (current?) to be {expected:?}"),
        "return [...document.querySelectorAll('#sessions li')].map(li => li.dataset.current)",
        vec![],
        |seen| seen.as_array() == Some(&expected),
    )
    .await;
}

/// Waits until the element `css` is shown.
async fn wait_until_visible(page: &Client, css: &str) {
    wait_for(
        page,
        &format!("{css} to be shown"),
        "return document.querySelector(arguments[0])?.checkVisibility() ?? false",
        vec![json!(css)],
        |shown| shown == &json!(true),
    )
    .await;
}

/// Runs `script` in the page every 50 ms until its value passes `done`,
/// for at most [`PATIENCE`]; then fails, saying what it last saw.
async fn wait_for(
    page: &Client,
    what: &str,
    script: &str,
    args: Vec<Value>,
    done: impl Fn(&Value) -> bool,
) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let seen = page.execute(script, args.clone()).await.unwrap();
        if done(&seen) {
            return;
        }
        if Instant::now() > deadline {
            let text = page
                .execute("return document.body.innerText", vec![])
                .await
                .unwrap_or_default();
            let message = text.as_str().unwrap_or_default();
            panic!("waited for {what}, saw {seen}; the page said:\n{message}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// examples/spa/ served as it is, from a loopback port of its own, named
/// localhost: an origin other than authd's, on the same site (localhost),
/// as in the README. Stops when dropped.
struct Site {
    origin: String,
    handle: ServerHandle,
}

impl Site {
    fn start() -> Self {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/spa");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let origin = format!("http://localhost:{port}");
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(dir.clone()))
                .default_service(web::to(serve_file))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self { origin, handle }
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

/// A file of the directory by its name, `/` being index.html. Names with
/// a `/` or a leading dot are not served, so no path leaves the directory.
async fn serve_file(request: HttpRequest, dir: web::Data<PathBuf>) -> HttpResponse {
    let name = match request.path() {
        "/" => "index.html",
        path => &path[1..],
    };
    let content_type = match name.rsplit_once('.') {
        Some((_, "html")) => "text/html; charset=utf-8",
        Some((_, "js")) => "text/javascript; charset=utf-8",
        Some((_, "css")) => "text/css; charset=utf-8",
        _ => return HttpResponse::NotFound().finish(),
    };
    if name.contains('/') || name.starts_with('.') {
        return HttpResponse::NotFound().finish();
    }
    match std::fs::read(dir.join(name)) {
        Ok(body) => HttpResponse::Ok().content_type(content_type).body(body),
        Err(_) => HttpResponse::NotFound().finish(),
    }
}

/// Headless Chromium, driven through chromedriver, with a profile
/// directory of its own.
struct Chromium {
    client: Client,
    _driver: Driver,
}

/// chromedriver on a free port. When dropped, it and every process of
/// Chromium's are killed (they share the process group made for
/// chromedriver), and the profile is removed.
struct Driver {
    child: Child,
    port: u16,
    profile: PathBuf,
}

impl Chromium {
    async fn start() -> Self {
        let port = free_port();
        let driver = Driver {
            child: Command::new("chromedriver")
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .expect(
                    "chromedriver (Debian's chromium-driver; scripts/test-deps.sh installs it)",
                ),
            port,
            profile: std::env::temp_dir().join(format!("authd-chromium-{port}")),
        };
        let deadline = Instant::now() + PATIENCE;
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut capabilities = Capabilities::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({"args": [
                "--headless=new",
                // Chromium's sandbox refuses to run as root, as tests may.
                "--no-sandbox",
                "--disable-dev-shm-usage",
                "--disable-gpu",
                "--window-size=1024,768",
                format!("--user-data-dir={}", driver.profile.display()),
            ]}),
        );
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await
            .expect("a WebDriver session with Chromium");
        Self {
            client,
            _driver: driver,
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
