//! Routing: a request's method and decoded path segments to a [`Route`], through the protocol
//! crate's REST operation table (the same table the handler's REST client builds requests from).

use percent_encoding::percent_decode_str;
use warp::http::{Method, StatusCode};
use webpubsub_protocol::{Operation, RouteError};

use super::error::ApiError;

/// The operation a request resolved to, with its raw (percent-decoded) path parameters in
/// template order: the hub first, then the rest as the path names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Route {
    pub(super) operation: Operation,
    params: Vec<String>,
}

impl Route {
    /// Maps method and path segments (after `/api`) to a route by the protocol crate's operation
    /// table: 404 for an unknown path, 405 for a known path with another method.
    pub(super) fn resolve(method: &Method, segments: &[String]) -> Result<Route, ApiError> {
        let mut path: Vec<&str> = Vec::with_capacity(segments.len() + 1);
        path.push("api");
        path.extend(segments.iter().map(String::as_str));
        let (operation, params) = Operation::resolve(method, &path).map_err(|error| match error {
            RouteError::NotFound => ApiError::new(
                StatusCode::NOT_FOUND,
                "NotFound",
                "no REST operation has this path; see the Web PubSub data-plane API",
            ),
            RouteError::MethodNotAllowed => method_not_allowed(method),
        })?;
        let params = params.into_iter().map(str::to_owned).collect();
        Ok(Route { operation, params })
    }

    /// The `index`th path parameter (0 is the hub); empty when the path has no such parameter.
    pub(super) fn param(&self, index: usize) -> &str {
        self.params.get(index).map_or("", String::as_str)
    }

    /// The hub every route but health names.
    pub(super) fn hub(&self) -> Option<&str> {
        (self.operation != Operation::Health).then(|| self.param(0))
    }
}

pub(super) fn method_not_allowed(method: &Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        format!("{method} is not supported on this path"),
    )
}

/// Splits `/api/a/b%2Fc` into decoded segments `["a", "b/c"]`; a trailing `/` is ignored.
pub(super) fn path_segments(path: &str) -> Result<Vec<String>, ApiError> {
    let rest = path.strip_prefix("/api").unwrap_or(path);
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    rest.split('/')
        .map(|segment| {
            percent_decode_str(segment)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| ApiError::bad_request("InvalidPath", "path segments must be percent-encoded UTF-8"))
        })
        .collect()
}
