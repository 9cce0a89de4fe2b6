//===- EstimateSensitivity.cpp - quantization loss per block and scheme ---===//
//
// For every expert linear of every moeq.moe and every candidate scheme,
// quantizes the weight with the method it would be shipped with and
// measures the loss the allocator minimises: the output error of the
// linear on the calibration inputs, tr((W - Q) H (W - Q)^T) with the
// routing-weighted Gram matrix H (docs/allocation.md). Without statistics
// the loss is weight-only, ||W - Q||_F^2 (identity Hessian).
//
//===----------------------------------------------------------------------===//
#include "moeq/Dialect/MoEQ/IR/MoEQ.h"
#include "moeq/Passes/ExpertWeights.h"
#include "moeq/Passes/ParameterArchives.h"
#include "moeq/Passes/Passes.h"
#include "moeq/Quant/GPTQ.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"

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
        module, method, statsPath, actOrder, mseClip, /*statsWithRTN=*/true);
    if (failed(parsed))
      return signalPassFailure();
    settings = *parsed;
    FailureOr<SmallVector<SchemeAttr>> candidates = parseSchemeList(module, schemeList);
    if (failed(candidates))
      return signalPassFailure();
    schemes = std::move(*candidates);
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

  LogicalResult annotate(MoEOp moe) {
    int64_t layer = getLayerIndex(moe);
    if (settings.hasStats && layer < 0)
      return moe.emitError() << "sensitivity from statistics needs the layer index "
                                "(function attribute 'moeq.layer')";
    bool sharedGated = bool(moe.getSharedExpertGate());
    llvm::StringMap<LossTable> tables;
    for (const WeightSlot &slot : getWeightSlots(moe, includeShared)) {
      FailureOr<SmallVector<double>> losses = measure(slot, layer, sharedGated);
      if (failed(losses))
        return failure();
      tables[(slot.shared ? "shared_" : "") + slot.linear.str()].push_back(*losses);
    }
    FailureOr<SmallVector<double>> share = routedShare(moe, layer);
    if (failed(share))
      return failure();

    MLIRContext *ctx = &getContext();
    Builder b(ctx);
    NamedAttrList entries;
    entries.set("schemes", b.getArrayAttr(SmallVector<Attribute>(schemes.begin(), schemes.end())));
    entries.set("loss", b.getStringAttr(settings.hasStats ? "hessian" : "weight"));
    entries.set("routed_share", b.getDenseF64ArrayAttr(*share));
    for (auto &entry : tables) {
      SmallVector<double> flat;
      for (const auto &row : entry.getValue())
        flat.append(row.begin(), row.end());
      auto type = RankedTensorType::get(
          {int64_t(entry.getValue().size()), int64_t(schemes.size())}, b.getF64Type());
      entries.set(entry.getKey(), DenseElementsAttr::get(type, ArrayRef<double>(flat)));
    }
    moe->setAttr(kSensitivityAttrName, entries.getDictionary(ctx));
    return success();
  }

  /// The loss of one weight under every candidate scheme.
  FailureOr<SmallVector<double>> measure(const WeightSlot &slot, int64_t layer,
                                         bool sharedGated) {
    Value weight = slot.operand->get();
    auto param = weight.getDefiningOp<ParamOp>();
    auto type = dyn_cast<RankedTensorType>(weight.getType());
    if (!param || !type)
      return slot.operand->getOwner()->emitError()
             << "sensitivity needs float expert weights from moeq.param, but the "
             << slot.linear << " weight " << describeWeight(weight) << " is not";
    int64_t rows = type.getDimSize(0), cols = type.getDimSize(1);
    FailureOr<std::vector<float>> values = archives->readAsFloat(param.getLoc(), param.getRef());
    if (failed(values))
      return failure();
    // The quantizer's Hessian (GPTQ: plain, AGQ: weighted) and the loss's
    // (always weighted by the routing: the error the layer output sees).
    auto readGram = [&](bool weighted) {
      return archives->readFloat64(
          param.getLoc(),
          getStatsRef(&getContext(), layer, getHessianName(slot, sharedGated, weighted)),
          {cols, cols});
    };
    std::vector<double> quantHessian, lossHessian;
    if (settings.hasStats) {
      FailureOr<std::vector<double>> weighted = readGram(true);
      if (failed(weighted))
        return failure();
      lossHessian = std::move(*weighted);
      if (settings.method == QuantMethod::AGQ) {
        quantHessian = lossHessian;
      } else if (settings.method == QuantMethod::GPTQ) {
        FailureOr<std::vector<double>> plain = readGram(false);
        if (failed(plain))
          return failure();
        quantHessian = std::move(*plain);
      }
    }
    archives->releasePages();

    SmallVector<double> losses;
    for (SchemeAttr scheme : schemes) {
      quant::Scheme storage{scheme.getWeightBits(), scheme.getGroupSize(),
                            scheme.getSymmetric()};
      if (llvm::Error err = quant::checkShape(storage, rows, cols)) {
        llvm::consumeError(std::move(err));
        losses.push_back(-1); // this scheme cannot store this weight
        continue;
      }
      llvm::Expected<quant::QuantizedMatrix> q =
          quantHessian.empty()
              ? quant::quantizeRTN(*values, rows, cols, storage,
                                   quant::RangeOptions{settings.mseClip})
              : quant::quantizeGPTQ(*values, rows, cols, storage, quantHessian,
                                    quant::GPTQOptions{0.01, 128, settings.actOrder,
                                                       settings.mseClip});
      if (!q)
        return param.emitError() << "cannot quantize '" << param.getRef().getKey().getValue()
                                 << "' with " << scheme.getMangledName() << ": "
                                 << llvm::toString(q.takeError());
      losses.push_back(quant::hessianLoss(*values, *q, lossHessian));
    }
    return losses;
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
  SmallVector<SchemeAttr> schemes;
  /// The module's archives while the pass runs (passes must be copyable).
  ParameterArchives *archives = nullptr;
};

} // namespace
