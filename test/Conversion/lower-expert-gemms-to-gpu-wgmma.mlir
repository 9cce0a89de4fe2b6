// RUN: moeq-opt %s -split-input-file -verify-diagnostics -moeq-lower-expert-gemms-to-gpu="chip=sm_90a" | FileCheck %s

// The Hopper kernel (wgmma tile, sm_90a) of a weight-only mix: one
// warpgroup of 4 warps owns the 64 x 64 tile. Activations are copied into
// core matrices ([stages, 64 / 8, 64 / 8, 8, 8] f16, unpadded), the
// packed codes as rows of words (as for mma.sync), and after the stages
// one f16 tile of core matrices receives the step's dequantised weights:
// each thread turns 8 codes of a row (4 pairs, the shared dequantisation
// ops) into one 16-byte store, in a loop over the 512 units of the tile.
// The packed rows (8 words, 32 bytes per step, 16-byte aligned) are bulk
// copies completing on one mbarrier per stage (initialised before the
// loop, after the f16 tile): the step waits for its stage's phase, use
// j = k / 2 of the stage having parity j % 2.
// The thread's own writes are fenced for the async proxy, a barrier
// orders everyone's, then the warpgroup's MMAs read both tiles; warp w
// stores rows 16 w .. of the warpgroup's 64.
// CHECK-LABEL: func.func @w4
// CHECK: kernels = [@gemm_w4a16g128a_n64_k128_wgmma64x64x64w4s2::@gemm_w4a16g128a_n64_k128_wgmma64x64x64w4s2]
// CHECK: gpu.module @gemm_w4a16g128a_n64_k128_wgmma64x64x64w4s2 [#nvvm.target<O = 3, chip = "sm_90a">]
// CHECK: gpu.func @gemm_w4a16g128a_n64_k128_wgmma64x64x64w4s2({{.*}}) kernel attributes {known_block_size = array<i32: 128, 1, 1>
// CHECK: %[[A:.*]] = memref.view %{{.*}}[%{{.*}}][] : memref<?xi8, #gpu.address_space<workgroup>> to memref<2x8x8x8x8xf16, #gpu.address_space<workgroup>>
// CHECK: %[[B:.*]] = memref.view %{{.*}}[%c16384][] : memref<?xi8, #gpu.address_space<workgroup>> to memref<2x64x12xi32, #gpu.address_space<workgroup>>
// CHECK: %[[W:.*]] = memref.view %{{.*}}[%c22528][] : memref<?xi8, #gpu.address_space<workgroup>> to memref<1x8x8x8x8xf16, #gpu.address_space<workgroup>>
// CHECK: %[[BARS:.*]] = memref.view %{{.*}}[%c30720][] : memref<?xi8, #gpu.address_space<workgroup>> to memref<2xi64, #gpu.address_space<workgroup>>
// CHECK: moeq.init_tile_barriers %[[BARS]]
// CHECK: scf.for {{.*}} -> (vector<2x2xf32>, vector<2x2xf32>, vector<2x2xf32>, vector<2x2xf32>, vector<2x2xf32>, vector<2x2xf32>, vector<2x2xf32>, vector<2x2xf32>)
// CHECK: moeq.load_tile_async %{{.*}} into %[[A]][%{{.*}}] {chunk = 8 : i64, columns = 64 : i64, threads = 128 : i64}
// CHECK: moeq.load_tile_async %{{.*}} into %[[B]][%{{.*}}] barriers %[[BARS]] : memref<2xi64, #gpu.address_space<workgroup>> {chunk = 4 : i64, columns = 8 : i64, threads = 128 : i64}
// CHECK: nvgpu.device_async_wait
// CHECK: %[[USE:.*]] = arith.divui %[[K:[a-z0-9]+]], %c2{{.*}} : index
// CHECK: %[[PARITY:.*]] = arith.remui %[[USE]], %c2{{.*}} : index
// CHECK: %[[STAGE:.*]] = arith.remui %[[K]], %c2{{.*}} : index
// CHECK: moeq.wait_tile_barrier %[[BARS]][%[[STAGE]]] parity %[[PARITY]]
// CHECK-NEXT: gpu.barrier
// CHECK: scf.for %{{.*}} = %c0{{.*}} to %c4{{.*}} step %c1
// CHECK-COUNT-4: moeq.dequantize_codes %{{.*}} {integral_zero} : vector<2xi32>, f16, f16 -> vector<2xf16>
// CHECK: vector.shuffle
// CHECK: vector.store %{{.*}}, %[[W]][%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}] : memref<1x8x8x8x8xf16, #gpu.address_space<workgroup>>, vector<8xf16>
// CHECK: }
// CHECK: nvvm.fence.proxy {kind = #nvvm.proxy_kind<async.shared>, space = #nvvm.shared_space<cta>}
// CHECK-NEXT: gpu.barrier
// CHECK-NEXT: moeq.warpgroup_mma %[[A]][%{{.*}}, %{{.*}}] x %[[W]][%{{.*}}, %{{.*}}] + ({{.*}}) : memref<2x8x8x8x8xf16, #gpu.address_space<workgroup>>, memref<1x8x8x8x8xf16, #gpu.address_space<workgroup>>, (vector<2x2xf32>, vector<2x2xf32>, vector<2x2xf32>, vector<2x2xf32>, vector<2x2xf32>, vector<2x2xf32>, vector<2x2xf32>, vector<2x2xf32>)
// CHECK: } {moeq.pipeline_stages = 2 : i64}
// CHECK: moeq.store_tile({{.*}}) into %{{.*}}[%{{.*}}, %{{.*}}] bound %{{.*}} {tiles = array<i64: 1, 8>}
func.func @w4(%x: tensor<?x128xf32>, %o: tensor<2xi32>) -> tensor<?x64xf32> {
  %w = moeq.param <"quant", "e0"> : !moeq.qweight<64x128, #moeq.scheme<w4a16, g128, asym>>
  %y = moeq.grouped_matmul %x, %o weights(%w : !moeq.qweight<64x128, #moeq.scheme<w4a16, g128, asym>>)
         {tiles = [#moeq.tile<path = wgmma, bm = 64, bn = 64, bk = 64, warps = 4, stages = 2, split_k = 1>]}
         : tensor<?x128xf32>, tensor<2xi32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// f16 weights need no dequantisation: they are copied into core matrices
// like the activations, and the wgmmas read the stage. Two warpgroups
// over 128 rows (64 each, all 128 columns: 16 accumulator blocks).
// CHECK-LABEL: func.func @f16
// CHECK: gpu.func @gemm_f16_n128_k128_wgmma128x128x32w8s3({{.*}}) kernel attributes {known_block_size = array<i32: 256, 1, 1>
// CHECK: %[[A:.*]] = memref.view {{.*}} to memref<3x16x4x8x8xf16, #gpu.address_space<workgroup>>
// CHECK: %[[B:.*]] = memref.view {{.*}} to memref<3x16x4x8x8xf16, #gpu.address_space<workgroup>>
// CHECK-NOT: memref.view
// CHECK: moeq.load_tile_async %{{.*}} into %[[A]]
// CHECK: moeq.load_tile_async %{{.*}} into %[[B]]
// CHECK-NOT: vector.store
// CHECK: nvvm.fence.proxy
// CHECK-NEXT: gpu.barrier
// CHECK-NEXT: %{{.*}}:16 = moeq.warpgroup_mma %[[A]][%{{.*}}, %{{.*}}] x %[[B]][%{{.*}}, %{{.*}}]
// CHECK: moeq.store_tile({{.*}}) into %{{.*}} {tiles = array<i64: 1, 16>}
func.func @f16(%x: tensor<?x128xf32>, %o: tensor<2xi32>, %w: tensor<128x128xf16>) -> tensor<?x128xf32> {
  %y = moeq.grouped_matmul %x, %o weights(%w : tensor<128x128xf16>)
         {tiles = [#moeq.tile<path = wgmma, bm = 128, bn = 128, bk = 32, warps = 8, stages = 3, split_k = 1>]}
         : tensor<?x128xf32>, tensor<2xi32> -> tensor<?x128xf32>
  return %y : tensor<?x128xf32>
}

// -----

// Integer activations have no wgmma kernel here.
func.func @w8a8(%x: tensor<?x128xf32>, %o: tensor<2xi32>) -> tensor<?x64xf32> {
  %w = moeq.param <"quant", "e0"> : !moeq.qweight<64x128, #moeq.scheme<w8a8, per_channel, sym>>
  // expected-error @+1 {{no tensor-core kernel for}}
  %y = moeq.grouped_matmul %x, %o weights(%w : !moeq.qweight<64x128, #moeq.scheme<w8a8, per_channel, sym>>)
         {tiles = [#moeq.tile<path = wgmma, bm = 64, bn = 64, bk = 64, warps = 4, stages = 2, split_k = 1>]}
         : tensor<?x128xf32>, tensor<2xi32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
