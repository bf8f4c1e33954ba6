"""`gptoss serve --parallel N`: requests run together in one batch (tiny random model, CPU).

- Batch invariance through the server: the same requests (sampled with seeds, logprobs,
  prompts of 3 to 300 tokens, so long prompts are prefilled in chunks while others
  decode; streamed and not) give the same tokens and the same logprobs, bit for bit, run
  one at a time on a --parallel 1 server and all at once on a --parallel 4 server.
- The KV budget (--kv-budget): a request that cannot fit even alone is refused with 400
  kv_budget_exceeded; requests that fit only one at a time all complete (queued, none
  refused or evicted); a cancelled stream's blocks are free at once (gptoss_kv_blocks_reserved,
  before it generated its max_tokens).
- A request that fails in a step fails alone: a model whose embedding row of one token is
  NaN makes that request's draw fail (500, the engine's message: the logits hold NaN) while
  the requests decoding beside it finish with the same tokens as alone, and the server goes
  on; greedy requests too (they drew token 0 from NaN logits before), streamed or not.
"""
import http.client
import json
import random
import re
import subprocess
import threading
import time

import openai
import pytest

from conftest import BIN, Server

PROMPT_LENGTHS = [3, 40, 150, 300, 17, 90, 5, 260]


def requests():
    rng = random.Random(11)
    out = []
    for k, n in enumerate(PROMPT_LENGTHS):
        out.append(dict(prompt=[rng.randrange(1000, 100000) for _ in range(n)], max_tokens=8 + k,
                        temperature=0.9, top_p=0.95, seed=100 + k, logprobs=2, stream=(k % 2 == 1)))
    return out


def run(server, body):
    """A completion; a stream is joined into its text and per-token logprobs."""
    c = server.client()
    body = dict(body, model=server.model)
    if not body["stream"]:
        r = c.completions.create(**body)
        return r.choices[0].text, r.choices[0].logprobs.token_logprobs, r.usage.completion_tokens
    text, lps, n = "", [], 0
    for ch in c.completions.create(stream_options={"include_usage": True}, **body):
        if ch.choices:
            text += ch.choices[0].text
            if ch.choices[0].logprobs is not None:
                lps += ch.choices[0].logprobs.token_logprobs
        if ch.usage:
            n = ch.usage.completion_tokens
    return text, lps, n


@pytest.mark.parametrize("invariance", ["on", "many"])
def test_parallel_results_equal_one_at_a_time(start_server, invariance):
    """Text and logprobs of each request the same alone and among others (--batch-invariant
    on, the default, and many; on the CPU every mode gives the same bits)."""
    reqs = requests()
    alone = start_server("-c", "1024", "--parallel", "1", "--batch-invariant", invariance, name="alone")
    ref = [run(alone, b) for b in reqs]
    batched = start_server("-c", "1024", "--parallel", "4", "--batch-invariant", invariance, name="batched")
    got = [None] * len(reqs)

    def client(k):
        got[k] = run(batched, reqs[k])

    threads = [threading.Thread(target=client, args=(k,)) for k in range(len(reqs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for k in range(len(reqs)):
        assert got[k] is not None, f"request {k} did not finish"
        assert got[k][2] == reqs[k]["max_tokens"] and len(got[k][1]) == reqs[k]["max_tokens"], got[k]
        assert got[k] == ref[k], f"request {k} (prompt {PROMPT_LENGTHS[k]} tokens) differs in the batch"
    assert idle(batched)


def idle(server, timeout=10):
    """Whether the server's gauges come back to no running request and no reserved KV block
    (a reply reaches its client a moment before the engine's bookkeeping of the finish)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.metric("gptoss_requests_running") == 0 and server.metric("gptoss_kv_blocks_reserved") == 0:
            return True
        time.sleep(0.02)
    return False


def kv_numbers(server):
    m = re.search(r"KV budget (\d+) blocks of (\d+) positions, (\d+) bytes each", server.stderr())
    return int(m.group(1)), int(m.group(3))


def test_kv_budget(start_server):
    probe = start_server("-c", "512", name="probe")
    blocks_512, block_bytes = kv_numbers(probe)  # one request of 512 tokens
    half = blocks_512 // 2
    s = start_server("-c", "512", "--parallel", "4", "--kv-budget", str(half * block_bytes), name="budget")
    assert kv_numbers(s)[0] == half
    c = s.client()
    # cannot fit even alone: refused with the numbers
    body = {"model": s.model, "prompt": [1000 + i for i in range(10)], "max_tokens": 480}
    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=60)
    conn.request("POST", "/v1/completions", body=json.dumps(body), headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    err = json.loads(r.read())["error"]
    conn.close()
    assert r.status == 400 and err["code"] == "kv_budget_exceeded" and f"holds {half}" in err["message"], err
    # four requests that fit one at a time: all complete, in turn
    results = [None] * 4

    def client(k):
        results[k] = c.completions.create(model=s.model, prompt=[2000 + k] * 20, max_tokens=100, temperature=0,
                                          ).usage.completion_tokens

    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    peak = 0
    while any(t.is_alive() for t in threads):
        peak = max(peak, s.metric("gptoss_kv_blocks_reserved"))
        time.sleep(0.01)
    assert results == [100] * 4
    assert 0 < peak <= half


def test_cancel_frees_blocks(start_server):
    s = start_server("-c", "1024", "--parallel", "2", name="cancel")
    body = {"model": s.model, "prompt": [3000 + i for i in range(30)], "max_tokens": 900, "stream": True,
            "temperature": 0}
    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=60)
    conn.request("POST", "/v1/completions", body=json.dumps(body), headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    assert r.status == 200
    tokens = 0
    while tokens < 3:  # three generated tokens: the request is running
        line = r.fp.readline()
        tokens += line.startswith(b"data: {") and b'"text":""' not in line
    assert s.metric("gptoss_kv_blocks_reserved") > 0
    conn.close()
    t0 = time.monotonic()
    assert idle(s, timeout=30)
    print(f"blocks free {time.monotonic() - t0:.3f} s after the client left")
    # freed when the client left, not when the 900 tokens were done
    assert s.metric("gptoss_completion_tokens_total") < 900
    # the server goes on
    out = s.client().completions.create(model=s.model, prompt=[5, 6, 7], max_tokens=3)
    assert out.usage.completion_tokens == 3


POISONED = 4242  # the token whose embedding row is NaN


def poisoned_model(tiny_model, tmp_path):
    """A copy of the tiny model with token POISONED's embedding row NaN (bf16 0x7FC0)."""
    info = subprocess.run([str(BIN), "inspect", str(tiny_model)], capture_output=True, text=True, check=True).stdout
    w0 = int(re.search(r"weights at +(\d+)", info).group(1))
    dim = int(re.search(r"embedding_dim +(\d+)", info).group(1))
    path = tmp_path / "poisoned.bin"
    data = bytearray(tiny_model.read_bytes())
    data[w0 + POISONED * dim * 2: w0 + (POISONED + 1) * dim * 2] = b"\xc0\x7f" * dim
    path.write_bytes(bytes(data))
    return path


def test_failed_request_fails_alone(tiny_model, tmp_path):
    s = Server(poisoned_model(tiny_model, tmp_path), ["-t", "1", "-c", "512", "--parallel", "4"], tmp_path)
    try:
        rng = random.Random(3)
        clean = [dict(prompt=[rng.randrange(1000, 100000) for _ in range(20 + 7 * k)], max_tokens=150,
                      temperature=0.8, seed=k, logprobs=1, stream=(k == 1)) for k in range(3)]
        ref = [run(s, b) for b in clean]  # one at a time
        got = [None] * 3
        bad = {}

        ended = [0.0] * 3

        def client(k):
            got[k] = run(s, clean[k])
            ended[k] = time.monotonic()

        def poisoned():
            time.sleep(0.05)  # joins while the others decode
            conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=60)
            body = {"model": s.model, "prompt": [POISONED, 500, 600], "max_tokens": 5, "temperature": 0.8}
            conn.request("POST", "/v1/completions", body=json.dumps(body), headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            bad["status"], bad["body"] = r.status, json.loads(r.read())
            bad["ended"] = time.monotonic()
            conn.close()

        threads = [threading.Thread(target=client, args=(k,)) for k in range(3)] + [threading.Thread(target=poisoned)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert bad["status"] == 500 and "the logits hold NaN" in bad["body"]["error"]["message"], bad
        assert got == ref
        assert bad["ended"] < min(ended), "the failed request ran beside the others"
        assert s.client().completions.create(model=s.model, prompt=[5, 6, 7], max_tokens=3).usage.completion_tokens == 3
        assert idle(s)
    finally:
        assert s.stop() == 0, s.stderr()


def test_nan_logits_greedy(tiny_model, tmp_path):
    s = Server(poisoned_model(tiny_model, tmp_path), ["-t", "1", "-c", "256", "--parallel", "2"], tmp_path)
    try:
        body = {"model": s.model, "prompt": [POISONED, 500, 600], "max_tokens": 3, "temperature": 0}
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=60)
        conn.request("POST", "/v1/completions", body=json.dumps(body), headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        got = json.loads(r.read())
        assert r.status == 500 and "the logits hold NaN" in got["error"]["message"], got
        conn.request("POST", "/v1/completions", body=json.dumps(dict(body, stream=True)),
                     headers={"Content-Type": "application/json"})
        events = [json.loads(line[6:]) for line in conn.getresponse().read().decode().split("\n\n")
                  if line.startswith("data: {")]
        assert "the logits hold NaN" in events[-1]["error"]["message"], events
        assert all(e.get("choices", [{}])[0].get("text", "") == "" for e in events[:-1]), "no token drawn from NaN"
        conn.close()
        # the server goes on: a clean greedy request
        assert s.client().completions.create(model=s.model, prompt=[5, 6, 7], max_tokens=3,
                                             temperature=0).usage.completion_tokens == 3
        assert idle(s)
    finally:
        assert s.stop() == 0, s.stderr()


def test_n_choices(start_server):
    """n choices run at once, choice i drawing with seed + i: each is, token for token, the
    reply of the same request alone with that seed (batch invariance), in the response and
    in the stream (chunks carry their choice's index); usage counts the prompt once."""
    s = start_server("-c", "512", "--parallel", "4", name="choices")
    c = s.client()
    kw = dict(model=s.model, prompt=[2000 + 13 * i for i in range(20)], max_tokens=6, temperature=1.0, logprobs=1)
    alone = [c.completions.create(seed=40 + i, **kw) for i in range(3)]
    many = c.completions.create(n=3, seed=40, **kw)
    assert [ch.index for ch in many.choices] == [0, 1, 2]
    for ch, a in zip(many.choices, alone):
        assert ch.text == a.choices[0].text and ch.logprobs.token_logprobs == a.choices[0].logprobs.token_logprobs
        assert ch.finish_reason == a.choices[0].finish_reason
    assert many.usage.prompt_tokens == alone[0].usage.prompt_tokens
    assert many.usage.completion_tokens == sum(a.usage.completion_tokens for a in alone)
    texts, finish = ["", "", ""], [None, None, None]
    usage = None
    for chunk in c.completions.create(n=3, seed=40, stream=True, stream_options={"include_usage": True}, **kw):
        for ch in chunk.choices:
            texts[ch.index] += ch.text
            finish[ch.index] = ch.finish_reason or finish[ch.index]
        usage = chunk.usage or usage
    assert texts == [a.choices[0].text for a in alone] and None not in finish
    assert usage.completion_tokens == many.usage.completion_tokens
    # chat: one message per choice, each the lone request's
    msgs = [{"role": "user", "content": "Hello"}]
    lone = [c.chat.completions.create(model=s.model, messages=msgs, max_tokens=5, seed=9 + i) for i in range(2)]
    two = c.chat.completions.create(model=s.model, messages=msgs, max_tokens=5, seed=9, n=2)
    assert [ch.index for ch in two.choices] == [0, 1]
    for ch, a in zip(two.choices, lone):
        assert ch.message.model_dump() == a.choices[0].message.model_dump()  # content, reasoning, tool calls
    streamed = {}
    for chunk in c.chat.completions.create(model=s.model, messages=msgs, max_tokens=5, seed=9, n=2, stream=True):
        for ch in chunk.choices:
            streamed.setdefault(ch.index, []).append(ch)
    assert sorted(streamed) == [0, 1] and all(any(x.finish_reason for x in v) for v in streamed.values())
    # more choices than run at once
    with pytest.raises(openai.BadRequestError, match="at most 4"):
        c.completions.create(n=5, **kw)
