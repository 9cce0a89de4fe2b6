// GPTQ/AGQ with a statistics file: each quantize op references its Hessian
// in the `stats` archive, by layer (the function's moeq.layer), expert and
// linear; AGQ takes the affinity-weighted Gram matrices, and a gated shared
// expert the sigmoid-weighted ones.
// RUN: moeq-opt %s -moeq-assign-uniform-scheme="bits=4 group-size=32 include-shared=true method=agq stats=/data/stats.safetensors act-order=true" | FileCheck %s --check-prefix=AGQ
// RUN: moeq-opt %s -moeq-assign-uniform-scheme="bits=4 group-size=32 include-shared=true method=gptq stats=/data/stats.safetensors mse-clip=true" | FileCheck %s --check-prefix=GPTQ
// AGQ: module attributes {moeq.archives = {stats = "/data/stats.safetensors"}}
// AGQ-LABEL: func.func @calibrated
// AGQ: moeq.quantize %{{.*}} {act_order, hessian = #moeq.param<"stats", "layers.3.experts.0.gram_in_weighted">, method = #moeq<method agq>}
// AGQ: moeq.quantize %{{.*}} {act_order, hessian = #moeq.param<"stats", "layers.3.experts.1.gram_in_weighted">, method = #moeq<method agq>}
// AGQ: moeq.quantize %{{.*}} {act_order, hessian = #moeq.param<"stats", "layers.3.experts.0.gram_in_weighted">, method = #moeq<method agq>}
// AGQ: moeq.quantize %{{.*}} {act_order, hessian = #moeq.param<"stats", "layers.3.experts.1.gram_in_weighted">, method = #moeq<method agq>}
// AGQ: moeq.quantize %{{.*}} {act_order, hessian = #moeq.param<"stats", "layers.3.experts.0.gram_down_weighted">, method = #moeq<method agq>}
// AGQ: moeq.quantize %{{.*}} {act_order, hessian = #moeq.param<"stats", "layers.3.experts.1.gram_down_weighted">, method = #moeq<method agq>}
// AGQ: moeq.quantize %{{.*}} {act_order, hessian = #moeq.param<"stats", "layers.3.shared.gram_in_weighted">, method = #moeq<method agq>}
// AGQ: moeq.quantize %{{.*}} {act_order, hessian = #moeq.param<"stats", "layers.3.shared.gram_in_weighted">, method = #moeq<method agq>}
// AGQ: moeq.quantize %{{.*}} {act_order, hessian = #moeq.param<"stats", "layers.3.shared.gram_down_weighted">, method = #moeq<method agq>}
// AGQ-NOT: moeq.quantize
// GPTQ-LABEL: func.func @calibrated
// GPTQ: moeq.quantize %{{.*}} {hessian = #moeq.param<"stats", "layers.3.experts.0.gram_in">, method = #moeq<method gptq>, mse_clip}
// GPTQ: hessian = #moeq.param<"stats", "layers.3.experts.1.gram_down">
// GPTQ: hessian = #moeq.param<"stats", "layers.3.gram_all">
// GPTQ: hessian = #moeq.param<"stats", "layers.3.gram_all">
// GPTQ: hessian = #moeq.param<"stats", "layers.3.shared.gram_down">
func.func @calibrated(%x: tensor<?x64xf32>, %r: tensor<2x64xbf16>, %g: tensor<128x64xbf16>,
                      %d: tensor<64x128xbf16>, %sg: tensor<96x64xbf16>, %sd: tensor<64x96xbf16>,
                      %gw: tensor<1x64xbf16>) -> tensor<?x64xf32> attributes {moeq.layer = 3 : i64} {
  %y = moeq.moe %x router %r : tensor<2x64xbf16> gate(%g, %g : tensor<128x64xbf16>, tensor<128x64xbf16>)
         up(%g, %g : tensor<128x64xbf16>, tensor<128x64xbf16>) down(%d, %d : tensor<64x128xbf16>, tensor<64x128xbf16>)
         shared(%sg, %sg, %sd : tensor<96x64xbf16>, tensor<96x64xbf16>, tensor<64x96xbf16>)
         shared_expert_gate %gw : tensor<1x64xbf16>
         {top_k = 1 : i64, scoring = #moeq<scoring softmax>, activation = #moeq<activation silu>} : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
