//! Test helpers for the identity layer: the fixed RSA test keys, token builders and a local JWKS server on
//! `127.0.0.1:0` whose document, status and fetch count tests control.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::Value;
use warp::Filter;

pub(crate) const TEST_KEY_1_PEM: &str = include_str!("../../tests/fixtures/auth-test-rsa-key.pem");
pub(crate) const TEST_KEY_1_JWK: &str = include_str!("../../tests/fixtures/auth-test-rsa-key.jwk.json");
pub(crate) const TEST_KEY_2_PEM: &str = include_str!("../../tests/fixtures/auth-test-rsa-key-2.pem");
pub(crate) const TEST_KEY_2_JWK: &str = include_str!("../../tests/fixtures/auth-test-rsa-key-2.jwk.json");

/// Seconds since the Unix epoch.
pub(crate) fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

pub(crate) fn b64url(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text)
}

/// A JWKS document holding `keys` (each a JWK's JSON text).
pub(crate) fn jwks(keys: &[&str]) -> String {
    format!(r#"{{"keys":[{}]}}"#, keys.join(","))
}

/// The signing key of a PKCS#1 PEM (the PEM body is the DER, base64).
pub(crate) fn rsa_encoding_key(pem: &str) -> EncodingKey {
    let body: String = pem.lines().filter(|line| !line.starts_with("-----")).collect();
    EncodingKey::from_rsa_der(&STANDARD.decode(body).expect("fixture PEM is base64"))
}

/// An RS256 token with header `kid`, signed with `pem`.
pub(crate) fn rs_token(kid: &str, pem: &str, claims: Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, &claims, &rsa_encoding_key(pem)).unwrap()
}

#[derive(Default)]
struct Served {
    status: u16,
    body: String,
}

/// A JWKS endpoint on `127.0.0.1:0`; stops when dropped.
pub(crate) struct JwksServer {
    addr: std::net::SocketAddr,
    served: Arc<Mutex<Served>>,
    fetches: Arc<AtomicUsize>,
    _server: ::test_support::Loopback,
}

impl JwksServer {
    pub(crate) async fn start(body: String) -> Self {
        Self::start_with_status(200, body).await
    }

    pub(crate) async fn start_with_status(status: u16, body: String) -> Self {
        let served = Arc::new(Mutex::new(Served { status, body }));
        let fetches = Arc::new(AtomicUsize::new(0));
        let route = {
            let served = served.clone();
            let fetches = fetches.clone();
            warp::path("keys").map(move || {
                fetches.fetch_add(1, Ordering::SeqCst);
                let served = served.lock().unwrap();
                let status = warp::http::StatusCode::from_u16(served.status).unwrap();
                warp::reply::with_status(served.body.clone(), status)
            })
        };
        let server = ::test_support::serve(route).await;
        let addr = server.addr;
        Self {
            addr,
            served,
            fetches,
            _server: server,
        }
    }

    /// A server whose `/keys` answers `302 Found` to `location`.
    pub(crate) async fn redirecting_to(location: String) -> Self {
        let served = Arc::new(Mutex::new(Served {
            status: 302,
            body: String::new(),
        }));
        let fetches = Arc::new(AtomicUsize::new(0));
        let route = {
            let fetches = fetches.clone();
            warp::path("keys").map(move || {
                fetches.fetch_add(1, Ordering::SeqCst);
                warp::http::Response::builder()
                    .status(302)
                    .header("location", location.as_str())
                    .body(String::new())
                    .unwrap()
            })
        };
        let server = ::test_support::serve(route).await;
        let addr = server.addr;
        Self {
            addr,
            served,
            fetches,
            _server: server,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}/keys", self.addr)
    }

    pub(crate) fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    pub(crate) fn set_document(&self, body: String) {
        self.served.lock().unwrap().body = body;
    }

    pub(crate) fn set_status(&self, status: u16) {
        self.served.lock().unwrap().status = status;
    }
}
