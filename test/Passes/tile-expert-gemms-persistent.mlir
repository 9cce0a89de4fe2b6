// RUN: moeq-opt %s -split-input-file -moeq-tile-expert-gemms="tokens=4096 gpu=h100" | FileCheck %s
// RUN: moeq-opt %s -split-input-file -moeq-tile-expert-gemms="tokens=4096 gpu=h100 persistent=false" | FileCheck %s --check-prefix=SEPARATE

// Three weight-only mixes on tensor cores: one persistent launch, tiles
// re-chosen with one warp count.
// CHECK-LABEL: func.func @mixes
// CHECK: moeq.grouped_matmul
// CHECK-SAME: moeq.persistent
// CHECK-SAME: tiles = [#moeq.tile<path = mma, bm = {{[0-9]+}}, bn = {{[0-9]+}}, bk = {{[0-9]+}}, warps = [[W:[48]]], stages = {{[0-9]}}, split_k = 1>, #moeq.tile<path = mma, bm = {{[0-9]+}}, bn = {{[0-9]+}}, bk = {{[0-9]+}}, warps = [[W]], stages = {{[0-9]}}, split_k = 1>, #moeq.tile<path = mma, bm = {{[0-9]+}}, bn = {{[0-9]+}}, bk = {{[0-9]+}}, warps = [[W]], stages = {{[0-9]}}, split_k = 1>]
// SEPARATE-LABEL: func.func @mixes
// SEPARATE-NOT: moeq.persistent
func.func @mixes(%x: tensor<?x1024xf32>, %r: tensor<3x1024xbf16>) -> tensor<?x2048xf32> {
  %idx, %wts = moeq.router %x, %r {top_k = 1 : i64, scoring = #moeq<scoring softmax>}
      : tensor<?x1024xf32>, tensor<3x1024xbf16> -> tensor<?x1xi32>, tensor<?x1xf32>
  %sorted, %pos, %off = moeq.dispatch %x, %idx {num_experts = 3 : i64}
      : tensor<?x1024xf32>, tensor<?x1xi32> -> tensor<?x1024xf32>, tensor<?xi32>, tensor<4xi32>
  %w0 = moeq.param <"quant", "e0"> : !moeq.qweight<2048x1024, #moeq.scheme<w4a16, g128, asym>>
  %w1 = moeq.param <"quant", "e1"> : !moeq.qweight<2048x1024, #moeq.scheme<w2a16, g128, asym>>
  %w2 = moeq.param <"model", "e2"> : tensor<2048x1024xbf16>
  %y = moeq.grouped_matmul %sorted, %off weights(%w0, %w1, %w2 :
         !moeq.qweight<2048x1024, #moeq.scheme<w4a16, g128, asym>>, !moeq.qweight<2048x1024, #moeq.scheme<w2a16, g128, asym>>,
         tensor<2048x1024xbf16>)
         : tensor<?x1024xf32>, tensor<4xi32> -> tensor<?x2048xf32>
  return %y : tensor<?x2048xf32>
}

// -----

// Weight-only and w8a8 groups read different activations: one launch per
// mix.
// CHECK-LABEL: func.func @formats
// CHECK: moeq.grouped_matmul
// CHECK-NOT: moeq.persistent
// CHECK-SAME: tiles
func.func @formats(%x: tensor<?x1024xf32>, %r: tensor<2x1024xbf16>) -> tensor<?x2048xf32> {
  %idx, %wts = moeq.router %x, %r {top_k = 1 : i64, scoring = #moeq<scoring softmax>}
      : tensor<?x1024xf32>, tensor<2x1024xbf16> -> tensor<?x1xi32>, tensor<?x1xf32>
  %sorted, %pos, %off = moeq.dispatch %x, %idx {num_experts = 2 : i64}
      : tensor<?x1024xf32>, tensor<?x1xi32> -> tensor<?x1024xf32>, tensor<?xi32>, tensor<3xi32>
  %w0 = moeq.param <"quant", "e0"> : !moeq.qweight<2048x1024, #moeq.scheme<w4a16, g128, asym>>
  %w1 = moeq.param <"quant", "e1"> : !moeq.qweight<2048x1024, #moeq.scheme<w8a8, per_channel, sym>>
  %y = moeq.grouped_matmul %sorted, %off weights(%w0, %w1 :
         !moeq.qweight<2048x1024, #moeq.scheme<w4a16, g128, asym>>, !moeq.qweight<2048x1024, #moeq.scheme<w8a8, per_channel, sym>>)
         : tensor<?x1024xf32>, tensor<3xi32> -> tensor<?x2048xf32>
  return %y : tensor<?x2048xf32>
}
