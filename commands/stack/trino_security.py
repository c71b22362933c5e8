"""Trino with its doors shut: TLS, a password per identity, file-based access control.

What ``safra stack up`` writes under ``<data_dir>/trino/`` before Trino starts:

- **TLS** (``tls/``): a self-signed certificate for ``127.0.0.1``, ``localhost`` and the bind
  host, made once per data folder (``cert.pem``, public: clients verify with it) with its key
  (``server.pem``, key + certificate, mode 0600: Trino's keystore). Clients speak HTTPS on
  ``SAFRA_TRINO_HTTPS_PORT``. The HTTP port stays on the bind host for Trino's internal
  communication (signed with the shared secret below); Trino refuses credentials on it
  ("Authentication over HTTP is not enabled"), so no client gets in there. Trino's
  ``http-server.authentication.allow-insecure-over-http`` is *not* used: it makes Trino accept
  any user name without a password on HTTP.
- **Passwords** (``etc/password.db``, mode 0600): Trino's ``file`` password authenticator, one
  PBKDF2 hash per identity (the format Trino reads, from Python's ``hashlib``: no new
  dependency); the passwords themselves stay in ``.env``.
- **Who may read what** (``etc/rules.json``): Trino's ``file`` access control. The ETL identity
  owns every schema of the Iceberg catalog; the analyst reads the silver and gold schemas; the
  ML identity reads the gold schema, the two silver tables training reads and the scored
  requests (drift); only the ETL identity sees other users' queries (their text names bronze's
  tables and values).
- **The internal shared secret** (``etc/shared-secret``, mode 0600, made once), written into
  ``config.properties`` (mode 0600): never on a command line.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import os
import re
import secrets
from pathlib import Path
from typing import Any

from commands.stack.provision import ProvisionError
from safra.settings import Settings

PBKDF2_ITERATIONS = 100_000
"""Trino reads ``iterations:salt:hash`` (hex) of PBKDF2-HMAC-SHA1 and wants at least 1,000; it
caches a verified login, so the cost is paid once per password, not per query."""
TABLE_PRIVILEGES = ["SELECT", "INSERT", "DELETE", "UPDATE", "OWNERSHIP", "GRANT_SELECT"]


def write_private(path: Path, text: str) -> None:
    """``text`` into ``path``, readable by its owner only (created so: never a moment wider)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.read_text() == text:
        path.chmod(0o600)
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    path.chmod(0o600)


# --- TLS --------------------------------------------------------------------------------------


def certificate(s: Settings) -> tuple[Path, Path]:
    """``(server.pem, cert.pem)``: Trino's keystore (key + certificate, 0600) and the public
    certificate clients verify with; made when missing or within 30 days of expiry."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    cert_path = s.trino_local_cert
    server_path = cert_path.with_name("server.pem")
    now = dt.datetime.now(dt.UTC)
    if cert_path.exists() and server_path.exists():
        current = x509.load_pem_x509_certificate(cert_path.read_bytes())
        if current.not_valid_after_utc - now > dt.timedelta(days=30):
            return server_path, cert_path
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "safra-trino")])
    hosts = {"127.0.0.1", "localhost", s.bind_host, s.trino_host}
    alt: list[x509.GeneralName] = []
    for host in sorted(hosts):
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    write_private(server_path, key_pem + cert_pem)
    write_private(cert_path, cert_pem)  # public, but nothing under the data folder is shared
    return server_path, cert_path


# --- passwords --------------------------------------------------------------------------------


def pbkdf2_hash(password: str, salt: bytes | None = None) -> str:
    """``iterations:salt:hash`` (hex) of ``password``, as Trino's password file reads it."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha1", password.encode(), salt, PBKDF2_ITERATIONS, 32)
    return f"{PBKDF2_ITERATIONS}:{salt.hex()}:{digest.hex()}"


def _matches(password: str, stored: str) -> bool:
    try:
        iterations, salt, digest = stored.split(":")
        mine = hashlib.pbkdf2_hmac(
            "sha1", password.encode(), bytes.fromhex(salt), int(iterations), len(digest) // 2
        )
    except ValueError:
        return False
    return hmac.compare_digest(mine.hex(), digest)


def identities(s: Settings) -> dict[str, str]:
    """User → password of the three identities; ProvisionError naming the empty variable."""
    out = {}
    for identity in ("etl", "analyst", "ml"):
        try:
            user, password, _ = s.trino_identity(identity)
        except ValueError as exc:
            raise ProvisionError(f"trino: {exc}") from exc
        out[user] = password
    return out


def password_file(s: Settings, path: Path) -> None:
    """The password file (0600): a hash per identity; a hash still matching its password is
    kept (no churn at each ``stack up``), a changed password gets a new one."""
    old: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            user, _, stored = line.partition(":")
            old[user] = stored
    lines = []
    for user, password in identities(s).items():
        stored = old.get(user, "")
        lines.append(f"{user}:{stored if _matches(password, stored) else pbkdf2_hash(password)}")
    write_private(path, "\n".join(lines) + "\n")


# --- access control ---------------------------------------------------------------------------


def access_rules(s: Settings) -> dict[str, Any]:
    """Trino's file-based access control rules (first match wins; no match: no access).

    Schemas may carry a prefix (``<prefix>silver``: the tests' and benchmarks' own schemas)."""
    etl, analyst, ml = s.trino_user, s.trino_analyst_user, s.trino_ml_user
    catalog = re.escape(s.iceberg_catalog)
    readers = f"{re.escape(analyst)}|{re.escape(ml)}"
    prefixed = "(.+_)?{}".format  # noqa: UP032 (a template)
    bronze = prefixed(re.escape(s.bronze_schema))
    return {
        "catalogs": [
            {"user": re.escape(etl), "catalog": f"{catalog}|system", "allow": "all"},
            {"user": readers, "catalog": catalog, "allow": "read-only"},
            {"user": readers, "catalog": "system", "allow": "read-only"},
        ],
        "schemas": [
            {"user": re.escape(etl), "owner": True},
        ],
        "tables": [
            {"user": re.escape(etl), "privileges": TABLE_PRIVILEGES},
            {"user": readers, "catalog": catalog, "schema": "information_schema",
             "privileges": ["SELECT"]},
            {"user": re.escape(analyst), "catalog": catalog,
             "schema": prefixed("(silver|gold)"), "privileges": ["SELECT"]},
            {"user": re.escape(ml), "catalog": catalog, "schema": prefixed("gold"),
             "privileges": ["SELECT"]},
            # training's labelled rows (ml.training_set) and drift's current data (ml.drift);
            # `$refs` and the other metadata tables give the snapshot ids training pins
            {"user": re.escape(ml), "catalog": catalog, "schema": prefixed("silver"),
             "table": r"(silver_applications|silver_outcomes)(\$.*)?",
             "privileges": ["SELECT"]},
            {"user": re.escape(ml), "catalog": catalog, "schema": bronze,
             "table": "scored_requests", "privileges": ["SELECT"]},
            {"user": readers, "catalog": "system", "privileges": ["SELECT"]},
        ],
        # CALL system.runtime.kill_query (and the connectors' procedures): the ETL identity only
        "procedures": [
            {"user": re.escape(etl), "privileges": ["EXECUTE"]},
        ],
        "queries": [
            {"user": re.escape(etl), "allow": ["execute", "kill", "view"]},
            {"allow": ["execute"]},
        ],
    }  # fmt: skip


def provision(s: Settings, etc: Path) -> list[str]:
    """Write the TLS material, the password file, the rules and their properties files; return
    the ``config.properties`` lines that turn them on (the caller writes that file 0600)."""
    server_pem, _ = certificate(s)
    password_file(s, etc / "password.db")
    write_private(etc / "rules.json", json.dumps(access_rules(s), indent=2) + "\n")
    write_private(
        etc / "password-authenticator.properties",
        f"password-authenticator.name=file\nfile.password-file={etc / 'password.db'}\n",
    )
    write_private(
        etc / "access-control.properties",
        f"access-control.name=file\nsecurity.config-file={etc / 'rules.json'}\n",
    )
    secret_file = etc / "shared-secret"
    if not secret_file.exists():
        write_private(secret_file, secrets.token_urlsafe(48))
    return [
        "http-server.https.enabled=true",
        f"http-server.https.port={s.trino_https_port}",
        f"http-server.https.keystore.path={server_pem}",
        "http-server.authentication.type=PASSWORD",
        f"password-authenticator.config-files={etc / 'password-authenticator.properties'}",
        f"access-control.config-files={etc / 'access-control.properties'}",
        f"internal-communication.shared-secret={secret_file.read_text().strip()}",
    ]
