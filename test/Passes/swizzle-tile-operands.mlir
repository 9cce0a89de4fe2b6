// RUN: moeq-opt %s -split-input-file -verify-diagnostics -moeq-swizzle-tile-operands | FileCheck %s

// An activation tile of rows of 32 halves (64 bytes), written by 16-byte
// cp.async chunks and read by ldmatrix: upstream's XOR swizzle permutes
// the 16-byte unit of every access by the row (here (row & 6) << 2, two
// rows per 128-byte line), the same way for the copy and the read.
// CHECK-LABEL: func.func @activation_tile
// CHECK-SAME: (%[[SRC:.*]]: memref<?x128xf16, 1>, %[[RAW:.*]]: memref<?xi8, #gpu.address_space<workgroup>>, %[[ROW:.*]]: index, %[[COL:.*]]: index)
// CHECK: %[[A:.*]] = memref.view %[[RAW]]
// CHECK: %[[M1:.*]] = arith.andi %[[ROW]], %c6{{.*}}
// CHECK: %[[S1:.*]] = arith.shli %[[M1]], %c2{{.*}}
// CHECK: %[[C1:.*]] = arith.xori %[[COL]], %[[S1]]
// CHECK: nvgpu.device_async_copy %[[SRC]][%[[ROW]], %[[COL]]], %[[A]][%c0, %[[ROW]], %[[C1]]], 8
// CHECK: %[[M2:.*]] = arith.andi %[[ROW]], %c6{{.*}}
// CHECK: %[[S2:.*]] = arith.shli %[[M2]], %c2{{.*}}
// CHECK: %[[C2:.*]] = arith.xori %[[COL]], %[[S2]]
// CHECK: nvgpu.ldmatrix %[[A]][%c0, %[[ROW]], %[[C2]]]
func.func @activation_tile(%src: memref<?x128xf16, 1>, %raw: memref<?xi8, #gpu.address_space<workgroup>>, %row: index,
                           %col: index) -> vector<4x2xf16> {
  %c0 = arith.constant 0 : index
  %a = memref.view %raw[%c0][] : memref<?xi8, #gpu.address_space<workgroup>> to memref<2x32x32xf16, #gpu.address_space<workgroup>>
  %t = nvgpu.device_async_copy %src[%row, %col], %a[%c0, %row, %col], 8
      : memref<?x128xf16, 1> to memref<2x32x32xf16, #gpu.address_space<workgroup>>
  %f = nvgpu.ldmatrix %a[%c0, %row, %col] {numTiles = 4 : i32, transpose = false}
      : memref<2x32x32xf16, #gpu.address_space<workgroup>> -> vector<4x2xf16>
  return %f : vector<4x2xf16>
}

// -----

// Tiles the pass leaves alone: packed weight words read by plain loads
// (no ldmatrix), a tile whose address is taken (wgmma descriptors), and
// rows of 16 bytes (eight fill a 128-byte line: no conflicts to avoid).
// CHECK-LABEL: func.func @not_swizzled
// CHECK-NOT: arith.xori
func.func @not_swizzled(%src: memref<?x128xf16, 1>, %raw: memref<?xi8, #gpu.address_space<workgroup>>, %i: index) -> (i32, index, vector<4x2xf16>) {
  %c0 = arith.constant 0 : index
  %c8192 = arith.constant 8192 : index
  %c16384 = arith.constant 16384 : index
  %w = memref.view %raw[%c0][] : memref<?xi8, #gpu.address_space<workgroup>> to memref<2x64x12xi32, #gpu.address_space<workgroup>>
  %v = memref.load %w[%c0, %i, %i] : memref<2x64x12xi32, #gpu.address_space<workgroup>>
  %a = memref.view %raw[%c8192][] : memref<?xi8, #gpu.address_space<workgroup>> to memref<2x32x32xf16, #gpu.address_space<workgroup>>
  %t = nvgpu.device_async_copy %src[%i, %i], %a[%c0, %i, %i], 8 : memref<?x128xf16, 1> to memref<2x32x32xf16, #gpu.address_space<workgroup>>
  %p = memref.extract_aligned_pointer_as_index %a : memref<2x32x32xf16, #gpu.address_space<workgroup>> -> index
  %n = memref.view %raw[%c16384][] : memref<?xi8, #gpu.address_space<workgroup>> to memref<2x32x8xf16, #gpu.address_space<workgroup>>
  %t2 = nvgpu.device_async_copy %src[%i, %i], %n[%c0, %i, %c0], 8 : memref<?x128xf16, 1> to memref<2x32x8xf16, #gpu.address_space<workgroup>>
  %f = nvgpu.ldmatrix %n[%c0, %i, %c0] {numTiles = 4 : i32, transpose = false} : memref<2x32x8xf16, #gpu.address_space<workgroup>> -> vector<4x2xf16>
  return %v, %p, %f : i32, index, vector<4x2xf16>
}

// -----

// Upstream refuses a function with a subview anywhere (it does no alias
// analysis): the tile the pass chose cannot be swizzled, which is an
// error rather than an unswizzled, unpadded tile.
func.func @refused(%src: memref<?x128xf16, 1>, %raw: memref<?xi8, #gpu.address_space<workgroup>>,
                   %other: memref<64x64xf32>, %i: index) -> vector<4x2xf16> {
  %c0 = arith.constant 0 : index
  // expected-error @below {{cannot swizzle this shared-memory tile (its rows are not padded)}}
  %a = memref.view %raw[%c0][] : memref<?xi8, #gpu.address_space<workgroup>> to memref<2x32x32xf16, #gpu.address_space<workgroup>>
  %s = memref.subview %other[0, 0] [8, 8] [1, 1] : memref<64x64xf32> to memref<8x8xf32, strided<[64, 1]>>
  %t = nvgpu.device_async_copy %src[%i, %i], %a[%c0, %i, %i], 8 : memref<?x128xf16, 1> to memref<2x32x32xf16, #gpu.address_space<workgroup>>
  %f = nvgpu.ldmatrix %a[%c0, %i, %i] {numTiles = 4 : i32, transpose = false} : memref<2x32x32xf16, #gpu.address_space<workgroup>> -> vector<4x2xf16>
  return %f : vector<4x2xf16>
}
