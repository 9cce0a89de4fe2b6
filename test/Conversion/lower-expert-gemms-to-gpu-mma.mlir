// RUN: moeq-opt %s -split-input-file -moeq-lower-expert-gemms-to-gpu="chip=sm_90" | FileCheck %s

// Tensor-core kernel of a weight-only mix (w4a16 g128): a 3-stage cp.async
// ring in dynamic shared memory (activation rows of 64 halves, not padded:
// moeq-swizzle-tile-operands swizzles them later; packed rows padded to 12
// words), ldmatrix.x4 activation fragments, code pairs
// read from the padded shared rows and dequantised to f16x2 with an
// integral zero point (moeq-lower-dequantization's f16 form,
// test/Conversion/lower-dequantization.mlir), mma.sync m16n8k16, 32-bit
// output stores.
// CHECK-LABEL: func.func @w4
// CHECK: moeq.grouped_matmul {{.*}}kernels = [@gemm_w4a16g128a_n128_k256_mma32x64x64w4s3::@gemm_w4a16g128a_n128_k256_mma32x64x64w4s3]
// Dynamic shared memory is an external zero-size .shared array (no static
// bytes; the launch's dynamic bytes are all the kernel addresses).
// CHECK: llvm.mlir.global external @__dynamic_shmem__moeq() {addr_space = 3 : i32, alignment = 16 : i64} : !llvm.array<0 x i8>
// CHECK: gpu.func @gemm_w4a16g128a_n128_k256_mma32x64x64w4s3(%{{.*}}: !llvm.ptr<1>, %[[Q:.*]]: memref<128x32xi32, #gpu.address_space<global>>, %[[S:.*]]: memref<128x2xf16, #gpu.address_space<global>>, %[[Z:.*]]: memref<128x2xf16, #gpu.address_space<global>>, %{{.*}}: !llvm.ptr<1>, %{{.*}}: i32) kernel attributes {known_block_size = array<i32: 128, 1, 1>, nvvm.minctasm = 1 : i32}
// CHECK: llvm.mlir.addressof @__dynamic_shmem__moeq : !llvm.ptr<3>
// CHECK: %[[SMEM:.*]] = builtin.unrealized_conversion_cast %{{.*}} : !llvm.struct<(ptr<3>, ptr<3>, i64, array<1 x i64>, array<1 x i64>)> to memref<?xi8, #gpu.address_space<workgroup>>
// CHECK: %[[A:.*]] = memref.view %[[SMEM]][%{{.*}}][] : memref<?xi8, #gpu.address_space<workgroup>> to memref<3x32x64xf16, #gpu.address_space<workgroup>>
// CHECK: %[[B:.*]] = memref.view %[[SMEM]][%{{.*}}][] : memref<?xi8, #gpu.address_space<workgroup>> to memref<3x64x12xi32, #gpu.address_space<workgroup>>
// The K loop, built plainly: the step's tile copies (one cp.async group),
// the wait and the barrier, the math, marked with its 3 stages for
// moeq-pipeline-tile-loads (test/Passes/pipeline-tile-loads.mlir).
// CHECK: scf.for {{.*}} -> (vector<2x2xf32>, vector<2x2xf32>, vector<2x2xf32>, vector<2x2xf32>)
// CHECK: moeq.load_tile_async %{{.*}}[%{{.*}}, %{{.*}}] bound %{{.*}} into %[[A]][%{{.*}}] {chunk = 8 : i64, columns = 64 : i64, threads = 128 : i64} : memref<?x256xf16, #gpu.address_space<global>>, memref<3x32x64xf16, #gpu.address_space<workgroup>>
// CHECK: moeq.load_tile_async %[[Q]][%{{.*}}, %{{.*}}] bound %{{.*}} into %[[B]][%{{.*}}] {chunk = 4 : i64, columns = 8 : i64, threads = 128 : i64} : memref<128x32xi32, #gpu.address_space<global>>, memref<3x64x12xi32, #gpu.address_space<workgroup>>
// CHECK: %[[GROUP:.*]] = nvgpu.device_async_create_group
// CHECK-NEXT: nvgpu.device_async_wait %[[GROUP]] {numGroups = 0 : i32}
// CHECK-NEXT: gpu.barrier
// CHECK: moeq.load_fragment %[[A]][%{{.*}}, %{{.*}}, %{{.*}}] : memref<3x32x64xf16, #gpu.address_space<workgroup>> -> vector<4x2xf16>
// CHECK: %[[SCALE:.*]] = memref.load %[[S]]
// CHECK: %[[ZERO:.*]] = memref.load %[[Z]]
// CHECK: %[[PAIR:.*]] = moeq.unpack_codes %[[B]][%{{.*}}, %{{.*}}] bit %{{.*}} {aligned, bits = 4 : i64, count = 2 : i64, padded} : memref<3x64x12xi32, #gpu.address_space<workgroup>> -> vector<2xi32>
// CHECK: moeq.dequantize_codes %[[PAIR]] scale %[[SCALE]] zero %[[ZERO]] {integral_zero} : vector<2xi32>, f16, f16 -> vector<2xf16>
// Each 16-wide K slice: the warp's 2 x 2 block of m16n8k16 products.
// CHECK: moeq.mma_tile(%{{.*}}, %{{.*}}) x(%{{.*}}, %{{.*}}) + (%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}) {mma_shape = array<i64: 16, 8, 16>} : (vector<4x2xf16>, vector<4x2xf16>) x(vector<2x2xf16>, vector<2x2xf16>) + (vector<2x2xf32>, vector<2x2xf32>, vector<2x2xf32>, vector<2x2xf32>)
// CHECK: scf.yield
// CHECK-NEXT: } {moeq.pipeline_stages = 3 : i64}
// The epilogue: the warp's 2 x 2 accumulators into Y, inside the rows.
// CHECK: moeq.store_tile(%[[ACC:.*]]#0, %[[ACC]]#1, %[[ACC]]#2, %[[ACC]]#3) into %{{.*}}[%{{.*}}, %{{.*}}] bound %{{.*}} {tiles = array<i64: 2, 2>} : (vector<2x2xf32>, vector<2x2xf32>, vector<2x2xf32>, vector<2x2xf32>), memref<?x128xf16, #gpu.address_space<global>>
func.func @w4(%x: tensor<?x256xf32>, %o: tensor<2xi32>) -> tensor<?x128xf32> {
  %w = moeq.param <"quant", "e0"> : !moeq.qweight<128x256, #moeq.scheme<w4a16, g128, asym>>
  %y = moeq.grouped_matmul %x, %o weights(%w : !moeq.qweight<128x256, #moeq.scheme<w4a16, g128, asym>>)
         {tiles = [#moeq.tile<path = mma, bm = 32, bn = 64, bk = 64, warps = 4, stages = 3, split_k = 1>]}
         : tensor<?x256xf32>, tensor<2xi32> -> tensor<?x128xf32>
  return %y : tensor<?x128xf32>
}

// -----

// 3-bit codes: pairs may straddle two words (not `aligned`); 6 words per
// step slice give 8-byte copies (no bypassL1); symmetric zero point 4.
// CHECK-LABEL: func.func @w3
// CHECK: gpu.func @gemm_w3a16g128s_n128_k256_mma16x128x64w4s2(
// CHECK: moeq.load_tile_async %{{.*}} {chunk = 2 : i64, columns = 6 : i64, threads = 128 : i64} : memref<128x24xi32, #gpu.address_space<global>>, memref<2x128x8xi32, #gpu.address_space<workgroup>>
// CHECK: %[[MID:.*]] = arith.constant 4.000000e+00 : f16
// CHECK: %[[PAIR:.*]] = moeq.unpack_codes %{{.*}} {bits = 3 : i64, count = 2 : i64, padded} : memref<2x128x8xi32, #gpu.address_space<workgroup>> -> vector<2xi32>
// CHECK: moeq.dequantize_codes %[[PAIR]] scale %{{.*}} zero %[[MID]] {integral_zero}
// CHECK: moeq.mma_tile
func.func @w3(%x: tensor<?x256xf32>, %o: tensor<2xi32>) -> tensor<?x128xf32> {
  %w = moeq.param <"quant", "e0"> : !moeq.qweight<128x256, #moeq.scheme<w3a16, g128, sym>>
  %y = moeq.grouped_matmul %x, %o weights(%w : !moeq.qweight<128x256, #moeq.scheme<w3a16, g128, sym>>)
         {tiles = [#moeq.tile<path = mma, bm = 16, bn = 128, bk = 64, warps = 4, stages = 2, split_k = 1>]}
         : tensor<?x256xf32>, tensor<2xi32> -> tensor<?x128xf32>
  return %y : tensor<?x128xf32>
}

// -----

// Float weights: both operands through ldmatrix (x2 for the weights).
// CHECK-LABEL: func.func @f16
// CHECK: gpu.func @gemm_f16_n128_k256_mma64x64x32w4s4(%{{.*}}: !llvm.ptr<1>, %{{.*}}: memref<128x256xf16, #gpu.address_space<global>>, %{{.*}}: !llvm.ptr<1>, %{{.*}}: i32)
// CHECK: moeq.load_fragment %{{.*}} : memref<4x64x32xf16, #gpu.address_space<workgroup>> -> vector<4x2xf16>
// CHECK: moeq.load_fragment %{{.*}} : memref<4x64x32xf16, #gpu.address_space<workgroup>> -> vector<2x2xf16>
// CHECK: moeq.mma_tile
// CHECK: } {moeq.pipeline_stages = 4 : i64}
func.func @f16(%x: tensor<?x256xf32>, %o: tensor<2xi32>) -> tensor<?x128xf32> {
  %w = moeq.param <"model", "e0"> : tensor<128x256xbf16>
  %y = moeq.grouped_matmul %x, %o weights(%w : tensor<128x256xbf16>)
         {tiles = [#moeq.tile<path = mma, bm = 64, bn = 64, bk = 32, warps = 4, stages = 4, split_k = 1>]}
         : tensor<?x256xf32>, tensor<2xi32> -> tensor<?x128xf32>
  return %y : tensor<?x128xf32>
}

// -----

// w8a8: a per-token activation quantization kernel (one warp per row,
// butterfly max over the warp) and the s8 GEMM: int8 activations through
// ldmatrix, weight words made signed by flipping each byte's top bit
// (0x80808080), mma.sync m16n8k32 with s32 partial sums scaled into f32 at
// the end of each weight group, the token's scale in the epilogue.
// CHECK-LABEL: func.func @w8a8
// CHECK: kernels = [@gemm_w8a8pcs_n128_k256_mma64x128x64w8s3::@gemm_w8a8pcs_n128_k256_mma64x128x64w8s3]
// CHECK: gpu.func @gemm_w8a8pcs_n128_k256_mma64x128x64w8s3(%{{.*}}: !llvm.ptr<1>, %{{.*}}: !llvm.ptr<1>, %{{.*}}: memref<128x64xi32, #gpu.address_space<global>>, %{{.*}}: memref<128x1xf16, #gpu.address_space<global>>, %{{.*}}: !llvm.ptr<1>, %{{.*}}: i32) kernel attributes {known_block_size = array<i32: 256, 1, 1>, nvvm.minctasm = 1 : i32}
// CHECK: moeq.load_fragment %{{.*}} : memref<3x64x64xi8, #gpu.address_space<workgroup>> -> vector<4x4xi8>
// CHECK: moeq.load_fragment %{{.*}} : memref<3x128x{{[0-9]+}}xi32, #gpu.address_space<workgroup>> -> vector<2x4xi8>
// CHECK: moeq.mma_tile({{.*}}) {mma_shape = array<i64: 16, 8, 32>} : (vector<4x4xi8>{{.*}}) x(vector<2x4xi8>{{.*}}) + (vector<2x2xi32>{{.*}})
// Per-channel: the s32 sums are stored times the column scales and the
// tokens' scales.
// CHECK: moeq.store_tile({{.*}}) into %{{.*}} bound %{{.*}} column_scales %{{.*}} : memref<128x1xf16, #gpu.address_space<global>> row_scales %{{.*}} : memref<?xf32, #gpu.address_space<global>> {tiles = array<i64: 2, 4>} : (vector<2x2xi32>,
// CHECK: gpu.module @quant_a8_k256
// CHECK: gpu.func @quant_a8_k256(%{{.*}}: !llvm.ptr<1>, %{{.*}}: !llvm.ptr<1>, %{{.*}}: !llvm.ptr<1>, %{{.*}}: i32) kernel attributes {known_block_size = array<i32: 32, 1, 1>, nvvm.minctasm = 1 : i32}
// CHECK-COUNT-5: gpu.shuffle  xor
// CHECK: arith.constant 1.270000e+02 : f32
// CHECK: arith.constant 0x4B400000 : f32
// CHECK: arith.trunci %{{.*}} : i32 to i8
func.func @w8a8(%x: tensor<?x256xf32>, %o: tensor<2xi32>) -> tensor<?x128xf32> {
  %w = moeq.param <"quant", "e0"> : !moeq.qweight<128x256, #moeq.scheme<w8a8, per_channel, sym>>
  %y = moeq.grouped_matmul %x, %o weights(%w : !moeq.qweight<128x256, #moeq.scheme<w8a8, per_channel, sym>>)
         {tiles = [#moeq.tile<path = mma, bm = 64, bn = 128, bk = 64, warps = 8, stages = 3, split_k = 1>]}
         : tensor<?x256xf32>, tensor<2xi32> -> tensor<?x128xf32>
  return %y : tensor<?x128xf32>
}

// -----

// w4a4: the same with int4 (two per byte; the fragments' lowering is
// test/Conversion/lower-tile-ops.mlir) and mma.sync m16n8k64.
// CHECK-LABEL: func.func @w4a4
// CHECK: gpu.func @gemm_w4a4g128s_n128_k256_mma32x64x128w4s2(
// CHECK: moeq.load_fragment %{{.*}} -> vector<4x8xi4>
// CHECK: moeq.load_fragment %{{.*}} -> vector<2x8xi4>
// CHECK: moeq.mma_tile({{.*}}) {mma_shape = array<i64: 16, 8, 64>} : (vector<4x8xi4>{{.*}}) x(vector<2x8xi4>{{.*}}) + (vector<2x2xi32>{{.*}})
// CHECK: gpu.func @quant_a4_k256(
// CHECK: arith.constant 7.000000e+00 : f32
// CHECK: arith.shli
func.func @w4a4(%x: tensor<?x256xf32>, %o: tensor<2xi32>) -> tensor<?x128xf32> {
  %w = moeq.param <"quant", "e0"> : !moeq.qweight<128x256, #moeq.scheme<w4a4, g128, sym>>
  %y = moeq.grouped_matmul %x, %o weights(%w : !moeq.qweight<128x256, #moeq.scheme<w4a4, g128, sym>>)
         {tiles = [#moeq.tile<path = mma, bm = 32, bn = 64, bk = 128, warps = 4, stages = 2, split_k = 1>]}
         : tensor<?x256xf32>, tensor<2xi32> -> tensor<?x128xf32>
  return %y : tensor<?x128xf32>
}

// -----

// Group-wise widths (SliM-LLM, 2 and 4 bits): the slice of each K step
// from a select chain, one specialised body per width behind a switch.
// CHECK-LABEL: func.func @group_bits
// CHECK: gpu.func @gemm_w3a16g128a_gb24_n128_k256_mma16x64x64w4s2(
// CHECK: scf.index_switch %{{.*}} -> vector<2x2xf32>
// CHECK: case 2 {
// CHECK: moeq.mma_tile
// CHECK: case 4 {
// CHECK: moeq.mma_tile
// CHECK: default {
func.func @group_bits(%x: tensor<?x256xf32>, %o: tensor<2xi32>) -> tensor<?x128xf32> {
  %w = moeq.param <"quant", "e0"> : !moeq.qweight<128x256, #moeq.scheme<w3a16, g128, asym>, group_bits = [2, 4]>
  %y = moeq.grouped_matmul %x, %o weights(%w : !moeq.qweight<128x256, #moeq.scheme<w3a16, g128, asym>, group_bits = [2, 4]>)
         {tiles = [#moeq.tile<path = mma, bm = 16, bn = 64, bk = 64, warps = 4, stages = 2, split_k = 1>]}
         : tensor<?x256xf32>, tensor<2xi32> -> tensor<?x128xf32>
  return %y : tensor<?x128xf32>
}

// -----

// Without moeq-tile-expert-gemms, each group gets the cost model's choice
// for 16 rows (here the tensor-core path).
// CHECK-LABEL: func.func @untiled
// CHECK: tiles = [#moeq.tile<path = mma
func.func @untiled(%x: tensor<?x256xf32>, %o: tensor<2xi32>) -> tensor<?x128xf32> {
  %w = moeq.param <"quant", "e0"> : !moeq.qweight<128x256, #moeq.scheme<w4a16, g128, asym>>
  %y = moeq.grouped_matmul %x, %o weights(%w : !moeq.qweight<128x256, #moeq.scheme<w4a16, g128, asym>>)
         : tensor<?x256xf32>, tensor<2xi32> -> tensor<?x128xf32>
  return %y : tensor<?x128xf32>
}

// -----

// Split-K: CTA z runs its slice of the K steps (from step z * steps) and
// stores f32 partial sums into workspace rows z*M..; splitk_reduce adds the
// slices in order.
// CHECK-LABEL: func.func @split_k
// CHECK: kernels = [@gemm_w4a16g128a_n128_k256_mma16x64x32w4s2k2::@gemm_w4a16g128a_n128_k256_mma16x64x32w4s2k2]
// CHECK: gpu.func @gemm_w4a16g128a_n128_k256_mma16x64x32w4s2k2(
// CHECK: %[[SLICE:.*]] = gpu.block_id  z
// CHECK: arith.muli %[[SLICE]], %{{.*}} : index
// CHECK: %[[FIRST:.*]] = arith.muli %[[SLICE]], %{{.*}} : index
// CHECK: scf.for %{{.*}} = %{{.*}} to %{{.*}} step %{{.*}} iter_args
// CHECK: moeq.store_tile({{.*}}) into %{{.*}} bound %{{.*}} row_offset %[[FIRST]] {tiles = array<i64: 1, 2>} : (vector<2x2xf32>, vector<2x2xf32>), memref<?x128xf32, #gpu.address_space<global>>
// CHECK: gpu.func @splitk_reduce_n128_s2(
// CHECK-COUNT-2: memref.load
// CHECK: arith.truncf %{{.*}} : f32 to f16
func.func @split_k(%x: tensor<?x256xf32>, %o: tensor<2xi32>) -> tensor<?x128xf32> {
  %w = moeq.param <"quant", "e0"> : !moeq.qweight<128x256, #moeq.scheme<w4a16, g128, asym>>
  %y = moeq.grouped_matmul %x, %o weights(%w : !moeq.qweight<128x256, #moeq.scheme<w4a16, g128, asym>>)
         {tiles = [#moeq.tile<path = mma, bm = 16, bn = 64, bk = 32, warps = 4, stages = 2, split_k = 2>]}
         : tensor<?x256xf32>, tensor<2xi32> -> tensor<?x128xf32>
  return %y : tensor<?x128xf32>
}
