//===- Quantizer.h - weight quantizers (IR-free) ----------------*- C++ -*-===//
//
// Round-to-nearest weight quantization and the packed storage format shared
// by the compiler, the kernels and the runtime. Row-major `rows x cols`
// weights (output features x input features); groups run along a row.
//
//===----------------------------------------------------------------------===//
#ifndef MOEQ_QUANT_QUANTIZER_H
#define MOEQ_QUANT_QUANTIZER_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <utility>
#include <vector>

namespace mlir::moeq::quant {

/// What a quantized weight looks like in storage.
struct Scheme {
  unsigned bits = 4;     ///< code width, 1..8 (the mean width with groupBits)
  int64_t groupSize = 0; ///< input columns per scale; 0 = whole row
  bool symmetric = false;
  /// SliM-LLM group-wise mixed precision: the code width of each column
  /// group (the same for every row); empty: every group has `bits`.
  std::vector<uint8_t> groupBits = {};
  /// DDQ-style adaptive resolution: each (row, group) stores a table of
  /// 2^bits f16 levels and a code selects one (no scale or zero point).
  bool levelTable = false;

  int64_t groupWidth(int64_t cols) const { return groupSize ? groupSize : cols; }
  int64_t numGroups(int64_t cols) const { return cols / groupWidth(cols); }
  uint32_t maxCode() const { return (1u << bits) - 1; }
  /// Entries of a level table (2^bits).
  int64_t numLevels() const { return int64_t(1) << bits; }
  /// Implicit zero point of symmetric schemes (the middle code).
  float symmetricZero() const { return float(1u << (bits - 1)); }
  /// Code width of column group `group`.
  unsigned bitsOf(int64_t group) const {
    return groupBits.empty() ? bits : groupBits[group];
  }
  /// The uniform scheme of one column group.
  Scheme forGroup(int64_t group) const {
    return {bitsOf(group), groupSize, symmetric, {}, levelTable};
  }
  /// Bits of a packed row: sum over groups of width x bits.
  int64_t rowBits(int64_t cols) const;
  /// 32-bit words a packed row takes (the last zero-padded when rowBits
  /// is not a multiple of 32).
  int64_t wordsPerRow(int64_t cols) const { return (rowBits(cols) + 31) / 32; }
  /// First bit of column `col`'s code within its row's bit stream.
  int64_t bitOffset(int64_t col, int64_t cols) const;
};

/// Quantized matrix before packing: one code per weight, f16-representable
/// scales and zero points per (row, group), or with a level-table scheme a
/// table of f16-representable levels per (row, group) instead.
struct QuantizedMatrix {
  int64_t rows = 0, cols = 0;
  Scheme scheme;
  std::vector<uint8_t> codes; ///< rows * cols
  std::vector<float> scales;  ///< rows * groups, exactly representable in f16
  std::vector<float> zeros;   ///< rows * groups, integers (symmetric: middle code)
  /// Level tables: rows * groups * 2^bits, ascending within a table.
  std::vector<float> levels;

  /// Zero codes, scales and zeros sized for `rows x cols` under `scheme`.
  static QuantizedMatrix sized(int64_t rows, int64_t cols, const Scheme &scheme) {
    QuantizedMatrix q;
    q.rows = rows;
    q.cols = cols;
    q.scheme = scheme;
    q.codes.resize(rows * cols);
    if (scheme.levelTable) {
      q.levels.resize(rows * scheme.numGroups(cols) * scheme.numLevels());
      return q;
    }
    q.scales.resize(rows * scheme.numGroups(cols));
    q.zeros.resize(rows * scheme.numGroups(cols));
    return q;
  }

  int64_t numGroups() const { return scheme.numGroups(cols); }
  float scale(int64_t row, int64_t col) const {
    return scales[row * numGroups() + col / scheme.groupWidth(cols)];
  }
  float zero(int64_t row, int64_t col) const {
    return zeros[row * numGroups() + col / scheme.groupWidth(cols)];
  }
  /// The level table of (row, group).
  llvm::ArrayRef<float> table(int64_t row, int64_t group) const {
    return llvm::ArrayRef<float>(levels).slice(
        (row * numGroups() + group) * scheme.numLevels(), scheme.numLevels());
  }
  llvm::MutableArrayRef<float> table(int64_t row, int64_t group) {
    return llvm::MutableArrayRef<float>(levels).slice(
        (row * numGroups() + group) * scheme.numLevels(), scheme.numLevels());
  }
  /// The value code `code` of (row, col) stands for.
  float value(int64_t row, int64_t col, uint8_t code) const {
    if (scheme.levelTable)
      return table(row, col / scheme.groupWidth(cols))[code];
    return (float(code) - zero(row, col)) * scale(row, col);
  }
};

/// Checks that a `rows x cols` matrix can be stored with `scheme`.
llvm::Error checkShape(const Scheme &scheme, int64_t rows, int64_t cols);

/// How group scales and zero points are chosen.
struct RangeOptions {
  /// Search a shrink factor p of the group's range (p = 1, 0.99, ...,
  /// 0.2; 81 candidates) minimising sum |dequant(w) - w|^2.4, as GPTQ's
  /// reference quantizer and MoEQuant do; else p = 1 (min/max).
  bool mseClip = false;
  /// SliM-LLM's salience-weighted quantizer calibration (SQC): search a
  /// factor p in 0.90, 0.91, ..., 1.10 of the range minimising
  /// sum |dequant(w) - w|^2.4 with the salient weights' terms (`salient`
  /// mask given to groupParams) weighted by `salientWeight`. Takes
  /// precedence over mseClip.
  bool salienceCalibration = false;
  float salientWeight = 1.f;
  /// The row number of the first row given, in diagnostics (a row block of
  /// a larger weight reports its rows in the weight).
  int64_t firstRow = 0;
};

/// Scale (f16-representable) and zero point of one group of weights
/// (`scheme` uniform: use Scheme::forGroup); `salient` marks the group's
/// salient weights for salience calibration (empty: none).
std::pair<float, float> groupParams(llvm::ArrayRef<float> group, const Scheme &scheme,
                                    const RangeOptions &options = {},
                                    llvm::ArrayRef<uint8_t> salient = {});

/// nearbyintf(x) in the default rounding mode (to nearest, ties to even),
/// bit for bit but for the sign of a zero result, without a libm call: plain
/// float arithmetic that compilers vectorize. |x| < 2^23: adding and
/// subtracting 2^23 (with x's sign) rounds away the fraction; larger values
/// (and infinities, NaN) are integral already.
inline float roundToNearestEven(float x) {
  float t = __builtin_copysignf(0x1p23f, x);
  return __builtin_fabsf(x) < 0x1p23f ? (x + t) - t : x;
}

/// The code of `w` under (scale, zero): clamp(round(w / scale) + zero); for
/// 1-bit codes (binarisation, fractional zero) w / scale + zero >= 1/2.
inline uint8_t quantizeValue(float w, float scale, float zero, uint32_t maxCode) {
  if (maxCode == 1)
    return w / scale + zero >= 0.5f ? 1 : 0;
  float code = roundToNearestEven(w / scale) + zero;
  return static_cast<uint8_t>(code < 0.f ? 0.f : code > float(maxCode) ? float(maxCode) : code);
}

/// DDQ's adaptive resolution, post-training: the 2^bits levels (ascending,
/// f16-representable) minimising sum_j importance_j (w_j - level(w_j))^2 over
/// one group of weights, each weight taking its nearest level, with the
/// outermost levels pinned to the group's minimum and maximum: the optimal
/// weighted 1-D k-means under that constraint (dynamic programming over the
/// sorted weights, whose optimal clusters are contiguous). Pinning keeps the
/// range of the uniform grid (which is one feasible table, so the fit is
/// never worse than it): free k-means pulls the outer levels into the
/// tails and leaves the largest weights, which on real layers meet the
/// largest activations, with the largest errors (measured: 2x the output
/// error of the uniform grid at 2 bits, docs/quantization.md). With the
/// Hessian's diagonal as the importance this is the diagonal approximation
/// of GPTQ's objective. An empty (or all-zero) `importance` weighs every
/// element 1. Groups with fewer weights than levels repeat the largest.
std::vector<float> fitLevelTable(llvm::ArrayRef<float> group, llvm::ArrayRef<double> importance,
                                 unsigned bits);

/// The code of the level nearest to `w` (`levels` ascending; ties to the
/// lower level).
uint8_t nearestLevel(float w, llvm::ArrayRef<float> levels);

/// Round-to-nearest quantization, per group:
///   asymmetric: scale = (max - min) / (2^b - 1), zero = round(-min / scale)
///   symmetric:  scale = max|w| / (2^(b-1) - 1), zero = 2^(b-1)
///   1 bit (asymmetric storage): binarisation around the group mean m with
///     s = mean |w - m| (SliM-LLM): code = [w >= m], value = m -+ s, i.e.
///     scale = 2 s, zero = 1/2 - m / scale (a fractional zero point; a
///     constant group gets scale 1, zero 1 - m)
///   code = clamp(round(w / scale) + zero, 0, 2^b - 1)
/// (with `mseClip`, min/max shrunk by the searched factor). Scales are
/// rounded to f16 before the codes are computed, so the stored (f16) scale
/// reproduces the codes exactly. A constant group gets scale 1.
/// Fails on NaN/Inf weights, naming the element. A level-table scheme
/// fits each group's table (fitLevelTable, weighing column c by
/// `importance[c]` when given) and takes the nearest level.
llvm::Expected<QuantizedMatrix> quantizeRTN(llvm::ArrayRef<float> weights,
                                            int64_t rows, int64_t cols,
                                            const Scheme &scheme,
                                            const RangeOptions &options = {},
                                            llvm::ArrayRef<uint8_t> salient = {},
                                            llvm::ArrayRef<double> importance = {});

/// Fails on a shape the scheme cannot store, a buffer of the wrong size or
/// a non-finite weight (naming the element).
llvm::Error checkWeights(llvm::ArrayRef<float> weights, int64_t rows, int64_t cols,
                         const Scheme &scheme, int64_t firstRow = 0);

/// (code - zero) * scale for every element (the table entry with level
/// tables).
std::vector<float> dequantize(const QuantizedMatrix &q);

/// The float weight [rows, cols] of a packed matrix as archives and
/// artifacts store it: `words` as packCodes writes them and, per (row,
/// group), scales and zero points (`zeros` unused by symmetric schemes) or
/// level tables. Every size is checked against `scheme`; a mismatch is an
/// error naming the tensor that does not fit (`what` names the matrix).
llvm::Expected<std::vector<float>>
dequantizeStored(llvm::StringRef what, int64_t rows, int64_t cols, const Scheme &scheme,
                 llvm::ArrayRef<uint32_t> words, std::vector<float> scales,
                 std::vector<float> zeros, std::vector<float> levels);

/// Per-token dynamic symmetric activation quantization of weight-activation
/// schemes (w8a8, w4a4), as the kernels' activation-quantization step does
/// it, simulated in place: per row, scale = max|x| / (2^(bits-1) - 1)
/// (rounded to float32), x = clamp(round(x / scale), -qmax, qmax) * scale;
/// an all-zero row stays zero. `bits` 16 leaves the rows unchanged.
void fakeQuantizeActivations(llvm::MutableArrayRef<float> rows, int64_t cols, unsigned bits);
void fakeQuantizeActivations(llvm::MutableArrayRef<double> rows, int64_t cols, unsigned bits);

/// Packs codes row by row into little-endian bit streams of 32-bit words:
/// code `c` of a row occupies bits [c*bits, (c+1)*bits) of that row's
/// stream; with group bits, the groups follow one another, each code of
/// group g bitsOf(g) wide (Scheme::bitOffset). A row takes
/// Scheme::wordsPerRow words; bits past its last code are zero.
std::vector<uint32_t> packCodes(const QuantizedMatrix &q);

/// Inverse of packCodes.
std::vector<uint8_t> unpackCodes(llvm::ArrayRef<uint32_t> words, int64_t rows,
                                 int64_t cols, const Scheme &scheme);
std::vector<uint8_t> unpackCodes(llvm::ArrayRef<uint32_t> words, int64_t rows,
                                 int64_t cols, unsigned bits);

} // namespace mlir::moeq::quant

#endif // MOEQ_QUANT_QUANTIZER_H
