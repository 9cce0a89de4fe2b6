"""moeq's CPU execution of the trained fixture's MoE layers against the
independent PyTorch reference in ../shared/fixtures (model.py).

  python bench/fixture_reference.py SHARED_FIXTURES_DIR BUILD_DIR [--windows N]

Runs the reference model on the first N 256-byte windows of eval.txt, captures
the real hidden states entering every MoE block (forward hooks), runs each
layer through `moeq-cpu-runner` on exactly those inputs, and prints one JSON
line per layer with the maximum absolute and relative error of the MoE block
output. A measurement for docs/, not a test: the fixtures are not part of the
repository.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file, save_file


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("fixtures")
    ap.add_argument("build")
    ap.add_argument("--windows", type=int, default=8)
    args = ap.parse_args()
    sys.path.insert(0, args.fixtures)
    from model import load_model  # noqa: E402  (the fixture's reference)

    model_dir = os.path.join(args.fixtures, "tiny-mixtral")
    model, cfg = load_model(model_dir, dtype=torch.float32)
    text = open(os.path.join(args.fixtures, "corpus", "eval.txt"), "rb").read()
    ids = torch.tensor([list(text[i * 256:(i + 1) * 256]) for i in range(args.windows)])

    captured = {}
    hooks = []
    for idx, layer in enumerate(model.model.layers):
        block = layer.moe

        def hook(module, inputs, output, idx=idx):
            captured[idx] = (inputs[0].reshape(-1, cfg["hidden_size"]).detach().clone(),
                             output[0].reshape(-1, cfg["hidden_size"]).detach().clone())
        hooks.append(block.register_forward_hook(hook))
    with torch.no_grad():
        model(ids)
    for h in hooks:
        h.remove()

    runner = os.path.join(args.build, "bin", "moeq-cpu-runner")
    with tempfile.TemporaryDirectory() as tmp:
        for idx, (x, y_ref) in sorted(captured.items()):
            x_path, y_path = os.path.join(tmp, "x.safetensors"), os.path.join(tmp, "y.safetensors")
            save_file({"x": x.contiguous()}, x_path)
            subprocess.run([runner, model_dir, "--layer", str(idx), "--input", x_path, "-o", y_path],
                           check=True)
            y = load_file(y_path)["y"]
            err = (y - y_ref).abs().max().item()
            print(json.dumps({"layer": idx, "tokens": x.shape[0],
                              "max_abs_error": err,
                              "max_abs_output": y_ref.abs().max().item(),
                              "relative_error": err / y_ref.abs().max().item()}))


if __name__ == "__main__":
    main()
