// State and the durable API of the chat page of `handler dev` (loaded before chat.js, after chat-view.js):
// rooms and membership (the manage door), messages kept by id per conversation and shown in seq order,
// history pages, idempotent sends with the client id, notifications. chat.js owns the socket and sync.
'use strict';

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
  /** Set while a room opens (its log is emptied and refilled). */
  opening: false,
  readMarkerWarned: false,
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
    const notice = {
      sender: 'system',
      id: `joined.${id}.${chat.me}`.slice(0, 128),
      body: { kind: 'system', text: `${chat.me} joined #${id}`, joined: chat.me },
    };
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
  learnMember(room, message);
  if (live && message.sender !== chat.me && message.seq > room.readSeq && !isSeen(room)) room.unread += 1;
  if (message.conversationId === chat.current) {
    renderMessage(message, chat.me);
    // A live frame past a hole (a frame lost on the way): fetch what lies between from history.
    if (live && room.loaded && previousMax > 0 && message.seq > previousMax + 1) fillAfter(room.id, previousMax);
  }
}

/** Only members send, and this page's join notices name who joined: the members pane learns from both. */
function learnMember(room, message) {
  const body = message.body;
  const joined = isSystemBody(body) && typeof body.joined === 'string' ? body.joined : null;
  const member = joined ?? (isSystemBody(body) ? null : message.sender);
  if (!member || room.members.has(member)) return;
  room.members.add(member);
  if (room.id === chat.current) renderMembers(room.members, chat.me);
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
  // Scroll events from emptying and filling the log are not the user scrolling back.
  chat.opening = true;
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
  // Scroll events are dispatched with the next frame: drop those, then listen again.
  requestAnimationFrame(() =>
    requestAnimationFrame(() => {
      if (chat.current === id) chat.opening = false;
    }),
  );
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
    // Once per sign-in: the next message seen tries again with a later seq anyway.
    if (chat.readMarkerWarned) return;
    chat.readMarkerWarned = true;
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
