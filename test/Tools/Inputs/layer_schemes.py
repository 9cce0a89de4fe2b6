"""Counts the distinct schemes of each MoE layer's routed experts in an artifact's manifest,
and the average stored bits per routed weight (bits per weight as the manifest's scheme
gives it: codes plus f16 scales and zeros per group).

  layer_schemes.py MANIFEST
"""
import json
import sys


def main():
    manifest = json.load(open(sys.argv[1]))
    weights, bits = 0, 0.0
    for layer in manifest["layers"]:
        schemes = set()
        for expert in layer.get("experts", []):
            for linear in expert["linears"].values():
                schemes.add(linear["scheme"])
                rows, cols = linear["shape"]
                group = linear["group_size"] or cols
                overhead = 16 * (1 if linear["symmetric"] else 2) / group
                weights += rows * cols
                bits += rows * cols * (linear["bits"] + overhead)
        print("layer %d: %d scheme%s (%s)" % (layer["layer"], len(schemes),
                                              "" if len(schemes) == 1 else "s",
                                              ", ".join(sorted(schemes))))
    print("average bits %.3f" % (bits / weights))


if __name__ == "__main__":
    main()
