// Known-answer vectors from the official JavaScript SDK (@azure/web-pubsub).
//
// Prints one JSON document to stdout, byte-for-byte the same on every run, so CI can `diff` it against
// the recorded fixture `js.json`. `Date.now` is pinned so `iat`/`exp` are reproducible; REST calls never
// leave the process: a custom `httpClient` records each request and answers it.
//
//     cd tests/interop && node vectors/make-vectors.mjs > vectors/js.json

import { WebPubSubServiceClient } from "@azure/web-pubsub";
import { createHttpHeaders } from "@azure/core-rest-pipeline";

const NOW = 1_700_000_000;
const KEY = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH";
Date.now = () => NOW * 1000;

function decodePart(part) {
  return JSON.parse(Buffer.from(part, "base64url").toString("utf8"));
}
const headerOf = (token) => decodePart(token.split(".")[0]);
const claimsOf = (token) => decodePart(token.split(".")[1]);

/** Sorts object keys recursively so the printed JSON does not depend on insertion order. */
function canonical(value) {
  if (Array.isArray(value)) return value.map(canonical);
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, canonical(value[k])]),
    );
  }
  return value;
}

const clientCases = [
  {
    name: "anonymous-default",
    connection_string: `Endpoint=https://contoso.webpubsub.azure.com;AccessKey=${KEY};Version=1.0;`,
    hub: "chat",
    args: {},
  },
  {
    name: "user-roles-groups-30min",
    connection_string: `Endpoint=https://contoso.webpubsub.azure.com/;AccessKey=${KEY};Version=1.0;`,
    hub: "chat",
    args: {
      userId: "alice",
      roles: ["webpubsub.joinLeaveGroup.room1", "webpubsub.sendToGroup"],
      groups: ["room1", "room 2"],
      expirationTimeInMinutes: 30,
    },
  },
  {
    name: "mqtt-user",
    connection_string: `Endpoint=https://contoso.webpubsub.azure.com;AccessKey=${KEY}`,
    hub: "devices",
    args: { userId: "device-7", clientProtocol: "mqtt" },
  },
  {
    name: "socketio-user",
    connection_string: `Endpoint=https://contoso.webpubsub.azure.com;AccessKey=${KEY}`,
    hub: "sio_hub",
    args: { userId: "bob", clientProtocol: "socketio", expirationTimeInMinutes: 5 },
  },
  {
    name: "http-port-override",
    connection_string: `Endpoint=http://localhost;Port=8080;AccessKey=${KEY};Version=1.0;`,
    hub: "Hub1",
    args: { userId: "carol", roles: ["webpubsub.sendToGroup.g1"] },
  },
  // No "uppercase-endpoint" case here: this SDK prefixes `https://` to any endpoint not starting with a
  // lowercase "http", so `HTTPS://Host` becomes `https://HTTPS://Host`. python.json records that case.
  {
    name: "non-ascii-user",
    connection_string: `Endpoint=https://contoso.webpubsub.azure.com;AccessKey=${KEY}`,
    hub: "chat",
    args: { userId: "Jos\u00e9 \u6771\u4eac", groups: ["caf\u00e9"] },
  },
];

async function clientVectors() {
  const out = [];
  for (const c of clientCases) {
    const client = new WebPubSubServiceClient(c.connection_string, c.hub);
    const result = await client.getClientAccessToken(c.args);
    out.push({
      name: c.name,
      connection_string: c.connection_string,
      hub: c.hub,
      args: c.args,
      baseUrl: result.baseUrl,
      url: result.url,
      token: result.token,
      header: headerOf(result.token),
      claims: claimsOf(result.token),
    });
  }
  return out;
}

async function restVectors() {
  let recorded = [];
  let reply = { status: 200, body: undefined };
  const httpClient = {
    async sendRequest(request) {
      recorded.push(request);
      const headers = createHttpHeaders(reply.body ? { "content-type": "application/json" } : {});
      return { status: reply.status, headers, request, bodyAsText: reply.body };
    },
  };
  const client = new WebPubSubServiceClient(
    `Endpoint=https://contoso.webpubsub.azure.com;AccessKey=${KEY};Version=1.0;`,
    "chat",
    { httpClient },
  );
  const generated = client.client; // the generated client, for the two operations the facade hides
  const excluded = ["conn-1", "conn/2"];
  const filter = "userId ne 'bob' and 'room 1' in groups";
  const calls = [
    ["health", 200, () => generated.healthApi.getServiceStatus()],
    ["send_to_all_text", 202, () => client.sendToAll("hello w\u00f6rld", { contentType: "text/plain", excludedConnections: excluded, filter, messageTtlSeconds: 30 })],
    ["send_to_all_json", 202, () => client.sendToAll({ a: 1 })],
    ["send_to_all_binary", 202, () => client.sendToAll(new Uint8Array([0, 1, 255]).buffer)],
    ["close_all_connections", 204, () => client.closeAllConnections({ excluded, reason: "maintenance window" })],
    ["generate_token", 200, () => generated.webPubSub.generateClientToken("chat", { userId: "alice", roles: ["webpubsub.sendToGroup", "r2"], groups: ["g1", "g 2"], expirationTimeInMinutes: 15, clientType: "MQTT" })],
    ["add_connections_to_groups", 200, () => client.addConnectionsToGroups(["g1", "g 2"], filter)],
    ["remove_connections_from_groups", 200, () => client.removeConnectionsFromGroups(["g1"], "userId eq 'x'")],
    ["close_connection", 204, () => client.closeConnection("conn 1", { reason: "bye" })],
    ["connection_exists", 200, () => client.connectionExists("conn-1")],
    ["send_to_connection", 202, () => client.sendToConnection("conn-1", "hi", { contentType: "text/plain", messageTtlSeconds: 5 })],
    ["remove_connection_from_all_groups", 204, () => client.removeConnectionFromAllGroups("conn-1")],
    ["group_exists", 200, () => client.groupExists("room 1/a?b#c")],
    ["close_group_connections", 204, () => client.group("room1").closeAllConnections({ excluded: ["c1"], reason: "r" })],
    ["send_to_group", 202, () => client.group("room 1").sendToAll("hey", { contentType: "text/plain", excludedConnections: ["c1"], filter, messageTtlSeconds: 300 })],
    ["list_connections", 200, async () => {
      const pages = await client.group("room1").listConnections({ maxPageSize: 10, top: 10 });
      for await (const _member of pages) { /* drain the single empty page */ }
    }],
    ["add_connection_to_group", 200, () => client.group("room1").addConnection("conn-1")],
    ["remove_connection_from_group", 204, () => client.group("room1").removeConnection("conn-1")],
    ["grant_permission", 200, () => client.grantPermission("conn-1", "joinLeaveGroup", { targetName: "room1" })],
    ["revoke_permission", 204, () => client.revokePermission("conn-1", "sendToGroup", { targetName: "room1" })],
    ["has_permission", 200, () => client.hasPermission("conn-1", "sendToGroup")],
    ["user_exists", 200, () => client.userExists("alice@example.com")],
    ["close_user_connections", 204, () => client.closeUserConnections("alice", { excluded: ["c1"], reason: "r" })],
    ["send_to_user", 202, () => client.sendToUser("alice", { k: "v" }, { filter, messageTtlSeconds: 0 })],
    ["remove_user_from_all_groups", 204, () => client.removeUserFromAllGroups("alice")],
    ["add_user_to_group", 200, () => client.group("room1").addUser("alice")],
    ["remove_user_from_group", 204, () => client.group("room1").removeUser("alice")],
  ];
  const out = [];
  for (const [operation, status, call] of calls) {
    const body =
      operation === "generate_token" ? '{"token":"t"}' : operation === "list_connections" ? '{"value":[]}' : undefined;
    reply = { status, body };
    recorded = [];
    await call();
    if (recorded.length !== 1) throw new Error(`${operation}: expected one request, got ${recorded.length}`);
    const request = recorded[0];
    const token = request.headers.get("authorization").replace(/^Bearer /, "");
    let requestBody = request.body;
    if (typeof requestBody === "string") requestBody = Buffer.from(requestBody, "utf8");
    else if (requestBody instanceof ArrayBuffer) requestBody = Buffer.from(requestBody);
    else if (requestBody instanceof Uint8Array) requestBody = Buffer.from(requestBody);
    out.push({
      operation,
      method: request.method,
      url: request.url,
      content_type: request.headers.get("content-type") ?? null,
      body_base64: requestBody && requestBody.length ? requestBody.toString("base64") : null,
      bearer_header: headerOf(token),
      bearer_claims: claimsOf(token),
    });
  }
  return out;
}

const document = {
  generator: "make-vectors.mjs (@azure/web-pubsub 1.2.0, jsonwebtoken)",
  now: NOW,
  access_key: KEY,
  client_access: await clientVectors(),
  rest: await restVectors(),
};
process.stdout.write(JSON.stringify(canonical(document), null, 2) + "\n");
