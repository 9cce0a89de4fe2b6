//===- DeltaDecompress.cpp - D^2-MoE: shared base + low-rank deltas -------===//
//
// Reads the routed experts of each moeq.moe, computes per linear the
// Fisher-merged base and the whitened truncated SVD of every expert's delta
// (lib/Compress), writes them to an archive, and rewrites each expert
// weight as moeq.delta_weight(base, a, b) of parameters. Static base pruning
// reorders the intermediate channels (the same permutation for the gate and
// up rows and the down columns of every expert, which leaves each expert's
// function unchanged) so that the kept channels lead.
//
//===----------------------------------------------------------------------===//
#include "moeq/Compress/DeltaDecomposition.h"
#include "moeq/Dialect/MoEQ/IR/MoEQ.h"
#include "moeq/IO/SafeTensors.h"
#include "moeq/Passes/ExpertWeights.h"
#include "moeq/Passes/ParameterArchives.h"
#include "moeq/Passes/Passes.h"
#include "moeq/Quant/GPTQ.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/ThreadPool.h"
#include "llvm/Support/Threading.h"

#include <cmath>
#include <cstring>
#include <numeric>
#include <optional>

namespace mlir::moeq {
#define GEN_PASS_DEF_DELTADECOMPRESS
#include "moeq/Passes/Passes.h.inc"
} // namespace mlir::moeq

using namespace mlir;
using namespace mlir::moeq;

namespace {

/// One linear (gate, up or down) of all routed experts of a layer.
struct Linear {
  StringRef name;
  MutableOperandRange operands;
  int64_t rows = 0, cols = 0;
  bool intermediateRows = true; ///< gate/up: rows are intermediate channels
  std::vector<std::vector<float>> experts;
  std::vector<std::vector<double>> grams; ///< per expert, cols x cols
  std::vector<float> base;                ///< kept rows or columns only
  int64_t baseRows = 0, baseCols = 0;
  std::vector<compress::LowRank> deltas;
  int64_t rank = 0;
  double error = 0, deltaNorm = 0; ///< whitened, summed over experts
  bool permuted = false;           ///< columns reordered (pruned down)
  /// GPTQ Hessians of the base and of each expert's a and b factor:
  /// a reference into the statistics, or a matrix this pass writes.
  ExternalParamAttr baseHessian;
  SmallVector<ExternalParamAttr> aHessians, bHessians;
};

/// Adds a float64 tensor to `writer`.
llvm::Error addF64(io::SafeTensorsWriter &writer, StringRef name, ArrayRef<int64_t> shape,
                   ArrayRef<double> values) {
  std::vector<uint8_t> bytes(values.size() * sizeof(double));
  std::memcpy(bytes.data(), values.data(), bytes.size());
  return writer.addTensor(name, io::DType::F64, shape, std::move(bytes));
}

/// Rows (or columns) of a row-major matrix in the order `perm`.
std::vector<float> permute(ArrayRef<float> m, int64_t rows, int64_t cols,
                           ArrayRef<int64_t> perm, bool permuteRows) {
  std::vector<float> out(m.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      out[r * cols + c] =
          permuteRows ? m[perm[r] * cols + c] : m[r * cols + perm[c]];
  return out;
}

std::vector<double> permuteSymmetric(ArrayRef<double> g, ArrayRef<int64_t> perm) {
  int64_t n = perm.size();
  std::vector<double> out(n * n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j)
      out[i * n + j] = g[perm[i] * n + perm[j]];
  return out;
}

struct DeltaDecompressPass
    : mlir::moeq::impl::DeltaDecompressBase<DeltaDecompressPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    SmallVector<MoEOp> moes;
    module.walk([&](MoEOp moe) { moes.push_back(moe); });
    if (moes.empty())
      return;
    if (failed(checkOptions(module)))
      return signalPassFailure();
    // (A shared base plus low-rank deltas of the weights says nothing of
    // per-expert biases; the decomposition does not carry them yet.)
    for (MoEOp moe : moes)
      if (!moe.getGateBias().empty() || !moe.getUpBias().empty() || !moe.getDownBias().empty()) {
        moe.emitError() << "moeq-delta-decompress does not support experts with biases "
                           "(gpt-oss) yet";
        return signalPassFailure();
      }
    if (!statsPath.empty())
      ParameterArchives::registerInModule(module, "stats", statsPath);
    FailureOr<ParameterArchives> archives = ParameterArchives::fromModule(module);
    if (failed(archives))
      return signalPassFailure();
    io::SafeTensorsWriter writer;
    writer.setMetadata("producer", "moeq-delta-decompress");
    for (MoEOp moe : moes)
      if (failed(decompress(moe, *archives, writer)))
        return signalPassFailure();
    if (llvm::Error err = writer.writeAtomically(outputPath)) {
      module.emitError() << "cannot write the delta archive: " << llvm::toString(std::move(err));
      return signalPassFailure();
    }
    ParameterArchives::registerInModule(module, scope, outputPath);
  }

  LogicalResult checkOptions(ModuleOp module) {
    if (outputPath.empty())
      return module.emitError() << "moeq-delta-decompress needs an 'output' archive path";
    if (!(compression > 0 && compression < 1))
      return module.emitError() << "compression must be in (0, 1), got " << compression;
    if (!(prune >= 0 && prune < 1))
      return module.emitError() << "prune must be in [0, 1), got " << prune;
    if (rankMultiple < 1)
      return module.emitError() << "rank-multiple must be positive";
    if (statsPath.empty() && (merge == DeltaMerge::Fisher || whiten || prune > 0))
      return module.emitError()
             << "merge=fisher, whiten and prune need calibration statistics ('stats')";
    return success();
  }

  LogicalResult decompress(MoEOp moe, ParameterArchives &archives,
                           io::SafeTensorsWriter &writer) {
    int64_t layer = getLayerIndex(moe);
    int64_t experts = moe.getGate().size();
    if (layer < 0 && !statsPath.empty())
      return moe.emitError() << "statistics need the layer index (function attribute "
                                "'moeq.layer')";
    auto statsRef = [&](const std::string &name) {
      return getStatsRef(&getContext(), layer, name);
    };
    // Routing frequencies (all 1 without statistics: the plain mean).
    std::vector<double> frequency(experts, 1.0);
    double tokens = 0;
    if (!statsPath.empty()) {
      auto counts = archives.readFloat64(moe.getLoc(), statsRef("expert_counts"), {experts});
      auto total = archives.readFloat64(moe.getLoc(), statsRef("tokens"), {1});
      if (failed(counts) || failed(total))
        return failure();
      frequency = *counts;
      tokens = (*total)[0];
    }
    std::vector<double> mergeFrequency =
        merge == DeltaMerge::Fisher ? frequency : std::vector<double>(experts, 1.0);

    SmallVector<Linear, 3> linears;
    linears.push_back({"gate", moe.getGateMutable()});
    linears.push_back({"up", moe.getUpMutable()});
    linears.push_back({"down", moe.getDownMutable()});
    for (Linear &linear : linears)
      if (failed(readLinear(moe, linear, layer, archives, mergeFrequency)))
        return failure();
    Linear &gate = linears[0], &up = linears[1], &down = linears[2];
    int64_t intermediate = gate.rows, hidden = gate.cols;
    down.intermediateRows = false;

    // Static pruning: reorder the intermediate channels, kept ones first.
    int64_t kept = intermediate;
    if (prune > 0) {
      std::vector<int64_t> order = compress::rankBaseChannels(
          down.base, hidden, intermediate, down.grams, tokens);
      kept = int64_t(std::floor(intermediate * (1 - prune) / rankMultiple)) * rankMultiple;
      if (kept <= 0)
        return moe.emitError() << "prune " << prune << " leaves no base channel";
      for (Linear *l : {&gate, &up}) {
        for (auto &w : l->experts)
          w = permute(w, l->rows, l->cols, order, true);
        l->base = permute(l->base, l->rows, l->cols, order, true);
        l->base.resize(kept * hidden);
        l->baseRows = kept;
      }
      for (auto &w : down.experts)
        w = permute(w, hidden, intermediate, order, false);
      std::vector<float> base = permute(down.base, hidden, intermediate, order, false);
      down.base.assign(hidden * kept, 0.f);
      for (int64_t h = 0; h < hidden; ++h)
        std::copy_n(base.begin() + h * intermediate, kept, down.base.begin() + h * kept);
      down.baseCols = kept;
      for (auto &g : down.grams)
        if (!g.empty())
          g = permuteSymmetric(g, order);
      down.permuted = true;
    }

    for (Linear &linear : linears)
      if (failed(decomposeLinear(moe, linear)))
        return failure();
    if (failed(writeLinears(moe, layer, linears, writer)))
      return failure();
    rewrite(moe, layer, linears);
    summarize(moe, linears, kept, experts);
    return success();
  }

  /// Reads the experts of `linear` (float parameters), their Gram matrices
  /// and Fisher information, and merges the base.
  LogicalResult readLinear(MoEOp moe, Linear &linear, int64_t layer,
                           ParameterArchives &archives, ArrayRef<double> frequency) {
    bool isDown = linear.name == "down";
    for (auto [index, operand] : llvm::enumerate(linear.operands)) {
      Value weight = operand.get();
      auto param = weight.getDefiningOp<ParamOp>();
      if (!param || isa<PackedWeightType>(weight.getType()))
        return moe.emitError() << "moeq-delta-decompress needs float expert weights from "
                                  "parameters (run it before quantization); "
                               << linear.name << " weight of expert " << index << " is not";
      ArrayRef<int64_t> shape = cast<ShapedType>(weight.getType()).getShape();
      linear.rows = shape[0];
      linear.cols = shape[1];
      FailureOr<std::vector<float>> values = archives.readAsFloat(param.getLoc(), param.getRef());
      if (failed(values))
        return failure();
      linear.experts.push_back(std::move(*values));
      std::string prefix = "experts." + std::to_string(index) + ".";
      std::vector<double> gram;
      // (Read whenever there are statistics: pruning scores and GPTQ
      // Hessians of the factors need them even without whitening.)
      if (!statsPath.empty()) {
        std::string name = prefix + (isDown ? "gram_down" : "gram_in");
        auto read = archives.readFloat64(moe.getLoc(), getStatsRef(&getContext(), layer, name),
                                         {linear.cols, linear.cols});
        if (failed(read))
          return failure();
        gram = std::move(*read);
      }
      linear.grams.push_back(std::move(gram));
    }
    std::vector<std::vector<float>> fisher;
    if (merge == DeltaMerge::Fisher)
      for (int64_t e = 0, n = linear.experts.size(); e < n; ++e) {
        ExternalParamAttr ref = getStatsRef(
            &getContext(), layer, "experts." + std::to_string(e) + ".fisher_" + linear.name.str());
        FailureOr<std::vector<float>> values = archives.readAsFloat(moe.getLoc(), ref);
        if (failed(values))
          return moe.emitError() << "merge=fisher needs the Fisher information of every "
                                    "expert weight: calibrate with moeq_calibrate.py --fisher";
        if (int64_t(values->size()) != linear.rows * linear.cols)
          return moe.emitError() << "'" << ref.getKey().getValue() << "' has "
                                 << values->size() << " values, expected "
                                 << linear.rows * linear.cols;
        fisher.push_back(std::move(*values));
      }
    llvm::Expected<std::vector<float>> base =
        compress::mergeBase(linear.experts, frequency, fisher);
    if (!base)
      return moe.emitError() << "layer " << layer << " " << linear.name << ": "
                             << llvm::toString(base.takeError());
    linear.base = std::move(*base);
    linear.baseRows = linear.rows;
    linear.baseCols = linear.cols;
    return success();
  }

  /// Runs `body(e)` for e in [0, count) on `threads` threads, BLAS
  /// single-threaded inside each: the results do not depend on the count.
  void forEachExpert(size_t count, llvm::function_ref<void(size_t)> body) {
    quant::ScopedBLASThreads blas(1);
    llvm::DefaultThreadPool pool(llvm::hardware_concurrency(threads));
    for (size_t e = 0; e < count; ++e)
      pool.async([body, e] { body(e); });
    pool.wait();
  }

  /// The rank from the compression target and the SVDs of the deltas.
  LogicalResult decomposeLinear(MoEOp moe, Linear &linear) {
    int64_t experts = linear.experts.size();
    llvm::Expected<int64_t> rank = compress::rankForCompression(
        experts, linear.rows, linear.cols, compression,
        double(linear.baseRows) * linear.baseCols, sharedBasis, rankMultiple);
    if (!rank)
      return moe.emitError() << linear.name << ": " << llvm::toString(rank.takeError());
    linear.rank = *rank;
    std::vector<std::vector<float>> deltas;
    for (const std::vector<float> &w : linear.experts) {
      std::vector<float> d = w;
      for (int64_t r = 0; r < linear.baseRows; ++r)
        for (int64_t c = 0; c < linear.baseCols; ++c)
          d[r * linear.cols + c] -= linear.base[r * linear.baseCols + c];
      deltas.push_back(std::move(d));
    }
    if (sharedBasis) {
      std::vector<double> total(linear.cols * linear.cols, 0.0);
      for (const auto &g : linear.grams)
        for (size_t i = 0; i < g.size(); ++i)
          total[i] += g[i];
      auto factors = compress::sharedBasisSVD(deltas, linear.rows, linear.cols,
                                              whiten ? total : std::vector<double>(), linear.rank);
      if (!factors)
        return moe.emitError() << linear.name << ": " << llvm::toString(factors.takeError());
      linear.deltas = std::move(*factors);
    } else {
      // One SVD per expert, `threads` at a time, each into its own slot.
      std::vector<std::optional<llvm::Expected<compress::LowRank>>> factors(deltas.size());
      forEachExpert(deltas.size(), [&](size_t e) {
        ArrayRef<double> gram = whiten ? ArrayRef<double>(linear.grams[e]) : ArrayRef<double>();
        factors[e].emplace(
            compress::truncatedSVD(deltas[e], linear.rows, linear.cols, gram, linear.rank));
      });
      for (auto [e, factor] : llvm::enumerate(factors)) {
        if (!*factor)
          return moe.emitError() << linear.name << " of expert " << e << ": "
                                 << llvm::toString(factor->takeError());
        linear.deltas.push_back(std::move(**factor));
      }
    }
    // The output error on the calibration inputs (whatever the SVD
    // minimised), relative to the delta's own; summed in expert order.
    std::vector<double> errors(deltas.size()), norms(deltas.size());
    forEachExpert(deltas.size(), [&](size_t e) {
      ArrayRef<double> gram = linear.grams[e];
      compress::LowRank none{linear.rows, linear.cols, 0, {}, {}};
      errors[e] = compress::whitenedError(deltas[e], linear.deltas[e], gram);
      norms[e] = compress::whitenedError(deltas[e], none, gram);
    });
    for (size_t e = 0; e < deltas.size(); ++e) {
      linear.error += errors[e];
      linear.deltaNorm += norms[e];
    }
    // The experts' float copies are no longer needed.
    linear.experts.clear();
    return success();
  }

  static std::string baseKey(int64_t layer, StringRef linear) {
    return llvm::formatv("layers.{0}.{1}.base", layer, linear).str();
  }
  static std::string factorKey(int64_t layer, int64_t expert, StringRef linear, StringRef f) {
    return llvm::formatv("layers.{0}.experts.{1}.{2}.{3}", layer, expert, linear, f).str();
  }
  std::string bKey(int64_t layer, int64_t expert, StringRef linear) const {
    return sharedBasis ? llvm::formatv("layers.{0}.{1}.b", layer, linear).str()
                       : factorKey(layer, expert, linear, "b");
  }

  LogicalResult writeLinears(MoEOp moe, int64_t layer, MutableArrayRef<Linear> linears,
                             io::SafeTensorsWriter &writer) {
    for (Linear &linear : linears) {
      llvm::Error err = writer.addF32(baseKey(layer, linear.name),
                                      {linear.baseRows, linear.baseCols}, linear.base);
      for (auto [e, f] : llvm::enumerate(linear.deltas)) {
        if (!err)
          err = writer.addF32(factorKey(layer, e, linear.name, "a"), {f.rows, f.rank}, f.a);
        if (!err && (!sharedBasis || e == 0))
          err = writer.addF32(bKey(layer, e, linear.name), {f.rank, f.cols}, f.b);
      }
      if (!err)
        err = writeHessians(layer, linear, writer);
      if (err)
        return moe.emitError() << llvm::toString(std::move(err));
    }
    return success();
  }

  /// GPTQ Hessians of the base and factors (inputs x x^T of each matrix's
  /// own input): base: sum_i G_i (its leading kept block for a pruned down
  /// base); b_i: G_i (a statistics reference unless reordered); a_i:
  /// B_i G_i B_i^T (rank x rank); a shared b: sum_i G_i. Without
  /// statistics there are none (GPTQ then refuses, RTN needs none).
  llvm::Error writeHessians(int64_t layer, Linear &linear, io::SafeTensorsWriter &writer) {
    if (statsPath.empty())
      return llvm::Error::success();
    int64_t n = linear.cols, experts = linear.grams.size();
    std::vector<double> total(n * n, 0.0);
    for (const auto &g : linear.grams)
      for (int64_t i = 0; i < n * n; ++i)
        total[i] += g[i];
    auto own = [&](const std::string &key) {
      return ExternalParamAttr::get(&getContext(), StringAttr::get(&getContext(), scope),
                                    StringAttr::get(&getContext(), key));
    };
    // The base multiplies the leading baseCols inputs.
    int64_t k = linear.baseCols;
    std::vector<double> baseH(k * k);
    for (int64_t i = 0; i < k; ++i)
      for (int64_t j = 0; j < k; ++j)
        baseH[i * k + j] = total[i * n + j];
    std::string baseName = baseKey(layer, linear.name) + ".hessian";
    if (llvm::Error err = addF64(writer, baseName, {k, k}, baseH))
      return err;
    linear.baseHessian = own(baseName);
    for (int64_t e = 0; e < experts; ++e) {
      const compress::LowRank &f = linear.deltas[e];
      // a's inputs are b x: B G B^T.
      std::vector<double> bg(f.rank * n, 0.0), aH(f.rank * f.rank, 0.0);
      for (int64_t r = 0; r < f.rank; ++r)
        for (int64_t j = 0; j < n; ++j) {
          double sum = 0;
          for (int64_t i = 0; i < n; ++i)
            sum += double(f.b[r * n + i]) * linear.grams[e][i * n + j];
          bg[r * n + j] = sum;
        }
      for (int64_t r = 0; r < f.rank; ++r)
        for (int64_t q = 0; q < f.rank; ++q) {
          double sum = 0;
          for (int64_t j = 0; j < n; ++j)
            sum += bg[r * n + j] * double(f.b[q * n + j]);
          aH[r * f.rank + q] = sum;
        }
      std::string aName = factorKey(layer, e, linear.name, "a") + ".hessian";
      if (llvm::Error err = addF64(writer, aName, {f.rank, f.rank}, aH))
        return err;
      linear.aHessians.push_back(own(aName));
      std::string bName = bKey(layer, e, linear.name) + ".hessian";
      if (sharedBasis) {
        if (e == 0)
          if (llvm::Error err = addF64(writer, bName, {n, n}, total))
            return err;
        linear.bHessians.push_back(own(bName));
      } else if (linear.permuted) {
        if (llvm::Error err = addF64(writer, bName, {n, n}, linear.grams[e]))
          return err;
        linear.bHessians.push_back(own(bName));
      } else {
        linear.bHessians.push_back(getStatsRef(
            &getContext(), layer,
            "experts." + std::to_string(e) + (linear.name == "down" ? ".gram_down" : ".gram_in")));
      }
    }
    return llvm::Error::success();
  }

  void rewrite(MoEOp moe, int64_t layer, MutableArrayRef<Linear> linears) {
    OpBuilder b(moe);
    Location loc = moe.getLoc();
    Type f32 = b.getF32Type();
    auto param = [&](const std::string &key, int64_t rows, int64_t cols) {
      auto ref = ExternalParamAttr::get(&getContext(), b.getStringAttr(scope),
                                        b.getStringAttr(key));
      return ParamOp::create(b, loc, RankedTensorType::get({rows, cols}, f32), ref).getResult();
    };
    for (Linear &linear : linears) {
      Value sharedB;
      Value base = param(baseKey(layer, linear.name), linear.baseRows, linear.baseCols);
      if (linear.baseHessian)
        base.getDefiningOp()->setAttr(kHessianAttrName, linear.baseHessian);
      for (auto [e, operand] : llvm::enumerate(linear.operands)) {
        Value old = operand.get();
        auto source = old.getDefiningOp<ParamOp>();
        Value a = param(factorKey(layer, e, linear.name, "a"), linear.rows, linear.rank);
        Value bFactor = sharedB && e > 0
                            ? sharedB
                            : param(bKey(layer, e, linear.name), linear.rank, linear.cols);
        if (sharedBasis)
          sharedB = bFactor;
        if (!linear.aHessians.empty()) {
          a.getDefiningOp()->setAttr(kHessianAttrName, linear.aHessians[e]);
          bFactor.getDefiningOp()->setAttr(kHessianAttrName, linear.bHessians[e]);
        }
        auto weight = DeltaWeightOp::create(
            b, loc, RankedTensorType::get({linear.rows, linear.cols}, f32), base, a, bFactor,
            source ? source.getRef() : ExternalParamAttr());
        operand.set(weight.getResult());
        if (source && source->use_empty())
          source.erase();
      }
    }
  }

  void summarize(MoEOp moe, ArrayRef<Linear> linears, int64_t kept, int64_t experts) {
    Builder b(&getContext());
    double original = 0, stored = 0;
    SmallVector<int64_t> ranks;
    SmallVector<double> errors;
    for (const Linear &linear : linears) {
      original += double(experts) * linear.rows * linear.cols;
      stored += double(linear.baseRows) * linear.baseCols +
                (sharedBasis ? double(experts) * linear.rows * linear.rank +
                                   double(linear.rank) * linear.cols
                             : double(experts) * linear.rank * (linear.rows + linear.cols));
      ranks.push_back(linear.rank);
      errors.push_back(linear.deltaNorm > 0 ? linear.error / linear.deltaNorm : 0.0);
    }
    NamedAttrList summary;
    summary.set("compression", b.getF64FloatAttr(compression));
    summary.set("merge", b.getStringAttr(stringifyDeltaMerge(merge)));
    summary.set("whiten", b.getBoolAttr(whiten));
    summary.set("shared_basis", b.getBoolAttr(sharedBasis));
    summary.set("ranks", b.getDenseI64ArrayAttr(ranks));
    summary.set("base_channels", b.getI64IntegerAttr(kept));
    summary.set("params_kept", b.getF64FloatAttr(stored / original));
    summary.set("relative_delta_error", b.getDenseF64ArrayAttr(errors));
    Operation *holder = moe->getParentOfType<func::FuncOp>();
    (holder ? holder : moe.getOperation())
        ->setAttr(kDeltaAttrName, summary.getDictionary(&getContext()));
  }
};

} // namespace
