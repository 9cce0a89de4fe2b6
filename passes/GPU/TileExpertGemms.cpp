//===- TileExpertGemms.cpp - kernel path and tile per precision mix -------===//
//
// MxMoE's kernel tiling: the expert GEMMs of a `moeq.grouped_matmul` are
// grouped by precision mix (the weight type: scheme, group widths, shape),
// and each mix gets the kernel the cost model predicts fastest at the
// expected rows per expert: the tensor-core kernel with its tile (BM, BN,
// BK, warps, stages) or the SIMT decode kernel. Rows per expert are
// `tokens * top_k / experts` (uniform routing), `top_k` read from the
// dispatch feeding the op; shared-expert linears see all `tokens`.
//
//===----------------------------------------------------------------------===//
#include "moeq/Dialect/MoEQ/IR/MoEQ.h"
#include "moeq/Passes/Kernels.h"
#include "moeq/Passes/Passes.h"

#include "mlir/IR/BuiltinOps.h"

#include <cmath>

namespace mlir::moeq {
#define GEN_PASS_DEF_TILEEXPERTGEMMS
#include "moeq/Passes/Passes.h.inc"
} // namespace mlir::moeq

using namespace mlir;
using namespace mlir::moeq;

namespace {

struct TileExpertGemmsPass : mlir::moeq::impl::TileExpertGemmsBase<TileExpertGemmsPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (tokens <= 0) {
      module.emitError() << "tokens must be positive, got " << int64_t(tokens);
      return signalPassFailure();
    }
    const cost::GpuSpec *gpu = resolveCostModelGpu(module, gpuName);
    if (!gpu)
      return signalPassFailure();
    std::optional<cost::KernelPath> path = parseKernelPath(kernelPath);
    if (!path) {
      module.emitError() << "kernel path must be auto, mma or simt, got '" << kernelPath << "'";
      return signalPassFailure();
    }
    auto choose = [&](Operation *op, int64_t rows, Type weightType) {
      cost::KernelChoice choice = chooseKernelFor(*gpu, rows, weightType, *path);
      if (*path == cost::KernelPath::TensorCore && !choice.tensorCore)
        op->emitWarning() << "no tensor-core tile can be emitted for " << weightType
                          << "; using the SIMT kernel";
      return getTileConfig(&getContext(), choice);
    };
    module.walk([&](GroupedMatmulOp op) {
      int64_t rows = rowsPerExpert(op);
      // One choice per precision mix: groups with equal weight types share it.
      llvm::DenseMap<Type, TileConfigAttr> perMix;
      SmallVector<Attribute> tiles;
      for (Value weight : op.getWeights()) {
        TileConfigAttr &tile = perMix[weight.getType()];
        if (!tile)
          tile = choose(op, rows, weight.getType());
        tiles.push_back(tile);
      }
      op.setTilesAttr(ArrayAttr::get(&getContext(), tiles));
      op->setAttr("moeq.rows_per_expert",
                  IntegerAttr::get(IntegerType::get(&getContext(), 64), rows));
    });
    module.walk([&](LinearOp op) {
      op.setTileAttr(choose(op, tokens, op.getWeight().getType()));
    });
  }

  /// Expected rows of each group: tokens * top_k / experts.
  int64_t rowsPerExpert(GroupedMatmulOp op) {
    int64_t groups = op.getWeights().size();
    int64_t topK = 1;
    if (auto dispatch = op.getOffsets().getDefiningOp<DispatchOp>()) {
      int64_t k = dispatch.getIndices().getType().getDimSize(1);
      if (k != ShapedType::kDynamic)
        topK = k;
      groups = dispatch.getNumExperts();
    }
    return std::max<int64_t>(1, int64_t(std::ceil(double(tokens) * topK / groups)));
  }
};

} // namespace
