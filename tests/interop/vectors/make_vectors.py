"""Known-answer vectors from the official Python SDK (azure-messaging-webpubsubservice).

Prints one JSON document to stdout, byte-for-byte the same on every run, so CI can `diff` it against
the recorded fixture `python.json`. The clock is fixed by replacing the SDK's `datetime`; REST calls
never leave the process: a requests adapter records each prepared request and answers it.

    cd tests/interop/vectors && python3 make_vectors.py > python.json
"""

import base64
import io
import datetime as _dt
import json
import sys

import jwt
import requests
from azure.core.pipeline.transport import RequestsTransport
from azure.messaging.webpubsubservice import WebPubSubServiceClient
from azure.messaging.webpubsubservice import _patch as client_patch
from azure.messaging.webpubsubservice._operations import _patch as ops_patch
from azure.messaging.webpubsubservice._operations._operations import (
    WebPubSubServiceClientOperationsMixin as GeneratedOperations,
)

NOW = 1_700_000_000
KEY = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH"
REST_ENDPOINT = "https://contoso.webpubsub.azure.com"


class FixedDatetime(_dt.datetime):
    """`datetime` whose `now()` is always NOW, so `iat`/`exp` are reproducible."""

    @classmethod
    def now(cls, tz=None):
        return _dt.datetime.fromtimestamp(NOW, tz=tz)


ops_patch.datetime = FixedDatetime
client_patch.datetime = FixedDatetime


def claims_of(token):
    return jwt.decode(token, KEY, algorithms=["HS256"], options={"verify_exp": False, "verify_aud": False})


def header_of(token):
    return json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))


CLIENT_CASES = [
    {
        "name": "anonymous-default",
        "connection_string": f"Endpoint=https://contoso.webpubsub.azure.com;AccessKey={KEY};Version=1.0;",
        "hub": "chat",
        "args": {},
    },
    {
        "name": "user-roles-groups-30min",
        "connection_string": f"Endpoint=https://contoso.webpubsub.azure.com/;AccessKey={KEY};Version=1.0;",
        "hub": "chat",
        "args": {
            "user_id": "alice",
            "roles": ["webpubsub.joinLeaveGroup.room1", "webpubsub.sendToGroup"],
            "groups": ["room1", "room 2"],
            "minutes_to_expire": 30,
        },
    },
    {
        "name": "mqtt-user",
        "connection_string": f"Endpoint=https://contoso.webpubsub.azure.com;AccessKey={KEY}",
        "hub": "devices",
        "args": {"user_id": "device-7", "client_protocol": "MQTT"},
    },
    {
        "name": "socketio-user",
        "connection_string": f"Endpoint=https://contoso.webpubsub.azure.com;AccessKey={KEY}",
        "hub": "sio_hub",
        "args": {"user_id": "bob", "client_protocol": "SocketIO", "minutes_to_expire": 5},
    },
    {
        "name": "http-port-override",
        "connection_string": f"Endpoint=http://localhost;Port=8080;AccessKey={KEY};Version=1.0;",
        "hub": "Hub1",
        "args": {"user_id": "carol", "roles": ["webpubsub.sendToGroup.g1"]},
    },
    {
        "name": "uppercase-endpoint",
        "connection_string": f"Endpoint=HTTPS://Contoso.WebPubSub.Azure.com;AccessKey={KEY}",
        "hub": "chat",
        "args": {"user_id": "dave"},
    },
    {
        "name": "non-ascii-user",
        "connection_string": f"Endpoint=https://contoso.webpubsub.azure.com;AccessKey={KEY}",
        "hub": "chat",
        "args": {"user_id": "Jos\u00e9 \u6771\u4eac", "groups": ["caf\u00e9"]},
    },
]


def client_vectors():
    out = []
    for case in CLIENT_CASES:
        client = WebPubSubServiceClient.from_connection_string(case["connection_string"], hub=case["hub"])
        result = client.get_client_access_token(**case["args"])
        out.append(
            {
                "name": case["name"],
                "connection_string": case["connection_string"],
                "hub": case["hub"],
                "args": case["args"],
                "baseUrl": result["baseUrl"],
                "url": result["url"],
                "token": result["token"],
                "header": header_of(result["token"]),
                "claims": claims_of(result["token"]),
            }
        )
    return out


class RecordingAdapter(requests.adapters.BaseAdapter):
    """Records each request the SDK prepares and answers with the next scripted response."""

    def __init__(self):
        super().__init__()
        self.recorded = []
        self.reply = (200, {}, b"")

    def send(self, request, **kwargs):
        self.recorded.append(request)
        status, headers, body = self.reply
        response = requests.Response()
        response.status_code = status
        response.headers.update(headers)
        response._content = body
        response.raw = io.BytesIO(body)  # the transport sets attributes on the raw stream
        response.url = request.url
        response.request = request
        return response

    def close(self):
        pass


def describe(request):
    body = request.body
    if isinstance(body, str):
        body = body.encode("utf-8")
    token = request.headers["Authorization"].removeprefix("Bearer ")
    return {
        "method": request.method,
        "url": request.url,
        "content_type": request.headers.get("Content-Type"),
        "body_base64": base64.b64encode(body).decode("ascii") if body else None,
        "bearer_header": header_of(token),
        "bearer_claims": claims_of(token),
    }


def rest_vectors():
    adapter = RecordingAdapter()
    session = requests.Session()
    session.mount("https://", adapter)
    client = WebPubSubServiceClient.from_connection_string(
        f"Endpoint={REST_ENDPOINT};AccessKey={KEY};Version=1.0;",
        hub="chat",
        transport=RequestsTransport(session=session),
    )
    excluded = ["conn-1", "conn/2"]
    odata = "userId ne 'bob' and 'room 1' in groups"
    calls = [
        ("send_to_all_text", 202, lambda: client.send_to_all("hello wörld", content_type="text/plain", excluded=excluded, filter=odata)),
        ("send_to_all_json", 202, lambda: client.send_to_all({"a": 1}, content_type="application/json")),
        ("send_to_all_binary", 202, lambda: client.send_to_all(b"\x00\x01\xff", content_type="application/octet-stream")),
        ("close_all_connections", 204, lambda: client.close_all_connections(excluded=excluded, reason="maintenance window")),
        ("generate_token", 200, lambda: GeneratedOperations.get_client_access_token(client, user_id="alice", roles=["webpubsub.sendToGroup", "r2"], groups=["g1", "g 2"], minutes_to_expire=15, client_protocol="MQTT")),
        ("close_connection", 204, lambda: client.close_connection("conn 1", reason="bye")),
        ("connection_exists", 200, lambda: client.connection_exists("conn-1")),
        ("send_to_connection", 202, lambda: client.send_to_connection("conn-1", "hi", content_type="text/plain")),
        ("remove_connection_from_all_groups", 204, lambda: client.remove_connection_from_all_groups("conn-1")),
        ("group_exists", 200, lambda: client.group_exists("room 1/a?b#c")),
        ("close_group_connections", 204, lambda: client.close_group_connections("room1", excluded=["c1"], reason="r")),
        ("send_to_group", 202, lambda: client.send_to_group("room 1", "hey", content_type="text/plain", excluded=["c1"], filter=odata)),
        ("list_connections", 200, lambda: list(client.list_connections(group="room1", top=10))),
        ("add_connection_to_group", 200, lambda: client.add_connection_to_group("room1", "conn-1")),
        ("remove_connection_from_group", 204, lambda: client.remove_connection_from_group("room1", "conn-1")),
        ("grant_permission", 200, lambda: client.grant_permission("joinLeaveGroup", "conn-1", target_name="room1")),
        ("revoke_permission", 204, lambda: client.revoke_permission("sendToGroup", "conn-1", target_name="room1")),
        ("has_permission", 200, lambda: client.has_permission("sendToGroup", "conn-1")),
        ("user_exists", 200, lambda: client.user_exists("alice@example.com")),
        ("close_user_connections", 204, lambda: client.close_user_connections("alice", excluded=["c1"], reason="r")),
        ("send_to_user", 202, lambda: client.send_to_user("alice", {"k": "v"}, content_type="application/json", filter=odata)),
        ("remove_user_from_all_groups", 204, lambda: client.remove_user_from_all_groups("alice")),
        ("add_user_to_group", 200, lambda: client.add_user_to_group("room1", "alice")),
        ("remove_user_from_group", 204, lambda: client.remove_user_from_group("room1", "alice")),
    ]
    out = []
    for name, status, call in calls:
        body = b'{"token":"t"}' if name == "generate_token" else (b'{"value":[]}' if name == "list_connections" else b"")
        headers = {"Content-Type": "application/json"} if body else {}
        adapter.reply = (status, headers, body)
        adapter.recorded.clear()
        call()
        if len(adapter.recorded) != 1:
            raise SystemExit(f"{name}: expected one request, got {len(adapter.recorded)}")
        out.append({"operation": name, **describe(adapter.recorded[0])})
    return out


def main():
    document = {
        "generator": "make_vectors.py (azure-messaging-webpubsubservice 1.3.0, PyJWT)",
        "now": NOW,
        "access_key": KEY,
        "client_access": client_vectors(),
        "rest": rest_vectors(),
    }
    json.dump(document, sys.stdout, indent=2, sort_keys=True, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
