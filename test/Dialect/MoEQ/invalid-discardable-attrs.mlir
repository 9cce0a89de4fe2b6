// The dialect's discardable attributes (MoEQBase.td `discardableAttrs`):
// each has a type and a place, and other `moeq.` attributes are refused.
// RUN: moeq-opt %s -split-input-file -verify-diagnostics

// expected-error @+1 {{unknown moeq attribute 'moeq.layr'}}
func.func private @typo() attributes {moeq.layr = 3 : i64}

// -----

// expected-error @+1 {{'moeq.layer' must be a non-negative integer, got -1 : i64}}
func.func private @negative_layer() attributes {moeq.layer = -1 : i64}

// -----

// expected-error @+1 {{'moeq.layer' must be a non-negative integer, got "3"}}
func.func private @string_layer() attributes {moeq.layer = "3"}

// -----

// expected-error @+1 {{'moeq.target' belongs on a module}}
func.func private @target_on_function() attributes {moeq.target = #moeq.target<"sm_90">}

// -----

// expected-error @+1 {{'moeq.target' must be a #moeq.target, got "sm_90"}}
module attributes {moeq.target = "sm_90"} {}

// -----

// expected-error @+1 {{'moeq.archives' must be a dictionary of paths (strings), got {model = 3 : i64}}}
module attributes {moeq.archives = {model = 3 : i64}} {}

// -----

// expected-error @+1 {{'moeq.model' must be a dictionary, got [1]}}
module attributes {moeq.model = [1]} {}

// -----

// expected-error @+1 {{'moeq.passthrough' must be an array of #moeq.param, got ["model.norm.weight"]}}
module attributes {moeq.passthrough = ["model.norm.weight"]} {}

// -----

// expected-error @+1 {{'moeq.model_allocation' belongs on a module}}
func.func private @model_allocation() attributes {moeq.model_allocation = {}}

// -----

// expected-error @+1 {{'moeq.allocation' belongs on a function}}
module attributes {moeq.allocation = {}} {}

// -----

// expected-error @+1 {{'moeq.delta' must be a dictionary, got 4.000000e-01 : f64}}
func.func private @delta() attributes {moeq.delta = 0.4}

// -----

// expected-error @+1 {{'moeq.launch_plan' must be a symbol reference, got "moe_layer_0"}}
func.func private @launch() attributes {moeq.launch_plan = "moe_layer_0"}

// -----

func.func @sensitivity(%x: tensor<8x64xf32>) -> tensor<8x64xf32> {
  // expected-error @+1 {{'moeq.sensitivity' belongs on a moeq.moe}}
  %y = arith.addf %x, %x {moeq.sensitivity = {}} : tensor<8x64xf32>
  return %y : tensor<8x64xf32>
}

// -----

func.func @rows(%x: tensor<8x64xf32>, %o: tensor<3xi32>, %w: tensor<128x64xf32>) {
  // expected-error @+1 {{'moeq.rows_per_expert' must be a positive integer, got 0 : i64}}
  %y = moeq.grouped_matmul %x, %o weights(%w, %w : tensor<128x64xf32>, tensor<128x64xf32>) {moeq.rows_per_expert = 0 : i64} : tensor<8x64xf32>, tensor<3xi32> -> tensor<8x128xf32>
  return
}

// -----

func.func @persistent(%x: tensor<8x64xf32>) -> tensor<8x64xf32> {
  // expected-error @+1 {{'moeq.persistent' belongs on a moeq.grouped_matmul}}
  %y = arith.addf %x, %x {moeq.persistent} : tensor<8x64xf32>
  return %y : tensor<8x64xf32>
}

// -----

func.func @sources(%x: tensor<8x64xf32>, %o: tensor<3xi32>, %w: tensor<128x64xf32>) {
  // expected-error @+1 {{'moeq.delta_sources' must be an array of #moeq.param or unit, got [1, 2]}}
  %y = moeq.grouped_matmul %x, %o weights(%w, %w : tensor<128x64xf32>, tensor<128x64xf32>) {moeq.delta_sources = [1, 2]} : tensor<8x64xf32>, tensor<3xi32> -> tensor<8x128xf32>
  return
}

// -----

func.func @buffer_name() {
  // expected-error @+1 {{'moeq.name' must be a string, got 1 : i64}}
  %b = memref.alloc() {moeq.name = 1} : memref<4xf32>
  return
}

// -----

func.func @hessian() {
  // expected-error @+1 {{'moeq.hessian' belongs on a moeq.param}}
  %b = memref.alloc() {moeq.hessian = #moeq.param<"stats", "h">} : memref<4xf32>
  return
}

// -----

// Function arguments of the CPU lowering.
// expected-error @+1 {{'moeq.param' must be a #moeq.param, got "model.w" (argument 0 of region 0)}}
func.func @arg_param(%w: memref<4xf32> {moeq.param = "model.w"}) {
  return
}

// -----

// expected-error @+1 {{'moeq.trace' must be a string, got unit (argument 0 of region 0)}}
func.func @arg_trace(%w: memref<4xf32> {moeq.trace}) {
  return
}

// -----

// expected-error @+1 {{unknown moeq attribute 'moeq.input' (argument 0 of region 0)}}
func.func @arg_unknown(%w: memref<4xf32> {moeq.input}) {
  return
}

// -----

func.func @pipeline_stages_place(%x: tensor<8x64xf32>) -> tensor<8x64xf32> {
  // expected-error @+1 {{'moeq.pipeline_stages' belongs on an scf.for}}
  %y = arith.addf %x, %x {moeq.pipeline_stages = 3 : i64} : tensor<8x64xf32>
  return %y : tensor<8x64xf32>
}

// -----

func.func @pipeline_stages_depth(%i: index) {
  // expected-error @+1 {{'moeq.pipeline_stages' must be a stage count of at least 2}}
  scf.for %k = %i to %i step %i {
  } {moeq.pipeline_stages = 1 : i64}
  return
}
