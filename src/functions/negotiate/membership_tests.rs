//! Unit tests of membership-checked groups (#15 item 7, #16 item 2) on a SQLite store in a temp file: what a
//! member's token holds without asking, the bound, 403s naming the group or role, and no change without a store.

use serde_json::{Value, json};
use warp::http::StatusCode;

use super::membership::MAX_GRANTED_CONVERSATIONS;
use super::tests::{assert_error, claims, env, post};
use super::*;
use crate::functions::durable::{self, Durable};
use crate::store::Store;

/// A negotiate route with a store in a fresh SQLite file (removed when the guard drops), plus the store.
struct WithStore {
    route: BoxedFilter<(Response,)>,
    store: Store,
    path: std::path::PathBuf,
}

impl Drop for WithStore {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.path.display()));
        }
    }
}

async fn with_store(env: Env) -> WithStore {
    let path = std::env::temp_dir().join(format!("wps-negotiate-{}.db", crate::store::new_id()));
    let env = env.with(durable::STORE_SETTING, format!("sqlite:{}", path.display()));
    let settings = Settings::from_env(&env).unwrap();
    let service = ServiceSettings::from_env(&env).unwrap();
    let auth = SharedAuth::new(None).unwrap();
    let durable = Arc::new(Durable::new(&durable::Settings::from_env(&env).unwrap(), &service).unwrap());
    let store = durable.open().await.unwrap().unwrap().clone();
    let state = State::new(&settings, &service, &auth).unwrap().with_durable(durable);
    WithStore {
        route: routes(Arc::new(state)),
        store,
        path,
    }
}

fn users(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_member_gets_every_conversation_and_its_own_notifications_without_asking() {
    let t = with_store(env("anonymous")).await;
    for id in ["c1", "c2"] {
        t.store
            .create_conversation(Some(id), None, &users(&["ada", "bob"]))
            .await
            .unwrap();
    }
    t.store
        .create_conversation(Some("bobs"), None, &users(&["bob"]))
        .await
        .unwrap();
    let reply = post(&t.route, json!({"userId": "ada"})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let claims = claims(&reply, "/client/hubs/chat");
    let mut groups = strings(&claims["webpubsub.group"]);
    groups.sort();
    assert_eq!(groups, ["conversation:c1", "conversation:c2", "notifications:user:ada"]);
    let mut roles = strings(&claims["role"]);
    roles.sort();
    // Least privilege: join/leave its own conversations, no send (messages go through the durable send).
    assert_eq!(
        roles,
        [
            "webpubsub.joinLeaveGroup.conversation:c1",
            "webpubsub.joinLeaveGroup.conversation:c2"
        ]
    );
}

#[tokio::test]
async fn a_non_member_asking_for_a_conversation_is_refused_naming_the_group() {
    // Even a template allowing every conversation group does not open them: membership decides.
    let t = with_store(env("anonymous").with(ALLOWED_GROUPS_SETTING, "conversation:*")).await;
    t.store
        .create_conversation(Some("c1"), None, &users(&["bob"]))
        .await
        .unwrap();
    for group in ["conversation:c1", "conversation:missing", "conversation:bad id!"] {
        let reply = post(&t.route, json!({"userId": "ada", "groups": [group]})).await;
        assert_error(&reply, StatusCode::FORBIDDEN, "GroupNotAllowed");
        assert_eq!(reply.body["group"], group);
        assert!(reply.body["message"].as_str().unwrap().contains(group));
    }
    let reply = post(&t.route, json!({"userId": "bob", "groups": ["conversation:c1"]})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

#[tokio::test]
async fn another_users_notification_group_is_refused_and_ones_own_granted() {
    let t = with_store(env("anonymous")).await;
    let reply = post(&t.route, json!({"userId": "ada", "groups": ["notifications:user:bob"]})).await;
    assert_error(&reply, StatusCode::FORBIDDEN, "GroupNotAllowed");
    assert_eq!(reply.body["group"], "notifications:user:bob");
    let reply = post(&t.route, json!({"userId": "ada", "groups": ["notifications:user:ada"]})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let claims = claims(&reply, "/client/hubs/chat");
    assert_eq!(claims["webpubsub.group"], json!(["notifications:user:ada"]));
}

#[tokio::test]
async fn per_group_roles_follow_membership() {
    let t = with_store(env("anonymous")).await;
    t.store
        .create_conversation(Some("c1"), None, &users(&["ada"]))
        .await
        .unwrap();
    t.store
        .create_conversation(Some("c2"), None, &users(&["bob"]))
        .await
        .unwrap();
    let reply = post(
        &t.route,
        json!({"userId": "ada", "roles": ["webpubsub.sendToGroup.conversation:c1"]}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let roles = strings(&claims(&reply, "/client/hubs/chat")["role"]);
    assert!(
        roles.contains(&"webpubsub.sendToGroup.conversation:c1".to_owned()),
        "{roles:?}"
    );
    for role in [
        "webpubsub.sendToGroup.conversation:c2",
        "webpubsub.joinLeaveGroup.conversation:c2",
    ] {
        let reply = post(&t.route, json!({"userId": "ada", "roles": [role]})).await;
        assert_error(&reply, StatusCode::FORBIDDEN, "RoleNotAllowed");
        assert_eq!(reply.body["role"], role);
    }
}

#[tokio::test]
async fn the_unasked_grant_is_bounded_and_asked_groups_come_on_top() {
    let t = with_store(env("anonymous")).await;
    let total = MAX_GRANTED_CONVERSATIONS + 5;
    for n in 0..total {
        let id = format!("c{n:03}");
        t.store
            .create_conversation(Some(&id), None, &users(&["ada"]))
            .await
            .unwrap();
    }
    let reply = post(&t.route, json!({"userId": "ada"})).await;
    let groups = strings(&claims(&reply, "/client/hubs/chat")["webpubsub.group"]);
    let conversations = groups.iter().filter(|g| g.starts_with("conversation:")).count();
    assert_eq!(conversations, MAX_GRANTED_CONVERSATIONS);
    // Which ones were left out does not matter here; asking for one of them always works.
    let left_out = (0..total)
        .map(|n| format!("conversation:c{n:03}"))
        .find(|g| !groups.contains(g))
        .expect("one conversation beyond the bound");
    let reply = post(&t.route, json!({"userId": "ada", "groups": [left_out.clone()]})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let groups = strings(&claims(&reply, "/client/hubs/chat")["webpubsub.group"]);
    assert!(groups.contains(&left_out));
    assert_eq!(
        groups.iter().filter(|g| g.starts_with("conversation:")).count(),
        MAX_GRANTED_CONVERSATIONS + 1
    );
}

#[tokio::test]
async fn without_a_store_the_templates_decide_as_before() {
    // `route_for` builds negotiate without `with_durable`; so does an app without StoreConnectionString.
    let route = super::tests::route_for(&env("anonymous").with(ALLOWED_GROUPS_SETTING, "conversation:*"));
    let reply = post(&route, json!({"userId": "ada", "groups": ["conversation:anything"]})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let claims = claims(&reply, "/client/hubs/chat");
    assert_eq!(claims["webpubsub.group"], json!(["conversation:anything"]));
    let reply = post(&route, json!({"userId": "ada", "groups": ["notifications:user:ada"]})).await;
    assert_error(&reply, StatusCode::FORBIDDEN, "GroupNotAllowed");
}

#[tokio::test]
async fn more_than_the_request_bound_is_refused_before_any_look_up() {
    let t = with_store(env("anonymous")).await;
    let groups: Vec<String> = (0..=MAX_REQUESTED_ITEMS)
        .map(|n| format!("conversation:c{n}"))
        .collect();
    let reply = post(&t.route, json!({"userId": "ada", "groups": groups})).await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "TooManyItems");
}
