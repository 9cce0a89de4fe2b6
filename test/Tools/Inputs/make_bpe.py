"""Train a small byte-level BPE tokenizer the way the Qwen tokenizers are built (the Qwen2
pre-tokenizer regex, then byte-level mapping; special tokens added) and write it into a model
directory as tokenizer.json and tokenizer_config.json.

  make_bpe.py MODEL_DIR --text FILE --vocab N

N counts the special tokens; it must not exceed the model's vocab_size. Deterministic.
"""
import argparse
import json
import os

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

# Qwen2's pre-tokenizer (tokenizer.json of Qwen/Qwen1.5-MoE-A2.7B), which llama.cpp's "qwen2"
# pre-tokenizer implements.
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
                 r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("--text", required=True)
    ap.add_argument("--vocab", type=int, required=True)
    a = ap.parse_args()
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=a.vocab - len(SPECIAL), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train([a.text], trainer)
    tokenizer.add_special_tokens(SPECIAL)
    tokenizer.save(os.path.join(a.model_dir, "tokenizer.json"))
    json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "add_bos_token": False,
               "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
               "model_max_length": 128}, open(os.path.join(a.model_dir, "tokenizer_config.json"), "w"),
              indent=1)
    print("tokenizer: %d tokens" % tokenizer.get_vocab_size())


if __name__ == "__main__":
    main()
