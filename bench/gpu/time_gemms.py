#!/usr/bin/env python3
"""Times moeq's expert-GEMM kernels of a Mixtral-8x7B-sized layer on a GPU.

Timing cases (moeq-kernel-check --timing-case, built by prepare_kernels.sh)
hold the PTX moeq-compile emits for a token count (tiles from the cost
model, the persistent grouped kernel where the tiling chooses it), the
launches of each routing split and the buffer sizes, but no data. Here:

  * the device-to-device copy bandwidth is measured first (the roofline's
    bandwidth);
  * weights (random codes, scales never zero, zero points, levels) and
    activations are generated on the device with torch;
  * each case's launches are timed with CUDA events: warm-up, then the
    median of --iters runs, rotating among weight copies when the active
    experts' weights would otherwise stay in L2;
  * PyTorch bf16 (cuBLAS) runs the same GEMMs (sum over experts of
    x_e @ W_e^T with the same rows per expert);
  * each time is printed next to the cost model's prediction (--gpu h200
    when prepared), the ratio, and the HBM roofline (bytes of the active
    weights + activations once + outputs, over the measured bandwidth).

  python3 time_gemms.py bench/gpu/work/timing --json timing.json
"""
import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def torch_dtype(torch, name):
    return {"f16": torch.float16, "f32": torch.float32, "i32": torch.int32,
            "i8": torch.int8, "u8": torch.uint8}[name]


DEVICE = "cuda"


def fill(torch, spec, weight_bits, gen):
    """A device tensor for a buffer spec (random, never all zeros)."""
    shape, dtype = spec["shape"], torch_dtype(torch, spec["dtype"])
    how = spec.get("fill", "none")
    dev = DEVICE
    if how == "values":
        return torch.tensor(spec["values"], dtype=dtype, device=dev)
    if how == "codes":
        return torch.randint(-2 ** 31, 2 ** 31 - 1, shape, dtype=torch.int32, device=dev,
                             generator=gen)
    if how == "scales":
        # Small positive scales: outputs stay finite in f16.
        return (torch.rand(shape, device=dev, generator=gen) * 0.01 + 0.002).to(dtype)
    if how == "zeros":
        top = (1 << weight_bits) - 1
        return torch.randint(0, top + 1, shape, device=dev, generator=gen).to(dtype)
    if how == "levels":
        return (torch.randn(shape, device=dev, generator=gen) * 0.02).to(dtype)
    if how == "normal":
        return (torch.randn(shape, device=dev, generator=gen) * 0.05).to(dtype) \
            if spec.get("role") == "weight" else \
            torch.randn(shape, device=dev, generator=gen).to(dtype)
    return torch.empty(shape, dtype=dtype, device=dev)


def nbytes(t):
    return t.numel() * t.element_size()


def measure_copy_bandwidth(torch, mib=1024, iters=10):
    """Device-to-device copy bandwidth in bytes/s (read + write)."""
    n = mib << 20
    a = torch.empty(n, dtype=torch.uint8, device="cuda")
    b = torch.empty_like(a)
    for _ in range(3):
        b.copy_(a)
    times = []
    for _ in range(iters):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        b.copy_(a)
        e.record()
        e.synchronize()
        times.append(s.elapsed_time(e) / 1e3)
    del a, b
    return 2.0 * n / statistics.median(times)


def time_region(torch, fn, warmup, iters):
    """Median, min and all times (seconds) of fn(i) between CUDA events."""
    for i in range(warmup):
        fn(i)
    if DEVICE != "cuda":  # --dry-run: wall time of the host code
        times = []
        for i in range(iters):
            t0 = time.perf_counter()
            fn(i)
            times.append(time.perf_counter() - t0)
        return statistics.median(times), min(times), times
    torch.cuda.synchronize()
    times = []
    for i in range(iters):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn(i)
        e.record()
        e.synchronize()
        times.append(s.elapsed_time(e) / 1e3)
    return statistics.median(times), min(times), times


def run_case(torch, backend, case_dir, case, args, l2_bytes, gen):
    """Every split of one timing case: its measured and predicted times."""
    weight_bits = case.get("weight_bits", 16)
    kernels = {name: backend.load(os.path.join(case_dir, ptx), name)
               for name, ptx in case["kernels"].items()}
    out = []
    experts = case["experts"]
    # Weights of every expert, as many copies as keep the active ones out
    # of L2 when rotated (decided per split below, allocated for the most).
    weights_specs = case["weights"]
    expert_of = {s["name"]: int(s["name"].split(".")[0][1:]) for s in weights_specs}
    per_expert_bytes = [0] * experts
    for s in weights_specs:
        count = 1
        for d in s["shape"]:
            count *= d
        per_expert_bytes[expert_of[s["name"]]] += count * {"f16": 2, "i32": 4}[s["dtype"]]
    copies_needed = []
    for run in case["runs"]:
        active = sum(b for b, r in zip(per_expert_bytes, run["expert_rows"]) if r)
        copies_needed.append(max(1, min(args.max_copies, -(-2 * l2_bytes // max(active, 1)))))
    copies = []
    for c in range(max(copies_needed)):
        copies.append({s["name"]: fill(torch, s, weight_bits, gen) for s in weights_specs})
    for run, ncopies in zip(case["runs"], copies_needed):
        buffers = {s["name"]: fill(torch, s, weight_bits, gen) for s in run["buffers"]}
        max_shared = {}
        for launch in run["launches"]:
            k = kernels[launch["kernel"]]
            need = launch["shared_bytes"] + (k.static_shared or 0)
            if need > 48 * 1024 and max_shared.get(k.name, 0) < launch["shared_bytes"]:
                backend.set_max_dynamic_shared(k, launch["shared_bytes"])
                max_shared[k.name] = launch["shared_bytes"]
        arg_lists, tables = [], []
        for c in range(ncopies):
            per_launch = []
            for launch in run["launches"]:
                args_c = []
                for a in launch["args"]:
                    if "buffer" in a:
                        name = a["buffer"]
                        t = copies[c][name] if name in copies[c] else buffers[name]
                        args_c.append(("ptr", t.data_ptr() + int(a.get("offset", 0))))
                    elif "address_table" in a:
                        # The experts' weights through a table of addresses.
                        columns = int(a["columns"])
                        words = []
                        for row in a["address_table"]:
                            words += [(copies[c][name] if name in copies[c] else
                                       buffers[name]).data_ptr() for name in row]
                            words += [0] * (columns - len(row))
                        table = torch.tensor(words, dtype=torch.int64, device="cuda")
                        tables.append(table)  # alive while the launches use it
                        args_c.append(("ptr", table.data_ptr()))
                    else:
                        args_c.append(("i32", int(a["i32"])))
                per_launch.append(args_c)
            arg_lists.append(per_launch)

        def go(i):
            for launch, launch_args in zip(run["launches"], arg_lists[i % ncopies]):
                backend.launch(kernels[launch["kernel"]], launch["grid"], launch["block"],
                               launch["shared_bytes"], launch_args)

        go(0)
        backend.synchronize()
        rows = run["rows"]
        y = buffers["y"][:rows]
        finite = bool(torch.isfinite(y.float()).all().item()) if rows else True
        median, best, times = time_region(torch, go, args.warmup, args.iters)
        out.append({"split": run.get("split"), "expert_rows": run["expert_rows"], "rows": rows,
                    "copies": ncopies,
                    "measured_us": median * 1e6, "min_us": best * 1e6,
                    "predicted_us": run["predicted_us"],
                    "predicted_largest_expert_us": run.get("predicted_largest_expert_us"),
                    "finite_output": finite,
                    "active_weight_bytes": sum(b for b, r in zip(per_expert_bytes,
                                                                 run["expert_rows"]) if r)})
        del buffers
    del copies
    return out


def bf16_baseline(torch, n, k, expert_rows, args, gen, cache):
    """cuBLAS bf16: sum over experts of x_e @ W_e^T (same rows per expert)."""
    key = (n, k, tuple(expert_rows))
    if key in cache:
        return cache[key]
    wkey = ("w", n, k)
    if wkey not in cache:
        cache[wkey] = [(torch.randn(n, k, device=DEVICE, generator=gen) * 0.05).to(torch.bfloat16)
                       for _ in range(len(expert_rows))]
    ws = cache[wkey]
    xs = [torch.randn(r, k, device=DEVICE, generator=gen).to(torch.bfloat16) if r else None
          for r in expert_rows]
    ys = [torch.empty(r, n, device=DEVICE, dtype=torch.bfloat16) if r else None
          for r in expert_rows]

    def go(i):
        for x, w, y in zip(xs, ws, ys):
            if x is not None:
                torch.matmul(x, w.t(), out=y)

    median, best, _ = time_region(torch, go, args.warmup, args.iters)
    cache[key] = (median * 1e6, best * 1e6)
    return cache[key]


class DryRunBackend:
    """--dry-run: kernels are loaded (their PTX must name them) but not run."""

    name = "dry-run"

    def load(self, ptx_path, kernel_name):
        from gpulib import Kernel
        with open(ptx_path) as f:
            if (".entry %s(" % kernel_name) not in f.read():
                raise RuntimeError("%s has no entry %s" % (ptx_path, kernel_name))
        return Kernel(kernel_name, None, {"static_shared": 0})

    def set_max_dynamic_shared(self, kernel, nbytes):
        pass

    def launch(self, kernel, grid, block, shared, args):
        for kind, value in args:
            assert kind in ("ptr", "i32") and isinstance(value, int)

    def synchronize(self):
        pass


def discover(root):
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        if "case.json" in filenames:
            with open(os.path.join(dirpath, "case.json")) as f:
                if json.load(f).get("format", "").startswith("moeq-timing-case/"):
                    found.append(dirpath)
    return sorted(found)


def roofline_bytes(case, run):
    """Active experts' weights + activations once + outputs."""
    weight = run["active_weight_bytes"]
    scheme = case["schemes"].split(",")[0]
    act = 1.0 if "a8" in scheme else 0.5 if "a4" in scheme else 2.0
    return weight + run["rows"] * case["k"] * act + run["rows"] * case["n"] * 2


def print_matrix(results):
    """measured / cost model and bf16 / measured per scheme and token
    count (uniform split), gate_up | down: the table's gist."""
    cells = {}
    for e in results:
        for r in e.get("runs", []):
            if r.get("split") == "uniform":
                proj = "up" if e["n"] > e["k"] else "down"
                cells[(e["scheme"], e["tokens"], proj)] = r
    if not cells:
        return
    tokens = sorted({t for _, t, _ in cells})
    schemes = []
    for s, _, _ in cells:
        if s not in schemes:
            schemes.append(s)
    for title, key in (("measured / cost model", "ratio_to_predicted"),
                       ("bf16 cuBLAS / measured (speedup)", "speedup_vs_bf16"),
                       ("measured / HBM roofline", "ratio_to_roofline")):
        print("\n%s (uniform split; gate_up | down)" % title)
        print("%-11s" % "scheme" + "".join("%18s" % ("T=%d" % t) for t in tokens))
        for s in schemes:
            row = "%-11s" % s
            for t in tokens:
                vals = []
                for proj in ("up", "down"):
                    r = cells.get((s, t, proj))
                    vals.append("%.2f" % r[key] if r and r.get(key) is not None else "-")
                row += "%18s" % "|".join(vals)
            print(row)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("timing", help="folder of timing cases (prepare_kernels.sh)")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--backend", default="driver", choices=["auto", "cupy", "driver"])
    ap.add_argument("--iters", type=int, default=25)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--max-copies", type=int, default=8)
    ap.add_argument("--budget", type=float, default=150.0,
                    help="seconds; cases left when it is spent are skipped")
    ap.add_argument("--only", help="comma-separated substrings of case folders")
    ap.add_argument("--list", action="store_true", help="list the cases and exit (no GPU)")
    ap.add_argument("--dry-run", action="store_true",
                    help="no GPU: everything on the CPU except the kernels (not launched); "
                         "tests the data generation and launch plumbing (use --only)")
    args = ap.parse_args()

    cases = discover(args.timing)
    if args.only:
        keys = args.only.split(",")
        cases = [c for c in cases if any(k in c for k in keys)]
    if args.list or not cases:
        for c in cases:
            with open(os.path.join(c, "case.json")) as f:
                case = json.load(f)
            print("%-50s %s %s runs=%d predicted=%s" % (
                os.path.relpath(c, args.timing), case["schemes"].split(",")[0],
                "persistent" if case["persistent"] else ",".join(sorted(set(case["tiles"]))),
                len(case["runs"]), ["%.1f" % r["predicted_us"] for r in case["runs"]]))
        if not cases:
            sys.exit("no timing cases under %s" % args.timing)
        return

    import torch
    from gpulib import make_backend
    global DEVICE
    t_start = time.time()
    if args.dry_run:
        DEVICE = "cpu"
        backend = DryRunBackend()
        l2_bytes, bandwidth, device = 50 * 2 ** 20, 4.0e12, "dry run (CPU, no kernels)"
    else:
        torch.cuda.init()
        torch.empty(1, device="cuda")
        backend = make_backend(args.backend)
        l2_bytes = torch.cuda.get_device_properties(0).L2_cache_size
        bandwidth = measure_copy_bandwidth(torch)
        device = torch.cuda.get_device_name(0)
    gen = torch.Generator(device=DEVICE)
    gen.manual_seed(1234)
    print("device %s, L2 %.0f MB, measured copy bandwidth %.2f TB/s" % (
        device, l2_bytes / 1e6, bandwidth / 1e12), flush=True)
    results, cache, skipped = [], {}, []
    for case_dir in cases:
        rel = os.path.relpath(case_dir, args.timing)
        if time.time() - t_start > args.budget:
            skipped.append(rel)
            continue
        with open(os.path.join(case_dir, "case.json")) as f:
            case = json.load(f)
        entry = {"case": rel, "scheme": case["schemes"].split(",")[0], "n": case["n"],
                 "k": case["k"], "tokens": case["tokens"], "top_k": case["top_k"],
                 "persistent": case["persistent"], "tiles": sorted(set(case["tiles"]))}
        try:
            runs = run_case(torch, backend, case_dir, case, args, l2_bytes, gen)
            for run in runs:
                rb = roofline_bytes(case, run)
                run["roofline_us"] = rb / bandwidth * 1e6
                run["roofline_bytes"] = rb
                run["ratio_to_predicted"] = run["measured_us"] / run["predicted_us"] \
                    if run["predicted_us"] else None
                run["ratio_to_roofline"] = run["measured_us"] / run["roofline_us"]
                bf16, bf16_min = bf16_baseline(torch, case["n"], case["k"], run["expert_rows"],
                                               args, gen, cache)
                run["bf16_us"] = bf16
                run["speedup_vs_bf16"] = bf16 / run["measured_us"]
            entry["runs"] = runs
        except Exception as e:  # noqa: BLE001 - recorded, the next case runs
            entry["error"] = "%s: %s" % (type(e).__name__, e)
            print("%s: %s" % (rel, entry["error"]), flush=True)
            if "ILLEGAL" in str(e) or "LAUNCH_FAILED" in str(e) or "MISALIGNED" in str(e):
                results.append(entry)
                print("the CUDA context is lost; stopping", flush=True)
                break
        results.append(entry)
    total = time.time() - t_start
    print()
    print("%-11s %-11s %5s %-7s %-24s %10s %10s %6s %10s %6s %9s %6s" % (
        "scheme", "N x K", "T", "split", "kernel", "meas (us)", "model (us)", "ratio",
        "roof (us)", "x roof", "bf16 (us)", "x bf16"))
    for e in results:
        for r in e.get("runs", []):
            split = r.get("split") or "-"
            kernel = "persistent " + "/".join(e["tiles"]) if e["persistent"] else "/".join(e["tiles"])
            print("%-11s %-11s %5d %-7s %-24s %10.1f %10.1f %6.2f %10.1f %6.2f %9.1f %6.2f" % (
                e["scheme"], "%dx%d" % (e["n"], e["k"]), e["tokens"], split, kernel[:24],
                r["measured_us"], r["predicted_us"], r["ratio_to_predicted"] or 0,
                r["roofline_us"], r["ratio_to_roofline"], r["bf16_us"], r["speedup_vs_bf16"]))
        if e.get("error"):
            print("%-11s %-11s %5d ERROR %s" % (e["scheme"], "%dx%d" % (e["n"], e["k"]),
                                               e["tokens"], e["error"][:80]))
    print_matrix(results)
    if skipped:
        print("skipped (budget): %d cases" % len(skipped))
    print("total %.1f s" % total)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"tool": "time_gemms", "device": device, "l2_bytes": l2_bytes,
                       "copy_bandwidth_bytes_per_s": bandwidth, "iters": args.iters,
                       "results": results, "skipped": skipped, "seconds": round(total, 1)},
                      f, indent=1)


if __name__ == "__main__":
    main()
