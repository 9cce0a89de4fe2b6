//===- QuantizerTest.cpp - RTN quantization and packing -------------------===//
#include "moeq/Quant/Quantizer.h"

#include "gtest/gtest.h"

#include <algorithm>
#include <cmath>
#include <random>

using namespace mlir::moeq::quant;

namespace {

QuantizedMatrix quantizeOrDie(const std::vector<float> &w, int64_t rows,
                              int64_t cols, Scheme scheme) {
  auto q = quantizeRTN(w, rows, cols, scheme);
  EXPECT_TRUE(static_cast<bool>(q)) << llvm::toString(q.takeError());
  return std::move(*q);
}

/// True (and the error consumed) when quantization fails.
bool fails(llvm::Expected<QuantizedMatrix> q) {
  if (q)
    return false;
  llvm::consumeError(q.takeError());
  return true;
}

std::vector<float> randomWeights(int64_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::vector<float> w(n);
  for (float &x : w)
    x = float(int32_t(gen() % 2001) - 1000) / 500.f; // in [-2, 2]
  return w;
}

TEST(QuantizerTest, AsymmetricKnownAnswer) {
  // 2 bits, one group of 32: min -1, max 2 -> scale 1, zero 1.
  std::vector<float> w(32, 0.f);
  w[0] = -1.f;
  w[1] = 0.5f; // ties to even: round(0.5) = 0 -> code 1 -> 0
  w[2] = 2.f;
  w[3] = 1.4f;
  QuantizedMatrix q = quantizeOrDie(w, 1, 32, {2, 32, false});
  EXPECT_EQ(q.scales[0], 1.f);
  EXPECT_EQ(q.zeros[0], 1.f);
  EXPECT_EQ(q.codes[0], 0);
  EXPECT_EQ(q.codes[1], 1);
  EXPECT_EQ(q.codes[2], 3);
  EXPECT_EQ(q.codes[3], 2);
  std::vector<float> d = dequantize(q);
  EXPECT_EQ(d[0], -1.f);
  EXPECT_EQ(d[1], 0.f);
  EXPECT_EQ(d[2], 2.f);
  EXPECT_EQ(d[3], 1.f);
}

TEST(QuantizerTest, SymmetricKnownAnswer) {
  // 4 bits symmetric: max|w| = 7 -> scale 1, middle code 8.
  std::vector<float> w(8, 0.f);
  w[0] = -7.f;
  w[1] = 3.5f; // ties to even -> 4
  w[2] = 7.f;
  QuantizedMatrix q = quantizeOrDie(w, 1, 8, {4, 0, true});
  EXPECT_EQ(q.scales[0], 1.f);
  EXPECT_EQ(q.zeros[0], 8.f);
  EXPECT_EQ(q.codes[0], 1);
  EXPECT_EQ(q.codes[1], 12);
  EXPECT_EQ(q.codes[2], 15);
  EXPECT_EQ(q.codes[3], 8);
}

TEST(QuantizerTest, ScalesAreHalfPrecision) {
  std::vector<float> w = randomWeights(4 * 128, 1);
  QuantizedMatrix q = quantizeOrDie(w, 4, 128, {3, 32, false});
  for (float s : q.scales) {
    // An f16 has an 11-bit significand: scaling by 2^k leaves an integer < 2^11.
    int exp;
    float mant = std::frexp(s, &exp);
    float scaled = std::ldexp(mant, 11);
    EXPECT_EQ(scaled, std::floor(scaled)) << s;
  }
}

// Every dequantized weight is within half a step of the original (the group
// range always contains the weight for asymmetric RTN, up to the f16
// rounding of the scale, which may move the extremes by one code).
TEST(QuantizerTest, ErrorBoundedByHalfStep) {
  for (unsigned bits : {2u, 3u, 4u, 8u}) {
    std::vector<float> w = randomWeights(8 * 256, bits);
    QuantizedMatrix q = quantizeOrDie(w, 8, 256, {bits, 128, false});
    std::vector<float> d = dequantize(q);
    for (int64_t i = 0; i < 8 * 256; ++i) {
      float step = q.scale(i / 256, i % 256);
      EXPECT_LE(std::fabs(d[i] - w[i]), 0.5f * step * (1 + 1e-3f) + 2e-3f * step)
          << "bits " << bits << " element " << i;
    }
  }
}

TEST(QuantizerTest, MoreBitsLessError) {
  std::vector<float> w = randomWeights(16 * 256, 7);
  double previous = INFINITY;
  for (unsigned bits = 2; bits <= 8; bits += 2) {
    std::vector<float> d = dequantize(quantizeOrDie(w, 16, 256, {bits, 64, false}));
    double err = 0;
    for (size_t i = 0; i < w.size(); ++i)
      err += (d[i] - w[i]) * (d[i] - w[i]);
    EXPECT_LT(err, previous) << bits;
    previous = err;
  }
}

TEST(QuantizerTest, ConstantGroupGetsUnitScale) {
  std::vector<float> w(64, 0.25f);
  QuantizedMatrix q = quantizeOrDie(w, 1, 64, {4, 32, false});
  EXPECT_EQ(q.scales[0], 1.f);
  EXPECT_EQ(dequantize(q)[5], 0.f); // round(0.25) + round(-0.25) = 0
}

TEST(QuantizerTest, OneBitBinarisesAroundTheMean) {
  // Group [1, 2, 3, 6] x 8: mean 3, mean |w - 3| = 1.5, so the values are
  // 1.5 and 4.5; scale 3, zero 1/2 - 3/3 = -1/2.
  std::vector<float> w;
  for (int i = 0; i < 8; ++i)
    w.insert(w.end(), {1.f, 2.f, 3.f, 6.f});
  QuantizedMatrix q = quantizeOrDie(w, 1, 32, {1, 32, false});
  EXPECT_EQ(q.scales[0], 3.f);
  EXPECT_EQ(q.zeros[0], -0.5f);
  std::vector<float> d = dequantize(q);
  EXPECT_EQ(std::vector<float>(d.begin(), d.begin() + 4),
            (std::vector<float>{1.5f, 1.5f, 4.5f, 4.5f}));
  // The dequantized group keeps the group's mean (the former min/max rule,
  // scale 5 and zero 0, gave 0, 0, 5, 5: mean 2.5).
  double mean = 0;
  for (float v : d)
    mean += v;
  EXPECT_DOUBLE_EQ(mean / d.size(), 3.0);
  // A constant group is reproduced exactly.
  QuantizedMatrix c = quantizeOrDie(std::vector<float>(32, -0.75f), 1, 32, {1, 32, false});
  for (float v : dequantize(c))
    EXPECT_EQ(v, -0.75f);
}

TEST(QuantizerTest, RejectsNonFiniteWeights) {
  std::vector<float> w(64, 1.f);
  w[37] = NAN;
  auto q = quantizeRTN(w, 2, 32, {4, 32, false});
  ASSERT_FALSE(static_cast<bool>(q));
  std::string msg = llvm::toString(q.takeError());
  EXPECT_NE(msg.find("row 1, column 5"), std::string::npos) << msg;
}

TEST(QuantizerTest, RejectsBadShapes) {
  std::vector<float> w(96, 1.f);
  EXPECT_TRUE(fails(quantizeRTN(w, 1, 96, {4, 64, false})));
  EXPECT_TRUE(fails(quantizeRTN(w, 1, 96, {9, 0, false})));
  // (Any width packs: 33 x 4-bit codes take two words, the second padded.)
  std::vector<float> odd(33, 1.f);
  EXPECT_FALSE(fails(quantizeRTN(odd, 1, 33, {4, 0, false})));
  std::vector<float> small(32, 1.f);
  EXPECT_TRUE(fails(quantizeRTN(small, 1, 32, {1, 0, true})));
}

TEST(PackingTest, FourBitLayout) {
  QuantizedMatrix q;
  q.rows = 1;
  q.cols = 8;
  q.scheme = {4, 0, false};
  q.codes = {0, 1, 2, 3, 4, 5, 6, 7};
  std::vector<uint32_t> words = packCodes(q);
  ASSERT_EQ(words.size(), 1u);
  EXPECT_EQ(words[0], 0x76543210u);
}

TEST(PackingTest, ThreeBitCodesStraddleWords) {
  QuantizedMatrix q;
  q.rows = 1;
  q.cols = 32;
  q.scheme = {3, 0, false};
  q.codes.assign(32, 0);
  q.codes[10] = 7; // bits 30..32: two bits in word 0, one in word 1
  std::vector<uint32_t> words = packCodes(q);
  ASSERT_EQ(words.size(), 3u);
  EXPECT_EQ(words[0], 0xC0000000u);
  EXPECT_EQ(words[1], 0x1u);
  EXPECT_EQ(words[2], 0u);
}

TEST(PackingTest, RoundTripAllWidths) {
  std::mt19937 gen(3);
  for (unsigned bits = 1; bits <= 8; ++bits) {
    QuantizedMatrix q;
    q.rows = 3;
    q.cols = 64;
    q.scheme = {bits, 0, false};
    q.codes.resize(q.rows * q.cols);
    for (uint8_t &c : q.codes)
      c = uint8_t(gen() & ((1u << bits) - 1));
    std::vector<uint32_t> words = packCodes(q);
    EXPECT_EQ(int64_t(words.size()), q.rows * q.cols * bits / 32);
    EXPECT_EQ(unpackCodes(words, q.rows, q.cols, bits), q.codes) << bits;
  }
}

/// Reference packing, one bit at a time: bit j of code c of a row goes to
/// bit c * bits + j of the row's little-endian stream of 32-bit words; a
/// row takes ceil(cols * bits / 32) words, zero past its last code.
std::vector<uint32_t> packBitByBit(const QuantizedMatrix &q) {
  int64_t wordsPerRow = (q.cols * q.scheme.bits + 31) / 32;
  std::vector<uint32_t> words(q.rows * wordsPerRow, 0);
  for (int64_t r = 0; r < q.rows; ++r)
    for (int64_t c = 0; c < q.cols; ++c)
      for (unsigned j = 0; j < q.scheme.bits; ++j) {
        int64_t bit = c * q.scheme.bits + j;
        if ((q.codes[r * q.cols + c] >> j) & 1)
          words[r * wordsPerRow + bit / 32] |= 1u << (bit % 32);
      }
  return words;
}

// The packing fast paths (byte-wise for 1, 2, 4 and 8 bits, word-wise,
// the 64-bit accumulator) against the bit-by-bit definition, including rows
// whose codes end inside a word (100 x 3 bits: 9 words and 12 bits, padded
// to 10 words) or inside a byte (100 x 1 bit), and the round trip.
TEST(PackingTest, EveryWidthMatchesBitByBitPacking) {
  std::mt19937 gen(11);
  for (unsigned bits = 1; bits <= 8; ++bits)
    for (int64_t cols : {32, 96, 160, 4096, 100, 7, 2880, 200}) {
      QuantizedMatrix q;
      q.rows = 5;
      q.cols = cols;
      q.scheme = {bits, 0, false};
      q.codes.resize(q.rows * q.cols);
      for (uint8_t &c : q.codes)
        c = uint8_t(gen() & ((1u << bits) - 1));
      std::vector<uint32_t> words = packCodes(q);
      EXPECT_EQ(words, packBitByBit(q)) << bits << " bits, " << cols << " columns";
      EXPECT_EQ(int64_t(words.size()), q.rows * q.scheme.wordsPerRow(cols));
      EXPECT_EQ(unpackCodes(words, q.rows, q.cols, bits), q.codes) << bits << " bits, " << cols;
    }
}

TEST(PackingTest, PaddedRowLayout) {
  QuantizedMatrix q;
  q.rows = 2;
  q.cols = 12; // 36 bits: two words per row, 28 bits of padding
  q.scheme = {3, 0, false};
  q.codes.assign(24, 0);
  q.codes[11] = 7; // row 0, stream bits 33..35: word 1, bits 1..3
  q.codes[12] = 5; // row 1's first code, at the start of its own word
  std::vector<uint32_t> words = packCodes(q);
  ASSERT_EQ(words.size(), 4u);
  EXPECT_EQ(words[0], 0u);
  EXPECT_EQ(words[1], 0xEu);
  EXPECT_EQ(words[2], 5u);
  EXPECT_EQ(words[3], 0u);
  EXPECT_EQ(unpackCodes(words, 2, 12, 3), q.codes);
}

/// Weights that exercise the quantizer's vector loops: exact ties
/// (k + 1/2 steps of an f16 scale), both zeros, extremes in a group's
/// last elements (past the last whole vector of the range search).
std::vector<float> awkwardWeights(int64_t rows, int64_t cols, int64_t group,
                                  unsigned seed) {
  std::mt19937 gen(seed);
  std::vector<float> w(rows * cols);
  for (int64_t i = 0; i < rows * cols; ++i) {
    switch (gen() % 5) {
    case 0:
      w[i] = (float(int32_t(gen() % 31) - 15) + 0.5f) * 0.125f; // ties
      break;
    case 1:
      w[i] = gen() % 2 ? 0.f : -0.f;
      break;
    default:
      w[i] = float(int32_t(gen() % 2001) - 1000) / 500.f;
    }
  }
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < cols / group; ++g) {
      float *last = w.data() + r * cols + (g + 1) * group - 1;
      if (g % 3 == 0)
        *last = 3.f; // the maximum in the tail
      else if (g % 3 == 1)
        *last = -3.f; // the minimum in the tail
    }
  return w;
}

// quantizeRTN's vectorized code loop and range search against the
// definitions: each group's scale and zero are those of
// Scheme::forGroup on the group alone, computed from std::minmax_element,
// and every code is quantizeValue of its weight.
TEST(QuantizerTest, VectorLoopsMatchScalarDefinition) {
  for (bool symmetric : {false, true})
    for (unsigned bits = 1; bits <= 8; ++bits)
      for (int64_t group : {0, 32, 128}) {
        if (symmetric && bits == 1)
          continue;
        int64_t rows = 4, cols = group ? 256 : 36 * 8; // 36: a ragged tail
        Scheme scheme{bits, group, symmetric};
        std::vector<float> w = awkwardWeights(rows, cols, group ? group : cols, bits);
        QuantizedMatrix q = quantizeOrDie(w, rows, cols, scheme);
        int64_t width = scheme.groupWidth(cols);
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t g = 0; g < cols / width; ++g) {
            llvm::ArrayRef<float> values(w.data() + r * cols + g * width, width);
            auto [scale, zero] = groupParams(values, scheme.forGroup(g));
            EXPECT_EQ(q.scale(r, g * width), scale);
            EXPECT_EQ(q.zero(r, g * width), zero);
            if (!symmetric && bits > 1) {
              auto [lo, hi] = std::minmax_element(values.begin(), values.end());
              float step = (*hi - *lo) / float(scheme.maxCode());
              EXPECT_NEAR(scale, step, step * 1e-3f) << "row " << r << " group " << g;
            }
            for (int64_t c = 0; c < width; ++c) {
              int64_t i = r * cols + g * width + c;
              ASSERT_EQ(q.codes[i], quantizeValue(w[i], scale, zero, scheme.maxCode()))
                  << bits << " bits, group " << group << ", row " << r << ", column "
                  << g * width + c;
            }
          }
      }
}

} // namespace

// Per-token dynamic activation quantization, worked by hand: row
// [1, -2, 0.5, 4] has max |x| = 4.
TEST(ActivationQuantization, KnownAnswers) {
  std::vector<float> rows{1.f, -2.f, 0.5f, 4.f, 0.f, 0.f, 0.f, 0.f};
  std::vector<float> a8 = rows;
  fakeQuantizeActivations(a8, 4, 8); // scale 4/127: codes 32, -64 (tie to even), 16, 127
  float s8 = 4.f / 127.f;
  EXPECT_FLOAT_EQ(a8[0], 32 * s8);
  EXPECT_FLOAT_EQ(a8[1], -64 * s8);
  EXPECT_FLOAT_EQ(a8[2], 16 * s8);
  EXPECT_FLOAT_EQ(a8[3], 4.f);
  for (int i = 4; i < 8; ++i)
    EXPECT_EQ(a8[i], 0.f); // an all-zero row stays zero
  std::vector<double> a4{1.0, -2.2, 0.5, 4.0};
  fakeQuantizeActivations(a4, 4, 4); // scale 4/7: codes 2 (1.75), -4 (-3.85), 1, 7
  float s4 = 4.f / 7.f;
  EXPECT_FLOAT_EQ(float(a4[0]), 2 * s4);
  EXPECT_FLOAT_EQ(float(a4[1]), -4 * s4);
  EXPECT_FLOAT_EQ(float(a4[2]), 1 * s4);
  EXPECT_FLOAT_EQ(float(a4[3]), 4.f);
  std::vector<float> a16 = rows;
  fakeQuantizeActivations(a16, 4, 16);
  EXPECT_EQ(a16, rows);
}
