//===- LowerTileOps.cpp - tensor-core tile ops to nvgpu ------------------===//
//
// The last step of the tensor-core kernels above nvgpu: a tile copy
// (moeq.load_tile_async) becomes each thread's cp.async chunks, a warp's
// MMA block (moeq.mma_tile) its nvgpu.mma.sync products. One pattern per op.
//
//===----------------------------------------------------------------------===//
#include "moeq/Dialect/MoEQ/IR/MoEQ.h"
#include "moeq/Passes/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::moeq {
#define GEN_PASS_DEF_LOWERTILEOPS
#include "moeq/Passes/Passes.h.inc"
} // namespace mlir::moeq

using namespace mlir;
using namespace mlir::moeq;

namespace {

/// Chunk `c` of the tile is row c / perRow, element (c % perRow) * chunk of
/// it. Thread t copies chunks t, t + threads, ...; threads past the last
/// chunk repeat it (same source, same destination) rather than branch, so
/// that every copy is in the block of the group that commits it.
struct LoadTileAsyncLowering : OpRewritePattern<LoadTileAsyncOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(LoadTileAsyncOp op, PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    auto index = [&](int64_t v) -> Value {
      return arith::ConstantIndexOp::create(rewriter, loc, v);
    };
    MemRefType tiles = op.getTiles().getType();
    int64_t rows = tiles.getDimSize(1), chunk = op.getChunk(), threads = op.getThreads();
    int64_t elementBytes = tiles.getElementType().getIntOrFloatBitWidth() / 8;
    int64_t chunksPerRow = op.getColumns() / chunk;
    int64_t chunks = rows * chunksPerRow;
    Value perRow = op.getChunksPerRow() ? op.getChunksPerRow() : index(chunksPerRow);
    // With a run-time row length the last chunk is rows * perRow - 1.
    Value lastChunk;
    if (op.getChunksPerRow()) {
      Value dynamicChunks = arith::MulIOp::create(rewriter, loc, perRow, index(rows));
      lastChunk = arith::SubIOp::create(rewriter, loc, dynamicChunks, index(1));
    }
    // Rows past `bound` read from its last row (nothing is read from it).
    Value atLeastOne = rewriter.createOrFold<arith::MaxUIOp>(loc, op.getBound(), index(1));
    Value lastRow = rewriter.createOrFold<arith::SubIOp>(loc, atLeastOne, index(1));
    Value thread = gpu::ThreadIdOp::create(rewriter, loc, gpu::Dimension::x);
    for (int64_t it = 0; it < (chunks + threads - 1) / threads; ++it) {
      Value chunkIndex = arith::AddIOp::create(rewriter, loc, thread, index(it * threads));
      if (lastChunk)
        chunkIndex = arith::MinUIOp::create(rewriter, loc, chunkIndex, lastChunk);
      else if ((it + 1) * threads > chunks)
        chunkIndex = arith::MinUIOp::create(rewriter, loc, chunkIndex, index(chunks - 1));
      Value row = arith::DivUIOp::create(rewriter, loc, chunkIndex, perRow);
      Value chunkInRow = arith::RemUIOp::create(rewriter, loc, chunkIndex, perRow);
      Value col = arith::MulIOp::create(rewriter, loc, chunkInRow, index(chunk));
      Value sourceRow = arith::AddIOp::create(rewriter, loc, op.getRow(), row);
      Value valid = arith::CmpIOp::create(rewriter, loc, arith::CmpIPredicate::ult, sourceRow,
                                          op.getBound());
      if (op.getEnabled())
        valid = arith::AndIOp::create(rewriter, loc, op.getEnabled(), valid);
      Value safeRow = arith::MinUIOp::create(rewriter, loc, sourceRow, lastRow);
      Value sourceCol = arith::AddIOp::create(rewriter, loc, op.getColumn(), col);
      SmallVector<Value> source{safeRow, sourceCol};
      SmallVector<Value> destination{op.getStage(), row, col};
      if (chunk * elementBytes < 4) {
        // Below cp.async's 4 bytes: a plain load and store, visible after
        // the barrier that precedes any use.
        Value v = memref::LoadOp::create(rewriter, loc, op.getSource(), source);
        Value zero = arith::ConstantOp::create(rewriter, loc, v.getType(),
                                               rewriter.getZeroAttr(v.getType()));
        Value kept = arith::SelectOp::create(rewriter, loc, valid, v, zero);
        memref::StoreOp::create(rewriter, loc, kept, op.getTiles(), destination);
        continue;
      }
      Value count = arith::SelectOp::create(rewriter, loc, valid, index(chunk), index(0));
      // 16-byte copies bypass L1 (cp.async.cg): a tile is read once.
      nvgpu::DeviceAsyncCopyOp::create(rewriter, loc, op.getTiles(), destination, op.getSource(),
                                       source, rewriter.getIndexAttr(chunk), count,
                                       chunk * elementBytes == 16 ? rewriter.getUnitAttr()
                                                                  : UnitAttr());
    }
    rewriter.eraseOp(op);
    return success();
  }
};

/// Product (i, j) is one mma.sync, in row-major order.
struct MmaTileLowering : OpRewritePattern<MmaTileOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(MmaTileOp op, PatternRewriter &rewriter) const override {
    SmallVector<Value> results;
    size_t columns = op.getRhs().size();
    for (auto [i, lhs] : llvm::enumerate(op.getLhs()))
      for (auto [j, rhs] : llvm::enumerate(op.getRhs()))
        results.push_back(nvgpu::MmaSyncOp::create(rewriter, op.getLoc(), lhs, rhs,
                                                   op.getAcc()[i * columns + j],
                                                   op.getMmaShape()));
    rewriter.replaceOp(op, results);
    return success();
  }
};

struct LowerTileOpsPass : mlir::moeq::impl::LowerTileOpsBase<LowerTileOpsPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateTileOpLoweringPatterns(patterns);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
  }
};

} // namespace

void mlir::moeq::populateTileOpLoweringPatterns(RewritePatternSet &patterns) {
  patterns.add<LoadTileAsyncLowering, MmaTileLowering>(patterns.getContext());
}
