"""Writes the seed corpora of the fuzz targets (test/Fuzz/corpus/<target>/)
from small models, statistics and artifacts that moeq's own tools generate,
and from the MLIR of the dialect tests.

  python test/Fuzz/make_seeds.py BUILD_DIR

Targets that take several files get them in one input the way
FuzzInputFiles.h splits it (libFuzzer's FuzzedDataProvider: each part but
the last a random-length string, a backslash doubled and the part ended by
a backslash and one other byte; the last part is the rest). The fuzzers'
findings kept in the corpora (crash-*, oom-*, ...) are not touched.
"""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FAMILIES = ("mixtral", "phimoe", "qwen2_moe", "qwen3_moe", "deepseek_v2", "deepseek_v3", "olmoe")
# Artifacts are large (a manifest lists every kernel's plan): seeds of three families.
ARTIFACT_FAMILIES = ("mixtral", "qwen2_moe", "deepseek_v3")


def provider_input(parts):
    """FuzzedDataProvider's encoding of parts[:-1] as random-length strings, then parts[-1]."""
    out = bytearray()
    for part in parts[:-1]:
        out += part.replace(b"\\", b"\\\\") + b"\\x"
    return bytes(out + parts[-1])


def write(target, data):
    folder = os.path.join(HERE, "corpus", target)
    os.makedirs(folder, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def tool(build, name, *args):
    subprocess.run([os.path.join(build, "bin", name)] + list(args), check=True,
                   capture_output=True)


def remove_generated_seeds():
    """Removes the seeds this script wrote (named by their SHA-1); the fuzzers'
    findings kept as regression seeds (crash-*, oom-*, leak-*, timeout-*) stay."""
    corpus = os.path.join(HERE, "corpus")
    for target in os.listdir(corpus) if os.path.isdir(corpus) else []:
        for name in os.listdir(os.path.join(corpus, target)):
            if re.fullmatch(r"[0-9a-f]{40}", name):
                os.remove(os.path.join(corpus, target, name))


def main():
    build = os.path.abspath(sys.argv[1])
    remove_generated_seeds()
    tmp = tempfile.mkdtemp(prefix="moeq-seeds-")
    try:
        for family in FAMILIES:
            model = os.path.join(tmp, family)
            extra = ["--fp8"] if family == "deepseek_v3" else []
            tool(build, "moeq-gen-checkpoint", "-o", model, "--family", family, "--layers", "1",
                 "--hidden", "32", "--intermediate", "32", "--experts", "4", "--top-k", "2",
                 "--vocab", "32", "--heads", "2", "--kv-heads", "1", *extra)
            config, weights = (read(os.path.join(model, n))
                               for n in ("config.json", "model.safetensors"))
            write("model-config", config)
            write("safetensors", weights)
            header = json.loads(weights[8:8 + int.from_bytes(weights[:8], "little")])
            index = {"metadata": {"total_size": len(weights)},
                     "weight_map": {n: "model-00001-of-00001.safetensors"
                                    for n in header if n != "__metadata__"}}
            write("checkpoint", provider_input([json.dumps(index).encode(), weights]))
            stats = os.path.join(tmp, family + "-stats")
            tool(build, "moeq-stats", model, "--random-inputs", "64", "--samples-per-expert", "8",
                 "-o", stats, "--quiet")
            layer = sorted(n for n in os.listdir(stats) if n.startswith("layer-"))[0]
            write("statistics", provider_input([read(os.path.join(stats, "stats.json")),
                                                read(os.path.join(stats, layer))]))
            write("safetensors", read(os.path.join(stats, layer)))
            if family not in ARTIFACT_FAMILIES:
                continue
            for flags in (["--bits", "4", "--group-size", "32"],
                          ["--avg-bits", "3", "--stats", stats],
                          ["--bits", "3", "--group-size", "32", "--format", "lut"]):
                artifact = os.path.join(tmp, family + "-artifact")
                try:
                    tool(build, "moeq-compile", model, "-o", artifact, "--quiet", *flags)
                except subprocess.CalledProcessError:
                    continue  # (a scheme this family's shapes do not take)
                manifest = read(os.path.join(artifact, "manifest.json"))
                write("manifest", manifest)
                write("export", provider_input([
                    read(os.path.join(artifact, "hf", "config.json")), manifest,
                    read(os.path.join(artifact, "experts.safetensors")),
                    read(os.path.join(artifact, "params.safetensors"))]))
        two_layers, partial = os.path.join(tmp, "two-layers"), os.path.join(tmp, "partial")
        tool(build, "moeq-gen-checkpoint", "-o", two_layers, "--layers", "2", "--hidden", "32",
             "--intermediate", "32", "--experts", "4", "--top-k", "2", "--vocab", "32",
             "--heads", "2", "--kv-heads", "1")
        tool(build, "moeq-compile", two_layers, "-o", partial, "--quiet", "--layers", "0:1")
        write("manifest", read(os.path.join(partial, "manifest.json")))
    finally:
        shutil.rmtree(tmp)
    for folder in ("Dialect/MoEQ", "Passes", "Conversion"):
        for name in sorted(os.listdir(os.path.join(ROOT, "test", folder))):
            if name.endswith(".mlir"):
                text = read(os.path.join(ROOT, "test", folder, name)).decode()
                for piece in re.split(r"^// -----$", text, flags=re.M):
                    if "moeq." in piece and len(piece) < 20000:
                        write("ir", piece.encode())
    for target in sorted(os.listdir(os.path.join(HERE, "corpus"))):
        folder = os.path.join(HERE, "corpus", target)
        files = os.listdir(folder)
        print("%-14s %3d seeds, %7d bytes" % (
            target, len(files), sum(os.path.getsize(os.path.join(folder, f)) for f in files)))


if __name__ == "__main__":
    main()
