//! Tests of the emulator's identity authority: minting, verification, the App Service endpoint shape and
//! the combined REST check.

use std::sync::OnceLock;

use super::*;
use crate::EmulatorConfig;

const HEADER: &str = "local-identity-header";

/// RSA generation is slow in debug builds: one authority for the tests that need no special one.
fn authority() -> &'static IdentityAuthority {
    static AUTHORITY: OnceLock<IdentityAuthority> = OnceLock::new();
    AUTHORITY.get_or_init(|| IdentityAuthority::new(HEADER).unwrap())
}

fn query(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn sign_with(authority: &IdentityAuthority, claims: Value) -> String {
    authority.sign(&claims)
}

fn claims(aud: &str, exp: u64) -> Value {
    json!({"aud": aud, "iss": authority().issuer(), "exp": exp, "nbf": token::unix_now() - 1})
}

#[test]
fn minted_tokens_verify_as_rest_bearer() {
    let (token, expires_on) = authority().mint_access_token(WEBPUBSUB_RESOURCE, APP_CLIENT_ID);
    assert!(expires_on > token::unix_now() + 3000);
    let claims = authority().verify_bearer(&token).unwrap();
    assert_eq!(claims["appid"], APP_CLIENT_ID);
    assert_eq!(claims["tid"], TENANT_ID);
}

#[test]
fn refusals() {
    let now = token::unix_now();
    let a = authority();
    let cases = [
        (
            sign_with(a, claims(WEBPUBSUB_RESOURCE, now - 600)),
            BearerError::Expired,
        ),
        (
            sign_with(a, claims("https://other.example", now + 600)),
            BearerError::WrongAudience,
        ),
        (
            sign_with(
                a,
                json!({"aud": WEBPUBSUB_RESOURCE, "iss": "https://sts.windows.net/other/", "exp": now + 600}),
            ),
            BearerError::WrongIssuer,
        ),
        (
            sign_with(
                a,
                json!({"aud": WEBPUBSUB_RESOURCE, "iss": a.issuer(), "exp": now + 60, "nbf": now + 900}),
            ),
            BearerError::NotYetValid,
        ),
        ("a.b".to_owned(), BearerError::Malformed),
    ];
    for (token, expected) in cases {
        assert_eq!(a.verify_bearer(&token).unwrap_err(), expected);
    }
    // Tampered payload: signature no longer matches.
    let (token, _) = a.mint_access_token(WEBPUBSUB_RESOURCE, APP_CLIENT_ID);
    let mut parts: Vec<&str> = token.split('.').collect();
    let forged = URL_SAFE_NO_PAD.encode(claims(WEBPUBSUB_RESOURCE, now + 99_999).to_string());
    parts[1] = &forged;
    assert_eq!(
        a.verify_bearer(&parts.join(".")).unwrap_err(),
        BearerError::BadSignature
    );
    // alg none.
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
        URL_SAFE_NO_PAD.encode(claims(WEBPUBSUB_RESOURCE, now + 600).to_string())
    );
    assert_eq!(a.verify_bearer(&none).unwrap_err(), BearerError::UnsupportedAlgorithm);
}

#[test]
fn another_authoritys_tokens_are_refused() {
    let other = IdentityAuthority::new("x").unwrap();
    let (token, _) = other.mint_access_token(WEBPUBSUB_RESOURCE, APP_CLIENT_ID);
    assert_eq!(authority().verify_bearer(&token).unwrap_err(), BearerError::UnknownKey);
}

#[test]
fn jwks_publishes_the_signing_key() {
    let jwks = authority().jwks();
    let key = &jwks["keys"][0];
    assert_eq!(key["kty"], "RSA");
    assert_eq!(key["alg"], "RS256");
    assert_eq!(key["kid"], authority().key_id());
    assert_eq!(key["e"], "AQAB");
    assert_eq!(URL_SAFE_NO_PAD.decode(key["n"].as_str().unwrap()).unwrap().len(), 256);
}

#[test]
fn upstream_bearer_is_a_v1_token_of_the_service_identity() {
    let token = authority().sign_upstream_bearer("api://events");
    let payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap();
    assert_eq!(payload["aud"], "api://events");
    assert_eq!(payload["appid"], SERVICE_CLIENT_ID);
    assert_eq!(payload["ver"], "1.0");
    assert_eq!(payload["iss"], format!("https://sts.windows.net/{TENANT_ID}/"));
    // Not a REST token: wrong audience for the data plane.
    assert_eq!(
        authority().verify_bearer(&token).unwrap_err(),
        BearerError::WrongAudience
    );
}

#[test]
fn token_endpoint_in_the_app_service_shape() {
    let ok = query(&[("resource", WEBPUBSUB_RESOURCE), ("api-version", "2019-08-01")]);
    let (status, reply) = authority().token_answer(&ok, Some(HEADER));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(reply["token_type"], "Bearer");
    assert_eq!(reply["client_id"], APP_CLIENT_ID);
    let expires_on: u64 = reply["expires_on"].as_str().unwrap().parse().unwrap();
    assert!(expires_on > token::unix_now());
    assert!(
        authority()
            .verify_bearer(reply["access_token"].as_str().unwrap())
            .is_ok()
    );

    let user_assigned = [&ok[..], &query(&[("mi_res_id", "/subscriptions/s/x")])].concat();
    let (_, reply) = authority().token_answer(&user_assigned, Some(HEADER));
    assert_ne!(reply["client_id"], APP_CLIENT_ID);

    let refused = [
        (ok.clone(), None, StatusCode::UNAUTHORIZED),
        (ok.clone(), Some("wrong"), StatusCode::UNAUTHORIZED),
        (
            query(&[("resource", WEBPUBSUB_RESOURCE)]),
            Some(HEADER),
            StatusCode::BAD_REQUEST,
        ),
        (
            query(&[
                ("resource", "https://webpubsub.azure.com/.default"),
                ("api-version", "2019-08-01"),
            ]),
            Some(HEADER),
            StatusCode::BAD_REQUEST,
        ),
        (
            [&user_assigned[..], &query(&[("client_id", "c")])].concat(),
            Some(HEADER),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (query, header, expected) in refused {
        let (status, reply) = authority().token_answer(&query, header);
        assert_eq!(status, expected, "{query:?}");
        assert!(reply.get("access_token").is_none());
        assert!(reply["message"].is_string());
    }
}

#[tokio::test]
async fn routes_serve_tokens_and_keys_over_http() {
    let authority = Arc::new(IdentityAuthority::new(HEADER).unwrap());
    let server = test_support::serve(authority.clone().routes()).await;
    let addr = server.addr;
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/identity/token?resource=https%3A%2F%2Fwebpubsub.azure.com&api-version=2019-08-01");
    let response = client
        .get(&url)
        .header("X-IDENTITY-HEADER", HEADER)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let reply: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert!(authority.verify_bearer(reply["access_token"].as_str().unwrap()).is_ok());
    let keys = client.get(format!("http://{addr}/identity/keys")).send().await.unwrap();
    let keys: Value = serde_json::from_slice(&keys.bytes().await.unwrap()).unwrap();
    assert_eq!(keys, authority.jwks());
    drop(server);
}

#[test]
fn rest_authorisation_in_both_modes() {
    let service = crate::Service::new(EmulatorConfig::default());
    let url = "http://127.0.0.1:8080/api/hubs/chat/:send?api-version=2024-12-01";
    let (identity_token, _) = authority().mint_access_token(WEBPUBSUB_RESOURCE, APP_CLIENT_ID);
    let bearer = format!("Bearer {identity_token}");
    assert!(authorize_rest(&service, Some(authority()), true, Some(&bearer), url).is_ok());
    assert!(authorize_rest(&service, Some(authority()), false, Some(&bearer), url).is_ok());
    // Without identity mode an RS256 token is just a bad access-key token.
    assert!(matches!(
        authorize_rest(&service, None, false, Some(&bearer), url),
        Err(BearerError::AccessKey(_))
    ));
    let key = webpubsub_protocol::AccessKey::new(crate::DEV_ACCESS_KEY).unwrap();
    let key_claims = json!({"aud": url, "exp": token::unix_now() + 60});
    let key_token = webpubsub_protocol::jwt::sign(key_claims.as_object().unwrap(), &key);
    let key_bearer = format!("Bearer {key_token}");
    assert!(authorize_rest(&service, Some(authority()), false, Some(&key_bearer), url).is_ok());
    assert_eq!(
        authorize_rest(&service, Some(authority()), true, Some(&key_bearer), url).unwrap_err(),
        BearerError::LocalAuthDisabled
    );
    assert_eq!(
        authorize_rest(&service, Some(authority()), true, None, url).unwrap_err(),
        BearerError::Missing
    );
}

/// The whole emulator in identity mode with local auth disabled, over HTTP: its identity endpoint's
/// tokens open the REST API (including `:generateToken`), access-key tokens do not.
#[tokio::test]
async fn identity_mode_serves_tokens_accepts_them_and_refuses_access_keys() {
    let config = crate::EmulatorConfig {
        identity: Some(crate::IdentityModeConfig {
            disable_local_auth: true,
            ..crate::IdentityModeConfig::new("header-1")
        }),
        ..Default::default()
    };
    let service = crate::Service::new(config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(crate::serve(listener, service, async {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    let answer: Value = http
        .get(format!(
            "{base}/identity/token?resource={WEBPUBSUB_RESOURCE}&api-version=2019-08-01"
        ))
        .header("X-IDENTITY-HEADER", "header-1")
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .map(|b| serde_json::from_slice(&b).unwrap())
        .unwrap();
    let identity_token = answer["access_token"].as_str().unwrap().to_owned();
    let url = format!("{base}/api/hubs/chat/:generateToken?api-version=2024-12-01&userId=alice");
    let generated = http.post(&url).bearer_auth(&identity_token).send().await.unwrap();
    assert_eq!(generated.status(), 200);
    let body: Value = serde_json::from_slice(&generated.bytes().await.unwrap()).unwrap();
    assert!(body["token"].as_str().is_some_and(|t| t.split('.').count() == 3));
    let mut claims = Map::new();
    claims.insert("aud".into(), json!(url));
    claims.insert("exp".into(), json!(token::unix_now() + 60));
    let key = webpubsub_protocol::keys::AccessKey::new(crate::DEV_ACCESS_KEY).unwrap();
    let keyed = http
        .post(&url)
        .bearer_auth(token::sign(&claims, &key))
        .send()
        .await
        .unwrap();
    assert_eq!(keyed.status(), 401);
    let keys = http.get(format!("{base}/identity/keys")).send().await.unwrap();
    assert_eq!(keys.status(), 200);
    let _ = stop.send(());
}

#[test]
fn an_identity_token_is_refused_the_second_after_it_expires() {
    let short = IdentityAuthority::new(HEADER)
        .unwrap()
        .with_token_ttl(Duration::from_secs(2));
    let (token, expires_on) = short.mint_access_token(WEBPUBSUB_RESOURCE, APP_CLIENT_ID);
    assert!(short.verify_at(&token, expires_on).is_ok());
    assert_eq!(
        short.verify_at(&token, expires_on + 1).unwrap_err(),
        BearerError::Expired,
        "no skew: the emulator mints and checks on one clock"
    );
}

#[test]
fn the_endpoint_counts_the_tokens_it_served() {
    let counted = IdentityAuthority::new(HEADER).unwrap();
    let ok = query(&[("resource", WEBPUBSUB_RESOURCE), ("api-version", "2019-08-01")]);
    assert_eq!(counted.tokens_served(), 0);
    assert_eq!(counted.token_answer(&ok, Some(HEADER)).0, StatusCode::OK);
    assert_eq!(counted.token_answer(&ok, Some(HEADER)).0, StatusCode::OK);
    assert_eq!(counted.token_answer(&ok, Some("wrong")).0, StatusCode::UNAUTHORIZED);
    assert_eq!(counted.tokens_served(), 2, "refusals are not counted");
}
