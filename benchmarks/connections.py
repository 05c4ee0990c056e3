"""Many connections against a running server: open streams and slow clients, while /health is timed.

    .venv/bin/python benchmarks/connections.py http://127.0.0.1:8000 --streams 1000
    .venv/bin/python benchmarks/connections.py http://127.0.0.1:8000 --slowloris 100
    .venv/bin/python benchmarks/connections.py http://127.0.0.1:8000 --burst 192,128
    .venv/bin/python benchmarks/connections.py http://127.0.0.1:8000 --uploads 100

Streams: opens N streamed chat requests at once on raw sockets and reads them all from one thread
(a selector), so the client costs little CPU; reports how each ended (200 whole, 503, other),
the time until the last one ended, and /health latency (p50, max) measured meanwhile.
Slowloris: N connections that send a header byte every second; reports /health latency
meanwhile and how many were cut off (408 or closed) within the time given. Burst: C chats (64 tokens,
not streamed) and E embeddings sent at once; reports, per status (a 503 with its error code:
``overloaded`` at once, ``queue_timeout`` at the deadline), how many and the time until each answer
began (p50, p90): the goal is 503s within 100 ms at p50, and /health within 1 s. Uploads: N
multipart uploads at once, a third each of speech (tests/data/speech/short.wav), images and faces
(examples/data), with the same report. Each report names the CPU and the load average before and
after (the machine may be shared). Loopback only.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import selectors
import socket
import statistics
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit


def _health_probe(host: str, port: int, stop: threading.Event, latencies: list[float]) -> None:
    while not stop.is_set():
        started = time.monotonic()
        try:
            connection = http.client.HTTPConnection(host, port, timeout=30)
            connection.request("GET", "/health")
            connection.getresponse().read()
            connection.close()
            latencies.append((time.monotonic() - started) * 1000)
        except OSError:
            latencies.append(float("inf"))
        stop.wait(0.25)


def _stream_request(max_tokens: int) -> bytes:
    body = json.dumps({"max_tokens": max_tokens, "stream": True, "temperature": 0,
                       "messages": [{"role": "user", "content": "Count from one to twenty."}]}).encode()
    return (b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body))


def streams(host: str, port: int, count: int, max_tokens: int, limit_s: float) -> dict[str, object]:
    selector = selectors.DefaultSelector()
    received: dict[socket.socket, bytearray] = {}
    request = _stream_request(max_tokens)
    started = time.monotonic()
    for _ in range(count):
        sock = socket.create_connection((host, port), timeout=30)
        sock.sendall(request)
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
        received[sock] = bytearray()
    open_socks = set(received)
    while open_socks and time.monotonic() - started < limit_s:
        for key, _ in selector.select(timeout=1.0):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                chunk = sock.recv(65536)
            except (BlockingIOError, ConnectionError):
                chunk = b""
            received[sock] += chunk
            if (not chunk or received[sock].rstrip().endswith(b"0\r\n\r\n")
                    or received[sock].startswith(b"HTTP/1.1 503")):
                selector.unregister(sock)
                sock.close()
                open_socks.discard(sock)
    outcomes: dict[str, int] = {}
    for data in received.values():
        status = data[9:12].decode() or "none"
        kind = "200 whole" if status == "200" and b"[DONE]" in data else status
        outcomes[kind] = outcomes.get(kind, 0) + 1
    for sock in open_socks:
        sock.close()
    return {"outcomes": outcomes, "seconds": round(time.monotonic() - started, 1), "unfinished": len(open_socks)}


def _post(path: str, body: dict[str, object]) -> bytes:
    data = json.dumps(body).encode()
    return (b"POST %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (path.encode(), len(data), data))


def burst(host: str, port: int, chats: int, embeddings: int, limit_s: float) -> dict[str, object]:
    chat = _post("/v1/chat/completions", {"max_tokens": 64, "temperature": 0,
                                          "messages": [{"role": "user", "content": "Tell me about the sea."}]})
    embed = _post("/v1/embeddings", {"input": "A sentence to embed, of about a dozen words or so."})
    return _answered([chat] * chats + [embed] * embeddings, host, port, limit_s)


def _multipart(path: str, fields: dict[str, str], field: str, filename: str, content: bytes) -> bytes:
    boundary = b"maasbenchmarkboundary"
    parts = [b"--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n" % (boundary, k.encode(), v.encode())
             for k, v in fields.items()]
    parts.append(b"--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\n"
                 b"Content-Type: application/octet-stream\r\n\r\n%s\r\n" % (boundary, field.encode(),
                                                                             filename.encode(), content))
    body = b"".join(parts) + b"--%s--\r\n" % boundary
    return (b"POST %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: multipart/form-data; "
            b"boundary=%s\r\nContent-Length: %d\r\n\r\n%s" % (path.encode(), boundary, len(body), body))


def uploads(host: str, port: int, count: int, limit_s: float) -> dict[str, object]:
    root = Path(__file__).resolve().parents[1]
    speech = (root / "tests" / "data" / "speech" / "short.wav").read_bytes()
    photo = sorted((root / "examples" / "data").glob("*.jpg"))[0].read_bytes()
    kinds = [_multipart("/v1/audio/transcriptions", {"response_format": "text"}, "file", "short.wav", speech),
             _multipart("/v1/classify/image", {}, "image", "photo.jpg", photo),
             _multipart("/v1/detect/faces", {}, "image", "photo.jpg", photo)]
    return _answered([kinds[i % len(kinds)] for i in range(count)], host, port, limit_s)


def _answered(requests_: list[bytes], host: str, port: int, limit_s: float) -> dict[str, object]:
    """Send every request at once (connected first), and time each until its answer began."""
    selector = selectors.DefaultSelector()
    first_byte: dict[socket.socket, float] = {}
    received: dict[socket.socket, bytes] = {}
    socks = [(socket.create_connection((host, port), timeout=30), request) for request in requests_]
    started = time.monotonic()
    for sock, request in socks:
        sock.sendall(request)
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
    pending = {sock for sock, _ in socks}  # not answered, or a 503 whose body has not arrived
    while pending and time.monotonic() - started < limit_s:
        for key, _ in selector.select(timeout=1.0):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                chunk = sock.recv(65536)
            except (BlockingIOError, ConnectionError):
                chunk = b""
            first_byte.setdefault(sock, time.monotonic() - started)
            received[sock] = received.get(sock, b"") + chunk
            if chunk and _status(received[sock]) == "503":
                continue  # its body, with the error code, is still to come
            selector.unregister(sock)
            sock.close()
            pending.discard(sock)
    by_status: dict[str, list[float]] = {}
    for sock, seconds in first_byte.items():
        by_status.setdefault(_status(received[sock]), []).append(seconds * 1000)
    for sock in pending:
        sock.close()

    def summary(times: list[float]) -> dict[str, float | int]:
        ordered = sorted(times)
        return {"count": len(ordered), "p50_ms": round(statistics.median(ordered)),
                "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))])}

    return {"answers": {code: summary(times) for code, times in sorted(by_status.items())},
            "unanswered": sum(sock not in first_byte for sock in pending),
            "seconds": round(time.monotonic() - started, 1)}


_ERROR_CODE = re.compile(rb'"code": ?"([a-z_]+)"')


def _status(chunk: bytes) -> str:
    """The answer's status, with its error code for a 503 once its body has arrived."""
    code = chunk[9:12].decode() or "closed"
    found = _ERROR_CODE.search(chunk) if code == "503" else None
    return f"{code} {found.group(1).decode()}" if found else code


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def slowloris(host: str, port: int, count: int, seconds: float) -> dict[str, object]:
    socks = []
    for _ in range(count):
        sock = socket.create_connection((host, port), timeout=30)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        socks.append(sock)
    cut, deadline = 0, time.monotonic() + seconds
    alive = list(socks)
    while alive and time.monotonic() < deadline:
        for sock in list(alive):
            try:
                sock.sendall(b"X")
            except OSError:
                alive.remove(sock)
                cut += 1
        time.sleep(1.0)
    for sock in socks:
        sock.close()
    return {"connections": count, "cut_off_within_s": seconds, "cut_off": cut}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("--streams", type=int, default=0)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--slowloris", type=int, default=0)
    parser.add_argument("--burst", default="", metavar="CHATS,EMBEDDINGS")
    parser.add_argument("--uploads", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=30.0, help="slowloris duration / stream time limit")
    args = parser.parse_args()
    parts = urlsplit(args.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    latencies: list[float] = []
    loadavg_before = Path("/proc/loadavg").read_text().split()[0]
    stop = threading.Event()
    probe = threading.Thread(target=_health_probe, args=(host, port, stop, latencies), daemon=True)
    probe.start()
    if args.streams:
        result = streams(host, port, args.streams, args.max_tokens, max(args.seconds, 600))
    elif args.uploads:
        result = uploads(host, port, args.uploads, max(args.seconds, 600))
    elif args.burst:
        chats, embeddings = (int(n) for n in args.burst.split(","))
        result = burst(host, port, chats, embeddings, max(args.seconds, 600))
    else:
        result = slowloris(host, port, args.slowloris, args.seconds)
    stop.set()
    probe.join(35)
    finite = [v for v in latencies if v != float("inf")]
    result["health_ms"] = {"p50": round(statistics.median(finite), 1) if finite else None,
                           "max": round(max(latencies), 1) if latencies else None,
                           "failed": len(latencies) - len(finite), "probes": len(latencies)}
    result["loadavg"] = {"before": loadavg_before, "after": Path("/proc/loadavg").read_text().split()[0]}
    result["cpu"] = f"{_cpu()}, {os.cpu_count()} cores"
    print(json.dumps(result))


if __name__ == "__main__":
    main()
