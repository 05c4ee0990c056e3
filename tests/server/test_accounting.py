"""Keys, rate limits, usage, metrics and the request log, over real routes (a fake model behind them)."""

from __future__ import annotations

import json
import logging
import os
import uuid
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from maas_server.accounts import Authenticator, RedisLimiter, SqlLimiter, create_key, revoke_key, usage_summary
from tests.server.accounting_support import Clock, accounts_of, reset_postgres, word_app


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return word_app(tmp_path)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def _embed(client: FlaskClient, key: str | None, text: str | list[str] = "one two three",  # type: ignore[no-untyped-def]
           headers: dict[str, str] | None = None, **kw: object):
    auth = {"Authorization": f"Bearer {key}"} if key else {}
    return client.post("/v1/embeddings", json={"input": text}, headers={**auth, **(headers or {})}, **kw)


def _error(response, status: int, code: str) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.json["error"]
    assert error["code"] == code and error["message"]
    return error


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


# -- keys

def test_without_keys_v1_is_open_to_loopback(client: FlaskClient) -> None:
    assert _embed(client, None).status_code == 200


def test_without_keys_remote_clients_are_refused_unless_anonymous_allowed(tmp_path: Path) -> None:
    remote = {"REMOTE_ADDR": "203.0.113.9"}
    closed = word_app(tmp_path / "closed").test_client()
    _error(_embed(closed, None, environ_base=remote), 401, "anonymous_loopback_only")
    opened = word_app(tmp_path / "open", allow_anonymous=True).test_client()
    assert _embed(opened, None, environ_base=remote).status_code == 200


def test_once_a_key_exists_v1_needs_it(app: Flask, client: FlaskClient) -> None:
    key, _ = create_key(accounts_of(app).store, "team-a")
    error = _error(_embed(client, None), 401, "missing_api_key")
    assert error["type"] == "authentication_error"
    _error(_embed(client, "maas_" + "x" * 43), 401, "invalid_api_key")
    _error(client.get("/v1/models", headers={"Authorization": f"Basic {key}"}), 401, "missing_api_key")
    assert _embed(client, key).status_code == 200
    assert client.get("/v1/models", headers={"Authorization": f"Bearer {key}"}).status_code == 200


def test_health_ready_and_metrics_stay_open_when_keys_exist(app: Flask, client: FlaskClient) -> None:
    create_key(accounts_of(app).store, "team-a")
    assert client.get("/health").status_code == 200
    assert client.get("/ready").status_code == 200
    assert client.get("/metrics").status_code == 200


def test_metrics_token_protects_metrics_only(tmp_path: Path) -> None:
    client = word_app(tmp_path, metrics_token="scrape-secret").test_client()
    _error(client.get("/metrics"), 401, "invalid_metrics_token")
    _error(client.get("/metrics", headers={"Authorization": "Bearer wrong"}), 401, "invalid_metrics_token")
    assert client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"}).status_code == 200
    assert _embed(client, None).status_code == 200  # no API keys: /v1 stays open on loopback


def test_revoked_key_is_refused(app: Flask, client: FlaskClient) -> None:
    store = accounts_of(app).store
    key, _ = create_key(store, "team-a")
    create_key(store, "team-b")  # keys stay required after team-a goes
    assert _embed(client, key).status_code == 200
    revoke_key(store, "team-a")
    _error(_embed(client, key), 401, "revoked_api_key")


def test_revocation_takes_effect_after_the_cache_ttl(app: Flask, client: FlaskClient) -> None:
    clock = Clock()
    acc = accounts_of(app)
    acc.auth = Authenticator(acc.store, ttl=5, clock=clock)
    key, _ = create_key(acc.store, "team-a")
    create_key(acc.store, "team-b")
    assert _embed(client, key).status_code == 200
    revoke_key(acc.store, "team-a")
    assert _embed(client, key).status_code == 200  # the cached lookup is still fresh
    clock.now += 5
    _error(_embed(client, key), 401, "revoked_api_key")


def test_expired_key_is_refused(app: Flask, client: FlaskClient) -> None:
    clock = Clock()
    acc = accounts_of(app)
    acc.auth = Authenticator(acc.store, ttl=0, clock=clock)
    key, _ = create_key(acc.store, "temp", expires_at=clock.now + 60, now=clock.now)
    create_key(acc.store, "other", now=clock.now)
    assert _embed(client, key).status_code == 200
    clock.now += 61
    _error(_embed(client, key), 401, "expired_api_key")


# -- rate limits

def _limited(app: Flask, clock: Clock, **limits: float) -> str:
    acc = accounts_of(app)
    acc.limiter = SqlLimiter(acc.store, clock=clock)
    key, _ = create_key(acc.store, "limited", **limits)
    return key


def test_requests_per_minute_gives_429_with_openai_headers_then_resets(app: Flask, client: FlaskClient) -> None:
    clock = Clock(1_800_000_000.0 + 15)  # 45 s left in this minute
    key = _limited(app, clock, rpm=2)
    first = _embed(client, key)
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert first.headers["x-ratelimit-reset-requests"] == "45s"
    assert _embed(client, key).headers["x-ratelimit-remaining-requests"] == "0"
    refused = _embed(client, key)
    error = _error(refused, 429, "rate_limit_exceeded")
    assert error["type"] == "rate_limit_error" and "requests" in error["message"]
    assert refused.headers["Retry-After"] == "45"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    clock.now += 45  # the next minute
    again = _embed(client, key)
    assert again.status_code == 200 and again.headers["x-ratelimit-remaining-requests"] == "1"


def test_tokens_are_charged_after_the_response_and_refuse_the_next_call(app: Flask, client: FlaskClient) -> None:
    clock = Clock()
    key = _limited(app, clock, tpm=5)
    first = _embed(client, key, "one two three four")  # 4 tokens: under the limit when admitted
    assert first.status_code == 200 and first.headers["x-ratelimit-remaining-tokens"] == "5"
    second = _embed(client, key, "five six")  # 4 used < 5: admitted, takes the key to 6
    assert second.status_code == 200 and second.headers["x-ratelimit-remaining-tokens"] == "1"
    refused = _embed(client, key, "seven")
    _error(refused, 429, "rate_limit_exceeded")
    assert refused.headers["x-ratelimit-remaining-tokens"] == "0" and "tokens" in refused.json["error"]["message"]
    clock.now += 60
    assert _embed(client, key, "eight").status_code == 200


def test_compute_is_metered_and_a_compute_limit_refuses_the_next_call(app: Flask, client: FlaskClient) -> None:
    """Every call's share of the model's time is recorded, shown in /v1/usage and charged to a key
    limited in compute seconds per minute."""
    clock = Clock()
    key = _limited(app, clock, cpm=1e-9)  # any work at all uses it up
    first = _embed(client, key, "one two")
    assert first.status_code == 200 and first.headers["x-ratelimit-limit-compute-seconds"] == "1e-09"
    refused = _embed(client, key, "three")
    _error(refused, 429, "rate_limit_exceeded")
    assert "compute seconds" in refused.json["error"]["message"]
    accounts_of(app).usage.flush()
    rows = {row["model"]: row for row in usage_summary(accounts_of(app).store, key_name="limited")}
    served = rows["words"]  # the refused call is a row of its own, with no compute
    assert served["requests"] == 1 and served["compute_seconds"] > 0
    clock.now += 60  # a new minute: the key may call again
    report = client.get("/v1/usage", headers={"Authorization": f"Bearer {key}"})
    assert {row["model"]: row["compute_seconds"] for row in report.json["data"]}["words"] == served["compute_seconds"]


def test_keys_without_limits_get_no_ratelimit_headers(app: Flask, client: FlaskClient) -> None:
    key, _ = create_key(accounts_of(app).store, "free")
    response = _embed(client, key)
    assert response.status_code == 200 and not any(h.lower().startswith("x-ratelimit") for h in response.headers.keys())  # noqa: SIM118 - Headers iterate as (name, value) pairs


# -- usage

def test_usage_counts_every_request_of_the_caller(app: Flask, client: FlaskClient) -> None:
    store = accounts_of(app).store
    mine, _ = create_key(store, "mine")
    theirs, _ = create_key(store, "theirs")
    for text in ("a b", "c d e", "f"):
        assert _embed(client, mine, text).status_code == 200
    _embed(client, mine, [])  # a 400 counts as a request with an error and no tokens
    _embed(client, theirs, "g h i j")
    usage = client.get("/v1/usage", headers={"Authorization": f"Bearer {mine}"}).json
    assert usage["key"] == "mine"
    words = next(row for row in usage["data"] if row["model"] == "words")
    assert words["requests"] == 3 and words["prompt_tokens"] == 6 and words["total_tokens"] == 6
    unnamed = next(row for row in usage["data"] if row["model"] is None)
    assert unnamed["requests"] == 1 and unnamed["errors"] == 1  # the empty input never reached a model


def test_usage_since_filters_and_rejects_bad_dates(app: Flask, client: FlaskClient) -> None:
    key, _ = create_key(accounts_of(app).store, "mine")
    auth = {"Authorization": f"Bearer {key}"}
    _embed(client, key)
    assert client.get("/v1/usage?since=2999-01-01", headers=auth).json["data"] == []
    assert client.get("/v1/usage?since=2000-01-01", headers=auth).json["data"][0]["requests"] == 1
    _error(client.get("/v1/usage?since=yesterday", headers=auth), 400, "invalid_value")


@pytest.mark.parametrize("since", ["inf", "Infinity", "-inf", "nan", "NaN", "1e300", "-1e300", "1e18"])
def test_usage_since_that_is_no_date_is_a_400_not_infinity(client: FlaskClient, since: str) -> None:
    """A number that is no time a date can hold (non-finite, or past 0001-9999) was echoed back as `Infinity`,
    which is not JSON."""
    error = _error(client.get(f"/v1/usage?since={since}"), 400, "invalid_value")
    assert error["param"] == "since"


def test_usage_since_at_the_ends_of_the_dates_is_valid_json(client: FlaskClient) -> None:
    for since in ("0001-01-01", "9999-12-31T23:59:59Z", "-62135596800", "0"):
        response = client.get(f"/v1/usage?since={since}")
        assert response.status_code == 200, (since, response.get_data(as_text=True))
        json.loads(response.get_data(as_text=True), parse_constant=_no_constant)


def test_anonymous_usage_is_recorded_without_a_key(client: FlaskClient) -> None:
    _embed(client, None, "a b c")
    rows = client.get("/v1/usage").json["data"]
    assert rows == [{"model": "words", "requests": 1, "errors": 0, "prompt_tokens": 3, "completion_tokens": 0,
                     "total_tokens": 3, "mean_latency_ms": rows[0]["mean_latency_ms"],
                     "compute_seconds": rows[0]["compute_seconds"]}]


# -- metrics and logs

def _samples(client: FlaskClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = client.get("/metrics").get_data(as_text=True)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_count_requests_latency_tokens_and_model_load(client: FlaskClient) -> None:
    labels = (("backend", "local"), ("model", "words"), ("route", "/v1/embeddings"), ("status", "200"))
    before = _samples(client)
    for text in ("a b", "c d e"):
        assert _embed(client, None, text).status_code == 200
    after = _samples(client)

    def grew(name: str, key: tuple[tuple[str, str], ...]) -> float:
        return after[(name, key)] - before.get((name, key), 0.0)

    assert grew("maas_requests_total", labels) == 2
    assert grew("maas_request_duration_seconds_count", labels) == 2
    assert grew("maas_tokens_total", (("backend", "local"), ("kind", "prompt"), ("model", "words"))) == 5
    assert after[("maas_model_load_seconds", (("backend", "local"), ("model", "words")))] >= 0
    assert ("maas_requests_in_flight", ()) in after


def test_request_log_is_json_without_the_prompt(app: Flask, client: FlaskClient,
                                                caplog: pytest.LogCaptureFixture) -> None:
    key, _ = create_key(accounts_of(app).store, "team-a")
    secret = "my very private prompt"
    from maas_server.ops.logs import JsonFormatter

    with caplog.at_level(logging.INFO, logger="maas.access"):
        response = _embed(client, key, secret, headers={"X-Request-ID": "req-42"})
    assert response.status_code == 200
    lines = [JsonFormatter().format(r) for r in caplog.records if r.name == "maas.access"]
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["request_id"] == "req-42" and entry["key"] == "team-a" and entry["model"] == "words"
    assert entry["status"] == 200 and entry["latency_ms"] >= 0 and entry["prompt_tokens"] == 4
    assert secret not in lines[0] and key not in lines[0]


def test_log_content_setting_adds_the_body(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    client = word_app(tmp_path, log_content=True).test_client()
    with caplog.at_level(logging.INFO, logger="maas.access"):
        _embed(client, None, "debug-visible-prompt")
    assert any("debug-visible-prompt" in getattr(r, "body", "") for r in caplog.records if r.name == "maas.access")


# -- streams: metered by the usage the stream reports once it has ended

@pytest.fixture(scope="module")
def gpt2_app(tmp_path_factory: pytest.TempPathFactory, tiny_gpt2: str) -> Flask:
    from maas_server.app import create_app
    from maas_server.settings import load_settings

    tmp = tmp_path_factory.mktemp("gpt2-accounting")
    settings = load_settings({"data_dir": tmp / "data", "auth_cache_seconds": 0},
                             file={"server": {"cache_dir": str(tmp / "cache")},
                                   "models": [{"name": "tiny-gpt2", "task": "text-generation", "source": tiny_gpt2}]})
    app = create_app(settings)
    assert app.extensions["maas"].registry.wait_until_loaded(60)
    return app


def _usage_rows(client: FlaskClient, key: str) -> dict:  # type: ignore[type-arg]
    rows = client.get("/v1/usage", headers={"Authorization": f"Bearer {key}"}).json["data"]
    return next(row for row in rows if row["model"] == "tiny-gpt2")


def test_stream_with_include_usage_is_metered_and_charged(gpt2_app: Flask) -> None:
    client = gpt2_app.test_client()
    acc = accounts_of(gpt2_app)
    acc.limiter = SqlLimiter(acc.store, clock=Clock())
    key, _ = create_key(acc.store, "streamer", tpm=1_000_000)
    body = {"prompt": "Once upon a time", "max_tokens": 6, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    response = client.post("/v1/completions", json=body, headers={"Authorization": f"Bearer {key}"})
    events = [json.loads(line[6:]) for line in response.get_data(as_text=True).split("\n")
              if line.startswith("data: {")]
    sent = events[-1]["usage"]
    row = _usage_rows(client, key)
    assert row["requests"] == 1
    assert (row["prompt_tokens"], row["completion_tokens"]) == (sent["prompt_tokens"], sent["completion_tokens"])
    after = client.post("/v1/completions", json={"prompt": "x", "max_tokens": 1},
                        headers={"Authorization": f"Bearer {key}"})
    assert int(after.headers["x-ratelimit-remaining-tokens"]) == 1_000_000 - sent["total_tokens"]


def test_stream_without_usage_is_metered_exactly(gpt2_app: Flask) -> None:
    client = gpt2_app.test_client()
    key, _ = create_key(accounts_of(gpt2_app).store, "plain-streamer")
    body = {"prompt": "Once upon a time", "max_tokens": 5, "temperature": 0}
    text = client.post("/v1/completions", json={**body, "stream": True},
                       headers={"Authorization": f"Bearer {key}"}).get_data(as_text=True)
    assert '"usage":{' not in text  # the client asked for no usage chunk...
    row = _usage_rows(client, key)
    expected = client.post("/v1/completions", json=body,  # ...yet it is metered as the same call without stream
                           headers={"Authorization": f"Bearer {key}"}).json["usage"]
    assert (row["prompt_tokens"], row["completion_tokens"]) == (expected["prompt_tokens"],
                                                                 expected["completion_tokens"])
    assert row["prompt_tokens"] > 0 and row["completion_tokens"] > 0


# -- the same server on PostgreSQL and Redis (when .ci/run provides them)

@pytest.mark.skipif(not (os.environ.get("MAAS_TEST_DATABASE_URL") and os.environ.get("MAAS_TEST_REDIS_URL")),
                    reason="MAAS_TEST_DATABASE_URL and MAAS_TEST_REDIS_URL are not set (.ci/run starts both)")
def test_server_on_postgresql_with_limits_in_redis(tmp_path: Path) -> None:
    database, redis_url = os.environ["MAAS_TEST_DATABASE_URL"], os.environ["MAAS_TEST_REDIS_URL"]
    reset_postgres(database)
    app = word_app(tmp_path, database_url=database, redis_url=redis_url)
    acc = accounts_of(app)
    assert acc.store.dialect == "postgresql" and isinstance(acc.limiter, RedisLimiter)
    acc.limiter = RedisLimiter.from_url(redis_url, prefix=f"maas-test:{uuid.uuid4().hex}", clock=Clock())
    client = app.test_client()
    key, _ = create_key(acc.store, "pg-user", rpm=2)
    assert [_embed(client, key, "a b").status_code for _ in range(3)] == [200, 200, 429]
    acc.limiter = RedisLimiter.from_url(redis_url, prefix=f"maas-test:{uuid.uuid4().hex}", clock=Clock())
    usage = client.get("/v1/usage", headers={"Authorization": f"Bearer {key}"}).json["data"]
    assert {row["model"]: (row["requests"], row["prompt_tokens"]) for row in usage} == {"words": (2, 4), None: (1, 0)}


def test_openapi_lists_usage_and_the_auth_errors(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").json
    operation = spec["paths"]["/v1/usage"]["get"]
    assert {"401", "429"} <= set(operation["responses"])
    assert "UsageReport" in spec["components"]["schemas"]
