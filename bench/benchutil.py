"""Shared by the Python benchmark drivers in bench/."""
import os
import subprocess
import sys
import tempfile
import time


def run_measured(cmd, label=None):
    """Runs `cmd` as its own process; returns (wall seconds, peak RSS bytes)
    of that process alone (its rusage from wait4, ru_maxrss in KiB on
    Linux), exiting with its stderr if it fails."""
    if label:
        print(f"  [{label}] {' '.join(cmd)}", file=sys.stderr, flush=True)
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            err.seek(0)
            sys.exit("failed: %s\n%s" % (" ".join(cmd), err.read().decode(errors="replace")[-4000:]))
    return seconds, usage.ru_maxrss * 1024


def tree_bytes(path):
    """Bytes of every file under `path`."""
    return sum(os.path.getsize(os.path.join(root, f))
               for root, _, files in os.walk(path) for f in files)
