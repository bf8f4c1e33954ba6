#!/usr/bin/env python3
"""The instructions of a kernel's loops, from a `cuobjdump -sass` listing.

    python3 tools/sass_loop.py LISTING [--all]

Finds each backward branch (a loop) and prints, for the innermost loops that hold the most
instructions, their address range, instruction count and an opcode histogram (the base
opcode: IMAD.MOV.U32 counts as IMAD.MOV). --all prints every loop. For reading what a change
did to a hot loop (docs/TEAM_NOTES.md says where cuobjdump comes from on the development
machine); the counts are static: branches inside a loop (e.g. one of several MMA shapes)
are all counted.
"""
import collections
import re
import sys


def parse(path):
    ins = []
    for line in open(path, encoding="utf-8", errors="replace"):
        m = re.match(r"\s+/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;", line)
        if m:
            ins.append((int(m.group(1), 16), m.group(2).strip()))
    return ins


def opcode(text):
    text = re.sub(r"^@!?U?P[T0-9]+\s+", "", text)
    op = text.split()[0]
    parts = op.split(".")
    return ".".join(parts[:2]) if parts[0] in ("IMAD", "LDS", "LDG", "STG", "STS", "HGMMA") else parts[0]


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    ins = parse(sys.argv[1])
    loops = []
    for addr, text in ins:
        m = re.search(r"BRA (?:`\(\.L_x_\d+\) )?(0x[0-9a-f]+)", text)
        if m and int(m.group(1), 16) <= addr:
            loops.append((int(m.group(1), 16), addr))
    if not loops:
        print("no loops")
        return
    # innermost first: a loop that contains another is printed only with --all
    inner = [l for l in loops if not any(o != l and l[0] <= o[0] and o[1] <= l[1] for o in loops)]
    show = loops if "--all" in sys.argv else sorted(inner, key=lambda l: l[1] - l[0], reverse=True)[:3]
    for lo, hi in show:
        body = [t for a, t in ins if lo <= a <= hi]
        hist = collections.Counter(opcode(t) for t in body)
        print(f"loop {lo:#x}..{hi:#x}: {len(body)} instructions")
        print("  " + ", ".join(f"{k} {v}" for k, v in hist.most_common()))


if __name__ == "__main__":
    main()
