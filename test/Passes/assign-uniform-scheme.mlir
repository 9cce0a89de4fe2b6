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

// -----

// The shared expert stays in full precision unless include-shared is set; its
// sigmoid gate and the router never get quantized.
// RUN: moeq-opt %s -split-input-file -moeq-assign-uniform-scheme="bits=4 group-size=32 include-shared=true" | FileCheck %s --check-prefix=SHARED
// CHECK-LABEL: func.func @shared
// CHECK-COUNT-3: moeq.quantize
// CHECK-NOT: moeq.quantize
// CHECK: moeq.moe {{.*}} shared(%{{.*}}, %{{.*}}, %{{.*}} : tensor<96x64xbf16>, tensor<96x64xbf16>, tensor<64x96xbf16>) shared_expert_gate %{{.*}} : tensor<1x64xbf16>
// SHARED-LABEL: func.func @shared
// SHARED-COUNT-3: moeq.quantize %{{.*}} : tensor<{{128x64|64x128}}xbf16> -> !moeq.qweight<{{128x64|64x128}}, #moeq.scheme<w4a16, g32, asym>>
// SHARED-NEXT: %[[SG:.*]] = moeq.quantize %{{.*}} : tensor<96x64xbf16> -> !moeq.qweight<96x64, #moeq.scheme<w4a16, g32, asym>>
// SHARED-NEXT: %[[SU:.*]] = moeq.quantize %{{.*}} : tensor<96x64xbf16> -> !moeq.qweight<96x64, #moeq.scheme<w4a16, g32, asym>>
// SHARED-NEXT: %[[SD:.*]] = moeq.quantize %{{.*}} : tensor<64x96xbf16> -> !moeq.qweight<64x96, #moeq.scheme<w4a16, g32, asym>>
// SHARED-NOT: moeq.quantize
// SHARED: moeq.moe {{.*}} shared(%[[SG]], %[[SU]], %[[SD]] : {{.*}}) shared_expert_gate %{{.*}} : tensor<1x64xbf16>
func.func @shared(%x: tensor<?x64xf32>, %r: tensor<1x64xbf16>, %g: tensor<128x64xbf16>,
                  %u: tensor<128x64xbf16>, %d: tensor<64x128xbf16>, %sg: tensor<96x64xbf16>,
                  %su: tensor<96x64xbf16>, %sd: tensor<64x96xbf16>,
                  %gw: tensor<1x64xbf16>) -> tensor<?x64xf32> {
  %y = moeq.moe %x router %r : tensor<1x64xbf16> gate(%g : tensor<128x64xbf16>) up(%u : tensor<128x64xbf16>) down(%d : tensor<64x128xbf16>)
         shared(%sg, %su, %sd : tensor<96x64xbf16>, tensor<96x64xbf16>, tensor<64x96xbf16>)
         shared_expert_gate %gw : tensor<1x64xbf16>
         {top_k = 1 : i64, scoring = #moeq<scoring softmax>, activation = #moeq<activation silu>} : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

