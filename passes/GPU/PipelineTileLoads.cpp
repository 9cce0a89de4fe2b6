//===- PipelineTileLoads.cpp - cp.async software pipelining of K loops ---===//
//
// The K loop of a tensor-core tile is built plainly (copy step k, wait,
// compute step k) and marked with its stage count; this pass turns it into
// the multi-stage schedule with the upstream loop pipeliner. Only the
// schedule is moeq's: which operations are the loads (stage 0), that the
// wait and the barrier after it precede the next loads, and how a load is
// predicated off.
//
//===----------------------------------------------------------------------===//
#include "moeq/Dialect/MoEQ/IR/MoEQ.h"
#include "moeq/Passes/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/SCF/Transforms/Transforms.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "llvm/ADT/SmallPtrSet.h"

namespace mlir::moeq {
#define GEN_PASS_DEF_PIPELINETILELOADS
#include "moeq/Passes/Passes.h.inc"
} // namespace mlir::moeq

using namespace mlir;
using namespace mlir::moeq;

namespace {

/// The operations that start a K step's copies: they and what only they
/// use form stage 0.
bool isTileLoad(Operation *op) {
  return isa<LoadTileAsyncOp, nvgpu::DeviceAsyncCreateGroupOp>(op);
}

/// The consumer's synchronisation, scheduled before the next step's loads:
/// each wait for the copies, the waits for bulk copies' mbarriers right
/// after it, and the barrier after those. Other barriers belong to the
/// math (the wgmma kernels' barrier between dequantising the weights into
/// shared memory and reading them).
llvm::SmallPtrSet<Operation *, 4> getStepSyncs(Block *body) {
  llvm::SmallPtrSet<Operation *, 4> syncs;
  for (Operation &op : body->without_terminator()) {
    if (!isa<nvgpu::DeviceAsyncWaitOp>(op))
      continue;
    syncs.insert(&op);
    // (Skipping the pure index arithmetic of the mbarrier waits.)
    Operation *next = op.getNextNode();
    for (; next && (isa<WaitTileBarrierOp>(next) || isPure(next)); next = next->getNextNode())
      if (isa<WaitTileBarrierOp>(next))
        syncs.insert(next);
    if (next && isa<gpu::BarrierOp>(next))
      syncs.insert(next);
  }
  return syncs;
}

/// Assigns every operation of the body stage 0 (the loads and their index
/// arithmetic) or `last`. A pure operation that both stages use is cloned
/// for the later one, so that no value crosses stages (the pipeliner would
/// carry it through the loop's arguments).
FailureOr<DenseMap<Operation *, unsigned>> assignStages(RewriterBase &rewriter, scf::ForOp loop,
                                                        unsigned last) {
  Block *body = loop.getBody();
  DenseMap<Operation *, unsigned> stageOf;
  auto stageOfUse = [&](OpOperand &use) -> unsigned {
    Operation *owner = body->findAncestorOpInBlock(*use.getOwner());
    auto it = stageOf.find(owner);
    return it == stageOf.end() ? last : it->second; // the yield: the math's
  };
  SmallVector<Operation *> ops =
      llvm::map_to_vector(body->without_terminator(), [](Operation &op) { return &op; });
  for (Operation *op : llvm::reverse(ops)) {
    if (isTileLoad(op)) {
      stageOf[op] = 0;
      continue;
    }
    bool feedsLoads = false, feedsMath = false;
    for (OpResult result : op->getResults())
      for (OpOperand &use : result.getUses())
        (stageOfUse(use) == 0 ? feedsLoads : feedsMath) = true;
    if (!feedsLoads) {
      stageOf[op] = last;
      continue;
    }
    if (!isPure(op))
      return op->emitOpError("computes an operand of a tile load but has side effects: it "
                             "cannot move to the load stage of the pipelined loop");
    stageOf[op] = 0;
    if (!feedsMath)
      continue;
    rewriter.setInsertionPointAfter(op);
    Operation *copy = rewriter.clone(*op);
    stageOf[copy] = last;
    rewriter.replaceUsesWithIf(op->getResults(), copy->getResults(), [&](OpOperand &use) {
      return use.getOwner() != copy && stageOfUse(use) == last;
    });
  }
  return stageOf;
}

/// A predicated-off load copies nothing (its `enabled` operand); the other
/// load-stage operations are pure, or commit a possibly empty group.
Operation *predicateLoad(RewriterBase &rewriter, Operation *op, Value predicate) {
  auto load = dyn_cast<LoadTileAsyncOp>(op);
  if (!load)
    return op;
  rewriter.setInsertionPoint(load);
  Value enabled = predicate;
  if (load.getEnabled())
    enabled = arith::AndIOp::create(rewriter, load.getLoc(), load.getEnabled(), predicate);
  rewriter.modifyOpInPlace(load, [&] { load.getEnabledMutable().assign(enabled); });
  return load;
}

/// No copy is left in flight after the loop: the predicated-off copies of
/// the last steps still zero-fill their buffers, which the next user of the
/// shared memory (the next tile of a persistent kernel) must not see late.
/// The loop carries the pending groups' tokens; the last is the newest.
void drainCopies(RewriterBase &rewriter, scf::ForOp loop) {
  Value newest;
  for (Value result : loop.getResults())
    if (isa<nvgpu::DeviceAsyncTokenType>(result.getType()))
      newest = result;
  if (!newest)
    return;
  rewriter.setInsertionPointAfter(loop);
  nvgpu::DeviceAsyncWaitOp::create(rewriter, loop.getLoc(), newest, rewriter.getI32IntegerAttr(0));
}

LogicalResult pipelineLoop(RewriterBase &rewriter, scf::ForOp loop) {
  auto stagesAttr = loop->getAttrOfType<IntegerAttr>(kPipelineStagesAttrName);
  loop->removeAttr(kPipelineStagesAttrName);
  int64_t stages = stagesAttr.getInt();
  // A loop of fewer steps than stages - 1 keeps all of them in flight with
  // trip count + 1 stages (the prologue then issues no copy past the end).
  std::optional<int64_t> lower = getConstantIntValue(loop.getLowerBound());
  std::optional<int64_t> upper = getConstantIntValue(loop.getUpperBound());
  std::optional<int64_t> step = getConstantIntValue(loop.getStep());
  if (lower && upper && step && *step > 0)
    stages = std::min(stages, std::max<int64_t>(0, llvm::divideCeil(*upper - *lower, *step)) + 1);
  if (stages < 2)
    return success(); // nothing to overlap
  unsigned last = stages - 1;
  FailureOr<DenseMap<Operation *, unsigned>> stageOf = assignStages(rewriter, loop, last);
  if (failed(stageOf))
    return failure();
  // Step k has landed once at most S - 2 groups (steps k+1 .. k+S-2) are
  // pending.
  loop.getBody()->walk([&](nvgpu::DeviceAsyncWaitOp wait) {
    wait.setNumGroups(static_cast<int32_t>(stages - 2));
  });

  scf::PipeliningOption options;
  options.getScheduleFn = [&](scf::ForOp forOp,
                              std::vector<std::pair<Operation *, unsigned>> &schedule) {
    Block *body = forOp.getBody();
    llvm::SmallPtrSet<Operation *, 4> syncs = getStepSyncs(body);
    // The syncs' operands computed in the body (an mbarrier wait's stage
    // and parity) come with them; assignStages gave them their own copies.
    SmallVector<Operation *> worklist(syncs.begin(), syncs.end());
    llvm::SmallPtrSet<Operation *, 8> first(syncs.begin(), syncs.end());
    while (!worklist.empty()) {
      Operation *op = worklist.pop_back_val();
      for (Value operand : op->getOperands()) {
        Operation *def = operand.getDefiningOp();
        if (def && def->getBlock() == body && isPure(def) && first.insert(def).second)
          worklist.push_back(def);
      }
    }
    for (Operation &op : body->without_terminator())
      if (first.contains(&op))
        schedule.emplace_back(&op, last);
    for (Operation &op : body->without_terminator())
      if (stageOf->lookup(&op) == 0 && !first.contains(&op))
        schedule.emplace_back(&op, 0);
    for (Operation &op : body->without_terminator())
      if (stageOf->lookup(&op) == last && !first.contains(&op))
        schedule.emplace_back(&op, last);
  };
  options.peelEpilogue = false;
  options.supportDynamicLoops = true;
  options.predicateFn = predicateLoad;
  bool modified = false;
  rewriter.setInsertionPoint(loop); // the prologue goes before the loop
  FailureOr<scf::ForOp> pipelined = scf::pipelineForLoop(rewriter, loop, options, &modified);
  if (failed(pipelined))
    return loop.emitOpError("cannot be software-pipelined over ") << stages << " stages";
  drainCopies(rewriter, *pipelined);
  return success();
}

struct PipelineTileLoadsPass
    : mlir::moeq::impl::PipelineTileLoadsBase<PipelineTileLoadsPass> {
  void runOnOperation() override {
    SmallVector<scf::ForOp> loops;
    getOperation()->walk([&](scf::ForOp loop) {
      if (loop->hasAttr(kPipelineStagesAttrName))
        loops.push_back(loop);
    });
    IRRewriter rewriter(&getContext());
    for (scf::ForOp loop : loops)
      if (failed(pipelineLoop(rewriter, loop)))
        return signalPassFailure();
  }
};

} // namespace
