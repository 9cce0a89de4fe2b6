"""Train a SentencePiece model of exactly N pieces on a text file (for GGUF
vocabulary tests): make_spm.py TEXT N OUT.model"""
import io
import sys

import sentencepiece as spm

text, size, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
model = io.BytesIO()
spm.SentencePieceTrainer.train(sentence_iterator=iter(open(text).read().splitlines()),
                               model_writer=model, vocab_size=size, model_type="bpe",
                               character_coverage=0.98, minloglevel=2)
open(out, "wb").write(model.getvalue())
