//! The `openapi.json` function: serves the API contract, `openapi.yaml` at the repository root, as JSON.
//!
//! `GET /api/openapi.json` answers the document the build script converted from YAML and embedded in the
//! binary, so serving it costs one copy-free reply: nothing is parsed or built at run time. It holds no
//! secret, so the function is anonymous; the document describes this route too.

pub(crate) mod paths;

use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, header};
use warp::reply::{Reply, Response};

/// The contract as compact JSON (`openapi.yaml`, converted by `build.rs`).
pub const DOCUMENT: &str = include_str!(concat!(env!("OUT_DIR"), "/openapi.json"));

/// `GET /api/openapi.json`.
pub(crate) fn routes() -> BoxedFilter<(Response,)> {
    warp::path!("api" / "openapi.json")
        .and(warp::get())
        .map(|| {
            let mut response = Response::new(DOCUMENT.into());
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response.into_response()
        })
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_document_is_openapi_3_1_json() {
        let document: serde_json::Value = serde_json::from_str(DOCUMENT).unwrap();
        assert!(document["openapi"].as_str().unwrap().starts_with("3.1."));
        assert!(document["paths"]["/api/openapi.json"]["get"].is_object());
    }

    #[tokio::test]
    async fn get_answers_the_document_as_json() {
        let reply = warp::test::request().path("/api/openapi.json").reply(&routes()).await;
        assert_eq!(reply.status(), 200);
        assert_eq!(reply.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(reply.body().as_ref(), DOCUMENT.as_bytes());
    }
}
