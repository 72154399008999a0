//! Client access: the WebSocket URL and HS256 access token a client connects with (protocol
//! reference §2), issued locally with the access key exactly as the official SDKs do.
//!
//! Token claims are `aud` (the **http(s)** URL of the client path), `iat`, `exp`, then `sub` (user id),
//! `role` and `webpubsub.group`, each of the last three omitted when empty. The claim order and JSON
//! layout equal the Python SDK's, so for ASCII inputs our tokens are byte-identical to its tokens. The
//! clock is a parameter, which keeps tests deterministic.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::clients::ClientType;
use crate::connection_string::Endpoint;
use crate::jwt::Hs256Signer;
use crate::keys::AccessKey;
use crate::names::{self as validate, ValidationError};

/// Token lifetime when none is asked for: 60 minutes, as in every SDK.
pub const DEFAULT_CLIENT_TOKEN_TTL: Duration = Duration::from_secs(60 * 60);
/// Longest client token lifetime we issue. The service documents no maximum; this keeps leaked URLs
/// short-lived while allowing day-long sessions (the token is only checked at connect time).
pub const MAX_CLIENT_TOKEN_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// What a client token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAccessRequest {
    /// The `sub` claim; the connection's user id. `None` for anonymous connections.
    pub user_id: Option<String>,
    /// `role` claims, e.g. `webpubsub.joinLeaveGroup.room1`.
    pub roles: Vec<String>,
    /// `webpubsub.group`: groups joined on connect.
    pub groups: Vec<String>,
    /// Lifetime, 1 second to [`MAX_CLIENT_TOKEN_TTL`]; whole seconds count.
    pub ttl: Duration,
    /// Which client endpoint the URL points at.
    pub client_type: ClientType,
}

impl Default for ClientAccessRequest {
    fn default() -> Self {
        Self {
            user_id: None,
            roles: Vec::new(),
            groups: Vec::new(),
            ttl: DEFAULT_CLIENT_TOKEN_TTL,
            client_type: ClientType::Default,
        }
    }
}

impl ClientAccessRequest {
    /// The claims of this request's token for `audience`, issued at `issued_at` (seconds since the
    /// Unix epoch) and valid for `ttl`. Nothing is validated here: [`ClientAccessIssuer::issue`]
    /// checks names and lifetime first; the emulator's `:generateToken` signs what it is asked for.
    pub fn claims<'a>(&'a self, audience: &'a str, issued_at: u64) -> ClientClaims<'a> {
        ClientClaims {
            aud: audience,
            iat: issued_at,
            exp: issued_at.saturating_add(self.ttl.as_secs()),
            sub: self.user_id.as_deref(),
            role: &self.roles,
            groups: &self.groups,
        }
    }

    fn validate(&self) -> Result<(), ValidationError> {
        if let Some(user_id) = &self.user_id {
            validate::user_id(user_id)?;
        }
        self.roles.iter().try_for_each(|role| validate::role(role))?;
        self.groups.iter().try_for_each(|group| validate::group(group))?;
        if self.ttl.as_secs() == 0 || self.ttl > MAX_CLIENT_TOKEN_TTL {
            return Err(ValidationError::TokenLifetimeOutOfRange);
        }
        Ok(())
    }
}

/// An issued client access URL and token. `Debug` hides the token and the URL that embeds it.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientAccess {
    /// `wss://host/client/hubs/{hub}` (no token).
    pub base_url: String,
    /// `base_url?access_token={token}`: what a client connects to.
    pub url: String,
    /// The JWT itself.
    pub token: String,
    /// The `exp` claim, in seconds since the Unix epoch.
    pub expires_at: u64,
}

impl ClientAccess {
    /// The client URLs of `endpoint` for `hub` and a `client_type`, carrying `token` (signed here or by the
    /// service's `:generateToken`) that expires at `expires_at`.
    pub fn for_token(endpoint: &Endpoint, client_type: ClientType, hub: &str, token: String, expires_at: u64) -> Self {
        // The hub is validated to URL-safe characters and the token is base64url, so plain
        // concatenation is exact, as in the SDKs.
        let base_url = [endpoint.websocket_base(), client_type.path_prefix(), hub].concat();
        let url = [base_url.as_str(), "?access_token=", token.as_str()].concat();
        Self {
            base_url,
            url,
            token,
            expires_at,
        }
    }
}

impl fmt::Debug for ClientAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientAccess")
            .field("base_url", &self.base_url)
            .field("url", &format_args!("{}?access_token=<redacted>", self.base_url))
            .field("token", &format_args!("<redacted>"))
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Issues client access URLs for one service. Build it once at startup; it holds the prepared key.
#[derive(Clone)]
pub struct ClientAccessIssuer {
    endpoint: Endpoint,
    signer: Hs256Signer,
}

impl fmt::Debug for ClientAccessIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientAccessIssuer")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// The claims of a client token, in the Python SDK's order (see [`ClientAccessRequest::claims`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientClaims<'a> {
    /// The client endpoint URL the token is for.
    pub aud: &'a str,
    /// Issued at, in seconds since the Unix epoch.
    pub iat: u64,
    /// Expires at, in seconds since the Unix epoch.
    pub exp: u64,
    /// The user id, when the connection has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<&'a str>,
    /// Roles.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub role: &'a [String],
    /// Groups joined on connect.
    #[serde(rename = "webpubsub.group", skip_serializing_if = "<[String]>::is_empty")]
    pub groups: &'a [String],
}

impl ClientAccessIssuer {
    /// An issuer signing with `key` (normally the primary key) for `endpoint`.
    pub fn new(endpoint: Endpoint, key: &AccessKey) -> Self {
        Self {
            endpoint,
            signer: Hs256Signer::new(key),
        }
    }

    /// The endpoint URLs are issued for.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Issues a URL and token for `hub`, valid from now.
    pub fn issue(&self, hub: &str, request: &ClientAccessRequest) -> Result<ClientAccess, ValidationError> {
        self.issue_at(hub, request, SystemTime::now())
    }

    /// Issues a URL and token for `hub` as if the clock read `now`.
    pub fn issue_at(
        &self,
        hub: &str,
        request: &ClientAccessRequest,
        now: SystemTime,
    ) -> Result<ClientAccess, ValidationError> {
        validate::hub(hub)?;
        request.validate()?;
        let prefix = request.client_type.path_prefix();
        let audience = [self.endpoint.as_str(), prefix, hub].concat();
        let issued_at = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let claims = request.claims(&audience, issued_at);
        let (token, expires_at) = (self.signer.sign(&claims), claims.exp);
        Ok(ClientAccess::for_token(
            &self.endpoint,
            request.client_type,
            hub,
            token,
            expires_at,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection_string::ConnectionString;
    use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
    use serde_json::{Value, json};

    const KEY: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH";
    const NOW: u64 = 1_700_000_000;

    fn issuer(connection_string: &str) -> ClientAccessIssuer {
        let (endpoint, key) = ConnectionString::parse(connection_string).unwrap().into_parts();
        ClientAccessIssuer::new(endpoint, &key)
    }

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn claims_of(token: &str) -> Value {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.validate_aud = false;
        decode::<Value>(token, &DecodingKey::from_secret(KEY.as_bytes()), &validation)
            .unwrap()
            .claims
    }

    /// One recorded SDK call, translated into our request.
    struct Vector {
        name: String,
        connection_string: String,
        hub: String,
        request: ClientAccessRequest,
        base_url: String,
        url: String,
        token: String,
        claims: Value,
    }

    fn string_list(args: &Value, key: &str) -> Vec<String> {
        args.get(key)
            .and_then(Value::as_array)
            .map(|items| items.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default()
    }

    /// Reads a fixture made by `tests/interop/vectors/make_vectors.py` or `make-vectors.mjs`; the two
    /// SDKs spell their arguments differently.
    fn vectors(fixture: &str) -> Vec<Vector> {
        let document: Value = serde_json::from_str(fixture).unwrap();
        assert_eq!(document["now"], NOW);
        assert_eq!(document["access_key"], KEY);
        let cases = document["client_access"].as_array().unwrap();
        assert!(cases.len() >= 6, "fixture has too few cases");
        cases
            .iter()
            .map(|case| {
                let args = &case["args"];
                let minutes = args
                    .get("minutes_to_expire")
                    .or_else(|| args.get("expirationTimeInMinutes"));
                let protocol = args.get("client_protocol").or_else(|| args.get("clientProtocol"));
                Vector {
                    name: case["name"].as_str().unwrap().to_owned(),
                    connection_string: case["connection_string"].as_str().unwrap().to_owned(),
                    hub: case["hub"].as_str().unwrap().to_owned(),
                    request: ClientAccessRequest {
                        user_id: args
                            .get("user_id")
                            .or_else(|| args.get("userId"))
                            .map(|v| v.as_str().unwrap().to_owned()),
                        roles: string_list(args, "roles"),
                        groups: string_list(args, "groups"),
                        ttl: minutes.map_or(DEFAULT_CLIENT_TOKEN_TTL, |m| {
                            Duration::from_secs(m.as_u64().unwrap() * 60)
                        }),
                        client_type: protocol.map_or(ClientType::Default, |p| p.as_str().unwrap().parse().unwrap()),
                    },
                    base_url: case["baseUrl"].as_str().unwrap().to_owned(),
                    url: case["url"].as_str().unwrap().to_owned(),
                    token: case["token"].as_str().unwrap().to_owned(),
                    claims: case["claims"].clone(),
                }
            })
            .collect()
    }

    fn issue(vector: &Vector) -> ClientAccess {
        issuer(&vector.connection_string)
            .issue_at(&vector.hub, &vector.request, at(NOW))
            .unwrap()
    }

    #[test]
    fn a_huge_ttl_saturates_exp_instead_of_overflowing() {
        let request = ClientAccessRequest {
            ttl: Duration::from_secs(u64::MAX),
            ..ClientAccessRequest::default()
        };
        assert_eq!(request.claims("aud", 1_700_000_000).exp, u64::MAX);
    }

    #[test]
    fn matches_the_python_sdk_byte_for_byte() {
        for vector in vectors(include_str!("../../tests/interop/vectors/python.json")) {
            let ours = issue(&vector);
            assert_eq!(ours.base_url, vector.base_url, "{}", vector.name);
            assert_eq!(claims_of(&ours.token), vector.claims, "{}", vector.name);
            assert_eq!(ours.expires_at, vector.claims["exp"], "{}", vector.name);
            // Python escapes non-ASCII characters as \uXXXX in the claims JSON, so only ASCII claims can
            // match byte for byte; the decoded claims above are equal either way.
            if vector.claims.to_string().is_ascii() {
                assert_eq!(ours.token, vector.token, "{}", vector.name);
                assert_eq!(ours.url, vector.url, "{}", vector.name);
            } else {
                assert_ne!(
                    ours.token, vector.token,
                    "{}: expected the escaping difference",
                    vector.name
                );
            }
        }
    }

    #[test]
    fn matches_the_javascript_sdk_claims_and_urls() {
        for vector in vectors(include_str!("../../tests/interop/vectors/js.json")) {
            let ours = issue(&vector);
            assert_eq!(ours.base_url, vector.base_url, "{}", vector.name);
            // jsonwebtoken (JS) orders claims differently, so compare decoded claims, then the URL shape.
            assert_eq!(claims_of(&ours.token), vector.claims, "{}", vector.name);
            assert_eq!(
                claims_of(&vector.token),
                vector.claims,
                "{}: fixture token verifies with the key",
                vector.name
            );
            assert_eq!(vector.url, format!("{}?access_token={}", vector.base_url, vector.token));
            assert_eq!(ours.url, format!("{}?access_token={}", ours.base_url, ours.token));
        }
    }

    #[test]
    fn anonymous_token_has_only_aud_iat_exp() {
        let access = issuer(&format!("Endpoint=https://contoso.webpubsub.azure.com;AccessKey={KEY}"))
            .issue_at("chat", &ClientAccessRequest::default(), at(NOW))
            .unwrap();
        assert_eq!(
            claims_of(&access.token),
            json!({"aud": "https://contoso.webpubsub.azure.com/client/hubs/chat", "iat": NOW, "exp": NOW + 3600})
        );
        assert_eq!(access.expires_at, NOW + 3600);
        assert_eq!(access.base_url, "wss://contoso.webpubsub.azure.com/client/hubs/chat");
    }

    #[test]
    fn every_client_type_has_its_own_path() {
        let issuer = issuer(&format!("Endpoint=http://localhost:8080;AccessKey={KEY}"));
        for (client_type, path) in [
            (ClientType::Default, "/client/hubs/h"),
            (ClientType::Mqtt, "/clients/mqtt/hubs/h"),
            (ClientType::SocketIo, "/clients/socketio/hubs/h"),
        ] {
            let request = ClientAccessRequest {
                client_type,
                ..Default::default()
            };
            let access = issuer.issue_at("h", &request, at(NOW)).unwrap();
            assert_eq!(access.base_url, format!("ws://localhost:8080{path}"));
            assert_eq!(claims_of(&access.token)["aud"], format!("http://localhost:8080{path}"));
        }
    }

    #[test]
    fn refuses_a_bad_hub() {
        let issuer = issuer(&format!("Endpoint=https://a.example;AccessKey={KEY}"));
        let error = issuer
            .issue_at("1hub", &ClientAccessRequest::default(), at(NOW))
            .unwrap_err();
        assert_eq!(error, ValidationError::InvalidHub);
    }

    #[test]
    fn refuses_empty_user_ids_roles_and_blank_groups() {
        let issuer = issuer(&format!("Endpoint=https://a.example;AccessKey={KEY}"));
        let cases = [
            (
                ClientAccessRequest {
                    user_id: Some(String::new()),
                    ..Default::default()
                },
                ValidationError::EmptyUserId,
            ),
            (
                ClientAccessRequest {
                    roles: vec![String::new()],
                    ..Default::default()
                },
                ValidationError::EmptyRole,
            ),
            (
                ClientAccessRequest {
                    groups: vec![" ".into()],
                    ..Default::default()
                },
                ValidationError::InvalidGroup,
            ),
        ];
        for (request, expected) in cases {
            assert_eq!(issuer.issue_at("h", &request, at(NOW)).unwrap_err(), expected);
        }
    }

    #[test]
    fn refuses_lifetimes_out_of_range() {
        let issuer = issuer(&format!("Endpoint=https://a.example;AccessKey={KEY}"));
        for ttl in [
            Duration::ZERO,
            Duration::from_millis(999),
            MAX_CLIENT_TOKEN_TTL + Duration::from_secs(1),
        ] {
            let request = ClientAccessRequest {
                ttl,
                ..Default::default()
            };
            assert_eq!(
                issuer.issue_at("h", &request, at(NOW)).unwrap_err(),
                ValidationError::TokenLifetimeOutOfRange,
                "{ttl:?}"
            );
        }
        let request = ClientAccessRequest {
            ttl: MAX_CLIENT_TOKEN_TTL,
            ..Default::default()
        };
        assert_eq!(
            issuer.issue_at("h", &request, at(NOW)).unwrap().expires_at,
            NOW + 86_400
        );
    }

    #[test]
    fn debug_hides_the_token() {
        let access = issuer(&format!("Endpoint=https://a.example;AccessKey={KEY}"))
            .issue_at("h", &ClientAccessRequest::default(), at(NOW))
            .unwrap();
        let shown = format!("{access:?}");
        assert!(!shown.contains(&access.token), "{shown}");
        assert!(shown.contains("wss://a.example/client/hubs/h"), "{shown}");
    }
}
