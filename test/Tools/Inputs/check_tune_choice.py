"""moeq_tune.choose and paired_ratio on made-up per-window KLs.

  check_tune_choice.py MOEQ_PYTHON_DIR
"""
import sys

sys.path.insert(0, sys.argv[1])
import moeq_tune  # noqa: E402

base = [1.0 + 0.1 * (i % 7) for i in range(64)]


def trial(per_window, **extra):
    r = {"per_window": per_window, "kl": sum(per_window) / len(per_window)}
    if per_window is not base:
        r["ratio"], r["low"], r["high"] = moeq_tune.paired_ratio(per_window, base)
    r.update(extra)
    return r


def report(name, results):
    chosen, _ = moeq_tune.choose(results)
    index = results.index(chosen) + 1
    if index == 1:
        print("%s: chosen 1 (the defaults)" % name)
    else:
        print("%s: chosen %d (ratio %.3f, interval below 1: %s)"
              % (name, index, chosen["ratio"], chosen["high"] < 1))


# 0.9x and 0.5x on every window: the lowest KL.
report("clearly better", [trial(base), trial([0.9 * k for k in base]),
                          trial([0.5 * k for k in base])])
# Lower on average (0.95x) but 3x on some windows and 0.1x on others: not significant.
noisy = [k * (3.0 if i % 2 else 0.1) * 0.95 / 1.55 for i, k in enumerate(base)]
report("noisy", [trial(base), trial(noisy)])
# The same weights as the defaults are never "better".
report("same weights", [trial(base), trial(list(base), same_as=1)])
