//===- AssignUniformScheme.cpp - one scheme for every expert weight -------===//
//
// The simplest bit assignment: every routed-expert linear gets the same
// scheme. The sensitivity-driven allocator replaces this pass.
//
//===----------------------------------------------------------------------===//
#include "moeq/Dialect/MoEQ/IR/MoEQ.h"
#include "moeq/Passes/ParameterArchives.h"
#include "moeq/Passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"

namespace mlir::moeq {
#define GEN_PASS_DEF_ASSIGNUNIFORMSCHEME
#include "moeq/Passes/Passes.h.inc"
} // namespace mlir::moeq

using namespace mlir;
using namespace mlir::moeq;

namespace {

/// Names a weight for diagnostics: its parameter key when it has one.
std::string describeWeight(Value weight) {
  if (auto param = weight.getDefiningOp<ParamOp>())
    return ("'" + param.getRef().getKey().getValue() + "'").str();
  return "operand";
}

/// Statistics tensor names (docs/calibration-stats.md) of one weight's
/// Hessian: `layers.<L>.` + this.
std::string hessianName(bool shared, bool sharedGated, int64_t expert, StringRef linear,
                        bool weighted) {
  bool down = linear == "down";
  if (shared) {
    if (down)
      return weighted && sharedGated ? "shared.gram_down_weighted" : "shared.gram_down";
    return weighted && sharedGated ? "shared.gram_in_weighted" : "gram_all";
  }
  std::string name = "experts." + std::to_string(expert) + (down ? ".gram_down" : ".gram_in");
  return weighted ? name + "_weighted" : name;
}

/// One weight operand to quantize and where its Hessian lives.
struct WeightSlot {
  OpOperand *operand;
  bool shared;
  int64_t expert; ///< routed expert index (-1 for the shared expert)
  StringRef linear; ///< gate, up or down
};

struct AssignUniformSchemePass
    : mlir::moeq::impl::AssignUniformSchemeBase<AssignUniformSchemePass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    std::optional<QuantMethod> quantMethod = symbolizeQuantMethod(method);
    if (!quantMethod) {
      module.emitError() << "quantization method '" << method
                         << "' is not available (supported: rtn, gptq, agq)";
      return signalPassFailure();
    }
    if (*quantMethod == QuantMethod::RTN && (!statsPath.empty() || actOrder)) {
      module.emitError() << "'" << (actOrder ? "act-order" : "stats")
                         << "' needs method gptq or agq";
      return signalPassFailure();
    }
    auto diag = [&]() { return module.emitError(); };
    SchemeAttr scheme = SchemeAttr::getChecked(
        diag, &getContext(), unsigned(weightBits), /*actBits=*/16u, int64_t(groupSize),
        bool(symmetric),
        NumberFormat::Int);
    if (!scheme || !scheme.isQuantized()) {
      if (scheme)
        module.emitError() << "bits must be 1-8 to quantize";
      return signalPassFailure();
    }
    if (!statsPath.empty())
      ParameterArchives::registerInModule(module, "stats", statsPath);
    WalkResult result = module.walk([&](MoEOp moe) {
      int64_t layer = -1;
      if (auto func = moe->getParentOfType<func::FuncOp>())
        if (auto index = func->getAttrOfType<IntegerAttr>("moeq.layer"))
          layer = index.getInt();
      if (!statsPath.empty() && layer < 0) {
        moe.emitError() << "GPTQ statistics need the layer index (function attribute "
                           "'moeq.layer')";
        return WalkResult::interrupt();
      }
      bool sharedGated = bool(moe.getSharedExpertGate());
      for (const WeightSlot &slot : weightSlots(moe, includeShared)) {
        ExternalParamAttr hessian;
        if (!statsPath.empty())
          hessian = ExternalParamAttr::get(
              &getContext(), StringAttr::get(&getContext(), "stats"),
              StringAttr::get(&getContext(),
                              "layers." + std::to_string(layer) + "." +
                                  hessianName(slot.shared, sharedGated, slot.expert,
                                              slot.linear,
                                              *quantMethod == QuantMethod::AGQ)));
        if (failed(quantizeOperand(*slot.operand, scheme, *quantMethod, hessian)))
          return WalkResult::interrupt();
      }
      return WalkResult::advance();
    });
    if (result.wasInterrupted())
      signalPassFailure();
  }

  /// Routed-expert weights, in gate, up, down order, then (when asked) the
  /// shared expert's.
  static SmallVector<WeightSlot> weightSlots(MoEOp moe, bool withShared) {
    SmallVector<WeightSlot> slots;
    auto add = [&](MutableOperandRange range, bool shared, StringRef linear) {
      for (auto [index, operand] : llvm::enumerate(range))
        slots.push_back({&operand, shared, shared ? -1 : int64_t(index), linear});
    };
    add(moe.getGateMutable(), false, "gate");
    add(moe.getUpMutable(), false, "up");
    add(moe.getDownMutable(), false, "down");
    if (withShared) {
      add(moe.getSharedGateMutable(), true, "gate");
      add(moe.getSharedUpMutable(), true, "up");
      add(moe.getSharedDownMutable(), true, "down");
    }
    return slots;
  }

  LogicalResult quantizeOperand(OpOperand &operand, SchemeAttr scheme,
                                QuantMethod quantMethod, ExternalParamAttr hessian) {
    auto tensorType = dyn_cast<RankedTensorType>(operand.get().getType());
    if (!tensorType)
      return success(); // Already quantized.
    Operation *user = operand.getOwner();
    auto diag = [&]() {
      return user->emitError() << "cannot quantize expert weight "
                               << describeWeight(operand.get()) << ": ";
    };
    auto packedType =
        PackedWeightType::getChecked(diag, &getContext(), tensorType.getShape(), scheme);
    if (!packedType)
      return failure();
    OpBuilder builder(user);
    auto quantize = QuantizeOp::create(builder, operand.get().getLoc(), packedType,
                                       operand.get(), quantMethod, hessian,
                                       bool(actOrder), bool(mseClip));
    operand.set(quantize);
    return success();
  }
};

} // namespace
