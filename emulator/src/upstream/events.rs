//! The events themselves: the blocking `connect` (request body, reply parsing into a decision),
//! the `connected` / `disconnected` notifications and user events with their replies.

use super::delivery::{claim_text, connection_state_of, log_event, system_event};
use super::*;

impl Upstream {
    /// The blocking `connect` event.
    pub(crate) async fn connect(&self, request: &ConnectRequest) -> ConnectOutcome {
        let to_arrays = |pairs: &[(String, String)]| {
            let mut map: Map<String, Value> = Map::new();
            for (k, v) in pairs {
                if let Value::Array(values) = map.entry(k.clone()).or_insert_with(|| Value::Array(Vec::new())) {
                    values.push(Value::String(v.clone()));
                }
            }
            Value::Object(map)
        };
        let claims: Map<String, Value> = request
            .claims
            .iter()
            .map(|(k, v)| {
                let values: Vec<Value> = match v {
                    Value::Array(items) => items.iter().map(|i| Value::String(claim_text(i))).collect(),
                    other => vec![Value::String(claim_text(other))],
                };
                (k.clone(), Value::Array(values))
            })
            .collect();
        let body = json!({
            "claims": claims,
            "query": to_arrays(&request.query),
            "headers": to_arrays(&request.headers),
            "subprotocols": request.subprotocols,
            "clientCertificates": [],
        });
        let event = Event {
            kind: EventKind::System,
            name: "connect",
            hub: &request.hub,
            connection_id: &request.connection_id,
            user_id: request.user_id.as_deref(),
            subprotocol: None,
            connection_state: None,
            content_type: "application/json; charset=utf-8",
            body: Bytes::from(body.to_string()),
        };
        let Some(handler) = self.handler_for(&event) else {
            return ConnectOutcome::NoHandler;
        };
        let reply = match self.deliver(handler, &event).await {
            Some(reply) => reply,
            None => return ConnectOutcome::Failed,
        };
        if reply.status.is_client_error() {
            return ConnectOutcome::Rejected(reply.status.as_u16());
        }
        if !reply.status.is_success() {
            return ConnectOutcome::Failed;
        }
        let mut decision = ConnectDecision {
            connection_state: connection_state_of(&reply.headers),
            ..Default::default()
        };
        if reply.body.iter().all(u8::is_ascii_whitespace) {
            return ConnectOutcome::Accepted(decision);
        }
        let Ok(Value::Object(answer)) = serde_json::from_slice::<Value>(&reply.body) else {
            log_event(
                &event,
                "the connect handler answered with a body that is not a JSON object",
            );
            return ConnectOutcome::Failed;
        };
        let strings = |v: &Value| -> Option<Vec<String>> {
            v.as_array()
                .map(|items| items.iter().filter_map(|i| i.as_str().map(str::to_owned)).collect())
        };
        decision.user_id = answer
            .get("userId")
            .and_then(Value::as_str)
            .filter(|u| !u.is_empty())
            .map(str::to_owned);
        decision.groups = answer.get("groups").and_then(strings);
        decision.roles = answer.get("roles").and_then(strings);
        decision.subprotocol = answer
            .get("subprotocol")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        ConnectOutcome::Accepted(decision)
    }

    /// Spawns the `connected` event; the task is kept on the connection.
    pub(crate) fn connected(self: &Arc<Self>, connection: &Arc<Connection>) {
        let upstream = self.clone();
        let conn = connection.clone();
        let task = tokio::spawn(async move {
            let event = system_event(&conn, "connected", Bytes::from_static(b"{}"));
            if let Some(handler) = upstream.handler_for(&event) {
                upstream.deliver(handler, &event).await;
            }
        });
        connection.set_connected_event(task);
    }

    /// Spawns the `disconnected` event (after `connected` has been delivered).
    pub(crate) fn disconnected(self: &Arc<Self>, connection: Arc<Connection>, reason: String) {
        let upstream = self.clone();
        tokio::spawn(async move {
            if let Some(connected) = connection.take_connected_event() {
                let _ = connected.await;
            }
            let body = Bytes::from(json!({ "reason": reason }).to_string());
            let event = system_event(&connection, "disconnected", body);
            if let Some(handler) = upstream.handler_for(&event) {
                upstream.deliver(handler, &event).await;
            }
        });
    }

    /// A blocking user event (`event` message, or `message` for raw frames).
    pub(crate) async fn user_event(&self, connection: &Connection, name: &str, payload: &Payload) -> UserEventOutcome {
        let event = Event::about(
            connection,
            EventKind::User,
            name,
            payload.kind.media_type(),
            payload.data.clone(),
        );
        let Some(handler) = self.handler_for(&event) else {
            return UserEventOutcome::NoHandler;
        };
        let Some(reply) = self.deliver(handler, &event).await else {
            return UserEventOutcome::Failed;
        };
        if !reply.status.is_success() {
            return UserEventOutcome::Failed;
        }
        if let Some(state) = connection_state_of(&reply.headers) {
            connection.set_connection_state(state);
        }
        let reply_payload = (!reply.body.is_empty() && reply.status != StatusCode::NO_CONTENT).then(|| {
            let kind = match reply
                .headers
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
            {
                Some(ct) => match DataType::from_content_type(ct) {
                    Some(kind) => kind,
                    None if ct.trim().to_ascii_lowercase().starts_with("text/") => DataType::Text,
                    None => DataType::Binary,
                },
                None => DataType::Binary,
            };
            Payload::new(kind, reply.body.clone())
        });
        UserEventOutcome::Replied(reply_payload)
    }
}
