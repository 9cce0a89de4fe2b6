//===- AssignUniformScheme.cpp - one scheme for every expert weight -------===//
//
// The simplest bit assignment: every routed-expert linear gets the same
// scheme. The sensitivity-driven allocator replaces this pass.
//
//===----------------------------------------------------------------------===//
#include "moeq/Dialect/MoEQ/IR/MoEQ.h"
#include "moeq/Passes/ExpertWeights.h"
#include "moeq/Passes/Passes.h"

#include "mlir/IR/BuiltinOps.h"

namespace mlir::moeq {
#define GEN_PASS_DEF_ASSIGNUNIFORMSCHEME
#include "moeq/Passes/Passes.h.inc"
} // namespace mlir::moeq

using namespace mlir;
using namespace mlir::moeq;

namespace {

struct AssignUniformSchemePass
    : mlir::moeq::impl::AssignUniformSchemeBase<AssignUniformSchemePass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    FailureOr<QuantizeSettings> settings = parseQuantizeSettings(
        module, method, statsPath, actOrder, mseClip, salienceClip, /*statsWithRTN=*/false);
    if (failed(settings))
      return signalPassFailure();
    // fp8 e4m3 is a checkpoint format moeq reads, not one it quantizes to.
    if (format == NumberFormat::FP8E4M3) {
      module.emitError() << "format fp8_e4m3 is read from checkpoints, not quantized to "
                            "(expected int or lut)";
      return signalPassFailure();
    }
    auto diag = [&]() { return module.emitError(); };
    SchemeAttr scheme = SchemeAttr::getChecked(
        diag, &getContext(), unsigned(weightBits), unsigned(actBits), int64_t(groupSize),
        bool(symmetric), format.getValue());
    if (!scheme || !scheme.isQuantized()) {
      if (scheme)
        module.emitError() << "bits must be 1-8 to quantize";
      return signalPassFailure();
    }
    WalkResult result = module.walk([&](MoEOp moe) {
      int64_t layer = getLayerIndex(moe);
      if (settings->hasStats && layer < 0) {
        moe.emitError() << "GPTQ statistics need the layer index (function attribute "
                           "'moeq.layer')";
        return WalkResult::interrupt();
      }
      bool sharedGated = bool(moe.getSharedExpertGate());
      for (const WeightSlot &slot : getWeightSlots(moe, includeShared))
        if (failed(quantizeSlot(slot, scheme, *settings, layer, sharedGated)))
          return WalkResult::interrupt();
      return WalkResult::advance();
    });
    if (result.wasInterrupted())
      return signalPassFailure();
    reportFittedGroupSizes(module, scheme);
  }
};

} // namespace
