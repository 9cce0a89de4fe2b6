//===- AssignUniformScheme.cpp - one scheme for every expert weight -------===//
//
// The simplest bit assignment: every routed-expert linear gets the same
// scheme. The sensitivity-driven allocator replaces this pass.
//
//===----------------------------------------------------------------------===//
#include "moeq/Dialect/MoEQ/IR/MoEQ.h"
#include "moeq/Passes/Passes.h"

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

struct AssignUniformSchemePass
    : mlir::moeq::impl::AssignUniformSchemeBase<AssignUniformSchemePass> {
  using Base::Base;

  void runOnOperation() override {
    std::optional<QuantMethod> quantMethod = symbolizeQuantMethod(method);
    if (!quantMethod || *quantMethod != QuantMethod::RTN) {
      getOperation().emitError() << "quantization method '" << method
                                 << "' is not available (supported: rtn)";
      return signalPassFailure();
    }
    auto diag = [&]() { return getOperation().emitError(); };
    SchemeAttr scheme = SchemeAttr::getChecked(
        diag, &getContext(), unsigned(weightBits), /*actBits=*/16u, int64_t(groupSize),
        bool(symmetric),
        NumberFormat::Int);
    if (!scheme || !scheme.isQuantized()) {
      if (scheme)
        getOperation().emitError() << "bits must be 1-8 to quantize";
      return signalPassFailure();
    }
    WalkResult result = getOperation().walk([&](MoEOp moe) {
      for (OpOperand *operand : expertWeightOperands(moe, includeShared))
        if (failed(quantizeOperand(*operand, scheme, *quantMethod)))
          return WalkResult::interrupt();
      return WalkResult::advance();
    });
    if (result.wasInterrupted())
      signalPassFailure();
  }

  /// Routed-expert weights, in gate, up, down order, then (when asked) the
  /// shared expert's.
  static SmallVector<OpOperand *> expertWeightOperands(MoEOp moe, bool withShared) {
    SmallVector<OpOperand *> operands;
    SmallVector<MutableOperandRange> ranges = {moe.getGateMutable(), moe.getUpMutable(),
                                               moe.getDownMutable()};
    if (withShared)
      ranges.append({moe.getSharedGateMutable(), moe.getSharedUpMutable(),
                     moe.getSharedDownMutable()});
    for (MutableOperandRange range : ranges)
      for (OpOperand &operand : range)
        operands.push_back(&operand);
    return operands;
  }

  LogicalResult quantizeOperand(OpOperand &operand, SchemeAttr scheme,
                                QuantMethod quantMethod) {
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
    auto quantize = QuantizeOp::create(builder, operand.get().getLoc(),
                                       packedType, operand.get(), quantMethod);
    operand.set(quantize);
    return success();
  }
};

} // namespace
