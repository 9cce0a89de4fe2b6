// RUN: moeq-opt %s -pass-pipeline='builtin.module(moeq-lower-expert-gemms-to-gpu{chip=sm_90a},gpu.module(moeq-pipeline-tile-loads,moeq-lower-tile-ops,moeq-lower-dequantization,convert-nvgpu-to-nvvm,convert-scf-to-cf,convert-gpu-to-nvvm{index-bitwidth=64 use-bare-ptr-memref-call-conv=true},canonicalize,cse,reconcile-unrealized-casts),moeq-emulate-gpu-kernels)' | FileCheck %s

// The Hopper kernel on the emulator: each wgmma.mma_async becomes a call
// of moeq_emu_wgmma with its two descriptors, N and the accumulators
// stored to / loaded from two 128-word buffers in the entry block; the
// wgmma fence, commit and wait and the proxy fence have no effect there
// (the emulated wgmma completes at once, in one proxy). N = 64: 32
// accumulator words; K = 64 per step: four calls.
// The packed rows are bulk copies completing on mbarriers: init, the
// arrival expecting the bytes, the copies and the parity wait are calls.
// CHECK-LABEL: module attributes {moeq.target = #moeq.target<"sm_90a">} {
// CHECK-DAG: llvm.func @moeq_emu_wgmma(i64, i64, i32, !llvm.ptr, !llvm.ptr)
// CHECK-DAG: llvm.func @moeq_emu_mbarrier_init(!llvm.ptr, i32)
// CHECK-DAG: llvm.func @moeq_emu_mbarrier_arrive_expect_tx(!llvm.ptr, i32)
// CHECK-DAG: llvm.func @moeq_emu_mbarrier_wait_parity(!llvm.ptr, i32)
// CHECK-DAG: llvm.func @moeq_emu_cp_async_bulk(!llvm.ptr, !llvm.ptr, i32, !llvm.ptr)
// CHECK: llvm.func @gemm_w4a16g128a_n64_k128_wgmma64x64x64w4s2(
// CHECK: %[[IN:.*]] = llvm.alloca %{{.*}} x !llvm.array<128 x i32>
// CHECK-NEXT: %[[OUT:.*]] = llvm.alloca %{{.*}} x !llvm.array<128 x i32>
// CHECK: %[[N:.*]] = llvm.mlir.constant(64 : i32) : i32
// CHECK: llvm.call @moeq_emu_wgmma(%{{.*}}, %{{.*}}, %[[N]], %[[IN]], %[[OUT]]) : (i64, i64, i32, !llvm.ptr, !llvm.ptr) -> ()
// CHECK-COUNT-3: llvm.call @moeq_emu_wgmma
// CHECK-NOT: llvm.call @moeq_emu_wgmma
// CHECK-NOT: nvvm.
func.func @w4(%x: tensor<?x128xf32>, %o: tensor<2xi32>) -> tensor<?x64xf32> {
  %w = moeq.param <"quant", "e0"> : !moeq.qweight<64x128, #moeq.scheme<w4a16, g128, asym>>
  %y = moeq.grouped_matmul %x, %o weights(%w : !moeq.qweight<64x128, #moeq.scheme<w4a16, g128, asym>>)
         {tiles = [#moeq.tile<path = wgmma, bm = 64, bn = 64, bk = 64, warps = 4, stages = 2, split_k = 1>]}
         : tensor<?x128xf32>, tensor<2xi32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
