// The official JavaScript SDKs against the real emulator binary: @azure/web-pubsub
// (WebPubSubServiceClient, REST) and @azure/web-pubsub-client (WebPubSubClient, the reliable JSON
// subprotocol). They judge protocol fidelity: tokens, REST paths and status codes, message
// framing and reliable reconnection.
//
// The emulator runs on 127.0.0.1 with a free port (`--port 0`); build it first with
// `cargo build -p webpubsub-emulator` or point WEBPUBSUB_EMULATOR_BIN at a binary.
// Run: node --test tests/interop/
//
// Every wait is bounded; timeouts only turn a hang into a failure. Absence of a message is
// checked without timing: after the send under test a marker goes to the same connection, and
// the next message the client receives must be that marker.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import readline from "node:readline";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";

import { WebPubSubServiceClient, odata } from "@azure/web-pubsub";
import { WebPubSubClient } from "@azure/web-pubsub-client";

const HUB = "jshub";
const INVOKE_HUB = "jsinvoke";
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const STARTUP_MS = 30_000;
const RECEIVE_MS = 10_000;

const unique = (prefix) => `${prefix}-${randomBytes(4).toString("hex")}`;

/** Rejects after `ms` with `what` unless `promise` settles first. */
function within(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A FIFO of events with bounded waits. */
class Inbox {
  #items = [];
  #waiters = [];

  push(item) {
    const waiter = this.#waiters.shift();
    if (waiter) waiter(item);
    else this.#items.push(item);
  }

  next(what = "next event") {
    if (this.#items.length > 0) return Promise.resolve(this.#items.shift());
    return within(new Promise((resolve) => this.#waiters.push(resolve)), RECEIVE_MS, what);
  }
}

/** Starts the emulator binary with extra `args`; resolves with the process and its connection string. */
async function startEmulator(args = []) {
  const binary =
    process.env.WEBPUBSUB_EMULATOR_BIN || path.join(REPO, "target", "debug", "webpubsub-emulator");
  assert.ok(existsSync(binary), `emulator binary not found at ${binary}: run cargo build -p webpubsub-emulator`);
  const child = spawn(binary, ["--port", "0", ...args], { stdio: ["ignore", "pipe", "ignore"] });
  const lines = readline.createInterface({ input: child.stdout });
  const connectionString = await within(
    new Promise((resolve, reject) => {
      lines.on("line", (line) => {
        if (line.startsWith("Connection string: ")) resolve(line.slice("Connection string: ".length).trim());
      });
      child.on("exit", (code) => reject(new Error(`emulator exited early with ${code}`)));
    }),
    STARTUP_MS,
    "emulator start",
  );
  return { child, connectionString };
}

async function stopEmulator(child) {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGINT");
  try {
    await within(exited, 10_000, "emulator stop");
  } catch {
    child.kill("SIGKILL");
    await within(exited, 10_000, "emulator kill");
  }
}

/** A TCP relay to the emulator that can be cut (all sockets destroyed) and restored. */
class CuttableProxy {
  #sockets = new Set();
  #up = true;
  refused = 0;

  constructor(targetPort) {
    this.server = net.createServer((downstream) => {
      if (!this.#up) {
        this.refused += 1;
        downstream.destroy();
        return;
      }
      const upstream = net.connect(targetPort, "127.0.0.1");
      for (const socket of [downstream, upstream]) {
        this.#sockets.add(socket);
        socket.on("close", () => this.#sockets.delete(socket));
        socket.on("error", () => {
          downstream.destroy();
          upstream.destroy();
        });
      }
      downstream.pipe(upstream);
      upstream.pipe(downstream);
    });
  }

  async listen() {
    await new Promise((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    return this.server.address().port;
  }

  cut() {
    this.#up = false;
    for (const socket of this.#sockets) socket.destroy();
  }

  restore() {
    this.#up = true;
  }

  async close() {
    this.cut();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

/**
 * A local upstream event handler: passes abuse protection and answers every user event with
 * JSON naming the event and echoing the body it received.
 */
async function startEventHandler() {
  const server = http.createServer((request, response) => {
    if (request.method === "OPTIONS") {
      response.writeHead(200, { "WebHook-Allowed-Origin": "*" }).end();
      return;
    }
    const chunks = [];
    request.on("data", (chunk) => chunks.push(chunk));
    request.on("end", () => {
      const body = JSON.stringify({
        event: request.headers["ce-eventname"],
        contentType: request.headers["content-type"],
        received: Buffer.concat(chunks).toString("utf8"),
      });
      response.writeHead(200, { "Content-Type": "application/json" }).end(body);
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return server;
}

/** Polls `condition` every 50 ms, at most `RECEIVE_MS` in total. */
async function eventually(condition, what) {
  for (let i = 0; i < RECEIVE_MS / 50; i++) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.fail(`condition never held: ${what}`);
}

describe("official JS SDKs against the emulator", () => {
  let emulator;
  let service;
  let handler;
  const started = [];

  /** Starts a WebPubSubClient for `url`; its events go to inboxes. */
  async function startClient(url, options = {}) {
    // Client 1.1.0 leaves its keep-alive timers (20 s, 40 s) pending after stop(), which would
    // hold the test process open; these tests do not exercise keep-alive, so turn it off.
    const client = new WebPubSubClient(url, { keepAliveIntervalInMs: 0, keepAliveTimeoutInMs: 0, ...options });
    const inbox = { server: new Inbox(), group: new Inbox(), disconnected: new Inbox(), stopped: new Inbox() };
    const connected = new Promise((resolve) => client.on("connected", resolve));
    client.on("server-message", (e) => inbox.server.push(e.message));
    client.on("group-message", (e) => inbox.group.push(e.message));
    client.on("disconnected", (e) => inbox.disconnected.push(e));
    client.on("stopped", (e) => inbox.stopped.push(e));
    started.push(client);
    await within(client.start(), RECEIVE_MS, "client start");
    const { connectionId, userId } = await within(connected, RECEIVE_MS, "connected event");
    return { client, inbox, connectionId, userId };
  }

  async function connectUser(userId, roles = [], options = {}) {
    const token = await service.getClientAccessToken({ userId, roles });
    return startClient(token.url, options);
  }

  /** The next server message of `c` must be a fresh marker (so nothing else came before it). */
  async function assertNextIsMarker(c) {
    const marker = unique("marker");
    await service.sendToConnection(c.connectionId, marker, { contentType: "text/plain" });
    const message = await c.inbox.server.next("marker");
    assert.equal(message.data, marker);
  }

  before(async () => {
    handler = await startEventHandler();
    const handlerUrl = `http://127.0.0.1:${handler.address().port}/events`;
    emulator = await startEmulator(["--event-handler", `${INVOKE_HUB}=${handlerUrl};user=*`]);
    // The emulator speaks plain http on 127.0.0.1; core-rest-pipeline refuses that unless told.
    service = new WebPubSubServiceClient(emulator.connectionString, HUB, { allowInsecureConnection: true });
  });

  after(async () => {
    for (const client of started) client.stop();
    if (emulator) await stopEmulator(emulator.child);
    if (handler) {
      handler.closeAllConnections();
      await new Promise((resolve) => handler.close(resolve));
    }
  });

  it("invokeEvent reaches the upstream as a user event and resolves with the handler's reply", async () => {
    const invokeService = new WebPubSubServiceClient(emulator.connectionString, INVOKE_HUB, {
      allowInsecureConnection: true,
    });
    const token = await invokeService.getClientAccessToken({ userId: unique("invoker") });
    const { client } = await startClient(token.url);
    const result = await within(client.invokeEvent("echo", "hello", "text"), RECEIVE_MS, "invoke response");
    assert.equal(typeof result.invocationId, "string");
    assert.equal(result.dataType, "json");
    assert.deepEqual(result.data, { event: "echo", contentType: "text/plain", received: "hello" });

    const json = await within(client.invokeEvent("sum", { a: 1, b: [2] }, "json"), RECEIVE_MS, "json invoke");
    assert.deepEqual(JSON.parse(json.data.received), { a: 1, b: [2] });
    assert.equal(json.data.contentType, "application/json");
  });

  it("connects with getClientAccessToken, joins a group, and a second client receives group messages", async () => {
    const roles = ["webpubsub.joinLeaveGroup", "webpubsub.sendToGroup"];
    const alice = await connectUser(unique("alice"), roles);
    const bob = await connectUser(unique("bob"), ["webpubsub.joinLeaveGroup"]);
    assert.match(alice.userId, /^alice-/);
    const group = unique("room");
    await alice.client.joinGroup(group);
    await bob.client.joinGroup(group);
    assert.equal(await service.groupExists(group), true);

    await alice.client.sendToGroup(group, "hi", "text");
    let message = await bob.inbox.group.next("text group message");
    assert.deepEqual([message.group, message.fromUserId, message.dataType, message.data], [group, alice.userId, "text", "hi"]);

    await alice.client.sendToGroup(group, { n: 1 }, "json", { noEcho: true });
    message = await bob.inbox.group.next("json group message");
    assert.deepEqual([message.dataType, message.data], ["json", { n: 1 }]);

    await alice.client.sendToGroup(group, new Uint8Array([1, 2, 3]).buffer, "binary");
    message = await bob.inbox.group.next("binary group message");
    assert.equal(message.dataType, "binary");
    assert.deepEqual([...new Uint8Array(message.data)], [1, 2, 3]);

    // Alice got her own text and binary messages but not the noEcho one.
    assert.equal((await alice.inbox.group.next("own text")).data, "hi");
    assert.equal((await alice.inbox.group.next("own binary")).dataType, "binary");

    await bob.client.leaveGroup(group);
    await alice.client.sendToGroup(group, "after-leave", "text");
    assert.equal((await alice.inbox.group.next("own after-leave")).data, "after-leave");
    await assertNextIsMarker(bob);
  });

  it("delivers server messages (text, json, binary) from sendToAll, group.sendToAll, sendToUser and sendToConnection", async () => {
    const user = unique("carol");
    const group = unique("news");
    const carol = await connectUser(user, ["webpubsub.joinLeaveGroup"]);
    await carol.client.joinGroup(group);

    await service.sendToAll("all-text", { contentType: "text/plain" });
    let message = await carol.inbox.server.next("sendToAll text");
    assert.deepEqual([message.dataType, message.data], ["text", "all-text"]);

    await service.sendToAll({ hello: ["world"] });
    message = await carol.inbox.server.next("sendToAll json");
    assert.deepEqual([message.dataType, message.data], ["json", { hello: ["world"] }]);

    await service.sendToAll(Buffer.from([0, 255, 7]));
    message = await carol.inbox.server.next("sendToAll binary");
    assert.equal(message.dataType, "binary");
    assert.deepEqual([...new Uint8Array(message.data)], [0, 255, 7]);

    await service.group(group).sendToAll("group-text", { contentType: "text/plain" });
    assert.equal((await carol.inbox.server.next("group.sendToAll")).data, "group-text");

    await service.sendToUser(user, { to: "user" });
    assert.deepEqual((await carol.inbox.server.next("sendToUser")).data, { to: "user" });

    await service.sendToConnection(carol.connectionId, "to-connection", { contentType: "text/plain" });
    assert.equal((await carol.inbox.server.next("sendToConnection")).data, "to-connection");
  });

  it("honours excluded and OData filters on sends", async () => {
    const daveId = unique("dave");
    const dave = await connectUser(daveId);
    const erin = await connectUser(unique("erin"));

    await service.sendToAll("not-dave", { contentType: "text/plain", excludedConnections: [dave.connectionId] });
    assert.equal((await erin.inbox.server.next("excluded send")).data, "not-dave");
    await assertNextIsMarker(dave);

    await service.sendToAll("only-dave", { contentType: "text/plain", filter: odata`userId eq ${daveId}` });
    assert.equal((await dave.inbox.server.next("filtered send")).data, "only-dave");
    await assertNextIsMarker(erin);

    await assert.rejects(
      service.sendToAll("x", { contentType: "text/plain", filter: "userId eq" }),
      (error) => error.statusCode === 400 && /invalid filter/.test(error.message),
    );
  });

  it("manages group membership of connections and users", async () => {
    const user = unique("frank");
    const group = unique("team");
    const frank = await connectUser(user);

    await service.group(group).addConnection(frank.connectionId);
    assert.equal(await service.groupExists(group), true);
    await service.group(group).sendToAll("member", { contentType: "text/plain" });
    assert.equal((await frank.inbox.server.next("after addConnection")).data, "member");
    const members = [];
    // SDK 1.2.0 wraps the pager in a tracing span, so listConnections() resolves to it.
    for await (const member of await service.group(group).listConnections()) members.push(member);
    assert.deepEqual(members, [{ connectionId: frank.connectionId, userId: user }]);

    await service.group(group).removeConnection(frank.connectionId);
    assert.equal(await service.groupExists(group), false);
    await service.group(group).sendToAll("not-member", { contentType: "text/plain" });
    await assertNextIsMarker(frank);

    await service.group(group).addUser(user);
    assert.equal(await service.groupExists(group), true);
    await service.group(group).removeUser(user);
    assert.equal(await service.groupExists(group), false);

    await service.group(group).addUser(user);
    await service.removeUserFromAllGroups(user);
    assert.equal(await service.groupExists(group), false);

    await service.group(group).addConnection(frank.connectionId);
    await service.removeConnectionFromAllGroups(frank.connectionId);
    assert.equal(await service.groupExists(group), false);

    await service.addConnectionsToGroups([group], odata`userId eq ${user}`);
    assert.equal(await service.groupExists(group), true);
    await service.removeConnectionsFromGroups([group], odata`userId eq ${user}`);
    assert.equal(await service.groupExists(group), false);

    await assert.rejects(service.group(group).addConnection("no-such-connection"), (error) => error.statusCode === 404);
  });

  it("answers existence checks", async () => {
    const user = unique("gina");
    const gina = await connectUser(user);
    assert.equal(await service.connectionExists(gina.connectionId), true);
    assert.equal(await service.connectionExists("no-such-connection"), false);
    assert.equal(await service.userExists(user), true);
    assert.equal(await service.userExists(unique("nobody")), false);
    assert.equal(await service.groupExists(unique("nothing")), false);
  });

  it("grants, checks and revokes permissions, and the client feels them", async () => {
    const group = unique("guarded");
    const hank = await connectUser(unique("hank"), [], { messageRetryOptions: { maxRetries: 0 } });
    assert.equal(await service.hasPermission(hank.connectionId, "sendToGroup", { targetName: group }), false);
    await assert.rejects(hank.client.sendToGroup(group, "denied", "text"));

    await service.grantPermission(hank.connectionId, "sendToGroup", { targetName: group });
    assert.equal(await service.hasPermission(hank.connectionId, "sendToGroup", { targetName: group }), true);
    assert.equal(await service.hasPermission(hank.connectionId, "sendToGroup", { targetName: unique("other") }), false);
    await hank.client.sendToGroup(group, "allowed", "text");

    await service.revokePermission(hank.connectionId, "sendToGroup", { targetName: group });
    assert.equal(await service.hasPermission(hank.connectionId, "sendToGroup", { targetName: group }), false);
    await assert.rejects(hank.client.sendToGroup(group, "denied-again", "text"));

    await service.grantPermission(hank.connectionId, "joinLeaveGroup");
    assert.equal(await service.hasPermission(hank.connectionId, "joinLeaveGroup", { targetName: unique("any") }), true);
    await hank.client.joinGroup(group);
  });

  it("closes connections by id, user, group and hub", async () => {
    const noReconnect = { autoReconnect: false };
    const user = unique("ivan");
    const group = unique("closing");

    const single = await connectUser(unique("single"), [], noReconnect);
    await service.closeConnection(single.connectionId, { reason: "bye" });
    const disconnected = await single.inbox.disconnected.next("disconnected after closeConnection");
    assert.equal(disconnected.message?.message, "bye");
    await single.inbox.stopped.next("stopped after closeConnection");
    assert.equal(await service.connectionExists(single.connectionId), false);

    const first = await connectUser(user, [], noReconnect);
    const second = await connectUser(user, [], noReconnect);
    await service.closeUserConnections(user, { reason: "user-close" });
    for (const c of [first, second]) {
      await c.inbox.stopped.next("stopped after closeUserConnections");
      assert.equal(await service.connectionExists(c.connectionId), false);
    }
    assert.equal(await service.userExists(user), false);

    const member = await connectUser(unique("member"), ["webpubsub.joinLeaveGroup"], noReconnect);
    const bystander = await connectUser(unique("bystander"), [], noReconnect);
    await member.client.joinGroup(group);
    await service.group(group).closeAllConnections({ reason: "group-close" });
    await member.inbox.stopped.next("stopped after group close");
    assert.equal(await service.connectionExists(bystander.connectionId), true);

    const kept = await connectUser(unique("kept"), [], noReconnect);
    await service.closeAllConnections({ excluded: [kept.connectionId], reason: "hub-close" });
    await bystander.inbox.stopped.next("stopped after hub close");
    assert.equal(await service.connectionExists(kept.connectionId), true);
    await assertNextIsMarker(kept);
  });

  it("recovers a dropped connection without losing messages sent during the gap", async () => {
    const emulatorPort = Number(/Port=(\d+)/.exec(emulator.connectionString)[1]);
    const proxy = new CuttableProxy(emulatorPort);
    const proxyPort = await proxy.listen();
    let judy;
    try {
      const user = unique("judy");
      const token = await service.getClientAccessToken({ userId: user });
      const viaProxy = token.url.replace(`:${emulatorPort}/`, `:${proxyPort}/`);
      assert.notEqual(viaProxy, token.url);
      judy = await startClient(viaProxy);

      await service.sendToUser(user, "before-0", { contentType: "text/plain" });
      assert.equal((await judy.inbox.server.next("before the cut")).data, "before-0");

      proxy.cut();
      const gap = ["gap-1", "gap-2", "gap-3"];
      for (const text of gap) await service.sendToUser(user, text, { contentType: "text/plain" });
      // At least one recovery attempt must have hit the cut before the link comes back.
      await eventually(() => proxy.refused > 0, "a recovery attempt while the proxy is down");
      proxy.restore();

      for (const text of gap) {
        assert.equal((await judy.inbox.server.next(`recovered ${text}`)).data, text);
      }
      await service.sendToUser(user, "after", { contentType: "text/plain" });
      assert.equal((await judy.inbox.server.next("after recovery")).data, "after");
      assert.equal(await service.connectionExists(judy.connectionId), true);
    } finally {
      // Stop the client while its socket is open: a client stopped mid-recovery keeps retrying.
      if (judy) {
        judy.client.stop();
        await judy.inbox.stopped.next("stopped");
      }
      await proxy.close();
    }
  });
});
