//===- EmulateGPUKernels.cpp - GPU kernels as CPU functions ---------------===//
//
// Makes the kernels of a module whose `gpu.module`s are lowered to NVVM
// (LLVM dialect + NVVM ops, before serialisation) runnable on the CPU: each
// kernel becomes a plain `llvm.func` of the host module in which every NVVM
// operation is a call into the GPU emulator runtime (lib/GPUEmulator), and
// every pointer is in the default address space. The code between those
// calls is exactly the kernel's: the emulator checks the very IR that
// becomes PTX.
//
//===----------------------------------------------------------------------===//
#include "moeq/Passes/Passes.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/IRMapping.h"

namespace mlir::moeq {
#define GEN_PASS_DEF_EMULATEGPUKERNELS
#include "moeq/Passes/Passes.h.inc"
} // namespace mlir::moeq

using namespace mlir;
using namespace mlir::moeq;

namespace {

/// Special registers by the index moeq_emu_sreg takes.
int specialRegister(StringRef name) {
  static const std::pair<StringRef, int> kRegisters[] = {
      {"nvvm.read.ptx.sreg.tid.x", 0},    {"nvvm.read.ptx.sreg.tid.y", 1},
      {"nvvm.read.ptx.sreg.tid.z", 2},    {"nvvm.read.ptx.sreg.ntid.x", 3},
      {"nvvm.read.ptx.sreg.ntid.y", 4},   {"nvvm.read.ptx.sreg.ntid.z", 5},
      {"nvvm.read.ptx.sreg.ctaid.x", 6},  {"nvvm.read.ptx.sreg.ctaid.y", 7},
      {"nvvm.read.ptx.sreg.ctaid.z", 8},  {"nvvm.read.ptx.sreg.nctaid.x", 9},
      {"nvvm.read.ptx.sreg.nctaid.y", 10}, {"nvvm.read.ptx.sreg.nctaid.z", 11},
      {"nvvm.read.ptx.sreg.laneid", 12},  {"nvvm.read.ptx.sreg.warpsize", 13}};
  for (auto [key, value] : kRegisters)
    if (key == name)
      return value;
  return -1;
}

class KernelRewriter {
public:
  KernelRewriter(ModuleOp host) : host(host), b(host.getContext()) {
    ctx = host.getContext();
    ptr = LLVM::LLVMPointerType::get(ctx);
    i32 = IntegerType::get(ctx, 32);
  }

  /// Rewrites `func` (already in the host module); fails on an NVVM
  /// operation the emulator does not know.
  LogicalResult rewrite(LLVM::LLVMFuncOp func) {
    stripTargetAttributes(func);
    flattenAddressSpaces(func);
    b.setInsertionPointToStart(&func.getBody().front());
    Location loc = func.getLoc();
    auto array = [&](int n) { return LLVM::LLVMArrayType::get(i32, n); };
    Value one = LLVM::ConstantOp::create(b, loc, i32, b.getI32IntegerAttr(1));
    // Operand and result buffers of the warp collectives, in the entry
    // block so that loops do not grow the stack.
    for (Value *buffer : {&bufA, &bufB, &bufC, &bufD})
      *buffer = LLVM::AllocaOp::create(b, loc, ptr, array(4), one);

    SmallVector<Operation *> nvvmOps;
    func.walk([&](Operation *op) {
      if (op->getDialect() && op->getDialect()->getNamespace() == "nvvm")
        nvvmOps.push_back(op);
      else if (auto cast = dyn_cast<LLVM::AddrSpaceCastOp>(op))
        nvvmOps.push_back(op);
      else if (auto address = dyn_cast<LLVM::AddressOfOp>(op))
        nvvmOps.push_back(op);
    });
    // Accumulators of warpgroup MMAs: up to 128 words in and out.
    if (llvm::any_of(nvvmOps, [](Operation *op) { return isa<NVVM::WgmmaMmaAsyncOp>(op); })) {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointAfter(one.getDefiningOp());
      bufWgmmaIn = LLVM::AllocaOp::create(b, loc, ptr, array(128), one);
      bufWgmmaOut = LLVM::AllocaOp::create(b, loc, ptr, array(128), one);
    }
    for (Operation *op : nvvmOps)
      if (failed(rewriteOp(op)))
        return failure();
    return success();
  }

private:
  void stripTargetAttributes(LLVM::LLVMFuncOp func) {
    SmallVector<StringAttr> drop;
    for (NamedAttribute attr : func->getDiscardableAttrs())
      if (attr.getName().strref().starts_with("nvvm.") ||
          attr.getName().strref().starts_with("gpu."))
        drop.push_back(attr.getName());
    for (StringAttr name : drop)
      func->removeAttr(name);
  }

  /// `type` with every pointer (also inside structs and arrays, e.g. memref
  /// descriptors) in the default address space.
  Type flatten(Type type) {
    if (isa<LLVM::LLVMPointerType>(type))
      return ptr;
    if (auto structType = dyn_cast<LLVM::LLVMStructType>(type)) {
      if (structType.isIdentified())
        return type;
      SmallVector<Type> body =
          llvm::map_to_vector(structType.getBody(), [&](Type t) { return flatten(t); });
      return LLVM::LLVMStructType::getLiteral(ctx, body, structType.isPacked());
    }
    if (auto array = dyn_cast<LLVM::LLVMArrayType>(type))
      return LLVM::LLVMArrayType::get(flatten(array.getElementType()), array.getNumElements());
    return type;
  }

  /// Every pointer to global or shared memory becomes a plain pointer.
  void flattenAddressSpaces(LLVM::LLVMFuncOp func) {
    auto flatten = [&](Type type) -> Type { return this->flatten(type); };
    auto fnType = func.getFunctionType();
    SmallVector<Type> params = llvm::map_to_vector(fnType.getParams(), flatten);
    func.setFunctionType(LLVM::LLVMFunctionType::get(flatten(fnType.getReturnType()), params,
                                                     fnType.isVarArg()));
    func.walk([&](Block *block) {
      for (BlockArgument arg : block->getArguments())
        arg.setType(flatten(arg.getType()));
    });
    func.walk([&](Operation *op) {
      for (OpResult result : op->getResults())
        result.setType(flatten(result.getType()));
    });
  }

  LLVM::LLVMFuncOp declare(StringRef name, Type result, ArrayRef<Type> params) {
    if (auto existing = host.lookupSymbol<LLVM::LLVMFuncOp>(name))
      return existing;
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(host.getBody());
    return LLVM::LLVMFuncOp::create(b, host.getLoc(), name,
                                    LLVM::LLVMFunctionType::get(result, params));
  }

  Value call(Location loc, StringRef name, Type result, ValueRange args) {
    SmallVector<Type> params = llvm::map_to_vector(args, [](Value v) { return v.getType(); });
    LLVM::LLVMFuncOp callee =
        declare(name, result ? result : LLVM::LLVMVoidType::get(ctx), params);
    auto op = LLVM::CallOp::create(b, loc, callee, args);
    return result ? op.getResult() : Value();
  }

  Value constI32(Location loc, int64_t v) {
    return LLVM::ConstantOp::create(b, loc, i32, b.getI32IntegerAttr(int32_t(v)));
  }

  /// The 32 bits of a register value (i32, f32 or vector<2xf16>).
  Value bits(Location loc, Value v) {
    return v.getType() == i32 ? v : LLVM::BitcastOp::create(b, loc, i32, v).getResult();
  }
  Value fromBits(Location loc, Value v, Type type) {
    return type == i32 ? v : LLVM::BitcastOp::create(b, loc, type, v).getResult();
  }

  void storeWords(Location loc, Value buffer, ValueRange values) {
    for (auto [i, v] : llvm::enumerate(values)) {
      Value slot = LLVM::GEPOp::create(b, loc, ptr, i32, buffer,
                                       ArrayRef<LLVM::GEPArg>{int32_t(i)});
      LLVM::StoreOp::create(b, loc, bits(loc, v), slot);
    }
  }
  Value loadWord(Location loc, Value buffer, int i) {
    Value slot = LLVM::GEPOp::create(b, loc, ptr, i32, buffer, ArrayRef<LLVM::GEPArg>{i});
    return LLVM::LoadOp::create(b, loc, i32, slot);
  }

  /// A struct (or single value) of `type` from `count` words of `buffer`.
  Value loadResult(Location loc, Value buffer, Type type) {
    auto structType = dyn_cast<LLVM::LLVMStructType>(type);
    if (!structType)
      return fromBits(loc, loadWord(loc, buffer, 0), type);
    Value result = LLVM::PoisonOp::create(b, loc, type);
    for (auto [i, element] : llvm::enumerate(structType.getBody()))
      result = LLVM::InsertValueOp::create(
          b, loc, result, fromBits(loc, loadWord(loc, buffer, int(i)), element),
          ArrayRef<int64_t>{int64_t(i)});
    return result;
  }

  LogicalResult rewriteOp(Operation *op) {
    Location loc = op->getLoc();
    b.setInsertionPoint(op);
    StringRef name = op->getName().getStringRef();
    Value replacement;
    if (int reg = specialRegister(name); reg >= 0) {
      replacement = call(loc, "moeq_emu_sreg", i32, {constI32(loc, reg)});
    } else if (isa<NVVM::Barrier0Op>(op)) {
      call(loc, "moeq_emu_barrier", Type(), {});
    } else if (auto copy = dyn_cast<NVVM::CpAsyncOp>(op)) {
      int64_t size = copy.getSizeAttr().getInt();
      Value srcBytes = copy.getCpSize() ? copy.getCpSize() : constI32(loc, size);
      call(loc, "moeq_emu_cp_async", Type(),
           {copy.getDst(), copy.getSrc(), constI32(loc, size), srcBytes});
    } else if (isa<NVVM::CpAsyncCommitGroupOp, NVVM::CpAsyncWaitGroupOp>(op)) {
      // Copies complete at once in the emulator.
    } else if (auto ld = dyn_cast<NVVM::LdMatrixOp>(op)) {
      if (ld.getEltType() != NVVM::LdStMatrixEltType::B16 || ld.getShape().getM() != 8)
        return op->emitError("the GPU emulator runs only ldmatrix .m8n8 .b16");
      int64_t num = ld.getNumAttr().getInt();
      bool transpose = ld.getLayout() == NVVM::MMALayout::col;
      call(loc, "moeq_emu_ldmatrix", Type(),
           {ld.getPtr(), constI32(loc, num), constI32(loc, transpose), bufD});
      replacement = loadResult(loc, bufD, ld.getRes().getType());
    } else if (auto mma = dyn_cast<NVVM::MmaOp>(op)) {
      FailureOr<int> kind = mmaKind(mma);
      if (failed(kind))
        return op->emitError("the GPU emulator runs mma.sync m16n8k16 f16 (f32 "
                             "accumulators), m16n8k32 s8 and m16n8k64 s4 only");
      storeWords(loc, bufA, mma.getOperandA());
      storeWords(loc, bufB, mma.getOperandB());
      storeWords(loc, bufC, mma.getOperandC());
      call(loc, "moeq_emu_mma", Type(), {constI32(loc, *kind), bufA, bufB, bufC, bufD});
      replacement = loadResult(loc, bufD, mma.getRes().getType());
    } else if (auto wgmma = dyn_cast<NVVM::WgmmaMmaAsyncOp>(op)) {
      NVVM::MMAShapeAttr shape = wgmma.getShape();
      if (shape.getM() != 64 || shape.getK() != 16 ||
          wgmma.getTypeA() != NVVM::WGMMATypes::f16 ||
          wgmma.getTypeB() != NVVM::WGMMATypes::f16 ||
          wgmma.getTypeD() != NVVM::WGMMATypes::f32 ||
          wgmma.getScaleD() != NVVM::WGMMAScaleOut::one ||
          wgmma.getScaleA() != NVVM::WGMMAScaleIn::one ||
          wgmma.getScaleB() != NVVM::WGMMAScaleIn::one ||
          wgmma.getLayoutA() != NVVM::MMALayout::row || wgmma.getLayoutB() != NVVM::MMALayout::col)
        return op->emitError("the GPU emulator runs wgmma.mma_async m64nNk16 f32 += f16 x f16 "
                             "(K-major operands, accumulating) only");
      auto structType = cast<LLVM::LLVMStructType>(wgmma.getInouts().getType());
      SmallVector<Value> words;
      for (auto [i, element] : llvm::enumerate(structType.getBody()))
        words.push_back(LLVM::ExtractValueOp::create(b, loc, element, wgmma.getInouts(),
                                                     ArrayRef<int64_t>{int64_t(i)}));
      storeWords(loc, bufWgmmaIn, words);
      call(loc, "moeq_emu_wgmma", Type(),
           {wgmma.getDescriptorA(), wgmma.getDescriptorB(), constI32(loc, shape.getN()),
            bufWgmmaIn, bufWgmmaOut});
      replacement = loadResult(loc, bufWgmmaOut, structType);
    } else if (isa<NVVM::WgmmaFenceAlignedOp, NVVM::WgmmaGroupSyncAlignedOp,
                   NVVM::WgmmaWaitGroupSyncOp, NVVM::FenceProxyOp, NVVM::FenceMbarrierInitOp>(
                   op)) {
      // wgmma completes at once in the emulator, and it has one proxy.
    } else if (auto init = dyn_cast<NVVM::MBarrierInitOp>(op)) {
      if (init.getPredicate())
        return op->emitError("the GPU emulator runs mbarrier.init without a predicate");
      call(loc, "moeq_emu_mbarrier_init", Type(), {init.getAddr(), init.getCount()});
    } else if (auto arrive = dyn_cast<NVVM::MBarrierArriveExpectTxOp>(op)) {
      if (arrive.getPredicate() || arrive.getRes() ||
          arrive.getScope() != NVVM::MemScopeKind::CTA)
        return op->emitError("the GPU emulator runs mbarrier.arrive.expect_tx of the CTA, "
                             "without a predicate or result");
      call(loc, "moeq_emu_mbarrier_arrive_expect_tx", Type(),
           {arrive.getAddr(), arrive.getTxcount()});
    } else if (auto wait = dyn_cast<NVVM::MBarrierTryWaitParityOp>(op)) {
      call(loc, "moeq_emu_mbarrier_wait_parity", Type(), {wait.getAddr(), wait.getPhase()});
    } else if (auto bulk = dyn_cast<NVVM::CpAsyncBulkGlobalToSharedClusterOp>(op)) {
      if (bulk.getMulticastMask() || bulk.getL2CacheHint())
        return op->emitError("the GPU emulator runs cp.async.bulk without multicast or cache "
                             "hints");
      call(loc, "moeq_emu_cp_async_bulk", Type(),
           {bulk.getDstMem(), bulk.getSrcMem(), bulk.getSize(), bulk.getMbar()});
    } else if (auto shfl = dyn_cast<NVVM::ShflOp>(op)) {
      // moeq_emu_shfl modes: 0 up, 1 down, 2 bfly, 3 idx.
      int mode = 0;
      switch (shfl.getKind()) {
      case NVVM::ShflKind::up: mode = 0; break;
      case NVVM::ShflKind::down: mode = 1; break;
      case NVVM::ShflKind::bfly: mode = 2; break;
      case NVVM::ShflKind::idx: mode = 3; break;
      }
      Type valueType = shfl.getVal().getType();
      Value result = call(loc, "moeq_emu_shfl", i32,
                          {constI32(loc, mode), bits(loc, shfl.getVal()), shfl.getOffset()});
      replacement = fromBits(loc, result, valueType);
      if (auto structType = dyn_cast<LLVM::LLVMStructType>(shfl.getRes().getType())) {
        Value pair = LLVM::PoisonOp::create(b, loc, structType);
        pair = LLVM::InsertValueOp::create(b, loc, pair, replacement, ArrayRef<int64_t>{0});
        Value valid = LLVM::ConstantOp::create(b, loc, b.getI1Type(), b.getBoolAttr(true));
        replacement = LLVM::InsertValueOp::create(b, loc, pair, valid, ArrayRef<int64_t>{1});
      }
    } else if (auto cast = dyn_cast<LLVM::AddrSpaceCastOp>(op)) {
      replacement = cast.getArg();
    } else if (auto address = dyn_cast<LLVM::AddressOfOp>(op)) {
      auto global = host.lookupSymbol<LLVM::GlobalOp>(address.getGlobalName());
      if (!global || !global.getSymName().starts_with("__dynamic_shmem__"))
        return success(); // a global of the host module: nothing to do
      replacement = call(loc, "moeq_emu_shared", ptr, {});
    } else {
      return op->emitError() << "the GPU emulator has no model of '" << name << "'";
    }
    if (replacement)
      op->getResult(0).replaceAllUsesWith(replacement);
    op->erase();
    return success();
  }

  FailureOr<int> mmaKind(NVVM::MmaOp mma) {
    NVVM::MMAShapeAttr shape = mma.getShape();
    if (shape.getM() != 16 || shape.getN() != 8)
      return failure();
    auto typeA = mma.getMultiplicandAPtxTypeAttr();
    bool f16 = !typeA || typeA.getValue() == NVVM::MMATypes::f16;
    if (shape.getK() == 16 && f16 && isa<VectorType>(mma.getOperandA().front().getType()) &&
        cast<LLVM::LLVMStructType>(mma.getRes().getType()).getBody().front().isF32())
      return 0;
    if (shape.getK() == 32 && typeA && typeA.getValue() == NVVM::MMATypes::s8)
      return 1;
    if (shape.getK() == 64 && typeA && typeA.getValue() == NVVM::MMATypes::s4)
      return 2;
    return failure();
  }

  ModuleOp host;
  OpBuilder b;
  MLIRContext *ctx;
  Type ptr, i32;
  Value bufA, bufB, bufC, bufD;
  Value bufWgmmaIn, bufWgmmaOut;
};

struct EmulateGPUKernelsPass
    : mlir::moeq::impl::EmulateGPUKernelsBase<EmulateGPUKernelsPass> {
  void runOnOperation() override {
    ModuleOp host = getOperation();
    SmallVector<gpu::GPUModuleOp> gpuModules(host.getOps<gpu::GPUModuleOp>());
    OpBuilder b(&getContext());
    SmallVector<LLVM::LLVMFuncOp> kernels;
    for (gpu::GPUModuleOp gpuModule : gpuModules) {
      for (Operation &op : gpuModule.getBody()->getOperations()) {
        auto func = dyn_cast<LLVM::LLVMFuncOp>(op);
        if (!func) {
          // Globals (dynamic shared memory, constant tables) are cloned into
          // the host below.
          if (isa<LLVM::GlobalOp>(op))
            continue;
          op.emitError("the GPU emulator needs gpu.modules lowered to NVVM (llvm.func)");
          return signalPassFailure();
        }
        if (func.isExternal() || host.lookupSymbol<LLVM::LLVMFuncOp>(func.getSymName()))
          continue;
        b.setInsertionPointToEnd(host.getBody());
        kernels.push_back(cast<LLVM::LLVMFuncOp>(b.clone(op)));
      }
    }
    // The shared-memory globals resolve in the host while rewriting.
    for (gpu::GPUModuleOp gpuModule : gpuModules)
      for (auto global : gpuModule.getOps<LLVM::GlobalOp>())
        if (!host.lookupSymbol(global.getSymName())) {
          b.setInsertionPointToEnd(host.getBody());
          b.clone(*global);
        }
    KernelRewriter rewriter(host);
    for (LLVM::LLVMFuncOp kernel : kernels)
      if (failed(rewriter.rewrite(kernel)))
        return signalPassFailure();
    for (gpu::GPUModuleOp gpuModule : gpuModules)
      gpuModule.erase();
    for (auto global : llvm::make_early_inc_range(host.getOps<LLVM::GlobalOp>()))
      if (global.getSymName().starts_with("__dynamic_shmem__"))
        global.erase();
    host->removeAttr(gpu::GPUDialect::getContainerModuleAttrName());
  }
};

} // namespace
