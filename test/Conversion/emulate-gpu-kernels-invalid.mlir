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
