//===- moeq-compile.cpp - checkpoint -> deployable artifact ---------------===//
//
//   moeq-compile <hf-model-dir> -o <out-dir> --bits 4 --arch sm_90
//
// A thin driver: import, the moeq-compile-gpu pipeline, export. Everything
// is written into a temporary sibling directory that replaces <out-dir> only
// when the whole compile succeeded.
//
//===----------------------------------------------------------------------===//
#include "moeq/Calibration/StatisticsFiles.h"
#include "moeq/Dialect/MoEQ/IR/MoEQ.h"
#include "moeq/IO/AtomicOutput.h"
#include "moeq/IO/ModelConfig.h"
#include "moeq/IO/SafeTensors.h"
#include "moeq/Passes/Export.h"
#include "moeq/Passes/Import.h"
#include "moeq/Passes/Kernels.h"
#include "moeq/Passes/Passes.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"
#include "PtxasCheck.h"

#include "llvm/ADT/ScopeExit.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/ThreadPool.h"
#include "llvm/Support/Threading.h"
#include "llvm/Support/raw_ostream.h"

#include "StatsFlag.h"

using namespace mlir;
namespace cl = llvm::cl;

static cl::OptionCategory compileCategory("moeq-compile options");
static cl::opt<std::string> modelDir(cl::Positional, cl::desc("<hf-model-dir>"),
                                     cl::Required, cl::cat(compileCategory));
static cl::opt<std::string> outputDir("o", cl::desc("output artifact directory"),
                                      cl::value_desc("dir"), cl::Required,
                                      cl::cat(compileCategory));
static cl::opt<unsigned> bits("bits", cl::desc("weight bits of every routed expert (1-8)"),
                              cl::init(4), cl::cat(compileCategory));
static cl::opt<unsigned> actBits(
    "act-bits",
    cl::desc("activation bits of every routed expert: 16, or 8 (w8a8) / 4 (w4a4) with "
             "--bits 8 / 4 and --symmetric (per-token dynamic activation scales)"),
    cl::init(16), cl::cat(compileCategory));
static cl::opt<int64_t> groupSize("group-size",
                                  cl::desc("input columns per scale (0 = per channel)"),
                                  cl::init(128), cl::cat(compileCategory));
static cl::opt<bool> symmetric("symmetric", cl::desc("symmetric quantization"),
                               cl::init(false), cl::cat(compileCategory));
static cl::opt<std::string> numberFormat(
    "format",
    cl::desc("number format of --bits: int (scale and zero point per group) or lut (a "
             "table of 2^bits f16 levels per group fitted to the Hessian-weighted error, "
             "DDQ adaptive resolution; 1-4 bits, asymmetric)"),
    cl::init("int"), cl::cat(compileCategory));
static cl::opt<bool> quantizeShared(
    "quantize-shared",
    cl::desc("also quantize shared experts (Qwen2-MoE, DeepSeek) with --bits; "
             "by default they stay in full precision"),
    cl::init(false), cl::cat(compileCategory));
static cl::opt<std::string> method("method",
                                   cl::desc("quantizer: rtn, gptq or agq (GPTQ with the "
                                            "affinity-weighted Hessian)"),
                                   cl::init("rtn"), cl::cat(compileCategory));
static cl::opt<std::string> statsPath(
    "calibration-stats",
    cl::desc("calibration statistics (moeq-stats / moeq_calibrate.py), also --stats; "
             "without it moeq-compile is data-free"),
    cl::value_desc("file"), cl::cat(compileCategory));
static cl::opt<bool> actOrder("act-order",
                              cl::desc("GPTQ/AGQ: columns by decreasing Hessian diagonal"),
                              cl::init(false), cl::cat(compileCategory));
static cl::opt<bool> mseClip("mse-clip", cl::desc("search each group's range for the least error"),
                             cl::init(false), cl::cat(compileCategory));
static cl::opt<double> avgBits(
    "avg-bits",
    cl::desc("mixed precision: memory budget in average bits per quantized weight "
             "(scales and zeros included, g128 asym = +0.25); chooses a scheme per "
             "expert linear from --schemes (MxMoE allocation). Without it every weight "
             "gets --bits"),
    cl::init(0.0), cl::cat(compileCategory));
static cl::opt<std::string> schemes(
    "schemes", cl::desc("candidate schemes of --avg-bits, comma-separated"),
    cl::init(mlir::moeq::kDefaultCandidateSchemes), cl::cat(compileCategory));
static cl::opt<std::string> granularity(
    "granularity",
    cl::desc("--avg-bits: 'linear' (gate+up and down choose separately) or 'expert'"),
    cl::init("linear"), cl::cat(compileCategory));
static cl::opt<std::string> sensitivityLoss(
    "sensitivity",
    cl::desc("--avg-bits: loss per block and scheme: 'output' (MxMoE: measured layer-output "
             "error on the statistics' input samples), 'hessian' (proxy tr(dW H dW^T)) or "
             "'auto' (output when the statistics have samples; without --stats the loss is "
             "weight-only)"),
    cl::init("auto"), cl::cat(compileCategory));
static cl::opt<double> accuracyWeight(
    "r", cl::desc("--avg-bits: weight of accuracy against speed in r*log(loss) + "
                  "(1-r)*log(time); 1 = accuracy only"),
    cl::init(0.75), cl::cat(compileCategory));
static cl::opt<int64_t> tokensPerStep(
    "tokens", cl::desc("--avg-bits: tokens per step the cost model prices kernels at"),
    cl::init(512), cl::cat(compileCategory));
static cl::opt<std::string> costGpu(
    "gpu", cl::desc("--avg-bits: GPU of the cost model (a100, h100, h200, rtx4090; "
                    "default: the one of --arch)"),
    cl::init(""), cl::cat(compileCategory));
static cl::opt<bool> salienceClip(
    "salience-clip",
    cl::desc("SliM-LLM's salience-weighted calibration of each group's range (SQC; "
             "instead of --mse-clip)"),
    cl::init(false), cl::cat(compileCategory));
static cl::opt<bool> groupBitsFlag(
    "group-bits",
    cl::desc("SliM-LLM: give the column groups of each quantized linear their own width "
             "(salience-determined, mean unchanged) after choosing its scheme"),
    cl::init(false), cl::cat(compileCategory));
static cl::opt<double> deltaCompression(
    "d2-compression",
    cl::desc("D^2-MoE delta decompression first: remove this fraction of the routed-expert "
             "parameters (e.g. 0.4), each linear a shared base plus low-rank deltas, then "
             "quantize base and factors as the other options say (needs --stats with "
             "the Fisher information unless --d2-merge mean)"),
    cl::init(0.0), cl::cat(compileCategory));
static cl::opt<std::string> deltaMerge("d2-merge", cl::desc("D^2-MoE base merge: fisher or mean"),
                                       cl::init("fisher"), cl::cat(compileCategory));
static cl::opt<bool> deltaWhiten("d2-whiten",
                                 cl::desc("D^2-MoE truncation-aware (whitened) SVD"),
                                 cl::init(true), cl::cat(compileCategory));
static cl::opt<bool> deltaSharedBasis("d2-shared-basis",
                                      cl::desc("D^2-MoE: one b factor for all experts"),
                                      cl::init(false), cl::cat(compileCategory));
static cl::opt<double> deltaPrune(
    "d2-prune", cl::desc("D^2-MoE: fraction of the base's intermediate channels pruned "
                         "(static, by activation-weighted norm)"),
    cl::init(0.0), cl::cat(compileCategory));
static cl::opt<int64_t> deltaRankMultiple(
    "d2-rank-multiple",
    cl::desc("D^2-MoE ranks are multiples of this (32: whole 32-bit words at any width)"),
    cl::init(32), cl::cat(compileCategory));
static cl::opt<std::string> kernelPath(
    "kernel-path",
    cl::desc("kernel family of the expert GEMMs: auto (the cost model picks per precision "
             "mix), mma (tensor cores) or simt (CUDA cores, small-M decode)"),
    cl::init("auto"), cl::cat(compileCategory));
static cl::opt<bool> persistentLaunch(
    "persistent",
    cl::desc("one persistent launch per expert GEMM of a layer across its precision mixes "
             "where legal (all tensor-core, one activation format); =false: one launch "
             "per mix"),
    cl::init(true), cl::cat(compileCategory));
static cl::opt<std::string> arch("arch", cl::desc("GPU architecture: sm_80, sm_90, ..."),
                                 cl::init("sm_80"), cl::cat(compileCategory));
// (Not --threads: libLLVM registers a global option of that name.)
static cl::opt<unsigned> jobs(
    "jobs",
    cl::desc("threads quantizing and measuring weights, and assembling kernels (0: all cores); the "
             "artifact is the same bytes for any count"),
    cl::init(0), cl::cat(compileCategory));
static cl::alias jobsShort("j", cl::desc("alias for --jobs"), cl::aliasopt(jobs),
                           cl::cat(compileCategory));
static cl::opt<bool> quiet("quiet", cl::desc("no progress output"), cl::init(false),
                           cl::cat(compileCategory));
static cl::opt<std::string> ptxasPath(
    "ptxas",
    cl::desc("ptxas that checks every kernel before the artifact is committed (default: "
             "$CUDA_HOME/bin/ptxas or /usr/local/cuda/bin/ptxas when present; 'none': no check)"),
    cl::init(""), cl::cat(compileCategory));

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

/// The quantizer and its data, for the report and the progress output.
std::string describeMethod() {
  std::string text = method.getValue();
  if (method != "rtn")
    text += statsPath.empty() ? " (data-free: no --stats, identity Hessian = round to nearest)"
                              : " (Hessians from " + statsPath.getValue() + ")";
  else if (avgBits > 0 && statsPath.empty())
    text += " (data-free: no --stats, weight-only sensitivity)";
  if (actOrder)
    text += ", act-order";
  if (mseClip)
    text += ", MSE range clipping";
  if (salienceClip)
    text += ", salience-weighted range calibration";
  if (groupBitsFlag)
    text += ", SliM-LLM group-wise widths";
  return text;
}

/// One linear of a manifest expert in the bit map: its weight bits, 'x'
/// for w8a8 and 'y' for w4a4 (activations quantized too), '-' unquantized.
/// A D^2-MoE linear shows the bits of its low-rank factors.
char bitsGlyph(const llvm::json::Object &expert, StringRef linear) {
  const llvm::json::Object *linears = expert.getObject("linears");
  const llvm::json::Object *entry = linears ? linears->getObject(linear) : nullptr;
  if (const llvm::json::Object *delta = entry ? entry->getObject("delta") : nullptr)
    entry = delta->getObject("a");
  std::optional<int64_t> value = entry ? entry->getInteger("bits") : std::nullopt;
  std::optional<int64_t> act = entry ? entry->getInteger("activation_bits") : std::nullopt;
  if (act && *act < 16)
    return *act == 8 ? 'x' : 'y';
  return value ? char('0' + *value) : '-';
}

/// The allocation of every layer (budget, bits used, loss, time, optimality
/// gap) and the bit map: one digit per expert for gate/up and for down.
void describeAllocation(const llvm::json::Array &layers, llvm::raw_ostream &os) {
  static const llvm::StringMap<StringRef> kLosses = {
      {"output", "measured layer-output error of each quantized linear (MxMoE)"},
      {"hessian", "Hessian proxy tr(dW H dW^T) per linear"},
      {"weight", "weight error ||dW||^2 (data-free: no --stats)"}};
  for (const llvm::json::Value &value : layers)
    if (const llvm::json::Object *layer = value.getAsObject())
      if (const llvm::json::Object *alloc = layer->getObject("allocation")) {
        StringRef loss = alloc->getString("sensitivity").value_or("");
        os << "sensitivity: " << loss << ": " << kLosses.lookup(loss) << "\n";
        os << llvm::formatv("cost model: {0} at {1} tokens per step\n",
                            alloc->getString("gpu").value_or(""),
                            alloc->getInteger("tokens").value_or(0));
        break;
      }
  os << "allocation per layer (exact; time = the expert GEMMs' predicted time):\n";
  os << "  layer  avg bits  loss          time (us)  objective   gap       solves\n";
  for (const llvm::json::Value &value : layers) {
    const llvm::json::Object *layer = value.getAsObject();
    const llvm::json::Object *alloc = layer ? layer->getObject("allocation") : nullptr;
    if (!alloc)
      continue;
    os << llvm::formatv("  {0,5}  {1,8:F3}  {2,12:E4}  {3,9:F2}  {4,10:F4}  {5,8:E1}  {6,5}\n",
                        layer->getInteger("layer").value_or(-1),
                        alloc->getNumber("avg_bits").value_or(0),
                        alloc->getNumber("loss").value_or(0),
                        alloc->getNumber("seconds").value_or(0) * 1e6,
                        alloc->getNumber("objective").value_or(0),
                        alloc->getNumber("gap").value_or(0),
                        alloc->getInteger("milp_solves").value_or(0));
  }
  os << "bit map (weight bits, one column per expert; gate and up share a scheme; "
        "x = w8a8, y = w4a4):\n";
  for (const llvm::json::Value &value : layers) {
    const llvm::json::Object *layer = value.getAsObject();
    const llvm::json::Array *experts = layer ? layer->getArray("experts") : nullptr;
    if (!experts)
      continue;
    std::string gateUp, down;
    for (const llvm::json::Value &expert : *experts)
      if (const llvm::json::Object *e = expert.getAsObject()) {
        gateUp += bitsGlyph(*e, "gate");
        down += bitsGlyph(*e, "down");
      }
    os << llvm::formatv("  layer {0,3}  gate/up {1}\n             down    {2}\n",
                        layer->getInteger("layer").value_or(-1), gateUp, down);
  }
}

/// Plain-text summary of what was compiled.
std::string describeArtifact(ModuleOp module, const llvm::json::Value &manifest,
                             const std::vector<::moeq::compile::PtxasResult> &assembled,
                             ArrayRef<mlir::moeq::PTXKernel> kernels) {
  std::string text;
  llvm::raw_string_ostream os(text);
  os << "moeq compile report\n===================\n";
  os << "model: " << modelDir << "\ntarget: " << arch << "\n";
  if (avgBits > 0)
    os << llvm::formatv("scheme: mixed precision at {0} average bits, candidates {1}, "
                        "granularity {2}, r = {3}\n",
                        avgBits.getValue(), schemes.getValue(), granularity.getValue(),
                        accuracyWeight.getValue());
  else
    os << llvm::formatv("scheme: w{0}a{3}, {1}, {2}\n", bits.getValue(),
                        groupSize == 0 ? std::string("per-channel")
                                       : "group " + std::to_string(groupSize),
                        numberFormat == "lut" ? "level tables (2^bits f16 levels per group)"
                        : symmetric           ? "symmetric"
                                              : "asymmetric",
                        actBits.getValue());
  int64_t weights = 0;
  double storedBits = 0;
  module.walk([&](mlir::moeq::ParamOp param) {
    if (auto packed = dyn_cast<mlir::moeq::PackedWeightType>(param.getType())) {
      int64_t count = packed.getOutputDim() * packed.getInputDim();
      weights += count;
      storedBits += count * packed.getScheme().getBitsPerWeight(packed.getInputDim());
    }
  });
  os << "method: " << describeMethod() << "\n";
  os << "shared experts: " << (quantizeShared ? "quantized" : "full precision") << "\n";
  os << llvm::formatv("quantized weights: {0} ({1:F2} MiB at 16 bits -> {2:F2} MiB packed, "
                      "{3:F3} bits/weight with scales, zeros or level tables)\n",
                      weights, weights * 2.0 / (1 << 20), storedBits / 8 / (1 << 20),
                      weights ? storedBits / weights : 0.0);
  // D^2-MoE: the stored bits per weight of the original (uncompressed)
  // experts, what a memory budget refers to.
  int64_t original = 0;
  module.walk([&](mlir::moeq::DeltaSumOp sum) {
    // E experts x out x in, `in` the width of the b GEMM's input.
    using mlir::moeq::GroupedMatmulOp;
    auto lowrank = sum.getLowrank().getDefiningOp<GroupedMatmulOp>();
    auto project = lowrank ? lowrank.getInput().getDefiningOp<GroupedMatmulOp>() : nullptr;
    if (project)
      original += int64_t(lowrank.getWeights().size()) * sum.getType().getDimSize(1) *
                  project.getInput().getType().getDimSize(1);
  });
  if (original)
    os << llvm::formatv("D^2-MoE: {0:F3} stored bits per original expert weight ({1} weights)\n",
                        storedBits / original, original);
  if (const llvm::json::Array *layers = manifest.getAsObject()->getArray("layers")) {
    os << "MoE layers: " << layers->size() << "\n";
    if (avgBits > 0)
      describeAllocation(*layers, os);
    for (const llvm::json::Value &value : *layers) {
      const llvm::json::Object *layer = value.getAsObject();
      const llvm::json::Object *delta = layer ? layer->getObject("delta") : nullptr;
      if (!delta)
        continue;
      const llvm::json::Array *ranks = delta->getArray("ranks");
      os << llvm::formatv("  layer {0}: D^2-MoE base + rank {1}/{2}/{3} deltas ({4} merge, "
                          "{5} SVD), {6:P1} of the expert parameters kept, base channels "
                          "{7}\n",
                          layer->getInteger("layer").value_or(-1),
                          ranks ? (*ranks)[0].getAsInteger().value_or(0) : 0,
                          ranks ? (*ranks)[1].getAsInteger().value_or(0) : 0,
                          ranks ? (*ranks)[2].getAsInteger().value_or(0) : 0,
                          delta->getString("merge").value_or(""),
                          delta->getBoolean("whiten").value_or(false) ? "whitened" : "plain",
                          delta->getNumber("params_kept").value_or(0),
                          delta->getInteger("base_channels").value_or(0));
    }
  }
  os << llvm::formatv("kernels ({0}; tiles from the cost model at {1} tokens per step):\n",
                      kernels.size(), tokensPerStep.getValue());
  const llvm::json::Array *described = manifest.getAsObject()->getArray("kernels");
  auto findKernel = [&](StringRef name) -> const llvm::json::Object * {
    if (!described)
      return nullptr;
    for (const llvm::json::Value &value : *described)
      if (const llvm::json::Object *entry = value.getAsObject())
        if (entry->getString("name") == name)
          return entry;
    return nullptr;
  };
  for (const mlir::moeq::PTXKernel &kernel : kernels) {
    os << "  kernels/" << kernel.name << ".ptx (" << kernel.chip << ", "
       << kernel.ptx.size() << " bytes of PTX";
    const llvm::json::Object *entry = findKernel(kernel.name);
    if (entry && entry->getBoolean("persistent").value_or(false))
      os << llvm::formatv(", persistent over {0} experts, {1} warps, {2} B shared",
                          entry->getArray("groups") ? entry->getArray("groups")->size() : 0,
                          entry->getInteger("warps").value_or(0),
                          entry->getInteger("shared_memory_bytes").value_or(0));
    else if (const llvm::json::Object *tile = entry ? entry->getObject("tile") : nullptr)
      os << llvm::formatv(", {0} {1}x{2}x{3}, {4} warps, {5} stages, {6} B shared",
                          tile->getString("path").value_or(""),
                          tile->getInteger("bm").value_or(0), tile->getInteger("bn").value_or(0),
                          tile->getInteger("bk").value_or(0),
                          tile->getInteger("warps").value_or(0),
                          tile->getInteger("stages").value_or(0),
                          entry->getInteger("shared_memory_bytes").value_or(0));
    os << ")\n";
  }
  if (assembled.empty()) {
    os << "ptxas: not run (no CUDA toolkit found, or --ptxas=none): the kernels are not "
          "assembled\n";
    return text;
  }
  int64_t fewest = INT64_MAX, most = 0;
  std::string spilling;
  for (const ::moeq::compile::PtxasResult &r : assembled) {
    fewest = std::min(fewest, r.registers);
    most = std::max(most, r.registers);
    if (r.spillBytes || r.stackBytes)
      spilling += llvm::formatv(" {0} ({1} B spills, {2} B stack)", r.kernel, r.spillBytes,
                                r.stackBytes);
  }
  os << llvm::formatv("ptxas: {0} kernels assembled for {1}, {2}-{3} registers, {4}\n",
                      assembled.size(), kernels.front().chip, fewest, most,
                      spilling.empty() ? std::string("no spills, no stack")
                                       : "spilling:" + spilling);
  return text;
}

/// The quantizer flags, checked before any work: a known method, a
/// statistics file only where it is used, and one that describes this
/// model (docs/calibration-stats.md metadata).
bool checkMethodAndStatistics() {
  auto fail = [](const llvm::Twine &message) {
    llvm::errs() << "moeq-compile: error: " << message << "\n";
    return false;
  };
  if (method != "rtn" && method != "gptq" && method != "agq")
    return fail("--method must be rtn, gptq or agq, got '" + method + "'");
  if (!mlir::moeq::parseKernelPath(kernelPath))
    return fail("--kernel-path must be auto, mma or simt, got '" + kernelPath + "'");
  if (avgBits.getNumOccurrences() && !(avgBits > 0))
    return fail("--avg-bits must be positive");
  if (avgBits > 0 && (bits.getNumOccurrences() || groupSize.getNumOccurrences() ||
                      symmetric.getNumOccurrences() || actBits.getNumOccurrences()))
    return fail("--avg-bits chooses the schemes from --schemes; --bits, --act-bits, "
                "--group-size and --symmetric apply only without it");
  // With --avg-bits the statistics also give the sensitivity, and with
  // --d2-compression the decomposition, so RTN may use them.
  if (method == "rtn" && ((!statsPath.empty() && !(avgBits > 0) && !(deltaCompression > 0)) ||
                          actOrder))
    return fail(llvm::Twine(actOrder ? "--act-order" : "--stats") +
                " needs --method gptq or agq" +
                (actOrder ? "" : " (or --avg-bits, whose sensitivity uses it)"));
  if (statsPath.empty())
    return true;
  // Version 2 (a directory): reads the index only; each layer's file is
  // opened, and checked against the index, when the layer is compiled.
  auto stats = mlir::moeq::calib::StatisticsReader::open(statsPath);
  if (!stats)
    return fail("--stats: " + llvm::toString(stats.takeError()));
  llvm::SmallString<256> configPath(modelDir);
  llvm::sys::path::append(configPath, "config.json");
  auto config = mlir::moeq::io::loadModelConfig(configPath);
  if (!config)
    return true; // The import reports a bad config, naming the key.
  mlir::moeq::calib::ModelDescription model{config->modelType,
                                            config->numLayers,
                                            config->hiddenSize,
                                            config->moeIntermediateSize,
                                            config->sharedIntermediateSize(),
                                            config->numExperts,
                                            config->topK,
                                            {}};
  for (int64_t layer = 0; layer < config->numLayers; ++layer)
    if (config->isMoELayer(layer))
      model.moeLayers.push_back(layer);
  if (llvm::Error err = (*stats)->checkModel(model, modelDir))
    return fail("--stats: " + llvm::toString(std::move(err)));
  return true;
}

int compile(MLIRContext &context) {
  Progress progress(5);
  if (!checkMethodAndStatistics())
    return 1;
  // Refuse an unknown architecture before doing any work.
  auto target = mlir::moeq::TargetAttr::getChecked(
      [&]() { return emitError(UnknownLoc::get(&context)) << "--arch: "; }, &context,
      StringAttr::get(&context, arch));
  if (!target)
    return 1;

  // Only an earlier artifact may be replaced, never a directory of user files.
  auto isArtifactEntry = [](StringRef name, bool isDirectory) {
    if (isDirectory)
      return name == "kernels";
    return llvm::is_contained({"manifest.json", "experts.safetensors",
                               "params.safetensors", "report.txt"},
                              name);
  };
  if (llvm::Error err = mlir::moeq::io::checkReplaceableDirectory(
          outputDir, isArtifactEntry, "a moeq artifact")) {
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
  (*module)->setAttr(mlir::moeq::kTargetAttrName, target);

  std::string scheme =
      avgBits > 0 ? llvm::formatv("measuring the sensitivity to {0}, allocating {1} average "
                                  "bits",
                                  schemes.getValue(), avgBits.getValue())
                        .str()
                  : llvm::formatv("w{0}, group {1}", bits.getValue(), groupSize.getValue()).str();
  progress.step(llvm::formatv("quantizing {0} ({1}, {2}) and "
                              "compiling expert GEMM kernels for {3}",
                              quantizeShared ? "routed and shared experts" : "routed experts",
                              scheme, describeMethod(), arch.getValue()));
  mlir::moeq::CompileOptions options;
  options.weightBits = bits;
  options.actBits = actBits;
  options.groupSize = groupSize;
  options.symmetric = symmetric;
  options.format = numberFormat;
  options.includeShared = quantizeShared;
  options.method = method;
  options.statsPath = statsPath;
  options.actOrder = actOrder;
  options.mseClip = mseClip;
  options.salienceClip = salienceClip;
  options.chip = arch;
  options.weightsOutput = out->pathFor("experts.safetensors");
  options.avgBits = avgBits;
  options.schemes = schemes;
  options.granularity = granularity;
  options.sensitivity = sensitivityLoss;
  options.r = accuracyWeight;
  options.tokens = tokensPerStep;
  options.gpu = costGpu;
  options.kernelPath = kernelPath;
  options.persistent = persistentLaunch;
  options.progress = !quiet;
  options.groupBits = groupBitsFlag;
  options.threads = jobs;
  // D^2-MoE's f32 bases and factors (and factor Hessians) are an
  // intermediate: the artifact gets them packed, or as copied parameters.
  llvm::SmallString<128> deltaArchive;
  auto removeDeltaArchive = llvm::make_scope_exit([&] {
    if (!deltaArchive.empty())
      llvm::sys::fs::remove(deltaArchive);
  });
  if (deltaCompression > 0) {
    if (auto ec = llvm::sys::fs::createTemporaryFile("moeq-delta", "safetensors", deltaArchive)) {
      llvm::errs() << "moeq-compile: cannot create a scratch file: " << ec.message() << "\n";
      return 1;
    }
    options.deltaCompression = deltaCompression;
    options.deltaMerge = deltaMerge;
    options.deltaWhiten = deltaWhiten;
    options.deltaSharedBasis = deltaSharedBasis;
    options.deltaPrune = deltaPrune;
    options.deltaRankMultiple = deltaRankMultiple;
    options.deltaOutput = deltaArchive.str().str();
  }
  PassManager pm(&context);
  mlir::moeq::buildCompileToNVVMPipeline(pm, options);
  if (failed(pm.run(*module)))
    return 1;
  // What the runtime's emulator backend runs: the NVVM-lowered kernels,
  // before they become PTX.
  FailureOr<std::vector<mlir::moeq::EmulationKernel>> emulation =
      mlir::moeq::buildEmulationKernels(*module);
  PassManager serialize(&context);
  mlir::moeq::buildSerializeToPTXPipeline(serialize);
  if (failed(emulation) || failed(serialize.run(*module)))
    return 1;

  progress.step("writing weights");
  if (failed(mlir::moeq::exportReferencedParams(*module, out->pathFor("params.safetensors"),
                                          {"quant"})))
    return 1;

  progress.step("writing PTX and manifest");
  FailureOr<std::vector<mlir::moeq::PTXKernel>> kernels = mlir::moeq::collectPTX(*module);
  if (failed(kernels))
    return 1;
  // The assembler's verdict before anything is committed: a kernel ptxas
  // rejects (parameter space, registers, shared memory, syntax) is an error.
  std::vector<::moeq::compile::PtxasResult> assembled;
  if (std::optional<std::string> ptxas = ::moeq::compile::findPtxas(ptxasPath)) {
    // One ptxas process per kernel, `threads` at a time; results (and the
    // first error) in kernel order, whatever finished first.
    std::vector<std::optional<llvm::Expected<::moeq::compile::PtxasResult>>> results(
        kernels->size());
    {
      llvm::DefaultThreadPool pool(llvm::hardware_concurrency(jobs));
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
  if (deltaCompression > 0)
    files["delta"] = "params.safetensors"; // (unquantized bases and factors, copied)
  FailureOr<llvm::json::Value> manifest = mlir::moeq::buildManifest(*module, files, "kernels");
  if (failed(manifest) ||
      failed(writeFile(out->pathFor("manifest.json"),
                       llvm::formatv("{0:2}\n", *manifest).str())) ||
      failed(writeFile(out->pathFor("report.txt"),
                       describeArtifact(*module, *manifest, assembled, *kernels))))
    return 1;

  progress.step("committing " + outputDir);
  if (llvm::Error err = out->commit()) {
    llvm::errs() << "moeq-compile: " << llvm::toString(std::move(err)) << "\n";
    return 1;
  }
  if (!quiet)
    llvm::errs() << "wrote " << outputDir << ": " << kernels->size()
                 << " kernels, manifest.json, experts.safetensors, params.safetensors, "
                    "report.txt\n";
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
  return compile(context);
}
