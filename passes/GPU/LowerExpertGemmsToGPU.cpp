//===- LowerExpertGemmsToGPU.cpp - GPU kernels per precision mix ----------===//
//
// Emits one `gpu.module` (and kernel) per distinct (weight type, tile) of
// the expert GEMMs and records the kernel of every group on its
// `moeq.grouped_matmul`. The tile's path picks the kernel family:
//
//  - "mma": the tensor-core kernel (TensorCoreGemm.cpp), plus, for w8a8 /
//    w4a4, the activation-quantization kernel `quant_a<bits>_k<K>` that
//    runs before it;
//  - "simt": the small-M decode kernel built here: one thread per output
//    feature, one CTA row per token, `(code - zero) * scale` dequantised in
//    registers from the packed words, activations of weight-activation
//    schemes quantised per token inside the kernel.
//
// SIMT ABI (every pointer is global memory):
//   quantized: (X: f16*, Wq: i32*, scales: f16*, [zeros: f16*,] Y: f16*, M: i32)
//   float:     (X: f16*, W: f16*, Y: f16*, M: i32)
// X is M x K row-major, Y is M x N; grid (ceil(N / 128), M, 1), block (128).
// The tensor-core ABI is in KernelBuilders.h.
//
//===----------------------------------------------------------------------===//
#include "moeq/Dialect/MoEQ/IR/MoEQ.h"
#include "moeq/Passes/Kernels.h"
#include "moeq/Passes/Passes.h"

#include "KernelBuilders.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/UB/IR/UBOps.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/SPIRV/IR/SPIRVAttributes.h"
#include "mlir/Dialect/SPIRV/IR/SPIRVDialect.h"
#include "mlir/Dialect/SPIRV/IR/TargetAndABI.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/SymbolTable.h"

namespace mlir::moeq {
#define GEN_PASS_DEF_LOWEREXPERTGEMMSTOGPU
#include "moeq/Passes/Passes.h.inc"
} // namespace mlir::moeq

using namespace mlir;
using namespace mlir::moeq;

namespace {

/// Threads per block: one output feature each.
constexpr int64_t kBlockN = cost::kSimtBlock;

/// Builds the body of one kernel.
class GemmKernelBuilder {
public:
  /// `spirv`: the OpenCL SPIR-V ABI (every buffer a memref in the
  /// CrossWorkgroup storage class, no LLVM types) instead of NVVM's.
  /// `xStride` > K: activation rows are that wide and the kernel reads
  /// their leading K (a `leading_inputs` linear).
  GemmKernelBuilder(OpBuilder &builder, Location loc, Type weightType, bool spirv = false,
                    int64_t xStride = 0)
      : b(builder), loc(loc), packed(dyn_cast<PackedWeightType>(weightType)), spirv(spirv) {
    ArrayRef<int64_t> shape = getWeightShape(weightType);
    n = shape[0];
    k = shape[1];
    this->xStride = xStride > 0 ? xStride : k;
    global = spirv ? Attribute(spirv::StorageClassAttr::get(b.getContext(),
                                                            spirv::StorageClass::CrossWorkgroup))
                   : Attribute(gpu::AddressSpaceAttr::get(b.getContext(),
                                                          gpu::AddressSpace::Global));
  }

  /// Argument types in ABI order.
  SmallVector<Type> argumentTypes() {
    Type ptr = LLVM::LLVMPointerType::get(b.getContext(), /*addressSpace=*/1);
    Type x = ptr, y = ptr;
    if (spirv) {
      x = globalMemRef({ShapedType::kDynamic, xStride}, b.getF16Type());
      y = globalMemRef({ShapedType::kDynamic, n}, b.getF16Type());
    }
    SmallVector<Type> types{x};
    if (packed) {
      for (StringRef suffix : packed.getScheme().getStorageSuffixes())
        types.push_back(globalMemRef({n, packed.getStorageRowLength(suffix)},
                                     suffix == ".qweight" ? Type(b.getI32Type())
                                                          : Type(b.getF16Type())));
    } else {
      types.push_back(globalMemRef({n, k}, b.getF16Type()));
    }
    types.push_back(y);
    types.push_back(b.getI32Type());
    return types;
  }

  void buildBody(gpu::GPUFuncOp func) {
    Block &entry = func.getBody().front();
    b.setInsertionPointToStart(&entry);
    ValueRange args = entry.getArguments();
    Value rowsI32 = args.back();
    Value rows = arith::IndexCastOp::create(b, loc, b.getIndexType(), rowsI32);
    Value x = viewAsMemRef(args.front(), rowsI32, xStride);
    Value y = viewAsMemRef(args[args.size() - 2], rowsI32, n);

    auto [row, col, inBounds] = getSimtElement(b, loc, rows, n, kBlockN);
    auto guard = scf::IfOp::create(b, loc, inBounds, /*withElseRegion=*/false);
    b.setInsertionPointToStart(&guard.getThenRegion().front());
    Value acc = packed ? accumulatePacked(args, x, row, col)
                       : accumulateFloat(args[1], x, row, col);
    Value out = arith::TruncFOp::create(b, loc, b.getF16Type(), acc);
    memref::StoreOp::create(b, loc, out, y, ValueRange{row, col});
    b.setInsertionPointToEnd(&entry);
    gpu::ReturnOp::create(b, loc);
  }

private:
  MemRefType globalMemRef(ArrayRef<int64_t> shape, Type element) {
    return MemRefType::get(shape, element, MemRefLayoutAttrInterface(), global);
  }

  Value index(int64_t value) {
    return arith::ConstantIndexOp::create(b, loc, value);
  }
  Value f32(float value) {
    return arith::ConstantFloatOp::create(b, loc, b.getF32Type(), APFloat(value));
  }

  Value viewAsMemRef(Value ptr, Value rowsI32, int64_t cols) {
    if (spirv)
      return ptr; // already a memref
    return viewGlobalPointer(b, loc, ptr, rowsI32, cols, b.getF16Type());
  }

  /// scf.for from `lb` to `ub` by `step` (constants, created in that order)
  /// carrying `init`. Values a call creates are made one statement at a time
  /// in this file: C++ leaves the order of a call's arguments unspecified
  /// (GCC and Clang differ), and the IR, hence the PTX, must not depend on
  /// the compiler that built moeq.
  scf::ForOp constantLoop(int64_t lb, int64_t ub, int64_t step, Value init) {
    Value lower = index(lb);
    Value upper = index(ub);
    Value stride = index(step);
    return scf::ForOp::create(b, loc, lower, upper, stride, ValueRange{init});
  }

  Value loadF32(Value memref, ValueRange indices) {
    Value v = memref::LoadOp::create(b, loc, memref, indices);
    return arith::ExtFOp::create(b, loc, b.getF32Type(), v);
  }

  /// a * b + c with `contract` fast-math flags, so that NVPTX emits one fma
  /// (math.fma would become a libdevice call).
  Value multiplyAdd(Value a, Value bv, Value c) {
    auto contract = arith::FastMathFlags::contract;
    Value prod = arith::MulFOp::create(b, loc, a, bv, contract);
    return arith::AddFOp::create(b, loc, c, prod, contract);
  }

  Value accumulateFloat(Value w, Value x, Value row, Value col) {
    auto loop = constantLoop(0, k, 1, f32(0.f));
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(loop.getBody());
    Value kk = loop.getInductionVar();
    Value xv = loadF32(x, {row, kk});
    Value wv = loadF32(w, {col, kk});
    Value acc = multiplyAdd(xv, wv, loop.getRegionIterArg(0));
    scf::YieldOp::create(b, loc, ValueRange{acc});
    return loop.getResult(0);
  }

  /// The `bits`-wide code starting at bit `bit` (index) of row `col` of
  /// `words`, as an i32 (moeq-lower-dequantization lowers it).
  Value extractCode(Value words, Value col, Value bit, unsigned bits) {
    // Codes at multiples of a width dividing 32 never straddle words.
    return UnpackCodesOp::create(b, loc, b.getI32Type(), words, ValueRange{col}, bit,
                                 /*width=*/Value(), bits, /*count=*/1,
                                 /*aligned=*/32 % bits == 0, /*padded=*/false);
  }

  /// The per-token scale of a weight-activation scheme: max|x[row, :]| /
  /// qmax (1 for an all-zero row). Every thread of the row recomputes it:
  /// the SIMT kernel has no separate activation-quantization launch yet.
  Value activationScale(Value x, Value row, float qmax) {
    auto loop = constantLoop(0, k, 1, f32(0.f));
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(loop.getBody());
      Value v = loadF32(x, {row, loop.getInductionVar()});
      Value magnitude = arith::MaximumFOp::create(b, loc, v, arith::NegFOp::create(b, loc, v));
      Value largest = arith::MaximumFOp::create(b, loc, loop.getRegionIterArg(0), magnitude);
      scf::YieldOp::create(b, loc, ValueRange{largest});
    }
    Value amax = loop.getResult(0);
    Value isZero = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OEQ, amax, f32(0.f));
    Value one = f32(1.f);
    Value scale = arith::DivFOp::create(b, loc, amax, f32(qmax));
    return arith::SelectOp::create(b, loc, isZero, one, scale);
  }

  /// clamp(round_half_even(v / scale), -qmax, qmax) * scale, as the CPU
  /// oracle and quant::fakeQuantizeActivations compute it. Rounding adds and
  /// subtracts 1.5 * 2^23 (exact for |v / scale| <= qmax < 2^22), which
  /// avoids a libdevice call for roundeven.
  Value quantizeActivation(Value v, Value scale, float qmax) {
    Value magic = f32(12582912.f);
    Value scaled = arith::DivFOp::create(b, loc, v, scale);
    Value shiftedUp = arith::AddFOp::create(b, loc, scaled, magic);
    Value rounded = arith::SubFOp::create(b, loc, shiftedUp, magic);
    Value atLeast = arith::MaximumFOp::create(b, loc, rounded, f32(-qmax));
    Value clamped = arith::MinimumFOp::create(b, loc, atLeast, f32(qmax));
    return arith::MulFOp::create(b, loc, clamped, scale);
  }

  Value accumulatePacked(ValueRange args, Value x, Value row, Value col) {
    SchemeAttr scheme = packed.getScheme();
    int64_t groupWidth = scheme.getEffectiveGroupSize(k);
    float qmax = float((1u << (scheme.getActBits() - 1)) - 1);
    Value actScale =
        scheme.quantizesActivations() ? activationScale(x, row, qmax) : Value();
    Value words = args[1], scales = args[2];
    Value zeros = scheme.getSymmetric() || scheme.isLevelTable() ? Value() : args[3];
    // Level tables: the 2^bits levels of (col, g) from args[2].
    Value levels = scheme.isLevelTable() ? args[2] : Value();
    // One group's dot product: codes of `bits` bits from bit `firstBit` on.
    auto accumulateGroup = [&](Value g, Value firstBit, unsigned bits, Value acc) {
      Value scale, zero, tableStart;
      if (levels) {
        tableStart = arith::MulIOp::create(b, loc, g, index(int64_t(1) << bits));
      } else {
        scale = loadF32(scales, {col, g});
        zero = zeros ? loadF32(zeros, {col, g})
                     : f32(float(1u << (scheme.getWeightBits() - 1)));
      }
      Value groupStart = arith::MulIOp::create(b, loc, g, index(groupWidth));
      auto inner = constantLoop(0, groupWidth, 1, acc);
      OpBuilder::InsertionGuard innerGuard(b);
      b.setInsertionPointToStart(inner.getBody());
      Value i = inner.getInductionVar();
      Value kk = arith::AddIOp::create(b, loc, groupStart, i);
      Value bitOffset = arith::MulIOp::create(b, loc, i, index(bits));
      Value bit = arith::AddIOp::create(b, loc, firstBit, bitOffset);
      Value code = extractCode(words, col, bit, bits);
      Value weight =
          levels ? Value(LookupLevelsOp::create(b, loc, b.getF32Type(), code, levels,
                                                ValueRange{col}, tableStart))
                 : Value(DequantizeCodesOp::create(b, loc, b.getF32Type(), code, scale, zero,
                                                   /*integral_zero=*/false));
      Value xv = loadF32(x, {row, kk});
      if (actScale)
        xv = quantizeActivation(xv, actScale, qmax);
      Value sum = multiplyAdd(xv, weight, inner.getRegionIterArg(0));
      scf::YieldOp::create(b, loc, ValueRange{sum});
      return inner.getResult(0);
    };
    if (packed.hasGroupBits()) {
      // Group-wise widths (SliM-LLM): the groups are unrolled, each with its
      // width and first bit as constants.
      Value acc = f32(0.f);
      int64_t firstBit = 0;
      for (int64_t g = 0; g < packed.getNumGroups(); ++g) {
        unsigned bits = packed.getBitsOfGroup(g);
        Value group = index(g);
        acc = accumulateGroup(group, index(firstBit), bits, acc);
        firstBit += int64_t(bits) * groupWidth;
      }
      return acc;
    }
    unsigned bits = scheme.getWeightBits();
    auto groups = constantLoop(0, packed.getNumGroups(), 1, f32(0.f));
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(groups.getBody());
    Value g = groups.getInductionVar();
    Value firstBit = arith::MulIOp::create(b, loc, g, index(groupWidth * bits));
    Value sum = accumulateGroup(g, firstBit, bits, groups.getRegionIterArg(0));
    scf::YieldOp::create(b, loc, ValueRange{sum});
    return groups.getResult(0);
  }

  OpBuilder &b;
  Location loc;
  PackedWeightType packed;
  int64_t n = 0, k = 0;
  int64_t xStride = 0; // elements per activation row
  bool spirv = false;
  Attribute global; // memory space of the buffers
};

/// The tile a GEMM gets when `moeq-tile-expert-gemms` did not run: the
/// cost model's choice for `tokens` rows on the target's GPU.
TileConfigAttr defaultTile(MLIRContext *context, Type weightType, TargetAttr target,
                           int64_t tokens) {
  StringRef chip = target.getChip().getValue();
  const cost::GpuSpec *gpu = cost::defaultGpuForChip(chip);
  cost::GpuSpec limited = cost::limitToChip(gpu ? *gpu : *cost::lookupGpu("a100"), chip);
  return getTileConfig(context, chooseKernelFor(limited, tokens, weightType));
}

struct LowerExpertGemmsToGPUPass
    : mlir::moeq::impl::LowerExpertGemmsToGPUBase<LowerExpertGemmsToGPUPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    FailureOr<TargetAttr> target = resolveTarget(module);
    if (failed(target))
      return signalPassFailure();
    SymbolTable symbols(module);
    WalkResult result = module.walk([&](Operation *op) {
      if (auto gmm = dyn_cast<GroupedMatmulOp>(op)) {
        if (llvm::any_of(gmm.getWeights(), [](Value w) {
              return bool(w.getDefiningOp<DeltaWeightOp>());
            })) {
          gmm.emitError() << "GPU kernels for D^2-MoE weights need the split form of "
                             "moeq-decompose-moe (one base and one rank for all experts)";
          return WalkResult::interrupt();
        }
        if (gmm->hasAttr(kPersistentAttrName) && !spirv)
          return succeeded(lowerPersistent(module, symbols, gmm, *target))
                     ? WalkResult::advance()
                     : WalkResult::interrupt();
        SmallVector<Attribute> kernels, tiles;
        for (auto [g, weight] : llvm::enumerate(gmm.getWeights())) {
          TileConfigAttr tile =
              gmm.getTiles() ? cast<TileConfigAttr>((*gmm.getTiles())[g])
                             : defaultTile(&getContext(), weight.getType(), *target, 16);
          SymbolRefAttr kernel = getOrCreateKernel(module, symbols, weight.getType(), tile,
                                                   *target, gmm);
          if (!kernel)
            return WalkResult::interrupt();
          kernels.push_back(kernel);
          tiles.push_back(tile);
        }
        gmm.setKernelsAttr(ArrayAttr::get(&getContext(), kernels));
        gmm.setTilesAttr(ArrayAttr::get(&getContext(), tiles));
      } else if (auto linear = dyn_cast<LinearOp>(op)) {
        // Shared-expert (dense) linears run the same kernels with M = all tokens.
        Type weightType = linear.getWeight().getType();
        TileConfigAttr tile = linear.getTileAttr()
                                  ? linear.getTileAttr()
                                  : defaultTile(&getContext(), weightType, *target, 512);
        int64_t inputCols =
            linear.getLeadingInputs() ? linear.getInput().getType().getDimSize(1) : 0;
        SymbolRefAttr kernel =
            getOrCreateKernel(module, symbols, weightType, tile, *target, linear, inputCols);
        if (!kernel)
          return WalkResult::interrupt();
        linear.setKernelAttr(kernel);
        linear.setTileAttr(tile);
      }
      return WalkResult::advance();
    });
    if (result.wasInterrupted())
      return signalPassFailure();
    module->setAttr(gpu::GPUDialect::getContainerModuleAttrName(),
                    UnitAttr::get(&getContext()));
  }

  FailureOr<TargetAttr> resolveTarget(ModuleOp module) {
    if (auto attr = module->getAttrOfType<TargetAttr>(kTargetAttrName))
      return attr;
    auto diag = [&]() { return module.emitError(); };
    auto attr = TargetAttr::getChecked(diag, &getContext(),
                                       StringAttr::get(&getContext(), chip));
    if (!attr)
      return failure();
    module->setAttr(kTargetAttrName, attr);
    return attr;
  }

  gpu::GPUFuncOp createKernelModule(ModuleOp module, SymbolTable &symbols, StringRef name,
                                    TargetAttr target, ArrayRef<Type> argTypes,
                                    int64_t threads) {
    return mlir::moeq::createKernelModule(module, symbols, name, target, argTypes, threads,
                                          spirv);
  }

  /// One persistent kernel for all groups of `op` (moeq.persistent).
  LogicalResult lowerPersistent(ModuleOp module, SymbolTable &symbols, GroupedMatmulOp op,
                                TargetAttr target) {
    SmallVector<Type> types = llvm::to_vector(op.getWeights().getTypes());
    if (!op.getTiles())
      return op.emitError() << "'" << kPersistentAttrName << "' needs tiles";
    SmallVector<TileConfigAttr> tiles = llvm::map_to_vector(
        *op.getTiles(), [](Attribute a) { return cast<TileConfigAttr>(a); });
    std::string illegal = checkPersistentLaunch(types, tiles);
    if (!illegal.empty())
      return op.emitError() << "no persistent launch: " << illegal;
    // Every mix must have its tensor-core micro-kernel.
    for (auto [type, tile] : llvm::zip_equal(types, tiles))
      if (!checkTensorCoreTile(type, tile, target, op))
        return failure();
    std::string name = getGroupedKernelName(types, tiles);
    auto ref = SymbolRefAttr::get(&getContext(), name,
                                  {FlatSymbolRefAttr::get(&getContext(), name)});
    if (!symbols.lookup(name)) {
      OpBuilder b(&getContext());
      gpu::GPUFuncOp func = createKernelModule(
          module, symbols, name, target, getGroupedGemmArgumentTypes(&getContext(), types),
          tiles.front().getThreadsPerBlock());
      buildPersistentGroupedGemm(b, func, types, tiles);
      emitActivationQuantKernel(module, symbols, types.front(), target);
    }
    op.setKernelsAttr(ArrayAttr::get(&getContext(), SmallVector<Attribute>(types.size(), ref)));
    return success();
  }

  /// False (after an error on `user`) if no tensor-core kernel can be
  /// emitted for the tile.
  bool checkTensorCoreTile(Type weightType, TileConfigAttr tile, TargetAttr target,
                           Operation *user) {
    StringRef chip = target.getChip().getValue();
    if (tile.isWarpGroupMma() && !target.hasWarpGroupMMA()) {
      user->emitError() << "wgmma tile " << tile << " needs the sm_90a target, not " << chip;
      return false;
    }
    const cost::GpuSpec *gpu = cost::defaultGpuForChip(chip);
    // Shared memory within what the chip allows one CTA: never a kernel
    // that cannot launch.
    cost::GpuSpec limited = cost::limitToChip(gpu ? *gpu : *cost::lookupGpu("h100"), chip);
    if (cost::isEmittable(toCostTile(tile), getWeightFormat(weightType), limited,
                          getWeightShape(weightType)[1]) &&
        getWeightShape(weightType)[0] % 8 == 0)
      return true;
    user->emitError() << "no tensor-core kernel for " << weightType << " with tile " << tile;
    return false;
  }

  /// The per-token activation quantization of w8a8/w4a4 weights, once per K.
  void emitActivationQuantKernel(ModuleOp module, SymbolTable &symbols, Type weightType,
                                 TargetAttr target) {
    auto packed = dyn_cast<PackedWeightType>(weightType);
    if (!packed || !packed.getScheme().quantizesActivations())
      return;
    std::string quantName = getActivationQuantKernelName(packed);
    if (symbols.lookup(quantName))
      return;
    OpBuilder b(&getContext());
    gpu::GPUFuncOp quant = createKernelModule(
        module, symbols, quantName, target, getActivationQuantArgumentTypes(&getContext()), 32);
    buildActivationQuantKernel(b, quant, packed.getInputDim(), packed.getScheme().getActBits());
  }

  /// `inputCols` > K (a `leading_inputs` linear): the kernel takes rows of
  /// that many activations and reads their leading K; its name says so.
  SymbolRefAttr getOrCreateKernel(ModuleOp module, SymbolTable &symbols, Type weightType,
                                  TileConfigAttr tile, TargetAttr target, Operation *user,
                                  int64_t inputCols = 0) {
    if (tile.isTensorCore() && spirv) {
      user->emitError() << "the SPIR-V (OpenCL) kernels are SIMT only; got tile " << tile;
      return {};
    }
    if (tile.isTensorCore() && !checkTensorCoreTile(weightType, tile, target, user))
      return {};
    std::string name = getGemmKernelName(weightType, tile, inputCols);
    auto ref = SymbolRefAttr::get(&getContext(), name,
                                  {FlatSymbolRefAttr::get(&getContext(), name)});
    if (symbols.lookup(name))
      return ref;
    OpBuilder b(&getContext());
    if (!tile.isTensorCore()) {
      GemmKernelBuilder kernel(b, module.getLoc(), weightType, spirv, inputCols);
      gpu::GPUFuncOp func = createKernelModule(module, symbols, name, target,
                                               kernel.argumentTypes(), kBlockN);
      kernel.buildBody(func);
      return ref;
    }
    gpu::GPUFuncOp func = createKernelModule(
        module, symbols, name, target, getTensorCoreGemmArgumentTypes(&getContext(), weightType),
        tile.getThreadsPerBlock());
    buildTensorCoreGemm(b, func, weightType, tile, inputCols);
    // Weight-activation schemes: the per-token activation quantization
    // kernel that runs before the GEMM.
    emitActivationQuantKernel(module, symbols, weightType, target);
    // Split-K: the kernel that adds the slices' partial sums.
    if (tile.getSplitK() > 1) {
      int64_t n = getWeightShape(weightType)[0];
      std::string reduceName = getSplitKReduceKernelName(n, tile.getSplitK());
      if (!symbols.lookup(reduceName)) {
        gpu::GPUFuncOp reduce = createKernelModule(module, symbols, reduceName, target,
                                                   getSplitKReduceArgumentTypes(&getContext()),
                                                   kBlockN);
        buildSplitKReduceKernel(b, reduce, n, tile.getSplitK(), kBlockN);
      }
    }
    return ref;
  }
};

} // namespace
