//! Unit tests of the shared state: membership, sends, permissions, tokens.

use super::*;
use crate::connection::Identity;
use crate::protocol::DataType;
use serde_json::{Map, json};

fn service() -> Arc<Service> {
    Service::new(EmulatorConfig::default())
}

/// A raw (no subprotocol) client of `hub`, registered in `groups` (the REST tests use it too).
pub(crate) fn connect(
    service: &Service,
    hub: &str,
    user: Option<&str>,
    groups: &[&str],
) -> (Arc<Connection>, crate::connection::SocketQueue) {
    let identity = Identity {
        connection_id: crate::connection::new_connection_id(),
        hub: names::normalize_hub(hub),
        user_id: user.map(str::to_owned),
        subprotocol: None,
        roles: vec![],
    };
    let (connection, queue) = Connection::new(identity, None);
    let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    service.register(&connection, &groups);
    (connection, queue)
}

fn received(queue: &mut crate::connection::SocketQueue) -> Vec<String> {
    let mut out = Vec::new();
    while let Ok(frame) = queue.frames.try_recv() {
        if let crate::protocol::Frame::Text(t) = frame {
            out.push(t);
        }
    }
    out
}

struct UserIs(&'static str);
impl ConnectionFilter for UserIs {
    fn matches(&self, _: &str, user_id: Option<&str>, _: &[&str]) -> bool {
        user_id == Some(self.0)
    }
}

#[tokio::test]
async fn sends_reach_the_right_connections() {
    let service = service();
    let (a, mut qa) = connect(&service, "Chat", Some("alice"), &["g"]);
    let (_b, mut qb) = connect(&service, "chat", Some("bob"), &[]);
    let text = Payload::new(DataType::Text, "hi");

    service.send("CHAT", Target::Group("g"), &text, &[], None);
    assert_eq!(received(&mut qa), vec!["hi"]);
    assert!(received(&mut qb).is_empty());

    service.send("chat", Target::Hub, &text, std::slice::from_ref(&a.id), None);
    assert!(received(&mut qa).is_empty());
    assert_eq!(received(&mut qb), vec!["hi"]);

    service.send("chat", Target::Hub, &text, &[], Some(&UserIs("bob")));
    assert!(received(&mut qa).is_empty());
    assert_eq!(received(&mut qb).len(), 1);

    service.send("chat", Target::User("alice"), &text, &[], None);
    assert_eq!(received(&mut qa).len(), 1);
    assert!(service.send("chat", Target::Connection(&a.id), &text, &[], None));
    assert!(!service.send("chat", Target::Connection("nope"), &text, &[], None));
    assert!(!service.send("other", Target::Connection(&a.id), &text, &[], None));
}

#[tokio::test]
async fn group_and_user_membership() {
    let service = service();
    let (a, _qa) = connect(&service, "hub", Some("alice"), &[]);
    assert!(!service.exists("hub", Target::Group("g")));
    assert!(service.add_connection_to_group("hub", "g", &a.id));
    assert!(!service.add_connection_to_group("hub", "g", "missing"));
    assert!(service.exists("HUB", Target::Group("g")));
    assert_eq!(
        service.group_connections("hub", "g"),
        vec![GroupMember {
            connection_id: a.id.clone(),
            user_id: Some("alice".into())
        }]
    );
    assert!(service.remove_connection_from_group("hub", "g", &a.id));
    assert!(!service.exists("hub", Target::Group("g")));

    service.add_user_to_group("hub", "team", "alice");
    assert!(service.exists("hub", Target::Group("team")));
    // A later connection of the same user joins the user's groups.
    let (a2, _qa2) = connect(&service, "hub", Some("alice"), &[]);
    assert_eq!(service.group_connections("hub", "team").len(), 2);
    service.remove_user_from_group("hub", "team", "alice");
    assert!(!service.exists("hub", Target::Group("team")));

    service.add_to_groups("hub", &["x".into(), "y".into()], None);
    assert_eq!(service.group_connections("hub", "y").len(), 2);
    service.remove_from_groups("hub", &["x".into()], Some(&UserIs("alice")));
    assert!(!service.exists("hub", Target::Group("x")));
    assert!(service.remove_connection_from_all_groups("hub", &a2.id));
    assert_eq!(service.group_connections("hub", "y").len(), 1);
    service.remove_user_from_all_groups("hub", "alice");
    assert!(!service.exists("hub", Target::Group("y")));
    assert!(service.exists("hub", Target::User("alice")));
    assert!(!service.exists("hub", Target::User("bob")));
}

#[tokio::test]
async fn closing_forgets_connections() {
    let service = service();
    let (a, mut qa) = connect(&service, "hub", Some("alice"), &["g"]);
    let (b, _qb) = connect(&service, "hub", Some("bob"), &["g"]);
    service.close("hub", Target::Group("g"), std::slice::from_ref(&b.id), Some("bye"));
    assert!(!service.exists("hub", Target::Connection(&a.id)));
    assert!(service.exists("hub", Target::Connection(&b.id)));
    assert_eq!(qa.close.try_recv().unwrap().reason, "bye");
    assert!(service.close("hub", Target::Connection(&b.id), &[], None));
    assert!(!service.close("hub", Target::Connection(&b.id), &[], None));
    assert!(!service.exists("hub", Target::Group("g")));
    assert!(!service.exists("hub", Target::User("bob")));
}

#[tokio::test]
async fn permissions_through_the_service() {
    let service = service();
    let (a, _qa) = connect(&service, "hub", None, &[]);
    assert!(!service.check_permission("hub", &a.id, Permission::SendToGroup, Some("g")));
    assert!(service.grant_permission("hub", &a.id, Permission::SendToGroup, Some("g")));
    assert!(service.check_permission("hub", &a.id, Permission::SendToGroup, Some("g")));
    assert!(!service.grant_permission("hub", "missing", Permission::SendToGroup, None));
    assert!(service.revoke_permission("hub", &a.id, Permission::SendToGroup, Some("g")));
    assert!(!service.check_permission("hub", &a.id, Permission::SendToGroup, Some("g")));
}

#[test]
fn generated_tokens_verify_as_client_tokens() {
    let service = service();
    let request = webpubsub_protocol::ClientAccessRequest {
        user_id: Some("u".into()),
        roles: vec!["r".into()],
        ..Default::default()
    };
    let token = service.generate_client_token("Chat", "http://127.0.0.1:9/", &request);
    let claims = token::verify(&token, service.keys(), token::unix_now()).unwrap();
    assert_eq!(claims["aud"], "http://127.0.0.1:9/client/hubs/chat");
    assert_eq!(claims["sub"], "u");
    assert_eq!(claims["role"], json!(["r"]));
    assert!(claims.get("webpubsub.group").is_none());
    let exp = claims["exp"].as_u64().unwrap();
    assert!(exp >= token::unix_now() + 59 * 60);
}

#[test]
fn rest_tokens() {
    let service = service();
    let url = "http://127.0.0.1:8080/api/hubs/chat/:send?api-version=2024-12-01";
    let sign = |aud: &str, exp_offset: i64| {
        let mut claims = Map::new();
        claims.insert("aud".into(), json!(aud));
        claims.insert("exp".into(), json!(token::unix_now() as i64 + exp_offset));
        format!("Bearer {}", token::sign(&claims, service.keys.primary()))
    };
    assert_eq!(service.verify_rest_token(Some(&sign(url, 60)), url), Ok(()));
    let without_query = "http://127.0.0.1:8080/api/hubs/chat/:send";
    assert_eq!(service.verify_rest_token(Some(&sign(without_query, 60)), url), Ok(()));
    let encoded = "HTTP://localhost:8080/api/hubs/Chat/%3Asend?api-version=2024-12-01";
    assert_eq!(service.verify_rest_token(Some(&sign(encoded, 60)), url), Ok(()));
    assert_eq!(
        service.verify_rest_token(Some(&sign("http://127.0.0.1:8080/api/hubs/other/:send", 60)), url),
        Err(TokenError::AudienceMismatch)
    );
    assert_eq!(
        service.verify_rest_token(Some(&sign(url, -3600)), url),
        Err(TokenError::Expired)
    );
    assert_eq!(service.verify_rest_token(None, url), Err(TokenError::Missing));
    assert_eq!(
        service.verify_rest_token(Some("Basic abc"), url),
        Err(TokenError::Missing)
    );
}
