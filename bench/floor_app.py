"""A scoring-shaped endpoint that does nothing, for ``bench/serving_floor_bench.py``.

``POST /v1/credit-score`` reads the body and answers a fixed JSON: what is left is the HTTP
framework's own cost. The variant comes from the environment, read at import:

- ``FLOOR_ROUTE=method``: the route is a method of the BentoML service class (BentoML hands it
  its instance through a FastAPI dependency); ``function``: a function of the module, as
  ``serving.service`` does;
- ``FLOOR_ACCESS_LOG=1``: BentoML's access log on (a line per request);
- ``FLOOR_TRACED=0``: no URL traced (BentoML records an OpenTelemetry span per request
  otherwise, sampled or not), as ``serving.service`` does by default.

``bentoml serve bench.floor_app:Floor`` serves it with BentoML; ``uvicorn bench.floor_app:v1``
serves the same FastAPI app alone (paths without the ``/v1`` prefix).
"""

from __future__ import annotations

import os

import bentoml
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

ANSWER = {"decisao": "APPROVE", "probabilidade_inadimplencia": 0.05, "score": 900}
ROUTE = os.environ.get("FLOOR_ROUTE", "function")
ACCESS_LOG = os.environ.get("FLOOR_ACCESS_LOG", "0") == "1"
TRACED = os.environ.get("FLOOR_TRACED", "1") == "1"

v1 = FastAPI()


async def _answer(request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse(ANSWER)


if ROUTE == "function":

    @v1.post("/credit-score")
    async def credit_score(request: Request) -> JSONResponse:
        return await _answer(request)


@bentoml.service(
    name="floor",
    workers=1,
    logging={"access": {"enabled": ACCESS_LOG}},
    tracing={"excluded_urls": [] if TRACED else [".*"]},
)
@bentoml.asgi_app(v1, path="/v1")
class Floor:
    if ROUTE == "method":

        @v1.post("/credit-score")
        async def credit_score(self, request: Request) -> JSONResponse:
            return await _answer(request)
