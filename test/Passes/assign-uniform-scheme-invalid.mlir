// RUN: not moeq-opt %s -moeq-assign-uniform-scheme="bits=9" 2>&1 | FileCheck %s --check-prefix=BITS
// RUN: not moeq-opt %s -moeq-assign-uniform-scheme="method=hqq" 2>&1 | FileCheck %s --check-prefix=METHOD
// RUN: not moeq-opt %s -moeq-assign-uniform-scheme="method=rtn stats=s.safetensors" 2>&1 | FileCheck %s --check-prefix=RTN-STATS
// RUN: not moeq-opt %s -moeq-assign-uniform-scheme="act-order=true" 2>&1 | FileCheck %s --check-prefix=RTN-ACT
// RUN: not moeq-opt %s -moeq-assign-uniform-scheme="bits=4 group-size=32 method=gptq stats=s.safetensors" 2>&1 | FileCheck %s --check-prefix=NO-LAYER
// RUN: not moeq-opt %s -moeq-assign-uniform-scheme="bits=4 group-size=32 mse-clip=true salience-clip=true" 2>&1 | FileCheck %s --check-prefix=CLIPS

// BITS: weight bits must be 1-8 or 16, got 9
// METHOD: for the --method option: Cannot find option named 'hqq'!
// RTN-STATS: 'stats' needs method gptq or agq
// RTN-ACT: 'act-order' needs method gptq or agq
// NO-LAYER: GPTQ statistics need the layer index (function attribute 'moeq.layer')
// CLIPS: 'mse-clip' and 'salience-clip' are alternative range searches; choose one

// (The layer the option errors above are reported for.)
func.func @layer(%x: tensor<?x64xf32>, %r: tensor<1x64xbf16>, %g: tensor<128x64xbf16>, %d: tensor<64x128xbf16>) -> tensor<?x64xf32> {
  %y = moeq.moe %x router %r : tensor<1x64xbf16> gate(%g : tensor<128x64xbf16>) up(%g : tensor<128x64xbf16>) down(%d : tensor<64x128xbf16>)
         {top_k = 1 : i64, scoring = #moeq<scoring softmax>, activation = #moeq<activation silu>} : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
