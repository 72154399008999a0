//! The handler's identity pieces against the emulator's identity authority over real sockets: tokens from
//! its App Service-shaped endpoint are accepted by the emulator as REST bearer, refreshed near expiry, and
//! its upstream bearer tokens pass (or fail) the Entra validator through its published key set.

use std::sync::Arc;
use std::time::Duration;

use webpubsub_emulator::identity::{self as emulated, IdentityAuthority};

use super::*;
use crate::auth::jwks::JwksOptions;
use crate::config::Env;
use crate::identity::settings::{IdentityCredential, ManagedIdentity};

const HEADER: &str = "identity-header-for-tests";

struct Running {
    authority: Arc<IdentityAuthority>,
    addr: std::net::SocketAddr,
    _server: ::test_support::Loopback,
}

async fn start(authority: IdentityAuthority) -> Running {
    let authority = Arc::new(authority);
    let server = ::test_support::serve(authority.clone().routes()).await;
    let addr = server.addr;
    Running {
        authority,
        addr,
        _server: server,
    }
}

fn header(value: &'static str) -> SecretSource {
    Arc::new(move || Some(value.to_owned()))
}

#[tokio::test]
async fn app_service_tokens_from_the_emulator_are_accepted_as_rest_bearer() {
    let running = start(IdentityAuthority::new(HEADER).unwrap()).await;
    let env = Env::from_pairs([("IDENTITY_ENDPOINT", format!("http://{}/identity/token", running.addr))]);
    let credential = IdentityCredential::Managed(ManagedIdentity::ResourceId("/subscriptions/s/uai".into()));
    let tokens = TokenSource::for_webpubsub(&env, &credential, header(HEADER), TokenOptions::default()).unwrap();
    let token = tokens.token().await.unwrap();
    let claims = running.authority.verify_bearer(token.expose_secret()).unwrap();
    assert_ne!(
        claims["appid"],
        emulated::APP_CLIENT_ID,
        "mi_res_id chose a user-assigned identity"
    );

    let wrong = TokenSource::for_webpubsub(&env, &credential, header("wrong"), TokenOptions::default()).unwrap();
    assert!(matches!(
        wrong.token().await,
        Err(IdentityError::Refused { status: 401, .. })
    ));
}

#[tokio::test]
async fn tokens_are_refreshed_before_they_expire() {
    // Ten-minute tokens, refreshed when under eleven minutes remain: every call fetches anew.
    let running = start(
        IdentityAuthority::new(HEADER)
            .unwrap()
            .with_token_ttl(Duration::from_secs(600)),
    )
    .await;
    let env = Env::from_pairs([("IDENTITY_ENDPOINT", format!("http://{}/identity/token", running.addr))]);
    let options = TokenOptions {
        refresh_before: Duration::from_secs(660),
        ..TokenOptions::default()
    };
    let credential = IdentityCredential::Managed(ManagedIdentity::System);
    let tokens = TokenSource::for_webpubsub(&env, &credential, header(HEADER), options).unwrap();
    let first = tokens.token().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = tokens.token().await.unwrap();
    assert_ne!(first, second, "a token inside the refresh margin must be replaced");
    assert!(running.authority.verify_bearer(second.expose_secret()).is_ok());
}

#[tokio::test]
async fn upstream_bearer_from_the_emulator_passes_the_entra_check_only_for_its_audience() {
    let running = start(IdentityAuthority::new(HEADER).unwrap()).await;
    let env = Env::from_pairs([
        (entra::AUDIENCE_SETTING, "api://events-handler".to_owned()),
        (entra::TENANT_SETTING, emulated::TENANT_ID.to_owned()),
        (entra::CLIENT_IDS_SETTING, emulated::SERVICE_CLIENT_ID.to_owned()),
        (
            entra::JWKS_URL_SETTING,
            format!("http://{}/identity/keys", running.addr),
        ),
    ]);
    let settings = EntraSettings::from_env(&env).unwrap().unwrap();
    let validator = EntraValidator::with_jwks_options(settings, JwksOptions::default()).unwrap();
    let good = running.authority.sign_upstream_bearer("api://events-handler");
    assert_eq!(
        validator.claims(&good).await.unwrap()["appid"],
        emulated::SERVICE_CLIENT_ID
    );
    let other_audience = running.authority.sign_upstream_bearer("api://someone-else");
    assert_eq!(
        validator.validate(&other_audience).await.unwrap_err(),
        EntraError::WrongAudience
    );
    // The app's own identity token is of the same tenant but another client: refused.
    let (app_token, _) = running
        .authority
        .mint_access_token("api://events-handler", emulated::APP_CLIENT_ID);
    assert_eq!(
        validator.validate(&app_token).await.unwrap_err(),
        EntraError::WrongClient
    );
}
