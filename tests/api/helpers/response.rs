//! What a request got back: the status, headers and body, checked against
//! openapi.yaml before any test sees it; assertions on problems; and the
//! body of a login.

use std::ops::Deref;

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::contract;

pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl TestResponse {
    /// Reads the response and checks it against the contract: the one way
    /// every response of authd's reaches a test.
    pub(super) async fn checked(
        method: &Method,
        path: &str,
        preflight: bool,
        response: reqwest::Response,
    ) -> reqwest::Result<Self> {
        let response = Self::read(response).await?;
        contract::check(method, path, preflight, &response);
        Ok(response)
    }

    /// Reads the response as it is: for what another server answered.
    pub(super) async fn read(response: reqwest::Response) -> reqwest::Result<Self> {
        Ok(Self {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.bytes().await?.to_vec(),
        })
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The body as a login response.
    pub fn login_body(&self) -> Login {
        Login(self.json())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ASCII header"))
    }

    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    /// The `Set-Cookie` value for `name`, if the response sets it.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.set_cookies()
            .into_iter()
            .find(|c| c.starts_with(&format!("{name}=")))
    }

    /// Asserts the status, printing the body when it differs.
    #[track_caller]
    pub fn assert_status(&self, expected: u16) -> &Self {
        assert_eq!(
            self.status.as_u16(),
            expected,
            "unexpected status; body: {}",
            String::from_utf8_lossy(&self.body)
        );
        self
    }

    /// Asserts a problem+json error with this status and returns its body.
    #[track_caller]
    pub fn problem(&self, status: u16) -> Value {
        self.assert_status(status);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json")
        );
        let body = self.json();
        assert_eq!(body["status"], status);
        for field in ["type", "title", "detail"] {
            assert!(body[field].is_string(), "problem lacks {field}: {body}");
        }
        body
    }
}

/// A login response body: the session's bearer token and CSRF token, and
/// (through `Deref`) the rest of it, such as `user` or `expires_at`.
#[derive(Debug, Clone)]
pub struct Login(pub Value);

impl Login {
    /// The bearer token (`access_token`).
    pub fn token(&self) -> &str {
        self.0["access_token"]
            .as_str()
            .expect("a login response with an access_token")
    }

    /// The cookie session's CSRF token (`csrf_token`).
    pub fn csrf(&self) -> &str {
        self.0["csrf_token"]
            .as_str()
            .expect("a login response with a csrf_token")
    }

    /// The `Authorization` header for the token.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.token())
    }
}

impl Deref for Login {
    type Target = Value;

    fn deref(&self) -> &Value {
        &self.0
    }
}
