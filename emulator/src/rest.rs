//! The REST data plane under `/api/`: every operation of the service's 2024-12-01 API (sends,
//! closes, membership, existence checks, permissions, `:generateToken`, group listing).
//!
//! One warp filter takes every `/api/...` request and routes it by hand, so every failure is
//! the service's JSON error (`{"error":{"code","message"}}` plus `x-ms-error-code`) rather than
//! a warp rejection. Order of checks: route (404/405), bearer token (401), `api-version`
//! (400), names and parameters (400), body (413/415/400), then the operation. Status codes are
//! the ones the official SDKs expect: 202 for sends, 200 for adds, grants and tokens, 204 for
//! removes and closes, 200/404 for `HEAD` existence checks. `HEAD /api/health` is answered in
//! `lib.rs`; this module also answers it so the REST surface is complete on its own.

use std::pin::Pin;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde_json::{Value, json};
use warp::Filter as _;
use warp::filters::BoxedFilter;
use warp::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use warp::reply::Response;

use crate::filter::Filter;
use crate::protocol::{ContentKind, Payload};
use crate::service::{ClientTokenRequest, ConnectionFilter, GroupMember, Service};
use webpubsub_protocol::ClientType;
use webpubsub_protocol::names;
use webpubsub_protocol::roles::Permission;

/// Largest accepted message body: 1 MB, the service's message size limit.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Accepted `api-version` values: the current stable one and the older stable ones.
pub const API_VERSIONS: &[&str] = &["2024-12-01", "2024-01-01", "2023-07-01", "2022-11-01", "2021-10-01"];

/// Longest `messageTtlSeconds` (0 means no expiry).
pub const MAX_MESSAGE_TTL_SECONDS: u32 = 300;

/// Largest `maxpagesize` for listing group connections (also the default page size).
pub const MAX_PAGE_SIZE: usize = 200;

/// Longest `reason` accepted for a close, in characters.
pub const MAX_REASON_CHARS: usize = 1024;

/// Characters left unescaped in the path segments and query values this module writes.
const URL_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, warp::Error>> + Send>>;

/// The REST data plane: every request whose path starts with `/api/`.
pub fn routes(service: Arc<Service>) -> BoxedFilter<(Response,)> {
    let query = warp::query::raw().or(warp::any().map(String::new)).unify();
    let body = warp::body::stream().map(boxed_body);
    warp::path("api")
        .and(warp::method())
        .and(warp::path::full())
        .and(query)
        .and(warp::header::headers_cloned())
        .and(body)
        .then(move |method, path, query, headers, body| serve_call(service.clone(), method, path, query, headers, body))
        .boxed()
}

/// Runs one call through the checks and its handler; failures become the JSON error reply.
async fn serve_call(
    service: Arc<Service>,
    method: Method,
    path: warp::path::FullPath,
    query: String,
    headers: HeaderMap,
    body: BodyStream,
) -> Response {
    let call = Call::new(service, method.clone(), path.as_str(), query, headers, body);
    let response = call.handle().await.unwrap_or_else(ApiError::into_response);
    let status = response.status().as_u16();
    tracing::debug!(%method, path = path.as_str(), status, "rest call");
    response
}

fn boxed_body<S, B>(stream: S) -> BodyStream
where
    S: Stream<Item = Result<B, warp::Error>> + Send + 'static,
    B: Buf,
{
    Box::pin(stream.map(|chunk| chunk.map(|mut buf| buf.copy_to_bytes(buf.remaining()))))
}

// ---------------------------------------------------------------------------------------------
// Errors

/// A client mistake (or a missing resource) answered as the service does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// The 2024-12-01 error shape: `{"error":{"code","message"}}` and `x-ms-error-code`.
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        let mut response = json_response(self.status, &body);
        response
            .headers_mut()
            .insert("x-ms-error-code", HeaderValue::from_static(self.code));
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

fn status_response(status: StatusCode) -> Response {
    let mut response = Response::new(Bytes::new().into());
    *response.status_mut() = status;
    response
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut response = Response::new(body.to_string().into());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

fn exists_response(exists: bool) -> Response {
    status_response(if exists { StatusCode::OK } else { StatusCode::NOT_FOUND })
}

// ---------------------------------------------------------------------------------------------
// The parsed request

/// Query parameters in order; names compare ignoring ASCII case, as the service's do.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(raw: &str) -> Query {
        Query(url::form_urlencoded::parse(raw.as_bytes()).into_owned().collect())
    }

    /// Every value of a repeatable parameter (`excluded=a&excluded=b`).
    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The value of a single-valued parameter; repeating it is an error.
    fn one(&self, name: &str) -> Result<Option<&str>, ApiError> {
        let mut values = self
            .0
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str());
        let first = values.next();
        if values.next().is_some() {
            return Err(ApiError::bad_request(
                "InvalidQueryParameter",
                format!("'{name}' must be given at most once"),
            ));
        }
        Ok(first)
    }

    /// An optional integer parameter within `range`.
    fn integer<T>(&self, name: &str, range: std::ops::RangeInclusive<T>) -> Result<Option<T>, ApiError>
    where
        T: std::str::FromStr + PartialOrd + std::fmt::Display,
    {
        let Some(text) = self.one(name)? else {
            return Ok(None);
        };
        let invalid = || {
            ApiError::bad_request(
                "InvalidQueryParameter",
                format!("'{name}' must be an integer from {} to {}", range.start(), range.end()),
            )
        };
        let value: T = text.trim().parse().map_err(|_| invalid())?;
        if range.contains(&value) {
            Ok(Some(value))
        } else {
            Err(invalid())
        }
    }
}

/// The route a request resolved to, with its raw (percent-decoded) path parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Health,
    SendToAll {
        hub: String,
    },
    CloseAll {
        hub: String,
    },
    GenerateToken {
        hub: String,
    },
    AddToGroups {
        hub: String,
    },
    RemoveFromGroups {
        hub: String,
    },
    CloseConnection {
        hub: String,
        connection_id: String,
    },
    ConnectionExists {
        hub: String,
        connection_id: String,
    },
    SendToConnection {
        hub: String,
        connection_id: String,
    },
    RemoveConnectionFromAllGroups {
        hub: String,
        connection_id: String,
    },
    GroupExists {
        hub: String,
        group: String,
    },
    CloseGroup {
        hub: String,
        group: String,
    },
    SendToGroup {
        hub: String,
        group: String,
    },
    ListGroupConnections {
        hub: String,
        group: String,
    },
    AddConnectionToGroup {
        hub: String,
        group: String,
        connection_id: String,
    },
    RemoveConnectionFromGroup {
        hub: String,
        group: String,
        connection_id: String,
    },
    GrantPermission {
        hub: String,
        permission: String,
        connection_id: String,
    },
    RevokePermission {
        hub: String,
        permission: String,
        connection_id: String,
    },
    CheckPermission {
        hub: String,
        permission: String,
        connection_id: String,
    },
    UserExists {
        hub: String,
        user_id: String,
    },
    CloseUser {
        hub: String,
        user_id: String,
    },
    SendToUser {
        hub: String,
        user_id: String,
    },
    RemoveUserFromAllGroups {
        hub: String,
        user_id: String,
    },
    AddUserToGroup {
        hub: String,
        user_id: String,
        group: String,
    },
    RemoveUserFromGroup {
        hub: String,
        user_id: String,
        group: String,
    },
}

impl Route {
    /// Maps method and path segments (after `/api`) to a route: 404 for an unknown path,
    /// 405 for a known path with another method.
    fn resolve(method: &Method, segments: &[String]) -> Result<Route, ApiError> {
        let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
        let s = |v: &str| v.to_owned();
        let m = method;
        match segs.as_slice() {
            ["health"] => expect(m, &[Method::HEAD, Method::GET], || Route::Health),
            ["hubs", hub, ":send"] => expect(m, &[Method::POST], || Route::SendToAll { hub: s(hub) }),
            ["hubs", hub, ":closeConnections"] => expect(m, &[Method::POST], || Route::CloseAll { hub: s(hub) }),
            ["hubs", hub, ":generateToken"] => expect(m, &[Method::POST], || Route::GenerateToken { hub: s(hub) }),
            ["hubs", hub, ":addToGroups"] => expect(m, &[Method::POST], || Route::AddToGroups { hub: s(hub) }),
            ["hubs", hub, ":removeFromGroups"] => {
                expect(m, &[Method::POST], || Route::RemoveFromGroups { hub: s(hub) })
            }
            ["hubs", hub, "connections", id] => match *m {
                Method::DELETE => Ok(Route::CloseConnection {
                    hub: s(hub),
                    connection_id: s(id),
                }),
                Method::HEAD => Ok(Route::ConnectionExists {
                    hub: s(hub),
                    connection_id: s(id),
                }),
                _ => Err(method_not_allowed(m)),
            },
            ["hubs", hub, "connections", id, ":send"] => expect(m, &[Method::POST], || Route::SendToConnection {
                hub: s(hub),
                connection_id: s(id),
            }),
            ["hubs", hub, "connections", id, "groups"] => {
                expect(m, &[Method::DELETE], || Route::RemoveConnectionFromAllGroups {
                    hub: s(hub),
                    connection_id: s(id),
                })
            }
            ["hubs", hub, "groups", group] => expect(m, &[Method::HEAD], || Route::GroupExists {
                hub: s(hub),
                group: s(group),
            }),
            ["hubs", hub, "groups", group, ":closeConnections"] => expect(m, &[Method::POST], || Route::CloseGroup {
                hub: s(hub),
                group: s(group),
            }),
            ["hubs", hub, "groups", group, ":send"] => expect(m, &[Method::POST], || Route::SendToGroup {
                hub: s(hub),
                group: s(group),
            }),
            ["hubs", hub, "groups", group, "connections"] => {
                expect(m, &[Method::GET], || Route::ListGroupConnections {
                    hub: s(hub),
                    group: s(group),
                })
            }
            ["hubs", hub, "groups", group, "connections", id] => {
                let (hub, group, connection_id) = (s(hub), s(group), s(id));
                match *m {
                    Method::PUT => Ok(Route::AddConnectionToGroup {
                        hub,
                        group,
                        connection_id,
                    }),
                    Method::DELETE => Ok(Route::RemoveConnectionFromGroup {
                        hub,
                        group,
                        connection_id,
                    }),
                    _ => Err(method_not_allowed(m)),
                }
            }
            ["hubs", hub, "permissions", permission, "connections", id] => {
                let (hub, permission, connection_id) = (s(hub), s(permission), s(id));
                match *m {
                    Method::PUT => Ok(Route::GrantPermission {
                        hub,
                        permission,
                        connection_id,
                    }),
                    Method::DELETE => Ok(Route::RevokePermission {
                        hub,
                        permission,
                        connection_id,
                    }),
                    Method::HEAD => Ok(Route::CheckPermission {
                        hub,
                        permission,
                        connection_id,
                    }),
                    _ => Err(method_not_allowed(m)),
                }
            }
            ["hubs", hub, "users", user] => expect(m, &[Method::HEAD], || Route::UserExists {
                hub: s(hub),
                user_id: s(user),
            }),
            ["hubs", hub, "users", user, ":closeConnections"] => expect(m, &[Method::POST], || Route::CloseUser {
                hub: s(hub),
                user_id: s(user),
            }),
            ["hubs", hub, "users", user, ":send"] => expect(m, &[Method::POST], || Route::SendToUser {
                hub: s(hub),
                user_id: s(user),
            }),
            ["hubs", hub, "users", user, "groups"] => expect(m, &[Method::DELETE], || Route::RemoveUserFromAllGroups {
                hub: s(hub),
                user_id: s(user),
            }),
            ["hubs", hub, "users", user, "groups", group] => {
                let (hub, user_id, group) = (s(hub), s(user), s(group));
                match *m {
                    Method::PUT => Ok(Route::AddUserToGroup { hub, user_id, group }),
                    Method::DELETE => Ok(Route::RemoveUserFromGroup { hub, user_id, group }),
                    _ => Err(method_not_allowed(m)),
                }
            }
            _ => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "NotFound",
                "no REST operation has this path; see the Web PubSub data-plane API",
            )),
        }
    }

    /// The hub every route but health names.
    fn hub(&self) -> Option<&str> {
        match self {
            Route::Health => None,
            Route::SendToAll { hub }
            | Route::CloseAll { hub }
            | Route::GenerateToken { hub }
            | Route::AddToGroups { hub }
            | Route::RemoveFromGroups { hub }
            | Route::CloseConnection { hub, .. }
            | Route::ConnectionExists { hub, .. }
            | Route::SendToConnection { hub, .. }
            | Route::RemoveConnectionFromAllGroups { hub, .. }
            | Route::GroupExists { hub, .. }
            | Route::CloseGroup { hub, .. }
            | Route::SendToGroup { hub, .. }
            | Route::ListGroupConnections { hub, .. }
            | Route::AddConnectionToGroup { hub, .. }
            | Route::RemoveConnectionFromGroup { hub, .. }
            | Route::GrantPermission { hub, .. }
            | Route::RevokePermission { hub, .. }
            | Route::CheckPermission { hub, .. }
            | Route::UserExists { hub, .. }
            | Route::CloseUser { hub, .. }
            | Route::SendToUser { hub, .. }
            | Route::RemoveUserFromAllGroups { hub, .. }
            | Route::AddUserToGroup { hub, .. }
            | Route::RemoveUserFromGroup { hub, .. } => Some(hub),
        }
    }
}

fn expect(method: &Method, allowed: &[Method], route: impl FnOnce() -> Route) -> Result<Route, ApiError> {
    if allowed.contains(method) {
        Ok(route())
    } else {
        Err(method_not_allowed(method))
    }
}

fn method_not_allowed(method: &Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        format!("{method} is not supported on this path"),
    )
}

/// Splits `/api/a/b%2Fc` into decoded segments `["a", "b/c"]`; a trailing `/` is ignored.
fn path_segments(path: &str) -> Result<Vec<String>, ApiError> {
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

/// One REST call on its way through the checks.
struct Call {
    service: Arc<Service>,
    method: Method,
    path: String,
    raw_query: String,
    query: Query,
    headers: HeaderMap,
    body: Option<BodyStream>,
}

impl Call {
    fn new(
        service: Arc<Service>,
        method: Method,
        path: &str,
        raw_query: String,
        headers: HeaderMap,
        body: BodyStream,
    ) -> Call {
        let query = Query::parse(&raw_query);
        Call {
            service,
            method,
            path: path.to_owned(),
            raw_query,
            query,
            headers,
            body: Some(body),
        }
    }

    /// `http://host[:port]` as the caller reached the emulator (the Host header).
    fn endpoint(&self) -> String {
        let host = self
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        format!("http://{host}")
    }

    /// The URL as the caller requested it: what a REST token's `aud` names.
    fn request_url(&self) -> String {
        if self.raw_query.is_empty() {
            format!("{}{}", self.endpoint(), self.path)
        } else {
            format!("{}{}?{}", self.endpoint(), self.path, self.raw_query)
        }
    }

    async fn handle(mut self) -> Result<Response, ApiError> {
        let route = Route::resolve(&self.method, &path_segments(&self.path)?)?;
        if route == Route::Health {
            return Ok(health());
        }
        self.authorize()?;
        self.check_api_version()?;
        if let Some(hub) = route.hub() {
            check_hub(hub)?;
        }
        self.dispatch(route).await
    }

    /// 401 unless the bearer token is signed with an access key and names this URL.
    fn authorize(&self) -> Result<(), ApiError> {
        let authorization = self.headers.get(header::AUTHORIZATION).and_then(|h| h.to_str().ok());
        self.service
            .verify_rest_token(authorization, &self.request_url())
            .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized", e.to_string()))
    }

    fn check_api_version(&self) -> Result<(), ApiError> {
        match self.query.one("api-version")? {
            None => Err(ApiError::bad_request(
                "MissingApiVersion",
                format!(
                    "the 'api-version' query parameter is required; supported: {}",
                    API_VERSIONS.join(", ")
                ),
            )),
            Some(version) if API_VERSIONS.contains(&version) => Ok(()),
            Some(version) => Err(ApiError::bad_request(
                "UnsupportedApiVersion",
                format!(
                    "api-version '{version}' is not supported; supported: {}",
                    API_VERSIONS.join(", ")
                ),
            )),
        }
    }

    async fn dispatch(&mut self, route: Route) -> Result<Response, ApiError> {
        match route {
            Route::Health => Ok(health()),
            Route::SendToAll { hub } => self.send_to_all(&hub).await,
            Route::CloseAll { hub } => self.close_all(&hub),
            Route::GenerateToken { hub } => self.generate_token(&hub),
            Route::AddToGroups { hub } => self.add_to_groups(&hub).await,
            Route::RemoveFromGroups { hub } => self.remove_from_groups(&hub).await,
            Route::CloseConnection { hub, connection_id } => self.close_connection(&hub, &connection_id),
            Route::ConnectionExists { hub, connection_id } => self.connection_exists(&hub, &connection_id),
            Route::SendToConnection { hub, connection_id } => self.send_to_connection(&hub, &connection_id).await,
            Route::RemoveConnectionFromAllGroups { hub, connection_id } => {
                self.remove_connection_from_all_groups(&hub, &connection_id)
            }
            Route::GroupExists { hub, group } => self.group_exists(&hub, &group),
            Route::CloseGroup { hub, group } => self.close_group(&hub, &group),
            Route::SendToGroup { hub, group } => self.send_to_group(&hub, &group).await,
            Route::ListGroupConnections { hub, group } => self.list_group_connections(&hub, &group),
            Route::AddConnectionToGroup {
                hub,
                group,
                connection_id,
            } => self.add_connection_to_group(&hub, &group, &connection_id),
            Route::RemoveConnectionFromGroup {
                hub,
                group,
                connection_id,
            } => self.remove_connection_from_group(&hub, &group, &connection_id),
            Route::GrantPermission {
                hub,
                permission,
                connection_id,
            } => self.grant_permission(&hub, &permission, &connection_id),
            Route::RevokePermission {
                hub,
                permission,
                connection_id,
            } => self.revoke_permission(&hub, &permission, &connection_id),
            Route::CheckPermission {
                hub,
                permission,
                connection_id,
            } => self.check_permission(&hub, &permission, &connection_id),
            Route::UserExists { hub, user_id } => self.user_exists(&hub, &user_id),
            Route::CloseUser { hub, user_id } => self.close_user(&hub, &user_id),
            Route::SendToUser { hub, user_id } => self.send_to_user(&hub, &user_id).await,
            Route::RemoveUserFromAllGroups { hub, user_id } => self.remove_user_from_all_groups(&hub, &user_id),
            Route::AddUserToGroup { hub, user_id, group } => self.add_user_to_group(&hub, &user_id, &group),
            Route::RemoveUserFromGroup { hub, user_id, group } => self.remove_user_from_group(&hub, &user_id, &group),
        }
    }

    // ----- shared parameter parsing -----

    /// `excluded` connection ids (repeatable; empty values ignored).
    fn excluded(&self) -> Vec<String> {
        self.query
            .all("excluded")
            .filter(|id| !id.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// `filter`, parsed; absent or blank means no filter.
    fn filter(&self) -> Result<Option<Filter>, ApiError> {
        match self.query.one("filter")? {
            Some(text) if !text.trim().is_empty() => parse_filter(text).map(Some),
            _ => Ok(None),
        }
    }

    /// `reason` for closes (optional).
    fn reason(&self) -> Result<Option<&str>, ApiError> {
        let reason = self.query.one("reason")?;
        if reason.is_some_and(|r| r.chars().count() > MAX_REASON_CHARS) {
            return Err(ApiError::bad_request(
                "InvalidQueryParameter",
                format!("'reason' must be at most {MAX_REASON_CHARS} characters"),
            ));
        }
        Ok(reason)
    }

    /// `messageTtlSeconds`: validated (0–300); the emulator delivers at once, so it has no
    /// further effect.
    fn check_message_ttl(&self) -> Result<(), ApiError> {
        self.query
            .integer("messageTtlSeconds", 0..=MAX_MESSAGE_TTL_SECONDS)
            .map(|_| ())
    }

    /// The message body of a send: bounded, of a supported content type, and well-formed.
    async fn payload(&mut self) -> Result<Payload, ApiError> {
        let content_type = self
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        let kind = ContentKind::from_content_type(content_type).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                "Content-Type must be text/plain, application/json or application/octet-stream",
            )
        })?;
        let payload = Payload::new(kind, self.body_bytes().await?);
        payload
            .validate()
            .map_err(|e| ApiError::bad_request("InvalidPayload", e.to_string()))?;
        Ok(payload)
    }

    /// Reads the body, stopping with 413 as soon as it exceeds [`MAX_BODY_BYTES`].
    async fn body_bytes(&mut self) -> Result<Bytes, ApiError> {
        let too_large = || {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PayloadTooLarge",
                format!("the message body exceeds {MAX_BODY_BYTES} bytes"),
            )
        };
        let declared = self
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|h| h.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
            return Err(too_large());
        }
        let Some(mut stream) = self.body.take() else {
            return Ok(Bytes::new());
        };
        let mut body = BytesMut::new();
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|_| ApiError::bad_request("InvalidBody", "the request body could not be read"))?;
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    }

    /// The JSON body of `:addToGroups` / `:removeFromGroups`: `{"groups":[…],"filter":"…"}`.
    async fn groups_body(&mut self) -> Result<(Vec<String>, Option<Filter>), ApiError> {
        #[derive(serde::Deserialize)]
        struct GroupsToChange {
            groups: Vec<String>,
            #[serde(default)]
            filter: Option<String>,
        }
        let bytes = self.body_bytes().await?;
        let body: GroupsToChange = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::bad_request(
                "InvalidBody",
                format!("the body must be JSON like {{\"groups\":[\"g1\"],\"filter\":\"userId eq 'a'\"}}: {e}"),
            )
        })?;
        for group in &body.groups {
            check_group(group)?;
        }
        let filter = match body.filter.as_deref() {
            Some(text) if !text.trim().is_empty() => Some(parse_filter(text)?),
            _ => None,
        };
        Ok((body.groups, filter))
    }

    // ----- hub operations -----

    /// `POST /api/hubs/{hub}/:send` → 202.
    async fn send_to_all(&mut self, hub: &str) -> Result<Response, ApiError> {
        let (excluded, filter) = (self.excluded(), self.filter()?);
        self.check_message_ttl()?;
        let payload = self.payload().await?;
        self.service
            .send_to_all(hub, &payload, &excluded, as_connection_filter(&filter));
        Ok(status_response(StatusCode::ACCEPTED))
    }

    /// `POST /api/hubs/{hub}/:closeConnections` → 204.
    fn close_all(&self, hub: &str) -> Result<Response, ApiError> {
        self.service.close_all(hub, &self.excluded(), self.reason()?);
        Ok(status_response(StatusCode::NO_CONTENT))
    }

    /// `POST /api/hubs/{hub}/:generateToken` → 200 `{"token":"…"}`.
    fn generate_token(&self, hub: &str) -> Result<Response, ApiError> {
        let user_id = self.query.one("userId")?.map(str::to_owned);
        let roles: Vec<String> = self
            .query
            .all("role")
            .filter(|r| !r.is_empty())
            .map(str::to_owned)
            .collect();
        let groups: Vec<String> = self.query.all("group").map(str::to_owned).collect();
        for group in &groups {
            check_group(group)?;
        }
        let minutes_to_expire = self.query.integer("minutesToExpire", 1..=u32::MAX)?.unwrap_or(60);
        let client_type = match self.query.one("clientType")? {
            None => ClientType::Default,
            Some(text) => text.parse::<ClientType>().map_err(|_| {
                ApiError::bad_request(
                    "InvalidQueryParameter",
                    "'clientType' must be Default, MQTT or SocketIO",
                )
            })?,
        };
        let request = ClientTokenRequest {
            user_id,
            roles,
            groups,
            minutes_to_expire,
            client_type,
        };
        let token = self.service.generate_client_token(hub, &self.endpoint(), &request);
        Ok(json_response(StatusCode::OK, &json!({ "token": token })))
    }

    /// `POST /api/hubs/{hub}/:addToGroups` → 200.
    async fn add_to_groups(&mut self, hub: &str) -> Result<Response, ApiError> {
        let (groups, filter) = self.groups_body().await?;
        self.service.add_to_groups(hub, &groups, as_connection_filter(&filter));
        Ok(status_response(StatusCode::OK))
    }

    /// `POST /api/hubs/{hub}/:removeFromGroups` → 200.
    async fn remove_from_groups(&mut self, hub: &str) -> Result<Response, ApiError> {
        let (groups, filter) = self.groups_body().await?;
        self.service
            .remove_from_groups(hub, &groups, as_connection_filter(&filter));
        Ok(status_response(StatusCode::OK))
    }

    // ----- connection operations -----

    /// `DELETE /api/hubs/{hub}/connections/{connectionId}` → 204 (also when already gone).
    fn close_connection(&self, hub: &str, connection_id: &str) -> Result<Response, ApiError> {
        check_connection_id(connection_id)?;
        self.service.close_connection(hub, connection_id, self.reason()?);
        Ok(status_response(StatusCode::NO_CONTENT))
    }

    /// `HEAD /api/hubs/{hub}/connections/{connectionId}` → 200 or 404.
    fn connection_exists(&self, hub: &str, connection_id: &str) -> Result<Response, ApiError> {
        check_connection_id(connection_id)?;
        Ok(exists_response(self.service.connection_exists(hub, connection_id)))
    }

    /// `POST /api/hubs/{hub}/connections/{connectionId}/:send` → 202 (fire-and-forget).
    async fn send_to_connection(&mut self, hub: &str, connection_id: &str) -> Result<Response, ApiError> {
        check_connection_id(connection_id)?;
        self.check_message_ttl()?;
        let payload = self.payload().await?;
        self.service.send_to_connection(hub, connection_id, &payload);
        Ok(status_response(StatusCode::ACCEPTED))
    }

    /// `DELETE /api/hubs/{hub}/connections/{connectionId}/groups` → 204.
    fn remove_connection_from_all_groups(&self, hub: &str, connection_id: &str) -> Result<Response, ApiError> {
        check_connection_id(connection_id)?;
        self.service.remove_connection_from_all_groups(hub, connection_id);
        Ok(status_response(StatusCode::NO_CONTENT))
    }

    // ----- group operations -----

    /// `HEAD /api/hubs/{hub}/groups/{group}` → 200 or 404.
    fn group_exists(&self, hub: &str, group: &str) -> Result<Response, ApiError> {
        check_group(group)?;
        Ok(exists_response(self.service.group_exists(hub, group)))
    }

    /// `POST /api/hubs/{hub}/groups/{group}/:closeConnections` → 204.
    fn close_group(&self, hub: &str, group: &str) -> Result<Response, ApiError> {
        check_group(group)?;
        self.service.close_group(hub, group, &self.excluded(), self.reason()?);
        Ok(status_response(StatusCode::NO_CONTENT))
    }

    /// `POST /api/hubs/{hub}/groups/{group}/:send` → 202.
    async fn send_to_group(&mut self, hub: &str, group: &str) -> Result<Response, ApiError> {
        check_group(group)?;
        let (excluded, filter) = (self.excluded(), self.filter()?);
        self.check_message_ttl()?;
        let payload = self.payload().await?;
        self.service
            .send_to_group(hub, group, &payload, &excluded, as_connection_filter(&filter));
        Ok(status_response(StatusCode::ACCEPTED))
    }

    /// `GET /api/hubs/{hub}/groups/{group}/connections` → 200 `{"value":[…],"nextLink"?}`.
    fn list_group_connections(&self, hub: &str, group: &str) -> Result<Response, ApiError> {
        check_group(group)?;
        let page_size = self
            .query
            .integer("maxpagesize", 1..=MAX_PAGE_SIZE)?
            .unwrap_or(MAX_PAGE_SIZE);
        let top = self.query.integer("top", 1..=usize::MAX)?;
        let after = match self.query.one("continuationToken")? {
            Some(token) => Some(decode_continuation(token)?),
            None => None,
        };
        let members = self.service.group_connections(hub, group);
        let page = GroupPage::of(&members, after.as_deref(), page_size, top);
        let mut body = json!({ "value": page.items });
        if let Some(last) = page.next_after {
            let api_version = self.query.one("api-version")?.unwrap_or(API_VERSIONS[0]);
            body["nextLink"] = json!(next_link(hub, group, api_version, page_size, page.remaining_top, last));
        }
        Ok(json_response(StatusCode::OK, &body))
    }

    /// `PUT /api/hubs/{hub}/groups/{group}/connections/{connectionId}` → 200; 404 when the
    /// connection does not exist.
    fn add_connection_to_group(&self, hub: &str, group: &str, connection_id: &str) -> Result<Response, ApiError> {
        check_group(group)?;
        check_connection_id(connection_id)?;
        if self.service.add_connection_to_group(hub, group, connection_id) {
            Ok(status_response(StatusCode::OK))
        } else {
            Err(connection_not_found(connection_id))
        }
    }

    /// `DELETE /api/hubs/{hub}/groups/{group}/connections/{connectionId}` → 204.
    fn remove_connection_from_group(&self, hub: &str, group: &str, connection_id: &str) -> Result<Response, ApiError> {
        check_group(group)?;
        check_connection_id(connection_id)?;
        self.service.remove_connection_from_group(hub, group, connection_id);
        Ok(status_response(StatusCode::NO_CONTENT))
    }

    // ----- permission operations -----

    /// `targetName`: the group a permission applies to; absent means every group.
    fn target_name(&self) -> Result<Option<&str>, ApiError> {
        let target = self.query.one("targetName")?;
        if let Some(group) = target {
            check_group(group).map_err(|_| {
                ApiError::bad_request(
                    "InvalidTargetName",
                    "'targetName' must be a valid group name (1-1024 characters, not only whitespace)",
                )
            })?;
        }
        Ok(target)
    }

    /// `PUT /api/hubs/{hub}/permissions/{permission}/connections/{connectionId}` → 200; 404
    /// when the connection does not exist.
    fn grant_permission(&self, hub: &str, permission: &str, connection_id: &str) -> Result<Response, ApiError> {
        let permission = parse_permission(permission)?;
        check_connection_id(connection_id)?;
        let target = self.target_name()?;
        if self.service.grant_permission(hub, connection_id, permission, target) {
            Ok(status_response(StatusCode::OK))
        } else {
            Err(connection_not_found(connection_id))
        }
    }

    /// `DELETE /api/hubs/{hub}/permissions/{permission}/connections/{connectionId}` → 204.
    fn revoke_permission(&self, hub: &str, permission: &str, connection_id: &str) -> Result<Response, ApiError> {
        let permission = parse_permission(permission)?;
        check_connection_id(connection_id)?;
        let target = self.target_name()?;
        self.service.revoke_permission(hub, connection_id, permission, target);
        Ok(status_response(StatusCode::NO_CONTENT))
    }

    /// `HEAD /api/hubs/{hub}/permissions/{permission}/connections/{connectionId}` → 200 or 404.
    fn check_permission(&self, hub: &str, permission: &str, connection_id: &str) -> Result<Response, ApiError> {
        let permission = parse_permission(permission)?;
        check_connection_id(connection_id)?;
        let target = self.target_name()?;
        Ok(exists_response(self.service.check_permission(
            hub,
            connection_id,
            permission,
            target,
        )))
    }

    // ----- user operations -----

    /// `HEAD /api/hubs/{hub}/users/{userId}` → 200 or 404.
    fn user_exists(&self, hub: &str, user_id: &str) -> Result<Response, ApiError> {
        check_user_id(user_id)?;
        Ok(exists_response(self.service.user_exists(hub, user_id)))
    }

    /// `POST /api/hubs/{hub}/users/{userId}/:closeConnections` → 204.
    fn close_user(&self, hub: &str, user_id: &str) -> Result<Response, ApiError> {
        check_user_id(user_id)?;
        self.service.close_user(hub, user_id, &self.excluded(), self.reason()?);
        Ok(status_response(StatusCode::NO_CONTENT))
    }

    /// `POST /api/hubs/{hub}/users/{userId}/:send` → 202.
    async fn send_to_user(&mut self, hub: &str, user_id: &str) -> Result<Response, ApiError> {
        check_user_id(user_id)?;
        let filter = self.filter()?;
        self.check_message_ttl()?;
        let payload = self.payload().await?;
        self.service
            .send_to_user(hub, user_id, &payload, as_connection_filter(&filter));
        Ok(status_response(StatusCode::ACCEPTED))
    }

    /// `DELETE /api/hubs/{hub}/users/{userId}/groups` → 204.
    fn remove_user_from_all_groups(&self, hub: &str, user_id: &str) -> Result<Response, ApiError> {
        check_user_id(user_id)?;
        self.service.remove_user_from_all_groups(hub, user_id);
        Ok(status_response(StatusCode::NO_CONTENT))
    }

    /// `PUT /api/hubs/{hub}/users/{userId}/groups/{group}` → 200.
    fn add_user_to_group(&self, hub: &str, user_id: &str, group: &str) -> Result<Response, ApiError> {
        check_user_id(user_id)?;
        check_group(group)?;
        self.service.add_user_to_group(hub, group, user_id);
        Ok(status_response(StatusCode::OK))
    }

    /// `DELETE /api/hubs/{hub}/users/{userId}/groups/{group}` → 204.
    fn remove_user_from_group(&self, hub: &str, user_id: &str, group: &str) -> Result<Response, ApiError> {
        check_user_id(user_id)?;
        check_group(group)?;
        self.service.remove_user_from_group(hub, group, user_id);
        Ok(status_response(StatusCode::NO_CONTENT))
    }
}

/// `HEAD /api/health` (and `GET`) → 200.
fn health() -> Response {
    status_response(StatusCode::OK)
}

// ---------------------------------------------------------------------------------------------
// Validation helpers

fn check_hub(hub: &str) -> Result<(), ApiError> {
    if names::hub(hub).is_ok() {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "InvalidHubName",
            "the hub name must start with a letter and contain at most 128 letters, digits and _`,.[] characters",
        ))
    }
}

fn check_group(group: &str) -> Result<(), ApiError> {
    if names::group(group).is_ok() {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "InvalidGroupName",
            format!(
                "a group name must have 1 to {} characters and not be only whitespace",
                names::MAX_GROUP_LEN
            ),
        ))
    }
}

fn check_connection_id(connection_id: &str) -> Result<(), ApiError> {
    if connection_id.trim().is_empty() {
        Err(ApiError::bad_request(
            "InvalidConnectionId",
            "the connection id must not be empty",
        ))
    } else {
        Ok(())
    }
}

fn check_user_id(user_id: &str) -> Result<(), ApiError> {
    if user_id.is_empty() {
        Err(ApiError::bad_request("InvalidUserId", "the user id must not be empty"))
    } else {
        Ok(())
    }
}

fn parse_permission(permission: &str) -> Result<Permission, ApiError> {
    permission.parse::<Permission>().map_err(|_| {
        ApiError::bad_request(
            "InvalidPermission",
            "the permission must be sendToGroup or joinLeaveGroup",
        )
    })
}

fn parse_filter(text: &str) -> Result<Filter, ApiError> {
    Filter::parse(text).map_err(|e| ApiError::bad_request("InvalidFilter", e.to_string()))
}

fn connection_not_found(connection_id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "ConnectionNotFound",
        format!("connection '{connection_id}' does not exist"),
    )
}

fn as_connection_filter(filter: &Option<Filter>) -> Option<&dyn ConnectionFilter> {
    filter.as_ref().map(|f| f as &dyn ConnectionFilter)
}

// ---------------------------------------------------------------------------------------------
// Paging of group connections

/// One page of a group listing.
#[derive(Debug, PartialEq, Eq)]
struct GroupPage<'a> {
    items: Vec<&'a GroupMember>,
    /// The last connection id on this page, when more members follow (within `top`).
    next_after: Option<&'a str>,
    /// What is left of `top` for the following pages.
    remaining_top: Option<usize>,
}

impl<'a> GroupPage<'a> {
    /// Members after `after` (ids are sorted), at most `page_size` and at most `top`.
    fn of(members: &'a [GroupMember], after: Option<&str>, page_size: usize, top: Option<usize>) -> GroupPage<'a> {
        let start = after.map_or(0, |after| {
            members.partition_point(|m| m.connection_id.as_str() <= after)
        });
        let rest = &members[start..];
        let limit = page_size.min(top.unwrap_or(usize::MAX));
        let items: Vec<&GroupMember> = rest.iter().take(limit).collect();
        let remaining_top = top.map(|t| t - items.len());
        let more = rest.len() > items.len() && remaining_top != Some(0);
        let next_after = if more {
            items.last().map(|m| m.connection_id.as_str())
        } else {
            None
        };
        GroupPage {
            items,
            next_after,
            remaining_top,
        }
    }
}

/// Relative link to the next page; the continuation token is hex so SDKs re-encoding query
/// values cannot change it.
fn next_link(hub: &str, group: &str, api_version: &str, page_size: usize, top: Option<usize>, after: &str) -> String {
    let mut link = format!(
        "/api/hubs/{}/groups/{}/connections?api-version={}&maxpagesize={page_size}",
        utf8_percent_encode(hub, URL_COMPONENT),
        utf8_percent_encode(group, URL_COMPONENT),
        utf8_percent_encode(api_version, URL_COMPONENT),
    );
    if let Some(top) = top {
        link.push_str(&format!("&top={top}"));
    }
    link.push_str(&format!("&continuationToken={}", hex::encode(after)));
    link
}

fn decode_continuation(token: &str) -> Result<String, ApiError> {
    hex::decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| {
            ApiError::bad_request(
                "InvalidContinuationToken",
                "the continuationToken is not one this service issued",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DEV_ACCESS_KEY, EmulatorConfig};
    use crate::connection::{Connection, Identity, SocketQueue, new_connection_id};
    use crate::protocol::Frame;
    use serde_json::Map;
    use webpubsub_protocol::jwt as token;
    use webpubsub_protocol::keys::{AccessKey, ServiceKeys};

    const V: &str = "api-version=2024-12-01";

    struct Emulator {
        service: Arc<Service>,
        base: String,
        http: reqwest::Client,
        _stop: tokio::sync::oneshot::Sender<()>,
    }

    struct Client {
        connection: Arc<Connection>,
        queue: SocketQueue,
    }

    impl Client {
        fn id(&self) -> &str {
            &self.connection.id
        }

        /// Frames queued so far.
        fn frames(&mut self) -> Vec<Frame> {
            let mut frames = Vec::new();
            while let Ok(frame) = self.queue.frames.try_recv() {
                frames.push(frame);
            }
            frames
        }

        fn texts(&mut self) -> Vec<String> {
            self.frames()
                .into_iter()
                .filter_map(|f| match f {
                    Frame::Text(t) => Some(t),
                    Frame::Binary(_) => None,
                })
                .collect()
        }
    }

    /// The REST routes served on 127.0.0.1, port 0.
    async fn emulator() -> Emulator {
        let service = Service::new(EmulatorConfig::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = warp::serve(routes(service.clone())).incoming(listener).graceful(async {
            let _ = stopped.await;
        });
        tokio::spawn(server.run());
        Emulator {
            service,
            base,
            http: reqwest::Client::new(),
            _stop: stop,
        }
    }

    fn dev_keys() -> ServiceKeys {
        ServiceKeys::new(AccessKey::new(DEV_ACCESS_KEY).unwrap())
    }

    fn bearer(aud: &str, key: &str, exp_offset: i64) -> String {
        let mut claims = Map::new();
        claims.insert("aud".into(), json!(aud));
        claims.insert("exp".into(), json!(token::unix_now() as i64 + exp_offset));
        format!("Bearer {}", token::sign(&claims, &AccessKey::new(key).unwrap()))
    }

    struct Reply {
        status: u16,
        headers: HeaderMap,
        body: Bytes,
    }

    impl Reply {
        fn json(&self) -> Value {
            serde_json::from_slice(&self.body).unwrap_or(Value::Null)
        }
    }

    impl Emulator {
        /// A raw (no subprotocol) client in `hub`.
        fn connect(&self, hub: &str, user: Option<&str>, groups: &[&str]) -> Client {
            let identity = Identity {
                connection_id: new_connection_id(),
                hub: names::normalize_hub(hub),
                user_id: user.map(str::to_owned),
                subprotocol: None,
                roles: vec![],
            };
            let (connection, queue) = Connection::new(identity, None);
            let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
            self.service.register(&connection, &groups);
            Client { connection, queue }
        }

        /// A request with a valid token for `path` (which includes the query).
        fn request(&self, method: &str, path: &str) -> reqwest::RequestBuilder {
            let url = format!("{}{path}", self.base);
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            self.http
                .request(method, &url)
                .header("authorization", bearer(&url, DEV_ACCESS_KEY, 3600))
        }

        async fn call(&self, method: &str, path: &str) -> Reply {
            reply(self.request(method, path)).await
        }

        async fn send(&self, path: &str, content_type: &str, body: impl Into<Vec<u8>>) -> Reply {
            reply(
                self.request("POST", path)
                    .header("content-type", content_type)
                    .body(body.into()),
            )
            .await
        }
    }

    async fn reply(request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("request reaches the emulator");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.unwrap_or_default();
        Reply { status, headers, body }
    }

    /// The error code, after checking body and header agree.
    fn error_code(response: &Reply) -> String {
        let header = response
            .headers
            .get("x-ms-error-code")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = response.json();
        assert_eq!(body["error"]["code"], json!(header), "body and header codes agree");
        header
    }

    #[tokio::test]
    async fn health_needs_nothing() {
        let emulator = emulator().await;
        let response = reply(emulator.http.head(format!("{}/api/health", emulator.base))).await;
        assert_eq!(response.status, 200);
    }

    #[tokio::test]
    async fn unknown_path_is_404_with_service_error_shape() {
        let emulator = emulator().await;
        let response = emulator.call("POST", &format!("/api/hubs/chat/:nope?{V}")).await;
        assert_eq!(response.status, 404);
        assert_eq!(error_code(&response), "NotFound");
        assert!(
            response.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains("no REST operation")
        );
    }

    #[tokio::test]
    async fn wrong_method_is_405() {
        let emulator = emulator().await;
        let response = emulator.call("GET", &format!("/api/hubs/chat/:send?{V}")).await;
        assert_eq!(response.status, 405);
        assert_eq!(error_code(&response), "MethodNotAllowed");
    }

    #[tokio::test]
    async fn missing_or_bad_tokens_are_401() {
        let emulator = emulator().await;
        let path = format!("/api/hubs/chat/users/u?{V}");
        let url = format!("{}{path}", emulator.base);
        let no_token = reply(
            emulator
                .http
                .get(format!("{}/api/hubs/chat/groups/g/connections?{V}", emulator.base)),
        )
        .await;
        assert_eq!(no_token.status, 401);
        assert_eq!(no_token.headers[header::WWW_AUTHENTICATE], "Bearer");
        assert_eq!(error_code(&no_token), "Unauthorized");
        let wrong_key = "another-key-another-key-another-key-000";
        let cases = [
            bearer(&url, wrong_key, 3600),
            bearer(&url, DEV_ACCESS_KEY, -3600),
            bearer(
                &format!("{}/api/hubs/other/users/u", emulator.base),
                DEV_ACCESS_KEY,
                3600,
            ),
            "Bearer not-a-jwt".to_owned(),
        ];
        for authorization in cases {
            let response = reply(emulator.http.head(&url).header("authorization", authorization)).await;
            assert_eq!(response.status, 401);
        }
        // Audience without the query, and in another case, are accepted.
        let without_query = format!("{}/api/hubs/CHAT/users/u", emulator.base);
        let response = reply(
            emulator
                .http
                .head(&url)
                .header("authorization", bearer(&without_query, DEV_ACCESS_KEY, 60)),
        )
        .await;
        assert_eq!(response.status, 404);
    }

    #[tokio::test]
    async fn error_bodies_never_echo_the_token() {
        let emulator = emulator().await;
        let url = format!("{}/api/hubs/chat/:send?{V}", emulator.base);
        let token = bearer(&url, "another-key-another-key-another-key-000", 3600);
        let response = reply(emulator.http.post(&url).header("authorization", &token)).await;
        assert_eq!(response.status, 401);
        let body = String::from_utf8_lossy(&response.body).into_owned();
        assert!(!body.contains(token.trim_start_matches("Bearer ")));
    }

    #[tokio::test]
    async fn api_version_is_required_and_checked() {
        let emulator = emulator().await;
        let missing = emulator.call("HEAD", "/api/hubs/chat/users/u").await;
        assert_eq!(missing.status, 400);
        let missing = emulator.call("DELETE", "/api/hubs/chat/users/u/groups").await;
        assert_eq!(error_code(&missing), "MissingApiVersion");
        let unsupported = emulator
            .call("DELETE", "/api/hubs/chat/users/u/groups?api-version=2019-01-01")
            .await;
        assert_eq!(error_code(&unsupported), "UnsupportedApiVersion");
        assert!(
            unsupported.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains("2024-12-01")
        );
        for version in API_VERSIONS {
            let ok = emulator
                .call(
                    "DELETE",
                    &format!("/api/hubs/chat/users/u/groups?api-version={version}"),
                )
                .await;
            assert_eq!(ok.status, 204, "{version}");
        }
    }

    #[tokio::test]
    async fn invalid_names_are_400() {
        let emulator = emulator().await;
        let bad_hub = emulator.call("HEAD", &format!("/api/hubs/1chat/users/u?{V}")).await;
        assert_eq!(bad_hub.status, 400);
        let bad_hub = emulator
            .call("DELETE", &format!("/api/hubs/1chat/users/u/groups?{V}"))
            .await;
        assert_eq!(error_code(&bad_hub), "InvalidHubName");
        let long_group = "g".repeat(1025);
        let bad_group = emulator
            .call("DELETE", &format!("/api/hubs/chat/users/u/groups/{long_group}?{V}"))
            .await;
        assert_eq!(error_code(&bad_group), "InvalidGroupName");
        let blank_group = emulator
            .call("DELETE", &format!("/api/hubs/chat/users/u/groups/%20%20?{V}"))
            .await;
        assert_eq!(error_code(&blank_group), "InvalidGroupName");
        let bad_permission = emulator
            .call("DELETE", &format!("/api/hubs/chat/permissions/fly/connections/c?{V}"))
            .await;
        assert_eq!(error_code(&bad_permission), "InvalidPermission");
        let blank_connection = emulator
            .call("DELETE", &format!("/api/hubs/chat/connections/%20?{V}"))
            .await;
        assert_eq!(error_code(&blank_connection), "InvalidConnectionId");
    }

    #[tokio::test]
    async fn send_to_all_delivers_each_content_type() {
        let emulator = emulator().await;
        let mut a = emulator.connect("chat", Some("alice"), &[]);
        let path = format!("/api/hubs/Chat/:send?{V}");
        assert_eq!(
            emulator.send(&path, "text/plain; charset=utf-8", "hello").await.status,
            202
        );
        assert_eq!(emulator.send(&path, "application/json", r#"{"a":1}"#).await.status, 202);
        assert_eq!(
            emulator
                .send(&path, "application/octet-stream", vec![0u8, 1, 255])
                .await
                .status,
            202
        );
        assert_eq!(
            a.frames(),
            vec![
                Frame::Text("hello".into()),
                Frame::Text(r#"{"a":1}"#.into()),
                Frame::Binary(Bytes::from_static(&[0, 1, 255]))
            ]
        );
        // Sends aimed at nobody still succeed.
        assert_eq!(
            emulator
                .send(&format!("/api/hubs/empty/:send?{V}"), "text/plain", "x")
                .await
                .status,
            202
        );
    }

    #[tokio::test]
    async fn send_to_all_honours_excluded_and_filter() {
        let emulator = emulator().await;
        let mut a = emulator.connect("chat", Some("alice"), &["g1"]);
        let mut b = emulator.connect("chat", Some("bob"), &[]);
        let mut c = emulator.connect("chat", None, &["g1"]);
        let path = format!("/api/hubs/chat/:send?{V}&excluded={}&excluded={}", a.id(), b.id());
        assert_eq!(emulator.send(&path, "text/plain", "1").await.status, 202);
        assert_eq!(
            (a.texts().len(), b.texts().len(), c.texts(),),
            (0, 0, vec!["1".to_owned()])
        );

        let filter = "%27g1%27%20in%20groups%20and%20userId%20ne%20null";
        let path = format!("/api/hubs/chat/:send?{V}&filter={filter}");
        assert_eq!(emulator.send(&path, "text/plain", "2").await.status, 202);
        assert_eq!(
            (a.texts(), b.texts().len(), c.texts().len()),
            (vec!["2".to_owned()], 0, 0)
        );
    }

    #[tokio::test]
    async fn invalid_filter_is_400_with_the_reason() {
        let emulator = emulator().await;
        let path = format!("/api/hubs/chat/:send?{V}&filter=userId%20%3D%20%27a%27");
        let response = emulator.send(&path, "text/plain", "x").await;
        assert_eq!(response.status, 400);
        assert_eq!(error_code(&response), "InvalidFilter");
        let message = response.json()["error"]["message"].as_str().unwrap().to_owned();
        assert!(message.contains("position 7") && message.contains("eq"), "{message}");
    }

    #[tokio::test]
    async fn message_ttl_is_validated() {
        let emulator = emulator().await;
        for (ttl, status) in [("0", 202), ("300", 202), ("301", 400), ("-1", 400), ("abc", 400)] {
            let path = format!("/api/hubs/chat/:send?{V}&messageTtlSeconds={ttl}");
            assert_eq!(
                emulator.send(&path, "text/plain", "x").await.status,
                status,
                "ttl {ttl}"
            );
        }
    }

    #[tokio::test]
    async fn send_body_rules() {
        let emulator = emulator().await;
        let path = format!("/api/hubs/chat/:send?{V}");
        let unsupported = emulator.send(&path, "application/xml", "<a/>").await;
        assert_eq!(unsupported.status, 415);
        assert_eq!(error_code(&unsupported), "UnsupportedMediaType");
        let bad_json = emulator.send(&path, "application/json", "{nope").await;
        assert_eq!(error_code(&bad_json), "InvalidPayload");
        let bad_text = emulator.send(&path, "text/plain", vec![0xffu8, 0xfe]).await;
        assert_eq!(error_code(&bad_text), "InvalidPayload");
        let mut a = emulator.connect("chat", None, &[]);
        let at_limit = emulator
            .send(&path, "application/octet-stream", vec![7u8; MAX_BODY_BYTES])
            .await;
        assert_eq!(at_limit.status, 202);
        assert_eq!(a.frames().len(), 1);
        let too_big = emulator
            .send(&path, "application/octet-stream", vec![7u8; MAX_BODY_BYTES + 1])
            .await;
        assert_eq!(too_big.status, 413);
        assert_eq!(error_code(&too_big), "PayloadTooLarge");
        assert!(a.frames().is_empty());
    }

    #[tokio::test]
    async fn chunked_body_over_the_limit_is_413() {
        let emulator = emulator().await;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let path = format!("/api/hubs/chat/:send?{V}");
        let url = format!("{}{path}", emulator.base);
        let host = emulator.base.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {}\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
            bearer(&url, DEV_ACCESS_KEY, 60)
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let chunk = vec![b'x'; 300 * 1024];
        for _ in 0..5 {
            // The server may answer 413 and stop reading before every chunk is written.
            if stream
                .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .await
                .is_err()
                || stream.write_all(&chunk).await.is_err()
                || stream.write_all(b"\r\n").await.is_err()
            {
                break;
            }
        }
        let _ = stream.write_all(b"0\r\n\r\n").await;
        let mut response = vec![0u8; 64];
        let read = stream.read(&mut response).await.unwrap();
        let status_line = String::from_utf8_lossy(&response[..read]).into_owned();
        assert!(status_line.starts_with("HTTP/1.1 413"), "{status_line}");
    }

    #[tokio::test]
    async fn send_to_group_user_and_connection() {
        let emulator = emulator().await;
        let mut a = emulator.connect("chat", Some("alice"), &["room"]);
        let mut b = emulator.connect("chat", Some("bob"), &["room"]);
        let group = format!("/api/hubs/chat/groups/room/:send?{V}&excluded={}", b.id());
        assert_eq!(emulator.send(&group, "text/plain", "to-group").await.status, 202);
        let user = format!("/api/hubs/chat/users/bob/:send?{V}");
        assert_eq!(emulator.send(&user, "text/plain", "to-bob").await.status, 202);
        let user_filtered = format!("/api/hubs/chat/users/bob/:send?{V}&filter=userId%20eq%20%27x%27");
        assert_eq!(emulator.send(&user_filtered, "text/plain", "nobody").await.status, 202);
        let connection = format!("/api/hubs/chat/connections/{}/:send?{V}", a.id());
        assert_eq!(emulator.send(&connection, "text/plain", "to-a").await.status, 202);
        let missing = format!("/api/hubs/chat/connections/missing/:send?{V}");
        assert_eq!(emulator.send(&missing, "text/plain", "lost").await.status, 202);
        assert_eq!(a.texts(), vec!["to-group", "to-a"]);
        assert_eq!(b.texts(), vec!["to-bob"]);
    }

    #[tokio::test]
    async fn group_names_with_reserved_characters_round_trip() {
        let emulator = emulator().await;
        let mut a = emulator.connect("chat", None, &["a/b c?"]);
        let path = format!("/api/hubs/chat/groups/a%2Fb%20c%3F/:send?{V}");
        assert_eq!(emulator.send(&path, "text/plain", "x").await.status, 202);
        assert_eq!(a.texts(), vec!["x"]);
    }

    #[tokio::test]
    async fn existence_checks() {
        let emulator = emulator().await;
        let a = emulator.connect("chat", Some("alice"), &["room"]);
        let cases = [
            (format!("/api/hubs/chat/connections/{}?{V}", a.id()), 200),
            (format!("/api/hubs/chat/connections/nope?{V}"), 404),
            (format!("/api/hubs/chat/groups/room?{V}"), 200),
            (format!("/api/hubs/chat/groups/other?{V}"), 404),
            (format!("/api/hubs/chat/users/alice?{V}"), 200),
            (format!("/api/hubs/chat/users/bob?{V}"), 404),
            (format!("/api/hubs/other/users/alice?{V}"), 404),
        ];
        for (path, status) in cases {
            assert_eq!(emulator.call("HEAD", &path).await.status, status, "{path}");
        }
    }

    #[tokio::test]
    async fn connection_group_membership() {
        let emulator = emulator().await;
        let a = emulator.connect("chat", None, &[]);
        let member = format!("/api/hubs/chat/groups/room/connections/{}?{V}", a.id());
        assert_eq!(emulator.call("PUT", &member).await.status, 200);
        assert!(emulator.service.group_exists("chat", "room"));
        let missing = emulator
            .call("PUT", &format!("/api/hubs/chat/groups/room/connections/ghost?{V}"))
            .await;
        assert_eq!(missing.status, 404);
        assert_eq!(error_code(&missing), "ConnectionNotFound");
        assert_eq!(emulator.call("DELETE", &member).await.status, 204);
        assert!(!emulator.service.group_exists("chat", "room"));
        assert_eq!(emulator.call("DELETE", &member).await.status, 204);

        emulator.service.add_connection_to_group("chat", "x", a.id());
        emulator.service.add_connection_to_group("chat", "y", a.id());
        let all = format!("/api/hubs/chat/connections/{}/groups?{V}", a.id());
        assert_eq!(emulator.call("DELETE", &all).await.status, 204);
        assert!(!emulator.service.group_exists("chat", "x") && !emulator.service.group_exists("chat", "y"));
    }

    #[tokio::test]
    async fn user_group_membership() {
        let emulator = emulator().await;
        let _a = emulator.connect("chat", Some("alice"), &[]);
        assert_eq!(
            emulator
                .call("PUT", &format!("/api/hubs/chat/users/alice/groups/room?{V}"))
                .await
                .status,
            200
        );
        assert!(emulator.service.group_exists("chat", "room"));
        assert_eq!(
            emulator
                .call("DELETE", &format!("/api/hubs/chat/users/alice/groups/room?{V}"))
                .await
                .status,
            204
        );
        assert!(!emulator.service.group_exists("chat", "room"));
        emulator.service.add_user_to_group("chat", "r2", "alice");
        assert_eq!(
            emulator
                .call("DELETE", &format!("/api/hubs/chat/users/alice/groups?{V}"))
                .await
                .status,
            204
        );
        assert!(!emulator.service.group_exists("chat", "r2"));
    }

    #[tokio::test]
    async fn add_and_remove_groups_by_filter() {
        let emulator = emulator().await;
        let a = emulator.connect("chat", Some("alice"), &[]);
        let b = emulator.connect("chat", Some("bob"), &[]);
        let add = emulator
            .send(
                &format!("/api/hubs/chat/:addToGroups?{V}"),
                "application/json",
                r#"{"groups":["g1","g2"],"filter":"userId eq 'alice'"}"#,
            )
            .await;
        assert_eq!(add.status, 200);
        let members = |g: &str| {
            emulator
                .service
                .group_connections("chat", g)
                .into_iter()
                .map(|m| m.connection_id)
                .collect::<Vec<_>>()
        };
        assert_eq!(members("g1"), vec![a.id().to_owned()]);
        assert_eq!(members("g2"), vec![a.id().to_owned()]);
        let add_all = emulator
            .send(
                &format!("/api/hubs/chat/:addToGroups?{V}"),
                "application/json",
                r#"{"groups":["g3"]}"#,
            )
            .await;
        assert_eq!(add_all.status, 200);
        assert_eq!(members("g3").len(), 2);
        let remove = emulator
            .send(
                &format!("/api/hubs/chat/:removeFromGroups?{V}"),
                "application/json",
                r#"{"groups":["g3"],"filter":"userId eq 'bob'"}"#,
            )
            .await;
        assert_eq!(remove.status, 200);
        assert_eq!(members("g3"), vec![a.id().to_owned()]);
        assert!(!members("g1").contains(&b.id().to_owned()));

        let bad_body = emulator
            .send(
                &format!("/api/hubs/chat/:addToGroups?{V}"),
                "application/json",
                r#"{"filter":"true"}"#,
            )
            .await;
        assert_eq!(error_code(&bad_body), "InvalidBody");
        let bad_filter = emulator
            .send(
                &format!("/api/hubs/chat/:addToGroups?{V}"),
                "application/json",
                r#"{"groups":["g"],"filter":"userId"}"#,
            )
            .await;
        assert_eq!(error_code(&bad_filter), "InvalidFilter");
        let bad_group = emulator
            .send(
                &format!("/api/hubs/chat/:addToGroups?{V}"),
                "application/json",
                r#"{"groups":[" "]}"#,
            )
            .await;
        assert_eq!(error_code(&bad_group), "InvalidGroupName");
    }

    #[tokio::test]
    async fn closes_end_connections() {
        let emulator = emulator().await;
        let a = emulator.connect("chat", Some("alice"), &["room"]);
        let b = emulator.connect("chat", Some("alice"), &[]);
        let c = emulator.connect("chat", Some("carol"), &["room"]);
        let d = emulator.connect("chat", None, &[]);
        let exists = |id: &str| emulator.service.connection_exists("chat", id);
        let close_user = format!(
            "/api/hubs/chat/users/alice/:closeConnections?{V}&excluded={}&reason=bye",
            b.id()
        );
        assert_eq!(emulator.call("POST", &close_user).await.status, 204);
        assert!(!exists(a.id()) && exists(b.id()));
        let close_group = format!("/api/hubs/chat/groups/room/:closeConnections?{V}");
        assert_eq!(emulator.call("POST", &close_group).await.status, 204);
        assert!(!exists(c.id()));
        let close_one = format!("/api/hubs/chat/connections/{}?{V}&reason=done", b.id());
        assert_eq!(emulator.call("DELETE", &close_one).await.status, 204);
        assert!(!exists(b.id()));
        assert_eq!(emulator.call("DELETE", &close_one).await.status, 204);
        let close_all = format!("/api/hubs/chat/:closeConnections?{V}");
        assert_eq!(emulator.call("POST", &close_all).await.status, 204);
        assert!(!exists(d.id()));
        let long_reason = format!(
            "/api/hubs/chat/:closeConnections?{V}&reason={}",
            "r".repeat(MAX_REASON_CHARS + 1)
        );
        assert_eq!(emulator.call("POST", &long_reason).await.status, 400);
    }

    #[tokio::test]
    async fn permissions_grant_check_revoke() {
        let emulator = emulator().await;
        let a = emulator.connect("chat", None, &[]);
        let path = |p: &str, target: &str| format!("/api/hubs/chat/permissions/{p}/connections/{}?{V}{target}", a.id());
        assert_eq!(
            emulator
                .call("HEAD", &path("sendToGroup", "&targetName=g"))
                .await
                .status,
            404
        );
        assert_eq!(
            emulator.call("PUT", &path("sendToGroup", "&targetName=g")).await.status,
            200
        );
        assert_eq!(
            emulator
                .call("HEAD", &path("sendToGroup", "&targetName=g"))
                .await
                .status,
            200
        );
        assert_eq!(
            emulator
                .call("HEAD", &path("sendToGroup", "&targetName=h"))
                .await
                .status,
            404
        );
        assert_eq!(
            emulator
                .call("HEAD", &path("joinLeaveGroup", "&targetName=g"))
                .await
                .status,
            404
        );
        assert_eq!(
            emulator
                .call("DELETE", &path("sendToGroup", "&targetName=g"))
                .await
                .status,
            204
        );
        assert_eq!(
            emulator
                .call("HEAD", &path("sendToGroup", "&targetName=g"))
                .await
                .status,
            404
        );
        assert_eq!(emulator.call("PUT", &path("joinLeaveGroup", "")).await.status, 200);
        assert_eq!(
            emulator
                .call("HEAD", &path("joinLeaveGroup", "&targetName=any"))
                .await
                .status,
            200
        );
        let ghost = emulator
            .call(
                "PUT",
                &format!("/api/hubs/chat/permissions/sendToGroup/connections/ghost?{V}"),
            )
            .await;
        assert_eq!(error_code(&ghost), "ConnectionNotFound");
        let bad_target = emulator.call("PUT", &path("sendToGroup", "&targetName=%20")).await;
        assert_eq!(error_code(&bad_target), "InvalidTargetName");
    }

    #[tokio::test]
    async fn generate_token_signs_client_tokens() {
        let emulator = emulator().await;
        let path = format!(
            "/api/hubs/Chat/:generateToken?{V}&userId=alice&role=webpubsub.joinLeaveGroup&role=r2&group=g1&minutesToExpire=5"
        );
        let response = emulator.call("POST", &path).await;
        assert_eq!(response.status, 200);
        let token = response.json()["token"].as_str().unwrap().to_owned();
        let claims = token::verify(&token, &dev_keys(), token::unix_now()).unwrap();
        assert_eq!(claims["aud"], json!(format!("{}/client/hubs/chat", emulator.base)));
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["role"], json!(["webpubsub.joinLeaveGroup", "r2"]));
        assert_eq!(claims["webpubsub.group"], json!(["g1"]));
        let lifetime = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
        assert_eq!(lifetime, 300);

        let mqtt = emulator
            .call("POST", &format!("/api/hubs/chat/:generateToken?{V}&clientType=mqtt"))
            .await;
        let token = mqtt.json()["token"].as_str().unwrap().to_owned();
        let claims = token::verify(&token, &dev_keys(), token::unix_now()).unwrap();
        assert_eq!(
            claims["aud"],
            json!(format!("{}/clients/mqtt/hubs/chat", emulator.base))
        );
        assert!(claims.get("sub").is_none());

        let socketio = emulator
            .call(
                "POST",
                &format!("/api/hubs/chat/:generateToken?{V}&clientType=SocketIO"),
            )
            .await;
        let token = socketio.json()["token"].as_str().unwrap().to_owned();
        let claims = token::verify(&token, &dev_keys(), token::unix_now()).unwrap();
        assert_eq!(
            claims["aud"],
            json!(format!("{}/clients/socketio/hubs/chat", emulator.base))
        );

        for bad in ["clientType=ws", "minutesToExpire=0", "minutesToExpire=x", "group=%20"] {
            let response = emulator
                .call("POST", &format!("/api/hubs/chat/:generateToken?{V}&{bad}"))
                .await;
            assert_eq!(response.status, 400, "{bad}");
        }
    }

    #[tokio::test]
    async fn list_group_connections_pages() {
        let emulator = emulator().await;
        let clients: Vec<Client> = (0..5)
            .map(|i| emulator.connect("chat", Some(&format!("u{i}")), &["room"]))
            .collect();
        let mut expected: Vec<String> = clients.iter().map(|c| c.id().to_owned()).collect();
        expected.sort();

        let mut seen = Vec::new();
        let mut link = Some(format!("/api/hubs/chat/groups/room/connections?{V}&maxpagesize=2"));
        let mut pages = 0;
        while let Some(path) = link.take() {
            pages += 1;
            assert!(pages <= 5, "paging must end");
            let response = emulator.call("GET", &path).await;
            assert_eq!(response.status, 200);
            let body = response.json();
            for item in body["value"].as_array().unwrap() {
                assert!(item["userId"].as_str().unwrap().starts_with('u'));
                seen.push(item["connectionId"].as_str().unwrap().to_owned());
            }
            link = body["nextLink"].as_str().map(str::to_owned);
        }
        assert_eq!(pages, 3);
        assert_eq!(seen, expected);

        let top = emulator
            .call(
                "GET",
                &format!("/api/hubs/chat/groups/room/connections?{V}&maxpagesize=2&top=3"),
            )
            .await;
        let body = top.json();
        assert_eq!(body["value"].as_array().unwrap().len(), 2);
        let next = body["nextLink"].as_str().unwrap().to_owned();
        assert!(next.contains("top=1"), "{next}");
        let last = emulator.call("GET", &next).await.json();
        assert_eq!(last["value"].as_array().unwrap().len(), 1);
        assert!(last.get("nextLink").is_none());

        let empty = emulator
            .call("GET", &format!("/api/hubs/chat/groups/none/connections?{V}"))
            .await
            .json();
        assert_eq!(empty, json!({"value": []}));
        let bad_size = emulator
            .call(
                "GET",
                &format!("/api/hubs/chat/groups/room/connections?{V}&maxpagesize=201"),
            )
            .await;
        assert_eq!(bad_size.status, 400);
        let bad_token = emulator
            .call(
                "GET",
                &format!("/api/hubs/chat/groups/room/connections?{V}&continuationToken=zz"),
            )
            .await;
        assert_eq!(error_code(&bad_token), "InvalidContinuationToken");
    }

    #[test]
    fn page_arithmetic() {
        let members: Vec<GroupMember> = ["a", "b", "c"]
            .iter()
            .map(|id| GroupMember {
                connection_id: id.to_string(),
                user_id: None,
            })
            .collect();
        let first = GroupPage::of(&members, None, 2, None);
        assert_eq!((first.items.len(), first.next_after), (2, Some("b")));
        let second = GroupPage::of(&members, Some("b"), 2, None);
        assert_eq!((second.items.len(), second.next_after), (1, None));
        // A member that left between pages does not shift the next page.
        let rest = GroupPage::of(&members[1..], Some("a"), 5, None);
        assert_eq!(rest.items.len(), 2);
        let capped = GroupPage::of(&members, None, 5, Some(2));
        assert_eq!(
            (capped.items.len(), capped.next_after, capped.remaining_top),
            (2, None, Some(0))
        );
    }

    #[test]
    fn query_names_ignore_case_and_singletons_reject_repeats() {
        let query = Query::parse("API-VERSION=1&excluded=a&Excluded=b&x=1&x=2");
        assert_eq!(query.one("api-version").unwrap(), Some("1"));
        assert_eq!(query.all("excluded").collect::<Vec<_>>(), vec!["a", "b"]);
        assert_eq!(query.one("x").unwrap_err().code, "InvalidQueryParameter");
    }

    #[test]
    fn path_segments_decode() {
        assert_eq!(
            path_segments("/api/hubs/h/groups/a%2Fb/").unwrap(),
            vec!["hubs", "h", "groups", "a/b"]
        );
        assert_eq!(path_segments("/api/hubs/%FF").unwrap_err().code, "InvalidPath");
    }
}
