//===- Expression.h - integer expressions of a launch plan ------*- C++ -*-===//
//
// Grid sizes, buffer shapes, offsets and scalar arguments of a plan are
// expressions over the call's token count T and elements of host buffers
// filled by earlier copies (docs/runtime.md). Arithmetic is on signed 64-bit
// integers; overflow, a zero divisor, a negative operand of div/ceildiv and
// an out-of-range load are errors, never undefined behaviour.
//
//===----------------------------------------------------------------------===//
#ifndef MOEQ_RUNTIME_EXPRESSION_H
#define MOEQ_RUNTIME_EXPRESSION_H

#include "moeq/Runtime/Status.h"

#include <cstdint>
#include <string>
#include <vector>

namespace moeq::runtime {

struct Expr {
  enum class Kind { Constant, Tokens, Add, Sub, Mul, Div, CeilDiv, Min, Max, Load };

  Kind kind = Kind::Constant;
  int64_t value = 0;           ///< Constant
  int buffer = -1;             ///< Load: index of the host buffer in its plan
  std::vector<Expr> operands;  ///< binary operations: 2; Load: 1 (the index)

  static Expr constant(int64_t v) {
    Expr e;
    e.value = v;
    return e;
  }
  static Expr tokens() {
    Expr e;
    e.kind = Kind::Tokens;
    return e;
  }
  static Expr binary(Kind kind, Expr lhs, Expr rhs) {
    Expr e;
    e.kind = kind;
    e.operands = {std::move(lhs), std::move(rhs)};
    return e;
  }
  static Expr load(int buffer, Expr index) {
    Expr e;
    e.kind = Kind::Load;
    e.buffer = buffer;
    e.operands = {std::move(index)};
    return e;
  }

  bool isConstant() const { return kind == Kind::Constant; }
  /// True when the value depends on a host buffer (a `load` anywhere).
  bool readsHostBuffers() const;
  /// Appends the host buffers this expression loads from.
  void collectLoads(std::vector<int> &buffers) const;
};

/// The i32 contents of a host buffer as the evaluator sees them.
struct HostBufferView {
  const int32_t *data = nullptr;
  int64_t count = 0;
};

struct EvalContext {
  int64_t tokens = 0;
  /// Indexed by plan buffer index; entries of non-host buffers are unused.
  const std::vector<HostBufferView> *hostBuffers = nullptr;
  /// Names buffers in messages (index -> name); may be null.
  const std::vector<std::string> *bufferNames = nullptr;
};

/// Evaluates `expr`; on failure the message says which operation failed.
Status evaluate(const Expr &expr, const EvalContext &context, int64_t &result);

/// The JSON spelling of `expr` (for messages and tests).
std::string toString(const Expr &expr, const std::vector<std::string> *bufferNames = nullptr);

} // namespace moeq::runtime

#endif // MOEQ_RUNTIME_EXPRESSION_H
