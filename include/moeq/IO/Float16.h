//===- Float16.h - bf16 / f16 / fp8 <-> f32 conversions ---------*- C++ -*-===//
//
// Bit-exact scalar conversions between IEEE binary32 and the 16-bit and 8-bit
// storage formats found in checkpoints. Everything is done on integer bit
// patterns so that the result does not depend on the host FPU, its rounding
// mode, or the compiler's choice of instructions: the same input always
// produces the same bytes, which checkpoint determinism relies on.
//
// Rounding is round-to-nearest, ties-to-even (what PyTorch and numpy do).
// NaNs stay NaN (quieted, sign kept), infinities stay infinite.
//
//===----------------------------------------------------------------------===//

#ifndef MOEQ_IO_FLOAT16_H
#define MOEQ_IO_FLOAT16_H

#include <cstdint>
#include <cstring>

namespace mlir::moeq::io {

/// The IEEE binary32 bit pattern of \p F, and back.
inline uint32_t floatToBits(float F) {
  uint32_t U;
  std::memcpy(&U, &F, sizeof(U));
  return U;
}
inline float bitsToFloat(uint32_t U) {
  float F;
  std::memcpy(&F, &U, sizeof(F));
  return F;
}

//===----------------------------------------------------------------------===//
// bfloat16: the upper half of a binary32.
//===----------------------------------------------------------------------===//

inline float bf16ToFloat(uint16_t H) { return bitsToFloat(uint32_t(H) << 16); }

inline uint16_t floatToBF16(float F) {
  uint32_t U = floatToBits(F);
  // Rounding a NaN could carry into the exponent and turn it into an infinity
  // (or truncation could drop all payload bits), so force the quiet bit.
  if ((U & 0x7fffffffu) > 0x7f800000u)
    return uint16_t((U >> 16) | 0x0040u);
  // Adding 0x7fff plus the lowest kept bit rounds to nearest with ties to
  // even; overflow past the largest finite value correctly yields infinity.
  U += 0x7fffu + ((U >> 16) & 1u);
  return uint16_t(U >> 16);
}

//===----------------------------------------------------------------------===//
// IEEE binary16.
//===----------------------------------------------------------------------===//

inline float halfToFloat(uint16_t H) {
  uint32_t Sign = uint32_t(H & 0x8000u) << 16;
  uint32_t Exp = (H >> 10) & 0x1fu;
  uint32_t Mant = H & 0x3ffu;
  if (Exp == 0x1f) // Inf / NaN: keep the payload.
    return bitsToFloat(Sign | 0x7f800000u | (Mant << 13));
  if (Exp != 0) // Normal: rebias 15 -> 127.
    return bitsToFloat(Sign | ((Exp + 112) << 23) | (Mant << 13));
  if (Mant == 0)
    return bitsToFloat(Sign);
  // Subnormal half: every one is a normal float; shift the leading one into
  // the implicit position.
  int32_t E = -14;
  while (!(Mant & 0x400u)) {
    Mant <<= 1;
    --E;
  }
  Mant &= 0x3ffu;
  return bitsToFloat(Sign | (uint32_t(E + 127) << 23) | (Mant << 13));
}

inline uint16_t floatToHalf(float F) {
  uint32_t U = floatToBits(F);
  uint16_t Sign = uint16_t((U >> 16) & 0x8000u);
  uint32_t Abs = U & 0x7fffffffu;
  if (Abs > 0x7f800000u) // NaN: keep the top payload bits, force quiet.
    return Sign | 0x7e00u | uint16_t((Abs >> 13) & 0x3ffu);
  // 65520 is the midpoint between 65504 (max half, odd mantissa) and 2^16;
  // ties-to-even sends it, and everything above, to infinity.
  if (Abs >= 0x477ff000u)
    return Sign | 0x7c00u;
  if (Abs >= 0x38800000u) { // Result is a normal half (|F| >= 2^-14).
    uint32_t V = Abs - (uint32_t(127 - 15) << 23);
    V += 0x0fffu + ((V >> 13) & 1u);
    return Sign | uint16_t(V >> 13);
  }
  // Result is subnormal (units of 2^-24) or zero. Work on the full 24-bit
  // significand and round the shifted-out bits by hand.
  uint32_t Exp = Abs >> 23;
  if (Exp < 102) // |F| < 2^-25: below half the smallest subnormal.
    return Sign;
  uint32_t Mant = (Abs & 0x7fffffu) | 0x800000u;
  uint32_t Shift = 126 - Exp; // in [14, 24]
  uint32_t Q = Mant >> Shift;
  uint32_t Rem = Mant & ((1u << Shift) - 1);
  uint32_t Half = 1u << (Shift - 1);
  if (Rem > Half || (Rem == Half && (Q & 1u)))
    ++Q; // May carry into 0x400, which is exactly the smallest normal.
  return Sign | uint16_t(Q);
}

//===----------------------------------------------------------------------===//
// 8-bit floats (decode only: checkpoints store them, we never produce them).
//===----------------------------------------------------------------------===//

/// OCP FP8 E4M3 "FN" (the safetensors F8_E4M3 / torch.float8_e4m3fn): bias 7,
/// no infinities, S.1111.111 is NaN, max finite 448.
inline float float8E4M3FNToFloat(uint8_t B) {
  uint32_t Sign = uint32_t(B & 0x80u) << 24;
  uint32_t Exp = (B >> 3) & 0xfu;
  uint32_t Mant = B & 0x7u;
  if (Exp == 0xf && Mant == 0x7)
    return bitsToFloat(Sign | 0x7fc00000u);
  if (Exp != 0)
    return bitsToFloat(Sign | ((Exp + 120) << 23) | (Mant << 20));
  if (Mant == 0)
    return bitsToFloat(Sign);
  int32_t E = -6;
  while (!(Mant & 0x8u)) {
    Mant <<= 1;
    --E;
  }
  Mant &= 0x7u;
  return bitsToFloat(Sign | (uint32_t(E + 127) << 23) | (Mant << 20));
}

/// FP8 E5M2 is binary16 with the low 8 mantissa bits dropped.
inline float float8E5M2ToFloat(uint8_t B) {
  return halfToFloat(uint16_t(uint16_t(B) << 8));
}

} // namespace mlir::moeq::io

#endif // MOEQ_IO_FLOAT16_H
