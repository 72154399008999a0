"""Fixtures for scripts/bench.sh, made here with Python's standard library (independent of the handler's code).

    python3 bench/fixtures.py connect ACCESS_KEY          1000 lines "connection-id ce-signature" for connect.lua:
                                                          value = "sha256=" + hex HMAC-SHA256(UTF-8 key, connection id)
    python3 bench/fixtures.py token SECRET ISSUER AUDIENCE  an HS256 bearer token (sub bench-backend, role publisher,
                                                          valid for an hour)
"""
import base64
import hashlib
import hmac
import json
import sys
import time
import uuid


def connect(key):
    key = key.encode()
    for _ in range(1000):
        cid = uuid.uuid4().hex
        print(cid, "sha256=" + hmac.new(key, cid.encode(), hashlib.sha256).hexdigest())


def token(secret, iss, aud):
    def b64(b):
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

    now = int(time.time())
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps({"iss": iss, "aud": aud, "sub": "bench-backend", "iat": now, "exp": now + 3600,
                           "roles": ["publisher"]}).encode())
    mac = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    print(f"{head}.{body}.{b64(mac)}")


if __name__ == "__main__":
    commands = {"connect": (connect, 1), "token": (token, 3)}
    if len(sys.argv) < 2 or sys.argv[1] not in commands or len(sys.argv) != 2 + commands[sys.argv[1]][1]:
        sys.exit(__doc__)
    command, _ = commands[sys.argv[1]]
    command(*sys.argv[2:])
