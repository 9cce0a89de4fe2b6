// RUN: moeq-opt %s -split-input-file -moeq-allocate-bits="avg-bits=2.5" -verify-diagnostics
// RUN: not moeq-opt %s -moeq-allocate-bits="granularity=column" 2>&1 | FileCheck %s --check-prefix=GRANULARITY
// RUN: not moeq-opt %s -moeq-allocate-bits="r=1.5" 2>&1 | FileCheck %s --check-prefix=R
// RUN: not moeq-opt %s -moeq-allocate-bits="gpu=v100" 2>&1 | FileCheck %s --check-prefix=GPU
// RUN: not moeq-opt %s -moeq-allocate-bits="avg-bits=0" 2>&1 | FileCheck %s --check-prefix=BUDGET
// RUN: not moeq-opt %s -moeq-allocate-bits="solver=greedy" 2>&1 | FileCheck %s --check-prefix=SOLVER

// Choices are enums (PassEnums.td): the option parser refuses other values.
// GRANULARITY: for the --granularity option: Cannot find option named 'column'!
// R: r must be in [0, 1], got 1.5
// GPU: unknown GPU 'v100' for the cost model (known: a100, h100, h200, rtx4090)
// BUDGET: avg-bits and tokens must be positive
// SOLVER: for the --solver option: Cannot find option named 'greedy'!

func.func @no_sensitivity(%x: tensor<?x64xf32>, %r: tensor<1x64xbf16>, %g: tensor<128x64xbf16>, %d: tensor<64x128xbf16>) -> tensor<?x64xf32> {
  // expected-error @+1 {{no 'moeq.sensitivity' attribute: run moeq-estimate-sensitivity first}}
  %y = moeq.moe %x router %r : tensor<1x64xbf16> gate(%g : tensor<128x64xbf16>) up(%g : tensor<128x64xbf16>) down(%d : tensor<64x128xbf16>)
         {top_k = 1 : i64, scoring = #moeq<scoring softmax>, activation = #moeq<activation silu>} : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// The least budget: every weight at w2 g32, 3 bits.
func.func @impossible_budget(%x: tensor<?x64xf32>, %r: tensor<1x64xbf16>, %g: tensor<128x64xbf16>, %d: tensor<64x128xbf16>) -> tensor<?x64xf32> attributes {moeq.layer = 2 : i64} {
  // expected-error @+1 {{layer 2: the memory budget of 2.500 average bits cannot be met: the smallest candidate of every block needs 3.000 average bits}}
  %y = moeq.moe %x router %r : tensor<1x64xbf16> gate(%g : tensor<128x64xbf16>) up(%g : tensor<128x64xbf16>) down(%d : tensor<64x128xbf16>)
         {top_k = 1 : i64, scoring = #moeq<scoring softmax>, activation = #moeq<activation silu>,
          moeq.sensitivity = {schemes = [#moeq.scheme<w4a16, g32, asym>, #moeq.scheme<w2a16, g32, asym>],
                              loss = "weight", routed_share = array<f64: 1.0>,
                              gate = dense<[[1.0, 2.0]]> : tensor<1x2xf64>, up = dense<[[1.0, 2.0]]> : tensor<1x2xf64>,
                              down = dense<[[1.0, 2.0]]> : tensor<1x2xf64>}} : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

func.func @missing_table(%x: tensor<?x64xf32>, %r: tensor<1x64xbf16>, %g: tensor<128x64xbf16>, %d: tensor<64x128xbf16>) -> tensor<?x64xf32> {
  // expected-error @+1 {{'moeq.sensitivity' has no down losses of shape [weights, 2]}}
  %y = moeq.moe %x router %r : tensor<1x64xbf16> gate(%g : tensor<128x64xbf16>) up(%g : tensor<128x64xbf16>) down(%d : tensor<64x128xbf16>)
         {top_k = 1 : i64, scoring = #moeq<scoring softmax>, activation = #moeq<activation silu>,
          moeq.sensitivity = {schemes = [#moeq.scheme<w4a16, g32, asym>, #moeq.scheme<w2a16, g32, asym>],
                              loss = "weight", routed_share = array<f64: 1.0>,
                              gate = dense<[[1.0, 2.0]]> : tensor<1x2xf64>, up = dense<[[1.0, 2.0]]> : tensor<1x2xf64>}} : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// A scheme no weight can use is no candidate; a block without any fails.
func.func @nothing_fits(%x: tensor<?x64xf32>, %r: tensor<1x64xbf16>, %g: tensor<128x64xbf16>, %d: tensor<64x128xbf16>) -> tensor<?x64xf32> {
  // expected-error @+1 {{no candidate scheme can store the gate weight operand}}
  %y = moeq.moe %x router %r : tensor<1x64xbf16> gate(%g : tensor<128x64xbf16>) up(%g : tensor<128x64xbf16>) down(%d : tensor<64x128xbf16>)
         {top_k = 1 : i64, scoring = #moeq<scoring softmax>, activation = #moeq<activation silu>,
          moeq.sensitivity = {schemes = [#moeq.scheme<w4a16, g128, asym>],
                              loss = "weight", routed_share = array<f64: 1.0>,
                              gate = dense<[[-1.0]]> : tensor<1x1xf64>, up = dense<[[-1.0]]> : tensor<1x1xf64>,
                              down = dense<[[1.0]]> : tensor<1x1xf64>}} : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
