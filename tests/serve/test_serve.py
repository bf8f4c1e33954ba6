"""`gptoss serve` through the official openai client (tiny random model, CPU, loopback).

With random weights the model's chat replies are not well-formed harmony, so the content
checks of chat are structural (types, usage counts, determinism); what the replies mean is
tested on scripted token streams (serve_test_output). A tool call is forced with
tool_choice naming a function (the server appends the call's header to the prompt).
"""
import base64
import http.client
import json
import random
import subprocess
import time
import urllib.request

import openai
import pytest

from conftest import BIN, ROOT

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def post(server, path, body):
    """(status, parsed JSON body) of a POST on a new connection."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    out = r.status, json.loads(r.read())
    conn.close()
    return out


def chat(client, model, **kw):
    kw.setdefault("messages", [{"role": "user", "content": "Hello there"}])
    kw.setdefault("max_tokens", 6)
    return client.chat.completions.create(model=model, **kw)


# ---- basics ---------------------------------------------------------------------------

def test_health_models_metrics(server):
    assert json.load(urllib.request.urlopen(server.url + "/health")) == {"status": "ok"}
    models = server.client().models.list()
    assert [m.id for m in models.data] == [server.model]
    text = urllib.request.urlopen(server.url + "/metrics").read().decode()
    for name in ("gptoss_requests_total", "gptoss_prompt_tokens_total", "gptoss_completion_tokens_total",
                 "gptoss_queue_length", "gptoss_time_to_first_token_seconds_bucket",
                 "gptoss_decode_tokens_per_second_bucket", "gptoss_prompt_tokens_cached_total"):
        assert name in text, name
    # the backend's memory (CPU: this process's resident memory, of the machine's)
    used, total = server.metric("gptoss_backend_memory_used_bytes"), server.metric("gptoss_backend_memory_total_bytes")
    assert 0 < used < total, (used, total)


def test_chat_usage_and_determinism(server):
    c = server.client()
    before = server.metric("gptoss_completion_tokens_total")
    r1 = chat(c, server.model, temperature=0, max_tokens=7)
    r2 = chat(c, server.model, temperature=0, max_tokens=7)
    assert r1.object == "chat.completion" and r1.id.startswith("chatcmpl-")
    ch = r1.choices[0]
    assert ch.finish_reason in ("length", "stop", "tool_calls")
    assert ch.message.role == "assistant"
    u = r1.usage
    assert u.completion_tokens == 7 or ch.finish_reason != "length"
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens
    # the prompt: the rendered conversation (apply-template gives the same count)
    tpl = post(server, "/apply-template", {"messages": [{"role": "user", "content": "Hello there"}]})[1]
    assert tpl["num_tokens"] == u.prompt_tokens == len(tpl["tokens"])
    # greedy: the same reply; the second run reuses the first's prompt (all but the last token)
    assert r1.choices[0].message == r2.choices[0].message
    assert r2.usage.prompt_tokens_details.cached_tokens == u.prompt_tokens - 1
    assert server.metric("gptoss_completion_tokens_total") - before == u.completion_tokens + r2.usage.completion_tokens


def test_chat_stream_matches_nonstream(server):
    c = server.client()
    kw = dict(temperature=0.8, seed=1234, max_tokens=9,
              tools=[WEATHER_TOOL], tool_choice={"type": "function", "function": {"name": "get_weather"}})
    full = chat(c, server.model, **kw)
    chunks = list(chat(c, server.model, stream=True, stream_options={"include_usage": True}, **kw))
    assert chunks[0].choices[0].delta.role == "assistant"
    args, name, ids, finish, usage = "", None, set(), None, None
    for ch in chunks:
        if not ch.choices:
            usage = ch.usage
            continue
        assert ch.usage is None
        d = ch.choices[0].delta
        for tc in d.tool_calls or []:
            assert tc.index == 0
            if tc.id:
                ids.add(tc.id)
                name = tc.function.name
            args += tc.function.arguments or ""
        finish = ch.choices[0].finish_reason or finish
    assert chunks[-1].usage is not None and not chunks[-1].choices, "the usage chunk comes last"
    call = full.choices[0].message.tool_calls[0]
    assert name == call.function.name == "get_weather" and len(ids) == 1
    assert args == call.function.arguments, "streamed argument deltas add up to the arguments"
    assert finish == full.choices[0].finish_reason
    assert usage.completion_tokens == full.usage.completion_tokens == 9
    assert usage.prompt_tokens == full.usage.prompt_tokens


def test_seed(server):
    c = server.client()
    kw = dict(temperature=1.0, max_tokens=12, prompt="Once upon a time")
    a = c.completions.create(model=server.model, seed=7, **kw).choices[0].text
    b = c.completions.create(model=server.model, seed=7, **kw).choices[0].text
    d = c.completions.create(model=server.model, seed=8, **kw).choices[0].text
    assert a == b
    assert a != d  # 12 draws from ~200k tokens at temperature 1 (random weights): equal only by accident


def test_temperature0_equals_generate(server, tiny_model):
    prompt = "The capital of France is"
    out = subprocess.run([str(BIN), "generate", "-m", str(tiny_model), "-p", prompt, "-n", "24", "-t", "1"],
                         capture_output=True, check=True).stdout
    assert out.startswith(prompt.encode()) and out.endswith(b"\n")
    expect = out[len(prompt):-1]
    for stop in (b"<|return|>", b"<|call|>"):  # generate prints the stop token, the API does not
        if expect.endswith(stop):
            expect = expect[:-len(stop)]
    r = server.client().completions.create(model=server.model, prompt=prompt, max_tokens=24, temperature=0)
    assert r.choices[0].text == expect.decode("utf-8", errors="replace")
    streamed = "".join(ch.choices[0].text for ch in server.client().completions.create(
        model=server.model, prompt=prompt, max_tokens=24, temperature=0, stream=True) if ch.choices)
    assert streamed == r.choices[0].text


def test_completion_logprobs_and_stop(server):
    c = server.client()
    r = c.completions.create(model=server.model, prompt="Numbers:", max_tokens=10, temperature=0, logprobs=3)
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == r.usage.completion_tokens
    for tok, l, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
        assert l <= 0
        assert len(top) == 3
        # greedy: the chosen token is the most likely one
        assert abs(max(top.values()) - l) < 1e-6
    assert "".join(lp.tokens) == r.choices[0].text or "\ufffd" in r.choices[0].text
    # a stop string inside the greedy text cuts it there
    text = r.choices[0].text
    if len(text) >= 6:
        stop = text[3:6]
        s = c.completions.create(model=server.model, prompt="Numbers:", max_tokens=10, temperature=0, stop=[stop])
        assert s.choices[0].text == text[:text.index(stop)] and s.choices[0].finish_reason == "stop"
        st = "".join(ch.choices[0].text for ch in c.completions.create(
            model=server.model, prompt="Numbers:", max_tokens=10, temperature=0, stop=stop, stream=True) if ch.choices)
        assert st == s.choices[0].text


def token_bytes():
    """id -> bytes of o200k_base's text tokens (the vocabulary file the tests run with)."""
    out = {}
    for line in open(ROOT / "data" / "o200k_base.tiktoken", "rb"):
        t, n = line.split()
        out[int(n)] = base64.b64decode(t)
    return out


def test_logit_bias(server):
    """+100 on a token makes every draw that token (greedy and sampled); -100 on the greedy
    reply's first token keeps it out; chat takes the field too."""
    c = server.client()
    prompt = [1000 + 37 * i for i in range(12)]
    kw = dict(model=server.model, prompt=prompt, max_tokens=6, logprobs=1)
    base = c.completions.create(temperature=0, **kw)
    vocab = token_bytes()
    forced = 12345
    assert vocab[forced] == b" Da"
    for temperature in (0, 1):
        r = c.completions.create(temperature=temperature, seed=3, logit_bias={str(forced): 100}, **kw)
        assert r.choices[0].text == " Da" * 6, (temperature, r.choices[0].text)
    first = base.choices[0].logprobs.tokens[0]
    ids = [i for i, b in vocab.items() if b == first.encode()]
    assert len(ids) == 1, (first, ids)  # the greedy reply's first token: banned, another comes first
    r = c.completions.create(temperature=0, logit_bias={str(ids[0]): -100}, **kw)
    assert r.choices[0].logprobs.tokens[0] != first
    r = chat(c, server.model, temperature=0, max_tokens=4, logit_bias={str(forced): 100})
    assert r.usage.completion_tokens == 4 and r.choices[0].finish_reason == "length"


def test_chat_logprobs(server):
    r = chat(server.client(), server.model, logprobs=True, top_logprobs=2)
    assert r.choices[0].logprobs is not None  # entries only for final-channel tokens (none here)
    for e in r.choices[0].logprobs.content or []:
        assert e.logprob <= 0 and len(e.top_logprobs) == 2


# ---- prompt cache -------------------------------------------------------------------------

def test_prompt_cache_counts_and_logprobs(server, start_server):
    """A prompt extending the previous one reuses its K/V; its logprobs equal, bit for bit, a
    cold run's on a fresh server (batch invariance: how the prompt was split into steps does
    not change a token's numbers)."""
    c = server.client()
    rng = random.Random(5)
    p = [rng.randrange(1000, 100000) for _ in range(150)]
    q = [rng.randrange(1000, 100000) for _ in range(40)]
    kw = dict(model=server.model, max_tokens=3, temperature=0, logprobs=5)
    c.completions.create(prompt=p, **kw)
    warm = c.completions.create(prompt=p + q, **kw)
    assert warm.usage.prompt_tokens == 190
    assert warm.usage.prompt_tokens_details.cached_tokens == 150
    # the same prompt again: all of it cached but the last token (it runs for its logits)
    again = c.completions.create(prompt=p + q, **kw)
    assert again.usage.prompt_tokens_details.cached_tokens == 189
    fresh = start_server("-c", "2048", "--parallel", "2")
    cold = fresh.client().completions.create(prompt=p + q, **kw)
    assert cold.usage.prompt_tokens_details.cached_tokens == 0
    for r in (warm, again):
        assert r.choices[0].text == cold.choices[0].text
        assert r.choices[0].logprobs.token_logprobs == cold.choices[0].logprobs.token_logprobs
        assert r.choices[0].logprobs.top_logprobs == cold.choices[0].logprobs.top_logprobs


def test_prompt_cache_two_conversations(server):
    """Two chats alternate: each turn reuses its own conversation's K/V."""
    c = server.client()
    convs = [[{"role": "user", "content": f"Conversation {k}: tell me about {t}"}] for k, t in enumerate(("cats", "dogs"))]
    first = []
    for m in convs:
        r = chat(c, server.model, messages=m, temperature=0)
        first.append(r.usage.prompt_tokens)
        m.append({"role": "assistant", "content": "Sure."})
        m.append({"role": "user", "content": "More please."})
    for k, m in enumerate(convs):
        r = chat(c, server.model, messages=m, temperature=0)
        assert r.usage.prompt_tokens > first[k]
        assert r.usage.prompt_tokens_details.cached_tokens == first[k], (k, r.usage)


# ---- tools ----------------------------------------------------------------------------------

def test_tool_round_trip(server):
    c = server.client()
    messages = [{"role": "system", "content": "You answer weather questions."},
                {"role": "user", "content": "What is the weather in Paris?"}]
    r = chat(c, server.model, messages=messages, tools=[WEATHER_TOOL], max_tokens=8,
             tool_choice={"type": "function", "function": {"name": "get_weather"}})
    msg = r.choices[0].message
    assert msg.tool_calls and msg.tool_calls[0].function.name == "get_weather"
    assert msg.tool_calls[0].id.startswith("call_") and msg.content is None
    messages.append(msg.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": msg.tool_calls[0].id, "content": '{"temperature": 21}'})
    r2 = chat(c, server.model, messages=messages, tools=[WEATHER_TOOL], max_tokens=5)
    assert r2.choices[0].finish_reason in ("length", "stop", "tool_calls")
    # the second prompt holds the call and its result
    tpl = post(server, "/apply-template", {"messages": messages, "tools": [WEATHER_TOOL]})[1]
    assert "to=functions.get_weather" in tpl["prompt"] and "functions.get_weather to=assistant" in tpl["prompt"]
    assert r2.usage.prompt_tokens == tpl["num_tokens"]


# ---- responses --------------------------------------------------------------------------

def test_responses(server):
    c = server.client()
    r = c.responses.create(model=server.model, input="Say hi", max_output_tokens=6, instructions="Be brief.")
    assert r.object == "response" and r.id.startswith("resp_")
    assert r.status in ("completed", "incomplete")
    assert r.usage.output_tokens <= 6 and r.usage.input_tokens > 0
    assert r.instructions == "Be brief."
    # instructions are not carried over (as OpenAI's API): given again
    r2 = c.responses.create(model=server.model, input="And again", max_output_tokens=4, previous_response_id=r.id,
                            instructions="Be brief.")
    assert r2.previous_response_id == r.id
    tpl = post(server, "/apply-template", {"input": "And again", "previous_response_id": r.id,
                                           "instructions": "Be brief."})[1]
    assert "Say hi" in tpl["prompt"] and "And again" in tpl["prompt"]
    assert r2.usage.input_tokens == tpl["num_tokens"] > r.usage.input_tokens
    # the first prompt is reused up to its closing <|start|>assistant (the random reply was
    # no message, so the next turn has the user's message there)
    assert r2.usage.input_tokens_details.cached_tokens >= r.usage.input_tokens - 2
    with pytest.raises(openai.NotFoundError) as e:
        c.responses.create(model=server.model, input="x", previous_response_id="resp_nope")
    assert e.value.body["code"] == "previous_response_not_found"


def test_responses_stream_events(server):
    c = server.client()
    events = list(c.responses.create(
        model=server.model, input=[{"role": "user", "content": "Weather in Oslo?"}], max_output_tokens=7,
        tools=[{"type": "function", "name": "get_weather", "parameters": WEATHER_TOOL["function"]["parameters"]}],
        tool_choice={"type": "function", "name": "get_weather"}, stream=True))
    types = [e.type for e in events]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] in ("response.completed", "response.incomplete")
    assert [e.sequence_number for e in events] == list(range(len(events)))
    i = types.index("response.output_item.added")
    assert events[i].item.type == "function_call" and events[i].item.name == "get_weather"
    deltas = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert len(done) == 1 and done[0].arguments == deltas
    item_done = [e for e in events if e.type == "response.output_item.done"]
    assert item_done and item_done[0].item.arguments == deltas
    final = events[-1].response
    assert final.output[0].type == "function_call" and final.output[0].arguments == deltas
    assert final.usage.output_tokens == 7


# ---- templates --------------------------------------------------------------------------

def test_apply_template_equals_render(server, tiny_model, tmp_path):
    req = {"messages": [{"role": "developer", "content": "Answer in French."},
                        {"role": "user", "content": "Hello"}],
           "tools": [WEATHER_TOOL], "reasoning_effort": "high"}
    http = post(server, "/apply-template", req)[1]
    path = tmp_path / "req.json"
    path.write_text(json.dumps(req))
    out = subprocess.run([str(BIN), "render", "-m", str(tiny_model), str(path)], capture_output=True, check=True)
    assert json.loads(out.stdout) == http
    assert "Reasoning: high" in http["prompt"] and http["prompt"].endswith("<|start|>assistant")
    assert "Answer in French." in http["prompt"] and "type get_weather" in http["prompt"]


# ---- cancellation -------------------------------------------------------------------------

def test_disconnect_cancels(server):
    body = {"model": server.model, "prompt": "Count:", "max_tokens": 1900, "stream": True}
    before = server.metric("gptoss_completion_tokens_total")
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    conn.request("POST", "/v1/completions", body=json.dumps(body), headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200
    got = 0
    while got < 3:
        got += resp.readline().startswith(b"data: ")
    conn.close()  # the client goes away mid-stream
    # the engine notices at its next step; the request ends far short of 1900 tokens
    deadline = time.monotonic() + 20
    while server.metric("gptoss_requests_running") > 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.metric("gptoss_requests_running") == 0
    done = server.metric("gptoss_completion_tokens_total") - before
    assert 3 <= done < 1900
    # and the server goes on
    assert chat(server.client(), server.model, max_tokens=2).usage.completion_tokens == 2
