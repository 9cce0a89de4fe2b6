//===- AllocateBits.cpp - MxMoE mixed-precision allocation per layer ------===//
//
// Reads the losses moeq-estimate-sensitivity attached to each moeq.moe,
// prices every candidate scheme of every block with the GPU cost model at
// the expected tokens per expert, and picks one scheme per block that
// minimises r log(L) + (1 - r) log(T) within the layer's memory budget
// (exact: lib/Allocation). Gate and up always share a scheme; with
// granularity `expert` all three linears of an expert do. Granularity
// `layer` is what serving engines with one fused-MoE scheme per layer need
// (vLLM): all routed weights of a layer share a scheme (the shared expert,
// served as plain linears, has its own), and the budget is the model's, so
// that layers trade bits with each other.
//
//===----------------------------------------------------------------------===//
#include "moeq/Allocation/Allocation.h"
#include "moeq/CostModel/CostModel.h"
#include "moeq/Dialect/MoEQ/IR/MoEQ.h"
#include "moeq/Passes/ExpertWeights.h"
#include "moeq/Passes/Kernels.h"
#include "moeq/Passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"

#include "llvm/ADT/StringSwitch.h"
#include "llvm/Support/FormatVariadic.h"

#include <cmath>

namespace mlir::moeq {
#define GEN_PASS_DEF_ALLOCATEBITS
#include "moeq/Passes/Passes.h.inc"
} // namespace mlir::moeq

using namespace mlir;
using namespace mlir::moeq;

namespace {

/// A weight taking part in the allocation and what the sensitivity pass
/// measured for it.
struct Member {
  WeightSlot slot;
  SmallVector<double> losses; ///< per candidate scheme; < 0: cannot store
  int64_t tokens = 0;         ///< expected rows of its GEMM per step
  /// D^2-MoE layers: the member is the slot's delta_weight factors (a, b),
  /// or the base shared by all experts of the slot's linear.
  enum class Kind { Weight, Factors, Base } kind = Kind::Weight;

  DeltaWeightOp delta() const { return slot.operand->get().getDefiningOp<DeltaWeightOp>(); }
  /// The matrices this member stores, each priced and sized on its own.
  SmallVector<Value, 2> matrices() const {
    switch (kind) {
    case Kind::Weight:
      return {slot.operand->get()};
    case Kind::Factors:
      return {delta().getA(), delta().getB()};
    case Kind::Base:
      return {delta().getBase()};
    }
    llvm_unreachable("member kind");
  }
  /// Original (uncompressed) weights it stands for in the budget.
  double originalWeights() const {
    if (kind == Kind::Base)
      return 0;
    ArrayRef<int64_t> shape = getWeightShape(slot.operand->get().getType());
    return double(shape[0]) * shape[1];
  }
};

/// Weights that must share a scheme.
using BlockMembers = SmallVector<Member>;

/// One layer's blocks and their priced options.
struct LayerProblem {
  MoEOp moe;
  DictionaryAttr sensitivity;
  int64_t layer = -1;
  SmallVector<BlockMembers> blocks;
  alloc::Problem problem; ///< the layer's blocks, its budget avg-bits x weights
  SmallVector<SmallVector<size_t>> schemeOf; ///< option -> scheme, per block
  double weights = 0;     ///< original weights the budget refers to
  SmallVector<SchemeAttr> schemes; ///< the candidates, as the sensitivity lists them
};


struct AllocateBitsPass : mlir::moeq::impl::AllocateBitsBase<AllocateBitsPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    FailureOr<QuantizeSettings> parsed = parseQuantizeSettings(
        module, method, statsPath, actOrder, mseClip, salienceClip, /*statsWithRTN=*/true);
    if (failed(parsed))
      return signalPassFailure();
    settings = *parsed;
    if (!(r >= 0 && r <= 1)) {
      module.emitError() << "r must be in [0, 1], got " << r;
      return signalPassFailure();
    }
    if (!(avgBits > 0) || tokens <= 0) {
      module.emitError() << "avg-bits and tokens must be positive";
      return signalPassFailure();
    }
    gpu = resolveCostModelGpu(module, gpuName);
    if (!gpu)
      return signalPassFailure();
    SmallVector<LayerProblem, 0> layers;
    WalkResult result = module.walk([&](MoEOp moe) {
      FailureOr<LayerProblem> layer = buildLayerProblem(moe);
      if (failed(layer))
        return WalkResult::interrupt();
      layers.push_back(std::move(*layer));
      return WalkResult::advance();
    });
    if (result.wasInterrupted() ||
        failed(granularity == AllocationGranularity::Layer ? allocateModel(module, layers) : allocateLayers(layers)))
      return signalPassFailure();
    reportFittedGroupSizes(module, allSchemes);
  }

  /// The blocks of `moe` with their members' losses, from the sensitivity
  /// attribute.
  FailureOr<SmallVector<BlockMembers>> collectBlocks(MoEOp moe, DictionaryAttr sensitivity) {
    auto share = sensitivity.getAs<DenseF64ArrayAttr>("routed_share");
    if (!share || int64_t(share.size()) != int64_t(moe.getGate().size()))
      return moe.emitError() << "'" << kSensitivityAttrName
                             << "' lacks a routed_share entry per expert";
    bool withShared = sensitivity.contains("shared_gate");
    SmallVector<Member> members;
    for (const WeightSlot &slot : getWeightSlots(moe, withShared)) {
      std::string table = (slot.shared ? "shared_" : "") + slot.linear.str();
      auto losses = sensitivity.getAs<DenseFPElementsAttr>(table);
      int64_t row = slot.shared ? 0 : slot.expert;
      if (!losses || losses.getType().getRank() != 2 ||
          losses.getType().getDimSize(0) <= row ||
          losses.getType().getDimSize(1) != int64_t(schemes.size()))
        return moe.emitError() << "'" << kSensitivityAttrName << "' has no " << table
                               << " losses of shape [weights, " << schemes.size() << "]";
      Member member{slot, {}, 0};
      auto values = losses.getValues<double>();
      for (size_t s = 0; s < schemes.size(); ++s)
        member.losses.push_back(values[row * schemes.size() + s]);
      double expected = slot.shared ? 1.0 : share[slot.expert];
      member.tokens = int64_t(std::ceil(expected * tokens));
      if (!slot.shared && member.delta())
        member.kind = Member::Kind::Factors;
      members.push_back(std::move(member));
    }
    // D^2-MoE: each linear's base is one more member, priced at all the
    // layer's rows (gate/up: the tokens; down: tokens x top-k), its loss
    // the output error summed over the experts.
    if (auto bases = sensitivity.getAs<DenseFPElementsAttr>("base")) {
      auto values = bases.getValues<double>();
      if (bases.getType().getRank() != 2 || bases.getType().getDimSize(0) != 3 ||
          bases.getType().getDimSize(1) != int64_t(schemes.size()))
        return moe.emitError() << "'" << kSensitivityAttrName
                               << "' has no base losses of shape [3, " << schemes.size() << "]";
      SmallVector<WeightSlot> slots = getWeightSlots(moe, false);
      int64_t experts = moe.getGate().size();
      for (int64_t l = 0; l < 3; ++l) {
        Member member{slots[l * experts], {}, 0, Member::Kind::Base};
        if (!member.delta())
          return moe.emitError() << "base losses for a layer without delta weights";
        for (size_t s = 0; s < schemes.size(); ++s)
          member.losses.push_back(values[l * schemes.size() + s]);
        member.tokens = int64_t(std::ceil((l == 2 ? moe.getTopK() : 1) * double(tokens)));
        members.push_back(std::move(member));
      }
    }
    // Group: gate+up (+down at expert granularity) of each expert.
    SmallVector<BlockMembers> blocks;
    llvm::DenseMap<int64_t, size_t> tiedBlock; // expert (-1 shared) -> block
    for (Member &member : members) {
      if (granularity == AllocationGranularity::Layer) {
        // Routed weights (and D^2 bases) one block, the shared expert one.
        auto [it, inserted] = tiedBlock.try_emplace(member.slot.shared ? -5 : -4, blocks.size());
        if (inserted)
          blocks.emplace_back();
        blocks[it->second].push_back(member);
        continue;
      }
      bool ties = member.slot.linear != "down" || granularity == AllocationGranularity::Expert;
      if (member.kind == Member::Kind::Base) {
        // Gate and up bases share a scheme too.
        auto [it, inserted] = tiedBlock.try_emplace(ties ? -2 : -3, blocks.size());
        if (inserted)
          blocks.emplace_back();
        blocks[it->second].push_back(member);
        continue;
      }
      if (!ties) {
        blocks.push_back({member});
        continue;
      }
      auto [it, inserted] = tiedBlock.try_emplace(member.slot.expert, blocks.size());
      if (inserted)
        blocks.emplace_back();
      blocks[it->second].push_back(member);
    }
    return blocks;
  }

  /// Reads `moe`'s sensitivity and prices every option of its blocks.
  FailureOr<LayerProblem> buildLayerProblem(MoEOp moe) {
    LayerProblem layer;
    layer.moe = moe;
    layer.layer = getLayerIndex(moe);
    layer.sensitivity = moe->getAttrOfType<DictionaryAttr>(kSensitivityAttrName);
    if (!layer.sensitivity)
      return moe.emitError() << "no '" << kSensitivityAttrName
                             << "' attribute: run moeq-estimate-sensitivity first";
    auto schemeList = layer.sensitivity.getAs<ArrayAttr>("schemes");
    schemes.clear();
    for (Attribute attr : schemeList ? schemeList : ArrayAttr())
      if (auto scheme = dyn_cast<SchemeAttr>(attr))
        schemes.push_back(scheme);
    if (schemes.empty() || schemes.size() != schemeList.size())
      return moe.emitError() << "'" << kSensitivityAttrName
                             << "' needs a non-empty list of #moeq.scheme";
    for (SchemeAttr scheme : schemes)
      if (!llvm::is_contained(allSchemes, scheme))
        allSchemes.push_back(scheme);
    FailureOr<SmallVector<BlockMembers>> blocks = collectBlocks(moe, layer.sensitivity);
    if (failed(blocks))
      return failure();
    layer.blocks = std::move(*blocks);
    layer.problem.r = r;
    for (const BlockMembers &block : layer.blocks) {
      alloc::Block options;
      SmallVector<size_t> indices;
      for (size_t s = 0; s < schemes.size(); ++s) {
        alloc::Option option;
        bool storable = true;
        for (const Member &m : block) {
          storable &= m.losses[s] >= 0;
          option.loss += m.losses[s];
          for (Value matrix : m.matrices()) {
            ArrayRef<int64_t> shape = getWeightShape(matrix.getType());
            SchemeAttr scheme = fitSchemeToInputs(schemes[s], shape[1]);
            option.bits += double(shape[0]) * shape[1] * scheme.getBitsPerWeight(shape[1]);
            option.seconds +=
                cost::chooseKernel(*gpu, m.tokens, shape[0], shape[1], getWeightFormat(scheme))
                    .cost.seconds;
          }
        }
        if (storable) {
          options.options.push_back(option);
          indices.push_back(s);
        }
      }
      for (const Member &m : block)
        layer.weights += m.originalWeights();
      if (options.options.empty())
        return moe.emitError() << "no candidate scheme can store the "
                               << block.front().slot.linear << " weight "
                               << describeWeight(block.front().slot.operand->get());
      layer.problem.blocks.push_back(std::move(options));
      layer.schemeOf.push_back(std::move(indices));
    }
    layer.problem.budgetBits = avgBits * layer.weights;
    layer.schemes = schemes;
    return layer;
  }

  /// The least average bits `problem` can be stored in.
  static double leastBits(const alloc::Problem &problem) {
    double bits = 0;
    for (const alloc::Block &block : problem.blocks)
      bits += llvm::min_element(block.options, [](const auto &a, const auto &b) {
                return a.bits < b.bits;
              })->bits;
    return bits;
  }

  /// Solves `problem` exactly (and by DDQ's relaxation with
  /// solver=relaxed); `what` names it in errors ("layer 3", "the model").
  FailureOr<alloc::Solution> solve(Operation *anchor, const alloc::Problem &problem,
                                   double weights, StringRef what, double &exactObjective) {
    double least = leastBits(problem);
    if (least > problem.budgetBits)
      return anchor->emitError() << what << ": the memory budget of "
                                 << llvm::formatv("{0:F3}", double(avgBits)).str()
                                 << " average bits cannot be met: the smallest candidate of "
                                    "every block needs "
                                 << llvm::formatv("{0:F3}", least / weights).str()
                                 << " average bits";
    llvm::Expected<alloc::Solution> solution = alloc::solveAllocation(problem);
    if (!solution)
      return anchor->emitError() << what << ": " << llvm::toString(solution.takeError())
                                 << llvm::formatv(" ({0:F3} average bits)", double(avgBits)).str();
    exactObjective = solution->objective;
    if (solver == AllocationSolver::Relaxed) {
      std::vector<std::pair<double, double>> frontier = std::move(solution->frontier);
      solution = alloc::solveByRelaxation(problem);
      if (!solution)
        return anchor->emitError() << what << ": " << llvm::toString(solution.takeError());
      solution->frontier = std::move(frontier); // (the exact search's)
    }
    if (progress)
      llvm::errs() << llvm::formatv("  allocation of {0}: {1:F3} average bits, objective "
                                    "{2:F4}, {3} {4:E1}, {5} subproblems\n",
                                    what, solution->bits / weights, solution->objective,
                                    solver == AllocationSolver::Relaxed ? "above the exact optimum by" : "gap",
                                    solver == AllocationSolver::Relaxed ? solution->objective - exactObjective
                                                        : solution->gap(),
                                    solution->milpSolves);
    return std::move(*solution);
  }

  /// Granularity linear or expert: each layer within its own budget.
  LogicalResult allocateLayers(MutableArrayRef<LayerProblem> layers) {
    for (LayerProblem &layer : layers) {
      double exactObjective = 0;
      FailureOr<alloc::Solution> solution =
          solve(layer.moe, layer.problem, layer.weights,
                llvm::formatv("layer {0}", layer.layer).str(), exactObjective);
      if (failed(solution) || failed(apply(layer, *solution, exactObjective, nullptr)))
        return failure();
    }
    return success();
  }

  /// Granularity layer: one problem over the model's blocks, the budget
  /// the sum of the layers'.
  LogicalResult allocateModel(ModuleOp module, MutableArrayRef<LayerProblem> layers) {
    if (layers.empty())
      return success();
    alloc::Problem model;
    model.r = r;
    double weights = 0;
    for (const LayerProblem &layer : layers) {
      llvm::append_range(model.blocks, layer.problem.blocks);
      model.budgetBits += layer.problem.budgetBits;
      weights += layer.weights;
    }
    double exactObjective = 0;
    FailureOr<alloc::Solution> solution =
        solve(module, model, weights, "the model", exactObjective);
    if (failed(solution))
      return failure();
    size_t first = 0;
    for (LayerProblem &layer : layers) {
      alloc::Solution part;
      part.choice.assign(solution->choice.begin() + first,
                         solution->choice.begin() + first + layer.problem.blocks.size());
      first += layer.problem.blocks.size();
      alloc::evaluateChoice(layer.problem, part);
      if (failed(apply(layer, part, exactObjective, &*solution)))
        return failure();
    }
    module->setAttr(kModelAllocationAttrName,
                    summarize(*solution, exactObjective, weights, model.blocks.size()));
    return success();
  }

  /// The `moeq.allocation` summary of a solution.
  DictionaryAttr summarize(const alloc::Solution &solution, double exactObjective,
                           double weights, size_t blocks, StringAttr loss = {}) {
    Builder builder(&getContext());
    NamedAttrList summary;
    summary.set("granularity", builder.getStringAttr(stringifyAllocationGranularity(granularity)));
    if (loss)
      summary.set("sensitivity", loss);
    summary.set("r", builder.getF64FloatAttr(r));
    summary.set("gpu", builder.getStringAttr(gpu->name));
    summary.set("tokens", builder.getI64IntegerAttr(tokens));
    summary.set("budget_avg_bits", builder.getF64FloatAttr(avgBits));
    summary.set("avg_bits", builder.getF64FloatAttr(solution.bits / weights));
    summary.set("loss", builder.getF64FloatAttr(solution.loss));
    summary.set("seconds", builder.getF64FloatAttr(solution.seconds));
    summary.set("objective", builder.getF64FloatAttr(solution.objective));
    if (solver == AllocationSolver::Relaxed) {
      summary.set("solver", builder.getStringAttr("relaxed"));
      summary.set("exact_objective", builder.getF64FloatAttr(exactObjective));
      summary.set("relaxation_gap", builder.getF64FloatAttr(solution.objective - exactObjective));
    } else {
      summary.set("gap", builder.getF64FloatAttr(solution.gap()));
    }
    summary.set("milp_solves", builder.getI64IntegerAttr(solution.milpSolves));
    summary.set("blocks", builder.getI64IntegerAttr(blocks));
    if (!solution.frontier.empty()) {
      // The loss/time trade-off the choice was made on (report.html).
      SmallVector<double> losses, seconds;
      for (auto [loss, time] : solution.frontier) {
        losses.push_back(loss);
        seconds.push_back(time);
      }
      summary.set("tradeoff_loss", builder.getDenseF64ArrayAttr(losses));
      summary.set("tradeoff_seconds", builder.getDenseF64ArrayAttr(seconds));
    }
    return summary.getDictionary(&getContext());
  }

  /// Quantizes `layer`'s weights to the schemes of `choice` and records
  /// the layer's summary. `model`: the model-wide solution it is part of
  /// (granularity layer), whose objective and gap are the ones proven.
  LogicalResult apply(LayerProblem &layer, const alloc::Solution &choice, double exactObjective,
                      const alloc::Solution *model) {
    MoEOp moe = layer.moe;
    bool sharedGated = bool(moe.getSharedExpertGate());
    for (auto [b, block] : llvm::enumerate(layer.blocks)) {
      SchemeAttr scheme = layer.schemes[layer.schemeOf[b][choice.choice[b]]];
      for (const Member &m : block) {
        LogicalResult done = success();
        if (m.kind == Member::Kind::Base)
          done = quantizeDeltaOperand(m.delta(), 0, scheme, settings);
        else if (m.kind == Member::Kind::Factors)
          done = success(succeeded(quantizeDeltaOperand(m.delta(), 1, scheme, settings)) &&
                         succeeded(quantizeDeltaOperand(m.delta(), 2, scheme, settings)));
        else
          done = quantizeSlot(m.slot, scheme, settings, layer.layer, sharedGated);
        if (failed(done))
          return failure();
      }
    }
    alloc::Solution summary = choice;
    if (model) {
      // The layer's own L, T and bits; what was optimised is the model's.
      summary.objective = model->objective;
      summary.lowerBound = model->lowerBound;
      summary.milpSolves = model->milpSolves;
    }
    // On the layer function, which outlives the moeq.moe (decomposition)
    // and which the manifest describes.
    Operation *holder = moe->getParentOfType<func::FuncOp>();
    (holder ? holder : moe.getOperation())
        ->setAttr(kAllocationAttrName,
                  summarize(summary, exactObjective, layer.weights, layer.blocks.size(),
                            layer.sensitivity.getAs<StringAttr>("loss")));
    moe->removeAttr(kSensitivityAttrName);
    return success();
  }

  QuantizeSettings settings;
  SmallVector<SchemeAttr> schemes;    ///< the candidates of the layer being read
  SmallVector<SchemeAttr> allSchemes; ///< every layer's candidates
  const cost::GpuSpec *gpu = nullptr;
};

} // namespace
