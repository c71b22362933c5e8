"""Pseudonyms in Python (the reference Trino's plugin must equal), and how the key reaches Trino:
a 0600 file, its path alone on Trino's command line, Safra's plugin beside Trino's own."""

from __future__ import annotations

import hashlib
import secrets
import stat
from pathlib import Path

import pytest

from commands.stack import trino_pseudonym
from commands.stack.provision import ProvisionError
from safra.pseudonyms import pseudonym, tax_id_digits, tax_id_pseudonym
from safra.settings import Settings

KEY = secrets.token_urlsafe(24)  # generated: no key-like literal in the repository


def _hmac(value: str, key: str) -> str:
    """An independent HMAC-SHA256 (RFC 2104 by hand, over hashlib's SHA-256)."""
    block = key.encode().ljust(64, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in block) + value.encode()).digest()
    return hashlib.sha256(bytes(b ^ 0x5C for b in block) + inner).hexdigest()


def test_pseudonym_is_hmac_sha256_hex_of_utf8() -> None:
    # RFC 4231, test cases 1 and 2
    assert pseudonym("Hi There", "\x0b" * 20) == (
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
    )
    assert pseudonym("what do ya want for nothing?", "Jefe") == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )
    for value in ("12345678909", "12345678000195", "José da Silva Ção", "MAT-0001.22", ""):
        assert pseudonym(value, KEY) == _hmac(value, KEY), value


def test_a_tax_id_is_pseudonymized_by_its_digits() -> None:
    assert tax_id_digits(" 123.456.789-09 ") == "12345678909"
    assert tax_id_pseudonym("123.456.789-09", KEY) == _hmac("12345678909", KEY)
    assert tax_id_pseudonym("12.345.678/0001-95", KEY) == _hmac("12345678000195", KEY)
    assert tax_id_pseudonym("12345678909", KEY) == pseudonym("12345678909", KEY)
    # names and land registry numbers are hashed as they are: punctuation matters there
    assert pseudonym("123.456.789-09", KEY) != _hmac("12345678909", KEY)


def _settings(tmp_path: Path, key: str) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path / "data", pseudonym_key=key)


def test_the_key_file_is_private_and_follows_the_key(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    path = trino_pseudonym.write_key_file(_settings(tmp_path, KEY), etc)
    assert path.read_bytes() == KEY.encode()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.chmod(0o644)
    trino_pseudonym.write_key_file(_settings(tmp_path, KEY + "-rotated"), etc)
    assert path.read_bytes() == (KEY + "-rotated").encode()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_no_key_no_trino(tmp_path: Path) -> None:
    with pytest.raises(ProvisionError, match="SAFRA_PSEUDONYM_KEY is missing or shorter"):
        trino_pseudonym.write_key_file(_settings(tmp_path, "short"), tmp_path / "etc")
    assert not (tmp_path / "etc" / "pseudonym.key").exists()


def test_the_plugin_folder_holds_trinos_plugins_and_safras(tmp_path: Path) -> None:
    home = tmp_path / "trino"
    for name in ("iceberg", "password-authenticators"):
        (home / "plugin" / name).mkdir(parents=True)
    old, new = tmp_path / "build-1" / "plugin", tmp_path / "build-2" / "plugin"
    old.mkdir(parents=True)
    new.mkdir(parents=True)
    s = _settings(tmp_path, KEY)
    trino_pseudonym.plugin_dir(s, home, old)
    folder = trino_pseudonym.plugin_dir(s, home, new)  # a rebuilt plugin replaces the old link
    links = {p.name: p.readlink() for p in folder.iterdir()}
    assert links == {
        "iceberg": home / "plugin" / "iceberg",
        "password-authenticators": home / "plugin" / "password-authenticators",
        "safra-pseudonym": new,
    }
