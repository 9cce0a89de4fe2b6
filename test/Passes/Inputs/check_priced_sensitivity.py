"""Checks moeq-estimate-sensitivity's group-bits pricing: argv[1] holds the
loss tables without it, argv[2] with it, argv[3] the candidate list and
argv[4] which of them can mix widths (1/0 each). A mixable candidate's
priced loss is never above its uniform-width loss (k = 0 is among the widths
tried) and is below it somewhere; the others are unchanged."""
import re
import sys

plain_path, priced_path, names, mixable = sys.argv[1:5]
names = names.split(",")
mixable = [m == "1" for m in mixable.split(",")]
pattern = r"(\w+) = dense<(\[\[.*?\]\])> : tensor<(\d+)x(\d+)xf64>"
plain = re.findall(pattern, open(plain_path).read())
priced = re.findall(pattern, open(priced_path).read())
assert plain and len(plain) == len(priced)
lower = 0
for (name, a, _, _), (name2, b, _, _) in zip(plain, priced):
    assert name == name2
    for row_a, row_b in zip(eval(a), eval(b)):
        for scheme, can_mix, x, y in zip(names, mixable, row_a, row_b):
            if not can_mix:
                assert x == y, (name, scheme, x, y)
            else:
                assert y <= x * (1 + 1e-12), (name, scheme, x, y)
                lower += y < x * (1 - 1e-9)
assert lower > 0, "pricing lowered no loss"
print("priced: %d tables, %d losses lowered by group widths, none raised" % (len(plain), lower))
