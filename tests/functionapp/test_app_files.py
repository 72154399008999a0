"""The Functions app files (host.json, */function.json, local.settings.json.example) against the official
JSON schemas in ../shared/schemas (read in place, never copied), validated with a Draft-07 validator as
../shared/schemas/SOURCES.md explains, plus the rules the schemas cannot express
(../shared/reference/functions-custom-handler.md, "Validation recipe")."""

import json
import os
from pathlib import Path

import jsonschema
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = Path(os.environ.get("SHARED_DIR", ROOT.parent / "shared")) / "schemas"
FUNCTION_FILES = sorted(ROOT.glob("*/function.json"))
# Timer-triggered functions (#15's outbox drain); every other function is plain HTTP.
TIMER_FUNCTIONS = {"outbox"}
HTTP_FILES = [p for p in FUNCTION_FILES if p.parent.name not in TIMER_FUNCTIONS]
KNOWN_METHODS = {"get", "post", "delete", "head", "patch", "put", "options", "trace"}


def load(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def validator(name):
    schema_path = SCHEMAS / name
    assert schema_path.is_file(), f"missing schema {schema_path}: is ../shared beside the repo?"
    return jsonschema.Draft7Validator(load(schema_path))


def assert_valid(schema_name, document):
    errors = sorted(validator(schema_name).iter_errors(document), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_the_functions_exist():
    assert [p.parent.name for p in FUNCTION_FILES] == [
        "conversations", "events", "manage", "negotiate", "notifications", "openapi.json", "outbox", "publish",
        "sync",
    ]


def test_the_contract_route_is_anonymous_get_only():
    # The document holds no secret; clients and tools fetch it without a key.
    trigger = load(ROOT / "openapi.json" / "function.json")["bindings"][0]
    assert (trigger["authLevel"], trigger["methods"], trigger["route"]) == ("anonymous", ["get"], "openapi.json")


def test_host_json_is_valid():
    assert_valid("host.json", load(ROOT / "host.json"))


def test_host_json_runs_our_handler_with_forwarding_and_no_bundle():
    host = load(ROOT / "host.json")
    assert host["version"] == "2.0"
    assert host["customHandler"]["description"]["defaultExecutablePath"] == "handler"
    assert host["customHandler"]["enableForwardingHttpRequest"] is True
    assert "extensionBundle" not in host, "HTTP-only apps need no bundle (it would be downloaded)"
    assert host["extensions"]["http"]["routePrefix"] == "api", "the handler serves /api/<route>"


@pytest.mark.parametrize("path", FUNCTION_FILES, ids=lambda p: p.parent.name)
def test_function_json_is_valid(path):
    assert_valid("function.json", load(path))


@pytest.mark.parametrize("path", HTTP_FILES, ids=lambda p: p.parent.name)
def test_function_is_plain_http_in_and_out(path):
    # Exactly one httpTrigger in and one http out, or the host falls back to JSON payload mode.
    bindings = load(path)["bindings"]
    triggers = [b for b in bindings if b["direction"] == "in"]
    outputs = [b for b in bindings if b["direction"] == "out"]
    assert [b["type"] for b in triggers] == ["httpTrigger"]
    assert [b["type"] for b in outputs] == ["http"]
    trigger = triggers[0]
    # The schema only checks the first element of `methods`; check them all.
    assert trigger["methods"], "declare methods deliberately"
    assert set(trigger["methods"]) <= KNOWN_METHODS
    assert trigger["authLevel"] in {"anonymous", "function", "admin"}
    # The route is the folder name, or the folder name with a catch-all for the paths below it.
    assert trigger.get("route", path.parent.name) in {path.parent.name, f"{path.parent.name}/{{*rest}}"}


def test_the_outbox_is_a_timer_with_no_output():
    # The host POSTs /outbox with the JSON payload of a non-HTTP trigger; the handler answers the result.
    bindings = load(ROOT / "outbox" / "function.json")["bindings"]
    assert [(b["type"], b["direction"]) for b in bindings] == [("timerTrigger", "in")]
    seconds, *rest = bindings[0]["schedule"].split()
    assert len(rest) == 5, "NCRONTAB with seconds: six fields"
    assert seconds.startswith("*/")


def test_routes_are_unique():
    routes = [load(p)["bindings"][0].get("route", p.parent.name) for p in HTTP_FILES]
    assert len(routes) == len(set(routes))


def test_events_takes_the_abuse_protection_options_request():
    trigger = load(ROOT / "events" / "function.json")["bindings"][0]
    assert {"options", "post"} <= set(trigger["methods"])


def test_local_settings_example_is_valid():
    assert_valid("local.settings.json", load(ROOT / "local.settings.json.example"))


def test_local_settings_example_names_the_required_values():
    values = load(ROOT / "local.settings.json.example")["Values"]
    assert values["FUNCTIONS_WORKER_RUNTIME"] == "custom"  # lowercase, as the schema's enum demands
    for name in ("WebPubSubConnectionString", "WebPubSubHub"):
        assert name in values
    assert all(isinstance(v, str) for v in values.values()), "app settings are strings"
    assert all("__" not in k and ":" not in k for k in values), "':' and '__' are reserved for hierarchy"


def test_schema_rejects_a_broken_function_json():
    # The validator is not vacuous: a binding with a bad direction fails.
    broken = {"bindings": [{"type": "httpTrigger", "direction": "sideways", "name": "req"}]}
    assert list(validator("function.json").iter_errors(broken))
