// RUN: moeq-opt %s -split-input-file -verify-diagnostics -pass-pipeline='builtin.module(func.func(moeq-decompose-moe),moeq-tile-expert-gemms,moeq-lower-expert-gemms-to-gpu,moeq-convert-to-launch-plan,func.func(cse))' | FileCheck %s

// Two precision mixes in persistent GEMMs: the host plan routes (one CTA
// per token), sorts the token copies by expert (one CTA), gathers the
// sorted rows, launches one persistent kernel per expert GEMM (one CTA per
// SM of the H100, reading the device-side expert offsets), the activation
// and the combine, whose output is the function's result. Parameters are
// uploaded once (a repeated weight is one parameter), the router as f32.
// CHECK-LABEL: func.func @layer_launch
// CHECK-SAME: (%[[X:.*]]: memref<?x64xf16, #gpu.address_space<global>>) -> memref<?x64xf16, #gpu.address_space<global>>
// CHECK-SAME: moeq.launch_plan = @layer
// CHECK: %[[R:.*]] = moeq.device_param <"model", "router"> : memref<4x64xf32, #gpu.address_space<global>>
// CHECK-NEXT: %[[G0Q:.*]] = moeq.device_param <"quant", "g0.qweight"> : memref<128x8xi32, #gpu.address_space<global>>
// CHECK-NEXT: %[[G0S:.*]] = moeq.device_param <"quant", "g0.scales"> : memref<128x1xf16, #gpu.address_space<global>>
// CHECK-NEXT: %[[G0Z:.*]] = moeq.device_param <"quant", "g0.zeros"> : memref<128x1xf16, #gpu.address_space<global>>
// CHECK-NEXT: %[[G1Q:.*]] = moeq.device_param <"quant", "g1.qweight"> : memref<128x4xi32, #gpu.address_space<global>>
// The experts' weights as one table of their device addresses per GEMM
// (a row per expert: codes, scales, zeros): gate and up have the same
// weights here, so they share one table.
// CHECK: %[[TABLE:.*]] = moeq.device_address_table(%[[G0Q]], %[[G0S]], %[[G0Z]], %[[G1Q]], %{{.*}}, %{{.*}}, %[[G0Q]], %[[G0S]], %[[G0Z]], %[[G1Q]], %{{.*}}, %{{.*}}) rows [3, 3, 3, 3] : ({{.*}}) -> memref<4x3xi64, #gpu.address_space<global>>
// CHECK: %[[DTABLE:.*]] = moeq.device_address_table({{.*}}) rows [3, 3, 3, 3] : ({{.*}}) -> memref<4x3xi64, #gpu.address_space<global>>
// CHECK: %[[T:.*]] = memref.dim %[[X]], %c0
// CHECK: %[[IDS:.*]] = gpu.alloc  (%[[T]]) {moeq.name = "topk_ids"} : memref<?x2xi32, #gpu.address_space<global>>
// CHECK: %[[WTS:.*]] = gpu.alloc  (%[[T]]) {moeq.name = "topk_weights"} : memref<?x2xf32, #gpu.address_space<global>>
// CHECK: %[[XP:.*]] = moeq.kernel_pointer %[[X]] : memref<?x64xf16, #gpu.address_space<global>> -> !llvm.ptr<1>
// CHECK: %[[IDSP:.*]] = moeq.kernel_pointer %[[IDS]]
// CHECK: %[[WTSP:.*]] = moeq.kernel_pointer %[[WTS]]
// CHECK: %[[T32:.*]] = arith.index_cast %[[T]] : index to i32
// CHECK: gpu.launch_func  @moe_route_softmax_e4_k2_norm_h64::@moe_route_softmax_e4_k2_norm_h64 blocks in (%[[T]], %c1, %c1) threads in (%c128, %c1, %c1)  dynamic_shared_memory_size %c52_i32 args(%[[XP]] : !llvm.ptr<1>, %[[R]] : memref<4x64xf32, #gpu.address_space<global>>, %[[IDSP]] : !llvm.ptr<1>, %[[WTSP]] : !llvm.ptr<1>, %[[T32]] : i32)
// CHECK: %[[ROWS:.*]] = arith.muli %[[T]], %c2 : index
// CHECK: %[[OFF:.*]] = gpu.alloc  () {moeq.name = "expert_offsets"} : memref<5xi32, #gpu.address_space<global>>
// CHECK: %[[SLOTS:.*]] = gpu.alloc  (%[[ROWS]]) {moeq.name = "sorted_slots"} : memref<?xi32, #gpu.address_space<global>>
// CHECK: %[[SLOTROWS:.*]] = gpu.alloc  (%[[ROWS]]) {moeq.name = "slot_rows"}
// CHECK: gpu.launch_func  @moe_sort_e4_k2::@moe_sort_e4_k2 blocks in (%c1, %c1, %c1) threads in (%c32, %c1, %c1)  dynamic_shared_memory_size %c16_i32 args(%[[IDSP]] : !llvm.ptr<1>, %[[OFF]] : memref<5xi32, #gpu.address_space<global>>, %{{.*}} : !llvm.ptr<1>, %{{.*}} : !llvm.ptr<1>, %[[T32]] : i32)
// CHECK: %[[SORTED:.*]] = gpu.alloc  (%[[ROWS]]) {moeq.name = "sorted_rows"} : memref<?x64xf16, #gpu.address_space<global>>
// CHECK: gpu.launch_func  @moe_gather_c64_k2::@moe_gather_c64_k2 blocks in (%[[ROWS]], %c1, %c1) threads in (%c128, %c1, %c1)
// CHECK: gpu.launch_func  @[[GATEUP:moe_gemm_n128_k64_e4_0x[0-9a-f]+]]::@[[GATEUP]] blocks in (%c132, %c1, %c1) threads in (%c128, %c1, %c1)  dynamic_shared_memory_size %{{.*}} args(%{{.*}} : !llvm.ptr<1>, %[[OFF]] : memref<5xi32, #gpu.address_space<global>>, %[[TABLE]] : memref<4x3xi64, #gpu.address_space<global>>, %{{.*}} : !llvm.ptr<1>, %{{.*}} : i32)
// CHECK: gpu.launch_func  @[[GATEUP]]::@[[GATEUP]] blocks in (%c132, %c1, %c1)
// CHECK: gpu.launch_func  @moe_act_silu_n128::@moe_act_silu_n128 blocks in (%[[ROWS]], %c1, %c1)
// CHECK: gpu.launch_func  @[[DOWN:moe_gemm_n64_k128_e4_0x[0-9a-f]+]]::@[[DOWN]] blocks in (%c132, %c1, %c1) {{.*}} args(%{{.*}} : !llvm.ptr<1>, %[[OFF]] : memref<5xi32, #gpu.address_space<global>>, %[[DTABLE]] : memref<4x3xi64, #gpu.address_space<global>>,
// CHECK: %[[OUT:.*]] = gpu.alloc  (%[[T]]) {moeq.name = "output"} : memref<?x64xf16, #gpu.address_space<global>>
// CHECK: gpu.launch_func  @moe_combine_h64_k2::@moe_combine_h64_k2 blocks in (%[[T]], %c1, %c1) threads in (%c128, %c1, %c1)  dynamic_shared_memory_size %c0_i32 args(%{{.*}} : !llvm.ptr<1>, %{{.*}} : !llvm.ptr<1>, %[[WTSP]] : !llvm.ptr<1>, %{{.*}} : !llvm.ptr<1>, %[[T32]] : i32)
// CHECK-NEXT: return %[[OUT]]
// The kernels around the GEMMs are built once, as their own gpu.modules.
// CHECK: gpu.module @moe_route_softmax_e4_k2_norm_h64 [#nvvm.target<O = 3, chip = "sm_90">]
// CHECK: gpu.func @moe_route_softmax_e4_k2_norm_h64(%{{.*}}: !llvm.ptr<1>, %{{.*}}: memref<4x64xf32, #gpu.address_space<global>>, %{{.*}}: !llvm.ptr<1>, %{{.*}}: !llvm.ptr<1>, %{{.*}}: i32) kernel
// CHECK: gpu.shuffle  xor
// CHECK: gpu.barrier
// exp became a polynomial: no math ops are left for libdevice.
// CHECK-NOT: math.
// CHECK: gpu.module @moe_sort_e4_k2
module attributes {moeq.target = #moeq.target<"sm_90">} {
func.func @layer(%x: tensor<?x64xf32>) -> tensor<?x64xf32> {
  %r = moeq.param <"model", "router"> : tensor<4x64xbf16>
  %g0 = moeq.param <"quant", "g0"> : !moeq.qweight<128x64, #moeq.scheme<w4a16, g64, asym>>
  %g1 = moeq.param <"quant", "g1"> : !moeq.qweight<128x64, #moeq.scheme<w2a16, g64, asym>>
  %d0 = moeq.param <"quant", "d0"> : !moeq.qweight<64x128, #moeq.scheme<w4a16, g64, asym>>
  %d1 = moeq.param <"quant", "d1"> : !moeq.qweight<64x128, #moeq.scheme<w2a16, g64, asym>>
  %y = moeq.moe %x router %r : tensor<4x64xbf16>
         gate(%g0, %g1, %g0, %g1 : !moeq.qweight<128x64, #moeq.scheme<w4a16, g64, asym>>, !moeq.qweight<128x64, #moeq.scheme<w2a16, g64, asym>>, !moeq.qweight<128x64, #moeq.scheme<w4a16, g64, asym>>, !moeq.qweight<128x64, #moeq.scheme<w2a16, g64, asym>>)
         up(%g0, %g1, %g0, %g1 : !moeq.qweight<128x64, #moeq.scheme<w4a16, g64, asym>>, !moeq.qweight<128x64, #moeq.scheme<w2a16, g64, asym>>, !moeq.qweight<128x64, #moeq.scheme<w4a16, g64, asym>>, !moeq.qweight<128x64, #moeq.scheme<w2a16, g64, asym>>)
         down(%d0, %d1, %d0, %d1 : !moeq.qweight<64x128, #moeq.scheme<w4a16, g64, asym>>, !moeq.qweight<64x128, #moeq.scheme<w2a16, g64, asym>>, !moeq.qweight<64x128, #moeq.scheme<w4a16, g64, asym>>, !moeq.qweight<64x128, #moeq.scheme<w2a16, g64, asym>>)
         {top_k = 2 : i64, scoring = #moeq<scoring softmax>, activation = #moeq<activation silu>}
         : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
}

// -----

// SIMT kernels (here: N = 100 has no whole m16n8 tiles) launch once per
// expert: the expert offsets are copied to the host once, and each launch
// is sized by its expert's rows, its pointers offset to the expert's first
// row.
// CHECK-LABEL: func.func @simt_launch
// CHECK: %[[OFF:.*]] = gpu.alloc  () {moeq.name = "expert_offsets"} : memref<3xi32, #gpu.address_space<global>>
// CHECK: %[[HOST:.*]] = memref.alloc() {moeq.name = "expert_offsets_host"} : memref<3xi32>
// CHECK-NEXT: gpu.memcpy  %[[HOST]], %[[OFF]] : memref<3xi32>, memref<3xi32, #gpu.address_space<global>>
// CHECK-NEXT: %[[S0:.*]] = memref.load %[[HOST]][%c0]
// CHECK-NEXT: %[[START0:.*]] = arith.index_cast %[[S0]] : i32 to index
// CHECK-NEXT: %[[E0:.*]] = memref.load %[[HOST]][%c1]
// CHECK-NEXT: %[[END0:.*]] = arith.index_cast %[[E0]] : i32 to index
// CHECK-NEXT: %[[M0:.*]] = arith.subi %[[END0]], %[[START0]] : index
// CHECK-NEXT: %[[X0:.*]] = moeq.kernel_pointer %{{.*}}[%[[START0]]] : memref<?x64xf16, #gpu.address_space<global>> -> !llvm.ptr<1>
// CHECK-NEXT: %[[Y0:.*]] = moeq.kernel_pointer %{{.*}}[%[[START0]]] : memref<?x100xf16, #gpu.address_space<global>> -> !llvm.ptr<1>
// CHECK-NEXT: %[[M032:.*]] = arith.index_cast %[[M0]] : index to i32
// CHECK-NEXT: gpu.launch_func  @gemm_w4a16g64a_n100_k64_simt::@gemm_w4a16g64a_n100_k64_simt blocks in (%c1, %[[M0]], %c1) threads in (%c128, %c1, %c1)  dynamic_shared_memory_size %c0_i32 args(%[[X0]] : !llvm.ptr<1>, %{{.*}} : memref<100x8xi32, #gpu.address_space<global>>, %{{.*}} : memref<100x1xf16, #gpu.address_space<global>>, %{{.*}} : memref<100x1xf16, #gpu.address_space<global>>, %[[Y0]] : !llvm.ptr<1>, %[[M032]] : i32)
// CHECK: memref.load %[[HOST]][%c2]
// CHECK: gpu.launch_func  @gemm_w4a16g64a_n100_k64_simt
// CHECK-NOT: gpu.memcpy
// CHECK: return
module attributes {moeq.target = #moeq.target<"sm_90">} {
func.func @simt(%x: tensor<?x64xf32>) -> tensor<?x64xf32> {
  %r = moeq.param <"model", "router"> : tensor<2x64xf32>
  %g = moeq.param <"quant", "g"> : !moeq.qweight<100x64, #moeq.scheme<w4a16, g64, asym>>
  %d = moeq.param <"quant", "d"> : !moeq.qweight<64x100, #moeq.scheme<w8a16, per_channel, asym>>
  %y = moeq.moe %x router %r : tensor<2x64xf32>
         gate(%g, %g : !moeq.qweight<100x64, #moeq.scheme<w4a16, g64, asym>>, !moeq.qweight<100x64, #moeq.scheme<w4a16, g64, asym>>)
         up(%g, %g : !moeq.qweight<100x64, #moeq.scheme<w4a16, g64, asym>>, !moeq.qweight<100x64, #moeq.scheme<w4a16, g64, asym>>)
         down(%d, %d : !moeq.qweight<64x100, #moeq.scheme<w8a16, per_channel, asym>>, !moeq.qweight<64x100, #moeq.scheme<w8a16, per_channel, asym>>)
         {top_k = 1 : i64, scoring = #moeq<scoring softmax>, activation = #moeq<activation silu>}
         : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
}

// -----

// A shared expert gated by a sigmoid (Qwen2-MoE): its linears run over
// all T tokens with f16 weights, and the combine adds it.
// CHECK-LABEL: func.func @shared_launch
// CHECK: moeq.device_param <"model", "sg"> : memref<96x64xf16, #gpu.address_space<global>>
// CHECK: moeq.device_param <"model", "gw"> : memref<1x64xf16, #gpu.address_space<global>>
// CHECK: gpu.launch_func  @gemm_f16_n96_k64_{{.*}} args(%[[X:.*]] : !llvm.ptr<1>,
// CHECK: gpu.launch_func  @moe_act_silu_n96::@moe_act_silu_n96 blocks in (%[[T:[a-z0-9_]+]], %c1, %c1)
// CHECK: gpu.launch_func  @gemm_f16_n1_k64_simt::@gemm_f16_n1_k64_simt blocks in (%c1, %[[T]], %c1)
// CHECK: gpu.launch_func  @moe_combine_h64_k1_shared_gated::@moe_combine_h64_k1_shared_gated
module attributes {moeq.target = #moeq.target<"sm_90">} {
func.func @shared(%x: tensor<?x64xf32>) -> tensor<?x64xf32> {
  %r = moeq.param <"model", "router"> : tensor<2x64xf32>
  %g = moeq.param <"quant", "g"> : !moeq.qweight<128x64, #moeq.scheme<w4a16, g64, asym>>
  %d = moeq.param <"quant", "d"> : !moeq.qweight<64x128, #moeq.scheme<w4a16, g64, asym>>
  %sg = moeq.param <"model", "sg"> : tensor<96x64xbf16>
  %su = moeq.param <"model", "su"> : tensor<96x64xbf16>
  %sd = moeq.param <"model", "sd"> : tensor<64x96xbf16>
  %gw = moeq.param <"model", "gw"> : tensor<1x64xbf16>
  %y = moeq.moe %x router %r : tensor<2x64xf32>
         gate(%g, %g : !moeq.qweight<128x64, #moeq.scheme<w4a16, g64, asym>>, !moeq.qweight<128x64, #moeq.scheme<w4a16, g64, asym>>)
         up(%g, %g : !moeq.qweight<128x64, #moeq.scheme<w4a16, g64, asym>>, !moeq.qweight<128x64, #moeq.scheme<w4a16, g64, asym>>)
         down(%d, %d : !moeq.qweight<64x128, #moeq.scheme<w4a16, g64, asym>>, !moeq.qweight<64x128, #moeq.scheme<w4a16, g64, asym>>)
         shared(%sg, %su, %sd : tensor<96x64xbf16>, tensor<96x64xbf16>, tensor<64x96xbf16>)
         shared_expert_gate %gw : tensor<1x64xbf16>
         {top_k = 1 : i64, scoring = #moeq<scoring softmax>, activation = #moeq<activation silu>}
         : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
}

// -----

// w8a8: the activations of the sorted rows are quantized per token by
// their own kernel, whose codes and scales the persistent GEMM reads.
// CHECK-LABEL: func.func @w8a8_launch
// CHECK: %[[XQ:.*]] = gpu.alloc  (%[[ROWS:[a-z0-9_]+]]) {moeq.name = "activation_codes"} : memref<?x64xi8, #gpu.address_space<global>>
// CHECK: %[[XS:.*]] = gpu.alloc  (%[[ROWS]]) {moeq.name = "activation_scales"} : memref<?xf32, #gpu.address_space<global>>
// CHECK: gpu.launch_func  @quant_a8_k64::@quant_a8_k64 blocks in (%[[ROWS]], %c1, %c1) threads in (%c32, %c1, %c1)
// CHECK: gpu.launch_func  @moe_gemm_n128_k64_e2_{{.*}} args(%{{.*}} : !llvm.ptr<1>, %{{.*}} : !llvm.ptr<1>, %{{.*}} : memref<3xi32, #gpu.address_space<global>>,
module attributes {moeq.target = #moeq.target<"sm_90">} {
func.func @w8a8(%x: tensor<?x64xf32>) -> tensor<?x64xf32> {
  %r = moeq.param <"model", "router"> : tensor<2x64xf32>
  %g = moeq.param <"quant", "g"> : !moeq.qweight<128x64, #moeq.scheme<w8a8, per_channel, sym>>
  %d = moeq.param <"quant", "d"> : !moeq.qweight<64x128, #moeq.scheme<w8a8, per_channel, sym>>
  %y = moeq.moe %x router %r : tensor<2x64xf32>
         gate(%g, %g : !moeq.qweight<128x64, #moeq.scheme<w8a8, per_channel, sym>>, !moeq.qweight<128x64, #moeq.scheme<w8a8, per_channel, sym>>)
         up(%g, %g : !moeq.qweight<128x64, #moeq.scheme<w8a8, per_channel, sym>>, !moeq.qweight<128x64, #moeq.scheme<w8a8, per_channel, sym>>)
         down(%d, %d : !moeq.qweight<64x128, #moeq.scheme<w8a8, per_channel, sym>>, !moeq.qweight<64x128, #moeq.scheme<w8a8, per_channel, sym>>)
         {top_k = 1 : i64, scoring = #moeq<scoring softmax>, activation = #moeq<activation silu>}
         : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
}


// -----

// Routing weights on the expert inputs (Llama 4): the gather scales each
// sorted copy by its weight (the router's weights buffer), and the combine
// sums unweighted (no weights argument).
// CHECK-LABEL: func.func @weights_on_inputs_launch
// CHECK: %[[WTS:.*]] = gpu.alloc  (%{{.*}}) {moeq.name = "topk_weights"}
// CHECK: %[[WTSP:.*]] = moeq.kernel_pointer %[[WTS]]
// CHECK: gpu.launch_func  @moe_gather_scaled_c64_k1::@moe_gather_scaled_c64_k1 blocks in (%{{.*}}, %c1, %c1) threads in (%c128, %c1, %c1)  dynamic_shared_memory_size %c0_i32 args(%{{.*}} : !llvm.ptr<1>, %{{.*}} : !llvm.ptr<1>, %[[WTSP]] : !llvm.ptr<1>, %{{.*}} : !llvm.ptr<1>, %{{.*}} : i32)
// CHECK: gpu.launch_func  @moe_combine_h64_k1_unweighted_shared::@moe_combine_h64_k1_unweighted_shared blocks in (%{{.*}}, %c1, %c1) threads in (%c128, %c1, %c1)  dynamic_shared_memory_size %c0_i32 args(%{{.*}} : !llvm.ptr<1>, %{{.*}} : !llvm.ptr<1>, %{{.*}} : !llvm.ptr<1>, %{{.*}} : !llvm.ptr<1>, %{{.*}} : i32)
module attributes {moeq.target = #moeq.target<"sm_90">} {
func.func @weights_on_inputs(%x: tensor<?x64xf32>) -> tensor<?x64xf32> {
  %r = moeq.param <"model", "router"> : tensor<2x64xf32>
  %g = moeq.param <"quant", "g"> : !moeq.qweight<128x64, #moeq.scheme<w4a16, g64, asym>>
  %d = moeq.param <"quant", "d"> : !moeq.qweight<64x128, #moeq.scheme<w4a16, g64, asym>>
  %sg = moeq.param <"model", "sg"> : tensor<96x64xbf16>
  %sd = moeq.param <"model", "sd"> : tensor<64x96xbf16>
  %y = moeq.moe %x router %r : tensor<2x64xf32>
         gate(%g, %g : !moeq.qweight<128x64, #moeq.scheme<w4a16, g64, asym>>, !moeq.qweight<128x64, #moeq.scheme<w4a16, g64, asym>>)
         up(%g, %g : !moeq.qweight<128x64, #moeq.scheme<w4a16, g64, asym>>, !moeq.qweight<128x64, #moeq.scheme<w4a16, g64, asym>>)
         down(%d, %d : !moeq.qweight<64x128, #moeq.scheme<w4a16, g64, asym>>, !moeq.qweight<64x128, #moeq.scheme<w4a16, g64, asym>>)
         shared(%sg, %sg, %sd : tensor<96x64xbf16>, tensor<96x64xbf16>, tensor<64x96xbf16>)
         {top_k = 1 : i64, scoring = #moeq<scoring sigmoid>, activation = #moeq<activation silu>,
          norm_topk_prob = false, weights_on_inputs}
         : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
}

// -----

// gpt-oss: the router kernel takes the router bias; every grouped GEMM is
// followed by the bias kernel, which finds each row's expert in the offsets
// and its f32 bias through a table of addresses (the interleaved gate/up
// bias slices uploaded as device parameters); the clamped SwiGLU kernel.
// CHECK-LABEL: func.func @gpt_oss_launch
// CHECK: %[[RB:.*]] = moeq.device_param <"model", "router_bias"> : memref<2xf32, #gpu.address_space<global>>
// CHECK: %[[B0:.*]] = moeq.device_param <"model", "gate_up_bias" index 0 rows [0, 128] step 2> : memref<128xf32, #gpu.address_space<global>>
// CHECK: %[[B1:.*]] = moeq.device_param <"model", "gate_up_bias" index 1 rows [0, 128] step 2> : memref<128xf32, #gpu.address_space<global>>
// CHECK: %[[GT:.*]] = moeq.device_address_table(%[[B0]], %[[B1]]) rows [1, 1]
// CHECK: gpu.launch_func  @moe_route_softmax_e2_k1_lbias_norm_h64::@moe_route_softmax_e2_k1_lbias_norm_h64 {{.*}} args(%{{.*}} : !llvm.ptr<1>, %{{.*}} : memref<2x64xf32, #gpu.address_space<global>>, %[[RB]] : memref<2xf32, #gpu.address_space<global>>,
// CHECK: %[[OFF:.*]] = gpu.alloc  () {moeq.name = "expert_offsets"}
// CHECK: gpu.launch_func  @moe_gemm_n128_k64_e2_{{.*}} args(%{{.*}} : !llvm.ptr<1>, %[[OFF]] : memref<3xi32, #gpu.address_space<global>>, %{{.*}} : memref<2x3xi64, #gpu.address_space<global>>, %[[Y:.*]] : !llvm.ptr<1>, %[[R:.*]] : i32)
// CHECK-NEXT: gpu.launch_func  @moe_bias_n128_e2::@moe_bias_n128_e2 blocks in (%{{.*}}, %c1, %c1) threads in (%c128, %c1, %c1)  dynamic_shared_memory_size %c0_i32 args(%[[Y]] : !llvm.ptr<1>, %[[OFF]] : memref<3xi32, #gpu.address_space<global>>, %[[GT]] : memref<2x3xi64, #gpu.address_space<global>>, %[[R]] : i32)
// CHECK: gpu.launch_func  @moe_act_clamped_swiglu_n128_c{{[0-9a-f]+}}::
// CHECK: gpu.launch_func  @moe_bias_n64_e2::@moe_bias_n64_e2
module attributes {moeq.target = #moeq.target<"sm_90">} {
func.func @gpt_oss(%x: tensor<?x64xf32>) -> tensor<?x64xf32> {
  %r = moeq.param <"model", "router"> : tensor<2x64xf32>
  %rb = moeq.param <"model", "router_bias"> : tensor<2xf32>
  %g = moeq.param <"quant", "g"> : !moeq.qweight<128x64, #moeq.scheme<w4a16, g64, asym>>
  %d = moeq.param <"quant", "d"> : !moeq.qweight<64x128, #moeq.scheme<w4a16, g64, asym>>
  %b0 = moeq.param <"model", "gate_up_bias" index 0 rows [0, 128] step 2> : tensor<128xbf16>
  %b1 = moeq.param <"model", "gate_up_bias" index 1 rows [0, 128] step 2> : tensor<128xbf16>
  %bh = moeq.param <"model", "down_bias" index 0> : tensor<64xbf16>
  %y = moeq.moe %x router %r : tensor<2x64xf32>
         gate(%g, %g : !moeq.qweight<128x64, #moeq.scheme<w4a16, g64, asym>>, !moeq.qweight<128x64, #moeq.scheme<w4a16, g64, asym>>)
         up(%g, %g : !moeq.qweight<128x64, #moeq.scheme<w4a16, g64, asym>>, !moeq.qweight<128x64, #moeq.scheme<w4a16, g64, asym>>)
         down(%d, %d : !moeq.qweight<64x128, #moeq.scheme<w4a16, g64, asym>>, !moeq.qweight<64x128, #moeq.scheme<w4a16, g64, asym>>)
         router_bias %rb : tensor<2xf32>
         bias gate(%b0, %b1 : tensor<128xbf16>, tensor<128xbf16>) up(%b1, %b0 : tensor<128xbf16>, tensor<128xbf16>) down(%bh, %bh : tensor<64xbf16>, tensor<64xbf16>)
         {top_k = 1 : i64, scoring = #moeq<scoring softmax>, activation = #moeq<activation clamped_swiglu>}
         : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
}
