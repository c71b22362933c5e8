"""docker-compose.yml (distributed mode) against the local stack's settings, without Docker.

This machine has no Docker engine, so nothing here starts a container: the file is parsed as YAML
and checked against ``safra.settings``. Each check is a function returning a list of problems; the
``*_catches_*`` tests feed it a broken copy of the file to prove that it can fail.
"""

from __future__ import annotations

import copy
import os
import re
import secrets
import stat
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from commands.envfile import PLACEHOLDER, write_env_file
from safra.settings import LOCAL_SERVICES, Settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
TRINO_CATALOG = REPO / "deploy" / "trino" / "catalog" / "iceberg.properties"

FIELDS = Settings.model_fields
LOOPBACK = "127.0.0.1"
SECRET_WORDS = ("PASSWORD", "SECRET", "KEY")
# A published port: 127.0.0.1:${SAFRA_X_PORT:-N}:CONTAINER[/proto]
PORT_RE = re.compile(
    r"^(?P<ip>[^:]+):\$\{(?P<var>[A-Z0-9_]+):-(?P<default>\d+)\}:(?P<target>\d+)(?:/(?:tcp|udp))?$"
)
# A secret's value: a bare or required reference, never one with a literal default.
SECRET_REF_RE = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*(?::?\?[^}]*)?\}$")
# Compose variable references (not `$${...}`, which is a literal dollar for the container's shell).
VAR_RE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)")


def load_compose() -> dict:
    with COMPOSE_FILE.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_compose()


def port_var(service: str) -> str:
    return f"SAFRA_{service.upper().replace('-', '_')}_PORT"


def port_field(service: str) -> str:
    return f"{service.replace('-', '_')}_port"


def env_of(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def one_shot_services(compose: dict) -> set[str]:
    """Services others wait on with ``service_completed_successfully``: run once and exit."""
    found = set()
    for service in compose["services"].values():
        deps = service.get("depends_on") or {}
        if isinstance(deps, dict):
            for name, spec in deps.items():
                if (spec or {}).get("condition") == "service_completed_successfully":
                    found.add(name)
    return found


def parse_ports(service: dict) -> list[tuple[str, str, str, int] | str]:
    """``(host_ip, variable, default, target)`` per published port; the raw entry if malformed."""
    out: list[tuple[str, str, str, int] | str] = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            published = str(entry.get("published", ""))
            m = re.fullmatch(r"\$\{([A-Z0-9_]+):-(\d+)\}", published)
            if not m:
                out.append(repr(entry))
                continue
            ip = str(entry.get("host_ip", "0.0.0.0"))
            out.append((ip, m.group(1), m.group(2), int(entry.get("target", 0))))
            continue
        m = PORT_RE.match(str(entry))
        out.append((m["ip"], m["var"], m["default"], int(m["target"])) if m else repr(entry))
    return out


# --- checks -----------------------------------------------------------------------------------


def service_problems(compose: dict) -> list[str]:
    services = compose.get("services") or {}
    wanted = [*LOCAL_SERVICES, "minio", "minio-init", "postgres", "spark-master", "spark-worker"]
    return [f"no compose service {name!r}" for name in wanted if name not in services]


def port_problems(compose: dict) -> list[str]:
    problems = []
    for name, service in compose["services"].items():
        for port in parse_ports(service):
            if isinstance(port, str):
                problems.append(f"{name}: port {port} is not 127.0.0.1:${{SAFRA_X_PORT:-N}}:PORT")
                continue
            ip, var, default, _target = port
            if ip != LOOPBACK:
                problems.append(f"{name}: port bound to {ip}, not {LOOPBACK}")
            field = var.removeprefix("SAFRA_").lower()
            if not var.startswith("SAFRA_") or field not in FIELDS:
                problems.append(f"{name}: {var} is not a Settings field")
            elif str(FIELDS[field].default) != default:
                problems.append(
                    f"{name}: {var} defaults to {default}, Settings to {FIELDS[field].default}"
                )
    for name in LOCAL_SERVICES:
        service = compose["services"].get(name)
        if service is None:
            continue  # reported by service_problems
        ports = [p for p in parse_ports(service) if not isinstance(p, str)]
        if [p[1] for p in ports] != [port_var(name)]:
            problems.append(f"{name}: must publish exactly one port, under {port_var(name)}")
    return problems


def healthcheck_problems(compose: dict) -> list[str]:
    problems = []
    one_shots = one_shot_services(compose)
    for name, service in compose["services"].items():
        check = service.get("healthcheck") or {}
        if name in one_shots:
            if str(service.get("restart", "no")) != "no":
                problems.append(f"{name}: a one-shot service must not restart")
            continue
        if not check.get("test") or check.get("disable"):
            problems.append(f"{name}: no health check")
    return problems


def depends_on_problems(compose: dict) -> list[str]:
    services = compose["services"]
    problems = []
    for name, service in services.items():
        deps = service.get("depends_on") or {}
        if isinstance(deps, list):
            problems.append(f"{name}: depends_on without conditions (starts before {deps} is up)")
            continue
        for dep, spec in deps.items():
            condition = (spec or {}).get("condition")
            if dep not in services:
                problems.append(f"{name}: depends on unknown service {dep!r}")
            elif condition == "service_healthy" and not services[dep].get("healthcheck"):
                problems.append(f"{name}: waits for {dep} to be healthy, but it has no check")
            elif condition not in ("service_healthy", "service_completed_successfully"):
                problems.append(f"{name}: depends on {dep} with condition {condition!r}")
    needed = {
        "minio-init": {"minio": "service_healthy"},
        "iceberg-rest": {
            "postgres": "service_healthy",
            "minio-init": "service_completed_successfully",
        },
        "trino": {"iceberg-rest": "service_healthy"},
        "mlflow": {"postgres": "service_healthy", "minio-init": "service_completed_successfully"},
        "spark-worker": {"spark-master": "service_healthy"},
    }
    for name, deps in needed.items():
        have = (services.get(name) or {}).get("depends_on") or {}
        for dep, condition in deps.items():
            if not isinstance(have, dict) or (have.get(dep) or {}).get("condition") != condition:
                problems.append(f"{name}: must wait for {dep} ({condition})")
    return problems


def _environments(compose: dict) -> dict[str, dict[str, str]]:
    envs = {f"services.{n}": env_of(s) for n, s in compose["services"].items()}
    for key, value in compose.items():
        if key.startswith("x-") and isinstance(value, dict):
            envs[key] = {str(k): str(v) for k, v in value.items() if not isinstance(v, dict)}
    return envs


def _strings(node: object) -> list[str]:
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(node, list):
        return [s for item in node for s in _strings(item)]
    return [node] if isinstance(node, str) else []


def secret_problems(compose: dict) -> list[str]:
    problems = []
    for where, env in _environments(compose).items():
        for key, value in env.items():
            if any(word in key.upper() for word in SECRET_WORDS) and not SECRET_REF_RE.match(value):
                problems.append(f"{where}: {key} is a literal, not a ${{NAME:?...}} reference")
    for text in _strings(compose):  # credentials inside URLs: scheme://user:password@host
        masked = re.sub(r"\$\{[^}]*\}", "${REF}", text)
        for m in re.finditer(r"[a-z][a-z0-9+.-]*://[^/\s@]*?:([^/\s@]*)@", masked):
            if m.group(1) != "${REF}":
                problems.append(f"literal password in URL {text!r}")
    return problems


def safra_env_problems(compose: dict) -> list[str]:
    env = compose.get("x-safra-env")
    if not isinstance(env, dict):
        return ["no x-safra-env block"]
    problems = []
    if "SAFRA_STACK_SERVICES" not in env or env["SAFRA_STACK_SERVICES"] not in ("", None):
        problems.append("x-safra-env must set SAFRA_STACK_SERVICES to '' (start nothing locally)")
    for key in env:
        if key.startswith("SAFRA_") and key.removeprefix("SAFRA_").lower() not in FIELDS:
            problems.append(f"x-safra-env: {key} is not a Settings field")
    return problems


def safra_env_settings(compose: dict, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The Settings a job container built from x-safra-env sees (references filled in)."""
    for key in list(os.environ):
        if key.startswith("SAFRA_"):
            monkeypatch.delenv(key)
    for key, value in compose["x-safra-env"].items():
        if key.startswith("SAFRA_"):
            monkeypatch.setenv(key, re.sub(r"\$\{[^}]*\}", "filled-in", str(value or "")))
    return Settings(_env_file=None)


def compose_variables(compose: dict) -> set[str]:
    """Variables compose interpolates (from the parsed file, so comments do not count)."""
    return {name for text in _strings(compose) for name in VAR_RE.findall(text)}


def read_env_example(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip()
    return out


def read_properties(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def image_tag(service: dict) -> str:
    return str(service["image"]).rsplit(":", 1)[1]


# --- the real file ----------------------------------------------------------------------------


def test_compose_parses_with_services_and_volumes(compose: dict) -> None:
    assert isinstance(compose, dict)
    assert isinstance(compose.get("services"), dict)
    for name, service in compose["services"].items():
        assert "image" in service or "build" in service, name
        for volume in service.get("volumes") or []:
            source = str(volume).split(":", 1)[0]
            if source.startswith("."):
                assert (REPO / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in (compose.get("volumes") or {}), f"{name}: undeclared {source}"
        build = service.get("build")
        if build:
            context = REPO / (build if isinstance(build, str) else build["context"])
            assert (context / "Dockerfile").is_file(), f"{name}: no Dockerfile in {context}"


def test_every_local_service_has_a_container_and_minio_postgres_spark(compose: dict) -> None:
    assert service_problems(compose) == []


def test_ports_use_the_local_stack_variables_on_loopback(compose: dict) -> None:
    assert port_problems(compose) == []


def test_every_service_has_a_health_check_except_one_shots(compose: dict) -> None:
    assert one_shot_services(compose) == {"minio-init"}
    assert healthcheck_problems(compose) == []


def test_depends_on_waits_for_health(compose: dict) -> None:
    assert depends_on_problems(compose) == []


def test_no_literal_secrets(compose: dict) -> None:
    assert secret_problems(compose) == []


def test_secrets_are_required_not_defaulted(compose: dict) -> None:
    text = "\n".join(_strings(compose))
    for name in ("POSTGRES_PASSWORD", "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD",
                 "SAFRA_REDIS_PASSWORD"):  # fmt: skip
        refs = re.findall(r"\$\{" + name + r"([^}]*)\}", text)
        assert refs, f"{name} is never used"
        assert all(r.startswith(":?") for r in refs), f"{name} must be ${{{name}:?...}}: {refs}"


def test_x_safra_env_points_safra_at_the_containers(
    compose: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert safra_env_problems(compose) == []
    s = safra_env_settings(compose, monkeypatch)
    services = compose["services"]
    assert s.local_services == []
    kafka_host, _, kafka_port = s.kafka_bootstrap.partition(":")
    endpoints = {
        "kafka": (kafka_host, int(kafka_port)),
        "iceberg-rest": (urlsplit(s.iceberg_rest_uri).hostname, urlsplit(s.iceberg_rest_uri).port),
        # the compose Trino has no TLS nor passwords yet (README, distributed mode): its HTTP
        # port is the local stack's internal one
        "trino": (s.trino_host, s.trino_port),
        "redis": (urlsplit(s.redis_url).hostname, urlsplit(s.redis_url).port),
        "mlflow": (urlsplit(s.mlflow_tracking_uri).hostname, urlsplit(s.mlflow_tracking_uri).port),
    }
    assert set(endpoints) == set(LOCAL_SERVICES)
    for name, (host, port) in endpoints.items():
        assert host == name and host in services, f"Safra reaches {name} at {host}"
        # containers listen on the local stack's default ports
        assert port == FIELDS[port_field(name)].default, f"{name}: port {port}"
    assert s.spark_master == "spark://spark-master:7077"
    assert s.iceberg_warehouse == env_of(services["iceberg-rest"])["CATALOG_WAREHOUSE"]
    assert s.redis_password is not None


def test_published_ports_reach_the_service_port(compose: dict) -> None:
    services = compose["services"]
    for name in LOCAL_SERVICES:
        ((_ip, var, _default, target),) = parse_ports(services[name])  # type: ignore[misc]
        if name == "kafka":
            env = env_of(services["kafka"])
            # the published port is the HOST listener, advertised at the host's own address
            assert f"HOST://:{target}" in env["KAFKA_LISTENERS"]
            assert f"HOST://{LOOPBACK}:${{{var}:-" in env["KAFKA_ADVERTISED_LISTENERS"]
            assert "INTERNAL://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
        else:
            assert target == FIELDS[port_field(name)].default, name


def test_images_match_the_pinned_versions(compose: dict) -> None:
    services = compose["services"]
    assert image_tag(services["kafka"]) == FIELDS["kafka_version"].default
    assert image_tag(services["trino"]) == FIELDS["trino_version"].default
    rest_version = FIELDS["iceberg_rest_version"].default
    assert services["iceberg-rest"]["build"]["args"]["ICEBERG_REST_VERSION"] == rest_version
    dockerfile = (REPO / "deploy" / "iceberg-rest" / "Dockerfile").read_text(encoding="utf-8")
    assert f"ARG ICEBERG_REST_VERSION={rest_version}" in dockerfile
    for name in ("spark-master", "spark-worker"):
        tag = image_tag(services[name])
        assert tag.split("-")[0] == FIELDS["spark_version"].default, f"{name}: {tag}"
    lock = (REPO / "requirements.lock").read_text(encoding="utf-8")
    mlflow_pin = re.search(r"^mlflow==(\S+)", lock, re.M)
    if mlflow_pin:  # the server speaks the client's version
        assert image_tag(services["mlflow"]).removeprefix("v").split("-")[0] == mlflow_pin[1]


def test_iceberg_rest_uses_postgres_and_minio(compose: dict) -> None:
    env = env_of(compose["services"]["iceberg-rest"])
    assert env["CATALOG_URI"] == "jdbc:postgresql://postgres:5432/iceberg"
    assert env["CATALOG_WAREHOUSE"] == "s3://warehouse/"
    assert env["CATALOG_IO__IMPL"] == "org.apache.iceberg.aws.s3.S3FileIO"
    assert env["CATALOG_S3_ENDPOINT"] == "http://minio:9000"
    assert env["CATALOG_S3_PATH__STYLE__ACCESS"] == "true"
    assert env["CATALOG_JDBC_SCHEMA__VERSION"] == "V1"  # views, as the local catalog
    init = (REPO / "deploy" / "postgres" / "init.sql").read_text(encoding="utf-8").lower()
    assert "create database iceberg" in init and "create database mlflow" in init
    mlflow = compose["services"]["mlflow"]
    assert "@postgres:5432/mlflow" in env_of(mlflow)["MLFLOW_BACKEND_STORE_URI"]
    assert "s3://mlflow/" in " ".join(_strings(mlflow.get("command")))
    buckets = " ".join(_strings(compose["services"]["minio-init"].get("command")))
    assert "safra/warehouse" in buckets and "safra/mlflow" in buckets


def test_trino_catalog_file_matches_settings(compose: dict) -> None:
    assert TRINO_CATALOG.stem == FIELDS["iceberg_catalog"].default
    mounts = [str(v) for v in compose["services"]["trino"].get("volumes") or []]
    assert (
        f"./deploy/trino/catalog/{TRINO_CATALOG.name}:/etc/trino/catalog/{TRINO_CATALOG.name}:ro"
        in mounts
    )
    props = read_properties(TRINO_CATALOG)
    assert props["connector.name"] == "iceberg"
    assert props["iceberg.catalog.type"] == "rest"
    assert urlsplit(props["iceberg.rest-catalog.uri"]).hostname == "iceberg-rest"
    assert props["fs.native-s3.enabled"] == "true"
    assert props["s3.path-style-access"] == "true"
    assert props["s3.endpoint"] == "http://minio:9000"
    trino_env = env_of(compose["services"]["trino"])
    for key in ("s3.aws-access-key", "s3.aws-secret-key", "s3.region"):
        m = re.fullmatch(r"\$\{ENV:([A-Z0-9_]+)\}", props[key])
        assert m, f"{key} must come from the environment"
        assert m[1] in trino_env, f"trino's environment lacks {m[1]}"
    for key, value in props.items():
        if any(w in key.upper() for w in SECRET_WORDS):
            assert value.startswith("${ENV:"), f"literal secret {key}"


def test_env_example_lists_every_variable_compose_needs(compose: dict) -> None:
    example = read_env_example()
    needed = compose_variables(compose)
    assert needed - set(example) == set(), "missing from .env.example"
    for key, value in example.items():
        if any(word in key for word in SECRET_WORDS):
            assert value == PLACEHOLDER, f".env.example: {key} must be {PLACEHOLDER}"
        field = key.removeprefix("SAFRA_").lower()
        if key.startswith("SAFRA_") and field in FIELDS and value != PLACEHOLDER:
            assert value == str(FIELDS[field].default), f"{key}={value} differs from Settings"
    for secret in ("POSTGRES_PASSWORD", "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD",
                   "SAFRA_REDIS_PASSWORD"):  # fmt: skip
        assert example.get(secret) == PLACEHOLDER, secret


def test_dotenv_is_git_ignored_and_example_is_not() -> None:
    lines = [ln.strip() for ln in (REPO / ".gitignore").read_text(encoding="utf-8").splitlines()]
    assert ".env" in lines or "/.env" in lines
    assert ".env.*" not in lines and ".env*" not in lines  # would hide .env.example


# --- the checks can fail ----------------------------------------------------------------------


def broken(compose: dict, edit) -> dict:  # type: ignore[no-untyped-def]
    doc = copy.deepcopy(compose)
    edit(doc)
    return doc


@pytest.mark.parametrize("name", [*LOCAL_SERVICES, "minio", "postgres"])
def test_service_check_catches_a_missing_service(compose: dict, name: str) -> None:
    doc = broken(compose, lambda d: d["services"].pop(name))
    assert any(repr(name) in p for p in service_problems(doc))


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ("0.0.0.0:${SAFRA_TRINO_PORT:-8080}:8080", "not 127.0.0.1"),
        ("${SAFRA_TRINO_PORT:-8080}:8080", "not 127.0.0.1"),
        ("127.0.0.1:8080:8080", "not 127.0.0.1:${"),
        ("8080", "not 127.0.0.1:${"),
        ("127.0.0.1:${SAFRA_TRINO_PORT:-8081}:8080", "Settings to 8080"),
        ("127.0.0.1:${TRINO_PORT:-8080}:8080", "not a Settings field"),
        ("127.0.0.1:${SAFRA_MLFLOW_PORT:-5000}:8080", "under SAFRA_TRINO_PORT"),
    ],
)
def test_port_check_catches_bad_bindings(compose: dict, entry: str, why: str) -> None:
    doc = broken(compose, lambda d: d["services"]["trino"].__setitem__("ports", [entry]))
    assert any(why in p for p in port_problems(doc)), port_problems(doc)


def test_port_check_catches_long_syntax_on_all_interfaces(compose: dict) -> None:
    entry = {"target": 5432, "published": "${SAFRA_TRINO_PORT:-8080}", "host_ip": "0.0.0.0"}
    doc = broken(compose, lambda d: d["services"]["postgres"].__setitem__("ports", [entry]))
    assert any("postgres: port bound to 0.0.0.0" in p for p in port_problems(doc))


def test_healthcheck_check_catches_missing_or_disabled(compose: dict) -> None:
    doc = broken(compose, lambda d: d["services"]["redis"].pop("healthcheck"))
    assert "redis: no health check" in healthcheck_problems(doc)
    doc = broken(
        compose, lambda d: d["services"]["kafka"].__setitem__("healthcheck", {"disable": True})
    )
    assert "kafka: no health check" in healthcheck_problems(doc)


def test_depends_on_check_catches_plain_lists_and_lost_waits(compose: dict) -> None:
    doc = broken(
        compose, lambda d: d["services"]["trino"].__setitem__("depends_on", ["iceberg-rest"])
    )
    problems = depends_on_problems(doc)
    assert any("trino: depends_on without conditions" in p for p in problems)
    assert "trino: must wait for iceberg-rest (service_healthy)" in problems


def test_secret_check_catches_literals(compose: dict) -> None:
    literal = secrets.token_urlsafe(8)  # a literal the check must catch, made up per run

    def edit(d: dict) -> None:
        d["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"] = literal
        d["services"]["minio"]["environment"]["MINIO_ROOT_PASSWORD"] = "${MINIO_ROOT_PASSWORD:-x}"
        d["services"]["redis"]["environment"] = [f"REDIS_PASSWORD={literal}"]
        d["x-safra-env"]["AWS_SECRET_ACCESS_KEY"] = literal
        d["services"]["mlflow"]["environment"]["MLFLOW_BACKEND_STORE_URI"] = (
            f"postgresql://safra:{literal}@postgres:5432/mlflow"
        )

    problems = secret_problems(broken(compose, edit))
    for needle in ("POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD", "REDIS_PASSWORD",
                   "AWS_SECRET_ACCESS_KEY", "literal password in URL"):  # fmt: skip
        assert any(needle in p for p in problems), needle


def test_safra_env_check_catches_local_services_and_typos(compose: dict) -> None:
    doc = broken(compose, lambda d: d["x-safra-env"].__setitem__("SAFRA_STACK_SERVICES", "redis"))
    assert safra_env_problems(doc)
    doc = broken(compose, lambda d: d["x-safra-env"].pop("SAFRA_STACK_SERVICES"))
    assert safra_env_problems(doc)
    doc = broken(compose, lambda d: d["x-safra-env"].__setitem__("SAFRA_KAFKA_BOOTSTRAPS", "k:1"))
    assert any("SAFRA_KAFKA_BOOTSTRAPS" in p for p in safra_env_problems(doc))


# --- write_env_file ---------------------------------------------------------------------------

EXAMPLE = """\
# a comment
POSTGRES_PASSWORD=change-me
MINIO_ROOT_USER=change-me
POSTGRES_USER=safra

SAFRA_KAFKA_PORT=9092
"""


def test_write_env_file_generates_secrets_and_copies_the_rest(tmp_path: Path) -> None:
    example, env = tmp_path / ".env.example", tmp_path / ".env"
    example.write_text(EXAMPLE)
    generated = write_env_file(env, example)
    assert generated == ["POSTGRES_PASSWORD", "MINIO_ROOT_USER"]
    values = read_env_example(env)
    assert values["POSTGRES_USER"] == "safra" and values["SAFRA_KAFKA_PORT"] == "9092"
    secrets = [values["POSTGRES_PASSWORD"], values["MINIO_ROOT_USER"]]
    assert PLACEHOLDER not in values.values()
    assert len(set(secrets)) == 2
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{32}", s) for s in secrets)
    assert "# a comment" in env.read_text()
    assert stat.S_IMODE(env.stat().st_mode) == 0o600


def test_write_env_file_never_touches_existing_values(tmp_path: Path) -> None:
    example, env = tmp_path / ".env.example", tmp_path / ".env"
    example.write_text(EXAMPLE)
    env.write_text("POSTGRES_PASSWORD=mine\n# keep me\nEXTRA=1")
    env.chmod(0o644)
    assert write_env_file(env, example) == ["MINIO_ROOT_USER"]
    text = env.read_text()
    assert text.startswith("POSTGRES_PASSWORD=mine\n# keep me\nEXTRA=1\n")
    values = read_env_example(env)
    assert values["POSTGRES_PASSWORD"] == "mine" and values["EXTRA"] == "1"
    assert list(values).count("POSTGRES_PASSWORD") == 1
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    # a second run generates nothing and changes nothing
    before = env.read_text()
    assert write_env_file(env, example) == []
    assert env.read_text() == before


def test_write_env_file_on_the_real_example(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    generated = write_env_file(env, ENV_EXAMPLE)
    example = read_env_example()
    assert sorted(generated) == sorted(k for k, v in example.items() if v == PLACEHOLDER)
    values = read_env_example(env)
    assert set(values) == set(example)
    assert PLACEHOLDER not in values.values()
