//===- AssignGroupBits.cpp - SliM-LLM group-wise bit widths ---------------===//
//
// Salience-determined bit allocation (SliM-LLM) inside each quantized
// linear: the column groups' salience (w^2 / U_jj^2 with U the inverse
// Hessian's Cholesky factor) orders them, the k least salient lose a bit
// and the k most salient gain one (the mean stays the scheme's), and the k
// with the least loss is kept.
//
//===----------------------------------------------------------------------===//
#include "moeq/Dialect/MoEQ/IR/MoEQ.h"
#include "moeq/Passes/ExpertWeights.h"
#include "moeq/Passes/ParameterArchives.h"
#include "moeq/Passes/Passes.h"
#include "moeq/Quant/GPTQ.h"
#include "ParallelQuantize.h"

#include "mlir/IR/BuiltinOps.h"

#include <mutex>
#include <optional>

namespace mlir::moeq {
#define GEN_PASS_DEF_ASSIGNGROUPBITS
#include "moeq/Passes/Passes.h.inc"
} // namespace mlir::moeq

using namespace mlir;
using namespace mlir::moeq;

namespace {

/// Only weight-only asymmetric group schemes whose width can move both ways.
bool canMixWidths(PackedWeightType type) {
  SchemeAttr scheme = type.getScheme();
  return !type.hasGroupBits() && !scheme.isPerChannel() && !scheme.getSymmetric() &&
         !scheme.quantizesActivations() && scheme.getWeightBits() >= 2 &&
         scheme.getWeightBits() <= 7 && type.getNumGroups() >= 2;
}

struct AssignGroupBitsPass
    : mlir::moeq::impl::AssignGroupBitsBase<AssignGroupBitsPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    FailureOr<ParameterArchives> archives = ParameterArchives::fromModule(module);
    if (failed(archives))
      return signalPassFailure();
    SmallVector<QuantizeOp> work;
    module.walk([&](QuantizeOp op) {
      if (op.getInput().getDefiningOp<ParamOp>() && canMixWidths(op.getResult().getType()))
        work.push_back(op);
    });
    // The widths of every weight in parallel (one weight per task); the
    // types change afterwards, in program order.
    std::vector<std::vector<uint8_t>> widths(work.size());
    std::mutex archiveMutex;
    if (failed(parallel_quantize::runOrderedTasks(
            &getContext(), work.size(), threads, [&](size_t t) {
              return chooseWidths(work[t], *archives, archiveMutex, widths[t]);
            })))
      return signalPassFailure();
    for (auto [op, best] : llvm::zip(work, widths)) {
      PackedWeightType type = op.getResult().getType();
      if (llvm::all_of(best, [&](uint8_t b) { return b == type.getScheme().getWeightBits(); }))
        continue; // uniform widths won
      SmallVector<int64_t> groupBits(best.begin(), best.end());
      op.getResult().setType(
          PackedWeightType::get(&getContext(), type.getShape(), type.getScheme(), groupBits));
    }
  }

  /// The group widths of `op`'s weight with the least loss, into `best`.
  /// Runs in a task: reads through `archiveMutex`, changes no IR.
  static LogicalResult chooseWidths(QuantizeOp op, ParameterArchives &archives,
                                    std::mutex &archiveMutex, std::vector<uint8_t> &best) {
    PackedWeightType type = op.getResult().getType();
    auto param = op.getInput().getDefiningOp<ParamOp>();
    int64_t rows = type.getOutputDim(), cols = type.getInputDim();
    FailureOr<std::vector<float>> weights =
        parallel_quantize::readWeight(archives, archiveMutex, param.getLoc(), param.getRef());
    if (failed(weights))
      return failure();
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
    // Without a Hessian (data-free) every U_jj is the same: salience w^2.
    std::vector<double> diagonal(cols, 1.0);
    if (!hessian.empty()) {
      llvm::Expected<std::vector<double>> d = quant::inverseHessianDiagonal(hessian, cols);
      if (!d)
        return fail(d.takeError());
      diagonal = std::move(*d);
    }
    SchemeAttr scheme = type.getScheme();
    std::vector<double> salience =
        quant::groupSalience(*weights, rows, cols, scheme.getGroupSize(), diagonal);
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
    double bestLoss = 0;
    for (std::vector<uint8_t> &widths :
         quant::groupBitCandidates(salience, scheme.getWeightBits())) {
      quant::Scheme storage = toStorageScheme(scheme);
      storage.groupBits = widths;
      llvm::Expected<quant::QuantizedMatrix> q = quant::quantizeWeights(
          *weights, rows, cols, storage, factor ? &*factor : nullptr, options);
      if (!q)
        return fail(q.takeError());
      double loss = quant::hessianLoss(*weights, *q, hessian);
      if (best.empty() || loss < bestLoss) {
        bestLoss = loss;
        best = std::move(widths);
      }
    }
    return success();
  }
};

} // namespace
