//===- Float16Test.cpp - bf16 / f16 / fp8 conversion tests ----------------===//

#include "moeq/IO/Float16.h"

#include "gtest/gtest.h"

#include <cmath>
#include <limits>

using namespace mlir::moeq::io;

namespace {

TEST(BF16Test, KnownValues) {
  EXPECT_EQ(floatToBF16(1.0f), 0x3f80);
  EXPECT_EQ(floatToBF16(-2.5f), 0xc020);
  EXPECT_EQ(floatToBF16(0.0f), 0x0000);
  EXPECT_EQ(floatToBF16(-0.0f), 0x8000);
  // 65504 = 0x477fe000: the dropped half 0xe000 is above the midpoint.
  EXPECT_EQ(floatToBF16(65504.0f), 0x4780);
  EXPECT_EQ(bf16ToFloat(0x3f80), 1.0f);
  EXPECT_EQ(bf16ToFloat(0xc020), -2.5f);
  EXPECT_EQ(bf16ToFloat(0x4780), 65536.0f);
}

TEST(BF16Test, Subnormals) {
  // Smallest bf16 subnormal is 2^-133.
  float Tiny = std::ldexp(1.0f, -133);
  EXPECT_EQ(floatToBF16(Tiny), 0x0001);
  EXPECT_EQ(bf16ToFloat(0x0001), Tiny);
  EXPECT_EQ(floatToBF16(-Tiny), 0x8001);
  // Smallest float subnormal (2^-149) is below half of 2^-133: rounds to 0.
  EXPECT_EQ(floatToBF16(bitsToFloat(0x00000001)), 0x0000);
}

TEST(BF16Test, InfAndNaN) {
  float Inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(floatToBF16(Inf), 0x7f80);
  EXPECT_EQ(floatToBF16(-Inf), 0xff80);
  EXPECT_TRUE(std::isinf(bf16ToFloat(0x7f80)));
  // Largest finite float rounds up to infinity.
  EXPECT_EQ(floatToBF16(std::numeric_limits<float>::max()), 0x7f80);
  // A NaN whose payload lives only in the dropped bits must stay NaN and
  // must not round into an infinity.
  uint16_t N = floatToBF16(bitsToFloat(0x7f800001));
  EXPECT_TRUE(std::isnan(bf16ToFloat(N)));
  EXPECT_EQ(N, 0x7fc0);
  N = floatToBF16(bitsToFloat(0xffffffff));
  EXPECT_TRUE(std::isnan(bf16ToFloat(N)));
  EXPECT_EQ(N & 0x8000, 0x8000);
  EXPECT_EQ(floatToBF16(std::numeric_limits<float>::quiet_NaN()), 0x7fc0);
}

TEST(BF16Test, RoundsTiesToEven) {
  // Exactly halfway between 0x3f80 (even) and 0x3f81: stays.
  EXPECT_EQ(floatToBF16(bitsToFloat(0x3f808000)), 0x3f80);
  // Halfway between 0x3f81 and 0x3f82 (even): rounds up.
  EXPECT_EQ(floatToBF16(bitsToFloat(0x3f818000)), 0x3f82);
  // Just above / below the midpoint.
  EXPECT_EQ(floatToBF16(bitsToFloat(0x3f808001)), 0x3f81);
  EXPECT_EQ(floatToBF16(bitsToFloat(0x3f807fff)), 0x3f80);
  // Negative values round by magnitude.
  EXPECT_EQ(floatToBF16(bitsToFloat(0xbf818000)), 0xbf82);
}

TEST(BF16Test, AllPatternsRoundTrip) {
  for (uint32_t I = 0; I <= 0xffff; ++I) {
    uint16_t H = uint16_t(I);
    float F = bf16ToFloat(H);
    if (std::isnan(F)) {
      EXPECT_TRUE(std::isnan(bf16ToFloat(floatToBF16(F)))) << I;
      continue;
    }
    ASSERT_EQ(floatToBF16(F), H) << "pattern " << I;
  }
}

TEST(HalfTest, KnownValues) {
  EXPECT_EQ(floatToHalf(1.0f), 0x3c00);
  EXPECT_EQ(floatToHalf(-2.5f), 0xc100);
  EXPECT_EQ(floatToHalf(0.0f), 0x0000);
  EXPECT_EQ(floatToHalf(-0.0f), 0x8000);
  EXPECT_EQ(floatToHalf(65504.0f), 0x7bff);
  EXPECT_EQ(halfToFloat(0x3c00), 1.0f);
  EXPECT_EQ(halfToFloat(0xc100), -2.5f);
  EXPECT_EQ(halfToFloat(0x7bff), 65504.0f);
  EXPECT_EQ(halfToFloat(0x3555), 0.333251953125f);
}

TEST(HalfTest, Overflow) {
  float Inf = std::numeric_limits<float>::infinity();
  // Below the 65504/65536 midpoint: stays finite.
  EXPECT_EQ(floatToHalf(65519.0f), 0x7bff);
  // At the midpoint: ties to even, and "even" is infinity (0x7bff is odd).
  EXPECT_EQ(floatToHalf(65520.0f), 0x7c00);
  EXPECT_EQ(floatToHalf(-65520.0f), 0xfc00);
  EXPECT_EQ(floatToHalf(1e10f), 0x7c00);
  EXPECT_EQ(floatToHalf(Inf), 0x7c00);
  EXPECT_EQ(floatToHalf(-Inf), 0xfc00);
  EXPECT_TRUE(std::isinf(halfToFloat(0x7c00)));
  EXPECT_LT(halfToFloat(0xfc00), 0.0f);
}

TEST(HalfTest, Subnormals) {
  float Tiny = std::ldexp(1.0f, -24); // Smallest half subnormal.
  EXPECT_EQ(floatToHalf(Tiny), 0x0001);
  EXPECT_EQ(halfToFloat(0x0001), Tiny);
  EXPECT_EQ(halfToFloat(0x8001), -Tiny);
  EXPECT_EQ(halfToFloat(0x03ff), std::ldexp(1023.0f, -24));
  EXPECT_EQ(halfToFloat(0x0400), std::ldexp(1.0f, -14));
  EXPECT_EQ(floatToHalf(std::ldexp(1.0f, -14)), 0x0400);
  // 2^-25 is halfway between 0 and the smallest subnormal: ties to 0.
  EXPECT_EQ(floatToHalf(std::ldexp(1.0f, -25)), 0x0000);
  EXPECT_EQ(floatToHalf(-std::ldexp(1.0f, -25)), 0x8000);
  // Slightly above the midpoint rounds up.
  EXPECT_EQ(floatToHalf(std::nextafter(std::ldexp(1.0f, -25), 1.0f)), 0x0001);
  // 1.5 * 2^-24 is halfway between 1 and 2 (even): rounds to 2.
  EXPECT_EQ(floatToHalf(std::ldexp(3.0f, -25)), 0x0002);
  // 2.5 * 2^-24: halfway between 2 (even) and 3.
  EXPECT_EQ(floatToHalf(std::ldexp(5.0f, -25)), 0x0002);
  // Rounding up out of the subnormal range gives the smallest normal.
  EXPECT_EQ(floatToHalf(std::ldexp(2047.0f, -25)), 0x0400);
  // Float subnormals are far below half precision.
  EXPECT_EQ(floatToHalf(bitsToFloat(0x00000001)), 0x0000);
}

TEST(HalfTest, NaN) {
  EXPECT_EQ(floatToHalf(std::numeric_limits<float>::quiet_NaN()), 0x7e00);
  // Payload only in bits that do not fit: still NaN, not infinity.
  uint16_t N = floatToHalf(bitsToFloat(0x7f800001));
  EXPECT_EQ(N & 0x7c00, 0x7c00);
  EXPECT_NE(N & 0x03ff, 0);
  EXPECT_TRUE(std::isnan(halfToFloat(N)));
  EXPECT_TRUE(std::isnan(halfToFloat(0x7c01)));
  EXPECT_TRUE(std::isnan(halfToFloat(0xfe00)));
}

TEST(HalfTest, RoundsTiesToEven) {
  float Ulp = std::ldexp(1.0f, -10); // ulp of half at 1.0
  // 1 + ulp/2: halfway between 0x3c00 (even) and 0x3c01.
  EXPECT_EQ(floatToHalf(1.0f + Ulp / 2), 0x3c00);
  // 1 + 3ulp/2: halfway between 0x3c01 and 0x3c02 (even).
  EXPECT_EQ(floatToHalf(1.0f + 3 * Ulp / 2), 0x3c02);
  EXPECT_EQ(floatToHalf(std::nextafter(1.0f + Ulp / 2, 2.0f)), 0x3c01);
  EXPECT_EQ(floatToHalf(std::nextafter(1.0f + Ulp / 2, 0.0f)), 0x3c00);
}

TEST(HalfTest, AllPatternsRoundTrip) {
  for (uint32_t I = 0; I <= 0xffff; ++I) {
    uint16_t H = uint16_t(I);
    float F = halfToFloat(H);
    if (std::isnan(F)) {
      EXPECT_TRUE(std::isnan(halfToFloat(floatToHalf(F)))) << I;
      continue;
    }
    ASSERT_EQ(floatToHalf(F), H) << "pattern " << I;
  }
}

/// Rounding must agree with an exact reference: pick the nearer of the two
/// neighbouring halves (computed in double, which holds both exactly), ties
/// to the even one.
TEST(HalfTest, MatchesExactRoundingOnMidpointsAndNeighbours) {
  for (uint32_t I = 0; I < 0x7bff; ++I) {
    double Lo = halfToFloat(uint16_t(I));
    double Hi = halfToFloat(uint16_t(I + 1));
    double Mid = (Lo + Hi) / 2; // Exactly representable as a float.
    uint16_t Even = (I & 1) ? uint16_t(I + 1) : uint16_t(I);
    ASSERT_EQ(floatToHalf(float(Mid)), Even) << I;
    ASSERT_EQ(floatToHalf(std::nextafter(float(Mid), 0.0f)), uint16_t(I)) << I;
    ASSERT_EQ(floatToHalf(std::nextafter(float(Mid), 1e30f)), uint16_t(I + 1))
        << I;
  }
}

#ifdef __FLT16_MAX__
/// Cross-check against the compiler's _Float16 conversion on a spread of
/// float bit patterns.
TEST(HalfTest, MatchesCompilerFloat16) {
  uint64_t State = 12345;
  for (int I = 0; I < 2000000; ++I) {
    State = State * 6364136223846793005ULL + 1442695040888963407ULL;
    float F = bitsToFloat(uint32_t(State >> 32));
    if (std::isnan(F))
      continue;
    _Float16 H = static_cast<_Float16>(F);
    uint16_t Bits;
    std::memcpy(&Bits, &H, sizeof(Bits));
    ASSERT_EQ(floatToHalf(F), Bits)
        << "float bits " << std::hex << floatToBits(F);
    ASSERT_EQ(floatToBits(halfToFloat(Bits)),
              floatToBits(static_cast<float>(H)));
  }
}
#endif

TEST(Float8Test, E4M3) {
  EXPECT_EQ(float8E4M3FNToFloat(0x38), 1.0f);
  EXPECT_EQ(float8E4M3FNToFloat(0xc0), -2.0f);
  EXPECT_EQ(float8E4M3FNToFloat(0x7e), 448.0f);
  EXPECT_EQ(float8E4M3FNToFloat(0x01), std::ldexp(1.0f, -9));
  EXPECT_EQ(float8E4M3FNToFloat(0x07), std::ldexp(7.0f, -9));
  EXPECT_EQ(float8E4M3FNToFloat(0x08), std::ldexp(1.0f, -6));
  EXPECT_TRUE(std::isnan(float8E4M3FNToFloat(0x7f)));
  EXPECT_TRUE(std::isnan(float8E4M3FNToFloat(0xff)));
  // S.1111.110 is a normal number in the FN variant, not infinity.
  EXPECT_EQ(float8E4M3FNToFloat(0xfe), -448.0f);
}

TEST(Float8Test, E5M2) {
  EXPECT_EQ(float8E5M2ToFloat(0x3c), 1.0f);
  EXPECT_EQ(float8E5M2ToFloat(0x7b), 57344.0f);
  EXPECT_TRUE(std::isinf(float8E5M2ToFloat(0x7c)));
  EXPECT_TRUE(std::isnan(float8E5M2ToFloat(0x7d)));
  EXPECT_EQ(float8E5M2ToFloat(0x01), std::ldexp(1.0f, -16));
}

} // namespace
