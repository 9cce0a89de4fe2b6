//===- DecomposeMoE.cpp - moeq.moe -> router/dispatch/matmuls/combine -----===//
#include "moeq/Dialect/MoEQ/IR/MoEQ.h"
#include "moeq/Passes/Passes.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/WalkPatternRewriteDriver.h"

namespace mlir::moeq {
#define GEN_PASS_DEF_DECOMPOSEMOE
#include "moeq/Passes/Passes.h.inc"
} // namespace mlir::moeq

using namespace mlir;
using namespace mlir::moeq;

namespace {

/// tokens * top_k rows, dynamic when the token count is.
int64_t routedRows(RankedTensorType input, int64_t topK) {
  int64_t tokens = input.getDimSize(0);
  return ShapedType::isDynamic(tokens) ? ShapedType::kDynamic : tokens * topK;
}

/// The delta_weights behind `weights` when every weight is one, they share
/// one base and have one rank: the condition for the split into base GEMM
/// + low-rank grouped GEMMs. (A pruned down base reads the leading
/// `inputCols`.)
SmallVector<DeltaWeightOp> splittableDeltas(ValueRange weights, int64_t inputCols) {
  SmallVector<DeltaWeightOp> deltas;
  for (Value w : weights) {
    auto delta = w.getDefiningOp<DeltaWeightOp>();
    if (!delta || (!deltas.empty() && (delta.getBase() != deltas.front().getBase() ||
                                       getWeightShape(delta.getB().getType())[0] !=
                                           getWeightShape(deltas.front().getB().getType())[0])))
      return {};
    deltas.push_back(delta);
  }
  if (deltas.empty() || getWeightShape(deltas.front().getBase().getType())[1] > inputCols)
    return {};
  return deltas;
}

struct DecomposeMoEPattern : OpRewritePattern<MoEOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(MoEOp moe, PatternRewriter &rewriter) const override {
    Location loc = moe.getLoc();
    RankedTensorType inputType = moe.getInput().getType();
    Type elementType = inputType.getElementType();
    int64_t tokens = inputType.getDimSize(0), hidden = moe.getHiddenSize();
    int64_t topK = moe.getTopK(), numExperts = moe.getNumExperts();
    int64_t rows = routedRows(inputType, topK);
    int64_t inter = moe.getIntermediateSize();
    MLIRContext *ctx = rewriter.getContext();

    auto slotsType = [&](Type element) {
      return RankedTensorType::get({tokens, topK}, element);
    };
    auto router = RouterOp::create(
        rewriter, loc, slotsType(rewriter.getI32Type()),
        slotsType(rewriter.getF32Type()), moe.getInput(), moe.getRouter(),
        moe.getScoreBias(), moe.getRouterBias(), moe.getTopKAttr(), moe.getScoringAttr(),
        moe.getNormTopkProbAttr(), moe.getRoutedScalingFactorAttr(),
        moe.getNGroupAttr(), moe.getTopkGroupAttr(), moe.getGroupScoringAttr(),
        moe.getJitterEpsAttr());

    auto i32Vector = [&](int64_t size) {
      return RankedTensorType::get({size}, rewriter.getI32Type());
    };
    // Llama 4: the routing weights scale the expert inputs (each sorted
    // copy), and the combine sums the outputs unweighted.
    Value inputScales = moe.getWeightsOnInputs() ? router.getWeights() : Value();
    auto dispatch = DispatchOp::create(
        rewriter, loc, RankedTensorType::get({rows, hidden}, elementType),
        i32Vector(rows), i32Vector(numExperts + 1), moe.getInput(),
        router.getIndices(), inputScales, rewriter.getI64IntegerAttr(numExperts));

    auto groupedMatmul = [&](Value input, ValueRange weights, int64_t outDim,
                             ValueRange biases = {}) {
      return GroupedMatmulOp::create(
                 rewriter, loc, RankedTensorType::get({rows, outDim}, elementType),
                 input, dispatch.getOffsets(), weights, biases, /*kernels=*/nullptr,
                 /*tile=*/nullptr)
          .getResult();
    };
    // D^2-MoE weights: one base GEMM plus the per-expert low-rank
    // corrections x -> (x b^T) a^T, summed. For gate and up (`tokens`: the
    // unsorted input) the base multiplies each token once, before the
    // dispatch sorts its output rows like the token copies; for down it
    // runs over the sorted rows (each copy has its own activation).
    // (Expert biases, gpt-oss, go with the grouped matmul; the D^2-MoE
    // passes refuse biased layers, so the split below never has them.)
    auto expertMatmul = [&](Value input, ValueRange weights, int64_t outDim, ValueRange biases,
                            Value tokensInput = Value()) {
      int64_t inputCols = cast<RankedTensorType>(input.getType()).getDimSize(1);
      SmallVector<DeltaWeightOp> deltas =
          biases.empty() ? splittableDeltas(weights, inputCols) : SmallVector<DeltaWeightOp>();
      if (deltas.empty())
        return groupedMatmul(input, weights, outDim, biases);
      SmallVector<Value> as, bs;
      for (DeltaWeightOp delta : deltas) {
        as.push_back(delta.getA());
        bs.push_back(delta.getB());
      }
      int64_t rank = getWeightShape(bs.front().getType())[0];
      Value projected = groupedMatmul(input, bs, rank);
      Value lowrank = groupedMatmul(projected, as, outDim);
      // The tensors the experts' base + a . b stand for (exports).
      SmallVector<Attribute> sources;
      for (DeltaWeightOp delta : deltas)
        sources.push_back(delta.getSourceAttr() ? Attribute(delta.getSourceAttr())
                                                : Attribute(rewriter.getUnitAttr()));
      lowrank.getDefiningOp()->setAttr(kDeltaSourcesAttrName, rewriter.getArrayAttr(sources));
      Value base = deltas.front().getBase();
      ArrayRef<int64_t> baseShape = getWeightShape(base.getType());
      Value baseOut;
      if (tokensInput) {
        // (The base is linear: base(w * x) = w * base(x), so the per-token
        // output is scaled as the dispatch scales the inputs.)
        Value perToken = LinearOp::create(
            rewriter, loc, RankedTensorType::get({tokens, baseShape[0]}, elementType),
            tokensInput, base, /*kernel=*/nullptr, /*tile=*/nullptr, UnitAttr());
        baseOut = DispatchOp::create(
                      rewriter, loc, RankedTensorType::get({rows, baseShape[0]}, elementType),
                      i32Vector(rows), i32Vector(numExperts + 1), perToken,
                      router.getIndices(), inputScales, rewriter.getI64IntegerAttr(numExperts))
                      .getSorted();
      } else {
        // A pruned down base reads the leading (kept) intermediate channels.
        baseOut = LinearOp::create(
            rewriter, loc, RankedTensorType::get({rows, baseShape[0]}, elementType), input, base,
            /*kernel=*/nullptr, /*tile=*/nullptr,
            /*leading_inputs=*/baseShape[1] < inputCols ? rewriter.getUnitAttr() : UnitAttr());
      }
      return DeltaSumOp::create(rewriter, loc,
                                RankedTensorType::get({rows, outDim}, elementType), lowrank,
                                baseOut)
          .getResult();
    };
    Value gate = expertMatmul(dispatch.getSorted(), moe.getGate(), inter, moe.getGateBias(),
                              moe.getInput());
    Value up = expertMatmul(dispatch.getSorted(), moe.getUp(), inter, moe.getUpBias(),
                            moe.getInput());
    Value activated = GatedActivationOp::create(
        rewriter, loc, gate, up, ActivationAttr::get(ctx, moe.getActivation()),
        moe.getSwigluAlphaAttr(), moe.getSwigluLimitAttr());
    Value down = expertMatmul(activated, moe.getDown(), hidden, moe.getDownBias());

    // The shared expert: a dense MLP over every token, optionally scaled by
    // a sigmoid gate in the combine.
    Value shared, sharedGateLogits;
    if (moe.hasSharedExpert()) {
      auto linear = [&](Value input, Value weight) {
        int64_t outDim = getWeightShape(weight.getType())[0];
        return LinearOp::create(rewriter, loc,
                                RankedTensorType::get({tokens, outDim}, elementType), input,
                                weight, /*kernel=*/nullptr, /*tile=*/nullptr)
            .getResult();
      };
      Value sharedGate = linear(moe.getInput(), moe.getSharedGate());
      Value sharedUp = linear(moe.getInput(), moe.getSharedUp());
      Value sharedAct = GatedActivationOp::create(
          rewriter, loc, sharedGate, sharedUp, ActivationAttr::get(ctx, moe.getActivation()),
          moe.getSwigluAlphaAttr(), moe.getSwigluLimitAttr());
      shared = linear(sharedAct, moe.getSharedDown());
      if (Value gateWeight = moe.getSharedExpertGate())
        sharedGateLogits = linear(moe.getInput(), gateWeight);
    }
    rewriter.replaceOpWithNewOp<CombineOp>(moe, inputType, down, dispatch.getPositions(),
                                           router.getWeights(), shared, sharedGateLogits,
                                           /*unweighted=*/moe.getWeightsOnInputs());
    return success();
  }
};

struct DecomposeMoEPass : mlir::moeq::impl::DecomposeMoEBase<DecomposeMoEPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<DecomposeMoEPattern>(&getContext());
    walkAndApplyPatterns(getOperation(), std::move(patterns));
    // delta_weights the split form no longer reads.
    getOperation()->walk([](DeltaWeightOp delta) {
      if (delta->use_empty())
        delta.erase();
    });
  }
};

} // namespace
