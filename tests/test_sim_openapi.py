"""The simulator against BackQuant's published OpenAPI document: every route it serves, every
include combination, every error status, and the headers the docs put on every response."""

from __future__ import annotations

import copy
import itertools
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from gexbot.sim.market import Fault, SimConfig, Simulator
from gexbot.sim.server import MULTI_INCLUDES, SINGLE_INCLUDES, SimServer
from tests.conftest import OPENAPI, Clock
from tests.schema import load_json

DOCUMENT = load_json(OPENAPI)
KEY = "test-key-123456"
ALL = "BTCUSDT,ETHUSDT,SOLUSDT,HYPEUSDT"


def _worked_around(document: dict[str, Any]) -> dict[str, Any]:
    """The document with its one schema error mended in a copy: the `symbols` parameter puts
    an OpenAPI `examples` map inside its JSON Schema, where `examples` must be an array."""
    fixed = copy.deepcopy(document)
    for item in fixed["paths"].values():
        for op in item.values():
            for param in op.get("parameters", []):
                examples = param.get("schema", {}).get("examples")
                if isinstance(examples, dict):
                    param["schema"]["examples"] = [e.get("value") for e in examples.values()]
    return fixed


FIXED = _worked_around(DOCUMENT)


def _parameter_schemas(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        p["schema"]
        for item in document["paths"].values()
        for op in item.values()
        for p in op.get("parameters", [])
        if "schema" in p
    ]


def test_the_published_document_has_exactly_the_one_known_schema_error() -> None:
    broken = []
    for schema in _parameter_schemas(DOCUMENT):
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError:
            broken.append(schema.get("title"))
    assert broken == ["Symbols"]
    for schema in _parameter_schemas(FIXED):
        Draft202012Validator.check_schema(schema)


def _response_validator(path: str, status: int) -> Draft202012Validator:
    """The document's schema for `path` and `status`; the error envelope for any undocumented
    non-2xx (the document says it is "returned for every non-2xx response")."""
    op = FIXED["paths"].get(path.removeprefix("/v2"), {}).get("get", {})
    documented = op.get("responses", {}).get(str(status), {})
    schema = documented.get("content", {}).get("application/json", {}).get("schema")
    if not schema and status >= 400:
        schema = {"$ref": "#/components/schemas/V2ErrorEnvelope"}
    if not schema:  # documented as `{}`: any envelope; hold it to the generic success shape
        schema = {
            "type": "object",
            "required": ["success", "data", "meta"],
            "properties": {
                "success": {"const": True},
                "meta": {"$ref": "#/components/schemas/V2Meta"},
            },
        }
    return Draft202012Validator({**schema, "components": FIXED["components"]})


@pytest.fixture
async def http() -> AsyncIterator[tuple[httpx.AsyncClient, Simulator]]:
    sim = Simulator(SimConfig(seed=3, refresh=30.0), clock=Clock())
    server = SimServer(sim, api_key=KEY, rate_limit=1000)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url, headers={"X-API-Key": KEY}) as client:
            yield client, sim
    finally:
        await server.stop()


def _check(resp: httpx.Response, path: str) -> None:
    assert resp.headers["content-type"].startswith("application/json"), resp.text[:80]
    body = resp.json()
    errors = list(_response_validator(path, resp.status_code).iter_errors(body))
    assert not errors, f"{path} {resp.status_code}: {errors[0].message}"
    assert resp.headers["X-Request-ID"] == body["meta"]["request_id"]
    assert body["success"] is (resp.status_code < 400)


def _combinations(tokens: frozenset[str]) -> list[str]:
    names = sorted(tokens)
    return [",".join(c) for n in range(len(names) + 1) for c in itertools.combinations(names, n)]


async def test_every_multi_include_combination_matches_the_document(
    http: tuple[httpx.AsyncClient, Simulator],
) -> None:
    client, sim = http
    sim.set_missing("HYPEUSDT")
    for include, positioning in itertools.product(_combinations(MULTI_INCLUDES), ("flow", "std")):
        params = {"symbols": ALL + ",DOGEUSDT", "include": include, "positioning": positioning}
        _check(await client.get("/v2/multi/gex/levels", params=params), "/v2/multi/gex/levels")


async def test_every_single_include_combination_matches_the_document(
    http: tuple[httpx.AsyncClient, Simulator],
) -> None:
    client, _ = http
    for include in _combinations(SINGLE_INCLUDES):
        params = {"symbol": "ETHUSDT", "include": include}
        _check(await client.get("/v2/gex/levels", params=params), "/v2/gex/levels")


@pytest.mark.parametrize(
    "path", ["/v2/health", "/v2/status", "/v2/gex/stress-history", "/v2/gex/levels"]
)
async def test_the_other_routes_match_the_document(
    http: tuple[httpx.AsyncClient, Simulator], path: str
) -> None:
    client, _ = http
    _check(await client.get(path), path)


async def test_public_documentation_paths_are_served_without_a_key(
    http: tuple[httpx.AsyncClient, Simulator],
) -> None:
    client, _ = http
    resp = await client.get("/v2/openapi.json", headers={"X-API-Key": ""})
    assert resp.status_code == 200
    assert resp.json()["info"] == DOCUMENT["info"]
    assert resp.headers["X-Request-ID"].startswith("req_")
    for page in ("/v2/docs", "/v2/redoc"):
        docs = await client.get(page, headers={"X-API-Key": ""})
        assert docs.status_code == 200
        assert "/v2/openapi.json" in docs.text


ERROR_CASES: list[tuple[str, int, str, dict[str, str], str]] = [
    # (what, status, path, params, method)
    ("no key", 401, "/v2/multi/gex/levels", {"symbols": ALL}, "GET"),
    ("unknown symbol", 422, "/v2/gex/levels", {"symbol": "DOGEUSDT"}, "GET"),
    ("bad positioning", 422, "/v2/multi/gex/levels", {"symbols": ALL, "positioning": "x"}, "GET"),
    ("no symbols", 422, "/v2/multi/gex/levels", {}, "GET"),
    ("nine symbols", 400, "/v2/multi/gex/levels", {"symbols": ALL + ",A,B,C,D,E"}, "GET"),
    ("bad days", 422, "/v2/gex/stress-history", {"days": "40"}, "GET"),
    ("cold symbol", 404, "/v2/gex/levels", {"symbol": "HYPEUSDT"}, "GET"),
    ("unrouted path", 404, "/v2/gex/nothing-here", {}, "GET"),
    ("unrouted public path", 405, "/v2/health", {}, "POST"),
    ("wrong method", 405, "/v2/multi/gex/levels", {"symbols": ALL}, "POST"),
]


@pytest.mark.parametrize(
    ("status", "path", "params", "method"),
    [case[1:] for case in ERROR_CASES],
    ids=[case[0] for case in ERROR_CASES],
)
async def test_every_error_is_the_documented_envelope(
    http: tuple[httpx.AsyncClient, Simulator],
    status: int,
    path: str,
    params: dict[str, str],
    method: str,
) -> None:
    client, sim = http
    sim.set_missing("HYPEUSDT")
    headers = {"X-API-Key": ""} if status == 401 else {}
    resp = await client.request(method, path, params=params, headers=headers)
    assert resp.status_code == status
    _check(resp, path)
    if status == 405:  # RFC 9110 §15.5.6: a 405 says which methods would work
        assert "GET" in resp.headers["Allow"]


async def test_a_defect_in_the_simulator_still_answers_with_the_envelope(
    http: tuple[httpx.AsyncClient, Simulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, sim = http

    def broken() -> None:
        raise ZeroDivisionError("a defect")

    monkeypatch.setattr(sim, "advance", broken)
    resp = await client.get("/v2/multi/gex/levels", params={"symbols": ALL})
    assert resp.status_code == 500
    _check(resp, "/v2/multi/gex/levels")
    assert resp.json()["error"]["code"] == "INTERNAL_ERROR"
    assert resp.headers["X-Request-ID"] == resp.json()["meta"]["request_id"]


@pytest.mark.parametrize("status", [403, 429, 500, 502, 503, 504])
async def test_forbidden_rate_limited_and_server_errors_are_the_documented_envelope(
    http: tuple[httpx.AsyncClient, Simulator], status: int
) -> None:
    client, sim = http
    if status == 403:
        sim.forbidden = True
    else:
        sim.inject(Fault(status=status, retry_after=3 if status == 429 else None))
    resp = await client.get("/v2/multi/gex/levels", params={"symbols": ALL})
    assert resp.status_code == status
    _check(resp, "/v2/multi/gex/levels")


async def test_a_scenario_unsupported_symbol_is_refused_by_the_single_endpoint_too(
    http: tuple[httpx.AsyncClient, Simulator],
) -> None:
    client, sim = http
    sim.set_supported("SOLUSDT", supported=False)
    multi = (await client.get("/v2/multi/gex/levels", params={"symbols": "SOLUSDT"})).json()
    assert multi["data"]["invalid"] == ["SOLUSDT"]
    for path in ("/v2/gex/levels", "/v2/gex/stress-history"):
        resp = await client.get(path, params={"symbol": "SOLUSDT"})
        assert resp.status_code == 422
        _check(resp, path)
        assert "SOLUSDT" not in resp.json()["error"]["details"]["errors"][0]["msg"]
