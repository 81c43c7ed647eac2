"""What a refused oversized body costs the server: time to the 413, and server memory after many of them.

    python benchmarks/bench_body_limit.py              # 100 bodies of 50 MB (about a minute)
    python benchmarks/bench_body_limit.py --count 10 --mb 25 --out /tmp/x.json   # quick (over the 20 MiB limit)

A real uvicorn serves the options agent's app (with the panel) in its own process on a free port. Rows, each
beside its baseline measured in the same loop:

* time from the end of the request headers to the 413 for a 50 MB ``POST /calibration/api/weights/analyze``
  (refused from its Content-Length, so the body is never read), median and 95th percentile over ``--count``
  requests — vs a small accepted request (``GET /calibration/api/csrf-token``) on the same connection kind;
* the same body sent in full without a Content-Length (chunked), refused once past the 20 MiB limit;
* server RSS (``/proc/PID/status`` VmRSS) before and after ``--count`` refused 50 MB bodies sent whole
  (the client keeps sending after the 413; the server must not keep any of it).

Writes ``benchmarks/results_body_limit.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVER = r"""
import sys, uvicorn
sys.path.insert(0, {root!r})
from examples.options_agent.app import create_app
uvicorn.run(create_app({data!r}, secret="bench"), host="127.0.0.1", port={port}, log_level="error")
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head else 0
    length = next(
        (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0
    )
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, rest


def request(port: int, head: bytes, body_chunks=(), expect: int | None = None) -> tuple[float, int]:
    """Seconds from the end of the headers to the whole response; the body (if any) is sent after the headers,
    and a write the server refused (it answered and closed) ends the sending."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:  # a stuck server fails the run
        sock.sendall(head)
        start = time.perf_counter()
        try:
            for chunk in body_chunks:
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        status, _ = read_response(sock)
        elapsed = time.perf_counter() - start
    if expect is not None and status != expect:
        raise RuntimeError(f"expected {expect}, got {status}")
    return elapsed, status


def headers(method: str, path: str, extra: dict[str, str]) -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: 127.0.0.1",
        "Connection: close",
        *(f"{k}: {v}" for k, v in extra.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--mb", type=int, default=50)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results_body_limit.json")
    args = parser.parse_args()
    from calibration_policy_ui.limits import UPLOAD_BODY_LIMIT, fmt_size

    if args.mb * 1024 * 1024 <= UPLOAD_BODY_LIMIT:  # the server would wait for a body this bench never sends
        parser.error(f"--mb {args.mb} is within the upload limit ({fmt_size(UPLOAD_BODY_LIMIT)}); use more than 20.")
    data = Path(tempfile.mkdtemp(prefix="bench-body-")) / "data"
    subprocess.run(
        [sys.executable, "-m", "calibration_policy.cli", "demo", "--out", str(data)],
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER.format(root=str(ROOT), data=str(data), port=port)], cwd=ROOT
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                request(port, headers("GET", "/calibration/api/csrf-token", {}), expect=200)
                break
            except (OSError, RuntimeError):
                time.sleep(0.2)
        # a CSRF token and its cookie, so the refusal is the size's and not the token's
        sock_head = headers("GET", "/calibration/api/csrf-token", {})
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(sock_head)
            status, body = read_response(sock)
        token = json.loads(body)["csrf_token"]
        auth = {"X-CSRF-Token": token, "Cookie": f"calibration_panel_csrf={token}", "Content-Type": "application/json"}
        size = args.mb * 1024 * 1024
        block = b" " * (1024 * 1024)
        big = headers("POST", "/calibration/api/weights/analyze", {**auth, "Content-Length": str(size)})
        small = headers("GET", "/calibration/api/csrf-token", {})
        for _ in range(5):  # warm both paths
            request(port, big, expect=413)
            request(port, small, expect=200)
        refused, baseline = [], []
        for _ in range(args.count):  # interleaved: the same machine state for both
            refused.append(request(port, big, expect=413)[0])
            baseline.append(request(port, small, expect=200)[0])
        chunked_head = headers("POST", "/calibration/api/weights/analyze", {**auth, "Transfer-Encoding": "chunked"})

        def chunked():
            for _ in range(args.mb):
                yield b"%x\r\n" % len(block) + block + b"\r\n"
            yield b"0\r\n\r\n"

        cut_off = [request(port, chunked_head, chunked(), expect=413)[0] for _ in range(min(args.count, 10))]
        rss_before = rss_kib(server.pid)
        whole = []
        for _ in range(args.count):
            whole.append(request(port, big, (block for _ in range(args.mb)), expect=413)[0])
        time.sleep(0.5)
        rss_after = rss_kib(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)

    def ms(values: list[float]) -> dict[str, float]:
        ordered = sorted(values)
        return {
            "median_ms": round(statistics.median(ordered) * 1000, 3),
            "p95_ms": round(ordered[int(len(ordered) * 0.95) - 1] * 1000, 3),
        }

    results = {
        "machine": f"{platform.machine()} {os.cpu_count()} cpu, Python {platform.python_version()}",
        "body_mb": args.mb,
        "count": args.count,
        "refused_by_content_length": ms(refused),
        "baseline_small_get": ms(baseline),
        "refused_chunked_past_limit": ms(cut_off),
        "refused_whole_body_sent": ms(whole),
        "server_rss_kib_before": rss_before,
        "server_rss_kib_after": rss_after,
        "server_rss_growth_kib": rss_after - rss_before,
    }
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
