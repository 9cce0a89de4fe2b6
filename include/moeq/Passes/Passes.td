//===- Passes.td - MoEQ passes, in pipeline order ----------*- tablegen -*-===//
#ifndef MOEQ_PASSES_TD
#define MOEQ_PASSES_TD

include "mlir/Pass/PassBase.td"
include "moeq/Dialect/MoEQ/IR/MoEQBase.td"
include "moeq/Passes/PassEnums.td"

//===----------------------------------------------------------------------===//
// Options
//
// Every option is declared once, as a record here: the passes list the ones
// they take, and the pipelines (Pipelines.td) forward them under the same
// or another name, with moeq-compile's flags derived from the pipeline's
// (tools/moeq-tblgen).
//===----------------------------------------------------------------------===//

// An option whose values are the cases of an ODS enum: parsed and printed by
// the cases' names.
class EnumOption<string varName, string arg, EnumInfo enumInfo, string defaultCase,
                 string desc>
  : Option<varName, arg, enumInfo.cppType, enumInfo.cppType # "::" # defaultCase, desc,
           "::llvm::cl::values(" # !interleave(!foreach(case, enumInfo.enumerants,
               "clEnumValN(" # enumInfo.cppType # "::" # case.symbol # ", \"" # case.str
               # "\", \"" # case.str # "\")"), ", ") # ")">;

// Quantizers.
def WeightBitsOption : Option<"weightBits", "bits", "unsigned", "4",
    "weight bits of every quantized weight (1-8)">;
def ActBitsOption : Option<"actBits", "act-bits", "unsigned", "16",
    "activation bits: 16, or 8 / 4 for w8a8 / w4a4 (per-token dynamic, symmetric)">;
def GroupSizeOption : Option<"groupSize", "group-size", "int64_t", "128",
    "input columns per scale (0 = per output channel)">;
def SymmetricOption : Option<"symmetric", "symmetric", "bool", "false",
    "symmetric quantization">;
def NumberFormatOption : EnumOption<"format", "format", MoEQ_NumberFormat, "Int",
    "number format: int (scale and zero point per group) or lut (a table of 2^bits f16 "
    "levels per group fitted to the Hessian-weighted error, DDQ adaptive resolution; "
    "1-4 bits, asymmetric)">;
def IncludeSharedOption : Option<"includeShared", "include-shared", "bool", "false",
    "also quantize the shared experts' gate, up and down weights (Qwen2-MoE, DeepSeek); "
    "by default they stay in full precision">;
def MethodOption : EnumOption<"method", "method", MoEQ_QuantMethod, "RTN",
    "quantizer: rtn, gptq or agq (GPTQ with the affinity-weighted Hessian)">;
def StatsOption : Option<"statsPath", "stats", "std::string", "",
    "calibration statistics file (docs/calibration-stats.md): the Hessians of GPTQ/AGQ, "
    "the samples and Gram matrices of the losses and of D^2-MoE">;
def ActOrderOption : Option<"actOrder", "act-order", "bool", "false",
    "GPTQ/AGQ: quantize columns by decreasing Hessian diagonal">;
def MSEClipOption : Option<"mseClip", "mse-clip", "bool", "false",
    "search each group's range for the least error">;
def SalienceClipOption : Option<"salienceClip", "salience-clip", "bool", "false",
    "SliM-LLM's salience-weighted calibration of each group's range (SQC; instead of "
    "mse-clip)">;
// The thread count of the passes that quantize or measure weights (one
// weight, or one expert, per task of an llvm::ThreadPool; BLAS runs
// single-threaded inside a task): their output does not depend on it.
def ThreadsOption : Option<"threads", "threads", "unsigned", "0",
    "threads quantizing and measuring weights in parallel (0: all cores); the output is "
    "the same for any count">;
def ProgressOption : Option<"progress", "progress", "bool", "false",
    "print a line per layer on stderr (long runs on large models)">;

// Mixed precision (MxMoE, SliM-LLM).
def SchemesOption : Option<"schemes", "schemes", "std::string",
    "::mlir::moeq::kDefaultCandidateSchemes",
    "comma-separated candidate schemes of the allocation (e.g. w4a16g128, w8a16pc)">;
def SensitivityLossOption : EnumOption<"lossMode", "loss", MoEQ_QuantizationLoss, "Auto",
    "loss per block and scheme: output (MxMoE: measured layer-output error on the "
    "statistics' input samples), hessian (proxy tr(dW H dW^T)) or auto (output when the "
    "statistics have samples; without statistics the loss is weight-only)">;
def PriceGroupBitsOption : Option<"priceGroupBits", "group-bits", "bool", "false",
    "price SliM-LLM's group widths: a candidate that can mix widths costs the least loss "
    "over the k a golden search tries (as moeq-assign-group-bits will choose), not its "
    "uniform-width loss">;
def GroupBitsRowsOption : Option<"groupBitsRows", "group-bits-rows", "int64_t",
    "::mlir::moeq::kDefaultGroupBitsRows",
    "group-bits pricing: rows of a linear the k search quantizes, evenly spaced (0: all); "
    "the priced loss is the uniform loss on all rows times the ratio the search finds on "
    "these">;
def AvgBitsOption : Option<"avgBits", "avg-bits", "double", "3.0",
    "memory budget in average bits per quantized weight (scales and zeros included, g128 "
    "asymmetric = +0.25)">;
def GranularityOption : EnumOption<"granularity", "granularity",
    MoEQ_AllocationGranularity, "Linear",
    "what shares a scheme: linear (gate+up, and down), expert, or layer (all routed "
    "experts of a layer; the budget is the model's)">;
def AccuracyWeightOption : Option<"r", "r", "double", "0.75",
    "weight of accuracy against speed in r*log(loss) + (1-r)*log(time): 1 = loss only, "
    "0 = speed only (MxMoE: 0.75)">;
def SolverOption : EnumOption<"solver", "solver", MoEQ_AllocationSolver, "Exact",
    "exact (proven optimum) or relaxed (DDQ gradient relaxation)">;
def TokensOption : Option<"tokens", "tokens", "int64_t", "512",
    "tokens per step the cost model prices the kernels at (decode: the batch; prefill: "
    "the prompt tokens)">;
def CostModelGPUOption : Option<"gpuName", "gpu", "std::string", "",
    "GPU of the cost model: a100, h100, h200, rtx4090 (default: the one of the target "
    "chip)">;
def GroupBitsLossOption : EnumOption<"lossMode", "loss", MoEQ_QuantizationLoss, "Auto",
    "what ranks SliM-LLM's candidate widths: output (the measured expert-output error; "
    "routed experts, needs samples), hessian (the linear's proxy) or auto (output where "
    "the statistics hold samples)">;
def GroupBitsSearchOption : EnumOption<"search", "search", MoEQ_GroupBitsSearch, "Golden",
    "which of SliM-LLM's k are tried: golden (golden-section search, about log(groups) "
    "runs) or exhaustive (every k from 0 to groups / 2)">;

// D^2-MoE.
def DeltaCompressionOption : Option<"compression", "compression", "double", "0.4",
    "fraction of the routed-expert parameters removed (D^2-MoE: 0.4, 0.6)">;
def DeltaMergeOption : EnumOption<"merge", "merge", MoEQ_DeltaMerge, "Fisher",
    "base merge: fisher (frequency x Fisher weighted) or mean">;
def DeltaWhitenOption : Option<"whiten", "whiten", "bool", "true",
    "truncation-aware SVD whitened by the input Gram matrix">;
def DeltaSharedBasisOption : Option<"sharedBasis", "shared-basis", "bool", "false",
    "one b (V) factor shared by all experts of a linear">;
def DeltaPruneOption : Option<"prune", "prune", "double", "0.0",
    "fraction of the base's intermediate channels removed (static, by activation-"
    "weighted norm)">;
def DeltaRankMultipleOption : Option<"rankMultiple", "rank-multiple", "int64_t", "32",
    "ranks (and kept channels) are multiples of this (32: whole 32-bit words at any "
    "width)">;

// Outputs.
def QuantOutputOption : Option<"outputPath", "output", "std::string", "",
    "safetensors file receiving the packed weights">;
def DeltaOutputOption : Option<"outputPath", "output", "std::string", "",
    "safetensors file receiving the D^2-MoE bases and factors (f32)">;

// Kernels.
def KernelPathOption : EnumOption<"kernelPath", "path", MoEQ_GemmKernelPath, "Auto",
    "kernel family of the expert GEMMs: auto (the cost model picks per precision mix), "
    "mma (tensor cores) or simt (CUDA cores, small-M decode)">;
def PersistentOption : Option<"persistent", "persistent", "bool", "true",
    "one persistent launch per grouped matmul across its precision mixes where legal (all "
    "tensor-core, one activation format); false: one launch per mix">;
def ChipOption : Option<"chip", "chip", "std::string", "\"sm_80\"",
    "GPU architecture: sm_80, sm_90, ...">;

//===----------------------------------------------------------------------===//
// Quantization
//===----------------------------------------------------------------------===//

def AssignUniformScheme : Pass<"moeq-assign-uniform-scheme", "ModuleOp"> {
  let summary = "quantizes every routed-expert weight with one scheme";
  let description = [{
    Wraps every expert weight operand of `moeq.moe` that is still a float
    tensor in a `moeq.quantize` to the given scheme. With `include-shared`,
    the shared expert's gate/up/down weights (Qwen2-MoE, DeepSeek) get the
    same scheme; by default they stay in full precision, as in MoEQuant and
    MxMoE, where the always-active shared expert is the most sensitive block.
    The router, the shared expert's sigmoid gate, dense layers and attention
    always stay in full precision. Weights whose input dimension is not a
    multiple of the group size are reported as errors.

    `method` is `rtn`, `gptq` or `agq`. With `stats` (a calibration
    statistics file, docs/calibration-stats.md), GPTQ and AGQ get each
    weight's Hessian as a reference into it (archive scope `stats`): the
    expert's `gram_in` for gate and up, `gram_down` for down, their
    `_weighted` forms for AGQ; a shared expert's `gram_all` (AGQ with a
    sigmoid gate: `shared.gram_in_weighted`) and `shared.gram_down[_weighted]`.
    Without `stats` they are data-free and reduce to round to nearest.
  }];
  let options = [
    WeightBitsOption, ActBitsOption, GroupSizeOption, SymmetricOption,
    NumberFormatOption, IncludeSharedOption, MethodOption, StatsOption, ActOrderOption, MSEClipOption, SalienceClipOption
  ];
  let dependentDialects = ["::mlir::moeq::MoEQDialect"];
}

def EstimateSensitivity : Pass<"moeq-estimate-sensitivity", "ModuleOp"> {
  let summary = "measures the quantization loss of every expert linear under every candidate scheme";
  let description = [{
    For every routed-expert weight of every `moeq.moe` (and, with
    `include-shared`, the shared expert's) and every scheme of `schemes`,
    quantizes the weight with `method` (GPTQ/AGQ with the Hessians of
    `stats`, as moeq-assign-uniform-scheme would) and measures a loss:

    * `output` (MxMoE): only this weight quantized (for w8a8/w4a4 its
      inputs too, per token), the expert runs on the
      calibration input samples the statistics file keeps for it
      (`experts.e.samples`, `sample_weights`), in float64; the loss is the
      change of the layer output, `sum_t c_t^2 ||y'_t - y_t||^2` (only this
      expert's combine term changes), scaled from the samples to all of the
      expert's calibration tokens (`expert_counts`).
    * `hessian`: the linear's own output error on the calibration inputs,
      `tr((W - Q) H (W - Q)^T)` with `H` the routing-weighted Gram matrix of
      its inputs (`gram_in_weighted`, `gram_down_weighted`; a shared
      expert's `gram_all` / `shared.gram_down`, sigmoid-weighted when
      gated). Cheaper, but gate/up errors are measured before the
      activation and down projection, so they are not in the units of the
      down losses, and activation quantization is not seen.
    * `auto` (default): `output` when the statistics carry samples, else
      `hessian`. Without `stats` the loss is weight-only, `||W - Q||_F^2`.

    The result is the `moeq.sensitivity` dictionary on the `moeq.moe`:
    `schemes` (the candidates), `loss` (`output`, `hessian` or `weight`),
    `routed_share` (fraction of tokens routed to each expert: measured from
    the statistics, else `top_k / E`), and one `[weights x schemes]` f64
    tensor per linear (`gate`, `up`, `down`, `shared_gate`, ...). A loss
    of -1 marks a scheme that cannot store the weight (e.g. the group size
    does not divide its input dimension).

    The experts of a layer are measured `threads` at a time (an
    llvm::ThreadPool; per weight one GPTQ factorisation serves every
    candidate scheme, and gate and up share theirs); the result does not
    depend on `threads`.
  }];
  let options = [
    SchemesOption, IncludeSharedOption, PriceGroupBitsOption, GroupBitsRowsOption,
    ProgressOption, SensitivityLossOption, MethodOption, StatsOption, ActOrderOption, MSEClipOption, SalienceClipOption, ThreadsOption
  ];
  let dependentDialects = ["::mlir::moeq::MoEQDialect"];
}

def AllocateBits : Pass<"moeq-allocate-bits", "ModuleOp"> {
  let summary = "chooses a scheme per expert linear under a memory budget (MxMoE)";
  let description = [{
    Consumes the `moeq.sensitivity` of every `moeq.moe` and, per layer,
    picks one candidate scheme per block minimising
    `r * log(L) + (1 - r) * log(T)` subject to
    `sum(bits) <= avg-bits * weights`, where `L` is the summed loss, `T` the
    summed kernel time the cost model predicts on `gpu` (default: the GPU
    of the module's `moeq.target`) with `tokens` tokens per step spread over
    the experts by their measured routing share, and `bits` counts the f16
    scales and zero points (g128 asymmetric = +0.25 bit). Blocks: gate and
    up of an expert always share a scheme; with `granularity=linear` down
    is its own block, with `granularity=expert` the whole expert is one.
    `granularity=layer` is what engines with one fused-MoE scheme per layer
    serve (vLLM): all routed weights of a layer are one block (a quantized
    shared expert another), and the problem is the model's: one allocation
    over every layer's blocks within the summed budget, so that layers trade
    bits. Each layer's summary then gives its own bits, L and T and the
    model's objective and gap; the module gets `moeq.model_allocation`.
    The problem is solved to proven optimality (lib/Allocation, GLPK MILPs;
    docs/allocation.md). Every weight is then wrapped in a `moeq.quantize`
    to its scheme, with `method` and the Hessians of `stats` as in
    moeq-assign-uniform-scheme, and the layer gets a `moeq.allocation`
    summary (budget, average bits used, L, T, objective, optimality gap).
    An impossible budget is an error naming the layer and the least
    budget possible.

    `solver=relaxed` uses DDQ's continuous relaxation instead: softmax
    choices optimised by gradient descent with an augmented Lagrangian for
    the budget, rounded and repaired (alloc::solveByRelaxation). The exact
    optimum is still computed, and the summary records both objectives
    (`objective`, `exact_objective`) and their difference (`relaxation_gap`).
  }];
  let options = [
    SolverOption, AvgBitsOption, GranularityOption, AccuracyWeightOption, TokensOption,
    ProgressOption, CostModelGPUOption, MethodOption, StatsOption, ActOrderOption, MSEClipOption, SalienceClipOption
  ];
  let dependentDialects = ["::mlir::moeq::MoEQDialect"];
}

def AssignGroupBits : Pass<"moeq-assign-group-bits", "ModuleOp"> {
  let summary = "gives the column groups of each quantized linear their own width (SliM-LLM)";
  let description = [{
    SliM-LLM's salience-determined bit allocation, inside every
    `moeq.quantize` of a `moeq.param` with an asymmetric weight-only group
    scheme of 2-7 bits: group salience is the sum of `w^2 / U_jj^2` over the
    group (U: upper Cholesky factor of the damped inverse of the op's
    Hessian; without one, of the identity), the k least salient groups get
    one bit less and the k most salient one more (the mean is unchanged),
    and the k with the least loss is kept, k = 0 (uniform widths) included.
    Each candidate is quantized as the op says (GPTQ/AGQ with its Hessian,
    else round to nearest) and ranked by `loss`: the measured output error
    of the expert on the statistics' input samples with this linear
    quantized (MxMoE's loss, the one moeq-estimate-sensitivity allocates
    by: it sees the activation and the down projection, which the
    linear's own Hessian proxy does not), or the proxy
    `tr((W - Q) H (W - Q)^T)`. `search=golden` tries about
    log_phi(groups / 2) + 5 of the k at most (the loss is unimodal in k: it falls
    while the groups gaining a bit matter more than those losing one),
    `exhaustive` all groups / 2 + 1. The result type gets `group_bits` when
    mixing won. Routed experts with the measured loss are one task each
    (the samples through the float expert are computed once for its three
    linears), other weights one task per weight, on a thread pool; the
    result does not depend on the thread count.
  }];
  let options = [
    ThreadsOption, GroupBitsLossOption, GroupBitsSearchOption
  ];
  let dependentDialects = ["::mlir::moeq::MoEQDialect"];
}

def MaterializeQuantizedParams
    : Pass<"moeq-materialize-quantized-params", "ModuleOp"> {
  let summary = "runs the quantizers and writes packed weights to an archive";
  let description = [{
    Folds every `moeq.quantize` of a `moeq.param`: reads the float tensor
    from its archive (resolved through the `moeq.archives` module
    attribute), quantizes it, appends `<key>.qweight`, `<key>.scales` and
    (asymmetric) `<key>.zeros` to the output safetensors archive, and
    replaces the pair by a `moeq.param` of `!moeq.qweight` type in scope
    `scope`. The weights are quantized `threads` at a time (an
    llvm::ThreadPool; weights sharing a Hessian, such as an expert's gate
    and up, share one factorisation) and each weight's packed tensors are
    written to the archive as soon as they are ready: the archive's header
    is fixed before any weight is read, every tensor's place with it, so
    memory holds only the weights in flight, never the whole model. The
    archive is renamed into place when the pass finishes (atomically) and
    its bytes do not depend on `threads`.
  }];
  let options = [
    QuantOutputOption,
    Option<"scope", "scope", "std::string", "\"quant\"",
           "archive scope name for the packed weights">,
    ThreadsOption
  ];
  let dependentDialects = ["::mlir::moeq::MoEQDialect"];
}

//===----------------------------------------------------------------------===//
// Compression
//===----------------------------------------------------------------------===//

def DeltaDecompress : Pass<"moeq-delta-decompress", "ModuleOp"> {
  let summary = "replaces routed experts by a shared base plus low-rank deltas (D^2-MoE)";
  let description = [{
    For every `moeq.moe` and each of its linears (gate, up, down) over the
    E routed experts: the base `W_b = sum_i f_i F_i W_i / sum_i f_i F_i`
    (`merge=fisher`: F_i the element-wise Fisher information
    `layers.L.experts.i.fisher_<linear>` of the statistics, f_i the routing
    frequency; `merge=mean`: the plain mean), each delta `W_i - W_b` truncated
    by an SVD whitened with the Cholesky factor of the expert's input Gram
    matrix (`whiten=true`; plain SVD otherwise, and for experts without
    calibration tokens), at the rank that keeps `1 - compression` of the
    expert parameters (rounded down to `rank-multiple`), optionally with one
    `b` factor shared by all experts (`shared-basis`). `prune` removes that
    fraction of the base's intermediate channels by an activation-weighted
    norm score (static structured pruning): the intermediate channels of
    every expert are reordered (a function-preserving permutation) so that
    the kept ones lead and the base stores only those.
    Base and factors are written (f32) to the `output` archive in scope
    `scope`, and every expert weight becomes a `moeq.delta_weight` of
    parameters, which later passes may quantize like any weight. The layer
    function gets a `moeq.delta` summary (ranks, kept channels, parameters
    kept, and per linear the output error of the truncated deltas on the
    calibration inputs relative to that of the deltas themselves).
  }];
  let options = [
    DeltaCompressionOption, DeltaMergeOption, DeltaWhitenOption, DeltaSharedBasisOption,
    DeltaPruneOption, DeltaRankMultipleOption, StatsOption, DeltaOutputOption,
    Option<"scope", "scope", "std::string", "\"delta\"",
           "archive scope name for bases and factors">,
    ThreadsOption
  ];
  let dependentDialects = ["::mlir::moeq::MoEQDialect"];
}

//===----------------------------------------------------------------------===//
// Decomposition
//===----------------------------------------------------------------------===//

def DecomposeMoE : Pass<"moeq-decompose-moe"> {
  let summary = "splits moeq.moe into router, dispatch, grouped matmuls, combine";
  let description = [{
    `moeq.moe` becomes `moeq.router` (scores + top-k), `moeq.dispatch` (token
    copies sorted by expert), three `moeq.grouped_matmul` (gate, up, down;
    each group keeps its expert's weight and scheme), `moeq.gated_activation`
    and `moeq.combine`. A shared expert becomes three `moeq.linear` (plus one
    for its sigmoid gate) whose output the combine adds. Expert weights that
    are D^2-MoE `moeq.delta_weight`s of one base are split: one
    `moeq.linear` with the base (gate, up: once per token, its output rows
    then sorted by a `moeq.dispatch` like the token copies; down: over the
    sorted rows), two `moeq.grouped_matmul` through the rank (`x b^T`, then
    `a^T`) and a `moeq.delta_sum` (a pruned down base's linear has
    `leading_inputs`: it reads the kept channels).
  }];
  let dependentDialects = ["::mlir::moeq::MoEQDialect", "::mlir::tensor::TensorDialect"];
}

//===----------------------------------------------------------------------===//
// Code generation shared by the CPU and GPU paths
//===----------------------------------------------------------------------===//

def LowerDequantization : Pass<"moeq-lower-dequantization"> {
  let summary = "lowers the packed-code ops to arith, vector and memref";
  let description = [{
    `moeq.unpack_codes` becomes one or two word loads (a 64-bit window where
    a code may straddle two words, the second read clamped to the row unless
    the rows are `padded`), a shift and a mask per code;
    `moeq.dequantize_codes` becomes `(code - zero) * scale` in f32, rounded
    to the result type, or for an f16 pair with an integral zero point the
    f16 form of the tensor-core kernels (codes under the exponent of 1024,
    minus 1024 + zero, times the scale); `moeq.lookup_levels` one load per
    code. Runs after moeq-convert-to-linalg (CPU) and on the `gpu.module`s
    of moeq-lower-expert-gemms-to-gpu (SIMT and tensor-core kernels, NVVM or
    SPIR-V); the patterns are `populateDequantizationLoweringPatterns`.
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::memref::MemRefDialect",
    "::mlir::vector::VectorDialect"
  ];
}

//===----------------------------------------------------------------------===//
// GPU code generation
//===----------------------------------------------------------------------===//

def PipelineTileLoads : Pass<"moeq-pipeline-tile-loads"> {
  let summary = "software-pipelines the K loops of tensor-core kernels";
  let description = [{
    Every `scf.for` marked `moeq.pipeline_stages = S` (the K loop of a
    tensor-core tile: each iteration copies its K step's tiles with
    `moeq.load_tile_async`, commits them as one cp.async group, waits for
    them, synchronises the block and computes) becomes a loop that keeps
    `S - 1` steps in flight, by the upstream loop pipeliner
    (`scf::pipelineForLoop`) with a two-stage schedule:

    - stage 0: the tile copies, the group commit and the index arithmetic
      only they use (pure operations both stages use are duplicated, so
      that no index crosses stages through the loop's arguments);
    - stage S - 1: the wait, the barrier and the rest. The wait, the
      mbarrier waits right after it (`moeq.wait_tile_barrier`, for bulk
      copies, with the index arithmetic they use) and the barrier after
      those go first: the barrier retires the buffer that the copies of
      step `k + S - 1` then refill. Other barriers stay in the math. The
      wait is set to leave `S - 2` groups pending.

    The prologue issues the first `S - 1` steps' copies; the epilogue is
    not peeled: copies past the last step are predicated off (their
    `enabled` operand), so each step's math is emitted once. The loads'
    addresses must stay in bounds past the end (the kernel clamps the step).
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::scf::SCFDialect", "::mlir::nvgpu::NVGPUDialect"
  ];
}

def SwizzleTileOperands : Pass<"moeq-swizzle-tile-operands"> {
  let summary = "XOR-swizzles the shared-memory tiles that ldmatrix reads, instead of padding";
  let description = [{
    The f16 and integer activation tiles (and f16 weight tiles) of the
    mma.sync kernels are rows of BK elements without padding: `ldmatrix`
    reads 8 rows of 16 bytes at one K offset, which would fall in the
    same banks. For every shared-memory `memref.view` whose rows are 32
    bytes or more (a power of two) and whose only users are
    `nvgpu.ldmatrix`, the `nvgpu.device_async_copy`s writing it and plain
    `memref.load`/`memref.store`, upstream's
    `nvgpu::optimizeSharedMemoryReadsAndWrites` permutes the 16-byte units
    of each row by an XOR with the row (the same permutation for the
    copies and the reads). Views with other users (packed weight words,
    wgmma's core matrices, mbarriers) are left alone. Runs after
    moeq-lower-tile-ops; fails if upstream refuses a view it chose.
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::memref::MemRefDialect",
    "::mlir::nvgpu::NVGPUDialect"
  ];
}

def LowerTileOps : Pass<"moeq-lower-tile-ops"> {
  let summary = "lowers the tensor-core tile ops to nvgpu, vector, memref and arith";
  let description = [{
    `moeq.load_tile_async` becomes each thread's share of the tile's chunks:
    an `nvgpu.device_async_copy` per chunk (zero-filled past `bound` or when
    not `enabled`, from a clamped, valid address; 16-byte copies bypass L1),
    or a load, select and store for chunks under 4 bytes. `moeq.load_fragment`
    becomes `nvgpu.ldmatrix` (x4 for A, x2 for f16 B) with each lane's
    address, or for integer B two word loads with the sign flip.
    `moeq.mma_tile`
    becomes one `nvgpu.mma.sync` per (A, B) fragment pair. Runs first on
    the `gpu.module`s of the NVVM pipeline, after moeq-pipeline-tile-loads;
    the patterns are `populateTileOpLoweringPatterns`. `moeq.store_tile`
    becomes, per accumulator row pair, a guarded (`scf.if`) `vector.store`
    of the scaled, rounded pair. `moeq.warpgroup_mma` becomes
    `nvvm.wgmma.fence.aligned`, one `nvvm.wgmma.mma_async` (m64nNk16, f16
    operands from shared-memory descriptors of the no-swizzle K-major
    layout, f32 accumulators) per 16 K elements, the group's commit and a
    wait for it. A tile copy with `barriers` becomes one
    `nvvm.cp.async.bulk.shared.cluster.global` per row on the stage's
    mbarrier and thread 0's `nvvm.mbarrier.arrive.expect_tx`;
    `moeq.init_tile_barriers` thread 0's `nvvm.mbarrier.init` of each
    mbarrier, `nvvm.fence.mbarrier.init` and a barrier;
    `moeq.wait_tile_barrier` `nvvm.mbarrier.try_wait.parity`.
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::gpu::GPUDialect", "::mlir::memref::MemRefDialect",
    "::mlir::nvgpu::NVGPUDialect", "::mlir::scf::SCFDialect", "::mlir::ub::UBDialect",
    "::mlir::vector::VectorDialect", "::mlir::NVVM::NVVMDialect", "::mlir::LLVM::LLVMDialect"
  ];
}

def SetTarget : Pass<"moeq-set-target", "ModuleOp"> {
  let summary = "records the target GPU architecture on the module";
  let description = [{
    Sets the module's `moeq.target` attribute to `chip`, replacing any
    earlier one: what the cost model prices by default (the GPU of the
    chip), which tiles fit (the chip's shared memory) and what the kernels
    are compiled for. The first pass of `moeq-compile-gpu`, so that the
    pipeline alone reproduces a compile.
  }];
  let options = [ChipOption];
  let dependentDialects = ["::mlir::moeq::MoEQDialect"];
}

def TileExpertGemms : Pass<"moeq-tile-expert-gemms", "ModuleOp"> {
  let summary = "picks the kernel path and tile of every precision mix";
  let description = [{
    Groups the weights of every `moeq.grouped_matmul` by precision mix (weight
    type) and records in `tiles` the kernel the GPU cost model predicts
    fastest for the expected rows per expert, `tokens * top_k / experts`:
    a tensor-core tile (`path = mma`, BM/BN/BK/warps/stages) or the SIMT
    decode kernel (`path = simt`). Shared-expert linears get the choice
    for all `tokens` in `tile`. The rows assumed are recorded as
    `moeq.rows_per_expert`. With `persistent` (default), when every mix of
    an op runs on tensor cores with one activation format, the tiles are
    re-chosen with a common warp count (the one of least total predicted
    time) and the op is marked `moeq.persistent`: kernel lowering then emits
    one persistent kernel for all its groups (tile prefix sum over experts,
    per-tile dispatch to each mix's micro-kernel, shared memory = the
    largest mix's); otherwise each mix is its own launch. Formulas:
    docs/cost-model.md; kernels: docs/kernels.md.
  }];
  let options = [
    TokensOption, CostModelGPUOption, KernelPathOption, PersistentOption
  ];
  let dependentDialects = ["::mlir::moeq::MoEQDialect"];
}

def LowerExpertGemmsToGPU : Pass<"moeq-lower-expert-gemms-to-gpu", "ModuleOp"> {
  let summary = "builds one GPU kernel per precision mix of the expert GEMMs";
  let description = [{
    For every group of a `moeq.grouped_matmul` (and every `moeq.linear`),
    emits once per distinct (weight type, tile) a `gpu.module` with a
    kernel computing `Y[m, n] = sum_k X[m, k] * dequant(W)[n, k]` with the
    dequantisation in registers, and records it in `kernels`. The tile's
    path (from `moeq-tile-expert-gemms`, else the cost model's choice for
    16 rows) selects the family: `mma`, the tensor-core kernel (mma.sync
    m16n8k16 f16 for weight-only and float weights, m16n8k32 s8 for w8a8,
    m16n8k64 s4 for w4a4; ldmatrix; a cp.async pipeline of `stages`
    buffers in dynamic shared memory; grid `(ceil(N / bn), ceil(M / bm))`,
    block `(32 * warps)`), or `simt`, one thread per output feature (grid
    `(ceil(N / 128), M)`, block `(128)`). w8a8/w4a4 tensor-core kernels
    read activations quantised by a `quant_a<bits>_k<K>` kernel also
    emitted here. The kernels are compiled for the module's `moeq.target`
    (moeq-set-target), else for `chip`, which then becomes the module's
    target. ABIs: passes/GPU/KernelBuilders.h and docs/kernels.md.
  }];
  let options = [
    ChipOption,
    Option<"spirv", "spirv", "bool", "false",
           "emit the SIMT kernels for OpenCL SPIR-V (Kernel capability, e.g. PoCL on the "
           "CPU) instead of NVVM; tensor-core tiles are an error">
  ];
  let dependentDialects = [
    "::mlir::moeq::MoEQDialect", "::mlir::gpu::GPUDialect",
    "::mlir::arith::ArithDialect", "::mlir::memref::MemRefDialect", "::mlir::scf::SCFDialect",
    "::mlir::LLVM::LLVMDialect", "::mlir::NVVM::NVVMDialect", "::mlir::nvgpu::NVGPUDialect",
    "::mlir::vector::VectorDialect", "::mlir::ub::UBDialect", "::mlir::spirv::SPIRVDialect"
  ];
}

def ConvertToLaunchPlan : Pass<"moeq-convert-to-launch-plan", "ModuleOp"> {
  let summary = "expresses the host side of every compiled MoE layer as a launch plan";
  let description = [{
    For every decomposed MoE layer function whose expert GEMMs have their
    kernels (`moeq-lower-expert-gemms-to-gpu`), adds a host function
    `@<layer>_launch(%x: memref<?xHxf16>) -> memref<?xHxf16>` that runs the
    layer on a GPU: device buffers (`gpu.alloc`, named by `moeq.name`),
    parameters uploaded once (`moeq.device_param`), and one
    `gpu.launch_func` per kernel launch with its grid, block, dynamic shared
    memory and arguments (`moeq.kernel_pointer` for activation rows), in
    order: routing, token sort, row gather, the expert GEMMs (one persistent
    launch per GEMM, or per expert after reading the expert offsets back to
    the host with `gpu.memcpy`; activation quantization and split-K
    reductions included), the gated activation, D^2-MoE base adds, the
    shared expert and the combine. The kernels around the GEMMs are built
    here (passes/GPU/RoutingKernels.cpp, one `gpu.module` each, shared
    between layers with the same shape), with exp/erf expanded into
    polynomials so that the PTX needs no libdevice. The manifest's `plan`
    is exported from these functions (docs/runtime.md).
  }];
  // The cost model's GPU: its SM count sizes the persistent launches.
  let options = [CostModelGPUOption];
  let dependentDialects = [
    "::mlir::moeq::MoEQDialect", "::mlir::gpu::GPUDialect", "::mlir::func::FuncDialect",
    "::mlir::arith::ArithDialect", "::mlir::memref::MemRefDialect", "::mlir::scf::SCFDialect",
    "::mlir::math::MathDialect", "::mlir::LLVM::LLVMDialect", "::mlir::NVVM::NVVMDialect"
  ];
}

//===----------------------------------------------------------------------===//
// CPU execution (the numerical oracle)
//===----------------------------------------------------------------------===//

def EmulateGPUKernels : Pass<"moeq-emulate-gpu-kernels", "ModuleOp"> {
  let summary = "turns NVVM-lowered GPU kernels into CPU functions for the GPU emulator";
  let description = [{
    For a module whose `gpu.module`s are lowered to NVVM (LLVM dialect and
    NVVM operations, before `gpu-module-to-binary`), moves every kernel into
    the host module as a plain `llvm.func` whose NVVM operations (special
    registers, barriers, cp.async, ldmatrix, mma.sync, shfl.sync, dynamic
    shared memory) are calls into the GPU emulator runtime
    (`lib/GPUEmulator`: fibers per thread, PTX fragment semantics), with
    every pointer in the default address space. The rest of the kernel is
    untouched, so that running it through the ExecutionEngine checks the
    numerics of the very code that becomes PTX (docs/kernels.md).
  }];
  let dependentDialects = ["::mlir::LLVM::LLVMDialect"];
}

def ConvertMoEQToLinalg : Pass<"moeq-convert-to-linalg", "ModuleOp"> {
  let summary = "lowers decomposed moeq ops to linalg, tensor and scf for CPU";
  let description = [{
    Rewrites router, dispatch, grouped matmul (with dequantisation of packed
    weights), gated activation and combine into linalg/tensor/scf/arith on
    tensors, and turns every `moeq.param` into a function argument carrying
    a `moeq.param` argument attribute (packed weights become three arguments:
    codes, scales, zeros), so a runtime can bind archive tensors by name.

    With `expose-trace`, every layer also writes its routing (indices,
    combine weights, sorted positions, expert offsets) and the inputs of the
    down projections (routed and shared) to extra output arguments marked
    `moeq.trace = "<name>"`: what calibration statistics are computed from.
  }];
  let options = [
    Option<"exposeTrace", "expose-trace", "bool", "false",
           "also output routing decisions and down-projection inputs">
  ];
  let dependentDialects = [
    "::mlir::linalg::LinalgDialect", "::mlir::tensor::TensorDialect",
    "::mlir::scf::SCFDialect", "::mlir::arith::ArithDialect",
    "::mlir::math::MathDialect", "::mlir::func::FuncDialect",
    "::mlir::bufferization::BufferizationDialect"
  ];
}

#endif // MOEQ_PASSES_TD
