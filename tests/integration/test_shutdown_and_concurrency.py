"""The real server under concurrency and at shutdown: continuous batching and the drain window."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from maas_server.config import default_config_text
from maas_server.testing import ServerProcess

PROMPT = "Once upon a time, in a small village by the sea, there lived"  # no early end-of-text


def _stream_tokens(url: str, max_tokens: int, started: threading.Event | None = None) -> tuple[int, bool]:
    """Stream a greedy completion; returns (completion tokens, saw [DONE])."""
    body = {"prompt": PROMPT, "max_tokens": max_tokens, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    tokens, done = 0, False
    with requests.post(f"{url}/v1/completions", json=body, stream=True, timeout=300) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if started is not None:
                started.set()
            if line == b"data: [DONE]":
                done = True
            elif line.startswith(b"data: {") and json.loads(line[6:]).get("usage"):
                tokens = json.loads(line[6:])["usage"]["completion_tokens"]
    return tokens, done


def test_concurrent_greedy_requests_get_the_same_text_as_one_alone(server_url: str) -> None:
    body = {"prompt": PROMPT, "max_tokens": 24, "temperature": 0}
    alone = requests.post(f"{server_url}/v1/completions", json=body, timeout=300).json()["choices"][0]["text"]
    lengths = [8, 24, 16, 24, 12, 24]
    with ThreadPoolExecutor(len(lengths)) as pool:
        texts = list(pool.map(lambda n: requests.post(f"{server_url}/v1/completions", json={**body, "max_tokens": n},
                                                       timeout=300).json()["choices"][0]["text"], lengths))
    assert len(alone) > 40, alone  # a real continuation, not an early end-of-text
    for n, text in zip(lengths, texts):
        assert len(text) > n and alone.startswith(text), (n, text, alone)
    assert texts[1] == alone


def test_sigterm_drains_open_streams_then_exits(tmp_path: Path) -> None:
    # Only the generation model: this server starts and stops inside the test.
    config = tmp_path / "gen.toml"
    text = default_config_text()
    config.write_text(text[: text.index("[[models]]", text.index("[[models]]") + 1)])
    server = ServerProcess(str(config), ready_timeout=600, extra_args=["--drain-seconds", "60"])
    with server as url:
        session = requests.Session()
        assert session.get(f"{url}/ready", timeout=10).status_code == 200
        started = threading.Event()
        with ThreadPoolExecutor(1) as pool:
            stream = pool.submit(_stream_tokens, url, 40, started)
            assert started.wait(120)
            assert server.process is not None
            server.process.send_signal(signal.SIGTERM)
            _assert_new_connections_refused(server.port)
            tokens, done = stream.result(300)
        assert (tokens, done) == (40, True)  # the admitted stream finished whole
        assert server.process.wait(60) == 0
    assert "Handling signal: term" in server.log_tail(20000)


def _assert_new_connections_refused(port: int) -> None:
    """During the drain a new connection is refused at once, not left unanswered in the backlog."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                sock.recv(100)
        except ConnectionRefusedError:
            return
        time.sleep(0.05)  # the worker closes its listener when its signal handler has run
    raise AssertionError("new connections were still accepted 10 s into the drain")


def _generation_only_config(tmp_path: Path, **model_settings: object) -> str:
    text = default_config_text()
    text = text[: text.index("[[models]]", text.index("[[models]]") + 1)]  # keep the first model only
    text += "".join(f"{key} = {value}\n" for key, value in model_settings.items())
    config = tmp_path / "gen.toml"
    config.write_text(text.replace("max_inputs = 256", "max_inputs = 4"))
    return str(config)


def test_overload_gets_503_with_retry_after_and_the_client_retries_through_it(tmp_path: Path) -> None:
    import maas_client

    clients = 16  # 4 x max_queue
    with ServerProcess(_generation_only_config(tmp_path, max_queue=4, max_batch_size=4)) as url:
        body = {"prompt": PROMPT, "max_tokens": 8, "temperature": 0}
        with ThreadPoolExecutor(clients) as pool:
            answers = list(pool.map(lambda _: requests.post(f"{url}/v1/completions", json=body, timeout=300),
                                    range(clients)))
        statuses = sorted(a.status_code for a in answers)
        assert set(statuses) <= {200, 503}, statuses
        assert statuses.count(200) >= 4 and statuses.count(503) >= 1, statuses
        assert all(a.headers.get("Retry-After") for a in answers if a.status_code == 503)
        client = maas_client.Client(base_url=url, max_retries=60, timeout=300)
        with ThreadPoolExecutor(clients) as pool:
            texts = list(pool.map(lambda _: client.generate(PROMPT, max_tokens=8, temperature=0).text, range(clients)))
        assert len(set(texts)) == 1 and len(texts[0]) > 10  # every call succeeded, with the same greedy text


def test_overload_at_four_times_capacity_is_refused_before_the_deadline(tmp_path: Path) -> None:
    deadline_s = 3.0
    rows = 4
    with ServerProcess(_generation_only_config(tmp_path, max_batch_size=rows)) as url:
        body = {"prompt": PROMPT, "max_tokens": 24, "temperature": 0}
        headers = {"X-Request-Timeout": str(deadline_s)}
        with ThreadPoolExecutor(rows) as pool:  # measures the rate: a decode batch's is taken while it is half full
            for warmup in pool.map(lambda _: requests.post(f"{url}/v1/completions", json=body, timeout=300),
                                   range(rows)):
                warmup.raise_for_status()

        def call(_: int) -> tuple[requests.Response, float]:
            started = time.monotonic()
            response = requests.post(f"{url}/v1/completions", json=body, headers=headers, timeout=300)
            return response, time.monotonic() - started

        with ThreadPoolExecutor(4 * 4 * rows) as pool:  # 4x what the rows and the deadline's queue hold
            answers = list(pool.map(call, range(4 * 4 * rows)))
        statuses = [response.status_code for response, _ in answers]
        assert set(statuses) <= {200, 503} and 200 in statuses and 503 in statuses, statuses
        refused = [(response, seconds) for response, seconds in answers if response.status_code == 503]
        assert all(response.headers.get("Retry-After") for response, _ in refused)
        codes = {response.json()["error"]["code"] for response, _ in refused}
        assert codes <= {"overloaded", "queue_timeout"}, codes
        # Nobody waited past the deadline for a refusal: most were refused at once, none later than it.
        assert max(seconds for _, seconds in refused) < deadline_s + 2.0
        assert "overloaded" in codes


def test_server_notices_a_non_streaming_client_that_hung_up(tmp_path: Path) -> None:
    import socket

    server = ServerProcess(_generation_only_config(tmp_path))
    with server as url:
        body = json.dumps({"prompt": PROMPT, "max_tokens": 500, "temperature": 0}).encode()
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            # Closing now is a client timing out; the server should give up on it well before 500 tokens.
        gave_up = "POST /v1/completions 499"  # the request's JSON log line
        deadline = time.monotonic() + 60
        while gave_up not in server.log_tail(20000) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert gave_up in server.log_tail(20000)
        # The model is free again at once: a short request does not wait behind 500 tokens.
        assert requests.post(f"{url}/v1/completions", json={"prompt": "Hi", "max_tokens": 2}, timeout=60).ok
