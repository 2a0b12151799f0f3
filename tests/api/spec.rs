//! openapi.yaml itself: a valid OpenAPI 3.1 document, self-consistent, and
//! describing exactly the routes the application serves.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use actix_web::introspection::{IntrospectionReportItem, IntrospectionTree};
use actix_web::{test as actix_test, web};
use authd::services::passwords::PasswordHasher;
use authd::services::throttle::Throttle;
use authd::services::throttle::postgres::PostgresStore;
use serde_json::Value;

use crate::helpers::contract::{SPEC, validator};

#[test]
fn the_spec_is_a_valid_openapi_3_1_document() {
    let meta: Value = serde_json::from_str(include_str!("../fixtures/openapi-3.1.schema.json"))
        .expect("the vendored OpenAPI schema is JSON");
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&meta)
        .expect("the OpenAPI schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&SPEC)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "openapi.yaml is not valid OpenAPI 3.1:\n{}",
        errors.join("\n")
    );
    assert!(SPEC["openapi"].as_str().unwrap().starts_with("3.1."));
}

/// Every `$ref` in the document points at something.
#[test]
fn every_reference_resolves() {
    fn walk(value: &Value, at: &str, broken: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    let found = target
                        .strip_prefix('#')
                        .and_then(|pointer| SPEC.pointer(pointer));
                    if found.is_none() {
                        broken.push(format!("{at}: {target}"));
                    }
                }
                for (key, child) in map {
                    walk(child, &format!("{at}/{key}"), broken);
                }
            }
            Value::Array(items) => {
                for (index, child) in items.iter().enumerate() {
                    walk(child, &format!("{at}/{index}"), broken);
                }
            }
            _ => {}
        }
    }
    let mut broken = Vec::new();
    walk(&SPEC, "", &mut broken);
    assert!(broken.is_empty(), "dangling $refs:\n{}", broken.join("\n"));
}

/// Examples are part of the contract too: clients copy them.
#[test]
fn every_example_matches_its_schema() {
    fn escape(key: &str) -> String {
        key.replace('~', "~0").replace('/', "~1")
    }
    fn check(pointer: &str, schema_pointer: &str, example: &Value, failures: &mut Vec<String>) {
        let validator = validator(schema_pointer);
        for error in validator.iter_errors(example) {
            failures.push(format!("{pointer}: {error} at {}", error.instance_path));
        }
    }
    fn walk(value: &Value, pointer: &str, failures: &mut Vec<String>, checked: &mut usize) {
        let Value::Object(map) = value else {
            if let Value::Array(items) = value {
                for (index, child) in items.iter().enumerate() {
                    walk(child, &format!("{pointer}/{index}"), failures, checked);
                }
            }
            return;
        };
        match (map.get("examples"), map.contains_key("schema")) {
            // A schema's `examples` keyword: a list of instances.
            (Some(Value::Array(examples)), _) => {
                for example in examples {
                    check(pointer, pointer, example, failures);
                    *checked += 1;
                }
            }
            // A media type's or parameter's named examples. A YAML example
            // is the document's text, not an instance of its schema.
            (Some(Value::Object(examples)), true) if !pointer.ends_with("yaml") => {
                for (name, example) in examples {
                    let value = example.get("value").expect("examples have a value");
                    check(
                        &format!("{pointer}/examples/{name}"),
                        &format!("{pointer}/schema"),
                        value,
                        failures,
                    );
                    *checked += 1;
                }
            }
            _ => {}
        }
        for (key, child) in map {
            walk(
                child,
                &format!("{pointer}/{}", escape(key)),
                failures,
                checked,
            );
        }
    }
    let (mut failures, mut checked) = (Vec::new(), 0);
    walk(&SPEC, "", &mut failures, &mut checked);
    assert!(
        failures.is_empty(),
        "examples that break their schema:\n{}",
        failures.join("\n")
    );
    assert!(
        checked > 20,
        "only {checked} examples found: is the walk broken?"
    );
}

/// `Me` spells out the `User` fields again (generated clients cannot follow
/// a `$ref` into another schema's properties): they must stay the same.
#[test]
fn me_repeats_the_user_fields_exactly() {
    let schemas = &SPEC["components"]["schemas"];
    let user = schemas["User"]["properties"].as_object().unwrap();
    let me = schemas["Me"]["properties"].as_object().unwrap();
    for (name, schema) in user {
        assert_eq!(
            me.get(name),
            Some(schema),
            "Me.{name} differs from User.{name}"
        );
    }
    let required = |schema: &Value| -> BTreeSet<String> {
        schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|name| name.as_str().unwrap().to_owned())
            .collect()
    };
    assert!(
        required(&schemas["User"]).is_subset(&required(&schemas["Me"])),
        "Me must require every field User requires"
    );
}

/// Generated clients name the problem types' enum members from
/// `x-enum-varnames`, pairwise: a type added without its name shifts every
/// name after it.
#[test]
fn each_problem_type_has_its_enum_name() {
    let problem_type = &SPEC["components"]["schemas"]["ProblemType"];
    let kinds = problem_type["enum"].as_array().unwrap();
    let names = problem_type["x-enum-varnames"].as_array().unwrap();
    assert_eq!(kinds.len(), names.len(), "one name per problem type");
    for (kind, name) in kinds.iter().zip(names) {
        let kind = kind.as_str().unwrap();
        let expected = kind
            .trim_start_matches("urn:authd:problem:")
            .replace('-', "_")
            .to_uppercase();
        assert_eq!(name.as_str(), Some(expected.as_str()), "the name of {kind}");
    }
}

#[test]
fn every_operation_is_named_summarised_and_illustrated() {
    for (path, item) in SPEC["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let at = format!("{method} {path}");
            assert!(
                operation["operationId"].is_string(),
                "{at} lacks an operationId"
            );
            assert!(operation["summary"].is_string(), "{at} lacks a summary");
            if let Some(body) = operation.get("requestBody") {
                assert!(
                    body["content"]["application/json"]["examples"].is_object(),
                    "{at} has no request example"
                );
            }
            let has_success_example = operation["responses"]
                .as_object()
                .unwrap()
                .iter()
                .filter(|(status, _)| status.starts_with('2'))
                .all(|(_, response)| {
                    response.get("content").is_none_or(|content| {
                        content
                            .as_object()
                            .unwrap()
                            .values()
                            .all(|media| media["examples"].is_object())
                    })
                });
            assert!(
                has_success_example,
                "{at}: a success response has no example"
            );
        }
    }
}

/// Drift in either direction fails: a route served but not documented, or
/// documented but not served.
#[actix_web::test]
async fn the_served_routes_are_exactly_the_documented_ones() {
    let settings = crate::helpers::test_settings("postgres://127.0.0.1:1/unused".into());
    let hasher = PasswordHasher::start(4, 1).unwrap();
    let pool = authd::db::pool(
        &settings.database.url,
        authd::db::PoolOptions {
            size: 1,
            min_idle: 0,
            timeout: settings.database.timeout.std(),
            statement_timeout: settings.database.statement_timeout.std(),
            pooled: false,
        },
    );
    let throttle = Throttle::new(
        PostgresStore::new(pool.clone()),
        [0; 32],
        Default::default(),
    );
    let mailer = authd::services::mail::Mailer::new(&settings.mail).unwrap();
    let parts = authd::startup::Services::wire(
        &settings,
        pool,
        hasher,
        throttle,
        mailer,
        Default::default(),
    )
    .parts(&settings);
    let report: Arc<Mutex<Vec<IntrospectionReportItem>>> = Arc::default();
    let sink = report.clone();
    let app = parts.app(|_| {}).wrap_fn(move |request, service| {
        if let Some(tree) = request.app_data::<web::Data<IntrospectionTree>>() {
            *sink.lock().unwrap() = Vec::from(&tree.root);
        }
        actix_web::dev::Service::call(service, request)
    });
    let app = actix_test::init_service(app).await;
    actix_test::call_service(
        &app,
        actix_test::TestRequest::get().uri("/healthz").to_request(),
    )
    .await;

    let served: BTreeSet<(String, String)> = report
        .lock()
        .unwrap()
        .iter()
        .filter(|item| item.resource_type == "resource")
        .flat_map(|item| {
            item.methods
                .iter()
                .map(|m| (item.full_path.clone(), m.to_uppercase()))
        })
        .collect();
    let documented: BTreeSet<(String, String)> = SPEC["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(|method| (path.clone(), method.to_uppercase()))
        })
        .collect();
    assert!(!served.is_empty(), "the introspection report is empty");
    assert_eq!(
        served, documented,
        "served routes (left) differ from openapi.yaml (right)"
    );
}
