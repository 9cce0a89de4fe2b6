// One case per op verifier error.
// RUN: moeq-opt %s -split-input-file -verify-diagnostics

func.func @param_dynamic() {
  // expected-error @+1 {{parameter tensor must have a static shape}}
  %0 = moeq.param <"model", "w"> : tensor<?x64xf32>
  return
}

// -----

func.func @param_source_on_float() {
  // expected-error @+1 {{only a packed weight names the tensor it was quantized from ('source')}}
  %0 = moeq.param <"model", "w"> source <"model", "v"> : tensor<8x64xf32>
  return
}

// -----

func.func @moe_dynamic_hidden(%x: tensor<4x?xf32>, %r: tensor<1x64xf32>, %w: tensor<128x64xf32>, %d: tensor<64x128xf32>) {
  // expected-error @+1 {{hidden dimension of the input must be static}}
  %y = moeq.moe %x router %r : tensor<1x64xf32> gate(%w : tensor<128x64xf32>) up(%w : tensor<128x64xf32>) down(%d : tensor<64x128xf32>)
         {top_k = 1 : i64, scoring = #moeq<scoring softmax>, activation = #moeq<activation silu>} : tensor<4x?xf32> -> tensor<4x?xf32>
  return
}

// -----

func.func @moe_result(%x: tensor<4x64xf32>, %r: tensor<1x64xf32>, %w: tensor<128x64xf32>, %d: tensor<64x128xf32>) {
  // expected-error @+1 {{result type 'tensor<4x64xf16>' must equal the input type 'tensor<4x64xf32>'}}
  %y = "moeq.moe"(%x, %r, %w, %w, %d) <{top_k = 1 : i64, scoring = #moeq<scoring softmax>, activation = #moeq<activation silu>,
         operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0>}>
       : (tensor<4x64xf32>, tensor<1x64xf32>, tensor<128x64xf32>, tensor<128x64xf32>, tensor<64x128xf32>) -> tensor<4x64xf16>
  return
}

// -----

func.func @moe_router(%x: tensor<4x64xf32>, %r: tensor<1x32xf32>, %w: tensor<128x64xf32>, %d: tensor<64x128xf32>) {
  // expected-error @+1 {{router weight is 1x32 but the hidden size is 64}}
  %y = moeq.moe %x router %r : tensor<1x32xf32> gate(%w : tensor<128x64xf32>) up(%w : tensor<128x64xf32>) down(%d : tensor<64x128xf32>)
         {top_k = 1 : i64, scoring = #moeq<scoring softmax>, activation = #moeq<activation silu>} : tensor<4x64xf32> -> tensor<4x64xf32>
  return
}

// -----

func.func @moe_expert_count(%x: tensor<4x64xf32>, %r: tensor<2x64xf32>, %w: tensor<128x64xf32>, %d: tensor<64x128xf32>) {
  // expected-error @+1 {{has 1 gate weights but the router scores 2 experts}}
  %y = moeq.moe %x router %r : tensor<2x64xf32> gate(%w : tensor<128x64xf32>) up(%w : tensor<128x64xf32>) down(%d : tensor<64x128xf32>)
         {top_k = 1 : i64, scoring = #moeq<scoring softmax>, activation = #moeq<activation silu>} : tensor<4x64xf32> -> tensor<4x64xf32>
  return
}

// -----

func.func @moe_top_k(%x: tensor<4x64xf32>, %r: tensor<1x64xf32>, %w: tensor<128x64xf32>, %d: tensor<64x128xf32>) {
  // expected-error @+1 {{top_k = 2 exceeds the 1 experts}}
  %y = moeq.moe %x router %r : tensor<1x64xf32> gate(%w : tensor<128x64xf32>) up(%w : tensor<128x64xf32>) down(%d : tensor<64x128xf32>)
         {top_k = 2 : i64, scoring = #moeq<scoring softmax>, activation = #moeq<activation silu>} : tensor<4x64xf32> -> tensor<4x64xf32>
  return
}

// -----

func.func @moe_down_shape(%x: tensor<4x64xf32>, %r: tensor<1x64xf32>, %w: tensor<128x64xf32>, %d: tensor<64x64xf32>) {
  // expected-error @+1 {{down weight #0 has shape 64x64, expected 64x128}}
  %y = moeq.moe %x router %r : tensor<1x64xf32> gate(%w : tensor<128x64xf32>) up(%w : tensor<128x64xf32>) down(%d : tensor<64x64xf32>)
         {top_k = 1 : i64, scoring = #moeq<scoring softmax>, activation = #moeq<activation silu>} : tensor<4x64xf32> -> tensor<4x64xf32>
  return
}

// -----

func.func @moe_packed_shape(%x: tensor<4x64xf32>, %r: tensor<1x64xf32>, %w: tensor<128x64xf32>,
                            %q: !moeq.qweight<64x64, #moeq.scheme<w4a16, g32, asym>>, %d: tensor<64x128xf32>) {
  // expected-error @+1 {{up weight #0 has shape 64x64, expected 128x64}}
  %y = moeq.moe %x router %r : tensor<1x64xf32> gate(%w : tensor<128x64xf32>) up(%q : !moeq.qweight<64x64, #moeq.scheme<w4a16, g32, asym>>) down(%d : tensor<64x128xf32>)
         {top_k = 1 : i64, scoring = #moeq<scoring softmax>, activation = #moeq<activation silu>} : tensor<4x64xf32> -> tensor<4x64xf32>
  return
}

// -----

func.func @moe_partial_shared(%x: tensor<4x64xf32>, %r: tensor<1x64xf32>, %w: tensor<128x64xf32>, %d: tensor<64x128xf32>) {
  // expected-error @+1 {{shared expert needs gate, up and down weights}}
  %y = "moeq.moe"(%x, %r, %w, %w, %d, %w) <{top_k = 1 : i64, scoring = #moeq<scoring softmax>, activation = #moeq<activation silu>,
         operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0>}>
       : (tensor<4x64xf32>, tensor<1x64xf32>, tensor<128x64xf32>, tensor<128x64xf32>, tensor<64x128xf32>, tensor<128x64xf32>) -> tensor<4x64xf32>
  return
}

// -----

func.func @moe_shared_shape(%x: tensor<4x64xf32>, %r: tensor<1x64xf32>, %w: tensor<128x64xf32>, %d: tensor<64x128xf32>, %s: tensor<32x64xf32>) {
  // expected-error @+1 {{shared up weight #0 has shape 32x64, expected 128x64}}
  %y = moeq.moe %x router %r : tensor<1x64xf32> gate(%w : tensor<128x64xf32>) up(%w : tensor<128x64xf32>) down(%d : tensor<64x128xf32>)
         shared(%w, %s, %d : tensor<128x64xf32>, tensor<32x64xf32>, tensor<64x128xf32>)
         {top_k = 1 : i64, scoring = #moeq<scoring softmax>, activation = #moeq<activation silu>} : tensor<4x64xf32> -> tensor<4x64xf32>
  return
}

// -----

func.func @moe_gate_without_shared(%x: tensor<4x64xf32>, %r: tensor<1x64xf32>, %w: tensor<128x64xf32>, %d: tensor<64x128xf32>, %g: tensor<1x64xf32>) {
  // expected-error @+1 {{shared_expert_gate without a shared expert}}
  %y = moeq.moe %x router %r : tensor<1x64xf32> gate(%w : tensor<128x64xf32>) up(%w : tensor<128x64xf32>) down(%d : tensor<64x128xf32>)
         shared_expert_gate %g : tensor<1x64xf32>
         {top_k = 1 : i64, scoring = #moeq<scoring softmax>, activation = #moeq<activation silu>} : tensor<4x64xf32> -> tensor<4x64xf32>
  return
}

// -----

func.func @moe_shared_gate_shape(%x: tensor<4x64xf32>, %r: tensor<1x64xf32>, %w: tensor<128x64xf32>, %d: tensor<64x128xf32>, %g: tensor<2x64xf32>) {
  // expected-error @+1 {{shared_expert_gate weight #0 has shape 2x64, expected 1x64}}
  %y = moeq.moe %x router %r : tensor<1x64xf32> gate(%w : tensor<128x64xf32>) up(%w : tensor<128x64xf32>) down(%d : tensor<64x128xf32>)
         shared(%w, %w, %d : tensor<128x64xf32>, tensor<128x64xf32>, tensor<64x128xf32>)
         shared_expert_gate %g : tensor<2x64xf32>
         {top_k = 1 : i64, scoring = #moeq<scoring softmax>, activation = #moeq<activation silu>} : tensor<4x64xf32> -> tensor<4x64xf32>
  return
}

// -----

func.func @moe_bias(%x: tensor<4x64xf32>, %r: tensor<1x64xf32>, %w: tensor<128x64xf32>, %d: tensor<64x128xf32>, %b: tensor<3xf32>) {
  // expected-error @+1 {{score_bias has 3 entries but there are 1 experts}}
  %y = moeq.moe %x router %r : tensor<1x64xf32> gate(%w : tensor<128x64xf32>) up(%w : tensor<128x64xf32>) down(%d : tensor<64x128xf32>)
         score_bias %b : tensor<3xf32>
         {top_k = 1 : i64, scoring = #moeq<scoring sigmoid>, activation = #moeq<activation silu>} : tensor<4x64xf32> -> tensor<4x64xf32>
  return
}

// -----

func.func @moe_n_group(%x: tensor<4x64xf32>, %r: tensor<1x64xf32>, %w: tensor<128x64xf32>, %d: tensor<64x128xf32>) {
  // expected-error @+1 {{n_group = 2 must divide the 1 experts}}
  %y = moeq.moe %x router %r : tensor<1x64xf32> gate(%w : tensor<128x64xf32>) up(%w : tensor<128x64xf32>) down(%d : tensor<64x128xf32>)
         {top_k = 1 : i64, scoring = #moeq<scoring softmax>, activation = #moeq<activation silu>, n_group = 2 : i64} : tensor<4x64xf32> -> tensor<4x64xf32>
  return
}

// -----

func.func @moe_topk_group(%x: tensor<4x64xf32>, %r: tensor<1x64xf32>, %w: tensor<128x64xf32>, %d: tensor<64x128xf32>) {
  // expected-error @+1 {{topk_group = 2 must be in [1, n_group = 1]}}
  %y = moeq.moe %x router %r : tensor<1x64xf32> gate(%w : tensor<128x64xf32>) up(%w : tensor<128x64xf32>) down(%d : tensor<64x128xf32>)
         {top_k = 1 : i64, scoring = #moeq<scoring softmax>, activation = #moeq<activation silu>, topk_group = 2 : i64} : tensor<4x64xf32> -> tensor<4x64xf32>
  return
}

// -----

func.func @router_shape(%x: tensor<4x64xf32>, %r: tensor<8x32xf32>) {
  // expected-error @+1 {{input 4x64 does not match router weight 8x32}}
  %i, %w = moeq.router %x, %r {top_k = 2 : i64, scoring = #moeq<scoring softmax>}
      : tensor<4x64xf32>, tensor<8x32xf32> -> tensor<4x2xi32>, tensor<4x2xf32>
  return
}

// -----

func.func @router_top_k(%x: tensor<4x64xf32>, %r: tensor<2x64xf32>) {
  // expected-error @+1 {{top_k = 3 exceeds the 2 experts}}
  %i, %w = moeq.router %x, %r {top_k = 3 : i64, scoring = #moeq<scoring softmax>}
      : tensor<4x64xf32>, tensor<2x64xf32> -> tensor<4x3xi32>, tensor<4x3xf32>
  return
}

// -----

func.func @router_result(%x: tensor<4x64xf32>, %r: tensor<8x64xf32>) {
  // expected-error @+1 {{result 4x3 must be tokens x top_k = 4x2}}
  %i, %w = moeq.router %x, %r {top_k = 2 : i64, scoring = #moeq<scoring softmax>}
      : tensor<4x64xf32>, tensor<8x64xf32> -> tensor<4x3xi32>, tensor<4x2xf32>
  return
}

// -----

func.func @router_bias(%x: tensor<4x64xf32>, %r: tensor<8x64xf32>, %b: tensor<4xf32>) {
  // expected-error @+1 {{score_bias has 4 entries but there are 8 experts}}
  %i, %w = moeq.router %x, %r bias %b : tensor<4xf32> {top_k = 2 : i64, scoring = #moeq<scoring sigmoid>}
      : tensor<4x64xf32>, tensor<8x64xf32> -> tensor<4x2xi32>, tensor<4x2xf32>
  return
}

// -----

func.func @router_n_group(%x: tensor<4x64xf32>, %r: tensor<8x64xf32>) {
  // expected-error @+1 {{n_group = 3 must divide the 8 experts}}
  %i, %w = moeq.router %x, %r {top_k = 2 : i64, scoring = #moeq<scoring sigmoid>, n_group = 3 : i64}
      : tensor<4x64xf32>, tensor<8x64xf32> -> tensor<4x2xi32>, tensor<4x2xf32>
  return
}

// -----

func.func @router_topk_group(%x: tensor<4x64xf32>, %r: tensor<8x64xf32>) {
  // expected-error @+1 {{topk_group = 5 must be in [1, n_group = 4]}}
  %i, %w = moeq.router %x, %r {top_k = 2 : i64, scoring = #moeq<scoring sigmoid>, n_group = 4 : i64, topk_group = 5 : i64}
      : tensor<4x64xf32>, tensor<8x64xf32> -> tensor<4x2xi32>, tensor<4x2xf32>
  return
}

// -----

func.func @dispatch_tokens(%x: tensor<4x64xf32>, %i: tensor<5x2xi32>) {
  // expected-error @+1 {{input has 4 tokens but indices has 5}}
  %s, %p, %o = moeq.dispatch %x, %i {num_experts = 8 : i64}
      : tensor<4x64xf32>, tensor<5x2xi32> -> tensor<10x64xf32>, tensor<10xi32>, tensor<9xi32>
  return
}

// -----

func.func @dispatch_sorted(%x: tensor<4x64xf32>, %i: tensor<4x2xi32>) {
  // expected-error @+1 {{sorted result 4x64 must be (tokens*top_k) x hidden = 8x64}}
  %s, %p, %o = moeq.dispatch %x, %i {num_experts = 8 : i64}
      : tensor<4x64xf32>, tensor<4x2xi32> -> tensor<4x64xf32>, tensor<8xi32>, tensor<9xi32>
  return
}

// -----

func.func @dispatch_scales(%x: tensor<4x64xf32>, %i: tensor<4x2xi32>, %w: tensor<4x3xf32>) {
  // expected-error @+1 {{scales 4x3 must have the shape of indices 4x2}}
  %s, %p, %o = moeq.dispatch %x, %i scales %w : tensor<4x3xf32> {num_experts = 8 : i64}
      : tensor<4x64xf32>, tensor<4x2xi32> -> tensor<8x64xf32>, tensor<8xi32>, tensor<9xi32>
  return
}

// -----

func.func @dispatch_element(%x: tensor<4x64xf32>, %i: tensor<4x2xi32>) {
  // expected-error @+1 {{sorted rows must keep the input element type}}
  %s, %p, %o = moeq.dispatch %x, %i {num_experts = 8 : i64}
      : tensor<4x64xf32>, tensor<4x2xi32> -> tensor<8x64xf16>, tensor<8xi32>, tensor<9xi32>
  return
}

// -----

func.func @dispatch_positions(%x: tensor<4x64xf32>, %i: tensor<4x2xi32>) {
  // expected-error @+1 {{positions must have tokens*top_k entries}}
  %s, %p, %o = moeq.dispatch %x, %i {num_experts = 8 : i64}
      : tensor<4x64xf32>, tensor<4x2xi32> -> tensor<8x64xf32>, tensor<4xi32>, tensor<9xi32>
  return
}

// -----

func.func @dispatch_offsets(%x: tensor<4x64xf32>, %i: tensor<4x2xi32>) {
  // expected-error @+1 {{offsets must have num_experts + 1 = 9 entries}}
  %s, %p, %o = moeq.dispatch %x, %i {num_experts = 8 : i64}
      : tensor<4x64xf32>, tensor<4x2xi32> -> tensor<8x64xf32>, tensor<8xi32>, tensor<8xi32>
  return
}

// -----

func.func @gmm_no_weights(%x: tensor<8x64xf32>, %o: tensor<1xi32>) {
  // expected-error @+1 {{needs at least one group weight}}
  %y = "moeq.grouped_matmul"(%x, %o) <{operandSegmentSizes = array<i32: 1, 1, 0, 0>}>
      : (tensor<8x64xf32>, tensor<1xi32>) -> tensor<8x128xf32>
  return
}

// -----

func.func @gmm_offsets(%x: tensor<8x64xf32>, %o: tensor<2xi32>, %w: tensor<128x64xf32>) {
  // expected-error @+1 {{offsets must have 3 entries for 2 groups}}
  %y = moeq.grouped_matmul %x, %o weights(%w, %w : tensor<128x64xf32>, tensor<128x64xf32>) : tensor<8x64xf32>, tensor<2xi32> -> tensor<8x128xf32>
  return
}

// -----

func.func @gmm_weight(%x: tensor<8x64xf32>, %o: tensor<3xi32>, %w: tensor<128x64xf32>, %v: tensor<128x32xf32>) {
  // expected-error @+1 {{group weight #1 has shape 128x32, expected 128x64}}
  %y = moeq.grouped_matmul %x, %o weights(%w, %v : tensor<128x64xf32>, tensor<128x32xf32>) : tensor<8x64xf32>, tensor<3xi32> -> tensor<8x128xf32>
  return
}

// -----

func.func @gmm_result(%x: tensor<8x64xf32>, %o: tensor<2xi32>, %w: tensor<128x64xf32>) {
  // expected-error @+1 {{result 8x64 must be 8x128}}
  %y = moeq.grouped_matmul %x, %o weights(%w : tensor<128x64xf32>) : tensor<8x64xf32>, tensor<2xi32> -> tensor<8x64xf32>
  return
}

// -----

func.func @gmm_kernels(%x: tensor<8x64xf32>, %o: tensor<2xi32>, %w: tensor<128x64xf32>) {
  // expected-error @+1 {{names 2 kernels for 1 groups}}
  %y = moeq.grouped_matmul %x, %o weights(%w : tensor<128x64xf32>) {kernels = [@a::@a, @b::@b]} : tensor<8x64xf32>, tensor<2xi32> -> tensor<8x128xf32>
  return
}

// -----

func.func @gmm_tiles(%x: tensor<8x64xf32>, %o: tensor<2xi32>, %w: tensor<128x64xf32>) {
  // expected-error @+1 {{has 2 tile configurations for 1 groups}}
  %y = moeq.grouped_matmul %x, %o weights(%w : tensor<128x64xf32>) {tiles = [#moeq.tile<path = simt, bm = 1, bn = 128, bk = 32, warps = 4, stages = 1, split_k = 1>, #moeq.tile<path = simt, bm = 1, bn = 128, bk = 32, warps = 4, stages = 1, split_k = 1>]} : tensor<8x64xf32>, tensor<2xi32> -> tensor<8x128xf32>
  return
}

// -----

func.func @combine_rows(%y: tensor<6x64xf32>, %p: tensor<6xi32>, %w: tensor<4x2xf32>) {
  // expected-error @+1 {{expert output has 6 rows but the routing weights have 8 slots}}
  %o = moeq.combine %y, %p, %w : tensor<6x64xf32>, tensor<6xi32>, tensor<4x2xf32> -> tensor<4x64xf32>
  return
}

// -----

func.func @combine_positions(%y: tensor<8x64xf32>, %p: tensor<6xi32>, %w: tensor<4x2xf32>) {
  // expected-error @+1 {{positions must have one entry per expert-output row}}
  %o = moeq.combine %y, %p, %w : tensor<8x64xf32>, tensor<6xi32>, tensor<4x2xf32> -> tensor<4x64xf32>
  return
}

// -----

func.func @combine_result(%y: tensor<8x64xf32>, %p: tensor<8xi32>, %w: tensor<4x2xf32>) {
  // expected-error @+1 {{result 8x64 must be tokens x hidden = 4x64}}
  %o = moeq.combine %y, %p, %w : tensor<8x64xf32>, tensor<8xi32>, tensor<4x2xf32> -> tensor<8x64xf32>
  return
}

// -----

func.func @quantize_shape(%w: tensor<64x64xf32>) {
  // expected-error @+1 {{input 64x64 and packed weight 128x64 have different shapes}}
  %q = moeq.quantize %w : tensor<64x64xf32> -> !moeq.qweight<128x64, #moeq.scheme<w4a16, g32, asym>>
  return
}

// -----

func.func @quantize_rtn_hessian(%w: tensor<64x64xf32>) {
  // expected-error @+1 {{'hessian' needs method gptq or agq, not rtn}}
  %q = moeq.quantize %w {hessian = #moeq.param<"stats", "layers.0.experts.0.gram_in">} : tensor<64x64xf32> -> !moeq.qweight<64x64, #moeq.scheme<w4a16, g32, asym>>
  return
}

// -----

func.func @quantize_rtn_act_order(%w: tensor<64x64xf32>) {
  // expected-error @+1 {{'act_order' needs method gptq or agq, not rtn}}
  %q = moeq.quantize %w {method = #moeq<method rtn>, act_order} : tensor<64x64xf32> -> !moeq.qweight<64x64, #moeq.scheme<w4a16, g32, asym>>
  return
}

// -----

func.func @quantize_two_clips(%w: tensor<64x64xf32>) {
  // expected-error @+1 {{'mse_clip' and 'salience_clip' are alternative range searches; choose one}}
  %q = moeq.quantize %w {mse_clip, salience_clip} : tensor<64x64xf32> -> !moeq.qweight<64x64, #moeq.scheme<w4a16, g32, asym>>
  return
}

// -----

func.func @dequantize_shape(%q: !moeq.qweight<128x64, #moeq.scheme<w4a16, g32, asym>>) {
  // expected-error @+1 {{packed weight 128x64 and result 64x64 have different shapes}}
  %w = moeq.dequantize %q : !moeq.qweight<128x64, #moeq.scheme<w4a16, g32, asym>> -> tensor<64x64xf32>
  return
}

// -----

func.func @router_sparsemixer(%x: tensor<4x64xf32>, %r: tensor<8x64xf32>) {
  // expected-error @+1 {{sparsemixer routing is defined for top_k = 2 without expert groups}}
  %i, %w = moeq.router %x, %r {top_k = 3 : i64, scoring = #moeq<scoring sparsemixer>}
      : tensor<4x64xf32>, tensor<8x64xf32> -> tensor<4x3xi32>, tensor<4x3xf32>
  return
}

// -----

func.func @router_jitter(%x: tensor<4x64xf32>, %r: tensor<8x64xf32>) {
  // expected-error @+1 {{jitter_eps must be non-negative}}
  %i, %w = moeq.router %x, %r {top_k = 2 : i64, scoring = #moeq<scoring sparsemixer>, jitter_eps = -1.0 : f64}
      : tensor<4x64xf32>, tensor<8x64xf32> -> tensor<4x2xi32>, tensor<4x2xf32>
  return
}

// -----

func.func @combine_shared(%y: tensor<8x64xf32>, %p: tensor<8xi32>, %w: tensor<4x2xf32>, %s: tensor<4x32xf32>) {
  // expected-error @+1 {{shared expert output 4x32 must be tokens x hidden = 4x64}}
  %o = moeq.combine %y, %p, %w shared(%s : tensor<4x32xf32>) : tensor<8x64xf32>, tensor<8xi32>, tensor<4x2xf32> -> tensor<4x64xf32>
  return
}

// -----

func.func @combine_gate_alone(%y: tensor<8x64xf32>, %p: tensor<8xi32>, %w: tensor<4x2xf32>, %g: tensor<4x1xf32>) {
  // expected-error @+1 {{shared_gate without a shared expert output}}
  %o = moeq.combine %y, %p, %w shared_gate(%g : tensor<4x1xf32>) : tensor<8x64xf32>, tensor<8xi32>, tensor<4x2xf32> -> tensor<4x64xf32>
  return
}

// -----

func.func @combine_gate_shape(%y: tensor<8x64xf32>, %p: tensor<8xi32>, %w: tensor<4x2xf32>, %s: tensor<4x64xf32>, %g: tensor<4x2xf32>) {
  // expected-error @+1 {{shared_gate 4x2 must be tokens x 1}}
  %o = moeq.combine %y, %p, %w shared(%s : tensor<4x64xf32>) shared_gate(%g : tensor<4x2xf32>) : tensor<8x64xf32>, tensor<8xi32>, tensor<4x2xf32> -> tensor<4x64xf32>
  return
}

// -----

func.func @linear_input(%x: tensor<4x32xf32>, %w: tensor<128x64xf32>) {
  // expected-error @+1 {{input 4x32 does not match weight 128x64}}
  %y = moeq.linear %x, %w : tensor<4x32xf32>, tensor<128x64xf32> -> tensor<4x128xf32>
  return
}

// -----

func.func @linear_result(%x: tensor<4x64xf32>, %w: tensor<128x64xf32>) {
  // expected-error @+1 {{result 4x64 must be 4x128}}
  %y = moeq.linear %x, %w : tensor<4x64xf32>, tensor<128x64xf32> -> tensor<4x64xf32>
  return
}

// -----

func.func @delta_factors(%base: tensor<64x32xf32>, %a: tensor<64x8xf32>, %b: tensor<4x32xf32>) {
  // expected-error @+1 {{low-rank factors a: 64x8 and b: 4x32 do not form a 64x32 matrix}}
  %w = moeq.delta_weight %base, %a, %b : tensor<64x32xf32>, tensor<64x8xf32>, tensor<4x32xf32> -> tensor<64x32xf32>
  return
}

// -----

func.func @delta_base(%base: tensor<48x16xf32>, %a: tensor<64x8xf32>, %b: tensor<8x32xf32>) {
  // expected-error @+1 {{base 48x16 must match the result 64x32 or keep its leading rows or columns}}
  %w = moeq.delta_weight %base, %a, %b : tensor<48x16xf32>, tensor<64x8xf32>, tensor<8x32xf32> -> tensor<64x32xf32>
  return
}

// -----

func.func @delta_sum_rows(%lowrank: tensor<8x64xf32>, %base: tensor<4x64xf32>) {
  // expected-error @+1 {{result 8x64 must have the rows of 8x64 and 4x64 and the columns of the former}}
  %y = moeq.delta_sum %lowrank, %base : tensor<8x64xf32>, tensor<4x64xf32> -> tensor<8x64xf32>
  return
}

// -----

func.func @delta_sum_wide_base(%lowrank: tensor<?x64xf32>, %base: tensor<?x96xf32>) {
  // expected-error @+1 {{base output ?x96 must have at most the low-rank output's 64 columns}}
  %y = moeq.delta_sum %lowrank, %base : tensor<?x64xf32>, tensor<?x96xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @linear_leading_wa(%x: tensor<?x128xf32>, %w: !moeq.qweight<64x32, #moeq.scheme<w8a8, per_channel, sym>>) {
  // expected-error @+1 {{leading_inputs needs a weight-only scheme (the activation scale would cover the unread columns)}}
  %y = moeq.linear %x, %w {leading_inputs} : tensor<?x128xf32>, !moeq.qweight<64x32, #moeq.scheme<w8a8, per_channel, sym>> -> tensor<?x64xf32>
  return
}

// -----

func.func @linear_narrow_input(%x: tensor<?x16xf32>, %w: tensor<64x32xf32>) {
  // expected-error @+1 {{input ?x16 does not match weight 64x32 (leading_inputs: at least its columns)}}
  %y = moeq.linear %x, %w {leading_inputs} : tensor<?x16xf32>, tensor<64x32xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @delta_dynamic(%base: tensor<64x32xf32>, %a: tensor<64x8xf32>, %b: tensor<8x32xf32>) {
  // expected-error @+1 {{result must have a static shape}}
  %w = moeq.delta_weight %base, %a, %b : tensor<64x32xf32>, tensor<64x8xf32>, tensor<8x32xf32> -> tensor<?x32xf32>
  return
}

// -----

func.func @device_param_dynamic() {
  // expected-error @+1 {{a device parameter is a static 1-D or 2-D memref}}
  %w = moeq.device_param <"model", "w"> : memref<?x64xf32, #gpu.address_space<global>>
  return
}

// -----

func.func @device_param_element() {
  // expected-error @+1 {{a device parameter holds f16, f32 or i32, got 'bf16'}}
  %w = moeq.device_param <"model", "w"> : memref<8x64xbf16, #gpu.address_space<global>>
  return
}

// -----

func.func @device_param_host() {
  // expected-error @+1 {{result #0 must be memref in GPU global memory}}
  %w = moeq.device_param <"model", "w"> : memref<8x64xf32>
  return
}

// -----

func.func @kernel_pointer_dynamic_row(%x: memref<?x?xf16, #gpu.address_space<global>>) {
  // expected-error @+1 {{only the leading dimension of 'memref<?x?xf16, #gpu.address_space<global>>' may be dynamic}}
  %p = moeq.kernel_pointer %x : memref<?x?xf16, #gpu.address_space<global>> -> !llvm.ptr<1>
  return
}

// -----

func.func @kernel_pointer_space(%x: memref<?x64xf16, #gpu.address_space<global>>) {
  // expected-error @+1 {{result #0 must be pointer to GPU global memory (!llvm.ptr<1>)}}
  %p = moeq.kernel_pointer %x : memref<?x64xf16, #gpu.address_space<global>> -> !llvm.ptr
  return
}

// -----

func.func @moe_bias_count(%x: tensor<4x64xf32>, %r: tensor<2x64xf32>, %w: tensor<128x64xf32>, %d: tensor<64x128xf32>, %b: tensor<128xf32>, %bh: tensor<64xf32>) -> tensor<4x64xf32> {
  // expected-error @+1 {{has 1 gate biases for 2 experts}}
  %y = moeq.moe %x router %r : tensor<2x64xf32>
         gate(%w, %w : tensor<128x64xf32>, tensor<128x64xf32>) up(%w, %w : tensor<128x64xf32>, tensor<128x64xf32>)
         down(%d, %d : tensor<64x128xf32>, tensor<64x128xf32>)
         bias gate(%b : tensor<128xf32>) up(%b, %b : tensor<128xf32>, tensor<128xf32>) down(%bh, %bh : tensor<64xf32>, tensor<64xf32>)
         {top_k = 1 : i64, scoring = #moeq<scoring softmax>, activation = #moeq<activation clamped_swiglu>}
         : tensor<4x64xf32> -> tensor<4x64xf32>
  return %y : tensor<4x64xf32>
}

// -----

func.func @moe_bias_size(%x: tensor<4x64xf32>, %r: tensor<2x64xf32>, %w: tensor<128x64xf32>, %d: tensor<64x128xf32>, %b: tensor<128xf32>) -> tensor<4x64xf32> {
  // expected-error @+1 {{down bias has 128 entries but the hidden size is 64}}
  %y = moeq.moe %x router %r : tensor<2x64xf32>
         gate(%w, %w : tensor<128x64xf32>, tensor<128x64xf32>) up(%w, %w : tensor<128x64xf32>, tensor<128x64xf32>)
         down(%d, %d : tensor<64x128xf32>, tensor<64x128xf32>)
         bias gate(%b, %b : tensor<128xf32>, tensor<128xf32>) up(%b, %b : tensor<128xf32>, tensor<128xf32>) down(%b, %b : tensor<128xf32>, tensor<128xf32>)
         {top_k = 1 : i64, scoring = #moeq<scoring softmax>, activation = #moeq<activation clamped_swiglu>}
         : tensor<4x64xf32> -> tensor<4x64xf32>
  return %y : tensor<4x64xf32>
}

// -----

func.func @moe_router_bias(%x: tensor<4x64xf32>, %r: tensor<2x64xf32>, %w: tensor<128x64xf32>, %d: tensor<64x128xf32>, %rb: tensor<3xf32>) -> tensor<4x64xf32> {
  // expected-error @+1 {{the router bias has 3 entries but the number of experts is 2}}
  %y = moeq.moe %x router %r : tensor<2x64xf32>
         gate(%w, %w : tensor<128x64xf32>, tensor<128x64xf32>) up(%w, %w : tensor<128x64xf32>, tensor<128x64xf32>)
         down(%d, %d : tensor<64x128xf32>, tensor<64x128xf32>) router_bias %rb : tensor<3xf32>
         {top_k = 1 : i64, scoring = #moeq<scoring softmax>, activation = #moeq<activation silu>}
         : tensor<4x64xf32> -> tensor<4x64xf32>
  return %y : tensor<4x64xf32>
}

// -----

func.func @moe_swiglu_limit(%x: tensor<4x64xf32>, %r: tensor<2x64xf32>, %w: tensor<128x64xf32>, %d: tensor<64x128xf32>) -> tensor<4x64xf32> {
  // expected-error @+1 {{swiglu_limit must be positive}}
  %y = moeq.moe %x router %r : tensor<2x64xf32>
         gate(%w, %w : tensor<128x64xf32>, tensor<128x64xf32>) up(%w, %w : tensor<128x64xf32>, tensor<128x64xf32>)
         down(%d, %d : tensor<64x128xf32>, tensor<64x128xf32>)
         {top_k = 1 : i64, scoring = #moeq<scoring softmax>, activation = #moeq<activation clamped_swiglu>, swiglu_limit = 0.0 : f64}
         : tensor<4x64xf32> -> tensor<4x64xf32>
  return %y : tensor<4x64xf32>
}

// -----

func.func @grouped_biases(%x: tensor<8x64xf32>, %off: tensor<3xi32>, %w: tensor<128x64xf32>, %b: tensor<64xf32>) {
  // expected-error @+1 {{a group bias has 64 entries but the output size is 128}}
  %y = moeq.grouped_matmul %x, %off weights(%w, %w : tensor<128x64xf32>, tensor<128x64xf32>) biases(%b, %b : tensor<64xf32>, tensor<64xf32>)
      : tensor<8x64xf32>, tensor<3xi32> -> tensor<8x128xf32>
  return
}

// -----

func.func @grouped_bias_count(%x: tensor<8x64xf32>, %off: tensor<3xi32>, %w: tensor<128x64xf32>, %b: tensor<128xf32>) {
  // expected-error @+1 {{has 1 biases for 2 groups}}
  %y = moeq.grouped_matmul %x, %off weights(%w, %w : tensor<128x64xf32>, tensor<128x64xf32>) biases(%b : tensor<128xf32>)
      : tensor<8x64xf32>, tensor<3xi32> -> tensor<8x128xf32>
  return
}

// -----

func.func @unpack_too_wide(%w: memref<4x8xi32>, %i: index) {
  // expected-error @+1 {{5 codes of 7 bits do not fit one 32-bit window}}
  %c = moeq.unpack_codes %w[%i] bit %i {bits = 7 : i64, count = 5 : i64} : memref<4x8xi32> -> vector<5xi32>
  return
}

// -----

func.func @unpack_row_indices(%w: memref<2x4x8xi32>, %i: index) {
  // expected-error @+1 {{needs 2 indices to address a row of 'memref<2x4x8xi32>', got 1}}
  %c = moeq.unpack_codes %w[%i] bit %i {bits = 4 : i64} : memref<2x4x8xi32> -> i32
  return
}

// -----

func.func @unpack_result(%w: memref<4x8xi32>, %i: index) {
  // expected-error @+1 {{result 'vector<3xi32>' does not hold 2 codes}}
  %c = moeq.unpack_codes %w[%i] bit %i {bits = 4 : i64, count = 2 : i64} : memref<4x8xi32> -> vector<3xi32>
  return
}

// -----

func.func @unpack_aligned(%w: memref<4x8xi32>, %i: index) {
  // expected-error @+1 {{'aligned' needs 2 x 3 bits to divide 32}}
  %c = moeq.unpack_codes %w[%i] bit %i {bits = 3 : i64, count = 2 : i64, aligned} : memref<4x8xi32> -> vector<2xi32>
  return
}

// -----

func.func @unpack_dynamic_width(%w: memref<4x8xi32>, %i: index) {
  // expected-error @+1 {{a dynamic 'width' reads one code, not 'aligned'}}
  %c = moeq.unpack_codes %w[%i] bit %i width %i {bits = 8 : i64, count = 2 : i64} : memref<4x8xi32> -> vector<2xi32>
  return
}

// -----

func.func @unpack_bits(%w: memref<4x8xi32>, %i: index) {
  // expected-error @+1 {{attribute 'bits' failed to satisfy constraint}}
  %c = moeq.unpack_codes %w[%i] bit %i {bits = 9 : i64} : memref<4x8xi32> -> i32
  return
}

// -----

func.func @dequantize_codes_shape(%c: vector<2xi32>, %s: f16) {
  // expected-error @+1 {{result 'vector<4xf16>' does not match the codes 'vector<2xi32>'}}
  %w = moeq.dequantize_codes %c scale %s zero %s : vector<2xi32>, f16, f16 -> vector<4xf16>
  return
}

// -----

func.func @lookup_levels_shape(%c: i32, %l: memref<4x64xf16>, %i: index) {
  // expected-error @+1 {{result 'vector<2xf16>' does not match the codes 'i32'}}
  %w = moeq.lookup_levels %c in %l[%i] start %i : i32, memref<4x64xf16> -> vector<2xf16>
  return
}

// -----

func.func @lookup_levels_indices(%c: i32, %l: memref<4x64xf16>, %i: index) {
  // expected-error @+1 {{needs 1 indices to address a row of 'memref<4x64xf16>', got 0}}
  %w = moeq.lookup_levels %c in %l[] start %i : i32, memref<4x64xf16> -> f32
  return
}

// -----

func.func @load_tile_dynamic_tiles(%x: memref<?x256xf16, 1>, %a: memref<?x32x40xf16, 3>, %i: index) {
  // expected-error @+1 {{needs static staged tiles, got 'memref<?x32x40xf16, 3>'}}
  moeq.load_tile_async %x[%i, %i] bound %i into %a[%i] {columns = 32 : i64, chunk = 8 : i64, threads = 128 : i64} : memref<?x256xf16, 1>, memref<?x32x40xf16, 3>
  return
}

// -----

func.func @load_tile_element(%x: memref<?x256xf16, 1>, %a: memref<3x32x40xf32, 3>, %i: index) {
  // expected-error @+1 {{copies 'f16' into tiles of 'f32'}}
  moeq.load_tile_async %x[%i, %i] bound %i into %a[%i] {columns = 32 : i64, chunk = 8 : i64, threads = 128 : i64} : memref<?x256xf16, 1>, memref<3x32x40xf32, 3>
  return
}

// -----

func.func @load_tile_partial_chunk(%x: memref<?x256xf16, 1>, %a: memref<3x32x40xf16, 3>, %i: index) {
  // expected-error @+1 {{row of 36 elements is not whole chunks of 8}}
  moeq.load_tile_async %x[%i, %i] bound %i into %a[%i] {columns = 36 : i64, chunk = 8 : i64, threads = 128 : i64} : memref<?x256xf16, 1>, memref<3x32x40xf16, 3>
  return
}

// -----

func.func @load_tile_row_too_long(%x: memref<?x256xf16, 1>, %a: memref<3x32x40xf16, 3>, %i: index) {
  // expected-error @+1 {{row of 48 elements does not fit the tiles' rows of 40}}
  moeq.load_tile_async %x[%i, %i] bound %i into %a[%i] {columns = 48 : i64, chunk = 8 : i64, threads = 128 : i64} : memref<?x256xf16, 1>, memref<3x32x40xf16, 3>
  return
}

// -----

func.func @load_tile_partial_warp(%x: memref<?x256xf16, 1>, %a: memref<3x32x40xf16, 3>, %i: index) {
  // expected-error @+1 {{is collective over whole warps, got 48 threads}}
  moeq.load_tile_async %x[%i, %i] bound %i into %a[%i] {columns = 32 : i64, chunk = 8 : i64, threads = 48 : i64} : memref<?x256xf16, 1>, memref<3x32x40xf16, 3>
  return
}

// -----

func.func @load_tile_copy_size(%x: memref<?x256xf16, 1>, %a: memref<3x32x40xf16, 3>, %i: index) {
  // expected-error @+1 {{chunk of 6 x 16 bits is not a cp.async size (4, 8 or 16 bytes) or below 4 bytes}}
  moeq.load_tile_async %x[%i, %i] bound %i into %a[%i] {columns = 36 : i64, chunk = 6 : i64, threads = 128 : i64} : memref<?x256xf16, 1>, memref<3x32x40xf16, 3>
  return
}

// -----

func.func @mma_tile_no_fragments(%c: vector<2x2xf32>) {
  // expected-error @+1 {{needs at least one A and one B fragment}}
  %d = "moeq.mma_tile"(%c) <{mma_shape = array<i64: 16, 8, 16>, operandSegmentSizes = array<i32: 0, 0, 1>}> : (vector<2x2xf32>) -> vector<2x2xf32>
  return
}

// -----

func.func @mma_tile_accumulators(%a: vector<4x2xf16>, %b: vector<2x2xf16>, %c: vector<2x2xf32>) {
  // expected-error @+1 {{needs 1 x 2 accumulators, one per product, got 1}}
  %d = moeq.mma_tile (%a) x (%b, %b) + (%c) {mma_shape = array<i64: 16, 8, 16>} : (vector<4x2xf16>) x (vector<2x2xf16>, vector<2x2xf16>) + (vector<2x2xf32>)
  return
}

// -----

func.func @mma_tile_mixed_types(%a: vector<4x2xf16>, %b: vector<2x2xf16>, %b8: vector<2x4xi8>, %c: vector<2x2xf32>) {
  // expected-error @+1 {{needs one type per operand group (A, B, accumulators)}}
  %d:2 = moeq.mma_tile (%a) x (%b, %b8) + (%c, %c) {mma_shape = array<i64: 16, 8, 16>} : (vector<4x2xf16>) x (vector<2x2xf16>, vector<2x4xi8>) + (vector<2x2xf32>, vector<2x2xf32>)
  return
}

// -----

func.func @mma_tile_shape(%a: vector<4x2xf16>, %b: vector<2x2xf16>, %c: vector<2x2xf32>) {
  // expected-error @+1 {{mma_shape is [m, n, k], got 2 sizes}}
  %d = moeq.mma_tile (%a) x (%b) + (%c) {mma_shape = array<i64: 16, 8>} : (vector<4x2xf16>) x (vector<2x2xf16>) + (vector<2x2xf32>)
  return
}

// -----

func.func @store_tile_count(%c: vector<2x2xf32>, %y: memref<?x64xf16, 1>, %i: index) {
  // expected-error @+1 {{needs 1 x 2 accumulators, got 1}}
  moeq.store_tile (%c) into %y[%i, %i] bound %i {tiles = array<i64: 1, 2>} : (vector<2x2xf32>), memref<?x64xf16, 1>
  return
}

// -----

func.func @store_tile_shape(%c: vector<2x2xf32>, %y: memref<?x64xf16, 1>, %i: index) {
  // expected-error @+1 {{tiles is [tm, tn] of positive sizes}}
  moeq.store_tile (%c) into %y[%i, %i] bound %i {tiles = array<i64: 1>} : (vector<2x2xf32>), memref<?x64xf16, 1>
  return
}

// -----

func.func @store_tile_fragment(%c: vector<4x2xf32>, %y: memref<?x64xf16, 1>, %i: index) {
  // expected-error @+1 {{accumulators are m16n8 fragments (vector<2x2x...>), got 'vector<4x2xf32>'}}
  moeq.store_tile (%c) into %y[%i, %i] bound %i {tiles = array<i64: 1, 1>} : (vector<4x2xf32>), memref<?x64xf16, 1>
  return
}

// -----

func.func @store_tile_unscaled_ints(%c: vector<2x2xi32>, %y: memref<?x64xf16, 1>, %i: index) {
  // expected-error @+1 {{stores s32 sums only scaled by column_scales}}
  moeq.store_tile (%c) into %y[%i, %i] bound %i {tiles = array<i64: 1, 1>} : (vector<2x2xi32>), memref<?x64xf16, 1>
  return
}

// -----

func.func @store_tile_width(%c: vector<2x2xf32>, %y: memref<?x?xf16, 1>, %i: index) {
  // expected-error @+1 {{needs the output's width (a static second dimension)}}
  moeq.store_tile (%c) into %y[%i, %i] bound %i {tiles = array<i64: 1, 1>} : (vector<2x2xf32>), memref<?x?xf16, 1>
  return
}

// -----

func.func @for_each_tile_mix_sizes(%o: memref<4xi32, 1>, %m: memref<3xi32>) {
  // expected-error @+1 {{needs bm and tiles_n for each mix, got 2 and 1}}
  moeq.for_each_tile %o mix_of %m : memref<3xi32> {bm = array<i64: 32, 16>, tiles_n = array<i64: 2>} : memref<4xi32, 1> {
  ^bb0(%e: index, %t: index, %f: index, %l: index, %x: index):
  }
  return
}

// -----

func.func @for_each_tile_sizes(%o: memref<4xi32, 1>) {
  // expected-error @+1 {{needs positive tile rows and column counts}}
  moeq.for_each_tile %o {bm = array<i64: 0>, tiles_n = array<i64: 2>} : memref<4xi32, 1> {
  ^bb0(%e: index, %t: index, %f: index, %l: index, %x: index):
  }
  return
}

// -----

func.func @for_each_tile_no_table(%o: memref<4xi32, 1>) {
  // expected-error @+1 {{needs mix_of to choose among 2 mixes}}
  moeq.for_each_tile %o {bm = array<i64: 32, 16>, tiles_n = array<i64: 2, 1>} : memref<4xi32, 1> {
  ^bb0(%e: index, %t: index, %f: index, %l: index, %x: index):
  }
  return
}

// -----

func.func @for_each_tile_arguments(%o: memref<4xi32, 1>) {
  // expected-error @+1 {{body takes 5 index arguments (expert, tile, first row, end row, mix), got 4}}
  moeq.for_each_tile %o {bm = array<i64: 32>, tiles_n = array<i64: 2>} : memref<4xi32, 1> {
  ^bb0(%e: index, %t: index, %f: index, %l: index):
  }
  return
}

// -----

func.func @for_each_tile_table_size(%o: memref<4xi32, 1>, %m: memref<2xi32>) {
  // expected-error @+1 {{has 3 experts but 2 entries in mix_of}}
  moeq.for_each_tile %o mix_of %m : memref<2xi32> {bm = array<i64: 32, 16>, tiles_n = array<i64: 2, 1>} : memref<4xi32, 1> {
  ^bb0(%e: index, %t: index, %f: index, %l: index, %x: index):
  }
  return
}

// -----

func.func @load_fragment_source(%t: memref<3x32x72xf16, 3>, %i: index) {
  // expected-error @+1 {{cannot load a 'vector<4x4xi8>' fragment from a tile of 'f16' (A: 4x2xf16 from f16, 4x4xi8 or 4x8xi4 from i8; B: 2x2xf16 from f16, 2x4xi8 or 2x8xi4 from i32 words)}}
  %a = moeq.load_fragment %t[%i, %i, %i] : memref<3x32x72xf16, 3> -> vector<4x4xi8>
  return
}

// -----

func.func @load_fragment_shape(%t: memref<3x32x72xf16, 3>, %i: index) {
  // expected-error @+1 {{cannot load a 'vector<3x2xf16>' fragment}}
  %a = moeq.load_fragment %t[%i, %i, %i] : memref<3x32x72xf16, 3> -> vector<3x2xf16>
  return
}

// -----

func.func @load_fragment_b_bytes(%t: memref<3x32x80xi8, 3>, %i: index) {
  // expected-error @+1 {{cannot load a 'vector<2x4xi8>' fragment from a tile of 'i8'}}
  %b = moeq.load_fragment %t[%i, %i, %i] : memref<3x32x80xi8, 3> -> vector<2x4xi8>
  return
}

// -----

func.func @load_tile_index_elements(%x: memref<?x256xindex, 1>, %a: memref<3x32x40xindex, 3>, %i: index) {
  // expected-error @+1 {{copies integers or floats, not 'index'}}
  moeq.load_tile_async %x[%i, %i] bound %i into %a[%i] {columns = 32 : i64, chunk = 8 : i64, threads = 128 : i64} : memref<?x256xindex, 1>, memref<3x32x40xindex, 3>
  return
}

// -----

func.func @for_each_tile_dynamic_offsets(%o: memref<?xi32, 1>) {
  // expected-error @+1 {{needs the offsets of at least one expert (a static size of 2 or more), got 'memref<?xi32, 1>'}}
  moeq.for_each_tile %o {bm = array<i64: 32>, tiles_n = array<i64: 2>} : memref<?xi32, 1> {
  ^bb0(%e: index, %t: index, %f: index, %l: index, %x: index):
  }
  return
}

// -----

func.func @load_tile_huge_chunk(%x: memref<?x256xf16, 1>, %a: memref<1x1x4611686018427387904xf16, 3>, %i: index) {
  // expected-error @+1 {{chunk of 4611686018427387904 x 16 bits is not a cp.async size}}
  moeq.load_tile_async %x[%i, %i] bound %i into %a[%i] {columns = 4611686018427387904 : i64, chunk = 4611686018427387904 : i64, threads = 128 : i64} : memref<?x256xf16, 1>, memref<1x1x4611686018427387904xf16, 3>
  return
}

// -----

func.func @store_tile_huge_tiles(%c: vector<2x2xf32>, %y: memref<?x64xf16, 1>, %i: index) {
  // expected-error @+1 {{needs 4294967296 x 4294967296 accumulators, got 1}}
  moeq.store_tile (%c) into %y[%i, %i] bound %i {tiles = array<i64: 4294967296, 4294967296>} : (vector<2x2xf32>), memref<?x64xf16, 1>
  return
}

// -----

func.func @load_tile_core_matrix_shape(%x: memref<?x256xf16, 1>, %a: memref<3x8x8x4x8xf16, 3>, %i: index) {
  // expected-error @+1 {{needs core matrices of 8 rows x 16 bytes ([stages, rows / 8, K / E, 8, E]), got 'memref<3x8x8x4x8xf16, 3>'}}
  moeq.load_tile_async %x[%i, %i] bound %i into %a[%i] {columns = 64 : i64, chunk = 8 : i64, threads = 128 : i64} : memref<?x256xf16, 1>, memref<3x8x8x4x8xf16, 3>
  return
}

// -----

func.func @load_tile_core_matrix_chunk(%x: memref<?x256xi32, 1>, %a: memref<3x8x8x8x4xi32, 3>, %i: index) {
  // expected-error @+1 {{chunk of 8 elements straddles a core-matrix row of 4}}
  moeq.load_tile_async %x[%i, %i] bound %i into %a[%i] {columns = 32 : i64, chunk = 8 : i64, threads = 128 : i64} : memref<?x256xi32, 1>, memref<3x8x8x8x4xi32, 3>
  return
}

// -----

func.func @load_tile_core_matrix_row(%x: memref<?x256xf16, 1>, %a: memref<3x8x8x8x8xf16, 3>, %i: index) {
  // expected-error @+1 {{row of 72 elements does not fit the tiles' rows of 64}}
  moeq.load_tile_async %x[%i, %i] bound %i into %a[%i] {columns = 72 : i64, chunk = 8 : i64, threads = 128 : i64} : memref<?x256xf16, 1>, memref<3x8x8x8x8xf16, 3>
  return
}

// -----

func.func @warpgroup_mma_global(%a: memref<2x8x4x8x8xf16, 1>, %w: memref<1x2x4x8x8xf16, 3>, %i: index, %c: vector<2x2xf32>) {
  // expected-error @+1 {{reads its operands from shared memory, got 'memref<2x8x4x8x8xf16, 1>'}}
  %d = moeq.warpgroup_mma %a[%i, %i] x %w[%i, %i] + (%c) : memref<2x8x4x8x8xf16, 1>, memref<1x2x4x8x8xf16, 3>, (vector<2x2xf32>)
  return
}

// -----

func.func @warpgroup_mma_layout(%a: memref<2x64x32xf16, 3>, %w: memref<1x2x4x8x8xf16, 3>, %i: index, %c: vector<2x2xf32>) {
  // expected-error @+1 {{operand #0 must be 5D memref of 16-bit float values}}
  %d = moeq.warpgroup_mma %a[%i, %i] x %w[%i, %i] + (%c) : memref<2x64x32xf16, 3>, memref<1x2x4x8x8xf16, 3>, (vector<2x2xf32>)
  return
}

// -----

func.func @warpgroup_mma_core(%a: memref<2x8x8x8x4xf16, 3>, %w: memref<1x2x4x8x8xf16, 3>, %i: index, %c: vector<2x2xf32>) {
  // expected-error @+1 {{needs static f16 tiles of 8 x 8 core matrices ([stages, rows / 8, K / 8, 8, 8]), got 'memref<2x8x8x8x4xf16, 3>'}}
  %d = moeq.warpgroup_mma %a[%i, %i] x %w[%i, %i] + (%c) : memref<2x8x8x8x4xf16, 3>, memref<1x2x4x8x8xf16, 3>, (vector<2x2xf32>)
  return
}

// -----

func.func @warpgroup_mma_k(%a: memref<2x8x4x8x8xf16, 3>, %w: memref<1x2x2x8x8xf16, 3>, %i: index, %c: vector<2x2xf32>) {
  // expected-error @+1 {{multiplies tiles of 32 and 16 K elements}}
  %d = moeq.warpgroup_mma %a[%i, %i] x %w[%i, %i] + (%c) : memref<2x8x4x8x8xf16, 3>, memref<1x2x2x8x8xf16, 3>, (vector<2x2xf32>)
  return
}

// -----

func.func @warpgroup_mma_odd_k(%a: memref<2x8x3x8x8xf16, 3>, %w: memref<1x2x3x8x8xf16, 3>, %i: index, %c: vector<2x2xf32>) {
  // expected-error @+1 {{steps K by 16, got tiles of 24}}
  %d = moeq.warpgroup_mma %a[%i, %i] x %w[%i, %i] + (%c) : memref<2x8x3x8x8xf16, 3>, memref<1x2x3x8x8xf16, 3>, (vector<2x2xf32>)
  return
}

// -----

func.func @warpgroup_mma_no_acc(%a: memref<2x8x4x8x8xf16, 3>, %w: memref<1x2x4x8x8xf16, 3>, %i: index) {
  // expected-error @+1 {{needs 1 to 32 accumulators (N = 8 to 256), got 0}}
  "moeq.warpgroup_mma"(%a, %i, %i, %w, %i, %i) : (memref<2x8x4x8x8xf16, 3>, index, index, memref<1x2x4x8x8xf16, 3>, index, index) -> ()
  return
}

// -----

func.func @warpgroup_mma_acc_type(%a: memref<2x8x4x8x8xf16, 3>, %w: memref<1x2x4x8x8xf16, 3>, %i: index, %c: vector<4x2xf32>) {
  // expected-error @+1 {{accumulates in vector<2x2xf32> blocks}}
  %d = moeq.warpgroup_mma %a[%i, %i] x %w[%i, %i] + (%c) : memref<2x8x4x8x8xf16, 3>, memref<1x2x4x8x8xf16, 3>, (vector<4x2xf32>)
  return
}

// -----

func.func @warpgroup_mma_few_rows(%a: memref<2x4x4x8x8xf16, 3>, %w: memref<1x2x4x8x8xf16, 3>, %i: index, %c: vector<2x2xf32>) {
  // expected-error @+1 {{reads 64 rows from tiles of 32}}
  %d = moeq.warpgroup_mma %a[%i, %i] x %w[%i, %i] + (%c) : memref<2x4x4x8x8xf16, 3>, memref<1x2x4x8x8xf16, 3>, (vector<2x2xf32>)
  return
}

// -----

func.func @warpgroup_mma_row_offset(%a: memref<2x16x4x8x8xf16, 3>, %w: memref<1x2x4x8x8xf16, 3>, %i: index, %c: vector<2x2xf32>) {
  %r = arith.constant 72 : index
  // expected-error @+1 {{reads rows 72 to 136, not whole core matrices of the tiles' 128}}
  %d = moeq.warpgroup_mma %a[%i, %r] x %w[%i, %i] + (%c) : memref<2x16x4x8x8xf16, 3>, memref<1x2x4x8x8xf16, 3>, (vector<2x2xf32>)
  return
}

// -----

func.func @warpgroup_mma_columns(%a: memref<2x8x4x8x8xf16, 3>, %w: memref<1x2x4x8x8xf16, 3>, %i: index, %c: vector<2x2xf32>) {
  %col = arith.constant 12 : index
  // expected-error @+1 {{reads columns 12 to 20, not whole core matrices of the tiles' 16}}
  %d = moeq.warpgroup_mma %a[%i, %i] x %w[%i, %col] + (%c) : memref<2x8x4x8x8xf16, 3>, memref<1x2x4x8x8xf16, 3>, (vector<2x2xf32>)
  return
}


// -----

func.func @bulk_barrier_count(%w: memref<64x16xi32, 1>, %b: memref<3x64x12xi32, 3>, %bars: memref<2xi64, 3>, %i: index) {
  // expected-error @+1 {{needs one mbarrier per stage, got 2 for 3 stages}}
  moeq.load_tile_async %w[%i, %i] bound %i into %b[%i] barriers %bars : memref<2xi64, 3> {columns = 8 : i64, chunk = 4 : i64, threads = 128 : i64} : memref<64x16xi32, 1>, memref<3x64x12xi32, 3>
  return
}

// -----

func.func @bulk_core_matrices(%x: memref<?x256xf16, 1>, %a: memref<3x8x8x8x8xf16, 3>, %bars: memref<3xi64, 3>, %i: index) {
  // expected-error @+1 {{copies rows of a fixed length into row-major tiles in bulk}}
  moeq.load_tile_async %x[%i, %i] bound %i into %a[%i] barriers %bars : memref<3xi64, 3> {columns = 64 : i64, chunk = 8 : i64, threads = 128 : i64} : memref<?x256xf16, 1>, memref<3x8x8x8x8xf16, 3>
  return
}

// -----

func.func @bulk_run_time_rows(%w: memref<64x16xi32, 1>, %b: memref<3x64x12xi32, 3>, %bars: memref<3xi64, 3>, %i: index) {
  // expected-error @+1 {{copies rows of a fixed length into row-major tiles in bulk}}
  moeq.load_tile_async %w[%i, %i] bound %i into %b[%i] chunks_per_row %i barriers %bars : memref<3xi64, 3> {columns = 8 : i64, chunk = 4 : i64, threads = 128 : i64} : memref<64x16xi32, 1>, memref<3x64x12xi32, 3>
  return
}

// -----

func.func @bulk_row_bytes(%w: memref<64x12xi32, 1>, %b: memref<3x64x8xi32, 3>, %bars: memref<3xi64, 3>, %i: index) {
  // expected-error @+1 {{bulk-copies rows of 16-byte multiples between rows 16-byte aligned, got rows of 6 elements between 'memref<64x12xi32, 1>' and 'memref<3x64x8xi32, 3>'}}
  moeq.load_tile_async %w[%i, %i] bound %i into %b[%i] barriers %bars : memref<3xi64, 3> {columns = 6 : i64, chunk = 2 : i64, threads = 128 : i64} : memref<64x12xi32, 1>, memref<3x64x8xi32, 3>
  return
}

// -----

func.func @bulk_source_stride(%w: memref<64x13xi32, 1>, %b: memref<3x64x12xi32, 3>, %bars: memref<3xi64, 3>, %i: index) {
  // expected-error @+1 {{bulk-copies rows of 16-byte multiples between rows 16-byte aligned}}
  moeq.load_tile_async %w[%i, %i] bound %i into %b[%i] barriers %bars : memref<3xi64, 3> {columns = 8 : i64, chunk = 4 : i64, threads = 128 : i64} : memref<64x13xi32, 1>, memref<3x64x12xi32, 3>
  return
}

// -----

func.func @init_barriers_global(%bars: memref<3xi64, 1>) {
  // expected-error @+1 {{needs static mbarriers in shared memory, got 'memref<3xi64, 1>'}}
  moeq.init_tile_barriers %bars : memref<3xi64, 1>
  return
}

// -----

func.func @wait_barrier_dynamic(%bars: memref<?xi64, 3>, %i: index) {
  // expected-error @+1 {{needs static mbarriers in shared memory, got 'memref<?xi64, 3>'}}
  moeq.wait_tile_barrier %bars[%i] parity %i : memref<?xi64, 3>
  return
}
