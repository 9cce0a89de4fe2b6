"""The packed format's round trip over every scheme: for each weight width,
group width, symmetry, number format (integers, level tables), SliM-LLM
group widths and kernel path, moeq-kernel-check quantizes a random weight,
packs it with lib/Quant's packer, runs the generated kernel (whose codes are
read and dequantised by the packed-code ops, lowered by
moeq-lower-dequantization) in the GPU emulator and compares it with the
GEMM of lib/Quant's own dequantisation of the same codes. Prints one line
per case and a summary; exits 1 on any disagreement."""
import subprocess
import sys

TENSOR_CORE = "mma:16x64x32w2s2"
N, K = 64, 256


def cases():
    for bits in range(1, 9):
        for group in ["g32", "g128", "pc"]:
            for symmetry in ["a", "s"]:
                if symmetry == "s" and bits == 1:
                    continue  # binarisation is asymmetric
                yield f"w{bits}a16{group}{symmetry}", None
    for bits in range(1, 5):  # DDQ level tables: 1-4 bits, asymmetric
        for group in ["g32", "g128"]:
            yield f"w{bits}a16{group}a_lut", None
    # SliM-LLM group widths (mean 3 and 5; one group per 32 columns).
    yield "w3a16g32a", "2,4,3,3,4,2,3,3"
    yield "w5a16g32a", "4,6,5,5,6,4,5,5"
    yield "w2a16g32a", "1,3,2,2,3,1,2,2"
    # Integer activations: the SIMT kernel dequantises the weight codes (the
    # tensor-core kernel feeds the words to integer MMAs unchanged).
    yield "w8a8pcs", None
    yield "w4a4g32s", None


def tiles(scheme):
    if "a16" not in scheme:
        return ["simt"]
    return ["simt", TENSOR_CORE]


def main():
    tool = sys.argv[1]
    failures = 0
    count = 0
    for scheme, widths in cases():
        for tile in tiles(scheme):
            args = [tool, "--scheme", scheme, "--n", str(N), "--k", str(K), "--rows", "1,17",
                    "--tile", tile]
            if widths:
                args += ["--group-bits", widths]
            run = subprocess.run(args, capture_output=True, text=True)
            count += 1
            label = scheme + (f" gb {widths}" if widths else "") + " " + tile.split(":")[0]
            if run.returncode != 0 or run.stdout.count(": OK") != 2:
                failures += 1
                print(f"MISMATCH {label}\n{run.stdout}{run.stderr}")
            else:
                print(f"agree {label}")
    print(f"{count} cases, {count - failures} agree")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
