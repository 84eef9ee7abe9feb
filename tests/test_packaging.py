"""The files that list genresult-mcp where users install MCP servers: the MCP Registry's `server.json` and the
MCP Bundle `manifest.json` (Claude Desktop's one-click install). Both must offer every provider's credentials,
marked secret, and agree with the package. (`.ci/clients.sh` also validates and packs the bundle with the
pinned `mcpb` CLI.)"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

from tests.conftest import TOOL_NAMES
from tools.providers import ADAPTERS

ROOT = Path(__file__).resolve().parent.parent
# Only these name the person, not a secret.
NOT_SECRET = {"FLEXSTACK_USERNAME"}


def load(name: str) -> Any:
    return json.loads((ROOT / name).read_text())


def version() -> str:
    found: str = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    return found


def credential_names() -> set[str]:
    return {name for adapter in ADAPTERS.values() for name in adapter.credential_envs}


def test_server_json_is_of_the_registry_schema_form_and_names_the_pypi_package_over_stdio() -> None:
    server = load("server.json")
    assert server["$schema"].startswith("https://static.modelcontextprotocol.io/schemas/")
    assert re.fullmatch(r"[a-zA-Z0-9.-]+/[a-zA-Z0-9._-]+", server["name"])
    assert 1 <= len(server["description"]) <= 100
    assert server["version"] == version()
    [package] = server["packages"]
    assert (package["registryType"], package["identifier"], package["version"]) == ("pypi", "genresult-mcp", version())
    assert package["transport"] == {"type": "stdio"}
    for variable in package["environmentVariables"]:
        assert set(variable) <= {"name", "description", "isRequired", "isSecret", "format", "default"}, variable
        assert variable["description"] and variable["format"] in ("string", "number", "boolean", "filepath")


def test_server_json_offers_every_providers_credentials_marked_secret() -> None:
    [package] = load("server.json")["packages"]
    listed = {variable["name"]: variable for variable in package["environmentVariables"]}
    assert credential_names() <= set(listed)
    for name in credential_names():
        assert listed[name]["isSecret"] is (name not in NOT_SECRET), name
        assert listed[name]["isRequired"] is False, "each provider is optional"


def readme_settings() -> set[str]:
    """Every variable the first column of the README's Settings table names."""
    readme = (ROOT / "README.md").read_text()
    table = readme.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    firsts = [line.split("|")[1] for line in table.splitlines() if line.startswith("| `")]
    return {name for cell in firsts for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", cell)}


def test_server_json_lists_every_setting_the_readme_documents_and_every_one_a_provider_reads() -> None:
    # Left out: the HTTP transport's own settings (this entry is the stdio package) and the sandbox's pace.
    [package] = load("server.json")["packages"]
    listed = {variable["name"] for variable in package["environmentVariables"]}
    provider_vars = {name for adapter in ADAPTERS.values() for name in adapter.env_names()}
    assert provider_vars <= readme_settings()
    wanted = {name for name in readme_settings() if not name.startswith("GENRESULT_HTTP_")} - {"GENRESULT_SANDBOX_PACE"}
    assert sorted(wanted - listed) == []
    assert sorted(listed - readme_settings()) == []


def test_the_bundle_manifest_asks_for_every_credential_as_sensitive_user_config_and_passes_it_on() -> None:
    manifest = load("manifest.json")
    assert manifest["version"] == version() and manifest["manifest_version"]
    config, env = manifest["user_config"], manifest["server"]["mcp_config"]["env"]
    for name in credential_names():
        key = name.lower()
        assert config[key]["sensitive"] is (name not in NOT_SECRET) and config[key]["required"] is False, name
        assert env[name] == f"${{user_config.{key}}}"
    assert {tool["name"] for tool in manifest["tools"]} == TOOL_NAMES
