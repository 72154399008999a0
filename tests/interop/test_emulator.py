"""The official Python service SDK (azure-messaging-webpubsubservice) against the real emulator binary.

The SDK is the judge of REST fidelity: every call below goes through its own URL building, JWT
signing and status-code handling. WebSocket clients (the `websockets` package) observe what
connections actually receive. The emulator runs on 127.0.0.1 with a free port and is stopped at
the end; build it first with `cargo build -p webpubsub-emulator` (or point
WEBPUBSUB_EMULATOR_BIN at a binary).

Absence of a message is checked without timing: after the send under test, a marker message is
sent to the same connection, and the next frame it receives must be that marker.
"""

import base64
import io
import json
import os
import pathlib
import queue
import subprocess
import threading
import time

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError
from azure.core.rest import HttpRequest
from azure.messaging.webpubsubservice import WebPubSubServiceClient
from azure.messaging.webpubsubservice._operations._operations import (
    WebPubSubServiceClientOperationsMixin as GeneratedOperations,
)
from websockets.sync.client import connect as ws_connect

HUB = "pyhub"
JSON_SUBPROTOCOL = "json.webpubsub.azure.v1"
REPO = pathlib.Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 30
RECEIVE_SECONDS = 10


def _emulator_binary() -> str:
    binary = os.environ.get("WEBPUBSUB_EMULATOR_BIN") or str(REPO / "target" / "debug" / "webpubsub-emulator")
    if not os.path.isfile(binary):
        pytest.fail(f"emulator binary not found at {binary}: run `cargo build -p webpubsub-emulator` first")
    return binary


@pytest.fixture(scope="module")
def emulator():
    """Starts the emulator on a free port; yields its connection string and endpoint."""
    process = subprocess.Popen(
        [_emulator_binary(), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines: "queue.Queue[str]" = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    connection_string = None
    deadline = time.monotonic() + STARTUP_SECONDS
    while connection_string is None and time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line.startswith("Connection string: "):
            connection_string = line[len("Connection string: "):].strip()
    if connection_string is None:
        process.kill()
        pytest.fail("the emulator did not print its connection string")
    parts = dict(p.split("=", 1) for p in connection_string.split(";") if "=" in p)
    endpoint = f"{parts['Endpoint']}:{parts['Port']}"
    yield {"connection_string": connection_string, "endpoint": endpoint, "access_key": parts["AccessKey"]}
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def service(emulator):
    return WebPubSubServiceClient.from_connection_string(emulator["connection_string"], hub=HUB)


class Client:
    """A WebSocket client of the emulator (JSON subprotocol unless `raw`)."""

    def __init__(self, service, user_id=None, roles=None, groups=None, raw=False):
        token = service.get_client_access_token(user_id=user_id, roles=roles or [], groups=groups or [])
        self.socket = ws_connect(
            token["url"], subprotocols=None if raw else [JSON_SUBPROTOCOL], open_timeout=RECEIVE_SECONDS
        )
        self.connection_id = None
        if not raw:
            connected = self.next_json()
            assert connected["type"] == "system" and connected["event"] == "connected", connected
            self.connection_id = connected["connectionId"]
            self.user_id = connected.get("userId")

    def next_frame(self):
        return self.socket.recv(timeout=RECEIVE_SECONDS)

    def next_json(self):
        frame = self.next_frame()
        assert isinstance(frame, str), frame
        return json.loads(frame)

    def next_server_message(self):
        message = self.next_json()
        assert message["type"] == "message" and message["from"] == "server", message
        return message

    def send(self, message: dict):
        self.socket.send(json.dumps(message))

    def close(self):
        self.socket.close()


@pytest.fixture
def clients(service):
    opened = []

    def open_client(**kwargs):
        client = Client(service, **kwargs)
        opened.append(client)
        return client

    yield open_client
    for client in opened:
        client.close()


def unique(prefix: str) -> str:
    return f"{prefix}-{os.urandom(4).hex()}"


def assert_next_is_marker(service, client: Client, marker: str):
    """Sends `marker` to the client's connection; it must be the next message the client gets."""
    service.send_to_connection(client.connection_id, marker, content_type="text/plain")
    assert client.next_server_message()["data"] == marker


def decode_claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


# ----- tokens -----


def test_client_access_token_from_the_sdk_connects(service, clients, emulator):
    user = unique("alice")
    token = service.get_client_access_token(user_id=user, roles=["webpubsub.joinLeaveGroup"], groups=["initial"])
    assert token["baseUrl"] == f"{emulator['endpoint'].replace('http', 'ws', 1)}/client/hubs/{HUB}"
    client = clients(user_id=user, groups=["initial"])
    assert client.user_id == user
    assert service.user_exists(user)
    assert service.connection_exists(client.connection_id)
    members = [m.connection_id for m in service.list_connections(group="initial")]
    assert client.connection_id in members


def test_generate_token_over_rest_is_signed_like_the_service(service, emulator):
    user = unique("rest-user")
    # The public method signs locally with the key; the generated operation calls `:generateToken`.
    response = GeneratedOperations.get_client_access_token(
        service, user_id=user, roles=["webpubsub.sendToGroup"], minutes_to_expire=5, groups=["g1", "g2"]
    )
    claims = decode_claims(response["token"])
    assert claims["aud"].lower() == f"{emulator['endpoint']}/client/hubs/{HUB}".lower()
    assert claims["sub"] == user
    assert claims["role"] == ["webpubsub.sendToGroup"]
    assert claims["webpubsub.group"] == ["g1", "g2"]
    assert claims["exp"] - claims["iat"] == 300
    url = f"{emulator['endpoint'].replace('http', 'ws', 1)}/client/hubs/{HUB}?access_token={response['token']}"
    with ws_connect(url, subprotocols=[JSON_SUBPROTOCOL], open_timeout=RECEIVE_SECONDS) as socket:
        connected = json.loads(socket.recv(timeout=RECEIVE_SECONDS))
        assert connected["event"] == "connected" and connected["userId"] == user


def test_generate_token_for_mqtt_clients(service, emulator):
    response = GeneratedOperations.get_client_access_token(service, client_protocol="MQTT")
    assert decode_claims(response["token"])["aud"].lower() == f"{emulator['endpoint']}/clients/mqtt/hubs/{HUB}".lower()


# ----- sends -----


def test_send_to_all_reaches_json_and_raw_clients_in_each_content_type(service, clients):
    json_client = clients(user_id=unique("json"))
    raw_client = clients(user_id=unique("raw"), raw=True)

    service.send_to_all("hello", content_type="text/plain")
    assert json_client.next_server_message() == {"type": "message", "from": "server", "dataType": "text", "data": "hello"}
    assert raw_client.next_frame() == "hello"

    service.send_to_all({"a": 1, "b": [True, None]})
    message = json_client.next_server_message()
    assert (message["dataType"], message["data"]) == ("json", {"a": 1, "b": [True, None]})
    assert json.loads(raw_client.next_frame()) == {"a": 1, "b": [True, None]}

    service.send_to_all(io.BytesIO(b"\x00\x01\xff"), content_type="application/octet-stream")
    message = json_client.next_server_message()
    assert (message["dataType"], base64.b64decode(message["data"])) == ("binary", b"\x00\x01\xff")
    assert raw_client.next_frame() == b"\x00\x01\xff"


def test_send_to_all_excluded_and_filter(service, clients):
    alice, bob = unique("alice"), unique("bob")
    a = clients(user_id=alice)
    b = clients(user_id=bob)

    service.send_to_all("not-for-a", content_type="text/plain", excluded=[a.connection_id])
    assert b.next_server_message()["data"] == "not-for-a"
    assert_next_is_marker(service, a, "marker-1")

    service.send_to_all("only-bob", content_type="text/plain", filter=f"userId eq '{bob}'")
    assert b.next_server_message()["data"] == "only-bob"
    assert_next_is_marker(service, a, "marker-2")


def test_invalid_filter_is_a_clear_400(service):
    with pytest.raises(HttpResponseError) as failure:
        service.send_to_all("x", content_type="text/plain", filter="userId = 'a'")
    assert failure.value.status_code == 400
    assert failure.value.error.code == "InvalidFilter"
    assert "invalid filter at position 7" in failure.value.error.message


def test_send_to_group_user_and_connection(service, clients):
    group, user = unique("room"), unique("carol")
    in_group = clients(user_id=user, groups=[group])
    other = clients(user_id=unique("dave"))

    service.send_to_group(group, "to-group", content_type="text/plain")
    assert in_group.next_server_message()["data"] == "to-group"
    service.send_to_user(user, {"to": "user"})
    assert in_group.next_server_message()["data"] == {"to": "user"}
    service.send_to_connection(other.connection_id, "to-connection", content_type="text/plain")
    assert other.next_server_message()["data"] == "to-connection"
    assert_next_is_marker(service, other, "marker")

    service.send_to_group(group, "filtered-out", content_type="text/plain", filter="userId eq 'nobody'")
    assert_next_is_marker(service, in_group, "marker")


def test_sends_to_nothing_still_succeed(service):
    service.send_to_group(unique("empty"), "x", content_type="text/plain")
    service.send_to_user(unique("nobody"), "x", content_type="text/plain")
    service.send_to_connection("no-such-connection", "x", content_type="text/plain")


# ----- membership and existence -----


def test_connection_group_membership(service, clients):
    group = unique("g")
    client = clients(user_id=unique("erin"))
    assert not service.group_exists(group)
    service.add_connection_to_group(group, client.connection_id)
    assert service.group_exists(group)
    service.send_to_group(group, "joined", content_type="text/plain")
    assert client.next_server_message()["data"] == "joined"

    service.remove_connection_from_group(group, client.connection_id)
    assert not service.group_exists(group)
    service.send_to_group(group, "left", content_type="text/plain")
    assert_next_is_marker(service, client, "marker")

    service.add_connection_to_group(group, client.connection_id)
    service.remove_connection_from_all_groups(client.connection_id)
    assert not service.group_exists(group)

    with pytest.raises(ResourceNotFoundError):
        service.add_connection_to_group(group, "no-such-connection")


def test_user_group_membership(service, clients):
    group, user = unique("team"), unique("frank")
    first = clients(user_id=user)
    service.add_user_to_group(group, user)
    assert service.group_exists(group)
    # A later connection of the same user joins the user's groups too.
    second = clients(user_id=user)
    members = sorted(m.connection_id for m in service.list_connections(group=group))
    assert members == sorted([first.connection_id, second.connection_id])
    assert all(m.user_id == user for m in service.list_connections(group=group))

    service.remove_user_from_group(group, user)
    assert not service.group_exists(group)
    service.add_user_to_group(group, user)
    service.remove_user_from_all_groups(user)
    assert not service.group_exists(group)


def test_list_connections_pages_and_top(service, clients):
    group = unique("big")
    opened = [clients(groups=[group]) for _ in range(5)]
    expected = sorted(c.connection_id for c in opened)

    pages = list(service.list_connections(group=group, maxpagesize=2).by_page())
    assert [len(page) for page in pages] == [2, 2, 1]
    assert sorted(m.connection_id for page in pages for m in page) == expected
    assert len(list(service.list_connections(group=group, top=3, maxpagesize=2))) == 3


def test_existence_checks(service, clients):
    user = unique("gina")
    client = clients(user_id=user)
    assert service.connection_exists(client.connection_id)
    assert not service.connection_exists("no-such-connection")
    assert service.user_exists(user)
    assert not service.user_exists(unique("nobody"))
    assert not service.group_exists(unique("nothing"))


# ----- permissions -----


def test_grant_check_revoke_permission(service, clients):
    group = unique("perm")
    client = clients(user_id=unique("hank"))
    assert not service.has_permission("sendToGroup", client.connection_id, target_name=group)

    client.send({"type": "sendToGroup", "group": group, "ackId": 1, "dataType": "text", "data": "x"})
    ack = client.next_json()
    assert (ack["type"], ack["ackId"], ack["success"]) == ("ack", 1, False)

    service.grant_permission("sendToGroup", client.connection_id, target_name=group)
    assert service.has_permission("sendToGroup", client.connection_id, target_name=group)
    assert not service.has_permission("sendToGroup", client.connection_id, target_name=unique("other"))
    assert not service.has_permission("joinLeaveGroup", client.connection_id, target_name=group)
    client.send({"type": "sendToGroup", "group": group, "ackId": 2, "dataType": "text", "data": "x"})
    ack = client.next_json()
    assert (ack["type"], ack["ackId"], ack["success"]) == ("ack", 2, True)

    service.revoke_permission("sendToGroup", client.connection_id, target_name=group)
    assert not service.has_permission("sendToGroup", client.connection_id, target_name=group)

    service.grant_permission("joinLeaveGroup", client.connection_id)
    assert service.has_permission("joinLeaveGroup", client.connection_id, target_name=unique("any"))


# ----- closes -----


def expect_closed(client: Client, reason: str):
    """The JSON client gets `disconnected` with `reason`, then the socket closes."""
    message = client.next_json()
    assert (message["type"], message["event"]) == ("system", "disconnected"), message
    assert message["message"] == reason
    with pytest.raises(Exception):
        client.next_frame()


def test_close_connection(service, clients):
    client = clients(user_id=unique("ivan"))
    service.close_connection(client.connection_id, reason="bye")
    expect_closed(client, "bye")
    assert not service.connection_exists(client.connection_id)
    service.close_connection(client.connection_id)


def test_close_user_group_and_all_connections(service, clients):
    user, group = unique("judy"), unique("closing")
    a = clients(user_id=user)
    b = clients(user_id=user)
    service.close_user_connections(user, excluded=[b.connection_id], reason="user-close")
    expect_closed(a, "user-close")
    assert service.connection_exists(b.connection_id)

    c = clients(groups=[group])
    d = clients(groups=[group])
    service.close_group_connections(group, excluded=[d.connection_id], reason="group-close")
    expect_closed(c, "group-close")
    assert service.connection_exists(d.connection_id)

    service.close_all_connections(excluded=[b.connection_id], reason="all-close")
    expect_closed(d, "all-close")
    assert service.connection_exists(b.connection_id)
    service.close_all_connections(reason="all-close")
    expect_closed(b, "all-close")


# ----- errors and auth -----


def test_wrong_access_key_is_401(emulator):
    wrong = emulator["connection_string"].replace(emulator["access_key"], "x" * 40)
    client = WebPubSubServiceClient.from_connection_string(wrong, hub=HUB)
    with pytest.raises(ClientAuthenticationError) as failure:
        client.user_exists("anyone")
    assert failure.value.status_code == 401


def test_unsupported_api_version_is_400_with_error_code(service):
    request = HttpRequest("HEAD", f"/api/hubs/{HUB}/users/u", params={"api-version": "2019-01-01"})
    response = service.send_request(request)
    assert response.status_code == 400
    assert response.headers["x-ms-error-code"] == "UnsupportedApiVersion"
    request = HttpRequest("DELETE", f"/api/hubs/{HUB}/users/u/groups", params={"api-version": "2019-01-01"})
    body = service.send_request(request).json()
    assert body["error"]["code"] == "UnsupportedApiVersion"
    assert "2024-12-01" in body["error"]["message"]


def test_message_ttl_bounds(service, clients):
    # SDK 1.3.0's public send methods do not forward message_ttl_seconds, so send the request raw
    # (still signed by the SDK's pipeline).
    client = clients(user_id=unique("ttl"))

    def send_with_ttl(ttl: str):
        request = HttpRequest(
            "POST",
            f"/api/hubs/{HUB}/connections/{client.connection_id}/:send",
            params={"api-version": "2024-12-01", "messageTtlSeconds": ttl},
            content=f"ttl-{ttl}",
            headers={"Content-Type": "text/plain"},
        )
        return service.send_request(request)

    assert send_with_ttl("300").status_code == 202
    assert client.next_server_message()["data"] == "ttl-300"
    response = send_with_ttl("301")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "InvalidQueryParameter"
    assert_next_is_marker(service, client, "marker")


def test_oversized_body_is_413(service):
    request = HttpRequest(
        "POST",
        f"/api/hubs/{HUB}/:send",
        params={"api-version": "2024-12-01"},
        content=b"x" * (1024 * 1024 + 1),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert service.send_request(request).status_code == 413
