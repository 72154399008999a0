//! Tests of [`super::EntraValidator`] with the RSA test keys and a local JWKS server.

use std::time::Duration;

use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};

use super::*;
use ::test_support::tokens::{
    JwksServer, TEST_KEY_1_JWK, TEST_KEY_1_PEM, TEST_KEY_2_JWK, TEST_KEY_2_PEM, b64url, jwks, now, rs_token,
};

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const AUDIENCE: &str = "api://events-app";
const WPS_CLIENT: &str = "0f0e0d0c-wps-identity";

fn settings(jwks_url: &str) -> EntraSettings {
    EntraSettings::from_env(&Env::from_pairs([
        (AUDIENCE_SETTING, AUDIENCE),
        (TENANT_SETTING, TENANT),
        (CLIENT_IDS_SETTING, WPS_CLIENT),
        (JWKS_URL_SETTING, jwks_url),
    ]))
    .unwrap()
    .unwrap()
}

async fn validator() -> (JwksServer, EntraValidator) {
    let server = JwksServer::start(jwks(&[TEST_KEY_1_JWK])).await;
    let options = JwksOptions {
        min_refresh_interval: Duration::ZERO,
        ..EntraValidator::default_jwks_options()
    };
    let validator = EntraValidator::with_jwks_options(settings(&server.url()), options).unwrap();
    (server, validator)
}

fn v1_claims() -> Value {
    json!({
        "aud": AUDIENCE, "iss": format!("https://sts.windows.net/{TENANT}/"), "ver": "1.0",
        "appid": WPS_CLIENT, "tid": TENANT, "exp": now() + 600, "nbf": now() - 10,
    })
}

fn v2_claims() -> Value {
    json!({
        "aud": AUDIENCE, "iss": format!("https://login.microsoftonline.com/{TENANT}/v2.0"), "ver": "2.0",
        "azp": WPS_CLIENT, "tid": TENANT, "exp": now() + 600,
    })
}

fn with(mut claims: Value, name: &str, value: Value) -> Value {
    claims[name] = value;
    claims
}

fn sign(claims: Value) -> String {
    rs_token("test-key-1", TEST_KEY_1_PEM, claims)
}

#[tokio::test]
async fn accepts_v1_and_v2_tokens_of_the_service_identity() {
    let (_server, validator) = validator().await;
    let v1 = validator.claims(&sign(v1_claims())).await.unwrap();
    assert_eq!(v1["appid"], WPS_CLIENT);
    let v2 = validator.claims(&sign(v2_claims())).await.unwrap();
    assert_eq!(v2["ver"], "2.0");
}

#[tokio::test]
async fn missing_and_malformed_headers_are_refused() {
    let (_server, validator) = validator().await;
    let mut headers = HeaderMap::new();
    assert_eq!(
        validator.validate_request(&headers).await.unwrap_err(),
        EntraError::Missing
    );
    headers.insert("authorization", "Basic abc".parse().unwrap());
    assert_eq!(
        validator.validate_request(&headers).await.unwrap_err(),
        EntraError::Malformed
    );
    headers.insert(
        "authorization",
        format!("Bearer {}", sign(v1_claims())).parse().unwrap(),
    );
    assert!(validator.validate_request(&headers).await.is_ok());
    assert_eq!(
        validator.validate("not.a.jwt").await.unwrap_err(),
        EntraError::Malformed
    );
}

#[tokio::test]
async fn each_refusal_has_its_reason_and_maps_to_401() {
    let (_server, validator) = validator().await;
    let cases = [
        (with(v1_claims(), "exp", json!(now() - 600)), EntraError::Expired),
        (with(v1_claims(), "nbf", json!(now() + 600)), EntraError::NotYetValid),
        (
            with(v1_claims(), "aud", json!("api://someone-else")),
            EntraError::WrongAudience,
        ),
        (
            with(v1_claims(), "iss", json!("https://sts.windows.net/other-tenant/")),
            EntraError::WrongIssuer,
        ),
        (
            with(
                v2_claims(),
                "iss",
                json!("https://login.microsoftonline.com/other-tenant/v2.0"),
            ),
            EntraError::WrongIssuer,
        ),
        // A v2 issuer on a v1 token (and the reverse) is refused: `ver` decides.
        (
            with(v1_claims(), "iss", v2_claims()["iss"].clone()),
            EntraError::WrongIssuer,
        ),
        (with(v2_claims(), "ver", json!("3.0")), EntraError::WrongIssuer),
        (
            with(v1_claims(), "appid", json!("another-client-of-the-tenant")),
            EntraError::WrongClient,
        ),
        (
            with(v2_claims(), "azp", json!("another-client-of-the-tenant")),
            EntraError::WrongClient,
        ),
        // v1 pins appid, v2 pins azp: the other claim does not count.
        (
            with(with(v2_claims(), "azp", json!("x")), "appid", json!(WPS_CLIENT)),
            EntraError::WrongClient,
        ),
    ];
    for (claims, expected) in cases {
        let error = validator.validate(&sign(claims.clone())).await.unwrap_err();
        assert_eq!(error, expected, "{claims}");
        assert_eq!(error.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(ApiError::from(error).status(), StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn a_token_signed_by_another_key_under_a_known_kid_is_refused() {
    let (_server, validator) = validator().await;
    let forged = rs_token("test-key-1", TEST_KEY_2_PEM, v1_claims());
    assert_eq!(validator.validate(&forged).await.unwrap_err(), EntraError::BadSignature);
}

#[tokio::test]
async fn unknown_kid_refreshes_the_key_set_once_then_accepts_a_rotated_key() {
    let (server, validator) = validator().await;
    let rotated = rs_token("test-key-2", TEST_KEY_2_PEM, v1_claims());
    assert_eq!(validator.validate(&rotated).await.unwrap_err(), EntraError::UnknownKey);
    let fetches = server.fetches();
    server.set_document(jwks(&[TEST_KEY_1_JWK, TEST_KEY_2_JWK]));
    assert!(validator.validate(&rotated).await.is_ok());
    assert_eq!(server.fetches(), fetches + 1);
}

#[tokio::test]
async fn unknown_kids_cannot_flood_the_key_set_endpoint() {
    let server = JwksServer::start(jwks(&[TEST_KEY_1_JWK])).await;
    // The production floor (5 minutes) applies.
    let validator = EntraValidator::new(settings(&server.url())).unwrap();
    assert!(validator.validate(&sign(v1_claims())).await.is_ok());
    for i in 0..20 {
        let made_up = rs_token(&format!("made-up-{i}"), TEST_KEY_1_PEM, v1_claims());
        assert_eq!(validator.validate(&made_up).await.unwrap_err(), EntraError::UnknownKey);
    }
    assert!(server.fetches() <= 2, "{} fetches", server.fetches());
}

#[tokio::test]
async fn alg_none_and_hs256_confusion_are_refused_before_any_key_lookup() {
    let (server, validator) = validator().await;
    let none = format!(
        "{}.{}.",
        b64url(r#"{"alg":"none","typ":"JWT"}"#),
        b64url(&v1_claims().to_string())
    );
    assert_eq!(validator.validate(&none).await.unwrap_err(), EntraError::WrongAlgorithm);
    // HS256 "signed" with the public key's text: the classic RS/HS confusion.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("test-key-1".into());
    let confused = jsonwebtoken::encode(
        &header,
        &v1_claims(),
        &EncodingKey::from_secret(TEST_KEY_1_JWK.as_bytes()),
    )
    .unwrap();
    assert_eq!(
        validator.validate(&confused).await.unwrap_err(),
        EntraError::WrongAlgorithm
    );
    assert_eq!(server.fetches(), 0);
}

#[tokio::test]
async fn an_unreachable_key_set_is_503_with_retry_after() {
    let server = JwksServer::start_with_status(500, "{}".into()).await;
    let validator = EntraValidator::new(settings(&server.url())).unwrap();
    let error = validator.validate(&sign(v1_claims())).await.unwrap_err();
    assert!(matches!(error, EntraError::KeysUnavailable { .. }), "{error:?}");
    let api = ApiError::from(error);
    assert_eq!(api.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[test]
fn settings_are_all_or_none_and_name_what_is_missing() {
    assert_eq!(EntraSettings::from_env(&Env::default()).unwrap(), None);
    let partial = Env::from_pairs([(AUDIENCE_SETTING, AUDIENCE), (TENANT_SETTING, TENANT)]);
    assert_eq!(
        EntraSettings::from_env(&partial).unwrap_err().setting,
        CLIENT_IDS_SETTING
    );
    let no_tenant = Env::from_pairs([(AUDIENCE_SETTING, AUDIENCE), (CLIENT_IDS_SETTING, "a")]);
    assert_eq!(EntraSettings::from_env(&no_tenant).unwrap_err().setting, TENANT_SETTING);
    let bad_tenant = no_tenant.clone().with(TENANT_SETTING, "x/../y");
    assert_eq!(
        EntraSettings::from_env(&bad_tenant).unwrap_err().setting,
        TENANT_SETTING
    );
    let full = no_tenant
        .with(TENANT_SETTING, TENANT)
        .with(CLIENT_IDS_SETTING, " a , b ");
    let settings = EntraSettings::from_env(&full).unwrap().unwrap();
    assert_eq!(settings.allowed_client_ids, ["a", "b"]);
    assert_eq!(
        settings.jwks_url.as_str(),
        format!("https://login.microsoftonline.com/{TENANT}/discovery/v2.0/keys")
    );
    let insecure = full.clone().with(JWKS_URL_SETTING, "http://keys.example/jwks");
    assert_eq!(
        EntraSettings::from_env(&insecure).unwrap_err().setting,
        JWKS_URL_SETTING
    );
    let local = full.with(JWKS_URL_SETTING, "http://127.0.0.1:9/keys");
    assert!(EntraSettings::from_env(&local).is_ok());
}
