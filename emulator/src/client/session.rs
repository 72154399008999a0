//! After the upgrade: the reader task (frames in order, oversize refusal, expiry), the writer
//! task draining the connection's bounded queue in batches, and the handling of raw and JSON
//! frames (join/leave, group sends, user events, acks, permission checks).

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::*;
use crate::connection::{Connection, SocketQueue};
use crate::protocol::{self, AckError, ClientMessage, DataMessage, DataType, Frame, Payload, Protocol};
use crate::service::Service;
use crate::upstream::UserEventOutcome;
use webpubsub_protocol::names;
use webpubsub_protocol::roles::Permission;

pub(super) fn close_message(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: truncate_reason(reason).into(),
    }))
}

/// Reads until the peer's close or `CLOSE_GRACE`, so the close handshake completes.
pub(super) async fn drain_until_closed(socket: &mut WebSocket) {
    let _ = tokio::time::timeout(CLOSE_GRACE, async { while let Some(Ok(_)) = socket.next().await {} }).await;
}

/// Runs one socket of `connection` until it ends, then tells the service.
pub(super) async fn run_socket(
    service: Arc<Service>,
    connection: Arc<Connection>,
    generation: u64,
    queue: SocketQueue,
    socket: WebSocket,
) {
    let (sink, mut stream) = socket.split();
    let (closing_tx, mut closing_rx) = oneshot::channel::<Duration>();
    let writer = tokio::spawn(write_loop(sink, queue, closing_tx));

    let mut clean = false;
    let mut reason = String::from("The connection was closed abnormally.");
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let next = async {
            match deadline {
                Some(at) => tokio::time::timeout_at(at, stream.next()).await.ok().flatten(),
                None => stream.next().await,
            }
        };
        let item = tokio::select! {
            item = next => item,
            grace = &mut closing_rx, if deadline.is_none() => {
                // Our side closed (or abandoned) the socket: give the peer a moment to answer.
                deadline = Some(tokio::time::Instant::now() + grace.unwrap_or(Duration::ZERO));
                continue;
            }
        };
        let Some(item) = item else { break };
        let message = match item {
            Ok(message) => message,
            Err(error) => {
                if let Some((code, why)) = failure_close(&error) {
                    clean = true;
                    reason = refuse(&service, &connection, code, why);
                    // Unread bytes may remain: dropping now would reset the TCP connection
                    // before the client sees our close frame.
                    tokio::time::sleep(OVERSIZE_LINGER).await;
                }
                break;
            }
        };
        let data = match message {
            Message::Text(text) => Payload::new(DataType::Text, bytes::Bytes::from(text)),
            Message::Binary(bytes) => Payload::new(DataType::Binary, bytes),
            Message::Close(frame) => {
                clean = frame.as_ref().is_none_or(|f| f.code == CloseCode::Normal);
                reason = match frame {
                    Some(f) if !f.reason.is_empty() => f.reason.to_string(),
                    _ => "The client closed the connection.".to_owned(),
                };
                // Keep polling so the close reply is flushed; the stream ends right after.
                continue;
            }
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
        };
        if data.data.len() > MAX_CLIENT_MESSAGE_BYTES {
            clean = true;
            reason = refuse_oversized(&service, &connection);
            continue;
        }
        if deadline.is_some() || connection.is_closed() {
            continue;
        }
        handle_frame(&service, &connection, data).await;
    }
    writer.abort();
    if connection.socket_ended(generation, clean) {
        service.forget(&connection, &reason);
    } else if connection.is_waiting_for_resume(generation) {
        schedule_expiry(service, connection, generation);
    }
}

/// Reason sent with 1009 when a client message is over 1 MB.
const TOO_LARGE: &str = "The client message is too large.";

/// Closes with 1009 (message too big); returns the reason.
pub(super) fn refuse_oversized(service: &Service, connection: &Arc<Connection>) -> String {
    refuse(service, connection, 1009, TOO_LARGE)
}

/// Closes with `code` and `reason` (sent in the close frame); returns the reason.
pub(super) fn refuse(service: &Service, connection: &Arc<Connection>, code: u16, reason: &str) -> String {
    tracing::info!(hub = %connection.hub, connection_id = %connection.id, event_type = "protocol_violation", code, reason, "closing a client that broke the WebSocket rules");
    if connection.close(code, reason, false) {
        service.forget(connection, reason);
    }
    reason.to_owned()
}

/// The close code and reason for a read error the client caused (RFC 6455 §7.4.1): 1009 for
/// a message over the limit, 1007 for text that is not UTF-8, 1002 for other protocol
/// violations. `None` when the peer is simply gone (nothing can be sent).
pub(super) fn failure_close(error: &tokio_tungstenite::tungstenite::Error) -> Option<(u16, &'static str)> {
    use tokio_tungstenite::tungstenite::error::{Error, ProtocolError};
    match error {
        _ if is_too_large(error) => Some((1009, TOO_LARGE)),
        Error::Utf8(_) => Some((1007, "Text frames must be valid UTF-8.")),
        Error::Protocol(
            ProtocolError::ResetWithoutClosingHandshake
            | ProtocolError::SendAfterClosing
            | ProtocolError::ReceivedAfterClosing,
        ) => None,
        Error::Protocol(ProtocolError::UnmaskedFrameFromClient) => {
            Some((1002, "Protocol error: client frames must be masked."))
        }
        Error::Protocol(ProtocolError::NonZeroReservedBits) => Some((
            1002,
            "Protocol error: reserved bits must be zero (no extension was negotiated).",
        )),
        Error::Protocol(
            ProtocolError::UnknownDataFrameType(_)
            | ProtocolError::UnknownControlFrameType(_)
            | ProtocolError::InvalidOpcode(_),
        ) => Some((1002, "Protocol error: unknown frame opcode.")),
        Error::Protocol(ProtocolError::InvalidCloseSequence) => Some((1002, "Protocol error: invalid close frame.")),
        Error::Protocol(_) => Some((1002, "Protocol error: invalid WebSocket framing.")),
        _ => None,
    }
}

/// Drops a reliable connection nobody resumed within the window.
pub(super) fn schedule_expiry(service: Arc<Service>, connection: Arc<Connection>, generation: u64) {
    let window = service.config.reconnect_window;
    tracing::info!(hub = %connection.hub, connection_id = %connection.id, event_type = "awaiting_reconnect", "reliable client dropped; waiting for it to resume");
    tokio::spawn(async move {
        tokio::time::sleep(window).await;
        if connection.is_waiting_for_resume(generation) && connection.close(1008, "reconnect window expired", false) {
            service.forget(&connection, "The client did not reconnect in time.");
        }
    });
}

pub(super) fn is_too_large(error: &tokio_tungstenite::tungstenite::Error) -> bool {
    use tokio_tungstenite::tungstenite::error::{CapacityError, Error};
    matches!(error, Error::Capacity(CapacityError::MessageTooLong { .. }))
}

/// Drains the queue into the socket; on a close request writes the close frame (after the
/// queued frames when asked) and tells the reader how long to wait for the peer.
pub(super) async fn write_loop(
    mut sink: futures_util::stream::SplitSink<WebSocket, Message>,
    mut queue: SocketQueue,
    closing: oneshot::Sender<Duration>,
) {
    loop {
        tokio::select! {
            biased;
            request = &mut queue.close => {
                let grace = match request {
                    Ok(request) => {
                        if request.flush_queued {
                            while let Ok(frame) = queue.frames.try_recv() {
                                queue.written(&frame);
                                if sink.feed(to_message(frame)).await.is_err() {
                                    break;
                                }
                            }
                        }
                        let _ = sink.send(close_message(request.code, &request.reason)).await;
                        CLOSE_GRACE
                    }
                    // The connection moved to another socket or was dropped: abandon this one.
                    Err(_) => Duration::ZERO,
                };
                let _ = closing.send(grace);
                return;
            }
            frame = queue.frames.recv() => {
                let Some(frame) = frame else {
                    let _ = closing.send(Duration::ZERO);
                    return;
                };
                queue.written(&frame);
                if sink.feed(to_message(frame)).await.is_err() {
                    let _ = closing.send(Duration::ZERO);
                    return;
                }
                for _ in 1..WRITE_BATCH {
                    let Ok(frame) = queue.frames.try_recv() else { break };
                    queue.written(&frame);
                    if sink.feed(to_message(frame)).await.is_err() {
                        let _ = closing.send(Duration::ZERO);
                        return;
                    }
                }
                if sink.flush().await.is_err() {
                    let _ = closing.send(Duration::ZERO);
                    return;
                }
            }
        }
    }
}

pub(super) fn to_message(frame: Frame) -> Message {
    match frame {
        Frame::Text(text) => Message::text(text),
        Frame::Binary(bytes) => Message::Binary(bytes),
    }
}

/// Close reasons must fit a control frame (123 bytes), cut on a char boundary.
pub(super) fn truncate_reason(reason: &str) -> String {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_owned()
}

/// One text or binary message from the client (as a text or binary payload).
pub(super) async fn handle_frame(service: &Arc<Service>, connection: &Arc<Connection>, message: Payload) {
    match connection.protocol {
        Protocol::Raw => handle_raw(service, connection, message).await,
        Protocol::Json | Protocol::ReliableJson => match (message.kind, std::str::from_utf8(&message.data)) {
            (DataType::Text, Ok(text)) => handle_json(service, connection, text).await,
            _ => {
                tracing::warn!(hub = %connection.hub, connection_id = %connection.id, event_type = "invalid_message", "binary frame on a JSON subprotocol ignored")
            }
        },
    }
}

pub(super) async fn handle_raw(service: &Arc<Service>, connection: &Arc<Connection>, payload: Payload) {
    match service.upstream.user_event(connection, "message", &payload).await {
        UserEventOutcome::NoHandler => {}
        UserEventOutcome::Replied(answer) => answer_sender(service, connection, answer.as_ref()),
        UserEventOutcome::Failed => {
            let reason = "The upstream event handler failed.";
            if connection.close(1011, reason, false) {
                service.forget(connection, reason);
            }
        }
    }
}

/// Sends an event handler's answer (if any) back to the client whose event it answered.
fn answer_sender(service: &Service, connection: &Arc<Connection>, answer: Option<&Payload>) {
    if let Some(answer) = answer {
        service.deliver(std::slice::from_ref(connection), &DataMessage::from_server(answer));
    }
}

pub(super) fn reply(service: &Service, connection: &Arc<Connection>, frame: String) {
    if let Err(overflow) = connection.send_control(frame) {
        service.drop_slow(connection, overflow);
    }
}

pub(super) fn ack(
    service: &Service,
    connection: &Arc<Connection>,
    ack_id: Option<u64>,
    result: Result<(), (AckError, &str)>,
) {
    let Some(ack_id) = ack_id else { return };
    let frame = match result {
        Ok(()) => protocol::ack_ok(ack_id),
        Err((error, message)) => protocol::ack_error(ack_id, error, message),
    };
    reply(service, connection, frame);
}

/// False (after a Duplicate ack) when `ack_id` was used before on this connection.
pub(super) fn first_use(service: &Service, connection: &Arc<Connection>, ack_id: Option<u64>) -> bool {
    match ack_id {
        Some(id) if !connection.first_use_of_ack_id(id) => {
            ack(
                service,
                connection,
                ack_id,
                Err((
                    AckError::Duplicate,
                    "The ackId has already been used on this connection.",
                )),
            );
            false
        }
        _ => true,
    }
}

pub(super) fn check_group(
    connection: &Connection,
    permission: Permission,
    group: &str,
) -> Result<(), (AckError, &'static str)> {
    if names::group(group).is_err() {
        return Err((AckError::BadRequest, "The group name is invalid."));
    }
    if !connection.is_allowed(permission, group) {
        let message = match permission {
            Permission::JoinLeaveGroup => "The connection has no permission to join or leave this group.",
            Permission::SendToGroup => "The connection has no permission to send to this group.",
        };
        return Err((AckError::Forbidden, message));
    }
    Ok(())
}

pub(super) async fn handle_json(service: &Arc<Service>, connection: &Arc<Connection>, text: &str) {
    let message = match protocol::parse_client_message(text) {
        Ok(message) => message,
        Err(error) => {
            tracing::info!(hub = %connection.hub, connection_id = %connection.id, event_type = "invalid_message", reason = %error.message, "client message refused");
            if let Some(invocation_id) = &error.invocation_id {
                let frame = protocol::invoke_error(invocation_id, AckError::BadRequest, &error.message);
                reply(service, connection, frame);
                return;
            }
            ack(
                service,
                connection,
                error.ack_id,
                Err((AckError::BadRequest, &error.message)),
            );
            return;
        }
    };
    if !first_use(service, connection, message.ack_id()) {
        return;
    }
    match message {
        ClientMessage::JoinGroup { group, ack_id } => {
            let result = check_group(connection, Permission::JoinLeaveGroup, &group);
            if result.is_ok() {
                service.join_group(connection, &group);
            }
            ack(service, connection, ack_id, result);
        }
        ClientMessage::LeaveGroup { group, ack_id } => {
            let result = check_group(connection, Permission::JoinLeaveGroup, &group);
            if result.is_ok() {
                service.leave_group(connection, &group);
            }
            ack(service, connection, ack_id, result);
        }
        ClientMessage::SendToGroup {
            group,
            ack_id,
            no_echo,
            payload,
        } => {
            let result = check_group(connection, Permission::SendToGroup, &group);
            if result.is_ok() {
                service.publish_to_group(connection, &group, no_echo, &payload);
            }
            ack(service, connection, ack_id, result);
        }
        ClientMessage::Event { event, ack_id, payload } => {
            if !names::is_valid_event_name(&event) {
                ack(
                    service,
                    connection,
                    ack_id,
                    Err((AckError::BadRequest, "The event name is invalid.")),
                );
                return;
            }
            match service.upstream.user_event(connection, &event, &payload).await {
                UserEventOutcome::NoHandler => ack(service, connection, ack_id, Ok(())),
                UserEventOutcome::Replied(answer) => {
                    answer_sender(service, connection, answer.as_ref());
                    ack(service, connection, ack_id, Ok(()));
                }
                UserEventOutcome::Failed => {
                    ack(
                        service,
                        connection,
                        ack_id,
                        Err((AckError::InternalServerError, "The upstream event handler failed.")),
                    );
                }
            }
        }
        ClientMessage::Invoke {
            invocation_id,
            target,
            event,
            payload,
        } => {
            let frame = invoke(service, connection, &target, &event, &payload).await;
            let frame = match frame {
                Ok(answer) => protocol::invoke_ok(&invocation_id, answer.as_ref()),
                Err((error, message)) => protocol::invoke_error(&invocation_id, error, &message),
            };
            reply(service, connection, frame);
        }
        ClientMessage::CancelInvocation => {}
        ClientMessage::Ping => reply(service, connection, protocol::pong()),
        ClientMessage::SequenceAck { sequence_id } => {
            if connection.protocol == Protocol::ReliableJson {
                connection.ack_sequence(sequence_id);
            }
        }
    }
}

/// Runs an `invoke` as the user event `event`; the handler's reply (if any) is the answer.
async fn invoke(
    service: &Arc<Service>,
    connection: &Arc<Connection>,
    target: &str,
    event: &str,
    payload: &Payload,
) -> Result<Option<Payload>, (AckError, String)> {
    if target != "event" {
        return Err((
            AckError::BadRequest,
            format!("The invoke target '{target}' is not supported (use \"event\")."),
        ));
    }
    if !names::is_valid_event_name(event) {
        return Err((AckError::BadRequest, "The event name is invalid.".to_owned()));
    }
    match service.upstream.user_event(connection, event, payload).await {
        UserEventOutcome::NoHandler => Err((
            AckError::NotFound,
            format!("No event handler takes the event '{event}'."),
        )),
        UserEventOutcome::Replied(answer) => Ok(answer),
        UserEventOutcome::Failed => Err((
            AckError::InternalServerError,
            "The upstream event handler failed.".to_owned(),
        )),
    }
}
