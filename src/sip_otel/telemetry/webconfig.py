"""``--web-config-file``: TLS and basic auth for ``/metrics`` in the format Prometheus exporters
use (the exporter-toolkit web configuration file), so one file serves both.

    tls_server_config:
      cert_file: server.crt          # relative paths: to the file's directory
      key_file: server.key
      client_ca_file: ca.crt         # optional: client certificates signed by it
      client_auth_type: RequireAndVerifyClientCert   # or VerifyClientCertIfGiven, NoClientCert
      min_version: TLS12             # TLS10 ... TLS13 (default TLS12)
      max_version: TLS13
    basic_auth_users:
      prometheus: $2y$10$...         # bcrypt hash (htpasswd -nBC 10 "" | tr -d ':')

Unknown or unsupported keys are a start-up error (one line). Needs PyYAML and bcrypt
(``pip install 'sip-otel[web]'``), imported only when a file is given. No OpenTelemetry here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

__all__ = ["WebConfig", "WebConfigError", "load_web_config"]

TLS_KEYS = frozenset(
    {"cert_file", "key_file", "client_ca_file", "client_auth_type", "min_version", "max_version"}
)
# exporter-toolkit keys this implementation does not support (named in the error)
UNSUPPORTED = frozenset(
    {
        "cipher_suites",
        "curve_preferences",
        "prefer_server_cipher_suites",
        "client_allowed_sans",
        "cert",
        "key",
        "http_server_config",
        "rate_limit",
    }
)
VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
AUTH_CACHE = 256  # (user, password) digests whose bcrypt verdict is remembered


class WebConfigError(ValueError):
    """A web configuration file we cannot use; ``str()`` is one line naming the file and key."""


@dataclass(frozen=True)
class WebConfig:
    path: str
    cert_file: str | None = None
    key_file: str | None = None
    client_ca_file: str | None = None
    client_auth: ssl.VerifyMode = ssl.CERT_NONE
    min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    max_version: ssl.TLSVersion | None = None
    users: dict[str, bytes] = field(default_factory=dict)  # user -> bcrypt hash

    @cached_property
    def ssl_context(self) -> ssl.SSLContext | None:
        """Built once (load_web_config builds it, so that a bad file fails at start)."""
        if self.cert_file is None or self.key_file is None:
            return None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = self.min_version
        if self.max_version is not None:
            ctx.maximum_version = self.max_version
        try:
            ctx.load_cert_chain(self.cert_file, self.key_file)
            if self.client_ca_file is not None:
                ctx.load_verify_locations(cafile=self.client_ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise WebConfigError(
                f"{self.path}: tls_server_config: cannot load the certificate, key or CA: {exc}"
            ) from None
        ctx.verify_mode = self.client_auth
        return ctx

    def authenticator(self) -> Callable[[str], bool] | None:
        """(Authorization header) -> allowed?, or None without ``basic_auth_users``."""
        if not self.users:
            return None
        import bcrypt

        users = dict(self.users)
        # an unknown user is checked against a known user's hash (and refused whatever the
        # result), so that it costs what a known user does
        dummy = next(iter(users.values()))
        verdicts: dict[bytes, bool] = {}

        def check(header: str) -> bool:
            scheme, _, token = header.strip().partition(" ")
            if scheme.lower() != "basic":
                return False
            try:
                user_b, sep, password = base64.b64decode(token.strip(), validate=True).partition(
                    b":"
                )
            except (binascii.Error, ValueError):
                return False
            if not sep:
                return False
            key = hashlib.sha256(user_b + b"\0" + password).digest()
            known = verdicts.get(key)
            if known is not None:
                return known
            hashed = users.get(user_b.decode("utf-8", "replace"))
            # bcrypt compares in constant time; an unknown user is checked against `dummy`
            ok = bcrypt.checkpw(password, hashed or dummy) and hashed is not None
            if len(verdicts) >= AUTH_CACHE:
                del verdicts[next(iter(verdicts))]
            verdicts[key] = ok
            return ok

        return check


def _fail(path: str, what: str) -> WebConfigError:
    return WebConfigError(f"web config {path}: {what}")


def _keys(path: str, where: str, data: dict[str, Any], allowed: frozenset[str]) -> None:
    for key in data:
        if key in UNSUPPORTED:
            raise _fail(path, f"{where}{key} is not supported by sip-otel")
        if key not in allowed:
            raise _fail(path, f"unknown key {where}{key} (allowed: {', '.join(sorted(allowed))})")


def load_web_config(path: str) -> WebConfig:
    """Read and check ``path`` (certificates and key are loaded too); WebConfigError if bad."""
    try:
        import bcrypt
        import yaml
    except ImportError as exc:
        raise _fail(path, f"needs PyYAML and bcrypt ({exc}): pip install 'sip-otel[web]'") from None
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(path, f"cannot read it: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise _fail(path, f"not YAML: {str(exc).splitlines()[0]}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise _fail(path, "must be a mapping (tls_server_config, basic_auth_users)")
    _keys(path, "", data, frozenset({"tls_server_config", "basic_auth_users"}))
    base = Path(path).resolve().parent
    kw: dict[str, Any] = {}
    tls = data.get("tls_server_config")
    if tls is not None:
        if not isinstance(tls, dict):
            raise _fail(path, "tls_server_config must be a mapping")
        _keys(path, "tls_server_config.", tls, TLS_KEYS)
        for key in ("cert_file", "key_file", "client_ca_file"):
            value = tls.get(key)
            if value is not None:
                if not isinstance(value, str) or not value:
                    raise _fail(path, f"tls_server_config.{key} must be a file name")
                kw[key] = str(base / value)
        if "cert_file" not in kw or "key_file" not in kw:
            raise _fail(path, "tls_server_config needs both cert_file and key_file")
        auth = tls.get("client_auth_type")
        if auth is None:
            auth = "RequireAndVerifyClientCert" if "client_ca_file" in kw else "NoClientCert"
        if auth not in CLIENT_AUTH:
            raise _fail(
                path,
                f"tls_server_config.client_auth_type {auth!r} is not supported "
                f"(use one of {', '.join(CLIENT_AUTH)})",
            )
        if CLIENT_AUTH[auth] != ssl.CERT_NONE and "client_ca_file" not in kw:
            raise _fail(path, f"client_auth_type {auth} needs tls_server_config.client_ca_file")
        kw["client_auth"] = CLIENT_AUTH[auth]
        for key in ("min_version", "max_version"):
            if key in tls:
                if tls[key] not in VERSIONS:
                    raise _fail(
                        path, f"tls_server_config.{key} must be one of {', '.join(VERSIONS)}"
                    )
                kw[key] = VERSIONS[tls[key]]
    users = data.get("basic_auth_users")
    if users is not None:
        if not isinstance(users, dict) or not users:
            raise _fail(path, "basic_auth_users must map user names to bcrypt hashes")
        checked: dict[str, bytes] = {}
        for user, hashed in users.items():
            if not isinstance(user, str) or not isinstance(hashed, str) or ":" in user:
                raise _fail(path, f"basic_auth_users: bad entry for {user!r}")
            raw = hashed.encode("ascii", "replace")
            try:
                bcrypt.checkpw(b"", raw)  # a malformed hash raises
            except ValueError:
                raise _fail(path, f"basic_auth_users.{user} is not a bcrypt hash") from None
            checked[user] = raw
        kw["users"] = checked
    config = WebConfig(path, **kw)
    _ = config.ssl_context  # certificate, key and CA load now, not at the first scrape
    return config
