//! Caller identity end to end, through `negotiate` over real HTTP: RS256 bearer tokens verified with keys
//! from a JWKS endpoint on loopback, and App Service Authentication headers.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};
use warp::Filter;

use crate::support::{base_env, http, start_handler};

const KEY_1_PEM: &str = include_str!("../fixtures/auth-test-rsa-key.pem");
const KEY_1_JWK: &str = include_str!("../fixtures/auth-test-rsa-key.jwk.json");
const KEY_2_PEM: &str = include_str!("../fixtures/auth-test-rsa-key-2.pem");
const ISSUER: &str = "https://login.example/tenant/v2.0";
const AUDIENCE: &str = "api://negotiate";

/// Serves `{"keys":[KEY_1_JWK]}` at `/keys` on `127.0.0.1:0` until the returned server is dropped.
async fn start_jwks() -> (String, test_support::Loopback) {
    let document = format!(r#"{{"keys":[{KEY_1_JWK}]}}"#);
    let route =
        warp::path("keys").map(move || warp::reply::with_header(document.clone(), "content-type", "application/json"));
    let server = test_support::serve(route).await;
    let url = format!("http://{}/keys", server.addr);
    (url, server)
}

fn rs256_token(pem: &str, kid: &str, claims: Value) -> String {
    let der: String = pem.lines().filter(|line| !line.starts_with("-----")).collect();
    let key = EncodingKey::from_rsa_der(&STANDARD.decode(der).unwrap());
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

fn claims(oid: &str) -> Value {
    let now = jsonwebtoken::get_current_timestamp();
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "pairwise-subject", "oid": oid, "iat": now, "exp": now + 300})
}

#[tokio::test]
async fn rs256_tokens_are_verified_with_the_providers_published_keys() {
    let (jwks_url, _stop) = start_jwks().await;
    let env = base_env()
        .with("NegotiateIdentity", "jwt")
        .with("AuthJwtIssuer", ISSUER)
        .with("AuthJwtAudience", AUDIENCE)
        .with("AuthJwksUrl", jwks_url)
        .with("AuthUserIdClaim", "oid");
    let handler = start_handler(env).await;
    let negotiate = |token: String| http().post(handler.url("/api/negotiate")).bearer_auth(token).send();

    let reply = negotiate(rs256_token(KEY_1_PEM, "test-key-1", claims("object-ada")))
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
    assert_eq!(reply.json::<Value>().await.unwrap()["userId"], "object-ada");

    // Signed with another key under the published kid: bad signature.
    let forged = negotiate(rs256_token(KEY_2_PEM, "test-key-1", claims("object-ada")))
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(forged.json::<Value>().await.unwrap()["code"], "InvalidCredentials");

    // A kid the provider does not publish.
    let unknown = negotiate(rs256_token(KEY_2_PEM, "test-key-2", claims("object-ada")))
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
