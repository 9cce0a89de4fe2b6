"""Copies a statistics directory (format version 2) without the tensors
whose names contain argv[3], keeping every file's metadata: statistics as
an older producer wrote them.

  python drop_stats_tensors.py SRC_DIR DST_DIR SUBSTRING
"""
import os
import shutil
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Utils"))
from safetensors_rewrite import rewrite  # noqa: E402

src, dst, dropped = sys.argv[1:4]
shutil.copytree(src, dst)
removed = []


def drop(header, tensors):
    for name in [n for n in tensors if dropped in n]:
        del tensors[name], header[name]
        removed.append(name)


for name in sorted(os.listdir(dst)):
    if name.endswith(".safetensors"):
        rewrite(os.path.join(dst, name), drop)
print("removed %d tensors" % len(removed))
