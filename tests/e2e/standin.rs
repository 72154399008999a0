//! A stand-in for the Azure Functions host, as far as a custom handler can tell
//! (../shared/reference/functions-custom-handler.md §3a, §4): it spawns the real `handler` binary with the
//! host's environment, polls `GET /` every 25 ms until it answers, and forwards `/api/<route>` requests for
//! the methods each `function.json` declares, adding the host's headers and re-encoding the query the way
//! the host does. The `func` binary cannot be installed here; this is the closest faithful substitute.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use test_support::recorder::Recorded;
use warp::Filter;
use warp::http::{HeaderMap, Method, Response, StatusCode};

pub(crate) const HOST_VERSION: &str = "4.1040.0.0";

/// The spawned handler process plus what it printed. Killed (SIGKILL, like the host) on drop.
pub(crate) struct HandlerProcess {
    child: Child,
    pub port: u16,
    pub stdout: Arc<Mutex<Vec<String>>>,
    pub stderr: Arc<Mutex<Vec<String>>>,
}

impl HandlerProcess {
    /// Spawns `handler` in the app root with only `values` (plus PATH) and the host's port variables.
    pub(crate) fn spawn(values: &BTreeMap<String, String>) -> Self {
        let port = free_port();
        Self::spawn_with_port_value(values, &port.to_string())
    }

    /// As [`spawn`](Self::spawn), with a raw `FUNCTIONS_CUSTOMHANDLER_PORT` value (to test bad ones).
    pub(crate) fn spawn_with_port_value(values: &BTreeMap<String, String>, port_value: &str) -> Self {
        let port = port_value.parse().unwrap_or(0);
        let mut command = Command::new(env!("CARGO_BIN_EXE_handler"));
        command
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(values)
            .env("FUNCTIONS_CUSTOMHANDLER_PORT", port_value)
            .env("FUNCTIONS_HTTPWORKER_PORT", port_value)
            .env(
                "FUNCTIONS_CUSTOMHANDLER_WORKER_ID",
                "00000000-0000-0000-0000-000000000001",
            )
            .env("FUNCTIONS_HTTPWORKER_ID", "00000000-0000-0000-0000-000000000001")
            .env("FUNCTIONS_APP_ROOT_PATH", env!("CARGO_MANIFEST_DIR"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn handler");
        let stdout = capture_lines(child.stdout.take().unwrap());
        let stderr = capture_lines(child.stderr.take().unwrap());
        Self {
            child,
            port,
            stdout,
            stderr,
        }
    }

    /// Polls `GET /` every 25 ms like the host, for at most 30 s. Returns the time to the first answer.
    pub(crate) async fn wait_ready(&mut self) -> Duration {
        let started = Instant::now();
        let client = reqwest::Client::new();
        while started.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "handler exited during start-up with {status}; stderr: {:?}",
                    self.stderr.lock().unwrap()
                );
            }
            if client
                .get(format!("http://127.0.0.1:{}/", self.port))
                .send()
                .await
                .is_ok()
            {
                return started.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("handler not ready within 30 s");
    }

    /// Waits (bounded) for the process to exit by itself and returns its exit code.
    pub(crate) fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let started = Instant::now();
        while started.elapsed() < within {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader threads drain the pipes.
                std::thread::sleep(Duration::from_millis(50));
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for HandlerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn capture_lines(stream: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// route → declared methods, from the app's `function.json` files.
fn function_routes() -> BTreeMap<String, Vec<Method>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut routes = BTreeMap::new();
    for entry in std::fs::read_dir(root).unwrap() {
        let path = entry.unwrap().path().join("function.json");
        if let Ok(text) = std::fs::read_to_string(&path) {
            let json: serde_json::Value = serde_json::from_str(&text).unwrap();
            let trigger = &json["bindings"][0];
            // Timer functions have no HTTP route: the host invokes them itself (POST /<name>).
            if trigger["type"] != "httpTrigger" {
                continue;
            }
            let name = path.parent().unwrap().file_name().unwrap().to_str().unwrap().to_owned();
            let route = trigger["route"].as_str().map(str::to_owned).unwrap_or(name);
            let methods = trigger["methods"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| Method::from_bytes(m.as_str().unwrap().to_uppercase().as_bytes()).unwrap())
                .collect();
            routes.insert(route, methods);
        }
    }
    routes
}

/// The host's front door on `127.0.0.1:0`: routes `/api/<route>` to the handler on `handler_port`.
/// Returns the running server (stopped when dropped) and a log of the invocation ids it generated.
pub(crate) async fn start_host(handler_port: u16) -> (test_support::Loopback, Arc<Mutex<Vec<String>>>) {
    let routes = Arc::new(function_routes());
    let invocations = Arc::new(Mutex::new(Vec::new()));
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let log = invocations.clone();
    let front = test_support::recorder::request().then(move |request: Recorded| {
        let routes = routes.clone();
        let client = client.clone();
        let log = log.clone();
        async move {
            let method = Method::from_bytes(request.method.as_bytes()).unwrap();
            let route = request.path.strip_prefix("/api/").unwrap_or("");
            match routes.get(route) {
                Some(methods) if methods.contains(&method) => {}
                _ => return status_only(StatusCode::NOT_FOUND),
            }
            let invocation_id = format!("{:032x}", rand::random::<u128>());
            log.lock().unwrap().push(invocation_id.clone());
            forward(
                &client,
                handler_port,
                method,
                &request.path,
                &request.query,
                request.headers,
                request.body,
                &invocation_id,
            )
            .await
        }
    });
    (test_support::serve(front).await, invocations)
}

#[allow(clippy::too_many_arguments)]
async fn forward(
    client: &reqwest::Client,
    port: u16,
    method: Method,
    path: &str,
    raw_query: &str,
    headers: HeaderMap,
    body: Bytes,
    invocation_id: &str,
) -> Response<Bytes> {
    let mut url = format!("http://127.0.0.1:{port}{path}");
    let query = reencode_query(raw_query);
    if !query.is_empty() {
        url.push('?');
        url.push_str(&query);
    }
    let mut outgoing = headers.clone();
    outgoing.remove("content-length");
    outgoing.remove("transfer-encoding");
    let agent = headers.get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or("");
    outgoing.insert(
        "user-agent",
        format!("{agent} Azure-Functions-Host/{HOST_VERSION}")
            .trim()
            .parse()
            .unwrap(),
    );
    outgoing.insert("x-azure-functions-hostversion", HOST_VERSION.parse().unwrap());
    outgoing.insert("x-azure-functions-invocationid", invocation_id.parse().unwrap());
    let mut request = client.request(method, url).headers(outgoing);
    // The host forwards a body only when the request declared a non-zero length.
    if !body.is_empty() {
        request = request.body(body);
    }
    let Ok(reply) = request.send().await else {
        return status_only(StatusCode::INTERNAL_SERVER_ERROR);
    };
    let mut response = Response::builder().status(reply.status());
    for (name, value) in reply.headers() {
        if name != "transfer-encoding" {
            response = response.header(name, value);
        }
    }
    response.body(reply.bytes().await.unwrap_or_default()).unwrap()
}

/// Query pairs re-serialized as the host does: repeated keys merged with `,`, everything percent-encoded.
pub(crate) fn reencode_query(raw: &str) -> String {
    let mut merged: Vec<(String, String)> = Vec::new();
    for (key, value) in url::form_urlencoded::parse(raw.as_bytes()) {
        match merged.iter_mut().find(|(k, _)| *k == key) {
            Some((_, existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            None => merged.push((key.into_owned(), value.into_owned())),
        }
    }
    let encode = |s: &str| percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string();
    merged
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn status_only(status: StatusCode) -> Response<Bytes> {
    Response::builder().status(status).body(Bytes::new()).unwrap()
}

#[test]
fn query_is_reencoded_like_the_host() {
    assert_eq!(reencode_query("a=1&a=2&b=x+y"), "a=1%2C2&b=x%20y");
    assert_eq!(reencode_query(""), "");
}
