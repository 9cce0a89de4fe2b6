//===- Expression.cpp - evaluation of plan expressions --------------------===//
#include "moeq/Runtime/Expression.h"

using namespace moeq::runtime;

namespace {

const char *operationName(Expr::Kind kind) {
  switch (kind) {
  case Expr::Kind::Add: return "add";
  case Expr::Kind::Sub: return "sub";
  case Expr::Kind::Mul: return "mul";
  case Expr::Kind::Div: return "div";
  case Expr::Kind::CeilDiv: return "ceildiv";
  case Expr::Kind::Min: return "min";
  case Expr::Kind::Max: return "max";
  default: return "?";
  }
}

std::string bufferName(int buffer, const std::vector<std::string> *names) {
  if (names && buffer >= 0 && size_t(buffer) < names->size())
    return (*names)[buffer];
  return "#" + std::to_string(buffer);
}

Status applyBinary(Expr::Kind kind, int64_t a, int64_t b, int64_t &result) {
  auto overflow = [&] {
    return Status::error(std::string(operationName(kind)) + "(" + std::to_string(a) + ", " +
                         std::to_string(b) + ") overflows 64 bits");
  };
  switch (kind) {
  case Expr::Kind::Add:
    if (__builtin_add_overflow(a, b, &result))
      return overflow();
    return Status();
  case Expr::Kind::Sub:
    if (__builtin_sub_overflow(a, b, &result))
      return overflow();
    return Status();
  case Expr::Kind::Mul:
    if (__builtin_mul_overflow(a, b, &result))
      return overflow();
    return Status();
  case Expr::Kind::Div:
  case Expr::Kind::CeilDiv:
    // Floor and ceiling division are defined on non-negative operands only
    // (sizes and counts); anything else is a compiler bug worth reporting.
    if (a < 0 || b <= 0)
      return Status::error(std::string(operationName(kind)) + "(" + std::to_string(a) + ", " +
                           std::to_string(b) +
                           "): needs a non-negative dividend and a positive divisor");
    result = kind == Expr::Kind::Div ? a / b : a / b + (a % b != 0);
    return Status();
  case Expr::Kind::Min:
    result = a < b ? a : b;
    return Status();
  case Expr::Kind::Max:
    result = a > b ? a : b;
    return Status();
  default:
    return Status::error("not a binary operation");
  }
}

Status evaluateLoad(const Expr &expr, const EvalContext &context, int64_t &result) {
  int64_t index = 0;
  MOEQ_RETURN_IF_ERROR(evaluate(expr.operands[0], context, index));
  std::string name = bufferName(expr.buffer, context.bufferNames);
  if (!context.hostBuffers || expr.buffer < 0 ||
      size_t(expr.buffer) >= context.hostBuffers->size() ||
      !(*context.hostBuffers)[expr.buffer].data)
    return Status::error("load from '" + name + "': not a host buffer filled by a copy");
  const HostBufferView &view = (*context.hostBuffers)[expr.buffer];
  if (index < 0 || index >= view.count)
    return Status::error("load from '" + name + "': index " + std::to_string(index) +
                         " is outside its " + std::to_string(view.count) + " elements");
  result = view.data[index];
  return Status();
}

} // namespace

bool Expr::readsHostBuffers() const {
  if (kind == Kind::Load)
    return true;
  for (const Expr &operand : operands)
    if (operand.readsHostBuffers())
      return true;
  return false;
}

void Expr::collectLoads(std::vector<int> &buffers) const {
  if (kind == Kind::Load)
    buffers.push_back(buffer);
  for (const Expr &operand : operands)
    operand.collectLoads(buffers);
}

Status moeq::runtime::evaluate(const Expr &expr, const EvalContext &context, int64_t &result) {
  switch (expr.kind) {
  case Expr::Kind::Constant:
    result = expr.value;
    return Status();
  case Expr::Kind::Tokens:
    result = context.tokens;
    return Status();
  case Expr::Kind::Load:
    return evaluateLoad(expr, context, result);
  default:
    break;
  }
  if (expr.operands.size() != 2)
    return Status::error(std::string(operationName(expr.kind)) + " needs two operands");
  int64_t a = 0, b = 0;
  MOEQ_RETURN_IF_ERROR(evaluate(expr.operands[0], context, a));
  MOEQ_RETURN_IF_ERROR(evaluate(expr.operands[1], context, b));
  return applyBinary(expr.kind, a, b, result);
}

std::string moeq::runtime::toString(const Expr &expr, const std::vector<std::string> *names) {
  switch (expr.kind) {
  case Expr::Kind::Constant:
    return std::to_string(expr.value);
  case Expr::Kind::Tokens:
    return "\"T\"";
  case Expr::Kind::Load:
    return "{\"load\": \"" + bufferName(expr.buffer, names) + "\", \"index\": " +
           (expr.operands.empty() ? std::string("?") : toString(expr.operands[0], names)) + "}";
  default:
    break;
  }
  std::string text = std::string("{\"") + operationName(expr.kind) + "\": [";
  for (size_t i = 0; i < expr.operands.size(); ++i)
    text += (i ? ", " : "") + toString(expr.operands[i], names);
  return text + "]}";
}
