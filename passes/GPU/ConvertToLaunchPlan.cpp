//===- ConvertToLaunchPlan.cpp - the host side of a compiled MoE layer ----===//
//
// For every decomposed, kernel-annotated MoE layer `@moe_layer_<i>`, builds
// `@moe_layer_<i>_launch`: the host program that runs the layer on a GPU,
// expressed with upstream ops (gpu.alloc, gpu.launch_func, gpu.memcpy) and
// two small moeq ops (moeq.device_param, moeq.kernel_pointer). Each moeq op
// of the layer becomes its launches (one `convert` method each, below); the
// kernels around the expert GEMMs are created on the way. The kernels'
// argument types come from their builders, and gpu.launch_func verifies
// the operands against them: an argument list has one definition.
//
//===----------------------------------------------------------------------===//
#include "moeq/CostModel/CostModel.h"
#include "moeq/Dialect/MoEQ/IR/MoEQ.h"
#include "moeq/Passes/Kernels.h"
#include "moeq/Passes/Passes.h"
#include "moeq/Passes/TokenRouting.h"

#include "KernelBuilders.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/xxhash.h"

#include <deque>
#include <map>

namespace mlir::moeq {
#define GEN_PASS_DEF_CONVERTTOLAUNCHPLAN
#include "moeq/Passes/Passes.h.inc"
} // namespace mlir::moeq

using namespace mlir;
using namespace mlir::moeq;

namespace {

/// The most bytes of parameters a PTX kernel may take.
constexpr int64_t kMaxKernelParameterBytes = 4352;
/// Threads of one CTA on every chip since sm_20.
constexpr int64_t kMaxThreadsPerCta = 1024;

/// Threads per CTA of the row-wise kernels (gather, activation, combine).
constexpr int64_t kRowThreads = 128;

/// A device buffer of the plan and its row count (an index value).
struct Buffer {
  Value memref;
  Value rows;
};

/// What the token sort of one routing produced.
struct SortResult {
  Value offsets;     ///< i32[E+1], device
  Buffer sortedSlots; ///< i32[R]: the routing slot of each sorted row
  Buffer slotRows;   ///< i32[R]: the sorted row of each slot
  Value hostOffsets; ///< i32[E+1] on the host, once read back
};

/// Scratch buffers of the GEMMs of one op (shared by its launches).
struct GemmScratch {
  Buffer xq, xScale, workspace;
};

/// Builds the launch plan of one layer function.
class LaunchPlanBuilder {
public:
  LaunchPlanBuilder(ModuleOp module, SymbolTable &symbols, TargetAttr target, int64_t sms)
      : module(module), symbols(symbols), target(target), sms(sms), b(module.getContext()),
        loc(module.getLoc()) {}

  /// Adds `@<layer>_launch` after `layer`; fails (with an error on the
  /// offending op) if the layer is not in decomposed, compiled form.
  LogicalResult build(func::FuncOp layer) {
    loc = layer.getLoc();
    auto inputType = dyn_cast<RankedTensorType>(layer.getArgumentTypes().front());
    if (layer.getNumArguments() != 1 || !inputType || inputType.getRank() != 2)
      return layer.emitError() << "a MoE layer function takes one T x hidden tensor";
    hidden = inputType.getDimSize(1);
    b.setInsertionPointAfter(layer);
    auto activations = globalType({ShapedType::kDynamic, hidden}, b.getF16Type());
    auto host = func::FuncOp::create(b, loc, (layer.getSymName() + "_launch").str(),
                                     b.getFunctionType({activations}, {activations}));
    host->setAttr(kLaunchPlanAttrName, FlatSymbolRefAttr::get(layer.getSymNameAttr()));
    Block *entry = host.addEntryBlock();
    b.setInsertionPointToStart(entry);
    tokens = memref::DimOp::create(b, loc, entry->getArgument(0), 0);
    buffers[layer.getArgument(0)] = {entry->getArgument(0), tokens};
    for (Operation &op : layer.getBody().front()) {
      loc = op.getLoc();
      if (failed(convert(&op)))
        return failure();
    }
    return success();
  }

private:
  //===--------------------------------------------------------------------===//
  // Plan building blocks
  //===--------------------------------------------------------------------===//

  MemRefType globalType(ArrayRef<int64_t> shape, Type element) {
    return MemRefType::get(shape, element, MemRefLayoutAttrInterface(),
                           gpu::AddressSpaceAttr::get(b.getContext(), gpu::AddressSpace::Global));
  }
  Value idx(int64_t v) { return arith::ConstantIndexOp::create(b, loc, v); }
  Value i32(Value index) { return arith::IndexCastOp::create(b, loc, b.getI32Type(), index); }
  Value mul(Value a, int64_t c) { return arith::MulIOp::create(b, loc, a, idx(c)); }
  Value ceilDiv(Value a, int64_t c) {
    return c == 1 ? a : arith::CeilDivUIOp::create(b, loc, a, idx(c)).getResult();
  }

  /// A device buffer of `rows` x `cols` (cols < 0: 1-D) named `name`.
  Buffer alloc(StringRef name, Value rows, int64_t cols, Type element) {
    SmallVector<int64_t> shape{ShapedType::kDynamic};
    if (cols >= 0)
      shape.push_back(cols);
    auto op = gpu::AllocOp::create(b, loc, globalType(shape, element), Type(), ValueRange{},
                                   ValueRange{rows}, ValueRange{}, false);
    op->setAttr(kBufferNameAttrName, b.getStringAttr(name));
    return {op.getMemref(), rows};
  }
  /// A fixed-size device buffer.
  Value allocStatic(StringRef name, ArrayRef<int64_t> shape, Type element) {
    auto op = gpu::AllocOp::create(b, loc, globalType(shape, element), Type(), ValueRange{},
                                   ValueRange{}, ValueRange{}, false);
    op->setAttr(kBufferNameAttrName, b.getStringAttr(name));
    return op.getMemref();
  }
  Value pointer(Buffer buffer, Value row = Value()) {
    if (row && getConstantIntValue(row) == 0)
      row = Value(); // the buffer's start
    return KernelPointerOp::create(b, loc, LLVM::LLVMPointerType::get(b.getContext(), 1),
                                   buffer.memref, row);
  }
  /// The parameter behind `value` (a moeq.param) uploaded as `type`.
  Value deviceParam(ExternalParamAttr ref, MemRefType type) {
    auto key = std::make_pair(ref, Type(type));
    auto it = params.find(key);
    if (it != params.end())
      return it->second;
    // Parameters lead the function, in the order of first use.
    OpBuilder::InsertionGuard guard(b);
    if (lastParam)
      b.setInsertionPointAfter(lastParam);
    else
      b.setInsertionPointToStart(b.getInsertionBlock());
    auto param = DeviceParamOp::create(b, loc, type, ref);
    lastParam = param;
    params[key] = param;
    return param;
  }
  /// The device arguments of a weight operand, in ABI order: its archive
  /// tensors (codes, scales, zeros or levels), or the f16 matrix.
  FailureOr<SmallVector<Value>> weightArguments(Operation *user, Value weight) {
    auto param = weight.getDefiningOp<ParamOp>();
    if (!param)
      return user->emitError() << "a GPU weight must be an external parameter (moeq.param)";
    SmallVector<Type> types = getWeightArgumentTypes(b.getContext(), weight.getType());
    SmallVector<Value> values;
    auto packed = dyn_cast<PackedWeightType>(weight.getType());
    if (!packed) {
      values.push_back(deviceParam(param.getRef(), cast<MemRefType>(types.front())));
      return values;
    }
    for (auto [suffix, type] :
         llvm::zip_equal(packed.getScheme().getStorageSuffixes(), types))
      values.push_back(deviceParam(param.getRef().withKeySuffix(suffix), cast<MemRefType>(type)));
    return values;
  }
  /// A float parameter (router, score bias) as f32.
  FailureOr<Value> floatParam(Operation *user, Value tensor) {
    auto param = tensor.getDefiningOp<ParamOp>();
    auto type = dyn_cast<RankedTensorType>(tensor.getType());
    if (!param || !type)
      return user->emitError() << "router weights must be external parameters (moeq.param)";
    return deviceParam(param.getRef(), globalType(type.getShape(), b.getF32Type()));
  }

  /// The address table of `params`, `rowSizes[r]` per row (uploaded once,
  /// with the parameters: it leads the function too).
  Value weightTable(ValueRange params, ArrayRef<int64_t> rowSizes) {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointAfter(lastParam);
    auto table = DeviceAddressTableOp::create(
        b, loc, getWeightTableType(b.getContext(), rowSizes.size()), params,
        b.getDenseI64ArrayAttr(rowSizes));
    lastParam = table;
    return table;
  }

  SymbolRefAttr kernelRef(StringRef name) {
    return SymbolRefAttr::get(b.getContext(), name,
                              {FlatSymbolRefAttr::get(b.getContext(), name)});
  }
  /// The kernel `name`, built by `body` into a new gpu.module the first time.
  SymbolRefAttr getOrCreateKernel(StringRef name, ArrayRef<Type> argTypes, int64_t threads,
                                  function_ref<void(OpBuilder &, gpu::GPUFuncOp)> body) {
    if (!symbols.lookup(name)) {
      gpu::GPUFuncOp func =
          createKernelModule(module, symbols, name, target, argTypes, threads);
      OpBuilder kb(b.getContext());
      body(kb, func);
      expandTranscendentals(func);
    }
    return kernelRef(name);
  }
  /// exp and erf as polynomials (f32) in arith ops and llvm.intr.fma: no
  /// libdevice in the PTX, and the emulator computes bit for bit the same
  /// values (fma is correctly rounded on both).
  static void expandTranscendentals(gpu::GPUFuncOp func) {
    RewritePatternSet patterns(func.getContext());
    populateMathPolynomialApproximationPatterns(
        patterns, [](StringRef name) { return name == "math.exp" || name == "math.erf"; });
    (void)applyPatternsGreedily(func, std::move(patterns));
    func.walk([](Operation *op) {
      if (isa<math::FmaOp, math::FloorOp, math::AbsFOp, math::CopySignOp>(op))
        lowerPolynomialHelper(op);
    });
  }
  /// The math ops the polynomials use, without libdevice: the GPU lowering
  /// would turn them (and their LLVM intrinsics, except fma) into calls.
  static void lowerPolynomialHelper(Operation *op) {
    OpBuilder b(op);
    Location loc = op->getLoc();
    Value x = op->getOperand(0);
    Type type = x.getType(), bits = b.getIntegerType(type.getIntOrFloatBitWidth());
    auto asBits = [&](Value v) { return arith::BitcastOp::create(b, loc, bits, v).getResult(); };
    auto intConst = [&](uint64_t v) { return arith::ConstantIntOp::create(b, loc, bits, v); };
    uint64_t sign = uint64_t(1) << (type.getIntOrFloatBitWidth() - 1);
    // |v| as bits; one value per statement (C++ leaves the order of a
    // call's arguments open, and the IR must not depend on the compiler).
    auto magnitudeBits = [&](Value v) -> Value {
      Value valueBits = asBits(v);
      return arith::AndIOp::create(b, loc, valueBits, intConst(~sign));
    };
    Value result;
    if (auto fma = dyn_cast<math::FmaOp>(op)) {
      result = LLVM::FMAOp::create(b, loc, fma.getA(), fma.getB(), fma.getC());
    } else if (isa<math::AbsFOp>(op)) {
      result = arith::BitcastOp::create(b, loc, type, magnitudeBits(x));
    } else if (auto copysign = dyn_cast<math::CopySignOp>(op)) {
      Value magnitude = magnitudeBits(x);
      Value rhsBits = asBits(copysign.getRhs());
      Value signBit = arith::AndIOp::create(b, loc, rhsBits, intConst(sign));
      Value combined = arith::OrIOp::create(b, loc, magnitude, signBit);
      result = arith::BitcastOp::create(b, loc, type, combined);
    } else {
      // floor: truncate toward zero, step down for negative non-integers;
      // values of magnitude >= 2^23 (f32) are integers already.
      Value truncated = arith::SIToFPOp::create(
          b, loc, type, arith::FPToSIOp::create(b, loc, b.getI32Type(), x));
      Value above = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OGT, truncated, x);
      Value one = arith::ConstantOp::create(b, loc, b.getFloatAttr(type, 1.0));
      Value lower = arith::SubFOp::create(b, loc, truncated, one);
      Value down = arith::SelectOp::create(b, loc, above, lower, truncated);
      Value limit = arith::ConstantOp::create(b, loc, b.getFloatAttr(type, 8388608.0));
      Value magnitude = arith::BitcastOp::create(b, loc, type, magnitudeBits(x));
      Value large =
          arith::CmpFOp::create(b, loc, arith::CmpFPredicate::UGE, magnitude, limit);
      result = arith::SelectOp::create(b, loc, large, x, down);
    }
    op->getResult(0).replaceAllUsesWith(result);
    op->erase();
  }

  void launch(SymbolRefAttr kernel, std::array<Value, 3> grid, int64_t threads,
              int64_t sharedBytes, ValueRange args) {
    Value one = idx(1);
    auto smem = arith::ConstantIntOp::create(b, loc, b.getI32Type(), sharedBytes);
    gpu::LaunchFuncOp::create(b, loc, kernel, gpu::KernelDim3{grid[0], grid[1], grid[2]},
                              gpu::KernelDim3{idx(threads), one, one}, smem, args,
                              Value(), std::nullopt);
  }

  Buffer lookup(Value tensor) { return buffers.lookup(tensor); }
  bool has(Value tensor) { return buffers.count(tensor); }

  //===--------------------------------------------------------------------===//
  // One method per op of the decomposed layer
  //===--------------------------------------------------------------------===//

  LogicalResult convert(Operation *op) {
    return llvm::TypeSwitch<Operation *, LogicalResult>(op)
        .Case([&](ParamOp) { return success(); }) // read where used
        .Case([&](RouterOp router) { return convert(router); })
        .Case([&](DispatchOp dispatch) { return convert(dispatch); })
        .Case([&](GroupedMatmulOp gmm) { return convert(gmm); })
        .Case([&](LinearOp linear) { return convert(linear); })
        .Case([&](GatedActivationOp act) { return convert(act); })
        .Case([&](DeltaSumOp sum) { return convert(sum); })
        .Case([&](CombineOp combine) { return convert(combine); })
        .Case([&](func::ReturnOp ret) { return convert(ret); })
        .Default([&](Operation *other) {
          return other->emitError() << "has no GPU launch (run moeq-decompose-moe and the "
                                       "kernel lowering first)";
        });
  }

  /// Scores and top-k per token: one CTA per token.
  LogicalResult convert(RouterOp router) {
    RoutingSpec spec = RoutingSpec::get(router);
    FailureOr<Value> weight = floatParam(router, router.getWeight());
    FailureOr<Value> bias = spec.hasScoreBias ? floatParam(router, router.getScoreBias())
                                              : FailureOr<Value>(Value());
    FailureOr<Value> logitBias = spec.hasLogitBias ? floatParam(router, router.getLogitBias())
                                                   : FailureOr<Value>(Value());
    if (failed(weight) || failed(bias) || failed(logitBias) || !has(router.getInput()))
      return failure();
    std::string name = "moe_route_" + spec.mangle() + "_h" + std::to_string(hidden);
    SymbolRefAttr kernel = getOrCreateKernel(
        name, getRouteKernelArgumentTypes(b.getContext(), spec, hidden), kRowThreads,
        [&](OpBuilder &kb, gpu::GPUFuncOp func) { buildRouteKernel(kb, func, spec, hidden); });
    Buffer ids = alloc("topk_ids", tokens, spec.topK, b.getI32Type());
    Buffer weights = alloc("topk_weights", tokens, spec.topK, b.getF32Type());
    SmallVector<Value> args{pointer(lookup(router.getInput())), *weight};
    if (*bias)
      args.push_back(*bias);
    if (*logitBias)
      args.push_back(*logitBias);
    args.append({pointer(ids), pointer(weights), i32(tokens)});
    launch(kernel, {tokens, idx(1), idx(1)}, kRowThreads, getRouteKernelSharedBytes(spec), args);
    buffers[router.getIndices()] = ids;
    buffers[router.getWeights()] = weights;
    return success();
  }

  /// The token sort (once per routing) and the gather of the input rows.
  LogicalResult convert(DispatchOp dispatch) {
    int64_t experts = dispatch.getNumExperts();
    int64_t topK = dispatch.getIndices().getType().getDimSize(1);
    int64_t cols = dispatch.getInput().getType().getDimSize(1);
    if (!has(dispatch.getInput()) || !has(dispatch.getIndices()))
      return dispatch.emitError() << "dispatch operands were not converted";
    if (getSortKernelThreads(experts) > 1024)
      return dispatch.emitError() << "the token sort runs one thread per expert in one CTA: at "
                                     "most 1024 experts, got "
                                  << experts;
    Value rows = mul(tokens, topK);
    SortResult *&known = sortOfIndices[dispatch.getIndices()];
    if (!known)
      known = &sorts.emplace_back();
    SortResult &sort = *known;
    if (!sort.offsets) {
      SymbolRefAttr kernel = getOrCreateKernel(
          llvm::formatv("moe_sort_e{0}_k{1}", experts, topK).str(),
          getSortKernelArgumentTypes(b.getContext(), experts), getSortKernelThreads(experts),
          [&](OpBuilder &kb, gpu::GPUFuncOp func) { buildSortKernel(kb, func, experts, topK); });
      sort.offsets = allocStatic("expert_offsets", {experts + 1}, b.getI32Type());
      sort.sortedSlots = alloc("sorted_slots", rows, -1, b.getI32Type());
      sort.slotRows = alloc("slot_rows", rows, -1, b.getI32Type());
      launch(kernel, {idx(1), idx(1), idx(1)}, getSortKernelThreads(experts), 4 * experts,
             {pointer(lookup(dispatch.getIndices())), sort.offsets, pointer(sort.sortedSlots),
              pointer(sort.slotRows), i32(tokens)});
    }
    Buffer sorted = alloc("sorted_rows", rows, cols, b.getF16Type());
    if (Value scales = dispatch.getScales()) {
      // Routing weights on the inputs (Llama 4): each copy scaled.
      if (!has(scales))
        return dispatch.emitError() << "dispatch scales were not converted";
      SymbolRefAttr gather = getOrCreateKernel(
          llvm::formatv("moe_gather_scaled_c{0}_k{1}", cols, topK).str(),
          getScaledGatherKernelArgumentTypes(b.getContext()), kRowThreads,
          [&](OpBuilder &kb, gpu::GPUFuncOp func) {
            buildScaledGatherRowsKernel(kb, func, cols, topK);
          });
      launch(gather, {rows, idx(1), idx(1)}, kRowThreads, 0,
             {pointer(lookup(dispatch.getInput())), pointer(sort.sortedSlots),
              pointer(lookup(scales)), pointer(sorted), i32(rows)});
    } else {
      SymbolRefAttr gather = getOrCreateKernel(
          llvm::formatv("moe_gather_c{0}_k{1}", cols, topK).str(),
          getRowwiseKernelArgumentTypes(b.getContext()), kRowThreads,
          [&](OpBuilder &kb, gpu::GPUFuncOp func) { buildGatherRowsKernel(kb, func, cols, topK); });
      launch(gather, {rows, idx(1), idx(1)}, kRowThreads, 0,
             {pointer(lookup(dispatch.getInput())), pointer(sort.sortedSlots), pointer(sorted),
              i32(rows)});
    }
    buffers[dispatch.getSorted()] = sorted;
    buffers[dispatch.getPositions()] = sort.sortedSlots;
    sortOfOffsets[dispatch.getOffsets()] = &sort;
    sortOfPositions[dispatch.getPositions()] = &sort;
    return success();
  }

  /// The expert offsets on the host, read back once per routing: what
  /// per-expert launches size their grids with.
  Value hostOffsets(SortResult &sort) {
    if (!sort.hostOffsets) {
      auto type = cast<MemRefType>(sort.offsets.getType());
      auto host = memref::AllocOp::create(
          b, loc, MemRefType::get(type.getShape(), type.getElementType()));
      host->setAttr(kBufferNameAttrName, b.getStringAttr("expert_offsets_host"));
      gpu::MemcpyOp::create(b, loc, Type(), ValueRange{}, host, sort.offsets);
      sort.hostOffsets = host;
    }
    return sort.hostOffsets;
  }

  /// Activation rows of a weight-activation scheme, quantized per token
  /// (`quant_a<bits>_k<K>`) into `xq`/`xScale` from row `row` on.
  void quantizeActivations(PackedWeightType packed, Buffer x, Value row, Value rows,
                           Buffer &xq, Buffer &xScale) {
    unsigned bits = packed.getScheme().getActBits();
    int64_t k = packed.getInputDim();
    if (!xq.memref) {
      xq = alloc("activation_codes", x.rows, k * bits / 8, b.getI8Type());
      xScale = alloc("activation_scales", x.rows, -1, b.getF32Type());
    }
    launch(kernelRef(getActivationQuantKernelName(packed)), {rows, idx(1), idx(1)}, 32, 0,
           {pointer(xq, row), pointer(xScale, row), pointer(x, row), i32(rows)});
  }

  /// One single-mix GEMM launch over `rows` rows of `x` from row `row` on
  /// into `y` (same rows), with its split-K reduction and activation
  /// quantization.
  LogicalResult launchGemm(Operation *user, Value weight, SymbolRefAttr kernel,
                           TileConfigAttr tile, Buffer x, Value row, Value rows, Buffer y,
                           GemmScratch &scratch) {
    FailureOr<SmallVector<Value>> weights = weightArguments(user, weight);
    if (failed(weights))
      return failure();
    int64_t n = getWeightShape(weight.getType())[0];
    auto packed = dyn_cast<PackedWeightType>(weight.getType());
    SmallVector<Value> args;
    if (tile.isTensorCore() && packed && packed.getScheme().quantizesActivations()) {
      quantizeActivations(packed, x, row, rows, scratch.xq, scratch.xScale);
      args.append({pointer(scratch.xq, row), pointer(scratch.xScale, row)});
    } else {
      args.push_back(pointer(x, row));
    }
    llvm::append_range(args, *weights);
    std::array<Value, 3> grid;
    int64_t threads = tile.getThreadsPerBlock();
    int64_t splitK = tile.getSplitK();
    if (tile.isTensorCore())
      grid = {idx((n + tile.getBn() - 1) / tile.getBn()), ceilDiv(rows, tile.getBm()),
              idx(splitK)};
    else
      grid = {idx((n + threads - 1) / threads), rows, idx(1)};
    if (splitK > 1) {
      // Slice z writes f32 partial sums to workspace rows z * rows...;
      // the reduction adds the slices in order (deterministic).
      if (!scratch.workspace.memref)
        scratch.workspace = alloc("splitk_workspace", mul(y.rows, splitK), n, b.getF32Type());
      args.append({pointer(scratch.workspace), i32(rows)});
      launch(kernel, grid, threads, getKernelSharedBytes(weight.getType(), tile), args);
      launch(kernelRef(getSplitKReduceKernelName(n, splitK)),
             {idx((n + kRowThreads - 1) / kRowThreads), rows, idx(1)}, kRowThreads, 0,
             {pointer(scratch.workspace), pointer(y, row), i32(rows)});
      return success();
    }
    args.append({pointer(y, row), i32(rows)});
    launch(kernel, grid, threads, getKernelSharedBytes(weight.getType(), tile), args);
    return success();
  }

  LogicalResult convert(GroupedMatmulOp gmm) {
    if (!gmm.getKernels() || !gmm.getTiles())
      return gmm.emitError() << "has no kernels: run moeq-lower-expert-gemms-to-gpu first";
    SortResult *sort = sortOfOffsets.lookup(gmm.getOffsets());
    if (!sort || !has(gmm.getInput()))
      return gmm.emitError() << "operands were not converted";
    Buffer x = lookup(gmm.getInput());
    int64_t n = gmm.getType().getDimSize(1);
    Buffer y = alloc("expert_out", x.rows, n, b.getF16Type());
    buffers[gmm.getResult()] = y;
    GemmScratch scratch;
    auto tiles = gmm.getTiles()->getAsRange<TileConfigAttr>();
    if (gmm->hasAttr(kPersistentAttrName)) {
      if (failed(launchPersistent(gmm, x, y, *sort, scratch)))
        return failure();
      return addGroupBiases(gmm, y, *sort);
    }
    // One launch per expert over its rows [offsets[e], offsets[e+1]).
    Value host = hostOffsets(*sort);
    for (auto [e, weight, kernel, tile] :
         llvm::enumerate(gmm.getWeights(), gmm.getKernels()->getAsRange<SymbolRefAttr>(), tiles)) {
      auto rowAt = [&](int64_t i) {
        return arith::IndexCastOp::create(
            b, loc, b.getIndexType(), memref::LoadOp::create(b, loc, host, ValueRange{idx(i)}));
      };
      Value start = rowAt(e), end = rowAt(e + 1);
      Value rows = arith::SubIOp::create(b, loc, end, start);
      if (failed(launchGemm(gmm, weight, kernel, tile, x, start, rows, y, scratch)))
        return failure();
    }
    return addGroupBiases(gmm, y, *sort);
  }

  /// The experts' biases added to the grouped GEMM's output rows (gpt-oss):
  /// one launch over every row, the biases through a table of addresses.
  LogicalResult addGroupBiases(GroupedMatmulOp gmm, Buffer y, SortResult &sort) {
    if (gmm.getBiases().empty())
      return success();
    int64_t experts = gmm.getWeights().size(), n = gmm.getType().getDimSize(1);
    SmallVector<Value> biases;
    for (Value bias : gmm.getBiases()) {
      FailureOr<Value> param = floatParam(gmm, bias);
      if (failed(param))
        return failure();
      biases.push_back(*param);
    }
    Value table = weightTable(biases, SmallVector<int64_t>(experts, 1));
    SymbolRefAttr kernel = getOrCreateKernel(
        llvm::formatv("moe_bias_n{0}_e{1}", n, experts).str(),
        getGroupBiasKernelArgumentTypes(b.getContext(), experts), kRowThreads,
        [&](OpBuilder &kb, gpu::GPUFuncOp func) { buildGroupBiasKernel(kb, func, n, experts); });
    launch(kernel, {y.rows, idx(1), idx(1)}, kRowThreads, 0,
           {pointer(y), sort.offsets, table, i32(y.rows)});
    return success();
  }

  /// One launch for every expert of the op (moeq.persistent): CTAs stride
  /// over the tiles; one CTA per SM.
  LogicalResult launchPersistent(GroupedMatmulOp gmm, Buffer x, Buffer y, SortResult &sort,
                                 GemmScratch &scratch) {
    SmallVector<Type> types = llvm::to_vector(gmm.getWeights().getTypes());
    SmallVector<TileConfigAttr> tiles =
        llvm::to_vector(gmm.getTiles()->getAsRange<TileConfigAttr>());
    SmallVector<Value> args;
    if (auto packed = dyn_cast<PackedWeightType>(types.front());
        packed && packed.getScheme().quantizesActivations()) {
      quantizeActivations(packed, x, idx(0), x.rows, scratch.xq, scratch.xScale);
      args.append({pointer(scratch.xq), pointer(scratch.xScale)});
    } else {
      args.push_back(pointer(x));
    }
    args.push_back(sort.offsets);
    // The experts' weights through one table of their device addresses.
    SmallVector<Value> params;
    SmallVector<int64_t> rowSizes;
    for (Value weight : gmm.getWeights()) {
      FailureOr<SmallVector<Value>> weights = weightArguments(gmm, weight);
      if (failed(weights))
        return failure();
      llvm::append_range(params, *weights);
      rowSizes.push_back(weights->size());
    }
    args.push_back(weightTable(params, rowSizes));
    args.append({pointer(y), i32(x.rows)});
    SymbolRefAttr kernel = *gmm.getKernels()->getAsRange<SymbolRefAttr>().begin();
    launch(kernel, {idx(sms), idx(1), idx(1)}, tiles.front().getThreadsPerBlock(),
           getGroupedKernelSharedBytes(types, tiles), args);
    return success();
  }

  /// A dense GEMM over every row of its input (shared expert, D^2-MoE base).
  LogicalResult convert(LinearOp linear) {
    if (!linear.getKernelAttr() || !linear.getTileAttr())
      return linear.emitError() << "has no kernel: run moeq-lower-expert-gemms-to-gpu first";
    if (!has(linear.getInput()))
      return linear.emitError() << "input was not converted";
    Buffer x = lookup(linear.getInput());
    int64_t n = linear.getType().getDimSize(1);
    Buffer y = alloc("linear_out", x.rows, n, b.getF16Type());
    buffers[linear.getResult()] = y;
    GemmScratch scratch;
    return launchGemm(linear, linear.getWeight(), linear.getKernelAttr(), linear.getTileAttr(),
                      x, idx(0), x.rows, y, scratch);
  }

  /// `op`'s result = an elementwise function of `lhs` and `rhs` rows, by
  /// kernel `name` of the rowwise ABI (lhs, rhs, out, rows), one CTA per
  /// row; `body` builds the kernel the first time.
  LogicalResult launchRowwise(Operation *op, StringRef name, Value lhs, Value rhs,
                              StringRef outName,
                              function_ref<void(OpBuilder &, gpu::GPUFuncOp)> body) {
    if (!has(lhs) || !has(rhs))
      return op->emitError() << "operands were not converted";
    SymbolRefAttr kernel = getOrCreateKernel(
        name, getRowwiseKernelArgumentTypes(b.getContext()), kRowThreads, body);
    Buffer first = lookup(lhs);
    int64_t cols = cast<RankedTensorType>(op->getResult(0).getType()).getDimSize(1);
    Buffer out = alloc(outName, first.rows, cols, b.getF16Type());
    launch(kernel, {first.rows, idx(1), idx(1)}, kRowThreads, 0,
           {pointer(first), pointer(lookup(rhs)), pointer(out), i32(first.rows)});
    buffers[op->getResult(0)] = out;
    return success();
  }

  LogicalResult convert(GatedActivationOp act) {
    int64_t cols = act.getType().getDimSize(1);
    Activation kind = act.getActivation();
    double alpha = act.getSwigluAlpha().convertToDouble();
    double limit = act.getSwigluLimit().convertToDouble();
    std::string name = llvm::formatv("moe_act_{0}_n{1}", stringifyActivation(kind), cols).str();
    if (kind == Activation::ClampedSwiGLU)
      // The constants compiled in: layers that differ in them never share it.
      name += llvm::formatv("_c{0:x-8}", uint32_t(llvm::xxh3_64bits(
                                             llvm::formatv("{0:e17} {1:e17}", alpha, limit).str())))
                  .str();
    return launchRowwise(act, name, act.getGate(), act.getUp(), "activated",
                         [&](OpBuilder &kb, gpu::GPUFuncOp func) {
                           buildGatedActivationKernel(kb, func, cols, kind, alpha, limit);
                         });
  }

  LogicalResult convert(DeltaSumOp sum) {
    int64_t cols = sum.getType().getDimSize(1);
    int64_t baseCols = sum.getBase().getType().getDimSize(1);
    return launchRowwise(sum, llvm::formatv("moe_delta_add_n{0}_b{1}", cols, baseCols).str(),
                         sum.getLowrank(), sum.getBase(), "delta_sum",
                         [&](OpBuilder &kb, gpu::GPUFuncOp func) {
                           buildDeltaAddKernel(kb, func, cols, baseCols);
                         });
  }

  LogicalResult convert(CombineOp combine) {
    SortResult *sort = sortOfPositions.lookup(combine.getPositions());
    if (!sort || !has(combine.getExpertOut()) || !has(combine.getWeights()))
      return combine.emitError() << "operands were not converted";
    int64_t topK = combine.getWeights().getType().getDimSize(1);
    bool hasShared = bool(combine.getShared()), hasGate = bool(combine.getSharedGate());
    bool weighted = !combine.getUnweighted();
    std::string name = llvm::formatv("moe_combine_h{0}_k{1}", hidden, topK).str();
    if (!weighted)
      name += "_unweighted";
    if (hasShared)
      name += hasGate ? "_shared_gated" : "_shared";
    SymbolRefAttr kernel = getOrCreateKernel(
        name, getCombineKernelArgumentTypes(b.getContext(), weighted, hasShared, hasGate),
        kRowThreads, [&](OpBuilder &kb, gpu::GPUFuncOp func) {
          buildCombineKernel(kb, func, hidden, topK, weighted, hasShared, hasGate);
        });
    SmallVector<Value> args{pointer(lookup(combine.getExpertOut())),
                            pointer(sort->slotRows)};
    if (weighted)
      args.push_back(pointer(lookup(combine.getWeights())));
    for (Value optional : {combine.getShared(), combine.getSharedGate()}) {
      if (!optional)
        continue;
      if (!has(optional))
        return combine.emitError() << "shared expert was not converted";
      args.push_back(pointer(lookup(optional)));
    }
    Buffer y = alloc("output", tokens, hidden, b.getF16Type());
    args.append({pointer(y), i32(tokens)});
    launch(kernel, {tokens, idx(1), idx(1)}, kRowThreads, 0, args);
    buffers[combine.getResult()] = y;
    return success();
  }

  LogicalResult convert(func::ReturnOp ret) {
    if (ret.getNumOperands() != 1 || !has(ret.getOperand(0)))
      return ret.emitError() << "a MoE layer returns its one output";
    func::ReturnOp::create(b, loc, lookup(ret.getOperand(0)).memref);
    return success();
  }

  ModuleOp module;
  SymbolTable &symbols;
  TargetAttr target;
  int64_t sms;
  OpBuilder b;
  Location loc;
  int64_t hidden = 0;
  Value tokens;
  DenseMap<Value, Buffer> buffers;
  std::deque<SortResult> sorts; // stable addresses
  DenseMap<Value, SortResult *> sortOfIndices, sortOfOffsets, sortOfPositions;
  DenseMap<std::pair<Attribute, Type>, Value> params;
  Operation *lastParam = nullptr;
};

struct ConvertToLaunchPlanPass
    : mlir::moeq::impl::ConvertToLaunchPlanBase<ConvertToLaunchPlanPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto target = module->getAttrOfType<TargetAttr>(kTargetAttrName);
    if (!target) {
      module.emitError() << "no '" << kTargetAttrName
                         << "' attribute: run moeq-lower-expert-gemms-to-gpu first";
      return signalPassFailure();
    }
    const cost::GpuSpec *gpu = resolveCostModelGpu(module, gpuName);
    if (!gpu)
      return signalPassFailure();
    SymbolTable symbols(module);
    SmallVector<func::FuncOp> layers;
    for (auto func : module.getOps<func::FuncOp>())
      if (!func->hasAttr(kLaunchPlanAttrName) && !func.getOps<CombineOp>().empty())
        layers.push_back(func);
    for (func::FuncOp layer : layers) {
      LaunchPlanBuilder builder(module, symbols, target, gpu->sms);
      if (failed(builder.build(layer)))
        return signalPassFailure();
    }
    module->setAttr(gpu::GPUDialect::getContainerModuleAttrName(), UnitAttr::get(&getContext()));
    // Never a kernel or a launch the driver cannot run.
    WalkResult limits = module.walk([](gpu::GPUFuncOp func) {
      return failed(checkParameterSpace(func)) ? WalkResult::interrupt() : WalkResult::advance();
    });
    int64_t maxShared = cost::maxSharedBytesPerCtaOnChip(target.getChip().getValue());
    WalkResult launches = module.walk([&](gpu::LaunchFuncOp launch) {
      return failed(checkLaunchLimits(launch, maxShared, target.getChip().getValue()))
                 ? WalkResult::interrupt()
                 : WalkResult::advance();
    });
    if (limits.wasInterrupted() || launches.wasInterrupted())
      signalPassFailure();
  }

  /// A CTA has at most 1024 threads, and its shared memory (the launch's
  /// dynamic bytes plus the kernel's static workgroup buffers) at most the
  /// chip's opt-in maximum.
  static LogicalResult checkLaunchLimits(gpu::LaunchFuncOp launch, int64_t maxShared,
                                         StringRef chip) {
    StringRef kernel = launch.getKernelName().getValue();
    auto constant = [](Value v) { return getConstantIntValue(v).value_or(0); };
    int64_t threads = constant(launch.getBlockSizeX()) * constant(launch.getBlockSizeY()) *
                      constant(launch.getBlockSizeZ());
    if (threads > kMaxThreadsPerCta)
      return launch.emitError() << "launch of kernel '" << kernel << "' has " << threads
                                << " threads per block; a block may have at most "
                                << kMaxThreadsPerCta;
    int64_t shared = launch.getDynamicSharedMemorySize()
                         ? constant(launch.getDynamicSharedMemorySize())
                         : 0;
    if (auto func =
            SymbolTable::lookupNearestSymbolFrom<gpu::GPUFuncOp>(launch, launch.getKernel()))
      for (BlockArgument buffer : func.getWorkgroupAttributions())
        if (auto type = dyn_cast<MemRefType>(buffer.getType()); type && type.hasStaticShape())
          shared += type.getNumElements() * ((type.getElementTypeBitWidth() + 7) / 8);
    if (shared <= maxShared)
      return success();
    return launch.emitError() << "launch of kernel '" << kernel << "' needs " << shared
                              << " bytes of shared memory per block; " << chip
                              << " allows at most " << maxShared;
  }

  /// PTX allows a kernel 4352 bytes of parameters (ptxas: "0x1100 max");
  /// bare pointers and memrefs take 8 bytes, scalars their size, aligned.
  static LogicalResult checkParameterSpace(gpu::GPUFuncOp func) {
    if (!func.isKernel())
      return success();
    int64_t bytes = 0;
    for (Type type : func.getArgumentTypes()) {
      int64_t size = type.isIntOrFloat() ? (type.getIntOrFloatBitWidth() + 7) / 8 : 8;
      bytes = (bytes + size - 1) / size * size + size;
    }
    if (bytes <= kMaxKernelParameterBytes)
      return success();
    return func.emitError() << "kernel '" << func.getName() << "' takes " << bytes
                            << " bytes of parameters; a kernel may take at most "
                            << kMaxKernelParameterBytes;
  }
};

} // namespace
