// RUN: moeq-opt %s -split-input-file -moeq-assign-uniform-scheme="bits=3 group-size=32" | FileCheck %s
// RUN: moeq-opt %s -split-input-file -moeq-assign-uniform-scheme="bits=8 group-size=0 symmetric=true" | FileCheck %s --check-prefix=SYM

// CHECK-LABEL: func.func @layer
// Every routed-expert weight is quantized, the router is not.
// CHECK-NOT: moeq.quantize %[[R:.*]] :
// CHECK: %[[Q0:.*]] = moeq.quantize %{{.*}} : tensor<128x64xbf16> -> !moeq.qweight<128x64, #moeq.scheme<w3a16, g32, asym>>
// CHECK: %[[Q1:.*]] = moeq.quantize %{{.*}} : tensor<128x64xbf16> -> !moeq.qweight<128x64, #moeq.scheme<w3a16, g32, asym>>
// CHECK: %[[Q2:.*]] = moeq.quantize %{{.*}} : tensor<64x128xbf16> -> !moeq.qweight<64x128, #moeq.scheme<w3a16, g32, asym>>
// CHECK: moeq.moe %{{.*}} router %{{.*}} : tensor<1x64xbf16> gate(%[[Q0]] : {{.*}}) up(%[[Q1]] : {{.*}}) down(%[[Q2]] : !moeq.qweight<64x128, #moeq.scheme<w3a16, g32, asym>>)
// SYM-LABEL: func.func @layer
// SYM: moeq.quantize %{{.*}} : tensor<128x64xbf16> -> !moeq.qweight<128x64, #moeq.scheme<w8a16, per_channel, sym>>
func.func @layer(%x: tensor<?x64xf32>) -> tensor<?x64xf32> {
  %r = moeq.param <"model", "router"> : tensor<1x64xbf16>
  %g = moeq.param <"model", "gate"> : tensor<128x64xbf16>
  %u = moeq.param <"model", "up"> : tensor<128x64xbf16>
  %d = moeq.param <"model", "down"> : tensor<64x128xbf16>
  %y = moeq.moe %x router %r : tensor<1x64xbf16> gate(%g : tensor<128x64xbf16>) up(%u : tensor<128x64xbf16>) down(%d : tensor<64x128xbf16>)
         {top_k = 1 : i64, scoring = #moeq<scoring softmax>, activation = #moeq<activation silu>} : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// Already quantized weights keep their scheme.
// CHECK-LABEL: func.func @mixed
// CHECK: moeq.quantize %{{.*}} : tensor<128x64xbf16> -> !moeq.qweight<128x64, #moeq.scheme<w3a16, g32, asym>>
// CHECK-NOT: moeq.quantize
// CHECK: moeq.moe
func.func @mixed(%x: tensor<?x64xf32>, %r: tensor<1x64xbf16>, %g: tensor<128x64xbf16>,
                 %u: !moeq.qweight<128x64, #moeq.scheme<w2a16, g64, asym>>,
                 %d: !moeq.qweight<64x128, #moeq.scheme<w4a16, g64, asym>>) -> tensor<?x64xf32> {
  %y = moeq.moe %x router %r : tensor<1x64xbf16> gate(%g : tensor<128x64xbf16>)
         up(%u : !moeq.qweight<128x64, #moeq.scheme<w2a16, g64, asym>>) down(%d : !moeq.qweight<64x128, #moeq.scheme<w4a16, g64, asym>>)
         {top_k = 1 : i64, scoring = #moeq<scoring softmax>, activation = #moeq<activation silu>} : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
