// RUN: moeq-opt %s -split-input-file -moeq-decompose-moe -moeq-convert-to-linalg -verify-diagnostics | FileCheck %s
// The whole CPU pipeline reaches the LLVM dialect.
// RUN: moeq-opt %s -split-input-file -moeq-lower-to-cpu -verify-diagnostics | FileCheck %s --check-prefix=LLVM

// Parameters become arguments named by archive key (packed weights: codes,
// scales and, asymmetric, zeros); the result becomes an output argument.
// CHECK-LABEL: func.func @layer
// CHECK-SAME: (%[[X:.*]]: memref<?x64xf32>,
// CHECK-SAME: %[[R:.*]]: memref<2x64xbf16> {moeq.param = #moeq.param<"model", "router">},
// CHECK-SAME: %[[GQ:.*]]: memref<128x6xi32> {moeq.param = #moeq.param<"q", "gate.qweight">},
// CHECK-SAME: %[[GS:.*]]: memref<128x2xf16> {moeq.param = #moeq.param<"q", "gate.scales">},
// CHECK-SAME: %[[GZ:.*]]: memref<128x2xf16> {moeq.param = #moeq.param<"q", "gate.zeros">},
// CHECK-SAME: %[[U:.*]]: memref<128x64xbf16> {moeq.param = #moeq.param<"model", "up">},
// CHECK-SAME: %[[DQ:.*]]: memref<64x16xi32> {moeq.param = #moeq.param<"q", "down.qweight">},
// CHECK-SAME: %[[DS:.*]]: memref<64x2xf16> {moeq.param = #moeq.param<"q", "down.scales">},
// CHECK-SAME: %[[OUT:.*]]: memref<?x64xf32> {moeq.output})
// CHECK-SAME: attributes {llvm.emit_c_interface}
// Router logits: x . router^T, the bf16 weights widened, the k-sum carried in
// a register with reassociation allowed (so that LLVM vectorizes it).
// CHECK: scf.for %[[M:.*]] = %{{.*}} to %{{.*}} step
// CHECK: scf.for %[[N:.*]] = %{{.*}} to %{{.*}} step
// CHECK: %[[INIT:.*]] = memref.load %{{.*}}[%[[M]], %[[N]]] : memref<?x2xf32>
// CHECK: %[[SUM:.*]] = scf.for %[[K:.*]] = {{.*}} iter_args(%[[ACC:.*]] = %[[INIT]]) -> (f32) {
// CHECK-NEXT: %[[XV:.*]] = memref.load %[[X]][%[[M]], %[[K]]] : memref<?x64xf32>
// CHECK-NEXT: %[[WV:.*]] = memref.load %[[R]][%[[N]], %[[K]]] : memref<2x64xbf16>
// CHECK-NEXT: %[[WF:.*]] = arith.extf %[[WV]] : bf16 to f32
// CHECK-NEXT: %[[P:.*]] = arith.mulf %[[XV]], %[[WF]] fastmath<reassoc> : f32
// CHECK-NEXT: %[[S:.*]] = arith.addf %[[ACC]], %[[P]] fastmath<reassoc> : f32
// CHECK-NEXT: scf.yield %[[S]] : f32
// CHECK: memref.store %[[SUM]], %{{.*}}[%[[M]], %[[N]]] : memref<?x2xf32>
// Softmax and top-k per token.
// CHECK: scf.for
// CHECK: math.exp
// CHECK: arith.cmpf ogt
// Dispatch: counting sort by expert.
// CHECK: memref.alloc() : memref<3xi32>
// CHECK: memref.alloc(%{{.*}}) : memref<?x64xf32>
// Gate: the packed-code ops read and dequantise the 3-bit codes (lowered by
// moeq-lower-dequantization), then the matmul on the expert's rows.
// CHECK: linalg.generic {{.*}} outs(%[[GW:.*]] : memref<128x64xf32>)
// CHECK: %[[ROW:.*]] = linalg.index 0
// CHECK: %[[CODE:.*]] = moeq.unpack_codes %[[GQ]][%[[ROW]]] bit %{{.*}} {bits = 3 : i64} : memref<128x6xi32> -> i32
// CHECK: %[[SCALE:.*]] = memref.load %[[GS]]
// CHECK: %[[ZERO:.*]] = memref.load %[[GZ]]
// CHECK: moeq.dequantize_codes %[[CODE]] scale %[[SCALE]] zero %[[ZERO]] : i32, f16, f16 -> f32
// CHECK: %[[ROWS:.*]] = memref.subview {{.*}} to memref<?x64xf32, strided<[64, 1], offset: ?>>
// CHECK: memref.load %[[ROWS]][%{{.*}}, %{{.*}}] : memref<?x64xf32, strided<[64, 1], offset: ?>>
// CHECK-NEXT: memref.load %[[GW]][%{{.*}}, %{{.*}}] : memref<128x64xf32>
// CHECK-NEXT: arith.mulf {{.*}} fastmath<reassoc> : f32
// Activation, down projection (symmetric: no zeros), combine.
// CHECK: math.exp
// CHECK: moeq.unpack_codes %[[DQ]]
// CHECK: memref.load %[[DS]]
// CHECK: moeq.dequantize_codes
// CHECK: memref.copy %{{.*}}, %[[OUT]]
// CHECK: memref.dealloc
// CHECK: return
// LLVM-LABEL: llvm.func @layer
// LLVM: llvm.func @_mlir_ciface_layer
func.func @layer(%x: tensor<?x64xf32>) -> tensor<?x64xf32> {
  %r = moeq.param <"model", "router"> : tensor<2x64xbf16>
  %g = moeq.param <"q", "gate"> : !moeq.qweight<128x64, #moeq.scheme<w3a16, g32, asym>>
  %u = moeq.param <"model", "up"> : tensor<128x64xbf16>
  %d = moeq.param <"q", "down"> : !moeq.qweight<64x128, #moeq.scheme<w4a16, g64, sym>>
  %y = moeq.moe %x router %r : tensor<2x64xbf16>
         gate(%g, %g : !moeq.qweight<128x64, #moeq.scheme<w3a16, g32, asym>>, !moeq.qweight<128x64, #moeq.scheme<w3a16, g32, asym>>)
         up(%u, %u : tensor<128x64xbf16>, tensor<128x64xbf16>)
         down(%d, %d : !moeq.qweight<64x128, #moeq.scheme<w4a16, g64, sym>>, !moeq.qweight<64x128, #moeq.scheme<w4a16, g64, sym>>)
         {top_k = 2 : i64, scoring = #moeq<scoring softmax>, activation = #moeq<activation silu>}
         : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// Sigmoid scoring with a selection bias, GeLU, no renormalisation.
// CHECK-LABEL: func.func @sigmoid_gelu
// CHECK: arith.negf
// CHECK: math.exp
// CHECK: arith.addf
// CHECK: math.erf
// LLVM-LABEL: llvm.func @sigmoid_gelu
// LLVM: llvm.call @erff
func.func @sigmoid_gelu(%x: tensor<?x64xf32>) -> tensor<?x64xf32> {
  %r = moeq.param <"model", "router"> : tensor<2x64xf32>
  %b = moeq.param <"model", "bias"> : tensor<2xf32>
  %w = moeq.param <"model", "w"> : tensor<128x64xf32>
  %d = moeq.param <"model", "d"> : tensor<64x128xf32>
  %y = moeq.moe %x router %r : tensor<2x64xf32>
         gate(%w, %w : tensor<128x64xf32>, tensor<128x64xf32>) up(%w, %w : tensor<128x64xf32>, tensor<128x64xf32>)
         down(%d, %d : tensor<64x128xf32>, tensor<64x128xf32>) score_bias %b : tensor<2xf32>
         {top_k = 1 : i64, scoring = #moeq<scoring sigmoid>, activation = #moeq<activation gelu>, norm_topk_prob = false}
         : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// expected-error @+1 {{CPU lowering expects f32 tensor arguments and results, got 'tensor<?x64xf16>'}}
func.func @half(%x: tensor<?x64xf16>) -> tensor<?x64xf16> {
  %r = moeq.param <"model", "router"> : tensor<2x64xf32>
  %w = moeq.param <"model", "w"> : tensor<128x64xf32>
  %d = moeq.param <"model", "d"> : tensor<64x128xf32>
  %y = moeq.moe %x router %r : tensor<2x64xf32>
         gate(%w, %w : tensor<128x64xf32>, tensor<128x64xf32>) up(%w, %w : tensor<128x64xf32>, tensor<128x64xf32>)
         down(%d, %d : tensor<64x128xf32>, tensor<64x128xf32>)
         {top_k = 1 : i64, scoring = #moeq<scoring softmax>, activation = #moeq<activation silu>}
         : tensor<?x64xf16> -> tensor<?x64xf16>
  return %y : tensor<?x64xf16>
}

// -----

// Group-limited top-k (DeepSeek): 2 groups of 2 experts, scored by the sum of
// their two best keys; experts of unselected groups get key 0.
// CHECK-LABEL: func.func @grouped
// CHECK: memref.alloc() : memref<2xf32>
// CHECK: scf.for
// CHECK: arith.maximumf
// CHECK: arith.addf
// CHECK: arith.cmpf oeq, %{{.*}}, %{{.*}} : f32
// CHECK: arith.select %{{.*}}, %{{.*}}, %{{.*}} : f32
// Shared expert: dense linears, then added in the combine with a sigmoid gate.
// CHECK: linalg.generic
// CHECK: math.exp
// CHECK: arith.divf
func.func @grouped(%x: tensor<?x64xf32>) -> tensor<?x64xf32> {
  %r = moeq.param <"model", "router"> : tensor<4x64xf32>
  %b = moeq.param <"model", "bias"> : tensor<4xf32>
  %w = moeq.param <"model", "w"> : tensor<128x64xf32>
  %d = moeq.param <"model", "d"> : tensor<64x128xf32>
  %g = moeq.param <"model", "g"> : tensor<1x64xf32>
  %y = moeq.moe %x router %r : tensor<4x64xf32>
         gate(%w, %w, %w, %w : tensor<128x64xf32>, tensor<128x64xf32>, tensor<128x64xf32>, tensor<128x64xf32>)
         up(%w, %w, %w, %w : tensor<128x64xf32>, tensor<128x64xf32>, tensor<128x64xf32>, tensor<128x64xf32>)
         down(%d, %d, %d, %d : tensor<64x128xf32>, tensor<64x128xf32>, tensor<64x128xf32>, tensor<64x128xf32>)
         shared(%w, %w, %d : tensor<128x64xf32>, tensor<128x64xf32>, tensor<64x128xf32>)
         shared_expert_gate %g : tensor<1x64xf32>
         score_bias %b : tensor<4xf32>
         {top_k = 2 : i64, scoring = #moeq<scoring sigmoid>, activation = #moeq<activation silu>, n_group = 2 : i64,
          topk_group = 1 : i64, group_scoring = #moeq<group_scoring top2_sum>}
         : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// Sparsemixer (Phi-3.5-MoE): per pick, a masked softmax around the best logit.
// CHECK-LABEL: func.func @sparsemixer
// CHECK: math.absf
// CHECK: arith.cmpf ole
// CHECK: math.exp
// CHECK: math.absf
// CHECK: arith.cmpf ole
func.func @sparsemixer(%x: tensor<?x64xf32>) -> tensor<?x64xf32> {
  %r = moeq.param <"model", "router"> : tensor<4x64xf32>
  %w = moeq.param <"model", "w"> : tensor<128x64xf32>
  %d = moeq.param <"model", "d"> : tensor<64x128xf32>
  %y = moeq.moe %x router %r : tensor<4x64xf32>
         gate(%w, %w, %w, %w : tensor<128x64xf32>, tensor<128x64xf32>, tensor<128x64xf32>, tensor<128x64xf32>)
         up(%w, %w, %w, %w : tensor<128x64xf32>, tensor<128x64xf32>, tensor<128x64xf32>, tensor<128x64xf32>)
         down(%d, %d, %d, %d : tensor<64x128xf32>, tensor<64x128xf32>, tensor<64x128xf32>, tensor<64x128xf32>)
         {top_k = 2 : i64, scoring = #moeq<scoring sparsemixer>, activation = #moeq<activation silu>,
          norm_topk_prob = false, jitter_eps = 0.01 : f64}
         : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// A standalone dequantize reads codes, scales and zeros of the parameter.
// CHECK-LABEL: func.func @dequant
// CHECK-SAME: (%[[Q:.*]]: memref<32x8xi32> {moeq.param = #moeq.param<"q", "w.qweight">}, %[[S:.*]]: memref<32x1xf16> {moeq.param = #moeq.param<"q", "w.scales">}, %[[Z:.*]]: memref<32x1xf16> {moeq.param = #moeq.param<"q", "w.zeros">}, %[[OUT:.*]]: memref<32x64xf32> {moeq.output})
// CHECK: %[[W:.*]] = memref.alloc() : memref<32x64xf32>
// CHECK: linalg.generic {{.*}} outs(%[[W]] : memref<32x64xf32>)
// CHECK: moeq.unpack_codes %[[Q]]
// CHECK: memref.load %[[S]]
// CHECK: memref.load %[[Z]]
// CHECK: moeq.dequantize_codes
// CHECK: memref.copy %[[W]], %[[OUT]]
func.func @dequant() -> tensor<32x64xf32> {
  %q = moeq.param <"q", "w"> : !moeq.qweight<32x64, #moeq.scheme<w4a16, per_channel, asym>>
  %w = moeq.dequantize %q : !moeq.qweight<32x64, #moeq.scheme<w4a16, per_channel, asym>> -> tensor<32x64xf32>
  return %w : tensor<32x64xf32>
}

// -----

// Routing weights on the expert inputs (Llama 4): the dispatch multiplies
// each copied input element by its slot's routing weight.
// CHECK-LABEL: func.func @weights_on_inputs
// CHECK-SAME: (%[[X:[a-z0-9]+]]: memref<?x64xf32>
// CHECK: memref.store %{{.*}}, %[[POS:.*]][%{{.*}}] : memref<?xi32>
// CHECK-NEXT: %[[SCALE:.*]] = memref.load %{{.*}}[%[[T:.*]], %{{.*}}] : memref<?x1xf32>
// CHECK: scf.for %{{.*}} = %{{.*}} to %c64
// CHECK-NEXT: %[[V:.*]] = memref.load %[[X]][%[[T]], %{{.*}}] : memref<?x64xf32>
// CHECK-NEXT: %[[S:.*]] = arith.mulf %[[V]], %[[SCALE]] : f32
// CHECK-NEXT: memref.store %[[S]], %{{.*}} : memref<?x64xf32>
func.func @weights_on_inputs(%x: tensor<?x64xf32>) -> tensor<?x64xf32> {
  %r = moeq.param <"model", "router"> : tensor<2x64xf32>
  %w = moeq.param <"model", "w"> : tensor<128x64xf32>
  %d = moeq.param <"model", "d"> : tensor<64x128xf32>
  %y = moeq.moe %x router %r : tensor<2x64xf32>
         gate(%w, %w : tensor<128x64xf32>, tensor<128x64xf32>)
         up(%w, %w : tensor<128x64xf32>, tensor<128x64xf32>)
         down(%d, %d : tensor<64x128xf32>, tensor<64x128xf32>)
         {top_k = 1 : i64, scoring = #moeq<scoring sigmoid>, activation = #moeq<activation silu>,
          norm_topk_prob = false, weights_on_inputs}
         : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// gpt-oss: the router's bias is added to every logit before the routing;
// each group's bias to its rows after its GEMM; the clamped SwiGLU
// min(g, L) sigmoid(1.702 min(g, L)) (clamp(u, -L, L) + 1).
// CHECK-LABEL: func.func @gpt_oss
// CHECK-SAME: %[[RB:[a-z0-9]+]]: memref<2xf32> {moeq.param = #moeq.param<"model", "router_bias">}
// CHECK-SAME: %[[BI:[a-z0-9]+]]: memref<128xf32> {moeq.param = #moeq.param<"model", "bi">}
// CHECK: %[[B:.*]] = memref.load %[[RB]][%[[E:.*]]] : memref<2xf32>
// CHECK-NEXT: %[[S:.*]] = arith.addf %{{.*}}, %[[B]] : f32
// CHECK-NEXT: memref.store %[[S]], %[[LOGITS:.*]][%{{.*}}, %[[E]]] : memref<?x2xf32>
// CHECK: %[[GB:.*]] = memref.load %[[BI]][%[[N:.*]]] : memref<128xf32>
// CHECK-NEXT: %[[YB:.*]] = arith.addf %{{.*}}, %[[GB]] : f32
// CHECK-NEXT: memref.store %[[YB]], %[[OUT:.*]][%{{.*}}, %[[N]]] : memref<?x128xf32>
// CHECK: linalg.generic
// CHECK-NEXT: ^bb0(%[[G:.*]]: f32, %[[U:.*]]: f32, %{{.*}}: f32):
// CHECK: %[[GC:.*]] = arith.minimumf %[[G]], %{{.*}} : f32
// CHECK: arith.constant 1.702000e+00 : f32
// CHECK: %[[UC:.*]] = arith.minimumf %[[U]], %{{.*}} : f32
// CHECK-NEXT: %[[NEGL:.*]] = arith.constant -5.000000e+00 : f32
// CHECK-NEXT: arith.maximumf %[[UC]], %[[NEGL]] : f32
func.func @gpt_oss(%x: tensor<?x64xf32>) -> tensor<?x64xf32> {
  %r = moeq.param <"model", "router"> : tensor<2x64xf32>
  %rb = moeq.param <"model", "router_bias"> : tensor<2xf32>
  %w = moeq.param <"model", "w"> : tensor<128x64xf32>
  %d = moeq.param <"model", "d"> : tensor<64x128xf32>
  %bi = moeq.param <"model", "bi"> : tensor<128xf32>
  %bh = moeq.param <"model", "bh"> : tensor<64xf32>
  %y = moeq.moe %x router %r : tensor<2x64xf32>
         gate(%w, %w : tensor<128x64xf32>, tensor<128x64xf32>)
         up(%w, %w : tensor<128x64xf32>, tensor<128x64xf32>)
         down(%d, %d : tensor<64x128xf32>, tensor<64x128xf32>)
         router_bias %rb : tensor<2xf32>
         bias gate(%bi, %bi : tensor<128xf32>, tensor<128xf32>) up(%bi, %bi : tensor<128xf32>, tensor<128xf32>) down(%bh, %bh : tensor<64xf32>, tensor<64xf32>)
         {top_k = 1 : i64, scoring = #moeq<scoring softmax>, activation = #moeq<activation clamped_swiglu>, swiglu_limit = 5.0 : f64}
         : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
