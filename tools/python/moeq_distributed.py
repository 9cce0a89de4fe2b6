#!/usr/bin/env python3
"""Compile a Mixture-of-Experts checkpoint in layer slices on a Ray cluster, then merge.

  moeq_distributed.py MODEL -o OUT (--slices N | --layers-per-slice K)
      [--address ADDR] [--num-cpus N] [--cpus-per-slice C]
      [--work-dir DIR] [--keep-slices] [--moeq-compile PATH] [--moeq-merge PATH]
      [-- moeq-compile options...]

Each slice is one Ray task (a `ray.remote` function) that runs the moeq-compile binary with
`--layers A:B` into a directory every node can reach (--work-dir, by default a sibling of OUT:
put OUT on a shared file system on a multi-node cluster). When all tasks are done, moeq-merge
joins the partial artifacts into OUT: the same bytes as one `moeq-compile MODEL -o OUT` with the
same options (docs/distributed.md). Ray schedules the tasks; nothing here does.

--address joins an existing cluster (`ray start --head` / `ray start --address`); without it a
local cluster is started for the run (--num-cpus, default all cores) and stopped at the end.
Every task reserves --cpus-per-slice CPUs and runs moeq-compile with as many threads (unless
the options give --jobs/-j). Options this driver does not know are passed to moeq-compile
(after `--`, or anywhere when unambiguous). The MODEL path and the options are passed unchanged
and the tasks run in the driver's working directory, so relative paths need the same directory
on every node (the report names MODEL as given, like a single compile).

Exit status: 0 when OUT was written; 1 on a failed slice (its stderr is printed, nothing is
merged, OUT is left as it was) or a failed merge; 2 on bad arguments.
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time


def fail(message, status=1):
    print(f"moeq_distributed.py: error: {message}", file=sys.stderr)
    sys.exit(status)


def model_layer_count(model):
    """The decoder layer count of config.json (what --layers ranges over)."""
    path = os.path.join(model, "config.json")
    try:
        with open(path) as f:
            config = json.load(f)
    except (OSError, ValueError) as e:
        fail(f"cannot read {path}: {e}")
    count = config.get("num_hidden_layers")
    if not isinstance(count, int) or count < 1:
        fail(f"{path}: num_hidden_layers is not a positive integer")
    return count


def plan_slices(num_layers, slices=None, layers_per_slice=None):
    """Contiguous ranges [begin, end) covering the layers, as even as possible."""
    if layers_per_slice is not None:
        if layers_per_slice < 1:
            fail("--layers-per-slice must be at least 1", 2)
        return [(b, min(b + layers_per_slice, num_layers))
                for b in range(0, num_layers, layers_per_slice)]
    if slices < 1:
        fail("--slices must be at least 1", 2)
    slices = min(slices, num_layers)
    bounds = [num_layers * i // slices for i in range(slices + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def compile_slice(compiler, model, begin, end, out, options, cwd):
    """Runs on a Ray worker: moeq-compile for the layers [begin, end)."""
    start = time.monotonic()
    command = [compiler, model, "-o", out, "--layers", f"{begin}:{end}", "--quiet", *options]
    result = subprocess.run(command, cwd=cwd if os.path.isdir(cwd) else None,
                            capture_output=True, text=True)
    return {"begin": begin, "end": end, "returncode": result.returncode,
            "stderr": result.stderr, "seconds": time.monotonic() - start,
            "host": socket.gethostname(), "pid": os.getpid(), "command": command}


def tool(path, name):
    """An absolute path of a moeq tool: --moeq-<name>, else from PATH."""
    found = path or shutil.which(name)
    if not found or not os.access(found, os.X_OK):
        fail(f"cannot find {name} (put it on PATH or pass --{name} PATH)", 2)
    return os.path.abspath(found)


def check_reachable(address):
    """Fails at once when nothing listens at a HOST:PORT address: ray.init
    would wait for the cluster's GCS forever."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or "://" in address:
        return  # "auto", "ray://...": Ray's to resolve.
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
    except OSError as e:
        fail(f"no Ray cluster at {address} ({e}): start one with `ray start --head`, "
             f"or leave out --address for a local one")


def parse_arguments(argv):
    parser = argparse.ArgumentParser(
        description="Compile a MoE checkpoint in layer slices as Ray tasks, then merge them.",
        epilog="Options after -- (and unknown options) go to moeq-compile.")
    parser.add_argument("model", help="Hugging Face checkpoint directory")
    parser.add_argument("-o", dest="output", required=True, help="output artifact directory")
    split = parser.add_mutually_exclusive_group(required=True)
    split.add_argument("--slices", type=int, help="number of slices (Ray tasks)")
    split.add_argument("--layers-per-slice", type=int, help="decoder layers per slice")
    parser.add_argument("--address", help="Ray cluster to join (default: start a local one)")
    parser.add_argument("--num-cpus", type=int,
                        help="CPUs of the local cluster started without --address")
    parser.add_argument("--cpus-per-slice", type=int, default=1,
                        help="CPUs each task reserves, and moeq-compile's --jobs (default 1)")
    parser.add_argument("--work-dir", help="shared directory for the slices' partial artifacts "
                                           "(default: a temporary sibling of the output)")
    parser.add_argument("--keep-slices", action="store_true",
                        help="keep the partial artifacts after merging")
    parser.add_argument("--moeq-compile", help="moeq-compile binary (default: from PATH)")
    parser.add_argument("--moeq-merge", help="moeq-merge binary (default: from PATH)")
    own, rest = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv \
        else (argv, [])
    args, unknown = parser.parse_known_args(own)
    args.compile_options = unknown + rest
    for option in args.compile_options:
        if option == "--layers" or option.startswith("--layers=") or option in ("-o",):
            fail(f"{option} is the driver's to set: pass the moeq-compile options only", 2)
    if args.cpus_per_slice < 1:
        fail("--cpus-per-slice must be at least 1", 2)
    return args


def has_jobs_option(options):
    return any(o in ("-j", "--jobs", "-jobs") or o.startswith(("--jobs=", "-j=", "-jobs="))
               for o in options)


def run_slices(ray, args, ranges, work_dir, compiler):
    """Submits one task per slice and waits for all; returns their results in layer order."""
    options = list(args.compile_options)
    if not has_jobs_option(options):
        options += ["--jobs", str(args.cpus_per_slice)]
    task = ray.remote(num_cpus=args.cpus_per_slice, max_retries=0)(compile_slice)
    pending = {}
    for begin, end in ranges:
        out = os.path.join(work_dir, f"layers-{begin}-{end}")
        ref = task.remote(compiler, args.model, begin, end, out, options, os.getcwd())
        pending[ref] = (begin, end)
    results = []
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            begin, end = pending.pop(ref)
            try:
                result = ray.get(ref)
            except ray.exceptions.RayError as e:
                result = {"begin": begin, "end": end, "returncode": -1, "stderr": str(e),
                          "seconds": 0.0, "host": "?", "pid": 0}
            state = "done" if result["returncode"] == 0 else "FAILED"
            print(f"slice {begin}:{end} {state} in {result['seconds']:.2f} s "
                  f"(host {result['host']}, worker pid {result['pid']})", file=sys.stderr)
            results.append(result)
    return sorted(results, key=lambda r: r["begin"])


def main(argv):
    args = parse_arguments(argv)
    compiler = tool(args.moeq_compile, "moeq-compile")
    merger = tool(args.moeq_merge, "moeq-merge")
    num_layers = model_layer_count(args.model)
    ranges = plan_slices(num_layers, args.slices, args.layers_per_slice)

    import ray  # Only now: --help and argument errors work without Ray.

    started = time.monotonic()
    if args.address:
        check_reachable(args.address)
        ray.init(address=args.address, log_to_driver=False)
    else:
        ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
    output = os.path.abspath(args.output)
    work_dir = args.work_dir or tempfile.mkdtemp(
        prefix=os.path.basename(output) + ".slices-", dir=os.path.dirname(output))
    os.makedirs(work_dir, exist_ok=True)
    try:
        print(f"compiling {num_layers} layers of {args.model} in {len(ranges)} slices on Ray "
              f"({ray.cluster_resources().get('CPU', 0):.0f} CPUs)", file=sys.stderr)
        results = run_slices(ray, args, ranges, work_dir, compiler)
        compiled = time.monotonic()
        failed = [r for r in results if r["returncode"] != 0]
        for r in failed:
            print(f"slice {r['begin']}:{r['end']} failed (exit {r['returncode']}):\n"
                  f"{r['stderr'].rstrip()}", file=sys.stderr)
        if failed:
            fail(f"{len(failed)} of {len(results)} slices failed; nothing merged")
        parts = [os.path.join(work_dir, f"layers-{r['begin']}-{r['end']}") for r in results]
        merge = subprocess.run([merger, *parts, "-o", args.output, "--quiet"],
                               capture_output=True, text=True)
        if merge.returncode != 0:
            sys.stderr.write(merge.stderr)
            fail("moeq-merge failed")
        slowest = max(r["seconds"] for r in results)
        print(f"wrote {args.output}: {len(results)} slices in {compiled - started:.2f} s "
              f"(slowest {slowest:.2f} s), merged in {time.monotonic() - compiled:.2f} s",
              file=sys.stderr)
    finally:
        if not args.keep_slices:
            if args.work_dir:
                for begin, end in ranges:
                    shutil.rmtree(os.path.join(work_dir, f"layers-{begin}-{end}"),
                                  ignore_errors=True)
            else:
                shutil.rmtree(work_dir, ignore_errors=True)
        ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
