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

std::vector<LayerStatistics::TensorSpec>
LayerStatistics::tensorSpecs(const LayerShape &shape) {
  int64_t h = shape.hidden, inter = shape.intermediate, s = shape.sharedIntermediate;
  std::vector<TensorSpec> specs{{"tokens", true, {1}},
                                {"expert_counts", true, {shape.experts}},
                                {"affinity_sum", false, {shape.experts}},
                                {"gram_all", false, {h, h}}};
  for (int64_t e = 0; e < shape.experts; ++e) {
    std::string expert = "experts." + std::to_string(e) + ".";
    specs.push_back({expert + "gram_in", false, {h, h}});
    specs.push_back({expert + "gram_in_weighted", false, {h, h}});
    specs.push_back({expert + "gram_down", false, {inter, inter}});
    specs.push_back({expert + "gram_down_weighted", false, {inter, inter}});
  }
  if (s) {
    specs.push_back({"shared.gram_down", false, {s, s}});
    if (shape.sharedGated) {
      specs.push_back({"shared.gram_in_weighted", false, {h, h}});
      specs.push_back({"shared.gram_down_weighted", false, {s, s}});
    }
  }
  return specs;
}

template <typename T>
static std::vector<uint8_t> bytesOf(const std::vector<T> &values) {
  std::vector<uint8_t> bytes(values.size() * sizeof(T));
  std::memcpy(bytes.data(), values.data(), bytes.size());
  return bytes;
}

std::vector<uint8_t> LayerStatistics::tensorBytes(llvm::StringRef name) const {
  int64_t h = Shape.hidden, inter = Shape.intermediate, s = Shape.sharedIntermediate;
  if (name == "tokens")
    return bytesOf(std::vector<int64_t>{Tokens});
  if (name == "expert_counts")
    return bytesOf(Counts);
  if (name == "affinity_sum")
    return bytesOf(AffinitySum);
  if (name == "gram_all")
    return bytesOf(symmetrize(GramAll, h));
  if (name == "shared.gram_down")
    return bytesOf(symmetrize(SharedGramDown, s));
  if (name == "shared.gram_in_weighted")
    return bytesOf(symmetrize(SharedGramInWeighted, h));
  if (name == "shared.gram_down_weighted")
    return bytesOf(symmetrize(SharedGramDownWeighted, s));
  // experts.<e>.<matrix>
  llvm::StringRef rest = name;
  rest.consume_front("experts.");
  auto [index, matrix] = rest.split('.');
  int64_t e = 0;
  index.getAsInteger(10, e);
  if (matrix == "gram_in")
    return bytesOf(symmetrize(GramIn[e], h));
  if (matrix == "gram_in_weighted")
    return bytesOf(symmetrize(GramInWeighted[e], h));
  if (matrix == "gram_down")
    return bytesOf(symmetrize(GramDown[e], inter));
  return bytesOf(symmetrize(GramDownWeighted[e], inter));
}

static std::string layerPrefix(int64_t layer) {
  return "layers." + std::to_string(layer) + ".";
}

llvm::Error calib::writeStatistics(llvm::StringRef path, const Metadata &metadata,
                                   const std::map<int64_t, LayerStatistics> &layers) {
  io::SafeTensorsWriter writer;
  for (const auto &[key, value] : metadata)
    writer.setMetadata(key, value);
  for (const auto &[layer, stats] : layers)
    for (const LayerStatistics::TensorSpec &spec : LayerStatistics::tensorSpecs(stats.shape()))
      if (llvm::Error err = writer.addTensor(layerPrefix(layer) + spec.name,
                                             spec.isInteger ? io::DType::I64 : io::DType::F64,
                                             spec.shape, stats.tensorBytes(spec.name)))
        return err;
  return writer.writeAtomically(path);
}

llvm::Error calib::writeStatisticsStreaming(llvm::StringRef path, const Metadata &metadata,
                                            const LayerShape &shape,
                                            llvm::ArrayRef<int64_t> layers,
                                            LayerComputation compute) {
  io::SafeTensorsWriter writer;
  for (const auto &[key, value] : metadata)
    writer.setMetadata(key, value);
  // The writer emits tensors sorted by name (all are 8-byte), so each
  // layer's tensors are contiguous: compute a layer at its first tensor and
  // keep it until the next layer replaces it.
  struct Cache {
    int64_t layer = -1;
    std::unique_ptr<LayerStatistics> stats;
  };
  auto cache = std::make_shared<Cache>();
  for (int64_t layer : layers)
    for (const LayerStatistics::TensorSpec &spec : LayerStatistics::tensorSpecs(shape)) {
      auto produce = [cache, compute, layer, name = spec.name](llvm::raw_ostream &os) -> llvm::Error {
        if (cache->layer != layer) {
          cache->stats.reset();
          llvm::Expected<LayerStatistics> stats = compute(layer);
          if (!stats)
            return stats.takeError();
          cache->stats = std::make_unique<LayerStatistics>(std::move(*stats));
          cache->layer = layer;
        }
        std::vector<uint8_t> bytes = cache->stats->tensorBytes(name);
        os.write(reinterpret_cast<const char *>(bytes.data()), bytes.size());
        return llvm::Error::success();
      };
      if (llvm::Error err = writer.addTensor(layerPrefix(layer) + spec.name,
                                             spec.isInteger ? io::DType::I64 : io::DType::F64,
                                             spec.shape, produce))
        return err;
    }
  return writer.writeAtomically(path);
}
