//===- moeq-compile.cpp - checkpoint -> deployable artifact ---------------===//
//
//   moeq-compile <hf-model-dir> -o <out-dir> --bits 4 --arch sm_90
//
// A thin driver: import, the moeq-compile-gpu pipeline, export. Everything
// is written into a temporary sibling directory that replaces <out-dir> only
// when the whole compile succeeded. With --layers A:B it compiles a slice
// of the model into a partial artifact that moeq-merge joins with the
// others (docs/distributed.md).
//
//===----------------------------------------------------------------------===//
#include "moeq/Artifact/Merge.h"
#include "moeq/Artifact/Report.h"
#include "moeq/Calibration/StatisticsFiles.h"
#include "moeq/Dialect/MoEQ/IR/MoEQ.h"
#include "moeq/Artifact/Export.h"
#include "moeq/Artifact/FileDigests.h"
#include "moeq/Artifact/HFFiles.h"
#include "moeq/IO/AtomicOutput.h"
#include "moeq/IO/Checkpoint.h"
#include "moeq/IO/ModelConfig.h"
#include "moeq/IO/SafeTensors.h"
#include "moeq/Passes/Export.h"
#include "moeq/Passes/Import.h"
#include "moeq/Passes/Kernels.h"
#include "moeq/Passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"
#include "Plan.h"
#include "PtxasCheck.h"

#include "llvm/ADT/ScopeExit.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/ThreadPool.h"
#include "llvm/Support/Threading.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Support/xxhash.h"

#include <chrono>

#include <map>

#include "StatsFlag.h"

using namespace mlir;
namespace cl = llvm::cl;

static cl::OptionCategory compileCategory("moeq-compile options");
static cl::opt<std::string> modelDir(cl::Positional, cl::desc("<hf-model-dir>"),
                                     cl::Required, cl::cat(compileCategory));
static cl::opt<std::string> outputDir("o", cl::desc("output artifact directory"),
                                      cl::value_desc("dir"), cl::cat(compileCategory));
static cl::opt<bool> dryRun(
    "dry-run",
    cl::desc("print the plan (model, MoE layers, schemes, budget, estimated output size and "
             "compile time) and stop: nothing is quantized or written"),
    cl::init(false), cl::cat(compileCategory));
// Every option of the compile pipeline is a flag, under the pipeline's
// name for it (Pipelines.td): one declaration for moeq-compile, moeq-opt's
// `moeq-compile-gpu` pipeline and the passes.
#define MOEQ_PIPELINE_FLAGS_CATEGORY compileCategory
namespace mlir::moeq {
#define GEN_TOOL_FLAGS_CompileGPUPipelineOptions
#include "moeq/Passes/Pipelines.h.inc"
} // namespace mlir::moeq
namespace flags = mlir::moeq::flags;
static cl::alias jobsShort("j", cl::desc("alias for --jobs"), cl::aliasopt(flags::threads),
                           cl::cat(compileCategory));
/// The engine the artifact is compiled for, and so the schemes it may use.
enum class ServeEngine { Runtime, VLLM };
/// vLLM's fused-MoE schemes: the --schemes of --serve vllm by default.
constexpr const char *kVLLMCandidateSchemes = "w8a16pcs,w8a16g128s,w4a16pcs,w4a16g128s,w8a8pcs";
static cl::opt<ServeEngine> serveEngine(
    "serve", cl::desc("the engine that serves the artifact (constrains the schemes)"),
    cl::values(clEnumValN(ServeEngine::Runtime, "moeq",
                          "moeq's runtime: any scheme per expert linear (default)"),
               clEnumValN(ServeEngine::VLLM, "vllm",
                          "vLLM's fused MoE: one scheme per MoE layer, 4/8-bit symmetric in "
                          "groups of 128 or per channel, or w8a8; --avg-bits allocates per "
                          "layer over the model (granularity layer) from those schemes")),
    cl::init(ServeEngine::Runtime), cl::cat(compileCategory));
static cl::opt<bool> printPipeline(
    "print-pipeline",
    cl::desc("print the moeq-opt pass pipeline that reproduces this compile (after the "
             "defaults moeq-compile chooses) and stop: `moeq-translate --import-hf MODEL | "
             "moeq-opt --pass-pipeline=...` then writes the same weights (to the pipeline's "
             "`weights`) and kernels"),
    cl::init(false), cl::cat(compileCategory));
static cl::opt<bool> quiet("quiet", cl::desc("no progress output"), cl::init(false),
                           cl::cat(compileCategory));
static cl::opt<std::string> ptxasPath(
    "ptxas",
    cl::desc("ptxas that checks every kernel before the artifact is committed (default: "
             "$CUDA_HOME/bin/ptxas or /usr/local/cuda/bin/ptxas when present; 'none': no check)"),
    cl::init(""), cl::cat(compileCategory));
static cl::opt<std::string> layerRange(
    "layers",
    cl::desc("compile only the decoder layers A to B-1 into a partial artifact (their MoE "
             "layers, weights, kernels and tensors); moeq-merge joins the slices of a model "
             "into the artifact of one compile"),
    cl::value_desc("A:B"), cl::init(""), cl::cat(compileCategory));

static cl::extrahelp workedExamples(R"(
EXAMPLES:

  Look before compiling (model, layers, schemes, estimated size and time):
    moeq-compile Mixtral-8x7B/ --avg-bits 3 --stats stats/ --dry-run

  Calibrate once, then mixed precision at 3 average bits for an H100, the
  bit-widths chosen per expert linear from measured sensitivity:
    python tools/python/moeq_calibrate.py Mixtral-8x7B/ --text calib.txt -o stats/
    moeq-compile Mixtral-8x7B/ --avg-bits 3 --method agq --stats stats/ \
        --arch sm_90 -o mixtral-3bit/

  One scheme for every expert: 4-bit GPTQ in groups of 128:
    moeq-compile Mixtral-8x7B/ --bits 4 --group-size 128 --method gptq \
        --stats stats/ --arch sm_90 -o mixtral-w4/

  Evaluate the artifact (perplexity, KL to the original, top-1 agreement):
    python tools/python/moeq_eval.py mixtral-3bit/ --text eval.txt --original Mixtral-8x7B/

  Serve with vLLM (one scheme per MoE layer), then export compressed-tensors:
    moeq-compile Mixtral-8x7B/ --serve vllm --avg-bits 5 --stats stats/ -o for-vllm/
    moeq-export for-vllm/ --format compressed-tensors -o mixtral-vllm/

  llama.cpp (Q4_0: symmetric 4-bit groups of 32):
    moeq-compile Mixtral-8x7B/ --bits 4 --group-size 32 --symmetric -o q4/
    moeq-export q4/ --format gguf -o mixtral-q4_0.gguf

  A model too large for one machine: slices of layers, then one artifact:
    moeq-compile DeepSeek-V3/ --layers 0:30 --bits 4 --stats stats/ -o part0/
    moeq-compile DeepSeek-V3/ --layers 30:61 --bits 4 --stats stats/ -o part1/
    moeq-merge part0/ part1/ -o deepseek-w4/

  docs/user-guide.md walks through all of it.

DEFAULTS moeq-compile chooses (flags given are kept):
  --method agq with --stats (rtn without); with --stats and --avg-bits,
  --group-bits (not with --serve vllm or --d2-compression) and, from 2.5 to
  below 3.0 average bits, --price-group-bits; below 3.0 bits (or widths that
  do not hold groups of 128) per-channel w3 and w2 join --schemes; --serve
  vllm sets --granularity layer and vLLM's schemes. The flags are the options
  of the moeq-compile-gpu pipeline (moeq-opt --help); --print-pipeline prints
  the pipeline of a compile with these choices made.
)");

namespace {

/// Progress lines on stderr: "[2/5] quantizing and compiling ...".
class Progress {
public:
  explicit Progress(unsigned total) : total(total) {}
  void step(const llvm::Twine &what) {
    if (!quiet)
      llvm::errs() << "[" << ++current << "/" << total << "] " << what << "\n";
  }

private:
  unsigned total, current = 0;
};

LogicalResult writeFile(StringRef path, StringRef contents) {
  std::error_code ec;
  llvm::raw_fd_ostream os(path, ec);
  if (ec) {
    llvm::errs() << "moeq-compile: cannot write " << path << ": " << ec.message() << "\n";
    return failure();
  }
  os << contents;
  return success();
}

/// Why D^2-MoE is off and when to try it, for the report
/// (noteDeltaDecomposition).
std::string deltaNote;

/// Whether --group-bits was turned on by default (applyDefaultGroupBits).
bool groupBitsDefaulted = false;

/// Why the widths are not priced, for the report (applyDefaultPricing;
/// empty: they are, or they are off).
std::string pricingNote;

/// Why the candidates differ from --schemes' default, for the report (set
/// by applyDefaultSchemes).
std::string candidatesNote;

/// The quantizer and its data, for the report and the progress output.
std::string describeMethod() {
  std::string text = mlir::moeq::stringifyQuantMethod(flags::method).str();
  bool defaulted =
      !flags::method.getNumOccurrences() && flags::method == mlir::moeq::QuantMethod::AGQ;
  if (flags::method != mlir::moeq::QuantMethod::RTN)
    text += flags::statsPath.empty() ? " (data-free: no --stats, identity Hessian = round to nearest)"
                              : std::string(defaulted ? " (the default with --stats; " : " (") +
                                    "Hessians from " + flags::statsPath.getValue() + ")";
  else if (flags::avgBits > 0 && flags::statsPath.empty())
    text += " (data-free: no --stats, weight-only sensitivity)";
  if (flags::actOrder)
    text += ", act-order";
  if (flags::mseClip)
    text += ", MSE range clipping";
  if (flags::salienceClip)
    text += ", salience-weighted range calibration";
  if (flags::groupBits)
    text += groupBitsDefaulted
                ? ", SliM-LLM group-wise widths (the default with --stats and --avg-bits: "
                  "k by the measured expert-output loss, golden-section search; "
                  "--group-bits=false turns them off)"
                : ", SliM-LLM group-wise widths";
  text += pricingNote;
  if (flags::groupBits && flags::priceGroupBits && flags::avgBits > 0)
    text += llvm::formatv(", priced in the allocation ({0}k searched on {1} rows of each "
                          "weight; --price-group-bits=false for the uniform widths' loss)",
                          flags::priceGroupBits.getNumOccurrences() ? "" : "the default with them: ",
                          flags::groupBitsRows > 0
                              ? "up to " + std::to_string(flags::groupBitsRows.getValue())
                              : std::string("all"))
                .str();
  return text;
}

/// The report's description of the options: model, target, scheme,
/// method, shared experts.
std::string describeOptions() {
  std::string text;
  llvm::raw_string_ostream os(text);
  os << "model: " << modelDir << "\ntarget: " << flags::chip << "\n";
  if (serveEngine == ServeEngine::VLLM)
    os << "served by: vLLM (one fused-MoE scheme per layer; export with moeq-export "
          "--format compressed-tensors)\n";
  if (flags::avgBits > 0)
    os << llvm::formatv("scheme: mixed precision at {0} average bits, candidates {1}{4}, "
                        "granularity {2}, r = {3}\n",
                        flags::avgBits.getValue(), flags::schemes.getValue(), mlir::moeq::stringifyAllocationGranularity(flags::granularity),
                        flags::r.getValue(),
                        candidatesNote.empty() ? "" : " (" + candidatesNote + ")");
  else
    os << llvm::formatv("scheme: w{0}a{3}, {1}, {2}\n", flags::weightBits.getValue(),
                        flags::groupSize == 0 ? std::string("per-channel")
                                       : "group " + std::to_string(flags::groupSize),
                        flags::format == mlir::moeq::NumberFormat::LevelTable ? "level tables (2^bits f16 levels per group)"
                        : flags::symmetric           ? "symmetric"
                                              : "asymmetric",
                        flags::actBits.getValue());
  os << "method: " << describeMethod() << "\n";
  if (!deltaNote.empty())
    os << "decomposition: " << deltaNote << "\n";
  os << "shared experts: " << (flags::includeShared ? "quantized" : "full precision") << "\n";
  return text;
}

/// Quantized weights and their stored bits per MoE layer (the layer of the
/// function holding them), so that slices' totals add up to the model's.
std::vector<::mlir::moeq::artifact::LayerWeights> countLayerWeights(ModuleOp module) {
  std::map<int64_t, ::mlir::moeq::artifact::LayerWeights> layers;
  auto layerOf = [&](Operation *op) -> ::mlir::moeq::artifact::LayerWeights & {
    auto func = op->getParentOfType<func::FuncOp>();
    auto index = func ? func->getAttrOfType<IntegerAttr>(mlir::moeq::kLayerAttrName) : IntegerAttr();
    int64_t layer = index ? index.getInt() : -1;
    ::mlir::moeq::artifact::LayerWeights &entry = layers[layer];
    entry.layer = layer;
    return entry;
  };
  module.walk([&](mlir::moeq::ParamOp param) {
    if (auto packed = dyn_cast<mlir::moeq::PackedWeightType>(param.getType())) {
      int64_t count = packed.getOutputDim() * packed.getInputDim();
      ::mlir::moeq::artifact::LayerWeights &layer = layerOf(param);
      layer.quantized += count;
      layer.storedBits += count * packed.getScheme().getBitsPerWeight(packed.getInputDim());
    }
  });
  // D^2-MoE: the original (uncompressed) expert weights, what a memory
  // budget refers to: E experts x out x in, `in` the width of the b GEMM's
  // input.
  module.walk([&](mlir::moeq::DeltaSumOp sum) {
    using mlir::moeq::GroupedMatmulOp;
    auto lowrank = sum.getLowrank().getDefiningOp<GroupedMatmulOp>();
    auto project = lowrank ? lowrank.getInput().getDefiningOp<GroupedMatmulOp>() : nullptr;
    if (project)
      layerOf(sum).original += int64_t(lowrank.getWeights().size()) *
                               sum.getType().getDimSize(1) *
                               project.getInput().getType().getDimSize(1);
  });
  std::vector<::mlir::moeq::artifact::LayerWeights> result;
  for (auto &entry : layers)
    result.push_back(entry.second);
  return result;
}

/// What report.txt says beyond the manifest.
::mlir::moeq::artifact::ReportData
collectReportData(ModuleOp module, bool ptxasRan,
                  const std::vector<::moeq::compile::PtxasResult> &assembled) {
  ::mlir::moeq::artifact::ReportData data;
  data.header = describeOptions();
  data.mixedPrecision = flags::avgBits > 0;
  data.tokensPerStep = flags::tokens;
  data.layers = countLayerWeights(module);
  data.ptxasRan = ptxasRan;
  for (const ::moeq::compile::PtxasResult &r : assembled)
    data.assembled.push_back({r.kernel, r.registers, r.spillBytes, r.stackBytes});
  return data;
}

/// Every option that shapes the artifact (not -o, --layers, --jobs, --quiet
/// or --ptxas), the model's path and a hash of its config.json: slices
/// merge only when these agree. The weights are not hashed (too large to
/// read twice); slices must read one checkpoint.
llvm::json::Object describeCompileOptions() {
  llvm::json::Object options{
      {"model", modelDir.getValue()}, {"arch", flags::chip.getValue()},
      {"bits", flags::weightBits.getValue()}, {"act_bits", flags::actBits.getValue()},
      {"group_size", flags::groupSize.getValue()}, {"symmetric", flags::symmetric.getValue()},
      {"format", mlir::moeq::stringifyNumberFormat(flags::format)}, {"quantize_shared", flags::includeShared.getValue()},
      {"method", mlir::moeq::stringifyQuantMethod(flags::method)}, {"stats", flags::statsPath.getValue()},
      {"act_order", flags::actOrder.getValue()}, {"mse_clip", flags::mseClip.getValue()},
      {"avg_bits", flags::avgBits.getValue()}, {"schemes", flags::schemes.getValue()},
      {"granularity", mlir::moeq::stringifyAllocationGranularity(flags::granularity)}, {"sensitivity", mlir::moeq::stringifyQuantizationLoss(flags::sensitivity)},
      {"r", flags::r.getValue()}, {"tokens", flags::tokens.getValue()},
      {"gpu", flags::gpuName.getValue()}, {"salience_clip", flags::salienceClip.getValue()},
      {"group_bits", flags::groupBits.getValue()},
      {"group_bits_search",
       mlir::moeq::stringifyGroupBitsSearch(flags::groupBitsSearch)},
      {"price_group_bits", flags::priceGroupBits.getValue()},
      {"price_group_bits_rows", flags::groupBitsRows.getValue()},
      {"d2_compression", flags::deltaCompression.getValue()},
      {"d2_merge", mlir::moeq::stringifyDeltaMerge(flags::deltaMerge)}, {"d2_whiten", flags::deltaWhiten.getValue()},
      {"d2_shared_basis", flags::deltaSharedBasis.getValue()}, {"d2_prune", flags::deltaPrune.getValue()},
      {"d2_rank_multiple", flags::deltaRankMultiple.getValue()},
      {"kernel_path", mlir::moeq::stringifyGemmKernelPath(flags::kernelPath)}, {"persistent", flags::persistent.getValue()},
      {"serve", serveEngine == ServeEngine::VLLM ? "vllm" : "moeq"}};
  llvm::SmallString<256> configPath(modelDir);
  llvm::sys::path::append(configPath, "config.json");
  if (auto config = llvm::MemoryBuffer::getFile(configPath))
    options["config_xxh3"] =
        llvm::formatv("{0:x16}", llvm::xxh3_64bits((*config)->getBuffer())).str();
  return options;
}

/// --layers A:B, checked against the model's layer count before any work.
/// Returns false after an error; `range` stays empty without --layers.
bool parseLayerRangeOption(std::optional<std::pair<int64_t, int64_t>> &range) {
  if (layerRange.empty())
    return true;
  llvm::SmallString<256> configPath(modelDir);
  llvm::sys::path::append(configPath, "config.json");
  auto config = mlir::moeq::io::loadModelConfig(configPath);
  if (!config) {
    llvm::consumeError(config.takeError());
    return true; // The import reports a bad config, naming the key.
  }
  auto parsed = ::mlir::moeq::artifact::parseLayerRange(layerRange, config->numLayers);
  if (!parsed) {
    llvm::errs() << "moeq-compile: error: " << llvm::toString(parsed.takeError()) << "\n";
    return false;
  }
  range = *parsed;
  return true;
}

/// Keeps the MoE layers of the decoder layers [begin, end) and the tensors
/// from outside the MoE blocks that the slice carries (its layers'; the
/// embeddings, final norm and head with the slice that starts at 0).
/// Before the pipeline, so that nothing of the other layers is quantized,
/// measured or read (their statistics files included).
void sliceModule(ModuleOp module, int64_t begin, int64_t end, int64_t numLayers) {
  for (auto func : llvm::make_early_inc_range(module.getOps<func::FuncOp>())) {
    auto layer = func->getAttrOfType<IntegerAttr>(mlir::moeq::kLayerAttrName);
    if (layer && (layer.getInt() < begin || layer.getInt() >= end))
      func.erase();
  }
  auto passthrough = module->getAttrOfType<ArrayAttr>(mlir::moeq::kPassthroughAttrName);
  if (!passthrough)
    return;
  SmallVector<Attribute> kept;
  for (auto ref : passthrough.getAsRange<mlir::moeq::ExternalParamAttr>())
    if (::mlir::moeq::artifact::sliceOwnsTensor(ref.getKey().getValue(), begin, end, numLayers))
      kept.push_back(ref);
  module->setAttr(mlir::moeq::kPassthroughAttrName,
                  ArrayAttr::get(module.getContext(), kept));
}

/// The decoder layer count the importer recorded.
int64_t modelLayerCount(ModuleOp module) {
  auto model = module->getAttrOfType<DictionaryAttr>(mlir::moeq::kModelAttrName);
  auto count = model ? model.getAs<IntegerAttr>("num_layers") : IntegerAttr();
  return count ? count.getInt() : 0;
}

/// The quantizer flags, checked before any work: a known method, a
/// statistics file only where it is used, and one that describes this
/// model (docs/calibration-stats.md metadata).
bool checkMethodAndStatistics() {
  auto fail = [](const llvm::Twine &message) {
    llvm::errs() << "moeq-compile: error: " << message << "\n";
    return false;
  };
  if (flags::avgBits.getNumOccurrences() && !(flags::avgBits > 0))
    return fail("--avg-bits must be positive");
  if (flags::granularity == mlir::moeq::AllocationGranularity::Layer && !layerRange.empty())
    return fail("--granularity layer allocates over the whole model's budget: compile it "
                "without --layers");
  if (flags::avgBits > 0 && (flags::weightBits.getNumOccurrences() || flags::groupSize.getNumOccurrences() ||
                      flags::symmetric.getNumOccurrences() || flags::actBits.getNumOccurrences()))
    return fail("--avg-bits chooses the schemes from --schemes; --bits, --act-bits, "
                "--group-size and --symmetric apply only without it");
  // With --avg-bits the statistics also give the sensitivity, and with
  // --d2-compression the decomposition, so RTN may use them.
  if (flags::method == mlir::moeq::QuantMethod::RTN && ((!flags::statsPath.empty() && !(flags::avgBits > 0) && !(flags::deltaCompression > 0)) ||
                          flags::actOrder))
    return fail(llvm::Twine(flags::actOrder ? "--act-order" : "--stats") +
                " needs --method gptq or agq" +
                (flags::actOrder ? "" : " (or --avg-bits, whose sensitivity uses it)"));
  if (flags::statsPath.empty())
    return true;
  // Version 2 (a directory): reads the index only; each layer's file is
  // opened, and checked against the index, when the layer is compiled.
  auto stats = mlir::moeq::calib::StatisticsReader::open(flags::statsPath);
  if (!stats)
    return fail("--stats: " + llvm::toString(stats.takeError()));
  llvm::SmallString<256> configPath(modelDir);
  llvm::sys::path::append(configPath, "config.json");
  auto config = mlir::moeq::io::loadModelConfig(configPath);
  if (!config)
    return true; // The import reports a bad config, naming the key.
  // Statistics of another model with the same shapes (a fine-tune) are
  // told apart by the fingerprint of the weights they recorded.
  auto checkpoint = mlir::moeq::io::Checkpoint::open(modelDir);
  if (!checkpoint)
    return true; // The import reports an unreadable checkpoint, naming the shard.
  auto model = mlir::moeq::calib::describeModel(*config, checkpoint->get());
  if (!model)
    return true; // ... and a missing router.
  if (llvm::Error err = (*stats)->checkModel(*model, modelDir))
    return fail("--stats: " + llvm::toString(std::move(err)));
  return true;
}

/// An input width of the model's expert linears (hidden size for gate and
/// up, the expert width for down, the shared expert's) that is not a
/// multiple of `columns` (moeq would fit the groups to it, which vLLM's
/// kernels do not take), or 0. A config that cannot be read is the
/// importer's to report.
int64_t groupMisfit(int64_t columns) {
  if (columns == 0)
    return 0;
  llvm::SmallString<256> configPath(modelDir);
  llvm::sys::path::append(configPath, "config.json");
  auto config = mlir::moeq::io::loadModelConfig(configPath);
  if (!config) {
    llvm::consumeError(config.takeError());
    return 0;
  }
  for (int64_t width : {config->hiddenSize, config->moeIntermediateSize,
                        flags::includeShared ? config->sharedIntermediateSize() : int64_t(0)})
    if (width > 0 && width % columns != 0)
      return width;
  return 0;
}

/// --serve vllm: the allocation per layer over vLLM's schemes, or a uniform
/// scheme vLLM serves; options vLLM has no kernel for are refused before
/// any work. Sets --granularity and --schemes when not given.
bool applyServeEngine(MLIRContext &context) {
  if (serveEngine != ServeEngine::VLLM)
    return true;
  auto fail = [](const llvm::Twine &message) {
    llvm::errs() << "moeq-compile: error: --serve vllm: " << message << "\n";
    return false;
  };
  if (flags::groupBits)
    return fail("SliM-LLM group widths (--group-bits) have no vLLM kernel");
  if (flags::deltaCompression > 0)
    return fail("D^2-MoE's base + low-rank deltas (--d2-compression) have no vLLM kernel");
  if (flags::format != mlir::moeq::NumberFormat::Int)
    return fail("--format " + mlir::moeq::stringifyNumberFormat(flags::format) +
                " has no vLLM kernel (integer schemes only)");
  if (!(flags::avgBits > 0)) {
    std::string why = ::mlir::moeq::artifact::whyNotVLLMFusedMoE(
        {flags::weightBits, flags::actBits, flags::groupSize, flags::symmetric, false});
    if (!why.empty())
      return fail("the scheme w" + std::to_string(flags::weightBits) + "a" + std::to_string(flags::actBits) +
                  ": " + why + " (e.g. --bits 4 --group-size 128 --symmetric)");
    if (int64_t width = groupMisfit(flags::groupSize))
      return fail(llvm::formatv("the experts' input width {0} is not a multiple of the "
                                "group size {1} (vLLM takes groups of 128 or per channel: "
                                "--group-size 0)",
                                width, flags::groupSize.getValue())
                      .str());
    return true;
  }
  if (flags::granularity.getNumOccurrences() &&
      flags::granularity != mlir::moeq::AllocationGranularity::Layer)
    return fail("vLLM's fused MoE takes one scheme per layer: --granularity must be 'layer'");
  flags::granularity = mlir::moeq::AllocationGranularity::Layer;
  if (!layerRange.empty())
    return fail("the allocation per layer is over the whole model's budget: compile it "
                "without --layers");
  bool defaultSchemes = !flags::schemes.getNumOccurrences();
  if (defaultSchemes)
    flags::schemes = kVLLMCandidateSchemes;
  SmallVector<StringRef> names;
  StringRef(flags::schemes).split(names, ',', -1, false);
  std::string kept;
  for (StringRef name : names) {
    std::string error;
    auto scheme = mlir::moeq::SchemeAttr::fromMangledName(&context, name.trim(), error);
    if (!scheme)
      return fail("--schemes: " + error);
    std::string why = ::mlir::moeq::artifact::whyNotVLLMFusedMoE(
        {scheme.getWeightBits(), scheme.getActBits(),
         scheme.isPerChannel() ? 0 : scheme.getGroupSize(), scheme.getSymmetric(),
         scheme.isLevelTable()});
    if (!why.empty())
      return fail("candidate scheme '" + name.trim() + "': " + why);
    if (int64_t width = groupMisfit(scheme.isPerChannel() ? 0 : scheme.getGroupSize())) {
      if (!defaultSchemes)
        return fail(llvm::formatv("candidate scheme '{0}': the experts' input width {1} is "
                                  "not a multiple of its group size (moeq would fit the "
                                  "groups, and vLLM takes groups of 128 only)",
                                  name.trim(), width)
                        .str());
      if (!quiet)
        llvm::errs() << "moeq-compile: --serve vllm: not a candidate: " << name.trim()
                     << " (the experts' input width " << width
                     << " is not a multiple of its group size)\n";
      continue;
    }
    kept += (kept.empty() ? "" : ",") + name.trim().str();
  }
  flags::schemes = kept;
  return true;
}

/// The uniform scheme's mangled name (w4a16g128a, w8a8pcs, w3a16g64a_lut).
std::string uniformSchemeName() {
  return "w" + std::to_string(flags::weightBits) + "a" + std::to_string(flags::actBits) +
         (flags::groupSize == 0 ? std::string("pc") : "g" + std::to_string(flags::groupSize)) +
         (flags::symmetric ? "s" : "a") + (flags::format == mlir::moeq::NumberFormat::LevelTable ? "_lut" : "");
}

/// --dry-run: imports the model (tensor headers only) and prints the plan.
int printPlan(MLIRContext &context, std::optional<std::pair<int64_t, int64_t>> slice) {
  OwningOpRef<ModuleOp> module = mlir::moeq::importHFCheckpoint(modelDir, &context);
  if (!module)
    return 1;
  if (slice)
    sliceModule(*module, slice->first, slice->second, modelLayerCount(*module));
  ::moeq::compile::PlanOptions plan;
  plan.modelDir = modelDir;
  plan.arch = flags::chip;
  plan.avgBits = flags::avgBits;
  plan.schemes = flags::schemes;
  plan.scheme = uniformSchemeName();
  plan.granularity = mlir::moeq::stringifyAllocationGranularity(flags::granularity).str();
  plan.r = flags::r;
  plan.method = mlir::moeq::stringifyQuantMethod(flags::method).str();
  plan.withStatistics = !flags::statsPath.empty();
  plan.quantizeShared = flags::includeShared;
  plan.groupBits = flags::groupBits;
  plan.priceGroupBits = flags::priceGroupBits;
  plan.groupBitsRows = flags::groupBitsRows;
  plan.deltaCompression = flags::deltaCompression;
  plan.threads = llvm::hardware_concurrency(flags::threads).compute_thread_count();
  plan.serve = serveEngine == ServeEngine::VLLM ? "vLLM" : "";
  return ::moeq::compile::printCompilePlan(*module, plan, llvm::outs()) ? 0 : 1;
}

/// The quantizer when --method is not given: AGQ (GPTQ with the
/// affinity-weighted Hessian, MoEQuant) whenever statistics are given, since
/// they hold its Hessians; measured on the fixture (docs/quantization.md,
/// "Defaults"): at 2.5 average bits AGQ's allocation has 12x less KL than
/// RTN's, at 2.0 bits 7.8x.
void applyDefaultMethod() {
  if (!flags::method.getNumOccurrences() && !flags::statsPath.empty())
    flags::method = mlir::moeq::QuantMethod::AGQ;
}

/// SliM-LLM's group widths after the allocation whenever statistics are
/// given with --avg-bits (not for vLLM, which has no kernel for them, nor
/// after D^2-MoE, not measured): on the fixture they lower the KL of
/// allocation + AGQ at every budget from 2.0 to 3.5 bits, at the same size
/// (docs/quantization.md, "Defaults").
void applyDefaultGroupBits() {
  if (flags::groupBits.getNumOccurrences() || !(flags::avgBits > 0) || flags::statsPath.empty() ||
      serveEngine == ServeEngine::VLLM || flags::deltaCompression > 0)
    return;
  flags::groupBits = true;
  groupBitsDefaulted = true;
}

/// Pricing the widths in the allocation, by default with them (with
/// --avg-bits and --stats) where it lowered the KL of both models measured:
/// from kPricedGroupBitsFrom to below kPricedGroupBitsBelow average bits
/// (-20% and -17% at 2.5 bits on held-out windows). Elsewhere it helped
/// one and hurt the other: +10% / +18% on the second model at 2.0 / 2.25
/// bits, +26% / +14% on the fixture at 3.0 / 3.5 bits, where the second
/// model gained 16-21% (docs/quantization.md, "Defaults"). Its k search
/// runs on --price-group-bits-rows rows of each weight, a fraction of the
/// quantization's cost at scale.
constexpr double kPricedGroupBitsFrom = 2.5;
constexpr double kPricedGroupBitsBelow = 3.0;
void applyDefaultPricing() {
  if (flags::priceGroupBits.getNumOccurrences() || !flags::groupBits || !(flags::avgBits > 0) ||
      flags::statsPath.empty())
    return;
  if (flags::avgBits < kPricedGroupBitsFrom || flags::avgBits >= kPricedGroupBitsBelow) {
    pricingNote = llvm::formatv(", not priced in the allocation outside {0:F1}-{1:F1} bits "
                                "(there it lowered one model's KL and raised another's by "
                                "10-26%; --price-group-bits prices them, moeq_tune.py measures both)",
                                kPricedGroupBitsFrom, kPricedGroupBitsBelow)
                      .str();
    return;
  }
  flags::priceGroupBits = true;
}

/// The model's config.json for choosing defaults; nothing when it cannot
/// be read (the importer reports why).
std::optional<mlir::moeq::io::MoEModelConfig> loadConfigForDefaults() {
  llvm::SmallString<256> configPath(modelDir);
  llvm::sys::path::append(configPath, "config.json");
  auto config = mlir::moeq::io::loadModelConfig(configPath);
  if (!config) {
    llvm::consumeError(config.takeError());
    return std::nullopt;
  }
  return std::move(*config);
}

/// The default candidates: MxMoE's, plus per-channel w3 and w2 below
/// kPerChannelBelow bits (the cheapest low-bit schemes: on the fixture
/// with AGQ KL -13% at 2.0 bits, -35% at 2.5; at 3.0 and 3.5 bits they gain
/// nothing, docs/quantization.md "Defaults") or whenever the experts'
/// widths do not hold groups of 128 (the groups are fitted to smaller ones,
/// more scale bits per weight: w1 in groups of 16 stores 3 bits, so
/// per-channel schemes keep low budgets reachable on any width); without
/// --stats and from kDataFreeOneBitBelow bits up, without w1.
constexpr double kPerChannelBelow = 3.0;
constexpr double kDataFreeOneBitBelow = 2.25;
void applyDefaultSchemes() {
  if (!(flags::avgBits > 0) || flags::schemes.getNumOccurrences() || serveEngine == ServeEngine::VLLM)
    return;
  std::optional<mlir::moeq::io::MoEModelConfig> config = loadConfigForDefaults();
  if (!config)
    return;
  std::string misfits;
  for (int64_t width : {config->hiddenSize, config->moeIntermediateSize,
                        flags::includeShared ? config->sharedIntermediateSize() : int64_t(0)})
    if (width > 0 && width % 128 != 0)
      misfits += (misfits.empty() ? "" : ", ") + std::to_string(width);
  std::vector<std::string> notes;
  // Data-free, 1-bit round to nearest (binarisation) ruins a linear while
  // the weight-only loss underrates it: at 2.5 bits the allocation with w1
  // had 8.6x the KL of the one without on the second model, 1.8x on the
  // fixture. Below the cheapest 2-bit group scheme it stays, to keep the
  // budget reachable.
  if (flags::statsPath.empty() && flags::avgBits >= kDataFreeOneBitBelow) {
    flags::schemes = "w8a16pc,w4a16g128,w3a16g128,w2a16g128";
    notes.push_back(llvm::formatv("w1 left out: data-free (no --stats) 1-bit rounding ruins "
                                  "a linear and the weight-only loss cannot tell (it stays "
                                  "below {0:F2} bits)",
                                  kDataFreeOneBitBelow)
                        .str());
  }
  if (flags::avgBits < kPerChannelBelow || !misfits.empty()) {
    flags::schemes = flags::schemes + ",w3a16pc,w2a16pc";
    notes.push_back(
        misfits.empty()
            ? llvm::formatv("per-channel w3 and w2 added: below {0:F1} bits w2 per channel is "
                            "the cheapest usable 2-bit scheme (2.0 bits + scales), which the "
                            "allocation picks for most gate/up linears",
                            kPerChannelBelow)
                  .str()
            : "per-channel w3 and w2 added: the experts' widths (" + misfits +
                  ") are not multiples of 128");
  }
  candidatesNote = llvm::join(notes, "; ");
  if (!candidatesNote.empty())
    candidatesNote += " (docs/quantization.md, Defaults)";
  if (!quiet && !misfits.empty())
    llvm::errs() << "moeq-compile: the experts' widths (" << misfits
                 << ") are not multiples of 128: per-channel w3 and w2 join the candidates\n";
}

/// D^2-MoE is not a default: at 2.0 average bits it lowered the fixture's
/// KL by 23% (held-out windows) and raised a second model's by 33%
/// (docs/quantization.md, "Defaults"), and no layer-level loss of the
/// statistics tells the two apart. At or below kDeltaHintBudget bits the
/// report says so and names moeq_tune.py, which measures it end to end.
constexpr double kDeltaHintBudget = 2.25;

/// Whether the statistics at `path` hold the Fisher information D^2-MoE's
/// merge weighs experts by (a routed expert's fisher_gate in the first MoE
/// layer).
bool statisticsHaveFisher(StringRef path) {
  auto reader = mlir::moeq::calib::StatisticsReader::open(path);
  if (!reader) {
    llvm::consumeError(reader.takeError()); // (the compile reports it)
    return false;
  }
  std::vector<int64_t> layers = (*reader)->moeLayers();
  if (layers.empty())
    return false;
  auto found = (*reader)->find("layers." + std::to_string(layers.front()) +
                               ".experts.0.fisher_gate");
  if (!found) {
    llvm::consumeError(found.takeError());
    return false;
  }
  return *found != nullptr;
}

void noteDeltaDecomposition() {
  if (flags::deltaCompression.getNumOccurrences() || !(flags::avgBits > 0) || flags::avgBits > kDeltaHintBudget ||
      serveEngine == ServeEngine::VLLM)
    return;
  // Which of the two a model needs shows only end to end: moeq_tune.py
  // compiles both and keeps the one with the lower KL on a text.
  deltaNote = "D^2-MoE off (not a default: at 2.0 bits it lowered one model's KL by 23% and "
              "raised another's by 33%); at this budget it may help: moeq_tune.py measures it "
              "end to end, or try --d2-compression 0.4";
  if (flags::statsPath.empty() || !statisticsHaveFisher(flags::statsPath))
    deltaNote += " with Fisher statistics (moeq_calibrate.py --fisher)";
}

/// The pipeline's options: the flags (after the defaults chosen above),
/// the packed weights written to `weightsPath`.
void fillPipelineOptions(mlir::moeq::CompileGPUPipelineOptions &options,
                         StringRef weightsPath) {
  mlir::moeq::copyFlagsTo(options);
  options.weightsOutput = weightsPath.str();
  options.progress = !quiet;
}

/// --print-pipeline: the moeq-opt pipeline of this compile, the packed
/// weights written to -o's experts.safetensors (./experts.safetensors
/// without -o) and D^2-MoE's intermediate to d2.safetensors beside them.
int printCompilePipeline(MLIRContext &context, bool sliced) {
  if (sliced) {
    llvm::errs() << "moeq-compile: error: --print-pipeline: --layers slices the model before "
                    "the pipeline (moeq-merge joins slices); print it without --layers\n";
    return 1;
  }
  llvm::SmallString<256> weights(outputDir), delta(outputDir);
  llvm::sys::path::append(weights, "experts.safetensors");
  llvm::sys::path::append(delta, "d2.safetensors");
  mlir::moeq::CompileGPUPipelineOptions options;
  fillPipelineOptions(options, weights);
  options.progress = false;
  if (flags::deltaCompression > 0)
    options.deltaOutput = delta.str().str();
  PassManager pm(&context, ModuleOp::getOperationName());
  mlir::moeq::buildCompileGPUPipeline(pm, options);
  pm.printAsTextualPipeline(llvm::outs());
  llvm::outs() << "\n";
  return 0;
}

int compile(MLIRContext &context) {
  Progress progress(5);
  std::optional<std::pair<int64_t, int64_t>> slice;
  applyDefaultMethod();
  applyDefaultSchemes();
  noteDeltaDecomposition();
  applyDefaultGroupBits();
  applyDefaultPricing();
  if (!applyServeEngine(context) || !checkMethodAndStatistics() || !parseLayerRangeOption(slice))
    return 1;
  // Refuse an unknown architecture before doing any work.
  auto target = mlir::moeq::TargetAttr::getChecked(
      [&]() { return emitError(UnknownLoc::get(&context)) << "--arch: "; }, &context,
      StringAttr::get(&context, flags::chip));
  if (!target)
    return 1;

  if (dryRun)
    return printPlan(context, slice);
  if (printPipeline)
    return printCompilePipeline(context, slice.has_value());
  if (outputDir.empty()) {
    llvm::errs() << "moeq-compile: error: no output directory: give -o DIR (or --dry-run)\n";
    return 1;
  }
  auto started = std::chrono::steady_clock::now();
  // Only an earlier artifact may be replaced, never a directory of user files.
  if (llvm::Error err = mlir::moeq::io::checkReplaceableDirectory(
          outputDir, ::mlir::moeq::artifact::isArtifactEntry, "a moeq artifact")) {
    llvm::errs() << "moeq-compile: error: " << llvm::toString(std::move(err)) << "\n";
    return 1;
  }
  auto out = mlir::moeq::io::AtomicOutputDirectory::create(outputDir);
  if (!out) {
    llvm::errs() << "moeq-compile: error: cannot create the output directory '"
                 << outputDir << "': " << llvm::toString(out.takeError()) << "\n";
    return 1;
  }

  progress.step("importing " + modelDir);
  OwningOpRef<ModuleOp> module = mlir::moeq::importHFCheckpoint(modelDir, &context);
  if (!module)
    return 1;
  if (slice)
    sliceModule(*module, slice->first, slice->second, modelLayerCount(*module));

  std::string scheme =
      flags::avgBits > 0 ? llvm::formatv("measuring the sensitivity to {0}, allocating {1} average "
                                  "bits",
                                  flags::schemes.getValue(), flags::avgBits.getValue())
                        .str()
                  : llvm::formatv("w{0}, group {1}", flags::weightBits.getValue(), flags::groupSize.getValue()).str();
  progress.step(llvm::formatv("quantizing {0} ({1}, {2}) and "
                              "compiling expert GEMM kernels for {3}",
                              flags::includeShared ? "routed and shared experts" : "routed experts",
                              scheme, describeMethod(), flags::chip.getValue()));
  mlir::moeq::CompileGPUPipelineOptions options;
  fillPipelineOptions(options, out->pathFor("experts.safetensors"));
  // D^2-MoE's f32 bases and factors (and factor Hessians) are an
  // intermediate: the artifact gets them packed, or as copied parameters.
  llvm::SmallString<128> deltaArchive;
  auto removeDeltaArchive = llvm::make_scope_exit([&] {
    if (!deltaArchive.empty())
      llvm::sys::fs::remove(deltaArchive);
  });
  if (flags::deltaCompression > 0) {
    if (auto ec = llvm::sys::fs::createTemporaryFile("moeq-delta", "safetensors", deltaArchive)) {
      llvm::errs() << "moeq-compile: cannot create a scratch file: " << ec.message() << "\n";
      return 1;
    }
    options.deltaOutput = deltaArchive.str().str();
  }
  PassManager pm(&context, ModuleOp::getOperationName());
  mlir::moeq::buildCompileToNVVMPipeline(pm, options);
  if (failed(pm.run(*module)))
    return 1;
  // What the runtime's emulator backend runs: the NVVM-lowered kernels,
  // before they become PTX.
  FailureOr<std::vector<mlir::moeq::EmulationKernel>> emulation =
      mlir::moeq::buildEmulationKernels(*module);
  PassManager serialize(&context, ModuleOp::getOperationName());
  mlir::moeq::buildSerializeToPTXPipeline(serialize);
  if (failed(emulation) || failed(serialize.run(*module)))
    return 1;

  progress.step("writing weights");
  if (failed(mlir::moeq::exportReferencedParams(*module, out->pathFor("params.safetensors"),
                                          {"quant"})))
    return 1;
  // The config and tokenizer, so that the artifact alone can be exported
  // and evaluated.
  if (llvm::Expected<std::vector<std::string>> copied =
          ::mlir::moeq::artifact::copyHFFiles(modelDir, out->pathFor(""));
      !copied) {
    llvm::errs() << "moeq-compile: error: " << llvm::toString(copied.takeError()) << "\n";
    return 1;
  }

  progress.step("writing PTX and manifest");
  FailureOr<std::vector<mlir::moeq::PTXKernel>> kernels = mlir::moeq::collectPTX(*module);
  if (failed(kernels))
    return 1;
  // The assembler's verdict before anything is committed: a kernel ptxas
  // rejects (parameter space, registers, shared memory, syntax) is an error.
  std::vector<::moeq::compile::PtxasResult> assembled;
  std::optional<std::string> ptxas = ::moeq::compile::findPtxas(ptxasPath);
  if (ptxas) {
    // One ptxas process per kernel, `threads` at a time; results (and the
    // first error) in kernel order, whatever finished first.
    std::vector<std::optional<llvm::Expected<::moeq::compile::PtxasResult>>> results(
        kernels->size());
    {
      llvm::DefaultThreadPool pool(llvm::hardware_concurrency(flags::threads));
      for (auto [index, kernel] : llvm::enumerate(*kernels))
        pool.async([&, index = index, &kernel = kernel] {
          results[index].emplace(
              ::moeq::compile::assemble(*ptxas, kernel.chip, kernel.name, kernel.ptx));
        });
      pool.wait();
    }
    std::string firstError;
    for (auto &result : results) {
      if (!*result) {
        std::string message = llvm::toString(result->takeError());
        if (firstError.empty())
          firstError = std::move(message);
        continue;
      }
      assembled.push_back(std::move(**result));
    }
    if (!firstError.empty()) {
      llvm::errs() << "moeq-compile: error: " << firstError << "\n";
      return 1;
    }
  }
  if (auto ec = llvm::sys::fs::create_directory(out->pathFor("kernels"))) {
    llvm::errs() << "moeq-compile: cannot create kernels/: " << ec.message() << "\n";
    return 1;
  }
  for (const mlir::moeq::PTXKernel &kernel : *kernels)
    if (failed(writeFile(out->pathFor("kernels/" + kernel.name + ".ptx"), kernel.ptx)))
      return 1;
  for (const mlir::moeq::EmulationKernel &kernel : *emulation)
    if (failed(writeFile(out->pathFor("kernels/" + kernel.name + ".emu.bc"), kernel.bitcode)))
      return 1;
  llvm::StringMap<std::string> files;
  files["quant"] = "experts.safetensors";
  files["model"] = "params.safetensors";
  if (flags::deltaCompression > 0)
    files["delta"] = "params.safetensors"; // (unquantized bases and factors, copied)
  FailureOr<llvm::json::Value> manifest = mlir::moeq::buildManifest(*module, files, "kernels");
  if (failed(manifest))
    return 1;
  ::mlir::moeq::artifact::ReportData report =
      collectReportData(*module, ptxas.has_value(), assembled);
  if (slice) {
    // What moeq-merge needs to check the slices and to write the report of
    // the whole model.
    ::mlir::moeq::artifact::PartialInfo partial{slice->first, slice->second,
                                                modelLayerCount(*module),
                                                describeCompileOptions(), "", report};
    partial.fingerprint = ::mlir::moeq::artifact::fingerprintOptions(partial.options);
    (*manifest->getAsObject())[::mlir::moeq::artifact::kPartialKey] = toJSON(partial);
  }
  // Every file written so far, with its checksum: readers refuse what was
  // altered after this point.
  llvm::Expected<llvm::json::Object> digests =
      ::mlir::moeq::artifact::describeFiles(out->path());
  if (!digests) {
    llvm::errs() << "moeq-compile: error: " << llvm::toString(digests.takeError()) << "\n";
    return 1;
  }
  (*manifest->getAsObject())[::mlir::moeq::artifact::kFilesKey] = std::move(*digests);
  std::vector<::mlir::moeq::artifact::KernelFile> kernelFiles;
  for (const mlir::moeq::PTXKernel &kernel : *kernels)
    kernelFiles.push_back({kernel.name, kernel.ptx.size()});
  if (failed(writeFile(out->pathFor("manifest.json"),
                       llvm::formatv("{0:2}\n", *manifest).str())) ||
      failed(writeFile(out->pathFor("report.txt"),
                       ::mlir::moeq::artifact::renderReport(report, *manifest->getAsObject(),
                                                            kernelFiles))) ||
      failed(writeFile(out->pathFor("report.html"),
                       ::mlir::moeq::artifact::renderReportHTML(
                           report, *manifest->getAsObject(), kernelFiles,
                           ::mlir::moeq::artifact::artifactSizesIn(out->pathFor(""))))))
    return 1;

  ::mlir::moeq::artifact::ArtifactSizes sizes =
      ::mlir::moeq::artifact::artifactSizesIn(out->pathFor(""));
  progress.step("committing " + outputDir);
  if (llvm::Error err = out->commit()) {
    llvm::errs() << "moeq-compile: " << llvm::toString(std::move(err)) << "\n";
    return 1;
  }
  if (!quiet)
    ::moeq::compile::printCompileSummary(
        *manifest->getAsObject(), sizes.expertsBytes, sizes.paramsBytes, kernels->size(),
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(),
        llvm::errs());
  if (!quiet)
    llvm::errs() << "wrote " << outputDir
                 << (slice ? llvm::formatv(" (partial: layers {0}:{1})", slice->first,
                                           slice->second)
                                 .str()
                           : std::string())
                 << ": " << kernels->size()
                 << " kernels, manifest.json, experts.safetensors, params.safetensors, "
                    "hf/, report.txt, report.html\n";
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions(compileCategory);
  std::vector<std::string> storage;
  std::vector<char *> args = mlir::moeq::rewriteStatsFlag(argc, argv, storage);
  cl::ParseCommandLineOptions(
      int(args.size()) - 1, args.data(),
      "moeq-compile: quantize a Mixture-of-Experts checkpoint and compile its "
      "expert kernels to PTX\n");
  DialectRegistry registry;
  mlir::moeq::registerAllMoEQDependencies(registry);
  MLIRContext context(registry);
  context.getOrLoadDialect<mlir::moeq::MoEQDialect>();
  // MLIR's default handler prints errors only; warnings (a group size
  // fitted to a weight's width, ...) are printed too, --quiet or not.
  ScopedDiagnosticHandler printWarnings(&context, [](Diagnostic &diag) {
    if (diag.getSeverity() != DiagnosticSeverity::Warning)
      return failure(); // (to the default handler)
    llvm::errs() << diag.getLocation() << ": warning: " << diag << "\n";
    return success();
  });
  return compile(context);
}
