// Browser test of `handler dev` and its chat page: Debian's Chromium (/usr/bin/chromium), driven by
// playwright-core, opens the page as two users in one room. One sends, the other receives; a publish over
// HTTP reaches both; a server-side close makes both reconnect with a freshly negotiated URL; leaving is
// announced. Screenshots go to artifacts/ (gitignored).
//
// It builds nothing: it runs the already-built `target/debug/handler dev --port 0 --emulator-port 0`
// (override with HANDLER_BIN) and reads the addresses from the banner. Run: node --test tests/browser/

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
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

before(async () => {
  assert.ok(existsSync(HANDLER_BIN), `${HANDLER_BIN} is missing: run \`cargo build --bins\` first`);
  assert.ok(existsSync(CHROMIUM_BIN), `${CHROMIUM_BIN} is missing: apt-get install chromium`);
  await mkdir(ARTIFACTS, { recursive: true });
  dev = await startDev();
  browser = await chromium.launch({ executablePath: CHROMIUM_BIN, args: CHROMIUM_ARGS, timeout: WAIT_MS });
});

after(async () => {
  await browser?.close();
  await dev?.stop();
});

/** Starts `handler dev` on free ports; resolves once the banner named the chat page and the emulator. */
function startDev() {
  // Only PATH: settings inherited from the shell would change what dev mode configures.
  const child = spawn(HANDLER_BIN, ['dev', '--port', '0', '--emulator-port', '0'], {
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

/** A user: a page in its own browser context, with every request it makes recorded. */
async function openUser(name) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 760 } });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  const user = { name, page, context, requests: [], errors: [] };
  page.on('request', (request) => user.requests.push(request.url()));
  page.on('pageerror', (error) => user.errors.push(String(error)));
  await page.goto(dev.chatUrl);
  await page.fill('#name', name);
  await page.fill('#room', ROOM);
  await page.click('#join');
  await page.waitForSelector('#status[data-state="connected"]');
  await page.waitForSelector('#message:enabled');
  return user;
}

const negotiations = (user) => user.requests.filter((url) => url.includes('/api/negotiate')).length;

/** Waits for a log entry of `kind` (chat, server, system) containing `text`. */
async function expectEntry(user, kind, text) {
  await user.page.locator(`#log .entry.${kind}`, { hasText: text }).first().waitFor();
}

async function members(user) {
  return (await user.page.locator('#members li').allTextContents()).sort();
}

async function publish(body) {
  const response = await fetch(`${dev.origin}/api/publish`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  const reply = await response.json();
  assert.equal(response.status, 200, JSON.stringify(reply));
  assert.deepEqual(
    reply.results.map((result) => result.status),
    ['done'],
    JSON.stringify(reply),
  );
}

test('two users chat in one room through handler dev', async () => {
  const alice = await openUser('alice');
  const bob = await openUser('bob');

  // Presence: alice sees bob arrive; bob learns alice was already there.
  await expectEntry(alice, 'system', 'bob joined');
  await alice.page.locator('#members li', { hasText: 'bob' }).waitFor();
  await bob.page.locator('#members li', { hasText: 'alice' }).waitFor();
  assert.deepEqual(await members(alice), ['alice (you)', 'bob']);
  assert.deepEqual(await members(bob), ['alice', 'bob (you)']);

  // One sends, the other receives (and the sender sees its own message come back from the room).
  await alice.page.fill('#message', 'hello from alice');
  await alice.page.click('#send');
  await expectEntry(bob, 'chat', 'hello from alice');
  assert.equal(await bob.page.locator('#log .entry.chat', { hasText: 'hello from alice' }).getAttribute('data-from'), 'alice');
  await alice.page.locator('#log .entry.chat.mine', { hasText: 'hello from alice' }).waitFor();

  await bob.page.fill('#message', 'hi alice, bob here');
  await bob.page.press('#message', 'Enter');
  await expectEntry(alice, 'chat', 'hi alice, bob here');

  // A server-side publish over HTTP appears in both pages.
  await publish({ room: ROOM, message: 'published over HTTP' });
  await expectEntry(alice, 'server', 'published over HTTP');
  await expectEntry(bob, 'server', 'published over HTTP');
  await bob.page.screenshot({ path: `${ARTIFACTS}/chat.png` });

  // The service closes the room's connections: both pages reconnect with a fresh URL and rejoin.
  const negotiatedBefore = [negotiations(alice), negotiations(bob)];
  assert.deepEqual(negotiatedBefore, [1, 1]);
  await publish({ actionName: 'closeGroupConnections', group: ROOM, reason: 'browser test' });
  for (const user of [alice, bob]) {
    await expectEntry(user, 'system', 'Reconnected to #lobby');
    await user.page.waitForSelector('#status[data-state="connected"]');
    await user.page.waitForSelector('#message:enabled');
    assert.ok(negotiations(user) >= 2, `${user.name} negotiated a fresh URL to reconnect`);
  }
  await alice.page.fill('#message', 'still here after reconnecting');
  await alice.page.click('#send');
  await expectEntry(bob, 'chat', 'still here after reconnecting');
  await alice.page.screenshot({ path: `${ARTIFACTS}/chat-after-reconnect.png` });

  // Leaving is announced and bob drops out of alice's member list.
  await bob.page.click('#leave');
  await bob.page.waitForSelector('#join-view:not([hidden])');
  await expectEntry(alice, 'system', 'bob left');
  await alice.page.locator('#members li', { hasText: 'bob' }).waitFor({ state: 'detached' });
  assert.deepEqual(await members(alice), ['alice (you)']);

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

test('a name negotiate refuses is shown on the join form, without retrying', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  const negotiated = [];
  page.on('response', (response) => {
    if (response.url().includes('/api/negotiate')) negotiated.push(response.status());
  });
  await page.goto(dev.chatUrl);
  // A control character: the user id rules refuse it (400), so retrying cannot help.
  await page.fill('#name', 'bad\u0007name');
  await page.fill('#room', ROOM);
  await page.click('#join');
  await page.waitForSelector('#join-error:not([hidden])');
  // Refused before negotiate reads it: control characters never pass the query guard (400 InvalidQuery).
  assert.match(await page.locator('#join-error').textContent(), /control character/i);
  assert.equal(await page.locator('#status').getAttribute('data-state'), 'error');
  assert.deepEqual(negotiated, [400]);
  await context.close();
});
