//! Benchmarks of the per-request hot paths of the Web PubSub core: client token issuing (negotiate),
//! REST request building and signing (publish), and upstream signature checks (events).
//!
//! Run with `cargo bench --bench core`; CI only compiles them (`cargo bench --no-run`).

use std::hint::black_box;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use criterion::{Criterion, criterion_group, criterion_main};
use webpubsub_control::webpubsub::{
    AccessKey, ApiRequest, ClientAccessIssuer, ClientAccessRequest, ConnectionString, Message, RestClient, RestOptions,
    SendOptions, ServiceKeys, signature,
};

const CONNECTION_STRING: &str =
    "Endpoint=https://contoso.webpubsub.azure.com;AccessKey=ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH;Version=1.0;";

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn client_token(c: &mut Criterion) {
    let connection = ConnectionString::parse(CONNECTION_STRING).unwrap();
    let issuer = ClientAccessIssuer::new(connection.endpoint().clone(), connection.access_key());
    let request = ClientAccessRequest {
        user_id: Some("alice@example.com".into()),
        roles: vec![
            "webpubsub.joinLeaveGroup.room1".into(),
            "webpubsub.sendToGroup.room1".into(),
        ],
        groups: vec!["room1".into()],
        ..ClientAccessRequest::default()
    };
    c.bench_function("client_token/issue", |b| {
        b.iter(|| issuer.issue_at(black_box("chat"), black_box(&request), now()).unwrap())
    });
}

fn rest_request(c: &mut Criterion) {
    let connection = ConnectionString::parse(CONNECTION_STRING).unwrap();
    let client = RestClient::new(&connection, RestOptions::default()).unwrap();
    let message = Message::text("hello, room 1");
    let options = SendOptions {
        excluded: vec!["conn-1".into()],
        ttl_seconds: Some(30),
        ..SendOptions::default()
    };
    c.bench_function("rest_request/build", |b| {
        b.iter(|| ApiRequest::send_to_group(black_box("chat"), black_box("room 1"), &message, &options).unwrap())
    });
    let request = ApiRequest::send_to_group("chat", "room 1", &message, &options).unwrap();
    c.bench_function("rest_request/sign", |b| {
        b.iter(|| client.prepare(black_box(&request), now()).unwrap())
    });
    c.bench_function("rest_request/build_and_sign", |b| {
        b.iter(|| {
            let request =
                ApiRequest::send_to_group(black_box("chat"), black_box("room 1"), &message, &options).unwrap();
            client.prepare(&request, now()).unwrap()
        })
    });
}

fn upstream_signature(c: &mut Criterion) {
    let keys = ServiceKeys::new(AccessKey::new("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH").unwrap())
        .with_secondary(AccessKey::new("ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvu").unwrap());
    let header = signature::signature_header(&keys, "0f3c1f1e2d4b4a6c8e9d7b5a3c1e2f40");
    c.bench_function("signature/verify_two_keys", |b| {
        b.iter(|| signature::verify(&keys, black_box("0f3c1f1e2d4b4a6c8e9d7b5a3c1e2f40"), black_box(&header)).unwrap())
    });
}

fn connection_string(c: &mut Criterion) {
    c.bench_function("connection_string/parse", |b| {
        b.iter(|| ConnectionString::parse(black_box(CONNECTION_STRING)).unwrap())
    });
}

criterion_group!(
    benches,
    client_token,
    rest_request,
    upstream_signature,
    connection_string
);
criterion_main!(benches);
