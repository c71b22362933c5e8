"""Signed models: only versions Safra trained are loaded.

At registration (:func:`ml.train.train_and_register`) the registered version's artifacts are
reduced to a **manifest** (every file's path relative to the model directory → its SHA-256), the
manifest to one **digest**, and the digest is signed with Safra's Ed25519 key
(``SAFRA_MODEL_SIGNING_KEY``). The digest, the signature and the id of the key travel as version
tags (:data:`DIGEST_TAG`, :data:`SIGNATURE_TAG`, :data:`KEY_ID_TAG`). Whoever loads a version
(:func:`ml.registry.load_version`: the scoring API, promotion, drift) downloads it, recomputes
the digest of what it downloaded and checks the signature with the public key alone
(``SAFRA_MODEL_VERIFY_KEY``) before anything is deserialized; any failure is an
:class:`UntrustedModel` naming the cause.

Keys are base64 (URL-safe, unpadded when generated; standard base64 is accepted too) of their 32
raw bytes; ``safra env`` generates the pair into ``.env`` (:func:`new_key_pair`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from safra.settings import Settings

SCHEME = "ed25519-sha256-manifest-v2"
"""What is signed and how: Ed25519 over ``SCHEME``, the model name, the version and the digest
(one per line), the digest being the SHA-256 of the canonical JSON of the manifest."""
SCHEME_TAG = "safra.signature_scheme"
DIGEST_TAG = "safra.artifact_digest"
SIGNATURE_TAG = "safra.signature"
KEY_ID_TAG = "safra.signing_key_id"
SIGNING_KEY_ENV = "SAFRA_MODEL_SIGNING_KEY"
VERIFY_KEY_ENV = "SAFRA_MODEL_VERIFY_KEY"
CLIENT_SIDE_FILES = frozenset({"registered_model_meta"})
"""Files MLflow's client writes into a downloaded ``models:/`` directory (the name and version it
was downloaded as): not artifacts of the store, so not part of the manifest."""
_CHUNK = 1 << 20


class UntrustedModel(ValueError):
    """A version that must not be loaded: unsigned, altered, or signed by another key."""

    def __init__(self, model_name: str, version: str, cause: str) -> None:
        self.model_name = model_name
        self.version = str(version)
        self.cause = cause
        super().__init__(
            f"{model_name} version {version} is not a trusted model, not loaded: {cause}"
        )


# --- manifest and digest (pure) -------------------------------------------------------------


def manifest(directory: Path) -> dict[str, str]:
    """Every file under ``directory`` (POSIX path relative to it → SHA-256 hex), sorted by path;
    :data:`CLIENT_SIDE_FILES` at its top are left out. ValueError on a symbolic link (artifacts
    never hold one; following it could hash one file and load another)."""
    root = Path(directory)
    files: dict[str, str] = {}
    for folder, dirs, names in os.walk(root):
        for name in sorted(dirs + names):
            path = Path(folder) / name
            if path.is_symlink():
                raise ValueError(
                    f"symbolic link in the model's artifacts: {path.relative_to(root)}"
                )
        for name in names:
            path = Path(folder) / name
            relative = path.relative_to(root).as_posix()
            if relative in CLIENT_SIDE_FILES:
                continue
            files[relative] = _sha256(path)
    return dict(sorted(files.items()))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def digest(files: Mapping[str, str]) -> str:
    """The SHA-256 hex of ``files`` (a :func:`manifest`) as canonical JSON (sorted keys, no
    spaces): any changed, added, removed or renamed file changes it."""
    canonical = json.dumps(dict(files), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _message(artifact_digest: str, model_name: str, version: str) -> bytes:
    """What is signed: the digest bound to the version it was registered as, so the files of
    one version (a withdrawn one, say) registered again as another do not verify."""
    return f"{SCHEME}\n{model_name}\n{version}\n{artifact_digest}".encode()


# --- keys -----------------------------------------------------------------------------------


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _decode(text: str) -> bytes:
    """Base64, URL-safe or standard, padded or not. ValueError when it is not base64."""
    cleaned = text.strip().replace("-", "+").replace("_", "/")
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        return base64.b64decode(cleaned, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"not base64: {exc}") from exc


def _raw_key(text: str, what: str) -> bytes:
    raw = _decode(text)
    if len(raw) != 32:
        raise ValueError(f"{what} must be base64 of 32 raw bytes, got {len(raw)} bytes")
    return raw


def private_key(text: str) -> Ed25519PrivateKey:
    """The Ed25519 private key of ``text`` (base64 of its 32 raw bytes); ValueError else."""
    return Ed25519PrivateKey.from_private_bytes(_raw_key(text, "an Ed25519 private key"))


def public_key(text: str) -> Ed25519PublicKey:
    """The Ed25519 public key of ``text`` (base64 of its 32 raw bytes); ValueError else."""
    return Ed25519PublicKey.from_public_bytes(_raw_key(text, "an Ed25519 public key"))


def _public_raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def new_key_pair() -> tuple[str, str]:
    """A fresh ``(private, public)`` pair, each base64 (URL-safe, unpadded) of 32 raw bytes."""
    key = Ed25519PrivateKey.generate()
    raw = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return _encode(raw), _encode(_public_raw(key.public_key()))


def public_key_text(private_text: str) -> str:
    """The public key (base64, URL-safe, unpadded) of the private key ``private_text``."""
    return _encode(_public_raw(private_key(private_text).public_key()))


def key_id(key: Ed25519PublicKey) -> str:
    """A short name of ``key``: the first 16 hex digits of the SHA-256 of its raw bytes."""
    return hashlib.sha256(_public_raw(key)).hexdigest()[:16]


def signing_key(settings: Settings) -> Ed25519PrivateKey:
    """The settings' signing key. ValueError naming the fix when it is missing or unusable, or
    when ``SAFRA_MODEL_VERIFY_KEY`` is set but is not its public key (every model signed here
    would then be refused by whoever verifies with that key)."""
    text = settings.model_signing_key.get_secret_value()
    fix = f"`safra env` generates the pair into .env, or set {SIGNING_KEY_ENV} yourself"
    if not text.strip():
        raise ValueError(
            f"{SIGNING_KEY_ENV} is not set: models are signed at registration so that only "
            f"models Safra trained are loaded. Fix: {fix}."
        )
    try:
        key = private_key(text)
    except ValueError as exc:
        raise ValueError(f"{SIGNING_KEY_ENV} is unusable ({exc}). Fix: {fix}.") from exc
    if settings.model_verify_key.strip():
        try:
            matches = _public_raw(public_key(settings.model_verify_key)) == _public_raw(
                key.public_key()
            )
        except ValueError:
            matches = False
        if not matches:
            raise ValueError(
                f"{VERIFY_KEY_ENV} is not the public key of {SIGNING_KEY_ENV}: the models signed "
                f"here would be refused when loaded. Fix: set {VERIFY_KEY_ENV} to "
                f"{public_key_text(text)} (or replace both with a pair from `safra env`)."
            )
    return key


# --- sign and verify ------------------------------------------------------------------------


def sign(
    artifact_digest: str, key: Ed25519PrivateKey, model_name: str, version: str
) -> dict[str, str]:
    """The version tags that sign ``artifact_digest`` as ``model_name`` version ``version``."""
    signature = key.sign(_message(artifact_digest, model_name, str(version)))
    return {
        SCHEME_TAG: SCHEME,
        DIGEST_TAG: artifact_digest,
        SIGNATURE_TAG: _encode(signature),
        KEY_ID_TAG: key_id(key.public_key()),
    }


def verify(
    tags: Mapping[str, str],
    artifact_digest: str,
    verify_key: str,
    model_name: str,
    version: str,
) -> None:
    """Check that ``tags`` (a version's) sign ``artifact_digest`` (computed from the files that
    will be loaded) under ``verify_key`` (base64 public key); :class:`UntrustedModel` naming
    the cause otherwise. Only the signature decides: the other tags only explain a failure."""

    def untrusted(cause: str) -> UntrustedModel:
        return UntrustedModel(model_name, version, cause)

    if not verify_key.strip():
        raise untrusted(
            f"no verify key configured ({VERIFY_KEY_ENV} is empty; `safra env` generates the key "
            "pair into .env)"
        )
    try:
        key = public_key(verify_key)
    except ValueError as exc:
        raise untrusted(f"{VERIFY_KEY_ENV} is unusable: {exc}") from exc
    signature_text = tags.get(SIGNATURE_TAG, "")
    if not signature_text:
        raise untrusted(
            f"no signature tag {SIGNATURE_TAG!r} (not registered by Safra's training, or "
            "registered before models were signed)"
        )
    scheme = tags.get(SCHEME_TAG, SCHEME)
    if scheme != SCHEME:
        raise untrusted(f"unknown signature scheme {scheme!r} (expected {SCHEME!r})")
    try:
        key.verify(_decode(signature_text), _message(artifact_digest, model_name, str(version)))
        return
    except (InvalidSignature, ValueError):
        pass
    ours, theirs = key_id(key), tags.get(KEY_ID_TAG, "")
    recorded = tags.get(DIGEST_TAG, "")
    if theirs and theirs != ours:
        cause = f"signed by another key (key id {theirs}; {VERIFY_KEY_ENV} is key {ours})"
    elif recorded != artifact_digest:
        cause = (
            f"digest mismatch: artifact altered after registration (signed digest "
            f"{recorded[:16] or 'none'}..., the artifacts' digest now {artifact_digest[:16]}...)"
        )
    else:
        cause = (
            f"signature invalid: not signed as {model_name} version {version} (the files of "
            "another version registered again?) or the signature tags were altered"
        )
    raise untrusted(cause)
