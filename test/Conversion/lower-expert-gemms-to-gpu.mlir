// RUN: moeq-opt %s -split-input-file -moeq-lower-expert-gemms-to-gpu="chip=sm_90" | FileCheck %s

// The SIMT path (tiles from moeq-tile-expert-gemms with path = simt).
// One kernel per distinct (shape, scheme, tile); groups sharing one reuse it.
// CHECK-LABEL: module attributes
// CHECK-SAME: gpu.container_module
// CHECK-SAME: moeq.target = #moeq.target<"sm_90">
// CHECK: func.func @layer
// CHECK: moeq.grouped_matmul {{.*}} {kernels = [@gemm_w4a16g32a_n128_k64_simt::@gemm_w4a16g32a_n128_k64_simt, @gemm_w4a16g32a_n128_k64_simt::@gemm_w4a16g32a_n128_k64_simt, @gemm_f16_n128_k64_simt::@gemm_f16_n128_k64_simt],
// CHECK-SAME: tiles = [#moeq.tile<path = simt, bm = 1, bn = 128, bk = 32, warps = 4, stages = 1, split_k = 1>
// CHECK: gpu.module @gemm_w4a16g32a_n128_k64_simt [#nvvm.target<O = 3, chip = "sm_90">]
// CHECK: gpu.func @gemm_w4a16g32a_n128_k64_simt(%[[X:.*]]: !llvm.ptr<1>, %[[Q:.*]]: memref<128x8xi32, #gpu.address_space<global>>, %[[S:.*]]: memref<128x2xf16, #gpu.address_space<global>>, %[[Z:.*]]: memref<128x2xf16, #gpu.address_space<global>>, %[[Y:.*]]: !llvm.ptr<1>, %[[M:.*]]: i32) kernel attributes {known_block_size = array<i32: 128, 1, 1>, nvvm.minctasm = 1 : i32}
// CHECK: builtin.unrealized_conversion_cast %{{.*}} : !llvm.struct<(ptr<1>, ptr<1>, i64, array<2 x i64>, array<2 x i64>)> to memref<?x64xf16, #gpu.address_space<global>>
// CHECK: gpu.block_id y
// CHECK: scf.if
// CHECK: scf.for
// CHECK: memref.load %[[S]]
// CHECK: memref.load %[[Z]]
// CHECK: scf.for
// 4-bit codes never straddle a word (`aligned`: moeq-lower-dequantization
// reads one word); dequantised in f32.
// CHECK: %[[CODE:.*]] = moeq.unpack_codes %[[Q]][%{{.*}}] bit %{{.*}} {aligned, bits = 4 : i64} : memref<128x8xi32, #gpu.address_space<global>> -> i32
// CHECK: moeq.dequantize_codes %[[CODE]] scale %{{.*}} zero %{{.*}} : i32, f32, f32 -> f32
// Multiply-accumulate marked contractible, so that PTX gets one fma.
// CHECK: arith.mulf %{{.*}}, %{{.*}} fastmath<contract> : f32
// CHECK: arith.addf %{{.*}}, %{{.*}} fastmath<contract> : f32
// CHECK: arith.truncf %{{.*}} : f32 to f16
// CHECK: memref.store
// CHECK: gpu.module @gemm_f16_n128_k64_simt
// CHECK: gpu.func @gemm_f16_n128_k64_simt(%{{.*}}: !llvm.ptr<1>, %{{.*}}: memref<128x64xf16, #gpu.address_space<global>>, %{{.*}}: !llvm.ptr<1>, %{{.*}}: i32) kernel
func.func @layer(%x: tensor<?x64xf32>, %o: tensor<4xi32>) -> tensor<?x128xf32> {
  %w0 = moeq.param <"quant", "e0"> : !moeq.qweight<128x64, #moeq.scheme<w4a16, g32, asym>>
  %w1 = moeq.param <"quant", "e1"> : !moeq.qweight<128x64, #moeq.scheme<w4a16, g32, asym>>
  %w2 = moeq.param <"model", "e2"> : tensor<128x64xbf16>
  %y = moeq.grouped_matmul %x, %o weights(%w0, %w1, %w2 : !moeq.qweight<128x64, #moeq.scheme<w4a16, g32, asym>>,
         !moeq.qweight<128x64, #moeq.scheme<w4a16, g32, asym>>, tensor<128x64xbf16>)
         {tiles = [#moeq.tile<path = simt, bm = 1, bn = 128, bk = 32, warps = 4, stages = 1, split_k = 1>, #moeq.tile<path = simt, bm = 1, bn = 128, bk = 32, warps = 4, stages = 1, split_k = 1>, #moeq.tile<path = simt, bm = 1, bn = 128, bk = 32, warps = 4, stages = 1, split_k = 1>]} : tensor<?x64xf32>, tensor<4xi32> -> tensor<?x128xf32>
  return %y : tensor<?x128xf32>
}

// -----

// 3-bit codes straddle words (not `aligned`: a 64-bit window over two
// words, the second clamped to the row); symmetric schemes take no
// zero-point argument and use the middle code (4).
// CHECK-LABEL: module attributes
// CHECK: gpu.func @gemm_w3a16g32s_n128_k64_simt(%{{.*}}: !llvm.ptr<1>, %[[Q:.*]]: memref<128x6xi32, #gpu.address_space<global>>, %{{.*}}: memref<128x2xf16, #gpu.address_space<global>>, %{{.*}}: !llvm.ptr<1>, %{{.*}}: i32) kernel
// CHECK: %[[MID:.*]] = arith.constant 4.000000e+00 : f32
// CHECK: %[[CODE:.*]] = moeq.unpack_codes %[[Q]][%{{.*}}] bit %{{.*}} {bits = 3 : i64} : memref<128x6xi32, #gpu.address_space<global>> -> i32
// CHECK: moeq.dequantize_codes %[[CODE]] scale %{{.*}} zero %[[MID]] : i32, f32, f32 -> f32
func.func @layer(%x: tensor<?x64xf32>, %o: tensor<2xi32>) -> tensor<?x128xf32> {
  %w0 = moeq.param <"quant", "e0"> : !moeq.qweight<128x64, #moeq.scheme<w3a16, g32, sym>>
  %y = moeq.grouped_matmul %x, %o weights(%w0 : !moeq.qweight<128x64, #moeq.scheme<w3a16, g32, sym>>)
         {tiles = [#moeq.tile<path = simt, bm = 1, bn = 128, bk = 32, warps = 4, stages = 1, split_k = 1>]} : tensor<?x64xf32>, tensor<2xi32> -> tensor<?x128xf32>
  return %y : tensor<?x128xf32>
}

// -----

// The module's target attribute wins over the pass option.
// CHECK-LABEL: module attributes
// CHECK: gpu.module @gemm_w8a16pca_n128_k64_simt [#nvvm.target<O = 3, chip = "sm_80">]
module attributes {moeq.target = #moeq.target<"sm_80">} {
  func.func @layer(%x: tensor<?x64xf32>, %o: tensor<2xi32>) -> tensor<?x128xf32> {
    %w0 = moeq.param <"quant", "e0"> : !moeq.qweight<128x64, #moeq.scheme<w8a16, per_channel, asym>>
    %y = moeq.grouped_matmul %x, %o weights(%w0 : !moeq.qweight<128x64, #moeq.scheme<w8a16, per_channel, asym>>)
           {tiles = [#moeq.tile<path = simt, bm = 1, bn = 128, bk = 32, warps = 4, stages = 1, split_k = 1>]} : tensor<?x64xf32>, tensor<2xi32> -> tensor<?x128xf32>
    return %y : tensor<?x128xf32>
  }
}

// -----

// A shared expert's dense linear reuses the kernel of its precision mix.
// CHECK-LABEL: module attributes
// CHECK: moeq.linear %{{.*}}, %{{.*}} {kernel = @gemm_w4a16g32a_n96_k64_simt::@gemm_w4a16g32a_n96_k64_simt, tile = #moeq.tile<path = simt, bm = 1, bn = 128, bk = 32, warps = 4, stages = 1, split_k = 1>}
// CHECK: gpu.module @gemm_w4a16g32a_n96_k64_simt
// CHECK-NOT: gpu.module
func.func @shared(%x: tensor<?x64xf32>) -> tensor<?x96xf32> {
  %w = moeq.param <"quant", "shared"> : !moeq.qweight<96x64, #moeq.scheme<w4a16, g32, asym>>
  %y = moeq.linear %x, %w {tile = #moeq.tile<path = simt, bm = 1, bn = 128, bk = 32, warps = 4, stages = 1, split_k = 1>} : tensor<?x64xf32>, !moeq.qweight<96x64, #moeq.scheme<w4a16, g32, asym>> -> tensor<?x96xf32>
  return %y : tensor<?x96xf32>
}
