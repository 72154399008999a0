"""Schemathesis hooks for scripts/fuzz.sh: sign `events` requests the way Web PubSub does, so the fuzzer
reaches the success paths of POST /api/events and not only its 401.

`ce-signature` is `sha256=<hex(HMAC-SHA256(key=access key, message=ce-connectionId))>` (openapi.yaml states
the rule). A generated signature is replaced by the right one only when the case carries the header: a case
that leaves it out tests the missing-header refusal and must stay refused. Cases generated as valid
(positive mode) also get the served hub and a `ce-eventName` that agrees with `ce-type`, which no schema can
tie together, and the handshake (`OPTIONS`) names the service's host; negative cases keep every value the fuzzer chose, so they still must be refused.
"""

import hashlib
import hmac
import os

import schemathesis
from schemathesis.generation.modes import GenerationMode

ACCESS_KEY = os.environ["FUZZ_ACCESS_KEY"]
HUB = os.environ.get("FUZZ_HUB", "chat")
ORIGIN = os.environ.get("FUZZ_ORIGIN", "127.0.0.1")
SYS_PREFIX = "azure.webpubsub.sys."
USER_PREFIX = "azure.webpubsub.user."


def _sign(connection_id: str) -> str:
    digest = hmac.new(ACCESS_KEY.encode(), connection_id.encode(), hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def _header(headers, name):
    """The key under which `headers` holds `name` (header names ignore case), or None."""
    return next((key for key in headers if key.lower() == name.lower()), None)


def _positive(case) -> bool:
    return case.meta is not None and case.meta.generation.mode == GenerationMode.POSITIVE


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.operation.path != "/api/events" or not case.headers:
        return
    headers = case.headers
    if case.method.upper() == "OPTIONS":
        # The handshake succeeds only for the service's host: valid cases name it, so the 200 is reached.
        origin = _header(headers, "WebHook-Request-Origin")
        if origin is not None and _positive(case):
            headers[origin] = ORIGIN
        return
    if _positive(case):
        hub = _header(headers, "ce-hub")
        if hub is not None:
            headers[hub] = HUB
        event_type, event_name = _header(headers, "ce-type"), _header(headers, "ce-eventName")
        if event_type is not None and event_name is not None and isinstance(headers[event_type], str):
            value = headers[event_type]
            lowered = value.lower()
            for prefix in (SYS_PREFIX, USER_PREFIX):
                if lowered.startswith(prefix):
                    headers[event_name] = value[len(prefix):]
    signature, connection_id = _header(headers, "ce-signature"), _header(headers, "ce-connectionId")
    if signature is not None and connection_id is not None and isinstance(headers[connection_id], str):
        headers[signature] = _sign(headers[connection_id])
