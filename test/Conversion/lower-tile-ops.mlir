// RUN: moeq-opt %s -split-input-file -moeq-lower-tile-ops | FileCheck %s

// A 16 x 32 f16 tile in 16-byte chunks (8 halves): 64 chunks, 4 per row,
// one per thread of 64 threads. Thread t copies row t / 4, halves
// (t % 4) * 8.., from source row `row + t / 4` (clamped to `bound - 1`),
// zero-filled past `bound`; 16-byte copies bypass L1.
// CHECK-LABEL: func.func @one_chunk_per_thread
// CHECK-SAME: (%[[SRC:.*]]: memref<?x128xf16, 1>, %[[DST:.*]]: memref<2x16x40xf16, 3>, %[[ROW:.*]]: index, %[[COL:.*]]: index, %[[BOUND:.*]]: index, %[[STAGE:.*]]: index)
// CHECK: %[[ATLEAST:.*]] = arith.maxui %[[BOUND]], %c1
// CHECK: %[[LASTROW:.*]] = arith.subi %[[ATLEAST]], %c1
// CHECK: %[[T:.*]] = gpu.thread_id  x
// CHECK-NOT: arith.minui %[[T]]
// CHECK: %[[R:.*]] = arith.divui %[[T]], %c4
// CHECK: %[[IN:.*]] = arith.remui %[[T]], %c4
// CHECK: %[[C:.*]] = arith.muli %[[IN]], %c8
// CHECK: %[[SROW:.*]] = arith.addi %[[ROW]], %[[R]]
// CHECK: %[[VALID:.*]] = arith.cmpi ult, %[[SROW]], %[[BOUND]]
// CHECK: %[[SAFE:.*]] = arith.minui %[[SROW]], %[[LASTROW]]
// CHECK: %[[SCOL:.*]] = arith.addi %[[COL]], %[[C]]
// CHECK: %[[N:.*]] = arith.select %[[VALID]], %c8, %c0
// CHECK: nvgpu.device_async_copy %[[SRC]][%[[SAFE]], %[[SCOL]]], %[[DST]][%[[STAGE]], %[[R]], %[[C]]], 8, %[[N]] {bypassL1} : memref<?x128xf16, 1> to memref<2x16x40xf16, 3>
// CHECK-NOT: nvgpu.device_async_copy
// CHECK-NOT: moeq.load_tile_async
func.func @one_chunk_per_thread(%src: memref<?x128xf16, 1>, %dst: memref<2x16x40xf16, 3>,
                                %row: index, %col: index, %bound: index, %stage: index) {
  moeq.load_tile_async %src[%row, %col] bound %bound into %dst[%stage]
      {columns = 32 : i64, chunk = 8 : i64, threads = 64 : i64}
      : memref<?x128xf16, 1>, memref<2x16x40xf16, 3>
  return
}

// -----

// 40 chunks of 4 words over 32 threads: two copies per thread, the second
// clamped to the last chunk (threads past it repeat it rather than
// branch). `enabled` gates every copy; a constant bound folds the clamp.
// Chunks of 4 words are 16 bytes: bypassL1.
// CHECK-LABEL: func.func @clamped_and_enabled
// CHECK-SAME: %[[EN:[a-z0-9]+]]: i1)
// CHECK-DAG: %[[LASTROW:.*]] = arith.constant 71 : index
// CHECK-DAG: %[[LASTCHUNK:.*]] = arith.constant 39 : index
// CHECK: %[[T:.*]] = gpu.thread_id  x
// CHECK: arith.divui %[[T]], %c2
// CHECK: %[[V0:.*]] = arith.cmpi ult
// CHECK: arith.andi %[[EN]], %[[V0]]
// CHECK: arith.minui %{{.*}}, %[[LASTROW]]
// CHECK: nvgpu.device_async_copy {{.*}}, 4, %{{.*}} {bypassL1} : memref<72x16xi32, 1> to memref<3x20x12xi32, 3>
// CHECK: %[[SECOND:.*]] = arith.addi %[[T]], %c32
// CHECK: arith.minui %[[SECOND]], %[[LASTCHUNK]]
// CHECK: arith.andi %[[EN]]
// CHECK: nvgpu.device_async_copy {{.*}}, 4, %{{.*}} {bypassL1}
// CHECK-NOT: nvgpu.device_async_copy
func.func @clamped_and_enabled(%src: memref<72x16xi32, 1>, %dst: memref<3x20x12xi32, 3>,
                               %row: index, %col: index, %stage: index, %enabled: i1) {
  %n = arith.constant 72 : index
  moeq.load_tile_async %src[%row, %col] bound %n into %dst[%stage] if %enabled
      {columns = 8 : i64, chunk = 4 : i64, threads = 32 : i64}
      : memref<72x16xi32, 1>, memref<3x20x12xi32, 3>
  return
}

// -----

// A run-time row length (SliM-LLM group widths: the step's slice is 1 to
// 4 chunks): the chunk index is clamped to rows * chunks_per_row - 1 and
// rows are chunks_per_row chunks long. 2-word chunks are 8-byte copies.
// CHECK-LABEL: func.func @dynamic_row_length
// CHECK-SAME: %[[PER:[a-z0-9_]+]]: index)
// CHECK: %[[ALL:.*]] = arith.muli %[[PER]], %c8
// CHECK: %[[LAST:.*]] = arith.subi %[[ALL]], %c1
// CHECK: %[[CH:.*]] = arith.minui %{{.*}}, %[[LAST]]
// CHECK: arith.divui %[[CH]], %[[PER]]
// CHECK: arith.remui %[[CH]], %[[PER]]
// CHECK: nvgpu.device_async_copy {{.*}}, 2, %{{.*}} : memref<64x32xi32, 1> to memref<2x8x10xi32, 3>
func.func @dynamic_row_length(%src: memref<64x32xi32, 1>, %dst: memref<2x8x10xi32, 3>,
                              %row: index, %col: index, %stage: index, %per: index) {
  %n = arith.constant 64 : index
  moeq.load_tile_async %src[%row, %col] bound %n into %dst[%stage] chunks_per_row %per
      {columns = 8 : i64, chunk = 2 : i64, threads = 32 : i64}
      : memref<64x32xi32, 1>, memref<2x8x10xi32, 3>
  return
}

// -----

// Chunks under cp.async's 4 bytes (an activation stride that only allows
// single halves): a load from the clamped row, zero where invalid, a store.
// CHECK-LABEL: func.func @below_cp_async_size
// CHECK: %[[Z:.*]] = arith.constant 0.000000e+00 : f16
// CHECK: %[[V:.*]] = memref.load %{{.*}}[%{{.*}}, %{{.*}}] : memref<?x391xf16, 1>
// CHECK: %[[K:.*]] = arith.select %{{.*}}, %[[V]], %[[Z]] : f16
// CHECK: memref.store %[[K]], %{{.*}} : memref<2x16x40xf16, 3>
// CHECK-NOT: nvgpu.device_async_copy
func.func @below_cp_async_size(%src: memref<?x391xf16, 1>, %dst: memref<2x16x40xf16, 3>,
                               %row: index, %col: index, %bound: index, %stage: index) {
  moeq.load_tile_async %src[%row, %col] bound %bound into %dst[%stage]
      {columns = 32 : i64, chunk = 1 : i64, threads = 512 : i64}
      : memref<?x391xf16, 1>, memref<2x16x40xf16, 3>
  return
}

// -----

// A 2 x 2 warp block: four mma.sync in row-major order, A fragment i with
// B fragment j into accumulator i * 2 + j.
// CHECK-LABEL: func.func @mma_block
// CHECK-SAME: (%[[A0:.*]]: vector<4x2xf16>, %[[A1:.*]]: vector<4x2xf16>, %[[B0:.*]]: vector<2x2xf16>, %[[B1:.*]]: vector<2x2xf16>, %[[C0:.*]]: vector<2x2xf32>, %[[C1:.*]]: vector<2x2xf32>, %[[C2:.*]]: vector<2x2xf32>, %[[C3:.*]]: vector<2x2xf32>)
// CHECK: %[[D0:.*]] = nvgpu.mma.sync(%[[A0]], %[[B0]], %[[C0]]) {mmaShape = [16, 8, 16]}
// CHECK: %[[D1:.*]] = nvgpu.mma.sync(%[[A0]], %[[B1]], %[[C1]]) {mmaShape = [16, 8, 16]}
// CHECK: %[[D2:.*]] = nvgpu.mma.sync(%[[A1]], %[[B0]], %[[C2]]) {mmaShape = [16, 8, 16]}
// CHECK: %[[D3:.*]] = nvgpu.mma.sync(%[[A1]], %[[B1]], %[[C3]]) {mmaShape = [16, 8, 16]}
// CHECK: return %[[D0]], %[[D1]], %[[D2]], %[[D3]]
func.func @mma_block(%a0: vector<4x2xf16>, %a1: vector<4x2xf16>, %b0: vector<2x2xf16>,
                     %b1: vector<2x2xf16>, %c0: vector<2x2xf32>, %c1: vector<2x2xf32>,
                     %c2: vector<2x2xf32>, %c3: vector<2x2xf32>)
    -> (vector<2x2xf32>, vector<2x2xf32>, vector<2x2xf32>, vector<2x2xf32>) {
  %d:4 = moeq.mma_tile (%a0, %a1) x (%b0, %b1) + (%c0, %c1, %c2, %c3)
      {mma_shape = array<i64: 16, 8, 16>}
      : (vector<4x2xf16>, vector<4x2xf16>) x (vector<2x2xf16>, vector<2x2xf16>)
        + (vector<2x2xf32>, vector<2x2xf32>, vector<2x2xf32>, vector<2x2xf32>)
  return %d#0, %d#1, %d#2, %d#3 : vector<2x2xf32>, vector<2x2xf32>, vector<2x2xf32>, vector<2x2xf32>
}

// -----

// s8 operands (w8a8): m16n8k32 with s32 accumulators.
// CHECK-LABEL: func.func @mma_s8
// CHECK: nvgpu.mma.sync(%{{.*}}, %{{.*}}, %{{.*}}) {mmaShape = [16, 8, 32]} : (vector<4x4xi8>, vector<2x4xi8>, vector<2x2xi32>) -> vector<2x2xi32>
func.func @mma_s8(%a: vector<4x4xi8>, %b: vector<2x4xi8>, %c: vector<2x2xi32>) -> vector<2x2xi32> {
  %d = moeq.mma_tile (%a) x (%b) + (%c) {mma_shape = array<i64: 16, 8, 32>}
      : (vector<4x4xi8>) x (vector<2x4xi8>) + (vector<2x2xi32>)
  return %d : vector<2x2xi32>
}

// -----

// The epilogue of a 1 x 2 warp block into f16 rows: lane l's pairs at
// rows row + l / 4 and + 8, columns column + 8 j + 2 (l % 4), each stored
// (one 32-bit store) only inside the bound and the width.
// CHECK-LABEL: func.func @store_f16
// CHECK-SAME: (%[[C0:.*]]: vector<2x2xf32>, %[[C1:.*]]: vector<2x2xf32>, %[[Y:.*]]: memref<?x64xf16, 1>, %[[ROW:.*]]: index, %[[COL:.*]]: index, %[[BOUND:.*]]: index)
// CHECK: %[[T:.*]] = gpu.thread_id  x
// CHECK: %[[LANE:.*]] = arith.remui %[[T]], %c32
// CHECK: %[[QUAD:.*]] = arith.remui %[[LANE]], %c4
// CHECK: %[[PAIRCOL:.*]] = arith.muli %[[QUAD]], %c2
// CHECK: %[[LANEROW:.*]] = arith.divui %[[LANE]], %c4
// CHECK: %[[COL0:.*]] = arith.addi %[[COL]], %[[PAIRCOL]]
// CHECK: %[[R0:.*]] = arith.addi %[[ROW]], %[[LANEROW]]
// CHECK: %[[IN0:.*]] = arith.cmpi ult, %[[R0]], %[[BOUND]]
// CHECK: %[[CIN:.*]] = arith.cmpi ult, %[[COL0]], %c64
// CHECK: %[[BOTH:.*]] = arith.andi %[[IN0]], %[[CIN]]
// CHECK: scf.if %[[BOTH]] {
// CHECK: %[[P:.*]] = vector.extract %[[C0]][0] : vector<2xf32> from vector<2x2xf32>
// CHECK: %[[H:.*]] = arith.truncf %[[P]] : vector<2xf32> to vector<2xf16>
// CHECK: vector.store %[[H]], %[[Y]][%[[R0]], %[[COL0]]] {alignment = 4 : i64} : memref<?x64xf16, 1>, vector<2xf16>
// CHECK: %[[R8:.*]] = arith.addi %[[ROW]], %c8
// CHECK: vector.extract %[[C0]][1]
// CHECK: arith.addi %[[COL]], %c8
// CHECK: vector.extract %[[C1]][0]
// CHECK: vector.extract %[[C1]][1]
// CHECK: vector.store
// CHECK-NOT: vector.store
// CHECK: return
func.func @store_f16(%c0: vector<2x2xf32>, %c1: vector<2x2xf32>, %y: memref<?x64xf16, 1>,
                     %row: index, %col: index, %bound: index) {
  moeq.store_tile (%c0, %c1) into %y[%row, %col] bound %bound {tiles = array<i64: 1, 2>}
      : (vector<2x2xf32>, vector<2x2xf32>), memref<?x64xf16, 1>
  return
}

// -----

// Per-channel integer sums: s32 to f32, times the column scales (group 0,
// the second column clamped to the width) and the row's activation scale.
// CHECK-LABEL: func.func @store_scaled_s32
// CHECK-SAME: (%[[C:.*]]: vector<2x2xi32>, %[[Y:.*]]: memref<?x64xf16, 1>, %[[S:.*]]: memref<64x1xf16, 1>, %[[XS:.*]]: memref<?xf32, 1>,
// CHECK: %[[S0:.*]] = memref.load %[[S]][%{{.*}}, %c0] : memref<64x1xf16, 1>
// CHECK: arith.extf %[[S0]] : f16 to f32
// CHECK: arith.minui %{{.*}}, %c63
// CHECK: %[[S1:.*]] = memref.load %[[S]][%{{.*}}, %c0] : memref<64x1xf16, 1>
// CHECK: %[[SCALES:.*]] = vector.from_elements %{{.*}}, %{{.*}} : vector<2xf32>
// CHECK: %[[F:.*]] = arith.sitofp %[[C]] : vector<2x2xi32> to vector<2x2xf32>
// CHECK: scf.if
// CHECK: %[[P:.*]] = vector.extract %[[F]][0]
// CHECK: %[[PS:.*]] = arith.mulf %[[P]], %[[SCALES]] : vector<2xf32>
// CHECK: %[[XROW:.*]] = memref.load %[[XS]][%{{.*}}] : memref<?xf32, 1>
// CHECK: %[[XB:.*]] = vector.broadcast %[[XROW]] : f32 to vector<2xf32>
// CHECK: arith.mulf %[[PS]], %[[XB]] : vector<2xf32>
// CHECK: arith.truncf
// CHECK: vector.store
func.func @store_scaled_s32(%c: vector<2x2xi32>, %y: memref<?x64xf16, 1>, %s: memref<64x1xf16, 1>,
                            %xs: memref<?xf32, 1>, %row: index, %col: index, %bound: index) {
  moeq.store_tile (%c) into %y[%row, %col] bound %bound column_scales %s : memref<64x1xf16, 1>
      row_scales %xs : memref<?xf32, 1> {tiles = array<i64: 1, 1>} : (vector<2x2xi32>), memref<?x64xf16, 1>
  return
}

// -----

// A split-K slice: f32 partial sums, no rounding, at rows offset + row of
// the workspace (one 64-bit store per pair).
// CHECK-LABEL: func.func @store_partial_sums
// CHECK-SAME: %[[OFF:[a-z0-9]+]]: index)
// CHECK: scf.if
// CHECK: %[[P:.*]] = vector.extract
// CHECK: %[[WROW:.*]] = arith.addi %[[OFF]], %{{.*}} : index
// CHECK-NOT: arith.truncf
// CHECK: vector.store %[[P]], %{{.*}}[%[[WROW]], %{{.*}}] {alignment = 8 : i64} : memref<?x64xf32, 1>, vector<2xf32>
func.func @store_partial_sums(%c: vector<2x2xf32>, %ws: memref<?x64xf32, 1>, %row: index,
                              %col: index, %bound: index, %offset: index) {
  moeq.store_tile (%c) into %ws[%row, %col] bound %bound row_offset %offset {tiles = array<i64: 1, 1>}
      : (vector<2x2xf32>), memref<?x64xf32, 1>
  return
}

// -----

// The persistent scheduler over 3 experts in 2 mixes: per expert, its rows
// from the offsets, its mix from the table, the mix's tile rows and tile
// columns by a select chain, ceil(rows / bm) x tiles_n tiles after the
// running prefix; the block's tiles of the expert are prefix + (block -
// prefix) mod G, + G, ...; each starts with a barrier and runs the body
// with (expert, tile - prefix, first row, end row, mix).
// CHECK-LABEL: func.func @scheduler
// CHECK-SAME: (%[[OFF:.*]]: memref<4xi32, 1>, %[[MIXES:.*]]: memref<3xi32>, %[[OUT:.*]]: memref<64xindex>)
// CHECK: %[[BLOCK:.*]] = gpu.block_id  x
// CHECK: %[[GRID:.*]] = gpu.grid_dim  x
// CHECK: scf.for %[[E:.*]] = %c0 to %c3 step %c1 iter_args(%[[PREFIX:.*]] = %c0) -> (index) {
// CHECK: %[[F32:.*]] = memref.load %[[OFF]][%[[E]]]
// CHECK: %[[FIRST:.*]] = arith.index_cast %[[F32]] : i32 to index
// CHECK: %[[NEXT:.*]] = arith.addi %[[E]], %c1
// CHECK: %[[E32:.*]] = memref.load %[[OFF]][%[[NEXT]]]
// CHECK: %[[END:.*]] = arith.index_cast %[[E32]] : i32 to index
// CHECK: %[[ROWS:.*]] = arith.subi %[[END]], %[[FIRST]]
// CHECK: %[[M32:.*]] = memref.load %[[MIXES]][%[[E]]]
// CHECK: %[[MIX:.*]] = arith.index_cast %[[M32]] : i32 to index
// CHECK: %[[IS1:.*]] = arith.cmpi eq, %[[MIX]], %c1
// CHECK: %[[BM:.*]] = arith.select %[[IS1]], %c16, %c32
// CHECK: %[[IS1B:.*]] = arith.cmpi eq, %[[MIX]], %c1
// CHECK: %[[TN:.*]] = arith.select %[[IS1B]], %c1, %c2
// CHECK: %[[TM:.*]] = arith.ceildivui %[[ROWS]], %[[BM]]
// CHECK: %[[COUNT:.*]] = arith.muli %[[TM]], %[[TN]]
// CHECK: %[[LIMIT:.*]] = arith.addi %[[PREFIX]], %[[COUNT]]
// CHECK: %[[AHEAD:.*]] = arith.addi %[[BLOCK]], %[[GRID]]
// CHECK: %[[PHASE:.*]] = arith.remui %[[PREFIX]], %[[GRID]]
// CHECK: %[[DIST:.*]] = arith.subi %[[AHEAD]], %[[PHASE]]
// CHECK: %[[SKEW:.*]] = arith.remui %[[DIST]], %[[GRID]]
// CHECK: %[[START:.*]] = arith.addi %[[PREFIX]], %[[SKEW]]
// CHECK: scf.for %[[T:.*]] = %[[START]] to %[[LIMIT]] step %[[GRID]] {
// CHECK: %[[LOCAL:.*]] = arith.subi %[[T]], %[[PREFIX]]
// CHECK: gpu.barrier
// CHECK: memref.store %[[FIRST]], %[[OUT]][%[[LOCAL]]]
// CHECK: memref.store %[[END]], %[[OUT]][%[[E]]]
// CHECK: memref.store %[[MIX]], %[[OUT]][%[[MIX]]]
// CHECK: }
// CHECK: scf.yield %[[LIMIT]] : index
// CHECK-NOT: moeq.for_each_tile
func.func @scheduler(%offsets: memref<4xi32, 1>, %mixes: memref<3xi32>, %out: memref<64xindex>) {
  moeq.for_each_tile %offsets mix_of %mixes : memref<3xi32> {bm = array<i64: 32, 16>, tiles_n = array<i64: 2, 1>} : memref<4xi32, 1> {
  ^bb0(%expert: index, %tile: index, %first: index, %end: index, %mix: index):
    memref.store %first, %out[%tile] : memref<64xindex>
    memref.store %end, %out[%expert] : memref<64xindex>
    memref.store %mix, %out[%mix] : memref<64xindex>
  }
  return
}

// -----

// One mix: no table; the mix is 0 and the tile shape constant.
// CHECK-LABEL: func.func @one_mix
// CHECK-NOT: arith.select
// CHECK: arith.ceildivui %{{.*}}, %c64
// CHECK: arith.muli %{{.*}}, %c4
// CHECK: memref.store %c0, %{{.*}}[%c0]
func.func @one_mix(%offsets: memref<9xi32, 1>, %out: memref<64xindex>) {
  moeq.for_each_tile %offsets {bm = array<i64: 64>, tiles_n = array<i64: 4>} : memref<9xi32, 1> {
  ^bb0(%expert: index, %tile: index, %first: index, %end: index, %mix: index):
    memref.store %mix, %out[%mix] : memref<64xindex>
  }
  return
}

// -----

// f16 A: ldmatrix.x4, lane l at row row + l % 16, K k + 8 (l / 16).
// CHECK-LABEL: func.func @fragment_a_f16
// CHECK-SAME: (%[[T:.*]]: memref<3x32x72xf16, 3>, %[[S:.*]]: index, %[[ROW:.*]]: index, %[[K:.*]]: index)
// CHECK: %[[TID:.*]] = gpu.thread_id  x
// CHECK: %[[LANE:.*]] = arith.remui %[[TID]], %c32
// CHECK: %[[R16:.*]] = arith.remui %[[LANE]], %c16
// CHECK: %[[R:.*]] = arith.addi %[[ROW]], %[[R16]]
// CHECK: %[[HALF:.*]] = arith.divui %[[LANE]], %c16
// CHECK: %[[HK:.*]] = arith.muli %[[HALF]], %c8
// CHECK: %[[C:.*]] = arith.addi %[[HK]], %[[K]]
// CHECK: nvgpu.ldmatrix %[[T]][%[[S]], %[[R]], %[[C]]] {numTiles = 4 : i32, transpose = false} : memref<3x32x72xf16, 3> -> vector<4x2xf16>
func.func @fragment_a_f16(%t: memref<3x32x72xf16, 3>, %s: index, %row: index, %k: index) -> vector<4x2xf16> {
  %a = moeq.load_fragment %t[%s, %row, %k] : memref<3x32x72xf16, 3> -> vector<4x2xf16>
  return %a : vector<4x2xf16>
}

// -----

// s4 A: the bytes by ldmatrix.x4 (16 per lane half), each register
// reinterpreted as 8 nibbles.
// CHECK-LABEL: func.func @fragment_a_s4
// CHECK: arith.muli %{{.*}}, %c16
// CHECK: %[[B:.*]] = nvgpu.ldmatrix {{.*}} {numTiles = 4 : i32, transpose = false} : memref<2x32x80xi8, 3> -> vector<4x4xi8>
// CHECK: %[[R0:.*]] = vector.extract %[[B]][0] : vector<4xi8> from vector<4x4xi8>
// CHECK: vector.bitcast %[[R0]] : vector<4xi8> to vector<8xi4>
// CHECK-COUNT-4: vector.insert {{.*}} : vector<8xi4> into vector<4x8xi4>
func.func @fragment_a_s4(%t: memref<2x32x80xi8, 3>, %s: index, %row: index, %k: index) -> vector<4x8xi4> {
  %a = moeq.load_fragment %t[%s, %row, %k] : memref<2x32x80xi8, 3> -> vector<4x8xi4>
  return %a : vector<4x8xi4>
}

// -----

// f16 B: ldmatrix.x2, lanes 0-7 the rows at K + 0, lanes 8-15 at K + 8.
// CHECK-LABEL: func.func @fragment_b_f16
// CHECK-SAME: (%[[T:.*]]: memref<4x64x40xf16, 3>, %[[S:.*]]: index, %[[ROW:.*]]: index, %[[K:.*]]: index)
// CHECK: %[[LANE:.*]] = arith.remui %{{.*}}, %c32
// CHECK: %[[R8:.*]] = arith.remui %[[LANE]], %c8
// CHECK: %[[R:.*]] = arith.addi %[[ROW]], %[[R8]]
// CHECK: %[[OCT:.*]] = arith.divui %[[LANE]], %c8
// CHECK: %[[SECOND:.*]] = arith.remui %[[OCT]], %c2
// CHECK: %[[HK:.*]] = arith.muli %[[SECOND]], %c8
// CHECK: %[[C:.*]] = arith.addi %[[HK]], %[[K]]
// CHECK: nvgpu.ldmatrix %[[T]][%[[S]], %[[R]], %[[C]]] {numTiles = 2 : i32, transpose = false} : memref<4x64x40xf16, 3> -> vector<2x2xf16>
func.func @fragment_b_f16(%t: memref<4x64x40xf16, 3>, %s: index, %row: index, %k: index) -> vector<2x2xf16> {
  %b = moeq.load_fragment %t[%s, %row, %k] : memref<4x64x40xf16, 3> -> vector<2x2xf16>
  return %b : vector<2x2xf16>
}

// -----

// s8 B from packed words: lane l reads words k + l % 4 and k + l % 4 + 4 of
// row row + l / 4, flips each byte's top bit (code - 128) and splits the
// word into 4 bytes.
// CHECK-LABEL: func.func @fragment_b_s8
// CHECK-SAME: (%[[T:.*]]: memref<3x128x20xi32, 3>, %[[S:.*]]: index, %[[ROW:.*]]: index, %[[K:.*]]: index)
// CHECK-DAG: %[[FLIP:.*]] = arith.constant -2139062144 : i32
// CHECK: %[[LANE:.*]] = arith.remui %{{.*}}, %c32
// CHECK: %[[COL:.*]] = arith.divui %[[LANE]], %c4
// CHECK: %[[R:.*]] = arith.addi %[[ROW]], %[[COL]]
// CHECK: %[[QUAD:.*]] = arith.remui %[[LANE]], %c4
// CHECK: %[[W0:.*]] = arith.addi %[[K]], %[[QUAD]]
// CHECK: %[[V0:.*]] = memref.load %[[T]][%[[S]], %[[R]], %[[W0]]] : memref<3x128x20xi32, 3>
// CHECK: %[[X0:.*]] = arith.xori %[[V0]], %[[FLIP]] : i32
// CHECK: %[[E0:.*]] = vector.from_elements %[[X0]] : vector<1xi32>
// CHECK: vector.bitcast %[[E0]] : vector<1xi32> to vector<4xi8>
// CHECK: %[[Q4:.*]] = arith.addi %[[QUAD]], %c4
// CHECK: %[[W1:.*]] = arith.addi %[[K]], %[[Q4]]
// CHECK: memref.load %[[T]][%[[S]], %[[R]], %[[W1]]]
func.func @fragment_b_s8(%t: memref<3x128x20xi32, 3>, %s: index, %row: index, %k: index) -> vector<2x4xi8> {
  %b = moeq.load_fragment %t[%s, %row, %k] : memref<3x128x20xi32, 3> -> vector<2x4xi8>
  return %b : vector<2x4xi8>
}

// -----

// s4 B: the nibbles' top bits (code - 8).
// CHECK-LABEL: func.func @fragment_b_s4
// CHECK: arith.constant -2004318072 : i32
// CHECK: vector.bitcast %{{.*}} : vector<1xi32> to vector<8xi4>
func.func @fragment_b_s4(%t: memref<2x64x20xi32, 3>, %s: index, %row: index, %k: index) -> vector<2x8xi4> {
  %b = moeq.load_fragment %t[%s, %row, %k] : memref<2x64x20xi32, 3> -> vector<2x8xi4>
  return %b : vector<2x8xi4>
}

// -----

// Tiles of rank 5 hold core matrices ([stages, rows / 8, K / 8, 8, 8] for
// f16), the layout wgmma reads: chunk c of the 64 x 64 tile (row c / 8,
// halves 8 (c % 8)) lands at [stage, row / 8, col / 8, row % 8, col % 8].
// 512 chunks over 128 threads: four copies each.
// CHECK-LABEL: func.func @core_matrix_tile
// CHECK-SAME: %[[DST:[a-z0-9]+]]: memref<3x8x8x8x8xf16, 3>
// CHECK-SAME: %[[STAGE:[a-z0-9]+]]: index)
// CHECK: %[[T:.*]] = gpu.thread_id  x
// CHECK: %[[R:.*]] = arith.divui %[[T]], %c8
// CHECK: %[[IN:.*]] = arith.remui %[[T]], %c8
// CHECK: %[[C:.*]] = arith.muli %[[IN]], %c8
// CHECK: %[[RG:.*]] = arith.divui %[[R]], %c8
// CHECK: %[[KC:.*]] = arith.divui %[[C]], %c8
// CHECK: %[[RR:.*]] = arith.remui %[[R]], %c8
// CHECK: %[[KR:.*]] = arith.remui %[[C]], %c8
// CHECK: nvgpu.device_async_copy %{{.*}}, %[[DST]][%[[STAGE]], %[[RG]], %[[KC]], %[[RR]], %[[KR]]], 8, %{{.*}} {bypassL1}
// CHECK-COUNT-3: nvgpu.device_async_copy
// CHECK-NOT: nvgpu.device_async_copy
func.func @core_matrix_tile(%src: memref<?x256xf16, 1>, %dst: memref<3x8x8x8x8xf16, 3>,
                            %row: index, %col: index, %bound: index, %stage: index) {
  moeq.load_tile_async %src[%row, %col] bound %bound into %dst[%stage]
      {columns = 64 : i64, chunk = 8 : i64, threads = 128 : i64}
      : memref<?x256xf16, 1>, memref<3x8x8x8x8xf16, 3>
  return
}

// -----

// A warpgroup's MMAs over K = 32 with N = 16 (two accumulator blocks):
// the blocks become the struct of 8 f32 that wgmma updates (block j at
// members 4j..4j+3, row-major); the descriptors start at the core matrix
// of (stage, row / 8) (K / 8 = 4 core matrices of 128 bytes per 8-row
// group: 512 bytes), with the address field (addr & 0x3FFFF) >> 4, the
// leading byte offset 128 >> 4 = 8 in bits 16-29 and the stride byte
// offset 512 >> 4 = 32 in bits 32-45 (8 << 16 | 32 << 32 =
// 137439477760); the second k16 step advances both by two core matrices
// (256 bytes: 16). fence before, commit and wait for the group after.
// CHECK-LABEL: func.func @warpgroup_mma
// CHECK-SAME: (%[[A:.*]]: memref<3x8x4x8x8xf16, 3>, %[[W:.*]]: memref<1x4x4x8x8xf16, 3>, %[[STAGE:.*]]: index, %[[ROW:.*]]: index, %[[COL:.*]]: index, %[[C0:.*]]: vector<2x2xf32>, %[[C1:.*]]: vector<2x2xf32>)
// CHECK-DAG: %[[STEP:.*]] = arith.constant 16 : i64
// CHECK-DAG: %[[FIELDS:.*]] = arith.constant 137439477760 : i64
// CHECK-DAG: %[[MASK:.*]] = arith.constant 262143 : i64
// CHECK-DAG: %[[GROUP:.*]] = arith.constant 512 : index
// CHECK: %[[E0:.*]] = vector.extract %[[C0]][0, 0]
// CHECK: llvm.insertvalue %[[E0]], %{{.*}}[0]
// CHECK: %[[E5:.*]] = vector.extract %[[C1]][0, 1]
// CHECK: llvm.insertvalue %[[E5]], %{{.*}}[5]
// CHECK: %[[ACC:.*]] = llvm.insertvalue %{{.*}}[7] : !llvm.struct<(f32, f32, f32, f32, f32, f32, f32, f32)>
// CHECK: %[[BASEA:.*]] = memref.extract_aligned_pointer_as_index %[[A]]
// CHECK: %[[RG:.*]] = arith.divui %[[ROW]], %c8
// CHECK: %[[SG:.*]] = arith.muli %[[STAGE]], %c8
// CHECK: %[[G:.*]] = arith.addi %[[SG]], %[[RG]]
// CHECK: %[[OFF:.*]] = arith.muli %[[G]], %[[GROUP]]
// CHECK: %[[ADDRA:.*]] = arith.addi %[[BASEA]], %[[OFF]]
// CHECK: %[[BASEB:.*]] = memref.extract_aligned_pointer_as_index %[[W]]
// CHECK: %[[CG:.*]] = arith.divui %[[COL]], %c8
// CHECK: arith.muli %[[CG]], %[[GROUP]]
// CHECK: %[[A64:.*]] = arith.index_castui %[[ADDRA]] : index to i64
// CHECK: %[[AM:.*]] = arith.andi %[[A64]], %[[MASK]]
// CHECK: %[[AS:.*]] = arith.shrui %[[AM]], %c4_i64
// CHECK: %[[DA:.*]] = arith.ori %[[AS]], %[[FIELDS]]
// CHECK: %[[DB:.*]] = arith.ori %{{.*}}, %[[FIELDS]]
// CHECK: nvvm.wgmma.fence.aligned
// CHECK: %[[D0:.*]] = nvvm.wgmma.mma_async %[[DA]], %[[DB]], %[[ACC]], <m = 64, n = 16, k = 16>, D[<f32>, <one>], A[<f16>, <one>, <row>], B[<f16>, <one>, <col>]
// CHECK: %[[DA1:.*]] = arith.addi %[[DA]], %[[STEP]]
// CHECK: %[[DB1:.*]] = arith.addi %[[DB]], %[[STEP]]
// CHECK: %[[D1:.*]] = nvvm.wgmma.mma_async %[[DA1]], %[[DB1]], %[[D0]], <m = 64, n = 16, k = 16>
// CHECK-NOT: nvvm.wgmma.mma_async
// CHECK: nvvm.wgmma.commit.group.sync.aligned
// CHECK-NEXT: nvvm.wgmma.wait.group.sync.aligned 0
// CHECK: llvm.extractvalue %[[D1]][0]
// CHECK: %[[X7:.*]] = llvm.extractvalue %[[D1]][7]
// CHECK: %[[R1:.*]] = vector.insert %[[X7]], %{{.*}} [1, 1]
// CHECK: return %{{.*}}, %[[R1]]
func.func @warpgroup_mma(%a: memref<3x8x4x8x8xf16, 3>, %w: memref<1x4x4x8x8xf16, 3>,
                         %stage: index, %row: index, %col: index,
                         %c0: vector<2x2xf32>, %c1: vector<2x2xf32>) -> (vector<2x2xf32>, vector<2x2xf32>) {
  %z = arith.constant 0 : index
  %d:2 = moeq.warpgroup_mma %a[%stage, %row] x %w[%z, %col] + (%c0, %c1)
      : memref<3x8x4x8x8xf16, 3>, memref<1x4x4x8x8xf16, 3>, (vector<2x2xf32>, vector<2x2xf32>)
  return %d#0, %d#1 : vector<2x2xf32>, vector<2x2xf32>
}

// -----

// Bulk rows (with mbarriers, Hopper): 64 rows of 8 words over 128
// threads, thread t < 64 copies row t (its source row clamped to
// bound - 1 = 199: no zero fill) with one cp.async.bulk of 32 bytes into
// the shared::cluster window, completing on the stage's mbarrier; thread 0
// arrives on it expecting 64 x 32 = 2048 bytes. `enabled` gates both.
// CHECK-LABEL: func.func @bulk_rows
// CHECK-SAME: (%[[SRC:.*]]: memref<256x16xi32, 1>, %[[DST:.*]]: memref<3x64x12xi32, 3>, %[[BARS:.*]]: memref<3xi64, 3>, %[[ROW:.*]]: index, %[[COL:.*]]: index, %[[STAGE:.*]]: index, %[[MORE:.*]]: i1)
// CHECK-DAG: %[[TOTAL:.*]] = arith.constant 2048 : i32
// CHECK-DAG: %[[ROWBYTES:.*]] = arith.constant 32 : i32
// CHECK-DAG: %[[LAST:.*]] = arith.constant 199 : index
// CHECK: %[[T:.*]] = gpu.thread_id  x
// CHECK: %[[BARBASE:.*]] = memref.extract_aligned_pointer_as_index %[[BARS]]
// CHECK: %[[BAROFF:.*]] = arith.muli %[[STAGE]], %c8
// CHECK: %[[BARADDR:.*]] = arith.addi %[[BARBASE]], %[[BAROFF]]
// CHECK: %[[BAR:.*]] = llvm.inttoptr %{{.*}} : i64 to !llvm.ptr<3>
// CHECK: %[[INROWS:.*]] = arith.cmpi ult, %[[T]], %c64
// CHECK: %[[COPY:.*]] = arith.andi %[[MORE]], %[[INROWS]]
// CHECK: scf.if %[[COPY]] {
// CHECK: %[[SROW:.*]] = arith.addi %[[ROW]], %[[T]]
// CHECK: %[[CLAMPED:.*]] = arith.minui %[[SROW]], %[[LAST]]
// CHECK: memref.extract_aligned_pointer_as_index %[[DST]]
// CHECK: %[[D3:.*]] = llvm.inttoptr %{{.*}} : i64 to !llvm.ptr<3>
// CHECK: %[[D7:.*]] = llvm.addrspacecast %[[D3]] : !llvm.ptr<3> to !llvm.ptr<7>
// CHECK: memref.extract_aligned_pointer_as_index %[[SRC]]
// CHECK: arith.muli %[[CLAMPED]], %c64
// CHECK: %[[S1:.*]] = llvm.inttoptr %{{.*}} : i64 to !llvm.ptr<1>
// CHECK: nvvm.cp.async.bulk.shared.cluster.global %[[D7]], %[[S1]], %[[BAR]], %[[ROWBYTES]]
// CHECK: }
// CHECK: %[[FIRST:.*]] = arith.cmpi eq, %[[T]], %c0
// CHECK: %[[ARRIVE:.*]] = arith.andi %[[FIRST]], %[[MORE]]
// CHECK: scf.if %[[ARRIVE]] {
// CHECK-NEXT: nvvm.mbarrier.arrive.expect_tx %[[BAR]], %[[TOTAL]]
// CHECK-NOT: nvgpu.device_async_copy
func.func @bulk_rows(%src: memref<256x16xi32, 1>, %dst: memref<3x64x12xi32, 3>, %bars: memref<3xi64, 3>,
                     %row: index, %col: index, %stage: index, %more: i1) {
  %n = arith.constant 200 : index
  moeq.load_tile_async %src[%row, %col] bound %n into %dst[%stage] if %more barriers %bars : memref<3xi64, 3>
      {columns = 8 : i64, chunk = 4 : i64, threads = 128 : i64}
      : memref<256x16xi32, 1>, memref<3x64x12xi32, 3>
  return
}

// -----

// Thread 0 initialises each stage's mbarrier for one arrival and fences
// the initialisation; a block barrier publishes it. A wait is the
// try_wait.parity loop on the stage's mbarrier.
// CHECK-LABEL: func.func @barriers
// CHECK-SAME: (%[[BARS:.*]]: memref<2xi64, 3>, %[[STAGE:.*]]: index, %[[PARITY:.*]]: index)
// CHECK: %[[T:.*]] = gpu.thread_id  x
// CHECK: %[[FIRST:.*]] = arith.cmpi eq, %[[T]], %c0
// CHECK: scf.if %[[FIRST]] {
// CHECK: nvvm.mbarrier.init %{{.*}}, %c1_i32 : !llvm.ptr<3>, i32
// CHECK: arith.addi %{{.*}}, %c8
// CHECK: nvvm.mbarrier.init %{{.*}}, %c1_i32 : !llvm.ptr<3>, i32
// CHECK-NEXT: nvvm.fence.mbarrier.init
// CHECK-NEXT: }
// CHECK-NEXT: gpu.barrier
// CHECK: %[[OFF:.*]] = arith.muli %[[STAGE]], %c8
// CHECK: %[[BAR:.*]] = llvm.inttoptr
// CHECK: %[[P:.*]] = arith.index_castui %[[PARITY]] : index to i32
// CHECK: nvvm.mbarrier.try_wait.parity %[[BAR]], %[[P]], %{{.*}} : !llvm.ptr<3>, i32, i32
func.func @barriers(%bars: memref<2xi64, 3>, %stage: index, %parity: index) {
  moeq.init_tile_barriers %bars : memref<2xi64, 3>
  moeq.wait_tile_barrier %bars[%stage] parity %parity : memref<2xi64, 3>
  return
}
