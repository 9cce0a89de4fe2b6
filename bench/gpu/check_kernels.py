#!/usr/bin/env python3
"""Replays moeq's kernel cases on a GPU and compares with the GPU emulator.

A case (moeq-kernel-check --save-case / --probe, built by
prepare_kernels.sh) holds PTX, launches and data; no moeq build is needed
here. For every case and run:

  * the kernel is loaded from its PTX, the maximum dynamic shared memory
    raised when above 48 KiB, and launched with the recorded grid, block
    and shared bytes; every CUDA call is checked;
  * outputs are poisoned first (NaN), then every element of the valid rows
    must be written and canary rows past M must keep the poison;
  * outputs are compared with the emulator's: bit for bit (integer MMAs,
    activation quantization, probes) or within --ulps f16 ulps (f16 MMAs
    sum in another order), max ulps reported; and with the double-precision
    reference: max |error| within 2 f16 ulps at the largest output.

--sanitize re-runs a subset under compute-sanitizer (memcheck, racecheck,
synccheck) and records what it reports. Results go to --json; a compact
table is printed last. Without a GPU, --backend fake (the GPU returns the
emulator's outputs) and --cpu-check (reference vs emulator) test the
loading and comparison code.

  python3 check_kernels.py bench/gpu/work/cases --json out.json
  python3 check_kernels.py CASES --sanitize memcheck,racecheck,synccheck --json san.json
"""
import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

POISON = {"f16nan": (0x7E00, 2), "f32nan": (0x7FC00000, 4), "ones": (0xFF, 1)}
DTYPES = {"f16": ("float16", 2), "f32": ("float32", 4), "f64": ("float64", 8),
          "i8": ("int8", 1), "u8": ("uint8", 1), "i32": ("int32", 4)}


def np():
    import numpy
    return numpy


def discover(root, only=None):
    """Case directories under root (sorted), optionally filtered by
    substrings (comma-separated)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        if "case.json" in filenames:
            with open(os.path.join(dirpath, "case.json")) as f:
                fmt = json.load(f).get("format", "")
            if fmt.startswith("moeq-kernel-case/"):
                found.append(os.path.relpath(dirpath, root))
    found.sort()
    if only:
        keys = [k for k in only.split(",") if k]
        found = [c for c in found if any(k in c for k in keys)]
    return found


def load_case(case_dir):
    with open(os.path.join(case_dir, "case.json")) as f:
        case = json.load(f)
    if not case.get("format", "").startswith("moeq-kernel-case/"):
        raise ValueError("%s: not a kernel case" % case_dir)
    from safetensors.numpy import load_file
    tensors = load_file(os.path.join(case_dir, case["data"]))
    return case, tensors


def buffer_bytes(spec):
    count = 1
    for d in spec["shape"]:
        count *= d
    return count * DTYPES[spec["dtype"]][1]


def as_bits(array):
    """The raw bits of an array as unsigned integers of its width."""
    n = np()
    width = array.dtype.itemsize
    return array.view({1: n.uint8, 2: n.uint16, 4: n.uint32, 8: n.uint64}[width])


def f16_ordered(bits):
    """f16 bit patterns -> integers ordered like the values (ulp distance)."""
    n = np()
    b = bits.astype(n.int64)
    mag = b & 0x7FFF
    return n.where(b & 0x8000, -mag, mag)


def ref_tolerance(max_ref, ulps=2.0):
    """`ulps` f16 ulps at the largest output (at least at 1.0), as
    moeq-kernel-check computes it."""
    m = max(1.0, max_ref)
    return ulps * 2.0 ** (math.frexp(m)[1] - 1 - 10)


def compare_output(spec, got_raw, tensors, ulps_allowed):
    """Checks one output buffer; returns a result dict."""
    n = np()
    name, dtype = spec["name"], spec["dtype"]
    shape, rows = spec["shape"], spec["rows"]
    got = n.frombuffer(got_raw, dtype=DTYPES[dtype][0]).reshape(shape)
    expected = tensors[spec["expected"]].reshape(shape)
    res = {"buffer": name, "compare": spec["compare"], "ok": True}
    poison_value, poison_width = POISON[spec["poison"]]
    bits = as_bits(got)
    # Canary rows past the valid ones keep their poison.
    if rows < shape[0]:
        canary = bits[rows:]
        if poison_width == bits.dtype.itemsize:
            intact = bool((canary == poison_value).all())
        else:
            intact = bool((canary.view(n.uint8) == poison_value).all())
        res["canary_intact"] = intact
        res["ok"] &= intact
    valid_bits, valid_got, valid_exp = bits[:rows], got[:rows], expected[:rows]
    # Every valid element written (a NaN poison can be told from results).
    if spec["poison"] in ("f16nan", "f32nan") and poison_width == bits.dtype.itemsize:
        unwritten = int((valid_bits == poison_value).sum())
        res["unwritten"] = unwritten
        res["ok"] &= unwritten == 0
    compare = spec["compare"]
    if compare == "bitwise":
        diff = valid_bits != as_bits(valid_exp)
        mismatches = int(diff.sum())
        res["mismatches"] = mismatches
        if mismatches:
            res["ok"] = False
            idx = n.argwhere(diff)[:8]
            res["first_mismatches"] = [
                {"at": [int(i) for i in ix], "got": "0x%x" % int(valid_bits[tuple(ix)]),
                 "expected": "0x%x" % int(as_bits(valid_exp)[tuple(ix)])} for ix in idx]
    elif compare == "ulp":
        g, e = f16_ordered(valid_bits), f16_ordered(as_bits(valid_exp))
        nan = n.isnan(valid_got.astype(n.float64))
        ulps = n.abs(g - e).astype(n.float64)
        ulps[nan] = math.inf
        max_ulps = float(ulps.max()) if ulps.size else 0.0
        res["max_ulps"] = max_ulps
        res["ulps_allowed"] = ulps_allowed
        res["ok"] &= max_ulps <= ulps_allowed
        if max_ulps > ulps_allowed:
            idx = n.argwhere(ulps > ulps_allowed)[:8]
            res["first_mismatches"] = [
                {"at": [int(i) for i in ix], "got": float(valid_got[tuple(ix)]),
                 "expected": float(valid_exp[tuple(ix)])} for ix in idx]
    # "written": values not compared (split-K partial sums).
    if spec.get("reference"):
        ref = tensors[spec["reference"]].astype(n.float64).reshape(valid_got.shape)
        max_ref = float(n.abs(ref).max()) if ref.size else 0.0
        rounded = ref.astype(n.float16).astype(n.float64)
        g = valid_got.astype(n.float64)
        err = n.where(n.isfinite(g), n.abs(g - rounded), math.inf)
        max_err = float(err.max()) if err.size else 0.0
        tol = ref_tolerance(max_ref)
        res.update({"ref_max_abs_error": max_err, "ref_tolerance": tol,
                    "ref_max_abs": max_ref})
        res["ok"] &= max_err <= tol
    return res


def address_table(backend, arg, pointers):
    """A device table of u64 buffer addresses (zero-padded rows of
    `columns`): how a persistent grouped GEMM reaches its experts' weights."""
    import struct
    columns = int(arg["columns"])
    words = []
    for row in arg["address_table"]:
        words += [pointers[name] for name in row] + [0] * (columns - len(row))
    data = struct.pack("<%dQ" % len(words), *words)
    ptr = backend.alloc(len(data))
    backend.upload(ptr, data)
    return ptr


class FakeBackend:
    """No GPU: host memory, and a "launch" that leaves the emulator's
    outputs in the output buffers after a run's last launch. Exercises the
    loading, poisoning and comparison code here."""

    name = "fake"

    def __init__(self, corrupt=None):
        self.memory, self.next = {}, 1 << 20
        self.pending = None
        # Testing the checks: "value" flips a bit of each output's first
        # element, "canary" overwrites the canary rows, "unwritten" leaves
        # the first element poisoned.
        self.corrupt = corrupt

    def device_name(self):
        return "fake (emulator outputs)"

    def driver_version(self):
        return 0

    def attribute(self, attr):
        return {97: 232448, 16: 132, 38: 50 * 1024 * 1024}.get(attr, 0)

    def load(self, ptx_path, kernel_name):
        from gpulib import Kernel
        with open(ptx_path) as f:
            text = f.read()
        if (".entry %s(" % kernel_name) not in text:
            raise RuntimeError("%s has no entry %s" % (ptx_path, kernel_name))
        return Kernel(kernel_name, None, {"registers": None, "static_shared": 0,
                                          "local_bytes": 0, "max_threads": 1024})

    def set_max_dynamic_shared(self, kernel, nbytes):
        pass

    def alloc(self, nbytes):
        ptr = self.next
        self.memory[ptr] = bytearray(max(int(nbytes), 1))
        self.next += (int(nbytes) + 4095) // 4096 * 4096 + 4096
        return ptr

    def free(self, ptr):
        self.memory.pop(ptr, None)

    def upload(self, ptr, data):
        self.memory[ptr][:len(data)] = bytes(data)

    def download(self, ptr, nbytes):
        return bytes(self.memory[ptr][:nbytes])

    def fill(self, ptr, pattern, nbytes):
        value, width = pattern
        self.memory[ptr][:nbytes] = value.to_bytes(width, "little") * (nbytes // width)

    def launch(self, kernel, grid, block, shared, args):
        if self.pending:
            self.pending(kernel.name)

    def synchronize(self):
        pass


def run_case(backend, root, rel, ulps_allowed):
    """Runs every run of one case; returns its result dict."""
    case_dir = os.path.join(root, rel)
    t0 = time.time()
    case, tensors = load_case(case_dir)
    result = {"case": rel, "kind": case.get("kind"), "description": case.get("description"),
              "runs": [], "kernels": {}, "ok": True}
    kernels = {}
    for name, ptx in case["kernels"].items():
        k = backend.load(os.path.join(case_dir, ptx), name)
        kernels[name] = k
        result["kernels"][name] = {"registers": k.registers, "static_shared": k.static_shared,
                                   "local_bytes": k.local_bytes}
        # A kernel whose PTX declares static shared memory needs it on top
        # of the dynamic bytes (moeq declares none: docs/kernels.md).
        if k.static_shared:
            result.setdefault("warnings", []).append(
                "%s has %d bytes of static shared memory" % (name, k.static_shared))
    optin = backend.attribute(97)
    for run in case["runs"]:
        pointers, outputs = {}, []
        try:
            for spec in run["buffers"]:
                if "tensor" in spec:
                    data = tensors[spec["tensor"]]
                    ptr = backend.alloc(data.nbytes)
                    backend.upload(ptr, data.tobytes())
                else:
                    nbytes = buffer_bytes(spec)
                    ptr = backend.alloc(nbytes)
                    backend.fill(ptr, POISON[spec["poison"]], nbytes)
                    outputs.append(spec)
                pointers[spec["name"]] = ptr
            if backend.name == "fake":
                last = run["launches"][-1]["kernel"]

                def finish(kernel_name, run=run):
                    if kernel_name != last:
                        return
                    for spec in outputs:
                        exp = bytearray(tensors[spec["expected"]].tobytes())
                        width = DTYPES[spec["dtype"]][1]
                        if backend.corrupt == "value":
                            exp[0] ^= 1
                        elif backend.corrupt == "unwritten":
                            value, w = POISON[spec["poison"]]
                            exp[0:w] = value.to_bytes(w, "little")
                        elif backend.corrupt == "canary" and spec["rows"] < spec["shape"][0]:
                            row = buffer_bytes(spec) // spec["shape"][0]
                            exp[spec["rows"] * row:spec["rows"] * row + width] = bytes(width)
                        backend.upload(pointers[spec["name"]], bytes(exp))
                backend.pending = finish
            for launch in run["launches"]:
                k = kernels[launch["kernel"]]
                shared = int(launch["shared_bytes"])
                if shared + (k.static_shared or 0) > 48 * 1024:
                    if shared + (k.static_shared or 0) > optin:
                        raise RuntimeError("%s needs %d bytes of shared memory, the device "
                                           "allows %d" % (k.name, shared, optin))
                    backend.set_max_dynamic_shared(k, shared)
                args = []
                for a in launch["args"]:
                    if "buffer" in a:
                        args.append(("ptr", pointers[a["buffer"]] + int(a.get("offset", 0))))
                    elif "address_table" in a:
                        args.append(("ptr", address_table(backend, a, pointers)))
                    else:
                        args.append(("i32", int(a["i32"])))
                backend.launch(k, launch["grid"], launch["block"], shared, args)
                backend.synchronize()
                result["shared_bytes"] = max(result.get("shared_bytes", 0), shared)
            run_res = {"run": run["name"], "buffers": [], "ok": True}
            for spec in outputs:
                raw = backend.download(pointers[spec["name"]], buffer_bytes(spec))
                r = compare_output(spec, raw, tensors, ulps_allowed)
                run_res["buffers"].append(r)
                run_res["ok"] &= r["ok"]
            result["runs"].append(run_res)
            result["ok"] &= run_res["ok"]
        finally:
            backend.pending = None
            for ptr in pointers.values():
                try:
                    backend.free(ptr)
                except Exception:
                    pass
    result["seconds"] = round(time.time() - t0, 3)
    return result


def summarize(result):
    """max ulps, max |error| / tolerance and mismatch counts over runs."""
    max_ulps, worst_ratio, mism = None, None, 0
    for run in result.get("runs", []):
        for b in run["buffers"]:
            if "max_ulps" in b:
                max_ulps = max(max_ulps or 0, b["max_ulps"])
            if "ref_tolerance" in b and b["ref_tolerance"] > 0:
                ratio = b["ref_max_abs_error"] / b["ref_tolerance"]
                worst_ratio = ratio if worst_ratio is None else max(worst_ratio, ratio)
            mism += b.get("mismatches", 0) or 0
    return max_ulps, worst_ratio, mism


def cpu_check(root, cases):
    """Without a GPU: every case loads, its PTX names its kernels, and the
    emulator's outputs meet the references (the comparison code itself)."""
    results = []
    for rel in cases:
        case_dir = os.path.join(root, rel)
        res = {"case": rel, "ok": True, "runs": []}
        try:
            case, tensors = load_case(case_dir)
            for name, ptx in case["kernels"].items():
                with open(os.path.join(case_dir, ptx)) as f:
                    if (".entry %s(" % name) not in f.read():
                        raise RuntimeError("%s: no entry %s" % (ptx, name))
            for run in case["runs"]:
                rr = {"run": run["name"], "buffers": [], "ok": True}
                for spec in run["buffers"]:
                    if "tensor" in spec:
                        if spec["tensor"] not in tensors:
                            raise RuntimeError("missing tensor " + spec["tensor"])
                        continue
                    raw = tensors[spec["expected"]].tobytes()
                    r = compare_output(spec, raw, tensors, 0)
                    rr["buffers"].append(r)
                    rr["ok"] &= r["ok"]
                res["runs"].append(rr)
                res["ok"] &= rr["ok"]
        except Exception as e:  # noqa: BLE001 - reported per case
            res.update(ok=False, error="%s: %s" % (type(e).__name__, e))
        results.append(res)
    return results


def worker(args):
    """Runs cases [start, ...) of the list, one JSON line each; exits 3
    after an error that leaves the CUDA context unusable."""
    from gpulib import CudaError, make_backend
    with open(args.case_list) as f:
        cases = [line.strip() for line in f if line.strip()]
    backend = FakeBackend(args.fake_corrupt) if args.backend == "fake" else \
        make_backend(args.backend)
    out = open(args.results, "a")
    if args.start == 0:
        info = {"device": backend.device_name(), "driver": backend.driver_version(),
                "backend": backend.name, "shared_optin": backend.attribute(97)}
        out.write(json.dumps({"device_info": info}) + "\n")
        out.flush()
    for i in range(args.start, len(cases)):
        rel = cases[i]
        out.write(json.dumps({"started": i}) + "\n")
        out.flush()
        try:
            res = run_case(backend, args.cases, rel, args.ulps)
        except CudaError as e:
            res = {"case": rel, "ok": False, "error": str(e), "sticky": e.sticky}
            out.write(json.dumps({"index": i, "result": res}) + "\n")
            out.flush()
            if e.sticky:
                sys.exit(3)
            continue
        except Exception as e:  # noqa: BLE001 - reported per case
            res = {"case": rel, "ok": False, "error": "%s: %s" % (type(e).__name__, e)}
        out.write(json.dumps({"index": i, "result": res}) + "\n")
        out.flush()
    sys.exit(0)


def supervise(args, cases):
    """Runs the cases in worker processes, restarting after a crash, a
    context-killing error or a case that makes no progress."""
    tmp = tempfile.mkdtemp(prefix="moeq-check-")
    case_list = os.path.join(tmp, "cases.txt")
    with open(case_list, "w") as f:
        f.write("\n".join(cases) + "\n")
    results_path = os.path.join(tmp, "results.jsonl")
    results, device_info, start = {}, None, 0
    while start < len(cases):
        cmd = [sys.executable, os.path.abspath(__file__), args.cases, "--worker",
               "--case-list", case_list, "--results", results_path, "--start", str(start),
               "--backend", args.backend, "--ulps", str(args.ulps)]
        if args.fake_corrupt:
            cmd += ["--fake-corrupt", args.fake_corrupt]
        log = open(os.path.join(tmp, "worker.log"), "a")
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        last_progress, seen_lines, current = time.time(), 0, start
        while proc.poll() is None:
            time.sleep(0.2)
            lines = open(results_path).read().splitlines() if os.path.exists(results_path) else []
            if len(lines) != seen_lines:
                seen_lines, last_progress = len(lines), time.time()
            if time.time() - last_progress > args.case_timeout:
                proc.kill()
                proc.wait()
                break
        lines = open(results_path).read().splitlines() if os.path.exists(results_path) else []
        current = start
        for line in lines:
            rec = json.loads(line)
            if "device_info" in rec:
                device_info = rec["device_info"]
            elif "started" in rec:
                current = max(current, rec["started"])
            elif "index" in rec:
                results[rec["index"]] = rec["result"]
        # The case in flight when the worker stopped failed without a result.
        if proc.returncode not in (0,) and current not in results and current < len(cases):
            tail = open(os.path.join(tmp, "worker.log")).read()[-1500:]
            why = ("no progress for %ds (hang?)" % args.case_timeout
                   if proc.returncode in (-9, None) else "worker exited %s" % proc.returncode)
            results[current] = {"case": cases[current], "ok": False,
                                "error": "%s; log tail: %s" % (why, tail)}
        if device_info is None:
            # The worker could not even start (no GPU, no driver): give up.
            tail = open(os.path.join(tmp, "worker.log")).read()[-1500:]
            device_info = {"startup_error": tail}
            print("the GPU worker did not start:\n" + tail, flush=True)
            for i in range(start, len(cases)):
                results.setdefault(i, {"case": cases[i], "ok": False,
                                       "error": "not run: the GPU worker did not start"})
            break
        done = [i for i in results]
        start = max(done) + 1 if done else len(cases)
        if proc.returncode == 0:
            break
    ordered = [results.get(i, {"case": c, "ok": False, "error": "not run"})
               for i, c in enumerate(cases)]
    return ordered, device_info


SANITIZE_SUMMARY = re.compile(r"ERROR SUMMARY: (\d+) error")
RACE_SUMMARY = re.compile(r"RACECHECK SUMMARY: (\d+) hazards? displayed \((\d+) errors?, "
                          r"(\d+) warnings?\)")


def sanitize(args, cases):
    """The subset under each compute-sanitizer tool: one process per tool
    runs every case of the subset (CUDA start-up under a sanitizer is
    slow); findings are attributed to cases by their kernels' names."""
    from gpulib import find_tool
    tool_path = find_tool("compute-sanitizer")
    if not tool_path:
        return [{"error": "compute-sanitizer not found"}]
    kernels_of = {}
    for rel in cases:
        with open(os.path.join(args.cases, rel, "case.json")) as f:
            kernels_of[rel] = list(json.load(f)["kernels"])
    records = []
    for tool in [t for t in args.sanitize.split(",") if t]:
        tmp = tempfile.mkdtemp(prefix="moeq-san-")
        with open(os.path.join(tmp, "cases.txt"), "w") as f:
            f.write("\n".join(cases) + "\n")
        cmd = [tool_path, "--tool", tool, "--print-limit", "50"]
        if tool == "memcheck":
            cmd += ["--leak-check", "no"]
        cmd += [sys.executable, os.path.abspath(__file__), args.cases, "--worker",
                "--case-list", os.path.join(tmp, "cases.txt"),
                "--results", os.path.join(tmp, "r.jsonl"), "--backend", "driver",
                "--ulps", str(args.ulps)]
        t0 = time.time()
        rec = {"tool": tool, "cases": cases, "command": " ".join(cmd)}
        try:
            p = subprocess.run(cmd, capture_output=True, text=True,
                               timeout=args.sanitize_timeout)
            text = p.stdout + p.stderr
            rec["exit_code"] = p.returncode
        except subprocess.TimeoutExpired as e:
            out = e.stdout or ""
            text = out.decode(errors="replace") if isinstance(out, bytes) else out
            rec["timeout"] = True
        m = SANITIZE_SUMMARY.search(text)
        rec["errors"] = int(m.group(1)) if m else None
        m = RACE_SUMMARY.search(text)
        if m:
            rec["hazards"], rec["race_errors"], rec["race_warnings"] = map(int, m.groups())
        lines = [l for l in text.splitlines() if l.startswith("=========")]
        rec["report"] = lines[:120]
        # Which cases' kernels the findings name.
        rec["findings_by_case"] = {
            rel: sum(1 for l in lines if any(k in l for k in kernels_of[rel]))
            for rel in cases}
        rec["seconds"] = round(time.time() - t0, 1)
        rec["case_results"] = {}
        try:
            with open(os.path.join(tmp, "r.jsonl")) as f:
                for line in f:
                    r = json.loads(line)
                    if "result" in r:
                        rec["case_results"][r["result"]["case"]] = r["result"]["ok"]
        except OSError:
            pass
        rec["clean"] = rec.get("errors") == 0 and not rec.get("timeout") and \
            rec.get("race_errors", 0) == 0
        records.append(rec)
        print("sanitize %-10s %d cases: errors=%s %s%s(%.0fs, %d/%d cases ran and matched)" % (
            tool, len(cases), rec.get("errors"),
            "hazards=%s " % rec["hazards"] if "hazards" in rec else "",
            "TIMEOUT " if rec.get("timeout") else "", rec["seconds"],
            sum(1 for v in rec["case_results"].values() if v), len(cases)), flush=True)
        for l in lines[:12]:
            print("   " + l[:160])
    return records


def failure_reasons(result):
    """What failed, per run and buffer."""
    reasons = []
    for run in result.get("runs", []):
        for b in run["buffers"]:
            if b["ok"]:
                continue
            what = []
            if b.get("canary_intact") is False:
                what.append("canary overwritten")
            if b.get("unwritten"):
                what.append("%d unwritten" % b["unwritten"])
            if b.get("mismatches"):
                what.append("%d bitwise mismatches" % b["mismatches"])
            if b.get("max_ulps", 0) > b.get("ulps_allowed", math.inf):
                what.append("%g ulps" % b["max_ulps"])
            if b.get("ref_max_abs_error", 0) > b.get("ref_tolerance", math.inf):
                what.append("reference error %.3g > %.3g" % (b["ref_max_abs_error"],
                                                           b["ref_tolerance"]))
            reasons.append("%s.%s: %s" % (run["run"], b["buffer"], ", ".join(what)))
    return reasons


def print_table(results, sanitize_records=None):
    print()
    print("%-58s %-7s %-4s %9s %12s %5s %6s %7s" % (
        "case", "kind", "ok", "max ulps", "err/tol(ref)", "regs", "smem", "time"))
    for r in results:
        max_ulps, ratio, mism = summarize(r)
        regs = max([k.get("registers") or 0 for k in r.get("kernels", {}).values()] or [0])
        smem = r.get("shared_bytes")
        status = "ok" if r.get("ok") else "FAIL"
        extra = ""
        if r.get("error"):
            extra = "  " + " ".join(r["error"].split())[:100]
        elif not r.get("ok"):
            extra = "  " + "; ".join(failure_reasons(r))[:100]
        print("%-58s %-7s %-4s %9s %12s %5s %6s %6.1fs%s" % (
            r["case"][:58], (r.get("kind") or "")[:7], status,
            "-" if max_ulps is None else "%g" % max_ulps,
            "-" if ratio is None else "%.2f" % ratio, regs or "-", smem or "-",
            r.get("seconds", 0) or 0, extra))
    failed = [r for r in results if not r.get("ok")]
    if failed:
        print("\nfailed:")
        for r in failed[:25]:
            why = " ".join(r["error"].split()) if r.get("error") else "; ".join(failure_reasons(r))
            print("  %s: %s" % (r["case"], why[:160]))
    passed = len(results) - len(failed)
    print("\n%d/%d cases passed" % (passed, len(results)))
    if sanitize_records:
        clean = sum(1 for s in sanitize_records if s.get("clean"))
        print("sanitizer: %d/%d runs clean" % (clean, len(sanitize_records)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("cases", help="folder of case folders (each with case.json)")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--only", help="comma-separated substrings of case paths to run")
    ap.add_argument("--backend", default="auto", choices=["auto", "cupy", "driver", "fake"])
    ap.add_argument("--ulps", type=float, default=1.0,
                    help="allowed f16 ulps against the emulator (ulp-compared outputs)")
    ap.add_argument("--case-timeout", type=float, default=60.0,
                    help="seconds without progress before a case counts as hung")
    ap.add_argument("--cpu-check", action="store_true",
                    help="no GPU: check the cases' files and the emulator vs the references")
    ap.add_argument("--sanitize", help="compute-sanitizer tools to run the subset under, "
                    "e.g. memcheck,racecheck,synccheck (no plain run)")
    ap.add_argument("--subset", help="cases for --sanitize (default: CASES/sanitize_subset.txt)")
    ap.add_argument("--sanitize-timeout", type=float, default=120.0)
    ap.add_argument("--fake-corrupt", choices=["value", "canary", "unwritten"],
                    help="--backend fake: damage the outputs (tests the checks)")
    # Internal: one worker process.
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--case-list", help=argparse.SUPPRESS)
    ap.add_argument("--results", help=argparse.SUPPRESS)
    ap.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        worker(args)
        return
    cases = discover(args.cases, args.only)
    if not cases:
        sys.exit("no cases under %s" % args.cases)
    out = {"tool": "check_kernels", "cases_dir": os.path.abspath(args.cases)}
    t0 = time.time()
    if args.cpu_check:
        results = cpu_check(args.cases, cases)
        out.update(mode="cpu-check", cases=results)
        print_table(results)
    elif args.sanitize:
        subset = args.subset
        if not subset:
            path = os.path.join(args.cases, "sanitize_subset.txt")
            subset = ",".join(l.strip() for l in open(path) if l.strip()) if \
                os.path.exists(path) else ""
        chosen = [c for c in cases if any(s == c or s in c for s in subset.split(",") if s)]
        records = sanitize(args, chosen)
        out.update(mode="sanitize", tools=args.sanitize, sanitize=records)
        clean = sum(1 for s in records if s.get("clean"))
        for s in records:
            if s.get("error"):
                print("sanitizer: " + s["error"])
        print("sanitizer: %d/%d runs clean" % (clean, len(records)))
        results = []
        if clean < len(records):
            out["seconds"] = round(time.time() - t0, 1)
            if args.json:
                with open(args.json, "w") as f:
                    json.dump(out, f, indent=1)
            sys.exit(1)
    else:
        results, device = supervise(args, cases)
        out.update(mode="run", backend=args.backend, device=device, cases=results)
        print_table(results)
    out["seconds"] = round(time.time() - t0, 1)
    if results:
        out["summary"] = {"cases": len(results), "passed": sum(1 for r in results if r.get("ok")),
                          "failed": [r["case"] for r in results if not r.get("ok")]}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    failed = [r for r in results if not r.get("ok")]
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
