// RUN: moeq-opt %s -split-input-file -moeq-lower-dequantization | FileCheck %s

// A code that cannot straddle (`aligned`): one word, a shift and a mask.
// CHECK-LABEL: func.func @aligned
// CHECK-SAME: (%[[W:.*]]: memref<4x8xi32>, %[[ROW:.*]]: index, %[[BIT:.*]]: index)
// CHECK: %[[WORD:.*]] = arith.divui %[[BIT]], %c32
// CHECK: %[[SHIFT:.*]] = arith.remui %[[BIT]], %c32
// CHECK: %[[V:.*]] = memref.load %[[W]][%[[ROW]], %[[WORD]]] : memref<4x8xi32>
// CHECK: %[[S:.*]] = arith.index_castui %[[SHIFT]] : index to i32
// CHECK: %[[SH:.*]] = arith.shrui %[[V]], %[[S]] : i32
// CHECK: %[[C:.*]] = arith.andi %[[SH]], %c15_i32 : i32
// CHECK-NOT: memref.load
// CHECK: return %[[C]]
func.func @aligned(%w: memref<4x8xi32>, %row: index, %bit: index) -> i32 {
  %c = moeq.unpack_codes %w[%row] bit %bit {bits = 4 : i64, aligned} : memref<4x8xi32> -> i32
  return %c : i32
}

// -----

// A 3-bit code may straddle: a 64-bit window over the word and the next,
// that one clamped to the row's last word (index 5).
// CHECK-LABEL: func.func @straddling
// CHECK-SAME: (%[[W:.*]]: memref<4x6xi32>, %[[ROW:.*]]: index, %[[BIT:.*]]: index)
// CHECK: %[[WORD:.*]] = arith.divui %[[BIT]], %c32
// CHECK: %[[LO:.*]] = memref.load %[[W]][%[[ROW]], %[[WORD]]]
// CHECK: %[[NEXT:.*]] = arith.addi %[[WORD]], %c1
// CHECK: %[[CLAMPED:.*]] = arith.minui %[[NEXT]], %c5
// CHECK: %[[HI:.*]] = memref.load %[[W]][%[[ROW]], %[[CLAMPED]]]
// CHECK: %[[LO64:.*]] = arith.extui %[[LO]] : i32 to i64
// CHECK: %[[HI64:.*]] = arith.extui %[[HI]] : i32 to i64
// CHECK: %[[UP:.*]] = arith.shli %[[HI64]], %c32_i64 : i64
// CHECK: %[[WIN:.*]] = arith.ori %[[LO64]], %[[UP]] : i64
// CHECK: %[[SH:.*]] = arith.shrui %[[WIN]], %{{.*}} : i64
// CHECK: %[[T:.*]] = arith.trunci %[[SH]] : i64 to i32
// CHECK: arith.andi %[[T]], %c7_i32 : i32
func.func @straddling(%w: memref<4x6xi32>, %row: index, %bit: index) -> i32 {
  %c = moeq.unpack_codes %w[%row] bit %bit {bits = 3 : i64} : memref<4x6xi32> -> i32
  return %c : i32
}

// -----

// Two codes from padded shared-memory rows: no clamp; the second code is
// the window shifted by `bits` more.
// CHECK-LABEL: func.func @padded_pair
// CHECK-NOT: arith.minui
// CHECK: %[[T:.*]] = arith.trunci %{{.*}} : i64 to i32
// CHECK: %[[C0:.*]] = arith.andi %[[T]], %c31_i32 : i32
// CHECK: %[[UP:.*]] = arith.shrui %[[T]], %c5_i32 : i32
// CHECK: %[[C1:.*]] = arith.andi %[[UP]], %c31_i32 : i32
// CHECK: vector.from_elements %[[C0]], %[[C1]] : vector<2xi32>
func.func @padded_pair(%w: memref<2x16x11xi32, 3>, %stage: index, %row: index, %bit: index) -> vector<2xi32> {
  %c = moeq.unpack_codes %w[%stage, %row] bit %bit {bits = 5 : i64, count = 2 : i64, padded}
      : memref<2x16x11xi32, 3> -> vector<2xi32>
  return %c : vector<2xi32>
}

// -----

// A width known at run time (SliM-LLM's group widths in the CPU lowering):
// the mask is (1 << width) - 1; a dynamic row length comes from memref.dim.
// CHECK-LABEL: func.func @dynamic_width
// CHECK-SAME: (%[[W:.*]]: memref<?x?xi32>, %{{.*}}: index, %{{.*}}: index, %[[WIDTH:.*]]: index)
// CHECK: %[[DIM:.*]] = memref.dim %[[W]], %c1
// CHECK: arith.subi %[[DIM]], %c1
// CHECK: %[[W32:.*]] = arith.index_castui %[[WIDTH]] : index to i32
// CHECK: %[[LIMIT:.*]] = arith.shli %c1_i32, %[[W32]] : i32
// CHECK: %[[MASK:.*]] = arith.subi %[[LIMIT]], %c1_i32 : i32
// CHECK: arith.andi %{{.*}}, %[[MASK]] : i32
func.func @dynamic_width(%w: memref<?x?xi32>, %row: index, %bit: index, %width: index) -> i32 {
  %c = moeq.unpack_codes %w[%row] bit %bit width %width {bits = 8 : i64} : memref<?x?xi32> -> i32
  return %c : i32
}

// -----

// (code - zero) * scale in f32: the CPU and SIMT form.
// CHECK-LABEL: func.func @dequantize_f32
// CHECK-SAME: (%[[C:.*]]: i32, %[[S:.*]]: f16, %[[Z:.*]]: f32)
// CHECK: %[[CF:.*]] = arith.uitofp %[[C]] : i32 to f32
// CHECK: %[[SF:.*]] = arith.extf %[[S]] : f16 to f32
// CHECK: %[[D:.*]] = arith.subf %[[CF]], %[[Z]] : f32
// CHECK: %[[R:.*]] = arith.mulf %[[D]], %[[SF]] : f32
// CHECK: return %[[R]]
func.func @dequantize_f32(%c: i32, %s: f16, %z: f32) -> f32 {
  %w = moeq.dequantize_codes %c scale %s zero %z : i32, f16, f32 -> f32
  return %w : f32
}

// -----

// An f16 pair with an integral zero point: the tensor-core form. The codes
// go under the exponent of 1024 (0x64006400 = 1677747200) and the pair
// minus 1024 + zero, times the scale, is exact but for one rounding.
// CHECK-LABEL: func.func @dequantize_f16_pair
// CHECK-SAME: (%[[C:.*]]: vector<2xi32>, %[[S:.*]]: f16, %[[Z:.*]]: f16)
// CHECK: %[[LO:.*]] = vector.extract %[[C]][0]
// CHECK: %[[HI:.*]] = vector.extract %[[C]][1]
// CHECK: %[[UP:.*]] = arith.shli %[[HI]], %c16_i32
// CHECK: %[[BOTH:.*]] = arith.ori %[[LO]], %[[UP]]
// CHECK: %[[BIASED:.*]] = arith.ori %[[BOTH]], %c1677747200_i32
// CHECK: %[[WORD:.*]] = vector.from_elements %[[BIASED]] : vector<1xi32>
// CHECK: %[[PAIR:.*]] = vector.bitcast %[[WORD]] : vector<1xi32> to vector<2xf16>
// CHECK: %[[BIAS:.*]] = arith.addf %[[Z]], %cst : f16
// CHECK: %[[BIAS2:.*]] = vector.broadcast %[[BIAS]] : f16 to vector<2xf16>
// CHECK: %[[S2:.*]] = vector.broadcast %[[S]] : f16 to vector<2xf16>
// CHECK: %[[D:.*]] = arith.subf %[[PAIR]], %[[BIAS2]] : vector<2xf16>
// CHECK: arith.mulf %[[D]], %[[S2]] : vector<2xf16>
func.func @dequantize_f16_pair(%c: vector<2xi32>, %s: f16, %z: f16) -> vector<2xf16> {
  %w = moeq.dequantize_codes %c scale %s zero %z {integral_zero} : vector<2xi32>, f16, f16 -> vector<2xf16>
  return %w : vector<2xf16>
}

// -----

// A fractional zero point (binarised 1-bit groups): computed in f32 and
// rounded once to f16.
// CHECK-LABEL: func.func @dequantize_f16_fractional_zero
// CHECK: arith.uitofp %{{.*}} : vector<2xi32> to vector<2xf32>
// CHECK: arith.subf %{{.*}} : vector<2xf32>
// CHECK: arith.mulf %{{.*}} : vector<2xf32>
// CHECK: arith.truncf %{{.*}} : vector<2xf32> to vector<2xf16>
// CHECK-NOT: 1677747200
func.func @dequantize_f16_fractional_zero(%c: vector<2xi32>, %s: f16, %z: f16) -> vector<2xf16> {
  %w = moeq.dequantize_codes %c scale %s zero %z : vector<2xi32>, f16, f16 -> vector<2xf16>
  return %w : vector<2xf16>
}

// -----

// Level tables: one load per code at start + code, widened to the result.
// CHECK-LABEL: func.func @lookup
// CHECK-SAME: (%[[C:.*]]: vector<2xi32>, %[[L:.*]]: memref<8x64xf16>, %[[ROW:.*]]: index, %[[START:.*]]: index)
// CHECK: %[[C0:.*]] = vector.extract %[[C]][0]
// CHECK: %[[I0:.*]] = arith.index_castui %[[C0]] : i32 to index
// CHECK: %[[E0:.*]] = arith.addi %[[START]], %[[I0]]
// CHECK: %[[L0:.*]] = memref.load %[[L]][%[[ROW]], %[[E0]]] : memref<8x64xf16>
// CHECK: %[[F0:.*]] = arith.extf %[[L0]] : f16 to f32
// CHECK: %[[F1:.*]] = arith.extf %{{.*}} : f16 to f32
// CHECK: vector.from_elements %[[F0]], %[[F1]] : vector<2xf32>
func.func @lookup(%c: vector<2xi32>, %levels: memref<8x64xf16>, %row: index, %start: index) -> vector<2xf32> {
  %w = moeq.lookup_levels %c in %levels[%row] start %start : vector<2xi32>, memref<8x64xf16> -> vector<2xf32>
  return %w : vector<2xf32>
}
