// RUN: moeq-opt %s -split-input-file -verify-diagnostics -moeq-lower-expert-gemms-to-gpu="chip=sm_90" | FileCheck %s

// One persistent kernel for three experts in two precision mixes: the
// experts' weights come through a table of device addresses (one row per
// expert: codes, scales, zeros), so that any expert count fits the kernel
// parameters; one pass over the experts reads each expert's rows from the
// offsets and counts its tiles (ceil(M_e / BM_e) x ceil(N / BN_e)), and CTA
// c takes tiles c, c + gridDim.x, ... of each (moeq.for_each_tile); a tile dispatches on its
// expert's mix (a constant table) to that mix's tensor-core micro-kernel,
// whose weight memrefs are views of the addresses in the expert's row.
// CHECK-LABEL: func.func @layer
// CHECK: moeq.grouped_matmul {{.*}}kernels = [@[[K:moe_gemm_n128_k256_e3_0x[0-9a-f]+]]::@[[K]], @[[K]]::@[[K]], @[[K]]::@[[K]]]
// CHECK: gpu.module @[[K]]
// CHECK: memref.global "private" constant @__moeq_mix_of_expert : memref<3xi32> = dense<[0, 1, 0]>
// CHECK: gpu.func @[[K]](%{{.*}}: !llvm.ptr<1>, %[[OFF:.*]]: memref<4xi32, #gpu.address_space<global>>, %[[TABLE:.*]]: memref<3x3xi64, #gpu.address_space<global>>, %{{.*}}: !llvm.ptr<1>, %{{.*}}: i32) kernel attributes {known_block_size = array<i32: 128, 1, 1>, nvvm.minctasm = 1 : i32}
// CHECK: %[[MIXES:.*]] = memref.get_global @__moeq_mix_of_expert : memref<3xi32>
// The scheduler (moeq.for_each_tile, test/Conversion/lower-tile-ops.mlir):
// mix 0 has 32-row tiles, 2 per row of tiles (N = 128, BN = 64), mix 1
// 16-row tiles, 1 per row (BN = 128).
// CHECK: moeq.for_each_tile %[[OFF]] mix_of %[[MIXES]] : memref<3xi32> {bm = array<i64: 32, 16>, tiles_n = array<i64: 2, 1>} : memref<4xi32, #gpu.address_space<global>> {
// CHECK-NEXT: ^bb0(%[[E:.*]]: index, %{{.*}}: index, %{{.*}}: index, %{{.*}}: index, %[[MIX:.*]]: index):
// CHECK: scf.index_switch %[[MIX]]
// CHECK: case 0 {
// CHECK: %[[Q:.*]] = memref.load %[[TABLE]][%[[E]], %c0{{.*}}] : memref<3x3xi64, #gpu.address_space<global>>
// CHECK: llvm.inttoptr %[[Q]] : i64 to !llvm.ptr<1>
// CHECK: builtin.unrealized_conversion_cast %{{.*}} : !llvm.struct<(ptr<1>, ptr<1>, i64, array<2 x i64>, array<2 x i64>)> to memref<128x32xi32, #gpu.address_space<global>>
// CHECK: moeq.mma_tile
// CHECK: case 1 {
// CHECK: to memref<128x16xi32, #gpu.address_space<global>>
// CHECK: moeq.mma_tile
// CHECK: default {
// CHECK: gpu.return
func.func @layer(%x: tensor<?x256xf32>, %o: tensor<4xi32>) -> tensor<?x128xf32> {
  %w0 = moeq.param <"quant", "e0"> : !moeq.qweight<128x256, #moeq.scheme<w4a16, g128, asym>>
  %w1 = moeq.param <"quant", "e1"> : !moeq.qweight<128x256, #moeq.scheme<w2a16, g128, asym>>
  %w2 = moeq.param <"quant", "e2"> : !moeq.qweight<128x256, #moeq.scheme<w4a16, g128, asym>>
  %y = moeq.grouped_matmul %x, %o weights(%w0, %w1, %w2 : !moeq.qweight<128x256, #moeq.scheme<w4a16, g128, asym>>,
         !moeq.qweight<128x256, #moeq.scheme<w2a16, g128, asym>>, !moeq.qweight<128x256, #moeq.scheme<w4a16, g128, asym>>)
         {moeq.persistent, tiles = [#moeq.tile<path = mma, bm = 32, bn = 64, bk = 64, warps = 4, stages = 3, split_k = 1>,
                                    #moeq.tile<path = mma, bm = 16, bn = 128, bk = 32, warps = 4, stages = 2, split_k = 1>,
                                    #moeq.tile<path = mma, bm = 32, bn = 64, bk = 64, warps = 4, stages = 3, split_k = 1>]}
         : tensor<?x256xf32>, tensor<4xi32> -> tensor<?x128xf32>
  return %y : tensor<?x128xf32>
}

// -----

func.func @simt(%x: tensor<?x256xf32>, %o: tensor<3xi32>) -> tensor<?x128xf32> {
  %w0 = moeq.param <"quant", "e0"> : !moeq.qweight<128x256, #moeq.scheme<w4a16, g128, asym>>
  %w1 = moeq.param <"quant", "e1"> : !moeq.qweight<128x256, #moeq.scheme<w2a16, g128, asym>>
  // expected-error @+1 {{no persistent launch: a group runs the SIMT kernel}}
  %y = moeq.grouped_matmul %x, %o weights(%w0, %w1 : !moeq.qweight<128x256, #moeq.scheme<w4a16, g128, asym>>,
         !moeq.qweight<128x256, #moeq.scheme<w2a16, g128, asym>>)
         {moeq.persistent, tiles = [#moeq.tile<path = mma, bm = 32, bn = 64, bk = 64, warps = 4, stages = 3, split_k = 1>,
                                    #moeq.tile<path = simt, bm = 1, bn = 128, bk = 32, warps = 4, stages = 1, split_k = 1>]}
         : tensor<?x256xf32>, tensor<3xi32> -> tensor<?x128xf32>
  return %y : tensor<?x128xf32>
}

// -----

func.func @warps(%x: tensor<?x256xf32>, %o: tensor<3xi32>) -> tensor<?x128xf32> {
  %w0 = moeq.param <"quant", "e0"> : !moeq.qweight<128x256, #moeq.scheme<w4a16, g128, asym>>
  %w1 = moeq.param <"quant", "e1"> : !moeq.qweight<128x256, #moeq.scheme<w2a16, g128, asym>>
  // expected-error @+1 {{no persistent launch: the groups' tiles have different warp counts}}
  %y = moeq.grouped_matmul %x, %o weights(%w0, %w1 : !moeq.qweight<128x256, #moeq.scheme<w4a16, g128, asym>>,
         !moeq.qweight<128x256, #moeq.scheme<w2a16, g128, asym>>)
         {moeq.persistent, tiles = [#moeq.tile<path = mma, bm = 32, bn = 64, bk = 64, warps = 4, stages = 3, split_k = 1>,
                                    #moeq.tile<path = mma, bm = 64, bn = 64, bk = 64, warps = 8, stages = 3, split_k = 1>]}
         : tensor<?x256xf32>, tensor<3xi32> -> tensor<?x128xf32>
  return %y : tensor<?x128xf32>
}
