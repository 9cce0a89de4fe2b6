//===- moeq-stats.cpp - calibration statistics from captured inputs -------===//
//
//   moeq-stats MODEL_DIR --inputs captured.safetensors -o stats.safetensors
//              [--batch-tokens N] [--scratch-dir DIR]
//
// `captured.safetensors` holds, per MoE layer L, the hidden states that
// entered the MoE block in a real model run: `layers.L.input` [T, H]. Every
// layer runs through the compiler's CPU oracle (so routing is exactly what
// moeq compiles), batch by batch, one layer at a time, and the statistics
// of docs/calibration-stats.md are accumulated in float64 with BLAS. Memory
// holds one layer's weights, one batch, the layer-wide sums and one
// expert's Gram matrices: the routed rows are spilled to a scratch file
// between the layer pass and the per-expert pass (LayerStatistics).
//
//===----------------------------------------------------------------------===//
#include "moeq/Calibration/Statistics.h"
#include "moeq/IO/ModelConfig.h"
#include "moeq/IO/SafeTensors.h"
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
static cl::opt<std::string> outputPath("o", cl::desc("statistics file to write"), cl::Required,
                                       cl::cat(category));
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

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions(category);
  cl::ParseCommandLineOptions(argc, argv, "calibration statistics of a MoE checkpoint\n");
  if (batchTokens <= 0)
    return fail("--batch-tokens must be positive");
  if (samplesPerExpert < 0)
    return fail("--samples-per-expert must not be negative");

  llvm::SmallString<256> configPath(modelDir);
  llvm::sys::path::append(configPath, "config.json");
  auto config = io::loadModelConfig(configPath);
  if (!config)
    return fail(llvm::toString(config.takeError()));
  if (inputsPath.empty() == (randomInputs <= 0))
    return fail("give exactly one of --inputs FILE and --random-inputs N");
  std::unique_ptr<io::SafeTensorsFile> inputs;
  if (!inputsPath.empty()) {
    auto opened = io::SafeTensorsFile::open(inputsPath);
    if (!opened)
      return fail(llvm::toString(opened.takeError()));
    inputs = std::move(*opened);
  }

  DialectRegistry registry;
  mlir::moeq::registerAllMoEQDependencies(registry);
  MLIRContext context(registry);
  OwningOpRef<ModuleOp> module = mlir::moeq::importHFCheckpoint(modelDir, &context);
  if (!module)
    return 1;
  auto runner = mlir::moeq::CPULayerRunner::create(*module, /*exposeTrace=*/true);
  if (failed(runner))
    return 1;

  calib::LayerShape shape{config->hiddenSize, config->moeIntermediateSize,
                          config->numExperts, config->sharedIntermediateSize(),
                          config->sharedExpertGate};
  // The MoE layers and their (common) token count, checked before any work.
  std::vector<int64_t> moeLayers;
  std::string layerList;
  int64_t tokensPerLayer = randomInputs;
  for (int64_t layer = 0; layer < config->numLayers; ++layer) {
    if (!config->isMoELayer(layer))
      continue;
    moeLayers.push_back(layer);
    layerList += (layerList.empty() ? "" : ",") + std::to_string(layer);
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

  shape.samplesPerExpert = samplesPerExpert;
  shape.sampleStride = calib::sampleStride(std::max<int64_t>(tokensPerLayer, 0), config->topK,
                                           config->numExperts, samplesPerExpert);

  std::string spillDir = scratchDir;
  if (spillDir.empty()) {
    llvm::SmallString<256> absolute(outputPath.getValue());
    llvm::sys::fs::make_absolute(absolute);
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
  calib::Metadata metadata{
      {"format", "moeq-calibration-stats"},
      {"version", "1"},
      {"model_type", config->modelType},
      {"hidden_size", std::to_string(config->hiddenSize)},
      {"moe_intermediate_size", std::to_string(config->moeIntermediateSize)},
      {"shared_intermediate_size", std::to_string(config->sharedIntermediateSize())},
      {"num_experts", std::to_string(config->numExperts)},
      {"top_k", std::to_string(config->topK)},
      {"moe_layers", layerList},
      {"tokens", std::to_string(std::max<int64_t>(tokensPerLayer, 0))},
      {"samples_per_expert", std::to_string(shape.samplesPerExpert)},
      {"sample_stride", std::to_string(shape.sampleStride)},
      {"producer", "moeq-stats"}};
  if (llvm::Error err = calib::writeStatisticsStreaming(outputPath, metadata, shape,
                                                        moeLayers, computeLayer))
    return fail(llvm::toString(std::move(err)));
  return 0;
}
