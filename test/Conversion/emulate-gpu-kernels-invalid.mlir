// RUN: moeq-opt %s -split-input-file -verify-diagnostics -moeq-emulate-gpu-kernels

// An NVVM operation the emulator has no model of.
module attributes {gpu.container_module} {
  gpu.module @k {
    llvm.func @k() attributes {nvvm.kernel} {
      // expected-error @+1 {{the GPU emulator has no model of 'nvvm.read.ptx.sreg.clock'}}
      %0 = nvvm.read.ptx.sreg.clock : i32
      llvm.return
    }
  }
}

// -----

// Kernels must be lowered to NVVM first.
module attributes {gpu.container_module} {
  gpu.module @k {
    // expected-error @+1 {{the GPU emulator needs gpu.modules lowered to NVVM (llvm.func)}}
    gpu.func @k() kernel {
      gpu.return
    }
  }
}

// -----

// A wgmma the emulator does not model (bf16 operands).
module attributes {gpu.container_module} {
  gpu.module @k [#nvvm.target<chip = "sm_90a">] {
    llvm.func @k(%a: i64, %b: i64, %acc: !llvm.struct<(f32, f32, f32, f32)>) attributes {nvvm.kernel} {
      // expected-error @+1 {{the GPU emulator runs wgmma.mma_async m64nNk16 f32 += f16 x f16 (K-major operands, accumulating) only}}
      %d = nvvm.wgmma.mma_async %a, %b, %acc, <m = 64, n = 8, k = 16>, D[<f32>, <one>], A[<bf16>, <one>, <row>], B[<bf16>, <one>, <col>] : !llvm.struct<(f32, f32, f32, f32)> -> !llvm.struct<(f32, f32, f32, f32)>
      llvm.return
    }
  }
}
