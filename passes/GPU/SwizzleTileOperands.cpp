//===- SwizzleTileOperands.cpp - XOR swizzle of ldmatrix tiles -----------===//
//
// The mma.sync kernels' operand tiles in shared memory are rows of BK
// elements; ldmatrix reads 8 rows at one K offset. Rather than pad each
// row by 16 bytes, the tiles are swizzled by upstream's
// nvgpu::optimizeSharedMemoryReadsAndWrites (16-byte units XOR-ed with the
// row). This pass only chooses the views it applies to.
//
//===----------------------------------------------------------------------===//
#include "moeq/Passes/Passes.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/NVGPU/Transforms/Transforms.h"
#include "mlir/Interfaces/FunctionInterfaces.h"

#include "llvm/Support/MathExtras.h"

namespace mlir::moeq {
#define GEN_PASS_DEF_SWIZZLETILEOPERANDS
#include "moeq/Passes/Passes.h.inc"
} // namespace mlir::moeq

using namespace mlir;
using namespace mlir::moeq;

namespace {

/// Rows of 16 bytes are conflict-free without a swizzle (8 of them fill a
/// 128-byte line); upstream refuses them.
constexpr int64_t kMinSwizzledRowBytes = 32;

/// A tile ldmatrix reads, written only by cp.async chunks or plain stores,
/// with rows of a power of two of at least 32 bytes.
bool isSwizzledTile(memref::ViewOp view) {
  MemRefType type = view.getType();
  if (!gpu::GPUDialect::hasWorkgroupMemoryAddressSpace(type) || type.getRank() < 2 ||
      !type.hasStaticShape() || !type.getElementType().isIntOrFloat())
    return false;
  int64_t rowBytes = type.getDimSize(type.getRank() - 1) * type.getElementTypeBitWidth() / 8;
  if (rowBytes < kMinSwizzledRowBytes || !llvm::isPowerOf2_64(rowBytes))
    return false;
  bool readByLdMatrix = false;
  for (OpOperand &use : view->getUses()) {
    Operation *user = use.getOwner();
    if (isa<nvgpu::LdMatrixOp>(user)) {
      readByLdMatrix = true;
      continue;
    }
    if (auto copy = dyn_cast<nvgpu::DeviceAsyncCopyOp>(user);
        copy && copy.getDst() == view.getResult() && copy.getSrc() != view.getResult())
      continue;
    if (auto load = dyn_cast<memref::LoadOp>(user); load && load.getMemRef() == view.getResult())
      continue;
    if (auto store = dyn_cast<memref::StoreOp>(user);
        store && store.getMemRef() == view.getResult())
      continue;
    return false;
  }
  return readByLdMatrix;
}

struct SwizzleTileOperandsPass
    : mlir::moeq::impl::SwizzleTileOperandsBase<SwizzleTileOperandsPass> {
  void runOnOperation() override {
    SmallVector<memref::ViewOp> views;
    getOperation()->walk([&](memref::ViewOp view) {
      if (isSwizzledTile(view))
        views.push_back(view);
    });
    for (memref::ViewOp view : views) {
      // Every access of the view is inside the function that defines it.
      Operation *func = view->getParentOfType<FunctionOpInterface>();
      if (!func)
        func = view->getParentOp();
      if (failed(nvgpu::optimizeSharedMemoryReadsAndWrites(func, view.getResult()))) {
        view.emitError("cannot swizzle this shared-memory tile (its rows are not padded)");
        return signalPassFailure();
      }
    }
  }
};

} // namespace
