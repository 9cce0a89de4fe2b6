//===- moeq-stats.cpp - calibration statistics from captured inputs -------===//
//
//   moeq-stats MODEL_DIR --inputs captured.safetensors -o stats/
//              [--layers A:B,...] [--samples-per-expert N] [--batch-tokens N]
//              [--scratch-dir DIR] [--format 2|1]
//   moeq-stats MODEL_DIR --convert old.safetensors -o stats/ [--layers ...]
//   moeq-stats MODEL_DIR --print-sizes [--samples-per-expert N]
//
// `captured.safetensors` holds, per MoE layer L, the hidden states that
// entered the MoE block in a real model run: `layers.L.input` [T, H]. Every
// layer runs through the compiler's CPU oracle (so routing is exactly what
// moeq compiles), batch by batch, one layer at a time, and the statistics
// of docs/calibration-stats.md are accumulated in float64 with BLAS. Memory
// holds one layer's weights, one batch, the layer-wide sums and one
// expert's Gram matrices: the routed rows are spilled to a scratch file
// between the layer pass and the per-expert pass (LayerStatistics).
// Format 2 (the default) writes a directory, one file per MoE layer, each
// written as soon as its layer is done; `--layers` produces a slice of the
// layers into the same directory. `--convert` turns a format 1 file into a
// format 2 directory; `--print-sizes` prints what both formats take for the
// model (config.json only), without computing anything.
//
//===----------------------------------------------------------------------===//
#include "moeq/Calibration/Statistics.h"
#include "moeq/Calibration/StatisticsFiles.h"
#include "moeq/IO/Checkpoint.h"
#include "moeq/IO/ModelConfig.h"
#include "moeq/IO/SafeTensors.h"
#include "moeq/IO/WeightsFingerprint.h"
#include "moeq/Passes/CPURunner.h"
#include "moeq/Passes/Import.h"
#include "moeq/Passes/Passes.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/Path.h"

#include <cmath>

using namespace mlir;
namespace cl = llvm::cl;
namespace io = mlir::moeq::io;
namespace calib = mlir::moeq::calib;

static cl::OptionCategory category("moeq-stats options");
static cl::opt<std::string> modelDir(cl::Positional, cl::desc("<hf-model-dir>"), cl::Required,
                                     cl::cat(category));
static cl::opt<std::string> inputsPath("inputs",
                                       cl::desc("safetensors with layers.<L>.input [T, H]"),
                                       cl::cat(category));
static cl::opt<int64_t> randomInputs(
    "random-inputs",
    cl::desc("instead of --inputs: N standard-normal tokens per layer (tests, benchmarks)"),
    cl::init(0), cl::cat(category));
static cl::opt<uint64_t> seed("seed", cl::desc("seed of --random-inputs"), cl::init(0),
                              cl::cat(category));
static cl::opt<std::string> outputPath(
    "o", cl::desc("statistics to write: a directory (format 2), or a file (--format 1)"),
    cl::cat(category));
static cl::opt<std::string> layerSpec(
    "layers",
    cl::desc("MoE layers to compute (or convert): L, A:B (half-open), A:, :B, "
             "comma-separated; default: all. Other layers already in the output "
             "directory are kept"),
    cl::cat(category));
static cl::opt<int> formatVersion("format",
                                  cl::desc("2: a directory, one file per MoE layer, F32 "
                                           "packed Gram matrices (default); 1: one file, "
                                           "dense F64 matrices (legacy)"),
                                  cl::init(2), cl::cat(category));
static cl::opt<std::string> convertPath(
    "convert", cl::desc("a format 1 statistics file to convert into the format 2 directory -o"),
    cl::value_desc("file"), cl::cat(category));
static cl::opt<bool> printSizes(
    "print-sizes",
    cl::desc("print the size of the statistics of the model in both formats and exit "
             "(reads config.json only)"),
    cl::init(false), cl::cat(category));
static cl::opt<int64_t> samplesPerExpert(
    "samples-per-expert",
    cl::desc("routed input rows kept per expert for the measured (MxMoE) sensitivity, "
             "evenly spread over the calibration tokens (0: none)"),
    cl::init(256), cl::cat(category));
static cl::opt<int64_t> batchTokens("batch-tokens", cl::desc("tokens per CPU batch"),
                                    cl::init(2048), cl::cat(category));
static cl::opt<std::string> scratchDir(
    "scratch-dir",
    cl::desc("directory of the per-layer scratch file (tokens x top_k x (hidden + "
             "intermediate) x 4 bytes; default: the output's directory)"),
    cl::cat(category));
static cl::opt<bool> quiet("quiet", cl::desc("no progress output"), cl::init(false),
                           cl::cat(category));

static int fail(const llvm::Twine &message) {
  llvm::errs() << "moeq-stats: error: " << message << "\n";
  return 1;
}

/// The inputs of MoE layer `layer`: from the captured file, or random.
static FailureOr<std::vector<float>> layerInputs(io::SafeTensorsFile *inputs, int64_t layer,
                                                 int64_t hidden) {
  if (!inputs) {
    // splitmix64 + Box-Muller: portable, unlike std::normal_distribution.
    uint64_t state = seed * 0x9E3779B97F4A7C15ull + uint64_t(layer) + 1;
    auto next = [&]() {
      uint64_t z = (state += 0x9E3779B97F4A7C15ull);
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
      return double((z ^ (z >> 31)) >> 11) * 0x1.0p-53;
    };
    std::vector<float> values(randomInputs * hidden);
    for (size_t i = 0; i < values.size(); ++i)
      values[i] = float(std::sqrt(-2 * std::log(1 - next())) * std::cos(2 * M_PI * next()));
    return values;
  }
  std::string name = "layers." + std::to_string(layer) + ".input";
  const io::TensorInfo *info = inputs->find(name);
  if (!info) {
    fail(inputsPath + ": tensor '" + name + "' is missing");
    return failure();
  }
  if (info->shape.size() != 2 || info->shape[1] != hidden) {
    fail(inputsPath + ": tensor '" + name + "' must be [tokens, " + llvm::Twine(hidden) + "]");
    return failure();
  }
  auto values = inputs->readAsFloat(*info);
  if (!values) {
    fail(llvm::toString(values.takeError()));
    return failure();
  }
  return std::move(*values);
}

/// Prints what the statistics of `config`'s MoE layers take in both
/// formats (calib::layerStatisticsBytes).
static void printStatisticsSizes(const io::MoEModelConfig &config,
                                 const calib::LayerShape &shape, int64_t moeLayers) {
  auto gb = [](uint64_t bytes) { return llvm::formatv("{0:F2} GB", bytes / 1e9).str(); };
  calib::LayerShape noSamples = shape;
  noSamples.samplesPerExpert = 0;
  calib::LayerShape noExperts = shape;
  noExperts.experts = 0;
  llvm::outs() << llvm::formatv(
      "statistics of {0} ({1}): {2} MoE layers, {3} experts, hidden {4}, expert intermediate "
      "{5}, shared expert intermediate {6}{7}, {8} samples per expert\n",
      modelDir, config.modelType, moeLayers, shape.experts, shape.hidden, shape.intermediate,
      shape.sharedIntermediate, shape.sharedGated ? " (gated)" : "", shape.samplesPerExpert);
  llvm::outs() << llvm::formatv("{0,-36} {1,18} {2,18}\n", "bytes", "format 1", "format 2");
  auto row = [&](llvm::StringRef what, auto bytesOf) {
    llvm::outs() << llvm::formatv("{0,-36} {1,18} {2,18}\n", what, bytesOf(1), bytesOf(2));
  };
  auto expertBytes = [&](int version, bool samples) {
    calib::LayerShape one = samples ? shape : noSamples;
    one.experts = 1;
    one.sharedIntermediate = 0;
    calib::LayerShape none = one;
    none.experts = 0;
    return calib::layerStatisticsBytes(one, version) - calib::layerStatisticsBytes(none, version);
  };
  row("routed expert, Gram matrices", [&](int v) { return expertBytes(v, false); });
  row("routed expert, samples", [&](int v) { return expertBytes(v, true) - expertBytes(v, false); });
  row("layer-wide (gram_all, shared, counts)",
      [&](int v) { return calib::layerStatisticsBytes(noExperts, v); });
  row("per MoE layer", [&](int v) { return calib::layerStatisticsBytes(shape, v); });
  row("total", [&](int v) { return moeLayers * calib::layerStatisticsBytes(shape, v); });
  uint64_t v1 = calib::layerStatisticsBytes(shape, 1), v2 = calib::layerStatisticsBytes(shape, 2);
  llvm::outs() << llvm::formatv("per MoE layer: format 1 {0}, format 2 {1}; total: format 1 "
                                "{2}, format 2 {3}; format 1 / format 2 = {4:F2}\n",
                                gb(v1), gb(v2), gb(moeLayers * v1), gb(moeLayers * v2),
                                double(v1) / double(v2));
}

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions(category);
  cl::ParseCommandLineOptions(argc, argv, "calibration statistics of a MoE checkpoint\n");
  if (batchTokens <= 0)
    return fail("--batch-tokens must be positive");
  if (samplesPerExpert < 0)
    return fail("--samples-per-expert must not be negative");
  if (formatVersion != 1 && formatVersion != 2)
    return fail("--format must be 1 or 2");

  llvm::SmallString<256> configPath(modelDir);
  llvm::sys::path::append(configPath, "config.json");
  auto config = io::loadModelConfig(configPath);
  if (!config)
    return fail(llvm::toString(config.takeError()));
  calib::LayerShape shape{config->hiddenSize, config->moeIntermediateSize,
                          config->numExperts, config->sharedIntermediateSize(),
                          config->sharedExpertGate};
  shape.weightsOnInputs = config->routingWeightsScaleInput;
  shape.samplesPerExpert = samplesPerExpert;
  if (printSizes) {
    auto described = calib::describeModel(*config, nullptr);
    if (!described)
      return fail(llvm::toString(described.takeError()));
    printStatisticsSizes(*config, shape, described->moeLayers.size());
    return 0;
  }
  // The statistics record the fingerprint of the weights they measured.
  auto checkpoint = io::Checkpoint::open(modelDir);
  if (!checkpoint)
    return fail(llvm::toString(checkpoint.takeError()));
  auto described = calib::describeModel(*config, checkpoint->get());
  if (!described)
    return fail(llvm::toString(described.takeError()));
  const calib::ModelDescription &model = *described;
  if (outputPath.empty())
    return fail("give the output with -o (a directory; a file with --format 1)");

  // The MoE layers to compute: all, or those --layers selects.
  std::vector<int64_t> moeLayers = model.moeLayers;
  if (!layerSpec.empty()) {
    auto selected = calib::parseLayerSelection(layerSpec, config->numLayers);
    if (!selected)
      return fail(llvm::toString(selected.takeError()));
    llvm::erase_if(moeLayers,
                   [&](int64_t layer) { return !llvm::is_contained(*selected, layer); });
    if (moeLayers.empty())
      return fail("--layers '" + layerSpec + "' selects no MoE layer (the MoE layers of " +
                  modelDir + " are " + calib::joinLayers(model.moeLayers) + ")");
  }
  calib::Metadata index = calib::indexMetadata(model);

  if (!convertPath.empty()) {
    if (formatVersion != 2 || !inputsPath.empty() || randomInputs > 0)
      return fail("--convert writes format 2 and takes no --inputs, --random-inputs or --format");
    auto v1 = calib::StatisticsReader::open(convertPath);
    if (!v1)
      return fail(llvm::toString(v1.takeError()));
    if ((*v1)->version() != 1)
      return fail(convertPath + " is already a format 2 statistics directory");
    if (llvm::Error err = (*v1)->checkModel(model, modelDir))
      return fail(llvm::toString(std::move(err)));
    if (layerSpec.empty())
      moeLayers = (*v1)->moeLayers();
    if (llvm::Error err = calib::convertToDirectory(**v1, outputPath, index, moeLayers))
      return fail(llvm::toString(std::move(err)));
    if (!quiet)
      llvm::errs() << llvm::formatv("[moeq-stats] converted layers {0} of {1} into {2}\n",
                                    calib::joinLayers(moeLayers), convertPath, outputPath);
    return 0;
  }

  if (inputsPath.empty() == (randomInputs <= 0))
    return fail("give exactly one of --inputs FILE and --random-inputs N");
  std::unique_ptr<io::SafeTensorsFile> inputs;
  if (!inputsPath.empty()) {
    auto opened = io::SafeTensorsFile::open(inputsPath);
    if (!opened)
      return fail(llvm::toString(opened.takeError()));
    inputs = std::move(*opened);
  }
  // A format 2 output is checked (another model's directory, a file)
  // before any work.
  if (formatVersion == 2)
    if (llvm::Error err = calib::prepareStatisticsDirectory(outputPath, index, /*create=*/false))
      return fail(llvm::toString(std::move(err)));

  DialectRegistry registry;
  mlir::moeq::registerAllMoEQDependencies(registry);
  MLIRContext context(registry);
  OwningOpRef<ModuleOp> module = mlir::moeq::importHFCheckpoint(modelDir, &context);
  if (!module)
    return 1;
  auto runner = mlir::moeq::CPULayerRunner::create(*module, /*exposeTrace=*/true);
  if (failed(runner))
    return 1;

  // The selected layers' (common) token count, checked before any work.
  int64_t tokensPerLayer = randomInputs;
  for (int64_t layer : moeLayers) {
    if (!inputs)
      continue;
    std::string name = "layers." + std::to_string(layer) + ".input";
    const io::TensorInfo *info = inputs->find(name);
    if (!info)
      return fail(inputsPath + ": tensor '" + name + "' is missing");
    if (info->shape.size() != 2 || info->shape[1] != config->hiddenSize)
      return fail(inputsPath + ": tensor '" + name + "' must be [tokens, " +
                  llvm::Twine(config->hiddenSize) + "]");
    if (tokensPerLayer > 0 && info->shape[0] != tokensPerLayer)
      return fail(inputsPath + ": MoE layers were captured with different token counts");
    tokensPerLayer = info->shape[0];
  }

  shape.sampleStride = calib::sampleStride(std::max<int64_t>(tokensPerLayer, 0), config->topK,
                                           config->numExperts, samplesPerExpert);
  shape.sharedSampleStride =
      calib::sampleStride(std::max<int64_t>(tokensPerLayer, 0), 1, 1, samplesPerExpert);

  // Default scratch directory: where the output lives (the parent of the
  // output file or directory).
  std::string spillDir = scratchDir;
  if (spillDir.empty()) {
    llvm::SmallString<256> absolute(outputPath.getValue());
    llvm::sys::fs::make_absolute(absolute);
    llvm::sys::path::remove_dots(absolute, /*remove_dot_dot=*/true);
    spillDir = llvm::sys::path::parent_path(absolute).str();
  }

  // One layer at a time: run it batch by batch and accumulate its sums.
  auto computeLayer = [&](int64_t layer) -> llvm::Expected<calib::LayerStatistics> {
    FailureOr<std::vector<float>> values = layerInputs(inputs.get(), layer, shape.hidden);
    if (failed(values))
      return llvm::createStringError("cannot read the inputs of layer " + std::to_string(layer));
    calib::LayerStatistics stats(shape, spillDir);
    std::string function = "moe_layer_" + std::to_string(layer);
    for (int64_t begin = 0; begin < tokensPerLayer; begin += batchTokens) {
      int64_t count = std::min<int64_t>(batchTokens, tokensPerLayer - begin);
      llvm::ArrayRef<float> x(values->data() + begin * shape.hidden, count * shape.hidden);
      mlir::moeq::LayerTrace trace;
      if (failed((*runner)->run(function, x, count, &trace)))
        return llvm::createStringError("running layer " + std::to_string(layer) + " failed");
      calib::LayerBatch batch{count, trace.topK, x, trace.routingIndices,
                              trace.routingWeights, trace.positions, trace.offsets,
                              trace.expertActivations, trace.sharedActivations,
                              trace.sharedGateLogits};
      if (llvm::Error err = stats.add(batch))
        return llvm::createStringError("layer " + std::to_string(layer) + ": " +
                                       llvm::toString(std::move(err)));
    }
    // The layer's weights and inputs are done with: drop their pages.
    (*runner)->releaseParameterPages();
    if (inputs)
      inputs->releasePages();
    if (!quiet)
      llvm::errs() << llvm::formatv("[moeq-stats] layer {0}: {1} tokens\n", layer,
                                    tokensPerLayer);
    return stats;
  };
  // Per run (format 2: per layer file; format 1: the file).
  calib::Metadata run{{"tokens", std::to_string(std::max<int64_t>(tokensPerLayer, 0))},
                      {"samples_per_expert", std::to_string(shape.samplesPerExpert)},
                      {"sample_stride", std::to_string(shape.sampleStride)},
                      {"producer", "moeq-stats"}};
  if (shape.sharedIntermediate)
    run["shared_sample_stride"] = std::to_string(shape.sharedSampleStride);
  auto write = [&]() -> llvm::Error {
    if (formatVersion == 2)
      return calib::writeStatisticsDirectory(outputPath, index, run, shape, moeLayers,
                                             computeLayer);
    calib::Metadata metadata = run;
    for (const char *key : {"format", "model_type", "hidden_size", "moe_intermediate_size",
                            "shared_intermediate_size", "num_experts", "top_k"})
      metadata[key] = index[key];
    metadata[io::kWeightsFingerprintKey.str()] = index[io::kWeightsFingerprintKey.str()];
    metadata["version"] = "1";
    metadata["moe_layers"] = calib::joinLayers(moeLayers);
    return calib::writeStatisticsStreaming(outputPath, metadata, shape, moeLayers, computeLayer);
  };
  llvm::Error err = write();
  if (err)
    return fail(llvm::toString(std::move(err)));
  return 0;
}
