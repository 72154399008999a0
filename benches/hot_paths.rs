//! Micro-benchmarks of the per-request work of `events` and of the callers' credentials, plus whole routes
//! run in-process (warp's test client: no sockets, no log subscriber), so `BENCHMARKS.md` can split a
//! request's cost between the handler's own work and HTTP/syscalls/logging.
//!
//! `benches/core.rs` covers token issuing, REST request building and connection-string parsing; this file
//! adds CloudEvents header parsing, the `connect` body, single-key signature checks, bearer-token
//! validation and the `negotiate` / `events connect` routes end to end, the last also with the real log
//! subscriber.
//!
//! Run with `cargo bench --bench hot_paths`; CI only compiles them (`cargo bench --no-run`).

use std::hint::black_box;
use std::time::{SystemTime, UNIX_EPOCH};

use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;
use warp::Filter as _;

use webpubsub_control::webpubsub::{AccessKey, ServiceKeys, signature};
use webpubsub_control::{App, CloudEvent, ConnectBody, Env, JwtSettings, JwtValidator, Settings};
use webpubsub_protocol::cloudevents as ce;

const ACCESS_KEY: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH";
const CONNECTION_STRING: &str =
    "Endpoint=http://127.0.0.1;Port=8080;AccessKey=ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH;Version=1.0;";
const CONNECTION_ID: &str = "0f9c97a2f0bf4706afe87a14e0797b11";
const JWT_SECRET: &str = "bench-jwt-secret-0123456789-0123456789-abcdef";
const JWT_ISSUER: &str = "https://issuer.bench.invalid/";
const JWT_AUDIENCE: &str = "api://webpubsub-control-bench";

/// The CloudEvents headers the service sends with a `connect`, signed with the primary key: the shared
/// builder the unit tests use, so the bench sends their request (from the connection string's host, with the
/// body's content type).
fn connect_event(keys: &ServiceKeys) -> test_support::CloudEvent {
    test_support::CloudEvent::new("azure.webpubsub.sys.connect")
        .connection("chat", CONNECTION_ID)
        .set(ce::WEBHOOK_REQUEST_ORIGIN, "127.0.0.1") // the connection string's host
        .signed_with_keys(keys)
        .set("content-type", "application/json; charset=utf-8")
}

/// A `connect` body as a JSON-subprotocol client with a negotiated token produces it.
fn connect_body() -> String {
    json!({
        "claims": {
            "sub": ["alice"],
            "iat": ["1735689600"],
            "exp": ["1735693200"],
            "aud": ["http://127.0.0.1:8080/client/hubs/chat"],
            "role": ["webpubsub.joinLeaveGroup.room1", "webpubsub.sendToGroup.room1"],
            "webpubsub.group": ["room1"]
        },
        "query": {"access_token": ["<redacted>"]},
        "headers": {"User-Agent": ["bench"], "Sec-WebSocket-Version": ["13"]},
        "subprotocols": ["json.webpubsub.azure.v1"],
        "clientCertificates": []
    })
    .to_string()
}

fn cloud_events(c: &mut Criterion) {
    let keys = ServiceKeys::new(AccessKey::new(ACCESS_KEY).unwrap());
    let headers = connect_event(&keys).header_map();
    c.bench_function("cloud_event/from_headers_connect", |b| {
        b.iter(|| CloudEvent::from_headers(black_box(&headers)).unwrap())
    });
    let body = connect_body();
    c.bench_function("cloud_event/connect_body_parse", |b| {
        b.iter(|| {
            ConnectBody::parse(black_box(body.as_bytes()))
                .unwrap()
                .subprotocols
                .len()
        })
    });
}

fn signatures(c: &mut Criterion) {
    let key = AccessKey::new(ACCESS_KEY).unwrap();
    let keys = ServiceKeys::new(key.clone());
    c.bench_function("signature/sign_one_key", |b| {
        b.iter(|| signature::sign(black_box(&key), black_box(CONNECTION_ID)))
    });
    let header = signature::signature_header(&keys, CONNECTION_ID);
    c.bench_function("signature/verify_one_key", |b| {
        b.iter(|| signature::verify(&keys, black_box(CONNECTION_ID), black_box(&header)).unwrap())
    });
}

fn jwt_env() -> Env {
    Env::from_pairs([
        ("AuthJwtIssuer", JWT_ISSUER),
        ("AuthJwtAudience", JWT_AUDIENCE),
        ("AuthJwtSecret", JWT_SECRET),
    ])
}

/// An HS256 bearer token for the bench issuer/audience, valid for an hour from now.
fn bearer_token() -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let claims = json!({
        "iss": JWT_ISSUER, "aud": JWT_AUDIENCE, "sub": "backend-service",
        "iat": now, "exp": now + 3600, "roles": ["publisher"]
    });
    jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn bearer_validation(c: &mut Criterion) {
    let settings = JwtSettings::from_env(&jwt_env(), "bench").unwrap();
    let validator = JwtValidator::new(&settings).unwrap();
    let token = bearer_token();
    let rt = runtime();
    c.bench_function("auth/jwt_validate_hs256", |b| {
        b.iter(|| rt.block_on(validator.validate(black_box(&token))).unwrap())
    });
}

/// Whole routes through warp's filters in-process: what one request costs the handler without sockets,
/// HTTP parsing of the wire format or log output.
fn routes(c: &mut Criterion) {
    let app = bench_app();
    let routes = app.routes();
    let rt = runtime();

    c.bench_function("route/readiness", |b| {
        b.iter(|| {
            let response = rt.block_on(warp::test::request().method("GET").path("/").reply(&routes));
            assert_eq!(response.status(), 200);
        })
    });
    c.bench_function("route/negotiate_anonymous", |b| {
        b.iter(|| {
            let response = rt.block_on(
                warp::test::request()
                    .method("GET")
                    .path("/api/negotiate?userId=alice")
                    .reply(&routes),
            );
            assert_eq!(response.status(), 200);
        })
    });

    let keys = ServiceKeys::new(AccessKey::new(ACCESS_KEY).unwrap());
    let event = connect_event(&keys);
    let body = connect_body();
    // The same request through a bare warp route that only reads the body: the harness's own cost
    // (building the test request, warp's plumbing), to subtract from the row below.
    let bare = warp::post()
        .and(warp::body::bytes())
        .map(|body: bytes::Bytes| body.len().to_string());
    c.bench_function("route/bare_post_same_request", |b| {
        b.iter(|| {
            let response = rt.block_on(connect_request(&event, &body).reply(&bare));
            assert_eq!(response.status(), 200);
        })
    });
    c.bench_function("route/events_connect", |b| {
        b.iter(|| {
            let response = rt.block_on(connect_request(&event, &body).reply(&routes));
            assert_eq!(response.status(), 200);
        })
    });
}

/// The same `connect` as `route/events_connect`, now with the handler's real log subscriber (default
/// filter, text, through the batch writer into `io::sink()`) and the host's invocation id: the difference
/// is what logging costs one request on one thread. Runs last: the subscriber is global.
fn logged_routes(c: &mut Criterion) {
    let _log_guard = webpubsub_control::telemetry::init_with_sink(&Default::default(), std::io::sink());
    let app = bench_app();
    let routes = app.routes();
    let rt = runtime();
    let keys = ServiceKeys::new(AccessKey::new(ACCESS_KEY).unwrap());
    let event = connect_event(&keys);
    let body = connect_body();
    c.bench_function("route/events_connect_logged", |b| {
        b.iter(|| {
            let request = connect_request(&event, &body)
                .header("x-azure-functions-invocationid", "6f9619ff-8b86-4011-b42d-00000000002a");
            let response = rt.block_on(request.reply(&routes));
            assert_eq!(response.status(), 200);
        })
    });
}

/// The handler as the route benchmarks run it: anonymous negotiate, function-key publish, jwt settings.
fn bench_app() -> App {
    let env = jwt_env()
        .with("WebPubSubConnectionString", CONNECTION_STRING)
        .with("WebPubSubHub", "chat")
        .with("NegotiateIdentity", "anonymous")
        .with("PublishTrust", "functionkey");
    App::new(Settings::from_env(&env).unwrap()).unwrap()
}

/// A `connect` as the service posts it to `/api/events`, for warp's in-process test client.
fn connect_request(event: &test_support::CloudEvent, body: &str) -> warp::test::RequestBuilder {
    let mut request = warp::test::request().method("POST").path("/api/events").body(body);
    for (name, value) in event.headers() {
        request = request.header(*name, value.as_str());
    }
    request
}

criterion_group!(
    benches,
    cloud_events,
    signatures,
    bearer_validation,
    routes,
    logged_routes
);
criterion_main!(benches);
