//! The API contract, `openapi.yaml`, held against the code: it parses (and the served copy is the same
//! document), every example matches its schema, every request and response has an example, and — through
//! [`assert_matches_spec`], which other e2e tests call on the answers they receive — real answers match the
//! documented status, content type, headers and schema.

use std::sync::OnceLock;

use reqwest::header::{CONTENT_TYPE, HeaderMap};
use serde_json::{Value, json};
use webpubsub_control::OPENAPI_DOCUMENT;

use crate::support::{base_env, http, start_handler};

/// The contract, parsed once from `openapi.yaml` itself.
pub(crate) fn spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml");
        let yaml = std::fs::read_to_string(path).expect("openapi.yaml is readable");
        serde_norway::from_str(&yaml).expect("openapi.yaml parses")
    })
}

/// Follows a local `$ref` (`#/a/b`), repeatedly, to the object it names.
fn resolve(value: &Value) -> &Value {
    let mut value = value;
    while let Some(reference) = value.get("$ref").and_then(Value::as_str) {
        let pointer = reference.strip_prefix('#').expect("only local references");
        value = spec()
            .pointer(pointer)
            .unwrap_or_else(|| panic!("dangling $ref {reference}"));
    }
    value
}

/// The errors of `instance` against `schema` (a schema of the contract, its `$ref`s resolved in the contract).
fn schema_errors(schema: &Value, instance: &Value) -> Vec<String> {
    let wrapper = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": spec()["components"],
        "allOf": [schema],
    });
    let validator = jsonschema::draft202012::new(&wrapper).expect("a valid JSON Schema");
    validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// Asserts that an answer to `method path` is what the contract says: the status is documented for the
/// operation, and so is the content type; a JSON body matches its schema; required headers are present.
pub(crate) fn assert_matches_spec(method: &str, path: &str, status: u16, headers: &HeaderMap, body: &[u8]) {
    let route = documented_path(path.split('?').next().unwrap());
    let what = format!("{method} {route} → {status}");
    let operation = &spec()["paths"][route.as_str()][method.to_ascii_lowercase()];
    assert!(operation.is_object(), "{what}: the operation is not documented");
    let response = operation["responses"]
        .get(status.to_string())
        .or_else(|| operation["responses"].get("default"))
        .map(resolve)
        .unwrap_or_else(|| panic!("{what}: the status is not documented"));
    if let Some(documented) = response.get("headers").and_then(Value::as_object) {
        for (name, header) in documented {
            if resolve(header)["required"] == true {
                assert!(headers.contains_key(name.as_str()), "{what}: header {name} is missing");
            }
        }
    }
    let content_type = headers.get(CONTENT_TYPE).map(|v| {
        v.to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .trim()
            .to_ascii_lowercase()
    });
    let Some(content) = response.get("content").and_then(Value::as_object) else {
        assert!(body.is_empty(), "{what}: a body where none is documented");
        return;
    };
    let content_type = content_type.unwrap_or_else(|| panic!("{what}: no Content-Type"));
    let media = content
        .get(&content_type)
        .unwrap_or_else(|| panic!("{what}: content type {content_type} is not documented"));
    if content_type == "application/json" {
        let instance: Value = serde_json::from_slice(body).unwrap_or_else(|e| panic!("{what}: not JSON: {e}"));
        let errors = schema_errors(&media["schema"], &instance);
        assert!(
            errors.is_empty(),
            "{what}: {instance} does not match the schema: {errors:?}"
        );
    }
}

/// The documented path template a real path falls under (`/api/conversations/c1/messages` →
/// `/api/conversations/{id}/messages`), or the path itself.
fn documented_path(path: &str) -> String {
    let real: Vec<&str> = path.split('/').collect();
    spec()["paths"]
        .as_object()
        .unwrap()
        .keys()
        .find(|template| {
            let parts: Vec<&str> = template.split('/').collect();
            parts.len() == real.len()
                && parts
                    .iter()
                    .zip(&real)
                    .all(|(t, r)| t == r || (t.starts_with('{') && !r.is_empty()))
        })
        .cloned()
        .unwrap_or_else(|| path.to_owned())
}

/// An answer read whole after [`assert_matches_spec`] checked it.
pub(crate) struct Checked {
    pub status: reqwest::StatusCode,
    pub headers: HeaderMap,
    pub body: bytes::Bytes,
}

impl Checked {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// Reads `response` (to `method path`) and asserts it matches the contract.
pub(crate) async fn checked(method: &str, path: &str, response: reqwest::Response) -> Checked {
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.bytes().await.expect("a body");
    assert_matches_spec(method, path, status.as_u16(), &headers, &body);
    Checked { status, headers, body }
}

#[test]
fn the_served_document_is_openapi_yaml() {
    let served: Value = serde_json::from_str(OPENAPI_DOCUMENT).unwrap();
    assert_eq!(&served, spec());
    assert_eq!(spec()["openapi"], "3.1.0");
}

/// Calls `visit(location, schema, example)` for every example in the contract: `example` / `examples`
/// beside a `schema` (media types, parameters, headers) and `examples` inside a schema.
fn each_example(value: &Value, location: &str, visit: &mut dyn FnMut(&str, &Value, &Value)) {
    match value {
        Value::Object(map) => {
            if let Some(schema) = map.get("schema") {
                if let Some(example) = map.get("example") {
                    visit(location, schema, example);
                }
                if let Some(examples) = map.get("examples").and_then(Value::as_object) {
                    for (name, example) in examples {
                        visit(
                            &format!("{location}/examples/{name}"),
                            schema,
                            &resolve(example)["value"],
                        );
                    }
                }
            }
            if location.starts_with("/components/schemas/")
                && let Some(examples) = map.get("examples").and_then(Value::as_array)
            {
                for example in examples {
                    visit(location, value, example);
                }
            }
            for (key, child) in map {
                each_example(child, &format!("{location}/{}", key.replace('/', "~1")), visit);
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                each_example(child, &format!("{location}/{index}"), visit);
            }
        }
        _ => {}
    }
}

#[test]
fn every_example_matches_its_schema() {
    let mut checked = 0;
    let mut failures = Vec::new();
    each_example(spec(), "", &mut |location, schema, example| {
        checked += 1;
        let errors = schema_errors(schema, example);
        if !errors.is_empty() {
            failures.push(format!("{location}: {errors:?}"));
        }
    });
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(checked > 60, "only {checked} examples found");
}

#[test]
fn a_wrong_example_would_be_caught() {
    let error = json!({"$ref": "#/components/schemas/Error"});
    assert!(schema_errors(&error, &json!({"code": "X", "message": "m"})).is_empty());
    assert!(!schema_errors(&error, &json!({"code": "X"})).is_empty());
    assert!(!schema_errors(&error, &json!({"code": "X", "message": "m", "extra": 1})).is_empty());
}

#[test]
fn every_request_and_response_body_has_an_example() {
    let mut missing = Vec::new();
    for (path, item) in spec()["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap().iter().filter(|(key, _)| *key != "parameters") {
            let mut bodies: Vec<(String, &Value)> = Vec::new();
            if let Some(request) = operation.get("requestBody") {
                bodies.push(("request".into(), resolve(request)));
            }
            for (status, response) in operation["responses"].as_object().unwrap() {
                bodies.push((status.clone(), resolve(response)));
            }
            for (what, body) in bodies {
                for (media_type, media) in body.get("content").and_then(Value::as_object).into_iter().flatten() {
                    if media.get("example").is_none() && media.get("examples").is_none() {
                        missing.push(format!("{method} {path} {what} {media_type}"));
                    }
                }
            }
        }
    }
    assert!(missing.is_empty(), "no example: {missing:#?}");
}

#[test]
fn every_operation_documents_405_and_its_client_errors() {
    // 408 (stalled body) and 431 (oversize head) come from the connection layer, before any route (#14 item 2).
    for (path, item) in spec()["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap().iter().filter(|(key, _)| *key != "parameters") {
            let responses = operation["responses"].as_object().unwrap();
            for status in ["400", "405", "408", "431"] {
                assert!(
                    responses.contains_key(status),
                    "{method} {path} does not document {status}"
                );
            }
            let body = operation.get("requestBody").map(resolve);
            if body.is_some_and(|body| body["content"].as_object().is_some_and(|c| !c.is_empty())) {
                assert!(
                    responses.contains_key("413"),
                    "{method} {path} takes a body but documents no 413"
                );
            }
        }
    }
}

#[tokio::test]
async fn the_route_serves_the_contract() {
    let handler = start_handler(base_env()).await;
    let response = http().get(handler.url("/api/openapi.json")).send().await.unwrap();
    let reply = checked("GET", "/api/openapi.json", response).await;
    assert_eq!(reply.status, 200);
    assert_eq!(&reply.json(), spec());
}
