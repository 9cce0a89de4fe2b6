//===- LoopBound.h - loop bounds for the IR builders ------------*- C++ -*-===//
//
// The IR builders create one value per statement: C++ leaves the order in
// which a call's arguments are evaluated open (GCC and Clang differ), so
// ops created inside an argument list would order the IR, and the PTX, by
// the compiler that built moeq (bench/compare_builds.py checks that both
// agree). A LoopBound lets a loop helper take a constant bound and create
// it itself, in a fixed order.
//
//===----------------------------------------------------------------------===//
#ifndef MOEQ_PASSES_LOOPBOUND_H
#define MOEQ_PASSES_LOOPBOUND_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/Builders.h"

namespace mlir::moeq {

/// A loop bound: a value, or an index constant made when the loop is.
struct LoopBound {
  LoopBound(Value value) : value(value) {}
  LoopBound(int64_t constant) : constant(constant) {}

  /// The bound as a value (a new arith.constant for a constant bound).
  Value materialize(OpBuilder &b, Location loc) const {
    return value ? value : arith::ConstantIndexOp::create(b, loc, constant).getResult();
  }

  Value value;
  int64_t constant = 0;
};

} // namespace mlir::moeq

#endif // MOEQ_PASSES_LOOPBOUND_H
