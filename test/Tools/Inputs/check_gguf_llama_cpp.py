"""Run a `moeq-export --format gguf` file in llama.cpp (llama-cpp-python 0.3.36, CPU) and compare
its logits with the dequantized export of the same artifact run by transformers.

  check_gguf_llama_cpp.py GGUF DEQUANTIZED_EXPORT SCRATCH_DIR [--float-tolerance T]

1. The GGUF as exported (Q4_0, Q8_0, ...): llama.cpp's CPU dot products quantize the activations
   to 8 bits (Q8_0/Q8_1 blocks) for quantized weights, so its logits differ from a float
   computation by that rounding: printed (relative max difference, top-1 agreement), bounded
   loosely (--quantized-bound, 5e-2; a token whose top-k experts are nearly tied may be routed
   differently after the rounding, which moves its logits by far more).
2. The same file with every tensor dequantized to F32 by the gguf package (same metadata, names,
   shapes and order): llama.cpp then computes in floats, and its logits must equal the
   dequantized export's to 1e-5 relative (T; types that store moeq's zero point as an f16 min,
   Q4_1/Q5_1, need a looser T). This checks what moeq writes besides the blocks (the
   architecture, hyper-parameters, tensor names and layouts, the q/k rotary permutation, the
   stacked experts, the router) by running it.
3. With --tokenize TEXT: llama.cpp's tokenizer (the GGUF vocabulary, merges and pre-tokenizer)
   against transformers' (the export's tokenizer files) on every line of TEXT: equal ids.
Prints OK, or MISMATCH and exits 1.
"""
import argparse
import os
import sys

import gguf
import llama_cpp
import numpy as np
import torch
import transformers
from gguf import GGUFReader, GGUFValueType, GGUFWriter


def to_f32_gguf(src, dst):
    reader = GGUFReader(src)
    writer = GGUFWriter(dst, reader.fields["general.architecture"].contents())
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        kind = field.types[0]
        writer.add_key_value(name, field.contents(), kind,
                             sub_type=field.types[-1] if kind == GGUFValueType.ARRAY else None)
    for tensor in reader.tensors:
        writer.add_tensor(tensor.name,
                          gguf.quants.dequantize(tensor.data, tensor.tensor_type).astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def llama_logits(path, ids):
    llm = llama_cpp.Llama(model_path=path, logits_all=True, n_ctx=64, n_batch=64, n_threads=2,
                          type_k=0, type_v=0, verbose=False)  # (f32 KV cache)
    llm.reset()
    llm.eval(ids)
    return np.array(llm.scores[:len(ids)], dtype=np.float64)


def compare_tokenizers(gguf_path, dequantized, text_path):
    llm = llama_cpp.Llama(model_path=gguf_path, vocab_only=True, verbose=False)
    hf = transformers.AutoTokenizer.from_pretrained(dequantized)
    lines = [l for l in open(text_path, encoding="utf-8").read().splitlines() if l.strip()]
    # What the pre-tokenizer's regex separates: contractions in any case, digits one by one,
    # runs of spaces and newlines, punctuation runs, letters beyond ASCII, special tokens.
    lines += ["<|im_start|>user\nHello, world!<|im_end|>", "I'LL don't we've 12345 x=3.14;",
              "  two  spaces\n\n\tand a tab...!?", "café naïve — 東京 Ünïcödé", "<|endoftext|>"]
    different, tokens = 0, 0
    for line in lines:
        theirs = hf.encode(line, add_special_tokens=False)
        ours = llm.tokenize(line.encode("utf-8"), add_bos=False, special=True)
        tokens += len(theirs)
        if ours != theirs:
            if different == 0:
                print("tokenizer: first difference on %r: llama.cpp %s, transformers %s"
                      % (line[:60], ours[:12], theirs[:12]))
            different += 1
    print("tokenizer: %d lines, %d tokens, %d lines tokenized differently"
          % (len(lines), tokens, different))
    return different == 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("gguf")
    ap.add_argument("dequantized")
    ap.add_argument("scratch")
    ap.add_argument("--float-tolerance", type=float, default=1e-5)
    ap.add_argument("--quantized-bound", type=float, default=5e-2)
    ap.add_argument("--tokenize", metavar="TEXT")
    a = ap.parse_args()
    gguf_path, dequantized, scratch, tolerance = a.gguf, a.dequantized, a.scratch, a.float_tolerance
    reference = transformers.AutoModelForCausalLM.from_pretrained(dequantized,
                                                                  dtype=torch.float32).eval()
    vocab = reference.config.vocab_size
    ids = [(5 * i + 1) % vocab for i in range(24)]
    with torch.no_grad():
        want = reference(input_ids=torch.tensor([ids])).logits[0].double().numpy()
    scale = np.abs(want).max()
    ok = True

    got = llama_logits(gguf_path, ids)
    rel = np.abs(got - want).max() / scale
    top1 = float((got.argmax(-1) == want.argmax(-1)).mean())
    print("llama.cpp, quantized types: max |difference| / max |logit| %.1e, top-1 agreement %.2f"
          % (rel, top1))
    if not rel <= a.quantized_bound:
        print("MISMATCH: quantized")
        ok = False

    f32 = os.path.join(scratch, "f32.gguf")
    to_f32_gguf(gguf_path, f32)
    got = llama_logits(f32, ids)
    rel = np.abs(got - want).max() / scale
    print("llama.cpp, weights dequantized to F32: max |difference| / max |logit| %s"
          % ("below %g" % tolerance if rel < tolerance else "%.1e" % rel))
    if not rel < tolerance:
        print("MISMATCH: float")
        ok = False
    if a.tokenize:
        ok &= compare_tokenizers(gguf_path, dequantized, a.tokenize)
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
