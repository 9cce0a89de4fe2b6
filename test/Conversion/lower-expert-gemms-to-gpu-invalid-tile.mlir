// RUN: moeq-opt %s -split-input-file -verify-diagnostics -moeq-lower-expert-gemms-to-gpu="chip=sm_90"

// BK must divide K (here 96).
func.func @bk(%x: tensor<?x96xf32>, %o: tensor<2xi32>) -> tensor<?x128xf32> {
  %w = moeq.param <"quant", "e0"> : !moeq.qweight<128x96, #moeq.scheme<w4a16, g32, asym>>
  // expected-error @+1 {{no tensor-core kernel for '!moeq.qweight<128x96, #moeq.scheme<w4a16, g32, asym>>' with tile #moeq.tile<path = mma, bm = 16, bn = 64, bk = 64, warps = 4, stages = 2, split_k = 1>}}
  %y = moeq.grouped_matmul %x, %o weights(%w : !moeq.qweight<128x96, #moeq.scheme<w4a16, g32, asym>>)
         {tiles = [#moeq.tile<path = mma, bm = 16, bn = 64, bk = 64, warps = 4, stages = 2, split_k = 1>]}
         : tensor<?x96xf32>, tensor<2xi32> -> tensor<?x128xf32>
  return %y : tensor<?x128xf32>
}

// -----

// Integer MMAs need symmetric weight codes.
func.func @asym_w8a8(%x: tensor<?x256xf32>, %o: tensor<2xi32>) -> tensor<?x128xf32> {
  %w = moeq.param <"quant", "e0"> : !moeq.qweight<128x256, #moeq.scheme<w8a8, per_channel, asym>>
  // expected-error @+1 {{no tensor-core kernel for}}
  %y = moeq.grouped_matmul %x, %o weights(%w : !moeq.qweight<128x256, #moeq.scheme<w8a8, per_channel, asym>>)
         {tiles = [#moeq.tile<path = mma, bm = 16, bn = 64, bk = 64, warps = 4, stages = 2, split_k = 1>]}
         : tensor<?x256xf32>, tensor<2xi32> -> tensor<?x128xf32>
  return %y : tensor<?x128xf32>
}

// -----

// 256 x 256 on 4 warps would need 512 accumulators per thread.
func.func @registers(%x: tensor<?x256xf32>, %o: tensor<2xi32>) -> tensor<?x256xf32> {
  %w = moeq.param <"model", "e0"> : tensor<256x256xbf16>
  // expected-error @+1 {{no tensor-core kernel for}}
  %y = moeq.grouped_matmul %x, %o weights(%w : tensor<256x256xbf16>)
         {tiles = [#moeq.tile<path = mma, bm = 256, bn = 256, bk = 32, warps = 4, stages = 2, split_k = 1>]}
         : tensor<?x256xf32>, tensor<2xi32> -> tensor<?x256xf32>
  return %y : tensor<?x256xf32>
}
