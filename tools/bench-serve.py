#!/usr/bin/env python3
"""Time to first token and decode tokens/s of `gptoss serve` through HTTP (one client,
streamed /v1/completions with token-id prompts, read as server-sent events), next to
`gptoss bench` on the same model and device, and the server's overhead. Standard library
only (the GPU machine has no venv):

    python3 tools/bench-serve.py --random 20b --backend cuda -p 512 -n 128 -r 3
    python3 tools/bench-serve.py -m model.bin -t 2 -p 128 -n 32

What is compared, per repetition (after one untimed warm-up request):
  prefill: a request of P random prompt tokens and max_tokens 1; its time to the first
           streamed token against P / (bench's ppP tokens/s). Each request's prompt is new
           (no prompt-cache reuse).
  decode:  a request of a 1-token prompt and N tokens (greedy); (N - 1) / (time from the
           first to the last token) against bench's tgN (N greedy steps from a 1-token
           context, the same work), as the client receives the tokens and as the server
           generated them (its /metrics decode-rate histogram: the engine thread's own
           overhead per token, without the client's parsing).
  The first token of a request costs one step more than bench's ppP: like `gptoss
  generate`, the server runs the last prompt token alone (so that greedy output equals
  generate's bit for bit).
The server is started here (--port 0) and stopped with SIGTERM; both tools run the same
backend, model and thread count. Lines starting with '|' form the result table.
"""
import argparse
import http.client
import json
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def model_args(a):
    args = ["-m", a.model] if a.model else ["--random", a.random]
    args += ["--backend", a.backend]
    if a.threads:
        args += ["-t", str(a.threads)]
    return args


def start_server(a, log):
    ctx = a.prompt + a.gen + 64
    proc = subprocess.Popen([a.bin, "serve", *model_args(a), "--port", "0", "-c", str(ctx), "--timeout", "0"],
                            stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 900  # CUDA uploads / random 120b weights take a while
    while time.monotonic() < deadline:
        text = Path(log.name).read_text()
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", text)
        if m:
            mid = re.search(r"model '([^']+)'", text).group(1)
            return proc, int(m.group(1)), mid
        if proc.poll() is not None:
            sys.exit(f"server exited:\n{text}")
        time.sleep(0.2)
    proc.kill()
    sys.exit("server did not start")


def stream(port, model, prompt, max_tokens):
    """(seconds to the first token, seconds first -> last token, completion tokens)."""
    body = json.dumps({"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
                       "stream": True, "stream_options": {"include_usage": True}})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3600)
    t0 = time.perf_counter()
    conn.request("POST", "/v1/completions", body=body, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    if resp.status != 200:
        sys.exit(f"HTTP {resp.status}: {resp.read()[:500]!r}")
    first = last = None
    tokens = 0
    for line in resp:
        if not line.startswith(b"data: {"):
            continue
        now = time.perf_counter()
        chunk = json.loads(line[6:])
        if chunk.get("usage"):
            tokens = chunk["usage"]["completion_tokens"]
        if chunk["choices"] and chunk["choices"][0]["finish_reason"] is None:  # a token's text
            first = first or now
            last = now
    conn.close()
    return first - t0, last - first, tokens


def metric(port, name):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=60).read().decode()
    return float(re.search(r"^%s ([0-9.e+-]+)$" % re.escape(name), text, re.M).group(1))


def bench(a):
    out = subprocess.run([a.bin, "bench", *model_args(a), "-p", str(a.prompt), "-n", str(a.gen), "-r", str(a.reps)],
                         capture_output=True, text=True, check=True).stdout
    rates = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 5 and re.fullmatch(r"(pp|tg)\d+", cells[3]):
            rates[cells[3][:2]] = float(cells[4].split()[0])
    return rates


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("-m", "--model")
    src.add_argument("--random", help="tiny | 20b | 120b")
    ap.add_argument("--backend", default="cpu")
    ap.add_argument("-t", "--threads", type=int, default=0)
    ap.add_argument("-p", "--prompt", type=int, default=512)
    ap.add_argument("-n", "--gen", type=int, default=128)
    ap.add_argument("-r", "--reps", type=int, default=3)
    ap.add_argument("--bin", default=str(ROOT / "build" / "bin" / "gptoss"))
    a = ap.parse_args()

    rng = random.Random(0)
    with tempfile.NamedTemporaryFile("w+", suffix=".log") as log:
        proc, port, model = start_server(a, log)
        try:
            ids = lambda n: [rng.randrange(1000, 199000) for _ in range(n)]
            stream(port, model, ids(a.prompt), 2)  # warm-up
            ttft, rate, server_rate = [], [], []
            for _ in range(a.reps):
                ttft.append(stream(port, model, ids(a.prompt), 1)[0])
                before = metric(port, "gptoss_decode_tokens_per_second_sum")
                _, span, n = stream(port, model, ids(1), a.gen)
                server_rate.append(metric(port, "gptoss_decode_tokens_per_second_sum") - before)
                if n != a.gen:
                    print(f"warning: decode request stopped after {n} tokens", file=sys.stderr)
                rate.append((n - 1) / span)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)
    ref = bench(a)
    med_ttft, med_rate, med_server = statistics.median(ttft), statistics.median(rate), statistics.median(server_rate)
    pp_time = a.prompt / ref["pp"]
    print(f"| {'measure':<34} | {'gptoss bench':>14} | {'serve (HTTP)':>14} | {'overhead':>9} |")
    print(f"| {'-' * 34} | {'-' * 14} | {'-' * 14} | {'-' * 9} |")
    print(f"| {f'prefill {a.prompt} tokens -> 1st token (ms)':<34} | {pp_time * 1e3:14.2f} | {med_ttft * 1e3:14.2f} | "
          f"{100 * (med_ttft / pp_time - 1):8.1f}% |")
    print(f"| {f'decode tg{a.gen}, client (tokens/s)':<34} | {ref['tg']:14.2f} | {med_rate:14.2f} | "
          f"{100 * (ref['tg'] / med_rate - 1):8.1f}% |")
    print(f"| {f'decode tg{a.gen}, server (tokens/s)':<34} | {ref['tg']:14.2f} | {med_server:14.2f} | "
          f"{100 * (ref['tg'] / med_server - 1):8.1f}% |")
    print(f"serve TTFT runs (ms): {', '.join(f'{t * 1e3:.2f}' for t in ttft)}; decode runs (tok/s) client: "
          f"{', '.join(f'{r:.2f}' for r in rate)}, server: {', '.join(f'{r:.2f}' for r in server_rate)}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
