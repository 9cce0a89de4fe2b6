// RUN: moeq-opt %s -split-input-file -verify-diagnostics -moeq-lower-expert-gemms-to-gpu | FileCheck %s

// A tile's shared memory (its kernel's layout: 4 stages of 128 activation
// rows of 64 halves and 256 weight rows of 64 halves = 196608 bytes; the
// rows are swizzled, not padded) must fit what the target allows one CTA: 227 KiB on sm_90, 163
// KiB on sm_80, whatever GPU the cost model priced.
// CHECK-LABEL: func.func @fits_sm90
// CHECK: kernels = [@gemm_f16_n256_k256_mma128x256x64w8s4
module attributes {moeq.target = #moeq.target<"sm_90">} {
func.func @fits_sm90(%x: tensor<?x256xf32>, %o: tensor<2xi32>) -> tensor<?x256xf32> {
  %w = moeq.param <"model", "e0"> : tensor<256x256xf16>
  %y = moeq.grouped_matmul %x, %o weights(%w : tensor<256x256xf16>)
         {tiles = [#moeq.tile<path = mma, bm = 128, bn = 256, bk = 64, warps = 8, stages = 4, split_k = 1>]}
         : tensor<?x256xf32>, tensor<2xi32> -> tensor<?x256xf32>
  return %y : tensor<?x256xf32>
}
}

// -----

module attributes {moeq.target = #moeq.target<"sm_80">} {
func.func @over_sm80(%x: tensor<?x256xf32>, %o: tensor<2xi32>) -> tensor<?x256xf32> {
  %w = moeq.param <"model", "e0"> : tensor<256x256xf16>
  // expected-error @+1 {{no tensor-core kernel for 'tensor<256x256xf16>' with tile #moeq.tile<path = mma, bm = 128, bn = 256, bk = 64, warps = 8, stages = 4, split_k = 1>}}
  %y = moeq.grouped_matmul %x, %o weights(%w : tensor<256x256xf16>)
         {tiles = [#moeq.tile<path = mma, bm = 128, bn = 256, bk = 64, warps = 8, stages = 4, split_k = 1>]}
         : tensor<?x256xf32>, tensor<2xi32> -> tensor<?x256xf32>
  return %y : tensor<?x256xf32>
}
}
