"""docs/configuration.md lists every setting of the agent with its variable, flag and default,
every flag of ``run`` and ``replay``, and the bad-value messages it quotes are the ones the
agent gives (each documented bad value is set and its message checked)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sip_otel.cli import _build_parser
from sip_otel.config import OTHER_VARIABLES, ConfigError, Settings, load_settings

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
ROW = re.compile(r"^\| `(SIP_EXPORTER_[A-Z_]+)` \| `(--[a-z-]+)` \| ([^|]+) \| ([^|]+) \| (.+) \|$")


def rows() -> dict[str, tuple[str, str, str]]:
    out = {}
    for line in DOC.read_text().splitlines():
        m = ROW.match(line)
        if m:
            env, flag, default, _meaning, bad = m.groups()
            out[env] = (flag, default.strip(), bad.strip())
    return out


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.upper().startswith(("SIP_EXPORTER_", "SIP_OTEL_")):
            monkeypatch.delenv(key)


def test_every_setting_is_documented() -> None:
    documented = rows()
    fields = {f"SIP_EXPORTER_{name.upper()}": name for name in Settings.model_fields}
    assert set(documented) == set(fields)
    for env, (flag, default, _) in documented.items():
        name = fields[env]
        assert flag == "--" + name.replace("_", "-")
        value = Settings.model_fields[name].get_default(call_default_factory=True)
        if value in (None, []):
            assert default.startswith("empty"), (env, default)
        else:
            shown = str(value).lower()
            assert default.startswith(f"`{shown}`"), (env, default, shown)


def test_every_flag_is_documented() -> None:
    text = DOC.read_text()
    parser = _build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command").choices  # type: ignore[attr-defined]
    for command in ("run", "replay"):
        for action in subparsers[command]._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert f"`{option}" in text, (command, option)
    for variable in OTHER_VARIABLES:
        assert f"`{variable}`" in text


@pytest.mark.parametrize("env", sorted(rows()))
def test_documented_bad_value_gives_the_documented_message(
    monkeypatch: pytest.MonkeyPatch, env: str
) -> None:
    _, _, bad = rows()[env]
    m = re.fullmatch(r"`([^`]*)` → (.+)", bad)
    if m is None:
        assert bad.startswith("—"), bad  # settings that accept any value
        return
    value, message = m.groups()
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    text = str(info.value)
    assert text.startswith(f"bad configuration: {env} (--")
    assert message in text, (message, text)


def test_misspelt_name_message_is_as_documented(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIP_EXPORTER_INTERFACES", "eth0")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert f"    sip-otel: {info.value}\n" in DOC.read_text()
