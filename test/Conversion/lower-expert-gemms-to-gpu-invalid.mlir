// RUN: not moeq-opt %s -moeq-lower-expert-gemms-to-gpu="chip=sm_75" 2>&1 | FileCheck %s
// CHECK: unknown GPU architecture 'sm_75' (known: sm_80, sm_86, sm_89, sm_90, sm_90a, sm_100)
func.func @f() {
  return
}
