//===- SetTarget.cpp - record the target architecture on the module ------===//
#include "moeq/Dialect/MoEQ/IR/MoEQ.h"
#include "moeq/Passes/Passes.h"

#include "mlir/IR/BuiltinOps.h"

namespace mlir::moeq {
#define GEN_PASS_DEF_SETTARGET
#include "moeq/Passes/Passes.h.inc"
} // namespace mlir::moeq

using namespace mlir;
using namespace mlir::moeq;

namespace {
struct SetTargetPass : mlir::moeq::impl::SetTargetBase<SetTargetPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto target = TargetAttr::getChecked([&]() { return module.emitError(); }, &getContext(),
                                         StringAttr::get(&getContext(), chip));
    if (!target)
      return signalPassFailure();
    module->setAttr(kTargetAttrName, target);
  }
};
} // namespace
