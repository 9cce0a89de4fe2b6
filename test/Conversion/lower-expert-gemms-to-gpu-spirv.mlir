// RUN: moeq-opt %s -split-input-file -verify-diagnostics -moeq-lower-expert-gemms-to-gpu="chip=sm_80 spirv=true" | FileCheck %s

// The SIMT kernel with the OpenCL SPIR-V ABI: buffers are memrefs in the
// CrossWorkgroup storage class (no LLVM pointers), the module carries a
// Kernel-capability target environment and the function its work-group size.
// CHECK-LABEL: func.func @simt
// CHECK: gpu.module @gemm_w4a16g32a_n128_k64_simt attributes {spirv.target_env = #spirv.target_env<#spirv.vce<v1.0, [Kernel, Addresses, Int64, Int8, Int16, Float16, Float16Buffer, Linkage], []>
// CHECK: gpu.func @gemm_w4a16g32a_n128_k64_simt(%{{.*}}: memref<?x64xf16, #spirv.storage_class<CrossWorkgroup>>, %{{.*}}: memref<128x8xi32, #spirv.storage_class<CrossWorkgroup>>, %{{.*}}: memref<128x2xf16, #spirv.storage_class<CrossWorkgroup>>, %{{.*}}: memref<128x2xf16, #spirv.storage_class<CrossWorkgroup>>, %{{.*}}: memref<?x128xf16, #spirv.storage_class<CrossWorkgroup>>, %{{.*}}: i32) kernel
// CHECK-SAME: spirv.entry_point_abi = #spirv.entry_point_abi<workgroup_size = [128, 1, 1]>
// CHECK-NOT: llvm.
func.func @simt(%x: tensor<?x64xf32>, %o: tensor<2xi32>) -> tensor<?x128xf32> {
  %w = moeq.param <"quant", "e0"> : !moeq.qweight<128x64, #moeq.scheme<w4a16, g32, asym>>
  %y = moeq.grouped_matmul %x, %o weights(%w : !moeq.qweight<128x64, #moeq.scheme<w4a16, g32, asym>>)
         {tiles = [#moeq.tile<path = simt, bm = 1, bn = 128, bk = 32, warps = 4, stages = 1, split_k = 1>]}
         : tensor<?x64xf32>, tensor<2xi32> -> tensor<?x128xf32>
  return %y : tensor<?x128xf32>
}

// -----

func.func @mma(%x: tensor<?x256xf32>, %o: tensor<2xi32>) -> tensor<?x128xf32> {
  %w = moeq.param <"quant", "e0"> : !moeq.qweight<128x256, #moeq.scheme<w4a16, g128, asym>>
  // expected-error @+1 {{the SPIR-V (OpenCL) kernels are SIMT only; got tile #moeq.tile<path = mma}}
  %y = moeq.grouped_matmul %x, %o weights(%w : !moeq.qweight<128x256, #moeq.scheme<w4a16, g128, asym>>)
         {tiles = [#moeq.tile<path = mma, bm = 32, bn = 64, bk = 64, warps = 4, stages = 3, split_k = 1>]}
         : tensor<?x256xf32>, tensor<2xi32> -> tensor<?x128xf32>
  return %y : tensor<?x128xf32>
}
