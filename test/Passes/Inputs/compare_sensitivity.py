"""Compares one loss table (argv[1], e.g. shared_down) of the
moeq.sensitivity attributes of two MLIR files, layer by layer: prints
whether they agree within a relative tolerance (argv[4], default 1e-5)."""
import re
import sys

name, first, second = sys.argv[1:4]
tolerance = float(sys.argv[4]) if len(sys.argv) > 4 else 1e-5


def tables(path):
    pattern = r"\b%s = dense<(\[\[.*?\]\])>" % re.escape(name)
    return [eval(t) for t in re.findall(pattern, open(path).read())]


a, b = tables(first), tables(second)
assert a and len(a) == len(b), (len(a), len(b))
worst = max(abs(x - y) / max(abs(y), 1e-300)
            for ta, tb in zip(a, b) for ra, rb in zip(ta, tb) for x, y in zip(ra, rb))
print("%s tables: %d, %s" % (name, len(a), "equal" if worst < tolerance else
                              "differ by %g relative" % worst))
