//===- KernelSharedMemoryTest.cpp - one shared-memory size, the kernel's --===//
//
// The shared memory the cost model checks a tile against must be the
// memory the tensor-core kernel uses and the launch asks for. For every
// candidate tile the emitter can build (on every GPU of the cost model)
// and the schemes the allocator chooses: the cost model's size equals the
// lowering's (getKernelSharedBytes, the manifest's shared_memory_bytes),
// it fits the GPU's per-CTA opt-in maximum, and the kernel itself (its
// memref.view buffers over the dynamic shared memory) ends exactly there.
//
//===----------------------------------------------------------------------===//
#include "moeq/CostModel/CostModel.h"
#include "moeq/Dialect/MoEQ/IR/MoEQ.h"
#include "moeq/Passes/Kernels.h"
#include "moeq/Passes/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"

#include "gtest/gtest.h"

#include <set>

using namespace mlir;
using namespace mlir::moeq;

namespace {

class KernelSharedMemory : public ::testing::Test {
protected:
  KernelSharedMemory() {
    DialectRegistry registry;
    registerAllMoEQDependencies(registry);
    context.appendDialectRegistry(registry);
    context.loadAllAvailableDialects();
  }

  Type packed(StringRef scheme, int64_t n, int64_t k, ArrayRef<int64_t> groupBits = {}) {
    std::string error;
    SchemeAttr attr = SchemeAttr::fromMangledName(&context, scheme, error);
    EXPECT_TRUE(attr) << error;
    return PackedWeightType::get(&context, {n, k}, attr, groupBits);
  }
  Type f16(int64_t n, int64_t k) {
    return RankedTensorType::get({n, k}, Float16Type::get(&context));
  }

  /// The end of the kernel's last shared-memory buffer: the largest
  /// offset + size of the memref.views over the dynamic shared memory.
  int64_t kernelSharedEnd(Type weightType, TileConfigAttr tile) {
    StringRef chip = tile.isWarpGroupMma() ? "sm_90a" : "sm_90";
    OwningOpRef<ModuleOp> module = buildSingleGemmModule(&context, weightType, tile, chip);
    PassManager pm(&context);
    LowerExpertGemmsToGPUOptions lowering;
    lowering.chip = chip.str();
    pm.addPass(createLowerExpertGemmsToGPU(lowering));
    if (!module || failed(pm.run(*module)))
      return -1;
    int64_t end = 0;
    module->walk([&](memref::ViewOp view) {
      auto shift = view.getByteShift().getDefiningOp<arith::ConstantIndexOp>();
      MemRefType type = view.getType();
      int64_t bytes = type.getNumElements() * type.getElementTypeBitWidth() / 8;
      end = std::max(end, (shift ? shift.value() : -1 << 30) + bytes);
    });
    return end;
  }

  MLIRContext context;
};

TEST_F(KernelSharedMemory, CostModelLoweringAndKernelAgreeForEveryCandidateTile) {
  int64_t n = 256;
  SmallVector<std::pair<std::string, Type>> types = {
      {"f16 k4096", f16(n, 4096)},
      {"w8a16pca k4096", packed("w8a16pca", n, 4096)},
      {"w4a16g128a k4096", packed("w4a16g128a", n, 4096)},
      {"w3a16g128a k4096", packed("w3a16g128a", n, 4096)},
      {"w3a16g128a k14336", packed("w3a16g128a", n, 14336)},
      {"w2a16g128a k4096", packed("w2a16g128a", n, 4096)},
      {"w1a16g128a k4096", packed("w1a16g128a", n, 4096)},
      {"w5a16g128a k512", packed("w5a16g128a", n, 512)},
      {"w3a16g128a gb 2-4-3-3 k512", packed("w3a16g128a", n, 512, {2, 4, 3, 3})},
      {"w2a16g128a gb 1-3 k256", packed("w2a16g128a", n, 256, {1, 3})},
      {"w3a16g64a_lut k4096", packed("w3a16g64a_lut", n, 4096)},
      {"w8a8pcs k4096", packed("w8a8pcs", n, 4096)},
      {"w4a4g128s k4096", packed("w4a4g128s", n, 4096)},
  };
  int64_t checkedKernels = 0;
  for (auto &[label, type] : types) {
    int64_t k = getWeightShape(type)[1];
    cost::WeightFormat format = getWeightFormat(type);
    std::set<std::string> built;
    // Every GPU for its own chip, and the Hopper ones for sm_90a (wgmma).
    std::vector<cost::GpuSpec> gpus(cost::knownGpus().begin(), cost::knownGpus().end());
    for (const cost::GpuSpec &gpu : cost::knownGpus())
      if (gpu.chip == "sm_90")
        gpus.push_back(cost::limitToChip(gpu, "sm_90a"));
    for (const cost::GpuSpec &gpu : gpus)
      for (const cost::Tile &t : cost::candidateTiles()) {
        if (!cost::isEmittable(t, format, gpu, k))
          continue;
        KernelFamily family = t.warpGroup ? KernelFamily::WarpGroupMma : KernelFamily::TensorCore;
        TileConfigAttr tile = TileConfigAttr::get(&context, family, t.bm, t.bn, t.bk, t.warps,
                                                  t.stages, t.splitK);
        int64_t lowering = getKernelSharedBytes(type, tile);
        int64_t model = cost::sharedBytesPerCta(t, format, k);
        EXPECT_EQ(model, lowering) << label << " " << t.str();
        EXPECT_LE(lowering, gpu.maxSharedBytesPerCta) << label << " " << t.str() << " on "
                                                      << gpu.name.str();
        // The kernel's buffers: split-K does not change them.
        cost::Tile layoutTile = t;
        layoutTile.splitK = 1;
        if (!built.insert(layoutTile.str()).second)
          continue;
        EXPECT_EQ(kernelSharedEnd(type, tile), lowering) << label << " " << t.str();
        ++checkedKernels;
      }
  }
  EXPECT_GT(checkedKernels, 500);
}

// The opt-in maximum, not the SM's capacity, bounds one CTA: 64 x 256 x
// 128 f16 on 8 warps, 3 stages of unpadded rows, needs 240 KiB, over the
// 227 KiB a CTA may use on H100 (though under the SM's 228 KiB).
TEST_F(KernelSharedMemory, TilesOverThePerCtaMaximumAreNotEmittable) {
  const cost::GpuSpec &h100 = *cost::lookupGpu("h100");
  cost::Tile tile{64, 256, 128, 8, 3, 1};
  cost::WeightFormat f16;
  EXPECT_EQ(cost::sharedBytesPerCta(tile, f16, 4096), 245760);
  EXPECT_GT(cost::sharedBytesPerCta(tile, f16, 4096), h100.maxSharedBytesPerCta);
  EXPECT_FALSE(cost::isEmittable(tile, f16, h100, 4096));
  // sm_80 allows 163 KiB even when another GPU is priced.
  cost::GpuSpec forSm80 = cost::limitToChip(h100, "sm_80");
  EXPECT_EQ(forSm80.maxSharedBytesPerCta, 163 * 1024);
  cost::Tile a100Over{128, 256, 64, 8, 4, 1}; // 196608 bytes
  EXPECT_EQ(cost::sharedBytesPerCta(a100Over, f16, 4096), 196608);
  EXPECT_TRUE(cost::isEmittable(a100Over, f16, h100, 4096));
  EXPECT_FALSE(cost::isEmittable(a100Over, f16, forSm80, 4096));
}

} // namespace
