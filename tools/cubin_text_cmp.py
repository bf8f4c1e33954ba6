#!/usr/bin/env python3
"""Compare the machine code of two cubins, kernel by kernel.

    nvcc ... -cubin src/cuda/moe.cu -o /tmp/before.cubin      (at the base revision)
    nvcc ... -cubin src/cuda/moe.cu -o /tmp/after.cubin       (with the change)
    python3 tools/cubin_text_cmp.py /tmp/before.cubin /tmp/after.cubin

`cmp` of two cubins fails whenever a kernel's mangled name changes (a template parameter
added with a default, for instance) although its code did not. This reads the ELF section
table and compares the contents of the .text.<kernel> sections, with the names of the
gptoss_wg kernels normalised (and a trailing default parameter `1` dropped), and prints
the kernels whose code differs. Exit status 0 when every kernel's code is the same. The
development machine has no cuobjdump: this is how a change is shown to leave the library's
code as it ran on a card.
"""
import hashlib
import re
import struct
import sys


def text_sections(path):
    d = open(path, "rb").read()
    if d[:4] != b"\x7fELF" or d[4] != 2:
        sys.exit(f"{path}: not a 64-bit ELF file")
    shoff, = struct.unpack_from("<Q", d, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", d, 0x3A)
    secs = [struct.unpack_from("<IIQQQQ", d, shoff + i * shentsize) for i in range(shnum)]
    strtab = secs[shstrndx][4]
    out = {}
    for name, _typ, _flags, _addr, off, size in secs:
        n = d[strtab + name:d.index(b"\0", strtab + name)].decode()
        if not n.startswith(".text."):
            continue
        key = re.sub(r"_ZN9gptoss_wg[A-Za-z0-9_]+", lambda m: re.sub(r"Li1EEEv", "EEv", m.group(0)), n)
        out.setdefault(key, []).append(hashlib.sha1(d[off:off + size]).hexdigest())
    return out


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    a, b = text_sections(sys.argv[1]), text_sections(sys.argv[2])
    differ = 0
    for k in sorted(set(a) | set(b)):
        if sorted(a.get(k, [])) != sorted(b.get(k, [])):
            differ += 1
            print(f"differs: {k}")
    print(f"{len(set(a) | set(b)) - differ} kernels the same, {differ} differ")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
