//! The chat page `handler dev` serves: five static files compiled into the binary (`chat.html`,
//! `chat.css`, `chat-view.js` for rendering, `chat-store.js` for the state and the durable API, `chat.js`
//! for the connection and sync; plain HTML and JavaScript, no build step, nothing fetched from the
//! internet).
//!
//! The page lives at `GET /` of the handler port, in front of the readiness probe: in dev mode no Functions
//! host polls `/`, and a newcomer opening the printed address should see the chat, not `ok`. Every file is
//! sent with a Content-Security-Policy that allows only this origin and the emulator's WebSocket endpoint,
//! so the page cannot load or reach anything else even by mistake.

use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, header};
use warp::reply::{Reply, Response};

const CHAT_HTML: &str = include_str!("chat.html");
const CHAT_CSS: &str = include_str!("chat.css");
const CHAT_JS: &str = include_str!("chat.js");
const CHAT_VIEW_JS: &str = include_str!("chat-view.js");
const CHAT_STORE_JS: &str = include_str!("chat-store.js");

/// The policy for the page, given the emulator's WebSocket origin (e.g. `ws://127.0.0.1:8080`).
pub(super) fn content_security_policy(websocket_origin: &str) -> String {
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self' {websocket_origin}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
}

/// `GET /` (the page), `GET /chat.css` and the scripts (`/chat.js`, `/chat-view.js`, `/chat-store.js`); anything else falls through to the handler's routes.
pub(super) fn routes(content_security_policy: &str) -> BoxedFilter<(Response,)> {
    let policy = HeaderValue::from_str(content_security_policy).expect("the policy is ASCII without newlines");
    let file = move |body: &'static str, content_type: &'static str| {
        let policy = policy.clone();
        move || static_file(body, content_type, policy.clone())
    };
    let page = warp::path::end().map(file(CHAT_HTML, "text/html; charset=utf-8"));
    let css = warp::path!("chat.css").map(file(CHAT_CSS, "text/css; charset=utf-8"));
    let js = warp::path!("chat.js").map(file(CHAT_JS, "text/javascript; charset=utf-8"));
    let view = warp::path!("chat-view.js").map(file(CHAT_VIEW_JS, "text/javascript; charset=utf-8"));
    let store = warp::path!("chat-store.js").map(file(CHAT_STORE_JS, "text/javascript; charset=utf-8"));
    let scripts = js.or(view).unify().or(store).unify();
    warp::get().and(page.or(css).unify().or(scripts).unify()).boxed()
}

fn static_file(body: &'static str, content_type: &'static str, policy: HeaderValue) -> Response {
    let mut response = Response::new(body.into());
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    // A rebuilt binary serves a new page; never let the browser keep an old one.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = "default-src 'none'";

    #[tokio::test]
    async fn serves_the_five_files_with_their_types_and_the_policy() {
        let filter = routes(POLICY);
        for (path, content_type, marker) in [
            ("/", "text/html; charset=utf-8", "<!doctype html>"),
            ("/chat.css", "text/css; charset=utf-8", "body"),
            ("/chat.js", "text/javascript; charset=utf-8", "json.webpubsub.azure.v1"),
            ("/chat-view.js", "text/javascript; charset=utf-8", "textcontent"),
            (
                "/chat-store.js",
                "text/javascript; charset=utf-8",
                "/api/conversations/",
            ),
        ] {
            let response = warp::test::request().method("GET").path(path).reply(&filter).await;
            assert_eq!(response.status(), 200, "{path}");
            assert_eq!(response.headers()[header::CONTENT_TYPE], content_type, "{path}");
            assert_eq!(response.headers()[header::CONTENT_SECURITY_POLICY], POLICY, "{path}");
            assert_eq!(response.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
            let body = String::from_utf8_lossy(response.body()).to_ascii_lowercase();
            assert!(body.contains(marker), "{path}");
        }
    }

    #[tokio::test]
    async fn other_paths_and_methods_fall_through() {
        let filter = routes(POLICY);
        for path in ["/api/negotiate", "/chat.html", "/x/chat.js"] {
            assert!(
                !warp::test::request().method("GET").path(path).matches(&filter).await,
                "{path}"
            );
        }
        let post = warp::test::request().method("POST").path("/");
        assert!(!post.matches(&filter).await);
    }

    #[test]
    fn the_policy_allows_only_this_origin_and_the_emulator() {
        let policy = content_security_policy("ws://127.0.0.1:8080");
        assert!(policy.starts_with("default-src 'none';"));
        assert!(policy.contains("connect-src 'self' ws://127.0.0.1:8080;"));
        assert!(!policy.contains("http"), "no remote source: {policy}");
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        for file in [CHAT_HTML, CHAT_CSS, CHAT_JS, CHAT_VIEW_JS, CHAT_STORE_JS] {
            assert!(!file.contains("https://") && !file.contains("http://") && !file.contains("//cdn"));
        }
    }
}
