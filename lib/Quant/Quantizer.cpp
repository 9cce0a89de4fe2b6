//===- Quantizer.cpp - round-to-nearest quantization and packing ----------===//
#include "moeq/Quant/Quantizer.h"
#include "moeq/IO/Float16.h"

#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/SwapByteOrder.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

using namespace mlir::moeq::quant;

int64_t Scheme::rowBits(int64_t cols) const {
  if (groupBits.empty())
    return cols * int64_t(bits);
  int64_t total = 0;
  for (uint8_t b : groupBits)
    total += b;
  return total * groupWidth(cols);
}

int64_t Scheme::bitOffset(int64_t col, int64_t cols) const {
  if (groupBits.empty())
    return col * int64_t(bits);
  int64_t width = groupWidth(cols), group = col / width, before = 0;
  for (int64_t g = 0; g < group; ++g)
    before += groupBits[g];
  return before * width + (col - group * width) * groupBits[group];
}

llvm::Error mlir::moeq::quant::checkShape(const Scheme &scheme, int64_t rows,
                                    int64_t cols) {
  if (!scheme.groupBits.empty()) {
    if (scheme.levelTable)
      return llvm::createStringError("level tables and group bits do not combine");
    if (scheme.groupSize <= 0 || cols % scheme.groupSize ||
        int64_t(scheme.groupBits.size()) != cols / scheme.groupSize)
      return llvm::createStringError(llvm::formatv(
          "group bits need one width per group of {0} columns, got {1} widths for {2} "
          "columns",
          scheme.groupSize, scheme.groupBits.size(), cols));
    for (int64_t g = 0, e = scheme.groupBits.size(); g < e; ++g)
      if (llvm::Error err = checkShape(scheme.forGroup(g), rows, scheme.groupSize))
        return llvm::createStringError(llvm::formatv(
            "column group {0}: {1}", g, llvm::toString(std::move(err))));
    return llvm::Error::success();
  }
  if (scheme.levelTable && (scheme.bits > 4 || scheme.symmetric))
    return llvm::createStringError(llvm::formatv(
        "level tables need an asymmetric scheme of 1-4 bits, got {0} bits{1}", scheme.bits,
        scheme.symmetric ? ", symmetric" : ""));
  if (scheme.bits < 1 || scheme.bits > 8)
    return llvm::createStringError(
        llvm::formatv("quantizer supports 1-8 bits, got {0}", scheme.bits));
  if (rows <= 0 || cols <= 0)
    return llvm::createStringError("quantizer needs a non-empty matrix");
  if (scheme.groupSize < 0 || (scheme.groupSize && cols % scheme.groupSize))
    return llvm::createStringError(llvm::formatv(
        "{0} columns are not a multiple of the group size {1}", cols,
        scheme.groupSize));
  if (scheme.bits == 1 && scheme.symmetric)
    return llvm::createStringError(
        "1-bit symmetric quantization is binarisation, which this quantizer "
        "does not implement; use an asymmetric 1-bit scheme");
  return llvm::Error::success();
}

/// Rounds to the nearest f16 value, so that storage reproduces it exactly.
static float roundToHalf(float value) {
  return mlir::moeq::io::halfToFloat(mlir::moeq::io::floatToHalf(value));
}

/// Scale and zero point of a group whose range is [lo, hi] (lo <= 0 <= hi
/// is not required).
static std::pair<float, float> rangeParams(float lo, float hi, float maxAbs,
                                           const Scheme &scheme) {
  float scale, zero;
  if (scheme.symmetric) {
    // Codes cover [-(2^(b-1)-1), 2^(b-1)-1] around the middle code.
    float levels = float((1u << (scheme.bits - 1)) - 1);
    scale = maxAbs / levels;
    zero = scheme.symmetricZero();
    if (!(scale > 0.f))
      scale = 1.f;
    return {roundToHalf(scale), zero};
  }
  scale = (hi - lo) / float(scheme.maxCode());
  if (!(scale > 0.f))
    scale = 1.f;
  scale = roundToHalf(scale);
  zero = std::nearbyint(-lo / scale);
  return {scale, zero};
}

/// sum |dequant(w) - w|^2.4 over a group under (scale, zero), the terms of
/// weights marked in `salient` multiplied by `salientWeight`.
static double clipError(llvm::ArrayRef<float> group, float scale, float zero,
                        const Scheme &scheme, llvm::ArrayRef<uint8_t> salient = {},
                        float salientWeight = 1.f) {
  double error = 0;
  for (size_t i = 0; i < group.size(); ++i) {
    float w = group[i];
    float q = (float(quantizeValue(w, scale, zero, scheme.maxCode())) - zero) * scale;
    double term = std::pow(std::fabs(double(q) - double(w)), 2.4);
    error += !salient.empty() && salient[i] ? salientWeight * term : term;
  }
  return error;
}

/// The first least and the last greatest element of a group (what
/// std::minmax_element returns: the sign of a zero extreme is kept),
/// computed in two vectors of four lanes each (GCC/Clang vector
/// extensions, one SSE register each: wider vectors than the target's
/// registers are split through the stack and run slower than scalar code,
/// measured). Lane order does not matter: min and max are exact.
/// Finite values only (checkWeights runs first).
static std::pair<float, float> groupRange(llvm::ArrayRef<float> group) {
  typedef float Lanes __attribute__((vector_size(16)));
  constexpr size_t kLanes = sizeof(Lanes) / sizeof(float);
  constexpr size_t kStep = 2 * kLanes;
  size_t n = group.size();
  const float *v = group.data();
  float lo = v[0], hi = v[0];
  if (n >= kStep) {
    Lanes lo0, lo1, hi0, hi1;
    std::memcpy(&lo0, v, sizeof(Lanes));
    std::memcpy(&lo1, v + kLanes, sizeof(Lanes));
    hi0 = lo0;
    hi1 = lo1;
    size_t i = kStep;
    for (; i + kStep <= n; i += kStep) {
      Lanes x0, x1;
      std::memcpy(&x0, v + i, sizeof(Lanes));
      std::memcpy(&x1, v + i + kLanes, sizeof(Lanes));
      lo0 = x0 < lo0 ? x0 : lo0;
      lo1 = x1 < lo1 ? x1 : lo1;
      hi0 = x0 > hi0 ? x0 : hi0;
      hi1 = x1 > hi1 ? x1 : hi1;
    }
    lo = lo0[0];
    hi = hi0[0];
    for (size_t k = 0; k < kLanes; ++k) {
      lo = lo0[k] < lo ? lo0[k] : lo;
      lo = lo1[k] < lo ? lo1[k] : lo;
      hi = hi0[k] > hi ? hi0[k] : hi;
      hi = hi1[k] > hi ? hi1[k] : hi;
    }
    for (; i < n; ++i) {
      lo = v[i] < lo ? v[i] : lo;
      hi = v[i] > hi ? v[i] : hi;
    }
  } else {
    for (size_t i = 1; i < n; ++i) {
      lo = v[i] < lo ? v[i] : lo;
      hi = v[i] > hi ? v[i] : hi;
    }
  }
  // Equal non-zero floats are the same bits; only a zero extreme can be
  // +0 or -0: take the first least / last greatest as minmax_element does.
  if (lo == 0.f)
    for (size_t i = 0; i < n; ++i)
      if (v[i] == 0.f) {
        lo = v[i];
        break;
      }
  if (hi == 0.f)
    for (size_t i = n; i-- > 0;)
      if (v[i] == 0.f) {
        hi = v[i];
        break;
      }
  return {lo, hi};
}

/// Binarisation around the group mean (1-bit codes, see quantizeRTN).
static std::pair<float, float> binaryParams(llvm::ArrayRef<float> group) {
  double mean = 0, deviation = 0;
  for (float w : group)
    mean += w;
  mean /= double(group.size());
  for (float w : group)
    deviation += std::fabs(double(w) - mean);
  deviation /= double(group.size());
  if (!(deviation > 0))
    return {1.f, roundToHalf(float(1.0 - mean))};
  float scale = roundToHalf(float(2 * deviation));
  return {scale, roundToHalf(float(0.5 - mean / double(scale)))};
}

std::pair<float, float> mlir::moeq::quant::groupParams(llvm::ArrayRef<float> group,
                                                       const Scheme &scheme,
                                                       const RangeOptions &options,
                                                       llvm::ArrayRef<uint8_t> salient) {
  if (scheme.bits == 1)
    return binaryParams(group);
  auto [lo, hi] = groupRange(group);
  float maxAbs = std::max(std::fabs(lo), std::fabs(hi));
  std::pair<float, float> best = rangeParams(lo, hi, maxAbs, scheme);
  if (options.salienceCalibration) {
    // p = 0.90 .. 1.10 in steps of 0.01 (SliM-LLM's SQC grid); p = 1 first,
    // so that a tie keeps the plain range.
    double bestError =
        clipError(group, best.first, best.second, scheme, salient, options.salientWeight);
    for (int i = -10; i <= 10; ++i) {
      if (i == 0)
        continue;
      float p = 1.f + float(i) / 100.f;
      std::pair<float, float> candidate = rangeParams(p * lo, p * hi, p * maxAbs, scheme);
      double error = clipError(group, candidate.first, candidate.second, scheme, salient,
                               options.salientWeight);
      if (error < bestError) {
        bestError = error;
        best = candidate;
      }
    }
    return best;
  }
  if (!options.mseClip)
    return best;
  double bestError = clipError(group, best.first, best.second, scheme);
  // p = 1 - i / 100 for i = 1..80: the grid of GPTQ's reference quantizer
  // (grid 100, maxshrink 0.8); the first strictly better candidate wins.
  for (int i = 1; i <= 80; ++i) {
    float p = 1.f - float(i) / 100.f;
    std::pair<float, float> candidate = rangeParams(p * lo, p * hi, p * maxAbs, scheme);
    double error = clipError(group, candidate.first, candidate.second, scheme);
    if (error < bestError) {
      bestError = error;
      best = candidate;
    }
  }
  return best;
}

llvm::Error mlir::moeq::quant::checkWeights(llvm::ArrayRef<float> weights, int64_t rows,
                                            int64_t cols, const Scheme &scheme,
                                            int64_t firstRow) {
  if (llvm::Error err = checkShape(scheme, rows, cols))
    return err;
  if (static_cast<int64_t>(weights.size()) != rows * cols)
    return llvm::createStringError("weight buffer does not hold rows x cols values");
  // A branch-free scan that vectorizes; the element is looked up on failure.
  const float *v = weights.data();
  int64_t n = rows * cols;
  constexpr int64_t kChunk = 4096;
  for (int64_t begin = 0; begin < n; begin += kChunk) {
    int64_t end = std::min(n, begin + kChunk);
    // Non-finite = all exponent bits set; tested on the bits, which
    // vectorizes (a float comparison reduced into a bool does not).
    uint32_t bad = 0;
    for (int64_t i = begin; i < end; ++i) {
      uint32_t bits;
      std::memcpy(&bits, v + i, sizeof(bits));
      bad |= uint32_t((bits & 0x7f800000u) == 0x7f800000u);
    }
    if (!bad)
      continue;
    for (int64_t i = begin; i < end; ++i)
      if (!std::isfinite(v[i]))
        return llvm::createStringError(llvm::formatv(
            "non-finite weight {0} at row {1}, column {2}", v[i], firstRow + i / cols, i % cols));
  }
  return llvm::Error::success();
}

namespace {

/// Optimal weighted 1-D k-means over values sorted ascending: segment
/// costs from prefix sums, the dynamic program over segment ends with
/// divide-and-conquer on the (monotone) best split, O(k n log n).
class SortedKMeans {
public:
  SortedKMeans(llvm::ArrayRef<double> values, llvm::ArrayRef<double> weights)
      : n(values.size()), w(n + 1), wx(n + 1), wxx(n + 1), x(n + 1) {
    for (int64_t i = 0; i < n; ++i) {
      w[i + 1] = w[i] + weights[i];
      wx[i + 1] = wx[i] + weights[i] * values[i];
      wxx[i + 1] = wxx[i] + weights[i] * values[i] * values[i];
      x[i + 1] = x[i] + values[i];
    }
  }

  /// Weighted squared error of values [i, j) around their weighted mean.
  double cost(int64_t i, int64_t j) const {
    double mass = w[j] - w[i];
    if (mass <= 0)
      return 0;
    double sum = wx[j] - wx[i];
    return std::max(0.0, wxx[j] - wxx[i] - sum * sum / mass);
  }
  /// The centre of [i, j): the weighted mean (the plain mean when every
  /// weight is zero).
  double centre(int64_t i, int64_t j) const {
    double mass = w[j] - w[i];
    return mass > 0 ? (wx[j] - wx[i]) / mass : (x[j] - x[i]) / double(j - i);
  }

  /// Weighted squared error of values [i, j) around the fixed `centre`.
  double costAround(int64_t i, int64_t j, double centre) const {
    double mass = w[j] - w[i], sum = wx[j] - wx[i];
    return std::max(0.0, wxx[j] - wxx[i] - 2 * centre * sum + centre * centre * mass);
  }

  /// Centres of the optimal k segments (2 <= k <= n), ascending, the first
  /// fixed at the smallest value and the last at the largest (so the
  /// table spans the group's range, as the uniform grid does).
  std::vector<double> solve(int64_t k, double lowest, double highest) {
    // best[j]: least cost of values [0, j) in the current number of
    // segments; split[c][j]: start of the last segment.
    std::vector<double> best(n + 1), next(n + 1);
    std::vector<std::vector<int64_t>> split(k, std::vector<int64_t>(n + 1, 0));
    for (int64_t j = 1; j <= n; ++j)
      best[j] = costAround(0, j, lowest);
    for (int64_t c = 1; c + 1 < k; ++c) {
      std::fill(next.begin(), next.end(), std::numeric_limits<double>::infinity());
      fill(c, c + 1, n, c, n - 1, best, next, split[c]);
      best.swap(next);
    }
    // The last segment, around the largest value.
    int64_t lastStart = k - 1;
    double least = std::numeric_limits<double>::infinity();
    for (int64_t s = k - 1; s < n; ++s) {
      double value = best[s] + costAround(s, n, highest);
      if (value < least) {
        least = value;
        lastStart = s;
      }
    }
    std::vector<double> centres(k);
    centres[k - 1] = highest;
    for (int64_t c = k - 2, end = lastStart; c >= 0; --c) {
      int64_t begin = c ? split[c][end] : 0;
      centres[c] = c ? centre(begin, end) : lowest;
      end = begin;
    }
    return centres;
  }

private:
  /// next[j] for j in [lo, hi], the last segment starting in [optLo, optHi].
  void fill(int64_t c, int64_t lo, int64_t hi, int64_t optLo, int64_t optHi,
            const std::vector<double> &best, std::vector<double> &next,
            std::vector<int64_t> &splitOf) {
    if (lo > hi)
      return;
    int64_t mid = (lo + hi) / 2, arg = optLo;
    double least = std::numeric_limits<double>::infinity();
    for (int64_t s = std::max(optLo, c); s <= std::min(optHi, mid - 1); ++s) {
      double value = best[s] + cost(s, mid);
      if (value < least) {
        least = value;
        arg = s;
      }
    }
    next[mid] = least;
    splitOf[mid] = arg;
    fill(c, lo, mid - 1, optLo, arg, best, next, splitOf);
    fill(c, mid + 1, hi, arg, optHi, best, next, splitOf);
  }

  int64_t n;
  std::vector<double> w, wx, wxx, x;
};

} // namespace

std::vector<float> mlir::moeq::quant::fitLevelTable(llvm::ArrayRef<float> group,
                                                    llvm::ArrayRef<double> importance,
                                                    unsigned bits) {
  int64_t count = group.size(), numLevels = int64_t(1) << bits;
  // Without any importance (inputs never seen), every weight counts alike.
  double totalImportance = 0;
  for (double v : importance)
    totalImportance += v;
  bool weighted = !importance.empty() && totalImportance > 0;
  std::vector<int64_t> order(count);
  for (int64_t i = 0; i < count; ++i)
    order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return group[a] < group[b]; });
  std::vector<double> values(count), weights(count);
  for (int64_t i = 0; i < count; ++i) {
    values[i] = group[order[i]];
    weights[i] = weighted ? std::max(importance[order[i]], 0.0) : 1.0;
  }
  SortedKMeans kmeans(values, weights);
  int64_t used = std::max<int64_t>(std::min(count, numLevels), 2);
  std::vector<double> centres =
      count >= 2 ? kmeans.solve(used, values.front(), values.back())
                 : std::vector<double>(2, values.front());
  std::vector<float> table(numLevels, roundToHalf(float(centres.back())));
  for (size_t l = 0; l < centres.size(); ++l)
    table[l] = roundToHalf(float(centres[l]));
  std::sort(table.begin(), table.end());
  return table;
}

uint8_t mlir::moeq::quant::nearestLevel(float w, llvm::ArrayRef<float> levels) {
  uint8_t best = 0;
  for (size_t l = 1; l < levels.size(); ++l)
    if (std::abs(w - levels[l]) < std::abs(w - levels[best]))
      best = uint8_t(l);
  return best;
}

/// quantizeValue over a group; the loop has no call and no branch, so it
/// vectorizes (the codes are the same bits as element-wise quantizeValue).
static void quantizeGroup(const float *w, int64_t count, float scale, float zero,
                          uint32_t maxCode, uint8_t *codes) {
  if (maxCode == 1) {
    for (int64_t c = 0; c < count; ++c)
      codes[c] = w[c] / scale + zero >= 0.5f ? 1 : 0;
    return;
  }
  float top = float(maxCode);
  for (int64_t c = 0; c < count; ++c) {
    float code = roundToNearestEven(w[c] / scale) + zero;
    code = code < 0.f ? 0.f : code;
    code = code > top ? top : code;
    codes[c] = static_cast<uint8_t>(static_cast<int32_t>(code));
  }
}

llvm::Expected<QuantizedMatrix>
mlir::moeq::quant::quantizeRTN(llvm::ArrayRef<float> weights, int64_t rows,
                         int64_t cols, const Scheme &scheme, const RangeOptions &options,
                         llvm::ArrayRef<uint8_t> salient, llvm::ArrayRef<double> importance) {
  if (llvm::Error err = checkWeights(weights, rows, cols, scheme, options.firstRow))
    return std::move(err);

  QuantizedMatrix q = QuantizedMatrix::sized(rows, cols, scheme);
  int64_t width = scheme.groupWidth(cols), groups = scheme.numGroups(cols);
  if (scheme.levelTable) {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t g = 0; g < groups; ++g) {
        int64_t begin = r * cols + g * width;
        llvm::MutableArrayRef<float> table = q.table(r, g);
        std::vector<float> fitted =
            fitLevelTable(weights.slice(begin, width),
                          importance.empty() ? importance : importance.slice(g * width, width),
                          scheme.bits);
        if (!std::isfinite(fitted.front()) || !std::isfinite(fitted.back()))
          return llvm::createStringError(
              llvm::formatv("level table of row {0}, group {1} overflows f16",
                            options.firstRow + r, g));
        std::copy(fitted.begin(), fitted.end(), table.begin());
        for (int64_t c = 0; c < width; ++c)
          q.codes[begin + c] = nearestLevel(weights[begin + c], table);
      }
    return q;
  }
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      int64_t begin = r * cols + g * width;
      Scheme group = scheme.forGroup(g);
      auto [scale, zero] = groupParams(weights.slice(begin, width), group, options,
                                       salient.empty() ? salient : salient.slice(begin, width));
      if (!std::isfinite(scale) || !std::isfinite(zero))
        return llvm::createStringError(llvm::formatv(
            "scale or zero point of row {0}, group {1} overflows f16", options.firstRow + r, g));
      q.scales[r * groups + g] = scale;
      q.zeros[r * groups + g] = zero;
      quantizeGroup(weights.data() + begin, width, scale, zero, group.maxCode(),
                    q.codes.data() + begin);
    }
  }
  return q;
}

std::vector<float> mlir::moeq::quant::dequantize(const QuantizedMatrix &q) {
  std::vector<float> out(q.rows * q.cols);
  for (int64_t r = 0; r < q.rows; ++r)
    for (int64_t c = 0; c < q.cols; ++c)
      out[r * q.cols + c] = q.value(r, c, q.codes[r * q.cols + c]);
  return out;
}

/// Packs codes of `Bits` in {1, 2, 4, 8} a byte at a time: on a
/// little-endian host, code k of a 32-bit word sits at bits [k * Bits,
/// (k + 1) * Bits), i.e. in byte k * Bits / 8 of the word, so whole bytes
/// can be assembled independently (a loop compilers vectorize, unlike the
/// shifts into one word).
template <unsigned Bits>
static void packBytes(const uint8_t *codes, int64_t cols, uint32_t *row) {
  constexpr int64_t perByte = 8 / Bits;
  auto *out = reinterpret_cast<uint8_t *>(row);
  int64_t whole = cols / perByte;
  for (int64_t b = 0; b < whole; ++b) {
    uint8_t byte = 0;
    for (int64_t k = 0; k < perByte; ++k)
      byte |= uint8_t(codes[b * perByte + k] << (k * Bits));
    out[b] = byte;
  }
  // A row that ends inside a byte (a last partial group): the rest of the
  // byte stays zero, as in the general loop.
  if (int64_t rest = cols - whole * perByte) {
    uint8_t byte = 0;
    for (int64_t k = 0; k < rest; ++k)
      byte |= uint8_t(codes[whole * perByte + k] << (k * Bits));
    out[whole] = byte;
  }
}

/// packCodes of a uniform width: widths dividing 8 byte by byte
/// (packBytes), other widths dividing 32 in whole words, the rest through
/// a 64-bit accumulator. The same bits as the general loop of packCodes.
static void packUniformRow(const uint8_t *codes, int64_t cols, unsigned bits, uint32_t *row) {
  if (llvm::sys::IsLittleEndianHost) {
    switch (bits) {
    case 1:
      return packBytes<1>(codes, cols, row);
    case 2:
      return packBytes<2>(codes, cols, row);
    case 4:
      return packBytes<4>(codes, cols, row);
    case 8:
      return packBytes<8>(codes, cols, row);
    default:
      break;
    }
  }
  if (32 % bits == 0) {
    int64_t perWord = 32 / bits;
    for (int64_t w = 0; w * perWord < cols; ++w) {
      uint32_t word = 0; // (the last word of a padded row: zero above its codes)
      for (int64_t k = 0; k < perWord && w * perWord + k < cols; ++k)
        word |= uint32_t(codes[w * perWord + k]) << (k * bits);
      row[w] = word;
    }
    return;
  }
  uint64_t accumulator = 0;
  unsigned filled = 0;
  uint32_t *out = row;
  for (int64_t c = 0; c < cols; ++c) {
    accumulator |= uint64_t(codes[c]) << filled;
    filled += bits;
    if (filled >= 32) {
      *out++ = uint32_t(accumulator);
      accumulator >>= 32;
      filled -= 32;
    }
  }
  if (filled)
    *out = uint32_t(accumulator);
}

std::vector<uint32_t> mlir::moeq::quant::packCodes(const QuantizedMatrix &q) {
  int64_t wordsPerRow = q.scheme.wordsPerRow(q.cols);
  int64_t width = q.scheme.groupWidth(q.cols);
  std::vector<uint32_t> words(q.rows * wordsPerRow, 0);
  if (q.scheme.groupBits.empty()) {
    for (int64_t r = 0; r < q.rows; ++r)
      packUniformRow(q.codes.data() + r * q.cols, q.cols, q.scheme.bits,
                     words.data() + r * wordsPerRow);
    return words;
  }
  for (int64_t r = 0; r < q.rows; ++r) {
    uint32_t *row = words.data() + r * wordsPerRow;
    uint64_t bit = 0;
    for (int64_t c = 0; c < q.cols; bit += q.scheme.bitsOf(c / width), ++c) {
      unsigned bits = q.scheme.bitsOf(c / width);
      uint64_t code = q.codes[r * q.cols + c];
      row[bit / 32] |= uint32_t(code << (bit % 32));
      // A code that straddles two words spills its high bits over.
      if (bit % 32 + bits > 32)
        row[bit / 32 + 1] |= uint32_t(code >> (32 - bit % 32));
    }
  }
  return words;
}

std::vector<uint8_t> mlir::moeq::quant::unpackCodes(llvm::ArrayRef<uint32_t> words,
                                              int64_t rows, int64_t cols,
                                              unsigned bits) {
  return unpackCodes(words, rows, cols, Scheme{bits, 0, false});
}

std::vector<uint8_t> mlir::moeq::quant::unpackCodes(llvm::ArrayRef<uint32_t> words,
                                              int64_t rows, int64_t cols,
                                              const Scheme &scheme) {
  int64_t wordsPerRow = scheme.wordsPerRow(cols);
  int64_t width = scheme.groupWidth(cols);
  std::vector<uint8_t> codes(rows * cols);
  for (int64_t r = 0; r < rows; ++r) {
    const uint32_t *row = words.data() + r * wordsPerRow;
    uint64_t bit = 0;
    for (int64_t c = 0; c < cols; bit += scheme.bitsOf(c / width), ++c) {
      uint64_t mask = (uint64_t(1) << scheme.bitsOf(c / width)) - 1;
      uint64_t window = row[bit / 32];
      if (bit / 32 + 1 < uint64_t(wordsPerRow))
        window |= uint64_t(row[bit / 32 + 1]) << 32;
      codes[r * cols + c] = uint8_t((window >> (bit % 32)) & mask);
    }
  }
  return codes;
}

namespace {
template <typename T>
void fakeQuantizeRows(llvm::MutableArrayRef<T> rows, int64_t cols, unsigned bits) {
  if (bits >= 16 || cols <= 0)
    return;
  const float qmax = float((1u << (bits - 1)) - 1);
  for (size_t begin = 0; begin + cols <= rows.size(); begin += cols) {
    float amax = 0.f;
    for (int64_t c = 0; c < cols; ++c)
      amax = std::max(amax, std::fabs(float(rows[begin + c])));
    if (amax == 0.f)
      continue;
    float scale = amax / qmax;
    for (int64_t c = 0; c < cols; ++c) {
      float q = __builtin_nearbyintf(float(rows[begin + c]) / scale);
      q = q < -qmax ? -qmax : q > qmax ? qmax : q;
      rows[begin + c] = T(q * scale);
    }
  }
}
} // namespace

void mlir::moeq::quant::fakeQuantizeActivations(llvm::MutableArrayRef<float> rows,
                                                int64_t cols, unsigned bits) {
  fakeQuantizeRows(rows, cols, bits);
}

void mlir::moeq::quant::fakeQuantizeActivations(llvm::MutableArrayRef<double> rows,
                                                int64_t cols, unsigned bits) {
  fakeQuantizeRows(rows, cols, bits);
}

llvm::Expected<std::vector<float>>
mlir::moeq::quant::dequantizeStored(llvm::StringRef what, int64_t rows, int64_t cols,
                                    const Scheme &scheme, llvm::ArrayRef<uint32_t> words,
                                    std::vector<float> scales, std::vector<float> zeros,
                                    std::vector<float> levels) {
  if (llvm::Error err = checkShape(scheme, rows, cols))
    return llvm::createStringError(llvm::formatv("{0}: {1}", what,
                                                 llvm::toString(std::move(err))));
  auto mismatch = [&](llvm::StringRef part, size_t got, int64_t expected) {
    return llvm::createStringError(llvm::formatv(
        "{0}: {1} has {2} values, expected {3} for [{4}, {5}] at {6} bits{7}", what, part, got,
        expected, rows, cols, scheme.bits,
        scheme.groupSize ? llvm::formatv(", group {0}", scheme.groupSize).str()
                         : std::string(" per channel")));
  };
  int64_t groupValues = rows * scheme.numGroups(cols);
  if (int64_t(words.size()) != rows * scheme.wordsPerRow(cols))
    return mismatch("qweight", words.size(), rows * scheme.wordsPerRow(cols));
  QuantizedMatrix q;
  q.rows = rows;
  q.cols = cols;
  q.scheme = scheme;
  q.codes = unpackCodes(words, rows, cols, scheme);
  if (scheme.levelTable) {
    if (int64_t(levels.size()) != groupValues * scheme.numLevels())
      return mismatch("levels", levels.size(), groupValues * scheme.numLevels());
    q.levels = std::move(levels);
    return dequantize(q);
  }
  if (int64_t(scales.size()) != groupValues)
    return mismatch("scales", scales.size(), groupValues);
  if (scheme.symmetric) {
    zeros.assign(scales.size(), scheme.symmetricZero());
  } else if (int64_t(zeros.size()) != groupValues) {
    return mismatch("zeros", zeros.size(), groupValues);
  }
  q.scales = std::move(scales);
  q.zeros = std::move(zeros);
  return dequantize(q);
}
