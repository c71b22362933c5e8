"""The API's OpenAPI document and its offline documentation pages.

The document is generated from the models of :mod:`serving.contract` — the very ones the
validator uses — so a bound or an example exists once. FastAPI lists the routes; this module
fills what FastAPI cannot see (the service parses the body itself, to answer 422 in its own
words): the request body (exactly one of the two shapes), every answer with its schema, the
``X-API-Key`` scheme, ``Retry-After`` on 503.

Swagger UI is served from the files BentoML's wheel ships (``bentoml/_internal/server/
static_content``, the same ones BentoML's index page loads), never from a CDN: on a network
without internet access the pages still work. :func:`service_document` is the whole service's
document (the ``/v1`` operations and the probes) that BentoML's index page shows.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic.json_schema import models_json_schema

from serving.contract import (
    SHORT_EXAMPLE,
    WHOLE_EXAMPLE,
    CreditScoreAnswer,
    ErrorBody,
    ShortRequest,
    WholeApplication,
)

API_KEY_HEADER = "X-API-Key"
SECURITY_SCHEME = "ApiKey"
REF = "#/components/schemas/{model}"


def swagger_assets() -> Path:
    """The Swagger UI files BentoML ships (swagger-ui-bundle.js, swagger-ui.css, ...)."""
    return Path(str(resources.files("bentoml._internal.server") / "static_content"))


def swagger_page(title: str, openapi_url: str, assets_url: str) -> str:
    """Swagger UI over ``openapi_url``, every file from ``assets_url`` (no external URL: the
    validator badge, which calls swagger.io, is off)."""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<link rel="stylesheet" type="text/css" href="{assets_url}/swagger-ui.css">
<link rel="icon" type="image/png" href="{assets_url}/favicon-light-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{assets_url}/swagger-ui-bundle.js" charset="UTF-8"></script>
<script>
window.ui = SwaggerUIBundle({{
  url: "{openapi_url}",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis],
}});
</script>
</body>
</html>
"""


def _json(schema_ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": REF.format(model=schema_ref)}}}


def _error(description: str, example: str, **headers: Any) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": description,
        "content": {
            "application/json": {
                "schema": {"$ref": REF.format(model="ErrorBody")},
                "example": {"mensagem": example},
            }
        },
    }
    if headers:
        answer["headers"] = headers
    return answer


RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds to wait before retrying",
        "schema": {"type": "integer", "minimum": 1},
    }
}
UNAUTHORIZED = _error(f"missing or wrong `{API_KEY_HEADER}` header", "missing or wrong X-API-Key")
UNAVAILABLE = _error(
    "cannot answer now: no champion loaded, the online feature store (Redis) or Kafka "
    "unavailable, or this worker at its concurrency limit or with requests queueing; retry "
    "after `Retry-After` seconds",
    "cannot score now: the online feature store (Redis) is unavailable",
    **RETRY_AFTER,
)


def _credit_score_operation() -> dict[str, Any]:
    invalid = _error("invalid body: `erros` names each bad field and why", "invalid request")
    invalid["content"]["application/json"]["example"] = {
        "mensagem": "invalid request",
        "erros": [{"campo": "renda_liquida_mes", "motivo": "Input should be greater than 0"}],
    }
    return {
        "summary": "Score one application",
        "description": (
            "Probability of default, score, decision and main reasons. The body is a short "
            "request (`id_proponente`: the applicant's latest profile in the online store "
            "fills the rest) or a whole application (`proponente_id`, the `application` "
            "record's fields; other fields are ignored). An applicant the online store does "
            "not know is scored on the request alone, or routed to MANUAL_REVIEW when the "
            "store looks empty or stale (`observacao` says which)."
        ),
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            {"$ref": REF.format(model="ShortRequest")},
                            {"$ref": REF.format(model="WholeApplication")},
                        ]
                    },
                    "examples": {
                        "short": {
                            "summary": "short request",
                            "value": SHORT_EXAMPLE,
                        },
                        "whole": {"summary": "whole application", "value": WHOLE_EXAMPLE},
                    },
                }
            },
        },
        "responses": {
            "200": {"description": "the answer", "content": _json("CreditScoreAnswer")},
            "401": UNAUTHORIZED,
            "413": _error("the body is larger than the API reads", "request body too large"),
            "422": invalid,
            "500": _error(
                "scoring this request failed (a bug; logged with the request id's trace)",
                "internal error while scoring (logged)",
            ),
            "503": UNAVAILABLE,
        },
    }


def _model_info_operation() -> dict[str, Any]:
    return {
        "summary": "The model serving now",
        "description": "Name, version, run metrics, when it became champion, promotion tags, "
        "thresholds, and the alias watcher's state.",
        "responses": {
            "200": {
                "description": "the serving model",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["model_name", "model_version", "limiares"],
                            "properties": {
                                "model_name": {"type": "string"},
                                "model_version": {"type": "string"},
                                "limiares": {"$ref": REF.format(model="Limiares")},
                            },
                        }
                    }
                },
            },
            "401": UNAUTHORIZED,
            "503": UNAVAILABLE,
        },
    }


def _components() -> dict[str, Any]:
    _, schemas = models_json_schema(
        [
            (ShortRequest, "validation"),
            (WholeApplication, "validation"),
            (CreditScoreAnswer, "serialization"),
            (ErrorBody, "serialization"),
        ],
        ref_template=REF,
    )
    return dict(schemas["$defs"])


def document(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document of the ``/v1`` app (paths relative to ``/v1``)."""
    spec = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    operations = {
        ("/credit-score", "post"): _credit_score_operation(),
        ("/model-info", "get"): _model_info_operation(),
    }
    for (path, method), operation in operations.items():
        generated = spec["paths"][path][method]
        spec["paths"][path][method] = {
            "operationId": generated.get("operationId"),
            **operation,
            "security": [{SECURITY_SCHEME: []}],
        }
    spec.setdefault("components", {})
    spec["components"]["schemas"] = _components()
    spec["components"]["securitySchemes"] = {
        SECURITY_SCHEME: {"type": "apiKey", "in": "header", "name": API_KEY_HEADER}
    }
    return spec


def install(app: FastAPI) -> None:
    """``app.openapi()`` answers :func:`document`, computed once."""
    cached: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        if not cached:
            cached.update(document(app))
        return cached

    app.openapi = openapi  # type: ignore[method-assign]


PROBES = {
    "/livez": "alive (no key)",
    "/readyz": "ready: a champion loaded, the online store (Redis) and Kafka reachable (no key)",
}


def service_document(v1_document: Callable[[], dict[str, Any]], prefix: str) -> dict[str, Any]:
    """The whole service's document: the ``/v1`` operations under ``prefix`` and the probes."""
    spec = copy.deepcopy(v1_document())
    spec.pop("servers", None)
    spec["paths"] = {f"{prefix}{path}": item for path, item in spec["paths"].items()}
    for path, what in PROBES.items():
        spec["paths"][path] = {
            "get": {
                "summary": what,
                "tags": ["probes"],
                "responses": {"200": {"description": "yes"}, "503": {"description": "no"}},
            }
        }
    spec["paths"]["/metrics"] = {
        "get": {
            "summary": "Prometheus metrics (BentoML's and safra_api_*)",
            "tags": ["probes"],
            "responses": {"200": {"description": "text exposition format"}},
        }
    }
    return spec
