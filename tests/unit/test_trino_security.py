"""What `safra stack up` writes to shut Trino's doors (no Trino: the files themselves)."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import secrets
from pathlib import Path

import pytest
from cryptography import x509
from pydantic import SecretStr

from commands.stack import trino_security
from commands.stack.provision import ProvisionError
from safra.settings import Settings

PASSWORDS = {  # made up per run: no password-like literal in git
    f"trino{name}_password": secrets.token_urlsafe(16) for name in ("", "_analyst", "_ml")
}


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": tmp_path,
        **{field: SecretStr(password) for field, password in PASSWORDS.items()},
    }
    return Settings(_env_file=None, **{**values, **overrides})  # type: ignore[arg-type]


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_password_hash_is_what_trino_verifies() -> None:
    """Trino: PBKDF2WithHmacSHA1(password, salt, iterations, len(hash) * 8), hex fields."""
    word = secrets.token_urlsafe(8)
    stored = trino_security.pbkdf2_hash(word, salt=bytes(range(16)))
    iterations, salt, digest = stored.split(":")
    assert int(iterations) >= 1000 and salt == bytes(range(16)).hex()
    expected = hashlib.pbkdf2_hmac("sha1", word.encode(), bytes(range(16)), int(iterations), 32)
    assert digest == expected.hex()


def test_password_file_is_private_and_stable(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    path = tmp_path / "password.db"
    trino_security.password_file(s, path)
    first = path.read_text()
    assert _mode(path) == 0o600
    assert [line.split(":")[0] for line in first.splitlines()] == [
        "safra", "safra-analyst", "safra-ml"
    ]  # fmt: skip
    assert not any(password in first for password in PASSWORDS.values())
    trino_security.password_file(s, path)
    assert path.read_text() == first  # unchanged passwords keep their hashes
    changed = _settings(tmp_path, trino_ml_password=SecretStr(secrets.token_urlsafe(16)))
    trino_security.password_file(changed, path)
    old, new = first.splitlines(), path.read_text().splitlines()
    assert old[:2] == new[:2] and old[2] != new[2]


def test_an_empty_password_stops_the_start_naming_the_variable(tmp_path: Path) -> None:
    s = _settings(tmp_path, trino_analyst_password=SecretStr(""))
    with pytest.raises(ProvisionError, match=r"SAFRA_TRINO_ANALYST_PASSWORD is empty.*make env"):
        trino_security.provision(s, tmp_path / "etc")


def test_provision_writes_private_files_and_turns_them_on(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    etc = tmp_path / "trino" / "etc"
    lines = trino_security.provision(s, etc)
    for name in ("password.db", "rules.json", "shared-secret", "access-control.properties",
                 "password-authenticator.properties"):  # fmt: skip
        assert _mode(etc / name) == 0o600, name
    server, cert = tmp_path / "trino" / "tls" / "server.pem", s.trino_local_cert
    assert _mode(server) == 0o600 and _mode(cert) == 0o600
    assert "PRIVATE KEY" in server.read_text() and "PRIVATE KEY" not in cert.read_text()
    names = x509.load_pem_x509_certificate(cert.read_bytes()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert ipaddress.ip_address("127.0.0.1") in names.value.get_values_for_type(x509.IPAddress)
    assert "localhost" in names.value.get_values_for_type(x509.DNSName)
    settings = dict(line.split("=", 1) for line in lines)
    assert settings["http-server.https.port"] == str(s.trino_https_port)
    assert settings["http-server.authentication.type"] == "PASSWORD"
    assert settings["internal-communication.shared-secret"] == (etc / "shared-secret").read_text()
    assert "allow-insecure-over-http" not in "".join(lines)
    # a second start reuses the certificate and the secret
    keystore = server.read_text()
    assert trino_security.provision(s, etc) == lines
    assert server.read_text() == keystore


def test_rules_grant_each_identity_its_layers(tmp_path: Path) -> None:
    rules = trino_security.access_rules(_settings(tmp_path))

    def selectable(user: str, schema: str, table: str) -> bool:
        for rule in rules["tables"]:  # first match wins
            if all(re.fullmatch(rule.get(k, ".*"), v) for k, v in
                   (("user", user), ("catalog", "iceberg"), ("schema", schema),
                    ("table", table))):  # fmt: skip
                return "SELECT" in rule["privileges"]
        return False

    assert selectable("safra", "bronze", "applications")
    assert not selectable("safra-analyst", "bronze", "applications")
    assert not selectable("safra-ml", "bronze", "applications")
    assert selectable("safra-ml", "bronze", "scored_requests")
    assert selectable("safra-ml", "it_x_silver", "silver_outcomes$refs")
    assert selectable("safra-analyst", "it_x_gold", "proponente_features")
    assert not selectable("safra-analyst", "it_x_goldmine", "t")
    assert not selectable("someone", "gold", "proponente_features")
    assert json.loads(json.dumps(rules)) == rules  # what Trino reads
