"""Load generator for OpenAI-compatible servers (cinder serve, llama-server): C concurrent
clients each send R streaming /v1/completions requests of a P-token prompt asking for N tokens
(ignore_eos, temperature 0), and the run reports aggregate generated tokens per second over
the wall time and the median time to first token. Standard library only.

Usage: load.py URL --clients C [--requests R] [--prompt-tokens P] [--tokens N] [--vocab V]
Prints one JSON object on stdout.
"""

import argparse
import http.client
import json
import random
import statistics
import sys
import threading
import time
from urllib.parse import urlparse


def one_request(host, port, prompt, n):
    body = json.dumps(
        {
            "prompt": prompt,
            "max_tokens": n,
            "temperature": 0,
            "ignore_eos": True,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    )
    conn = http.client.HTTPConnection(host, port, timeout=600)
    start = time.perf_counter()
    conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    if resp.status != 200:
        raise RuntimeError(f"HTTP {resp.status}: {resp.read()[:300]!r}")
    ttft = None
    chunks = 0
    usage = None
    buf = b""
    while True:
        line = resp.readline()
        if not line:
            break
        line = line.strip()
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            break
        ev = json.loads(data)
        if ev.get("usage"):
            usage = ev["usage"]
        for c in ev.get("choices") or []:
            if c.get("text"):
                if ttft is None:
                    ttft = time.perf_counter() - start
                chunks += 1
    end = time.perf_counter()
    conn.close()
    generated = usage["completion_tokens"] if usage else chunks
    return {"start": start, "end": end, "ttft": ttft, "generated": generated}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--clients", type=int, required=True)
    ap.add_argument("--requests", type=int, default=2, help="requests per client")
    ap.add_argument("--prompt-tokens", type=int, default=256)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    u = urlparse(a.url)
    rng = random.Random(a.seed)
    # A different prompt for every request: no server can reuse another's cached prompt.
    prompts = [
        [1] + [rng.randrange(100, a.vocab) for _ in range(a.prompt_tokens - 1)]
        for _ in range(a.clients * a.requests)
    ]
    results, errors = [], []
    lock = threading.Lock()

    def client(i):
        for r in range(a.requests):
            try:
                res = one_request(u.hostname, u.port, prompts[i * a.requests + r], a.tokens)
                with lock:
                    results.append(res)
            except Exception as e:  # reported, and the run fails
                with lock:
                    errors.append(repr(e))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(a.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        print(json.dumps({"errors": errors[:5]}))
        sys.exit(1)
    wall = max(r["end"] for r in results) - min(r["start"] for r in results)
    generated = sum(r["generated"] for r in results)
    ttfts = [r["ttft"] for r in results if r["ttft"] is not None]
    print(
        json.dumps(
            {
                "clients": a.clients,
                "requests": len(results),
                "generated": generated,
                "wall_s": wall,
                "gen_tps": generated / wall,
                "ttft_median_s": statistics.median(ttfts),
                "short_answers": sum(1 for r in results if r["generated"] < a.tokens),
            }
        )
    )


if __name__ == "__main__":
    main()
