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
  chat.readMarkerWarned = false;
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
    if (!chat.opening && $('log').scrollTop < 40) loadOlder();
    markSeen();
  });
  document.addEventListener('visibilitychange', markSeen);
  // The network came back: try now instead of waiting out the backoff.
  window.addEventListener('online', () => {
    if (chat.timer && !chat.signedOut) connect();
  });
}

init();
