// RUN: moeq-opt %s -split-input-file -verify-diagnostics -moeq-pipeline-tile-loads | FileCheck %s

// 8 K steps over 3 stages. The prologue copies steps 0 and 1, one group
// each; the loop waits for step k (one group, k + 1, left pending), syncs,
// copies step k + 2 (predicated off for the last two steps, the address
// clamped by the loop's own min) and computes step k; the stage index
// both sides use is duplicated rather than carried. After the loop every
// copy is drained.
// CHECK-LABEL: func.func @three_stages
// CHECK-SAME: (%[[SRC:.*]]: memref<?x256xf16, 1>, %[[TILES:.*]]: memref<3x16x40xf16, 3>, %[[ROWS:.*]]: index, %[[M0:.*]]: index, %[[B:.*]]: vector<2x2xf16>)
// CHECK: moeq.load_tile_async %[[SRC]][%[[M0]], %{{.*}}] bound %[[ROWS]] into %[[TILES]][%{{.*}}] {
// CHECK: %[[G0:.*]] = nvgpu.device_async_create_group
// CHECK: moeq.load_tile_async %[[SRC]][%[[M0]], %{{.*}}] bound %[[ROWS]] into %[[TILES]][%{{.*}}] {
// CHECK: %[[G1:.*]] = nvgpu.device_async_create_group
// CHECK: %[[LOOP:.*]]:3 = scf.for %[[K:.*]] = %c0 to %c8 step %c1 iter_args(%{{.*}} = %{{.*}}, %[[P0:.*]] = %[[G0]], %[[P1:.*]] = %[[G1]]) -> (vector<2x2xf32>, !nvgpu.device.async.token, !nvgpu.device.async.token)
// CHECK: %[[MORE:.*]] = arith.cmpi slt, %[[K]], %{{.*}} : index
// CHECK: nvgpu.device_async_wait %[[P0]] {numGroups = 1 : i32}
// CHECK-NEXT: gpu.barrier
// CHECK: %[[AHEAD:.*]] = arith.addi %[[K]], %{{.*}} : index
// CHECK: %[[CLAMPED:.*]] = arith.minui %[[AHEAD]], %c7
// CHECK: %[[COL:.*]] = arith.muli %[[CLAMPED]], %c32
// CHECK: %[[AHEAD2:.*]] = arith.addi %[[K]], %{{.*}} : index
// CHECK: %[[NEXTSTAGE:.*]] = arith.remui %[[AHEAD2]], %c3
// CHECK: moeq.load_tile_async %[[SRC]][%[[M0]], %[[COL]]] bound %[[ROWS]] into %[[TILES]][%[[NEXTSTAGE]]] if %[[MORE]]
// CHECK: %[[G:.*]] = nvgpu.device_async_create_group
// CHECK: %[[CURRENT:.*]] = arith.addi %[[K]], %{{.*}} : index
// CHECK: %[[STAGE:.*]] = arith.remui %[[CURRENT]], %c3
// CHECK: %[[A:.*]] = nvgpu.ldmatrix %[[TILES]][%[[STAGE]], %c0, %c0]
// CHECK: %[[ACC:.*]] = moeq.mma_tile(%[[A]]) x(%[[B]])
// CHECK: scf.yield %[[ACC]], %[[P1]], %[[G]]
// CHECK-NOT: moeq.pipeline_stages
// CHECK: nvgpu.device_async_wait %[[LOOP]]#2 {numGroups = 0 : i32}
// CHECK: return %[[LOOP]]#0
func.func @three_stages(%src: memref<?x256xf16, 1>, %tiles: memref<3x16x40xf16, 3>,
                        %rows: index, %m0: index, %b: vector<2x2xf16>) -> vector<2x2xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c3 = arith.constant 3 : index
  %c7 = arith.constant 7 : index
  %c8 = arith.constant 8 : index
  %c32 = arith.constant 32 : index
  %init = arith.constant dense<0.0> : vector<2x2xf32>
  %r = scf.for %k = %c0 to %c8 step %c1 iter_args(%acc = %init) -> vector<2x2xf32> {
    %last = arith.minui %k, %c7 : index
    %col = arith.muli %last, %c32 : index
    %stage = arith.remui %k, %c3 : index
    moeq.load_tile_async %src[%m0, %col] bound %rows into %tiles[%stage]
        {columns = 32 : i64, chunk = 8 : i64, threads = 64 : i64}
        : memref<?x256xf16, 1>, memref<3x16x40xf16, 3>
    %g = nvgpu.device_async_create_group
    nvgpu.device_async_wait %g {numGroups = 0 : i32}
    gpu.barrier
    %a = nvgpu.ldmatrix %tiles[%stage, %c0, %c0] {numTiles = 4 : i32, transpose = false}
        : memref<3x16x40xf16, 3> -> vector<4x2xf16>
    %next = moeq.mma_tile (%a) x (%b) + (%acc) {mma_shape = array<i64: 16, 8, 16>}
        : (vector<4x2xf16>) x (vector<2x2xf16>) + (vector<2x2xf32>)
    scf.yield %next : vector<2x2xf32>
  } {moeq.pipeline_stages = 3 : i64}
  return %r : vector<2x2xf32>
}

// -----

// The wgmma kernels' math has a barrier of its own (between writing the
// dequantised weights to shared memory and the wgmmas reading them): only
// the barrier right after the wait moves before the next copies; the
// other stays between the stores and the MMAs.
// CHECK-LABEL: func.func @barrier_in_the_math
// CHECK: scf.for
// CHECK: nvgpu.device_async_wait %{{.*}} {numGroups = 0 : i32}
// CHECK-NEXT: gpu.barrier
// CHECK: moeq.load_tile_async {{.*}} if %{{.*}}
// CHECK: nvgpu.device_async_create_group
// CHECK: vector.store
// CHECK-NEXT: nvvm.fence.proxy
// CHECK-NEXT: gpu.barrier
// CHECK-NEXT: moeq.warpgroup_mma
// CHECK: scf.yield
func.func @barrier_in_the_math(%src: memref<?x256xf16, 1>, %a: memref<2x8x4x8x8xf16, 3>,
                               %w: memref<1x1x4x8x8xf16, 3>, %rows: index, %m0: index,
                               %v: vector<8xf16>) -> vector<2x2xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c4 = arith.constant 4 : index
  %c32 = arith.constant 32 : index
  %init = arith.constant dense<0.0> : vector<2x2xf32>
  %r = scf.for %k = %c0 to %c4 step %c1 iter_args(%acc = %init) -> vector<2x2xf32> {
    %col = arith.muli %k, %c32 : index
    %stage = arith.remui %k, %c2 : index
    moeq.load_tile_async %src[%m0, %col] bound %rows into %a[%stage]
        {columns = 32 : i64, chunk = 8 : i64, threads = 128 : i64}
        : memref<?x256xf16, 1>, memref<2x8x4x8x8xf16, 3>
    %g = nvgpu.device_async_create_group
    nvgpu.device_async_wait %g {numGroups = 0 : i32}
    gpu.barrier
    vector.store %v, %w[%c0, %c0, %c0, %c0, %c0] : memref<1x1x4x8x8xf16, 3>, vector<8xf16>
    nvvm.fence.proxy {kind = #nvvm.proxy_kind<async.shared>, space = #nvvm.shared_space<cta>}
    gpu.barrier
    %next = moeq.warpgroup_mma %a[%stage, %c0] x %w[%c0, %c0] + (%acc)
        : memref<2x8x4x8x8xf16, 3>, memref<1x1x4x8x8xf16, 3>, (vector<2x2xf32>)
    scf.yield %next : vector<2x2xf32>
  } {moeq.pipeline_stages = 2 : i64}
  return %r : vector<2x2xf32>
}

// -----

// One K step cannot use 4 stages: it pipelines over 2 (trip count + 1),
// so the prologue copies only the step there is and the wait leaves no
// group pending.
// CHECK-LABEL: func.func @fewer_steps_than_stages
// CHECK-COUNT-1: moeq.load_tile_async
// CHECK: scf.for
// CHECK: nvgpu.device_async_wait %{{.*}} {numGroups = 0 : i32}
// CHECK-NEXT: gpu.barrier
// CHECK: moeq.load_tile_async {{.*}} if %{{.*}}
func.func @fewer_steps_than_stages(%src: memref<?x256xf16, 1>, %tiles: memref<4x16x40xf16, 3>,
                                   %rows: index, %m0: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  scf.for %k = %c0 to %c1 step %c1 {
    %stage = arith.remui %k, %c4 : index
    moeq.load_tile_async %src[%m0, %c0] bound %rows into %tiles[%stage]
        {columns = 32 : i64, chunk = 8 : i64, threads = 64 : i64}
        : memref<?x256xf16, 1>, memref<4x16x40xf16, 3>
    %g = nvgpu.device_async_create_group
    nvgpu.device_async_wait %g {numGroups = 0 : i32}
    gpu.barrier
  } {moeq.pipeline_stages = 4 : i64}
  return
}

// -----

// A load's operand that reads memory cannot move a stage ahead.
func.func @load_operand_with_side_effects(%src: memref<?x256xf16, 1>,
                                          %tiles: memref<2x16x40xf16, 3>,
                                          %cols: memref<8xindex>, %rows: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  scf.for %k = %c0 to %c8 step %c1 {
    // expected-error @below {{computes an operand of a tile load but has side effects}}
    %col = memref.load %cols[%k] : memref<8xindex>
    moeq.load_tile_async %src[%c0, %col] bound %rows into %tiles[%c0]
        {columns = 32 : i64, chunk = 8 : i64, threads = 64 : i64}
        : memref<?x256xf16, 1>, memref<2x16x40xf16, 3>
    %g = nvgpu.device_async_create_group
    nvgpu.device_async_wait %g {numGroups = 0 : i32}
    gpu.barrier
  } {moeq.pipeline_stages = 2 : i64}
  return
}

// -----

// The pipeliner needs every loop-carried value computed in the loop; a
// value carried unchanged is refused with the loop's location.
func.func @carried_unchanged(%src: memref<?x256xf16, 1>, %tiles: memref<2x16x40xf16, 3>,
                             %rows: index, %acc: vector<2x2xf32>) -> vector<2x2xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  // expected-error @below {{cannot be software-pipelined over 2 stages}}
  %r = scf.for %k = %c0 to %c8 step %c1 iter_args(%a = %acc) -> vector<2x2xf32> {
    moeq.load_tile_async %src[%c0, %c0] bound %rows into %tiles[%c0]
        {columns = 32 : i64, chunk = 8 : i64, threads = 64 : i64}
        : memref<?x256xf16, 1>, memref<2x16x40xf16, 3>
    %g = nvgpu.device_async_create_group
    nvgpu.device_async_wait %g {numGroups = 0 : i32}
    gpu.barrier
    scf.yield %a : vector<2x2xf32>
  } {moeq.pipeline_stages = 2 : i64}
  return %r : vector<2x2xf32>
}

// -----

// Bulk copies complete on mbarriers: the wait for the stage's phase (and
// the stage and parity it computes from the step) joins the cp.async wait
// and the barrier before the next copies; the copies stay in stage 0.
// CHECK-LABEL: func.func @mbarrier_wait
// CHECK: moeq.load_tile_async {{.*}} barriers
// CHECK: scf.for %[[K:.*]] = %c0 to %c4 step %c1
// CHECK: nvgpu.device_async_wait
// CHECK: %[[CUR:.*]] = arith.addi %[[K]], %{{.*}} : index
// CHECK: %[[USE:.*]] = arith.divui %[[CUR]], %c2
// CHECK: %[[PARITY:.*]] = arith.remui %[[USE]], %c2
// CHECK: %[[STAGE:.*]] = arith.remui %{{.*}}, %c2
// CHECK: moeq.wait_tile_barrier %{{.*}}[%[[STAGE]]] parity %[[PARITY]]
// CHECK-NEXT: gpu.barrier
// CHECK: moeq.load_tile_async {{.*}} if %{{.*}} barriers
// CHECK: nvgpu.device_async_create_group
// CHECK: memref.load
// CHECK: scf.yield
func.func @mbarrier_wait(%w: memref<64x64xi32, 1>, %b: memref<2x64x12xi32, 3>,
                         %bars: memref<2xi64, 3>, %n0: index) -> i32 {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c4 = arith.constant 4 : index
  %c8 = arith.constant 8 : index
  %c64 = arith.constant 64 : index
  %init = arith.constant 0 : i32
  %r = scf.for %k = %c0 to %c4 step %c1 iter_args(%acc = %init) -> i32 {
    %col = arith.muli %k, %c8 : index
    %stage = arith.remui %k, %c2 : index
    moeq.load_tile_async %w[%n0, %col] bound %c64 into %b[%stage] barriers %bars : memref<2xi64, 3>
        {columns = 8 : i64, chunk = 4 : i64, threads = 128 : i64}
        : memref<64x64xi32, 1>, memref<2x64x12xi32, 3>
    %g = nvgpu.device_async_create_group
    nvgpu.device_async_wait %g {numGroups = 0 : i32}
    %use = arith.divui %k, %c2 : index
    %parity = arith.remui %use, %c2 : index
    %wstage = arith.remui %k, %c2 : index
    moeq.wait_tile_barrier %bars[%wstage] parity %parity : memref<2xi64, 3>
    gpu.barrier
    %v = memref.load %b[%stage, %c0, %c0] : memref<2x64x12xi32, 3>
    %next = arith.addi %acc, %v : i32
    scf.yield %next : i32
  } {moeq.pipeline_stages = 2 : i64}
  return %r : i32
}
