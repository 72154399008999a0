// Rendering for the chat page of `handler dev` (chat.js owns the state and the network). Text only: nothing
// received is ever parsed as HTML. Log entries carry data-id / data-seq / data-from so the log stays in
// `seq` order and shows each stored message once, whatever order live frames, sync and history arrive in.
'use strict';

const $ = (id) => document.getElementById(id);

function setStatus(state, text) {
  const status = $('status');
  status.dataset.state = state;
  status.textContent = text;
  status.title = text;
}

function setComposerEnabled(enabled) {
  $('message').disabled = !enabled;
  $('send').disabled = !enabled;
}

function showJoinError(text) {
  const error = $('join-error');
  error.textContent = text;
  error.hidden = !text;
}

function timeOf(iso) {
  const date = iso ? new Date(iso) : new Date();
  return date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

/** The text of a stored message body: `{"text"}` as sent by this page, anything else as JSON. */
function bodyText(body) {
  if (body && typeof body === 'object' && typeof body.text === 'string') return body.text;
  if (typeof body === 'string') return body;
  return JSON.stringify(body);
}

/** A system message: stored through the manage door by this page's server-side form (`kind: system`). */
function isSystemBody(body) {
  return Boolean(body && typeof body === 'object' && body.kind === 'system');
}

function entryElement(kind, who, text, createdAt) {
  const entry = document.createElement('li');
  entry.className = `entry ${kind}`;
  const time = document.createElement('span');
  time.className = 'time';
  time.textContent = timeOf(createdAt);
  entry.append(time);
  if (who) {
    const from = document.createElement('span');
    from.className = 'who';
    from.textContent = who;
    entry.append(from);
  }
  const body = document.createElement('span');
  body.className = 'text';
  body.textContent = text;
  entry.append(body);
  return entry;
}

function nearBottom(log) {
  return log.scrollHeight - log.scrollTop - log.clientHeight < 40;
}

/** Keeps the view pinned to the newest entry when it was there before `change` ran. */
function keepingScroll(change) {
  const log = $('log');
  const atBottom = nearBottom(log);
  const fromBottom = log.scrollHeight - log.scrollTop;
  change(log);
  log.scrollTop = atBottom ? log.scrollHeight : log.scrollHeight - fromBottom;
}

/** A stored message, in `seq` order; replaces the pending entry with the same id, never duplicates. */
function renderMessage(message, me) {
  const system = isSystemBody(message.body);
  const kind = system ? 'server' : message.sender === me ? 'chat mine' : 'chat';
  const entry = entryElement(kind, message.sender, bodyText(message.body), message.createdAt);
  entry.dataset.id = message.id;
  entry.dataset.seq = String(message.seq);
  entry.dataset.from = message.sender;
  keepingScroll((log) => {
    for (const old of log.querySelectorAll('li[data-id]')) {
      if (old.dataset.id === message.id) old.remove();
    }
    // From the end: the newest messages arrive most often. Entries without a seq (notices, pending sends)
    // stay below the stored ones they follow.
    let before = null;
    for (let node = log.lastElementChild; node; node = node.previousElementSibling) {
      if (node.dataset.seq === undefined) {
        if (node.dataset.id === undefined) continue;
        before = node;
        continue;
      }
      if (Number(node.dataset.seq) < message.seq) break;
      before = node;
    }
    log.insertBefore(entry, before);
  });
}

/** A message being sent (no seq yet). */
function renderPending(id, me, text) {
  const entry = entryElement('chat mine pending', me, text);
  entry.dataset.id = id;
  entry.dataset.from = me;
  keepingScroll((log) => log.append(entry));
}

function markPendingFailed(id, reason) {
  for (const entry of $('log').querySelectorAll('li.pending')) {
    if (entry.dataset.id !== id) continue;
    entry.classList.add('failed');
    entry.title = reason;
  }
}

/** A local notice (connection state, errors): not stored, never counted. */
function addNotice(text, kind = '') {
  const entry = entryElement(`system ${kind}`.trim(), '', text);
  keepingScroll((log) => log.append(entry));
}

/** A frame to the room that is not a stored message (e.g. a raw POST /api/publish to the group). */
function addTransient(text) {
  const entry = entryElement('server transient', 'server', text);
  keepingScroll((log) => log.append(entry));
}

function renderStartOfHistory(room) {
  const log = $('log');
  if (log.querySelector('li.start')) return;
  const entry = entryElement('system start', '', `This is the start of #${room}.`);
  log.prepend(entry);
}

function renderRooms(rooms, current, onOpen) {
  const list = $('rooms');
  const items = [...rooms.values()].sort((a, b) => a.id.localeCompare(b.id));
  list.replaceChildren(
    ...items.map((room) => {
      const item = document.createElement('li');
      item.dataset.room = room.id;
      const button = document.createElement('button');
      button.type = 'button';
      button.className = room.id === current ? 'room current' : 'room';
      button.append(`# ${room.title || room.id}`);
      const badge = document.createElement('span');
      badge.className = 'unread';
      badge.textContent = String(room.unread);
      badge.hidden = !(room.unread > 0);
      button.append(badge);
      button.addEventListener('click', () => onOpen(room.id));
      item.append(button);
      return item;
    }),
  );
}

function renderMembers(members, me) {
  const names = [...members].sort();
  $('member-count').textContent = String(names.length);
  $('members').replaceChildren(
    ...names.map((name) => {
      const item = document.createElement('li');
      item.textContent = name === me ? `${name} (you)` : name;
      if (name === me) item.className = 'you';
      return item;
    }),
  );
}

function renderNotifications(notifications, unread) {
  const badge = $('notifications-unread');
  badge.textContent = String(unread);
  badge.hidden = !(unread > 0);
  const items = [...notifications.values()].sort((a, b) => b.seq - a.seq);
  $('notification-list').replaceChildren(
    ...items.map((notification) => {
      const data = notification.data;
      const text = data && typeof data === 'object' && typeof data.text === 'string' ? data.text : JSON.stringify(data);
      const entry = entryElement('notification', '', text, notification.createdAt);
      entry.dataset.id = notification.id;
      entry.dataset.seq = String(notification.seq);
      return entry;
    }),
  );
}
