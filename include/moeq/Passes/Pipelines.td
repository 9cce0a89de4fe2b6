//===- Pipelines.td - moeq's pass pipelines and their options -*- tablegen -*-===//
//
// A pipeline's options are pass options (Passes.td) it forwards, under the
// pass's name or its own, plus the few that only steer the pipeline. From
// this file moeq-tblgen -gen-pipeline-options derives the pipeline's options
// struct, the copies into every pass's options and moeq-compile's flags, so
// that each option has one name, type, default and description.
//
//===----------------------------------------------------------------------===//
#ifndef MOEQ_PASSES_PIPELINES_TD
#define MOEQ_PASSES_PIPELINES_TD

include "moeq/Passes/Passes.td"
include "moeq/Passes/PipelineBase.td"

//===----------------------------------------------------------------------===//
// moeq-compile-gpu (moeq-compile)
//===----------------------------------------------------------------------===//

// Options of the pipeline alone: which optional passes run.
def GroupBitsOption : Option<"groupBits", "group-bits", "bool", "false",
    "SliM-LLM: give the column groups of each quantized linear their own width "
    "(salience-determined, mean unchanged) after choosing its scheme "
    "(moeq-assign-group-bits)">;

def CompileAvgBits : PipelineOption<AvgBitsOption, "avg-bits", "avg-bits", "0.0",
    "mixed precision: memory budget in average bits per quantized weight (scales and "
    "zeros included, g128 asym = +0.25); chooses a scheme per expert linear from "
    "schemes (MxMoE: moeq-estimate-sensitivity + moeq-allocate-bits). 0: every weight "
    "gets bits">;
def CompileSensitivity : PipelineOption<SensitivityLossOption, "sensitivity"> {
  let cppName = "sensitivity";
}
def CompileGroupBitsLoss : PipelineOption<GroupBitsLossOption, "group-bits-loss"> {
  let cppName = "groupBitsLoss";
}
def CompileGroupBitsSearch : PipelineOption<GroupBitsSearchOption, "group-bits-search"> {
  let cppName = "groupBitsSearch";
}
def CompileDeltaCompression : PipelineOption<DeltaCompressionOption, "d2-compression",
    "d2-compression", "0.0",
    "D^2-MoE delta decompression first (moeq-delta-decompress): remove this fraction of "
    "the routed-expert parameters (e.g. 0.4), each linear a shared base plus low-rank "
    "deltas, then quantize base and factors (needs stats with the Fisher information "
    "unless d2-merge=mean). 0: none"> {
  let cppName = "deltaCompression";
}
def CompileDeltaMerge : PipelineOption<DeltaMergeOption, "d2-merge"> {
  let cppName = "deltaMerge";
}
def CompileDeltaWhiten : PipelineOption<DeltaWhitenOption, "d2-whiten"> {
  let cppName = "deltaWhiten";
}
def CompileDeltaSharedBasis : PipelineOption<DeltaSharedBasisOption, "d2-shared-basis"> {
  let cppName = "deltaSharedBasis";
}
def CompileDeltaPrune : PipelineOption<DeltaPruneOption, "d2-prune"> {
  let cppName = "deltaPrune";
}
def CompileDeltaRankMultiple : PipelineOption<DeltaRankMultipleOption, "d2-rank-multiple"> {
  let cppName = "deltaRankMultiple";
}
def CompileDeltaOutput : PipelineOption<DeltaOutputOption, "d2-output", ""> {
  let cppName = "deltaOutput";
}
def CompileWeightsOutput : PipelineOption<QuantOutputOption, "weights", ""> {
  let cppName = "weightsOutput";
}

// The quantizer's options, shared by both pipelines.
defvar QuantizerPipelineOptions = [
    PipelineOption<WeightBitsOption>,
    PipelineOption<ActBitsOption>,
    PipelineOption<GroupSizeOption>,
    PipelineOption<SymmetricOption>,
    PipelineOption<NumberFormatOption>,
    PipelineOption<IncludeSharedOption, "quantize-shared">,
    PipelineOption<MethodOption>,
    PipelineOption<StatsOption, "stats", "calibration-stats">,
    PipelineOption<ActOrderOption>,
    PipelineOption<MSEClipOption>,
    PipelineOption<SalienceClipOption>
];

def CompileGPUPipeline : PassPipeline<"moeq-compile-gpu", "CompileGPUPipelineOptions"> {
  let options = !listconcat(QuantizerPipelineOptions, [
    // Mixed precision.
    CompileAvgBits,
    PipelineOption<SchemesOption>,
    PipelineOption<GranularityOption>,
    CompileSensitivity,
    PipelineOption<AccuracyWeightOption>,
    PipelineOption<SolverOption>,
    PipelineOption<TokensOption>,
    PipelineOption<CostModelGPUOption>,
    PipelineOption<GroupBitsOption>,
    CompileGroupBitsLoss,
    CompileGroupBitsSearch,
    PipelineOption<PriceGroupBitsOption, "price-group-bits">,
    PipelineOption<GroupBitsRowsOption, "price-group-bits-rows">,
    // D^2-MoE.
    CompileDeltaCompression,
    CompileDeltaMerge,
    CompileDeltaWhiten,
    CompileDeltaSharedBasis,
    CompileDeltaPrune,
    CompileDeltaRankMultiple,
    // Kernels.
    PipelineOption<KernelPathOption, "kernel-path">,
    PipelineOption<PersistentOption>,
    PipelineOption<ChipOption, "arch">,
    // Outputs and execution (set by moeq-compile, not flags; `jobs` because
    // libLLVM has a global option `threads`).
    CompileWeightsOutput,
    CompileDeltaOutput,
    PipelineOption<ThreadsOption, "threads", "jobs">,
    PipelineOption<ProgressOption, "progress", "">
  ]);
}

//===----------------------------------------------------------------------===//
// moeq-quantize (moeq-cpu-runner --bits)
//===----------------------------------------------------------------------===//

def QuantizePipeline : PassPipeline<"moeq-quantize", "QuantizePipelineOptions"> {
  let options = !listconcat(QuantizerPipelineOptions, [
    CompileWeightsOutput,
    PipelineOption<ThreadsOption, "threads", "jobs">
  ]);
}

#endif // MOEQ_PASSES_PIPELINES_TD
