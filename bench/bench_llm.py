"""LLM client benchmark: concurrent vs sequential requests against a slow local server.

A chat-completions server on 127.0.0.1 answers every request after a fixed
latency (a stand-in for a model server's time per request). The same N requests
go out with ``concurrency`` in flight and then one at a time; the answers must be
identical and the wall-time ratio shows what concurrency buys. The cache is off
(plain client), so both runs really send every request.

    python bench/bench_llm.py [--requests 64] [--concurrency 8] [--latency 0.05] [--out bench/results/llm.json]
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from dreamframe_assets.core.params import LLMParams
from dreamframe_assets.models.llm import OpenAIChatClient


def serve(latency: float) -> ThreadingHTTPServer:
    """Answers each request with its own prompt reversed, after ``latency`` seconds."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            time.sleep(latency)
            text = body["messages"][-1]["content"][::-1]
            data = json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}],
                               "usage": {"prompt_tokens": 10, "completion_tokens": 10}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def timed(base_url: str, concurrency: int, requests: list[list[dict]]) -> tuple[float, list[str]]:
    client = OpenAIChatClient(LLMParams(base_url=base_url, model="bench", concurrency=concurrency))
    t0 = time.perf_counter()
    done = client.complete(requests)
    seconds = time.perf_counter() - t0
    client.close()
    return seconds, [c.text for c in done]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--latency", type=float, default=0.05, help="seconds the server takes per request")
    ap.add_argument("--out", type=Path, default=None, help="also write the numbers here as JSON")
    args = ap.parse_args()

    httpd = serve(args.latency)
    base_url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    requests = [[{"role": "user", "content": f"request number {i}"}] for i in range(args.requests)]
    try:
        timed(base_url, 2, requests[:2])  # warm up: imports, first connection
        concurrent, a = timed(base_url, args.concurrency, requests)
        sequential, b = timed(base_url, 1, requests)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert a == b, "concurrent and sequential answers differ"
    assert a == [r[0]["content"][::-1] for r in requests], "answers are out of request order"
    result = {
        "requests": args.requests, "latency_s": args.latency, "concurrency": args.concurrency,
        "seconds": {"concurrent": concurrent, "sequential": sequential},
        "speedup": sequential / concurrent, "ideal_speedup": min(args.concurrency, args.requests),
    }
    print(f"{args.requests} requests, {args.latency * 1000:.0f} ms each")
    print(f"  concurrency {args.concurrency}: {concurrent:.3f} s")
    print(f"  concurrency 1: {sequential:.3f} s")
    print(f"  sequential / concurrent = {result['speedup']:.2f} (ideal {result['ideal_speedup']}); answers identical")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
