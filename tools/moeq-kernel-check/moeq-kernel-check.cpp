//===- moeq-kernel-check.cpp - run a generated GEMM kernel on the CPU -----===//
//
// The numerical check of moeq's GPU kernels without a GPU:
//
//   moeq-kernel-check --scheme w4a16g128a --n 128 --k 256 --rows 1,17,40 \
//       --tile mma:32x64x64w4s3 --arch sm_80
//
// quantizes a random N x K weight with the scheme (lib/Quant, packed as the
// compiler packs it), builds the kernel of that precision mix and tile with
// the compiler's own passes, lowers it to NVVM exactly as for PTX, turns
// the NVVM operations into calls of the GPU emulator
// (moeq-emulate-gpu-kernels), JIT-compiles it with the ExecutionEngine and
// runs it, CTA by CTA with PTX semantics, on random f16 activations. The
// result is compared with the quantized GEMM computed here in double
// precision from the same codes; rows past M must stay untouched.
// Prints one line per row count; exits 1 on any mismatch.
//
// For a GPU: --save-case DIR also writes the launches as a case
// (KernelCase.h: the same kernels' PTX, launches, inputs, the emulator's
// outputs and the references), --probe the one-warp probes of each warp
// instruction the kernels use (Probes.cpp), --timing-case DIR the kernels
// of a grouped matmul with launches and buffer sizes but no data
// (bench/gpu/time_gemms.py).
//
//===----------------------------------------------------------------------===//
#include "Compile.h"
#include "KernelCase.h"
#include "Probes.h"

#include "moeq/CostModel/CostModel.h"
#include "moeq/Dialect/MoEQ/IR/MoEQ.h"
#include "moeq/GPUEmulator/Emulator.h"
#include "moeq/IO/Float16.h"
#include "moeq/Passes/Export.h"
#include "moeq/Passes/Kernels.h"
#include "moeq/Passes/Passes.h"
#include "moeq/Quant/Quantizer.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/Transforms/Passes.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Dialect/SPIRV/IR/SPIRVOps.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Target/SPIRV/Serialization.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Program.h"

#ifdef MOEQ_HAVE_OPENCL
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#endif
#include "mlir/ExecutionEngine/ExecutionEngine.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "mlir/Transforms/Passes.h"

#include "llvm/ExecutionEngine/Orc/Mangling.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/TargetSelect.h"

#include <cmath>
#include <map>
#include <random>

using namespace mlir;
using namespace mlir::moeq;
using namespace mlir::moeq::kcheck;
namespace cl = llvm::cl;
namespace mq = mlir::moeq::quant;

static cl::opt<std::string> schemeName("scheme", cl::desc("w<b>a<b>(g<n>|pc)[a|s], or f16"),
                                       cl::init("w4a16g128a"));
static cl::opt<std::string> groupBitsList("group-bits",
                                          cl::desc("comma-separated widths per column group"),
                                          cl::init(""));
static cl::opt<int64_t> outputs("n", cl::desc("output features N"), cl::init(128));
static cl::opt<int64_t> inputs("k", cl::desc("input features K"), cl::init(256));
static cl::opt<int64_t> inputColumns(
    "x-cols",
    cl::desc("activation row length > K: a `leading_inputs` linear reading the leading K "
             "columns (a pruned D^2-MoE down base); single-kernel mode, weight-only"),
    cl::init(0));
static cl::opt<std::string> rowList("rows", cl::desc("comma-separated token counts M"),
                                    cl::init("1,17,40"));
static cl::opt<std::string> tileSpec(
    "tile", cl::desc("mma:<BM>x<BN>x<BK>w<warps>s<stages>, simt, or auto (cost model)"),
    cl::init("auto"));
static cl::opt<int64_t> tokens("tokens", cl::desc("--tile auto: rows the cost model assumes"),
                               cl::init(64));
static cl::opt<std::string> arch("arch", cl::desc("sm_80, sm_90, ..."), cl::init("sm_80"));
static cl::opt<unsigned> seed("seed", cl::desc("random seed"), cl::init(1));
static cl::opt<std::string> expertSchemes(
    "experts",
    cl::desc("grouped mode: comma-separated scheme of each expert (<scheme>:gb<w>-<w>-... "
             "for group widths); the tiles come from "
             "moeq-tile-expert-gemms at --tokens and must fuse into one persistent kernel"),
    cl::init(""));
static cl::opt<std::string> expertRows("expert-rows",
                                       cl::desc("grouped mode: rows (tokens) of each expert"),
                                       cl::init(""));
static cl::opt<unsigned> persistentCtas("ctas", cl::desc("grouped mode: CTAs of the launch"),
                                        cl::init(3));
static cl::opt<bool> onPocl(
    "pocl",
    cl::desc("run the SIMT kernel for real through OpenCL SPIR-V on PoCL (the CPU OpenCL "
             "driver) instead of the GPU emulator: gpu -> SPIR-V -> llvm-spirv -r -> "
             "clCreateProgramWithBinary"),
    cl::init(false));
static cl::opt<double> toleranceUlps(
    "tolerance-ulps", cl::desc("allowed error in f16 ulps at the largest output"), cl::init(2));
static cl::opt<std::string> saveCase(
    "save-case",
    cl::desc("also write what ran as a case for a GPU (bench/gpu/check_kernels.py) to this "
             "directory: the kernels' PTX (as moeq-compile builds it for --arch), case.json "
             "(launches, buffers), data.safetensors (inputs, the emulator's outputs, the "
             "double-precision references)"),
    cl::init(""));
static cl::opt<std::string> costGpu(
    "gpu", cl::desc("cost-model GPU of --tile auto and the grouped tiling (default: --arch's)"),
    cl::init(""));
static cl::opt<unsigned> topK("top-k",
                              cl::desc("grouped mode: experts per token of the dispatch (the "
                                       "tiling assumes --tokens * top-k / experts rows)"),
                              cl::init(1));
static cl::opt<std::string> probeName(
    "probe",
    cl::desc("run the one-warp probes of the warp instructions the kernels use (a name, or "
             "'all'; --save-case DIR writes one case per probe under DIR)"),
    cl::init(""));
static cl::opt<std::string> timingCase(
    "timing-case",
    cl::desc("grouped mode: write the kernels (PTX), launches and buffer sizes of every "
             "--expert-rows split (';'-separated) and the cost model's time to this "
             "directory; no data, nothing runs"),
    cl::init(""));
static cl::opt<unsigned> showMismatches("show", cl::desc("print up to this many mismatching outputs"),
                                        cl::init(0));

namespace {

std::vector<int64_t> parseList(StringRef text) {
  std::vector<int64_t> values;
  SmallVector<StringRef> parts;
  text.split(parts, ',', -1, false);
  for (StringRef part : parts) {
    int64_t v;
    if (part.trim().getAsInteger(10, v) || v <= 0)
      fail("'" + text + "' is not a list of positive integers");
    values.push_back(v);
  }
  return values;
}

TileConfigAttr parseTile(MLIRContext *context, Type weightType) {
  if (tileSpec == "auto") {
    const cost::GpuSpec *gpu =
        costGpu.empty() ? cost::defaultGpuForChip(arch) : cost::lookupGpu(costGpu);
    cost::GpuSpec limited = cost::limitToChip(gpu ? *gpu : *cost::lookupGpu("a100"), arch);
    return getTileConfig(context, chooseKernelFor(limited, tokens, weightType));
  }
  if (tileSpec == "simt")
    return TileConfigAttr::get(context, KernelFamily::Simt, 1, cost::kSimtBlock, 32, cost::kSimtBlock / 32,
                               1, 1);
  int64_t bm, bn, bk, warps, stages, splitK = 1;
  StringRef rest = tileSpec;
  KernelFamily family =
      rest.consume_front("wgmma:") ? KernelFamily::WarpGroupMma : KernelFamily::TensorCore;
  if ((family == KernelFamily::TensorCore && !rest.consume_front("mma:")) ||
      rest.consumeInteger(10, bm) || !rest.consume_front("x") ||
      rest.consumeInteger(10, bn) || !rest.consume_front("x") || rest.consumeInteger(10, bk) ||
      !rest.consume_front("w") || rest.consumeInteger(10, warps) || !rest.consume_front("s") ||
      rest.consumeInteger(10, stages) ||
      (rest.consume_front("k") && rest.consumeInteger(10, splitK)) || !rest.empty())
    fail("--tile must be auto, simt, mma:<BM>x<BN>x<BK>w<warps>s<stages>[k<split>] or "
         "wgmma:<BM>x<BN>x<BK>w<warps>s<stages>, got '" +
         tileSpec + "'");
  auto diag = [&]() { return emitError(UnknownLoc::get(context)); };
  TileConfigAttr tile =
      TileConfigAttr::getChecked(diag, context, family, bm, bn, bk, warps, stages, splitK);
  if (!tile)
    fail("invalid --tile '" + tileSpec + "'");
  return tile;
}

/// The weight of the check and what the kernel reads.
struct Weights {
  Type type;
  std::vector<uint32_t> words;   // packed codes
  std::vector<uint16_t> scales;  // f16 (level tables: the levels)
  std::vector<uint16_t> zeros;   // f16 (asymmetric)
  std::vector<uint16_t> halves;  // f16 weights (float scheme)
  std::vector<double> reference; // N x K as the kernel multiplies them
  unsigned actBits = 16;
  bool levelTable = false;
};

Weights makeWeights(MLIRContext *context, std::mt19937 &rng, bool roundToHalf,
                    StringRef name) {
  int64_t n = outputs, k = inputs;
  std::uniform_real_distribution<float> uniform(-1.f, 1.f);
  std::vector<float> w(n * k);
  for (float &v : w)
    v = uniform(rng);
  Weights out;
  if (name == "f16") {
    out.type = RankedTensorType::get({n, k}, Float16Type::get(context));
    for (float v : w) {
      out.halves.push_back(io::floatToHalf(v));
      out.reference.push_back(io::halfToFloat(out.halves.back()));
    }
    return out;
  }
  // Grouped mode gives an expert's group widths as <scheme>:gb<w>-<w>-...
  std::string widths = groupBitsList;
  if (auto [base, suffix] = name.split(":gb"); !suffix.empty()) {
    name = base;
    widths = suffix.str();
    std::replace(widths.begin(), widths.end(), '-', ',');
  } else if (!expertSchemes.empty()) {
    widths.clear();
  }
  std::string error;
  SchemeAttr scheme = SchemeAttr::fromMangledName(context, name, error);
  if (!scheme)
    fail(error);
  mq::Scheme qs{scheme.getWeightBits(), scheme.getGroupSize(), scheme.getSymmetric(), {},
                scheme.isLevelTable()};
  SmallVector<int64_t> groupBits;
  if (!widths.empty())
    for (int64_t bits : parseList(widths)) {
      groupBits.push_back(bits);
      qs.groupBits.push_back(uint8_t(bits));
    }
  auto diag = [&]() { return emitError(UnknownLoc::get(context)); };
  auto type = PackedWeightType::getChecked(diag, context, ArrayRef<int64_t>{n, k}, scheme,
                                           ArrayRef<int64_t>(groupBits));
  if (!type)
    fail("invalid weight type for --scheme/--group-bits");
  out.type = type;
  out.actBits = scheme.getActBits();
  out.levelTable = scheme.isLevelTable();
  llvm::Expected<mq::QuantizedMatrix> q = mq::quantizeRTN(w, n, k, qs);
  if (!q)
    fail(llvm::toString(q.takeError()));
  out.words = mq::packCodes(*q);
  for (float s : scheme.isLevelTable() ? q->levels : q->scales)
    out.scales.push_back(io::floatToHalf(s));
  if (!scheme.getSymmetric() && !scheme.isLevelTable())
    for (float z : q->zeros)
      out.zeros.push_back(io::floatToHalf(z));
  for (float v : mq::dequantize(*q))
    out.reference.push_back(roundToHalf ? io::halfToFloat(io::floatToHalf(v)) : v);
  return out;
}

/// Builds the kernels of `module` as moeq-compile does (with the kernel
/// tiling first when `tile`). With `ptx`, a clone goes on to PTX exactly
/// as in moeq-compile (NVVM, gpu-module-to-binary{format=isa}).
void buildKernels(ModuleOp module, bool tile, PTXMap *ptx) {
  PassManager pm(module.getContext());
  if (tile) {
    TileExpertGemmsOptions tiling;
    tiling.tokens = tokens;
    tiling.gpuName = costGpu;
    pm.addPass(createTileExpertGemms(tiling));
  }
  LowerExpertGemmsToGPUOptions lowering;
  lowering.chip = arch;
  pm.addPass(createLowerExpertGemmsToGPU(lowering));
  if (failed(pm.run(module)))
    fail("building the kernel failed");
  if (ptx)
    *ptx = compileToPTX(module);
}

/// `count` f16 activations uniform in [-1, 1].
std::vector<uint16_t> randomHalves(std::mt19937 &rng, size_t count) {
  std::uniform_real_distribution<float> uniform(-1.f, 1.f);
  std::vector<uint16_t> values(count);
  for (uint16_t &v : values)
    v = io::floatToHalf(uniform(rng));
  return values;
}

double roundTripHalf(double v) { return io::halfToFloat(io::floatToHalf(float(v))); }

/// Y = X W^T in double for rows [begin, end) of the (dense, K-wide) `x`.
std::vector<double> referenceRows(ArrayRef<float> x, int64_t begin, int64_t end,
                                  const Weights &weights) {
  int64_t n = outputs, k = inputs;
  std::vector<double> ref((end - begin) * n);
  for (int64_t r = begin; r < end; ++r)
    for (int64_t c = 0; c < n; ++c) {
      double sum = 0;
      for (int64_t i = 0; i < k; ++i)
        sum += double(x[r * k + i]) * weights.reference[c * k + i];
      ref[(r - begin) * n + c] = sum;
    }
  return ref;
}

/// Compares rows [begin, end) of the kernel's f16 output with their
/// reference (`ref` holds exactly those rows); prints one line and
/// returns whether it matched: two f16 ulps at the largest output (the
/// kernel rounds its f32 sum once to f16, the reference is the exact sum
/// rounded to f16; the f32 summation order may tip a value over a
/// rounding boundary).
bool compareRows(StringRef label, ArrayRef<double> ref, ArrayRef<uint16_t> y, int64_t begin,
                 int64_t end, StringRef suffix = "") {
  int64_t n = outputs;
  double maxErr = 0, maxRef = 0;
  static unsigned shown = 0;
  for (int64_t r = begin; r < end; ++r)
    for (int64_t c = 0; c < n; ++c) {
      double expected = ref[(r - begin) * n + c];
      double got = io::halfToFloat(y[r * n + c]);
      if (shown < showMismatches && got != roundTripHalf(expected)) {
        ++shown;
        llvm::outs() << llvm::formatv("  y[{0}][{1}] = {2}, reference {3}\n", r, c, got,
                                      expected);
      }
      maxRef = std::max(maxRef, std::abs(expected));
      maxErr = std::max(maxErr, std::isfinite(got) ? std::abs(got - roundTripHalf(expected))
                                                   : INFINITY);
    }
  double tolerance = toleranceUlps * std::ldexp(1.0, std::ilogb(std::max(1.0, maxRef)) - 10);
  bool ok = maxErr <= tolerance && suffix.empty();
  llvm::outs() << llvm::formatv("{0} rows {1}: max |error| {2:e2} (tolerance {3:e2}, max "
                                "|reference| {4:F2}){5}: {6}\n",
                                label, end - begin, maxErr, tolerance, maxRef, suffix,
                                ok ? "OK" : "MISMATCH");
  return ok;
}

/// How the GPU's output of a kernel must match the emulator's: integer
/// MMAs sum exactly and scale in the same f32 order, so bit for bit;
/// f16 MMAs accumulate in an order the emulator does not model.
kcase::Compare outputCompare(const Weights &weights, TileConfigAttr tile) {
  return weights.actBits < 16 && tile.isTensorCore() ? kcase::Compare::Bitwise
                                                     : kcase::Compare::Ulp;
}

/// The tensors of a weight, in ABI order: (name suffix, dtype, shape, data).
struct WeightTensor {
  std::string suffix;
  io::DType dtype;
  SmallVector<int64_t> shape;
  const void *data;
};
std::vector<WeightTensor> weightTensors(const Weights &w) {
  int64_t n = outputs;
  if (w.words.empty())
    return {{"weight", io::DType::F16, {n, inputs}, w.halves.data()}};
  std::vector<WeightTensor> tensors{
      {"qweight", io::DType::I32, {n, int64_t(w.words.size()) / n}, w.words.data()},
      {w.levelTable ? "levels" : "scales", io::DType::F16,
       {n, int64_t(w.scales.size()) / n}, w.scales.data()}};
  if (!w.zeros.empty())
    tensors.push_back({"zeros", io::DType::F16, {n, int64_t(w.zeros.size()) / n}, w.zeros.data()});
  return tensors;
}

/// The weight's tensors in the case (once) and as buffers of `run`; the
/// launch arguments that pass them.
std::vector<kcase::Arg> weightBuffers(kcase::Case &record, kcase::Run &run, const Weights &w,
                                      StringRef prefix, bool addTensors) {
  std::vector<kcase::Arg> args;
  for (const WeightTensor &t : weightTensors(w)) {
    std::string name = (prefix + t.suffix).str();
    if (addTensors)
      record.addTensor(name, t.dtype, t.shape, t.data);
    run.sharedInput(name, name, t.data);
    args.push_back(kcase::Arg::of(name));
  }
  return args;
}

std::string tileName(TileConfigAttr tile) {
  if (!tile.isTensorCore())
    return "simt";
  std::string name = llvm::formatv("{5}{0}x{1}x{2}w{3}s{4}", tile.getBm(), tile.getBn(),
                                   tile.getBk(), tile.getWarps(), tile.getStages(),
                                   tile.isWarpGroupMma() ? "wgmma" : "mma");
  if (tile.getSplitK() > 1)
    name += "k" + std::to_string(tile.getSplitK());
  return name;
}

/// Single-kernel mode: the kernel of --scheme and --tile for each M of
/// --rows (with the activation quantization before it, the split-K
/// reduction after it).
int runSingle(MLIRContext *context, std::mt19937 &rng) {
  // The type decides the tile; the tile decides whether the kernel rounds
  // dequantised weights to f16 (tensor cores) or keeps f32 (SIMT).
  Weights probeWeights = makeWeights(context, rng, false, schemeName);
  TileConfigAttr tile = parseTile(context, probeWeights.type);
  rng.seed(seed);
  Weights weights = makeWeights(context, rng, tile.isTensorCore(), schemeName);
  bool quantizedActivations = weights.actBits < 16;
  bool saving = !saveCase.empty();

  OwningOpRef<ModuleOp> module =
      buildSingleGemmModule(context, weights.type, tile, arch, inputColumns);
  if (!module)
    fail("cannot build the kernel module");
  PTXMap ptx;
  buildKernels(*module, /*tile=*/false, saving ? &ptx : nullptr);
  lowerForEmulation(*module);
  std::string gemmName = getGemmKernelName(weights.type, tile, inputColumns);
  std::unique_ptr<ExecutionEngine> engine = jitKernels(*module);
  emu::PackedKernel gemm = lookupKernel(*engine, gemmName);
  emu::PackedKernel quantKernel = nullptr;
  std::string quantName;
  if (quantizedActivations && tile.isTensorCore()) {
    quantName = getActivationQuantKernelName(cast<PackedWeightType>(weights.type));
    quantKernel = lookupKernel(*engine, quantName);
  }

  int64_t n = outputs, k = inputs;
  // Activation rows: K values, or --x-cols with the kernel reading K.
  int64_t stride = std::max<int64_t>(inputColumns, k);
  if (stride > k && quantizedActivations)
    fail("--x-cols needs a weight-only scheme");
  int64_t splitK = tile.isTensorCore() ? tile.getSplitK() : 1;
  kcase::Case record("gemm",
                     llvm::formatv("{0} n={1} k={2}{3} {4} {5}", schemeName, n, k,
                                   stride > k ? " x-cols=" + std::to_string(stride) : "",
                                   tileName(tile), arch.getValue()),
                     arch);
  for (auto &[name, text] : ptx)
    record.setKernelPTX(name, text);
  record.set("scheme", schemeName.getValue());
  record.set("n", n);
  record.set("k", k);
  record.set("tile", tileName(tile));
  kcase::Compare compare = outputCompare(weights, tile);
  bool failed = false, firstRun = true;
  for (int64_t m : parseList(rowList)) {
    kcase::Run &run = record.addRun("m" + std::to_string(m));
    std::vector<uint16_t> x = randomHalves(rng, m * stride);
    run.input("x", io::DType::F16, {m, stride}, x.data());
    // One canary row past M: the kernel must not write it.
    const uint16_t canary = 0x7e00;
    std::vector<uint16_t> y((m + 1) * n, canary);
    run.output("y", io::DType::F16, {m + 1, n}, y.data(), m, compare, kcase::Poison::F16NaN);
    std::vector<kcase::Arg> weightArgs = weightBuffers(record, run, weights, "w.", firstRun);
    firstRun = false;
    int64_t xqBytes = k * weights.actBits / 8;
    std::vector<int8_t> xq(m * xqBytes);
    std::vector<float> xScale(m);
    std::vector<kcase::Arg> args;
    if (quantKernel) {
      run.output("xq", io::DType::I8, {m, xqBytes}, xq.data(), m, kcase::Compare::Bitwise,
                 kcase::Poison::Ones);
      run.output("x_scale", io::DType::F32, {m}, xScale.data(), m, kcase::Compare::Bitwise,
                 kcase::Poison::F32NaN);
      emu::LaunchConfig config{{uint32_t(m), 1, 1}, {32, 1, 1}, 0};
      check(run.launch(quantName, quantKernel, config,
                       {kcase::Arg::of("xq"), kcase::Arg::of("x_scale"), kcase::Arg::of("x"),
                        kcase::Arg::i32(int32_t(m))}));
      args = {kcase::Arg::of("xq"), kcase::Arg::of("x_scale")};
    } else {
      args = {kcase::Arg::of("x")};
    }
    llvm::append_range(args, weightArgs);
    // Split-K: the GEMM writes f32 slices to a workspace, then the reduce
    // kernel writes Y.
    std::vector<float> workspace(splitK > 1 ? splitK * m * n : 0, NAN);
    if (splitK > 1) {
      run.output("workspace", io::DType::F32, {splitK * m, n}, workspace.data(), splitK * m,
                 kcase::Compare::Written, kcase::Poison::F32NaN);
      args.push_back(kcase::Arg::of("workspace"));
    } else {
      args.push_back(kcase::Arg::of("y"));
    }
    args.push_back(kcase::Arg::i32(int32_t(m)));
    emu::LaunchConfig config;
    if (tile.isTensorCore()) {
      config.grid = {uint32_t((n + tile.getBn() - 1) / tile.getBn()),
                     uint32_t((m + tile.getBm() - 1) / tile.getBm()), uint32_t(splitK)};
      config.block = {uint32_t(tile.getThreadsPerBlock()), 1, 1};
      config.sharedBytes = uint64_t(getKernelSharedBytes(weights.type, tile));
    } else {
      config.grid = {uint32_t((n + cost::kSimtBlock - 1) / cost::kSimtBlock), uint32_t(m), 1};
      config.block = {uint32_t(cost::kSimtBlock), 1, 1};
    }
    check(run.launch(gemmName, gemm, config, args));
    if (splitK > 1) {
      std::string reduceName = getSplitKReduceKernelName(n, splitK);
      emu::LaunchConfig reduceConfig{
          {uint32_t((n + cost::kSimtBlock - 1) / cost::kSimtBlock), uint32_t(m), 1},
          {uint32_t(cost::kSimtBlock), 1, 1}, 0};
      check(run.launch(reduceName, lookupKernel(*engine, reduceName), reduceConfig,
                       {kcase::Arg::of("workspace"), kcase::Arg::of("y"),
                        kcase::Arg::i32(int32_t(m))}));
    }
    run.finish();

    // Reference: the same quantized operands, multiplied in double.
    std::vector<float> xf(m * k);
    for (int64_t r = 0; r < m; ++r)
      for (int64_t i = 0; i < k; ++i)
        xf[r * k + i] = io::halfToFloat(x[r * stride + i]);
    if (quantizedActivations)
      mq::fakeQuantizeActivations(xf, k, weights.actBits);
    std::vector<double> ref = referenceRows(xf, 0, m, weights);
    bool canaryIntact = llvm::all_of(ArrayRef<uint16_t>(y).drop_front(m * n),
                                     [&](uint16_t v) { return v == canary; });
    failed |= !compareRows("kernel " + gemmName, ref, y, 0, m,
                           canaryIntact ? "" : ", wrote past row M");
    run.reference("y", std::move(ref), {m, n});
  }
  if (saving)
    check(record.write(saveCase));
  return failed ? 1 : 0;
}

/// The expert rows of --expert-rows: one split, or several separated by
/// ';' (timing cases), each optionally named (`skewed:9,3,...`).
std::vector<std::vector<int64_t>> parseSplits(size_t experts,
                                              std::vector<std::string> *labels = nullptr) {
  std::vector<std::vector<int64_t>> splits;
  for (StringRef split : llvm::split(StringRef(expertRows), ';')) {
    if (auto [label, rest] = split.split(':'); !rest.empty()) {
      if (labels)
        labels->push_back(label.trim().str());
      split = rest;
    } else if (labels) {
      labels->push_back("split" + std::to_string(splits.size()));
    }
    std::vector<int64_t> rowsOf;
    for (StringRef part : llvm::split(split, ',')) {
      int64_t v;
      if (part.trim().getAsInteger(10, v) || v < 0)
        fail("--expert-rows must list non-negative integers");
      rowsOf.push_back(v);
    }
    if (rowsOf.size() != experts)
      fail("--expert-rows needs one count per --experts scheme");
    splits.push_back(std::move(rowsOf));
  }
  return splits;
}

/// The grouped matmul over `weights` behind a dispatch with --top-k, so
/// that the tiling assumes --tokens * top_k / experts rows per expert.
OwningOpRef<ModuleOp> buildGroupedModule(MLIRContext *context, ArrayRef<Type> types) {
  int64_t experts = types.size(), n = outputs, k = inputs;
  std::string typeList, params, operands;
  for (auto [e, type] : llvm::enumerate(types)) {
    std::string typeText;
    llvm::raw_string_ostream(typeText) << type;
    typeList += (e ? ", " : "") + typeText;
    params += llvm::formatv("    %w{0} = moeq.param <\"quant\", \"w{0}\"> : {1}\n", e, typeText);
    operands += llvm::formatv("{0}%w{1}", e ? ", " : "", e);
  }
  std::string source = llvm::formatv(
      R"mlir(module attributes {{moeq.target = #moeq.target<"{0}">} {{
  func.func @layer(%x: tensor<?x{1}xf32>, %idx: tensor<?x{8}xi32>) -> tensor<?x{2}xf32> {{
    %sorted, %pos, %off = moeq.dispatch %x, %idx {{num_experts = {3} : i64}
        : tensor<?x{1}xf32>, tensor<?x{8}xi32> -> tensor<?x{1}xf32>, tensor<?xi32>, tensor<{4}xi32>
{5}    %y = moeq.grouped_matmul %sorted, %off weights({6} : {7})
        : tensor<?x{1}xf32>, tensor<{4}xi32> -> tensor<?x{2}xf32>
    return %y : tensor<?x{2}xf32>
  }
})mlir",
      arch.getValue(), k, n, experts, experts + 1, params, operands, typeList,
      topK.getValue());
  OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(source, context);
  if (!module)
    fail("cannot build the grouped module");
  return module;
}

/// The kernels the lowering chose for the grouped matmul: one persistent
/// kernel (`persistent`), or one kernel per expert.
struct GroupedKernels {
  bool persistent = false;
  SmallVector<std::string> kernels;
  SmallVector<Type> types;
  SmallVector<TileConfigAttr> tiles;
};
GroupedKernels findGroupedKernels(ModuleOp module) {
  GroupedKernels found;
  module->walk([&](GroupedMatmulOp op) {
    // (Not `for (x : *op.getKernels())`: the optional would die first.)
    std::optional<ArrayAttr> kernels = op.getKernels(), tiles = op.getTiles();
    if (!kernels || !tiles)
      return;
    found.persistent = op->hasAttr(kPersistentAttrName);
    for (Attribute kernel : *kernels)
      found.kernels.push_back(cast<SymbolRefAttr>(kernel).getRootReference().str());
    found.types = llvm::to_vector(op.getWeights().getTypes());
    for (Attribute tile : *tiles)
      found.tiles.push_back(cast<TileConfigAttr>(tile));
  });
  return found;
}

/// Grouped mode: one expert per scheme of --experts, --expert-rows tokens
/// each, all in the persistent kernel moeq-tile-expert-gemms and kernel
/// lowering build for them; every expert's rows are checked.
int runGrouped(MLIRContext *context, std::mt19937 &rng) {
  SmallVector<StringRef> names;
  StringRef(expertSchemes).split(names, ',');
  std::vector<std::vector<int64_t>> splits = parseSplits(names.size());
  if (splits.size() != 1)
    fail("grouped mode checks one --expert-rows split");
  std::vector<int64_t> rowsOf = splits.front();
  int64_t experts = names.size(), n = outputs, k = inputs;
  std::vector<Weights> weights;
  for (StringRef name : names)
    weights.push_back(makeWeights(context, rng, /*roundToHalf=*/true, name));
  SmallVector<Type> types = llvm::map_to_vector(weights, [](const Weights &w) { return w.type; });
  OwningOpRef<ModuleOp> module = buildGroupedModule(context, types);
  bool saving = !saveCase.empty();
  PTXMap ptx;
  buildKernels(*module, /*tile=*/true, saving ? &ptx : nullptr);
  GroupedKernels found = findGroupedKernels(*module);
  if (!found.persistent)
    fail("the experts did not fuse into one persistent kernel");
  std::string kernelName = found.kernels.front();
  lowerForEmulation(*module);
  std::unique_ptr<ExecutionEngine> engine = jitKernels(*module);
  emu::PackedKernel kernel = lookupKernel(*engine, kernelName);

  kcase::Case record("grouped",
                     llvm::formatv("experts {0} rows {1} n={2} k={3} tokens={4} {5}",
                                   expertSchemes.getValue(), expertRows.getValue(), n, k,
                                   tokens.getValue(), arch.getValue()),
                     arch);
  for (auto &[name, text] : ptx)
    record.setKernelPTX(name, text);
  record.set("n", n);
  record.set("k", k);
  llvm::json::Array tileNames;
  for (TileConfigAttr tile : found.tiles)
    tileNames.push_back(tileName(tile));
  record.set("tiles", std::move(tileNames));
  kcase::Run &run = record.addRun("grouped");

  // Sorted rows: expert e owns [offsets[e], offsets[e+1]).
  std::vector<int32_t> offsets{0};
  for (int64_t r : rowsOf)
    offsets.push_back(offsets.back() + int32_t(r));
  int32_t total = offsets.back();
  int64_t xRows = std::max(total, 1);
  std::vector<uint16_t> x = randomHalves(rng, xRows * k);
  std::vector<uint16_t> y((total + 1) * n, 0x7e00);
  std::vector<float> xf(x.size());
  for (size_t i = 0; i < x.size(); ++i)
    xf[i] = io::halfToFloat(x[i]);
  run.input("x", io::DType::F16, {xRows, k}, x.data());
  run.input("offsets", io::DType::I32, {experts + 1}, offsets.data());
  kcase::Compare compare = outputCompare(weights.front(), found.tiles.front());
  run.output("y", io::DType::F16, {total + 1, n}, y.data(), total, compare,
             kcase::Poison::F16NaN);
  unsigned actBits = weights.front().actBits;
  int64_t xqBytes = k * actBits / 8;
  std::vector<int8_t> xq(xRows * xqBytes);
  std::vector<float> xScale(xRows);
  std::vector<kcase::Arg> args;
  if (actBits < 16) {
    // The activation-quantization kernel first, as the manifest launches it.
    std::string quantName = getActivationQuantKernelName(cast<PackedWeightType>(types[0]));
    run.output("xq", io::DType::I8, {xRows, xqBytes}, xq.data(), xRows,
               kcase::Compare::Bitwise, kcase::Poison::Ones);
    run.output("x_scale", io::DType::F32, {xRows}, xScale.data(), xRows,
               kcase::Compare::Bitwise, kcase::Poison::F32NaN);
    emu::LaunchConfig config{{uint32_t(xRows), 1, 1}, {32, 1, 1}, 0};
    check(run.launch(quantName, lookupKernel(*engine, quantName), config,
                     {kcase::Arg::of("xq"), kcase::Arg::of("x_scale"), kcase::Arg::of("x"),
                      kcase::Arg::i32(int32_t(xRows))}));
    mq::fakeQuantizeActivations(xf, k, actBits);
    args = {kcase::Arg::of("xq"), kcase::Arg::of("x_scale"), kcase::Arg::of("offsets")};
  } else {
    args = {kcase::Arg::of("x"), kcase::Arg::of("offsets")};
  }
  // The experts' weights through the table of their addresses.
  std::vector<std::vector<std::string>> table;
  for (auto [e, w] : llvm::enumerate(weights)) {
    std::vector<std::string> &row = table.emplace_back();
    for (const kcase::Arg &arg : weightBuffers(record, run, w, "e" + std::to_string(e) + ".",
                                               /*addTensors=*/true))
      row.push_back(arg.buffer);
  }
  args.push_back(kcase::Arg::addressTable(std::move(table), kWeightTableColumns));
  args.push_back(kcase::Arg::of("y"));
  args.push_back(kcase::Arg::i32(total));
  emu::LaunchConfig config;
  config.grid = {persistentCtas, 1, 1};
  config.block = {uint32_t(found.tiles.front().getThreadsPerBlock()), 1, 1};
  config.sharedBytes = uint64_t(getGroupedKernelSharedBytes(found.types, found.tiles));
  check(run.launch(kernelName, kernel, config, args));
  run.finish();
  bool ok = true;
  std::vector<double> ref;
  for (int64_t e = 0; e < experts; ++e) {
    std::vector<double> rows = referenceRows(xf, offsets[e], offsets[e + 1], weights[e]);
    ok &= compareRows(llvm::formatv("kernel {0} expert {1} ({2}, {3})", kernelName, e,
                                    names[e], tileName(found.tiles[e]))
                          .str(),
                      rows, y, offsets[e], offsets[e + 1]);
    llvm::append_range(ref, rows);
  }
  run.reference("y", std::move(ref), {total, n});
  bool canaryIntact = llvm::all_of(ArrayRef<uint16_t>(y).drop_front(int64_t(total) * n),
                                   [](uint16_t v) { return v == 0x7e00; });
  if (!canaryIntact)
    llvm::outs() << "kernel " << kernelName << " wrote past the last row: MISMATCH\n";
  if (saving)
    check(record.write(saveCase));
  return ok && canaryIntact ? 0 : 1;
}

/// Timing mode (--timing-case DIR): the kernels of a grouped matmul over
/// --experts at --tokens (tiles from the cost model of --gpu), compiled to
/// PTX, with the launches of each --expert-rows split, the buffers they
/// need (sizes and how to fill them, no data) and the cost model's time:
/// bench/gpu/time_gemms.py generates the data on the GPU and times them.
int runTiming(MLIRContext *context) {
  SmallVector<StringRef> names;
  StringRef(expertSchemes).split(names, ',');
  std::vector<std::string> labels;
  std::vector<std::vector<int64_t>> splits = parseSplits(names.size(), &labels);
  int64_t experts = names.size(), n = outputs, k = inputs;
  SmallVector<Type> types;
  for (StringRef name : names) {
    if (name == "f16") {
      types.push_back(RankedTensorType::get({n, k}, Float16Type::get(context)));
      continue;
    }
    std::string error;
    SchemeAttr scheme = SchemeAttr::fromMangledName(context, name, error);
    if (!scheme)
      fail(error);
    types.push_back(PackedWeightType::get(context, {n, k}, scheme));
  }
  OwningOpRef<ModuleOp> module = buildGroupedModule(context, types);
  PTXMap ptx;
  buildKernels(*module, /*tile=*/true, &ptx);
  GroupedKernels found = findGroupedKernels(*module);
  if (found.kernels.empty())
    fail("no kernels for the grouped matmul");
  const cost::GpuSpec *gpu =
      costGpu.empty() ? cost::defaultGpuForChip(arch) : cost::lookupGpu(costGpu);
  if (!gpu)
    fail("unknown cost-model GPU");

  llvm::json::Object root{{"format", "moeq-timing-case/1"},
                          {"arch", arch.getValue()},
                          {"gpu", gpu->name.str()},
                          {"n", n},
                          {"k", k},
                          {"tokens", tokens.getValue()},
                          {"top_k", int64_t(topK)},
                          {"experts", experts},
                          {"schemes", expertSchemes.getValue()},
                          {"persistent", found.persistent}};
  llvm::json::Array tileNames;
  for (TileConfigAttr tile : found.tiles)
    tileNames.push_back(tileName(tile));
  root["tiles"] = std::move(tileNames);
  llvm::json::Object kernelFiles;
  for (auto &[name, text] : ptx) {
    std::string file = name + ".ptx";
    kernelFiles[name] = file;
    std::error_code ec;
    if (std::error_code dirError = llvm::sys::fs::create_directories(timingCase))
      fail("cannot create " + timingCase + ": " + dirError.message());
    llvm::raw_fd_ostream os((timingCase + "/" + file), ec);
    if (ec)
      fail("cannot write " + file);
    os << text;
  }
  root["kernels"] = std::move(kernelFiles);

  // The weights of every expert: (name, dtype, shape, fill) in ABI order.
  auto buffer = [](StringRef name, StringRef dtype, ArrayRef<int64_t> shape, StringRef fill,
                   StringRef role) {
    llvm::json::Array dims;
    for (int64_t d : shape)
      dims.push_back(d);
    // (json::Value keeps a StringRef without copying: copy.)
    return llvm::json::Object{{"name", name.str()}, {"dtype", dtype.str()},
                              {"shape", std::move(dims)}, {"fill", fill.str()},
                              {"role", role.str()}};
  };
  llvm::json::Array weightBuffers;
  SmallVector<SmallVector<std::string>> weightArgs(experts);
  for (auto [e, type] : llvm::enumerate(types)) {
    std::string prefix = "e" + std::to_string(e) + ".";
    auto packed = dyn_cast<PackedWeightType>(type);
    if (!packed) {
      weightBuffers.push_back(buffer(prefix + "weight", "f16", {n, k}, "normal", "weight"));
      weightArgs[e].push_back(prefix + "weight");
      continue;
    }
    SchemeAttr scheme = packed.getScheme();
    for (StringRef suffix : scheme.getStorageSuffixes()) {
      int64_t cols = packed.getStorageRowLength(suffix);
      std::string name = prefix + suffix.drop_front().str();
      StringRef fill = suffix == ".qweight" ? "codes"
                       : suffix == ".scales" ? "scales"
                       : suffix == ".zeros"  ? "zeros"
                                             : "levels";
      weightBuffers.push_back(buffer(name, suffix == ".qweight" ? "i32" : "f16", {n, cols}, fill,
                                     "weight"));
      weightArgs[e].push_back(name);
    }
  }
  root["weights"] = std::move(weightBuffers);
  unsigned actBits = 16;
  if (auto packed = dyn_cast<PackedWeightType>(types.front()))
    actBits = packed.getScheme().getActBits();
  root["weight_bits"] = int64_t(getWeightFormat(types.front()).weightBits);

  llvm::json::Array runs;
  for (auto [rowsOf, label] : llvm::zip_equal(splits, labels)) {
    std::vector<int64_t> offsets{0};
    for (int64_t r : rowsOf)
      offsets.push_back(offsets.back() + r);
    int64_t total = offsets.back(), xRows = std::max<int64_t>(total, 1);
    int64_t xqBytes = k * actBits / 8;
    llvm::json::Array buffers;
    buffers.push_back(buffer("x", "f16", {xRows, k}, "normal", "activation"));
    llvm::json::Array offsetValues;
    for (int64_t o : offsets)
      offsetValues.push_back(o);
    llvm::json::Object offsetBuffer = buffer("offsets", "i32", {experts + 1}, "values", "input");
    offsetBuffer["values"] = std::move(offsetValues);
    buffers.push_back(std::move(offsetBuffer));
    buffers.push_back(buffer("y", "f16", {xRows, n}, "none", "output"));
    llvm::json::Array launches;
    auto arg = [](StringRef name, int64_t offsetBytes = 0) {
      llvm::json::Object o{{"buffer", name.str()}};
      if (offsetBytes)
        o["offset"] = offsetBytes;
      return o;
    };
    auto launch = [&](StringRef kernel, std::array<int64_t, 3> grid, int64_t block,
                      int64_t shared, llvm::json::Array args) {
      launches.push_back(llvm::json::Object{
          {"kernel", kernel.str()},
          {"grid", llvm::json::Array{grid[0], grid[1], grid[2]}},
          {"block", llvm::json::Array{block, 1, 1}},
          {"shared_bytes", shared},
          {"args", std::move(args)}});
    };
    if (actBits < 16) {
      buffers.push_back(buffer("xq", "i8", {xRows, xqBytes}, "none", "scratch"));
      buffers.push_back(buffer("x_scale", "f32", {xRows}, "none", "scratch"));
      launch(getActivationQuantKernelName(cast<PackedWeightType>(types.front())), {xRows, 1, 1},
             32, 0,
             llvm::json::Array{arg("xq"), arg("x_scale"), arg("x"),
                               llvm::json::Object{{"i32", xRows}}});
    }
    // The cost model's time of each expert's GEMM with its rows and tile,
    // summed as the tiling sums them (a persistent kernel overlaps the
    // experts' tiles, which the model does not price; the largest expert's
    // time bounds that from below).
    double predicted = 0, bytes = 0, largest = 0;
    for (int64_t e = 0; e < experts; ++e) {
      if (!rowsOf[e])
        continue;
      cost::WeightFormat format = getWeightFormat(types[e]);
      cost::GemmCost c = found.tiles[e].isTensorCore()
                             ? cost::estimateGemm(*gpu, rowsOf[e], n, k, format,
                                                  toCostTile(found.tiles[e]))
                             : cost::estimateSimtGemm(*gpu, rowsOf[e], n, k, format);
      predicted += c.seconds;
      largest = std::max(largest, c.seconds);
      bytes += c.bytes;
    }
    if (found.persistent) {
      llvm::json::Array args;
      if (actBits < 16) {
        args.push_back(arg("xq"));
        args.push_back(arg("x_scale"));
      } else {
        args.push_back(arg("x"));
      }
      args.push_back(arg("offsets"));
      llvm::json::Array table;
      for (auto &names : weightArgs)
        table.push_back(llvm::json::Array(names));
      args.push_back(llvm::json::Object{{"address_table", std::move(table)},
                                        {"columns", kWeightTableColumns}});
      args.push_back(arg("y"));
      args.push_back(llvm::json::Object{{"i32", total}});
      // One CTA per SM, as the manifest suggests.
      launch(found.kernels.front(), {gpu->sms, 1, 1}, found.tiles.front().getThreadsPerBlock(),
             getGroupedKernelSharedBytes(found.types, found.tiles), std::move(args));
    } else {
      // One launch per expert with rows, on its rows of X and Y.
      for (int64_t e = 0; e < experts; ++e) {
        int64_t m = rowsOf[e];
        if (!m)
          continue;
        TileConfigAttr tile = found.tiles[e];
        llvm::json::Array args;
        if (actBits < 16 && tile.isTensorCore()) {
          args.push_back(arg("xq", offsets[e] * xqBytes));
          args.push_back(arg("x_scale", offsets[e] * 4));
        } else {
          args.push_back(arg("x", offsets[e] * k * 2));
        }
        for (std::string &name : weightArgs[e])
          args.push_back(arg(name));
        int64_t splitK = tile.isTensorCore() ? tile.getSplitK() : 1;
        std::string workspace = "workspace" + std::to_string(e);
        if (splitK > 1) {
          buffers.push_back(buffer(workspace, "f32", {splitK * m, n}, "none", "scratch"));
          args.push_back(arg(workspace));
        } else {
          args.push_back(arg("y", offsets[e] * n * 2));
        }
        args.push_back(llvm::json::Object{{"i32", m}});
        if (tile.isTensorCore())
          launch(found.kernels[e], {(n + tile.getBn() - 1) / tile.getBn(),
                                    (m + tile.getBm() - 1) / tile.getBm(), splitK},
                 tile.getThreadsPerBlock(), getKernelSharedBytes(types[e], tile),
                 std::move(args));
        else
          launch(found.kernels[e], {(n + cost::kSimtBlock - 1) / cost::kSimtBlock, m, 1},
                 cost::kSimtBlock, 0, std::move(args));
        if (splitK > 1)
          launch(getSplitKReduceKernelName(n, splitK),
                 {(n + cost::kSimtBlock - 1) / cost::kSimtBlock, m, 1}, cost::kSimtBlock, 0,
                 llvm::json::Array{arg(workspace), arg("y", offsets[e] * n * 2),
                                   llvm::json::Object{{"i32", m}}});
      }
    }
    llvm::json::Array rowsJson;
    for (int64_t r : rowsOf)
      rowsJson.push_back(r);
    runs.push_back(llvm::json::Object{{"split", label},
                                      {"expert_rows", std::move(rowsJson)},
                                      {"rows", total},
                                      {"buffers", std::move(buffers)},
                                      {"launches", std::move(launches)},
                                      {"predicted_us", predicted * 1e6},
                                      {"predicted_largest_expert_us", largest * 1e6},
                                      {"cost_model_bytes", bytes}});
  }
  root["runs"] = std::move(runs);
  std::error_code ec;
  llvm::raw_fd_ostream os(timingCase + "/case.json", ec);
  if (ec)
    fail("cannot write case.json");
  os << llvm::formatv("{0:2}", llvm::json::Value(std::move(root))) << "\n";
  llvm::outs() << "timing case " << timingCase << ": " << found.kernels.front()
               << (found.persistent ? " (persistent)" : "") << ", " << splits.size()
               << " splits\n";
  return 0;
}

/// The SIMT kernel of --scheme as OpenCL SPIR-V, then LLVM SPIR bitcode
/// (llvm-spirv -r), the form PoCL builds with `-x spir`.
std::string buildSpirBitcode(MLIRContext *context, Type weightType, TileConfigAttr tile,
                             std::string &kernelName) {
  OwningOpRef<ModuleOp> module = buildSingleGemmModule(context, weightType, tile, arch);
  if (!module)
    fail("cannot build the kernel module");
  PassManager pm(context);
  LowerExpertGemmsToGPUOptions lowering;
  lowering.chip = arch;
  lowering.spirv = true;
  pm.addPass(createLowerExpertGemmsToGPU(lowering));
  pm.addNestedPass<gpu::GPUModuleOp>(createLowerDequantization());
  if (failed(parsePassPipeline("convert-gpu-to-spirv{use-64bit-index=true},"
                               "gpu.module(spirv.module(spirv-lower-abi-attrs,spirv-update-vce))",
                               pm)) ||
      failed(pm.run(*module)))
    fail("lowering the kernel to SPIR-V failed");
  kernelName = getGemmKernelName(weightType, tile);
  spirv::ModuleOp spirvModule;
  module->walk([&](spirv::ModuleOp op) { spirvModule = op; });
  SmallVector<uint32_t> binary;
  if (!spirvModule || failed(spirv::serialize(spirvModule, binary)))
    fail("serializing the SPIR-V module failed");
  SmallString<128> spv, bc;
  if (llvm::sys::fs::createTemporaryFile("moeq-kernel", "spv", spv) ||
      llvm::sys::fs::createTemporaryFile("moeq-kernel", "bc", bc))
    fail("cannot create temporary files");
  {
    std::error_code ec;
    llvm::raw_fd_ostream os(spv, ec);
    os.write(reinterpret_cast<const char *>(binary.data()), binary.size() * 4);
  }
  auto translator = llvm::sys::findProgramByName("llvm-spirv-15");
  if (!translator)
    translator = llvm::sys::findProgramByName("llvm-spirv");
  if (!translator)
    fail("llvm-spirv(-15) not found (Debian: llvm-spirv-15)");
  StringRef args[] = {*translator, "-r", spv, "-o", bc};
  std::string message;
  int status = llvm::sys::ExecuteAndWait(*translator, args, std::nullopt, {}, 0, 0, &message);
  auto bitcode = llvm::MemoryBuffer::getFile(bc);
  llvm::sys::fs::remove(spv);
  llvm::sys::fs::remove(bc);
  if (status != 0 || !bitcode)
    fail("llvm-spirv -r failed: " + message);
  return (*bitcode)->getBuffer().str();
}

#ifdef MOEQ_HAVE_OPENCL
/// Runs the SIMT kernel on the first OpenCL device (PoCL) for M rows.
void runOnOpenCL(const std::string &bitcode, StringRef kernelName, const Weights &weights,
                 ArrayRef<uint16_t> x, MutableArrayRef<uint16_t> y, int32_t rows) {
  auto check = [](cl_int err, const char *what) {
    if (err != CL_SUCCESS)
      fail(llvm::formatv("OpenCL {0} failed ({1})", what, err));
  };
  cl_platform_id platform;
  cl_device_id device;
  check(clGetPlatformIDs(1, &platform, nullptr), "clGetPlatformIDs");
  check(clGetDeviceIDs(platform, CL_DEVICE_TYPE_ALL, 1, &device, nullptr), "clGetDeviceIDs");
  cl_int err;
  cl_context context = clCreateContext(nullptr, 1, &device, nullptr, nullptr, &err);
  check(err, "clCreateContext");
  cl_command_queue queue = clCreateCommandQueue(context, device, 0, &err);
  check(err, "clCreateCommandQueue");
  size_t size = bitcode.size();
  const unsigned char *data = reinterpret_cast<const unsigned char *>(bitcode.data());
  cl_int status;
  cl_program program = clCreateProgramWithBinary(context, 1, &device, &size, &data, &status, &err);
  check(err, "clCreateProgramWithBinary");
  if (clBuildProgram(program, 1, &device, "-x spir -spir-std=1.2", nullptr, nullptr) !=
      CL_SUCCESS) {
    char log[16384] = {0};
    clGetProgramBuildInfo(program, device, CL_PROGRAM_BUILD_LOG, sizeof log, log, nullptr);
    fail(llvm::Twine("clBuildProgram failed: ") + log);
  }
  cl_kernel kernel = clCreateKernel(program, kernelName.str().c_str(), &err);
  check(err, "clCreateKernel");
  std::vector<cl_mem> buffers;
  auto buffer = [&](const void *host, size_t bytes, cl_mem_flags flags) {
    cl_mem mem = clCreateBuffer(context, flags | (host ? CL_MEM_COPY_HOST_PTR : 0),
                                std::max<size_t>(bytes, 4), const_cast<void *>(host), &err);
    check(err, "clCreateBuffer");
    buffers.push_back(mem);
    return mem;
  };
  std::vector<cl_mem> args{buffer(x.data(), x.size() * 2, CL_MEM_READ_ONLY)};
  if (!weights.words.empty()) {
    args.push_back(buffer(weights.words.data(), weights.words.size() * 4, CL_MEM_READ_ONLY));
    args.push_back(buffer(weights.scales.data(), weights.scales.size() * 2, CL_MEM_READ_ONLY));
    if (!weights.zeros.empty())
      args.push_back(buffer(weights.zeros.data(), weights.zeros.size() * 2, CL_MEM_READ_ONLY));
  } else {
    args.push_back(buffer(weights.halves.data(), weights.halves.size() * 2, CL_MEM_READ_ONLY));
  }
  cl_mem out = buffer(y.data(), y.size() * 2, CL_MEM_READ_WRITE);
  args.push_back(out);
  for (auto [i, mem] : llvm::enumerate(args))
    check(clSetKernelArg(kernel, i, sizeof(cl_mem), &mem), "clSetKernelArg");
  check(clSetKernelArg(kernel, args.size(), sizeof rows, &rows), "clSetKernelArg");
  size_t local[2] = {size_t(cost::kSimtBlock), 1};
  size_t global[2] = {size_t((outputs + cost::kSimtBlock - 1) / cost::kSimtBlock) *
                          cost::kSimtBlock,
                      size_t(rows)};
  check(clEnqueueNDRangeKernel(queue, kernel, 2, nullptr, global, local, 0, nullptr, nullptr),
        "clEnqueueNDRangeKernel");
  check(clEnqueueReadBuffer(queue, out, CL_TRUE, 0, y.size() * 2, y.data(), 0, nullptr, nullptr),
        "clEnqueueReadBuffer");
  for (cl_mem mem : buffers)
    clReleaseMemObject(mem);
  clReleaseKernel(kernel);
  clReleaseProgram(program);
  clReleaseCommandQueue(queue);
  clReleaseContext(context);
}
#endif

/// --pocl: the SIMT kernel through SPIR-V on the OpenCL CPU driver.
int runOnPocl(MLIRContext *context, std::mt19937 &rng) {
#ifndef MOEQ_HAVE_OPENCL
  fail("moeq-kernel-check was built without OpenCL (Debian: ocl-icd-opencl-dev, "
       "opencl-headers, pocl-opencl-icd)");
#else
  Weights weights = makeWeights(context, rng, /*roundToHalf=*/false, schemeName);
  TileConfigAttr tile = TileConfigAttr::get(context, KernelFamily::Simt, 1, cost::kSimtBlock, 32,
                                            cost::kSimtBlock / 32, 1, 1);
  std::string kernelName;
  std::string bitcode = buildSpirBitcode(context, weights.type, tile, kernelName);
  int64_t n = outputs, k = inputs;
  bool ok = true;
  for (int64_t m : parseList(rowList)) {
    std::vector<uint16_t> x = randomHalves(rng, m * k);
    std::vector<uint16_t> y((m + 1) * n, 0x7e00);
    runOnOpenCL(bitcode, kernelName, weights, x, y, int32_t(m));
    std::vector<float> xf(x.size());
    for (size_t i = 0; i < x.size(); ++i)
      xf[i] = io::halfToFloat(x[i]);
    if (weights.actBits < 16)
      mq::fakeQuantizeActivations(xf, k, weights.actBits);
    ok &= compareRows("kernel " + kernelName + " on PoCL", referenceRows(xf, 0, m, weights), y,
                      0, m);
    if (!llvm::all_of(ArrayRef<uint16_t>(y).drop_front(m * n),
                      [](uint16_t v) { return v == 0x7e00; })) {
      llvm::outs() << "kernel " << kernelName << " wrote past row M: MISMATCH\n";
      ok = false;
    }
  }
  return ok ? 0 : 1;
#endif
}

} // namespace

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  cl::ParseCommandLineOptions(argc, argv, "run a moeq GEMM kernel on the GPU emulator\n");
  // The SPIR-V path (--pocl) names upstream passes in a textual pipeline.
  registerAllPasses();
  llvm::InitializeNativeTarget();
  llvm::InitializeNativeTargetAsmPrinter();

  DialectRegistry registry;
  registerAllMoEQDependencies(registry);
  MLIRContext context(registry);
  context.loadAllAvailableDialects();
  registerBuiltinDialectTranslation(context);
  registerLLVMDialectTranslation(context);

  std::mt19937 rng(seed);
  if (!probeName.empty())
    return runProbes(&context, probeName, saveCase, arch);
  if (!timingCase.empty()) {
    if (expertSchemes.empty())
      fail("--timing-case needs --experts and --expert-rows");
    return runTiming(&context);
  }
  if (!expertSchemes.empty())
    return runGrouped(&context, rng);
  if (onPocl)
    return runOnPocl(&context, rng);
  return runSingle(&context, rng);
}
