//===- ConvertMoEQToLinalg.cpp - decomposed moeq ops -> CPU code ----------===//
//
// The CPU path is the numerical oracle of every transformation, so it is a
// direct, obviously-correct rendering of each op's definition: linalg.generic
// for the dense algebra (matmuls, dequantisation, activation) and scf loops
// for the data-dependent parts (top-k, dispatch, combine), on memrefs.
//
// A layer function `f(x: tensor<?xHxf32>) -> tensor<?xHxf32>` becomes
//   f(x: memref<?xHxf32>, <one memref per parameter tensor>, out: memref<?xHxf32>)
// where every parameter argument carries `moeq.param = #moeq.param<scope, key>`
// (packed weights contribute key.qweight, key.scales and, asymmetric,
// key.zeros) so that a runtime binds archive tensors by name, zero-copy.
//
//===----------------------------------------------------------------------===//
#include "moeq/Dialect/MoEQ/IR/MoEQ.h"
#include "moeq/Passes/Passes.h"
#include "moeq/Passes/LoopBound.h"
#include "moeq/Passes/TokenRouting.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/IRMapping.h"
#include "llvm/ADT/TypeSwitch.h"

#include <cmath>
#include <limits>

namespace mlir::moeq {
#define GEN_PASS_DEF_CONVERTMOEQTOLINALG
#include "moeq/Passes/Passes.h.inc"
} // namespace mlir::moeq

using namespace mlir;
using namespace mlir::moeq;

namespace {

/// The buffers of a packed weight: codes, scales and (asymmetric) zeros;
/// or codes and level tables.
struct PackedStorage {
  Value codes, scales, zeros, levels;
};

/// Emits the CPU code of one layer function.
class LayerLowering {
public:
  LayerLowering(func::FuncOp oldFunc, bool exposeTrace)
      : oldFunc(oldFunc), b(oldFunc), loc(oldFunc.getLoc()), exposeTrace(exposeTrace) {}

  LogicalResult run() {
    if (failed(checkSupported()))
      return failure();
    func::FuncOp newFunc = createSignature();
    b.setInsertionPointToStart(newFunc.addEntryBlock());
    bindArguments(newFunc);
    for (Operation &op : oldFunc.getBody().front()) {
      if (isa<ParamOp>(op))
        continue;
      if (failed(lower(&op, newFunc)))
        return failure();
    }
    newFunc->setAttr("llvm.emit_c_interface", b.getUnitAttr());
    oldFunc.erase();
    return success();
  }

private:
  //===--------------------------------------------------------------------===//
  // Signature
  //===--------------------------------------------------------------------===//

  LogicalResult checkSupported() {
    if (!oldFunc.getBody().hasOneBlock())
      return oldFunc.emitError() << "CPU lowering expects a single-block layer function";
    for (Type t : llvm::concat<const Type>(oldFunc.getArgumentTypes(),
                                           oldFunc.getResultTypes())) {
      auto tensor = dyn_cast<RankedTensorType>(t);
      if (!tensor || !tensor.getElementType().isF32())
        return oldFunc.emitError()
               << "CPU lowering expects f32 tensor arguments and results, got " << t;
    }
    return success();
  }

  static MemRefType memrefFor(Type tensorType) {
    auto tensor = cast<RankedTensorType>(tensorType);
    return MemRefType::get(tensor.getShape(), tensor.getElementType());
  }

  void addParamArg(Type type, ExternalParamAttr ref) {
    argTypes.push_back(type);
    argAttrs.push_back(b.getDictionaryAttr(b.getNamedAttr(kParamArgAttrName, ref)));
  }

  func::FuncOp createSignature() {
    for (Type t : oldFunc.getArgumentTypes()) {
      argTypes.push_back(memrefFor(t));
      argAttrs.push_back(b.getDictionaryAttr({}));
    }
    oldFunc.walk([&](ParamOp param) {
      params.push_back(param);
      if (auto packed = dyn_cast<PackedWeightType>(param.getType())) {
        for (StringRef suffix : packed.getScheme().getStorageSuffixes()) {
          Type element = suffix == ".qweight" ? Type(b.getI32Type()) : Type(b.getF16Type());
          addParamArg(MemRefType::get({packed.getOutputDim(),
                                       packed.getStorageRowLength(suffix)},
                                      element),
                      param.getRef().withKeySuffix(suffix));
        }
      } else {
        addParamArg(memrefFor(param.getType()), param.getRef());
      }
    });
    for (Type t : oldFunc.getResultTypes()) {
      argTypes.push_back(memrefFor(t));
      argAttrs.push_back(b.getDictionaryAttr({b.getNamedAttr(kOutputArgAttrName, b.getUnitAttr())}));
    }
    if (exposeTrace)
      for (auto [value, name] : collectTrace()) {
        traced.push_back(value);
        argTypes.push_back(memrefFor(value.getType()));
        argAttrs.push_back(
            b.getDictionaryAttr({b.getNamedAttr(kTraceArgAttrName, b.getStringAttr(name))}));
      }
    b.setInsertionPoint(oldFunc);
    auto newFunc = func::FuncOp::create(b, oldFunc.getLoc(), oldFunc.getSymName(),
                                        b.getFunctionType(argTypes, {}));
    newFunc.setAllArgAttrs(argAttrs);
    for (NamedAttribute attr : oldFunc->getDiscardableAttrs())
      newFunc->setAttr(attr.getName(), attr.getValue());
    return newFunc;
  }

  /// The routing decisions and expert inputs that calibration statistics
  /// need, found from the combine back through the decomposition.
  SmallVector<std::pair<Value, StringRef>> collectTrace() {
    SmallVector<std::pair<Value, StringRef>> trace;
    oldFunc.walk([&](CombineOp combine) {
      auto router = combine.getWeights().getDefiningOp<RouterOp>();
      auto down = combine.getExpertOut().getDefiningOp<GroupedMatmulOp>();
      if (!router || !down)
        return;
      trace.push_back({router.getIndices(), "routing_indices"});
      trace.push_back({router.getWeights(), "routing_weights"});
      trace.push_back({combine.getPositions(), "positions"});
      trace.push_back({down.getOffsets(), "offsets"});
      trace.push_back({down.getInput(), "expert_activations"});
      if (auto shared = combine.getShared() ? combine.getShared().getDefiningOp<LinearOp>()
                                            : LinearOp())
        trace.push_back({shared.getInput(), "shared_activations"});
      if (combine.getSharedGate())
        trace.push_back({combine.getSharedGate(), "shared_gate_logits"});
    });
    return trace;
  }

  void bindArguments(func::FuncOp newFunc) {
    unsigned next = 0;
    for (BlockArgument arg : oldFunc.getArguments())
      values[arg] = newFunc.getArgument(next++);
    for (ParamOp param : params) {
      if (auto packed = dyn_cast<PackedWeightType>(param.getType())) {
        PackedStorage storage;
        for (StringRef suffix : packed.getScheme().getStorageSuffixes()) {
          Value arg = newFunc.getArgument(next++);
          (suffix == ".qweight" ? storage.codes
           : suffix == ".scales" ? storage.scales
           : suffix == ".zeros"  ? storage.zeros
                                 : storage.levels) = arg;
        }
        packedValues[param.getResult()] = storage;
      } else {
        values[param.getResult()] = newFunc.getArgument(next++);
      }
    }
    for (unsigned i = 0; i < oldFunc.getNumResults(); ++i)
      outputs.push_back(newFunc.getArgument(next++));
    for (Value value : traced)
      traceOutputs.push_back({value, newFunc.getArgument(next++)});
  }

  //===--------------------------------------------------------------------===//
  // Helpers
  //===--------------------------------------------------------------------===//

  Value idx(int64_t v) { return arith::ConstantIndexOp::create(b, loc, v); }
  Value f32(double v) {
    return arith::ConstantFloatOp::create(b, loc, b.getF32Type(), APFloat(float(v)));
  }
  Value i32(int64_t v) { return arith::ConstantIntOp::create(b, loc, b.getI32Type(), v); }
  Value toF32(Value v) {
    if (v.getType().isF32())
      return v;
    return arith::ExtFOp::create(b, loc, b.getF32Type(), v);
  }
  Value toIndex(Value v) {
    return arith::IndexCastOp::create(b, loc, b.getIndexType(), v);
  }
  Value dim(Value memref, int64_t d) { return memref::DimOp::create(b, loc, memref, d); }

  /// An f32/i32 buffer of `shape` with dynamic sizes from `dynSizes`, freed
  /// at the end of the function.
  Value alloc(ArrayRef<int64_t> shape, Type element, ValueRange dynSizes = {}) {
    Value buffer = memref::AllocOp::create(b, loc, MemRefType::get(shape, element), dynSizes);
    allocations.push_back(buffer);
    return buffer;
  }
  void fill(Value buffer, Value value) {
    linalg::FillOp::create(b, loc, ValueRange{value}, ValueRange{buffer});
  }

  /// scf.for with the body built by `body(iv)`.
  void forLoop(LoopBound lb, LoopBound ub, function_ref<void(Value)> body) {
    Value lower = lb.materialize(b, loc);
    Value upper = ub.materialize(b, loc);
    auto loop = scf::ForOp::create(b, loc, lower, upper, idx(1));
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(loop.getBody());
    body(loop.getInductionVar());
  }
  /// scf.for carrying one value.
  Value forLoop(LoopBound lb, LoopBound ub, Value init,
                function_ref<Value(Value, Value)> body) {
    Value lower = lb.materialize(b, loc);
    Value upper = ub.materialize(b, loc);
    auto loop = scf::ForOp::create(b, loc, lower, upper, idx(1), ValueRange{init});
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(loop.getBody());
    Value next = body(loop.getInductionVar(), loop.getRegionIterArg(0));
    scf::YieldOp::create(b, loc, next);
    return loop.getResult(0);
  }

  Value lookup(Value v) { return values.lookup(v); }

  //===--------------------------------------------------------------------===//
  // Ops
  //===--------------------------------------------------------------------===//

  LogicalResult lower(Operation *op, func::FuncOp newFunc) {
    return llvm::TypeSwitch<Operation *, LogicalResult>(op)
        .Case([&](RouterOp router) { return lowerRouter(router); })
        .Case([&](DispatchOp dispatch) { return lowerDispatch(dispatch); })
        .Case([&](GroupedMatmulOp mm) { return lowerGroupedMatmul(mm); })
        .Case([&](LinearOp linear) { return lowerLinear(linear); })
        .Case([&](GatedActivationOp act) { return lowerActivation(act); })
        .Case([&](CombineOp combine) { return lowerCombine(combine); })
        .Case([&](DequantizeOp dq) { return lowerDequantize(dq); })
        .Case([&](DeltaWeightOp delta) { return lowerDeltaWeight(delta); })
        .Case([&](DeltaSumOp sum) { return lowerDeltaSum(sum); })
        .Case([&](func::ReturnOp ret) { return lowerReturn(ret); })
        .Case([&](MoEOp moe) {
          return moe.emitError() << "run moeq-decompose-moe before the CPU lowering";
        })
        .Default([&](Operation *other) {
          return other->emitError() << "the CPU lowering does not support this op";
        });
  }

  Value load(Value memref, ValueRange indices) {
    return memref::LoadOp::create(b, loc, memref, indices);
  }
  void store(Value value, Value memref, ValueRange indices) {
    memref::StoreOp::create(b, loc, value, memref, indices);
  }
  Value negInf() { return f32(-std::numeric_limits<double>::infinity()); }

  /// scores = scoring(x . w^T), then the routing of every token
  /// (emitTokenRouting, shared with the GPU routing kernel).
  LogicalResult lowerRouter(RouterOp router) {
    Value x = lookup(router.getInput()), w = lookup(router.getWeight());
    Value bias = router.getScoreBias() ? lookup(router.getScoreBias()) : Value();
    Value logitBias = router.getLogitBias() ? lookup(router.getLogitBias()) : Value();
    if (!x || !w || (router.getScoreBias() && !bias) || (router.getLogitBias() && !logitBias))
      return router.emitError() << "router operands must be arguments or parameters";
    RoutingSpec spec = RoutingSpec::get(router);
    Value tokens = dim(x, 0);
    Value logits = alloc({ShapedType::kDynamic, spec.numExperts}, b.getF32Type(), tokens);
    fill(logits, f32(0));
    matmulTransposed(x, w, logits);

    TokenRoutingBuffers buffers;
    buffers.logits = logits;
    buffers.scoreBias = bias;
    buffers.logitBias = logitBias;
    buffers.indices = alloc({ShapedType::kDynamic, spec.topK}, b.getI32Type(), tokens);
    buffers.weights = alloc({ShapedType::kDynamic, spec.topK}, b.getF32Type(), tokens);
    buffers.scores = alloc({spec.numExperts}, b.getF32Type());
    buffers.keys = alloc({spec.numExperts}, b.getF32Type());
    buffers.groupScores = alloc({spec.nGroup}, b.getF32Type());
    values[router.getIndices()] = buffers.indices;
    values[router.getWeights()] = buffers.weights;
    forLoop(0, tokens, [&](Value t) {
      buffers.logitsRow = buffers.outputRow = t;
      emitTokenRouting(b, loc, spec, buffers);
    });
    return success();
  }

  /// Counting sort of the (token, slot) pairs by expert, stable in token order.
  LogicalResult lowerDispatch(DispatchOp dispatch) {
    Value x = lookup(dispatch.getInput()), indices = lookup(dispatch.getIndices());
    Value scales = dispatch.getScales() ? lookup(dispatch.getScales()) : Value();
    int64_t numExperts = dispatch.getNumExperts();
    int64_t topK = dispatch.getIndices().getType().getDimSize(1);
    int64_t hidden = dispatch.getInput().getType().getDimSize(1);
    Value tokens = dim(x, 0);
    Value rows = arith::MulIOp::create(b, loc, tokens, idx(topK));
    Value offsets = alloc({numExperts + 1}, b.getI32Type());
    fill(offsets, i32(0));
    forLoop(0, tokens, [&](Value t) {
      forLoop(0, topK, [&](Value j) {
        Value e = toIndex(memref::LoadOp::create(b, loc, indices, ValueRange{t, j}));
        Value slot = arith::AddIOp::create(b, loc, e, idx(1));
        Value count = memref::LoadOp::create(b, loc, offsets, slot);
        memref::StoreOp::create(b, loc, arith::AddIOp::create(b, loc, count, i32(1)),
                                offsets, slot);
      });
    });
    forLoop(1, numExperts + 1, [&](Value e) {
      Value prev = memref::LoadOp::create(
          b, loc, offsets, ValueRange{arith::SubIOp::create(b, loc, e, idx(1))});
      Value cur = memref::LoadOp::create(b, loc, offsets, e);
      memref::StoreOp::create(b, loc, arith::AddIOp::create(b, loc, prev, cur), offsets, e);
    });
    Value cursor = alloc({numExperts}, b.getI32Type());
    forLoop(0, numExperts, [&](Value e) {
      memref::StoreOp::create(b, loc, memref::LoadOp::create(b, loc, offsets, e), cursor, e);
    });
    Value sorted = alloc({ShapedType::kDynamic, hidden}, b.getF32Type(), rows);
    Value positions = alloc({ShapedType::kDynamic}, b.getI32Type(), rows);
    forLoop(0, tokens, [&](Value t) {
      forLoop(0, topK, [&](Value j) {
        Value e = toIndex(memref::LoadOp::create(b, loc, indices, ValueRange{t, j}));
        Value r32 = memref::LoadOp::create(b, loc, cursor, e);
        memref::StoreOp::create(b, loc, arith::AddIOp::create(b, loc, r32, i32(1)), cursor, e);
        Value r = toIndex(r32);
        Value slot = arith::AddIOp::create(b, loc,
                                           arith::MulIOp::create(b, loc, t, idx(topK)), j);
        memref::StoreOp::create(b, loc,
                                arith::IndexCastOp::create(b, loc, b.getI32Type(), slot),
                                positions, r);
        // (Routing weights on the inputs: each copy scaled by its weight.)
        Value scale = scales ? memref::LoadOp::create(b, loc, scales, ValueRange{t, j})
                             : Value();
        forLoop(0, hidden, [&](Value h) {
          Value v = memref::LoadOp::create(b, loc, x, ValueRange{t, h});
          if (scale)
            v = arith::MulFOp::create(b, loc, v, scale);
          memref::StoreOp::create(b, loc, v, sorted, ValueRange{r, h});
        });
      });
    });
    values[dispatch.getSorted()] = sorted;
    values[dispatch.getPositions()] = positions;
    values[dispatch.getOffsets()] = offsets;
    return success();
  }

  /// out[m, n] += x[m, k] * w[n, k] (w widened to f32 in the body).
  void matmulTransposed(Value x, Value w, Value out) {
    // out[m, n] += sum_k x[m, k] * w[n, k] as loops whose k-sum is carried
    // in a register (an scf.for iter_arg) with reassociation allowed. As a
    // linalg.generic on memrefs the accumulator would be a memory location
    // that LLVM cannot promote (x, w and out may alias), and without
    // `reassoc` it may not vectorize the sum: together 10x slower.
    auto fastmath = arith::FastMathFlagsAttr::get(b.getContext(), arith::FastMathFlags::reassoc);
    // (The weight's K: a `leading_inputs` linear's x is wider.)
    Value zero = idx(0), rows = dim(x, 0), cols = dim(w, 0), depth = dim(w, 1);
    forLoop(zero, rows, [&](Value m) {
      forLoop(zero, cols, [&](Value n) {
        Value init = memref::LoadOp::create(b, loc, out, ValueRange{m, n});
        Value sum = forLoop(zero, depth, init, [&](Value k, Value acc) {
          Value xv = memref::LoadOp::create(b, loc, x, ValueRange{m, k});
          Value wv = toF32(memref::LoadOp::create(b, loc, w, ValueRange{n, k}));
          Value prod = arith::MulFOp::create(b, loc, xv, wv, fastmath);
          return arith::AddFOp::create(b, loc, acc, prod, fastmath).getResult();
        });
        memref::StoreOp::create(b, loc, sum, out, ValueRange{m, n});
      });
    });
  }

  /// w[n, k] = (code(n, k) - zero(n, g)) * scale(n, g), into an f32 buffer.
  Value dequantize(PackedWeightType type, const PackedStorage &storage);

  /// The rows of `x` as a weight-activation scheme's kernel sees them:
  /// quantized per token, symmetric, with a dynamic scale max|x| / qmax
  /// (quant::fakeQuantizeActivations); `x` itself when `weight` keeps
  /// activations in floating point.
  Value quantizeActivations(Value x, Value weight) {
    auto packed = dyn_cast<PackedWeightType>(weight.getType());
    if (!packed || !packed.getScheme().quantizesActivations())
      return x;
    unsigned bits = packed.getScheme().getActBits();
    float qmax = float((1u << (bits - 1)) - 1);
    Value rows = dim(x, 0), cols = dim(x, 1), zero = idx(0);
    auto type = cast<MemRefType>(x.getType());
    Value out = alloc({ShapedType::kDynamic, type.getDimSize(1)}, b.getF32Type(), rows);
    forLoop(zero, rows, [&](Value m) {
      Value amax = forLoop(zero, cols, f32(0), [&](Value k, Value acc) {
        Value v = memref::LoadOp::create(b, loc, x, ValueRange{m, k});
        return arith::MaximumFOp::create(b, loc, acc, math::AbsFOp::create(b, loc, v))
            .getResult();
      });
      // An all-zero row keeps scale 1 (and stays zero).
      Value isZero = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OEQ, amax, f32(0));
      Value one = f32(1);
      Value rowScale = arith::DivFOp::create(b, loc, amax, f32(qmax));
      Value scale = arith::SelectOp::create(b, loc, isZero, one, rowScale);
      forLoop(zero, cols, [&](Value k) {
        Value v = memref::LoadOp::create(b, loc, x, ValueRange{m, k});
        Value q = math::RoundEvenOp::create(b, loc, arith::DivFOp::create(b, loc, v, scale));
        q = arith::MaximumFOp::create(b, loc, q, f32(-qmax));
        q = arith::MinimumFOp::create(b, loc, q, f32(qmax));
        memref::StoreOp::create(b, loc, arith::MulFOp::create(b, loc, q, scale), out,
                                ValueRange{m, k});
      });
    });
    return out;
  }

  LogicalResult lowerGroupedMatmul(GroupedMatmulOp mm) {
    Value x = lookup(mm.getInput()), offsets = lookup(mm.getOffsets());
    int64_t outDim = mm.getResult().getType().getDimSize(1);
    int64_t inDim = mm.getInput().getType().getDimSize(1);
    Value rows = dim(x, 0);
    Value out = alloc({ShapedType::kDynamic, outDim}, b.getF32Type(), rows);
    fill(out, f32(0));
    for (auto [g, weight] : llvm::enumerate(mm.getWeights())) {
      FailureOr<Value> w = weightMatrix(mm, weight);
      if (failed(w))
        return failure();
      Value begin = toIndex(memref::LoadOp::create(b, loc, offsets, idx(g)));
      Value end = toIndex(memref::LoadOp::create(b, loc, offsets, idx(g + 1)));
      Value count = arith::SubIOp::create(b, loc, end, begin);
      SmallVector<OpFoldResult> one{b.getIndexAttr(1), b.getIndexAttr(1)};
      Value xs = memref::SubViewOp::create(
          b, loc, x, ArrayRef<OpFoldResult>{begin, b.getIndexAttr(0)},
          ArrayRef<OpFoldResult>{count, b.getIndexAttr(inDim)}, one);
      Value ys = memref::SubViewOp::create(
          b, loc, out, ArrayRef<OpFoldResult>{begin, b.getIndexAttr(0)},
          ArrayRef<OpFoldResult>{count, b.getIndexAttr(outDim)}, one);
      matmulTransposed(quantizeActivations(xs, weight), *w, ys);
      if (!mm.getBiases().empty()) {
        // The group's bias on each of its rows (gpt-oss).
        Value bias = lookup(mm.getBiases()[g]);
        if (!bias)
          return mm.emitError() << "group bias is not a parameter";
        forLoop(begin, end, [&](Value r) {
          forLoop(0, outDim, [&](Value n) {
            Value y = load(out, {r, n});
            Value groupBias = toF32(load(bias, {n}));
            Value v = arith::AddFOp::create(b, loc, y, groupBias);
            store(v, out, {r, n});
          });
        });
      }
    }
    values[mm.getResult()] = out;
    return success();
  }

  /// The f32 (or narrower float) matrix of a weight operand: the parameter
  /// itself, or its dequantization.
  FailureOr<Value> weightMatrix(Operation *user, Value weight) {
    if (auto packed = dyn_cast<PackedWeightType>(weight.getType())) {
      auto it = packedValues.find(weight);
      if (it == packedValues.end())
        return user->emitError() << "packed weight is not a parameter";
      return dequantize(packed, it->second);
    }
    if (Value w = lookup(weight))
      return w;
    return user->emitError() << "weight is not a parameter";
  }

  LogicalResult lowerLinear(LinearOp linear) {
    Value x = lookup(linear.getInput());
    FailureOr<Value> w = weightMatrix(linear, linear.getWeight());
    if (!x || failed(w))
      return failure();
    int64_t outDim = linear.getType().getDimSize(1);
    Value out = alloc({ShapedType::kDynamic, outDim}, b.getF32Type(), dim(x, 0));
    fill(out, f32(0));
    matmulTransposed(quantizeActivations(x, linear.getWeight()), *w, out);
    values[linear.getResult()] = out;
    return success();
  }

  LogicalResult lowerActivation(GatedActivationOp act) {
    Value gate = lookup(act.getGate()), up = lookup(act.getUp());
    int64_t cols = act.getType().getDimSize(1);
    Value out = alloc({ShapedType::kDynamic, cols}, b.getF32Type(), dim(gate, 0));
    MLIRContext *ctx = b.getContext();
    auto id = AffineMap::getMultiDimIdentityMap(2, ctx);
    Activation kind = act.getActivation();
    double alpha = act.getSwigluAlpha().convertToDouble();
    double limit = act.getSwigluLimit().convertToDouble();
    linalg::GenericOp::create(
        b, loc, ValueRange{gate, up}, ValueRange{out}, SmallVector<AffineMap>(3, id),
        SmallVector<utils::IteratorType>(2, utils::IteratorType::parallel),
        [&](OpBuilder &nb, Location nloc, ValueRange args) {
          Value g = args[0];
          auto cst = [&](double v) {
            return arith::ConstantFloatOp::create(nb, nloc, nb.getF32Type(), APFloat(float(v)));
          };
          Value activated, up = args[1];
          if (kind == Activation::ClampedSwiGLU) {
            // gpt-oss: g = min(gate, L), u = clamp(up, -L, L);
            // g * sigmoid(alpha g) * (u + 1).
            g = arith::MinimumFOp::create(nb, nloc, g, cst(limit));
            Value scaled = arith::MulFOp::create(nb, nloc, g, cst(alpha));
            Value e = math::ExpOp::create(nb, nloc, arith::NegFOp::create(nb, nloc, scaled));
            Value denominator = arith::AddFOp::create(nb, nloc, cst(1), e);
            activated = arith::DivFOp::create(nb, nloc, g, denominator);
            Value upperClamped = arith::MinimumFOp::create(nb, nloc, up, cst(limit));
            Value clamped = arith::MaximumFOp::create(nb, nloc, upperClamped, cst(-limit));
            up = arith::AddFOp::create(nb, nloc, clamped, cst(1));
          } else if (kind == Activation::SiLU) {
            // g * sigmoid(g)
            Value e = math::ExpOp::create(nb, nloc, arith::NegFOp::create(nb, nloc, g));
            Value denominator = arith::AddFOp::create(nb, nloc, cst(1), e);
            activated = arith::DivFOp::create(nb, nloc, g, denominator);
          } else {
            // Exact GeLU: 0.5 g (1 + erf(g / sqrt 2)).
            Value erf = math::ErfOp::create(
                nb, nloc, arith::MulFOp::create(nb, nloc, g, cst(M_SQRT1_2)));
            Value half = arith::MulFOp::create(nb, nloc, cst(0.5), g);
            Value onePlusErf = arith::AddFOp::create(nb, nloc, cst(1), erf);
            activated = arith::MulFOp::create(nb, nloc, half, onePlusErf);
          }
          linalg::YieldOp::create(nb, nloc,
                                  ValueRange{arith::MulFOp::create(nb, nloc, activated, up)});
        });
    values[act.getResult()] = out;
    return success();
  }

  LogicalResult lowerCombine(CombineOp combine) {
    Value y = lookup(combine.getExpertOut()), positions = lookup(combine.getPositions());
    Value weights = lookup(combine.getWeights());
    int64_t topK = combine.getWeights().getType().getDimSize(1);
    int64_t hidden = combine.getType().getDimSize(1);
    Value tokens = dim(weights, 0);
    Value out = alloc({ShapedType::kDynamic, hidden}, b.getF32Type(), tokens);
    fill(out, f32(0));
    forLoop(0, dim(y, 0), [&](Value r) {
      Value p = toIndex(memref::LoadOp::create(b, loc, positions, r));
      Value t = arith::DivUIOp::create(b, loc, p, idx(topK));
      Value j = arith::RemUIOp::create(b, loc, p, idx(topK));
      Value w = combine.getUnweighted()
                    ? Value()
                    : memref::LoadOp::create(b, loc, weights, ValueRange{t, j}).getResult();
      forLoop(0, hidden, [&](Value h) {
        Value acc = memref::LoadOp::create(b, loc, out, ValueRange{t, h});
        Value v = memref::LoadOp::create(b, loc, y, ValueRange{r, h});
        if (w)
          v = arith::MulFOp::create(b, loc, w, v);
        Value sum = arith::AddFOp::create(b, loc, acc, v);
        memref::StoreOp::create(b, loc, sum, out, ValueRange{t, h});
      });
    });
    if (Value shared = combine.getShared() ? lookup(combine.getShared()) : Value()) {
      Value gate = combine.getSharedGate() ? lookup(combine.getSharedGate()) : Value();
      forLoop(0, tokens, [&](Value t) {
        Value scale = f32(1);
        if (gate) {
          // sigmoid(gate logit of token t)
          Value expNeg = math::ExpOp::create(
              b, loc, arith::NegFOp::create(b, loc, load(gate, {t, idx(0)})));
          Value one = f32(1);
          Value denominator = arith::AddFOp::create(b, loc, f32(1), expNeg);
          scale = arith::DivFOp::create(b, loc, one, denominator);
        }
        forLoop(0, hidden, [&](Value h) {
          Value v = arith::MulFOp::create(b, loc, scale, load(shared, {t, h}));
          Value routed = load(out, {t, h});
          store(arith::AddFOp::create(b, loc, routed, v), out, {t, h});
        });
      });
    }
    values[combine.getResult()] = out;
    return success();
  }

  /// pad(base) + a . b into an f32 buffer (D^2-MoE's expert weight).
  LogicalResult lowerDeltaWeight(DeltaWeightOp delta) {
    FailureOr<Value> base = weightMatrix(delta, delta.getBase());
    FailureOr<Value> a = weightMatrix(delta, delta.getA());
    FailureOr<Value> bFactor = weightMatrix(delta, delta.getB());
    if (failed(base) || failed(a) || failed(bFactor))
      return failure();
    ArrayRef<int64_t> shape = delta.getType().getShape();
    ArrayRef<int64_t> baseShape = getWeightShape(delta.getBase().getType());
    int64_t rank = getWeightShape(delta.getA().getType())[1];
    Value out = alloc(shape, b.getF32Type());
    fill(out, f32(0));
    Value zero = idx(0);
    forLoop(zero, idx(baseShape[0]), [&](Value r) {
      forLoop(zero, idx(baseShape[1]), [&](Value c) {
        store(toF32(load(*base, ValueRange{r, c})), out, ValueRange{r, c});
      });
    });
    auto fastmath = arith::FastMathFlagsAttr::get(b.getContext(), arith::FastMathFlags::reassoc);
    forLoop(zero, idx(shape[0]), [&](Value r) {
      forLoop(zero, idx(shape[1]), [&](Value c) {
        Value init = load(out, ValueRange{r, c});
        Value sum = forLoop(zero, idx(rank), init, [&](Value k, Value acc) {
          Value left = toF32(load(*a, ValueRange{r, k}));
          Value right = toF32(load(*bFactor, ValueRange{k, c}));
          Value prod = arith::MulFOp::create(b, loc, left, right, fastmath);
          return arith::AddFOp::create(b, loc, acc, prod, fastmath).getResult();
        });
        store(sum, out, ValueRange{r, c});
      });
    });
    values[delta.getResult()] = out;
    return success();
  }

  /// lowrank + base in its leading columns.
  LogicalResult lowerDeltaSum(DeltaSumOp sum) {
    Value lowrank = lookup(sum.getLowrank()), base = lookup(sum.getBase());
    if (!lowrank || !base)
      return sum.emitError() << "operands were not lowered";
    int64_t cols = sum.getType().getDimSize(1);
    Value rows = dim(lowrank, 0), zero = idx(0);
    Value out = alloc({ShapedType::kDynamic, cols}, b.getF32Type(), rows);
    memref::CopyOp::create(b, loc, lowrank, out);
    forLoop(zero, rows, [&](Value m) {
      forLoop(zero, idx(sum.getBase().getType().getDimSize(1)), [&](Value n) {
        Value lowrankValue = load(out, ValueRange{m, n});
        Value baseValue = load(base, ValueRange{m, n});
        Value total = arith::AddFOp::create(b, loc, lowrankValue, baseValue);
        store(total, out, ValueRange{m, n});
      });
    });
    values[sum.getResult()] = out;
    return success();
  }

  LogicalResult lowerDequantize(DequantizeOp dq) {
    auto it = packedValues.find(dq.getInput());
    if (it == packedValues.end())
      return dq.emitError() << "can only dequantize a packed parameter";
    values[dq.getResult()] = dequantize(dq.getInput().getType(), it->second);
    return success();
  }

  LogicalResult lowerReturn(func::ReturnOp ret) {
    for (auto [value, out] : llvm::zip(ret.getOperands(), outputs)) {
      Value result = lookup(value);
      if (!result)
        return ret.emitError() << "returned value was not lowered";
      memref::CopyOp::create(b, loc, result, out);
    }
    for (auto [value, out] : traceOutputs) {
      Value buffer = lookup(value);
      if (!buffer)
        return ret.emitError() << "traced value was not lowered";
      memref::CopyOp::create(b, loc, buffer, out);
    }
    for (Value buffer : allocations)
      memref::DeallocOp::create(b, loc, buffer);
    func::ReturnOp::create(b, loc);
    return success();
  }

  func::FuncOp oldFunc;
  OpBuilder b;
  Location loc;
  SmallVector<Type> argTypes;
  SmallVector<DictionaryAttr> argAttrs;
  SmallVector<ParamOp> params;
  SmallVector<Value> outputs, allocations, traced;
  SmallVector<std::pair<Value, Value>> traceOutputs;
  bool exposeTrace;
  DenseMap<Value, Value> values;
  DenseMap<Value, PackedStorage> packedValues;
};

/// A module-level constant table [groups x 2] of (first bit, width) of each
/// column group of a group-bits weight, and its value in the current function.
static Value groupBitTable(OpBuilder &b, Location loc, PackedWeightType type) {
  auto module = b.getInsertionBlock()->getParentOp()->getParentOfType<ModuleOp>();
  int64_t groups = type.getNumGroups(), width = type.getScheme().getGroupSize();
  SmallVector<int32_t> table;
  int64_t offset = 0;
  std::string name = "__moeq_group_bits";
  for (int64_t g = 0; g < groups; ++g) {
    int64_t bits = type.getBitsOfGroup(g);
    table.append({int32_t(offset), int32_t(bits)});
    offset += bits * width;
    name += "_" + std::to_string(bits);
  }
  name += "_g" + std::to_string(width);
  auto memrefType = MemRefType::get({groups, 2}, b.getI32Type());
  if (!SymbolTable::lookupSymbolIn(module, name)) {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(module.getBody());
    auto tensorType = RankedTensorType::get({groups, 2}, b.getI32Type());
    memref::GlobalOp::create(b, loc, name, b.getStringAttr("private"), memrefType,
                             DenseElementsAttr::get(tensorType, ArrayRef<int32_t>(table)),
                             /*constant=*/true, /*alignment=*/nullptr);
  }
  return memref::GetGlobalOp::create(b, loc, memrefType, name);
}

Value LayerLowering::dequantize(PackedWeightType type, const PackedStorage &storage) {
  int64_t n = type.getOutputDim(), k = type.getInputDim();
  SchemeAttr scheme = type.getScheme();
  unsigned bits = scheme.getWeightBits();
  int64_t groupWidth = scheme.getEffectiveGroupSize(k);
  Value table = type.hasGroupBits() ? groupBitTable(b, loc, type) : Value();
  Value out = alloc({n, k}, b.getF32Type());
  MLIRContext *ctx = b.getContext();
  auto id = AffineMap::getMultiDimIdentityMap(2, ctx);
  linalg::GenericOp::create(
      b, loc, ValueRange{}, ValueRange{out}, ArrayRef<AffineMap>{id},
      SmallVector<utils::IteratorType>(2, utils::IteratorType::parallel),
      [&](OpBuilder &nb, Location nloc, ValueRange) {
        auto cidx = [&](int64_t v) { return arith::ConstantIndexOp::create(nb, nloc, v); };
        Value row = linalg::IndexOp::create(nb, nloc, 0);
        Value col = linalg::IndexOp::create(nb, nloc, 1);
        Value group = arith::DivUIOp::create(nb, nloc, col, cidx(groupWidth));
        // The code's first bit and width: fixed, or from the group table.
        Value bit, width;
        if (table) {
          auto entry = [&](int64_t field) {
            Value v = memref::LoadOp::create(nb, nloc, table, ValueRange{group, cidx(field)});
            return arith::IndexCastUIOp::create(nb, nloc, nb.getIndexType(), v).getResult();
          };
          width = entry(1);
          Value groupStart = arith::MulIOp::create(nb, nloc, group, cidx(groupWidth));
          Value inGroup = arith::SubIOp::create(nb, nloc, col, groupStart);
          Value firstBit = entry(0);
          Value offset = arith::MulIOp::create(nb, nloc, inGroup, width);
          bit = arith::AddIOp::create(nb, nloc, firstBit, offset);
        } else {
          width = cidx(bits);
          bit = arith::MulIOp::create(nb, nloc, col, width);
        }
        // The packed format's reading and dequantisation, lowered by
        // moeq-lower-dequantization like the kernels' (widths up to 8 bits
        // from the group table).
        Type f32 = nb.getF32Type();
        Value code = UnpackCodesOp::create(nb, nloc, nb.getI32Type(), storage.codes,
                                           ValueRange{row}, bit, table ? width : Value(),
                                           table ? 8 : bits, /*count=*/1, /*aligned=*/false,
                                           /*padded=*/false);
        if (storage.levels) {
          // Level table: entry group * 2^bits + code of the row's tables.
          Value tableStart = arith::MulIOp::create(nb, nloc, group, cidx(int64_t(1) << bits));
          Value level = LookupLevelsOp::create(nb, nloc, f32, code, storage.levels,
                                               ValueRange{row}, tableStart);
          linalg::YieldOp::create(nb, nloc, ValueRange{level});
          return;
        }
        Value scale = memref::LoadOp::create(nb, nloc, storage.scales, ValueRange{row, group});
        Value zero =
            storage.zeros
                ? Value(memref::LoadOp::create(nb, nloc, storage.zeros, ValueRange{row, group}))
                : Value(arith::ConstantFloatOp::create(nb, nloc, cast<FloatType>(f32),
                                                       APFloat(float(1u << (bits - 1)))));
        Value w = DequantizeCodesOp::create(nb, nloc, f32, code, scale, zero,
                                            /*integral_zero=*/false);
        linalg::YieldOp::create(nb, nloc, ValueRange{w});
      });
  return out;
}

struct ConvertMoEQToLinalgPass
    : mlir::moeq::impl::ConvertMoEQToLinalgBase<ConvertMoEQToLinalgPass> {
  using Base::Base;
  void runOnOperation() override {
    SmallVector<func::FuncOp> layers;
    for (auto func : getOperation().getOps<func::FuncOp>()) {
      bool hasMoEQ = false;
      // (The packed-code ops it emits are moeq-lower-dequantization's.)
      func.walk([&](Operation *op) {
        hasMoEQ |= isa<MoEQDialect>(op->getDialect()) &&
                   !isa<UnpackCodesOp, DequantizeCodesOp, LookupLevelsOp>(op);
      });
      if (hasMoEQ)
        layers.push_back(func);
    }
    for (func::FuncOp func : layers)
      if (failed(LayerLowering(func, exposeTrace).run()))
        return signalPassFailure();
  }
};

} // namespace
