"""A bounded load test of `gptoss serve`: 32 concurrent clients x 8 rounds (one request per
client per round, chat and completions, streamed and not) against a queue of 8, with one
request running at a time and with 8 in one batch (--parallel 8). Every
request completes or is refused cleanly (429 while the queue is full); nothing else may
happen before the deadline; the server's anonymous resident memory does not grow across rounds;
SIGTERM then ends it with status 0 (checked by the fixture)."""
import re
import subprocess
import threading
import time

import openai
import pytest

from conftest import BIN


def kv_budget(server):
    """(blocks, bytes per block) of the server's KV budget, from its start-up line."""
    m = re.search(r"KV budget (\d+) blocks of \d+ positions, (\d+) bytes each", server.stderr())
    return int(m.group(1)), int(m.group(2))

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
    rss, heap = [], []
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
        heap.append(s.metric("gptoss_heap_allocated_bytes") / 1024)
    for t in threads:
        t.join(timeout=max(1, t_end - time.monotonic()))
    elapsed = time.monotonic() - t0
    print(f"load (--parallel {parallel}): {counts['ok']} ok, {counts['429']} refused (429) of {CLIENTS * ROUNDS} in {elapsed:.1f} s; "
          f"anonymous RSS per round (KiB): {rss}; heap allocated (KiB): {[round(h) for h in heap]}")
    assert not failures, failures[:5]
    assert counts["ok"] + counts["429"] == CLIENTS * ROUNDS
    # at least a full queue each round: the running one comes on top only when the engine
    # thread takes it from the queue before the ninth request arrives, which under CPU load
    # it sometimes does not (71 of 72 in one run of three with a fuzzer on both cores)
    assert counts["ok"] >= ROUNDS * 8
    assert s.metric("gptoss_queue_length") == 0 and s.metric("gptoss_requests_running") == 0
    if "libasan" in subprocess.run(["ldd", str(BIN)], capture_output=True, text=True).stdout:
        # ASan keeps freed memory in quarantine, so RSS grows by design; LeakSanitizer checks
        # the server's exit instead (the fixture requires status 0 and no report)
        pytest.skip("RSS check: not meaningful under AddressSanitizer (load checks above passed)")
    # memory. A leak shows in the bytes malloc has handed out and not taken back (the
    # gptoss_heap_allocated_bytes gauge): flat across rounds, seen within +-0.3 MiB of round 2
    # (what is in flight when the gauge is read). 1 MiB more means ~10 KiB or more lost per
    # request (>= 45 requests in rounds 3-8, ~100 with --parallel 8); smaller leaks are
    # LeakSanitizer's (the sanitizer run of these tests).
    assert heap[-1] - heap[2] < 1024, heap
    # Anonymous resident memory (the mapped model file's pages are not counted) grows for a
    # while by design, then levels off (measured with --parallel 8 over 20 rounds: +3.1 MiB
    # from round 2, flat from round ~15): (a) the KV blocks' pages, resident once first
    # written: the prompt cache keeps released blocks and new requests take other free ones,
    # so every block of the budget is reached in time (+2.1 MiB of the 2.6 MiB budget; a
    # budget of 4 MiB or more is in huge pages, resident from the first rounds); (b)
    # glibc's per-thread malloc arenas, made when HTTP threads meet in malloc and kept at
    # their high-water mark (+1 to 2 MiB, up to 8 per core). Bound: the KV budget plus the
    # 2 MiB allowed before for (b) and the rest; a leak large enough to pass it fails the
    # heap check above.
    kv_blocks, block_bytes = kv_budget(s)
    assert rss[-1] - rss[2] < kv_blocks * block_bytes / 1024 + 2048, rss
