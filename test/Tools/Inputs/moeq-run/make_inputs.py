"""Inputs of test/Tools/moeq-run.test: make_inputs.py OUT ARTIFACT writes the
artifact's params.safetensors and the input files under OUT."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_util as st

out, artifact = sys.argv[1], sys.argv[2]
hidden, tokens = 128, 33
st.write(os.path.join(artifact, "params.safetensors"), {"cols": ("I32", [1], [hidden])})

# Multiples of 1/64 below 16 in magnitude: exact in f16.
fine = [((i * 7919) % 2001 - 1000) / 64 for i in range(tokens * hidden)]
# Multiples of 1/4 below 32: exact in bf16 and f16.
coarse = [((i * 31) % 201 - 100) / 4 for i in range(tokens * hidden)]
st.write(os.path.join(out, "x.safetensors"), {"x": ("F32", [tokens, hidden], fine)})
st.write(os.path.join(out, "x16.safetensors"), {"x": ("F16", [tokens, hidden], fine)})
st.write(os.path.join(out, "xbf16.safetensors"), {"x": ("BF16", [tokens, hidden], coarse)})
st.write(os.path.join(out, "empty.safetensors"), {"x": ("F32", [0, hidden], [])})
st.write(os.path.join(out, "narrow.safetensors"), {"x": ("F32", [4, 64], [0.0] * 256)})
st.write(os.path.join(out, "nox.safetensors"), {"y": ("F32", [4, hidden], [0.0] * 512)})
