"""Every setting the handler reads is documented: in README.md's configuration table and, unless the host
provides it, in local.settings.json.example. The names are collected from the source itself (the `Env`
accessors are the only way settings are read), so a new setting cannot ship undocumented."""

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Settings are read through `Env` accessors, either with a literal name or a named `&str` constant.
ACCESSOR = re.compile(r'\benv\s*\.(?:get|require|parse_or|parse_in|flag|list)\(\s*"([A-Za-z_][A-Za-z0-9_]*)"')
SETTING_CONST = re.compile(
    r'const [A-Z0-9_]+: &str = "((?:WebPubSub|Negotiate|Auth|Publish|Events|Dev|Store|Message|Notifications)[A-Za-z0-9]*|[A-Z][A-Z0-9]*_[A-Z0-9_]+)";'
)
# An inline unit-test module: `#[cfg(test)] mod tests {`.
TEST_MODULE = re.compile(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{")
# Set by the Functions host or the Azure platform (managed / workload identity), never by hand.
HOST_PROVIDED = {"FUNCTIONS_CUSTOMHANDLER_PORT", "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "AZURE_FEDERATED_TOKEN_FILE"}


def is_test_source(path):
    """Test modules (`tests.rs`, `tests/` folders) build their own environments and may read test-only variables."""
    return path.name == "tests.rs" or path.name.endswith("_tests.rs") or "tests" in path.relative_to(ROOT / "src").parts[:-1]


def settings_read_by_source():
    names = set()
    for path in (ROOT / "src").rglob("*.rs"):
        if is_test_source(path):
            continue
        text = path.read_text(encoding="utf-8")
        # Unit tests build their own environments; only production reads count. An inline test module ends
        # its file by convention; other `#[cfg(test)]` items (a test-only re-export) don't end production code.
        text = TEST_MODULE.split(text)[0]
        names.update(ACCESSOR.findall(text))
        names.update(SETTING_CONST.findall(text))
    return names


def readme_table_names():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Configuration", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([A-Za-z_][A-Za-z0-9_]*)` \|", section, flags=re.M))


def test_source_reads_settings():
    assert {"WebPubSubConnectionString", "WebPubSubHub"} <= settings_read_by_source()


def test_every_setting_is_in_the_readme_table():
    missing = settings_read_by_source() - readme_table_names()
    assert not missing, f"add to README.md's configuration table: {sorted(missing)}"


def test_every_setting_is_in_local_settings_example():
    values = json.loads((ROOT / "local.settings.json.example").read_text(encoding="utf-8"))["Values"]
    missing = settings_read_by_source() - HOST_PROVIDED - set(values)
    assert not missing, f"add to local.settings.json.example: {sorted(missing)}"


def test_readme_documents_no_setting_the_source_does_not_read():
    stale = readme_table_names() - settings_read_by_source()
    assert not stale, f"README documents settings nothing reads: {sorted(stale)}"
