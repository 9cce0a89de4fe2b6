"""Copies a statistics directory (format version 2) without the tensors
whose names contain argv[3], keeping every file's metadata: statistics as
an older producer wrote them. (The safetensors layout is rewritten with the
standard library: an 8-byte header length, the JSON header, the data.)

  python drop_stats_tensors.py SRC_DIR DST_DIR SUBSTRING
"""
import json
import os
import shutil
import struct
import sys

src, dst, dropped = sys.argv[1:4]
shutil.copytree(src, dst)
removed = 0
for name in sorted(os.listdir(dst)):
    if not name.endswith(".safetensors"):
        continue
    path = os.path.join(dst, name)
    blob = open(path, "rb").read()
    (size,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + size])
    data = blob[8 + size:]
    kept, chunks, offset = {}, [], 0
    for key, info in sorted(header.items(), key=lambda kv: kv[1].get("data_offsets", [0])[0]
                            if kv[0] != "__metadata__" else -1):
        if key == "__metadata__":
            kept[key] = info
            continue
        if dropped in key:
            removed += 1
            continue
        begin, end = info["data_offsets"]
        chunks.append(data[begin:end])
        kept[key] = dict(info, data_offsets=[offset, offset + end - begin])
        offset += end - begin
    text = json.dumps(kept, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))
print("removed %d tensors" % removed)
