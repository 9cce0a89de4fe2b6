//===- TokenRouting.cpp - the routing of one token, as IR -----------------===//
#include "moeq/Passes/LoopBound.h"
#include "moeq/Passes/TokenRouting.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/xxhash.h"

#include <limits>

using namespace mlir;
using namespace mlir::moeq;

RoutingSpec RoutingSpec::get(RouterOp router) {
  RoutingSpec spec;
  spec.numExperts = router.getWeight().getType().getDimSize(0);
  spec.topK = router.getTopK();
  spec.scoring = router.getScoring();
  spec.normTopkProb = router.getNormTopkProb();
  spec.routedScalingFactor = router.getRoutedScalingFactor().convertToDouble();
  spec.nGroup = router.getNGroup();
  spec.topkGroup = router.getTopkGroup();
  spec.groupScoring = router.getGroupScoring();
  spec.jitterEps = router.getJitterEps().convertToDouble();
  spec.hasScoreBias = bool(router.getScoreBias());
  spec.hasLogitBias = bool(router.getLogitBias());
  return spec;
}

std::string RoutingSpec::mangle() const {
  std::string name = llvm::formatv("{0}_e{1}_k{2}", stringifyScoringFunc(scoring), numExperts, topK);
  if (hasScoreBias)
    name += "_bias";
  if (hasLogitBias)
    name += "_lbias";
  if (nGroup > 1)
    name += llvm::formatv("_g{0}of{1}{2}", topkGroup, nGroup,
                          groupScoring == GroupScoring::Top2Sum ? "t2" : "");
  if (scoring != ScoringFunc::SparseMixer && normTopkProb)
    name += "_norm";
  // The constants compiled into the kernel, so that layers that differ in
  // them never share a kernel: a hash of their exact values.
  if (routedScalingFactor != 1.0 || jitterEps != 0.0)
    name += llvm::formatv("_c{0:x-8}", uint32_t(llvm::xxh3_64bits(
                                          llvm::formatv("{0:e17} {1:e17}", routedScalingFactor,
                                                        jitterEps)
                                              .str())));
  return name;
}

namespace {

/// Builds the loops of one token's routing.
class TokenRoutingEmitter {
public:
  TokenRoutingEmitter(OpBuilder &b, Location loc, const RoutingSpec &spec,
                      const TokenRoutingBuffers &buffers)
      : b(b), loc(loc), spec(spec), buf(buffers) {}

  void emit() {
    if (buf.logitBias)
      addLogitBias();
    if (spec.scoring == ScoringFunc::SparseMixer)
      return emitSparseMixer();
    emitScores();
    if (spec.nGroup > 1)
      maskExpertGroups();
    emitTopK();
  }

private:
  Value idx(int64_t v) { return arith::ConstantIndexOp::create(b, loc, v); }
  Value f32(double v) {
    return arith::ConstantFloatOp::create(b, loc, b.getF32Type(), APFloat(float(v)));
  }
  Value negInf() { return f32(-std::numeric_limits<double>::infinity()); }
  Value toF32(Value v) {
    return v.getType().isF32() ? v : arith::ExtFOp::create(b, loc, b.getF32Type(), v);
  }
  Value load(Value memref, ValueRange indices) {
    return memref::LoadOp::create(b, loc, memref, indices);
  }
  void store(Value value, Value memref, ValueRange indices) {
    memref::StoreOp::create(b, loc, value, memref, indices);
  }
  Value logit(Value e) { return load(buf.logits, {buf.logitsRow, e}); }

  void forLoop(LoopBound lb, LoopBound ub, function_ref<void(Value)> body) {
    Value lower = lb.materialize(b, loc);
    Value upper = ub.materialize(b, loc);
    auto loop = scf::ForOp::create(b, loc, lower, upper, idx(1));
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(loop.getBody());
    body(loop.getInductionVar());
  }
  Value forLoop(LoopBound lb, LoopBound ub, Value init, function_ref<Value(Value, Value)> body) {
    Value lower = lb.materialize(b, loc);
    Value upper = ub.materialize(b, loc);
    auto loop = scf::ForOp::create(b, loc, lower, upper, idx(1), ValueRange{init});
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(loop.getBody());
    scf::YieldOp::create(b, loc, body(loop.getInductionVar(), loop.getRegionIterArg(0)));
    return loop.getResult(0);
  }

  /// (max value, lowest index attaining it) of `buffer[lb, ub)`.
  std::pair<Value, Value> argmax(Value buffer, Value lb, Value ub) {
    Value step = idx(1);
    Value lowest = negInf();
    auto loop = scf::ForOp::create(b, loc, lb, ub, step, ValueRange{lowest, lb});
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(loop.getBody());
    Value v = load(buffer, loop.getInductionVar());
    Value better = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OGT, v,
                                         loop.getRegionIterArg(0));
    Value best = arith::SelectOp::create(b, loc, better, v, loop.getRegionIterArg(0));
    Value where = arith::SelectOp::create(b, loc, better, loop.getInductionVar(),
                                          loop.getRegionIterArg(1));
    scf::YieldOp::create(b, loc, ValueRange{best, where});
    b.setInsertionPointAfter(loop);
    return {loop.getResult(0), loop.getResult(1)};
  }

  /// logits += the router's bias (gpt-oss), before anything reads them.
  void addLogitBias() {
    forLoop(0, spec.numExperts, [&](Value e) {
      Value logitValue = logit(e);
      Value bias = toF32(load(buf.logitBias, e));
      Value biased = arith::AddFOp::create(b, loc, logitValue, bias);
      store(biased, buf.logits, {buf.logitsRow, e});
    });
  }

  /// scores = softmax(logits) or sigmoid(logits); keys = scores + bias.
  void emitScores() {
    Value experts = idx(spec.numExperts);
    bool softmax = spec.scoring == ScoringFunc::Softmax;
    Value maxLogit = forLoop(0, experts, negInf(), [&](Value e, Value m) {
      return arith::MaximumFOp::create(b, loc, m, logit(e));
    });
    Value sum = forLoop(0, experts, f32(0), [&](Value e, Value acc) {
      Value l = logit(e);
      Value s;
      if (softmax) {
        s = math::ExpOp::create(b, loc, arith::SubFOp::create(b, loc, l, maxLogit));
      } else {
        Value expNeg = math::ExpOp::create(b, loc, arith::NegFOp::create(b, loc, l));
        Value one = f32(1);
        Value denominator = arith::AddFOp::create(b, loc, f32(1), expNeg);
        s = arith::DivFOp::create(b, loc, one, denominator);
      }
      store(s, buf.scores, e);
      return arith::AddFOp::create(b, loc, acc, s);
    });
    forLoop(0, experts, [&](Value e) {
      Value s = load(buf.scores, e);
      if (softmax) {
        s = arith::DivFOp::create(b, loc, s, sum);
        store(s, buf.scores, e);
      }
      Value key = buf.scoreBias ? arith::AddFOp::create(b, loc, s, toF32(load(buf.scoreBias, e)))
                                : s;
      store(key, buf.keys, e);
    });
  }

  /// Group-limited selection: keeps the `topkGroup` best of `nGroup`
  /// contiguous expert groups and sets the keys of all others to 0, as
  /// Hugging Face's DeepSeek routers do (masked_fill(..., 0.0)).
  void maskExpertGroups() {
    int64_t groupSize = spec.numExperts / spec.nGroup;
    bool top2 = spec.groupScoring == GroupScoring::Top2Sum;
    forLoop(0, spec.nGroup, [&](Value g) {
      Value begin = arith::MulIOp::create(b, loc, g, idx(groupSize));
      Value end = arith::AddIOp::create(b, loc, begin, idx(groupSize));
      // Best and second best key of the group.
      Value step = idx(1);
      Value noBest = negInf();
      Value noSecond = negInf();
      auto loop = scf::ForOp::create(b, loc, begin, end, step, ValueRange{noBest, noSecond});
      {
        OpBuilder::InsertionGuard guard(b);
        b.setInsertionPointToStart(loop.getBody());
        Value v = load(buf.keys, loop.getInductionVar());
        Value best = loop.getRegionIterArg(0), second = loop.getRegionIterArg(1);
        Value better = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OGT, v, best);
        Value secondOrV = arith::MaximumFOp::create(b, loc, second, v);
        Value newSecond = arith::SelectOp::create(b, loc, better, best, secondOrV);
        Value newBest = arith::SelectOp::create(b, loc, better, v, best);
        scf::YieldOp::create(b, loc, ValueRange{newBest, newSecond});
      }
      Value score = top2 ? arith::AddFOp::create(b, loc, loop.getResult(0), loop.getResult(1))
                               .getResult()
                         : loop.getResult(0);
      store(score, buf.groupScores, g);
    });
    // Mark the winners by overwriting their score with +inf.
    Value posInf = f32(std::numeric_limits<double>::infinity());
    forLoop(0, spec.topkGroup, [&](Value) {
      // argmax over the groups not chosen yet (chosen ones hold +inf).
      Value first = idx(0);
      Value groups = idx(spec.nGroup);
      Value step = idx(1);
      Value lowest = negInf();
      Value none = idx(0);
      auto loop = scf::ForOp::create(b, loc, first, groups, step, ValueRange{lowest, none});
      {
        OpBuilder::InsertionGuard guard(b);
        b.setInsertionPointToStart(loop.getBody());
        Value v = load(buf.groupScores, loop.getInductionVar());
        Value chosen = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OEQ, v, posInf);
        Value open =
            arith::XOrIOp::create(b, loc, chosen, arith::ConstantIntOp::create(b, loc, 1, 1));
        Value larger =
            arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OGT, v, loop.getRegionIterArg(0));
        Value better = arith::AndIOp::create(b, loc, open, larger);
        Value best = arith::SelectOp::create(b, loc, better, v, loop.getRegionIterArg(0));
        Value where = arith::SelectOp::create(b, loc, better, loop.getInductionVar(),
                                              loop.getRegionIterArg(1));
        scf::YieldOp::create(b, loc, ValueRange{best, where});
      }
      store(posInf, buf.groupScores, loop.getResult(1));
    });
    forLoop(0, spec.numExperts, [&](Value e) {
      Value g = arith::DivUIOp::create(b, loc, e, idx(groupSize));
      Value chosen = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OEQ,
                                           load(buf.groupScores, g), posInf);
      Value key = load(buf.keys, e);
      store(arith::SelectOp::create(b, loc, chosen, key, f32(0)), buf.keys, e);
    });
  }

  /// Top-k: k passes of argmax (lowest index wins ties), masking winners;
  /// weights renormalised and scaled.
  void emitTopK() {
    Value row = buf.outputRow;
    Value selected = forLoop(0, spec.topK, f32(0), [&](Value j, Value acc) {
      Value first = idx(0);
      Value winner = argmax(buf.keys, first, idx(spec.numExperts)).second;
      store(negInf(), buf.keys, winner);
      Value weight = load(buf.scores, winner);
      store(arith::IndexCastOp::create(b, loc, b.getI32Type(), winner), buf.indices, {row, j});
      store(weight, buf.weights, {row, j});
      return arith::AddFOp::create(b, loc, acc, weight);
    });
    Value factor = spec.normTopkProb
                       ? arith::DivFOp::create(b, loc, f32(spec.routedScalingFactor), selected)
                             .getResult()
                       : f32(spec.routedScalingFactor);
    forLoop(0, spec.topK, [&](Value j) {
      store(arith::MulFOp::create(b, loc, load(buf.weights, {row, j}), factor), buf.weights,
            {row, j});
    });
  }

  /// Phi-3.5-MoE's sparsemixer (inference): the best logit, weighted by a
  /// softmax over the logits within a relative 2*eps of it; then the same
  /// without the first expert. `keys` holds the logits being searched.
  void emitSparseMixer() {
    Value twoEps = f32(2 * spec.jitterEps);
    Value experts = idx(spec.numExperts);
    forLoop(0, experts, [&](Value e) { store(logit(e), buf.keys, e); });
    for (int64_t j = 0; j < 2; ++j) {
      auto [top, winner] = argmax(buf.keys, idx(0), experts);
      // softmax restricted to experts with (top - l) / max(|l|, top) <= 2 eps;
      // keys hold -inf for the first winner in the second round.
      Value sum = forLoop(0, experts, f32(0), [&](Value e, Value acc) {
        Value l = load(buf.keys, e);
        Value magnitude = math::AbsFOp::create(b, loc, logit(e));
        Value factor = arith::MaximumFOp::create(b, loc, magnitude, top);
        Value gap = arith::DivFOp::create(b, loc, arith::SubFOp::create(b, loc, top, l), factor);
        Value near = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OLE, gap, twoEps);
        Value live = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OGT, l, negInf());
        Value keep = arith::AndIOp::create(b, loc, near, live);
        Value term = math::ExpOp::create(b, loc, arith::SubFOp::create(b, loc, l, top));
        Value kept = arith::SelectOp::create(b, loc, keep, term, f32(0));
        return arith::AddFOp::create(b, loc, acc, kept);
      });
      Value slot = idx(j);
      Value index = arith::IndexCastOp::create(b, loc, b.getI32Type(), winner);
      store(index, buf.indices, {buf.outputRow, slot});
      Value weight = arith::DivFOp::create(b, loc, f32(1), sum);
      store(weight, buf.weights, {buf.outputRow, slot});
      store(negInf(), buf.keys, winner);
    }
  }

  OpBuilder &b;
  Location loc;
  const RoutingSpec &spec;
  const TokenRoutingBuffers &buf;
};

} // namespace

void mlir::moeq::emitTokenRouting(OpBuilder &b, Location loc, const RoutingSpec &spec,
                                  const TokenRoutingBuffers &buffers) {
  TokenRoutingEmitter(b, loc, spec, buffers).emit();
}
