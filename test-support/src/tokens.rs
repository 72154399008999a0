//! Bearer tokens for tests: the fixed RSA test keys (`tests/fixtures`), RS256 tokens signed with them, JWKS
//! documents, and [`JwksServer`], a JWKS endpoint on `127.0.0.1:0` whose document, status and fetch count
//! the test controls.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::Value;
use warp::Filter;

use crate::Loopback;

/// The first RSA test key (PKCS#1 PEM); its JWK is [`TEST_KEY_1_JWK`], `kid` `test-key-1`.
pub const TEST_KEY_1_PEM: &str = include_str!("../../tests/fixtures/auth-test-rsa-key.pem");
/// The public JWK of [`TEST_KEY_1_PEM`].
pub const TEST_KEY_1_JWK: &str = include_str!("../../tests/fixtures/auth-test-rsa-key.jwk.json");
/// A second RSA test key (PKCS#1 PEM); its JWK is [`TEST_KEY_2_JWK`], `kid` `test-key-2`.
pub const TEST_KEY_2_PEM: &str = include_str!("../../tests/fixtures/auth-test-rsa-key-2.pem");
/// The public JWK of [`TEST_KEY_2_PEM`].
pub const TEST_KEY_2_JWK: &str = include_str!("../../tests/fixtures/auth-test-rsa-key-2.jwk.json");

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// `text` in unpadded base64url (a JWT segment).
pub fn b64url(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text)
}

/// A JWKS document holding `keys` (each a JWK's JSON text).
pub fn jwks(keys: &[&str]) -> String {
    format!(r#"{{"keys":[{}]}}"#, keys.join(","))
}

/// The signing key of a PKCS#1 PEM (the PEM body is the DER, base64).
pub fn rsa_encoding_key(pem: &str) -> EncodingKey {
    let body: String = pem.lines().filter(|line| !line.starts_with("-----")).collect();
    EncodingKey::from_rsa_der(&STANDARD.decode(body).expect("fixture PEM is base64"))
}

/// An RS256 token with header `kid`, signed with `pem`.
pub fn rs_token(kid: &str, pem: &str, claims: Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, &claims, &rsa_encoding_key(pem)).expect("RS256 signs")
}

/// An HS256 token signed with `secret`.
pub fn hs_token(secret: &str, claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("HS256 signs")
}

/// What `/keys` answers: a status, a body and, for a redirect, a `location`.
struct Served {
    status: u16,
    body: String,
    location: Option<String>,
}

/// A JWKS endpoint (`/keys`) on `127.0.0.1:0`; stops when dropped.
pub struct JwksServer {
    served: Arc<Mutex<Served>>,
    fetches: Arc<AtomicUsize>,
    server: Loopback,
}

impl JwksServer {
    /// Serves `body` with `200 OK`.
    pub async fn start(body: String) -> Self {
        Self::start_with_status(200, body).await
    }

    /// Serves `body` with `status`.
    pub async fn start_with_status(status: u16, body: String) -> Self {
        Self::serve(Served {
            status,
            body,
            location: None,
        })
        .await
    }

    /// A server whose `/keys` answers `302 Found` to `location`.
    pub async fn redirecting_to(location: String) -> Self {
        Self::serve(Served {
            status: 302,
            body: String::new(),
            location: Some(location),
        })
        .await
    }

    async fn serve(served: Served) -> Self {
        let served = Arc::new(Mutex::new(served));
        let fetches = Arc::new(AtomicUsize::new(0));
        let route = {
            let served = served.clone();
            let fetches = fetches.clone();
            warp::path("keys").map(move || {
                fetches.fetch_add(1, Ordering::SeqCst);
                let served = served.lock().unwrap();
                let mut reply = warp::http::Response::builder()
                    .status(served.status)
                    .header("content-type", "application/json");
                if let Some(location) = &served.location {
                    reply = reply.header("location", location.as_str());
                }
                reply.body(served.body.clone()).expect("a valid reply")
            })
        };
        let server = crate::serve(route).await;
        Self {
            served,
            fetches,
            server,
        }
    }

    /// `http://127.0.0.1:<port>/keys`.
    pub fn url(&self) -> String {
        self.server.url("/keys")
    }

    /// How many times `/keys` was fetched.
    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    /// Serves `body` from now on.
    pub fn set_document(&self, body: String) {
        self.served.lock().unwrap().body = body;
    }

    /// Answers with `status` from now on.
    pub fn set_status(&self, status: u16) {
        self.served.lock().unwrap().status = status;
    }
}
