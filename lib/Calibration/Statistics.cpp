//===- Statistics.cpp - calibration statistics of MoE layers --------------===//
#include "moeq/Calibration/Statistics.h"
#include "moeq/IO/SafeTensors.h"

#include "llvm/Support/FormatVariadic.h"

#include <cblas.h>
#include <cmath>
#include <cstring>

using namespace mlir::moeq;
using namespace mlir::moeq::calib;

namespace {

/// C += A^T A (upper triangle) for row-major A of `rows x cols`.
void addGram(std::vector<double> &c, const std::vector<double> &a, int64_t rows,
             int64_t cols) {
  if (rows == 0)
    return;
  cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, int(cols), int(rows), 1.0, a.data(),
              int(cols), 1.0, c.data(), int(cols));
}

/// The full symmetric matrix from an upper triangle.
std::vector<double> symmetrize(const std::vector<double> &upper, int64_t n) {
  std::vector<double> full(upper);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < i; ++j)
      full[i * n + j] = upper[j * n + i];
  return full;
}

/// Gathers `rows` rows of a float matrix into a double matrix, each scaled
/// by `scale[r]` (or 1).
void gatherRows(std::vector<double> &out, llvm::ArrayRef<float> matrix, int64_t cols,
                llvm::ArrayRef<int64_t> rows, llvm::ArrayRef<double> scale) {
  out.resize(rows.size() * cols);
  for (size_t r = 0; r < rows.size(); ++r) {
    const float *src = matrix.data() + rows[r] * cols;
    double s = scale.empty() ? 1.0 : scale[r];
    for (int64_t c = 0; c < cols; ++c)
      out[r * cols + c] = s * double(src[c]);
  }
}

llvm::Error sizeError(llvm::StringRef what, size_t got, int64_t expected) {
  return llvm::createStringError(
      llvm::formatv("calibration batch: {0} has {1} values, expected {2}", what, got, expected));
}

} // namespace

LayerStatistics::LayerStatistics(const LayerShape &shape) : Shape(shape) {
  int64_t h2 = shape.hidden * shape.hidden, i2 = shape.intermediate * shape.intermediate;
  Counts.assign(shape.experts, 0);
  AffinitySum.assign(shape.experts, 0.0);
  GramAll.assign(h2, 0.0);
  GramIn.assign(shape.experts, std::vector<double>(h2, 0.0));
  GramInWeighted = GramIn;
  GramDown.assign(shape.experts, std::vector<double>(i2, 0.0));
  GramDownWeighted = GramDown;
  if (int64_t s = shape.sharedIntermediate) {
    SharedGramDown.assign(s * s, 0.0);
    if (shape.sharedGated) {
      SharedGramInWeighted.assign(h2, 0.0);
      SharedGramDownWeighted.assign(s * s, 0.0);
    }
  }
}

llvm::Error LayerStatistics::add(const LayerBatch &batch) {
  int64_t t = batch.tokens, k = batch.topK, h = Shape.hidden, inter = Shape.intermediate;
  int64_t rows = t * k;
  if (int64_t(batch.input.size()) != t * h)
    return sizeError("input", batch.input.size(), t * h);
  if (int64_t(batch.routingWeights.size()) != rows)
    return sizeError("routing weights", batch.routingWeights.size(), rows);
  if (int64_t(batch.positions.size()) != rows)
    return sizeError("positions", batch.positions.size(), rows);
  if (int64_t(batch.offsets.size()) != Shape.experts + 1)
    return sizeError("offsets", batch.offsets.size(), Shape.experts + 1);
  if (int64_t(batch.expertActivations.size()) != rows * inter)
    return sizeError("expert activations", batch.expertActivations.size(), rows * inter);
  if (batch.offsets.front() != 0 || batch.offsets.back() != rows)
    return llvm::createStringError("calibration batch: offsets do not cover the routed rows");

  std::vector<double> all;
  std::vector<int64_t> everyToken(t);
  for (int64_t i = 0; i < t; ++i)
    everyToken[i] = i;
  gatherRows(all, batch.input, h, everyToken, {});
  addGram(GramAll, all, t, h);

  std::vector<double> a, aw;
  for (int64_t e = 0; e < Shape.experts; ++e) {
    int64_t begin = batch.offsets[e], end = batch.offsets[e + 1];
    if (begin > end || end > rows)
      return llvm::createStringError("calibration batch: offsets are not increasing");
    std::vector<int64_t> tokenRows, sortedRows;
    std::vector<double> sqrtWeight;
    for (int64_t r = begin; r < end; ++r) {
      int64_t slot = batch.positions[r];
      if (slot < 0 || slot >= rows)
        return llvm::createStringError("calibration batch: position out of range");
      double c = batch.routingWeights[slot];
      tokenRows.push_back(slot / k);
      sortedRows.push_back(r);
      sqrtWeight.push_back(std::sqrt(std::max(c, 0.0)));
      AffinitySum[e] += c;
    }
    int64_t n = end - begin;
    Counts[e] += n;
    gatherRows(a, batch.input, h, tokenRows, {});
    addGram(GramIn[e], a, n, h);
    gatherRows(aw, batch.input, h, tokenRows, sqrtWeight);
    addGram(GramInWeighted[e], aw, n, h);
    gatherRows(a, batch.expertActivations, inter, sortedRows, {});
    addGram(GramDown[e], a, n, inter);
    gatherRows(aw, batch.expertActivations, inter, sortedRows, sqrtWeight);
    addGram(GramDownWeighted[e], aw, n, inter);
  }

  if (int64_t s = Shape.sharedIntermediate) {
    if (int64_t(batch.sharedActivations.size()) != t * s)
      return sizeError("shared activations", batch.sharedActivations.size(), t * s);
    gatherRows(a, batch.sharedActivations, s, everyToken, {});
    addGram(SharedGramDown, a, t, s);
    if (Shape.sharedGated) {
      if (int64_t(batch.sharedGateLogits.size()) != t)
        return sizeError("shared gate logits", batch.sharedGateLogits.size(), t);
      std::vector<double> sqrtGate(t);
      for (int64_t i = 0; i < t; ++i)
        sqrtGate[i] = std::sqrt(1.0 / (1.0 + std::exp(-double(batch.sharedGateLogits[i]))));
      gatherRows(aw, batch.input, h, everyToken, sqrtGate);
      addGram(SharedGramInWeighted, aw, t, h);
      gatherRows(aw, batch.sharedActivations, s, everyToken, sqrtGate);
      addGram(SharedGramDownWeighted, aw, t, s);
    }
  }
  Tokens += t;
  return llvm::Error::success();
}

std::vector<double> LayerStatistics::expertGramIn(int64_t e, bool weighted) const {
  return symmetrize(weighted ? GramInWeighted[e] : GramIn[e], Shape.hidden);
}

llvm::Error LayerStatistics::write(io::SafeTensorsWriter &writer, int64_t layer) const {
  std::string prefix = "layers." + std::to_string(layer) + ".";
  auto bytesOf = [](const auto &values) {
    using T = typename std::decay_t<decltype(values)>::value_type;
    std::vector<uint8_t> bytes(values.size() * sizeof(T));
    std::memcpy(bytes.data(), values.data(), bytes.size());
    return bytes;
  };
  auto matrix = [&](const std::string &name, const std::vector<double> &upper, int64_t n) {
    return writer.addTensor(prefix + name, io::DType::F64, {n, n}, bytesOf(symmetrize(upper, n)));
  };
  int64_t h = Shape.hidden, inter = Shape.intermediate;
  std::vector<int64_t> tokens{Tokens};
  if (llvm::Error err = writer.addTensor(prefix + "tokens", io::DType::I64, {1}, bytesOf(tokens)))
    return err;
  if (llvm::Error err =
          writer.addTensor(prefix + "expert_counts", io::DType::I64, {Shape.experts}, bytesOf(Counts)))
    return err;
  if (llvm::Error err = writer.addTensor(prefix + "affinity_sum", io::DType::F64,
                                         {Shape.experts}, bytesOf(AffinitySum)))
    return err;
  if (llvm::Error err = matrix("gram_all", GramAll, h))
    return err;
  for (int64_t e = 0; e < Shape.experts; ++e) {
    std::string expert = "experts." + std::to_string(e) + ".";
    if (llvm::Error err = matrix(expert + "gram_in", GramIn[e], h))
      return err;
    if (llvm::Error err = matrix(expert + "gram_in_weighted", GramInWeighted[e], h))
      return err;
    if (llvm::Error err = matrix(expert + "gram_down", GramDown[e], inter))
      return err;
    if (llvm::Error err = matrix(expert + "gram_down_weighted", GramDownWeighted[e], inter))
      return err;
  }
  if (int64_t s = Shape.sharedIntermediate) {
    if (llvm::Error err = matrix("shared.gram_down", SharedGramDown, s))
      return err;
    if (Shape.sharedGated) {
      if (llvm::Error err = matrix("shared.gram_in_weighted", SharedGramInWeighted, h))
        return err;
      if (llvm::Error err = matrix("shared.gram_down_weighted", SharedGramDownWeighted, s))
        return err;
    }
  }
  return llvm::Error::success();
}

llvm::Error calib::writeStatistics(llvm::StringRef path, const Metadata &metadata,
                                   const std::map<int64_t, LayerStatistics> &layers) {
  io::SafeTensorsWriter writer;
  for (const auto &[key, value] : metadata)
    writer.setMetadata(key, value);
  for (const auto &[layer, stats] : layers)
    if (llvm::Error err = stats.write(writer, layer))
      return err;
  return writer.writeAtomically(path);
}
