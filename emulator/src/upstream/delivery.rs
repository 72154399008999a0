//! Delivery of one event: the handler that takes it, the CloudEvents headers (with
//! `ce-signature`), the abuse-protection validation, POST with retries and the bounded reply.

use super::*;

impl Upstream {
    pub(super) fn handler_for(&self, event: &Event<'_>) -> Option<&Handler> {
        self.hubs.get(event.hub)?.iter().find(|h| h.takes(event))
    }

    /// Validates (if needed) and POSTs; logs one line with the outcome. `None` when the
    /// handler could not be called or did not answer.
    pub(super) async fn deliver(&self, handler: &Handler, event: &Event<'_>) -> Option<Reply> {
        if !self.ensure_validated(handler, event.hub).await {
            log_event(
                event,
                "event handler skipped: it has not passed the abuse-protection check",
            );
            return None;
        }
        let url = handler.url(event.hub, event.name);
        let headers = self.event_headers(event);
        match self.post(&url, headers, event.body.clone()).await {
            Ok(reply) => {
                tracing::info!(
                    hub = event.hub,
                    connection_id = event.connection_id,
                    user_id = event.user_id.unwrap_or(""),
                    event_type = %event_type(event),
                    status = reply.status.as_u16(),
                    "upstream event delivered"
                );
                Some(reply)
            }
            Err(PostError::Timeout) => {
                log_event(event, "upstream event failed: the handler timed out");
                None
            }
            Err(PostError::TooLarge) => {
                log_event(event, "upstream event failed: the handler response exceeds 16 MiB");
                None
            }
            Err(PostError::Transport(error)) => {
                log_event(event, &format!("upstream event failed: {error}"));
                None
            }
        }
    }

    pub(super) fn event_headers(&self, event: &Event<'_>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let mut put = |name: &'static str, value: &str| match HeaderValue::from_bytes(value.as_bytes()) {
            Ok(value) => {
                headers.insert(HeaderName::from_static(name), value);
            }
            Err(_) => tracing::warn!(
                header = name,
                "value not representable as an HTTP header; header omitted"
            ),
        };
        put("content-type", event.content_type);
        put(ce::WEBHOOK_REQUEST_ORIGIN, &self.origin);
        put(ce::SPEC_VERSION, ce::SPEC_VERSION_VALUE);
        put(ce::AWPS_VERSION, ce::AWPS_VERSION_VALUE);
        put(ce::TYPE, &event_type(event));
        put(ce::SOURCE, &ce::source(event.hub, event.connection_id));
        put(ce::ID, &self.next_event_id.fetch_add(1, Ordering::Relaxed).to_string());
        put(ce::TIME, &rfc3339_utc(SystemTime::now()));
        put(ce::SIGNATURE, &self.signature(event.connection_id));
        if let Some((authority, audience)) = &self.bearer {
            put(
                "authorization",
                &format!("Bearer {}", authority.sign_upstream_bearer(audience)),
            );
        }
        if let Some(user) = event.user_id {
            put(ce::USER_ID, user);
        }
        put(ce::CONNECTION_ID, event.connection_id);
        put(ce::HUB, event.hub);
        put(ce::EVENT_NAME, event.name);
        if let Some(subprotocol) = event.subprotocol {
            put(ce::SUBPROTOCOL, subprotocol);
        }
        if let Some(state) = &event.connection_state {
            put(ce::CONNECTION_STATE, state);
        }
        headers
    }

    /// `sha256=<hex>` for the primary key, then `,sha256=<hex>` for the secondary.
    pub(crate) fn signature(&self, connection_id: &str) -> String {
        signature::signature_header(&self.keys, connection_id)
    }

    /// POST with retries on 408, 5xx and transport errors (not on timeouts).
    pub(super) async fn post(&self, url: &str, headers: HeaderMap, body: Bytes) -> Result<Reply, PostError> {
        let mut attempt = 0;
        loop {
            let delay = self.retry_delays.get(attempt).copied();
            let result = self
                .client
                .post(url)
                .headers(headers.clone())
                .body(body.clone())
                .timeout(self.timeout)
                .send()
                .await;
            match result {
                Ok(response) => {
                    let status = response.status();
                    let retryable = status == StatusCode::REQUEST_TIMEOUT || status.is_server_error();
                    if let (true, Some(delay)) = (retryable, delay) {
                        tracing::debug!(
                            url = %without_query(url),
                            status = status.as_u16(),
                            "upstream answered with a retryable status; retrying"
                        );
                        tokio::time::sleep(delay).await;
                        attempt += 1;
                        continue;
                    }
                    return read_reply(response).await;
                }
                Err(error) if error.is_timeout() => return Err(PostError::Timeout),
                Err(error) => {
                    let Some(delay) = delay else {
                        return Err(PostError::Transport(describe(&error)));
                    };
                    tracing::debug!(url = %without_query(url), error = %describe(&error), "upstream request failed; retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
            }
        }
    }

    /// True when the handler's validation for `hub` is fresh or succeeds now.
    pub(super) async fn ensure_validated(&self, handler: &Handler, hub: &str) -> bool {
        let url = handler.url(hub, "validate");
        let slot = lock(&self.validations).entry(url.clone()).or_default().clone();
        let mut state = slot.lock().await;
        match *state {
            Some(Validation::Valid(at)) if at.elapsed() < self.validation_refresh_interval => {
                return true;
            }
            Some(Validation::Failed(at)) if at.elapsed() < self.validation_retry_interval => {
                return false;
            }
            _ => {}
        }
        let result = self.validate(&url).await;
        match &result {
            Ok(()) => {
                tracing::info!(hub, url = %without_query(&url), event_type = "validate", "event handler passed the abuse-protection check");
            }
            Err(why) => {
                tracing::warn!(
                    hub,
                    url = %without_query(&url),
                    event_type = "validate",
                    reason = %why,
                    "event handler failed the abuse-protection check; it will not be called until it passes"
                );
            }
        }
        *state = Some(if result.is_ok() {
            Validation::Valid(Instant::now())
        } else {
            Validation::Failed(Instant::now())
        });
        result.is_ok()
    }

    pub(super) async fn validate(&self, url: &str) -> Result<(), String> {
        let response = self
            .client
            .request(reqwest::Method::OPTIONS, url)
            .header("WebHook-Request-Origin", &self.origin)
            .header(ce::AWPS_VERSION, ce::AWPS_VERSION_VALUE)
            .timeout(VALIDATION_TIMEOUT.min(self.timeout))
            .send()
            .await
            .map_err(|e| format!("OPTIONS request failed: {}", describe(&e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("OPTIONS answered {status}, expected 2xx"));
        }
        let allowed: Vec<String> = response
            .headers()
            .get_all("webhook-allowed-origin")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|v| v.trim().to_owned())
            .collect();
        if allowed.iter().any(|o| o == "*" || o.eq_ignore_ascii_case(&self.origin)) {
            Ok(())
        } else if allowed.is_empty() {
            Err("the response has no WebHook-Allowed-Origin header".to_owned())
        } else {
            Err(format!(
                "WebHook-Allowed-Origin {allowed:?} allows neither '*' nor '{}'",
                self.origin
            ))
        }
    }
}

pub(super) fn system_event<'a>(connection: &'a Connection, name: &'a str, body: Bytes) -> Event<'a> {
    Event::about(
        connection,
        EventKind::System,
        name,
        "application/json; charset=utf-8",
        body,
    )
}

impl<'a> Event<'a> {
    /// An event of `kind` about `connection`, carrying its current connection state.
    pub(super) fn about(
        connection: &'a Connection,
        kind: EventKind,
        name: &'a str,
        content_type: &'static str,
        body: Bytes,
    ) -> Event<'a> {
        Event {
            kind,
            name,
            hub: &connection.hub,
            connection_id: &connection.id,
            user_id: connection.user_id.as_deref(),
            subprotocol: connection.subprotocol.as_deref(),
            connection_state: connection.connection_state(),
            content_type,
            body,
        }
    }
}

pub(super) fn event_type(event: &Event<'_>) -> String {
    match event.kind {
        EventKind::System => [ce::SYSTEM_EVENT_PREFIX, event.name].concat(),
        EventKind::User => [ce::USER_EVENT_PREFIX, event.name].concat(),
    }
}

pub(super) fn log_event(event: &Event<'_>, message: &str) {
    tracing::warn!(
        hub = event.hub,
        connection_id = event.connection_id,
        user_id = event.user_id.unwrap_or(""),
        event_type = %event_type(event),
        "{message}"
    );
}

/// A URL for logs: the query may hold a function key, so it is cut off.
pub(super) fn without_query(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

pub(super) fn connection_state_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get(ce::CONNECTION_STATE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

pub(super) fn claim_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The error and its causes, without the URL's query (which could hold a code).
pub(super) fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_connect() {
        "could not connect".to_owned()
    } else if error.is_body() || error.is_decode() {
        "could not read the response".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

pub(super) async fn read_reply(mut response: reqwest::Response) -> Result<Reply, PostError> {
    let status = response.status();
    let headers = response.headers().clone();
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                    return Err(PostError::TooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(error) if error.is_timeout() => return Err(PostError::Timeout),
            Err(error) => return Err(PostError::Transport(describe(&error))),
        }
    }
    Ok(Reply {
        status,
        headers,
        body: Bytes::from(body),
    })
}
