//===- kernel_bench.cpp - kernel report: resources and predicted time -----===//
//
// For each precision mix and expert GEMM shape, and each token count per
// expert (decode M = 1..16, prefill M = 512..8192), the kernel moeq emits
// (the cost model's choice, as in moeq-compile), compiled to PTX with the
// compiler's passes and assembled with ptxas -v:
//
//   path/tile, registers, dynamic shared memory, spills, occupancy (warps
//   per SM from registers, shared memory and the warp limit), global bytes
//   loaded per weight byte (weights re-read per M tile, activations per N
//   tile), the predicted time and the HBM roofline time on the GPU.
//
//   moeq-kernel-bench [--gpu h100] [--arch sm_90a] [--ptxas PATH] [--json]
//
// Prints a markdown table (docs/kernels.md) or JSON. Nothing runs on a GPU:
// times are the cost model's (docs/cost-model.md).
//
//===----------------------------------------------------------------------===//
#include "moeq/CostModel/CostModel.h"
#include "moeq/Dialect/MoEQ/IR/MoEQ.h"
#include "moeq/Passes/Export.h"
#include "moeq/Passes/Kernels.h"
#include "moeq/Passes/Passes.h"

#include "mlir/Dialect/GPU/Transforms/Passes.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/Regex.h"

#include <cmath>
#include <map>

using namespace mlir;
using namespace mlir::moeq;
namespace cl = llvm::cl;

static cl::opt<std::string> gpuName("gpu", cl::desc("cost-model GPU"), cl::init("h100"));
static cl::opt<std::string> archName("arch",
                                     cl::desc("target chip (default: the GPU's; sm_90a adds the "
                                              "wgmma tiles)"),
                                     cl::init(""));
static cl::opt<std::string> ptxasPath("ptxas", cl::desc("ptxas (default: $CUDA_HOME or "
                                                        "/usr/local/cuda)"),
                                      cl::init(""));
static cl::opt<bool> asJson("json", cl::desc("print JSON instead of a table"), cl::init(false));

namespace {

struct Resources {
  bool assembled = false;
  int64_t registers = 0, spillBytes = 0, stackBytes = 0;
};

/// ptxas -v of one kernel's PTX.
Resources assemble(StringRef ptx, StringRef chip, StringRef ptxas) {
  Resources r;
  if (ptxas.empty())
    return r;
  SmallString<128> source, log;
  if (llvm::sys::fs::createTemporaryFile("moeq-kernel", "ptx", source) ||
      llvm::sys::fs::createTemporaryFile("moeq-kernel", "log", log))
    return r;
  {
    std::error_code ec;
    llvm::raw_fd_ostream os(source, ec);
    os << ptx;
  }
  std::string arch = ("-arch=" + chip).str();
  StringRef args[] = {ptxas, arch, "-v", source, "-o", "/dev/null"};
  std::optional<StringRef> redirects[] = {std::nullopt, log, log};
  int status = llvm::sys::ExecuteAndWait(ptxas, args, std::nullopt, redirects);
  auto text = llvm::MemoryBuffer::getFile(log);
  llvm::sys::fs::remove(source);
  llvm::sys::fs::remove(log);
  if (status != 0 || !text)
    return r;
  SmallVector<StringRef> m;
  StringRef body = (*text)->getBuffer();
  if (llvm::Regex("Used ([0-9]+) registers").match(body, &m))
    m[1].getAsInteger(10, r.registers);
  if (llvm::Regex("([0-9]+) bytes stack frame, ([0-9]+) bytes spill stores").match(body, &m)) {
    m[1].getAsInteger(10, r.stackBytes);
    m[2].getAsInteger(10, r.spillBytes);
  }
  r.assembled = true;
  return r;
}

std::string findPtxas() {
  if (!ptxasPath.empty())
    return ptxasPath;
  std::string home = "/usr/local/cuda";
  if (const char *env = std::getenv("CUDA_HOME"))
    home = env;
  std::string path = home + "/bin/ptxas";
  return llvm::sys::fs::can_execute(path) ? path : "";
}

/// Compiles the kernel of (weight type, tile) and assembles it; cached.
class KernelCompiler {
public:
  KernelCompiler(MLIRContext *context, std::string chip, std::string ptxas)
      : context(context), chip(std::move(chip)), ptxas(std::move(ptxas)) {}

  const Resources &get(Type weightType, TileConfigAttr tile) {
    std::string key = getGemmKernelName(weightType, tile);
    auto it = cache.find(key);
    if (it != cache.end())
      return it->second;
    Resources &r = cache[key];
    OwningOpRef<ModuleOp> module = buildSingleGemmModule(context, weightType, tile, chip);
    PassManager pm(context);
    LowerExpertGemmsToGPUOptions lowering;
    lowering.chip = chip;
    pm.addPass(createLowerExpertGemmsToGPU(lowering));
    buildLowerGPUModulesToNVVMPipeline(pm);
    buildSerializeToPTXPipeline(pm);
    if (!module || failed(pm.run(*module)))
      return r;
    FailureOr<std::vector<PTXKernel>> kernels = collectPTX(*module);
    if (failed(kernels))
      return r;
    for (const PTXKernel &kernel : *kernels)
      if (kernel.name == key)
        r = assemble(kernel.ptx, chip, ptxas);
    return r;
  }

private:
  MLIRContext *context;
  std::string chip, ptxas;
  std::map<std::string, Resources> cache;
};

struct Row {
  std::string scheme, shape, path;
  int64_t m = 0;
  cost::Tile tile;
  Resources resources;
  int64_t sharedBytes = 0;
  double occupancy = 0, bytesPerWeightByte = 0, predicted = 0, roofline = 0;
  bool memoryBound = false;
};

double weightBytes(const cost::WeightFormat &f, int64_t n, int64_t k) {
  double bytes = double(n) * k * std::min(f.weightBits, 16u) / 8.0;
  if (f.weightBits < 16)
    bytes += double(n) * (f.groupSize ? k / f.groupSize : 1) * (f.symmetric ? 2 : 4);
  return bytes;
}

} // namespace

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  cl::ParseCommandLineOptions(argc, argv, "moeq kernel report\n");
  const cost::GpuSpec *spec = cost::lookupGpu(gpuName);
  if (!spec) {
    llvm::errs() << "moeq-kernel-bench: unknown GPU '" << gpuName << "'\n";
    return 2;
  }
  std::string chip = archName.empty() ? spec->chip.str() : archName.getValue();
  cost::GpuSpec limited = cost::limitToChip(*spec, chip);
  const cost::GpuSpec *gpu = &limited;
  std::string ptxas = findPtxas();
  DialectRegistry registry;
  registerAllMoEQDependencies(registry);
  MLIRContext context(registry);
  context.loadAllAvailableDialects();
  context.disableMultithreading();
  KernelCompiler compiler(&context, chip, ptxas);

  // Mixtral-8x7B experts: gate/up 14336 x 4096, down 4096 x 14336.
  const std::pair<int64_t, int64_t> shapes[] = {{14336, 4096}, {4096, 14336}};
  const char *schemes[] = {"f16",       "w8a16pca",  "w4a16g128a", "w3a16g128a",
                           "w2a16g128a", "w8a8pcs", "w4a4g128s"};
  const int64_t tokens[] = {1, 2, 4, 8, 16, 512, 1024, 2048, 4096, 8192};

  std::vector<Row> rows;
  for (const char *schemeName : schemes)
    for (auto [n, k] : shapes) {
      Type weightType;
      if (StringRef(schemeName) == "f16") {
        weightType = RankedTensorType::get({n, k}, Float16Type::get(&context));
      } else {
        std::string error;
        SchemeAttr scheme = SchemeAttr::fromMangledName(&context, schemeName, error);
        weightType = PackedWeightType::get(&context, {n, k}, scheme);
      }
      cost::WeightFormat format = getWeightFormat(weightType);
      for (int64_t m : tokens) {
        cost::KernelChoice choice = chooseKernelFor(*gpu, m, weightType);
        TileConfigAttr tile = getTileConfig(&context, choice);
        Row row;
        row.scheme = schemeName;
        row.shape = llvm::formatv("{0}x{1}", n, k);
        row.path = !choice.tensorCore ? "simt" : choice.tile.warpGroup ? "wgmma" : "mma";
        row.m = m;
        row.tile = choice.tile;
        row.resources = compiler.get(weightType, tile);
        row.sharedBytes = getKernelSharedBytes(weightType, tile);
        // Occupancy: CTAs per SM from registers (allocated per warp in
        // units of 256), shared memory and the warp limit.
        int64_t threads = choice.tile.warps * 32;
        int64_t perWarpRegs = ((row.resources.registers * 32 + 255) / 256) * 256;
        int64_t byRegs = perWarpRegs ? 65536 / (perWarpRegs * choice.tile.warps) : 32;
        int64_t bySmem = row.sharedBytes ? gpu->sharedBytesPerSm /
                                               (row.sharedBytes + cost::kReservedSharedBytesPerCta)
                                         : 32;
        int64_t byWarps = gpu->maxWarpsPerSm / choice.tile.warps;
        int64_t ctas = std::min({byRegs, bySmem, byWarps, int64_t(32)});
        row.occupancy = double(ctas * threads / 32) / gpu->maxWarpsPerSm;
        // Global loads: weights once per M tile (SIMT: per token),
        // activations once per N tile, outputs stored once.
        double wBytes = weightBytes(format, n, k);
        int64_t mTiles = choice.tensorCore ? (m + choice.tile.bm - 1) / choice.tile.bm : m;
        int64_t nTiles = (n + choice.tile.bn - 1) / choice.tile.bn;
        double actBytes = double(m) * k * format.actBits / 8.0;
        row.bytesPerWeightByte = (mTiles * wBytes + nTiles * actBytes + 2.0 * m * n) / wBytes;
        row.predicted = choice.cost.seconds;
        double hbmBytes = wBytes + actBytes + 2.0 * m * n;
        double peak = format.actBits <= 4   ? gpu->int4OpsPerSecond
                      : format.actBits <= 8 ? gpu->int8OpsPerSecond
                                            : gpu->f16FlopsPerSecond;
        row.roofline = std::max(hbmBytes / gpu->hbmBytesPerSecond, 2.0 * m * n * k / peak);
        row.memoryBound = hbmBytes / gpu->hbmBytesPerSecond >= 2.0 * m * n * k / peak;
        rows.push_back(row);
        if (!asJson)
          llvm::errs() << "." ; // progress
      }
    }
  if (!asJson)
    llvm::errs() << "\n";

  if (asJson) {
    llvm::json::Array out;
    for (const Row &r : rows)
      out.push_back(llvm::json::Object{
          {"scheme", r.scheme}, {"shape", r.shape}, {"m", r.m}, {"path", r.path},
          {"tile", r.tile.str()}, {"registers", r.resources.registers},
          {"spill_bytes", r.resources.spillBytes}, {"stack_bytes", r.resources.stackBytes},
          {"assembled", r.resources.assembled}, {"shared_bytes", r.sharedBytes},
          {"occupancy", r.occupancy}, {"global_bytes_per_weight_byte", r.bytesPerWeightByte},
          {"predicted_us", r.predicted * 1e6}, {"roofline_us", r.roofline * 1e6}});
    llvm::outs() << llvm::formatv("{0:2}", llvm::json::Value(std::move(out))) << "\n";
    return 0;
  }
  llvm::outs() << llvm::formatv("GPU {0} ({1}), ptxas {2}\n\n", gpu->name, chip,
                                ptxas.empty() ? "not found (no register counts)" : ptxas);
  llvm::outs() << "| scheme | N x K | M | kernel | regs | smem (B) | spills (B) | occupancy | "
                  "global B / weight B | predicted (us) | HBM roofline (us) | ratio |\n";
  llvm::outs() << "|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const Row &r : rows) {
    // Tile::str() names wgmma tiles itself.
    std::string kernel = r.path == "simt" ? "simt" : r.path == "mma" ? "mma " + r.tile.str()
                                                                     : r.tile.str();
    llvm::outs() << llvm::formatv(
        "| {0} | {1} | {2} | {3} | {4} | {5} | {6} | {7:P0} | {8:F2} | {9:F2} | {10:F2}{11} | "
        "{12:F2} |\n",
        r.scheme, r.shape, r.m, kernel,
        r.resources.assembled ? std::to_string(r.resources.registers) : "-", r.sharedBytes,
        r.resources.assembled ? std::to_string(r.resources.spillBytes) : "-", r.occupancy,
        r.bytesPerWeightByte, r.predicted * 1e6, r.roofline * 1e6, r.memoryBound ? " (HBM)" : "",
        r.predicted / r.roofline);
  }
  return 0;
}
