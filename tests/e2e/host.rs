//! The real `handler` binary under the host stand-in: start-up as the host expects (port from the
//! environment, readiness on `GET /`), logs on stdout only, requests forwarded with the host's headers, and
//! bad settings turned into one clear line and a non-zero exit.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::StatusCode;

use crate::standin::{HandlerProcess, start_host};

/// The `Values` of local.settings.json.example, with real values where the example has placeholders.
pub(crate) fn example_values(overrides: &[(&str, &str)]) -> BTreeMap<String, String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/local.settings.json.example");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut values: BTreeMap<String, String> = json["Values"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    values.insert(
        "WebPubSubConnectionString".into(),
        "Endpoint=http://127.0.0.1;Port=9;AccessKey=test-access-key-0123456789abcdefghijklmnop;Version=1.0;".into(),
    );
    for (name, value) in overrides {
        values.insert((*name).into(), (*value).into());
    }
    values
}

#[tokio::test]
async fn binary_starts_on_the_host_port_and_serves_through_the_host() {
    let mut handler = HandlerProcess::spawn(&example_values(&[]));
    let ready_after = handler.wait_ready().await;
    println!("handler ready after {ready_after:?}");
    let (front, invocations) = start_host(handler.port).await;
    let host = front.addr;
    let client = reqwest::Client::new();

    // Each function is reachable through the host under its declared methods.
    let negotiate = client.get(format!("http://{host}/api/negotiate")).send().await.unwrap();
    assert_ne!(negotiate.status(), StatusCode::NOT_FOUND);
    let publish = client
        .post(format!("http://{host}/api/publish"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_ne!(publish.status(), StatusCode::NOT_FOUND);
    let events = client
        .request(reqwest::Method::OPTIONS, format!("http://{host}/api/events"))
        .header("WebHook-Request-Origin", "127.0.0.1")
        .send()
        .await
        .unwrap();
    assert_ne!(events.status(), StatusCode::NOT_FOUND);
    assert_eq!(invocations.lock().unwrap().len(), 3);

    // Nothing was logged to stderr (the host records every stderr line as an error).
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        handler.stderr.lock().unwrap().is_empty(),
        "stderr: {:?}",
        handler.stderr.lock().unwrap()
    );
    assert!(
        !handler.stdout.lock().unwrap().is_empty(),
        "expected a start-up line on stdout"
    );
}

#[tokio::test]
async fn missing_required_setting_is_one_clear_line_and_a_failure_exit() {
    let mut values = example_values(&[]);
    values.remove("WebPubSubConnectionString");
    let mut handler = HandlerProcess::spawn(&values);
    let code = handler.wait_exit(Duration::from_secs(10)).expect("handler exits");
    assert_ne!(code, 0);
    let stderr = handler.stderr.lock().unwrap().clone();
    assert_eq!(stderr.len(), 1, "{stderr:?}");
    assert!(stderr[0].contains("WebPubSubConnectionString"), "{stderr:?}");
}

#[tokio::test]
async fn malformed_secret_setting_is_named_without_echoing_the_key() {
    let values = example_values(&[(
        "WebPubSubConnectionString",
        "Endpoint=not a url;AccessKey=SUPERSECRETKEYVALUE",
    )]);
    let mut handler = HandlerProcess::spawn(&values);
    let code = handler.wait_exit(Duration::from_secs(10)).expect("handler exits");
    assert_ne!(code, 0);
    let stderr = handler.stderr.lock().unwrap().join("\n");
    assert!(stderr.contains("WebPubSubConnectionString"), "{stderr}");
    assert!(!stderr.contains("SUPERSECRET"), "the key leaked: {stderr}");
}

#[tokio::test]
async fn malformed_port_is_rejected() {
    let mut handler = HandlerProcess::spawn_with_port_value(&example_values(&[]), "seventy");
    let code = handler.wait_exit(Duration::from_secs(10)).expect("handler exits");
    assert_ne!(code, 0);
    let stderr = handler.stderr.lock().unwrap().join("\n");
    assert!(stderr.contains("FUNCTIONS_CUSTOMHANDLER_PORT"), "{stderr}");
}
