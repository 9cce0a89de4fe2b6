// RUN: moeq-opt %s -split-input-file -moeq-decompose-moe | FileCheck %s

// CHECK-LABEL: func.func @layer
// CHECK-SAME: (%[[X:.*]]: tensor<?x64xf32>, %[[R:.*]]: tensor<2x64xbf16>, %[[G0:.*]]: !moeq.qweight<128x64, {{.*}}>, %[[G1:[^:]*]]: tensor<128x64xbf16>, %[[U:[^:]*]]: tensor<128x64xbf16>, %[[D:[^:]*]]: tensor<64x128xbf16>)
// CHECK: %[[IDX:.*]], %[[WTS:.*]] = moeq.router %[[X]], %[[R]] {routed_scaling_factor = 2.000000e+00 : f64, scoring = #moeq<scoring softmax>, top_k = 2 : i64} : tensor<?x64xf32>, tensor<2x64xbf16> -> tensor<?x2xi32>, tensor<?x2xf32>
// CHECK: %[[SORTED:.*]], %[[POS:.*]], %[[OFF:.*]] = moeq.dispatch %[[X]], %[[IDX]] {num_experts = 2 : i64} : tensor<?x64xf32>, tensor<?x2xi32> -> tensor<?x64xf32>, tensor<?xi32>, tensor<3xi32>
// CHECK: %[[GATE:.*]] = moeq.grouped_matmul %[[SORTED]], %[[OFF]] weights(%[[G0]], %[[G1]] : {{.*}}) : tensor<?x64xf32>, tensor<3xi32> -> tensor<?x128xf32>
// CHECK: %[[UP:.*]] = moeq.grouped_matmul %[[SORTED]], %[[OFF]] weights(%[[U]], %[[U]] : {{.*}}) : tensor<?x64xf32>, tensor<3xi32> -> tensor<?x128xf32>
// CHECK: %[[ACT:.*]] = moeq.gated_activation silu %[[GATE]], %[[UP]] : tensor<?x128xf32>
// CHECK: %[[DOWN:.*]] = moeq.grouped_matmul %[[ACT]], %[[OFF]] weights(%[[D]], %[[D]] : {{.*}}) : tensor<?x128xf32>, tensor<3xi32> -> tensor<?x64xf32>
// CHECK: %[[Y:.*]] = moeq.combine %[[DOWN]], %[[POS]], %[[WTS]] : tensor<?x64xf32>, tensor<?xi32>, tensor<?x2xf32> -> tensor<?x64xf32>
// CHECK: return %[[Y]]
func.func @layer(%x: tensor<?x64xf32>, %r: tensor<2x64xbf16>, %g0: !moeq.qweight<128x64, #moeq.scheme<w4a16, g32, asym>>,
                 %g1: tensor<128x64xbf16>, %u: tensor<128x64xbf16>, %d: tensor<64x128xbf16>) -> tensor<?x64xf32> {
  %y = moeq.moe %x router %r : tensor<2x64xbf16>
         gate(%g0, %g1 : !moeq.qweight<128x64, #moeq.scheme<w4a16, g32, asym>>, tensor<128x64xbf16>)
         up(%u, %u : tensor<128x64xbf16>, tensor<128x64xbf16>) down(%d, %d : tensor<64x128xbf16>, tensor<64x128xbf16>)
         {top_k = 2 : i64, scoring = #moeq<scoring softmax>, activation = #moeq<activation silu>, routed_scaling_factor = 2.0 : f64}
         : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// Static token counts give static routed-row counts.
// CHECK-LABEL: func.func @static_tokens
// CHECK: moeq.dispatch {{.*}} -> tensor<12x64xf32>, tensor<12xi32>, tensor<5xi32>
// CHECK: moeq.combine {{.*}} : tensor<12x64xf32>, tensor<12xi32>, tensor<4x3xf32> -> tensor<4x64xf32>
func.func @static_tokens(%x: tensor<4x64xf32>, %r: tensor<4x64xf32>, %w: tensor<128x64xf32>, %d: tensor<64x128xf32>) -> tensor<4x64xf32> {
  %y = moeq.moe %x router %r : tensor<4x64xf32>
         gate(%w, %w, %w, %w : tensor<128x64xf32>, tensor<128x64xf32>, tensor<128x64xf32>, tensor<128x64xf32>)
         up(%w, %w, %w, %w : tensor<128x64xf32>, tensor<128x64xf32>, tensor<128x64xf32>, tensor<128x64xf32>)
         down(%d, %d, %d, %d : tensor<64x128xf32>, tensor<64x128xf32>, tensor<64x128xf32>, tensor<64x128xf32>)
         {top_k = 3 : i64, scoring = #moeq<scoring softmax>, activation = #moeq<activation silu>} : tensor<4x64xf32> -> tensor<4x64xf32>
  return %y : tensor<4x64xf32>
}

// -----

// A shared expert: three linears (and one for its sigmoid gate) whose output
// the combine adds.
// CHECK-LABEL: func.func @shared
// CHECK-SAME: (%[[X:.*]]: tensor<4x64xf32>, %{{.*}}: tensor<1x64xf32>, %{{.*}}: tensor<128x64xf32>, %{{.*}}: tensor<64x128xf32>, %[[SG:.*]]: tensor<96x64xf32>, %[[SU:.*]]: tensor<96x64xf32>, %[[SD:.*]]: tensor<64x96xf32>, %[[GW:.*]]: tensor<1x64xf32>)
// CHECK: moeq.grouped_matmul
// CHECK: moeq.grouped_matmul
// CHECK: %[[DOWN:.*]] = moeq.grouped_matmul
// CHECK: %[[G:.*]] = moeq.linear %[[X]], %[[SG]] : tensor<4x64xf32>, tensor<96x64xf32> -> tensor<4x96xf32>
// CHECK: %[[U:.*]] = moeq.linear %[[X]], %[[SU]] : tensor<4x64xf32>, tensor<96x64xf32> -> tensor<4x96xf32>
// CHECK: %[[A:.*]] = moeq.gated_activation silu %[[G]], %[[U]] : tensor<4x96xf32>
// CHECK: %[[S:.*]] = moeq.linear %[[A]], %[[SD]] : tensor<4x96xf32>, tensor<64x96xf32> -> tensor<4x64xf32>
// CHECK: %[[L:.*]] = moeq.linear %[[X]], %[[GW]] : tensor<4x64xf32>, tensor<1x64xf32> -> tensor<4x1xf32>
// CHECK: moeq.combine %[[DOWN]], %{{.*}}, %{{.*}} shared(%[[S]] : tensor<4x64xf32>) shared_gate(%[[L]] : tensor<4x1xf32>)
func.func @shared(%x: tensor<4x64xf32>, %r: tensor<1x64xf32>, %w: tensor<128x64xf32>, %d: tensor<64x128xf32>,
                  %sg: tensor<96x64xf32>, %su: tensor<96x64xf32>, %sd: tensor<64x96xf32>, %gw: tensor<1x64xf32>) -> tensor<4x64xf32> {
  %y = moeq.moe %x router %r : tensor<1x64xf32> gate(%w : tensor<128x64xf32>) up(%w : tensor<128x64xf32>) down(%d : tensor<64x128xf32>)
         shared(%sg, %su, %sd : tensor<96x64xf32>, tensor<96x64xf32>, tensor<64x96xf32>)
         shared_expert_gate %gw : tensor<1x64xf32>
         {top_k = 1 : i64, scoring = #moeq<scoring softmax>, activation = #moeq<activation silu>} : tensor<4x64xf32> -> tensor<4x64xf32>
  return %y : tensor<4x64xf32>
}

// -----

// D^2-MoE weights of one base: each linear splits into the base GEMM (gate,
// up: once per token, its rows then dispatched like the token copies), the
// low-rank grouped GEMMs through the rank (x b^T, then a^T) and their sum;
// the delta_weights are gone. A pruned down base (32 of
// the 128 intermediate inputs) is a linear reading the leading inputs.
// CHECK-LABEL: func.func @delta
// CHECK-SAME: (%[[X:.*]]: tensor<?x64xf32>, %{{.*}}: tensor<2x64xf32>, %[[BASE:[^:]*]]: tensor<128x64xf32>, %[[A0:[^:]*]]: tensor<128x16xf32>, %[[A1:[^:]*]]: tensor<128x16xf32>, %[[B0:[^:]*]]: tensor<16x64xf32>, %[[B1:[^:]*]]: tensor<16x64xf32>, %[[DB:[^:]*]]: tensor<64x32xf32>
// CHECK-NOT: moeq.delta_weight
// CHECK: %[[IDX:.*]], %{{.*}} = moeq.router
// CHECK: %[[SORTED:.*]], %{{.*}}, %[[OFF:.*]] = moeq.dispatch %[[X]], %[[IDX]]
// CHECK: %[[T:.*]] = moeq.grouped_matmul %[[SORTED]], %[[OFF]] weights(%[[B0]], %[[B1]] : {{.*}}) : tensor<?x64xf32>, tensor<3xi32> -> tensor<?x16xf32>
// The a-GEMM carries the checkpoint weight each expert's base + a . b
// replaces (exports write it back under that name), unit where none.
// CHECK: %[[LR:.*]] = moeq.grouped_matmul %[[T]], %[[OFF]] weights(%[[A0]], %[[A1]] : {{.*}}) {moeq.delta_sources = [#moeq.param<"model", "experts.0.w1">, unit]} : tensor<?x16xf32>, tensor<3xi32> -> tensor<?x128xf32>
// CHECK: %[[PT:.*]] = moeq.linear %[[X]], %[[BASE]] : tensor<?x64xf32>, tensor<128x64xf32> -> tensor<?x128xf32>
// CHECK: %[[BO:.*]], %{{.*}}, %{{.*}} = moeq.dispatch %[[PT]], %[[IDX]] {num_experts = 2 : i64} : tensor<?x128xf32>, tensor<?x2xi32> -> tensor<?x128xf32>
// CHECK: %[[GATE:.*]] = moeq.delta_sum %[[LR]], %[[BO]] : tensor<?x128xf32>, tensor<?x128xf32> -> tensor<?x128xf32>
// CHECK: %[[H:.*]] = moeq.gated_activation silu %[[GATE]]
// CHECK: moeq.grouped_matmul %[[H]], %[[OFF]] {{.*}} -> tensor<?x16xf32>
// CHECK: moeq.linear %[[H]], %[[DB]] {leading_inputs} : tensor<?x128xf32>, tensor<64x32xf32> -> tensor<?x64xf32>
// CHECK: moeq.delta_sum {{.*}} : tensor<?x64xf32>, tensor<?x64xf32> -> tensor<?x64xf32>
func.func @delta(%x: tensor<?x64xf32>, %r: tensor<2x64xf32>, %base: tensor<128x64xf32>,
                 %a0: tensor<128x16xf32>, %a1: tensor<128x16xf32>, %b0: tensor<16x64xf32>,
                 %b1: tensor<16x64xf32>, %dbase: tensor<64x32xf32>, %da: tensor<64x16xf32>,
                 %db: tensor<16x128xf32>) -> tensor<?x64xf32> {
  %g0 = moeq.delta_weight %base, %a0, %b0 {source = #moeq.param<"model", "experts.0.w1">} : tensor<128x64xf32>, tensor<128x16xf32>, tensor<16x64xf32> -> tensor<128x64xf32>
  %g1 = moeq.delta_weight %base, %a1, %b1 : tensor<128x64xf32>, tensor<128x16xf32>, tensor<16x64xf32> -> tensor<128x64xf32>
  %d = moeq.delta_weight %dbase, %da, %db : tensor<64x32xf32>, tensor<64x16xf32>, tensor<16x128xf32> -> tensor<64x128xf32>
  %y = moeq.moe %x router %r : tensor<2x64xf32>
         gate(%g0, %g1 : tensor<128x64xf32>, tensor<128x64xf32>) up(%g0, %g1 : tensor<128x64xf32>, tensor<128x64xf32>)
         down(%d, %d : tensor<64x128xf32>, tensor<64x128xf32>)
         {top_k = 2 : i64, scoring = #moeq<scoring softmax>, activation = #moeq<activation silu>}
         : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// Llama 4: the routing weights scale the expert inputs (the dispatch takes
// them as scales) and the combine sums the expert outputs unweighted.
// CHECK-LABEL: func.func @weights_on_inputs
// CHECK: %[[IDX:.*]], %[[WTS:.*]] = moeq.router
// CHECK: %[[SORTED:.*]], %[[POS:.*]], %[[OFF:.*]] = moeq.dispatch %{{.*}}, %[[IDX]] scales %[[WTS]] : tensor<4x2xf32> {num_experts = 2 : i64}
// CHECK: moeq.grouped_matmul %[[SORTED]], %[[OFF]]
// CHECK: moeq.combine %{{.*}}, %[[POS]], %[[WTS]] {unweighted} :
func.func @weights_on_inputs(%x: tensor<4x64xf32>, %r: tensor<2x64xf32>, %w: tensor<128x64xf32>, %d: tensor<64x128xf32>) -> tensor<4x64xf32> {
  %y = moeq.moe %x router %r : tensor<2x64xf32>
         gate(%w, %w : tensor<128x64xf32>, tensor<128x64xf32>)
         up(%w, %w : tensor<128x64xf32>, tensor<128x64xf32>)
         down(%d, %d : tensor<64x128xf32>, tensor<64x128xf32>)
         {top_k = 2 : i64, scoring = #moeq<scoring sigmoid>, activation = #moeq<activation silu>,
          norm_topk_prob = false, weights_on_inputs} : tensor<4x64xf32> -> tensor<4x64xf32>
  return %y : tensor<4x64xf32>
}

// -----

// gpt-oss: the router bias goes to the router (logit_bias), the expert
// biases to their grouped matmuls, and the clamped SwiGLU keeps its limit.
// CHECK-LABEL: func.func @gpt_oss
// CHECK-SAME: (%[[X:.*]]: tensor<4x64xf32>, %[[R:.*]]: tensor<2x64xf32>, %[[RB:.*]]: tensor<2xf32>, %[[W:.*]]: tensor<128x64xf32>, %[[D:.*]]: tensor<64x128xf32>, %[[BG:.*]]: tensor<128xf32>, %[[BU:.*]]: tensor<128xf32>, %[[BD:.*]]: tensor<64xf32>)
// CHECK: moeq.router %[[X]], %[[R]] logit_bias %[[RB]] : tensor<2xf32>
// CHECK: %[[G:.*]] = moeq.grouped_matmul %{{.*}} weights(%[[W]], %[[W]] : {{.*}}) biases(%[[BG]], %[[BG]] : tensor<128xf32>, tensor<128xf32>)
// CHECK: %[[U:.*]] = moeq.grouped_matmul %{{.*}} weights(%[[W]], %[[W]] : {{.*}}) biases(%[[BU]], %[[BU]] : tensor<128xf32>, tensor<128xf32>)
// CHECK: %[[A:.*]] = moeq.gated_activation clamped_swiglu %[[G]], %[[U]] {swiglu_limit = 5.000000e+00 : f64}
// CHECK: moeq.grouped_matmul %[[A]], %{{.*}} weights(%[[D]], %[[D]] : {{.*}}) biases(%[[BD]], %[[BD]] : tensor<64xf32>, tensor<64xf32>)
func.func @gpt_oss(%x: tensor<4x64xf32>, %r: tensor<2x64xf32>, %rb: tensor<2xf32>, %w: tensor<128x64xf32>, %d: tensor<64x128xf32>, %bg: tensor<128xf32>, %bu: tensor<128xf32>, %bd: tensor<64xf32>) -> tensor<4x64xf32> {
  %y = moeq.moe %x router %r : tensor<2x64xf32>
         gate(%w, %w : tensor<128x64xf32>, tensor<128x64xf32>)
         up(%w, %w : tensor<128x64xf32>, tensor<128x64xf32>)
         down(%d, %d : tensor<64x128xf32>, tensor<64x128xf32>)
         router_bias %rb : tensor<2xf32>
         bias gate(%bg, %bg : tensor<128xf32>, tensor<128xf32>) up(%bu, %bu : tensor<128xf32>, tensor<128xf32>) down(%bd, %bd : tensor<64xf32>, tensor<64xf32>)
         {top_k = 2 : i64, scoring = #moeq<scoring softmax>, activation = #moeq<activation clamped_swiglu>, swiglu_limit = 5.0 : f64}
         : tensor<4x64xf32> -> tensor<4x64xf32>
  return %y : tensor<4x64xf32>
}
