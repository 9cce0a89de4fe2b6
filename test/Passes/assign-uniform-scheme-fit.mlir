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

// Halving stops at 32 columns: a width no group of 32 or more divides is
// quantized per channel (40 = 8 x 5); so is a group as wide as the row (64
// at 128).
// CHECK-LABEL: func.func @narrow
// CHECK: moeq.quantize %{{.*}} : tensor<64x40xbf16> -> !moeq.qweight<64x40, #moeq.scheme<w4a16, per_channel, asym>>
// CHECK: moeq.quantize %{{.*}} : tensor<40x64xbf16> -> !moeq.qweight<40x64, #moeq.scheme<w4a16, per_channel, asym>>
// expected-warning @below {{input dimension 40 is not a multiple of the group size 128: its weights use one scale per output channel}}
// expected-warning @below {{input dimension 64 is not a multiple of the group size 128: its weights use one scale per output channel}}
module {
func.func @narrow(%x: tensor<?x40xf32>, %r: tensor<1x40xbf16>, %g: tensor<64x40xbf16>, %d: tensor<40x64xbf16>) -> tensor<?x40xf32> {
  %y = moeq.moe %x router %r : tensor<1x40xbf16> gate(%g : tensor<64x40xbf16>) up(%g : tensor<64x40xbf16>) down(%d : tensor<40x64xbf16>)
         {top_k = 1 : i64, scoring = #moeq<scoring softmax>, activation = #moeq<activation silu>} : tensor<?x40xf32> -> tensor<?x40xf32>
  return %y : tensor<?x40xf32>
}
}

// -----

// Any width: 36 x 4-bit codes (144 bits) take 5 words per row, the last
// zero-padded; 36 is quantized per channel.
// CHECK-LABEL: func.func @padded
// CHECK: moeq.quantize %{{.*}} : tensor<128x36xbf16> -> !moeq.qweight<128x36, #moeq.scheme<w4a16, per_channel, asym>>
// CHECK: moeq.quantize %{{.*}} : tensor<36x128xbf16> -> !moeq.qweight<36x128, #moeq.scheme<w4a16, g128, asym>>
// expected-warning @below {{input dimension 36 is not a multiple of the group size 128: its weights use one scale per output channel}}
module {
func.func @padded(%x: tensor<?x36xf32>, %r: tensor<1x36xbf16>, %g: tensor<128x36xbf16>, %d: tensor<36x128xbf16>) -> tensor<?x36xf32> {
  %y = moeq.moe %x router %r : tensor<1x36xbf16> gate(%g : tensor<128x36xbf16>) up(%g : tensor<128x36xbf16>) down(%d : tensor<36x128xbf16>)
         {top_k = 1 : i64, scoring = #moeq<scoring softmax>, activation = #moeq<activation silu>} : tensor<?x36xf32> -> tensor<?x36xf32>
  return %y : tensor<?x36xf32>
}
}
