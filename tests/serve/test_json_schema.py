"""response_format {"type": "json_schema"} through the openai client (tiny random model), the
jsonschema package as the oracle.

Completions (an extension, as vLLM: the whole text is the value): for fixed schemas (nested
objects, arrays with min/max, enums of mixed types, anyOf of objects sharing a key, recursion,
numeric bounds, patterns, formats) and random ones (this file's generator; the seed is printed, GPTOSS_TEST_SEED repeats it),
every reply that stops is valid by jsonschema.validate (formats checked: the 2020-12 FormatChecker; date, uuid, ipv4 here, date-time and time need rfc3339-validator) and is the value alone; greedy and
sampled, streamed (the same text) and not, n = 2 choices. A random model writes noise, so
the replies are whatever the mask lets through: most of them stop within max_tokens.

Chat: the schema constrains the final message. A random model seldom writes one; a bias on
the header tokens (<|channel|> final <|message|>) and a search over prompts and seeds with a
few tokens each, for each schema (it is in the prompt: the developer message shows it; the
replies are deterministic, the model and the sampler being seeded), find the replies that do,
which must then be valid, streamed and not. Responses: text.format is echoed as given, and a reply's
message, if any, is valid when the response completed. The refused schemas are in
test_errors.py.
"""
import json
import os
import random
import time

import jsonschema

CHANNEL, MESSAGE, FINAL = 200005, 200008, 17196  # <|channel|>, <|message|>, "final" in o200k_harmony

SCHEMAS = [
    {"type": "object", "properties": {
        "name": {"type": "string", "maxLength": 8}, "age": {"type": "integer"},
        "address": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 6},
                                                     "zip": {"type": ["string", "null"], "minLength": 2,
                                                             "maxLength": 3}},
                    "required": ["city"], "additionalProperties": False},
        "tags": {"type": "array", "items": {"enum": ["a", "b", "c"]}, "maxItems": 3}},
     "required": ["name", "age", "tags"], "additionalProperties": False},
    {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 4},
    {"enum": [1.5, "x\"y", {"k": [1, 2]}, None, -0.0, 1e-7, "\u00e9\U0001F600", True, [], 100]},
    {"anyOf": [{"type": "object", "properties": {"kind": {"const": "alpha"}, "x": {"type": "integer"}},
                "required": ["kind", "x"], "additionalProperties": False},
               {"type": "object", "properties": {"kind": {"const": "alphabet"}, "y": {"type": "boolean"}},
                "required": ["kind", "y"], "additionalProperties": False}]},
    {"$defs": {"node": {"type": "object", "properties": {
        "v": {"type": "integer"}, "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 2}},
        "required": ["v", "kids"], "additionalProperties": False}}, "$ref": "#/$defs/node"},
    {"type": "object", "properties": {"i": {"type": "integer", "enum": [100, 1.0, -3]},
                                      "s": {"type": "string", "minLength": 2, "maxLength": 3},
                                      "b": {"type": "boolean"}},
     "required": ["i", "s"], "additionalProperties": {"type": "null"}},
    # bounds, patterns and formats
    {"type": "object", "properties": {
        "qty": {"type": "integer", "minimum": 10, "maximum": 99},
        "price": {"type": "number", "exclusiveMinimum": -2.5, "maximum": 5.5},
        "neg": {"type": "number", "exclusiveMaximum": 0},
        "tiny": {"type": "number", "minimum": 1e-7, "maximum": 0.001},
        "sku": {"type": "string", "pattern": "^[A-Z]{2,3}-[0-9]{3}$"},
        "tag": {"type": "string", "pattern": "^(ab|c[de]*)x?$"}},
     "required": ["qty", "price", "neg", "tiny", "sku", "tag"], "additionalProperties": False},
    {"type": "object", "properties": {
        "day": {"type": "string", "format": "date"}, "id": {"type": "string", "format": "uuid"},
        "ip": {"type": "string", "format": "ipv4"}, "at": {"type": "string", "format": "date-time"},
        "t": {"type": "string", "format": "time"}},
     "required": ["day", "id", "ip", "at", "t"], "additionalProperties": False},
    {"type": "array", "items": {"anyOf": [{"type": "integer", "exclusiveMinimum": -10, "maximum": 10},
                                          {"type": "string", "pattern": "^[a-f0-9]{4}$"}]}, "minItems": 2, "maxItems": 3},
    {"type": "number", "minimum": -1.5, "exclusiveMaximum": 1e3},
]

PATTERNS = ["^[A-Z]{3}$", "^[0-9]{2,4}-[a-z]$", "^(yes|no)$", "^x+$", "^[^\"\\\\]{1,3}$", "z$", "^\\d\\.\\d$"]


def random_schema(rng, depth=0):
    """A random schema of the supported subset with a short valid instance (strings and arrays
    bounded, so that a random model's replies end)."""
    kinds = ["string", "integer", "number", "boolean", "null", "enum", "const"]
    if depth < 3:
        kinds += ["object", "object", "array", "anyOf"]
    kind = rng.choice(kinds)
    if kind == "string":
        if rng.randrange(3) == 0:
            return {"type": "string", "pattern": rng.choice(PATTERNS)}
        if rng.randrange(4) == 0:
            return {"type": "string", "format": rng.choice(["date", "uuid", "ipv4", "time", "date-time"])}
        lo = rng.randrange(3)
        return {"type": "string", "minLength": lo, "maxLength": lo + rng.randrange(5)}
    if kind in ("integer", "number") and rng.randrange(2):
        lo = rng.choice([rng.randrange(-100, 100), rng.randrange(-1000, 1000) / 8])
        out = {"type": kind, rng.choice(["minimum", "exclusiveMinimum"]): lo}
        if rng.randrange(3):
            hi_key, step = rng.choice(["maximum", "exclusiveMaximum"]), rng.choice([1, 2.5, 10, 1000])
            if kind == "integer" and hi_key == "exclusiveMaximum" and "exclusiveMinimum" in out and lo == int(lo):
                step = max(step, 2)  # (lo, lo + 1) holds no integer: the server rightly refuses that schema
            out[hi_key] = lo + step
        return out
    if kind in ("integer", "number", "boolean", "null"):
        return {"type": kind}
    values = [rng.choice([rng.randrange(-50, 50), rng.randrange(-500, 500) / 8, "v%d" % rng.randrange(9), True, None,
                          [rng.randrange(3)], {"k": rng.randrange(3)}]) for _ in range(1 + rng.randrange(4))]
    if kind == "enum":
        return {"enum": values}
    if kind == "const":
        return {"const": values[0]}
    if kind == "array":
        lo = rng.randrange(2)
        return {"type": "array", "items": random_schema(rng, depth + 1), "minItems": lo, "maxItems": lo + rng.randrange(3)}
    if kind == "anyOf":
        return {"anyOf": [random_schema(rng, depth + 1) for _ in range(2 + rng.randrange(2))]}
    props = {"p%d" % i: random_schema(rng, depth + 1) for i in range(1 + rng.randrange(4))}
    required = sorted(rng.sample(sorted(props), rng.randrange(len(props) + 1)))
    return {"type": "object", "properties": props, "required": required, "additionalProperties": False}


def rng_from_env():
    seed = int(os.environ.get("GPTOSS_TEST_SEED", time.time_ns() % 1000000))
    print("seed %d (GPTOSS_TEST_SEED)" % seed)
    return random.Random(seed)


def unique_keys(pairs):
    """json.loads keeps the last of duplicate keys; a value with duplicates is not valid here."""
    keys = [k for k, _ in pairs]
    assert len(set(keys)) == len(keys), keys
    return dict(pairs)


def check_value(text, schema):
    """The reply is a JSON text alone, without duplicate keys, valid against the schema
    (jsonschema's 2020-12 reading)."""
    assert text == text.strip(), repr(text[:80])
    # the 2020-12 format checker: a plain FormatChecker() takes draft 3's "time" (no offset)
    # where rfc3339-validator is not installed; date-time and time go unchecked then
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER).validate(
        json.loads(text, object_pairs_hook=unique_keys))


def fmt(schema, name="out"):
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}


def test_completions_valid(server):
    rng = rng_from_env()
    c = server.client()
    schemas = SCHEMAS + [random_schema(rng) for _ in range(8)]
    stopped = total = 0
    for i, schema in enumerate(schemas):
        for temperature, seed in ((0, 0), (1.0, rng.randrange(1000)), (1.3, rng.randrange(1000))):
            kw = dict(model=server.model, prompt="Reply in JSON:", max_tokens=120, temperature=temperature, seed=seed,
                      extra_body={"response_format": fmt(schema)})
            r = c.completions.create(**kw)
            text, finish = r.choices[0].text, r.choices[0].finish_reason
            total += 1
            if finish == "stop":
                check_value(text, schema)
                stopped += 1
            else:
                assert finish == "length" and r.usage.completion_tokens == 120, (i, schema, text)
            streamed = "".join(ch.choices[0].text for ch in c.completions.create(stream=True, **kw) if ch.choices)
            assert streamed == text, (i, schema)
    print("%d of %d replies stopped, every one valid" % (stopped, total))
    assert stopped >= total // 3, (stopped, total)


def test_completions_choices(server):
    """n = 2: each choice is its own value; both valid when they stop."""
    c = server.client()
    schema = SCHEMAS[0]
    r = c.completions.create(model=server.model, prompt="JSON:", max_tokens=120, temperature=1.0, seed=5, n=2,
                             extra_body={"response_format": fmt(schema)})
    assert len(r.choices) == 2 and r.choices[0].text != r.choices[1].text
    for ch in r.choices:
        if ch.finish_reason == "stop":
            check_value(ch.text, schema)


def test_unconstrained_differs(server):
    """Without the format the same requests are not valid values (the test can fail)."""
    c = server.client()
    schema = SCHEMAS[0]
    valid = 0
    for seed in range(4):
        text = c.completions.create(model=server.model, prompt="Reply in JSON:", max_tokens=60, temperature=1.0,
                                    seed=seed).choices[0].text
        try:
            check_value(text, schema)
            valid += 1
        except (ValueError, AssertionError, jsonschema.ValidationError):
            pass
    assert valid == 0


PROMPTS = ["JSON please", "hi", "x", "Give me JSON."]


def final_channel_seeds(c, model, schema, want, tries=480):
    """(prompt, seed) pairs whose chat reply under the header bias opens the final channel: its
    first content token is the schema's. The schema is part of the prompt (the developer
    message shows it to the model), so each schema has its own; prompts and seeds are
    searched in turn (a reply is a function of both)."""
    bias = {str(CHANNEL): 100, str(FINAL): 100, str(MESSAGE): 100}
    found = []
    for i in range(tries):
        text, seed = PROMPTS[i % len(PROMPTS)], i // len(PROMPTS)
        r = c.chat.completions.create(model=model, messages=[{"role": "user", "content": text}], max_tokens=4,
                                      temperature=1.0, seed=seed, logit_bias=bias, response_format=fmt(schema))
        if (r.choices[0].message.content or "").startswith("{"):  # the schemas here are objects
            found.append((text, seed))
            if len(found) == want:
                break
    return found, bias


def test_chat_final_message_valid(server):
    rng = rng_from_env()
    c = server.client()
    # schemas whose values need no free text (the bias favours "final" in strings)
    schemas = [SCHEMAS[3], {"type": "object", "properties": {"color": {"enum": ["red", "green", None]},
                                                             "size": {"enum": [1, 2.5, "XL"]}, "ok": {"type": "boolean"}},
                            "required": ["color", "size", "ok"], "additionalProperties": False}]
    schemas.append({"type": "object", "properties": {"v": {"enum": [rng.randrange(100), "w%d" % rng.randrange(9)]}},
                    "required": ["v"], "additionalProperties": False})
    checked = searched = 0
    for schema in schemas:
        pairs, bias = final_channel_seeds(c, server.model, schema, 2)
        searched += bool(pairs)
        for text, seed in pairs:
            kw = dict(model=server.model, messages=[{"role": "user", "content": text}], max_tokens=200,
                      temperature=1.0, seed=seed, logit_bias=bias, response_format=fmt(schema))
            r = c.chat.completions.create(**kw)
            content, finish = r.choices[0].message.content, r.choices[0].finish_reason
            assert content is not None and content.startswith("{"), (text, seed, content)
            if finish == "stop":
                check_value(content, schema)
                checked += 1
            streamed = "".join(ch.choices[0].delta.content or "" for ch in c.chat.completions.create(stream=True, **kw)
                               if ch.choices)
            assert streamed == content
    print(f"chat: final messages found for {searched} of {len(schemas)} schemas, {checked} stopped and valid")
    assert searched >= 2, f"the final channel opened for {searched} of {len(schemas)} schemas only"
    assert checked > 0, "no final message stopped"


def test_responses_echo_and_valid(server):
    c = server.client()
    schema = SCHEMAS[3]
    given = {"type": "json_schema", "name": "kind_xy", "schema": schema, "strict": True, "description": "x or y"}
    for stream in (False, True):
        if stream:
            events = list(c.responses.create(model=server.model, input="JSON please", max_output_tokens=60,
                                              text={"format": given}, stream=True))
            r = events[-1].response
        else:
            r = c.responses.create(model=server.model, input="JSON please", max_output_tokens=60, text={"format": given})
        f = r.text.format
        assert (f.type, f.name, f.schema_, f.strict, f.description) == ("json_schema", "kind_xy", schema, True, "x or y")
        if r.status == "completed" and r.output_text:
            check_value(r.output_text, schema)


def test_bounds_patterns_formats(server):
    """Each constrained schema: greedy and sampled replies stop and validate (bounds exactly,
    patterns by Python's re.search, date/uuid/ipv4 by the format checker); without the format
    the same requests do not (the test can fail)."""
    c = server.client()
    stopped = total = 0
    for schema in SCHEMAS[6:]:
        for seed in range(4):
            kw = dict(model=server.model, prompt="JSON:", max_tokens=200, temperature=1.0, seed=seed)
            r = c.completions.create(extra_body={"response_format": fmt(schema)}, **kw)
            total += 1
            if r.choices[0].finish_reason == "stop":
                check_value(r.choices[0].text, schema)
                stopped += 1
            free = c.completions.create(**kw).choices[0].text
            try:
                check_value(free, schema)
                free_valid = True
            except (ValueError, AssertionError, jsonschema.ValidationError):
                free_valid = False
            assert not free_valid, "an unconstrained reply validates: %r" % free[:80]
    print("%d of %d constrained replies stopped, every one valid" % (stopped, total))
    assert stopped >= total // 2, (stopped, total)
