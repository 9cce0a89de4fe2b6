// RUN: moeq-opt %s -moeq-convert-to-linalg -verify-diagnostics

func.func @layer(%x: tensor<?x64xf32>) -> tensor<?x64xf32> {
  %r = moeq.param <"model", "router"> : tensor<1x64xf32>
  %w = moeq.param <"model", "w"> : tensor<128x64xf32>
  %d = moeq.param <"model", "d"> : tensor<64x128xf32>
  // expected-error @+1 {{run moeq-decompose-moe before the CPU lowering}}
  %y = moeq.moe %x router %r : tensor<1x64xf32> gate(%w : tensor<128x64xf32>) up(%w : tensor<128x64xf32>) down(%d : tensor<64x128xf32>)
         {top_k = 1 : i64, scoring = #moeq<scoring softmax>, activation = #moeq<activation silu>} : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
