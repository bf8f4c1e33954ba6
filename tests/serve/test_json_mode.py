"""response_format {"type": "json_object"} through the openai client (tiny random model).

Completions (an extension, as vLLM: the whole text is the object): every reply, greedy and
sampled, streamed and not, is a prefix of a JSON object by this file's own checker, and a
whole one (json.loads) when it stopped; the same requests without the format are not. Biases
that favour '{', '}' and <|return|> make the object close and the reply stop: exactly "{}".
The chat path (the constraint starts at the final channel's message) is checked token by
token in tests/serve/test_output.c: a random model seldom writes a final channel.
"""
import json

from test_serve import token_bytes

OPEN, CLOSE, RETURN = 90, 92, 200002  # '{', '}', <|return|> in o200k_harmony


def json_object_prefix(text):
    """Whether text can begin a JSON object (RFC 8259; an independent checker, not the
    server's): a small pushdown recognizer over the characters."""
    stack, i, n = [], 0, len(text)
    state = "top"  # top, value, value_end, key_end, key, colon, after, done
    ws = " \t\n\r"

    def scan_string(i):  # i after the opening quote; returns index after the closing one, or None
        while i < n:
            c = text[i]
            if c == '"':
                return i + 1
            if c == "\\":
                if i + 1 >= n:
                    return None
                e = text[i + 1]
                if e == "u":
                    hexs = text[i + 2:i + 6]
                    if not all(h in "0123456789abcdefABCDEF" for h in hexs):
                        raise ValueError("bad \\u")
                    if len(hexs) < 4:
                        return None
                    i += 6
                    continue
                if e not in '"\\/bfnrt':
                    raise ValueError("bad escape")
                i += 2
                continue
            if ord(c) < 0x20:
                raise ValueError("control character")
            i += 1
        return None

    def scan_number(i):  # returns (index after the number, complete-here) or raises
        j = i
        if j < n and text[j] == "-":
            j += 1
        if j >= n:
            return j, False
        if text[j] == "0":
            j += 1
        elif text[j].isdigit():
            while j < n and text[j].isdigit():
                j += 1
        else:
            raise ValueError("number")
        if j < n and text[j] == ".":
            j += 1
            if j >= n:
                return j, False
            if not text[j].isdigit():
                raise ValueError("fraction")
            while j < n and text[j].isdigit():
                j += 1
        if j < n and text[j] in "eE":
            j += 1
            if j < n and text[j] in "+-":
                j += 1
            if j >= n:
                return j, False
            if not text[j].isdigit():
                raise ValueError("exponent")
            while j < n and text[j].isdigit():
                j += 1
        return j, True

    def end_value():
        return "after" if stack else "done"

    try:
        while i < n:
            c = text[i]
            if c in ws and state != "done":
                i += 1
                continue
            if state == "done":
                if c not in ws:
                    return False
                i += 1
            elif state == "top":
                if c != "{":
                    return False
                stack.append("{")
                state, i = "key_end", i + 1
            elif state in ("value", "value_end"):
                if state == "value_end" and c == "]":
                    stack.pop()
                    state, i = end_value(), i + 1
                elif c in "{[":
                    stack.append(c)
                    state, i = ("key_end" if c == "{" else "value_end"), i + 1
                elif c == '"':
                    j = scan_string(i + 1)
                    if j is None:
                        return True
                    state, i = end_value(), j
                elif c == "-" or c.isdigit():
                    j, whole = scan_number(i)
                    if j >= n:
                        return True
                    if not whole:
                        return False
                    state, i = end_value(), j
                else:
                    for lit in ("true", "false", "null"):
                        if lit.startswith(text[i:i + len(lit)]) and text[i] == lit[0]:
                            if i + len(lit) > n:
                                return True
                            state, i = end_value(), i + len(lit)
                            break
                    else:
                        return False
            elif state in ("key_end", "key"):
                if state == "key_end" and c == "}":
                    stack.pop()
                    state, i = end_value(), i + 1
                elif c == '"':
                    j = scan_string(i + 1)
                    if j is None:
                        return True
                    state, i = "colon", j
                else:
                    return False
            elif state == "colon":
                if c != ":":
                    return False
                state, i = "value", i + 1
            elif state == "after":
                if c == ",":
                    state, i = ("key" if stack[-1] == "{" else "value"), i + 1
                elif (c == "}" and stack[-1] == "{") or (c == "]" and stack[-1] == "["):
                    stack.pop()
                    state, i = end_value(), i + 1
                else:
                    return False
        return True
    except ValueError:
        return False


def test_checker():
    """The test's own checker on hand cases (it is the oracle below)."""
    for good in ["", " ", "{", '{"a', '{"a":', '{"a": [1, -2.5e3, tru', '{"a":{"b":[]},"c":"\\u00e9"}', "{} \n",
                 '{"k": "x\\"y"', '{"k": -']:
        assert json_object_prefix(good), good
    for bad in ["[", '"x"', "{]", '{"a" 1', '{"a":01', '{"a":1,}', "{}x", '{"a":"\x01"}', "{'a'", '{"a":1.e']:
        assert not json_object_prefix(bad), bad


def test_json_object_completions(server):
    c = server.client()
    base = dict(model=server.model, prompt="Reply in JSON:", max_tokens=40)
    constrained = unconstrained_prefixes = 0
    for temperature, seed in ((0, 0), (1.0, 1), (1.0, 2), (1.5, 3), (0.8, 4)):
        kw = dict(base, temperature=temperature, seed=seed)
        r = c.completions.create(extra_body={"response_format": {"type": "json_object"}}, **kw)
        text, finish = r.choices[0].text, r.choices[0].finish_reason
        assert json_object_prefix(text), (temperature, seed, text)
        if finish == "stop":
            assert isinstance(json.loads(text), dict), text
        else:
            assert finish == "length" and r.usage.completion_tokens == 40
        constrained += 1
        # the same request streamed: the same text
        chunks = c.completions.create(extra_body={"response_format": {"type": "json_object"}}, stream=True, **kw)
        assert "".join(ch.choices[0].text for ch in chunks if ch.choices) == text
        # without the format the model writes anything
        free = c.completions.create(**kw).choices[0].text
        unconstrained_prefixes += json_object_prefix(free)
    assert constrained == 5 and unconstrained_prefixes < 5, "the unconstrained replies must not all be JSON"


def test_json_object_closes(server):
    """Biased towards '{', '}' and <|return|>: the object is "{}" and the reply stops."""
    vocab = token_bytes()
    assert vocab[OPEN] == b"{" and vocab[CLOSE] == b"}"
    c = server.client()
    bias = {str(OPEN): 100, str(CLOSE): 100, str(RETURN): 100}
    for temperature in (0, 1.0):
        r = c.completions.create(model=server.model, prompt="JSON please:", max_tokens=20, temperature=temperature,
                                 seed=9, logit_bias=bias, extra_body={"response_format": {"type": "json_object"}})
        assert r.choices[0].text == "{}" and r.choices[0].finish_reason == "stop", r.choices[0]
        # '}' is never allowed first, '{' not after the object: without the mask the bias would
        # give '{' or '}' from the start, and the text would not stop at "{}"
        r = c.completions.create(model=server.model, prompt="JSON please:", max_tokens=6, temperature=temperature,
                                 seed=9, logit_bias=bias)
        assert r.choices[0].text != "{}", r.choices[0]


def test_json_object_chat_and_responses_accept(server):
    """Chat and responses take the format; a random model seldom reaches the final channel,
    so the reply is checked only where it has content."""
    c = server.client()
    r = c.chat.completions.create(model=server.model, messages=[{"role": "user", "content": "JSON please"}],
                                  max_tokens=30, response_format={"type": "json_object"})
    content = r.choices[0].message.content
    assert content is None or json_object_prefix(content), content
    r = c.responses.create(model=server.model, input="JSON please", max_output_tokens=30,
                           text={"format": {"type": "json_object"}})
    assert r.text.format.type == "json_object"
