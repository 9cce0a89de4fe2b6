// RUN: moeq-opt %s -split-input-file -moeq-tile-expert-gemms="tokens=4096 gpu=h100" | FileCheck %s --check-prefix=PREFILL
// RUN: moeq-opt %s -split-input-file -moeq-tile-expert-gemms="tokens=4 gpu=h100" | FileCheck %s --check-prefix=DECODE
// RUN: moeq-opt %s -split-input-file -moeq-tile-expert-gemms="tokens=4096 gpu=h100 path=simt" | FileCheck %s --check-prefix=SIMT
// RUN: not moeq-opt %s -split-input-file -moeq-tile-expert-gemms="path=wmma" 2>&1 | FileCheck %s --check-prefix=BADPATH
// RUN: not moeq-opt %s -split-input-file -moeq-tile-expert-gemms="tokens=0" 2>&1 | FileCheck %s --check-prefix=BADTOKENS

// Rows per expert = tokens * top_k / experts: 4096 * 2 / 4 = 2048 in
// prefill, 2 in decode. One tile per precision mix: the two w4 experts
// share theirs. Prefill picks large tensor-core tiles; decode small ones.
// PREFILL-LABEL: func.func @layer
// PREFILL: moeq.grouped_matmul
// PREFILL-SAME: moeq.rows_per_expert = 2048
// PREFILL-SAME: tiles = [#moeq.tile<path = mma, bm = [[BM:[0-9]+]], bn = [[BN:[0-9]+]], bk = [[BK:[0-9]+]], warps = [[W:[0-9]+]], stages = [[S:[0-9]+]], split_k = 1>, #moeq.tile<path = mma, bm = [[BM]], bn = [[BN]], bk = [[BK]], warps = [[W]], stages = [[S]], split_k = 1>, #moeq.tile<path = mma
// PREFILL-NOT: bm = 16,
// PREFILL: moeq.linear {{.*}}tile = #moeq.tile<path = mma

// DECODE-LABEL: func.func @layer
// DECODE: moeq.grouped_matmul
// DECODE-SAME: moeq.rows_per_expert = 2
// DECODE-SAME: tiles = [#moeq.tile<path = {{mma|simt}}, bm = {{16|1}},

// SIMT: tiles = [#moeq.tile<path = simt, bm = 1, bn = 128, bk = 32, warps = 4, stages = 1, split_k = 1>,

// BADPATH: for the --path option: Cannot find option named 'wmma'!
// BADTOKENS: tokens must be positive, got 0
func.func @layer(%x: tensor<?x1024xf32>, %r: tensor<4x1024xbf16>) -> tensor<?x2048xf32> {
  %idx, %wts = moeq.router %x, %r {top_k = 2 : i64, scoring = #moeq<scoring softmax>}
      : tensor<?x1024xf32>, tensor<4x1024xbf16> -> tensor<?x2xi32>, tensor<?x2xf32>
  %sorted, %pos, %off = moeq.dispatch %x, %idx {num_experts = 4 : i64}
      : tensor<?x1024xf32>, tensor<?x2xi32> -> tensor<?x1024xf32>, tensor<?xi32>, tensor<5xi32>
  %w0 = moeq.param <"quant", "e0"> : !moeq.qweight<2048x1024, #moeq.scheme<w4a16, g128, asym>>
  %w1 = moeq.param <"quant", "e1"> : !moeq.qweight<2048x1024, #moeq.scheme<w4a16, g128, asym>>
  %w2 = moeq.param <"quant", "e2"> : !moeq.qweight<2048x1024, #moeq.scheme<w2a16, g128, asym>>
  %w3 = moeq.param <"quant", "e3"> : !moeq.qweight<2048x1024, #moeq.scheme<w8a8, per_channel, sym>>
  %y = moeq.grouped_matmul %sorted, %off weights(%w0, %w1, %w2, %w3 :
         !moeq.qweight<2048x1024, #moeq.scheme<w4a16, g128, asym>>, !moeq.qweight<2048x1024, #moeq.scheme<w4a16, g128, asym>>,
         !moeq.qweight<2048x1024, #moeq.scheme<w2a16, g128, asym>>, !moeq.qweight<2048x1024, #moeq.scheme<w8a8, per_channel, sym>>)
         : tensor<?x1024xf32>, tensor<5xi32> -> tensor<?x2048xf32>
  %s = moeq.param <"model", "shared"> : tensor<2048x1024xbf16>
  %z = moeq.linear %x, %s : tensor<?x1024xf32>, tensor<2048x1024xbf16> -> tensor<?x2048xf32>
  return %y : tensor<?x2048xf32>
}
