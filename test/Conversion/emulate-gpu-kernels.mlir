// RUN: moeq-opt %s -split-input-file -pass-pipeline='builtin.module(moeq-lower-expert-gemms-to-gpu{chip=sm_80},gpu.module(moeq-pipeline-tile-loads,moeq-lower-tile-ops,moeq-lower-dequantization,convert-nvgpu-to-nvvm,convert-scf-to-cf,convert-gpu-to-nvvm{index-bitwidth=64 use-bare-ptr-memref-call-conv=true},canonicalize,cse,reconcile-unrealized-casts),moeq-emulate-gpu-kernels)' | FileCheck %s

// The kernel moves to the host module with its code intact; special
// registers, barriers, cp.async, ldmatrix, mma.sync and the dynamic shared
// memory become calls of the emulator runtime; pointers lose their address
// spaces; no NVVM operation, gpu.module or shared-memory global is left.
// CHECK-LABEL: module attributes {moeq.target = #moeq.target<"sm_80">} {
// CHECK-DAG: llvm.func @moeq_emu_sreg(i32) -> i32
// CHECK-DAG: llvm.func @moeq_emu_shared() -> !llvm.ptr
// CHECK-DAG: llvm.func @moeq_emu_cp_async(!llvm.ptr, !llvm.ptr, i32, i32)
// CHECK-DAG: llvm.func @moeq_emu_barrier()
// CHECK-DAG: llvm.func @moeq_emu_ldmatrix(!llvm.ptr, i32, i32, !llvm.ptr)
// CHECK-DAG: llvm.func @moeq_emu_mma(i32, !llvm.ptr, !llvm.ptr, !llvm.ptr, !llvm.ptr)
// CHECK: llvm.func @gemm_w4a16g128a_n128_k256_mma32x64x64w4s3(%{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr, %{{.*}}: i32)
// CHECK-NEXT: llvm.mlir.constant(1 : i32)
// CHECK-NEXT: llvm.alloca %{{.*}} x !llvm.array<4 x i32> : (i32) -> !llvm.ptr
// CHECK-DAG: llvm.call @moeq_emu_sreg
// CHECK-DAG: llvm.call @moeq_emu_shared()
// CHECK-DAG: llvm.call @moeq_emu_cp_async
// CHECK-DAG: llvm.call @moeq_emu_barrier()
// CHECK-DAG: llvm.call @moeq_emu_ldmatrix(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}) : (!llvm.ptr, i32, i32, !llvm.ptr) -> ()
// CHECK-DAG: llvm.call @moeq_emu_mma
// CHECK-NOT: nvvm.
// CHECK-NOT: gpu.module
// CHECK-NOT: __dynamic_shmem__
func.func @w4(%x: tensor<?x256xf32>, %o: tensor<2xi32>) -> tensor<?x128xf32> {
  %w = moeq.param <"quant", "e0"> : !moeq.qweight<128x256, #moeq.scheme<w4a16, g128, asym>>
  %y = moeq.grouped_matmul %x, %o weights(%w : !moeq.qweight<128x256, #moeq.scheme<w4a16, g128, asym>>)
         {tiles = [#moeq.tile<path = mma, bm = 32, bn = 64, bk = 64, warps = 4, stages = 3, split_k = 1>]}
         : tensor<?x256xf32>, tensor<2xi32> -> tensor<?x128xf32>
  return %y : tensor<?x128xf32>
}

// -----

// The activation-quantization kernel: its five butterfly steps are
// moeq_emu_shfl calls in mode 2 (bfly).
// CHECK-LABEL: module attributes {moeq.target = #moeq.target<"sm_80">} {
// CHECK: llvm.func @quant_a8_k256(
// CHECK-COUNT-5: llvm.mlir.constant(2 : i32) : i32
// CHECK-NEXT: llvm.bitcast %{{.*}} : f32 to i32
// CHECK-NEXT: llvm.call @moeq_emu_shfl(%{{.*}}, %{{.*}}, %{{.*}}) : (i32, i32, i32) -> i32
func.func @w8a8(%x: tensor<?x256xf32>, %o: tensor<2xi32>) -> tensor<?x128xf32> {
  %w = moeq.param <"quant", "e0"> : !moeq.qweight<128x256, #moeq.scheme<w8a8, per_channel, sym>>
  %y = moeq.grouped_matmul %x, %o weights(%w : !moeq.qweight<128x256, #moeq.scheme<w8a8, per_channel, sym>>)
         {tiles = [#moeq.tile<path = mma, bm = 64, bn = 128, bk = 64, warps = 8, stages = 3, split_k = 1>]}
         : tensor<?x256xf32>, tensor<2xi32> -> tensor<?x128xf32>
  return %y : tensor<?x128xf32>
}
