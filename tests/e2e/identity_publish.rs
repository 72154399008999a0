//! `POST /api/publish` with every action, end to end in both modes (#18): the handler in front of the
//! emulator with an access key, and keyless (a managed identity from the emulator's identity endpoint, the
//! emulator refusing access keys). One scenario runs in each mode; every action's effect is asserted as
//! real WebSocket clients see it (messages arrive or not, acks succeed or fail, connections close) or as the
//! service answers (the read-only actions). Clients are negotiated through the handler, so in keyless mode
//! their tokens come from `:generateToken`. The scenario must use every `actionName` the contract
//! (openapi.yaml) documents, so a new action cannot go untested here.
//!
//! Absence is shown without timing: after an action that must not reach a client, a marker sent to that
//! client's own connection must be the next frame it reads.

use std::collections::BTreeSet;
use std::sync::Mutex;

use serde_json::{Value, json};

use crate::contract::{checked, spec};
use crate::identity::{self, connect_negotiated};
use crate::support::{JsonClient, RunningHandler, base_env, http, start_emulator, start_handler};

#[derive(Debug, Clone, Copy)]
enum Mode {
    AccessKey,
    Keyless,
}

/// The handler (`PublishTrust=functionkey`) in front of an emulator in one mode.
struct Rig {
    mode: Mode,
    handler: RunningHandler,
    /// Keeps the emulator running.
    _emulator: Box<dyn Send>,
    /// Every `actionName` published so far.
    used: Mutex<BTreeSet<String>>,
}

/// A negotiated JSON-subprotocol client and its connection id.
struct Client {
    io: JsonClient,
    id: String,
}

impl Rig {
    async fn start(mode: Mode) -> Self {
        let (handler, emulator): (RunningHandler, Box<dyn Send>) = match mode {
            Mode::AccessKey => {
                let emulator = start_emulator().await;
                let env = base_env().with("WebPubSubConnectionString", emulator.connection_string.clone());
                (start_handler(env).await, Box::new(emulator))
            }
            Mode::Keyless => {
                let emulator = identity::Emulator::start().await;
                let env = identity::keyless_env(emulator.addr, &emulator.identity_endpoint());
                (start_handler(env).await, Box::new(emulator))
            }
        };
        Self {
            mode,
            handler,
            _emulator: emulator,
            used: Mutex::default(),
        }
    }

    async fn client(&self, user: &str) -> Client {
        let negotiate = self.handler.url(&format!("/api/negotiate?userId={user}"));
        let (io, id, _) = connect_negotiated(&negotiate, user).await;
        Client { io, id }
    }

    /// Publishes `body` (one action or a batch): 200, every action done, the results in order.
    async fn publish(&self, body: Value) -> Vec<Value> {
        let actions = body.as_array().cloned().unwrap_or_else(|| vec![body.clone()]);
        let mut used = actions
            .iter()
            .filter_map(|a| a["actionName"].as_str().map(str::to_owned));
        self.used.lock().unwrap().extend(&mut used);
        let response = http()
            .post(self.handler.url("/api/publish"))
            .json(&body)
            .send()
            .await
            .expect("the handler answers");
        let reply = checked("POST", "/api/publish", response).await;
        let answer = reply.json();
        assert_eq!(reply.status, 200, "{:?}: {body} → {answer}", self.mode);
        let results = answer["results"].as_array().expect("results").clone();
        assert!(
            results.iter().all(|r| r["status"] == "done"),
            "{:?}: {body} → {answer}",
            self.mode
        );
        results
    }

    /// One read-only action's result.
    async fn ask(&self, action: Value) -> Value {
        self.publish(action).await.remove(0)
    }

    /// Sends `marker` to `client`'s own connection: it must be the next frame (nothing else arrived).
    async fn nothing_else(&self, client: &mut Client, marker: &str) {
        self.publish(json!({"actionName": "sendToConnection", "connectionId": client.id, "data": marker}))
            .await;
        client.io.receives(json!(marker)).await;
    }
}

/// Every `actionName` the contract documents for publish.
fn documented_actions() -> BTreeSet<String> {
    fn collect(value: &Value, names: &mut BTreeSet<String>) {
        match value {
            Value::Object(map) => {
                if let Some(action) = map.get("properties").and_then(|p| p.get("actionName")) {
                    let listed = action.get("enum").and_then(Value::as_array).cloned();
                    let one = action.get("const").cloned().into_iter().collect();
                    for name in listed.unwrap_or(one) {
                        names.extend(name.as_str().map(str::to_owned));
                    }
                }
                map.values().for_each(|v| collect(v, names));
            }
            Value::Array(items) => items.iter().for_each(|v| collect(v, names)),
            _ => {}
        }
    }
    let mut names = BTreeSet::new();
    collect(&spec()["components"], &mut names);
    names
}

#[tokio::test]
async fn every_publish_action_takes_effect_with_an_access_key_and_keyless() {
    let documented = documented_actions();
    assert!(documented.len() >= 19, "{documented:?}");
    for mode in [Mode::AccessKey, Mode::Keyless] {
        let rig = Rig::start(mode).await;
        every_action(&rig).await;
        assert_eq!(
            *rig.used.lock().unwrap(),
            documented,
            "{mode:?}: every documented action"
        );
    }
}

async fn every_action(rig: &Rig) {
    let mut ada = rig.client("ada").await;
    let mut bob = rig.client("bob").await;
    let mut carol = rig.client("carol").await;
    let mut dave = rig.client("dave").await;
    let exists = |body: Value| async move { rig.ask(body).await["exists"].as_bool().expect("exists") };

    // Membership and the four sends.
    rig.publish(json!([
        {"actionName": "addUserToGroup", "userId": "ada", "group": "team"},
        {"actionName": "addConnectionToGroup", "connectionId": bob.id, "group": "team"},
        {"actionName": "sendToGroup", "group": "team", "data": {"n": 1}, "dataType": "json"},
        {"actionName": "sendToUser", "userId": "carol", "data": "to carol"},
        {"actionName": "sendToConnection", "connectionId": dave.id, "data": "to dave"},
        {"actionName": "sendToAll", "data": "to all but dave", "excluded": [dave.id]},
    ]))
    .await;
    for member in [&mut ada, &mut bob] {
        member.io.receives(json!({"n": 1})).await;
        member.io.receives(json!("to all but dave")).await;
    }
    carol.io.receives(json!("to carol")).await;
    carol.io.receives(json!("to all but dave")).await;
    dave.io.receives(json!("to dave")).await;
    rig.nothing_else(&mut dave, "dave was excluded").await;

    // Questions the service answers.
    assert!(exists(json!({"actionName": "groupExists", "group": "team"})).await);
    assert!(!exists(json!({"actionName": "groupExists", "group": "nobody-here"})).await);
    assert!(exists(json!({"actionName": "userExists", "userId": "carol"})).await);
    assert!(!exists(json!({"actionName": "userExists", "userId": "zoe"})).await);
    assert!(exists(json!({"actionName": "connectionExists", "connectionId": dave.id})).await);
    assert!(!exists(json!({"actionName": "connectionExists", "connectionId": "no-such-connection"})).await);
    let listed = rig
        .ask(json!({"actionName": "listConnectionsInGroup", "group": "team"}))
        .await;
    let mut members: Vec<&str> = listed["connections"]
        .as_array()
        .expect("connections")
        .iter()
        .map(|c| c["connectionId"].as_str().unwrap())
        .collect();
    members.sort_unstable();
    let mut expected = [ada.id.as_str(), bob.id.as_str()];
    expected.sort_unstable();
    assert_eq!(members, expected, "{listed}");

    // Leaving: by user, by connection, from every group.
    rig.publish(json!([
        {"actionName": "removeUserFromGroup", "userId": "ada", "group": "team"},
        {"actionName": "sendToGroup", "group": "team", "data": "bob only"},
    ]))
    .await;
    bob.io.receives(json!("bob only")).await;
    rig.nothing_else(&mut ada, "ada left the team").await;
    rig.publish(json!([
        {"actionName": "removeConnectionFromGroup", "connectionId": bob.id, "group": "team"},
        {"actionName": "addUserToGroup", "userId": "ada", "group": "a"},
        {"actionName": "addUserToGroup", "userId": "ada", "group": "b"},
        {"actionName": "removeUserFromAllGroups", "userId": "ada"},
        {"actionName": "sendToGroup", "group": "team", "data": "nobody"},
        {"actionName": "sendToGroup", "group": "a", "data": "nobody"},
        {"actionName": "sendToGroup", "group": "b", "data": "nobody"},
    ]))
    .await;
    rig.nothing_else(&mut bob, "bob left the team").await;
    rig.nothing_else(&mut ada, "ada left every group").await;
    assert!(!exists(json!({"actionName": "groupExists", "group": "team"})).await);

    // Permissions: granted, checked, used by the client, revoked.
    let to_news = json!({"type": "sendToGroup", "group": "news", "data": "from ada"});
    let check = json!({"actionName": "checkPermission", "connectionId": ada.id, "permission": "sendToGroup", "targetName": "news"});
    assert!(!ada.io.acked(to_news.clone()).await, "no permission yet");
    assert_eq!(rig.ask(check.clone()).await["granted"], false);
    rig.publish(json!({"actionName": "grantPermission", "connectionId": ada.id, "permission": "sendToGroup", "targetName": "news"}))
        .await;
    assert_eq!(rig.ask(check.clone()).await["granted"], true);
    assert!(ada.io.acked(to_news.clone()).await, "granted");
    rig.publish(json!({"actionName": "revokePermission", "connectionId": ada.id, "permission": "sendToGroup", "targetName": "news"}))
        .await;
    assert_eq!(rig.ask(check).await["granted"], false);
    assert!(!ada.io.acked(to_news).await, "revoked");

    // Closing: one connection, a group but one, then everyone.
    rig.publish(json!({"actionName": "closeClientConnection", "connectionId": dave.id, "reason": "kicked"}))
        .await;
    dave.io.closed_with("kicked").await;
    assert!(!exists(json!({"actionName": "connectionExists", "connectionId": dave.id})).await);
    rig.publish(json!([
        {"actionName": "addConnectionToGroup", "connectionId": bob.id, "group": "closing"},
        {"actionName": "addConnectionToGroup", "connectionId": carol.id, "group": "closing"},
        {"actionName": "closeGroupConnections", "group": "closing", "excluded": [carol.id], "reason": "group closed"},
    ]))
    .await;
    bob.io.closed_with("group closed").await;
    rig.nothing_else(&mut carol, "carol was spared").await;
    rig.publish(json!({"actionName": "closeAllConnections", "reason": "maintenance"}))
        .await;
    ada.io.closed_with("maintenance").await;
    carol.io.closed_with("maintenance").await;
    assert!(!exists(json!({"actionName": "userExists", "userId": "carol"})).await);
}
