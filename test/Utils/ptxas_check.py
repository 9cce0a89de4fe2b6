#!/usr/bin/env python3
"""Assembles every kernel of a PTX bundle (or .ptx files/directories) with
ptxas -v and prints one line per kernel:

  KERNEL <name> arch=<sm> regs=<n> spill_stores=<n> spill_loads=<n> stack=<n> smem=<n>

Exits non-zero if ptxas fails, warns, or any kernel spills or uses a stack
frame. Standard library only (lit runs it with its own Python)."""
import argparse
import os
import re
import subprocess
import sys
import tempfile


def kernels_of(path):
    """(name, ptx text) of every kernel: `//--- name.ptx` sections of a
    bundle from moeq-translate --export-ptx, or single .ptx files."""
    if os.path.isdir(path):
        for entry in sorted(os.listdir(path)):
            if entry.endswith(".ptx"):
                yield from kernels_of(os.path.join(path, entry))
        return
    text = open(path).read()
    parts = re.split(r"^//--- (\S+)\.ptx\n", text, flags=re.M)
    if len(parts) == 1:
        yield os.path.basename(path)[:-4], text
        return
    for i in range(1, len(parts), 2):
        yield parts[i], parts[i + 1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ptxas", required=True)
    parser.add_argument("--arch", required=True)
    parser.add_argument("inputs", nargs="+")
    args = parser.parse_args()
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        for path in args.inputs:
            for name, ptx in kernels_of(path):
                source = os.path.join(tmp, name + ".ptx")
                with open(source, "w") as f:
                    f.write(ptx)
                run = subprocess.run([args.ptxas, "-arch=" + args.arch, "-v", source,
                                      "-o", os.devnull], capture_output=True, text=True)
                log = run.stdout + run.stderr
                if run.returncode != 0 or "warning" in log:
                    print(f"ERROR {name}: {log.strip()}")
                    failed = True
                    continue
                regs = re.search(r"Used (\d+) registers", log)
                spills = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, "
                                   r"(\d+) bytes spill loads", log)
                smem = re.search(r"(\d+) bytes smem", log)
                stack, stores, loads = (int(g) for g in spills.groups())
                print(f"KERNEL {name} arch={args.arch} regs={regs.group(1)} "
                      f"spill_stores={stores} spill_loads={loads} stack={stack} "
                      f"smem={smem.group(1) if smem else 0}")
                if stores or loads or stack:
                    failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
