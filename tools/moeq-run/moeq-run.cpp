//===- moeq-run.cpp - run one MoE layer of a compiled artifact ------------===//
//
//   moeq-run ARTIFACT --layer L --input x.safetensors -o y.safetensors
//            [--backend cuda|emulator] [--device N] [--bench [--iterations N]]
//            [--skip-checksums]
//
// Runs MoE layer L (the model's layer index) of a moeq-compile artifact on
// tensor "x" of the input file (tokens x hidden; F32, F16 or BF16, converted
// to f16) through the runtime (docs/runtime.md) and writes tensor "y" as F32,
// like moeq-cpu-runner, so the two compare directly. --bench also times the
// layer: the median per-call time and a per-launch table. Every kernel and
// weight file read is first checked against the manifest's digests;
// --skip-checksums reads weights written after the compile.
//
// The command line is parsed by hand: moeq-run is built in the runtime-only
// configuration (a GPU machine without LLVM), where llvm::cl is unavailable.
//
//===----------------------------------------------------------------------===//
#include "moeq/Runtime/Artifact.h"
#include "moeq/Runtime/SafeTensors.h"
#ifdef MOEQ_RUNTIME_WITH_EMULATOR
#include "moeq/Runtime/EmulatorBackend.h"
#endif

#include "moeq/IO/Float16.h" // header-only bit conversions, no LLVM

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

using namespace moeq::runtime;
namespace bits = mlir::moeq::io;

namespace {

const char *const kUsage =
    "usage: moeq-run ARTIFACT --layer L --input x.safetensors -o y.safetensors\n"
    "                [--backend cuda|emulator] [--device N] [--bench [--iterations N]]\n"
    "                [--skip-checksums]\n";

struct Options {
  std::string artifact, input, output;
  int64_t layer = -1;
  std::string backend = "cuda";
  int device = 0;
  bool bench = false;
  int iterations = 20;
  /// Reads weights written after the compile (bench/gpu's random weights)
  /// without checking them against the manifest's digests.
  bool skipChecksums = false;
};

int fail(const std::string &message) {
  std::fprintf(stderr, "moeq-run: error: %s\n", message.c_str());
  return 1;
}

bool parseInteger(const std::string &text, int64_t &value) {
  if (text.empty())
    return false;
  char *end = nullptr;
  errno = 0;
  long long parsed = std::strtoll(text.c_str(), &end, 10);
  if (errno || *end)
    return false;
  value = parsed;
  return true;
}

/// Accepts "--flag value" and "--flag=value".
Status parseOptions(int argc, char **argv, Options &options) {
  bool layerGiven = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i], value;
    size_t equals = arg.find('=');
    bool inlineValue = arg.rfind("--", 0) == 0 && equals != std::string::npos;
    if (inlineValue) {
      value = arg.substr(equals + 1);
      arg = arg.substr(0, equals);
    }
    auto takeValue = [&](std::string &out) -> Status {
      if (inlineValue) {
        out = value;
        return Status();
      }
      if (i + 1 >= argc)
        return Status::error(arg + " needs a value");
      out = argv[++i];
      return Status();
    };
    auto takeInteger = [&](int64_t low, int64_t high, int64_t &out) -> Status {
      std::string text;
      MOEQ_RETURN_IF_ERROR(takeValue(text));
      if (!parseInteger(text, out) || out < low || out > high)
        return Status::error(arg + ": '" + text + "' is not an integer in [" +
                             std::to_string(low) + ", " + std::to_string(high) + "]");
      return Status();
    };
    int64_t number = 0;
    if (arg == "--layer") {
      MOEQ_RETURN_IF_ERROR(takeInteger(0, INT32_MAX, options.layer));
      layerGiven = true;
    } else if (arg == "--input") {
      MOEQ_RETURN_IF_ERROR(takeValue(options.input));
    } else if (arg == "-o" || arg == "--output") {
      MOEQ_RETURN_IF_ERROR(takeValue(options.output));
    } else if (arg == "--backend") {
      MOEQ_RETURN_IF_ERROR(takeValue(options.backend));
    } else if (arg == "--device") {
      MOEQ_RETURN_IF_ERROR(takeInteger(0, 1024, number));
      options.device = int(number);
    } else if (arg == "--bench") {
      options.bench = true;
    } else if (arg == "--skip-checksums") {
      options.skipChecksums = true;
    } else if (arg == "--iterations") {
      MOEQ_RETURN_IF_ERROR(takeInteger(1, 1000000, number));
      options.iterations = int(number);
    } else if (arg == "-h" || arg == "--help") {
      return Status::error("help");
    } else if (!arg.empty() && arg[0] == '-') {
      return Status::error("unknown option " + arg);
    } else if (options.artifact.empty()) {
      options.artifact = arg;
    } else {
      return Status::error("unexpected argument '" + arg + "' (one artifact directory)");
    }
  }
  if (options.artifact.empty() || !layerGiven || options.input.empty() || options.output.empty())
    return Status::error("needs ARTIFACT, --layer, --input and -o");
  return Status();
}

std::string shapeText(const std::vector<int64_t> &shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

/// Tensor "x" of `path` as f16 rows of `hidden` columns.
Status readInput(const std::string &path, int64_t hidden, std::vector<uint16_t> &x,
                 int64_t &tokens) {
  std::unique_ptr<SafeTensorsFile> file;
  MOEQ_RETURN_IF_ERROR(SafeTensorsFile::open(path, file));
  const TensorEntry *entry = file->find("x");
  if (!entry)
    return Status::error(path + ": no tensor 'x' (tokens x hidden)");
  if (entry->shape.size() != 2)
    return Status::error(path + ": tensor 'x' must be 2-D (tokens x hidden), it has shape " +
                         shapeText(entry->shape));
  if (entry->dtype != "F32" && entry->dtype != "F16" && entry->dtype != "BF16")
    return Status::error(path + ": tensor 'x' is " + entry->dtype + " (expected F32, F16 or BF16)");
  if (entry->shape[1] != hidden)
    return Status::error(path + ": tensor 'x' has " + std::to_string(entry->shape[1]) +
                         " columns, the model's hidden size is " + std::to_string(hidden));
  tokens = entry->shape[0];
  x.resize(size_t(entry->elements));
  return convertElements(entry->dtype, file->data(*entry), entry->elements, DType::F16, x.data())
      .prefixed(path + ": tensor 'x': ");
}

/// Device copies of x and y, freed with the device.
struct IoBuffers {
  Device &device;
  DeviceAddress x = 0, y = 0;
  explicit IoBuffers(Device &device) : device(device) {}
  ~IoBuffers() {
    device.release(x);
    device.release(y);
  }
};

double median(std::vector<double> values) {
  if (values.empty())
    return 0;
  std::sort(values.begin(), values.end());
  size_t mid = values.size() / 2;
  return values.size() % 2 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
}

std::string dimText(const Dim3 &dim) {
  return std::to_string(dim.x) + "x" + std::to_string(dim.y) + "x" + std::to_string(dim.z);
}

Status runOnce(Artifact &artifact, const Options &options, const IoBuffers &io, int64_t tokens,
               std::vector<LaunchRecord> *launches = nullptr) {
  return artifact.runLayer(options.layer, io.x, io.y, tokens, nullptr, launches);
}

/// Warm-up, then `iterations` timed calls (each synchronised), then as many
/// calls with every launch timed; prints a markdown table.
Status bench(Artifact &artifact, const Options &options, const IoBuffers &io, int64_t tokens) {
  Device &device = artifact.device();
  const int warmup = std::max(2, options.iterations / 10);
  for (int i = 0; i < warmup; ++i)
    MOEQ_RETURN_IF_ERROR(runOnce(artifact, options, io, tokens));
  MOEQ_RETURN_IF_ERROR(device.synchronize(nullptr));
  std::vector<double> calls;
  for (int i = 0; i < options.iterations; ++i) {
    auto start = std::chrono::steady_clock::now();
    MOEQ_RETURN_IF_ERROR(runOnce(artifact, options, io, tokens));
    MOEQ_RETURN_IF_ERROR(device.synchronize(nullptr));
    calls.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
            .count());
  }
  // The plan is deterministic: every run makes the same launches, so the
  // i-th launch of each run is the same kernel on the same grid.
  std::vector<std::vector<double>> perLaunch;
  std::vector<LaunchRecord> first;
  for (int i = 0; i < options.iterations; ++i) {
    std::vector<LaunchRecord> launches;
    MOEQ_RETURN_IF_ERROR(runOnce(artifact, options, io, tokens, &launches));
    if (i == 0) {
      first = launches;
      perLaunch.resize(launches.size());
    }
    for (size_t l = 0; l < launches.size() && l < perLaunch.size(); ++l)
      perLaunch[l].push_back(launches[l].milliseconds);
  }
  std::printf("moeq-run: layer %lld of %s, %lld tokens, backend %s\n", (long long)options.layer,
              options.artifact.c_str(), (long long)tokens, device.name().c_str());
  std::printf("median %.4f ms per call over %d iterations (min %.4f, max %.4f)\n\n",
              median(calls), options.iterations,
              *std::min_element(calls.begin(), calls.end()),
              *std::max_element(calls.begin(), calls.end()));
  std::printf("| step | kernel | grid | block | median ms |\n|---:|---|---|---|---:|\n");
  double total = 0;
  for (size_t l = 0; l < first.size(); ++l) {
    double ms = median(perLaunch[l]);
    total += ms;
    std::printf("| %zu | %s | %s | %s | %.4f |\n", first[l].step, first[l].kernel.c_str(),
                dimText(first[l].grid).c_str(), dimText(first[l].block).c_str(), ms);
  }
  std::printf("| | total of %zu launches | | | %.4f |\n", first.size(), total);
  return Status();
}

int run(const Options &options) {
  Backend backend;
  if (!parseBackend(options.backend, backend))
    return fail("unknown backend '" + options.backend + "' (expected cuda or emulator)");

  // Everything that can be checked without a device first: a user error
  // should not wait for (or need) a GPU.
  Manifest manifest;
  Status status = loadManifest(options.artifact, kernelFileOf(backend), manifest,
                               options.skipChecksums ? DigestCheck::Skip : DigestCheck::Check);
  if (!status.ok())
    return fail(status.message());
  if (!manifest.findLayer(options.layer))
    return fail("layer " + std::to_string(options.layer) + " is not a MoE layer of " +
                options.artifact + " (MoE layers: " + manifest.layerList() + ")");
  std::vector<uint16_t> x;
  int64_t tokens = 0;
  if (!(status = readInput(options.input, manifest.hiddenSize, x, tokens)).ok())
    return fail(status.message());
  DeviceParamSources params;
  if (!(status = params.open(manifest)).ok())
    return fail(status.message());

  std::unique_ptr<Device> device;
  if (!(status = createDevice(backend, options.device, device)).ok())
    return fail(status.message());
  std::unique_ptr<Artifact> artifact;
  if (!(status = Artifact::create(std::move(manifest), params, std::move(device), artifact)).ok())
    return fail(status.message());

  Device &target = artifact->device();
  IoBuffers io(target);
  size_t bytes = x.size() * sizeof(uint16_t);
  std::vector<uint16_t> y(x.size());
  status = target.allocate(bytes, io.x);
  if (status.ok())
    status = target.allocate(bytes, io.y);
  if (status.ok())
    status = target.copyToDevice(io.x, x.data(), bytes);
  if (status.ok())
    status = runOnce(*artifact, options, io, tokens);
  if (status.ok() && bytes)
    status = target.copyToHost(y.data(), io.y, bytes, nullptr);
  if (status.ok() && options.bench)
    status = bench(*artifact, options, io, tokens);
  if (!status.ok())
    return fail(status.message());

  std::vector<float> output(y.size());
  for (size_t i = 0; i < y.size(); ++i)
    output[i] = bits::halfToFloat(y[i]);
  TensorToWrite tensor{"y", "F32", {tokens, artifact->manifest().hiddenSize}, output.data()};
  if (!(status = writeSafeTensors(options.output, {tensor})).ok())
    return fail(status.message());
  return 0;
}

} // namespace

int main(int argc, char **argv) {
#ifdef MOEQ_RUNTIME_WITH_EMULATOR
  registerEmulatorBackend();
#endif
  Options options;
  Status status = parseOptions(argc, argv, options);
  if (!status.ok()) {
    if (status.message() == "help") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    std::fputs(kUsage, stderr);
    return fail(status.message());
  }
  return run(options);
}
