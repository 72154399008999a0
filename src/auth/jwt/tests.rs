//! Unit tests of bearer-token validation: settings parsing, the `Authorization` header, HS256 tokens
//! accepted and every bad claim refused with its reason, and RS256 against a loopback JWKS provider
//! (caching, unknown `kid` refresh and its rate limit, provider outages, oversized documents).

use std::time::Duration;

use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;

use super::*;
use ::test_support::tokens::*;

const SECRET: &str = "a-test-secret-that-is-at-least-32-bytes-long";

fn hs_env() -> Env {
    Env::from_pairs([
        (ISSUER_SETTING, "https://issuer.example"),
        (AUDIENCE_SETTING, "api://negotiate, api://other"),
        (SECRET_SETTING, SECRET),
    ])
}

fn hs_validator() -> JwtValidator {
    JwtValidator::new(&JwtSettings::from_env(&hs_env(), "test").unwrap()).unwrap()
}

fn hs_token(claims: Value) -> String {
    ::test_support::tokens::hs_token(SECRET, &claims)
}

fn good_claims() -> Value {
    json!({"iss": "https://issuer.example", "aud": "api://negotiate", "sub": "ada", "exp": now() + 300})
}

fn with(mut claims: Value, name: &str, value: Value) -> Value {
    claims[name] = value;
    claims
}

fn without(mut claims: Value, name: &str) -> Value {
    claims.as_object_mut().unwrap().remove(name);
    claims
}

async fn reason(validator: &JwtValidator, token: &str) -> String {
    match validator.validate(token).await {
        Err(AuthError::InvalidCredentials(reason)) => reason,
        other => panic!("expected InvalidCredentials, got {other:?}"),
    }
}

// ----- settings -----

#[test]
fn reads_hs256_settings() {
    let settings = JwtSettings::from_env(&hs_env(), "test").unwrap();
    assert_eq!(settings.issuers, ["https://issuer.example"]);
    assert_eq!(settings.audiences, ["api://negotiate", "api://other"]);
    assert_eq!(settings.user_id_claim, "sub");
    assert_eq!(settings.leeway_secs, 60);
    assert!(matches!(settings.key, JwtKeySource::Secret(_)));
    assert!(
        !format!("{settings:?}").contains(SECRET),
        "Debug must redact the secret"
    );
}

#[test]
fn missing_issuer_or_audience_names_the_setting() {
    let env = hs_env().with(ISSUER_SETTING, "");
    assert_eq!(
        JwtSettings::from_env(&env, "NegotiateIdentity=jwt")
            .unwrap_err()
            .setting,
        ISSUER_SETTING
    );
    let env = hs_env().with(AUDIENCE_SETTING, " , ");
    let error = JwtSettings::from_env(&env, "NegotiateIdentity=jwt").unwrap_err();
    assert_eq!(error.setting, AUDIENCE_SETTING);
    assert!(error.problem.contains("NegotiateIdentity=jwt"), "{error}");
}

#[test]
fn exactly_one_key_source_is_required() {
    let both = hs_env().with(JWKS_URL_SETTING, "https://idp.example/keys");
    assert_eq!(JwtSettings::from_env(&both, "t").unwrap_err().setting, JWKS_URL_SETTING);
    let neither = hs_env().with(SECRET_SETTING, "");
    let error = JwtSettings::from_env(&neither, "t").unwrap_err();
    assert_eq!(error.setting, SECRET_SETTING);
    assert!(error.problem.contains(JWKS_URL_SETTING), "{error}");
}

#[test]
fn short_secret_is_refused_without_echoing_it() {
    let env = hs_env().with(SECRET_SETTING, "short-secret-value");
    let error = JwtSettings::from_env(&env, "t").unwrap_err();
    assert_eq!(error.setting, SECRET_SETTING);
    assert!(!error.to_string().contains("short-secret-value"));
}

#[test]
fn jwks_url_must_be_https_except_on_loopback() {
    let jwks = |url: &str| hs_env().with(SECRET_SETTING, "").with(JWKS_URL_SETTING, url);
    assert!(matches!(
        JwtSettings::from_env(&jwks("https://idp.example/keys"), "t")
            .unwrap()
            .key,
        JwtKeySource::Jwks(_)
    ));
    assert!(JwtSettings::from_env(&jwks("http://127.0.0.1:8080/keys"), "t").is_ok());
    assert!(JwtSettings::from_env(&jwks("http://localhost/keys"), "t").is_ok());
    assert_eq!(
        JwtSettings::from_env(&jwks("http://idp.example/keys"), "t")
            .unwrap_err()
            .setting,
        JWKS_URL_SETTING
    );
    assert_eq!(
        JwtSettings::from_env(&jwks("not a url"), "t").unwrap_err().setting,
        JWKS_URL_SETTING
    );
}

#[test]
fn user_id_claim_and_leeway_are_configurable() {
    let env = hs_env().with(USER_ID_CLAIM_SETTING, "oid").with(LEEWAY_SETTING, "5");
    let settings = JwtSettings::from_env(&env, "t").unwrap();
    assert_eq!((settings.user_id_claim.as_str(), settings.leeway_secs), ("oid", 5));
    let env = hs_env().with(LEEWAY_SETTING, "301");
    assert_eq!(JwtSettings::from_env(&env, "t").unwrap_err().setting, LEEWAY_SETTING);
}

#[test]
fn is_configured_sees_any_auth_setting() {
    assert!(!JwtSettings::is_configured(&Env::default()));
    assert!(JwtSettings::is_configured(
        &Env::default().with(USER_ID_CLAIM_SETTING, "oid")
    ));
}

// ----- bearer header -----

#[test]
fn bearer_header_parsing() {
    let headers = |value: &str| {
        let mut map = HeaderMap::new();
        map.insert(AUTHORIZATION, value.parse().unwrap());
        map
    };
    assert_eq!(bearer_token(&headers("Bearer abc")).unwrap(), "abc");
    assert_eq!(bearer_token(&headers("bearer  abc ")).unwrap(), "abc");
    assert!(matches!(
        bearer_token(&HeaderMap::new()),
        Err(AuthError::MissingCredentials(_))
    ));
    assert!(matches!(
        bearer_token(&headers("Bearer ")),
        Err(AuthError::MissingCredentials(_))
    ));
    assert!(matches!(
        bearer_token(&headers("Basic YTpi")),
        Err(AuthError::InvalidCredentials(_))
    ));
}

// ----- HS256 validation -----

#[tokio::test]
async fn accepts_a_good_hs256_token() {
    let verified = hs_validator().validate(&hs_token(good_claims())).await.unwrap();
    assert_eq!(verified.user_id, "ada");
    assert_eq!(verified.claims["iss"], "https://issuer.example");
}

#[tokio::test]
async fn any_configured_audience_is_accepted() {
    let token = hs_token(with(good_claims(), "aud", json!(["api://other"])));
    assert!(hs_validator().validate(&token).await.is_ok());
}

#[tokio::test]
async fn each_bad_claim_is_rejected_with_its_reason() {
    let validator = hs_validator();
    let cases = [
        (with(good_claims(), "exp", json!(now() - 3600)), "expired"),
        (with(good_claims(), "nbf", json!(now() + 3600)), "not valid yet"),
        (with(good_claims(), "iss", json!("https://evil.example")), "issuer"),
        (
            with(good_claims(), "iss", json!(["https://issuer.example"])),
            "issuer (iss) must be one string",
        ),
        (with(good_claims(), "aud", json!("api://elsewhere")), "audience"),
        (without(good_claims(), "exp"), "exp"),
        (without(good_claims(), "iss"), "iss"),
        (without(good_claims(), "aud"), "aud"),
        (without(good_claims(), "sub"), "no sub claim"),
        (with(good_claims(), "sub", json!(42)), "not a string"),
        (with(good_claims(), "sub", json!("")), "not a usable user id"),
    ];
    for (claims, expected) in cases {
        let reason = reason(&validator, &hs_token(claims.clone())).await;
        assert!(reason.contains(expected), "{claims}: {reason}");
    }
}

#[tokio::test]
async fn wrong_secret_is_a_bad_signature() {
    let token = ::test_support::tokens::hs_token("another-secret-that-is-also-32-bytes-long", &good_claims());
    assert!(reason(&hs_validator(), &token).await.contains("signature"));
}

#[tokio::test]
async fn malformed_and_unsigned_tokens_are_rejected() {
    let validator = hs_validator();
    assert!(reason(&validator, "not-a-jwt").await.contains("well-formed"));
    // alg "none": header {"alg":"none","typ":"JWT"}.
    let unsigned = format!(
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.",
        b64url(&good_claims().to_string())
    );
    let reason = reason(&validator, &unsigned).await;
    assert!(
        reason.contains("algorithm") || reason.contains("well-formed"),
        "{reason}"
    );
}

#[tokio::test]
async fn an_rs256_token_is_refused_in_hs256_mode() {
    let token = rs_token("test-key-1", TEST_KEY_1_PEM, good_claims());
    assert!(reason(&hs_validator(), &token).await.contains("algorithm"));
}

#[tokio::test]
async fn the_user_id_comes_from_the_configured_claim() {
    let settings = JwtSettings::from_env(&hs_env().with(USER_ID_CLAIM_SETTING, "oid"), "t").unwrap();
    let validator = JwtValidator::new(&settings).unwrap();
    let verified = validator
        .validate(&hs_token(with(good_claims(), "oid", json!("object-1"))))
        .await
        .unwrap();
    assert_eq!(verified.user_id, "object-1");
    assert!(reason(&validator, &hs_token(good_claims())).await.contains("oid"));
}

#[tokio::test]
async fn roles_come_from_roles_role_and_scp() {
    let claims = with(
        with(good_claims(), "roles", json!(["Publisher", 7])),
        "scp",
        json!("publish read"),
    );
    let verified = hs_validator()
        .validate(&hs_token(with(claims, "role", json!("Solo"))))
        .await
        .unwrap();
    let roles: Vec<_> = verified.roles().collect();
    assert_eq!(roles, ["Publisher", "Solo", "publish", "read"]);
    assert!(verified.has_role("publish"));
    assert!(!verified.has_role("admin"));
}

// ----- RS256 via JWKS -----

fn rs_validator(url: &str, options: JwksOptions) -> JwtValidator {
    let env = hs_env().with(SECRET_SETTING, "").with(JWKS_URL_SETTING, url);
    JwtValidator::with_jwks_options(&JwtSettings::from_env(&env, "t").unwrap(), options).unwrap()
}

fn eager_refresh() -> JwksOptions {
    JwksOptions {
        min_refresh_interval: Duration::ZERO,
        ..JwksOptions::default()
    }
}

#[test]
fn jwks_url_credentials_never_reach_debug_output() {
    let url = "https://alice:hunter2@login.example/keys?code=querysecret#frag";
    let env = hs_env().with(SECRET_SETTING, "").with(JWKS_URL_SETTING, url);
    let settings = JwtSettings::from_env(&env, "t").unwrap();
    let validator = JwtValidator::with_jwks_options(&settings, JwksOptions::default()).unwrap();
    for shown in [format!("{settings:?}"), format!("{validator:?}")] {
        assert!(shown.contains("login.example/keys"), "{shown}");
        for secret in ["alice", "hunter2", "querysecret", "frag"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }
}

#[tokio::test]
async fn jwks_redirects_are_not_followed() {
    // An attacker's key set on another (loopback) host, reached only by a 302.
    let attacker = JwksServer::start(jwks(&[TEST_KEY_1_JWK])).await;
    let redirecting = JwksServer::redirecting_to(attacker.url()).await;
    let validator = rs_validator(&redirecting.url(), eager_refresh());
    let result = validator
        .validate(&rs_token("test-key-1", TEST_KEY_1_PEM, good_claims()))
        .await;
    assert!(result.is_err(), "a key served after a redirect must not verify");
    assert_eq!(redirecting.fetches(), 1);
    assert_eq!(attacker.fetches(), 0, "the redirect is not followed");
}

#[tokio::test]
async fn rs256_tokens_verify_against_the_jwks_and_keys_are_cached() {
    let server = JwksServer::start(jwks(&[TEST_KEY_1_JWK])).await;
    let validator = rs_validator(&server.url(), JwksOptions::default());
    for _ in 0..3 {
        let verified = validator
            .validate(&rs_token("test-key-1", TEST_KEY_1_PEM, good_claims()))
            .await
            .unwrap();
        assert_eq!(verified.user_id, "ada");
    }
    assert_eq!(server.fetches(), 1, "keys are fetched once and cached");
}

#[tokio::test]
async fn an_unknown_kid_refreshes_the_keys_once() {
    let server = JwksServer::start(jwks(&[TEST_KEY_1_JWK])).await;
    let validator = rs_validator(&server.url(), eager_refresh());
    validator
        .validate(&rs_token("test-key-1", TEST_KEY_1_PEM, good_claims()))
        .await
        .unwrap();
    // The provider rotates in key 2.
    server.set_document(jwks(&[TEST_KEY_1_JWK, TEST_KEY_2_JWK]));
    let verified = validator
        .validate(&rs_token("test-key-2", TEST_KEY_2_PEM, good_claims()))
        .await
        .unwrap();
    assert_eq!(verified.user_id, "ada");
    assert_eq!(server.fetches(), 2);
}

#[tokio::test]
async fn refreshes_for_unknown_kids_are_rate_limited() {
    let server = JwksServer::start(jwks(&[TEST_KEY_1_JWK])).await;
    let validator = rs_validator(&server.url(), JwksOptions::default());
    validator
        .validate(&rs_token("test-key-1", TEST_KEY_1_PEM, good_claims()))
        .await
        .unwrap();
    for _ in 0..5 {
        let reason = reason(&validator, &rs_token("made-up-kid", TEST_KEY_2_PEM, good_claims())).await;
        assert!(reason.contains("does not publish"), "{reason}");
    }
    assert_eq!(
        server.fetches(),
        1,
        "unknown kids within the refresh interval cause no fetch"
    );
}

#[tokio::test]
async fn a_key_signed_by_someone_else_fails_the_signature() {
    // Key 2's token claims key 1's kid.
    let server = JwksServer::start(jwks(&[TEST_KEY_1_JWK])).await;
    let validator = rs_validator(&server.url(), JwksOptions::default());
    let token = rs_token("test-key-1", TEST_KEY_2_PEM, good_claims());
    assert!(reason(&validator, &token).await.contains("signature"));
}

#[tokio::test]
async fn a_token_without_kid_uses_the_only_key() {
    let server = JwksServer::start(jwks(&[TEST_KEY_1_JWK])).await;
    let validator = rs_validator(&server.url(), JwksOptions::default());
    let header = Header::new(Algorithm::RS256);
    let token = jsonwebtoken::encode(&header, &good_claims(), &rsa_encoding_key(TEST_KEY_1_PEM)).unwrap();
    assert!(validator.validate(&token).await.is_ok());
}

#[tokio::test]
async fn a_token_without_kid_is_refused_when_several_keys_exist() {
    let server = JwksServer::start(jwks(&[TEST_KEY_1_JWK, TEST_KEY_2_JWK])).await;
    let validator = rs_validator(&server.url(), JwksOptions::default());
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &good_claims(),
        &rsa_encoding_key(TEST_KEY_1_PEM),
    )
    .unwrap();
    assert!(reason(&validator, &token).await.contains("kid"));
}

#[tokio::test]
async fn symmetric_keys_in_a_jwks_are_ignored() {
    // An "oct" key with the HS256 secret must not let an HS256 token through.
    let oct = format!(r#"{{"kty":"oct","kid":"test-key-1","k":"{}"}}"#, b64url(SECRET));
    let server = JwksServer::start(jwks(&[&oct, TEST_KEY_2_JWK])).await;
    let validator = rs_validator(&server.url(), JwksOptions::default());
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("test-key-1".into());
    let token = jsonwebtoken::encode(&header, &good_claims(), &EncodingKey::from_secret(SECRET.as_bytes())).unwrap();
    assert!(reason(&validator, &token).await.contains("algorithm"));
    let token = rs_token("test-key-1", TEST_KEY_1_PEM, good_claims());
    assert!(reason(&validator, &token).await.contains("does not publish"));
}

#[tokio::test]
async fn an_unreachable_provider_is_unavailable_not_unauthorized() {
    // Bind then drop a listener: the port is very likely closed.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/keys", listener.local_addr().unwrap());
    drop(listener);
    let validator = rs_validator(&url, JwksOptions::default());
    let token = rs_token("test-key-1", TEST_KEY_1_PEM, good_claims());
    let error = validator.validate(&token).await.unwrap_err();
    assert!(
        matches!(error, AuthError::IdentityProviderUnavailable { .. }),
        "{error:?}"
    );
    // Within the refresh interval the answer stays 503 without another attempt.
    let again = validator.validate(&token).await.unwrap_err();
    assert!(
        matches!(again, AuthError::IdentityProviderUnavailable { .. }),
        "{again:?}"
    );
}

/// Asserts that a good token signed with key 1 is refused because the provider is unavailable (503), not
/// as a bad credential.
async fn assert_unavailable(validator: &JwtValidator, context: &str) {
    let error = validator
        .validate(&rs_token("test-key-1", TEST_KEY_1_PEM, good_claims()))
        .await
        .unwrap_err();
    assert!(
        matches!(error, AuthError::IdentityProviderUnavailable { .. }),
        "{context}: {error:?}"
    );
}

#[tokio::test]
async fn provider_errors_and_garbage_are_unavailable() {
    for (status, body) in [
        (500, jwks(&[TEST_KEY_1_JWK])),
        (200, "not json".to_owned()),
        (200, r#"{"keys":[]}"#.to_owned()),
    ] {
        let server = JwksServer::start_with_status(status, body).await;
        let validator = rs_validator(&server.url(), JwksOptions::default());
        assert_unavailable(&validator, &format!("{status}")).await;
    }
}

#[tokio::test]
async fn an_oversized_jwks_is_refused() {
    let big = format!(r#"{{"keys":[],"padding":"{}"}}"#, "x".repeat(4096));
    let server = JwksServer::start(big).await;
    let options = JwksOptions {
        max_document_bytes: 1024,
        ..JwksOptions::default()
    };
    let validator = rs_validator(&server.url(), options);
    assert_unavailable(&validator, "oversized").await;
}

#[tokio::test]
async fn stale_keys_are_used_while_the_provider_is_down() {
    let server = JwksServer::start(jwks(&[TEST_KEY_1_JWK])).await;
    let options = JwksOptions {
        max_age: Duration::ZERO,
        min_refresh_interval: Duration::ZERO,
        ..JwksOptions::default()
    };
    let validator = rs_validator(&server.url(), options);
    let token = rs_token("test-key-1", TEST_KEY_1_PEM, good_claims());
    validator.validate(&token).await.unwrap();
    server.set_status(503);
    assert!(
        validator.validate(&token).await.is_ok(),
        "the cached key still verifies"
    );
    assert_eq!(server.fetches(), 2, "the stale set was re-fetched");
}

#[tokio::test]
async fn at_most_max_keys_are_kept() {
    let server = JwksServer::start(jwks(&[TEST_KEY_1_JWK, TEST_KEY_2_JWK])).await;
    let options = JwksOptions {
        max_keys: 1,
        ..JwksOptions::default()
    };
    let validator = rs_validator(&server.url(), options);
    assert!(
        validator
            .validate(&rs_token("test-key-1", TEST_KEY_1_PEM, good_claims()))
            .await
            .is_ok()
    );
    assert!(
        reason(&validator, &rs_token("test-key-2", TEST_KEY_2_PEM, good_claims()))
            .await
            .contains("does not publish")
    );
}
