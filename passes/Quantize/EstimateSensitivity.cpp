//===- EstimateSensitivity.cpp - quantization loss per block and scheme ---===//
//
// For every expert linear of every moeq.moe and every candidate scheme,
// quantizes the weight with the method it would be shipped with and
// measures the loss the allocator minimises: the output error of the
// linear on the calibration inputs, tr((W - Q) H (W - Q)^T) with the
// routing-weighted Gram matrix H (docs/allocation.md). Without statistics
// the loss is weight-only, ||W - Q||_F^2 (identity Hessian).
//
// The experts of a layer are measured in parallel (an llvm::ThreadPool,
// `threads`; one task per expert, BLAS single-threaded inside it), each
// into its own rows of the loss tables, so the result does not depend on
// the thread count. Per expert, one GPTQ factorisation serves every scheme
// and both gate and up (the same Hessian).
//
//===----------------------------------------------------------------------===//
#include "moeq/Compress/DeltaDecomposition.h"
#include "moeq/Dialect/MoEQ/IR/MoEQ.h"
#include "moeq/Passes/ExpertOutputLoss.h"
#include "moeq/Passes/ExpertWeights.h"
#include "moeq/Passes/ParameterArchives.h"
#include "moeq/Passes/Passes.h"
#include "moeq/Quant/GPTQ.h"
#include "moeq/Quant/OutputError.h"

#include "ParallelQuantize.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"

#include "llvm/ADT/ScopeExit.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/ThreadPool.h"

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>

namespace mlir::moeq {
#define GEN_PASS_DEF_ESTIMATESENSITIVITY
#include "moeq/Passes/Passes.h.inc"
} // namespace mlir::moeq

using namespace mlir;
using namespace mlir::moeq;

namespace {

/// Losses of one group of weights (say, every routed expert's gate), one
/// row per weight and one column per candidate scheme; -1 where the
/// scheme cannot store the weight.
using LossTable = SmallVector<SmallVector<double>>;

struct EstimateSensitivityPass
    : mlir::moeq::impl::EstimateSensitivityBase<EstimateSensitivityPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    FailureOr<QuantizeSettings> parsed = parseQuantizeSettings(
        module, method, statsPath, actOrder, mseClip, salienceClip, /*statsWithRTN=*/true);
    if (failed(parsed))
      return signalPassFailure();
    settings = *parsed;
    FailureOr<SmallVector<SchemeAttr>> listed = parseSchemeList(module, schemes);
    if (failed(listed))
      return signalPassFailure();
    candidateSchemes = std::move(*listed);
    FailureOr<ParameterArchives> opened = ParameterArchives::fromModule(module);
    if (failed(opened))
      return signalPassFailure();
    archives = &*opened;
    WalkResult result = module.walk([&](MoEOp moe) {
      return failed(annotate(moe)) ? WalkResult::interrupt() : WalkResult::advance();
    });
    if (result.wasInterrupted())
      signalPassFailure();
  }

  enum class LossMode { Weight, Hessian, Output };

  /// The loss of `moe`'s weights: `loss` as asked, `auto` = the measured
  /// output error when the statistics carry input samples, else the
  /// Hessian proxy; always weight-only without statistics. A quantized
  /// shared expert is measured on the samples of all tokens
  /// (shared.samples); with statistics older than those, the layer takes
  /// the Hessian proxy under `auto`, since one layer's blocks must share
  /// units.
  FailureOr<LossMode> resolveMode(MoEOp moe, int64_t layer) {
    if (!settings.hasStats) {
      if (lossMode != QuantizationLoss::Auto)
        return moe.emitError() << "loss=" << stringifyQuantizationLoss(lossMode)
                               << " needs a statistics file ('stats')";
      return LossMode::Weight;
    }
    FailureOr<bool> hasSamples = hasExpertSamples(moe, layer, *archives);
    if (failed(hasSamples))
      return failure();
    bool sharedQuantized = includeShared && moe.hasSharedExpert();
    FailureOr<bool> hasSharedSamples =
        sharedQuantized ? hasExpertSamples(moe, layer, *archives, /*shared=*/true) : true;
    if (failed(hasSharedSamples))
      return failure();
    if (lossMode == QuantizationLoss::Hessian ||
        (lossMode == QuantizationLoss::Auto && (!*hasSamples || !*hasSharedSamples)))
      return LossMode::Hessian;
    if (!*hasSamples)
      return moe.emitError() << "loss=output needs input samples in the statistics file "
                                "(moeq-stats / moeq_calibrate.py --samples-per-expert > 0)";
    if (!*hasSharedSamples)
      return moe.emitError() << "loss=output with include-shared needs the shared expert's "
                                "input samples (layers." << layer << ".shared.samples), which "
                                "older statistics lack: calibrate again, or use loss=hessian";
    return LossMode::Output;
  }

  LogicalResult annotate(MoEOp moe) {
    int64_t layer = getLayerIndex(moe);
    if (settings.hasStats && layer < 0)
      return moe.emitError() << "sensitivity from statistics needs the layer index "
                                "(function attribute 'moeq.layer')";
    FailureOr<LossMode> mode = resolveMode(moe, layer);
    if (failed(mode))
      return failure();
    int64_t experts = moe.getGate().size();
    // Weights grouped by expert (shared expert: -1), so that the measured
    // loss sees one expert's three weights at a time.
    std::map<int64_t, SmallVector<WeightSlot>> byExpert;
    for (const WeightSlot &slot : getWeightSlots(moe, includeShared))
      byExpert[slot.expert].push_back(slot);
    llvm::StringMap<LossTable> tables;
    auto start = std::chrono::steady_clock::now();
    bool delta = bool(moe.getGate().front().getDefiningOp<DeltaWeightOp>());
    if (delta) {
      if (failed(measureDelta(moe, tables)))
        return failure();
      mode = LossMode::Hessian;
    } else if (failed(measureExperts(moe, byExpert, layer, *mode, tables, experts))) {
      return failure();
    }
    if (progress)
      llvm::errs() << llvm::formatv(
          "  sensitivity of layer {0}: {1} weights x {2} schemes in {3:F1} s\n", layer,
          getWeightSlots(moe, includeShared).size(), candidateSchemes.size(),
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    FailureOr<SmallVector<double>> share = routedShare(moe, layer);
    if (failed(share))
      return failure();

    MLIRContext *ctx = &getContext();
    Builder b(ctx);
    NamedAttrList entries;
    entries.set("schemes", b.getArrayAttr(SmallVector<Attribute>(candidateSchemes.begin(), candidateSchemes.end())));
    entries.set("loss", b.getStringAttr(*mode == LossMode::Weight    ? "weight"
                                        : *mode == LossMode::Hessian ? "hessian"
                                                                     : "output"));
    entries.set("routed_share", b.getDenseF64ArrayAttr(*share));
    for (auto &entry : tables) {
      SmallVector<double> flat;
      for (const auto &row : entry.getValue())
        flat.append(row.begin(), row.end());
      auto type = RankedTensorType::get(
          {int64_t(entry.getValue().size()), int64_t(candidateSchemes.size())}, b.getF64Type());
      entries.set(entry.getKey(), DenseElementsAttr::get(type, ArrayRef<double>(flat)));
    }
    moe->setAttr(kSensitivityAttrName, entries.getDictionary(ctx));
    return success();
  }

  /// One weight, read as floats, with the Hessian its quantizer uses and
  /// the one its Hessian-proxy loss uses.
  struct LoadedWeight {
    WeightSlot slot;
    Location loc;
    std::string name; ///< the parameter's key
    int64_t rows = 0, cols = 0;
    std::vector<float> values;
    std::vector<double> quantHessian, lossHessian;
    std::string quantHessianName; ///< shared factor key ("" without one)
    std::vector<double> inverseDiagonal; ///< U's diagonal (group-bits pricing only)
  };

  /// What a task needs of one weight, taken from the IR on the main thread
  /// (tasks read attributes, never create them).
  struct WeightRefs {
    WeightSlot slot;
    Location loc;
    ExternalParamAttr param;
    int64_t rows = 0, cols = 0;
    ExternalParamAttr weightedGram, plainGram; ///< null when unused
  };
  /// One expert's task: its weights and, for the measured loss, the
  /// statistics it reads.
  struct ExpertRefs {
    int64_t expert = -1;
    SmallVector<WeightRefs, 3> weights;
    ExpertSampleRefs samples; ///< for the measured loss
  };

  FailureOr<WeightRefs> refsOf(const WeightSlot &slot, int64_t layer, bool sharedGated) {
    Value weight = slot.operand->get();
    auto param = weight.getDefiningOp<ParamOp>();
    auto type = dyn_cast<RankedTensorType>(weight.getType());
    if (!param || !type)
      return slot.operand->getOwner()->emitError()
             << "sensitivity needs float expert weights from moeq.param, but the "
             << slot.linear << " weight " << describeWeight(weight) << " is not";
    WeightRefs refs{slot, param.getLoc(), param.getRef(), type.getDimSize(0),
                    type.getDimSize(1), {}, {}};
    // The quantizer's Hessian (GPTQ: plain, AGQ: weighted) and the proxy
    // loss's (always weighted by the routing: the error the layer sees).
    if (settings.hasStats) {
      refs.weightedGram =
          getStatsRef(&getContext(), layer, getHessianName(slot, sharedGated, true));
      if (settings.method == QuantMethod::GPTQ)
        refs.plainGram =
            getStatsRef(&getContext(), layer, getHessianName(slot, sharedGated, false));
    }
    return refs;
  }

  FailureOr<LoadedWeight> load(const WeightRefs &refs, std::mutex &archiveMutex) {
    LoadedWeight w{refs.slot, refs.loc, refs.param.getKey().getValue().str(), refs.rows,
                   refs.cols, {}, {}, {}, "", {}};
    FailureOr<std::vector<float>> values =
        parallel_quantize::readWeight(*archives, archiveMutex, refs.loc, refs.param);
    if (failed(values))
      return failure();
    w.values = std::move(*values);
    if (refs.weightedGram) {
      FailureOr<std::vector<double>> weighted = parallel_quantize::readHessian(
          *archives, archiveMutex, refs.loc, refs.weightedGram, w.cols);
      if (failed(weighted))
        return failure();
      w.lossHessian = std::move(*weighted);
      if (settings.method == QuantMethod::AGQ) {
        w.quantHessian = w.lossHessian;
        w.quantHessianName = refs.weightedGram.getKey().getValue().str();
      } else if (settings.method == QuantMethod::GPTQ) {
        FailureOr<std::vector<double>> plain = parallel_quantize::readHessian(
            *archives, archiveMutex, refs.loc, refs.plainGram, w.cols);
        if (failed(plain))
          return failure();
        w.quantHessian = std::move(*plain);
        w.quantHessianName = refs.plainGram.getKey().getValue().str();
      }
    }
    return w;
  }

  /// The measured output error of one expert, routed or shared (`weights`
  /// are its gate, up and down).
  FailureOr<std::pair<quant::ExpertOutputError, double>>
  outputError(MoEOp moe, const ExpertRefs &refs, ArrayRef<LoadedWeight> weights,
              std::mutex &archiveMutex) {
    const LoadedWeight *byLinear[3] = {nullptr, nullptr, nullptr};
    for (const LoadedWeight &w : weights)
      byLinear[w.slot.linear == "gate" ? 0 : w.slot.linear == "up" ? 1 : 2] = &w;
    return loadExpertOutputError(moe, refs.samples, byLinear[0]->values, byLinear[1]->values,
                                 byLinear[2]->values, *archives, archiveMutex);
  }

  /// Every expert of `moe` on the thread pool, one task per expert; each
  /// fills its own rows of `tables` (sized here, before the tasks start).
  LogicalResult measureExperts(MoEOp moe,
                               const std::map<int64_t, SmallVector<WeightSlot>> &byExpert,
                               int64_t layer, LossMode mode, llvm::StringMap<LossTable> &tables,
                               int64_t experts) {
    bool sharedGated = bool(moe.getSharedExpertGate());
    std::vector<ExpertRefs> tasks;
    for (const auto &[expert, slots] : byExpert) {
      ExpertRefs refs;
      refs.expert = expert;
      for (const WeightSlot &slot : slots) {
        FailureOr<WeightRefs> weight = refsOf(slot, layer, sharedGated);
        if (failed(weight))
          return failure();
        refs.weights.push_back(*weight);
        LossTable &rows = tables[(slot.shared ? "shared_" : "") + slot.linear.str()];
        rows.resize(slot.shared ? 1 : experts);
      }
      if (mode == LossMode::Output)
        refs.samples = expert < 0 ? getSharedExpertSampleRefs(&getContext(), layer)
                                  : getExpertSampleRefs(&getContext(), layer, expert);
      tasks.push_back(std::move(refs));
    }
    // Each task's rows, looked up here (no StringMap insertion in a task).
    std::vector<SmallVector<SmallVector<double> *, 3>> rowsOf(tasks.size());
    for (size_t t = 0; t < tasks.size(); ++t)
      for (const WeightRefs &w : tasks[t].weights)
        rowsOf[t].push_back(
            &tables[(w.slot.shared ? "shared_" : "") + w.slot.linear.str()]
                   [w.slot.shared ? 0 : w.slot.expert]);

    std::mutex archiveMutex;
    return parallel_quantize::runOrderedTasks(&getContext(), tasks.size(), threads, [&](size_t t) {
      return measureExpert(moe, tasks[t], mode, rowsOf[t], archiveMutex);
    });
  }

  /// Losses of every weight of one expert under every candidate scheme,
  /// into `rows` (one per weight, in the order of `refs.weights`).
  LogicalResult measureExpert(MoEOp moe, const ExpertRefs &refs, LossMode mode,
                              ArrayRef<SmallVector<double> *> rows, std::mutex &archiveMutex) {
    SmallVector<LoadedWeight> weights;
    for (const WeightRefs &w : refs.weights) {
      FailureOr<LoadedWeight> loaded = load(w, archiveMutex);
      if (failed(loaded))
        return failure();
      weights.push_back(std::move(*loaded));
    }
    std::optional<std::pair<quant::ExpertOutputError, double>> measured;
    if (mode == LossMode::Output) {
      auto error = outputError(moe, refs, weights, archiveMutex);
      if (failed(error))
        return failure();
      measured = std::move(*error);
    }

    quant::GPTQOptions options;
    options.actOrder = settings.actOrder;
    options.mseClip = settings.mseClip;
    options.salienceCalibration = settings.salienceClip;
    // One factorisation per Hessian: gate and up share gram_in, and every
    // scheme the same factor.
    std::map<std::string, quant::GPTQFactor> factors;
    for (auto [w, losses] : llvm::zip_equal(weights, rows)) {
      const quant::GPTQFactor *factor = nullptr;
      if (!w.quantHessian.empty()) {
        auto it = factors.find(w.quantHessianName);
        if (it == factors.end()) {
          auto computed = quant::GPTQFactor::compute(w.quantHessian, w.cols, options);
          if (!computed)
            return emitError(w.loc) << "cannot quantize '" << w.name
                                    << "': " << llvm::toString(computed.takeError());
          it = factors.emplace(w.quantHessianName, std::move(*computed)).first;
        }
        factor = &it->second;
        // SliM-LLM's salience (pricing the group widths) needs U's
        // diagonal of the quantizer's Hessian; then the Hessian can go.
        if (priceGroupBits) {
          llvm::Expected<std::vector<double>> d =
              quant::inverseHessianDiagonal(w.quantHessian, w.cols);
          if (!d)
            return emitError(w.loc) << "cannot quantize '" << w.name
                                    << "': " << llvm::toString(d.takeError());
          w.inverseDiagonal = std::move(*d);
        }
        w.quantHessian = {};
      }
      for (SchemeAttr scheme : candidateSchemes) {
        SchemeAttr fitted = fitSchemeToInputs(scheme, w.cols);
        quant::Scheme storage = toStorageScheme(fitted);
        if (llvm::Error err = quant::checkShape(storage, w.rows, w.cols)) {
          llvm::consumeError(std::move(err));
          losses->push_back(-1); // this scheme cannot store this weight
          continue;
        }
        llvm::Expected<quant::QuantizedMatrix> q =
            quant::quantizeWeights(w.values, w.rows, w.cols, storage, factor, options);
        if (!q)
          return emitError(w.loc) << "cannot quantize '" << w.name << "' with "
                                  << scheme.getMangledName() << ": "
                                  << llvm::toString(q.takeError());
        auto lossOf = [&](const quant::QuantizedMatrix &quantized) {
          if (!measured)
            return quant::hessianLoss(w.values, quantized, w.lossHessian);
          return measured->first.loss(toOutputErrorLinear(w.slot.linear),
                                      quant::dequantize(quantized), scheme.getActBits()) *
                 measured->second;
        };
        if (!priceGroupBits || !canMixGroupWidths(fitted, w.cols)) {
          losses->push_back(lossOf(*q));
          continue;
        }
        FailureOr<double> priced =
            priceGroupWidths(w, scheme, storage, factor, options, measured, lossOf(*q));
        if (failed(priced))
          return failure();
        losses->push_back(*priced);
      }
    }
    return success();
  }

  /// `count` rows of `rows`, evenly spaced and ascending; all of them when
  /// `count` is 0 or not below `rows`.
  static std::vector<int64_t> spacedRows(int64_t rows, int64_t count) {
    if (count <= 0 || count >= rows)
      count = rows;
    std::vector<int64_t> picked(count);
    for (int64_t i = 0; i < count; ++i)
      picked[i] = i * rows / count;
    return picked;
  }

  /// The loss of `w` at `scheme` with SliM-LLM's widths, searched as
  /// moeq-assign-group-bits will (k = 0, the uniform widths, included).
  /// The search runs on `groupBitsRows` evenly spaced rows: GPTQ and the
  /// measured loss treat rows independently, so the ratio it finds between
  /// the best widths and the uniform ones on those rows, times
  /// `uniformLoss` (all rows), estimates the loss at the widths for a
  /// fraction of the cost; with every row it is exactly the search's loss.
  FailureOr<double>
  priceGroupWidths(const LoadedWeight &w, SchemeAttr scheme, const quant::Scheme &storage,
                   const quant::GPTQFactor *factor, const quant::GPTQOptions &options,
                   const std::optional<std::pair<quant::ExpertOutputError, double>> &measured,
                   double uniformLoss) {
    std::vector<int64_t> picked = spacedRows(w.rows, groupBitsRows);
    int64_t count = picked.size();
    std::vector<float> values;
    values.reserve(count * w.cols);
    for (int64_t row : picked)
      values.insert(values.end(), w.values.begin() + row * w.cols,
                    w.values.begin() + (row + 1) * w.cols);
    auto lossOf = [&](const quant::QuantizedMatrix &quantized) {
      if (!measured)
        return quant::hessianLoss(values, quantized, w.lossHessian);
      return measured->first.lossOfRows(toOutputErrorLinear(w.slot.linear), picked,
                                        quant::dequantize(quantized), scheme.getActBits()) *
             measured->second;
    };
    auto fail = [&](llvm::Error err) {
      return emitError(w.loc) << "cannot price the group widths of '" << w.name << "' at "
                              << scheme.getMangledName() << ": "
                              << llvm::toString(std::move(err));
    };
    llvm::Expected<quant::GroupBitsChoice> mixed =
        quant::searchGroupBits(values, count, w.cols, storage, w.inverseDiagonal, factor,
                               options, lossOf, quant::CandidateSearch::Golden);
    if (!mixed)
      return fail(mixed.takeError());
    if (count == w.rows)
      return mixed->loss;
    llvm::Expected<quant::QuantizedMatrix> uniform =
        quant::quantizeWeights(values, count, w.cols, storage, factor, options);
    if (!uniform)
      return fail(uniform.takeError());
    double uniformOnRows = lossOf(*uniform);
    return uniformOnRows > 0 ? uniformLoss * std::min(1.0, mixed->loss / uniformOnRows)
                             : uniformLoss;
  }

  /// A float parameter of a delta_weight and its recorded Hessian (empty:
  /// none, the identity).
  FailureOr<std::pair<std::vector<float>, std::vector<double>>> readFactor(Value value) {
    auto param = value.getDefiningOp<ParamOp>();
    auto type = dyn_cast<RankedTensorType>(value.getType());
    if (!param || !type)
      return emitError(value.getLoc())
             << "sensitivity needs the float base and factors of moeq.delta_weight parameters";
    FailureOr<std::vector<float>> values = archives->readAsFloat(param.getLoc(), param.getRef());
    if (failed(values))
      return failure();
    std::vector<double> hessian;
    if (auto ref = param->getAttrOfType<ExternalParamAttr>(kHessianAttrName)) {
      int64_t k = type.getDimSize(1);
      FailureOr<std::vector<double>> read = archives->readFloat64(param.getLoc(), ref, {k, k});
      if (failed(read))
        return failure();
      hessian = std::move(*read);
    }
    return std::make_pair(std::move(*values), std::move(hessian));
  }

  /// `values` (rows x cols) quantized to `scheme` fitted to its width, the
  /// Hessian given to GPTQ/AGQ; nullopt when the scheme cannot store it.
  FailureOr<std::optional<std::vector<float>>>
  quantizeFactor(Location loc, ArrayRef<float> values, int64_t rows, int64_t cols,
                 SchemeAttr scheme, ArrayRef<double> hessian) {
    quant::Scheme storage = toStorageScheme(fitSchemeToInputs(scheme, cols));
    if (llvm::Error err = quant::checkShape(storage, rows, cols)) {
      llvm::consumeError(std::move(err));
      return std::optional<std::vector<float>>();
    }
    quant::GPTQOptions options;
    options.actOrder = settings.actOrder;
    options.mseClip = settings.mseClip;
    options.salienceCalibration = settings.salienceClip;
    auto q = quant::quantizeWeights(
        values, rows, cols, storage,
        settings.method == QuantMethod::RTN ? ArrayRef<double>() : hessian, options);
    if (!q)
      return emitError(loc) << "cannot quantize a delta factor with "
                            << scheme.getMangledName() << ": " << llvm::toString(q.takeError());
    return std::optional<std::vector<float>>(quant::dequantize(*q));
  }

  /// D^2-MoE layers: per expert and linear the output error of quantizing
  /// its factors a and b, tr((AB - A'B') G (AB - A'B')^T) with G the expert's
  /// input Gram matrix; per linear (table `base`, rows gate, up, down) the
  /// base's, tr(dW (sum_i G_i) dW^T): the error summed over all experts.
  LogicalResult measureDelta(MoEOp moe, llvm::StringMap<LossTable> &tables) {
    int64_t experts = moe.getGate().size();
    LossTable &bases = tables["base"];
    bases.resize(3);
    const char *names[] = {"gate", "up", "down"};
    OperandRange ranges[] = {moe.getGate(), moe.getUp(), moe.getDown()};
    for (int64_t l = 0; l < 3; ++l) {
      LossTable &rows = tables[names[l]];
      rows.resize(experts);
      for (int64_t e = 0; e < experts; ++e) {
        auto delta = ranges[l][e].getDefiningOp<DeltaWeightOp>();
        if (!delta)
          return moe.emitError() << "every routed expert weight must be a moeq.delta_weight "
                                    "once one is";
        if (e == 0 && failed(measureBase(delta, bases[l])))
          return failure();
        auto a = readFactor(delta.getA()), b = readFactor(delta.getB());
        if (failed(a) || failed(b))
          return failure();
        ArrayRef<int64_t> shape = delta.getType().getShape();
        int64_t rank = getWeightShape(delta.getA().getType())[1];
        compress::LowRank exact{shape[0], shape[1], rank, a->first, b->first};
        std::vector<float> product = exact.product();
        for (SchemeAttr scheme : candidateSchemes) {
          auto qa = quantizeFactor(delta.getLoc(), a->first, shape[0], rank, scheme, a->second);
          auto qb = quantizeFactor(delta.getLoc(), b->first, rank, shape[1], scheme, b->second);
          if (failed(qa) || failed(qb))
            return failure();
          if (!*qa || !*qb) {
            rows[e].push_back(-1);
            continue;
          }
          compress::LowRank quantized{shape[0], shape[1], rank, **qa, **qb};
          rows[e].push_back(compress::whitenedError(product, quantized, b->second));
        }
      }
      archives->releasePages();
    }
    return success();
  }

  LogicalResult measureBase(DeltaWeightOp delta, SmallVector<double> &losses) {
    auto base = readFactor(delta.getBase());
    if (failed(base))
      return failure();
    ArrayRef<int64_t> shape = getWeightShape(delta.getBase().getType());
    for (SchemeAttr scheme : candidateSchemes) {
      auto q = quantizeFactor(delta.getLoc(), base->first, shape[0], shape[1], scheme,
                              base->second);
      if (failed(q))
        return failure();
      if (!*q) {
        losses.push_back(-1);
        continue;
      }
      compress::LowRank none{shape[0], shape[1], 0, {}, {}};
      std::vector<float> diff(base->first.size());
      for (size_t i = 0; i < diff.size(); ++i)
        diff[i] = base->first[i] - (**q)[i];
      losses.push_back(compress::whitenedError(diff, none, base->second));
    }
    return success();
  }

  /// Fraction of the tokens routed to each expert: measured when
  /// statistics are given, else top_k / E (uniform routing).
  FailureOr<SmallVector<double>> routedShare(MoEOp moe, int64_t layer) {
    int64_t experts = moe.getGate().size();
    SmallVector<double> share(experts, double(moe.getTopK()) / experts);
    if (!settings.hasStats)
      return share;
    FailureOr<std::vector<double>> counts = archives->readFloat64(
        moe.getLoc(), getStatsRef(&getContext(), layer, "expert_counts"), {experts});
    FailureOr<std::vector<double>> tokens = archives->readFloat64(
        moe.getLoc(), getStatsRef(&getContext(), layer, "tokens"), {1});
    if (failed(counts) || failed(tokens))
      return failure();
    if ((*tokens)[0] > 0)
      for (int64_t e = 0; e < experts; ++e)
        share[e] = (*counts)[e] / (*tokens)[0];
    return share;
  }

  QuantizeSettings settings;
  SmallVector<SchemeAttr> candidateSchemes;
  /// The module's archives while the pass runs (passes must be copyable).
  ParameterArchives *archives = nullptr;
};

} // namespace
