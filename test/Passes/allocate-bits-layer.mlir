// granularity=layer (what vLLM's fused MoE serves): every routed weight of a
// layer shares one scheme, and the budget is the model's, so layers trade
// bits. Two layers of two experts (gate/up 128x64, down 64x128: 49152
// weights each), candidates w4 g32 (5 bits per weight) and w2 g32 (3 bits).
// At 4 average bits over the model, all-w2 (3 bits) leaves room for exactly
// one layer at w4 (2 x 49152 bits). Upgrading layer 5 lowers its loss from
// 117 to 6, layer 6 only from 20 to 6: layer 5 gets w4, layer 6 w2,
// L = 6 + 20 = 26. Per layer (granularity=linear) each layer would mix.
// RUN: moeq-opt %s -moeq-allocate-bits="avg-bits=4 r=1 granularity=layer" | FileCheck %s
// RUN: moeq-opt %s -moeq-allocate-bits="avg-bits=4 r=1 granularity=linear" | FileCheck %s --check-prefix=LINEAR
// RUN: not moeq-opt %s -moeq-allocate-bits="avg-bits=2.5 r=1 granularity=layer" 2>&1 | FileCheck %s --check-prefix=BUDGET

// CHECK-LABEL: module attributes
// CHECK-SAME: moeq.model_allocation = {avg_bits = 4.000000e+00 : f64, blocks = 2 : i64, budget_avg_bits = 4.000000e+00 : f64, gap = 0.000000e+00 : f64, gpu = "h100", granularity = "layer", loss = 2.600000e+01 : f64

// CHECK-LABEL: func.func @layer5
// CHECK-SAME: moeq.allocation = {avg_bits = 5.000000e+00 : f64, blocks = 1 : i64, budget_avg_bits = 4.000000e+00 : f64, gap = 0.000000e+00 : f64, gpu = "h100", granularity = "layer", loss = 6.000000e+00 : f64
// CHECK-COUNT-6: -> !moeq.qweight<{{.*}}, #moeq.scheme<w4a16, g32, asym>>
// CHECK-NOT: moeq.scheme<w2a16
// CHECK: moeq.moe

// CHECK-LABEL: func.func @layer6
// CHECK-SAME: moeq.allocation = {avg_bits = 3.000000e+00 : f64, blocks = 1 : i64, budget_avg_bits = 4.000000e+00 : f64, gap = 0.000000e+00 : f64, gpu = "h100", granularity = "layer", loss = 2.000000e+01 : f64
// CHECK-COUNT-6: -> !moeq.qweight<{{.*}}, #moeq.scheme<w2a16, g32, asym>>
// CHECK-NOT: moeq.scheme<w4a16
// CHECK: moeq.moe

// LINEAR-NOT: moeq.model_allocation
// LINEAR-LABEL: func.func @layer5
// LINEAR-SAME: avg_bits = 4.000000e+00
// LINEAR-LABEL: func.func @layer6
// LINEAR-SAME: avg_bits = 4.000000e+00

// The least budget is the model's: every layer at w2 g32.
// BUDGET: error: the model: the memory budget of 2.500 average bits cannot be met: the smallest candidate of every block needs 3.000 average bits

func.func @layer5(%x: tensor<?x64xf32>, %r: tensor<2x64xbf16>, %g: tensor<128x64xbf16>,
                  %d: tensor<64x128xbf16>) -> tensor<?x64xf32> attributes {moeq.layer = 5 : i64} {
  %y = moeq.moe %x router %r : tensor<2x64xbf16> gate(%g, %g : tensor<128x64xbf16>, tensor<128x64xbf16>)
         up(%g, %g : tensor<128x64xbf16>, tensor<128x64xbf16>) down(%d, %d : tensor<64x128xbf16>, tensor<64x128xbf16>)
         {top_k = 1 : i64, scoring = #moeq<scoring softmax>, activation = #moeq<activation silu>,
          moeq.sensitivity = {schemes = [#moeq.scheme<w4a16, g32, asym>, #moeq.scheme<w2a16, g32, asym>],
                              loss = "hessian", routed_share = array<f64: 0.5, 0.5>,
                              gate = dense<[[1.0, 10.0], [1.0, 30.0]]> : tensor<2x2xf64>,
                              up = dense<[[1.0, 10.0], [1.0, 30.0]]> : tensor<2x2xf64>,
                              down = dense<[[1.0, 25.0], [1.0, 12.0]]> : tensor<2x2xf64>}}
         : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

func.func @layer6(%x: tensor<?x64xf32>, %r: tensor<2x64xbf16>, %g: tensor<128x64xbf16>,
                  %d: tensor<64x128xbf16>) -> tensor<?x64xf32> attributes {moeq.layer = 6 : i64} {
  %y = moeq.moe %x router %r : tensor<2x64xbf16> gate(%g, %g : tensor<128x64xbf16>, tensor<128x64xbf16>)
         up(%g, %g : tensor<128x64xbf16>, tensor<128x64xbf16>) down(%d, %d : tensor<64x128xbf16>, tensor<64x128xbf16>)
         {top_k = 1 : i64, scoring = #moeq<scoring softmax>, activation = #moeq<activation silu>,
          moeq.sensitivity = {schemes = [#moeq.scheme<w4a16, g32, asym>, #moeq.scheme<w2a16, g32, asym>],
                              loss = "hessian", routed_share = array<f64: 0.5, 0.5>,
                              gate = dense<[[1.0, 3.0], [1.0, 3.0]]> : tensor<2x2xf64>,
                              up = dense<[[1.0, 3.0], [1.0, 3.0]]> : tensor<2x2xf64>,
                              down = dense<[[1.0, 4.0], [1.0, 4.0]]> : tensor<2x2xf64>}}
         : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
