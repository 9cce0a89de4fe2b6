//===- RoutingKernels.cpp - the kernels around the expert GEMMs -----------===//
//
// Routing (router GEMM + scoring + top-k), the token sort into per-expert
// rows, the row gather, the gated activation, the weighted combine and the
// D^2-MoE base add, as gpu.func bodies. They are lowered to PTX with the
// expert GEMMs (same NVVM pipeline). Activations are f16 in global memory,
// arithmetic is f32; each builder's comment gives its ABI, grid and block.
// Transcendentals (exp, erf) are left as math ops: the launch-plan pass
// expands them into polynomials (populateMathPolynomialApproximationPatterns),
// so the PTX needs no libdevice and the emulator runs the same arithmetic.
//
//===----------------------------------------------------------------------===//
#include "KernelBuilders.h"

#include "moeq/Passes/LoopBound.h"
#include "moeq/Passes/TokenRouting.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

using namespace mlir;
using namespace mlir::moeq;

namespace {

/// Helpers shared by the kernel bodies below.
class KernelBody {
public:
  KernelBody(OpBuilder &b, gpu::GPUFuncOp func) : b(b), loc(func.getLoc()), func(func) {
    Block &entry = func.getBody().front();
    b.setInsertionPointToStart(&entry);
    args = entry.getArguments();
  }
  /// Closes the kernel with gpu.return.
  void finish(gpu::GPUFuncOp func) {
    b.setInsertionPointToEnd(&func.getBody().front());
    gpu::ReturnOp::create(b, loc);
  }

  Value idx(int64_t v) { return arith::ConstantIndexOp::create(b, loc, v); }
  Value f32(double v) {
    return arith::ConstantFloatOp::create(b, loc, b.getF32Type(), APFloat(float(v)));
  }
  Value toIndex(Value v) { return arith::IndexCastOp::create(b, loc, b.getIndexType(), v); }
  Value toF32(Value v) {
    return v.getType().isF32() ? v : arith::ExtFOp::create(b, loc, b.getF32Type(), v);
  }
  Value toF16(Value v) { return arith::TruncFOp::create(b, loc, b.getF16Type(), v); }
  Value load(Value memref, ValueRange indices) {
    return memref::LoadOp::create(b, loc, memref, indices);
  }
  void store(Value value, Value memref, ValueRange indices) {
    memref::StoreOp::create(b, loc, value, memref, indices);
  }
  Value add(Value x, Value y) {
    return isa<FloatType>(x.getType()) ? arith::AddFOp::create(b, loc, x, y).getResult()
                                       : arith::AddIOp::create(b, loc, x, y).getResult();
  }
  Value mul(Value x, Value y) {
    return isa<FloatType>(x.getType()) ? arith::MulFOp::create(b, loc, x, y).getResult()
                                       : arith::MulIOp::create(b, loc, x, y).getResult();
  }
  Value ult(Value x, Value y) {
    return arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, x, y);
  }
  Value eq(Value x, Value y) { return arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, x, y); }

  Value blockId() { return gpu::BlockIdOp::create(b, loc, gpu::Dimension::x); }
  Value threadId() { return gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x); }
  Value blockDim() { return gpu::BlockDimOp::create(b, loc, gpu::Dimension::x); }
  void barrier() { gpu::BarrierOp::create(b, loc); }

  /// A rows x cols (cols < 0: 1-D) global memref over pointer argument i.
  Value view(unsigned i, Value rowsI32, int64_t cols, Type element) {
    return viewGlobalPointer(b, loc, args[i], rowsI32, cols, element);
  }
  /// A `shape` view of dynamic shared memory from byte `offsetBytes` on
  /// (the kernel's shared memory is `totalBytes` long).
  Value shared(int64_t offsetBytes, ArrayRef<int64_t> shape, Type element, int64_t totalBytes) {
    auto workgroup = gpu::AddressSpaceAttr::get(b.getContext(), gpu::AddressSpace::Workgroup);
    Value raw = getDynamicSharedMemory(b, loc, func, totalBytes);
    auto type = MemRefType::get(shape, element, MemRefLayoutAttrInterface(), workgroup);
    return memref::ViewOp::create(b, loc, type, raw, idx(offsetBytes), ValueRange{});
  }

  /// if (cond) { body }
  void ifThen(Value cond, function_ref<void()> body) {
    auto op = scf::IfOp::create(b, loc, cond, /*withElseRegion=*/false);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&op.getThenRegion().front());
    body();
  }
  /// for (iv = lb; iv < ub; iv += step) { body(iv) }
  void forLoop(LoopBound lb, LoopBound ub, LoopBound step, function_ref<void(Value)> body) {
    Value lower = lb.materialize(b, loc);
    Value upper = ub.materialize(b, loc);
    Value stride = step.materialize(b, loc);
    auto loop = scf::ForOp::create(b, loc, lower, upper, stride);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(loop.getBody());
    body(loop.getInductionVar());
  }
  /// The same carrying one value.
  Value forLoop(LoopBound lb, LoopBound ub, LoopBound step, Value init,
                function_ref<Value(Value, Value)> body) {
    Value lower = lb.materialize(b, loc);
    Value upper = ub.materialize(b, loc);
    Value stride = step.materialize(b, loc);
    auto loop = scf::ForOp::create(b, loc, lower, upper, stride, ValueRange{init});
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(loop.getBody());
    Value next = body(loop.getInductionVar(), loop.getRegionIterArg(0));
    scf::YieldOp::create(b, loc, next);
    return loop.getResult(0);
  }
  /// for (c = threadIdx.x; c < cols; c += blockDim.x): the columns of a
  /// row, one thread each, coalesced.
  void forColumns(int64_t cols, function_ref<void(Value)> body) {
    Value first = threadId();
    Value stride = blockDim();
    forLoop(first, cols, stride, body);
  }

  /// Sum of `v` over the 32 lanes of the warp (every lane gets it).
  Value warpSum(Value v) {
    for (int32_t offset = 16; offset >= 1; offset /= 2) {
      auto shuffle = gpu::ShuffleOp::create(b, loc, v, offset, /*width=*/32, gpu::ShuffleMode::XOR);
      v = arith::AddFOp::create(b, loc, v, shuffle.getShuffleResult());
    }
    return v;
  }

  Value sigmoid(Value v) {
    Value expNeg = math::ExpOp::create(b, loc, arith::NegFOp::create(b, loc, v));
    Value one = f32(1);
    Value denominator = arith::AddFOp::create(b, loc, f32(1), expNeg);
    return arith::DivFOp::create(b, loc, one, denominator);
  }

  OpBuilder &b;
  Location loc;
  gpu::GPUFuncOp func;
  ValueRange args;
};

} // namespace

//===----------------------------------------------------------------------===//
// Routing
//===----------------------------------------------------------------------===//

int64_t mlir::moeq::getRouteKernelSharedBytes(const RoutingSpec &spec) {
  // logits, scores, keys (E each) and the group scores.
  return 4 * (3 * spec.numExperts + spec.nGroup);
}

SmallVector<Type> mlir::moeq::getRouteKernelArgumentTypes(MLIRContext *context,
                                                          const RoutingSpec &spec,
                                                          int64_t hidden) {
  auto ptr = LLVM::LLVMPointerType::get(context, 1);
  auto global = gpu::AddressSpaceAttr::get(context, gpu::AddressSpace::Global);
  Type f32 = Float32Type::get(context);
  SmallVector<Type> types{ptr, MemRefType::get({spec.numExperts, hidden}, f32,
                                               MemRefLayoutAttrInterface(), global)};
  if (spec.hasScoreBias)
    types.push_back(MemRefType::get({spec.numExperts}, f32, MemRefLayoutAttrInterface(), global));
  if (spec.hasLogitBias)
    types.push_back(MemRefType::get({spec.numExperts}, f32, MemRefLayoutAttrInterface(), global));
  types.append({ptr, ptr, IntegerType::get(context, 32)});
  return types;
}

void mlir::moeq::buildRouteKernel(OpBuilder &b, gpu::GPUFuncOp func, const RoutingSpec &spec,
                                  int64_t hidden) {
  KernelBody k(b, func);
  int64_t experts = spec.numExperts;
  unsigned next = 0;
  Value tokensI32 = k.args.back();
  Value x = k.view(next++, tokensI32, hidden, b.getF16Type());
  Value router = k.args[next++];
  Value bias = spec.hasScoreBias ? k.args[next++] : Value();
  Value logitBias = spec.hasLogitBias ? k.args[next++] : Value();
  Value indices = k.view(next++, tokensI32, spec.topK, b.getI32Type());
  Value weights = k.view(next++, tokensI32, spec.topK, b.getF32Type());
  Type f32 = b.getF32Type();
  int64_t sharedBytes = getRouteKernelSharedBytes(spec);
  Value logits = k.shared(0, {1, experts}, f32, sharedBytes);
  Value scores = k.shared(4 * experts, {experts}, f32, sharedBytes);
  Value keys = k.shared(8 * experts, {experts}, f32, sharedBytes);
  Value groupScores = k.shared(12 * experts, {spec.nGroup}, f32, sharedBytes);

  // One CTA per token. Its warps share the experts; the lanes of a warp
  // stride over the hidden dimension and reduce by shuffles.
  Value token = k.blockId();
  Value tid = k.threadId();
  Value warp = arith::DivUIOp::create(b, k.loc, tid, k.idx(32));
  Value lane = arith::RemUIOp::create(b, k.loc, tid, k.idx(32));
  Value warps = arith::DivUIOp::create(b, k.loc, k.blockDim(), k.idx(32));
  k.forLoop(warp, experts, warps, [&](Value e) {
    Value partial = k.forLoop(lane, hidden, 32, k.f32(0), [&](Value h, Value acc) {
      Value xv = k.toF32(k.load(x, {token, h}));
      Value product = k.mul(xv, k.load(router, {e, h}));
      return k.add(acc, product);
    });
    Value sum = k.warpSum(partial);
    k.ifThen(k.eq(lane, k.idx(0)), [&] {
      Value row = k.idx(0);
      k.store(sum, logits, {row, e});
    });
  });
  k.barrier();
  // The selection is sequential (k passes over the experts): thread 0.
  k.ifThen(k.eq(tid, k.idx(0)), [&] {
    Value logitsRow = k.idx(0);
    TokenRoutingBuffers buffers{logits, logitsRow, bias,    scores, keys,
                                groupScores, indices, weights, token, logitBias};
    emitTokenRouting(b, k.loc, spec, buffers);
  });
  k.finish(func);
}

//===----------------------------------------------------------------------===//
// Token sort
//===----------------------------------------------------------------------===//

int64_t mlir::moeq::getSortKernelThreads(int64_t numExperts) {
  return std::max<int64_t>(32, (numExperts + 31) / 32 * 32);
}

/// The token sort's expert offsets as kernels take them: i32[E + 1] in
/// global memory.
static MemRefType getExpertOffsetsType(MLIRContext *context, int64_t numExperts) {
  auto global = gpu::AddressSpaceAttr::get(context, gpu::AddressSpace::Global);
  return MemRefType::get({numExperts + 1}, IntegerType::get(context, 32),
                         MemRefLayoutAttrInterface(), global);
}

SmallVector<Type> mlir::moeq::getSortKernelArgumentTypes(MLIRContext *context,
                                                         int64_t numExperts) {
  auto ptr = LLVM::LLVMPointerType::get(context, 1);
  return {ptr, getExpertOffsetsType(context, numExperts), ptr, ptr,
          IntegerType::get(context, 32)};
}

void mlir::moeq::buildSortKernel(OpBuilder &b, gpu::GPUFuncOp func, int64_t numExperts,
                                 int64_t topK) {
  KernelBody k(b, func);
  Type i32 = b.getI32Type();
  Value tokensI32 = k.args[4];
  Value slotsI32 = arith::MulIOp::create(
      b, k.loc, tokensI32, arith::ConstantIntOp::create(b, k.loc, i32, topK));
  Value slots = k.toIndex(slotsI32);
  Value ids = k.view(0, slotsI32, -1, i32);
  Value offsets = k.args[1];
  Value sortedSlots = k.view(2, slotsI32, -1, i32);
  Value slotRows = k.view(3, slotsI32, -1, i32);
  Value counts = k.shared(0, {numExperts}, i32, 4 * numExperts);

  // One thread per expert; one CTA. Expert e counts its routed slots, the
  // counts' prefix sum places its rows, and a second pass in slot order
  // writes them: rows are stable in token order, as moeq.dispatch says.
  Value e = k.threadId();
  Value isExpert = k.ult(e, k.idx(numExperts));
  Value e32 = arith::IndexCastOp::create(b, k.loc, i32, e);
  Value zero = arith::ConstantIntOp::create(b, k.loc, i32, 0);
  Value one = arith::ConstantIntOp::create(b, k.loc, i32, 1);
  auto isMine = [&](Value p) { return k.eq(k.load(ids, {p}), e32); };
  k.ifThen(isExpert, [&] {
    Value count = k.forLoop(0, slots, 1, zero, [&](Value p, Value acc) {
      Value mine = isMine(p);
      return arith::SelectOp::create(b, k.loc, mine, k.add(acc, one), acc);
    });
    k.store(count, counts, {e});
  });
  k.barrier();
  k.ifThen(isExpert, [&] {
    Value start = k.forLoop(0, e, 1, zero,
                            [&](Value other, Value acc) { return k.add(acc, k.load(counts, {other})); });
    k.store(start, offsets, {e});
    k.ifThen(k.eq(e, k.idx(numExperts - 1)), [&] {
      Value end = k.add(start, k.load(counts, {e}));
      k.store(end, offsets, {k.idx(numExperts)});
    });
    k.forLoop(0, slots, 1, start, [&](Value p, Value cursor) {
      Value mine = isMine(p);
      k.ifThen(mine, [&] {
        Value slot = arith::IndexCastOp::create(b, k.loc, i32, p);
        k.store(slot, sortedSlots, {k.toIndex(cursor)});
        k.store(cursor, slotRows, {p});
      });
      return arith::SelectOp::create(b, k.loc, mine, k.add(cursor, one), cursor);
    });
  });
  k.finish(func);
}

//===----------------------------------------------------------------------===//
// Row gather, activation, combine, D^2-MoE base add
//===----------------------------------------------------------------------===//

SmallVector<Type> mlir::moeq::getRowwiseKernelArgumentTypes(MLIRContext *context) {
  auto ptr = LLVM::LLVMPointerType::get(context, 1);
  return {ptr, ptr, ptr, IntegerType::get(context, 32)};
}

void mlir::moeq::buildGatherRowsKernel(OpBuilder &b, gpu::GPUFuncOp func, int64_t cols,
                                       int64_t topK) {
  KernelBody k(b, func);
  Value rowsI32 = k.args[3];
  Value src = k.view(0, rowsI32, cols, b.getF16Type()); // (token rows; only bounded by use)
  Value sortedSlots = k.view(1, rowsI32, -1, b.getI32Type());
  Value dst = k.view(2, rowsI32, cols, b.getF16Type());
  // CTA r copies token slot / top_k into sorted row r.
  Value row = k.blockId();
  Value slot = k.toIndex(k.load(sortedSlots, {row}));
  Value token = arith::DivUIOp::create(b, k.loc, slot, k.idx(topK));
  k.forColumns(cols, [&](Value c) { k.store(k.load(src, {token, c}), dst, {row, c}); });
  k.finish(func);
}

SmallVector<Type> mlir::moeq::getScaledGatherKernelArgumentTypes(MLIRContext *context) {
  auto ptr = LLVM::LLVMPointerType::get(context, 1);
  return {ptr, ptr, ptr, ptr, IntegerType::get(context, 32)};
}

void mlir::moeq::buildScaledGatherRowsKernel(OpBuilder &b, gpu::GPUFuncOp func, int64_t cols,
                                             int64_t topK) {
  KernelBody k(b, func);
  Value rowsI32 = k.args[4];
  Value src = k.view(0, rowsI32, cols, b.getF16Type());
  Value sortedSlots = k.view(1, rowsI32, -1, b.getI32Type());
  Value weights = k.view(2, rowsI32, -1, b.getF32Type());
  Value dst = k.view(3, rowsI32, cols, b.getF16Type());
  // CTA r: sorted row r is token slot / top_k times the slot's weight.
  Value row = k.blockId();
  Value slot = k.toIndex(k.load(sortedSlots, {row}));
  Value token = arith::DivUIOp::create(b, k.loc, slot, k.idx(topK));
  Value weight = k.load(weights, {slot});
  k.forColumns(cols, [&](Value c) {
    Value v = k.toF32(k.load(src, {token, c}));
    k.store(k.toF16(k.mul(weight, v)), dst, {row, c});
  });
  k.finish(func);
}

void mlir::moeq::buildGatedActivationKernel(OpBuilder &b, gpu::GPUFuncOp func, int64_t cols,
                                            Activation activation, double swigluAlpha,
                                            double swigluLimit) {
  KernelBody k(b, func);
  Value rowsI32 = k.args[3];
  Value gate = k.view(0, rowsI32, cols, b.getF16Type());
  Value up = k.view(1, rowsI32, cols, b.getF16Type());
  Value out = k.view(2, rowsI32, cols, b.getF16Type());
  Value row = k.blockId();
  k.forColumns(cols, [&](Value c) {
    Value g = k.toF32(k.load(gate, {row, c}));
    Value u = k.toF32(k.load(up, {row, c}));
    Value activated;
    if (activation == Activation::ClampedSwiGLU) {
      // gpt-oss: min(g, L) * sigmoid(alpha min(g, L)) * (clamp(u, -L, L) + 1).
      g = arith::MinimumFOp::create(b, k.loc, g, k.f32(swigluLimit));
      Value gate = k.sigmoid(k.mul(g, k.f32(swigluAlpha)));
      activated = k.mul(g, gate);
      Value upperClamped = arith::MinimumFOp::create(b, k.loc, u, k.f32(swigluLimit));
      Value clamped = arith::MaximumFOp::create(b, k.loc, upperClamped, k.f32(-swigluLimit));
      u = k.add(clamped, k.f32(1));
    } else if (activation == Activation::SiLU) {
      Value gate = k.sigmoid(g);
      activated = k.mul(g, gate); // g * sigmoid(g), as the CPU oracle
    } else {
      // Exact GeLU: 0.5 g (1 + erf(g / sqrt 2)).
      Value erf = math::ErfOp::create(b, k.loc, k.mul(g, k.f32(M_SQRT1_2)));
      Value half = k.mul(k.f32(0.5), g);
      Value onePlusErf = k.add(k.f32(1), erf);
      activated = k.mul(half, onePlusErf);
    }
    k.store(k.toF16(k.mul(activated, u)), out, {row, c});
  });
  k.finish(func);
}

SmallVector<Type> mlir::moeq::getGroupBiasKernelArgumentTypes(MLIRContext *context,
                                                              int64_t experts) {
  auto ptr = LLVM::LLVMPointerType::get(context, 1);
  return {ptr, getExpertOffsetsType(context, experts), getWeightTableType(context, experts),
          IntegerType::get(context, 32)};
}

void mlir::moeq::buildGroupBiasKernel(OpBuilder &b, gpu::GPUFuncOp func, int64_t cols,
                                      int64_t experts) {
  KernelBody k(b, func);
  Value rowsI32 = k.args[3];
  Value y = k.view(0, rowsI32, cols, b.getF16Type());
  Value offsets = k.args[1], table = k.args[2];
  // CTA r: its expert is the number of experts whose rows end at or before
  // r (the offsets are sorted; every thread counts, the loads are cached).
  Value row = k.blockId();
  Type i32 = b.getI32Type();
  Value rowI32 = arith::IndexCastOp::create(b, k.loc, i32, row);
  Value noExpert = k.idx(0);
  Value expert = k.forLoop(0, experts, 1, noExpert, [&](Value e, Value n) {
    Value end = k.load(offsets, {k.add(e, k.idx(1))});
    Value before = arith::CmpIOp::create(b, k.loc, arith::CmpIPredicate::sle, end, rowI32);
    Value following = k.add(n, k.idx(1));
    return arith::SelectOp::create(b, k.loc, before, following, n).getResult();
  });
  // (A row past the last expert's cannot exist: R = offsets[E].)
  Value address = k.load(table, {expert, k.idx(0)});
  auto biasType = MemRefType::get(
      {cols}, b.getF32Type(), MemRefLayoutAttrInterface(),
      gpu::AddressSpaceAttr::get(b.getContext(), gpu::AddressSpace::Global));
  Value bias = viewGlobalAddress(b, k.loc, address, biasType);
  k.forColumns(cols, [&](Value c) {
    Value yv = k.toF32(k.load(y, {row, c}));
    Value v = k.add(yv, k.load(bias, {c}));
    k.store(k.toF16(v), y, {row, c});
  });
  k.finish(func);
}

SmallVector<Type> mlir::moeq::getCombineKernelArgumentTypes(MLIRContext *context,
                                                            bool weighted, bool hasShared,
                                                            bool hasSharedGate) {
  auto ptr = LLVM::LLVMPointerType::get(context, 1);
  SmallVector<Type> types{ptr, ptr};
  if (weighted)
    types.push_back(ptr);
  if (hasShared)
    types.push_back(ptr);
  if (hasSharedGate)
    types.push_back(ptr);
  types.append({ptr, IntegerType::get(context, 32)});
  return types;
}

void mlir::moeq::buildCombineKernel(OpBuilder &b, gpu::GPUFuncOp func, int64_t hidden,
                                    int64_t topK, bool weighted, bool hasShared,
                                    bool hasSharedGate) {
  KernelBody k(b, func);
  Type i32 = b.getI32Type();
  Value tokensI32 = k.args.back();
  Value slotsI32 = arith::MulIOp::create(
      b, k.loc, tokensI32, arith::ConstantIntOp::create(b, k.loc, i32, topK));
  unsigned next = 0;
  Value expertOut = k.view(next++, slotsI32, hidden, b.getF16Type());
  Value slotRows = k.view(next++, slotsI32, -1, i32);
  Value weights = weighted ? k.view(next++, tokensI32, topK, b.getF32Type()) : Value();
  Value shared = hasShared ? k.view(next++, tokensI32, hidden, b.getF16Type()) : Value();
  Value sharedGate = hasSharedGate ? k.view(next++, tokensI32, 1, b.getF16Type()) : Value();
  Value y = k.view(next++, tokensI32, hidden, b.getF16Type());

  // CTA t: y[t] = sum_j weights[t][j] * expert_out[row of slot t*k+j]
  // (unweighted when the weights scaled the inputs)
  // (+ the shared expert, times sigmoid of its gate logit).
  Value token = k.blockId();
  SmallVector<Value> rows, slotWeights;
  for (int64_t j = 0; j < topK; ++j) {
    Value first = k.mul(token, k.idx(topK));
    Value slot = k.add(first, k.idx(j));
    rows.push_back(k.toIndex(k.load(slotRows, {slot})));
    if (weights)
      slotWeights.push_back(k.load(weights, {token, k.idx(j)}));
  }
  Value sharedScale;
  if (hasSharedGate)
    sharedScale = k.sigmoid(k.toF32(k.load(sharedGate, {token, k.idx(0)})));
  k.forColumns(hidden, [&](Value c) {
    Value acc = k.f32(0);
    for (int64_t j = 0; j < topK; ++j) {
      Value v = k.toF32(k.load(expertOut, {rows[j], c}));
      Value weighted = weights ? k.mul(slotWeights[j], v) : v;
      acc = k.add(acc, weighted);
    }
    if (shared) {
      Value s = k.toF32(k.load(shared, {token, c}));
      Value scaled = sharedScale ? k.mul(sharedScale, s) : s;
      acc = k.add(acc, scaled);
    }
    k.store(k.toF16(acc), y, {token, c});
  });
  k.finish(func);
}

void mlir::moeq::buildDeltaAddKernel(OpBuilder &b, gpu::GPUFuncOp func, int64_t cols,
                                     int64_t baseCols) {
  KernelBody k(b, func);
  Value rowsI32 = k.args[3];
  Value lowrank = k.view(0, rowsI32, cols, b.getF16Type());
  Value base = k.view(1, rowsI32, baseCols, b.getF16Type());
  Value out = k.view(2, rowsI32, cols, b.getF16Type());
  Value row = k.blockId();
  // out = lowrank + base in its leading columns (a pruned base is narrower).
  k.forColumns(cols, [&](Value c) {
    Value sum = k.toF32(k.load(lowrank, {row, c}));
    auto inBase = scf::IfOp::create(b, k.loc, TypeRange{b.getF32Type()}, k.ult(c, k.idx(baseCols)),
                                    /*withElseRegion=*/true);
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(&inBase.getThenRegion().front());
      Value baseValue = k.toF32(k.load(base, {row, c}));
      scf::YieldOp::create(b, k.loc, k.add(sum, baseValue));
      b.setInsertionPointToStart(&inBase.getElseRegion().front());
      scf::YieldOp::create(b, k.loc, sum);
    }
    k.store(k.toF16(inBase.getResult(0)), out, {row, c});
  });
  k.finish(func);
}
