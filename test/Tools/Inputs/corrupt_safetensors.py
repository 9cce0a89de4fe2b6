"""Corrupts a safetensors file (statistics, artifact weights), for bad-input tests.

  corrupt_safetensors.py FILE nan TENSOR       element 0 of TENSOR (F32/F64) := NaN
  corrupt_safetensors.py FILE truncate BYTES   keep the first BYTES bytes (negative: drop
                                               the last -BYTES)
  corrupt_safetensors.py FILE flip OFFSET      invert the bits of the byte at OFFSET
                                               (negative: from the end)
"""
import json
import struct
import sys


def main():
    path, action, arg = sys.argv[1:4]
    data = bytearray(open(path, "rb").read())
    if action == "truncate":
        data = data[:int(arg)]
    elif action == "flip":
        data[int(arg)] ^= 0xFF
    else:
        length = int.from_bytes(data[:8], "little")
        info = json.loads(data[8:8 + length])[arg]
        offset = 8 + length + info["data_offsets"][0]
        if info["dtype"] == "F32":
            data[offset:offset + 4] = struct.pack("<f", float("nan"))
        else:
            data[offset:offset + 8] = struct.pack("<d", float("nan"))
    open(path, "wb").write(bytes(data))
    print("corrupted %s (%s %s)" % (path, action, arg))


if __name__ == "__main__":
    main()
