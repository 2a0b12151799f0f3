//! Every response the tests see must be one that openapi.yaml describes:
//! its path and method, its status, its content type, its required headers
//! and its body's schema. A field, status or header added to the code but
//! not to the contract fails the suite.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use reqwest::Method;
use serde_json::{Value, json};

use super::TestResponse;

const SPEC_URI: &str = "urn:authd:openapi";

pub static SPEC: LazyLock<Value> = LazyLock::new(|| {
    let text = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml"));
    serde_norway::from_str(text).expect("openapi.yaml is valid YAML")
});

fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// Follows an OpenAPI `$ref` (to a response or header) within the spec,
/// returning the pointer of the object it lands on.
fn resolve(pointer: String) -> (String, &'static Value) {
    let value = SPEC
        .pointer(&pointer)
        .unwrap_or_else(|| panic!("openapi.yaml has nothing at {pointer}"));
    match value.get("$ref").and_then(Value::as_str) {
        Some(target) => resolve(
            target
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("external $ref {target}"))
                .to_owned(),
        ),
        None => (pointer, value),
    }
}

/// Compiled validators, by the pointer of their schema in the spec.
static VALIDATORS: LazyLock<Mutex<HashMap<String, Arc<jsonschema::Validator>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

pub fn validator(pointer: &str) -> Arc<jsonschema::Validator> {
    let mut cache = VALIDATORS.lock().unwrap();
    cache
        .entry(pointer.to_owned())
        .or_insert_with(|| {
            let resource =
                jsonschema::Resource::from_contents(SPEC.clone()).expect("spec resource");
            // A URI fragment: a path template's braces are escaped.
            let fragment = pointer.replace('{', "%7B").replace('}', "%7D");
            let schema = json!({"$ref": format!("{SPEC_URI}#{fragment}")});
            Arc::new(
                jsonschema::options()
                    .with_draft(jsonschema::Draft::Draft202012)
                    .should_validate_formats(true)
                    .with_resource(SPEC_URI, resource)
                    .build(&schema)
                    .unwrap_or_else(|e| panic!("schema at {pointer} does not compile: {e}")),
            )
        })
        .clone()
}

/// The documented path a request path matches: itself, or a template
/// whose `{parameter}` segments stand for any one segment.
fn template_of(path: &str) -> Option<&'static str> {
    let segments: Vec<&str> = path.split('/').collect();
    SPEC["paths"]
        .as_object()?
        .keys()
        .map(String::as_str)
        .find(|template| {
            let parts: Vec<&str> = template.split('/').collect();
            parts.len() == segments.len()
                && parts.iter().zip(&segments).all(|(part, segment)| {
                    part == segment || (part.starts_with('{') && !segment.is_empty())
                })
        })
}

/// The documented response for this request and status, as a pointer.
fn documented_response(method: &Method, path: &str, status: &str) -> String {
    let Some(path) = template_of(path) else {
        assert_eq!(
            status, "404",
            "{method} {path}: undocumented path answered {status}"
        );
        return "/components/responses/NotFound".into();
    };
    let Some(item) = SPEC["paths"].get(path) else {
        assert_eq!(
            status, "404",
            "{method} {path}: undocumented path answered {status}"
        );
        return "/components/responses/NotFound".into();
    };
    let verb = method.as_str().to_ascii_lowercase();
    if item.get(&verb).is_none() {
        assert!(
            status == "405" || (verb == "options" && status == "404"),
            "{method} {path}: undocumented method answered {status}"
        );
        return "/components/responses/MethodNotAllowed".into();
    }
    let responses = &item[&verb]["responses"];
    assert!(
        responses.get(status).is_some(),
        "{method} {path} answered {status}, which openapi.yaml does not list for it"
    );
    format!("/paths/{}/{verb}/responses/{status}", escape(path))
}

/// Checks a response against the contract. CORS preflights are answered by
/// the CORS layer for any path, so the spec describes them once, as
/// components, rather than as an `options` operation on every path.
pub fn check(method: &Method, path_and_query: &str, preflight: bool, response: &TestResponse) {
    let path = path_and_query.split('?').next().unwrap();
    let status = response.status.as_str();
    let documented = if preflight {
        match status {
            "200" => "/components/responses/CorsPreflight".to_owned(),
            _ => "/components/responses/CorsPreflightRefused".to_owned(),
        }
    } else {
        documented_response(method, path, status)
    };
    let (pointer, documented) = resolve(documented);

    for name in documented
        .get("headers")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|headers| headers.keys())
    {
        let (_, header) = resolve(format!("{pointer}/headers/{}", escape(name)));
        if header.get("required") == Some(&Value::Bool(true)) {
            assert!(
                response.headers.contains_key(name.as_str()),
                "{method} {path} {status}: required header {name} is missing"
            );
        }
    }

    // HEAD answers as GET does, without the body.
    if method == Method::HEAD {
        assert!(response.body.is_empty(), "{method} {path} {status}: a body");
        return;
    }
    let content_type = response
        .header("content-type")
        .map(|value| value.split(';').next().unwrap().trim().to_owned());
    let Some(content) = documented.get("content").and_then(Value::as_object) else {
        assert!(
            response.body.is_empty(),
            "{method} {path} {status}: body sent but none documented"
        );
        return;
    };
    let content_type =
        content_type.unwrap_or_else(|| panic!("{method} {path} {status}: no Content-Type"));
    assert!(
        content.contains_key(&content_type),
        "{method} {path} {status}: Content-Type {content_type} is not documented"
    );
    if content_type.ends_with("json") {
        let body: Value = serde_json::from_slice(&response.body)
            .unwrap_or_else(|e| panic!("{method} {path} {status}: invalid JSON: {e}"));
        let schema = format!("{pointer}/content/{}/schema", escape(&content_type));
        let validator = validator(&schema);
        let errors: Vec<String> = validator
            .iter_errors(&body)
            .map(|e| format!("{} at {}", e, e.instance_path))
            .collect();
        assert!(
            errors.is_empty(),
            "{method} {path} {status}: body does not match openapi.yaml:\n{}\nbody: {body}",
            errors.join("\n")
        );
    }
}
