// RUN: moeq-opt %s -split-input-file -moeq-set-target="chip=sm_90" | FileCheck %s
// RUN: moeq-opt %s -split-input-file -moeq-set-target="chip=sm_7x" -verify-diagnostics -o /dev/null

// CHECK-LABEL: module attributes {moeq.target = #moeq.target<"sm_90">}
// expected-error @+1 {{unknown GPU architecture 'sm_7x' (known: sm_80, sm_86, sm_89, sm_90, sm_90a, sm_100)}}
module {
  func.func @empty() {
    return
  }
}

// -----

// An earlier target is replaced.
// CHECK-LABEL: module attributes {moeq.target = #moeq.target<"sm_90">}
// CHECK-NOT: sm_80
// expected-error @+1 {{unknown GPU architecture 'sm_7x' (known: sm_80, sm_86, sm_89, sm_90, sm_90a, sm_100)}}
module attributes {moeq.target = #moeq.target<"sm_80">} {
  func.func @empty() {
    return
  }
}
