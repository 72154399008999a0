//! The `*/function.json` files, the crate's function table and the routes the server really answers are one
//! and the same: every declared method is served (not 404/405), everything else is 404 or 405.

use std::collections::BTreeMap;
use std::path::Path;

use reqwest::{Method, StatusCode};
use webpubsub_control::functions::FUNCTIONS;

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
        let trigger = json["bindings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["type"] == "httpTrigger")
            .expect("an httpTrigger binding");
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

#[tokio::test]
async fn server_answers_exactly_the_declared_routes_and_methods() {
    let handler = start_handler(base_env()).await;
    let client = http();
    let declared = declared_routes();
    assert_eq!(declared.len(), 3);
    for (route, methods) in &declared {
        for method in ALL_METHODS {
            let url = handler.url(&format!("/api/{route}"));
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
                assert!(!routed, "{method} /api/{route} is not declared but answered {status}");
            }
        }
    }
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
