// Browser test of `handler dev` and its chat page on durable conversations (#16 item 5): Debian's Chromium
// (/usr/bin/chromium), driven by playwright-core, opens the page as two users. Rooms are conversations;
// messages are stored first and shown once, in seq order, whatever the socket misses: alice's socket is cut
// while bob sends, and the sync after her reconnect shows each message once and in order; a reload shows
// the full history (scroll-back included); an unread badge appears and clears; a server-side publish is a
// stored system message; a notification reaches the panel. Screenshots go to artifacts/ (gitignored).
//
// It builds nothing: it runs the already-built `target/debug/handler dev --port 0 --emulator-port 0
// --data-dir <fresh temp dir>` (override with HANDLER_BIN) and reads the addresses from the banner.
// Run: node --test tests/browser/

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const HANDLER_BIN = process.env.HANDLER_BIN ?? `${REPO}target/debug/handler`;
const CHROMIUM_BIN = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
const ARTIFACTS = `${REPO}artifacts`;
/** Longest wait for one thing to happen (start-up, a message, a reconnect). */
const WAIT_MS = 20_000;
const ROOM = 'lobby';
// Debian's Chromium as the issue prescribes. playwright-core also gives every launch a fresh temporary
// --user-data-dir of its own (and refuses one in `args`), deleted when the browser closes.
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

let dev;
let browser;
let dataDir;

before(async () => {
  assert.ok(existsSync(HANDLER_BIN), `${HANDLER_BIN} is missing: run \`cargo build --bins\` first`);
  assert.ok(existsSync(CHROMIUM_BIN), `${CHROMIUM_BIN} is missing: apt-get install chromium`);
  await mkdir(ARTIFACTS, { recursive: true });
  dataDir = await mkdtemp(join(tmpdir(), 'chat-browser-'));
  dev = await startDev();
  browser = await chromium.launch({ executablePath: CHROMIUM_BIN, args: CHROMIUM_ARGS, timeout: WAIT_MS });
});

after(async () => {
  await browser?.close();
  await dev?.stop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

/** Starts `handler dev` on free ports; resolves once the banner named the chat page and the emulator. */
function startDev() {
  // Only PATH: settings inherited from the shell would change what dev mode configures.
  const child = spawn(HANDLER_BIN, ['dev', '--port', '0', '--emulator-port', '0', '--data-dir', dataDir], {
    env: { PATH: process.env.PATH },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error('handler dev printed no banner in time')), WAIT_MS);
    const fail = (error) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`${error.message}\n--- handler dev output ---\n${output}`));
    };
    const collect = (chunk) => {
      output += chunk;
      const chat = output.match(/chat page\s+(http:\/\/\S+)/);
      const emulator = output.match(/emulator\s+(http:\/\/\S+)/);
      if (chat && emulator) {
        clearTimeout(timer);
        resolve({
          chatUrl: chat[1],
          origin: new URL(chat[1]).origin,
          emulatorOrigin: new URL(emulator[1]).origin,
          output: () => output,
          async stop() {
            child.kill('SIGTERM');
            const stopped = await Promise.race([exited, delay(WAIT_MS).then(() => null)]);
            if (!stopped) child.kill('SIGKILL');
          },
        });
      }
    };
    child.stdout.setEncoding('utf8').on('data', collect);
    child.stderr.setEncoding('utf8').on('data', collect);
    child.once('error', fail);
    exited.then(({ code, signal }) => fail(new Error(`handler dev exited early (code ${code}, signal ${signal})`)));
  });
}

/** Resolves after `ms` without keeping the process alive for it. */
function delay(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/**
 * A user: a page in its own browser context, with every request it makes recorded. Its WebSocket goes
 * through a route the test can cut (`user.cut()`), as a network drop would.
 */
async function openUser(name, room = ROOM) {
  const context = await browser.newContext({ viewport: { width: 1200, height: 820 } });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  const user = { name, page, context, requests: [], errors: [], sockets: [] };
  page.on('request', (request) => user.requests.push(request.url()));
  page.on('pageerror', (error) => user.errors.push(String(error)));
  await page.routeWebSocket(/.*/, (socket) => {
    const server = socket.connectToServer();
    user.sockets.push({ socket, server });
  });
  user.cut = async () => {
    const { socket, server } = user.sockets.at(-1);
    server.close();
    await socket.close({ code: 4000, reason: 'cut by the test' });
  };
  await page.goto(dev.chatUrl);
  await signIn(user, room);
  return user;
}

async function signIn(user, room = ROOM) {
  await user.page.fill('#name', user.name);
  await user.page.fill('#room', room);
  await user.page.click('#join');
  await user.page.waitForSelector('#status[data-state="connected"]');
  await user.page.waitForSelector('#message:enabled');
}

const negotiations = (user) => user.requests.filter((url) => url.includes('/api/negotiate')).length;

/** Waits for a log entry of `kind` (chat, server, system) containing `text`. */
async function expectEntry(user, kind, text) {
  await user.page.locator(`#log .entry.${kind}`, { hasText: text }).first().waitFor();
}

/** The stored messages the log shows, top to bottom: {id, seq, text}. */
async function shown(user) {
  return user.page.locator('#log li[data-seq]').evaluateAll((entries) =>
    entries.map((entry) => ({
      id: entry.dataset.id,
      seq: Number(entry.dataset.seq),
      text: entry.querySelector('.text').textContent,
    })),
  );
}

async function say(user, text) {
  await user.page.fill('#message', text);
  await user.page.press('#message', 'Enter');
  // Stored: the pending entry became the stored message (it has a seq now).
  await user.page.locator('#log li[data-seq]', { hasText: text }).waitFor();
}

async function api(method, path, body) {
  const response = await fetch(`${dev.origin}${path}`, {
    method,
    headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

/** The whole history of a conversation from the API, ascending: the truth the page must show. */
async function history(room, user) {
  const items = [];
  for (let after = 0; after !== null; ) {
    const page = await api('GET', `/api/conversations/${room}/messages?after=${after}&limit=200&userId=${user}`);
    assert.equal(page.status, 200, JSON.stringify(page.body));
    items.push(...page.body.items);
    after = page.body.next;
  }
  return items;
}

async function unreadFor(user, room) {
  const list = await api('GET', `/api/conversations?userId=${user}`);
  assert.equal(list.status, 200, JSON.stringify(list.body));
  return list.body.items.find((item) => item.id === room)?.unread;
}

async function eventually(what, check) {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const value = await check();
    if (value) return value;
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await delay(100);
  }
}

function assertOnceInOrder(entries, label) {
  const ids = entries.map((entry) => entry.id);
  assert.equal(new Set(ids).size, ids.length, `${label}: no message shown twice`);
  const seqs = entries.map((entry) => entry.seq);
  assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), `${label}: in seq order`);
}

test('durable rooms: history, catch-up after a cut socket, unread badges, notifications', async () => {
  const alice = await openUser('alice');
  const bob = await openUser('bob');

  // Joining is stored: both see the notices, bob's page loaded alice's from history.
  await expectEntry(bob, 'server', 'alice joined #lobby');
  await expectEntry(alice, 'server', 'bob joined #lobby');
  await bob.page.locator('#members li', { hasText: 'alice' }).waitFor();
  await alice.page.locator('#members li', { hasText: 'bob' }).waitFor();

  // One sends, the other receives; the sender sees its own message stored.
  await say(alice, 'hello from alice');
  await expectEntry(bob, 'chat', 'hello from alice');
  assert.equal(await bob.page.locator('#log .entry.chat', { hasText: 'hello from alice' }).getAttribute('data-from'), 'alice');
  await alice.page.locator('#log .entry.chat.mine:not(.pending)', { hasText: 'hello from alice' }).waitFor();
  await say(bob, 'hi alice, bob here');
  await expectEntry(alice, 'chat', 'hi alice, bob here');

  // A server-side publish (the manage door) is a stored system message in both pages; so is the page's own.
  const published = await api('POST', `/api/manage/conversations/${ROOM}/messages`, {
    sender: 'server',
    id: 'published-1',
    body: { kind: 'system', text: 'published over HTTP' },
  });
  assert.equal(published.status, 201, JSON.stringify(published.body));
  await expectEntry(alice, 'server', 'published over HTTP');
  await expectEntry(bob, 'server', 'published over HTTP');
  await bob.page.click('.publish summary');
  await bob.page.fill('#publish-text', 'published from the page');
  await bob.page.click('#publish');
  await expectEntry(alice, 'server', 'published from the page');
  await bob.page.screenshot({ path: `${ARTIFACTS}/chat.png` });

  // Alice's socket is cut and her network stays down while bob sends: she cannot receive them live.
  assert.equal(negotiations(alice), 1);
  await alice.context.setOffline(true);
  await alice.cut();
  await alice.page.waitForSelector('#status[data-state="reconnecting"]');
  const missed = ['missed one', 'missed two', 'missed three'];
  for (const text of missed) await say(bob, text);
  assert.equal(await alice.page.locator('#log li[data-seq]', { hasText: 'missed' }).count(), 0);
  // The network is back: a fresh negotiate, a new socket, one sync: each message once, in order.
  await alice.context.setOffline(false);
  await expectEntry(alice, 'system', 'Reconnected; caught up');
  assert.ok(negotiations(alice) >= 2, 'alice negotiated a fresh URL to reconnect');
  await say(bob, 'after the cut');
  await expectEntry(alice, 'chat', 'after the cut');
  const afterCut = await shown(alice);
  assertOnceInOrder(afterCut, 'alice after the cut');
  for (const text of [...missed, 'after the cut']) {
    assert.equal(afterCut.filter((entry) => entry.text === text).length, 1, `"${text}" shown once`);
  }
  assert.deepEqual(
    afterCut.map((entry) => entry.seq),
    (await history(ROOM, 'alice')).map((message) => message.seq),
    'alice shows exactly the stored history',
  );
  await alice.page.screenshot({ path: `${ARTIFACTS}/chat-after-reconnect.png` });

  // The service closes the room's connections: both pages reconnect with a fresh URL.
  const closed = await api('POST', '/api/publish', { actionName: 'closeGroupConnections', group: `conversation:${ROOM}`, reason: 'browser test' });
  assert.equal(closed.status, 200, JSON.stringify(closed.body));
  for (const user of [alice, bob]) {
    await user.page.locator('#log .entry.system', { hasText: 'Reconnected; caught up' }).nth(user === alice ? 1 : 0).waitFor();
    await user.page.waitForSelector('#status[data-state="connected"]');
  }

  // Unread: both join a second room; alice looks at the lobby while bob writes there.
  await alice.page.fill('#add-room', 'side');
  await alice.page.press('#add-room', 'Enter');
  await alice.page.waitForSelector('#room-name:text-is("side")');
  await bob.page.fill('#add-room', 'side');
  await bob.page.press('#add-room', 'Enter');
  await expectEntry(bob, 'server', 'alice joined #side');
  await expectEntry(alice, 'server', 'bob joined #side');
  await bob.page.waitForSelector('#status[data-state="connected"]');
  await alice.page.click('#rooms li[data-room="lobby"] button');
  await alice.page.waitForSelector('#room-name:text-is("lobby")');
  await alice.page.waitForSelector('#status[data-state="connected"]');
  await eventually('alice to have read #side', async () => (await unreadFor('alice', 'side')) === 0);
  await say(bob, 'psst, in side');
  const badge = alice.page.locator('#rooms li[data-room="side"] .unread');
  await badge.waitFor({ state: 'visible' });
  assert.equal(await badge.textContent(), '1');
  assert.equal(await unreadFor('alice', 'side'), 1, 'the store counts the same');
  await alice.page.screenshot({ path: `${ARTIFACTS}/chat-unread.png` });
  await alice.page.click('#rooms li[data-room="side"] button');
  await expectEntry(alice, 'chat', 'psst, in side');
  await badge.waitFor({ state: 'hidden' });
  await eventually('the read marker to reach the store', async () => (await unreadFor('alice', 'side')) === 0);

  // A notification reaches alice's panel live; marking it read clears the badge.
  const notified = await api('POST', '/api/manage/notifications', { userIds: ['alice'], data: { text: 'you have mail' } });
  assert.equal(notified.status, 201, JSON.stringify(notified.body));
  const bell = alice.page.locator('#notifications-unread');
  await bell.waitFor({ state: 'visible' });
  assert.equal(await bell.textContent(), '1');
  await alice.page.click('#notifications-toggle');
  await alice.page.locator('#notification-list li', { hasText: 'you have mail' }).waitFor();
  await alice.page.click('#notifications-read');
  await bell.waitFor({ state: 'hidden' });
  await eventually('the notifications marker', async () => {
    const feed = await api('GET', '/api/notifications?userId=alice');
    return feed.status === 200 && feed.body.unread === 0;
  });

  // Scroll-back: enough history for several pages, then a reload shows all of it, once and in order.
  for (let i = 1; i <= 60; i += 1) {
    const sent = await api('POST', `/api/conversations/${ROOM}/messages?userId=bob`, { id: `bulk-${i}`, body: { text: `bulk ${i}` } });
    assert.equal(sent.status, 201, JSON.stringify(sent.body));
  }
  await alice.page.reload();
  assert.equal(await alice.page.inputValue('#name'), 'alice', 'the name is remembered');
  await signIn(alice, ROOM);
  await alice.page.locator('#log li[data-seq]', { hasText: 'bulk 60' }).waitFor();
  const truth = await history(ROOM, 'alice');
  assert.ok(truth.length > 50);
  assert.equal((await shown(alice)).length, 50, 'the latest page first');
  while (await alice.page.locator('#older').isVisible()) {
    const before = (await shown(alice)).length;
    await alice.page.locator('#log').evaluate((log) => {
      log.scrollTop = 0;
    });
    await eventually('an older page', async () => (await shown(alice)).length > before);
  }
  await alice.page.locator('#log li.start').waitFor();
  const reloaded = await shown(alice);
  assertOnceInOrder(reloaded, 'alice after the reload');
  assert.deepEqual(
    reloaded.map((entry) => entry.id),
    truth.map((message) => message.id),
    'the reload shows the full history',
  );

  // Signing out closes on purpose: back to the join form, no reconnect.
  await bob.page.click('#leave');
  await bob.page.waitForSelector('#join-view:not([hidden])');
  const negotiatedAtSignOut = negotiations(bob);
  await delay(1500);
  assert.equal(negotiations(bob), negotiatedAtSignOut, 'a deliberate close does not reconnect');

  // Nothing but the handler and the emulator was contacted, and no script failed.
  for (const user of [alice, bob]) {
    const elsewhere = user.requests.filter(
      (url) => !url.startsWith(`${dev.origin}/`) && !url.startsWith(dev.emulatorOrigin.replace('http:', 'ws:')),
    );
    assert.deepEqual(elsewhere, [], `${user.name} contacted only local servers`);
    assert.deepEqual(user.errors, [], `${user.name} had no script errors`);
  }
  await alice.context.close();
  await bob.context.close();
});

test('a name the handler refuses is shown on the join form, without retrying', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  const answered = [];
  page.on('response', (response) => {
    if (response.url().includes('/api/')) answered.push([new URL(response.url()).pathname, response.status()]);
  });
  await page.goto(dev.chatUrl);
  // A control character: the user id rules refuse it (400), so retrying cannot help.
  await page.fill('#name', 'bad\u0007name');
  await page.fill('#room', ROOM);
  await page.click('#join');
  await page.waitForSelector('#join-error:not([hidden])');
  // Refused before any route reads it: control characters never pass the query guard (400 InvalidQuery);
  // the first call (the caller's list) is refused, so no membership is made and nothing is negotiated.
  assert.match(await page.locator('#join-error').textContent(), /control character/i);
  assert.equal(await page.locator('#status').getAttribute('data-state'), 'error');
  assert.deepEqual(answered, [['/api/conversations', 400]]);
  await context.close();
});
