//! The offline hand-off (#16): a notification for a user with no live connection is also POSTed, through the
//! outbox, to `NotificationsOfflineWebhookUrl` as `{"userId","notification":{…}}` with
//! `X-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>` under `NotificationsOfflineWebhookSecret`, so a
//! push sender (Notification Hubs, Web Push) can take over. A non-2xx answer or no answer is a failed
//! delivery: the outbox retries it with backoff (honouring Retry-After) and parks it after the attempt cap.
//!
//! | Setting | Default | Meaning |
//! |---|---|---|
//! | `NotificationsOfflineWebhookUrl` | unset | https (http only to a loopback host); unset → no hand-off. |
//! | `NotificationsOfflineWebhookSecret` | unset | HMAC key of `X-Signature-256`; required with the URL, ≥ 16 characters. |

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::{ConfigError, Env};

pub(crate) const URL_SETTING: &str = "NotificationsOfflineWebhookUrl";
pub(crate) const SECRET_SETTING: &str = "NotificationsOfflineWebhookSecret";
/// The signature header the receiver checks.
pub(crate) const SIGNATURE_HEADER: &str = "X-Signature-256";
/// Shortest secret accepted.
const MIN_SECRET_CHARS: usize = 16;

/// The HMAC key of the offline webhook (redacted in Debug).
#[derive(Clone)]
pub(crate) struct WebhookSecret(String);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(***)")
    }
}

/// A configured offline webhook: where to POST and how to sign.
#[derive(Debug, Clone)]
pub struct OfflineWebhook {
    url: url::Url,
    secret: WebhookSecret,
}

/// Why one POST failed, with the Retry-After the receiver asked for.
#[derive(Debug)]
pub struct WebhookFailure {
    pub error: String,
    pub retry_after: Option<Duration>,
}

impl OfflineWebhook {
    /// Reads both settings; `None` when the URL is unset. A secret without a URL is refused, so a typo in the
    /// URL's name never silently turns the hand-off off.
    pub fn from_env(env: &Env) -> Result<Option<Self>, ConfigError> {
        let secret = env.get(SECRET_SETTING);
        let Some(raw) = env.get(URL_SETTING) else {
            return match secret {
                Some(_) => Err(ConfigError::new(
                    SECRET_SETTING,
                    format!("is set but {URL_SETTING} is not"),
                )),
                None => Ok(None),
            };
        };
        let url = url::Url::parse(raw).map_err(|e| ConfigError::new(URL_SETTING, format!("is not a URL: {e}")))?;
        let loopback = match url.host() {
            Some(url::Host::Domain(host)) => host.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => return Err(ConfigError::new(URL_SETTING, "needs a host")),
        };
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            _ => {
                return Err(ConfigError::new(
                    URL_SETTING,
                    "must be https (http only to a loopback host)",
                ));
            }
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ConfigError::new(
                URL_SETTING,
                "must not carry credentials; the signature authenticates",
            ));
        }
        let secret =
            secret.ok_or_else(|| ConfigError::new(SECRET_SETTING, format!("is required when {URL_SETTING} is set")))?;
        if secret.chars().count() < MIN_SECRET_CHARS {
            return Err(ConfigError::new(
                SECRET_SETTING,
                format!("must be at least {MIN_SECRET_CHARS} characters"),
            ));
        }
        Ok(Some(Self {
            url,
            secret: WebhookSecret(secret.to_owned()),
        }))
    }

    /// `sha256=<hex HMAC-SHA256(secret, body)>`.
    pub fn signature(&self, body: &[u8]) -> String {
        sign(&self.secret.0, body)
    }

    /// POSTs one body (signed); 2xx is delivered, anything else a failure to retry.
    pub async fn post(&self, client: &reqwest::Client, body: Vec<u8>) -> Result<(), WebhookFailure> {
        let signature = self.signature(&body);
        let response = client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature)
            .body(body)
            .send()
            .await
            .map_err(|e| WebhookFailure {
                // Without the URL: it may carry a path the operator considers private.
                error: format!("offline webhook unreachable: {}", e.without_url()),
                retry_after: None,
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        Err(WebhookFailure {
            error: format!("offline webhook answered {status}"),
            retry_after,
        })
    }
}

/// The signature scheme, for both ends: `sha256=` + lowercase hex of HMAC-SHA256 over the exact body bytes.
pub(crate) fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The client webhook POSTs go through: no redirects (a redirect could carry the signed body elsewhere).
pub(crate) fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .build()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn known_answer_signature() {
        // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog") (RFC 4231-style vector, Wikipedia).
        assert_eq!(
            sign("key", b"The quick brown fox jumps over the lazy dog"),
            "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }

    #[test]
    fn settings_are_validated() {
        assert!(OfflineWebhook::from_env(&env(&[])).unwrap().is_none());
        let secret = "0123456789abcdef";
        let ok = |url: &str| OfflineWebhook::from_env(&env(&[(URL_SETTING, url), (SECRET_SETTING, secret)]));
        assert!(ok("https://push.example/hook").unwrap().is_some());
        assert!(ok("http://127.0.0.1:9/hook").unwrap().is_some());
        assert!(ok("http://localhost/hook").unwrap().is_some());
        assert!(ok("http://[::1]:8080/").unwrap().is_some());
        for bad in [
            "http://push.example/hook",
            "ftp://127.0.0.1/",
            "not a url",
            "https://u:p@push.example/",
        ] {
            assert_eq!(ok(bad).unwrap_err().setting, URL_SETTING, "{bad}");
        }
        let missing = OfflineWebhook::from_env(&env(&[(URL_SETTING, "https://push.example/")])).unwrap_err();
        assert_eq!(missing.setting, SECRET_SETTING);
        let short = OfflineWebhook::from_env(&env(&[
            (URL_SETTING, "https://push.example/"),
            (SECRET_SETTING, "short"),
        ]))
        .unwrap_err();
        assert_eq!(short.setting, SECRET_SETTING);
        let orphan = OfflineWebhook::from_env(&env(&[(SECRET_SETTING, secret)])).unwrap_err();
        assert_eq!(orphan.setting, SECRET_SETTING);
    }

    #[test]
    fn the_secret_never_shows_in_debug() {
        let hook = OfflineWebhook::from_env(&env(&[
            (URL_SETTING, "https://push.example/"),
            (SECRET_SETTING, "very-secret-value-123"),
        ]))
        .unwrap()
        .unwrap();
        let debug = format!("{hook:?}");
        assert!(!debug.contains("very-secret"), "{debug}");
        assert!(debug.contains("WebhookSecret(***)"));
    }
}
