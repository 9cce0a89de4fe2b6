"""Checks the moeq.sensitivity attributes of an MLIR file (stdin): every
loss table is non-negative and grows strictly along the candidate list given
as argv[1] (most accurate scheme first)."""
import re
import sys

text = sys.stdin.read()
tables = re.findall(r"(\w+) = dense<(\[\[.*?\]\])> : tensor<(\d+)x(\d+)xf64>", text)
assert tables, "no loss tables"
for name, values, rows, cols in tables:
    matrix = eval(values)
    assert len(matrix) == int(rows) and all(len(r) == int(cols) for r in matrix)
    for row in matrix:
        assert all(v >= 0 for v in row), (name, row)
        assert all(a < b for a, b in zip(row, row[1:])), (name, row)
print("checked", len(tables), "tables of", sys.argv[1])
