// RUN: moeq-opt %s -split-input-file -moeq-assign-uniform-scheme="bits=4 group-size=128" -verify-diagnostics | FileCheck %s

// Group sizes that do not divide a weight's input are halved until they do
// (192 -> 64, 96 -> 32), warned about once per width; weights they divide
// keep the requested size.

// CHECK-LABEL: func.func @fitted
// CHECK: moeq.quantize %{{.*}} : tensor<96x192xbf16> -> !moeq.qweight<96x192, #moeq.scheme<w4a16, g64, asym>>
// CHECK: moeq.quantize %{{.*}} : tensor<96x192xbf16> -> !moeq.qweight<96x192, #moeq.scheme<w4a16, g64, asym>>
// CHECK: moeq.quantize %{{.*}} : tensor<192x96xbf16> -> !moeq.qweight<192x96, #moeq.scheme<w4a16, g32, asym>>
// expected-warning @below {{input dimension 96 is not a multiple of the group size 128: its weights use groups of 32}}
// expected-warning @below {{input dimension 192 is not a multiple of the group size 128: its weights use groups of 64}}
module {
func.func @fitted(%x: tensor<?x192xf32>, %r: tensor<2x192xbf16>, %g: tensor<96x192xbf16>, %d: tensor<192x96xbf16>) -> tensor<?x192xf32> {
  %y = moeq.moe %x router %r : tensor<2x192xbf16> gate(%g, %g : tensor<96x192xbf16>, tensor<96x192xbf16>) up(%g, %g : tensor<96x192xbf16>, tensor<96x192xbf16>) down(%d, %d : tensor<192x96xbf16>, tensor<192x96xbf16>)
         {top_k = 1 : i64, scoring = #moeq<scoring softmax>, activation = #moeq<activation silu>} : tensor<?x192xf32> -> tensor<?x192xf32>
  return %y : tensor<?x192xf32>
}
}

// -----

// Any width that is a multiple of 8 gets a group size (40 -> 8); a group
// as wide as the row is per-channel quantization (64 at 128).
// CHECK-LABEL: func.func @narrow
// CHECK: moeq.quantize %{{.*}} : tensor<64x40xbf16> -> !moeq.qweight<64x40, #moeq.scheme<w4a16, g8, asym>>
// CHECK: moeq.quantize %{{.*}} : tensor<40x64xbf16> -> !moeq.qweight<40x64, #moeq.scheme<w4a16, per_channel, asym>>
// expected-warning @below {{input dimension 40 is not a multiple of the group size 128: its weights use groups of 8}}
// expected-warning @below {{input dimension 64 is not a multiple of the group size 128: its weights use one scale per output channel}}
module {
func.func @narrow(%x: tensor<?x40xf32>, %r: tensor<1x40xbf16>, %g: tensor<64x40xbf16>, %d: tensor<40x64xbf16>) -> tensor<?x40xf32> {
  %y = moeq.moe %x router %r : tensor<1x40xbf16> gate(%g : tensor<64x40xbf16>) up(%g : tensor<64x40xbf16>) down(%d : tensor<40x64xbf16>)
         {top_k = 1 : i64, scoring = #moeq<scoring softmax>, activation = #moeq<activation silu>} : tensor<?x40xf32> -> tensor<?x40xf32>
  return %y : tensor<?x40xf32>
}
}
