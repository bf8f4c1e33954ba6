"""A bounded load test of `gptoss serve`: 32 concurrent clients x 8 rounds (one request per
client per round, chat and completions, streamed and not) against a queue of 8, with one
request running at a time and with 8 in one batch (--parallel 8). Every
request completes or is refused cleanly (429 while the queue is full); nothing else may
happen before the deadline; the server's anonymous resident memory does not grow across rounds;
SIGTERM then ends it with status 0 (checked by the fixture)."""
import subprocess
import threading
import time

import openai
import pytest

from conftest import BIN

CLIENTS = 32
ROUNDS = 8
DEADLINE_S = 300  # for the whole test; one round takes ~1-3 s on 2 cores


def one_request(c, model, k, r):
    kind = (k + r) % 4
    if kind == 0:
        out = c.chat.completions.create(model=model, messages=[{"role": "user", "content": f"client {k} round {r}"}],
                                        max_tokens=4, seed=k)
        return out.usage.completion_tokens
    if kind == 1:
        n = 0
        for ch in c.chat.completions.create(model=model, messages=[{"role": "user", "content": f"hi {k}"}],
                                            max_tokens=4, stream=True, stream_options={"include_usage": True}):
            if ch.usage:
                n = ch.usage.completion_tokens
        return n
    if kind == 2:
        return c.completions.create(model=model, prompt=f"Story {k}:", max_tokens=4, seed=r).usage.completion_tokens
    n = 0
    for ch in c.completions.create(model=model, prompt=f"List {r}:", max_tokens=4, stream=True,
                                   stream_options={"include_usage": True}):
        if ch.usage:
            n = ch.usage.completion_tokens
    return n


@pytest.mark.parametrize("parallel", [1, 8])
def test_load(start_server, parallel):
    s = start_server("--max-queue", "8", "-c", "512", "--timeout", "120", "--parallel", str(parallel))
    t_end = time.monotonic() + DEADLINE_S
    counts = {"ok": 0, "429": 0}
    failures = []
    rss = []
    lock = threading.Lock()
    barrier = threading.Barrier(CLIENTS + 1)

    def client(k):
        c = s.client(timeout=120)
        for r in range(ROUNDS):
            barrier.wait()
            try:
                n = one_request(c, s.model, k, r)
                with lock:
                    if n == 4:
                        counts["ok"] += 1
                    else:
                        failures.append(f"client {k} round {r}: {n} tokens")
            except openai.RateLimitError as e:
                with lock:
                    counts["429"] += 1
                    if e.body.get("code") != "queue_full":
                        failures.append(f"client {k} round {r}: 429 {e.body}")
            except Exception as e:  # anything else is a failure
                with lock:
                    failures.append(f"client {k} round {r}: {type(e).__name__}: {e}")
            barrier.wait()

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(CLIENTS)]
    for t in threads:
        t.start()
    t0 = time.monotonic()
    for r in range(ROUNDS):
        barrier.wait(timeout=max(1, t_end - time.monotonic()))  # round r starts
        barrier.wait(timeout=max(1, t_end - time.monotonic()))  # round r ended
        rss.append(s.anon_rss_kib())
    for t in threads:
        t.join(timeout=max(1, t_end - time.monotonic()))
    elapsed = time.monotonic() - t0
    print(f"load (--parallel {parallel}): {counts['ok']} ok, {counts['429']} refused (429) of {CLIENTS * ROUNDS} in {elapsed:.1f} s; "
          f"anonymous RSS per round (KiB): {rss}")
    assert not failures, failures[:5]
    assert counts["ok"] + counts["429"] == CLIENTS * ROUNDS
    assert counts["ok"] >= ROUNDS * 9  # at least the running one and a full queue each round
    assert s.metric("gptoss_queue_length") == 0 and s.metric("gptoss_requests_running") == 0
    if "libasan" in subprocess.run(["ldd", str(BIN)], capture_output=True, text=True).stdout:
        # ASan keeps freed memory in quarantine, so RSS grows by design; LeakSanitizer checks
        # the server's exit instead (the fixture requires status 0 and no report)
        pytest.skip("RSS check: not meaningful under AddressSanitizer (load checks above passed)")
    # memory: anonymous resident memory (the mapped model file's pages, touched as new token
    # rows are read, are not counted) stays flat after the first rounds (allocator arenas of
    # the HTTP threads): seen 8.3-9.4 MiB, +0.2-0.4 MiB from round 3 to 8, and a plateau by
    # round 20 in a 40-round run. Growth above 2 MiB means a leak of ~10 KiB per request or
    # more; smaller leaks are LeakSanitizer's (the sanitizer run of these tests)
    assert rss[-1] - rss[2] < 2048, rss
