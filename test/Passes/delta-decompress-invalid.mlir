// RUN: moeq-opt %s -split-input-file -verify-diagnostics -moeq-delta-decompress="output=%t.safetensors merge=mean whiten=false" -o /dev/null

// Experts with biases (gpt-oss) are not decomposed: a shared base with
// low-rank deltas would drop them.
module attributes {moeq.archives = {model = "unused"}} {
func.func @biased(%x: tensor<?x64xf32>) -> tensor<?x64xf32> attributes {moeq.layer = 0 : i64} {
  %r = moeq.param <"model", "router"> : tensor<2x64xf32>
  %w = moeq.param <"model", "w"> : tensor<128x64xf32>
  %d = moeq.param <"model", "d"> : tensor<64x128xf32>
  %bi = moeq.param <"model", "bi"> : tensor<128xf32>
  %bh = moeq.param <"model", "bh"> : tensor<64xf32>
  // expected-error @+1 {{moeq-delta-decompress does not support experts with biases (gpt-oss) yet}}
  %y = moeq.moe %x router %r : tensor<2x64xf32>
         gate(%w, %w : tensor<128x64xf32>, tensor<128x64xf32>)
         up(%w, %w : tensor<128x64xf32>, tensor<128x64xf32>)
         down(%d, %d : tensor<64x128xf32>, tensor<64x128xf32>)
         bias gate(%bi, %bi : tensor<128xf32>, tensor<128xf32>) up(%bi, %bi : tensor<128xf32>, tensor<128xf32>) down(%bh, %bh : tensor<64xf32>, tensor<64xf32>)
         {top_k = 1 : i64, scoring = #moeq<scoring softmax>, activation = #moeq<activation clamped_swiglu>}
         : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
}
