//===- Statistics.cpp - calibration statistics of MoE layers --------------===//
//
// Every sum is accumulated in float64, even though format version 2 stores
// the Gram matrices in float32: a Gram entry is a sum over up to millions
// of routed tokens, and float32 accumulation loses about log2(terms) bits
// of the 24 it has (a relative error growing with the token count, worse
// where large and small activations mix, and dependent on the batch
// order), while the quantizer's Cholesky factorisation of H = 2/n G + damp
// amplifies errors in G by the condition number of H. Summing in float64
// and rounding once keeps every stored entry within half a float32 ulp of
// the exact sum, independent of batching and of the token count, and
// makes the two producers agree to one ulp; float32 storage then costs
// one rounding (2^-24 relative), far below GPTQ's damping (1% of the mean
// diagonal), and halves the size.
//
//===----------------------------------------------------------------------===//
#include "moeq/Calibration/Statistics.h"
#include "moeq/IO/SafeTensors.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <unistd.h>

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

/// Completes an upper triangle into the full symmetric matrix, in place.
void symmetrize(std::vector<double> &matrix, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < i; ++j)
      matrix[i * n + j] = matrix[j * n + i];
}

template <typename T>
void writeValues(llvm::raw_ostream &os, llvm::ArrayRef<T> values) {
  os.write(reinterpret_cast<const char *>(values.data()), values.size() * sizeof(T));
}

/// Writes the full symmetric matrix of an upper triangle, row by row,
/// without materialising it (version 1), or the upper triangle itself,
/// packed row by row and rounded to float (version 2).
void writeSymmetric(llvm::raw_ostream &os, const std::vector<double> &upper, int64_t n,
                    int version = 1) {
  if (version == 2) {
    std::vector<float> row(n);
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = i; j < n; ++j)
        row[j - i] = float(upper[i * n + j]);
      writeValues<float>(os, llvm::ArrayRef<float>(row).take_front(n - i));
    }
    return;
  }
  std::vector<double> row(n);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < n; ++j)
      row[j] = j >= i ? upper[i * n + j] : upper[j * n + i];
    writeValues<double>(os, row);
  }
}

/// Doubles rounded to float.
void writeAsFloat(llvm::raw_ostream &os, llvm::ArrayRef<double> values) {
  std::vector<float> narrow(values.begin(), values.end());
  writeValues<float>(os, narrow);
}

/// Sampled block inputs: float inputs, so float storage (version 2) is
/// exact.
void writeSamples(llvm::raw_ostream &os, llvm::ArrayRef<double> samples, int version) {
  if (version == 2)
    writeAsFloat(os, samples);
  else
    writeValues<double>(os, samples);
}

/// Gathers columns [first, first + cols) of `rows` rows of a float matrix
/// with `stride` columns into a dense double matrix, each row scaled by
/// `scale[r]` (or 1).
void gatherColumns(std::vector<double> &out, llvm::ArrayRef<float> matrix, int64_t stride,
                   int64_t first, int64_t cols, llvm::ArrayRef<int64_t> rows,
                   llvm::ArrayRef<double> scale) {
  out.resize(rows.size() * cols);
  for (size_t r = 0; r < rows.size(); ++r) {
    const float *src = matrix.data() + rows[r] * stride + first;
    double s = scale.empty() ? 1.0 : scale[r];
    for (int64_t c = 0; c < cols; ++c)
      out[r * cols + c] = s * double(src[c]);
  }
}

/// All columns of `rows` rows of a `cols`-column float matrix.
void gatherRows(std::vector<double> &out, llvm::ArrayRef<float> matrix, int64_t cols,
                llvm::ArrayRef<int64_t> rows, llvm::ArrayRef<double> scale) {
  gatherColumns(out, matrix, cols, 0, cols, rows, scale);
}

llvm::Error sizeError(llvm::StringRef what, size_t got, int64_t expected) {
  return llvm::createStringError(
      llvm::formatv("calibration batch: {0} has {1} values, expected {2}", what, got, expected));
}

} // namespace

/// The routed rows of a layer between the two passes: an unlinked scratch
/// file of f32 rows `[x (hidden) | h (intermediate)]`, appended batch by
/// batch, and per expert the segments (file offset, row count) that hold
/// its rows.
class LayerStatistics::RowSpill {
public:
  struct Segment {
    uint64_t offset;
    int64_t rows;
  };

  static llvm::Expected<std::unique_ptr<RowSpill>> create(llvm::StringRef dir,
                                                          int64_t experts, int64_t rowFloats) {
    llvm::SmallString<256> model(dir);
    if (model.empty())
      llvm::sys::path::system_temp_directory(/*ErasedOnReboot=*/true, model);
    llvm::sys::path::append(model, "moeq-stats-spill-%%%%%%%%.bin");
    int fd = -1;
    llvm::SmallString<256> path;
    if (std::error_code ec = llvm::sys::fs::createUniqueFile(model, fd, path))
      return llvm::createStringError("cannot create a scratch file in '" +
                                     llvm::sys::path::parent_path(model) +
                                     "': " + ec.message());
    // Unlinked at once: the data lives as long as the descriptor, and no
    // scratch file is left behind when the process dies.
    llvm::sys::fs::remove(path);
    return std::unique_ptr<RowSpill>(new RowSpill(fd, experts, rowFloats, path.str().str()));
  }

  ~RowSpill() {
    // A write that failed (a full disk) was reported by append() or
    // forEachChunk(); the stream must not abort the process for it now.
    stream->flush();
    stream->clear_error();
    stream.reset();
    ::close(fd);
  }

  /// Appends `rows` rows of `rowFloats` floats for expert `e`.
  llvm::Error append(int64_t e, llvm::ArrayRef<float> rows) {
    int64_t count = int64_t(rows.size()) / rowFloats;
    if (count == 0)
      return llvm::Error::success();
    segments[e].push_back({uint64_t(stream->tell()), count});
    stream->write(reinterpret_cast<const char *>(rows.data()), rows.size() * sizeof(float));
    if (stream->has_error())
      return writeError();
    return llvm::Error::success();
  }

  /// Calls `visit(rows, count)` on consecutive chunks of expert `e`'s rows,
  /// at most `chunkRows` at a time, in spill order.
  llvm::Error forEachChunk(int64_t e, int64_t chunkRows,
                           llvm::function_ref<void(const float *, int64_t)> visit) {
    stream->flush();
    if (stream->has_error())
      return writeError();
    std::vector<float> buffer;
    for (const Segment &segment : segments[e])
      for (int64_t done = 0; done < segment.rows; done += chunkRows) {
        int64_t count = std::min(chunkRows, segment.rows - done);
        buffer.resize(count * rowFloats);
        llvm::MutableArrayRef<char> bytes(reinterpret_cast<char *>(buffer.data()),
                                          buffer.size() * sizeof(float));
        uint64_t offset = segment.offset + uint64_t(done * rowFloats) * sizeof(float);
        while (!bytes.empty()) {
          llvm::Expected<size_t> got = llvm::sys::fs::readNativeFileSlice(
              llvm::sys::fs::convertFDToNativeFile(fd), bytes, offset);
          if (!got)
            return llvm::createStringError("cannot read the scratch file '" + path +
                                           "': " + llvm::toString(got.takeError()));
          if (*got == 0)
            return llvm::createStringError("scratch file '" + path + "' is truncated");
          bytes = bytes.drop_front(*got);
          offset += *got;
        }
        visit(buffer.data(), count);
      }
    return llvm::Error::success();
  }

private:
  RowSpill(int fd, int64_t experts, int64_t rowFloats, std::string path)
      : fd(fd), rowFloats(rowFloats), path(std::move(path)), segments(experts),
        stream(std::make_unique<llvm::raw_fd_ostream>(fd, /*shouldClose=*/false)) {}

  llvm::Error writeError() {
    std::error_code ec = stream->error();
    stream->clear_error();
    return llvm::createStringError("cannot write the scratch file '" + path +
                                   "': " + ec.message());
  }

  int fd;
  int64_t rowFloats;
  std::string path;
  std::vector<std::vector<Segment>> segments;
  std::unique_ptr<llvm::raw_fd_ostream> stream;
};

LayerStatistics::LayerStatistics(const LayerShape &shape, std::string scratchDir)
    : Shape(shape), ScratchDir(std::move(scratchDir)) {
  int64_t h2 = shape.hidden * shape.hidden;
  Counts.assign(shape.experts, 0);
  AffinitySum.assign(shape.experts, 0.0);
  GramAll.assign(h2, 0.0);
  RowWeights.resize(shape.experts);
  Samples.assign(shape.experts, std::vector<double>(shape.samplesPerExpert * shape.hidden, 0.0));
  SampleWeights.assign(shape.experts, std::vector<double>(shape.samplesPerExpert, 0.0));
  if (int64_t s = shape.sharedIntermediate) {
    SharedSamples.assign(shape.samplesPerExpert * shape.hidden, 0.0);
    SharedSampleWeights.assign(shape.samplesPerExpert, 0.0);
    SharedGramDown.assign(s * s, 0.0);
    if (shape.sharedGated) {
      SharedGramInWeighted.assign(h2, 0.0);
      SharedGramDownWeighted.assign(s * s, 0.0);
    }
  }
}

LayerStatistics::LayerStatistics(LayerStatistics &&) = default;
LayerStatistics &LayerStatistics::operator=(LayerStatistics &&) = default;
LayerStatistics::~LayerStatistics() = default;

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
  if (!Spill) {
    auto spill = RowSpill::create(ScratchDir, Shape.experts, h + inter);
    if (!spill)
      return spill.takeError();
    Spill = std::move(*spill);
  }

  std::vector<double> all;
  std::vector<int64_t> everyToken(t);
  for (int64_t i = 0; i < t; ++i)
    everyToken[i] = i;
  gatherRows(all, batch.input, h, everyToken, {});
  addGram(GramAll, all, t, h);

  // Each routed row as [x | h], grouped by expert (the trace is sorted).
  std::vector<float> spilled;
  for (int64_t e = 0; e < Shape.experts; ++e) {
    int64_t begin = batch.offsets[e], end = batch.offsets[e + 1];
    if (begin > end || end > rows)
      return llvm::createStringError("calibration batch: offsets are not increasing");
    spilled.resize((end - begin) * (h + inter));
    for (int64_t r = begin; r < end; ++r) {
      int64_t slot = batch.positions[r];
      if (slot < 0 || slot >= rows)
        return llvm::createStringError("calibration batch: position out of range");
      double c = batch.routingWeights[slot];
      AffinitySum[e] += c;
      // The expert's input and the weight of its output: x and c, or
      // (routing weights on the inputs, Llama 4) c * x and 1.
      const float *x = batch.input.data() + (slot / k) * h;
      float inputScale = Shape.weightsOnInputs ? float(c) : 1.f;
      double outputWeight = Shape.weightsOnInputs ? 1.0 : c;
      RowWeights[e].push_back(outputWeight);
      float *row = spilled.data() + (r - begin) * (h + inter);
      for (int64_t i = 0; i < h; ++i)
        row[i] = Shape.weightsOnInputs ? inputScale * x[i] : x[i];
      int64_t local = Counts[e] + (r - begin);
      if (local % Shape.sampleStride == 0 && local / Shape.sampleStride < Shape.samplesPerExpert) {
        int64_t sample = local / Shape.sampleStride;
        std::copy_n(row, h, Samples[e].data() + sample * h);
        SampleWeights[e][sample] = outputWeight;
      }
      std::memcpy(row + h, batch.expertActivations.data() + r * inter, inter * sizeof(float));
    }
    Counts[e] += end - begin;
    if (llvm::Error err = Spill->append(e, spilled))
      return err;
  }

  if (int64_t s = Shape.sharedIntermediate) {
    if (int64_t(batch.sharedActivations.size()) != t * s)
      return sizeError("shared activations", batch.sharedActivations.size(), t * s);
    std::vector<double> a, aw;
    gatherRows(a, batch.sharedActivations, s, everyToken, {});
    addGram(SharedGramDown, a, t, s);
    if (Shape.sharedGated && int64_t(batch.sharedGateLogits.size()) != t)
      return sizeError("shared gate logits", batch.sharedGateLogits.size(), t);
    auto gateOf = [&](int64_t i) {
      return Shape.sharedGated ? 1.0 / (1.0 + std::exp(-double(batch.sharedGateLogits[i])))
                               : 1.0;
    };
    // Samples of every token for the shared expert's measured loss.
    for (int64_t i = 0; i < t && Shape.samplesPerExpert; ++i) {
      int64_t token = Tokens + i;
      if (token % Shape.sharedSampleStride || token / Shape.sharedSampleStride >= Shape.samplesPerExpert)
        continue;
      int64_t sample = token / Shape.sharedSampleStride;
      std::copy_n(batch.input.data() + i * h, h, SharedSamples.data() + sample * h);
      SharedSampleWeights[sample] = gateOf(i);
    }
    if (Shape.sharedGated) {
      std::vector<double> sqrtGate(t);
      for (int64_t i = 0; i < t; ++i)
        sqrtGate[i] = std::sqrt(gateOf(i));
      gatherRows(aw, batch.input, h, everyToken, sqrtGate);
      addGram(SharedGramInWeighted, aw, t, h);
      gatherRows(aw, batch.sharedActivations, s, everyToken, sqrtGate);
      addGram(SharedGramDownWeighted, aw, t, s);
    }
  }
  Tokens += t;
  return llvm::Error::success();
}

llvm::Expected<ExpertGrams> LayerStatistics::expertGrams(int64_t e) const {
  int64_t h = Shape.hidden, inter = Shape.intermediate;
  ExpertGrams grams;
  grams.in.assign(h * h, 0.0);
  grams.inWeighted.assign(h * h, 0.0);
  grams.down.assign(inter * inter, 0.0);
  grams.downWeighted.assign(inter * inter, 0.0);
  if (Spill) {
    // Chunks of about 32 MiB of f32 rows.
    int64_t chunkRows = std::max<int64_t>(1, (int64_t(32) << 20) / (4 * (h + inter)));
    const std::vector<double> &weights = RowWeights[e];
    size_t next = 0;
    std::vector<double> a, aw, sqrtWeight;
    std::vector<int64_t> rowIndex;
    llvm::Error err = Spill->forEachChunk(e, chunkRows, [&](const float *rows, int64_t count) {
      rowIndex.resize(count);
      sqrtWeight.resize(count);
      for (int64_t r = 0; r < count; ++r) {
        rowIndex[r] = r;
        sqrtWeight[r] = std::sqrt(std::max(weights[next++], 0.0));
      }
      llvm::ArrayRef<float> chunk(rows, count * (h + inter));
      gatherColumns(a, chunk, h + inter, 0, h, rowIndex, {});
      addGram(grams.in, a, count, h);
      gatherColumns(aw, chunk, h + inter, 0, h, rowIndex, sqrtWeight);
      addGram(grams.inWeighted, aw, count, h);
      gatherColumns(a, chunk, h + inter, h, inter, rowIndex, {});
      addGram(grams.down, a, count, inter);
      gatherColumns(aw, chunk, h + inter, h, inter, rowIndex, sqrtWeight);
      addGram(grams.downWeighted, aw, count, inter);
    });
    if (err)
      return std::move(err);
  }
  symmetrize(grams.in, h);
  symmetrize(grams.inWeighted, h);
  symmetrize(grams.down, inter);
  symmetrize(grams.downWeighted, inter);
  return grams;
}

std::vector<LayerStatistics::TensorSpec>
LayerStatistics::tensorSpecs(const LayerShape &shape, int version) {
  int64_t h = shape.hidden, inter = shape.intermediate, s = shape.sharedIntermediate;
  bool packed = version == 2;
  io::DType matrixType = packed ? io::DType::F32 : io::DType::F64;
  auto matrix = [&](int64_t n) {
    return packed ? std::vector<int64_t>{packedSize(n)} : std::vector<int64_t>{n, n};
  };
  std::vector<TensorSpec> specs{{"tokens", io::DType::I64, {1}},
                                {"expert_counts", io::DType::I64, {shape.experts}},
                                {"affinity_sum", io::DType::F64, {shape.experts}},
                                {"gram_all", matrixType, matrix(h)}};
  for (int64_t e = 0; e < shape.experts; ++e) {
    std::string expert = "experts." + std::to_string(e) + ".";
    specs.push_back({expert + "gram_in", matrixType, matrix(h)});
    specs.push_back({expert + "gram_in_weighted", matrixType, matrix(h)});
    specs.push_back({expert + "gram_down", matrixType, matrix(inter)});
    specs.push_back({expert + "gram_down_weighted", matrixType, matrix(inter)});
    if (int64_t n = shape.samplesPerExpert) {
      specs.push_back({expert + "samples", matrixType, {n, h}});
      specs.push_back({expert + "sample_weights", io::DType::F64, {n}});
    }
  }
  if (s) {
    specs.push_back({"shared.gram_down", matrixType, matrix(s)});
    if (int64_t n = shape.samplesPerExpert) {
      specs.push_back({"shared.samples", matrixType, {n, h}});
      specs.push_back({"shared.sample_weights", io::DType::F64, {n}});
    }
    if (shape.sharedGated) {
      specs.push_back({"shared.gram_in_weighted", matrixType, matrix(h)});
      specs.push_back({"shared.gram_down_weighted", matrixType, matrix(s)});
    }
  }
  return specs;
}

llvm::Error LayerStatistics::writeTensor(llvm::StringRef name, llvm::raw_ostream &os,
                                         int version) {
  int64_t h = Shape.hidden, s = Shape.sharedIntermediate;
  if (name == "tokens")
    writeValues<int64_t>(os, Tokens);
  else if (name == "expert_counts")
    writeValues<int64_t>(os, Counts);
  else if (name == "affinity_sum")
    writeValues<double>(os, AffinitySum);
  else if (name == "gram_all")
    writeSymmetric(os, GramAll, h, version);
  else if (name == "shared.gram_down" && s)
    writeSymmetric(os, SharedGramDown, s, version);
  else if (name == "shared.samples" && s && Shape.samplesPerExpert)
    writeSamples(os, SharedSamples, version);
  else if (name == "shared.sample_weights" && s && Shape.samplesPerExpert)
    writeValues<double>(os, SharedSampleWeights);
  else if (name == "shared.gram_in_weighted" && Shape.sharedGated)
    writeSymmetric(os, SharedGramInWeighted, h, version);
  else if (name == "shared.gram_down_weighted" && Shape.sharedGated)
    writeSymmetric(os, SharedGramDownWeighted, s, version);
  else
    return writeExpertTensor(name, os, version);
  return llvm::Error::success();
}

llvm::Error LayerStatistics::writeExpertTensor(llvm::StringRef name, llvm::raw_ostream &os,
                                               int version) {
  auto unknown = [&] {
    return llvm::createStringError("no statistics tensor '" + name.str() + "'");
  };
  llvm::StringRef rest = name;
  int64_t e = -1;
  if (!rest.consume_front("experts."))
    return unknown();
  auto [index, matrix] = rest.split('.');
  if (index.getAsInteger(10, e) || e < 0 || e >= Shape.experts)
    return unknown();
  if (Shape.samplesPerExpert && matrix == "samples") {
    writeSamples(os, Samples[e], version);
    return llvm::Error::success();
  }
  if (Shape.samplesPerExpert && matrix == "sample_weights") {
    writeValues<double>(os, SampleWeights[e]);
    return llvm::Error::success();
  }
  std::vector<double> ExpertGrams::*field = nullptr;
  if (matrix == "gram_in")
    field = &ExpertGrams::in;
  else if (matrix == "gram_in_weighted")
    field = &ExpertGrams::inWeighted;
  else if (matrix == "gram_down")
    field = &ExpertGrams::down;
  else if (matrix == "gram_down_weighted")
    field = &ExpertGrams::downWeighted;
  else
    return unknown();
  if (CachedExpert != e) {
    // Free the previous expert's matrices before computing the next ones.
    Cached = {};
    CachedExpert = -1;
    llvm::Expected<ExpertGrams> grams = expertGrams(e);
    if (!grams)
      return grams.takeError();
    Cached = std::move(*grams);
    CachedExpert = e;
  }
  // (The cached matrices are full; writeSymmetric reads their upper half.)
  int64_t n = matrix.starts_with("gram_in") ? Shape.hidden : Shape.intermediate;
  writeSymmetric(os, Cached.*field, n, version);
  return llvm::Error::success();
}

int64_t calib::sampleStride(int64_t tokens, int64_t topK, int64_t experts,
                            int64_t samplesPerExpert) {
  if (samplesPerExpert <= 0 || experts <= 0)
    return 1;
  return std::max<int64_t>(1, tokens * topK / (experts * samplesPerExpert));
}

static std::string layerPrefix(int64_t layer) {
  return "layers." + std::to_string(layer) + ".";
}

llvm::Error calib::writeStatistics(llvm::StringRef path, const Metadata &metadata,
                                   std::map<int64_t, LayerStatistics> &layers) {
  io::SafeTensorsWriter writer;
  for (const auto &[key, value] : metadata)
    writer.setMetadata(key, value);
  for (auto &[layer, stats] : layers)
    for (const LayerStatistics::TensorSpec &spec : LayerStatistics::tensorSpecs(stats.shape()))
      if (llvm::Error err = writer.addTensor(
              layerPrefix(layer) + spec.name, spec.dtype, spec.shape, [&stats = stats, name = spec.name](llvm::raw_ostream &os) {
                return stats.writeTensor(name, os);
              }))
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
        return cache->stats->writeTensor(name, os);
      };
      if (llvm::Error err =
              writer.addTensor(layerPrefix(layer) + spec.name, spec.dtype, spec.shape, produce))
        return err;
    }
  return writer.writeAtomically(path);
}

llvm::Error calib::writeStatisticsDirectory(llvm::StringRef dir, const Metadata &index,
                                            const Metadata &layerMetadata,
                                            const LayerShape &shape,
                                            llvm::ArrayRef<int64_t> layers,
                                            LayerComputation compute) {
  // Checked before any work; created (with its index) only when the first
  // layer is ready, so that a failed run leaves no directory behind.
  if (llvm::Error err = prepareStatisticsDirectory(dir, index, /*create=*/false))
    return err;
  bool prepared = false;
  for (int64_t layer : layers) {
    llvm::Expected<LayerStatistics> computed = compute(layer);
    if (!computed)
      return llvm::createStringError(dir + ": " + llvm::toString(computed.takeError()));
    if (!prepared) {
      if (llvm::Error err = prepareStatisticsDirectory(dir, index))
        return err;
      prepared = true;
    }
    // Shared with the producers, which run when the writer streams the file.
    auto stats = std::make_shared<LayerStatistics>(std::move(*computed));
    io::SafeTensorsWriter writer;
    for (const auto &[key, value] : layerMetadata)
      writer.setMetadata(key, value);
    for (const auto &[key, value] : index)
      writer.setMetadata(key, value);
    writer.setMetadata("layer", std::to_string(layer));
    // The writer emits tensors by element size, then by name, so an
    // expert's matrices are contiguous: each expert is computed once.
    for (const LayerStatistics::TensorSpec &spec :
         LayerStatistics::tensorSpecs(shape, /*version=*/2))
      if (llvm::Error err = writer.addTensor(
              layerPrefix(layer) + spec.name, spec.dtype, spec.shape,
              [stats, name = spec.name](llvm::raw_ostream &os) {
                return stats->writeTensor(name, os, /*version=*/2);
              }))
        return err;
    llvm::SmallString<256> path(dir);
    llvm::sys::path::append(path, layerFileName(layer));
    if (llvm::Error err = writer.writeAtomically(path))
      return err;
  }
  return llvm::Error::success();
}

llvm::Error calib::convertToDirectory(StatisticsReader &v1, llvm::StringRef dir,
                                      const Metadata &index, llvm::ArrayRef<int64_t> layers) {
  if (v1.version() != 1)
    return llvm::createStringError(v1.path() + " is not a version 1 statistics file");
  if (llvm::Error err = prepareStatisticsDirectory(dir, index))
    return err;
  const io::SafeTensorsFile *file = nullptr;
  if (llvm::Expected<const io::TensorInfo *> found = v1.find("", &file); !found)
    return found.takeError();
  for (int64_t layer : layers) {
    std::string prefix = layerPrefix(layer);
    io::SafeTensorsWriter writer;
    for (const auto &[key, value] : v1.metadata())
      writer.setMetadata(key, value);
    for (const auto &[key, value] : index)
      writer.setMetadata(key, value);
    writer.setMetadata("layer", std::to_string(layer));
    auto producer = v1.metadata().find("producer");
    writer.setMetadata("producer", (producer == v1.metadata().end() ? std::string("unknown")
                                                                    : producer->second) +
                                       " (converted from version 1 by moeq-stats)");
    bool any = false;
    for (const io::TensorInfo &info : file->tensors()) {
      if (!llvm::StringRef(info.name).starts_with(prefix))
        continue;
      any = true;
      llvm::StringRef leaf = llvm::StringRef(info.name).rsplit('.').second;
      bool matrix = leaf.starts_with("gram_") && info.shape.size() == 2 &&
                    info.shape[0] == info.shape[1] && info.dtype == io::DType::F64;
      bool samples = leaf == "samples" && info.dtype == io::DType::F64;
      if (!matrix && !samples) {
        if (llvm::Error err =
                writer.addTensor(info.name, info.dtype, info.shape, file->data(info)))
          return err;
        continue;
      }
      // Narrowed when the writer reaches the tensor: one matrix in memory.
      std::vector<int64_t> shape =
          matrix ? std::vector<int64_t>{packedSize(info.shape[0])} : info.shape;
      auto produce = [file, &info, matrix](llvm::raw_ostream &os) -> llvm::Error {
        llvm::ArrayRef<uint8_t> bytes = file->data(info);
        std::vector<double> values(info.numElements());
        std::memcpy(values.data(), bytes.data(), bytes.size());
        std::vector<float> narrow;
        if (matrix)
          packUpper(values, info.shape[0], narrow);
        else
          narrow.assign(values.begin(), values.end());
        writeValues<float>(os, narrow);
        file->releasePages();
        return llvm::Error::success();
      };
      if (llvm::Error err = writer.addTensor(info.name, io::DType::F32, shape, produce))
        return err;
    }
    if (!any)
      return llvm::createStringError(v1.path() + " has no statistics for layer " +
                                     std::to_string(layer));
    llvm::SmallString<256> path(dir);
    llvm::sys::path::append(path, layerFileName(layer));
    if (llvm::Error err = writer.writeAtomically(path))
      return err;
    v1.releasePages();
  }
  return llvm::Error::success();
}
