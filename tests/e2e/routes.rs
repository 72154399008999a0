//! The `*/function.json` files, the crate's function table, the operations of `openapi.yaml` and the routes
//! the server really answers are one and the same: every declared method is served (not 404/405), every other
//! method of a declared route is a JSON 405 whose `Allow` lists the declared ones, other paths are 404.

use std::collections::BTreeMap;
use std::path::Path;

use reqwest::{Method, StatusCode};
use webpubsub_control::FUNCTIONS;

use crate::contract::spec;
use crate::support::{base_env, http, start_handler};

const ALL_METHODS: [&str; 7] = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"];

/// route → declared methods (upper case), read from every `<folder>/function.json` at the app root.
fn declared_routes() -> BTreeMap<String, Vec<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut routes = BTreeMap::new();
    for entry in std::fs::read_dir(root).unwrap() {
        let path = entry.unwrap().path().join("function.json");
        if !path.is_file() {
            continue;
        }
        let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        // Timer functions (the outbox drain) have no route; the host POSTs them at /<folder>.
        let Some(trigger) = json["bindings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["type"] == "httpTrigger")
        else {
            continue;
        };
        let folder = path.parent().unwrap().file_name().unwrap().to_str().unwrap().to_owned();
        let route = trigger["route"].as_str().map(str::to_owned).unwrap_or(folder);
        let mut methods: Vec<String> = trigger["methods"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.as_str().unwrap().to_uppercase())
            .collect();
        methods.sort();
        routes.insert(route, methods);
    }
    routes
}

#[test]
fn function_table_matches_the_function_json_files() {
    let table: BTreeMap<String, Vec<String>> = FUNCTIONS
        .iter()
        .map(|f| {
            let mut methods: Vec<String> = f.methods.iter().map(|m| m.as_str().to_owned()).collect();
            methods.sort();
            (f.name.to_owned(), methods)
        })
        .collect();
    assert_eq!(table, declared_routes());
}

#[test]
fn the_contract_documents_exactly_the_declared_routes_and_methods() {
    // Every documented path belongs to one declared route (a catch-all route covers several paths); the
    // methods of the paths under one route together are the route's.
    let mut documented: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (path, item) in spec()["paths"].as_object().unwrap() {
        let Some(below) = path.strip_prefix("/api/") else {
            assert_eq!(path, "/outbox", "only the timer's invocation path is outside /api/");
            assert!(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("outbox/function.json")
                    .is_file()
            );
            continue;
        };
        let function = FUNCTIONS
            .iter()
            .find(|f| f.serves(below))
            .unwrap_or_else(|| panic!("{path} is documented but no function serves it"));
        let methods = documented.entry(function.name.to_owned()).or_default();
        for method in item.as_object().unwrap().keys().filter(|k| *k != "parameters") {
            let method = method.to_uppercase();
            if !methods.contains(&method) {
                methods.push(method);
            }
        }
        methods.sort();
    }
    assert_eq!(documented, declared_routes());
}

#[tokio::test]
async fn server_answers_exactly_the_declared_routes_and_methods() {
    let handler = start_handler(base_env()).await;
    let client = http();
    let declared = declared_routes();
    assert_eq!(declared.len(), 8);
    for (route, methods) in &declared {
        for method in ALL_METHODS {
            let (path, path_methods) = concrete(route, method);
            let url = handler.url(&format!("/api/{path}"));
            let response = client
                .request(Method::from_bytes(method.as_bytes()).unwrap(), &url)
                .send()
                .await
                .unwrap();
            let status = response.status();
            let routed = status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED;
            if methods.iter().any(|m| m == method) {
                assert!(routed, "{method} /api/{route} is declared but answered {status}");
            } else {
                assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} /api/{route}");
                let allow = response.headers()["allow"].to_str().unwrap().to_owned();
                let mut allowed: Vec<&str> = allow.split(", ").collect();
                allowed.sort();
                // The methods of the path asked for: a catch-all function's other paths take others.
                let expected = path_methods.unwrap_or_else(|| methods.clone());
                assert_eq!(allowed, expected, "Allow of {method} /api/{path}");
                if method != "HEAD" {
                    let body: serde_json::Value = response.json().await.unwrap();
                    assert_eq!(body["code"], "MethodNotAllowed", "{method} /api/{route}");
                }
            }
        }
    }
}

/// A path `route` serves for `method`: the route itself, or for a catch-all route the documented path under
/// it that takes `method` (any one for a method it does not take), its `{parameters}` filled in, and for a
/// catch-all route that path's documented methods (its `Allow`).
fn concrete(route: &str, method: &str) -> (String, Option<Vec<String>>) {
    let Some(prefix) = route.strip_suffix("/{*rest}") else {
        return (route.to_owned(), None);
    };
    let paths = spec()["paths"].as_object().unwrap();
    let under: Vec<(&String, &serde_json::Value)> = paths
        .iter()
        .filter(|(path, _)| {
            path.strip_prefix("/api/")
                .is_some_and(|p| p == prefix || p.starts_with(&format!("{prefix}/")))
        })
        .collect();
    let (path, item) = under
        .iter()
        .find(|(_, item)| item.get(method.to_lowercase()).is_some())
        .unwrap_or(&under[0]);
    let mut filled = String::new();
    for segment in path.strip_prefix("/api/").unwrap().split('/') {
        if !filled.is_empty() {
            filled.push('/');
        }
        filled.push_str(if segment.starts_with('{') { "x" } else { segment });
    }
    let mut methods: Vec<String> = ALL_METHODS
        .iter()
        .filter(|m| item.get(m.to_lowercase()).is_some())
        .map(|m| (*m).to_owned())
        .collect();
    methods.sort();
    (filled, Some(methods))
}

#[tokio::test]
async fn undeclared_paths_are_json_404s() {
    let handler = start_handler(base_env()).await;
    let client = http();
    for path in [
        "/api/nope",
        "/api",
        "/negotiate",
        "/api/negotiate/extra",
        "/api/Publish2",
        "/api/openapi.yaml",
    ] {
        let response = client.post(handler.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["code"], "NotFound", "{path}");
    }
}

#[tokio::test]
async fn readiness_probe_answers_at_the_root() {
    let handler = start_handler(base_env()).await;
    let response = http().get(handler.url("/")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}
