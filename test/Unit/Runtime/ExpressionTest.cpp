//===- ExpressionTest.cpp - plan expressions: parsing and evaluation ------===//
#include "moeq/Runtime/Plan.h"

#include "gtest/gtest.h"

using namespace moeq::runtime;

namespace {

/// Host buffer "offsets" is buffer 0; "other" is not a host buffer.
Status resolve(const std::string &name, int &index) {
  if (name == "offsets") {
    index = 0;
    return Status();
  }
  return Status::error("unknown buffer '" + name + "'");
}

/// Parses and evaluates `text` with T = `tokens` and offsets = {0, 3, 7, 12}.
Status evaluateText(const std::string &text, int64_t tokens, int64_t &value) {
  Expr expr;
  MOEQ_RETURN_IF_ERROR(parseExpression(text, resolve, expr));
  static const int32_t offsets[] = {0, 3, 7, 12};
  std::vector<HostBufferView> hosts = {{offsets, 4}};
  std::vector<std::string> names = {"offsets"};
  EvalContext context{tokens, &hosts, &names};
  return evaluate(expr, context, value);
}

int64_t valueOf(const std::string &text, int64_t tokens = 5) {
  int64_t value = -999;
  Status status = evaluateText(text, tokens, value);
  EXPECT_TRUE(status.ok()) << text << ": " << status.message();
  return value;
}

std::string errorOf(const std::string &text, int64_t tokens = 5) {
  int64_t value = 0;
  Status status = evaluateText(text, tokens, value);
  EXPECT_FALSE(status.ok()) << text << " evaluated to " << value;
  return status.message();
}

TEST(RuntimeExpression, ConstantsAndTokens) {
  EXPECT_EQ(valueOf("42"), 42);
  EXPECT_EQ(valueOf("-3"), -3);
  EXPECT_EQ(valueOf("\"T\"", 17), 17);
  EXPECT_EQ(valueOf("9223372036854775807"), INT64_MAX);
}

TEST(RuntimeExpression, Arithmetic) {
  EXPECT_EQ(valueOf(R"({"add": ["T", 3]})"), 8);
  EXPECT_EQ(valueOf(R"({"sub": [2, "T"]})"), -3);
  EXPECT_EQ(valueOf(R"({"mul": ["T", 128]})"), 640);
  EXPECT_EQ(valueOf(R"({"div": [7, 2]})"), 3);  // floor
  EXPECT_EQ(valueOf(R"({"div": [0, 2]})"), 0);
  EXPECT_EQ(valueOf(R"({"ceildiv": [7, 2]})"), 4);
  EXPECT_EQ(valueOf(R"({"ceildiv": [8, 2]})"), 4);
  EXPECT_EQ(valueOf(R"({"ceildiv": [0, 16]})"), 0);
  EXPECT_EQ(valueOf(R"({"min": ["T", 3]})"), 3);
  EXPECT_EQ(valueOf(R"({"max": ["T", 3]})"), 5);
  EXPECT_EQ(valueOf(R"({"ceildiv": [{"mul": ["T", 2]}, {"add": [1, 1]}]})", 9), 9);
}

TEST(RuntimeExpression, LoadReadsTheHostBuffer) {
  EXPECT_EQ(valueOf(R"({"load": "offsets", "index": 2})"), 7);
  EXPECT_EQ(valueOf(R"({"sub": [{"load": "offsets", "index": {"add": [1, 2]}},
                                 {"load": "offsets", "index": 2}]})"),
            5);
}

TEST(RuntimeExpression, EvaluationErrorsAreMessages) {
  EXPECT_EQ(errorOf(R"({"div": ["T", 0]})"),
            "div(5, 0): needs a non-negative dividend and a positive divisor");
  EXPECT_EQ(errorOf(R"({"ceildiv": [-1, 4]})"),
            "ceildiv(-1, 4): needs a non-negative dividend and a positive divisor");
  EXPECT_EQ(errorOf(R"({"mul": [9223372036854775807, 2]})"),
            "mul(9223372036854775807, 2) overflows 64 bits");
  EXPECT_EQ(errorOf(R"({"add": [9223372036854775807, "T"]})"),
            "add(9223372036854775807, 5) overflows 64 bits");
  EXPECT_EQ(errorOf(R"({"load": "offsets", "index": 4})"),
            "load from 'offsets': index 4 is outside its 4 elements");
  EXPECT_EQ(errorOf(R"({"load": "offsets", "index": -1})"),
            "load from 'offsets': index -1 is outside its 4 elements");
}

TEST(RuntimeExpression, ParseErrorsNameTheProblem) {
  EXPECT_EQ(errorOf(R"("N")"),
            "expression: unknown expression \"N\" (the only name is \"T\", the token count)");
  EXPECT_EQ(errorOf(R"({"pow": [2, 3]})"),
            "expression: unknown expression kind \"pow\" (expected add, sub, mul, div, ceildiv, "
            "min, max or load)");
  EXPECT_EQ(errorOf(R"({"add": [1]})"), "expression.add: expected 2 elements, found 1");
  EXPECT_EQ(errorOf(R"({"add": [1, 2], "mul": [3, 4]})"),
            "expression: unknown expression kind: an operation has one key, found \"add\", \"mul\"");
  EXPECT_EQ(errorOf("1.5"), "expression: expected a 64-bit integer, found 1.5");
  EXPECT_EQ(errorOf("[1]"),
            "expression: unknown expression kind: an expression is an integer, \"T\" or an "
            "object, found array");
  EXPECT_EQ(errorOf(R"({"load": "other", "index": 0})"), "expression: unknown buffer 'other'");
  EXPECT_EQ(errorOf(R"({"load": "offsets"})"), "expression: missing \"index\"");
  EXPECT_EQ(errorOf(R"({"mul": ["T", {"max": [1, "X"]}]})"),
            "expression.mul[1].max[1]: unknown expression \"X\" (the only name is \"T\", the "
            "token count)");
  EXPECT_NE(errorOf("{"), "");
}

TEST(RuntimeExpression, PrintsAsJson) {
  Expr expr;
  ASSERT_TRUE(parseExpression(R"({"mul": [{"load": "offsets", "index": 3}, 128]})", resolve, expr)
                  .ok());
  std::vector<std::string> names = {"offsets"};
  EXPECT_EQ(toString(expr, &names), R"({"mul": [{"load": "offsets", "index": 3}, 128]})");
  EXPECT_TRUE(expr.readsHostBuffers());
  EXPECT_FALSE(Expr::tokens().readsHostBuffers());
}

} // namespace
