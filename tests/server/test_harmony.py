"""The harmony layer (server/harmony.c, through tests/server/harmony_tool) against OpenAI's
openai-harmony package.

Rendering: requests (Chat Completions, Responses) and harmony conversations are drawn at
random from a fixed seed (printed in pytest's header; GPTOSS_TEST_SEED replays another);
each test builds the request and the equivalent openai-harmony Conversation from one
description, and the C prompt ids must equal render_conversation_for_completion's. The
harmony conversation that the C code builds is also rendered by openai-harmony (the same
ids again), so a difference points either at the mapping or at the renderer.

Parsing: completion token streams (openai-harmony's own renderings, the model's header
forms, cut streams, split UTF-8 characters, stray and invalid tokens) go through the C
parser and through StreamableParser token by token: errors, content deltas, the current
message's header and content, the messages; and through parse_messages_from_completion_tokens.
"""
import base64
import json
import os
import pathlib
import random
import subprocess
import tempfile

import pytest

from conftest import ROOT, SEED

from openai_harmony import (  # noqa: E402  (conftest sets TIKTOKEN_ENCODINGS_BASE first)
    Author,
    Conversation,
    DeveloperContent,
    HarmonyEncodingName,
    HarmonyError,
    Message,
    ReasoningEffort,
    Role,
    StreamableParser,
    StreamState,
    SystemContent,
    TextContent,
    ToolDescription,
    ToolNamespaceConfig,
    ChannelConfig,
    load_harmony_encoding,
)

TOOL = pathlib.Path(os.environ.get("GPTOSS_HARMONY_TOOL", ROOT / "build" / "tests" / "server" / "harmony_tool"))
ENC = load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)
EFFORTS = {"low": ReasoningEffort.LOW, "medium": ReasoningEffort.MEDIUM, "high": ReasoningEffort.HIGH}
IDENTITY = "You are ChatGPT, a large language model trained by OpenAI."

START, MESSAGE, END, RETURN, CALL, CHANNEL, CONSTRAIN = 200006, 200008, 200007, 200002, 200012, 200005, 200003


def run_tool(args, lines):
    """Runs harmony_tool on JSON lines; returns one parsed output per line."""
    assert TOOL.exists(), f"{TOOL} is not built (GPTOSS_CUDA=OFF bash tools/build.sh)"
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        for item in lines:
            f.write(json.dumps(item) + "\n")
        path = f.name
    try:
        proc = subprocess.run([str(TOOL), *args, "--lines", path], capture_output=True, text=True, timeout=600)
    finally:
        os.unlink(path)
    assert proc.returncode in (0, 1), f"harmony_tool failed ({proc.returncode}): {proc.stderr}"
    out = [json.loads(line) for line in proc.stdout.split("\n") if line]  # not splitlines: U+2028
    assert len(out) == len(lines), proc.stderr
    return out


def explain(want, got):
    """Where two id lists first differ, with the text around it."""
    i = next((k for k, (a, b) in enumerate(zip(want, got)) if a != b), min(len(want), len(got)))
    lo = max(0, i - 12)
    return (f"first difference at id {i} of {len(want)} (oracle) / {len(got)} (C):\n"
            f"  oracle: {ENC.decode(want[lo:i + 12])!r}\n  C:      {ENC.decode(got[lo:i + 12])!r}")


# ---- random content -------------------------------------------------------------------------

WORDS = ["the", "weather", "in", "Tokyo", "is", "résumé", "naïve", "日本語", "東京の天気", "😀", "👩‍👩‍👧‍👦",
         "مرحبا", "שלום", "Ελληνικά", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "e\u0301", "\u200b", "<|end|>", "<|start|>", "<|channel|>",
         "to=functions.x", '{"a": 1}', "```python\nprint(1)\n```", "42", "3.14159", "ÿ", "\u00a0", "\u3000",
         "Hello", "world", "I'll", "don't", "\\n", '"quoted"', "// comment", "ünïcödé", "café", "x" * 40]
SEPARATORS = [" ", " ", " ", "", "\n", "\n\n", ", ", "\t", "  ", "\r\n"]


def rand_text(rng, max_words=24, long_rate=0.04):
    r = rng.random()
    if r < 0.06:
        return ""
    n = rng.randint(300, 900) if r < 0.06 + long_rate else rng.randint(1, max_words)  # some long texts
    out = []
    for _ in range(n):
        out.append(rng.choice(WORDS))
        out.append(rng.choice(SEPARATORS))
    text = "".join(out)
    return text if rng.random() < 0.8 else " " + text + rng.choice(["", " ", "\n"])


NAMES = ["get_weather", "search_web", "lookup-user", "f", "calc_2", "send_email", "Z9", "a" * 64, "read_file",
         "list_items", "translate"]


def rand_scalar_default(rng, kind):
    if kind == "string":
        return rng.choice(["", "c", "celsius", "two words", "quote\"d", "日本", "line\nbreak"])
    if kind in ("number", "integer"):
        return rng.choice([0, 1, -3, 10, 2**40, 0.1, 2.5, -0.0, 100.0, 1e20, 1e-7, 123456.789, 1.5e-5, 3e16, 1e21])
    if kind == "boolean":
        return rng.choice([True, False])
    return rng.choice([None, [1, "a", None], {"k": [1.25, True]}, [], {}, "s", 7])


def rand_schema(rng, depth=0):
    """A JSON schema using what harmony's TypeScript writer reads (and some it ignores)."""
    kinds = ["string", "number", "integer", "boolean", "array", "object", "oneOf", "typelist", "any", "enum"]
    if depth >= 3:
        kinds = kinds[:4] + ["enum", "any"]
    kind = rng.choice(kinds)
    s = {}
    if kind in ("string", "number", "integer", "boolean"):
        s["type"] = kind
    elif kind == "enum":
        s["type"] = "string"
        s["enum"] = rng.sample(["c", "f", "kelvin", "a b", "日本", "x\"y", "1"], rng.randint(1, 4))
        if rng.random() < 0.3:
            s["enum"].append(rng.choice([3, None]))  # non-strings are left out
    elif kind == "array":
        s["type"] = "array"
        if rng.random() < 0.8:
            s["items"] = rand_schema(rng, depth + 1)
    elif kind == "object":
        s["type"] = "object"
        if rng.random() < 0.9:
            props = {}
            for name in rng.sample(["location", "unit", "days", "query", "filters", "id", "a", "zeta", "名前"],
                                   rng.randint(0, 4)):
                props[name] = rand_schema(rng, depth + 1)
            s["properties"] = props
            if props and rng.random() < 0.7:
                s["required"] = rng.sample(list(props), rng.randint(0, len(props)))
        if rng.random() < 0.2:
            s["additionalProperties"] = False
    elif kind == "oneOf":
        s["oneOf"] = [rand_schema(rng, depth + 1) for _ in range(rng.randint(1, 3))]
        for v in s["oneOf"]:
            if rng.random() < 0.3:
                v["nullable"] = True
            if rng.random() < 0.3:
                v["description"] = rand_text(rng, 4)
            if rng.random() < 0.3:
                v["default"] = rand_scalar_default(rng, v.get("type", "any"))
    elif kind == "typelist":
        s["type"] = rng.choice([["number", "string"], ["integer", "null"], ["string"], [1, "boolean"], []])
    if rng.random() < 0.4:
        s["description"] = rand_text(rng, 8)
    if rng.random() < 0.15:
        s["title"] = rand_text(rng, 3)
    if rng.random() < 0.15:
        s["examples"] = rng.choice([["a", "b"], [1, "x"], []])
    if rng.random() < 0.3:
        s["default"] = rand_scalar_default(rng, s.get("type") if isinstance(s.get("type"), str) else "any")
    if rng.random() < 0.15:
        s["nullable"] = rng.choice([True, False])
    return s


def rand_parameters(rng):
    r = rng.random()
    if r < 0.1:
        return None
    if r < 0.15:
        return {}
    if r < 0.2:
        return rand_schema(rng)
    return {"type": "object", **{k: v for k, v in rand_schema(rng, 0).items() if k != "type"},
            "properties": {k: rand_schema(rng, 1) for k in rng.sample(
                ["location", "unit", "days", "query", "options", "limit"], rng.randint(0, 4))}}


def rand_tools(rng, n):
    tools = []
    for name in rng.sample(NAMES, n):
        t = {"name": name}
        r = rng.random()
        if r < 0.7:
            t["description"] = rand_text(rng, 12)
        elif r < 0.8:
            t["description"] = None
        params = rand_parameters(rng)
        if params is not None or rng.random() < 0.5:
            t["parameters"] = params
        tools.append(t)
    return tools


def rand_arguments(rng):
    return json.dumps({"location": rand_text(rng, 3), "n": rng.randint(0, 9)}, ensure_ascii=rng.random() < 0.5)


def content_value(rng, text, part_type="text"):
    """A message content: the string, or text parts that concatenate to it."""
    if rng.random() < 0.7 or not text:
        return text
    cut = rng.randint(0, len(text))
    return [{"type": part_type, "text": text[:cut]}, {"type": part_type, "text": text[cut:]}]


def content_str(content):
    return content if isinstance(content, str) else "".join(p["text"] for p in content)


# ---- Chat Completions: the request and the equivalent harmony conversation --------------------


def rand_chat_request(rng, index):
    tools = rand_tools(rng, rng.choice([0, 0, 1, 2, 3, 4]))
    req = {"model": "gpt-oss", "messages": []}
    if tools:
        req["tools"] = [{"type": "function", "function": t} for t in tools]
        choice = rng.choice([None, "auto", "auto", "none", "required", "named"])
        if choice == "named":
            choice = {"type": "function", "function": {"name": rng.choice(tools)["name"]}}
        if choice is not None:
            req["tool_choice"] = choice
    effort = [None, "low", "medium", "high"][index % 4]
    if effort:
        req["reasoning_effort"] = effort
    msgs = req["messages"]
    for role in rng.choice([[], ["system"], ["developer"], ["system", "developer"], ["developer", "system"]]):
        msgs.append({"role": role, "content": content_value(rng, rand_text(rng))})
    call_names = [t["name"] for t in tools] or NAMES
    next_id = 0
    for turn in range(rng.randint(1, 4)):
        if rng.random() < 0.1:
            msgs.append({"role": rng.choice(["system", "developer"]), "content": rand_text(rng)})
        msgs.append({"role": "user", "content": content_value(rng, rand_text(rng))})
        if turn > 0 and rng.random() < 0.15:  # two user messages in a row
            msgs.append({"role": "user", "content": rand_text(rng)})
        last = rng.random() < 0.3
        if last:
            break
        # tool rounds, then an answer
        for _ in range(rng.choice([0, 0, 1, 2])):
            a = {"role": "assistant"}
            if rng.random() < 0.6:
                a["reasoning_content"] = rand_text(rng)
            if rng.random() < 0.3:
                a["content"] = rng.choice([None, "", rand_text(rng)])
            calls = []
            for _ in range(rng.randint(1, 3)):
                calls.append({"id": f"call_{next_id}", "type": "function",
                              "function": {"name": rng.choice(call_names), "arguments": rand_arguments(rng)}})
                next_id += 1
            a["tool_calls"] = calls
            msgs.append(a)
            results = list(calls)
            rng.shuffle(results)
            for c in results:
                msgs.append({"role": "tool", "tool_call_id": c["id"], "content": content_value(rng, rand_text(rng))})
        if rng.random() < 0.25:
            break  # the model continues after the tool results
        a = {"role": "assistant", "content": content_value(rng, rand_text(rng))}
        if rng.random() < 0.5:
            a["reasoning_content"] = rand_text(rng) if rng.random() < 0.9 else ""
        if rng.random() < 0.1:
            a["tool_calls"] = []
        msgs.append(a)
    return req


def system_message(effort, opts):
    sys = SystemContent.new().with_reasoning_effort(EFFORTS[effort])
    sys.model_identity = opts["identity"]
    sys.knowledge_cutoff = opts["cutoff"]
    if opts["date"] is not None:
        sys = sys.with_conversation_start_date(opts["date"])
    return Message.from_role_and_content(Role.SYSTEM, sys)


def prologue(msgs, effort, instructions, tools, opts):
    out = [system_message(effort, opts)]
    if instructions or tools:
        dev = DeveloperContent.new()
        if instructions:
            dev = dev.with_instructions("\n\n".join(instructions))
        if tools:
            dev = dev.with_function_tools(tools)
        out.append(Message.from_role_and_content(Role.DEVELOPER, dev))
    return out


def select_tools(tools, choice, named):
    descs = [ToolDescription.new(t["name"], t.get("description") or "", t.get("parameters")) for t in tools]
    if choice == "none":
        return []
    if named is not None:
        return [d for d in descs if d.name == named]
    return descs


def tool_call_message(name, arguments):
    return (Message.from_role_and_content(Role.ASSISTANT, arguments).with_channel("commentary")
            .with_recipient(f"functions.{name}").with_content_type("<|constrain|>json"))


def tool_result_message(name, text):
    return (Message.from_author_and_content(Author.new(Role.TOOL, f"functions.{name}"), text)
            .with_recipient("assistant").with_channel("commentary"))


def developer_instructions(text):
    return Message.from_role_and_content(Role.DEVELOPER, DeveloperContent.new().with_instructions(text))


def chat_to_harmony(req, opts):
    """The mapping documented in server/harmony.h, written with openai-harmony's objects."""
    choice = req.get("tool_choice")
    named = choice["function"]["name"] if isinstance(choice, dict) else None
    tools = select_tools([t["function"] for t in req.get("tools") or []], choice, named)
    msgs = req["messages"]
    i, instructions = 0, []
    while i < len(msgs) and msgs[i]["role"] in ("system", "developer"):
        instructions.append(content_str(msgs[i]["content"]))
        i += 1
    out = prologue(msgs, req.get("reasoning_effort") or opts["effort"], instructions, tools, opts)
    calls = {}
    for m in msgs[i:]:
        role = m["role"]
        if role in ("system", "developer"):
            out.append(developer_instructions(content_str(m["content"])))
        elif role == "user":
            out.append(Message.from_role_and_content(Role.USER, content_str(m["content"])))
        elif role == "tool":
            out.append(tool_result_message(calls[m["tool_call_id"]], content_str(m["content"])))
        else:
            tool_calls = m.get("tool_calls") or []
            if m.get("reasoning_content"):
                out.append(Message.from_role_and_content(Role.ASSISTANT, m["reasoning_content"]).with_channel("analysis"))
            text = None if m.get("content") is None else content_str(m["content"])
            if text is not None and (not tool_calls or text):
                out.append(Message.from_role_and_content(Role.ASSISTANT, text)
                           .with_channel("commentary" if tool_calls else "final"))
            for c in tool_calls:
                calls[c["id"]] = c["function"]["name"]
                out.append(tool_call_message(c["function"]["name"], c["function"]["arguments"]))
    return Conversation.from_messages(out)


# ---- Responses API --------------------------------------------------------------------------


def rand_responses_request(rng, index):
    tools = rand_tools(rng, rng.choice([0, 1, 2, 3]))
    req = {"model": "gpt-oss"}
    if tools:
        req["tools"] = [{"type": "function", **t} for t in tools]
        choice = rng.choice([None, "auto", "none", "required", "named"])
        if choice == "named":
            choice = {"type": "function", "name": rng.choice(tools)["name"]}
        if choice is not None:
            req["tool_choice"] = choice
    effort = [None, "low", "medium", "high"][index % 4]
    if effort:
        req["reasoning"] = {"effort": effort, "summary": "auto"}
    elif rng.random() < 0.3:
        req["reasoning"] = rng.choice([None, {}, {"effort": None}])
    if rng.random() < 0.5:
        req["instructions"] = rand_text(rng)
    if rng.random() < 0.2:
        req["input"] = rand_text(rng)
        return req
    items = []
    for role in rng.choice([[], ["system"], ["developer", "system"]]):
        items.append({"type": "message", "role": role, "content": content_value(rng, rand_text(rng), "input_text")})
    names = [t["name"] for t in tools] or NAMES
    next_id = 0
    for _ in range(rng.randint(1, 3)):
        item = {"role": "user", "content": content_value(rng, rand_text(rng), "input_text")}
        if rng.random() < 0.7:
            item["type"] = "message"
        items.append(item)
        if rng.random() < 0.2:
            items.append({"type": "message", "role": rng.choice(["system", "developer"]), "content": rand_text(rng)})
        for _ in range(rng.choice([0, 1])):
            if rng.random() < 0.6:
                items.append({"type": "reasoning", "id": "rs_1", "summary": [],
                              "content": [{"type": "reasoning_text", "text": rand_text(rng)}]})
            if rng.random() < 0.2:
                items.append({"type": "reasoning", "id": "rs_2", "summary": [{"type": "summary_text", "text": "s"}]})
            call_id = f"fc_{next_id}"
            next_id += 1
            items.append({"type": "function_call", "call_id": call_id, "name": rng.choice(names),
                          "arguments": rand_arguments(rng)})
            items.append({"type": "function_call_output", "call_id": call_id,
                          "output": content_value(rng, rand_text(rng), "input_text")})
        if rng.random() < 0.7:
            items.append({"type": "message", "role": "assistant",
                          "content": content_value(rng, rand_text(rng), "output_text")})
    req["input"] = items
    return req


def responses_to_harmony(req, opts):
    choice = req.get("tool_choice")
    named = choice["name"] if isinstance(choice, dict) else None
    tools = select_tools(req.get("tools") or [], choice, named)
    effort = (req.get("reasoning") or {}).get("effort") or opts["effort"]
    instructions = [req["instructions"]] if req.get("instructions") is not None else []
    items = [{"type": "message", "role": "user", "content": req["input"]}] if isinstance(req["input"], str) \
        else req["input"]
    i = 0
    if not isinstance(req["input"], str):
        while i < len(items) and items[i].get("type", "message") == "message" and \
                items[i]["role"] in ("system", "developer"):
            instructions.append(content_str(items[i]["content"]))
            i += 1
    out = prologue(items, effort, instructions, tools, opts)
    calls = {}
    for item in items[i:]:
        kind = item.get("type", "message")
        if kind == "message":
            text = content_str(item["content"])
            if item["role"] == "user":
                out.append(Message.from_role_and_content(Role.USER, text))
            elif item["role"] == "assistant":
                out.append(Message.from_role_and_content(Role.ASSISTANT, text).with_channel("final"))
            else:
                out.append(developer_instructions(text))
        elif kind == "reasoning":
            text = "".join(p["text"] for p in item.get("content") or [])
            if text:
                out.append(Message.from_role_and_content(Role.ASSISTANT, text).with_channel("analysis"))
        elif kind == "function_call":
            calls[item["call_id"]] = item["name"]
            out.append(tool_call_message(item["name"], item["arguments"]))
        else:
            out.append(tool_result_message(calls[item["call_id"]], content_str(item["output"])))
    return Conversation.from_messages(out)


# ---- harmony conversations directly -------------------------------------------------------


def rand_namespaces(rng):
    spaces = {}
    for ns in rng.sample(["functions", "browser", "python", "zeta", "a_ns"], rng.randint(1, 3)):
        tools = [ToolDescription.new(t["name"], t.get("description") or "", t.get("parameters"))
                 for t in rand_tools(rng, rng.choice([0, 1, 2]))]
        desc = rng.choice([None, rand_text(rng, 10), "line one\nline two\r\nline three\n", ""])
        spaces[ns] = ToolNamespaceConfig(name=rng.choice([ns, ns, "other"]), description=desc, tools=tools)
    return spaces


def rand_conversation(rng):
    msgs = []
    if rng.random() < 0.9:
        sys = SystemContent.new()
        if rng.random() < 0.3:
            sys.model_identity = rng.choice([None, "", "You are a helpful assistant.", rand_text(rng, 6)])
        if rng.random() < 0.3:
            sys.reasoning_effort = rng.choice([None, ReasoningEffort.LOW, ReasoningEffort.HIGH])
        if rng.random() < 0.5:
            sys.conversation_start_date = rng.choice(["2025-08-05", "", "tomorrow"])
        if rng.random() < 0.3:
            sys.knowledge_cutoff = rng.choice([None, "2023-10"])
        if rng.random() < 0.3:
            sys.channel_config = rng.choice([None, ChannelConfig(valid_channels=[], channel_required=True),
                                             ChannelConfig(valid_channels=["analysis", "final"], channel_required=False)])
        if rng.random() < 0.25:
            sys.tools = rand_namespaces(rng)
        msgs.append(Message.from_role_and_content(Role.SYSTEM, sys))
    if rng.random() < 0.7:
        dev = DeveloperContent.new()
        if rng.random() < 0.7:
            dev = dev.with_instructions(rand_text(rng))
        if rng.random() < 0.7:
            dev.tools = rand_namespaces(rng)
        msgs.append(Message.from_role_and_content(Role.DEVELOPER, dev))
    for _ in range(rng.randint(1, 8)):
        role = rng.choice([Role.USER, Role.ASSISTANT, Role.ASSISTANT, Role.TOOL])
        name = rng.choice([None, None, "functions.get_weather", "browser.search", "alice", "日本"])
        if role == Role.TOOL and name is None and rng.random() < 0.9:
            name = "functions.f"
        m = Message(author=Author(role=role, name=name),
                    content=[TextContent(text=rand_text(rng)) for _ in range(rng.choice([1, 1, 1, 2, 0]))])
        if rng.random() < 0.6:
            m = m.with_channel(rng.choice(["analysis", "commentary", "final", "other"]))
        if rng.random() < 0.3:
            m = m.with_recipient(rng.choice(["functions.get_weather", "all", "assistant", "python", "x y"]))
        if rng.random() < 0.25:
            m = m.with_content_type(rng.choice(["<|constrain|>json", "<|constrain|> json", "<|constrain|>", "json",
                                                "code"]))
        msgs.append(m)
    return Conversation.from_messages(msgs)


# ---- rendering tests ------------------------------------------------------------------------

OPTION_SETS = [
    {"args": [], "identity": IDENTITY, "cutoff": "2024-06", "date": None, "effort": "medium"},
    {"args": ["--date", "2025-08-05", "--effort", "high"], "identity": IDENTITY, "cutoff": "2024-06",
     "date": "2025-08-05", "effort": "high"},
    {"args": ["--identity", "You are a helpful assistant.", "--no-cutoff", "--date", "2026-01-31", "--effort", "low"],
     "identity": "You are a helpful assistant.", "cutoff": None, "date": "2026-01-31", "effort": "low"},
    {"args": ["--no-identity"], "identity": None, "cutoff": "2024-06", "date": None, "effort": "medium"},
]


def check_rendered(api, requests, to_harmony, seed_note):
    failures = []
    count = 0
    for k, opts in enumerate(OPTION_SETS):
        reqs = requests[k::len(OPTION_SETS)]
        outs = run_tool(["render", "--api", api, *opts["args"]], reqs)
        for req, out in zip(reqs, outs):
            count += 1
            assert "error" not in out, f"{seed_note}: C refused a valid request: {out['error']}\n{json.dumps(req)[:2000]}"
            want = ENC.render_conversation_for_completion(to_harmony(req, opts), Role.ASSISTANT)
            # the conversation the C code built, rendered by openai-harmony
            again = ENC.render_conversation_for_completion(Conversation.from_json(json.dumps(out["conversation"])),
                                                           Role.ASSISTANT)
            if out["tokens"] != want or again != want:
                failures.append(f"{explain(want, out['tokens'])}\n  (oracle on C's conversation equal: {again == want})"
                                f"\n  request: {json.dumps(req, ensure_ascii=False)[:1500]}")
    assert not failures, f"{seed_note}: {len(failures)} of {count} differ:\n" + "\n".join(failures[:3])
    return count


def test_render_chat_completions():
    rng = random.Random(SEED)
    requests = [rand_chat_request(rng, i) for i in range(80)]
    n = check_rendered("chat", requests, chat_to_harmony, f"seed {SEED}")
    assert n == 80
    # what the draw must contain for the test to mean something
    msgs = [m for r in requests for m in r["messages"]]
    assert {r.get("reasoning_effort") for r in requests} == {None, "low", "medium", "high"}
    assert sum(1 for r in requests if r.get("tools")) > 30
    assert sum(1 for m in msgs if m.get("tool_calls")) > 20 and sum(1 for m in msgs if m["role"] == "tool") > 30
    assert sum(1 for m in msgs if m.get("reasoning_content")) > 20
    assert sum(1 for r in requests if sum(m["role"] == "assistant" for m in r["messages"]) > 1) > 10
    assert sum(1 for m in msgs if m.get("content") == "") > 5
    assert sum(1 for m in msgs if isinstance(m.get("content"), str) and len(m["content"]) > 2000) > 5


def test_render_chat_handwritten():
    """Cases named after what they pin down."""
    weather = {"type": "function", "function": {
        "name": "get_weather", "description": "Gets the weather.\nUse it for any city.",
        "parameters": {"type": "object", "properties": {
            "location": {"type": "string", "description": "City"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"},
            "days": {"type": "integer", "default": 1, "minimum": 1}}, "required": ["location"]}}}
    cases = [
        # auto-drop: the reasoning of an answered turn disappears, the ongoing one stays
        {"messages": [{"role": "user", "content": "2+2?"},
                      {"role": "assistant", "reasoning_content": "easy", "content": "4"},
                      {"role": "user", "content": "3+5?"}]},
        {"messages": [{"role": "user", "content": "weather?"},
                      {"role": "assistant", "reasoning_content": "use the tool", "tool_calls": [
                          {"id": "a", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
                      {"role": "tool", "tool_call_id": "a", "content": "sunny"}], "tools": [weather]},
        # analysis between two finals is kept (openai-harmony drops only before the first final)
        {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "A"},
                      {"role": "user", "content": "b"},
                      {"role": "assistant", "reasoning_content": "think b", "content": "B"},
                      {"role": "user", "content": "c"}]},
        # empty everything
        {"messages": [{"role": "system", "content": ""}, {"role": "user", "content": ""},
                      {"role": "assistant", "content": ""}, {"role": "user", "content": []}]},
        # a preamble with the tool calls, two calls answered in the other order
        {"messages": [{"role": "user", "content": "x"},
                      {"role": "assistant", "content": "Let me check.", "tool_calls": [
                          {"id": "1", "type": "function", "function": {"name": "get_weather", "arguments": '{"location":"Paris"}'}},
                          {"id": "2", "type": "function", "function": {"name": "get_weather", "arguments": '{"location":"Oslo"}'}}]},
                      {"role": "tool", "tool_call_id": "2", "content": [{"type": "text", "text": "cold"}]},
                      {"role": "tool", "tool_call_id": "1", "content": "warm"}],
         "tools": [weather], "tool_choice": "required", "reasoning_effort": "low"},
        {"messages": [{"role": "developer", "content": "Answer in French."}, {"role": "user", "content": "hi"}],
         "tools": [weather], "tool_choice": "none"},
        {"messages": [{"role": "user", "content": "hi"}], "tools": [weather],
         "tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
        {"messages": [{"role": "user", "content": "hi"}], "reasoning_effort": None, "tools": None, "tool_choice": None},
    ]
    n = check_rendered("chat", cases * len(OPTION_SETS), chat_to_harmony, "handwritten")
    assert n == len(cases) * len(OPTION_SETS)


def test_render_tool_schemas():
    """Tool signatures: one random schema per request, every shape harmony's writer reads."""
    rng = random.Random(SEED + 1)
    requests = []
    for i in range(80):
        params = rand_parameters(rng)
        fn = {"name": rng.choice(NAMES), "description": rand_text(rng, 6)}
        if params is not None:
            fn["parameters"] = params
        requests.append({"messages": [{"role": "user", "content": "go"}], "tools": [{"type": "function", "function": fn}]})
    assert check_rendered("chat", requests, chat_to_harmony, f"seed {SEED + 1}") == 80


def test_render_responses():
    rng = random.Random(SEED + 2)
    requests = [rand_responses_request(rng, i) for i in range(48)]
    assert check_rendered("responses", requests, responses_to_harmony, f"seed {SEED + 2}") == 48


def test_render_response_format():
    """A json_schema response format: "# Response Formats" at the end of the developer message
    (the harmony guide's structured output; openai-harmony has no field for it, so the oracle
    is its rendering of the request without the format, with the section put in by hand)."""
    schema = {"type": "object", "properties": {"items": {"type": "array", "description": "entries on the list",
              "items": {"type": "string"}}, "note": {"enum": ["a", "日本", 2, 0.5, None]}},
              "required": ["items"], "additionalProperties": False}
    weather = {"type": "function", "function": {"name": "get_weather", "description": "Gets the weather.",
               "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}
    fmt = {"name": "shopping_list", "schema": schema}
    cases = [  # (chat request, its format's description)
        ({"messages": [{"role": "user", "content": "coffee, soda, eggs"}]}, None),
        ({"messages": [{"role": "system", "content": "You are a shopping assistant."},
                       {"role": "user", "content": "coffee"}]}, "The list.\nOne item an entry."),
        ({"messages": [{"role": "user", "content": "hi"}], "tools": [weather]}, ""),
        ({"messages": [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "hi"}],
          "tools": [weather]}, "What to buy"),
    ]
    requests = []
    for req, desc in cases:
        js = dict(fmt, **({"description": desc} if desc is not None else {}))
        requests.append(dict(req, response_format={"type": "json_schema", "json_schema": js}))
    outs = run_tool(["render", "--api", "chat"], requests)
    # the Responses API's flat text.format, with instructions
    rreq = {"input": "coffee", "instructions": "Shop.", "text": {"format": dict(fmt, type="json_schema")}}
    routs = run_tool(["render", "--api", "responses"], [rreq])
    opts = OPTION_SETS[0]
    checked = 0
    for (req, desc), out in list(zip(cases, outs)) + [((dict(rreq, text=None), None), routs[0])]:
        assert "error" not in out, out
        plain = ENC.decode(ENC.render_conversation_for_completion(
            (chat_to_harmony if "messages" in req else responses_to_harmony)(req, opts), Role.ASSISTANT))
        section = "# Response Formats\n\n## shopping_list\n\n"
        if desc:
            section += "".join("// " + line + "\n" for line in desc.split("\n"))
        section += json.dumps(schema, separators=(",", ":"), ensure_ascii=False)
        dev = plain.find("<|start|>developer<|message|>")
        if dev < 0:  # no instructions or tools: a developer message of the section alone
            at = plain.index("<|end|>") + len("<|end|>")
            want = plain[:at] + "<|start|>developer<|message|>" + section + "<|end|>" + plain[at:]
        else:
            at = plain.index("<|end|>", dev)
            want = plain[:at] + "\n\n" + section + plain[at:]
        got = ENC.decode(out["tokens"])
        assert got == want, f"C:\n{got!r}\nwant:\n{want!r}"
        checked += 1
    assert checked == len(cases) + 1


def test_render_harmony_conversations():
    """openai-harmony's own Conversation JSON, with the header fields and contents that
    requests never produce (names, recipients, content types, tool namespaces, channel
    configurations); both sides must also refuse the same conversations."""
    rng = random.Random(SEED + 3)
    convs = [rand_conversation(rng) for _ in range(80)]
    outs = run_tool(["render", "--api", "conversation"], [json.loads(c.to_json()) for c in convs])
    failures, refused = [], 0
    for conv, out in zip(convs, outs):
        try:
            want = ENC.render_conversation_for_completion(conv, Role.ASSISTANT)
        except HarmonyError as e:
            refused += 1
            if "error" not in out:
                failures.append(f"oracle refused ({e}) but C rendered: {conv.to_json()[:800]}")
            continue
        if out.get("tokens") != want:
            failures.append(f"{explain(want, out.get('tokens', []))}\n  {out.get('error')}\n  {conv.to_json()[:1500]}")
    assert not failures, f"seed {SEED + 3}: {len(failures)} of {len(convs)} differ:\n" + "\n".join(failures[:3])
    assert refused < len(convs) // 4, f"seed {SEED + 3}: {refused} refused: the generator should make valid ones"


# ---- errors ---------------------------------------------------------------------------------

GOOD_TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
ERROR_CASES = [
    # (api, request, status, param)
    ("chat", [], "invalid_argument", ""),
    ("chat", {"model": "x"}, "invalid_argument", "messages"),
    ("chat", {"messages": []}, "invalid_argument", "messages"),
    ("chat", {"messages": ["hi"]}, "invalid_argument", "messages[0]"),
    ("chat", {"messages": [{"role": "wizard", "content": "x"}]}, "invalid_argument", "messages[0].role"),
    ("chat", {"messages": [{"content": "x"}]}, "invalid_argument", "messages[0].role"),
    ("chat", {"messages": [{"role": "user", "content": 3}]}, "invalid_argument", "messages[0].content"),
    ("chat", {"messages": [{"role": "user"}]}, "invalid_argument", "messages[0].content"),
    ("chat", {"messages": [{"role": "user", "content": [{"type": "text", "text": "a"},
                                                         {"type": "image_url", "image_url": {"url": "u"}}]}]},
     "unsupported_argument", "messages[0].content[1].type"),
    ("chat", {"messages": [{"role": "user", "content": [{"type": "text"}]}]}, "invalid_argument",
     "messages[0].content[0].text"),
    ("chat", {"messages": [{"role": "user", "content": "x"}, {"role": "assistant"}]}, "invalid_argument",
     "messages[1].content"),
    ("chat", {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "reasoning_content": 5}]},
     "invalid_argument", "messages[1].reasoning_content"),
    ("chat", {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [
        {"id": "a", "type": "function", "function": {"name": "f", "arguments": {"x": 1}}}]}]},
     "invalid_argument", "messages[1].tool_calls[0].function.arguments"),
    ("chat", {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [
        {"id": "a", "type": "function", "function": {"name": "bad name", "arguments": "{}"}}]}]},
     "invalid_argument", "messages[1].tool_calls[0].function.name"),
    ("chat", {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [
        {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "a", "content": "ok"},
        {"role": "tool", "tool_call_id": "b", "content": "?"}]}, "invalid_argument", "messages[3].tool_call_id"),
    ("chat", {"messages": [{"role": "tool", "content": "?"}]}, "invalid_argument", "messages[0].tool_call_id"),
    ("chat", {"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "retrieval"}]},
     "unsupported_argument", "tools[0].type"),
    ("chat", {"messages": [{"role": "user", "content": "x"}], "tools": {"f": 1}}, "invalid_argument", "tools"),
    ("chat", {"messages": [{"role": "user", "content": "x"}],
              "tools": [{"type": "function", "function": {"name": "f<|end|>"}}]},
     "invalid_argument", "tools[0].function.name"),
    ("chat", {"messages": [{"role": "user", "content": "x"}],
              "tools": [{"type": "function", "function": {"name": "f", "parameters": "object"}}]},
     "invalid_argument", "tools[0].function.parameters"),
    ("chat", {"messages": [{"role": "user", "content": "x"}], "tools": [GOOD_TOOL, GOOD_TOOL]},
     "invalid_argument", "tools[1].function.name"),
    ("chat", {"messages": [{"role": "user", "content": "x"}],
              "tools": [{"type": "function", "function": {"name": "f", "parameters": {"deep": json.loads("[" * 130 + "]" * 130)}}}]},
     "invalid_argument", "tools[0].function.parameters"),
    ("chat", {"messages": [{"role": "user", "content": "x"}], "tools": [GOOD_TOOL],
              "tool_choice": {"type": "function", "function": {"name": "g"}}}, "invalid_argument",
     "tool_choice.function.name"),
    ("chat", {"messages": [{"role": "user", "content": "x"}], "tool_choice": "sometimes"}, "invalid_argument",
     "tool_choice"),
    ("chat", {"messages": [{"role": "user", "content": "x"}], "reasoning_effort": "max"}, "invalid_argument",
     "reasoning_effort"),
    ("responses", {"model": "x"}, "invalid_argument", "input"),
    ("responses", {"input": 7}, "invalid_argument", "input"),
    ("responses", {"input": "hi", "instructions": 3}, "invalid_argument", "instructions"),
    ("responses", {"input": "hi", "reasoning": {"effort": "extreme"}}, "invalid_argument", "reasoning.effort"),
    ("responses", {"input": "hi", "tools": [{"type": "web_search_preview"}]}, "unsupported_argument", "tools[0].type"),
    ("responses", {"input": [{"type": "web_search_call", "id": "w"}]}, "unsupported_argument", "input[0].type"),
    ("responses", {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "u"}]}]},
     "unsupported_argument", "input[0].content[0].type"),
    ("responses", {"input": [{"type": "message", "role": "tool", "content": "x"}]}, "invalid_argument",
     "input[0].role"),
    ("responses", {"input": [{"type": "function_call", "call_id": "a", "name": "f", "arguments": "{}"},
                             {"type": "function_call_output", "call_id": "b", "output": "x"}]},
     "invalid_argument", "input[1].call_id"),
    ("responses", {"input": "hi", "tools": [GOOD_TOOL["function"] | {"type": "function"}],
                   "tool_choice": {"type": "function", "name": "nope"}}, "invalid_argument", "tool_choice.name"),
    ("conversation", {"messages": {}}, "invalid_argument", "messages"),
    ("conversation", {"messages": [{"role": "tool", "content": "x"}]}, "invalid_argument", "messages[0].name"),
    ("conversation", {"messages": [{"role": "user", "content": [{"type": "image"}]}]}, "invalid_argument",
     "messages[0].content[0].type"),
    ("conversation", {"messages": [{"role": "user", "content": [{"type": "system_content"}]}]}, "invalid_argument",
     "messages[0].content[0]"),
    ("conversation", {"messages": [{"role": "system", "content": [{"type": "system_content",
                                                                   "reasoning_effort": "low"}]}]},
     "invalid_argument", "messages[0].content[0].reasoning_effort"),
    ("conversation", {"messages": [{"role": "developer", "content": [{"type": "developer_content", "tools": {
        "functions": {"name": "functions", "tools": [{"name": "f", "description": "",
                                                      "parameters": json.loads('{"type":"array","items":' * 130 + '{}' + '}' * 130)}]}}}]}]},
     "invalid_argument", "messages[0].content[0].tools.functions.tools[0].parameters"),
]


def test_errors_name_the_json_path():
    by_api = {}
    for api, req, status, param in ERROR_CASES:
        by_api.setdefault(api, []).append((req, status, param))
    checked = 0
    for api, cases in by_api.items():
        outs = run_tool(["render", "--api", api], [c[0] for c in cases])
        for (req, status, param), out in zip(cases, outs):
            assert "error" in out, f"{api} accepted {json.dumps(req)[:300]}"
            err = out["error"]
            assert (err["status"], err["param"]) == (status, param), f"{api} {json.dumps(req)[:300]}: {err}"
            assert err["message"].startswith(param), err
            checked += 1
    assert checked == len(ERROR_CASES)


# ---- parsing --------------------------------------------------------------------------------


def byte_tokens():
    """The id of each single-byte token (o200k has one per byte value)."""
    ids = {}
    with open(ROOT / "data" / "o200k_base.tiktoken", "rb") as f:
        for line in f:
            b64, rank = line.split()
            raw = base64.b64decode(b64)
            if len(raw) == 1:
                ids[raw[0]] = int(rank)
    assert len(ids) == 256
    return ids


BYTE_TOKEN = byte_tokens()


def enc_text(text):
    return ENC.encode(text, disallowed_special=())


def split_chars(rng, text):
    """Ids for text where some multi-byte characters are given byte by byte."""
    out = []
    for ch in text:
        raw = ch.encode()
        if len(raw) > 1 and rng.random() < 0.5:
            out.extend(BYTE_TOKEN[b] for b in raw)
        else:
            out.extend(enc_text(ch))
    return out


def rand_assistant_tokens(rng, last):
    """One assistant message as openai-harmony renders it or as the model writes it."""
    channel = rng.choice(["analysis", "commentary", "final", "final", None])
    recipient = rng.choice([None, None, None, "functions.get_weather", "browser.search", "python"])
    ctype = rng.choice([None, None, "<|constrain|>json", "json"])
    text = rand_text(rng, long_rate=0.005)  # the oracle's parser costs O(length) per token here
    body = split_chars(rng, text) if rng.random() < 0.3 else enc_text(text)
    stop = END if not last else rng.choice([END, RETURN, CALL])
    if rng.random() < 0.5:
        m = Message.from_role_and_content(Role.ASSISTANT, text)
        if channel:
            m = m.with_channel(channel)
        if recipient:
            m = m.with_recipient(recipient)
        if ctype:
            m = m.with_content_type(ctype)
        ids = ENC.render(m)
        header = ids[:ids.index(MESSAGE) + 1]
    else:  # the model's own order: channel, then recipient, then the constrain marker
        header = [START] + enc_text("assistant")
        if channel:
            header += [CHANNEL] + enc_text(channel)
        tail = ""
        if recipient:
            tail += f" to={recipient}"
        if ctype == "<|constrain|>json":
            header += enc_text(tail + " ") + [CONSTRAIN] + enc_text("json")
        else:
            header += enc_text(tail + (f" {ctype}" if ctype else ""))
        header += [MESSAGE]
    return header + body + [stop]


NOISE = [START, MESSAGE, END, RETURN, CALL, CHANNEL, CONSTRAIN, 199998, 199999, 200000, 200001, 200004, 200013,
         200014, 201088, 201089, 250000, 2**32 - 1] + [BYTE_TOKEN[b] for b in (0xC3, 0xA9, 0xE2, 0x82, 0xAC, 0xF0,
                                                                                0x9F, 0x98, 0x80, 0xFF, 0xED, 0xA0)]
NOISE_TEXT = ["assistant", "user", "tool", "developer", " to=functions.f", "analysis", "final", " ", "\n", "json",
              "commentary", "functions.f", "<|channel|>", "\u00a0", "\u3000x", "\t", "\x0b", "\x0c", "\u2028"]


def rand_stream(rng):
    """(ids, role): assistant messages in a row, then maybe cut, mutated or noisy."""
    ids = []
    n = rng.randint(1, 4)
    for k in range(n):
        ids += rand_assistant_tokens(rng, k == n - 1)
    role = None
    prefix = [START] + enc_text("assistant")
    if rng.random() < 0.6 and ids[:len(prefix)] == prefix:
        ids = ids[len(prefix):]
        role = "assistant"
    r = rng.random()
    if r < 0.3:
        ids = ids[:rng.randint(0, len(ids))]  # cut anywhere
    elif r < 0.55:
        for _ in range(rng.randint(1, 4)):  # stray tokens
            pos = rng.randint(0, len(ids))
            extra = [rng.choice(NOISE)] if rng.random() < 0.6 else enc_text(rng.choice(NOISE_TEXT))
            ids[pos:pos] = extra
    elif r < 0.65:
        ids = [rng.choice(NOISE) if rng.random() < 0.5 else rng.choice(enc_text(rng.choice(NOISE_TEXT)))
               for _ in range(rng.randint(1, 40))]
        role = rng.choice([None, "assistant", "user", "tool"])
    return ids, role


HANDWRITTEN_STREAMS = [
    # the forms of harmony's documentation
    (ENC.encode("<|channel|>analysis<|message|>User asks: 2+2. Simple.<|end|><|start|>assistant<|channel|>final"
                "<|message|>4<|return|>", allowed_special="all"), "assistant"),
    (ENC.encode("<|channel|>analysis<|message|>Need to use function get_weather.<|end|><|start|>assistant"
                "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>"
                '{"location":"San Francisco"}<|call|>', allowed_special="all"), "assistant"),
    (ENC.encode("<|start|>assistant to=functions.get_weather<|channel|>commentary <|constrain|>json<|message|>"
                "{}<|call|>", allowed_special="all"), None),
    (ENC.encode(" to=functions.f<|constrain|>json<|channel|>commentary<|message|>{}<|call|>", allowed_special="all"),
     "assistant"),
    (ENC.encode("<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>sunny<|end|>",
                allowed_special="all"), None),
    # a character split over three tokens, then an invalid byte, then a cut character
    ([CHANNEL] + enc_text("final") + [MESSAGE, BYTE_TOKEN[0xE2], BYTE_TOKEN[0x82], BYTE_TOKEN[0xAC],
                                      BYTE_TOKEN[0xFF], BYTE_TOKEN[0x41], BYTE_TOKEN[0xF0], BYTE_TOKEN[0x9F], END],
     "assistant"),
    ([CHANNEL] + enc_text("final") + [MESSAGE] + enc_text("ok") + [BYTE_TOKEN[0xF0], BYTE_TOKEN[0x9F]], "assistant"),
    # Rust's UTF-8 rules: surrogates, overlongs, past U+10FFFF, stray continuations, a cut
    # 4-byte character followed by ASCII, a character cut by the stop token
    ([CHANNEL] + enc_text("final") + [MESSAGE] + [BYTE_TOKEN[b] for b in (
        0xED, 0xA0, 0x80, 0xED, 0x9F, 0xBF, 0xC0, 0x80, 0xC1, 0xBF, 0xE0, 0x80, 0x80, 0xE0, 0xA0, 0x80, 0xF0, 0x80,
        0x80, 0x80, 0xF4, 0x90, 0x80, 0x80, 0xF4, 0x8F, 0xBF, 0xBF, 0xF5, 0x80, 0x80, 0xBF, 0xF0, 0x9F, 0x41,
        0xE2, 0x82)] + [END], "assistant"),
    # white space in headers: Rust's trim and channel end use Unicode white space, the
    # split between words only ASCII white space (not U+000B)
    ([CHANNEL] + enc_text("final\x0bjson") + [MESSAGE, END], "assistant"),
    ([CHANNEL] + enc_text("analysis json\x0bx") + [MESSAGE, END], "assistant"),
    ([CHANNEL] + enc_text("final\u00a0to=x\u3000") + [MESSAGE, END], "assistant"),
    ([CHANNEL] + enc_text("commentary\tto=functions.f\x0c<|constrain|>json") + [MESSAGE, END], "assistant"),
    ([START] + enc_text("\u2028assistant\u2029to=a b") + [MESSAGE, END], None),
    # an unknown id inside content, inside a header, and where <|start|> is due
    ([CHANNEL] + enc_text("final") + [MESSAGE] + enc_text("a") + [250000] + enc_text("b") + [END], "assistant"),
    ([CHANNEL, 250000, MESSAGE, END], "assistant"),
    ([END, 5, START] + enc_text("assistant") + [MESSAGE] + enc_text("x") + [END], None),
    # headers openai-harmony refuses: no channel value, an unknown role, words left over
    ([CHANNEL, MESSAGE, END], "assistant"),
    ([START] + enc_text("wizard") + [MESSAGE, END], None),
    ([CHANNEL] + enc_text("final extra words here") + [MESSAGE, END], "assistant"),
    # a stop token inside the header (strict: kept as a header token; lenient: ends the message)
    ([CHANNEL] + enc_text("final Hello there") + [END], "assistant"),
    ([CHANNEL] + enc_text("final") + [RETURN, START] + enc_text("assistant") + [MESSAGE, END], "assistant"),
    ([], "assistant"),
    ([], None),
]


def oracle_steps(ids, role, strict):
    p = StreamableParser(ENC, None if role is None else Role(role), strict=strict)
    steps = []
    for t in ids + [None]:
        error = False
        try:
            p.process_eos() if t is None else p.process(t)
        except HarmonyError:
            error = True
        in_content = p.state == StreamState.CONTENT
        step = {"error": error, "delta": p.last_content_delta, "in_content": in_content}
        if in_content:
            step.update(role=p.current_role.value, channel=p.current_channel, recipient=p.current_recipient,
                        content_type=p.current_content_type, content=p.current_content)
        steps.append(step)
    return steps, [message_dict(m) for m in p.messages]


def message_dict(m):
    return {"role": m.author.role.value, "name": m.author.name, "channel": m.channel, "recipient": m.recipient,
            "content_type": m.content_type, "text": "".join(c.text for c in m.content)}


def c_steps(steps):
    """The same records from the C parser's events."""
    out, messages = [], []
    in_content, header, content = False, None, ""
    for events in steps:
        step = {"error": any(e["type"] == "error" for e in events), "delta": None}
        began = any(e["type"] == "begin" for e in events)
        for e in events:
            if e["type"] == "begin":
                in_content, header, content = True, e["header"], ""
            elif e["type"] == "delta":
                content += e["text"]
                if not began:  # a lenient header end: openai-harmony reports no delta
                    step["delta"] = e["text"]
            elif e["type"] == "end":
                # the deltas are the message so far (the end may add U+FFFD for a cut tail)
                assert e["text"].startswith(content), (content, e["text"])
                in_content = False
                h = e["header"]
                messages.append({"role": h["role"], "name": h["name"], "channel": h["channel"],
                                 "recipient": h["recipient"], "content_type": h["content_type"], "text": e["text"]})
        step["in_content"] = in_content
        if in_content:
            step.update(role=header["role"], channel=header["channel"], recipient=header["recipient"],
                        content_type=header["content_type"], content=content)
        out.append(step)
    return out, messages


def check_streams(streams, seed_note):
    failures = []
    for strict in (True, False):
        for role in (None, "assistant", "user", "tool"):
            group = [ids for ids, r in streams if r == role]
            if not group:
                continue
            args = ["parse"] + (["--role", role] if role else []) + ([] if strict else ["--lenient"])
            outs = run_tool(args, group)
            for ids, out in zip(group, outs):
                where = f"{seed_note}, role {role}, strict {strict}, ids {ids}"
                want_steps, want_msgs = oracle_steps(ids, role, strict)
                got_steps, got_msgs = c_steps(out["steps"])
                for k, (w, g) in enumerate(zip(want_steps, got_steps)):
                    if w != g:
                        failures.append(f"{where}: step {k} (id {ids[k] if k < len(ids) else 'EOS'}): "
                                        f"oracle {w} C {g}")
                        break
                else:
                    if len(want_steps) != len(got_steps) or want_msgs != got_msgs:
                        failures.append(f"{where}: messages: oracle {want_msgs} C {got_msgs}")
                # the whole-stream call
                try:
                    want = [message_dict(m) for m in ENC.parse_messages_from_completion_tokens(
                        ids, None if role is None else Role(role), strict=strict)]
                except HarmonyError as e:
                    want = f"error: {e}"
                completion = out["completion"]
                if "error" in completion:
                    got = "error"
                    assert completion["error"]["param"].startswith("tokens"), completion
                else:
                    got = [{"role": m["role"], "name": m.get("name"), "channel": m.get("channel"),
                            "recipient": m.get("recipient"), "content_type": m.get("content_type"),
                            "text": "".join(c["text"] for c in m["content"])} for m in completion["messages"]]
                if (got == "error") != isinstance(want, str) or (got != "error" and got != want):
                    failures.append(f"{where}: parse_messages: oracle {want} C {got}")
    assert not failures, f"{len(failures)} differences:\n" + "\n".join(f[:1500] for f in failures[:4])


def test_parse_random_streams():
    rng = random.Random(SEED + 4)
    streams = [rand_stream(rng) for _ in range(400)]
    check_streams(streams, f"seed {SEED + 4}")
    # the corpus must actually contain what the test is about
    assert sum(1 for ids, _ in streams if CALL in ids) > 20
    assert sum(1 for ids, _ in streams if CONSTRAIN in ids) > 20


def test_parse_handwritten_streams():
    check_streams(HANDWRITTEN_STREAMS, "handwritten")


def test_parse_long_completion():
    """A long answer with every kind of character, byte by byte where possible."""
    rng = random.Random(SEED + 5)
    text = "".join(rng.choice(WORDS) + rng.choice(SEPARATORS) for _ in range(700))
    ids = [CHANNEL] + enc_text("analysis") + [MESSAGE] + split_chars(rng, text) + [END, START] + \
        enc_text("assistant") + [CHANNEL] + enc_text("final") + [MESSAGE] + enc_text(text) + [RETURN]
    check_streams([(ids, "assistant")], f"seed {SEED + 5}")
