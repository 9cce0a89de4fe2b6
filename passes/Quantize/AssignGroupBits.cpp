//===- AssignGroupBits.cpp - SliM-LLM group-wise bit widths ---------------===//
//
// Salience-determined bit allocation (SliM-LLM) inside each quantized
// linear: the column groups' salience (w^2 / U_jj^2 with U the inverse
// Hessian's Cholesky factor) orders them, the k least salient lose a bit
// and the k most salient gain one (the mean stays the scheme's), and the k
// with the least loss is kept. The loss is the measured output error of
// the expert where the statistics have input samples: the linear's own
// Hessian proxy prefers 1-bit groups that lower its error without
// lowering the model's (docs/quantization.md).
//
//===----------------------------------------------------------------------===//
#include "moeq/Dialect/MoEQ/IR/MoEQ.h"
#include "moeq/Passes/ExpertOutputLoss.h"
#include "moeq/Passes/ExpertWeights.h"
#include "moeq/Passes/ParameterArchives.h"
#include "moeq/Passes/Passes.h"
#include "moeq/Quant/GPTQ.h"
#include "ParallelQuantize.h"

#include "mlir/IR/BuiltinOps.h"

#include "llvm/ADT/DenseSet.h"

#include <mutex>
#include <optional>

namespace mlir::moeq {
#define GEN_PASS_DEF_ASSIGNGROUPBITS
#include "moeq/Passes/Passes.h.inc"
} // namespace mlir::moeq

using namespace mlir;
using namespace mlir::moeq;

namespace {

/// A packed type whose widths are still uniform and can mix.
bool canMixWidths(PackedWeightType type) {
  return !type.hasGroupBits() && canMixGroupWidths(type.getScheme(), type.getInputDim());
}

/// The float parameter behind an expert weight operand: the operand itself
/// or the input of its moeq.quantize; null otherwise (a delta_weight).
ParamOp floatParamOf(Value weight) {
  if (auto quantize = weight.getDefiningOp<QuantizeOp>())
    weight = quantize.getInput();
  auto param = weight.getDefiningOp<ParamOp>();
  return param && isa<RankedTensorType>(param.getType()) ? param : ParamOp();
}

/// The weights whose widths one task chooses: one weight with its Hessian
/// proxy, or the mixable linears of one expert (routed, or the shared one)
/// with the expert's measured output error (`moe` set).
struct WidthTask {
  SmallVector<QuantizeOp, 3> ops;
  SmallVector<StringRef, 3> linears; ///< "gate", "up", "down" per op
  MoEOp moe;
  ExpertSampleRefs samples;
  SmallVector<ParamOp, 3> expertWeights; ///< the float gate, up, down
};

/// Scores one quantization of a weight (lower is better).
using LossOf = llvm::function_ref<double(const quant::QuantizedMatrix &)>;

struct AssignGroupBitsPass
    : mlir::moeq::impl::AssignGroupBitsBase<AssignGroupBitsPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    FailureOr<ParameterArchives> archives = ParameterArchives::fromModule(module);
    if (failed(archives))
      return signalPassFailure();
    std::vector<WidthTask> tasks;
    if (failed(collectTasks(module, *archives, tasks)))
      return signalPassFailure();
    // The widths of every task's weights in parallel; the types change
    // afterwards, in program order.
    std::vector<SmallVector<std::vector<uint8_t>, 3>> widths(tasks.size());
    std::mutex archiveMutex;
    if (failed(parallel_quantize::runOrderedTasks(
            &getContext(), tasks.size(), threads, [&](size_t t) {
              return runTask(tasks[t], *archives, archiveMutex, widths[t]);
            })))
      return signalPassFailure();
    for (auto [task, chosen] : llvm::zip_equal(tasks, widths))
      for (auto [op, best] : llvm::zip_equal(task.ops, chosen))
        setGroupBits(op, best);
  }

  void setGroupBits(QuantizeOp op, ArrayRef<uint8_t> best) {
    PackedWeightType type = op.getResult().getType();
    if (llvm::all_of(best, [&](uint8_t b) { return b == type.getScheme().getWeightBits(); }))
      return; // uniform widths won
    SmallVector<int64_t> groupBits(best.begin(), best.end());
    op.getResult().setType(
        PackedWeightType::get(&getContext(), type.getShape(), type.getScheme(), groupBits));
  }

  static bool isMixable(Value weight) {
    auto quantize = weight.getDefiningOp<QuantizeOp>();
    return quantize && quantize.getInput().getDefiningOp<ParamOp>() &&
           canMixWidths(quantize.getResult().getType());
  }

  /// Whether `moe`'s routed experts are ranked by their measured output
  /// error; errors when `loss=output` cannot be honoured.
  FailureOr<bool> measuresOutput(MoEOp moe, int64_t layer, ParameterArchives &archives) {
    if (lossMode == QuantizationLoss::Hessian)
      return false;
    FailureOr<bool> hasSamples = hasExpertSamples(moe, layer, archives);
    if (failed(hasSamples))
      return failure();
    if (!*hasSamples && lossMode == QuantizationLoss::Output)
      return moe.emitError() << "loss=output needs input samples of layer " << layer
                             << " in the statistics (an assignment pass given 'stats' "
                                "from moeq_calibrate.py --samples-per-expert > 0)";
    return *hasSamples;
  }

  /// Routed experts measured by their output (one task per expert with a
  /// mixable linear), then every other mixable weight, one task each; in
  /// program order.
  LogicalResult collectTasks(ModuleOp module, ParameterArchives &archives,
                             std::vector<WidthTask> &tasks) {
    llvm::DenseSet<Operation *> claimed;
    WalkResult walked = module.walk([&](MoEOp moe) {
      int64_t layer = getLayerIndex(moe);
      FailureOr<bool> measured = measuresOutput(moe, layer, archives);
      if (failed(measured))
        return WalkResult::interrupt();
      if (!*measured)
        return WalkResult::advance();
      // The routed experts, then the shared one (-1) when its samples are
      // there (statistics from before they were written have none).
      FailureOr<bool> sharedSamples =
          moe.hasSharedExpert() ? hasExpertSamples(moe, layer, archives, /*shared=*/true)
                                : false;
      if (failed(sharedSamples))
        return WalkResult::interrupt();
      int64_t first = *sharedSamples ? -1 : 0;
      for (int64_t expert = first, e = moe.getGate().size(); expert < e; ++expert) {
        WidthTask task;
        task.moe = moe;
        bool shared = expert < 0;
        for (auto [linear, weight] :
             {std::pair<StringRef, Value>{"gate", shared ? moe.getSharedGate()
                                                         : moe.getGate()[expert]},
              {"up", shared ? moe.getSharedUp() : moe.getUp()[expert]},
              {"down", shared ? moe.getSharedDown() : moe.getDown()[expert]}}) {
          task.expertWeights.push_back(floatParamOf(weight));
          if (!isMixable(weight))
            continue;
          task.ops.push_back(weight.getDefiningOp<QuantizeOp>());
          task.linears.push_back(linear);
        }
        if (task.ops.empty())
          continue;
        if (llvm::is_contained(task.expertWeights, ParamOp())) {
          if (lossMode == QuantizationLoss::Output) {
            moe.emitError() << "loss=output: expert " << expert
                            << "'s weights are not all float moeq.param";
            return WalkResult::interrupt();
          }
          continue; // its weights take the Hessian proxy below
        }
        task.samples = shared ? getSharedExpertSampleRefs(&getContext(), layer)
                              : getExpertSampleRefs(&getContext(), layer, expert);
        for (QuantizeOp op : task.ops)
          claimed.insert(op);
        tasks.push_back(std::move(task));
      }
      return WalkResult::advance();
    });
    if (walked.wasInterrupted())
      return failure();
    module.walk([&](QuantizeOp op) {
      if (!claimed.contains(op) && isMixable(op.getResult())) {
        WidthTask task;
        task.ops.push_back(op);
        tasks.push_back(std::move(task));
      }
    });
    return success();
  }

  /// The widths of every weight of `task`, into `widths` (one per op).
  /// Runs in a task: reads through `archiveMutex`, changes no IR.
  LogicalResult runTask(const WidthTask &task, ParameterArchives &archives,
                        std::mutex &archiveMutex,
                        SmallVector<std::vector<uint8_t>, 3> &widths) const {
    widths.resize(task.ops.size());
    if (!task.moe)
      return chooseWidths(task.ops.front(), {}, archives, archiveMutex, widths.front(),
                          LossOf());
    // The expert's float weights, then its samples through them.
    SmallVector<std::vector<float>, 3> expert;
    for (ParamOp param : task.expertWeights) {
      FailureOr<std::vector<float>> values =
          parallel_quantize::readWeight(archives, archiveMutex, param.getLoc(), param.getRef());
      if (failed(values))
        return failure();
      expert.push_back(std::move(*values));
    }
    auto measured = loadExpertOutputError(task.moe, task.samples, expert[0], expert[1],
                                          expert[2], archives, archiveMutex);
    if (failed(measured))
      return failure();
    const quant::ExpertOutputError &error = measured->first;
    for (auto [index, op] : llvm::enumerate(task.ops)) {
      quant::ExpertOutputError::Linear linear = toOutputErrorLinear(task.linears[index]);
      auto lossOf = [&](const quant::QuantizedMatrix &q) {
        return error.loss(linear, quant::dequantize(q));
      };
      const std::vector<float> &weights = expert[unsigned(linear)];
      if (failed(chooseWidths(op, weights, archives, archiveMutex, widths[index], lossOf)))
        return failure();
    }
    return success();
  }

  /// The group widths of `op`'s weight (`given`, or read when empty) with
  /// the least loss (`lossOf`, or the Hessian proxy when null), into
  /// `best` (quant::searchGroupBits).
  LogicalResult chooseWidths(QuantizeOp op, ArrayRef<float> given, ParameterArchives &archives,
                             std::mutex &archiveMutex, std::vector<uint8_t> &best,
                             LossOf lossOf) const {
    PackedWeightType type = op.getResult().getType();
    auto param = op.getInput().getDefiningOp<ParamOp>();
    int64_t rows = type.getOutputDim(), cols = type.getInputDim();
    std::vector<float> read;
    if (given.empty()) {
      FailureOr<std::vector<float>> values =
          parallel_quantize::readWeight(archives, archiveMutex, param.getLoc(), param.getRef());
      if (failed(values))
        return failure();
      read = std::move(*values);
      given = read;
    }
    std::vector<double> hessian;
    if (ExternalParamAttr ref = op.getHessianAttr()) {
      FailureOr<std::vector<double>> h =
          parallel_quantize::readHessian(archives, archiveMutex, op.getLoc(), ref, cols);
      if (failed(h))
        return failure();
      hessian = std::move(*h);
    }
    auto fail = [&](llvm::Error err) {
      return op.emitError() << "group bits of '" << param.getRef().getKey().getValue()
                            << "': " << llvm::toString(std::move(err));
    };
    quant::GPTQOptions options;
    options.actOrder = op.getActOrder();
    options.mseClip = op.getMseClip();
    options.salienceCalibration = op.getSalienceClip();
    // One factorisation of the Hessian for every candidate (the O(cols^3)
    // part; the materialisation quantizes through the same factor).
    std::optional<quant::GPTQFactor> factor;
    if (!hessian.empty()) {
      llvm::Expected<quant::GPTQFactor> computed =
          quant::GPTQFactor::compute(hessian, cols, options);
      if (!computed)
        return fail(computed.takeError());
      factor = std::move(*computed);
    }
    std::vector<double> diagonal;
    if (!hessian.empty()) {
      llvm::Expected<std::vector<double>> d = quant::inverseHessianDiagonal(hessian, cols);
      if (!d)
        return fail(d.takeError());
      diagonal = std::move(*d);
    }
    auto hessianProxy = [&](const quant::QuantizedMatrix &q) {
      return quant::hessianLoss(given, q, hessian);
    };
    llvm::Expected<quant::GroupBitsChoice> chosen = quant::searchGroupBits(
        given, rows, cols, toStorageScheme(type.getScheme()), diagonal,
        factor ? &*factor : nullptr, options, lossOf ? lossOf : LossOf(hessianProxy),
        search == GroupBitsSearch::Golden ? quant::CandidateSearch::Golden
                                          : quant::CandidateSearch::Exhaustive);
    if (!chosen)
      return fail(chosen.takeError());
    best = std::move(chosen->widths);
    return success();
  }
};

} // namespace
