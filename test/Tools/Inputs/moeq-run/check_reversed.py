"""check_reversed.py X Y: prints whether tensor y (F32) of Y holds the rows
of tensor x of X in reverse order."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_util as st

_, shape, x = st.read(sys.argv[1], "x")
dtype, y_shape, y = st.read(sys.argv[2], "y")
rows, cols = shape
expected = [x[(rows - 1 - r) * cols + c] for r in range(rows) for c in range(cols)]
print("dtype", dtype, "shape", tuple(y_shape), "reversed", y_shape == shape and y == expected)
