"""The error table of `gptoss serve`: every status it returns, each with an OpenAI-style body
{"error": {"message", "type", "param", "code"}}, and the clean shutdown."""
import http.client
import json
import signal
import threading
import time

import openai
import pytest


def request(server, method, path, body=None, headers=None, chunked=False):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    h = {"Content-Type": "application/json", **(headers or {})}
    if chunked:
        conn.putrequest(method, path)
        for k, v in {**h, "Transfer-Encoding": "chunked"}.items():
            conn.putheader(k, v)
        conn.endheaders()
        for i in range(0, len(data), 1000):
            part = data[i:i + 1000]
            conn.send(b"%x\r\n%s\r\n" % (len(part), part))
        conn.send(b"0\r\n\r\n")
    else:
        conn.request(method, path, body=data, headers=h)
    r = conn.getresponse()
    raw = r.read()
    conn.close()
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = raw
    return r.status, r, parsed


def check_error(result, status, code=None, param=None):
    got, _, body = result
    assert got == status, (got, body)
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"], err
    if code is not None:
        assert err["code"] == code, err
    if param is not None:
        assert err["param"] == param, err
    return err


def test_400_404_405(start_server):
    s = start_server("-c", "256")
    chat = "/v1/chat/completions"
    ok = {"model": s.model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    assert request(s, "POST", chat, ok)[0] == 200
    check_error(request(s, "POST", chat, b"{not json"), 400, "invalid_json")
    check_error(request(s, "POST", chat, b"[1, 2]"), 400, "invalid_json")
    check_error(request(s, "POST", chat, {**ok, "temperature": "hot"}), 400, "invalid_value", "temperature")
    check_error(request(s, "POST", chat, {**ok, "temperature": 3}), 400, "invalid_value", "temperature")
    check_error(request(s, "POST", chat, {**ok, "max_tokens": 0}), 400, "invalid_value", "max_tokens")
    check_error(request(s, "POST", chat, {**ok, "foo": 1}), 400, "unknown_parameter", "foo")
    check_error(request(s, "POST", chat, {**ok, "model": "gpt-4o"}), 400, "model_not_found", "model")
    check_error(request(s, "POST", chat, {**ok, "n": 2}), 400, "invalid_value", "n")  # --parallel 1: n <= 1
    check_error(request(s, "POST", chat, {**ok, "n": 0}), 400, "invalid_value", "n")
    for bias in ({"abc": 1}, {"-1": 1}, {"1e3": 1}, {str(10**6): 1}, {"5": 101}, {"5": "x"}, {"5": 1, "05": 2},
                 [5], {str(i): 1 for i in range(1025)}):
        check_error(request(s, "POST", chat, {**ok, "logit_bias": bias}), 400, "invalid_value", "logit_bias")
    assert request(s, "POST", chat, {**ok, "logit_bias": {"5": -100, "6": 2.5}})[0] == 200
    check_error(request(s, "POST", chat, {**ok, "stop": ["a", "b", "c", "d", "e"]}), 400, "invalid_value", "stop")
    for fmt, code in (({"type": "xml"}, "unsupported_value"), ({"kind": "json_object"}, "invalid_value"),
                      ("json_object", "invalid_value")):
        check_error(request(s, "POST", chat, {**ok, "response_format": fmt}), 400, code, "response_format")
        check_error(request(s, "POST", "/v1/completions", {"model": s.model, "prompt": "x", "response_format": fmt}),
                    400, code, "response_format")
    check_error(request(s, "POST", "/v1/responses", {"model": s.model, "input": "x", "text": {"format": {"type": "xml"}}}),
                400, "unsupported_value", "text.format")
    for fmt in ({"type": "text"}, {"type": "json_object"}):
        assert request(s, "POST", chat, {**ok, "response_format": fmt})[0] == 200
    check_error(request(s, "POST", chat, {**ok, "messages": [{"role": "wizard", "content": "x"}]}), 400,
                param="messages[0].role")
    long = {**ok, "messages": [{"role": "user", "content": "word " * 400}]}
    err = check_error(request(s, "POST", chat, long), 400, "context_length_exceeded", "messages")
    assert "256" in err["message"]
    check_error(request(s, "POST", "/v1/completions", {"model": s.model, "prompt": [1, 2, 10**9]}), 400,
                "invalid_value", "prompt[2]")
    check_error(request(s, "POST", "/v1/responses", {"model": s.model, "input": 5}), 400, "invalid_value", "input")
    check_error(request(s, "GET", "/nope"), 404, "not_found")
    status, r, body = request(s, "GET", chat)
    check_error((status, r, body), 405, "method_not_allowed")
    assert r.getheader("Allow") == "POST"
    check_error(request(s, "POST", "/health", {}), 405)
    # the openai client maps them to its exceptions
    c = s.client()
    with pytest.raises(openai.BadRequestError):
        c.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.NotFoundError):
        c.responses.create(model=s.model, input="x", previous_response_id="resp_missing")


def test_400_json_schema(start_server):
    """Refused schemas (json_schema response formats): a keyword or a size outside the subset is
    400 unsupported_value, a malformed schema 400 invalid_value, each message naming the JSON
    pointer in the schema; chat, completions and responses alike. Then the format's own fields."""
    s = start_server("-c", "256")
    chat = "/v1/chat/completions"
    ok = {"model": s.model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    fmt = lambda schema: {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    doubling = {"anyOf": [{"type": "array", "items": {"$ref": "#"}}, {"type": "array", "items": {"$ref": "#"}, "maxItems": 2}]}
    for schema, code, part in (
            ({"properties": {"d": {"type": "string", "format": "email"}}}, "unsupported_value",
             '#/properties/d/format: format "email" is not supported'),
            ({"type": "string", "format": "uri"}, "unsupported_value", 'format "uri"'),
            ({"type": "string", "format": "hostname"}, "unsupported_value", 'format "hostname"'),
            ({"type": "string", "pattern": "(?=a)b"}, "unsupported_value", "#/pattern: \"(?=a)b\": '(?' groups"),
            ({"type": "string", "pattern": "(?<!a)b"}, "unsupported_value", "lookaround"),
            ({"type": "string", "pattern": "(a)\\1"}, "unsupported_value", "backreferences"),
            ({"type": "string", "pattern": "^[ab]*a[ab]{20}$"}, "unsupported_value", "too complex to enforce"),
            ({"type": "string", "pattern": "\\bx"}, "unsupported_value", "word boundary"),
            ({"type": "string", "pattern": "\\p{Lu}"}, "unsupported_value", "Unicode property"),
            ({"type": "string", "pattern": "a^b"}, "unsupported_value", "'^' only at the start"),
            ({"type": "string", "pattern": "[]"}, "unsupported_value", "matches nothing"),
            ({"type": "string", "pattern": "a{,2}"}, "unsupported_value", "not a quantifier"),
            ({"type": "string", "pattern": "(a"}, "unsupported_value", "without its ')'"),
            ({"type": "string", "pattern": "^" + "a" * 1000}, "unsupported_value", "more than 1000 bytes"),
            ({"type": "string", "pattern": "^a", "maxLength": 4}, "unsupported_value", "beside minLength/maxLength"),
            ({"type": "string", "format": "date", "minLength": 10}, "unsupported_value", "beside minLength/maxLength"),
            ({"type": "string", "pattern": "a", "format": "uuid"}, "unsupported_value", "beside \"format\""),
            ({"type": "integer", "multipleOf": 2}, "unsupported_value", "#/multipleOf"),
            ({"type": "number", "exclusiveMinimum": True}, "invalid_value", "#: exclusiveMinimum: expected a number"),
            ({"type": "number", "minimum": "0"}, "invalid_value", "minimum: expected a number"),
            ({"type": "integer", "minimum": 1.5, "maximum": 1.9}, "invalid_value", "admits no value"),
            ({"type": "string", "pattern": 5}, "invalid_value", "#/pattern: expected a string"),
            ({"type": "array", "items": {}, "uniqueItems": True}, "unsupported_value", "#/uniqueItems"),
            ({"oneOf": [{"type": "string"}, {"type": "null"}]}, "unsupported_value", "#/oneOf"),
            ({"type": "object", "anyOf": [{"required": ["a"]}]}, "unsupported_value", "beside"),
            ({"properties": {"a\"b": {}}}, "unsupported_value", "needs an escape"),
            ({"properties": {"p%d" % i: {} for i in range(129)}}, "unsupported_value", "more than 128 properties"),
            ({"enum": list(range(129))}, "unsupported_value", "more than 128 values"),
            (doubling, "unsupported_value", "more than 32 at once"),
            ({"$ref": "#/$defs/missing"}, "invalid_value", "does not resolve"),
            ({"type": "strng"}, "invalid_value", "#: type: \"strng\""),
            ({"properties": {"a": {"enum": []}}}, "invalid_value", "#/properties/a: enum"),
            ({"properties": {"a": {"maxLength": "3"}}}, "invalid_value", "#/properties/a: maxLength"),
            ({"type": "object", "required": ["a"], "additionalProperties": False}, "invalid_value", "admits no value")):
        param = "response_format.json_schema.schema"
        err = check_error(request(s, "POST", chat, {**ok, "response_format": fmt(schema)}), 400, code, param)
        assert part in err["message"] and err["message"].startswith(param + " at #"), err
        err = check_error(request(s, "POST", "/v1/completions", {"model": s.model, "prompt": "x",
                                                                 "response_format": fmt(schema)}), 400, code, param)
        assert part in err["message"], err
        err = check_error(request(s, "POST", "/v1/responses", {"model": s.model, "input": "x", "text": {"format": {
            "type": "json_schema", "name": "x", "schema": schema}}}), 400, code, "text.format.schema")
        assert part in err["message"], err
    base = {"name": "x", "schema": {"type": "object"}}
    for js, code, param in (({"schema": {}}, "invalid_value", "response_format.json_schema.name"),
                            ({**base, "name": "a b"}, "invalid_value", "response_format.json_schema.name"),
                            ({**base, "name": "n" * 65}, "invalid_value", "response_format.json_schema.name"),
                            ({**base, "strict": "yes"}, "invalid_value", "response_format.json_schema.strict"),
                            ({**base, "description": 5}, "invalid_value", "response_format.json_schema.description"),
                            ({"name": "x"}, "invalid_value", "response_format.json_schema.schema"),
                            ({"name": "x", "schema": "{}"}, "invalid_value", "response_format.json_schema.schema"),
                            ({**base, "extra": 1}, "unknown_parameter", "response_format.json_schema.extra"),
                            ("x", "invalid_value", "response_format.json_schema")):
        check_error(request(s, "POST", chat, {**ok, "response_format": {"type": "json_schema", "json_schema": js}}),
                    400, code, param)
    check_error(request(s, "POST", chat, {**ok, "response_format": {"type": "json_schema", "json_schema": base, "x": 1}}),
                400, "unknown_parameter", "response_format.x")
    check_error(request(s, "POST", "/v1/responses", {"model": s.model, "input": "x", "text": {"format": {
        "type": "json_schema", "schema": {}}}}), 400, "invalid_value", "text.format.name")
    for schema in ({}, {"type": "object"}, {"anyOf": [{"type": "string", "maxLength": 3}, {"type": "null"}]}):
        assert request(s, "POST", chat, {**ok, "response_format": fmt(schema)})[0] == 200
    with pytest.raises(openai.BadRequestError):
        s.client().chat.completions.create(model=s.model, messages=[{"role": "user", "content": "hi"}],
                                           response_format=fmt({"not": {}}))


def test_401(start_server, tmp_path):
    key = tmp_path / "key"
    key.write_text("s3cret-key\n")
    s = start_server("--api-key-file", str(key))
    chat = {"model": s.model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    check_error(request(s, "POST", "/v1/chat/completions", chat), 401, "invalid_api_key")
    check_error(request(s, "POST", "/v1/chat/completions", chat, {"Authorization": "Bearer s3cret-kez"}), 401)
    check_error(request(s, "POST", "/v1/chat/completions", chat, {"Authorization": "Bearer s3cret-key2"}), 401)
    check_error(request(s, "GET", "/v1/models", None, {"Authorization": "Bearer s3cret"}), 401)
    assert request(s, "GET", "/health")[0] == 200
    with pytest.raises(openai.AuthenticationError):
        s.client(api_key="wrong").models.list()
    r = s.client(api_key="s3cret-key").chat.completions.create(**chat)
    assert r.usage.completion_tokens == 1


def test_413(start_server):
    s = start_server("--max-body", "2000")
    big = {"model": s.model, "messages": [{"role": "user", "content": "x" * 5000}]}
    check_error(request(s, "POST", "/v1/chat/completions", big), 413, "request_too_large")
    check_error(request(s, "POST", "/v1/chat/completions", big, chunked=True), 413, "request_too_large")
    small = {"model": s.model, "messages": [{"role": "user", "content": "x" * 100}], "max_tokens": 1}
    assert request(s, "POST", "/v1/chat/completions", small, chunked=True)[0] == 200


def open_stream(s, max_tokens=3000):
    """A streaming completion that keeps the engine busy; returns the open connection once
    its first token arrived (the request is running, not queued)."""
    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=120)
    conn.request("POST", "/v1/completions", body=json.dumps(
        {"model": s.model, "prompt": "Go:", "max_tokens": max_tokens, "stream": True}),
        headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200
    while not resp.readline().startswith(b"data: "):
        pass
    return conn, resp


def wait_metric(s, name, value, timeout=20):
    deadline = time.monotonic() + timeout
    while s.metric(name) != value:
        assert time.monotonic() < deadline, f"{name} never became {value}"
        time.sleep(0.02)


def test_429_queue_full(start_server):
    s = start_server("--max-queue", "1", "-c", "4096")
    conn, _ = open_stream(s)
    queued = {}
    t = threading.Thread(target=lambda: queued.update(r=request(s, "POST", "/v1/completions", {
        "model": s.model, "prompt": "B", "max_tokens": 2})))
    t.start()
    wait_metric(s, "gptoss_queue_length", 1)
    status, r, body = request(s, "POST", "/v1/completions", {"model": s.model, "prompt": "C", "max_tokens": 2})
    check_error((status, r, body), 429, "queue_full")
    assert r.getheader("Retry-After") == "1"
    with pytest.raises(openai.RateLimitError):
        s.client().completions.create(model=s.model, prompt="D", max_tokens=2)
    conn.close()  # cancels the running request; the queued one runs
    t.join(60)
    assert queued["r"][0] == 200 and queued["r"][2]["usage"]["completion_tokens"] == 2


def test_504_timeout(start_server):
    s = start_server("--timeout", "2", "-c", "4096")
    t0 = time.monotonic()
    check_error(request(s, "POST", "/v1/completions", {"model": s.model, "prompt": "x", "max_tokens": 4000}), 504,
                "timeout")
    assert time.monotonic() - t0 < 10
    # streamed: the error arrives as an event, then [DONE]
    c = s.client()
    with pytest.raises(openai.APIError) as e:
        for _ in c.completions.create(model=s.model, prompt="x", max_tokens=4000, stream=True):
            pass
    assert "timeout" in str(e.value)


def test_503_and_drain_on_sigterm(start_server):
    s = start_server("-c", "4096")
    keep = http.client.HTTPConnection("127.0.0.1", s.port, timeout=60)  # a kept-alive connection
    keep.request("GET", "/health")
    assert keep.getresponse().read() == b'{"status":"ok"}'
    conn, resp = open_stream(s, max_tokens=400)
    s.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    keep.request("POST", "/v1/completions", body=json.dumps({"model": s.model, "prompt": "late", "max_tokens": 2}),
                 headers={"Content-Type": "application/json"})
    r = keep.getresponse()
    body = json.loads(r.read())
    check_error((r.status, r, body), 503, "server_shutdown")
    # a new connection too: the server goes on listening while it drains (it used to close
    # the listening socket with MHD_quiesce_daemon, which raced with libmicrohttpd's polling
    # threads: one run in ~400 aborted; tests/serve/stress_shutdown.py reproduces it)
    check_error(request(s, "POST", "/v1/completions", {"model": s.model, "prompt": "later", "max_tokens": 2}), 503,
                "server_shutdown")
    # the request in flight runs to its end
    lines = resp.read().decode().split("\n\n")
    assert lines[-2] == "data: [DONE]"
    finish = [json.loads(l[6:]) for l in lines if l.startswith("data: {")][-1]["choices"][0]["finish_reason"]
    assert finish in ("length", "stop")
    assert s.proc.wait(timeout=30) == 0
    assert "stopped" in s.stderr()
