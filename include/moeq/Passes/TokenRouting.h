//===- TokenRouting.h - the routing of one token, as IR ---------*- C++ -*-===//
//
// moeq.router's semantics for one token, emitted as scf loops over memrefs.
// The CPU oracle (moeq-convert-to-linalg) and the GPU routing kernel
// (moeq-convert-to-launch-plan) both emit exactly this code, so the two
// cannot disagree on a rule (tie breaking, group masking, renormalisation).
//
//===----------------------------------------------------------------------===//
#ifndef MOEQ_PASSES_TOKENROUTING_H
#define MOEQ_PASSES_TOKENROUTING_H

#include "moeq/Dialect/MoEQ/IR/MoEQ.h"

#include "mlir/IR/Builders.h"

#include <string>

namespace mlir::moeq {

/// What a router computes per token: moeq.router's attributes.
struct RoutingSpec {
  int64_t numExperts = 0, topK = 0;
  ScoringFunc scoring = ScoringFunc::Softmax;
  bool normTopkProb = true;
  double routedScalingFactor = 1.0;
  int64_t nGroup = 1, topkGroup = 1;
  GroupScoring groupScoring = GroupScoring::Max;
  double jitterEps = 0.0;
  bool hasScoreBias = false;
  /// The router's logits get a bias (gpt-oss).
  bool hasLogitBias = false;

  static RoutingSpec get(RouterOp router);
  /// A short name for the variant (kernel names): scoring, k, groups, ...
  std::string mangle() const;
};

/// The buffers routing reads and writes. `logits` is an f32 [*, E] memref
/// and `logitsRow` the token's row in it (the router's `logitBias`, a 1-D
/// float memref of E or null, is added to that row first); `scoreBias` a
/// 1-D float memref of E (or null); `scores`, `keys` f32 scratch of E and
/// `groupScores` of nGroup; the token's selection goes to `indices` (i32)
/// and `weights` (f32), both [*, top_k], row `outputRow`.
struct TokenRoutingBuffers {
  Value logits, logitsRow, scoreBias;
  Value scores, keys, groupScores;
  Value indices, weights, outputRow;
  Value logitBias = Value();
};

/// Emits at `b`'s insertion point: scores = scoring(logits) (softmax or
/// sigmoid), top-k on score + bias (lowest index wins ties), group-limited
/// when nGroup > 1, weights = unbiased scores of the winners, renormalised
/// when normTopkProb, times routedScalingFactor; or Phi-3.5-MoE's
/// sparsemixer.
void emitTokenRouting(OpBuilder &b, Location loc, const RoutingSpec &spec,
                      const TokenRoutingBuffers &buffers);

} // namespace mlir::moeq

#endif // MOEQ_PASSES_TOKENROUTING_H
