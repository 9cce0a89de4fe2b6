#!/usr/bin/env python3
"""Prints a manifest.json (version 3) as lines FileCheck can match:

  version 3 target sm_90
  kernel <name> args=ptr,ptr,i32 smem=<bytes> [tile=<path> <bm>x<bn>x<bk>w<w>s<s>k<split>]
  param <i> <file>:<tensor> <dtype>[<shape>]
  layer <L> buffers: <name>:<dtype>[<shape>] ...
  layer <L> step <i> launch <kernel> grid=(..) block=(..) smem=<n> args=<a>,<b>,...
  layer <L> step <i> copy <from> -> <to>
  layer <L> linear <expert>.<role> <scheme> kernel=<name>

Expressions print infix: T, (T*2), ceil((T*2)/16), offsets_host[3].
Arguments print as the buffer name (+offset), p<i> for device_params[i],
i32:<expr>. Standard library only (lit runs it with its own Python)."""
import json
import sys


def expr(e):
    if isinstance(e, (int, str)):
        return str(e)
    if "load" in e:
        return f"{e['load']}[{expr(e['index'])}]"
    (op, value), = e.items()
    a, b = (expr(v) for v in value)
    symbol = {"add": "+", "sub": "-", "mul": "*", "div": "/"}.get(op)
    if symbol:
        return f"({a}{symbol}{b})"
    return f"{op}({a},{b})"


def arg(a):
    if "buffer" in a:
        return a["buffer"] + (f"+{expr(a['offset'])}" if "offset" in a else "")
    if "param" in a:
        return f"p{a['param']}"
    return "i32:" + expr(a["i32"])


def main():
    m = json.load(open(sys.argv[1]))
    print(f"version {m['version']} target {m.get('target')}")
    for k in m["kernels"]:
        line = f"kernel {k['name']} args={','.join(k.get('arguments', []))} " \
               f"smem={k.get('shared_memory_bytes')}"
        t = k.get("tile")
        if t:
            line += f" tile={t['path']} {t['bm']}x{t['bn']}x{t['bk']}w{t['warps']}s{t['stages']}" \
                    f"k{t['split_k']}"
        if k.get("persistent"):
            line += f" persistent groups={len(k['groups'])}"
        print(line)
    for i, p in enumerate(m.get("device_params", [])):
        if "addresses" in p:
            rows = " ".join(",".join(f"p{a}" for a in row) for row in p["addresses"])
            print(f"param {i} address table {p['dtype']}{p['shape']}: {rows}")
        else:
            print(f"param {i} {p['file']}:{p['tensor']} {p['dtype']}{p['shape']}")
    for layer in m["layers"]:
        L = layer.get("layer")
        plan = layer.get("plan", {})
        print(f"layer {L} buffers: " + " ".join(
            f"{b['name']}:{b['dtype']}[{','.join(expr(d) for d in b['shape'])}]"
            + (f"({b['binding']})" if "binding" in b else "") + ("(host)" if b.get("host") else "")
            for b in plan.get("buffers", [])))
        for i, s in enumerate(plan.get("steps", [])):
            if "launch" in s:
                print(f"layer {L} step {i} launch {s['launch']} "
                      f"grid=({','.join(expr(g) for g in s['grid'])}) "
                      f"block=({','.join(str(b) for b in s['block'])}) "
                      f"smem={s['shared_memory_bytes']} args={','.join(arg(a) for a in s['args'])}")
            else:
                print(f"layer {L} step {i} copy {s['copy']} -> {s['to']}")
        for e in layer.get("experts", []):
            for role, lin in sorted(e["linears"].items()):
                print(f"layer {L} linear {e['expert']}.{role} {lin.get('scheme')} "
                      f"kernel={lin.get('kernel')}")


if __name__ == "__main__":
    main()
