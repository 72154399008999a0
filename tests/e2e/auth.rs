//! Caller identity end to end, through `negotiate` over real HTTP: RS256 bearer tokens verified with keys
//! from a JWKS endpoint on loopback, and App Service Authentication headers.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;
use serde_json::{Value, json};
use test_support::tokens::{JwksServer, TEST_KEY_1_JWK, TEST_KEY_1_PEM, TEST_KEY_2_PEM, jwks, now, rs_token};

use crate::support::{base_env, http, start_handler};

const ISSUER: &str = "https://login.example/tenant/v2.0";
const AUDIENCE: &str = "api://negotiate";

fn claims(oid: &str) -> Value {
    let now = now();
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "pairwise-subject", "oid": oid, "iat": now, "exp": now + 300})
}

#[tokio::test]
async fn rs256_tokens_are_verified_with_the_providers_published_keys() {
    let provider = JwksServer::start(jwks(&[TEST_KEY_1_JWK])).await;
    let env = base_env()
        .with("NegotiateIdentity", "jwt")
        .with("AuthJwtIssuer", ISSUER)
        .with("AuthJwtAudience", AUDIENCE)
        .with("AuthJwksUrl", provider.url())
        .with("AuthUserIdClaim", "oid");
    let handler = start_handler(env).await;
    let negotiate = |token: String| http().post(handler.url("/api/negotiate")).bearer_auth(token).send();

    let reply = negotiate(rs_token("test-key-1", TEST_KEY_1_PEM, claims("object-ada")))
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
    assert_eq!(reply.json::<Value>().await.unwrap()["userId"], "object-ada");

    // Signed with another key under the published kid: bad signature.
    let forged = negotiate(rs_token("test-key-1", TEST_KEY_2_PEM, claims("object-ada")))
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(forged.json::<Value>().await.unwrap()["code"], "InvalidCredentials");

    // A kid the provider does not publish.
    let unknown = negotiate(rs_token("test-key-2", TEST_KEY_2_PEM, claims("object-ada")))
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    let body: Value = unknown.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("does not publish"), "{body}");
}

#[tokio::test]
async fn app_service_headers_identify_the_caller() {
    let handler = start_handler(base_env().with("NegotiateIdentity", "appservice")).await;
    let principal = STANDARD
        .encode(r#"{"auth_typ":"aad","claims":[{"typ":"roles","val":"Reader"}],"name_typ":"name","role_typ":"roles"}"#);
    let reply = http()
        .post(handler.url("/api/negotiate"))
        .header("x-ms-client-principal-id", "00000000-0000-0000-0000-00000000ada0")
        .header("x-ms-client-principal-name", "ada@example.com")
        .header("x-ms-client-principal-idp", "aad")
        .header("x-ms-client-principal", principal)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
    assert_eq!(
        reply.json::<Value>().await.unwrap()["userId"],
        "00000000-0000-0000-0000-00000000ada0"
    );

    // A bearer token is no substitute in this mode.
    let without = http()
        .post(handler.url("/api/negotiate"))
        .bearer_auth("anything")
        .send()
        .await
        .unwrap();
    assert_eq!(without.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(without.json::<Value>().await.unwrap()["code"], "MissingCredentials");
}
