"""Textbook GPTQ in PyTorch: the reference moeq's GPTQ is timed against.

  python bench/gptq_reference.py --weights W.npy --hessian H.npy --bits 4 --group 128 \
      --threads 2 --out Q.npy

The algorithm of the GPTQ paper's reference implementation (Frantar et al.,
`fasterquant`), float32 throughout: dampening 1% of the mean diagonal,
Hinv = upper Cholesky factor of (H + damp)^-1 computed as the reference
does (cholesky, cholesky_inverse, cholesky upper: three O(cols^3)
factorisations), lazy batches of 128 columns (in-block error feedback
column by column, one matmul per batch for the rest), asymmetric min/max
group parameters found when a group starts (GPTQ's Quantizer: the range
always includes 0). Dead inputs (zero diagonal) are zeroed as in the
reference. Prints one JSON line with the wall time of the quantization
(loading and saving excluded) and writes the dequantized weights (float32).
"""
import argparse
import json
import time

import numpy as np
import torch


def quantize(x, scale, zero, maxq):
    q = torch.clamp(torch.round(x / scale) + zero, 0, maxq)
    return scale * (q - zero)


def find_params(x, maxq, f16_scales=False):
    """GPTQ's Quantizer.find_params for weights (per row, asymmetric). With
    f16_scales the scale is rounded to f16 first (what a kernel stores and
    reads; moeq does the same), the zero point computed from it."""
    tmp = torch.zeros(x.shape[0], device=x.device)
    xmin = torch.minimum(x.min(1)[0], tmp)
    xmax = torch.maximum(x.max(1)[0], tmp)
    tmp = (xmin == 0) & (xmax == 0)
    xmin[tmp] = -1
    xmax[tmp] = +1
    scale = (xmax - xmin) / maxq
    if f16_scales:
        scale = scale.half().float()
    zero = torch.round(-xmin / scale)
    return scale.unsqueeze(1), zero.unsqueeze(1)


def gptq(W, H, bits, groupsize, blocksize=128, percdamp=0.01, f16_scales=False):
    W = W.clone().float()
    H = H.clone().float()
    rows, columns = W.shape
    maxq = 2 ** bits - 1
    if groupsize <= 0:
        scale, zero = find_params(W, maxq, f16_scales)

    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0

    damp = percdamp * torch.mean(torch.diag(H))
    diag = torch.arange(columns, device=W.device)
    H[diag, diag] += damp
    H = torch.linalg.cholesky(H)
    H = torch.cholesky_inverse(H)
    H = torch.linalg.cholesky(H, upper=True)
    Hinv = H

    Q = torch.zeros_like(W)
    for i1 in range(0, columns, blocksize):
        i2 = min(i1 + blocksize, columns)
        count = i2 - i1
        W1 = W[:, i1:i2].clone()
        Q1 = torch.zeros_like(W1)
        Err1 = torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        for i in range(count):
            w = W1[:, i]
            d = Hinv1[i, i]
            if groupsize > 0 and (i1 + i) % groupsize == 0:
                scale, zero = find_params(W[:, (i1 + i):(i1 + i + groupsize)], maxq, f16_scales)
            q = quantize(w.unsqueeze(1), scale, zero, maxq).flatten()
            Q1[:, i] = q
            err1 = (w - q) / d
            W1[:, i:] -= err1.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
            Err1[:, i] = err1
        Q[:, i1:i2] = Q1
        W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])
    return Q


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", required=True, help=".npy float32 [rows, cols]")
    ap.add_argument("--hessian", required=True, help=".npy float32/float64 [cols, cols]")
    ap.add_argument("--bits", type=int, default=4)
    ap.add_argument("--group", type=int, default=128)
    ap.add_argument("--block", type=int, default=128)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--out", help=".npy of the dequantized weights (float32)")
    ap.add_argument("--f16-scales", action="store_true",
                    help="round each group's scale to f16, as stored for a kernel")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    W = torch.from_numpy(np.load(args.weights).astype(np.float32, copy=False))
    H = torch.from_numpy(np.load(args.hessian).astype(np.float32))
    start = time.perf_counter()
    Q = gptq(W, H, args.bits, args.group, args.block, f16_scales=args.f16_scales)
    seconds = time.perf_counter() - start
    if args.out:
        np.save(args.out, Q.numpy())
    print(json.dumps({"seconds": round(seconds, 3), "threads": torch.get_num_threads(),
                      "blas": "mkl" if torch.backends.mkl.is_available() else "other"}))


if __name__ == "__main__":
    main()
