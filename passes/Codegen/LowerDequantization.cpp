//===- LowerDequantization.cpp - packed codes to arith/vector/memref ------===//
//
// The one lowering of the packed format's reading and dequantisation
// (moeq.unpack_codes, moeq.dequantize_codes, moeq.lookup_levels), shared by
// the CPU lowering (moeq-convert-to-linalg), the SIMT kernels and the
// tensor-core kernels (moeq-lower-expert-gemms-to-gpu): one pattern per op,
// plus an f16 form of dequantize_codes for tensor-core fragments.
//
//===----------------------------------------------------------------------===//
#include "moeq/Dialect/MoEQ/IR/MoEQ.h"
#include "moeq/Passes/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/IR/TypeUtilities.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::moeq {
#define GEN_PASS_DEF_LOWERDEQUANTIZATION
#include "moeq/Passes/Passes.h.inc"
} // namespace mlir::moeq

using namespace mlir;
using namespace mlir::moeq;

namespace {

/// `values` as `type`: the value itself for a scalar type, a vector built
/// from them otherwise.
Value packValues(OpBuilder &b, Location loc, Type type, ArrayRef<Value> values) {
  if (!isa<VectorType>(type))
    return values.front();
  return vector::FromElementsOp::create(b, loc, type, values);
}

/// The elements of a scalar (itself) or a 1-D vector.
SmallVector<Value> unpackValues(OpBuilder &b, Location loc, Value value) {
  auto vector = dyn_cast<VectorType>(value.getType());
  if (!vector)
    return {value};
  SmallVector<Value> elements;
  for (int64_t i = 0; i < vector.getNumElements(); ++i)
    elements.push_back(vector::ExtractOp::create(b, loc, value, i));
  return elements;
}

/// `element` scalar, or a vector of `shapeOf`'s length of it.
Type withShapeOf(Type shapeOf, Type element) {
  if (auto vector = dyn_cast<VectorType>(shapeOf))
    return vector.clone(element);
  return element;
}

Value broadcastTo(OpBuilder &b, Location loc, Type type, Value scalar) {
  if (!isa<VectorType>(type))
    return scalar;
  return vector::BroadcastOp::create(b, loc, type, scalar);
}

/// The word holding `bit` and the next (codes may straddle two words), as
/// one window shifted so that the first code is at bit 0; then each code
/// masked out of it.
struct UnpackCodesLowering : OpRewritePattern<UnpackCodesOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(UnpackCodesOp op, PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    auto index = [&](int64_t v) { return arith::ConstantIndexOp::create(rewriter, loc, v); };
    Type i32 = rewriter.getI32Type(), i64 = rewriter.getI64Type();
    Value words = op.getWords();
    auto rowOf = [&](Value word) {
      SmallVector<Value> indices(op.getIndices());
      indices.push_back(word);
      return indices;
    };
    Value word = arith::DivUIOp::create(rewriter, loc, op.getBit(), index(32));
    Value shiftInWord = arith::RemUIOp::create(rewriter, loc, op.getBit(), index(32));
    Value window = memref::LoadOp::create(rewriter, loc, words, rowOf(word));
    if (!op.getAligned()) {
      // The next word too (clamped to the row's last unless the rows are
      // padded), in a 64-bit window.
      Value next = arith::AddIOp::create(rewriter, loc, word, index(1));
      if (!op.getPadded()) {
        MemRefType type = op.getWords().getType();
        int64_t lastDim = type.getRank() - 1;
        Value rowWords = type.isDynamicDim(lastDim)
                             ? Value(memref::DimOp::create(rewriter, loc, words, lastDim))
                             : Value(index(type.getDimSize(lastDim)));
        Value lastWord = arith::SubIOp::create(rewriter, loc, rowWords, index(1));
        next = arith::MinUIOp::create(rewriter, loc, next, lastWord);
      }
      Value hi = memref::LoadOp::create(rewriter, loc, words, rowOf(next));
      Value lo64 = arith::ExtUIOp::create(rewriter, loc, i64, window);
      Value hiWide = arith::ExtUIOp::create(rewriter, loc, i64, hi);
      Value thirtyTwo = arith::ConstantIntOp::create(rewriter, loc, i64, 32);
      Value hi64 = arith::ShLIOp::create(rewriter, loc, hiWide, thirtyTwo);
      window = arith::OrIOp::create(rewriter, loc, lo64, hi64);
    }
    Type windowType = window.getType();
    Value shift = arith::IndexCastUIOp::create(rewriter, loc, windowType, shiftInWord);
    Value shifted = arith::ShRUIOp::create(rewriter, loc, window, shift);
    if (windowType != i32)
      shifted = arith::TruncIOp::create(rewriter, loc, i32, shifted);
    int64_t bits = op.getBits();
    Value mask = arith::ConstantIntOp::create(rewriter, loc, i32, (int64_t(1) << bits) - 1);
    if (Value width = op.getWidth()) {
      // (1 << width) - 1 for a width known at run time.
      Value one = arith::ConstantIntOp::create(rewriter, loc, i32, 1);
      Value width32 = arith::IndexCastUIOp::create(rewriter, loc, i32, width);
      Value limit = arith::ShLIOp::create(rewriter, loc, one, width32);
      mask = arith::SubIOp::create(rewriter, loc, limit, one);
    }
    SmallVector<Value> codes;
    for (int64_t i = 0, e = op.getCount(); i < e; ++i) {
      Value field = shifted;
      if (i > 0) {
        Value offset = arith::ConstantIntOp::create(rewriter, loc, i32, i * bits);
        field = arith::ShRUIOp::create(rewriter, loc, shifted, offset);
      }
      codes.push_back(arith::AndIOp::create(rewriter, loc, field, mask));
    }
    rewriter.replaceOp(op, packValues(rewriter, loc, op.getType(), codes));
    return success();
  }
};

/// (code - zero) * scale in f32 (exact: codes below 256, f16 scales and
/// zero points), then rounded to the result type.
struct DequantizeCodesInF32 : OpRewritePattern<DequantizeCodesOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(DequantizeCodesOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Type f32 = rewriter.getF32Type();
    Type wide = withShapeOf(op.getType(), f32);
    auto toF32 = [&](Value scalar) -> Value {
      if (scalar.getType() != f32)
        scalar = arith::ExtFOp::create(rewriter, loc, f32, scalar);
      return broadcastTo(rewriter, loc, wide, scalar);
    };
    Value codes = arith::UIToFPOp::create(rewriter, loc, wide, op.getCodes());
    Value zero = toF32(op.getZero());
    Value scale = toF32(op.getScale());
    Value centred = arith::SubFOp::create(rewriter, loc, codes, zero);
    Value result = arith::MulFOp::create(rewriter, loc, centred, scale);
    if (result.getType() != op.getType())
      result = arith::TruncFOp::create(rewriter, loc, op.getType(), result);
    rewriter.replaceOp(op, result);
    return success();
  }
};

/// Two codes to an f16 pair in f16 arithmetic: the codes go under the
/// exponent of 1024 (0x6400) in the two halves of a word, so the pair reads
/// as 1024 + code without a conversion; minus 1024 + zero (exact for an
/// integral zero point below 1024) and times the scale, rounded once. The
/// tensor-core kernels' dequantisation: two instructions per two weights.
struct DequantizeCodePairInF16 : OpRewritePattern<DequantizeCodesOp> {
  DequantizeCodePairInF16(MLIRContext *context)
      : OpRewritePattern<DequantizeCodesOp>(context, /*benefit=*/2) {}

  LogicalResult matchAndRewrite(DequantizeCodesOp op,
                                PatternRewriter &rewriter) const override {
    auto type = dyn_cast<VectorType>(op.getType());
    Type f16 = rewriter.getF16Type();
    if (!type || type.getNumElements() != 2 || type.getElementType() != f16 ||
        !op.getIntegralZero() || op.getScale().getType() != f16 ||
        op.getZero().getType() != f16)
      return rewriter.notifyMatchFailure(op, "not an f16 pair with an integral f16 zero point");
    Location loc = op.getLoc();
    Type i32 = rewriter.getI32Type();
    SmallVector<Value> codes = unpackValues(rewriter, loc, op.getCodes());
    Value sixteen = arith::ConstantIntOp::create(rewriter, loc, i32, 16);
    Value hi = arith::ShLIOp::create(rewriter, loc, codes[1], sixteen);
    Value both = arith::OrIOp::create(rewriter, loc, codes[0], hi);
    Value exponents = arith::ConstantIntOp::create(rewriter, loc, i32, 0x64006400);
    both = arith::OrIOp::create(rewriter, loc, both, exponents);
    Value word = vector::FromElementsOp::create(rewriter, loc, VectorType::get({1}, i32),
                                                ValueRange{both});
    Value pair = vector::BitCastOp::create(rewriter, loc, type, word);
    Value magic =
        arith::ConstantFloatOp::create(rewriter, loc, cast<FloatType>(f16),
                                       APFloat(APFloat::IEEEhalf(), "1024"));
    Value bias = arith::AddFOp::create(rewriter, loc, op.getZero(), magic);
    Value bias2 = vector::BroadcastOp::create(rewriter, loc, type, bias);
    Value scale2 = vector::BroadcastOp::create(rewriter, loc, type, op.getScale());
    Value centred = arith::SubFOp::create(rewriter, loc, pair, bias2);
    rewriter.replaceOpWithNewOp<arith::MulFOp>(op, centred, scale2);
    return success();
  }
};

/// One load per code from the row's level tables.
struct LookupLevelsLowering : OpRewritePattern<LookupLevelsOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(LookupLevelsOp op, PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Type element = getElementTypeOrSelf(op.getType());
    SmallVector<Value> levels;
    for (Value code : unpackValues(rewriter, loc, op.getCodes())) {
      Value codeIndex = arith::IndexCastUIOp::create(rewriter, loc, rewriter.getIndexType(), code);
      Value entry = arith::AddIOp::create(rewriter, loc, op.getStart(), codeIndex);
      SmallVector<Value> indices(op.getIndices());
      indices.push_back(entry);
      Value level = memref::LoadOp::create(rewriter, loc, op.getLevels(), indices);
      if (element != level.getType())
        level = arith::ExtFOp::create(rewriter, loc, element, level);
      levels.push_back(level);
    }
    rewriter.replaceOp(op, packValues(rewriter, loc, op.getType(), levels));
    return success();
  }
};

struct LowerDequantizationPass
    : mlir::moeq::impl::LowerDequantizationBase<LowerDequantizationPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateDequantizationLoweringPatterns(patterns);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
  }
};

} // namespace

void mlir::moeq::populateDequantizationLoweringPatterns(RewritePatternSet &patterns) {
  patterns.add<UnpackCodesLowering, DequantizeCodesInF32, DequantizeCodePairInF16,
               LookupLevelsLowering>(patterns.getContext());
}
