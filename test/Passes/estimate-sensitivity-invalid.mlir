// RUN: moeq-opt %s -split-input-file -moeq-estimate-sensitivity -verify-diagnostics
// RUN: not moeq-opt %s -moeq-estimate-sensitivity="schemes=w4g128" 2>&1 | FileCheck %s --check-prefix=MALFORMED
// RUN: not moeq-opt %s -moeq-estimate-sensitivity="schemes=w9a16g128" 2>&1 | FileCheck %s --check-prefix=BITS
// RUN: not moeq-opt %s -moeq-estimate-sensitivity="schemes=w4a16g128,w4a16g128a" 2>&1 | FileCheck %s --check-prefix=TWICE
// RUN: not moeq-opt %s -moeq-estimate-sensitivity="schemes=w16a16pc" 2>&1 | FileCheck %s --check-prefix=FLOAT
// RUN: not moeq-opt %s -moeq-estimate-sensitivity="schemes=," 2>&1 | FileCheck %s --check-prefix=EMPTY
// RUN: not moeq-opt %s -moeq-estimate-sensitivity="method=gptq stats=s.safetensors" 2>&1 | FileCheck %s --check-prefix=NO-LAYER

// MALFORMED: scheme 'w4g128' is not of the form w<bits>a<bits>(g<size>|pc)[a|s][_<format>], e.g. w4a16g128, w8a8pcs or w3a16g128a_lut
// BITS: scheme 'w9a16g128': weight bits must be 1-8 or 16, got 9
// TWICE: candidate scheme 'w4a16g128a' is listed twice
// FLOAT: candidate scheme 'w16a16pc' does not quantize (weight bits must be 1-8)
// EMPTY: the list of candidate schemes is empty
// NO-LAYER: sensitivity from statistics needs the layer index (function attribute 'moeq.layer')

func.func @not_a_param(%x: tensor<?x64xf32>, %r: tensor<1x64xbf16>, %g: tensor<128x64xbf16>, %d: tensor<64x128xbf16>) -> tensor<?x64xf32> {
  // expected-error @+1 {{sensitivity needs float expert weights from moeq.param, but the gate weight operand is not}}
  %y = moeq.moe %x router %r : tensor<1x64xbf16> gate(%g : tensor<128x64xbf16>) up(%g : tensor<128x64xbf16>) down(%d : tensor<64x128xbf16>)
         {top_k = 1 : i64, scoring = #moeq<scoring softmax>, activation = #moeq<activation silu>} : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
