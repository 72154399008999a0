//! Tests of [`super::TokenSource`] against a scripted token endpoint on 127.0.0.1.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use url::Url;

use super::*;
use crate::identity::provider::{ClientSecretValue, SecretSource};
use crate::identity::settings::ManagedIdentity;
use ::test_support::token_endpoint::{Answer, TokenServer};
use ::test_support::tokens::now;
use webpubsub_protocol::WEBPUBSUB_RESOURCE;

fn quick() -> TokenOptions {
    TokenOptions {
        deadline: Duration::from_millis(1500),
        request_timeout: Duration::from_millis(400),
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
        failure_cooldown: Duration::ZERO,
        ..TokenOptions::default()
    }
}

fn app_service(server: &TokenServer, header: SecretSource, identity: ManagedIdentity) -> Provider {
    Provider::AppService {
        endpoint: Url::parse(&server.url("/MSI/token")).unwrap(),
        header,
        identity,
    }
}

fn fixed_header(value: &str) -> SecretSource {
    let value = value.to_owned();
    Arc::new(move || Some(value.clone()))
}

fn source(provider: Provider) -> TokenSource {
    TokenSource::new(provider, WEBPUBSUB_RESOURCE, quick()).unwrap()
}

#[tokio::test]
async fn app_service_token_is_fetched_once_and_cached() {
    let server = TokenServer::start(vec![Answer::token("tok-1", now() + 3600)]).await;
    let tokens = source(app_service(
        &server,
        fixed_header("h1"),
        ManagedIdentity::ClientId("cid".into()),
    ));
    assert_eq!(tokens.token().await.unwrap().expose_secret(), "tok-1");
    assert_eq!(tokens.token().await.unwrap().expose_secret(), "tok-1");
    assert_eq!(server.hits(), 1);
    let seen = &server.seen()[0];
    assert_eq!(seen.path, "/MSI/token");
    assert_eq!(
        seen.query,
        "resource=https%3A%2F%2Fwebpubsub.azure.com&api-version=2019-08-01&client_id=cid"
    );
    assert_eq!(seen.headers["x-identity-header"], "h1");
}

#[tokio::test]
async fn a_token_with_under_five_minutes_left_is_refreshed_and_the_header_reread() {
    let server = TokenServer::start(vec![
        Answer::token("short", now() + 200),
        Answer::token("long", now() + 3600),
    ])
    .await;
    let header = Arc::new(Mutex::new("rotated-1".to_owned()));
    let read: SecretSource = {
        let header = header.clone();
        Arc::new(move || Some(header.lock().unwrap().clone()))
    };
    let tokens = source(app_service(&server, read, ManagedIdentity::ResourceId("/x/y".into())));
    assert_eq!(tokens.token().await.unwrap().expose_secret(), "short");
    *header.lock().unwrap() = "rotated-2".into();
    assert_eq!(tokens.token().await.unwrap().expose_secret(), "long");
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    assert!(seen[0].query.ends_with("&mi_res_id=%2Fx%2Fy"), "{}", seen[0].query);
    assert_eq!(seen[0].headers["x-identity-header"], "rotated-1");
    assert_eq!(seen[1].headers["x-identity-header"], "rotated-2");
}

#[tokio::test]
async fn concurrent_callers_share_one_refresh() {
    let server = TokenServer::start(vec![
        Answer::token("shared", now() + 3600).delayed(Duration::from_millis(150)),
    ])
    .await;
    let tokens = Arc::new(source(app_service(&server, fixed_header("h"), ManagedIdentity::System)));
    let calls: Vec<_> = (0..16)
        .map(|_| {
            let tokens = tokens.clone();
            tokio::spawn(async move { tokens.token().await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap().expose_secret(), "shared");
    }
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn waiting_callers_share_a_failure_instead_of_asking_again() {
    let refused =
        r#"{"statusCode":400,"message":"Unable to load the proper Managed Identity.","correlationId":"c-42"}"#;
    let server = TokenServer::start(vec![Answer::json(400, refused).delayed(Duration::from_millis(150))]).await;
    let tokens = Arc::new(source(app_service(&server, fixed_header("h"), ManagedIdentity::System)));
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let tokens = tokens.clone();
            tokio::spawn(async move { tokens.token().await })
        })
        .collect();
    for call in calls {
        let error = call.await.unwrap().unwrap_err();
        assert_eq!(
            error,
            IdentityError::Refused {
                status: 400,
                correlation_id: Some("c-42".into())
            }
        );
    }
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn server_errors_and_throttling_are_retried() {
    let server = TokenServer::start(vec![
        Answer::json(503, "{}"),
        Answer::json(429, "{}").retry_after(1),
        Answer::token("after-retries", now() + 3600),
    ])
    .await;
    let tokens = TokenSource::new(
        app_service(&server, fixed_header("h"), ManagedIdentity::System),
        WEBPUBSUB_RESOURCE,
        TokenOptions {
            deadline: Duration::from_secs(5),
            ..quick()
        },
    )
    .unwrap();
    assert_eq!(tokens.token().await.unwrap().expose_secret(), "after-retries");
    assert_eq!(server.hits(), 3);
}

#[tokio::test]
async fn a_retry_after_beyond_the_deadline_fails_at_once_with_that_hint() {
    let server = TokenServer::start(vec![Answer::json(429, "{}").retry_after(60)]).await;
    let tokens = source(app_service(&server, fixed_header("h"), ManagedIdentity::System));
    let error = tokens.token().await.unwrap_err();
    assert!(
        matches!(
            error,
            IdentityError::Unavailable {
                retry_after_secs: 60,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(error.retry_after_secs(), 60);
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn a_down_endpoint_is_unavailable_within_the_deadline() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/MSI/token", closed.local_addr().unwrap());
    drop(closed);
    let tokens = source(Provider::AppService {
        endpoint: Url::parse(&url).unwrap(),
        header: fixed_header("h"),
        identity: ManagedIdentity::System,
    });
    let error = tokens.token().await.unwrap_err();
    assert!(matches!(error, IdentityError::Unavailable { .. }), "{error:?}");
    assert!(error.retry_after_secs() >= 1);
}

#[tokio::test]
async fn a_slow_endpoint_is_unavailable_within_the_deadline() {
    let server = TokenServer::start(vec![
        Answer::token("late", now() + 3600).delayed(Duration::from_secs(5)),
    ])
    .await;
    let tokens = source(app_service(&server, fixed_header("h"), ManagedIdentity::System));
    assert!(matches!(tokens.token().await, Err(IdentityError::Unavailable { .. })));
}

#[tokio::test]
async fn a_still_valid_token_is_served_while_refresh_fails() {
    let server = TokenServer::start(vec![Answer::token("old-but-valid", now() + 200)]).await;
    let tokens = source(app_service(&server, fixed_header("h"), ManagedIdentity::System));
    assert_eq!(tokens.token().await.unwrap().expose_secret(), "old-but-valid");
    server.set_answers(vec![Answer::json(500, "{}")]);
    assert_eq!(tokens.token().await.unwrap().expose_secret(), "old-but-valid");
    assert!(server.hits() >= 2);
}

#[tokio::test]
async fn an_expired_token_is_never_served() {
    let server = TokenServer::start(vec![Answer::token("expired", now() - 10)]).await;
    let tokens = source(app_service(&server, fixed_header("h"), ManagedIdentity::System));
    // Accepted from the endpoint (it is the endpoint's word), but not usable: fetched again next time.
    let first = tokens.token().await;
    assert!(first.is_ok());
    server.set_answers(vec![Answer::json(500, "{}")]);
    assert!(matches!(tokens.token().await, Err(IdentityError::Unavailable { .. })));
}

#[tokio::test]
async fn imds_retries_not_found_and_sends_metadata_header() {
    let server = TokenServer::start(vec![Answer::json(404, "{}"), Answer::token("imds", now() + 3600)]).await;
    let tokens = source(Provider::Imds {
        endpoint: Url::parse(&server.url("/metadata/identity/oauth2/token")).unwrap(),
        identity: ManagedIdentity::ResourceId("/r".into()),
    });
    assert_eq!(tokens.token().await.unwrap().expose_secret(), "imds");
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].headers["metadata"], "true");
    assert_eq!(
        seen[1].query,
        "api-version=2018-02-01&resource=https%3A%2F%2Fwebpubsub.azure.com&msi_res_id=%2Fr"
    );
}

#[tokio::test]
async fn other_client_errors_are_final() {
    let server = TokenServer::start(vec![Answer::json(401, "{}")]).await;
    let tokens = source(app_service(&server, fixed_header("h"), ManagedIdentity::System));
    assert!(matches!(
        tokens.token().await,
        Err(IdentityError::Refused { status: 401, .. })
    ));
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn service_principal_uses_client_credentials_at_the_authority() {
    let body = r#"{"token_type":"Bearer","expires_in":3599,"access_token":"sp-token"}"#;
    let server = TokenServer::start(vec![Answer::json(200, body)]).await;
    let tokens = source(Provider::ClientSecret {
        authority: Url::parse(&server.url("/")).unwrap(),
        tenant_id: "tenant-1".into(),
        client_id: "client-1".into(),
        secret: ClientSecretValue::new("sp-secret"),
    });
    assert_eq!(tokens.token().await.unwrap().expose_secret(), "sp-token");
    let seen = &server.seen()[0];
    assert_eq!(seen.path, "/tenant-1/oauth2/v2.0/token");
    assert!(seen.body_text().contains("grant_type=client_credentials"));
    assert!(seen.body_text().contains("client_secret=sp-secret"));
    assert!(
        seen.body_text()
            .contains("scope=https%3A%2F%2Fwebpubsub.azure.com%2F.default")
    );
    assert!(!format!("{tokens:?}").contains("sp-secret"));
}

#[tokio::test]
async fn workload_identity_rereads_the_federated_token_file() {
    let server = TokenServer::start(vec![
        Answer::token("wi-1", now() + 100),
        Answer::token("wi-2", now() + 3600),
    ])
    .await;
    let file = std::env::temp_dir().join(format!("wpsc-federated-{}-{}", std::process::id(), now()));
    std::fs::write(&file, "assertion-one\n").unwrap();
    let tokens = source(Provider::WorkloadIdentity {
        authority: Url::parse(&server.url("/")).unwrap(),
        tenant_id: "t".into(),
        client_id: "c".into(),
        token_file: file.clone(),
    });
    assert_eq!(tokens.token().await.unwrap().expose_secret(), "wi-1");
    std::fs::write(&file, "assertion-two").unwrap();
    assert_eq!(tokens.token().await.unwrap().expose_secret(), "wi-2");
    std::fs::remove_file(&file).unwrap();
    let seen = server.seen();
    assert!(
        seen[0].body_text().contains("client_assertion=assertion-one&"),
        "{}",
        seen[0].body_text()
    );
    assert!(seen[1].body_text().contains("client_assertion=assertion-two&"));
    assert!(
        seen[1]
            .body_text()
            .contains("client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer")
    );
    // A missing file is a local misconfiguration, reported without asking the endpoint.
    let hits = server.hits();
    let missing = source(Provider::WorkloadIdentity {
        authority: Url::parse(&server.url("/")).unwrap(),
        tenant_id: "t".into(),
        client_id: "c".into(),
        token_file: file,
    });
    assert!(matches!(missing.token().await, Err(IdentityError::Misconfigured(_))));
    assert_eq!(server.hits(), hits);
}

#[tokio::test]
async fn errors_never_carry_the_token_or_secret() {
    let server = TokenServer::start(vec![Answer::json(
        400,
        r#"{"access_token":"leaked","correlationId":"a"}"#,
    )])
    .await;
    let tokens = source(app_service(
        &server,
        fixed_header("header-secret"),
        ManagedIdentity::System,
    ));
    let error = tokens.token().await.unwrap_err();
    let shown = format!("{error} {error:?} {tokens:?}");
    assert!(!shown.contains("leaked") && !shown.contains("header-secret"), "{shown}");
}

#[tokio::test]
async fn a_recent_failure_is_answered_without_asking_again() {
    let server = TokenServer::start(vec![Answer::json(400, "{}")]).await;
    let options = TokenOptions {
        failure_cooldown: Duration::from_secs(60),
        ..quick()
    };
    let tokens = TokenSource::new(
        app_service(&server, fixed_header("h"), ManagedIdentity::System),
        WEBPUBSUB_RESOURCE,
        options,
    )
    .unwrap();
    for _ in 0..5 {
        assert!(matches!(
            tokens.token().await,
            Err(IdentityError::Refused { status: 400, .. })
        ));
    }
    assert_eq!(server.hits(), 1);
}
