//! One logical client connection: identity, roles, the bounded outbound queue of its current
//! socket and, on the reliable protocol, the buffer of messages the client has not acked.
//!
//! Sending never waits: frames go into a bounded queue (count and bytes) drained by the
//! socket's writer task. A client that cannot keep up is reported as [`Overflow`] and the
//! caller drops it, so memory stays bounded with thousands of connections. A reliable
//! connection keeps its state when its socket drops; a later socket can take over
//! ([`Connection::attach`]) and gets every unacked message again, in order.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::protocol::{self, DataMessage, Frame, Protocol};
use webpubsub_protocol::roles::{Permission, RoleSet};

/// Most unacked messages a reliable connection may hold (the service's figure).
pub const MAX_UNACKED_MESSAGES: usize = 1000;
/// Most unacked bytes a reliable connection may hold (the service's figure).
pub const MAX_UNACKED_BYTES: usize = 16 * 1024 * 1024;
/// Frames a socket may have queued; headroom above the reliable buffer for acks and pongs.
pub const QUEUE_FRAMES: usize = MAX_UNACKED_MESSAGES + 64;
/// Bytes a socket may have queued before its client counts as too slow.
pub const QUEUE_BYTES: usize = 16 * 1024 * 1024;
/// `ackId`s remembered per connection for duplicate detection (oldest forgotten first).
const REMEMBERED_ACK_IDS: usize = 10_000;

/// Locks a mutex, ignoring poisoning (state stays usable after a panicking holder).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The client could not take more: drop it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// The socket's outbound queue is full.
    Queue,
    /// The reliable unacked buffer is full.
    ReliableBuffer,
}

impl Overflow {
    /// The close reason sent to the client.
    pub fn reason(self) -> &'static str {
        match self {
            Overflow::Queue => "The outbound message queue is full.",
            Overflow::ReliableBuffer => "The reliable message buffer is full.",
        }
    }
}

/// How the writer should close its socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseRequest {
    /// WebSocket close code.
    pub code: u16,
    /// Close reason (truncated by the writer to fit a control frame).
    pub reason: String,
    /// Write the frames already queued first (a `disconnected` system message, say).
    pub flush_queued: bool,
}

/// The sending half of one socket, held by its connection.
struct SocketHandle {
    frames: mpsc::Sender<Frame>,
    close: Option<oneshot::Sender<CloseRequest>>,
    queued_bytes: Arc<AtomicUsize>,
}

/// What a socket's writer task drains. Dropping the connection's handle without a close
/// request resolves `close` with an error: the writer then abandons the socket.
pub struct SocketQueue {
    /// Frames to write.
    pub frames: mpsc::Receiver<Frame>,
    /// A close request, or an error when the socket was replaced.
    pub close: oneshot::Receiver<CloseRequest>,
    queued_bytes: Arc<AtomicUsize>,
}

impl SocketQueue {
    /// Call after writing `frame` so its bytes leave the accounting.
    pub fn written(&self, frame: &Frame) {
        self.queued_bytes.fetch_sub(frame.len(), Ordering::Relaxed);
    }
}

fn socket_pair() -> (SocketHandle, SocketQueue) {
    let (frames_tx, frames_rx) = mpsc::channel(QUEUE_FRAMES);
    let (close_tx, close_rx) = oneshot::channel();
    let queued_bytes = Arc::new(AtomicUsize::new(0));
    (
        SocketHandle {
            frames: frames_tx,
            close: Some(close_tx),
            queued_bytes: queued_bytes.clone(),
        },
        SocketQueue {
            frames: frames_rx,
            close: close_rx,
            queued_bytes,
        },
    )
}

impl SocketHandle {
    fn push(&self, frame: Frame) -> Result<(), Overflow> {
        let len = frame.len();
        if self.queued_bytes.load(Ordering::Relaxed) + len > QUEUE_BYTES {
            return Err(Overflow::Queue);
        }
        match self.frames.try_send(frame) {
            Ok(()) => {
                self.queued_bytes.fetch_add(len, Ordering::Relaxed);
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(_)) => Err(Overflow::Queue),
            // The writer is gone: the reader will notice and end the socket.
            Err(mpsc::error::TrySendError::Closed(_)) => Ok(()),
        }
    }

    fn close(mut self, request: CloseRequest) {
        if let Some(close) = self.close.take() {
            let _ = close.send(request);
        }
    }
}

/// Outbound state, behind one lock so sequence ids, buffer and queue stay in step.
struct Outbound {
    socket: Option<SocketHandle>,
    /// Bumped by every attach; socket events from older generations are ignored.
    generation: u64,
    /// Set once the connection is gone for good.
    closed: bool,
    last_sequence_id: u64,
    unacked: VecDeque<(u64, String)>,
    unacked_bytes: usize,
}

#[derive(Default)]
struct AckIds {
    seen: HashSet<u64>,
    order: VecDeque<u64>,
}

/// Who a connection is, fixed when it is accepted.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Opaque 32-hex id.
    pub connection_id: String,
    /// Lowercased hub.
    pub hub: String,
    /// From the token's `sub` or the connect handler.
    pub user_id: Option<String>,
    /// The negotiated subprotocol, if any.
    pub subprotocol: Option<String>,
    /// Roles from the token or the connect handler.
    pub roles: Vec<String>,
}

/// One logical client connection.
pub struct Connection {
    /// Opaque 32-hex id.
    pub id: String,
    /// Lowercased hub.
    pub hub: String,
    /// The user, when known.
    pub user_id: Option<String>,
    /// The negotiated subprotocol, if any.
    pub subprotocol: Option<String>,
    /// The frame format.
    pub protocol: Protocol,
    /// Secret a reliable client presents to resume this connection.
    reconnection_token: Option<String>,
    roles: RoleSet,
    grants: Mutex<HashSet<(Permission, Option<String>)>>,
    connection_state: Mutex<Option<String>>,
    ack_ids: Mutex<AckIds>,
    outbound: Mutex<Outbound>,
    connected_event: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.id)
            .field("hub", &self.hub)
            .field("user_id", &self.user_id)
            .field("subprotocol", &self.subprotocol)
            .finish_non_exhaustive()
    }
}

/// A fresh random id of 32 lowercase hex digits.
pub fn new_connection_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

impl Connection {
    /// A connection with its first socket attached (generation 1).
    pub fn new(identity: Identity, connection_state: Option<String>) -> (Arc<Connection>, SocketQueue) {
        let protocol = Protocol::of(identity.subprotocol.as_deref());
        let reconnection_token = (protocol == Protocol::ReliableJson).then(|| {
            use base64::Engine as _;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
        });
        let (socket, queue) = socket_pair();
        let connection = Connection {
            id: identity.connection_id,
            hub: identity.hub,
            user_id: identity.user_id,
            subprotocol: identity.subprotocol,
            protocol,
            reconnection_token,
            roles: RoleSet::new(identity.roles),
            grants: Mutex::new(HashSet::new()),
            connection_state: Mutex::new(connection_state),
            ack_ids: Mutex::new(AckIds::default()),
            outbound: Mutex::new(Outbound {
                socket: Some(socket),
                generation: 1,
                closed: false,
                last_sequence_id: 0,
                unacked: VecDeque::new(),
                unacked_bytes: 0,
            }),
            connected_event: Mutex::new(None),
        };
        (Arc::new(connection), queue)
    }

    /// The roles the connection was given.
    pub fn roles(&self) -> &[String] {
        self.roles.roles()
    }

    /// True when a role or a REST grant allows `permission` on `group`.
    pub fn is_allowed(&self, permission: Permission, group: &str) -> bool {
        self.roles.allows(permission, group) || {
            let grants = lock(&self.grants);
            grants.contains(&(permission, None)) || grants.contains(&(permission, Some(group.to_owned())))
        }
    }

    /// REST grant; `None` target means every group.
    pub fn grant(&self, permission: Permission, target: Option<&str>) {
        lock(&self.grants).insert((permission, target.map(str::to_owned)));
    }

    /// REST revoke of exactly the grant `(permission, target)`; a `None` target revokes
    /// every grant of that permission.
    pub fn revoke(&self, permission: Permission, target: Option<&str>) {
        let mut grants = lock(&self.grants);
        match target {
            Some(group) => {
                grants.remove(&(permission, Some(group.to_owned())));
            }
            None => grants.retain(|(p, _)| *p != permission),
        }
    }

    /// REST check: with a target, whether the connection may act on that group; without,
    /// whether it holds the permission for every group.
    pub fn check(&self, permission: Permission, target: Option<&str>) -> bool {
        match target {
            Some(group) => self.is_allowed(permission, group),
            None => {
                let literal = match permission {
                    Permission::JoinLeaveGroup => "webpubsub.joinLeaveGroup",
                    Permission::SendToGroup => "webpubsub.sendToGroup",
                };
                self.roles().iter().any(|r| r == literal) || lock(&self.grants).contains(&(permission, None))
            }
        }
    }

    /// The opaque state set by the upstream (`ce-connectionState`).
    pub fn connection_state(&self) -> Option<String> {
        lock(&self.connection_state).clone()
    }

    /// Replaces the opaque state.
    pub fn set_connection_state(&self, state: String) {
        *lock(&self.connection_state) = Some(state);
    }

    /// Records an `ackId`; false when it was already used on this connection.
    pub fn first_use_of_ack_id(&self, ack_id: u64) -> bool {
        let mut ids = lock(&self.ack_ids);
        if !ids.seen.insert(ack_id) {
            return false;
        }
        ids.order.push_back(ack_id);
        if ids.order.len() > REMEMBERED_ACK_IDS
            && let Some(oldest) = ids.order.pop_front()
        {
            ids.seen.remove(&oldest);
        }
        true
    }

    /// Keeps the `connected` upstream task so `disconnected` is sent after it.
    pub fn set_connected_event(&self, task: JoinHandle<()>) {
        *lock(&self.connected_event) = Some(task);
    }

    /// Takes the `connected` upstream task, if still pending.
    pub fn take_connected_event(&self) -> Option<JoinHandle<()>> {
        lock(&self.connected_event).take()
    }

    /// True when `token` resumes this reliable connection (constant-time comparison).
    pub fn reconnection_token_matches(&self, token: &str) -> bool {
        use subtle::ConstantTimeEq as _;
        match &self.reconnection_token {
            Some(expected) => expected.as_bytes().ct_eq(token.as_bytes()).into(),
            None => false,
        }
    }

    /// Queues the `connected` system message (JSON protocols only).
    pub fn send_connected(&self) -> Result<(), Overflow> {
        if self.protocol == Protocol::Raw {
            return Ok(());
        }
        let frame = protocol::connected(self.user_id.as_deref(), &self.id, self.reconnection_token.as_deref());
        self.send_control(frame)
    }

    /// Queues a control frame (ack, pong, system message); not sequenced or buffered.
    pub fn send_control(&self, text: String) -> Result<(), Overflow> {
        let outbound = lock(&self.outbound);
        match (&outbound.socket, outbound.closed) {
            (Some(socket), false) => socket.push(Frame::Text(text)),
            _ => Ok(()),
        }
    }

    /// Queues a `message` in the connection's format: raw frame, JSON, or JSON with the
    /// next sequence id (kept until acked; buffered even while no socket is attached).
    pub fn send_data(&self, message: &DataMessage) -> Result<(), Overflow> {
        let mut outbound = lock(&self.outbound);
        if outbound.closed {
            return Ok(());
        }
        match self.protocol {
            Protocol::Raw => push_if_attached(&outbound, message.raw.clone()),
            Protocol::Json => push_if_attached(&outbound, Frame::Text(message.json.clone())),
            Protocol::ReliableJson => {
                let sequence_id = outbound.last_sequence_id + 1;
                let text = protocol::with_sequence_id(&message.json, sequence_id);
                if outbound.unacked.len() >= MAX_UNACKED_MESSAGES
                    || outbound.unacked_bytes + text.len() > MAX_UNACKED_BYTES
                {
                    return Err(Overflow::ReliableBuffer);
                }
                outbound.last_sequence_id = sequence_id;
                outbound.unacked_bytes += text.len();
                outbound.unacked.push_back((sequence_id, text.clone()));
                push_if_attached(&outbound, Frame::Text(text))
            }
        }
    }

    /// `sequenceAck`: forgets every buffered message up to `sequence_id`.
    pub fn ack_sequence(&self, sequence_id: u64) {
        let mut outbound = lock(&self.outbound);
        while outbound.unacked.front().is_some_and(|(id, _)| *id <= sequence_id) {
            if let Some((_, text)) = outbound.unacked.pop_front() {
                outbound.unacked_bytes -= text.len();
            }
        }
    }

    /// Number of unacked messages (reliable connections).
    pub fn unacked_len(&self) -> usize {
        lock(&self.outbound).unacked.len()
    }

    /// Takes over with a new socket (reliable resume): the previous socket is abandoned and
    /// every unacked message is queued again. `None` when the connection is closed.
    pub fn attach(&self) -> Option<(u64, SocketQueue)> {
        let mut outbound = lock(&self.outbound);
        if outbound.closed {
            return None;
        }
        outbound.generation += 1;
        let (socket, queue) = socket_pair();
        for (_, text) in &outbound.unacked {
            // Capacity covers the whole buffer, so this cannot overflow a fresh queue.
            let _ = socket.push(Frame::Text(text.clone()));
        }
        // Dropping the old handle tells the old writer to abandon its socket.
        outbound.socket = Some(socket);
        Some((outbound.generation, queue))
    }

    /// The socket of `generation` ended. Returns true when the connection must now be
    /// removed; false when it was replaced, is already closed, or (reliable, unclean end)
    /// waits for a resume.
    pub fn socket_ended(&self, generation: u64, clean: bool) -> bool {
        let mut outbound = lock(&self.outbound);
        if outbound.generation != generation || outbound.closed {
            return false;
        }
        outbound.socket = None;
        if self.protocol == Protocol::ReliableJson && !clean {
            return false;
        }
        outbound.closed = true;
        true
    }

    /// True while a reliable connection waits, socketless, in generation `generation`.
    pub fn is_waiting_for_resume(&self, generation: u64) -> bool {
        let outbound = lock(&self.outbound);
        !outbound.closed && outbound.socket.is_none() && outbound.generation == generation
    }

    /// Current socket generation.
    pub fn generation(&self) -> u64 {
        lock(&self.outbound).generation
    }

    /// Closes for good. With `notify`, JSON clients first get a `disconnected` system
    /// message. Returns false when it was already closed (so callers report it once).
    pub fn close(&self, code: u16, reason: &str, notify: bool) -> bool {
        let socket = {
            let mut outbound = lock(&self.outbound);
            if outbound.closed {
                return false;
            }
            outbound.closed = true;
            outbound.unacked.clear();
            outbound.unacked_bytes = 0;
            outbound.socket.take()
        };
        if let Some(socket) = socket {
            let flush_queued = notify && self.protocol != Protocol::Raw;
            if flush_queued {
                let _ = socket.push(Frame::Text(protocol::disconnected(reason)));
            }
            socket.close(CloseRequest {
                code,
                reason: reason.to_owned(),
                flush_queued,
            });
        }
        true
    }

    /// True once closed for good.
    pub fn is_closed(&self) -> bool {
        lock(&self.outbound).closed
    }
}

fn push_if_attached(outbound: &Outbound, frame: Frame) -> Result<(), Overflow> {
    match &outbound.socket {
        Some(socket) => socket.push(frame),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;
