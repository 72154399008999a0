// The chat client of `handler dev` on durable conversations (#15, #16). Rooms are conversations: joining
// one adds the user as a member through the manage door (dev mode trusts local callers), negotiate puts the
// member's `conversation:{id}` groups and `notifications:user:{id}` in the token, and the socket
// (json.webpubsub.azure.v1) only receives. Everything else is the HTTP API:
//   history    GET  /api/conversations/{id}/messages?before=|after=   on open, on scroll-back, on a seq gap
//   send       POST /api/conversations/{id}/messages {"id","body"}    client id: a retry is idempotent
//   catch-up   GET  /api/sync?since=<cursor>                          after every (re)connect, paged by `next`
//   unread     GET  /api/conversations (list), sync `unread`, PUT /api/conversations/{id}/read as seen
//   notices    GET  /api/notifications, live frames, PUT /api/notifications/read
// Live frames ({"type":"message"|"notification", "id", "seq", …}) and sync overlap on purpose: every
// message is kept by id and shown in seq order, so each appears exactly once.
// A network drop is retried with exponential backoff and jitter, negotiating a fresh URL each time; a
// deliberate close (sign out, or a new room that needs a new token) reconnects at once or not at all.
'use strict';

const PROTOCOL = 'json.webpubsub.azure.v1';
const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 30000;
const HISTORY_PAGE = 50;
const SYNC_PAGE = 200;
/** Most sync pages read in one catch-up (a runaway guard; `limited` pages normally end far sooner). */
const SYNC_MAX_PAGES = 100;
const ROOM_ID = /^[A-Za-z0-9._~-]{1,128}$/;

const chat = {
  me: '',
  current: '',
  /** id → {id, title, members, unread, readSeq, before (history cursor; null = at the start), loaded} */
  rooms: new Map(),
  /** conversation id → Map(message id → stored message) */
  messages: new Map(),
  notifications: new Map(),
  notificationsUnread: 0,
  notificationsReadSeq: 0,
  cursor: null,
  socket: null,
  /** The groups the current token holds. */
  tokenGroups: new Set(),
  /** Set while this page closes its own socket: `reconnect` says what to do next. */
  closing: null,
  signedOut: true,
  /** Bumped on every sign-in and sign-out, so work still in flight for an earlier session gives up. */
  session: 0,
  attempt: 0,
  timer: null,
  /** Sends not yet answered: id → {conversationId, text}. */
  pending: new Map(),
  catchingUp: null,
};

// ----- HTTP -----

class ApiError extends Error {
  constructor(status, body) {
    super(body.message || `the handler answered ${status}`);
    this.status = status;
    this.code = body.code;
  }
}

const enc = encodeURIComponent;

/** A user-door call: the caller is named by `userId`, as anonymous negotiate identifies it. */
async function api(method, path, body) {
  const separator = path.includes('?') ? '&' : '?';
  return call(method, `${path}${separator}userId=${enc(chat.me)}`, body);
}

/** A manage-door call: dev mode trusts local callers (PublishTrust=functionkey, no host checks a key). */
async function manage(method, path, body) {
  return call(method, path, body);
}

async function call(method, url, body) {
  const init = { method, cache: 'no-store', headers: {} };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const response = await fetch(url, init);
  const text = await response.text();
  let json = {};
  try {
    json = text ? JSON.parse(text) : {};
  } catch {
    json = { message: text };
  }
  if (!response.ok) throw new ApiError(response.status, json);
  return { status: response.status, body: json };
}

const retryable = (error) => !(error instanceof ApiError) || error.status >= 500 || error.status === 429;

// ----- rooms and membership -----

function ensureRoom(id, fields = {}) {
  let room = chat.rooms.get(id);
  if (!room) {
    room = { id, title: id, members: new Set(), unread: 0, readSeq: 0, before: undefined, loaded: false };
    chat.rooms.set(id, room);
    chat.messages.set(id, new Map());
  }
  if (fields.title) room.title = fields.title;
  if (Array.isArray(fields.members)) room.members = new Set(fields.members);
  if (typeof fields.unread === 'number') room.unread = fields.unread;
  return room;
}

function dropRoom(id) {
  chat.rooms.delete(id);
  chat.messages.delete(id);
  if (chat.current === id) chat.current = chat.rooms.keys().next().value || '';
}

/** Makes the user a member of `id` (creating the room if nobody has yet); says so in the room once. */
async function joinRoom(id) {
  const path = `/api/manage/conversations/${enc(id)}/members/${enc(chat.me)}`;
  let answer;
  try {
    answer = await manage('PUT', path);
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 404) throw error;
    try {
      answer = await manage('POST', '/api/manage/conversations', { id, title: id, members: [chat.me] });
    } catch (raced) {
      // Someone created it with other members meanwhile: join that one.
      if (!(raced instanceof ApiError) || raced.status !== 409) throw raced;
      answer = await manage('PUT', path);
    }
  }
  ensureRoom(id, answer.body);
  if (answer.status === 201) {
    // Idempotent by id: a retry of this join never stores the notice twice.
    const notice = { sender: 'system', id: `joined.${id}.${chat.me}`.slice(0, 128), body: { kind: 'system', text: `${chat.me} joined #${id}` } };
    if (ROOM_ID.test(notice.id)) await manage('POST', `/api/manage/conversations/${enc(id)}/messages`, notice).catch(() => {});
  }
}

async function loadRooms() {
  const { body } = await api('GET', '/api/conversations');
  for (const item of body.items || []) {
    const room = ensureRoom(item.id, item);
    if (item.lastMessage) addMessage(item.lastMessage, { live: false });
    if (typeof item.unread === 'number') room.unread = item.unread;
  }
}

// ----- messages -----

/** Keeps a stored message (once, by id) and shows it if its room is open. */
function addMessage(message, { live }) {
  if (!message || typeof message.id !== 'string' || typeof message.seq !== 'number') return;
  const room = ensureRoom(message.conversationId);
  const kept = chat.messages.get(message.conversationId);
  if (kept.has(message.id)) return;
  const previousMax = maxSeq(message.conversationId);
  kept.set(message.id, message);
  chat.pending.delete(message.id);
  if (live && message.sender !== chat.me && message.seq > room.readSeq && !isSeen(room)) room.unread += 1;
  if (message.conversationId === chat.current) {
    renderMessage(message, chat.me);
    // A live frame past a hole (a frame lost on the way): fetch what lies between from history.
    if (live && room.loaded && previousMax > 0 && message.seq > previousMax + 1) fillAfter(room.id, previousMax);
  }
}

function maxSeq(conversationId) {
  let max = 0;
  for (const message of chat.messages.get(conversationId)?.values() ?? []) max = Math.max(max, message.seq);
  return max;
}

/** Whether the user sees the newest messages of `room` now. */
function isSeen(room) {
  return room.id === chat.current && room.loaded && document.visibilityState === 'visible' && nearBottom($('log'));
}

async function loadHistory(id, before) {
  const query = before ? `before=${before}&limit=${HISTORY_PAGE}` : `limit=${HISTORY_PAGE}`;
  const { body } = await api('GET', `/api/conversations/${enc(id)}/messages?${query}`);
  const room = chat.rooms.get(id);
  if (!room) return;
  for (const message of body.items || []) addMessage(message, { live: false });
  room.before = body.next ?? null;
  room.loaded = true;
  if (id === chat.current) showHistoryEdge(room);
}

async function fillAfter(id, after) {
  let cursor = after;
  for (let page = 0; cursor !== null && page < SYNC_MAX_PAGES; page += 1) {
    const { body } = await api('GET', `/api/conversations/${enc(id)}/messages?after=${cursor}&limit=200`).catch(() => ({ body: {} }));
    for (const message of body.items || []) addMessage(message, { live: false });
    cursor = body.next ?? null;
  }
}

function showHistoryEdge(room) {
  $('older').hidden = room.before === null || room.before === undefined;
  if (room.before === null) renderStartOfHistory(room.id);
}

async function loadOlder() {
  const room = chat.rooms.get(chat.current);
  if (!room || room.loadingOlder || room.before === null || room.before === undefined) return;
  room.loadingOlder = true;
  try {
    await loadHistory(room.id, room.before);
  } catch (error) {
    addNotice(`Could not load older messages: ${error.message}`, 'error');
  } finally {
    room.loadingOlder = false;
  }
}

async function openRoom(id) {
  const room = chat.rooms.get(id);
  if (!room) return;
  chat.current = id;
  $('room-name').textContent = room.title || id;
  $('log').replaceChildren();
  $('older').hidden = true;
  renderMembers(room.members, chat.me);
  for (const message of [...chat.messages.get(id).values()].sort((a, b) => a.seq - b.seq)) renderMessage(message, chat.me);
  for (const [pendingId, pending] of chat.pending) if (pending.conversationId === id) renderPending(pendingId, chat.me, pending.text);
  refreshRooms();
  try {
    await loadHistory(id);
  } catch (error) {
    addNotice(`Could not load the history of #${id}: ${error.message}`, 'error');
  }
  $('log').scrollTop = $('log').scrollHeight;
  markSeen();
}

/** Moves the read marker of the open room to its newest message, when the user can see it. */
function markSeen() {
  const room = chat.rooms.get(chat.current);
  if (!room || !isSeen(room)) return;
  const seq = maxSeq(room.id);
  if (room.unread !== 0 || seq > room.readSeq) {
    room.unread = 0;
    refreshRooms();
  }
  if (seq <= room.readSeq) return;
  room.readSeq = seq;
  api('PUT', `/api/conversations/${enc(room.id)}/read`, { seq }).catch((error) => {
    addNotice(`Could not save the read marker: ${error.message}`, 'error');
  });
}

function refreshRooms() {
  renderRooms(chat.rooms, chat.current, (id) => {
    if (id !== chat.current) openRoom(id);
  });
}

// ----- sending -----

function newId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, '0')).join('');
}

async function deliver(id) {
  const session = chat.session;
  for (let attempt = 0; session === chat.session; attempt += 1) {
    const pending = chat.pending.get(id);
    if (!pending) return;
    try {
      // The same client id on every try: the store keeps one row, whatever was lost on the way.
      const { body } = await api('POST', `/api/conversations/${enc(pending.conversationId)}/messages`, {
        id,
        body: { text: pending.text },
      });
      addMessage(body, { live: false });
      markSeen();
      return;
    } catch (error) {
      if (!retryable(error) || attempt >= 8) {
        chat.pending.delete(id);
        markPendingFailed(id, error.message);
        addNotice(`Not delivered: "${pending.text}" (${error.message})`, 'error');
        return;
      }
      await sleep(backoff(attempt));
    }
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Exponential backoff with jitter: half the ceiling for sure, the rest at random. */
function backoff(attempt) {
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** attempt);
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

// ----- notifications -----

function addNotification(notification, { live }) {
  if (!notification || typeof notification.id !== 'string' || chat.notifications.has(notification.id)) return;
  chat.notifications.set(notification.id, notification);
  if (live && notification.seq > chat.notificationsReadSeq) chat.notificationsUnread += 1;
  renderNotifications(chat.notifications, chat.notificationsUnread);
}

async function loadNotifications() {
  const { body } = await api('GET', '/api/notifications?limit=50');
  for (const item of body.items || []) addNotification(item, { live: false });
  if (typeof body.unread === 'number') chat.notificationsUnread = body.unread;
  renderNotifications(chat.notifications, chat.notificationsUnread);
}

async function markNotificationsRead() {
  const seq = Math.max(0, ...[...chat.notifications.values()].map((n) => n.seq));
  chat.notificationsUnread = 0;
  renderNotifications(chat.notifications, 0);
  if (seq <= chat.notificationsReadSeq) return;
  chat.notificationsReadSeq = seq;
  await api('PUT', '/api/notifications/read', { seq }).catch((error) => {
    addNotice(`Could not mark notifications read: ${error.message}`, 'error');
  });
}

// ----- catch-up -----

/** One sync from the last cursor (paged while `limited`): closes every gap the socket left. */
function catchUp() {
  if (!chat.catchingUp) {
    chat.catchingUp = runSync().finally(() => {
      chat.catchingUp = null;
    });
  }
  return chat.catchingUp;
}

async function runSync() {
  const session = chat.session;
  for (let page = 0; page < SYNC_MAX_PAGES; page += 1) {
    const since = chat.cursor ? `since=${enc(chat.cursor)}&` : '';
    const { body } = await api('GET', `/api/sync?${since}limit=${SYNC_PAGE}`);
    if (session !== chat.session) return;
    for (const conversation of body.conversations || []) mergeConversation(conversation);
    for (const notification of body.notifications || []) addNotification(notification, { live: false });
    if (body.next) chat.cursor = body.next;
    if (!body.limited) break;
  }
  refreshRooms();
  markSeen();
  const missing = [...chat.rooms.keys()].some((id) => !chat.tokenGroups.has(`conversation:${id}`));
  if (missing) reconnectNow('a new room needs a new token');
}

function mergeConversation(conversation) {
  const membership = conversation.membership;
  const removed =
    membership === 'removed' ||
    membership === 'left' ||
    (membership && typeof membership === 'object' && (membership.removed === true || ['removed', 'left'].includes(membership.status || membership.change)));
  if (removed) {
    addNotice(`You are no longer a member of #${conversation.id}`);
    dropRoom(conversation.id);
    if (chat.current) openRoom(chat.current);
    return;
  }
  const room = ensureRoom(conversation.id, conversation);
  const messages = conversation.messages || (conversation.lastMessage ? [conversation.lastMessage] : []);
  for (const message of messages) addMessage(message, { live: false });
  if (typeof conversation.unread === 'number') room.unread = conversation.unread;
}

// ----- connection -----

async function connect() {
  clearTimeout(chat.timer);
  chat.timer = null;
  const session = chat.session;
  setStatus('connecting', chat.attempt ? `Reconnecting (attempt ${chat.attempt})…` : 'Connecting…');
  const groups = [...[...chat.rooms.keys()].map((id) => `conversation:${id}`), `notifications:user:${chat.me}`];
  let url;
  try {
    // A fresh URL (and token) on every attempt: an old one may have expired, and membership may have changed.
    const response = await fetch(`/api/negotiate?userId=${enc(chat.me)}&groups=${groups.map(enc).join(',')}`, { cache: 'no-store' });
    const body = await response.json().catch(() => ({}));
    if (session !== chat.session) return;
    if (!response.ok) {
      const reason = body.message || `negotiate answered ${response.status}`;
      // A client mistake (e.g. an unusable name) will not fix itself by retrying.
      if (response.status >= 400 && response.status < 500 && response.status !== 429) {
        backToJoin(reason);
        return;
      }
      throw new Error(reason);
    }
    url = body.url;
  } catch (error) {
    if (session === chat.session) scheduleReconnect(`Negotiate failed: ${error.message}`);
    return;
  }
  const socket = new WebSocket(url, PROTOCOL);
  chat.socket = socket;
  socket.onmessage = (event) => {
    if (chat.socket === socket) onFrame(event.data, groups);
  };
  socket.onclose = (event) => {
    if (chat.socket !== socket) return;
    chat.socket = null;
    setComposerEnabled(false);
    const closing = chat.closing;
    chat.closing = null;
    if (closing === 'reconnect') {
      connect();
    } else if (!closing && !chat.signedOut) {
      scheduleReconnect(`Connection lost (${event.code})`);
    }
  };
}

/** Closes this page's own socket on purpose and connects again at once (no backoff: nothing failed). */
function reconnectNow(reason) {
  const socket = chat.socket;
  if (!socket) return;
  addNotice(`Reconnecting: ${reason}`);
  chat.closing = 'reconnect';
  socket.close(1000, reason);
}

function scheduleReconnect(reason) {
  clearTimeout(chat.timer);
  const delay = backoff(chat.attempt);
  chat.attempt += 1;
  setStatus('reconnecting', `${reason}; retrying in ${(delay / 1000).toFixed(1)} s`);
  addNotice(`${reason}. Reconnecting in ${(delay / 1000).toFixed(1)} s…`);
  chat.timer = setTimeout(connect, delay);
}

function onFrame(text, groups) {
  let frame;
  try {
    frame = JSON.parse(text);
  } catch {
    return;
  }
  if (frame.type === 'system' && frame.event === 'connected') {
    const reconnected = chat.attempt > 0;
    chat.attempt = 0;
    chat.tokenGroups = new Set(groups);
    setStatus('connected', `Connected as ${frame.userId}`);
    setComposerEnabled(true);
    catchUp()
      .catch(async (error) => {
        // No sync (e.g. the store answered 503 for a moment): each room's history after what is shown
        // closes the gap too, one call per room; the next sync starts from the old cursor.
        addNotice(`Sync failed (${error.message}); catching up from each room's history`, 'error');
        for (const id of [...chat.rooms.keys()]) await fillAfter(id, maxSeq(id));
      })
      .then(() => {
        if (reconnected) addNotice('Reconnected; caught up');
      });
  } else if (frame.type === 'system' && frame.event === 'disconnected') {
    addNotice(`The service closed the connection: ${frame.message || 'no reason given'}`, 'error');
  } else if (frame.type === 'message') {
    onMessageFrame(frame);
  }
}

function onMessageFrame(frame) {
  const data = frame.data;
  if (data && typeof data === 'object' && data.type === 'message') {
    addMessage(data, { live: true });
    markSeen();
    refreshRooms();
  } else if (data && typeof data === 'object' && data.type === 'notification') {
    addNotification(data, { live: true });
  } else if (frame.group === `conversation:${chat.current}`) {
    addTransient(frame.dataType === 'json' ? JSON.stringify(data) : String(data));
  }
}

// ----- user actions -----

async function onJoinSubmit(event) {
  event.preventDefault();
  const name = $('name').value.trim();
  const room = $('room').value.trim();
  if (!name || !room) return showJoinError('Enter a name and a room.');
  if (!ROOM_ID.test(room)) return showJoinError('A room name is 1-128 of A-Z a-z 0-9 - _ . ~');
  showJoinError('');
  try {
    localStorage.setItem('chat.name', name);
    localStorage.setItem('chat.room', room);
  } catch {
    // Storage may be disabled; remembering the name is only a convenience.
  }
  chat.session += 1;
  Object.assign(chat, { me: name, current: room, signedOut: false, attempt: 0, cursor: null, closing: null });
  chat.rooms.clear();
  chat.messages.clear();
  chat.notifications.clear();
  setStatus('connecting', 'Signing in…');
  try {
    // The caller's own list first: a name the handler refuses is refused here, before any membership.
    await loadRooms();
    await joinRoom(room);
    await loadNotifications().catch((error) => addNotice(`No notifications: ${error.message}`, 'error'));
  } catch (error) {
    chat.signedOut = true;
    setStatus('error', 'Not connected');
    showJoinError(error.message);
    return;
  }
  $('me').textContent = name;
  $('join-view').hidden = true;
  $('chat-view').hidden = false;
  openRoom(room);
  connect();
}

async function onAddRoom(event) {
  event.preventDefault();
  const input = $('add-room');
  const id = input.value.trim();
  if (!ROOM_ID.test(id)) return addNotice('A room name is 1-128 of A-Z a-z 0-9 - _ . ~', 'error');
  input.value = '';
  try {
    await joinRoom(id);
  } catch (error) {
    return addNotice(`Could not join #${id}: ${error.message}`, 'error');
  }
  openRoom(id);
  if (!chat.tokenGroups.has(`conversation:${id}`)) reconnectNow(`joining #${id}`);
}

function onSendSubmit(event) {
  event.preventDefault();
  const input = $('message');
  const text = input.value.trim();
  if (!text || !chat.current) return;
  input.value = '';
  const id = newId();
  chat.pending.set(id, { conversationId: chat.current, text });
  renderPending(id, chat.me, text);
  deliver(id);
  input.focus();
}

/** The server side: a system message stored through the manage door, or a notification to the members. */
async function onServerSide(event, notify) {
  event.preventDefault();
  const input = $('publish-text');
  const text = input.value.trim();
  if (!text) return;
  const result = $('publish-result');
  try {
    if (notify) {
      await manage('POST', '/api/manage/notifications', { conversationId: chat.current, data: { text } });
      result.textContent = `Notified the members of #${chat.current}.`;
    } else {
      await manage('POST', `/api/manage/conversations/${enc(chat.current)}/messages`, {
        sender: 'server',
        id: newId(),
        body: { kind: 'system', text },
      });
      result.textContent = `Published to #${chat.current}.`;
    }
    input.value = '';
  } catch (error) {
    result.textContent = `Failed: ${error.message}`;
  }
}

function onSignOut() {
  chat.session += 1;
  chat.signedOut = true;
  clearTimeout(chat.timer);
  const socket = chat.socket;
  chat.socket = null;
  if (socket) socket.close(1000, 'signed out');
  chat.pending.clear();
  backToJoin('');
}

function backToJoin(error) {
  chat.signedOut = true;
  clearTimeout(chat.timer);
  setStatus(error ? 'error' : 'idle', 'Not connected');
  setComposerEnabled(false);
  $('chat-view').hidden = true;
  $('join-view').hidden = false;
  showJoinError(error);
}

function init() {
  try {
    $('name').value = localStorage.getItem('chat.name') || '';
    $('room').value = localStorage.getItem('chat.room') || 'lobby';
  } catch {
    // No storage: start empty.
  }
  $('join-form').addEventListener('submit', onJoinSubmit);
  $('send-form').addEventListener('submit', onSendSubmit);
  $('add-room-form').addEventListener('submit', onAddRoom);
  $('publish-form').addEventListener('submit', (event) => onServerSide(event, false));
  $('notify').addEventListener('click', (event) => onServerSide(event, true));
  $('leave').addEventListener('click', onSignOut);
  $('older').addEventListener('click', loadOlder);
  $('notifications-toggle').addEventListener('click', () => {
    $('notifications').hidden = !$('notifications').hidden;
  });
  $('notifications-read').addEventListener('click', markNotificationsRead);
  $('log').addEventListener('scroll', () => {
    if ($('log').scrollTop < 40) loadOlder();
    markSeen();
  });
  document.addEventListener('visibilitychange', markSeen);
  // The network came back: try now instead of waiting out the backoff.
  window.addEventListener('online', () => {
    if (chat.timer && !chat.signedOut) connect();
  });
}

init();
