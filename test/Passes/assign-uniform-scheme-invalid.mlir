// RUN: moeq-opt %s -split-input-file -moeq-assign-uniform-scheme="bits=4 group-size=128" -verify-diagnostics
// RUN: not moeq-opt %s -moeq-assign-uniform-scheme="bits=9" 2>&1 | FileCheck %s --check-prefix=BITS
// RUN: not moeq-opt %s -moeq-assign-uniform-scheme="method=hqq" 2>&1 | FileCheck %s --check-prefix=METHOD
// RUN: not moeq-opt %s -moeq-assign-uniform-scheme="method=rtn stats=s.safetensors" 2>&1 | FileCheck %s --check-prefix=RTN-STATS
// RUN: not moeq-opt %s -moeq-assign-uniform-scheme="act-order=true" 2>&1 | FileCheck %s --check-prefix=RTN-ACT
// RUN: not moeq-opt %s -moeq-assign-uniform-scheme="bits=4 group-size=32 method=gptq stats=s.safetensors" 2>&1 | FileCheck %s --check-prefix=NO-LAYER
// RUN: not moeq-opt %s -moeq-assign-uniform-scheme="bits=4 group-size=32 mse-clip=true salience-clip=true" 2>&1 | FileCheck %s --check-prefix=CLIPS

// BITS: weight bits must be 1-8 or 16, got 9
// METHOD: quantization method 'hqq' is not available (supported: rtn, gptq, agq)
// RTN-STATS: 'stats' needs method gptq or agq
// RTN-ACT: 'act-order' needs method gptq or agq
// NO-LAYER: GPTQ statistics need the layer index (function attribute 'moeq.layer')
// CLIPS: 'mse-clip' and 'salience-clip' are alternative range searches; choose one

// Group sizes are fitted to any width (assign-uniform-scheme-fit.mlir), but
// 4-bit codes of a 36-wide row do not fill whole 32-bit words.
func.func @layer(%x: tensor<?x36xf32>, %r: tensor<1x36xbf16>, %g: tensor<128x36xbf16>, %d: tensor<36x128xbf16>) -> tensor<?x36xf32> {
  // expected-error @+1 {{cannot quantize expert weight operand: a packed row of 36 x 4-bit codes does not fill whole 32-bit words}}
  %y = moeq.moe %x router %r : tensor<1x36xbf16> gate(%g : tensor<128x36xbf16>) up(%g : tensor<128x36xbf16>) down(%d : tensor<36x128xbf16>)
         {top_k = 1 : i64, scoring = #moeq<scoring softmax>, activation = #moeq<activation silu>} : tensor<?x36xf32> -> tensor<?x36xf32>
  return %y : tensor<?x36xf32>
}
