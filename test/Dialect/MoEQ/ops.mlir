// Round trip of every op, type and attribute: custom form, generic form and
// bytecode all print back the same custom form.
// RUN: moeq-opt %s | moeq-opt | FileCheck %s
// RUN: moeq-opt %s -mlir-print-op-generic | moeq-opt | FileCheck %s
// RUN: moeq-opt %s -emit-bytecode | moeq-opt | FileCheck %s

// CHECK: module attributes {moeq.archives = {model = "/models/tiny"}, moeq.target = #moeq.target<"sm_90">}
module attributes {moeq.archives = {model = "/models/tiny"}, moeq.target = #moeq.target<"sm_90">} {

// CHECK-LABEL: func.func @params
func.func @params() -> (tensor<8x256xbf16>, !moeq.qweight<512x256, #moeq.scheme<w4a16, g128, asym>>) {
  // CHECK: moeq.param <"model", "model.layers.0.block_sparse_moe.gate.weight"> : tensor<8x256xbf16>
  %0 = moeq.param <"model", "model.layers.0.block_sparse_moe.gate.weight"> : tensor<8x256xbf16>
  // CHECK: moeq.param <"quant", "w1.weight"> : !moeq.qweight<512x256, #moeq.scheme<w4a16, g128, asym>>
  %1 = moeq.param <"quant", "w1.weight"> : !moeq.qweight<512x256, #moeq.scheme<w4a16, g128, asym>>
  return %0, %1 : tensor<8x256xbf16>, !moeq.qweight<512x256, #moeq.scheme<w4a16, g128, asym>>
}

// A packed weight names the checkpoint slice it was quantized from.
// CHECK-LABEL: func.func @packed_source
func.func @packed_source() -> !moeq.qweight<48x64, #moeq.scheme<w4a16, g32, asym>> {
  // CHECK: moeq.param <"quant", "gate_up_proj.3.t.rows_0_48_step_2"> source <"model", "model.layers.0.mlp.experts.gate_up_proj" index 3 transposed rows [0, 48] step 2> : !moeq.qweight<48x64, #moeq.scheme<w4a16, g32, asym>>
  %0 = moeq.param <"quant", "gate_up_proj.3.t.rows_0_48_step_2"> source <"model", "model.layers.0.mlp.experts.gate_up_proj" index 3 transposed rows [0, 48] step 2> : !moeq.qweight<48x64, #moeq.scheme<w4a16, g32, asym>>
  return %0 : !moeq.qweight<48x64, #moeq.scheme<w4a16, g32, asym>>
}

// CHECK-LABEL: func.func @schemes
// CHECK-SAME: group_bits = !moeq.qweight<64x128, #moeq.scheme<w2a16, g32, asym>, group_bits = [1, 3, 2, 2]>
// CHECK-SAME: lut = !moeq.qweight<64x128, #moeq.scheme<w2a16, g64, asym, lut>>
// CHECK-SAME: padded = !moeq.qweight<64x40, #moeq.scheme<w3a16, g8, asym>>
// CHECK-SAME: w3 = !moeq.qweight<64x128, #moeq.scheme<w3a16, g32, asym>>
// CHECK-SAME: w4a4 = !moeq.qweight<64x128, #moeq.scheme<w4a4, g128, sym>>
// CHECK-SAME: w8a8 = !moeq.qweight<64x128, #moeq.scheme<w8a8, per_channel, sym>>
func.func @schemes() attributes {
    w8a8 = !moeq.qweight<64x128, #moeq.scheme<w8a8, per_channel, sym>>,
    w3 = !moeq.qweight<64x128, #moeq.scheme<w3a16, g32, asym>>,
    // 40 x 3 bits: rows of 4 words, the last one zero-padded.
    padded = !moeq.qweight<64x40, #moeq.scheme<w3a16, g8, asym>>,
    lut = !moeq.qweight<64x128, #moeq.scheme<w2a16, g64, asym, lut>>,
    w4a4 = !moeq.qweight<64x128, #moeq.scheme<w4a4, g128, sym>>,
    group_bits = !moeq.qweight<64x128, #moeq.scheme<w2a16, g32, asym>, group_bits = [1, 3, 2, 2]>} {
  return
}

// CHECK-LABEL: func.func @moe
func.func @moe(%x: tensor<?x64xf32>, %r: tensor<2x64xbf16>,
               %g0: tensor<128x64xbf16>, %g1: !moeq.qweight<128x64, #moeq.scheme<w4a16, g32, asym>>,
               %u0: tensor<128x64xbf16>, %u1: tensor<128x64xbf16>,
               %d0: tensor<64x128xbf16>, %d1: tensor<64x128xbf16>) -> tensor<?x64xf32> {
  // CHECK: moeq.moe %{{.*}} router %{{.*}} : tensor<2x64xbf16> gate(%{{.*}}, %{{.*}} : tensor<128x64xbf16>, !moeq.qweight<128x64, #moeq.scheme<w4a16, g32, asym>>) up(%{{.*}}, %{{.*}} : tensor<128x64xbf16>, tensor<128x64xbf16>) down(%{{.*}}, %{{.*}} : tensor<64x128xbf16>, tensor<64x128xbf16>)
  // CHECK-SAME: activation = #moeq<activation silu>
  // CHECK-SAME: scoring = #moeq<scoring softmax>
  // CHECK-SAME: top_k = 1 : i64
  // CHECK-SAME: : tensor<?x64xf32> -> tensor<?x64xf32>
  %y = moeq.moe %x router %r : tensor<2x64xbf16>
         gate(%g0, %g1 : tensor<128x64xbf16>, !moeq.qweight<128x64, #moeq.scheme<w4a16, g32, asym>>)
         up(%u0, %u1 : tensor<128x64xbf16>, tensor<128x64xbf16>)
         down(%d0, %d1 : tensor<64x128xbf16>, tensor<64x128xbf16>)
         {top_k = 1 : i64, scoring = #moeq<scoring softmax>, activation = #moeq<activation silu>}
         : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// CHECK-LABEL: func.func @moe_shared
func.func @moe_shared(%x: tensor<4x64xf32>, %r: tensor<2x64xf32>, %w: tensor<128x64xf32>,
                      %wd: tensor<64x128xf32>, %sg: tensor<1x64xf32>, %bias: tensor<2xf32>) -> tensor<4x64xf32> {
  // CHECK: shared(%{{.*}}, %{{.*}}, %{{.*}} : tensor<128x64xf32>, tensor<128x64xf32>, tensor<64x128xf32>)
  // CHECK-SAME: shared_expert_gate %{{.*}} : tensor<1x64xf32>
  // CHECK-SAME: score_bias %{{.*}} : tensor<2xf32>
  // CHECK-SAME: n_group = 2 : i64
  // CHECK-SAME: norm_topk_prob = false
  // CHECK-SAME: scoring = #moeq<scoring sigmoid>
  %y = moeq.moe %x router %r : tensor<2x64xf32>
         gate(%w, %w : tensor<128x64xf32>, tensor<128x64xf32>)
         up(%w, %w : tensor<128x64xf32>, tensor<128x64xf32>)
         down(%wd, %wd : tensor<64x128xf32>, tensor<64x128xf32>)
         shared(%w, %w, %wd : tensor<128x64xf32>, tensor<128x64xf32>, tensor<64x128xf32>)
         shared_expert_gate %sg : tensor<1x64xf32>
         score_bias %bias : tensor<2xf32>
         {top_k = 1 : i64, scoring = #moeq<scoring sigmoid>, activation = #moeq<activation silu>,
          norm_topk_prob = false, routed_scaling_factor = 2.5 : f64, n_group = 2 : i64, topk_group = 1 : i64}
         : tensor<4x64xf32> -> tensor<4x64xf32>
  return %y : tensor<4x64xf32>
}

// CHECK-LABEL: func.func @decomposed
func.func @decomposed(%x: tensor<?x64xf32>, %r: tensor<2x64xbf16>,
                      %w0: !moeq.qweight<128x64, #moeq.scheme<w4a16, g32, asym>>,
                      %w1: tensor<128x64xbf16>,
                      %d0: tensor<64x128xbf16>) -> tensor<?x64xf32> {
  // CHECK: moeq.router %{{.*}}, %{{.*}} {scoring = #moeq<scoring softmax>, top_k = 2 : i64} : tensor<?x64xf32>, tensor<2x64xbf16> -> tensor<?x2xi32>, tensor<?x2xf32>
  %idx, %wts = moeq.router %x, %r {top_k = 2 : i64, scoring = #moeq<scoring softmax>}
      : tensor<?x64xf32>, tensor<2x64xbf16> -> tensor<?x2xi32>, tensor<?x2xf32>
  // CHECK: moeq.dispatch %{{.*}}, %{{.*}} {num_experts = 2 : i64} : tensor<?x64xf32>, tensor<?x2xi32> -> tensor<?x64xf32>, tensor<?xi32>, tensor<3xi32>
  %sorted, %pos, %off = moeq.dispatch %x, %idx {num_experts = 2 : i64}
      : tensor<?x64xf32>, tensor<?x2xi32> -> tensor<?x64xf32>, tensor<?xi32>, tensor<3xi32>
  // CHECK: moeq.grouped_matmul %{{.*}}, %{{.*}} weights(%{{.*}}, %{{.*}} : !moeq.qweight<128x64, #moeq.scheme<w4a16, g32, asym>>, tensor<128x64xbf16>)
  // CHECK-SAME: kernels = [@k0::@k0, @k1::@k1]
  // CHECK-SAME: tiles = [#moeq.tile<path = mma, bm = 16, bn = 128, bk = 32, warps = 4, stages = 2, split_k = 1>, #moeq.tile<path = simt, bm = 1, bn = 128, bk = 32, warps = 4, stages = 1, split_k = 1>]
  %g = moeq.grouped_matmul %sorted, %off weights(%w0, %w1 : !moeq.qweight<128x64, #moeq.scheme<w4a16, g32, asym>>, tensor<128x64xbf16>)
      {kernels = [@k0::@k0, @k1::@k1], tiles = [#moeq.tile<path = mma, bm = 16, bn = 128, bk = 32, warps = 4, stages = 2, split_k = 1>, #moeq.tile<path = simt, bm = 1, bn = 128, bk = 32, warps = 4, stages = 1, split_k = 1>]}
      : tensor<?x64xf32>, tensor<3xi32> -> tensor<?x128xf32>
  // CHECK: moeq.gated_activation gelu %{{.*}}, %{{.*}} : tensor<?x128xf32>
  %a = moeq.gated_activation gelu %g, %g : tensor<?x128xf32>
  // CHECK: moeq.grouped_matmul
  %d = moeq.grouped_matmul %a, %off weights(%d0, %d0 : tensor<64x128xbf16>, tensor<64x128xbf16>)
      : tensor<?x128xf32>, tensor<3xi32> -> tensor<?x64xf32>
  // CHECK: moeq.combine %{{.*}}, %{{.*}}, %{{.*}} : tensor<?x64xf32>, tensor<?xi32>, tensor<?x2xf32> -> tensor<?x64xf32>
  %y = moeq.combine %d, %pos, %wts : tensor<?x64xf32>, tensor<?xi32>, tensor<?x2xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// CHECK-LABEL: func.func @stacked_and_shared
func.func @stacked_and_shared(%x: tensor<?x64xf32>, %y: tensor<?x64xf32>, %p: tensor<?xi32>, %w: tensor<?x2xf32>, %gl: tensor<?x1xf32>) -> tensor<?x64xf32> {
  // CHECK: moeq.param <"model", "experts.gate_up_proj" index 3 rows [128, 128]> : tensor<128x64xbf16>
  %up = moeq.param <"model", "experts.gate_up_proj" index 3 rows [128, 128]> : tensor<128x64xbf16>
  // A range at offset 0 (the gate half) prints its offset and parses back.
  // CHECK: moeq.param <"model", "experts.gate_up_proj" index 3 rows [0, 128]> : tensor<128x64xbf16>
  %gate = moeq.param <"model", "experts.gate_up_proj" index 3 rows [0, 128]> : tensor<128x64xbf16>
  // CHECK: moeq.param <"model", "experts.down_proj" index 3> : tensor<64x128xbf16>
  %down = moeq.param <"model", "experts.down_proj" index 3> : tensor<64x128xbf16>
  // Stored [in, out] (Llama 4, gpt-oss): read transposed, every 2nd row.
  // CHECK: moeq.param <"model", "experts.gate_up_proj" index 3 transposed rows [1, 128] step 2> : tensor<128x64xbf16>
  %upT = moeq.param <"model", "experts.gate_up_proj" index 3 transposed rows [1, 128] step 2> : tensor<128x64xbf16>
  // CHECK: moeq.param <"model", "experts.down_proj" index 3 transposed> : tensor<64x128xbf16>
  %downT = moeq.param <"model", "experts.down_proj" index 3 transposed> : tensor<64x128xbf16>
  // CHECK: moeq.linear %{{.*}}, %{{.*}} {kernel = @k::@k} : tensor<?x64xf32>, tensor<128x64xbf16> -> tensor<?x128xf32>
  %h = moeq.linear %x, %up {kernel = @k::@k} : tensor<?x64xf32>, tensor<128x64xbf16> -> tensor<?x128xf32>
  %s = moeq.linear %h, %down : tensor<?x128xf32>, tensor<64x128xbf16> -> tensor<?x64xf32>
  // CHECK: moeq.combine %{{.*}}, %{{.*}}, %{{.*}} shared(%{{.*}} : tensor<?x64xf32>) shared_gate(%{{.*}} : tensor<?x1xf32>) : tensor<?x64xf32>, tensor<?xi32>, tensor<?x2xf32> -> tensor<?x64xf32>
  %o = moeq.combine %y, %p, %w shared(%s : tensor<?x64xf32>) shared_gate(%gl : tensor<?x1xf32>) : tensor<?x64xf32>, tensor<?xi32>, tensor<?x2xf32> -> tensor<?x64xf32>
  return %o : tensor<?x64xf32>
}

// CHECK-LABEL: func.func @quant
func.func @quant(%w: tensor<128x64xf32>) -> tensor<128x64xf16> {
  // CHECK: moeq.quantize %{{.*}} : tensor<128x64xf32> -> !moeq.qweight<128x64, #moeq.scheme<w3a16, g32, sym>>
  %q = moeq.quantize %w {method = #moeq<method rtn>} : tensor<128x64xf32> -> !moeq.qweight<128x64, #moeq.scheme<w3a16, g32, sym>>
  // CHECK: moeq.quantize %{{.*}} {method = #moeq<method gptq>} : tensor<128x64xf32> -> !moeq.qweight<128x64, #moeq.scheme<w3a16, g32, sym>>
  %q2 = moeq.quantize %w {method = #moeq<method gptq>} : tensor<128x64xf32> -> !moeq.qweight<128x64, #moeq.scheme<w3a16, g32, sym>>
  // CHECK: moeq.quantize %{{.*}} {act_order, hessian = #moeq.param<"stats", "layers.0.experts.1.gram_in_weighted">, method = #moeq<method agq>, mse_clip} : tensor<128x64xf32> -> !moeq.qweight<128x64, #moeq.scheme<w3a16, g32, sym>>
  %q3 = moeq.quantize %w {method = #moeq<method agq>, hessian = #moeq.param<"stats", "layers.0.experts.1.gram_in_weighted">, act_order, mse_clip} : tensor<128x64xf32> -> !moeq.qweight<128x64, #moeq.scheme<w3a16, g32, sym>>
  // CHECK: moeq.dequantize %{{.*}} : !moeq.qweight<128x64, #moeq.scheme<w3a16, g32, sym>> -> tensor<128x64xf16>
  %d = moeq.dequantize %q : !moeq.qweight<128x64, #moeq.scheme<w3a16, g32, sym>> -> tensor<128x64xf16>
  return %d : tensor<128x64xf16>
}

// CHECK-LABEL: func.func @delta_weight
// CHECK: moeq.delta_weight %arg0, %arg1, %arg2 {source = #moeq.param<"model", "w1">} : !moeq.qweight<48x64, #moeq.scheme<w4a16, g32, asym>>, tensor<64x16xf32>, tensor<16x64xf32> -> tensor<64x64xf32>
func.func @delta_weight(%base: !moeq.qweight<48x64, #moeq.scheme<w4a16, g32, asym>>, %a: tensor<64x16xf32>, %b: tensor<16x64xf32>) -> tensor<64x64xf32> {
  %w = moeq.delta_weight %base, %a, %b {source = #moeq.param<"model", "w1">} : !moeq.qweight<48x64, #moeq.scheme<w4a16, g32, asym>>, tensor<64x16xf32>, tensor<16x64xf32> -> tensor<64x64xf32>
  return %w : tensor<64x64xf32>
}

// CHECK-LABEL: func.func @delta_sum
// CHECK: moeq.delta_sum %arg0, %arg1 : tensor<?x64xf32>, tensor<?x48xf32> -> tensor<?x64xf32>
func.func @delta_sum(%lowrank: tensor<?x64xf32>, %base: tensor<?x48xf32>) -> tensor<?x64xf32> {
  %y = moeq.delta_sum %lowrank, %base : tensor<?x64xf32>, tensor<?x48xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

}

// -----

// The host side of a launch plan: a parameter in device memory and the
// device address of a buffer row, as kernels take them.
// CHECK-LABEL: func.func @launch_plan_ops
// CHECK: moeq.device_param <"model", "router"> : memref<8x64xf32, #gpu.address_space<global>>
// CHECK: moeq.kernel_pointer %{{.*}} : memref<?x64xf16, #gpu.address_space<global>> -> !llvm.ptr<1>
// CHECK: moeq.kernel_pointer %{{.*}}[%{{.*}}] : memref<?x64xf16, #gpu.address_space<global>> -> !llvm.ptr<1>
func.func @launch_plan_ops(%x: memref<?x64xf16, #gpu.address_space<global>>, %row: index)
    -> (memref<8x64xf32, #gpu.address_space<global>>, !llvm.ptr<1>, !llvm.ptr<1>) {
  %w = moeq.device_param <"model", "router"> : memref<8x64xf32, #gpu.address_space<global>>
  %p = moeq.kernel_pointer %x : memref<?x64xf16, #gpu.address_space<global>> -> !llvm.ptr<1>
  %q = moeq.kernel_pointer %x[%row] : memref<?x64xf16, #gpu.address_space<global>> -> !llvm.ptr<1>
  return %w, %p, %q : memref<8x64xf32, #gpu.address_space<global>>, !llvm.ptr<1>, !llvm.ptr<1>
}

// -----

// gpt-oss: router and expert biases, the clamped SwiGLU, and their
// decomposed forms.
// CHECK-LABEL: func.func @biases_and_clamped_swiglu
// CHECK: moeq.moe %{{.*}} router %{{.*}} : tensor<2x64xf32> gate({{.*}}) up({{.*}}) down({{.*}}) router_bias %{{.*}} : tensor<2xf32> bias gate(%{{.*}}, %{{.*}} : tensor<128xf32>, tensor<128xf32>) up(%{{.*}}, %{{.*}} : tensor<128xf32>, tensor<128xf32>) down(%{{.*}}, %{{.*}} : tensor<64xf32>, tensor<64xf32>) {activation = #moeq<activation clamped_swiglu>, scoring = #moeq<scoring softmax>, swiglu_alpha = 1.500000e+00 : f64, swiglu_limit = 5.000000e+00 : f64, top_k = 2 : i64}
// CHECK: moeq.router %{{.*}}, %{{.*}} logit_bias %{{.*}} : tensor<2xf32> {scoring = #moeq<scoring softmax>, top_k = 2 : i64}
// CHECK: moeq.grouped_matmul %{{.*}}, %{{.*}} weights(%{{.*}}, %{{.*}} : tensor<128x64xf32>, tensor<128x64xf32>) biases(%{{.*}}, %{{.*}} : tensor<128xf32>, tensor<128xf32>) :
// CHECK: moeq.gated_activation clamped_swiglu %{{.*}}, %{{.*}} {swiglu_alpha = 1.500000e+00 : f64, swiglu_limit = 5.000000e+00 : f64} : tensor<?x128xf32>
func.func @biases_and_clamped_swiglu(%x: tensor<?x64xf32>, %r: tensor<2x64xf32>, %rb: tensor<2xf32>, %w: tensor<128x64xf32>,
                                     %d: tensor<64x128xf32>, %bi: tensor<128xf32>, %bh: tensor<64xf32>, %off: tensor<3xi32>,
                                     %s: tensor<?x64xf32>, %g: tensor<?x128xf32>) -> (tensor<?x64xf32>, tensor<?x2xi32>, tensor<?x128xf32>, tensor<?x128xf32>) {
  %y = moeq.moe %x router %r : tensor<2x64xf32>
         gate(%w, %w : tensor<128x64xf32>, tensor<128x64xf32>)
         up(%w, %w : tensor<128x64xf32>, tensor<128x64xf32>)
         down(%d, %d : tensor<64x128xf32>, tensor<64x128xf32>)
         router_bias %rb : tensor<2xf32>
         bias gate(%bi, %bi : tensor<128xf32>, tensor<128xf32>) up(%bi, %bi : tensor<128xf32>, tensor<128xf32>) down(%bh, %bh : tensor<64xf32>, tensor<64xf32>)
         {top_k = 2 : i64, scoring = #moeq<scoring softmax>, activation = #moeq<activation clamped_swiglu>,
          swiglu_alpha = 1.5 : f64, swiglu_limit = 5.0 : f64}
         : tensor<?x64xf32> -> tensor<?x64xf32>
  %i, %wt = moeq.router %x, %r logit_bias %rb : tensor<2xf32> {top_k = 2 : i64, scoring = #moeq<scoring softmax>}
      : tensor<?x64xf32>, tensor<2x64xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
  %m = moeq.grouped_matmul %s, %off weights(%w, %w : tensor<128x64xf32>, tensor<128x64xf32>) biases(%bi, %bi : tensor<128xf32>, tensor<128xf32>)
      : tensor<?x64xf32>, tensor<3xi32> -> tensor<?x128xf32>
  %a = moeq.gated_activation clamped_swiglu %m, %g {swiglu_alpha = 1.5 : f64, swiglu_limit = 5.0 : f64} : tensor<?x128xf32>
  return %y, %i, %m, %a : tensor<?x64xf32>, tensor<?x2xi32>, tensor<?x128xf32>, tensor<?x128xf32>
}

// A router whose expert count is not static: top_k is checked against it
// only when it is known.
// CHECK-LABEL: func.func @router_dynamic_experts
// CHECK: moeq.router %{{.*}}, %{{.*}} {scoring = #moeq<scoring softmax>, top_k = 2 : i64} : tensor<4x64xf32>, tensor<?x64xf32> -> tensor<4x2xi32>, tensor<4x2xf32>
func.func @router_dynamic_experts(%x: tensor<4x64xf32>, %r: tensor<?x64xf32>) {
  %i, %w = moeq.router %x, %r {top_k = 2 : i64, scoring = #moeq<scoring softmax>}
      : tensor<4x64xf32>, tensor<?x64xf32> -> tensor<4x2xi32>, tensor<4x2xf32>
  return
}

// -----

// The packed-code ops print as they parse.
// CHECK-LABEL: func.func @packed_codes
// CHECK: moeq.unpack_codes %{{.*}}[%{{.*}}, %{{.*}}] bit %{{.*}} {bits = 3 : i64, count = 2 : i64, padded} : memref<2x16x7xi32, 3> -> vector<2xi32>
// CHECK: moeq.unpack_codes %{{.*}}[%{{.*}}] bit %{{.*}} width %{{.*}} {bits = 8 : i64} : memref<16x7xi32> -> i32
// CHECK: moeq.dequantize_codes %{{.*}} scale %{{.*}} zero %{{.*}} {integral_zero} : vector<2xi32>, f16, f16 -> vector<2xf16>
// CHECK: moeq.lookup_levels %{{.*}} in %{{.*}}[%{{.*}}] start %{{.*}} : i32, memref<16x64xf16> -> f32
func.func @packed_codes(%t: memref<2x16x7xi32, 3>, %w: memref<16x7xi32>, %l: memref<16x64xf16>, %i: index, %s: f16) {
  %p = moeq.unpack_codes %t[%i, %i] bit %i {bits = 3 : i64, count = 2 : i64, padded} : memref<2x16x7xi32, 3> -> vector<2xi32>
  %c = moeq.unpack_codes %w[%i] bit %i width %i {bits = 8 : i64} : memref<16x7xi32> -> i32
  %d = moeq.dequantize_codes %p scale %s zero %s {integral_zero} : vector<2xi32>, f16, f16 -> vector<2xf16>
  %v = moeq.lookup_levels %c in %l[%i] start %i : i32, memref<16x64xf16> -> f32
  return
}

// -----

// CHECK-LABEL: func.func @tile_ops
// CHECK: moeq.load_tile_async %{{.*}}[%{{.*}}, %{{.*}}] bound %{{.*}} into %{{.*}}[%{{.*}}] {chunk = 8 : i64, columns = 32 : i64, threads = 128 : i64} : memref<?x256xf16, 1>, memref<3x32x40xf16, 3>
// CHECK: moeq.load_tile_async %{{.*}}[%{{.*}}, %{{.*}}] bound %{{.*}} into %{{.*}}[%{{.*}}] if %{{.*}} chunks_per_row %{{.*}} {chunk = 4 : i64, columns = 8 : i64, threads = 128 : i64} : memref<64x32xi32, 1>, memref<3x64x12xi32, 3>
// CHECK: moeq.load_fragment %{{.*}}[%{{.*}}, %{{.*}}, %{{.*}}] : memref<3x32x40xf16, 3> -> vector<4x2xf16>
// CHECK: moeq.load_fragment %{{.*}}[%{{.*}}, %{{.*}}, %{{.*}}] : memref<3x64x12xi32, 3> -> vector<2x8xi4>
// CHECK: moeq.mma_tile(%{{.*}}) x(%{{.*}}, %{{.*}}) + (%{{.*}}, %{{.*}}) {mma_shape = array<i64: 16, 8, 16>} : (vector<4x2xf16>) x(vector<2x2xf16>, vector<2x2xf16>) + (vector<2x2xf32>, vector<2x2xf32>)
// CHECK: moeq.store_tile(%{{.*}}, %{{.*}}) into %{{.*}}[%{{.*}}, %{{.*}}] bound %{{.*}} row_offset %{{.*}} {tiles = array<i64: 1, 2>} : (vector<2x2xf32>, vector<2x2xf32>), memref<?x64xf32, 1>
// CHECK: moeq.store_tile(%{{.*}}) into %{{.*}}[%{{.*}}, %{{.*}}] bound %{{.*}} column_scales %{{.*}} : memref<64x1xf16, 1> row_scales %{{.*}} : memref<?xf32, 1> {tiles = array<i64: 1, 1>} : (vector<2x2xi32>), memref<?x64xf16, 1>
// CHECK: scf.for
// CHECK: } {moeq.pipeline_stages = 3 : i64}
func.func @tile_ops(%x: memref<?x256xf16, 1>, %a: memref<3x32x40xf16, 3>, %w: memref<64x32xi32, 1>,
                    %b: memref<3x64x12xi32, 3>, %i: index, %p: i1, %fa: vector<4x2xf16>,
                    %fb: vector<2x2xf16>, %c: vector<2x2xf32>, %ws: memref<?x64xf32, 1>,
                    %y: memref<?x64xf16, 1>, %s: memref<64x1xf16, 1>, %xs: memref<?xf32, 1>,
                    %ci: vector<2x2xi32>) {
  moeq.load_tile_async %x[%i, %i] bound %i into %a[%i] {columns = 32 : i64, chunk = 8 : i64, threads = 128 : i64} : memref<?x256xf16, 1>, memref<3x32x40xf16, 3>
  moeq.load_tile_async %w[%i, %i] bound %i into %b[%i] if %p chunks_per_row %i {columns = 8 : i64, chunk = 4 : i64, threads = 128 : i64} : memref<64x32xi32, 1>, memref<3x64x12xi32, 3>
  %la = moeq.load_fragment %a[%i, %i, %i] : memref<3x32x40xf16, 3> -> vector<4x2xf16>
  %lb = moeq.load_fragment %b[%i, %i, %i] : memref<3x64x12xi32, 3> -> vector<2x8xi4>
  %d:2 = moeq.mma_tile (%fa) x (%fb, %fb) + (%c, %c) {mma_shape = array<i64: 16, 8, 16>} : (vector<4x2xf16>) x (vector<2x2xf16>, vector<2x2xf16>) + (vector<2x2xf32>, vector<2x2xf32>)
  moeq.store_tile (%d#0, %d#1) into %ws[%i, %i] bound %i row_offset %i {tiles = array<i64: 1, 2>} : (vector<2x2xf32>, vector<2x2xf32>), memref<?x64xf32, 1>
  moeq.store_tile (%ci) into %y[%i, %i] bound %i column_scales %s : memref<64x1xf16, 1> row_scales %xs : memref<?xf32, 1> {tiles = array<i64: 1, 1>} : (vector<2x2xi32>), memref<?x64xf16, 1>
  scf.for %k = %i to %i step %i {
  } {moeq.pipeline_stages = 3 : i64}
  return
}

// -----

// CHECK-LABEL: func.func @warpgroup_tile_ops
// CHECK-SAME: attributes {t = #moeq.tile<path = wgmma, bm = 128, bn = 256, bk = 64, warps = 8, stages = 3, split_k = 1>}
// CHECK: moeq.load_tile_async %{{.*}}[%{{.*}}, %{{.*}}] bound %{{.*}} into %{{.*}}[%{{.*}}] {chunk = 8 : i64, columns = 64 : i64, threads = 128 : i64} : memref<?x256xf16, 1>, memref<3x8x8x8x8xf16, 3>
// CHECK: %{{.*}}:2 = moeq.warpgroup_mma %{{.*}}[%{{.*}}, %{{.*}}] x %{{.*}}[%{{.*}}, %{{.*}}] + (%{{.*}}, %{{.*}}) : memref<3x8x8x8x8xf16, 3>, memref<1x2x8x8x8xf16, 3>, (vector<2x2xf32>, vector<2x2xf32>)
// CHECK: moeq.init_tile_barriers %{{.*}} : memref<3xi64, 3>
// CHECK: moeq.load_tile_async %{{.*}}[%{{.*}}, %{{.*}}] bound %{{.*}} into %{{.*}}[%{{.*}}] if %{{.*}} barriers %{{.*}} : memref<3xi64, 3> {chunk = 4 : i64, columns = 8 : i64, threads = 128 : i64} : memref<64x16xi32, 1>, memref<3x64x12xi32, 3>
// CHECK: moeq.wait_tile_barrier %{{.*}}[%{{.*}}] parity %{{.*}} : memref<3xi64, 3>
func.func @warpgroup_tile_ops(%x: memref<?x256xf16, 1>, %a: memref<3x8x8x8x8xf16, 3>,
                              %w: memref<1x2x8x8x8xf16, 3>, %i: index, %c: vector<2x2xf32>,
                              %q: memref<64x16xi32, 1>, %b: memref<3x64x12xi32, 3>,
                              %bars: memref<3xi64, 3>, %p: i1)
    attributes {t = #moeq.tile<path = wgmma, bm = 128, bn = 256, bk = 64, warps = 8, stages = 3, split_k = 1>} {
  moeq.load_tile_async %x[%i, %i] bound %i into %a[%i] {columns = 64 : i64, chunk = 8 : i64, threads = 128 : i64} : memref<?x256xf16, 1>, memref<3x8x8x8x8xf16, 3>
  %d:2 = moeq.warpgroup_mma %a[%i, %i] x %w[%i, %i] + (%c, %c) : memref<3x8x8x8x8xf16, 3>, memref<1x2x8x8x8xf16, 3>, (vector<2x2xf32>, vector<2x2xf32>)
  moeq.init_tile_barriers %bars : memref<3xi64, 3>
  moeq.load_tile_async %q[%i, %i] bound %i into %b[%i] if %p barriers %bars : memref<3xi64, 3> {columns = 8 : i64, chunk = 4 : i64, threads = 128 : i64} : memref<64x16xi32, 1>, memref<3x64x12xi32, 3>
  moeq.wait_tile_barrier %bars[%i] parity %i : memref<3xi64, 3>
  return
}

// -----

// CHECK-LABEL: func.func @tile_scheduler
// CHECK: moeq.for_each_tile %{{.*}} mix_of %{{.*}} : memref<3xi32> {bm = array<i64: 32, 16>, tiles_n = array<i64: 2, 1>} : memref<4xi32, 1> {
// CHECK-NEXT: ^bb0(%{{.*}}: index, %{{.*}}: index, %{{.*}}: index, %{{.*}}: index, %{{.*}}: index):
// CHECK: gpu.barrier
// CHECK-NEXT: }
func.func @tile_scheduler(%o: memref<4xi32, 1>, %m: memref<3xi32>) {
  moeq.for_each_tile %o mix_of %m : memref<3xi32> {bm = array<i64: 32, 16>, tiles_n = array<i64: 2, 1>} : memref<4xi32, 1> {
  ^bb0(%e: index, %t: index, %f: index, %l: index, %x: index):
    gpu.barrier
  }
  return
}
