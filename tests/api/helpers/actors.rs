//! Who talks to a server, and the one way they do it.
//!
//! A [`Server`] is where requests go: an app in this process (a
//! [`TestApp`](super::TestApp) derefs to its server), the built binary, or a
//! server a test started by hand. It makes the actors:
//!
//! - [`Server::anonymous`]: a client with no credentials and no cookie jar;
//! - [`Server::browser`]: a browser with a cookie jar of its own (and
//!   [`Server::browser_at`], one at another loopback address);
//! - [`Server::bearer`]: an app that sends a bearer token and keeps no
//!   cookies; [`Server::with_session_cookie`], a client that sends a copied
//!   session cookie.
//!
//! Every actor sends its requests through [`Actor::request`] (`get` and
//! `post` are short for it), and every response is checked against
//! openapi.yaml before the test sees it. A browser's unsafe request sends
//! its CSRF token when asked ([`Request::csrf`]); [`Actor::via`] sends the
//! same client to another instance.
//!
//! For the usual start, [`Server::logged_in_browser`] and
//! [`Server::logged_in_app`] register a user and log it in, and
//! [`Server::app_login`] logs an existing one in from another device.

use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use reqwest_cookie_store::CookieStoreMutex;
use serde_json::{Value, json};

use super::{Login, PASSWORD, TestResponse};

/// Where actors send their requests. Clones share the address, so the
/// actors of an app that restarts follow it to its new port.
#[derive(Clone)]
pub struct Server {
    address: Arc<RwLock<String>>,
}

impl Server {
    /// A server at `address` (`http://host:port`).
    pub fn at(address: &str) -> Self {
        Self {
            address: Arc::new(RwLock::new(address.to_owned())),
        }
    }

    /// `http://127.0.0.1:port`.
    pub fn address(&self) -> String {
        self.address.read().unwrap().clone()
    }

    /// Points this server, and every actor of it, at a new address.
    pub(super) fn move_to(&self, address: String) {
        *self.address.write().unwrap() = address;
    }

    /// A client with no credentials and no cookie jar.
    pub fn anonymous(&self) -> Actor {
        self.actor(None, None)
    }

    /// A browser with a cookie jar of its own: another tab, window or
    /// device than any other browser.
    pub fn browser(&self) -> Actor {
        self.actor(Some(Arc::default()), None)
    }

    /// A browser whose requests come from `ip`, an address in 127.0.0.0/8:
    /// another client as the server sees it.
    pub fn browser_at(&self, ip: &str) -> Actor {
        let ip = ip.parse::<IpAddr>().expect("an IP address");
        self.actor(Some(Arc::default()), Some(ip))
    }

    /// An app holding this bearer token, without cookies.
    pub fn bearer(&self, token: &str) -> Actor {
        self.anonymous()
            .sending("authorization", &format!("Bearer {token}"))
    }

    /// A client whose only cookie is this `authd_session` value: a copied
    /// or forged cookie.
    pub fn with_session_cookie(&self, value: &str) -> Actor {
        self.anonymous()
            .sending("cookie", &format!("authd_session={value}"))
    }

    fn actor(&self, jar: Option<Arc<CookieStoreMutex>>, ip: Option<IpAddr>) -> Actor {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30));
        if let Some(jar) = &jar {
            builder = builder.cookie_provider(jar.clone());
        }
        if let Some(ip) = ip {
            builder = builder.local_address(ip);
        }
        Actor {
            server: self.clone(),
            client: builder.build().unwrap(),
            jar,
            headers: Vec::new(),
        }
    }

    /// Registers `username` (at `email`, with [`PASSWORD`]).
    pub async fn register(&self, username: &str, email: &str) -> TestResponse {
        let body = json!({"username": username, "email": email, "password": PASSWORD, "password2": PASSWORD});
        self.anonymous().post("/api/register", &body).await
    }

    /// Registers `username` (`username@example.com`, [`PASSWORD`]),
    /// asserting it worked; the user.
    pub async fn user(&self, username: &str) -> Value {
        let response = self
            .register(username, &format!("{username}@example.com"))
            .await;
        response.assert_status(201);
        response.json()
    }

    /// Registers `username` and logs it in from a browser of its own (not
    /// remembered): that browser, and what the login answered.
    pub async fn logged_in_browser(&self, username: &str) -> (Actor, Login) {
        self.user(username).await;
        let browser = self.browser();
        let login = browser.login(username, false).await;
        login.assert_status(200);
        (browser, login.login_body())
    }

    /// Registers `username` and logs it in from an app: the app, which
    /// sends the login's bearer token, and what the login answered.
    pub async fn logged_in_app(&self, username: &str) -> (Actor, Login) {
        self.user(username).await;
        self.app_login(username, false).await
    }

    /// Logs `username` in from a new app (another device): the app, which
    /// sends the login's bearer token, and what the login answered.
    pub async fn app_login(&self, username: &str, remember: bool) -> (Actor, Login) {
        let response = self.anonymous().login(username, remember).await;
        response.assert_status(200);
        let login = response.login_body();
        (self.bearer(login.token()), login)
    }
}

/// A client of a [`Server`]: anonymous, a browser, or an app with a bearer
/// token (see the module's documentation). Clones share the cookie jar.
#[derive(Clone)]
pub struct Actor {
    server: Server,
    client: reqwest::Client,
    jar: Option<Arc<CookieStoreMutex>>,
    /// Sent with every request (a request's own header of the same name
    /// replaces it).
    headers: Vec<(String, String)>,
}

impl Actor {
    /// This actor, sending `name: value` with every request.
    pub fn sending(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The same client (cookies, address, headers) talking to another
    /// server: another instance behind the same load balancer.
    pub fn via(&self, server: &Server) -> Self {
        Self {
            server: server.clone(),
            ..self.clone()
        }
    }

    /// A request to build on; [`Request::send`] sends it.
    pub fn request(&self, method: Method, path: &str) -> Request {
        Request {
            actor: self.clone(),
            method,
            path: path.to_owned(),
            headers: Vec::new(),
            body: None,
            csrf: false,
        }
    }

    pub async fn get(&self, path: &str) -> TestResponse {
        self.request(Method::GET, path).send().await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> TestResponse {
        self.request(Method::POST, path).json(body).send().await
    }

    /// Logs `username` in with [`PASSWORD`].
    pub async fn login(&self, username: &str, remember: bool) -> TestResponse {
        let body = json!({"username": username, "password": PASSWORD, "remember_me": remember});
        self.post("/api/login", &body).await
    }

    /// The value of the cookie `name` in this browser's jar.
    pub fn cookie(&self, name: &str) -> Option<String> {
        let store = self.jar().lock().unwrap();
        store
            .iter_unexpired()
            .find(|cookie| cookie.name() == name)
            .map(|cookie| cookie.value().to_owned())
    }

    /// Closes and reopens the browser: the cookies without `Max-Age` or
    /// `Expires` are gone.
    pub fn restart(&self) {
        let mut store = self.jar().lock().unwrap();
        let persistent: Vec<_> = store
            .iter_unexpired()
            .filter(|cookie| cookie.is_persistent())
            .cloned()
            .collect();
        *store = cookie_store::CookieStore::from_cookies(
            persistent
                .into_iter()
                .map(Ok::<_, std::convert::Infallible>),
            false,
        )
        .unwrap();
    }

    /// Asserts that `GET /api/me` is refused within a second: how soon a
    /// change made elsewhere (another instance, the command line, plain
    /// SQL) must reach this server's cache.
    pub async fn refused_within_a_second(&self) {
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            let response = self.get("/api/me").await;
            if response.status == StatusCode::UNAUTHORIZED {
                response.problem(401);
                return;
            }
            response.assert_status(200);
            assert!(Instant::now() < deadline, "still accepted a second later");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn jar(&self) -> &CookieStoreMutex {
        self.jar.as_deref().expect("a browser, with a cookie jar")
    }
}

enum Body {
    Json(Value),
    Bytes(Vec<u8>),
}

/// A request being built by an [`Actor`].
#[must_use = "a request does nothing until sent"]
pub struct Request {
    actor: Actor,
    method: Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<Body>,
    csrf: bool,
}

impl Request {
    /// A JSON body (and its `Content-Type`).
    pub fn json(mut self, body: &Value) -> Self {
        self.body = Some(Body::Json(body.clone()));
        self
    }

    /// A body as it stands, for what the JSON helper cannot make; its
    /// `Content-Type`, if any, is a header to add.
    pub fn body(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.body = Some(Body::Bytes(bytes.into()));
        self
    }

    /// A header; it replaces one the actor sends with every request.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Several headers, in order.
    pub fn headers(mut self, headers: &[(&str, &str)]) -> Self {
        for (name, value) in headers {
            self = self.header(name, value);
        }
        self
    }

    /// `X-CSRF-Token` from the browser's `csrf_token` cookie, as a
    /// single-page app sends it.
    pub fn csrf(mut self) -> Self {
        self.csrf = true;
        self
    }

    /// Sends it; the response, checked against openapi.yaml.
    pub async fn send(self) -> TestResponse {
        let (method, path) = (self.method.clone(), self.path.clone());
        self.try_send()
            .await
            .unwrap_or_else(|error| panic!("{method} {path}: {error}"))
    }

    /// Sends it to what is not authd, whose answers openapi.yaml does not
    /// describe: an upstream behind the same proxy, or the proxy's own
    /// refusals. The response is not checked.
    pub async fn send_beyond_authd(self) -> TestResponse {
        let (method, path) = (self.method.clone(), self.path.clone());
        let response = self
            .build()
            .0
            .send()
            .await
            .unwrap_or_else(|error| panic!("{method} {path}: {error}"));
        TestResponse::read(response)
            .await
            .unwrap_or_else(|error| panic!("{method} {path}: {error}"))
    }

    /// Sends it, for a test where the server may go away meanwhile; a
    /// response that arrives is checked against openapi.yaml all the same.
    pub async fn try_send(self) -> reqwest::Result<TestResponse> {
        let (method, path) = (self.method.clone(), self.path.clone());
        let (builder, preflight) = self.build();
        TestResponse::checked(&method, &path, preflight, builder.send().await?).await
    }

    /// The request as reqwest sends it (the actor's headers, this request's
    /// own, its CSRF token and its body), and whether it is a CORS preflight.
    fn build(self) -> (reqwest::RequestBuilder, bool) {
        let actor = &self.actor;
        let mut headers = HeaderMap::new();
        for (name, value) in &actor.headers {
            headers.insert(header_name(name), header_value(value));
        }
        // The request's own headers replace the actor's of the same name,
        // and may repeat.
        let mut replaced = Vec::new();
        for (name, value) in &self.headers {
            let name = header_name(name);
            if replaced.contains(&name) {
                headers.append(name, header_value(value));
            } else {
                headers.insert(name.clone(), header_value(value));
                replaced.push(name);
            }
        }
        if self.csrf {
            let token = actor
                .cookie("csrf_token")
                .expect("a csrf_token cookie: the browser has logged in");
            headers.insert("x-csrf-token", header_value(&token));
        }
        let preflight =
            self.method == Method::OPTIONS && headers.contains_key("access-control-request-method");
        let url = format!("{}{}", actor.server.address(), self.path);
        let builder = actor.client.request(self.method, url);
        let builder = match self.body {
            Some(Body::Json(body)) => builder.json(&body),
            Some(Body::Bytes(bytes)) => builder.body(bytes),
            None => builder,
        };
        (builder.headers(headers), preflight)
    }
}

fn header_name(name: &str) -> HeaderName {
    HeaderName::from_bytes(name.as_bytes()).expect("a header name")
}

fn header_value(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).expect("a header value")
}
