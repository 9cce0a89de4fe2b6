// RUN: moeq-opt %s -split-input-file -verify-diagnostics -moeq-convert-to-launch-plan

// A layer whose GEMMs have no kernels yet cannot be launched.
module attributes {moeq.target = #moeq.target<"sm_90">} {
func.func @no_kernels(%x: tensor<?x64xf32>) -> tensor<?x64xf32> {
  %r = moeq.param <"model", "r"> : tensor<1x64xf32>
  %w = moeq.param <"quant", "w"> : !moeq.qweight<64x64, #moeq.scheme<w4a16, g64, asym>>
  %i, %wt = moeq.router %x, %r {top_k = 1 : i64, scoring = #moeq<scoring softmax>}
      : tensor<?x64xf32>, tensor<1x64xf32> -> tensor<?x1xi32>, tensor<?x1xf32>
  %s, %p, %o = moeq.dispatch %x, %i {num_experts = 1 : i64}
      : tensor<?x64xf32>, tensor<?x1xi32> -> tensor<?x64xf32>, tensor<?xi32>, tensor<2xi32>
  // expected-error @+1 {{has no kernels: run moeq-lower-expert-gemms-to-gpu first}}
  %y = moeq.grouped_matmul %s, %o weights(%w : !moeq.qweight<64x64, #moeq.scheme<w4a16, g64, asym>>)
      : tensor<?x64xf32>, tensor<2xi32> -> tensor<?x64xf32>
  %c = moeq.combine %y, %p, %wt : tensor<?x64xf32>, tensor<?xi32>, tensor<?x1xf32> -> tensor<?x64xf32>
  return %c : tensor<?x64xf32>
}
}

// -----

// expected-error @+1 {{no 'moeq.target' attribute: run moeq-lower-expert-gemms-to-gpu first}}
module {
func.func @no_target(%x: tensor<?x64xf32>) -> tensor<?x64xf32> {
  return %x : tensor<?x64xf32>
}
}

// -----

module attributes {moeq.target = #moeq.target<"sm_90">} {
// expected-error @+1 {{a MoE layer function takes one T x hidden tensor}}
func.func @two_inputs(%x: tensor<?x64xf32>, %i: tensor<?x1xi32>, %wt: tensor<?x1xf32>) -> tensor<?x64xf32> {
  %s, %p, %o = moeq.dispatch %x, %i {num_experts = 1 : i64}
      : tensor<?x64xf32>, tensor<?x1xi32> -> tensor<?x64xf32>, tensor<?xi32>, tensor<2xi32>
  %c = moeq.combine %s, %p, %wt : tensor<?x64xf32>, tensor<?xi32>, tensor<?x1xf32> -> tensor<?x64xf32>
  return %c : tensor<?x64xf32>
}
}
