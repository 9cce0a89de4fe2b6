//===- LowerTileOps.cpp - tensor-core tile ops to nvgpu ------------------===//
//
// The last step of the tensor-core kernels above nvgpu: a tile copy
// (moeq.load_tile_async) becomes each thread's cp.async chunks, a warp's
// MMA block (moeq.mma_tile) its nvgpu.mma.sync products, the epilogue
// (moeq.store_tile) guarded vector stores, a warpgroup's MMAs
// (moeq.warpgroup_mma) NVVM wgmma operations. One pattern per op.
//
//===----------------------------------------------------------------------===//
#include "moeq/Dialect/MoEQ/IR/MoEQ.h"
#include "moeq/Passes/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/UB/IR/UBOps.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::moeq {
#define GEN_PASS_DEF_LOWERTILEOPS
#include "moeq/Passes/Passes.h.inc"
} // namespace mlir::moeq

using namespace mlir;
using namespace mlir::moeq;

namespace {

Value constantIndex(OpBuilder &b, Location loc, int64_t value) {
  return arith::ConstantIndexOp::create(b, loc, value);
}

/// The thread's lane in its warp: the fragment layouts are per lane.
Value laneId(OpBuilder &b, Location loc) {
  Value thread = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
  return arith::RemUIOp::create(b, loc, thread, constantIndex(b, loc, 32));
}

/// An LLVM pointer (address space `addressSpace`: 1 global, 3 shared) to
/// element `indices` of `memref` (identity layout).
Value elementPointer(OpBuilder &b, Location loc, Value memref, ValueRange indices,
                     unsigned addressSpace) {
  auto type = cast<MemRefType>(memref.getType());
  SmallVector<int64_t> strides;
  int64_t offset;
  (void)type.getStridesAndOffset(strides, offset);
  Value address = memref::ExtractAlignedPointerAsIndexOp::create(b, loc, memref);
  int64_t elementBytes = type.getElementTypeBitWidth() / 8;
  for (auto [index, stride] : llvm::zip_equal(indices, strides)) {
    Value bytes = arith::MulIOp::create(b, loc, index, constantIndex(b, loc, stride * elementBytes));
    address = arith::AddIOp::create(b, loc, address, bytes);
  }
  Value integer = arith::IndexCastUIOp::create(b, loc, b.getI64Type(), address);
  return LLVM::IntToPtrOp::create(
      b, loc, LLVM::LLVMPointerType::get(b.getContext(), addressSpace), integer);
}

Value constantI32(OpBuilder &b, Location loc, int64_t value) {
  return arith::ConstantIntOp::create(b, loc, b.getI32Type(), value);
}

/// Bulk rows (with `barriers`): thread t issues rows t, t + threads, ...,
/// each one cp.async.bulk completing on the stage's mbarrier; rows past
/// `bound` copy row `bound - 1`. Thread 0 arrives on the mbarrier
/// expecting every row's bytes (before or after the copies complete: the
/// transaction count may go negative in between).
LogicalResult lowerBulkTileCopy(LoadTileAsyncOp op, PatternRewriter &rewriter) {
  Location loc = op.getLoc();
  auto index = [&](int64_t v) { return constantIndex(rewriter, loc, v); };
  MemRefType tiles = op.getTiles().getType();
  int64_t rows = tiles.getDimSize(1), threads = op.getThreads();
  int64_t rowBytes = op.getColumns() * tiles.getElementTypeBitWidth() / 8;
  Value enabled = op.getEnabled();
  if (!enabled)
    enabled = arith::ConstantIntOp::create(rewriter, loc, rewriter.getI1Type(), 1);
  Value atLeastOne = rewriter.createOrFold<arith::MaxUIOp>(loc, op.getBound(), index(1));
  Value lastRow = rewriter.createOrFold<arith::SubIOp>(loc, atLeastOne, index(1));
  Value thread = gpu::ThreadIdOp::create(rewriter, loc, gpu::Dimension::x);
  Value barrier = elementPointer(rewriter, loc, op.getBarriers(), op.getStage(), 3);
  for (int64_t first = 0; first < rows; first += threads) {
    Value row = arith::AddIOp::create(rewriter, loc, thread, index(first));
    Value copies = enabled;
    if (first + threads > rows)
      copies = arith::AndIOp::create(
          rewriter, loc, copies,
          arith::CmpIOp::create(rewriter, loc, arith::CmpIPredicate::ult, row, index(rows)));
    auto ifOp = scf::IfOp::create(rewriter, loc, copies, /*withElseRegion=*/false);
    OpBuilder::InsertionGuard guard(rewriter);
    rewriter.setInsertionPointToStart(&ifOp.getThenRegion().front());
    Value sourceRow = arith::MinUIOp::create(
        rewriter, loc, arith::AddIOp::create(rewriter, loc, op.getRow(), row), lastRow);
    // The shared::cluster form (PTX 8.0): a CTA's own shared memory is
    // part of its (one-CTA) cluster's.
    Value destination = LLVM::AddrSpaceCastOp::create(
        rewriter, loc, LLVM::LLVMPointerType::get(rewriter.getContext(), 7),
        elementPointer(rewriter, loc, op.getTiles(), {op.getStage(), row, index(0)}, 3));
    Value source =
        elementPointer(rewriter, loc, op.getSource(), {sourceRow, op.getColumn()}, 1);
    NVVM::CpAsyncBulkGlobalToSharedClusterOp::create(
        rewriter, loc, destination, source, barrier, constantI32(rewriter, loc, rowBytes),
        /*multicastMask=*/Value(), /*l2CacheHint=*/Value());
  }
  Value first = arith::CmpIOp::create(rewriter, loc, arith::CmpIPredicate::eq, thread, index(0));
  auto arrive = scf::IfOp::create(rewriter, loc, arith::AndIOp::create(rewriter, loc, first, enabled),
                                  /*withElseRegion=*/false);
  {
    OpBuilder::InsertionGuard guard(rewriter);
    rewriter.setInsertionPointToStart(&arrive.getThenRegion().front());
    NVVM::MBarrierArriveExpectTxOp::create(rewriter, loc, /*res=*/Type(), barrier,
                                           constantI32(rewriter, loc, rows * rowBytes),
                                           NVVM::MemScopeKindAttr::get(rewriter.getContext(),
                                                                       NVVM::MemScopeKind::CTA),
                                           rewriter.getBoolAttr(false),
                                           /*predicate=*/Value());
  }
  rewriter.eraseOp(op);
  return success();
}

/// Chunk `c` of the tile is row c / perRow, element (c % perRow) * chunk of
/// it. Thread t copies chunks t, t + threads, ...; threads past the last
/// chunk repeat it (same source, same destination) rather than branch, so
/// that every copy is in the block of the group that commits it.
struct LoadTileAsyncLowering : OpRewritePattern<LoadTileAsyncOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(LoadTileAsyncOp op, PatternRewriter &rewriter) const override {
    if (op.getBarriers())
      return lowerBulkTileCopy(op, rewriter);
    Location loc = op.getLoc();
    auto index = [&](int64_t v) { return constantIndex(rewriter, loc, v); };
    MemRefType tiles = op.getTiles().getType();
    // Rank 5: [stages, rows / 8, K / E, 8, E], core matrices of 8 x E.
    bool coreMatrices = tiles.getRank() == 5;
    int64_t perCoreRow = coreMatrices ? tiles.getDimSize(4) : 0;
    int64_t rows = coreMatrices ? 8 * tiles.getDimSize(1) : tiles.getDimSize(1);
    int64_t chunk = op.getChunk(), threads = op.getThreads();
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
      if (coreMatrices) {
        auto divide = [&](Value v, int64_t d) {
          return arith::DivUIOp::create(rewriter, loc, v, index(d)).getResult();
        };
        auto remainder = [&](Value v, int64_t d) {
          return arith::RemUIOp::create(rewriter, loc, v, index(d)).getResult();
        };
        destination = {op.getStage(), divide(row, 8), divide(col, perCoreRow), remainder(row, 8),
                       remainder(col, perCoreRow)};
      }
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

/// The lane addressing of mma.sync's operand layouts: ldmatrix.x4 for A
/// (lanes 0-15 address the block's rows at its first 16 bytes, lanes 16-31
/// at the next), ldmatrix.x2 for f16 B (lanes 0-7 the 8 rows at K + 0,
/// lanes 8-15 at K + 8), and for integer B the two words of lane l's column
/// l / 4 at word l % 4 and l % 4 + 4 of the 8 a K extent spans.
struct LoadFragmentLowering : OpRewritePattern<LoadFragmentOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(LoadFragmentOp op, PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    auto index = [&](int64_t v) { return constantIndex(rewriter, loc, v); };
    VectorType fragment = op.getFragment().getType();
    Type element = fragment.getElementType();
    Type tileElement = op.getTiles().getType().getElementType();
    Value lane = laneId(rewriter, loc);
    Value result;
    if (fragment.getDimSize(0) == 4) {
      // A: 16 rows, each lane half at 16 bytes of K.
      int64_t elementBytes = tileElement.getIntOrFloatBitWidth() / 8;
      Value rowInBlock = arith::RemUIOp::create(rewriter, loc, lane, index(16));
      Value row = arith::AddIOp::create(rewriter, loc, op.getRow(), rowInBlock);
      Value half = arith::DivUIOp::create(rewriter, loc, lane, index(16));
      Value halfStart = arith::MulIOp::create(rewriter, loc, half, index(16 / elementBytes));
      Value col = arith::AddIOp::create(rewriter, loc, halfStart, op.getK());
      // Four 8x8 matrices of 16-byte rows: f16 pairs or byte quadruples.
      auto loaded = VectorType::get({4, elementBytes == 2 ? 2 : 4}, tileElement);
      result = nvgpu::LdMatrixOp::create(rewriter, loc, loaded, op.getTiles(),
                                         ValueRange{op.getStage(), row, col},
                                         /*transpose=*/false, /*numTiles=*/4);
      if (element.isInteger(4))
        result = asNibbles(rewriter, loc, result, fragment);
    } else if (element.isF16()) {
      // f16 B: 8 rows, lanes 8-15 at K + 8.
      Value rowInBlock = arith::RemUIOp::create(rewriter, loc, lane, index(8));
      Value row = arith::AddIOp::create(rewriter, loc, op.getRow(), rowInBlock);
      Value octet = arith::DivUIOp::create(rewriter, loc, lane, index(8));
      Value second = arith::RemUIOp::create(rewriter, loc, octet, index(2));
      Value halfStart = arith::MulIOp::create(rewriter, loc, second, index(8));
      Value col = arith::AddIOp::create(rewriter, loc, halfStart, op.getK());
      result = nvgpu::LdMatrixOp::create(rewriter, loc, fragment, op.getTiles(),
                                         ValueRange{op.getStage(), row, col},
                                         /*transpose=*/false, /*numTiles=*/2);
    } else {
      result = loadIntegerCodes(rewriter, loc, op, lane);
    }
    rewriter.replaceOp(op, result);
    return success();
  }

  /// Two int4 codes per byte, low nibble first: the same registers.
  static Value asNibbles(PatternRewriter &rewriter, Location loc, Value bytes,
                         VectorType fragment) {
    Value result = ub::PoisonOp::create(rewriter, loc, fragment);
    auto rowType = VectorType::get({fragment.getDimSize(1)}, fragment.getElementType());
    for (int64_t r = 0; r < fragment.getDimSize(0); ++r) {
      Value rowBytes = vector::ExtractOp::create(rewriter, loc, bytes, r);
      Value rowCodes = vector::BitCastOp::create(rewriter, loc, rowType, rowBytes);
      result = vector::InsertOp::create(rewriter, loc, rowCodes, result, r);
    }
    return result;
  }

  /// Integer B: one word per fragment row, its unsigned codes made signed
  /// by flipping the top bit of each byte (nibble).
  static Value loadIntegerCodes(PatternRewriter &rewriter, Location loc, LoadFragmentOp op,
                                Value lane) {
    auto index = [&](int64_t v) { return constantIndex(rewriter, loc, v); };
    VectorType fragment = op.getFragment().getType();
    bool bytes = fragment.getElementType().isInteger(8);
    Value column = arith::DivUIOp::create(rewriter, loc, lane, index(4));
    Value row = arith::AddIOp::create(rewriter, loc, op.getRow(), column);
    Value quad = arith::RemUIOp::create(rewriter, loc, lane, index(4));
    Value flip = arith::ConstantIntOp::create(rewriter, loc, rewriter.getI32Type(),
                                              bytes ? 0x80808080u : 0x88888888u);
    auto rowType = VectorType::get({fragment.getDimSize(1)}, fragment.getElementType());
    Value result = ub::PoisonOp::create(rewriter, loc, fragment);
    for (int64_t half = 0; half < 2; ++half) {
      Value wordInK = arith::AddIOp::create(rewriter, loc, quad, index(half * 4));
      Value word = arith::AddIOp::create(rewriter, loc, op.getK(), wordInK);
      Value codes = memref::LoadOp::create(rewriter, loc, op.getTiles(),
                                           ValueRange{op.getStage(), row, word});
      Value signedCodes = arith::XOrIOp::create(rewriter, loc, codes, flip);
      Value asVector = vector::FromElementsOp::create(
          rewriter, loc, VectorType::get({1}, rewriter.getI32Type()), ValueRange{signedCodes});
      Value rowCodes = vector::BitCastOp::create(rewriter, loc, rowType, asVector);
      result = vector::InsertOp::create(rewriter, loc, rowCodes, result, half);
    }
    return result;
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

/// Thread 0 initialises each stage's mbarrier for one arrival and fences
/// the initialisation; a block barrier then publishes it.
struct InitTileBarriersLowering : OpRewritePattern<InitTileBarriersOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(InitTileBarriersOp op, PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value thread = gpu::ThreadIdOp::create(rewriter, loc, gpu::Dimension::x);
    Value first = arith::CmpIOp::create(rewriter, loc, arith::CmpIPredicate::eq, thread,
                                        constantIndex(rewriter, loc, 0));
    auto ifOp = scf::IfOp::create(rewriter, loc, first, /*withElseRegion=*/false);
    {
      OpBuilder::InsertionGuard guard(rewriter);
      rewriter.setInsertionPointToStart(&ifOp.getThenRegion().front());
      for (int64_t i = 0; i < op.getBarriers().getType().getDimSize(0); ++i) {
        Value barrier = elementPointer(rewriter, loc, op.getBarriers(),
                                       constantIndex(rewriter, loc, i), 3);
        NVVM::MBarrierInitOp::create(rewriter, loc, barrier, constantI32(rewriter, loc, 1),
                                     /*predicate=*/Value());
      }
      NVVM::FenceMbarrierInitOp::create(rewriter, loc);
    }
    gpu::BarrierOp::create(rewriter, loc);
    rewriter.eraseOp(op);
    return success();
  }
};

/// mbarrier.try_wait.parity in a loop until the phase completed.
struct WaitTileBarrierLowering : OpRewritePattern<WaitTileBarrierOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(WaitTileBarrierOp op, PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value barrier = elementPointer(rewriter, loc, op.getBarriers(), op.getStage(), 3);
    Value parity = arith::IndexCastUIOp::create(rewriter, loc, rewriter.getI32Type(),
                                                op.getParity());
    // The suspend-time hint CUTLASS uses (0x989680 ns).
    NVVM::MBarrierTryWaitParityOp::create(rewriter, loc, barrier, parity,
                                          constantI32(rewriter, loc, 0x989680));
    rewriter.eraseOp(op);
    return success();
  }
};

/// The shared-memory matrix descriptor of wgmma (PTX ISA, "Matrix
/// Descriptor Format") for a K-major no-swizzle operand whose core matrices
/// start at byte `address`: the start address, the leading-dimension byte
/// offset (between core matrices adjacent in K) and the stride-dimension
/// one (between 8-row groups), each as (bytes & 0x3FFFF) >> 4; layout type
/// 0 (no swizzle) in bits 62-63, base offset 0.
Value matrixDescriptor(OpBuilder &b, Location loc, Value address, int64_t leadingBytes,
                       int64_t strideBytes) {
  Type i64 = b.getI64Type();
  auto constant = [&](int64_t v) { return arith::ConstantIntOp::create(b, loc, i64, v); };
  Value start = arith::IndexCastUIOp::create(b, loc, i64, address);
  start = arith::ShRUIOp::create(b, loc, arith::AndIOp::create(b, loc, start, constant(0x3FFFF)),
                                 constant(4));
  int64_t fields = ((leadingBytes & 0x3FFFF) >> 4) << 16 | ((strideBytes & 0x3FFFF) >> 4) << 32;
  return arith::OrIOp::create(b, loc, start, constant(fields));
}

/// Byte address of the first core matrix of rows `row ..` of stage `stage`
/// of a [stages, rows / 8, K / 8, 8, 8] f16 tile.
Value coreMatrixAddress(OpBuilder &b, Location loc, Value tiles, Value stage, Value row) {
  auto type = cast<MemRefType>(tiles.getType());
  auto index = [&](int64_t v) { return constantIndex(b, loc, v); };
  Value base = memref::ExtractAlignedPointerAsIndexOp::create(b, loc, tiles);
  Value group = arith::AddIOp::create(
      b, loc, arith::MulIOp::create(b, loc, stage, index(type.getDimSize(1))),
      arith::DivUIOp::create(b, loc, row, index(8)));
  // Each 8-row group holds K / 8 core matrices of 128 bytes.
  Value offset = arith::MulIOp::create(b, loc, group, index(type.getDimSize(2) * 128));
  return arith::AddIOp::create(b, loc, base, offset);
}

/// wgmma.mma_async m64nNk16 per 16 K elements: the descriptors advance by
/// two core matrices (256 bytes, 16 in the encoded address) per step. The
/// accumulators travel as the instruction's struct of N / 2 f32 (block j's
/// vector<2x2xf32> at members 4 j ..), with wgmma.fence before (the
/// registers were written by other instructions) and the group's commit
/// and wait after (the operands may then be overwritten).
struct WarpGroupMmaLowering : OpRewritePattern<WarpGroupMmaOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(WarpGroupMmaOp op, PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    for (Value tiles : {op.getLhs(), op.getRhs()}) {
      int64_t offset;
      SmallVector<int64_t> strides;
      if (failed(cast<MemRefType>(tiles.getType()).getStridesAndOffset(strides, offset)) ||
          offset != 0)
        return rewriter.notifyMatchFailure(op, "tiles with a non-zero static offset");
    }
    MemRefType lhs = op.getLhs().getType();
    int64_t kChunks = lhs.getDimSize(2); // core matrices along K
    int64_t blocks = op.getAcc().size();
    Type f32 = rewriter.getF32Type();
    SmallVector<Type> members(4 * blocks, f32);
    auto structType = LLVM::LLVMStructType::getLiteral(rewriter.getContext(), members);
    Value acc = LLVM::PoisonOp::create(rewriter, loc, structType);
    for (auto [j, block] : llvm::enumerate(op.getAcc()))
      for (int64_t e = 0; e < 4; ++e) {
        Value v = vector::ExtractOp::create(rewriter, loc, block, ArrayRef<int64_t>{e / 2, e % 2});
        acc = LLVM::InsertValueOp::create(rewriter, loc, acc, v,
                                          ArrayRef<int64_t>{int64_t(4 * j + e)});
      }
    Value addressA = coreMatrixAddress(rewriter, loc, op.getLhs(), op.getLhsStage(), op.getRow());
    Value addressB =
        coreMatrixAddress(rewriter, loc, op.getRhs(), op.getRhsStage(), op.getColumn());
    int64_t strideBytes = kChunks * 128;
    Value descA = matrixDescriptor(rewriter, loc, addressA, 128, strideBytes);
    Value descB = matrixDescriptor(rewriter, loc, addressB, 128, strideBytes);
    MLIRContext *ctx = rewriter.getContext();
    auto shape = NVVM::MMAShapeAttr::get(ctx, 64, 8 * blocks, 16);
    auto f16 = NVVM::WGMMATypesAttr::get(ctx, NVVM::WGMMATypes::f16);
    auto f32Type = NVVM::WGMMATypesAttr::get(ctx, NVVM::WGMMATypes::f32);
    auto one = NVVM::WGMMAScaleInAttr::get(ctx, NVVM::WGMMAScaleIn::one);
    auto accumulate = NVVM::WGMMAScaleOutAttr::get(ctx, NVVM::WGMMAScaleOut::one);
    NVVM::WgmmaFenceAlignedOp::create(rewriter, loc);
    for (int64_t step = 0; step < kChunks / 2; ++step) {
      Value advance = arith::ConstantIntOp::create(rewriter, loc, rewriter.getI64Type(), 16 * step);
      Value a = step ? arith::AddIOp::create(rewriter, loc, descA, advance).getResult() : descA;
      Value b = step ? arith::AddIOp::create(rewriter, loc, descB, advance).getResult() : descB;
      acc = NVVM::WgmmaMmaAsyncOp::create(
          rewriter, loc, structType, acc, a, b, shape, f16, f16, f32Type, accumulate, one, one,
          NVVM::MMALayoutAttr::get(ctx, NVVM::MMALayout::row),
          NVVM::MMALayoutAttr::get(ctx, NVVM::MMALayout::col), NVVM::MMAIntOverflowAttr());
    }
    NVVM::WgmmaGroupSyncAlignedOp::create(rewriter, loc);
    NVVM::WgmmaWaitGroupSyncOp::create(rewriter, loc, uint64_t(0));
    SmallVector<Value> results;
    for (auto [j, block] : llvm::enumerate(op.getAcc())) {
      Value result = ub::PoisonOp::create(rewriter, loc, block.getType());
      for (int64_t e = 0; e < 4; ++e) {
        Value v = LLVM::ExtractValueOp::create(rewriter, loc, f32, acc,
                                               ArrayRef<int64_t>{int64_t(4 * j + e)});
        result = vector::InsertOp::create(rewriter, loc, v, result, ArrayRef<int64_t>{e / 2, e % 2});
      }
      results.push_back(result);
    }
    rewriter.replaceOp(op, results);
    return success();
  }
};

/// Lane l of a warp holds, in accumulator (i, j), rows 16 i + l / 4 and
/// + 8, columns 8 j + 2 (l % 4) and + 1 of the warp's block.
struct StoreTileLowering : OpRewritePattern<StoreTileOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(StoreTileOp op, PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    auto index = [&](int64_t v) { return constantIndex(rewriter, loc, v); };
    int64_t tileColumns = op.getTiles()[1];
    MemRefType output = op.getOutput().getType();
    int64_t width = output.getDimSize(1);
    Value lane = laneId(rewriter, loc);
    Value quad = arith::RemUIOp::create(rewriter, loc, lane, index(4));
    Value pairColumn = arith::MulIOp::create(rewriter, loc, quad, index(2));
    Value laneRow = arith::DivUIOp::create(rewriter, loc, lane, index(4));
    Type f32 = rewriter.getF32Type();
    auto f32Pairs = VectorType::get({2, 2}, f32);
    for (auto [t, accumulator] : llvm::enumerate(op.getAccumulators())) {
      int64_t i = t / tileColumns, j = t % tileColumns;
      Value blockColumn = arith::AddIOp::create(rewriter, loc, op.getColumn(), index(j * 8));
      Value col = arith::AddIOp::create(rewriter, loc, blockColumn, pairColumn);
      Value columnScale;
      if (op.getColumnScales())
        columnScale = loadColumnScales(rewriter, loc, op.getColumnScales(), col, width);
      Value values = accumulator;
      if (cast<VectorType>(values.getType()).getElementType().isInteger(32))
        values = arith::SIToFPOp::create(rewriter, loc, f32Pairs, values);
      for (int64_t half = 0; half < 2; ++half) {
        Value blockRow = arith::AddIOp::create(rewriter, loc, op.getRow(),
                                               index(i * 16 + half * 8));
        Value row = arith::AddIOp::create(rewriter, loc, blockRow, laneRow);
        Value rowInside =
            arith::CmpIOp::create(rewriter, loc, arith::CmpIPredicate::ult, row, op.getBound());
        Value colInside =
            arith::CmpIOp::create(rewriter, loc, arith::CmpIPredicate::ult, col, index(width));
        Value inside = arith::AndIOp::create(rewriter, loc, rowInside, colInside);
        auto guard = scf::IfOp::create(rewriter, loc, inside, /*withElseRegion=*/false);
        OpBuilder::InsertionGuard insideGuard(rewriter);
        rewriter.setInsertionPointToStart(&guard.getThenRegion().front());
        Value pair = vector::ExtractOp::create(rewriter, loc, values, half);
        if (columnScale)
          pair = arith::MulFOp::create(rewriter, loc, pair, columnScale);
        if (op.getRowScales()) {
          Value scale = memref::LoadOp::create(rewriter, loc, op.getRowScales(), ValueRange{row});
          Value scales = vector::BroadcastOp::create(rewriter, loc, pair.getType(), scale);
          pair = arith::MulFOp::create(rewriter, loc, pair, scales);
        }
        Value outputRow = row;
        if (op.getRowOffset())
          outputRow = arith::AddIOp::create(rewriter, loc, op.getRowOffset(), row);
        Type element = output.getElementType();
        if (element != f32)
          pair = arith::TruncFOp::create(rewriter, loc, VectorType::get({2}, element), pair);
        // The column is even and the width a multiple of 8: one aligned
        // store per pair.
        vector::StoreOp::create(rewriter, loc, pair, op.getOutput(), ValueRange{outputRow, col},
                                /*nontemporal=*/false,
                                llvm::MaybeAlign(2 * element.getIntOrFloatBitWidth() / 8));
      }
    }
    rewriter.eraseOp(op);
    return success();
  }

  /// The group-0 scales of columns `col` and `col + 1` (clamped to the
  /// width), as f32.
  static Value loadColumnScales(PatternRewriter &rewriter, Location loc, Value scales, Value col,
                                int64_t width) {
    Value zero = constantIndex(rewriter, loc, 0);
    Value lastColumn = constantIndex(rewriter, loc, width - 1);
    SmallVector<Value> pair;
    for (int64_t c = 0; c < 2; ++c) {
      Value column = col;
      if (c)
        column = arith::AddIOp::create(rewriter, loc, col, constantIndex(rewriter, loc, 1));
      Value clamped = arith::MinUIOp::create(rewriter, loc, column, lastColumn);
      Value scale = memref::LoadOp::create(rewriter, loc, scales, ValueRange{clamped, zero});
      pair.push_back(arith::ExtFOp::create(rewriter, loc, rewriter.getF32Type(), scale));
    }
    return vector::FromElementsOp::create(rewriter, loc, VectorType::get({2}, rewriter.getF32Type()),
                                          pair);
  }
};

/// The scheduler as two loops: over the experts, carrying the tiles before
/// each (their prefix sum), and over the block's tiles of the expert.
struct ForEachTileLowering : OpRewritePattern<ForEachTileOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(ForEachTileOp op, PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    auto index = [&](int64_t v) { return constantIndex(rewriter, loc, v); };
    auto toIndex = [&](Value v) -> Value {
      return arith::IndexCastOp::create(rewriter, loc, rewriter.getIndexType(), v);
    };
    Value block = gpu::BlockIdOp::create(rewriter, loc, gpu::Dimension::x);
    Value grid = gpu::GridDimOp::create(rewriter, loc, gpu::Dimension::x);
    int64_t experts = op.getOffsets().getType().getDimSize(0) - 1;
    Value firstExpert = index(0);
    Value expertCount = index(experts);
    Value one = index(1);
    Value noTiles = index(0);
    auto expertLoop =
        scf::ForOp::create(rewriter, loc, firstExpert, expertCount, one, ValueRange{noTiles});
    rewriter.setInsertionPointToStart(expertLoop.getBody());
    Value expert = expertLoop.getInductionVar(), prefix = expertLoop.getRegionIterArg(0);
    Value first = toIndex(memref::LoadOp::create(rewriter, loc, op.getOffsets(), expert));
    Value nextExpert = arith::AddIOp::create(rewriter, loc, expert, index(1));
    Value end = toIndex(memref::LoadOp::create(rewriter, loc, op.getOffsets(), nextExpert));
    Value rows = arith::SubIOp::create(rewriter, loc, end, first);
    Value mix = op.getMixOf() ? toIndex(memref::LoadOp::create(rewriter, loc, op.getMixOf(), expert))
                              : index(0);
    // The mix's tile shape: a select chain over the few mixes.
    auto perMix = [&](ArrayRef<int64_t> values) {
      Value v = index(values.front());
      for (auto [m, value] : llvm::enumerate(values.drop_front())) {
        Value isMix = arith::CmpIOp::create(rewriter, loc, arith::CmpIPredicate::eq, mix,
                                            index(m + 1));
        v = arith::SelectOp::create(rewriter, loc, isMix, index(value), v);
      }
      return v;
    };
    Value bm = perMix(op.getBm());
    Value tilesN = perMix(op.getTilesN());
    Value tilesM = arith::CeilDivUIOp::create(rewriter, loc, rows, bm);
    Value count = arith::MulIOp::create(rewriter, loc, tilesM, tilesN);
    Value limit = arith::AddIOp::create(rewriter, loc, prefix, count);
    // This block's first tile at or after `prefix`: prefix + (block -
    // prefix) mod G, computed without going negative.
    Value blockAhead = arith::AddIOp::create(rewriter, loc, block, grid);
    Value prefixPhase = arith::RemUIOp::create(rewriter, loc, prefix, grid);
    Value distance = arith::SubIOp::create(rewriter, loc, blockAhead, prefixPhase);
    Value skew = arith::RemUIOp::create(rewriter, loc, distance, grid);
    Value firstTile = arith::AddIOp::create(rewriter, loc, prefix, skew);
    auto tilesLoop = scf::ForOp::create(rewriter, loc, firstTile, limit, grid);
    rewriter.setInsertionPointToStart(tilesLoop.getBody());
    Value tile = arith::SubIOp::create(rewriter, loc, tilesLoop.getInductionVar(), prefix);
    gpu::BarrierOp::create(rewriter, loc);
    Block &body = op.getBody().front();
    rewriter.eraseOp(body.getTerminator());
    rewriter.inlineBlockBefore(&body, tilesLoop.getBody()->getTerminator(),
                               ValueRange{expert, tile, first, end, mix});
    rewriter.setInsertionPointToEnd(expertLoop.getBody());
    scf::YieldOp::create(rewriter, loc, ValueRange{limit});
    rewriter.eraseOp(op);
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
  patterns.add<LoadTileAsyncLowering, InitTileBarriersLowering, WaitTileBarrierLowering,
               LoadFragmentLowering, MmaTileLowering, WarpGroupMmaLowering, StoreTileLowering,
               ForEachTileLowering>(patterns.getContext());
}
