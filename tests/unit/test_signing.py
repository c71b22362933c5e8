"""Model signatures (ml.signing) and their keys in .env (commands.envfile), with no services."""

from __future__ import annotations

import logging
import secrets
import stat
from pathlib import Path

import pandas as pd
import pytest
from pydantic import SecretStr

from commands.envfile import write_env_file
from ml import signing
from ml.signing import UntrustedModel
from ml.train import train_and_register
from safra.processes import free_port
from safra.settings import Settings


def _model_dir(root: Path) -> Path:
    """A directory shaped like a downloaded MLflow model."""
    (root / "metadata").mkdir(parents=True)
    (root / "MLmodel").write_text("flavors:\n  sklearn:\n    pickled_model: model.skops\n")
    (root / "model.skops").write_bytes(bytes(range(256)) * 40)
    (root / "requirements.txt").write_text("scikit-learn==1.9.1\n")
    (root / "metadata" / "python_env.yaml").write_text("python: 3.11\n")
    return root


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    return _model_dir(tmp_path / "model")


@pytest.fixture(scope="module")
def keys() -> tuple[str, str]:
    return signing.new_key_pair()


def _signed(model_dir: Path, private: str) -> dict[str, str]:
    digest = signing.digest(signing.manifest(model_dir))
    return signing.sign(digest, signing.private_key(private), "credit", "7")


def _verify(model_dir: Path, tags: dict[str, str], public: str) -> None:
    signing.verify(tags, signing.digest(signing.manifest(model_dir)), public, "credit", "7")


# --- manifest and digest --------------------------------------------------------------------


def test_manifest_lists_every_file_sorted_and_the_digest_is_stable(
    model_dir: Path, tmp_path: Path
) -> None:
    files = signing.manifest(model_dir)
    assert list(files) == [
        "MLmodel", "metadata/python_env.yaml", "model.skops", "requirements.txt",
    ]  # fmt: skip
    assert all(len(h) == 64 for h in files.values())
    # what MLflow's client writes into a downloaded models:/ folder is not an artifact
    (model_dir / "registered_model_meta").write_text("model_version: '7'\n")
    assert signing.manifest(model_dir) == files
    # the same files elsewhere (another download, another machine) give the same digest
    twin = _model_dir(tmp_path / "elsewhere" / "model")
    assert signing.digest(signing.manifest(twin)) == signing.digest(files)
    assert signing.digest(dict(reversed(list(files.items())))) == signing.digest(files)


def _change_a_byte(d: Path) -> None:
    data = bytearray((d / "model.skops").read_bytes())
    data[5000] ^= 1
    (d / "model.skops").write_bytes(bytes(data))


@pytest.mark.parametrize(
    "alter",
    [
        _change_a_byte,
        lambda d: (d / "metadata" / "extra.py").write_text("import os\n"),
        lambda d: (d / "requirements.txt").unlink(),
        lambda d: (d / "model.skops").rename(d / "model2.skops"),
    ],
    ids=["changed-byte", "added-file", "removed-file", "renamed-file"],
)
def test_any_change_to_the_files_changes_the_digest_and_fails_verification(
    model_dir: Path, keys: tuple[str, str], alter
) -> None:
    private, public = keys
    tags = _signed(model_dir, private)
    _verify(model_dir, tags, public)  # untouched: verifies
    before = signing.digest(signing.manifest(model_dir))
    alter(model_dir)
    assert signing.digest(signing.manifest(model_dir)) != before
    with pytest.raises(UntrustedModel, match="artifact altered after registration") as err:
        _verify(model_dir, tags, public)
    assert "credit version 7" in str(err.value)


def test_a_symlink_in_the_artifacts_is_refused(model_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "elsewhere.bin").write_bytes(b"x")
    (model_dir / "model.link").symlink_to(tmp_path / "elsewhere.bin")
    with pytest.raises(ValueError, match="symbolic link"):
        signing.manifest(model_dir)


# --- sign and verify ------------------------------------------------------------------------


def test_signature_tags(model_dir: Path, keys: tuple[str, str]) -> None:
    private, public = keys
    tags = _signed(model_dir, private)
    assert set(tags) == {
        signing.SCHEME_TAG, signing.DIGEST_TAG, signing.SIGNATURE_TAG, signing.KEY_ID_TAG,
    }  # fmt: skip
    assert tags[signing.DIGEST_TAG] == signing.digest(signing.manifest(model_dir))
    assert tags[signing.KEY_ID_TAG] == signing.key_id(signing.public_key(public))
    assert len(tags[signing.KEY_ID_TAG]) == 16
    assert all(len(v) <= 200 for v in tags.values())  # fits MLflow's tag values


def test_a_signature_by_another_key_fails(model_dir: Path, keys: tuple[str, str]) -> None:
    other_private, _ = signing.new_key_pair()
    tags = _signed(model_dir, other_private)
    with pytest.raises(UntrustedModel, match="signed by another key"):
        _verify(model_dir, tags, keys[1])
    # the same, with the key id tag forged to ours: the signature still decides
    forged = {**tags, signing.KEY_ID_TAG: signing.key_id(signing.public_key(keys[1]))}
    with pytest.raises(UntrustedModel, match="signature invalid"):
        _verify(model_dir, forged, keys[1])


def test_missing_or_garbled_signature_fails(model_dir: Path, keys: tuple[str, str]) -> None:
    private, public = keys
    with pytest.raises(UntrustedModel, match="no signature tag 'safra.signature'"):
        _verify(model_dir, {}, public)
    tags = _signed(model_dir, private)
    garbled = {**tags, signing.SIGNATURE_TAG: tags[signing.SIGNATURE_TAG][::-1]}
    with pytest.raises(UntrustedModel, match="signature invalid"):
        _verify(model_dir, garbled, public)
    with pytest.raises(UntrustedModel, match="unknown signature scheme"):
        _verify(model_dir, {**tags, signing.SCHEME_TAG: "md5"}, public)


def test_missing_verify_key_fails_with_a_clear_message(
    model_dir: Path, keys: tuple[str, str]
) -> None:
    tags = _signed(model_dir, keys[0])
    with pytest.raises(UntrustedModel) as err:
        _verify(model_dir, tags, "")
    message = str(err.value)
    assert message.startswith("credit version 7 is not a trusted model, not loaded: ")
    assert "no verify key configured (SAFRA_MODEL_VERIFY_KEY is empty" in message
    assert "`safra env`" in message
    assert err.value.cause.startswith("no verify key configured")
    with pytest.raises(UntrustedModel, match="SAFRA_MODEL_VERIFY_KEY is unusable"):
        _verify(model_dir, tags, "not-a-key")


def test_keys_round_trip_in_either_base64() -> None:
    private, public = signing.new_key_pair()
    assert len(private) == len(public) == 43  # URL-safe, unpadded: safe unquoted in .env
    assert signing.public_key_text(private) == public
    standard = public.replace("-", "+").replace("_", "/") + "="
    assert signing.key_id(signing.public_key(standard)) == signing.key_id(
        signing.public_key(public)
    )
    with pytest.raises(ValueError, match="32 raw bytes"):
        signing.private_key(private[:20])


# --- the settings' keys ---------------------------------------------------------------------


def _settings(**values: str) -> Settings:
    base = Settings(_env_file=None)
    update: dict[str, object] = {"model_signing_key": SecretStr(""), "model_verify_key": ""}
    if "signing" in values:
        update["model_signing_key"] = SecretStr(values["signing"])
    if "verify" in values:
        update["model_verify_key"] = values["verify"]
    return base.model_copy(update=update)


def test_signing_key_from_settings(keys: tuple[str, str]) -> None:
    private, public = keys
    assert signing.key_id(signing.signing_key(_settings(signing=private)).public_key()) == (
        signing.key_id(signing.public_key(public))
    )
    signing.signing_key(_settings(signing=private, verify=public))
    with pytest.raises(ValueError, match=r"SAFRA_MODEL_SIGNING_KEY is not set.*`safra env`"):
        signing.signing_key(_settings())
    with pytest.raises(ValueError, match="SAFRA_MODEL_SIGNING_KEY is unusable"):
        signing.signing_key(_settings(signing="short"))
    _, other_public = signing.new_key_pair()
    with pytest.raises(
        ValueError, match=f"not the public key.*set SAFRA_MODEL_VERIFY_KEY to {public}"
    ):
        signing.signing_key(_settings(signing=private, verify=other_public))


def test_training_without_a_signing_key_fails_before_anything_is_registered() -> None:
    # an MLflow nobody listens on: reaching it would fail differently (and later)
    settings = _settings().model_copy(
        update={"mlflow_tracking_uri": f"http://127.0.0.1:{free_port()}"}
    )
    frame = pd.DataFrame({"inadimplente": [0, 1]})
    with pytest.raises(ValueError, match=r"SAFRA_MODEL_SIGNING_KEY is not set.*`safra env`"):
        train_and_register(frame, frame, settings=settings, model_name="never-registered")


# --- the pair in .env -----------------------------------------------------------------------

EXAMPLE = """\
# secrets
SAFRA_API_KEY=change-me
SAFRA_MODEL_SIGNING_KEY=change-me
SAFRA_MODEL_VERIFY_KEY=change-me
SAFRA_KAFKA_PORT=9092
"""


def _env_values(path: Path) -> dict[str, str]:
    return dict(
        line.split("=", 1)
        for line in path.read_text().splitlines()
        if line and not line.startswith("#")
    )


def _is_pair(private: str, public: str) -> bool:
    return signing.public_key_text(private) == public


def test_env_file_generates_a_working_key_pair(tmp_path: Path) -> None:
    example, env = tmp_path / ".env.example", tmp_path / ".env"
    example.write_text(EXAMPLE)
    generated = write_env_file(env, example)
    assert generated == ["SAFRA_API_KEY", "SAFRA_MODEL_SIGNING_KEY", "SAFRA_MODEL_VERIFY_KEY"]
    values = _env_values(env)
    assert _is_pair(values["SAFRA_MODEL_SIGNING_KEY"], values["SAFRA_MODEL_VERIFY_KEY"])
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    # the settings read them from .env
    settings = Settings(_env_file=str(env))
    signing.signing_key(settings)  # usable, and the verify key is its public key
    assert settings.model_verify_key == values["SAFRA_MODEL_VERIFY_KEY"]


def test_env_file_adds_the_pair_to_an_existing_env_without_touching_it(tmp_path: Path) -> None:
    example, env = tmp_path / ".env.example", tmp_path / ".env"
    example.write_text(EXAMPLE)
    own_key = secrets.token_urlsafe(24)  # the user's own value, generated: no key in git
    before = f"# mine\nSAFRA_API_KEY={own_key}\nSAFRA_KAFKA_PORT=19092\n"
    env.write_text(before)
    assert write_env_file(env, example) == ["SAFRA_MODEL_SIGNING_KEY", "SAFRA_MODEL_VERIFY_KEY"]
    text = env.read_text()
    assert text.startswith(before)  # byte for byte
    values = _env_values(env)
    assert values["SAFRA_API_KEY"] == own_key
    assert _is_pair(values["SAFRA_MODEL_SIGNING_KEY"], values["SAFRA_MODEL_VERIFY_KEY"])
    assert write_env_file(env, example) == []  # a second run changes nothing
    assert env.read_text() == text


def test_env_file_derives_a_missing_public_key_and_never_invents_a_private_one(
    tmp_path: Path, caplog
) -> None:
    example, env = tmp_path / ".env.example", tmp_path / ".env"
    example.write_text(EXAMPLE)
    private, public = signing.new_key_pair()
    env.write_text(f"SAFRA_API_KEY=k\nSAFRA_MODEL_SIGNING_KEY={private}\n")
    assert write_env_file(env, example) == ["SAFRA_MODEL_VERIFY_KEY"]
    assert _env_values(env)["SAFRA_MODEL_VERIFY_KEY"] == public
    # a host that only verifies: its public key alone stays alone
    env.write_text(f"SAFRA_API_KEY=k\nSAFRA_MODEL_VERIFY_KEY={public}\n")
    with caplog.at_level(logging.WARNING, logger="commands.envfile"):
        assert write_env_file(env, example) == []
    assert "SAFRA_MODEL_SIGNING_KEY" not in _env_values(env)
    assert "can be verified here, not signed" in caplog.text


def test_a_signature_holds_only_for_the_version_it_was_made_for(
    model_dir: Path, keys: tuple[str, str]
) -> None:
    """The files of one version registered again as another (a withdrawn model brought back
    under a new number) do not verify."""
    private, public = keys
    tags = _signed(model_dir, private)
    artifact_digest = signing.digest(signing.manifest(model_dir))
    signing.verify(tags, artifact_digest, public, "credit", "7")
    with pytest.raises(signing.UntrustedModel, match="not signed as credit version 8"):
        signing.verify(tags, artifact_digest, public, "credit", "8")
    with pytest.raises(signing.UntrustedModel, match="not signed as other version 7"):
        signing.verify(tags, artifact_digest, public, "other", "7")
