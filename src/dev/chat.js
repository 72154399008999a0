// The chat client of `handler dev`: negotiate, connect with the json.webpubsub.azure.v1 subprotocol, and
// talk to the handler with user events only (the token carries no roles):
//   join     {"room"}                  the handler adds this connection to the room's group
//   leave    {"room"}                  ... and removes it
//   message  {"room", "text"}          the handler broadcasts it to the room
//   presence {"room", "status"}        joined | here | left, broadcast likewise; "here" answers "joined"
// Room members receive each broadcast as a server message whose data is the handler's envelope
// {"from", "room", "event", "dataType", "data"}; "from" is the verified sender, never the page's claim.
// Anything else that arrives (e.g. a POST /api/publish to the room) is shown as a server message.
// A lost connection is retried with exponential backoff and jitter, negotiating a fresh URL each time.
'use strict';

const PROTOCOL = 'json.webpubsub.azure.v1';
const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 30000;
const ACK_TIMEOUT_MS = 10000;

const $ = (id) => document.getElementById(id);

const chat = {
  name: '',
  room: '',
  socket: null,
  /** Whether this connection is in the room (the join event was acknowledged). */
  joined: false,
  /** Whether this page joined before: a later join is a reconnect. */
  joinedBefore: false,
  /** Set when the user leaves: no reconnect then. */
  leaving: false,
  /** Bumped on every join and leave, so a connect still in flight for an earlier session gives up. */
  session: 0,
  attempt: 0,
  timer: null,
  nextAckId: 1,
  acks: new Map(),
  members: new Set(),
};

// ----- connection -----

async function connect() {
  clearTimeout(chat.timer);
  chat.timer = null;
  const session = chat.session;
  setStatus('connecting', chat.attempt ? `Reconnecting (attempt ${chat.attempt})…` : 'Connecting…');
  let url;
  try {
    // A fresh URL (and token) on every attempt: an old one may have expired.
    const response = await fetch(`/api/negotiate?userId=${encodeURIComponent(chat.name)}`, { cache: 'no-store' });
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
  if (session !== chat.session) return;

  const socket = new WebSocket(url, PROTOCOL);
  chat.socket = socket;
  socket.onmessage = (event) => {
    if (chat.socket === socket) onFrame(event.data);
  };
  socket.onclose = (event) => {
    if (chat.socket !== socket) return;
    chat.socket = null;
    leftRoom();
    failPendingAcks('the connection closed');
    if (!chat.leaving) scheduleReconnect(`Connection lost (${event.code})`);
  };
}

function scheduleReconnect(reason) {
  clearTimeout(chat.timer);
  // Exponential backoff with jitter: half the ceiling for sure, the other half at random, so many pages
  // that lost the service at once do not come back in step.
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** chat.attempt);
  const delay = ceiling / 2 + Math.random() * (ceiling / 2);
  chat.attempt += 1;
  setStatus('reconnecting', `${reason}; retrying in ${(delay / 1000).toFixed(1)} s`);
  addSystem(`${reason}. Reconnecting in ${(delay / 1000).toFixed(1)} s…`);
  chat.timer = setTimeout(connect, delay);
}

function onFrame(text) {
  let frame;
  try {
    frame = JSON.parse(text);
  } catch {
    return;
  }
  switch (frame.type) {
    case 'system':
      if (frame.event === 'connected') {
        chat.attempt = 0;
        setStatus('connected', `Connected as ${frame.userId}`);
        enterRoom();
      } else if (frame.event === 'disconnected') {
        addSystem(`The service closed the connection: ${frame.message || 'no reason given'}`, 'error');
      }
      break;
    case 'ack':
      settleAck(frame);
      break;
    case 'message':
      onMessage(frame);
      break;
    default:
      break;
  }
}

// ----- acknowledged events -----

/** Sends a user event and resolves when the service acknowledges it (the handler accepted it). */
function sendEvent(event, data) {
  return new Promise((resolve, reject) => {
    const socket = chat.socket;
    if (!socket || socket.readyState !== WebSocket.OPEN) {
      reject(new Error('not connected'));
      return;
    }
    const ackId = chat.nextAckId++;
    const timer = setTimeout(() => {
      chat.acks.delete(ackId);
      reject(new Error('no answer from the service'));
    }, ACK_TIMEOUT_MS);
    chat.acks.set(ackId, { resolve, reject, timer });
    socket.send(JSON.stringify({ type: 'event', event, dataType: 'json', data, ackId }));
  });
}

function settleAck(frame) {
  const pending = chat.acks.get(frame.ackId);
  if (!pending) return;
  chat.acks.delete(frame.ackId);
  clearTimeout(pending.timer);
  if (frame.success || (frame.error && frame.error.name === 'Duplicate')) {
    pending.resolve();
  } else {
    const error = frame.error || {};
    pending.reject(new Error(error.message || error.name || 'refused'));
  }
}

function failPendingAcks(reason) {
  for (const pending of chat.acks.values()) {
    clearTimeout(pending.timer);
    pending.reject(new Error(reason));
  }
  chat.acks.clear();
}

// ----- the room -----

async function enterRoom() {
  try {
    await sendEvent('join', { room: chat.room });
  } catch (error) {
    addSystem(`Could not join #${chat.room}: ${error.message}`, 'error');
    return;
  }
  chat.joined = true;
  const rejoin = chat.joinedBefore;
  chat.joinedBefore = true;
  chat.members = new Set([chat.name]);
  renderMembers();
  setComposerEnabled(true);
  addSystem(rejoin ? `Reconnected to #${chat.room}` : `You joined #${chat.room}`);
  announce(rejoin ? 'back' : 'joined');
}

function leftRoom() {
  chat.joined = false;
  setComposerEnabled(false);
  chat.members.clear();
  renderMembers();
}

function announce(status) {
  sendEvent('presence', { room: chat.room, status }).catch((error) => {
    addSystem(`Could not tell the room you are here: ${error.message}`, 'error');
  });
}

function onMessage(frame) {
  const envelope = frame.data;
  const isEnvelope =
    envelope !== null &&
    typeof envelope === 'object' &&
    typeof envelope.event === 'string' &&
    typeof envelope.room === 'string' &&
    'dataType' in envelope &&
    'data' in envelope;
  if (!isEnvelope) {
    // The handler's own answers to join/leave ({"event": "joined"|"left", "room"}) need no display.
    if (envelope && typeof envelope === 'object' && (envelope.event === 'joined' || envelope.event === 'left')) return;
    addServer(describe(frame));
    return;
  }
  if (envelope.room !== chat.room) return;
  const from = envelope.from || 'someone';
  const data = envelope.data;
  if (envelope.event === 'message') {
    const text = data && typeof data === 'object' ? data.text : data;
    addChat(from, String(text ?? ''));
  } else if (envelope.event === 'presence' && data && typeof data === 'object') {
    onPresence(from, data.status);
  }
}

function onPresence(from, status) {
  if (from === chat.name) return;
  if (status === 'joined' || status === 'back') {
    chat.members.add(from);
    addSystem(status === 'joined' ? `${from} joined` : `${from} is back`);
    // Tell the newcomer who is already here.
    if (chat.joined) announce('here');
  } else if (status === 'here') {
    chat.members.add(from);
  } else if (status === 'left') {
    chat.members.delete(from);
    addSystem(`${from} left`);
  }
  renderMembers();
}

/** A short text for a message that is not a chat envelope (typically a server-side publish). */
function describe(frame) {
  switch (frame.dataType) {
    case 'text':
      return String(frame.data);
    case 'binary':
      return `[${Math.floor((String(frame.data).length * 3) / 4)} bytes of binary data]`;
    default:
      return JSON.stringify(frame.data);
  }
}

// ----- user actions -----

function onJoinSubmit(event) {
  event.preventDefault();
  const name = $('name').value.trim();
  const room = $('room').value.trim();
  if (!name || !room) {
    showJoinError('Enter a name and a room.');
    return;
  }
  showJoinError('');
  try {
    localStorage.setItem('chat.name', name);
    localStorage.setItem('chat.room', room);
  } catch {
    // Storage may be disabled; remembering the name is only a convenience.
  }
  Object.assign(chat, { name, room, leaving: false, attempt: 0, joinedBefore: false });
  chat.session += 1;
  $('room-name').textContent = room;
  $('me').textContent = name;
  $('log').replaceChildren();
  $('join-view').hidden = true;
  $('chat-view').hidden = false;
  connect();
}

async function onSendSubmit(event) {
  event.preventDefault();
  const input = $('message');
  const text = input.value.trim();
  if (!text || !chat.joined) return;
  input.value = '';
  try {
    await sendEvent('message', { room: chat.room, text });
  } catch (error) {
    addSystem(`Not delivered: "${text}" (${error.message})`, 'error');
  }
  input.focus();
}

async function onPublishSubmit(event) {
  event.preventDefault();
  const input = $('publish-text');
  const text = input.value.trim();
  if (!text) return;
  const result = $('publish-result');
  try {
    const response = await fetch('/api/publish', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ room: chat.room, message: text }),
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.message || `publish answered ${response.status}`);
    input.value = '';
    result.textContent = `Published to #${chat.room}.`;
  } catch (error) {
    result.textContent = `Publish failed: ${error.message}`;
  }
}

async function onLeave() {
  chat.leaving = true;
  chat.session += 1;
  clearTimeout(chat.timer);
  if (chat.joined) {
    await sendEvent('presence', { room: chat.room, status: 'left' }).catch(() => {});
    await sendEvent('leave', { room: chat.room }).catch(() => {});
  }
  const socket = chat.socket;
  chat.socket = null;
  if (socket) socket.close(1000, 'left the room');
  leftRoom();
  failPendingAcks('left the room');
  backToJoin('');
}

function backToJoin(error) {
  chat.leaving = true;
  clearTimeout(chat.timer);
  setStatus(error ? 'error' : 'idle', 'Not connected');
  $('chat-view').hidden = true;
  $('join-view').hidden = false;
  showJoinError(error);
}

// Closing the tab: tell the room, best effort (there is no time to wait for an answer).
function onPageHide() {
  if (chat.joined && chat.socket && chat.socket.readyState === WebSocket.OPEN) {
    const data = { room: chat.room, status: 'left' };
    chat.socket.send(JSON.stringify({ type: 'event', event: 'presence', dataType: 'json', data }));
  }
}

// ----- rendering (text only: nothing received is ever parsed as HTML) -----

function setStatus(state, text) {
  const status = $('status');
  status.dataset.state = state;
  status.textContent = text;
  status.title = text;
}

function setComposerEnabled(enabled) {
  $('message').disabled = !enabled;
  $('send').disabled = !enabled;
  if (enabled) $('message').focus();
}

function showJoinError(text) {
  const error = $('join-error');
  error.textContent = text;
  error.hidden = !text;
}

function addEntry(kind, who, text) {
  const log = $('log');
  const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  const entry = document.createElement('li');
  entry.className = `entry ${kind}`;
  const time = document.createElement('span');
  time.className = 'time';
  time.textContent = new Date().toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  entry.append(time);
  if (who !== null) {
    const name = document.createElement('span');
    name.className = 'who';
    name.textContent = who;
    entry.append(name);
  }
  const body = document.createElement('span');
  body.className = 'text';
  body.textContent = text;
  entry.append(body);
  log.append(entry);
  if (atBottom) log.scrollTop = log.scrollHeight;
  return entry;
}

function addChat(from, text) {
  const entry = addEntry(from === chat.name ? 'chat mine' : 'chat', from, text);
  entry.dataset.from = from;
}

function addServer(text) {
  addEntry('server', 'server', text);
}

function addSystem(text, tone) {
  addEntry(tone ? `system ${tone}` : 'system', null, text);
}

function renderMembers() {
  const list = $('members');
  const names = [...chat.members].sort((a, b) => a.localeCompare(b));
  list.replaceChildren(
    ...names.map((name) => {
      const item = document.createElement('li');
      item.textContent = name === chat.name ? `${name} (you)` : name;
      if (name === chat.name) item.className = 'you';
      return item;
    }),
  );
  $('member-count').textContent = String(names.length);
}

// ----- start -----

document.addEventListener('DOMContentLoaded', () => {
  try {
    $('name').value = localStorage.getItem('chat.name') || '';
    $('room').value = localStorage.getItem('chat.room') || $('room').value;
  } catch {
    // No storage: start with empty fields.
  }
  $('join-form').addEventListener('submit', onJoinSubmit);
  $('send-form').addEventListener('submit', onSendSubmit);
  $('publish-form').addEventListener('submit', onPublishSubmit);
  $('leave').addEventListener('click', onLeave);
  window.addEventListener('pagehide', onPageHide);
  $('name').focus();
});
