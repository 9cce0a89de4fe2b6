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
//===----------------------------------------------------------------------===//
#include "moeq/CostModel/CostModel.h"
#include "moeq/Dialect/MoEQ/IR/MoEQ.h"
#include "moeq/GPUEmulator/Emulator.h"
#include "moeq/IO/Float16.h"
#include "moeq/Passes/Kernels.h"
#include "moeq/Passes/Passes.h"
#include "moeq/Quant/Quantizer.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
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
#include <random>

using namespace mlir;
using namespace mlir::moeq;
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
static cl::opt<unsigned> showMismatches("show", cl::desc("print up to this many mismatching outputs"),
                                        cl::init(0));

namespace {

[[noreturn]] void fail(const llvm::Twine &message) {
  llvm::errs() << "moeq-kernel-check: error: " << message << "\n";
  std::exit(2);
}

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
    const cost::GpuSpec *gpu = cost::defaultGpuForChip(arch);
    return getTileConfig(context, chooseKernelFor(gpu ? *gpu : *cost::lookupGpu("a100"),
                                                  tokens, weightType));
  }
  if (tileSpec == "simt")
    return TileConfigAttr::get(context, "simt", 1, cost::kSimtBlock, 32, cost::kSimtBlock / 32,
                               1, 1);
  int64_t bm, bn, bk, warps, stages, splitK = 1;
  StringRef rest = tileSpec;
  if (!rest.consume_front("mma:") || rest.consumeInteger(10, bm) || !rest.consume_front("x") ||
      rest.consumeInteger(10, bn) || !rest.consume_front("x") || rest.consumeInteger(10, bk) ||
      !rest.consume_front("w") || rest.consumeInteger(10, warps) || !rest.consume_front("s") ||
      rest.consumeInteger(10, stages) ||
      (rest.consume_front("k") && rest.consumeInteger(10, splitK)) || !rest.empty())
    fail("--tile must be auto, simt or mma:<BM>x<BN>x<BK>w<warps>s<stages>[k<split>], got '" +
         tileSpec + "'");
  return TileConfigAttr::get(context, "mma", bm, bn, bk, warps, stages, splitK);
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

/// `<kernel>_packed(void **args)`: loads argument i from *args[i] and
/// calls the kernel, the form emu::launch runs.
void addPackedWrappers(ModuleOp module) {
  MLIRContext *context = module.getContext();
  OpBuilder b(context);
  Location loc = module.getLoc();
  auto ptr = LLVM::LLVMPointerType::get(context);
  SmallVector<LLVM::LLVMFuncOp> kernels;
  for (auto func : module.getOps<LLVM::LLVMFuncOp>())
    if (!func.isExternal())
      kernels.push_back(func);
  for (LLVM::LLVMFuncOp kernel : kernels) {
    b.setInsertionPointToEnd(module.getBody());
    auto wrapper = LLVM::LLVMFuncOp::create(
        b, loc, (kernel.getSymName() + "_packed").str(),
        LLVM::LLVMFunctionType::get(LLVM::LLVMVoidType::get(context), {ptr}));
    Block *entry = wrapper.addEntryBlock(b);
    b.setInsertionPointToStart(entry);
    SmallVector<Value> args;
    for (auto [i, type] : llvm::enumerate(kernel.getFunctionType().getParams())) {
      Value slot = LLVM::GEPOp::create(b, loc, ptr, ptr, entry->getArgument(0),
                                       ArrayRef<LLVM::GEPArg>{int32_t(i)});
      Value address = LLVM::LoadOp::create(b, loc, ptr, slot);
      args.push_back(LLVM::LoadOp::create(b, loc, type, address));
    }
    LLVM::CallOp::create(b, loc, kernel, args);
    LLVM::ReturnOp::create(b, loc, ValueRange{});
  }
}

/// Builds the kernels of `module` as moeq-compile does (with the kernel
/// tiling first when `tile`), lowers them to NVVM and makes them CPU
/// functions for the emulator.
void lowerForEmulation(ModuleOp module, bool tile) {
  PassManager pm(module.getContext());
  if (tile) {
    TileExpertGemmsOptions tiling;
    tiling.tokens = tokens;
    pm.addPass(createTileExpertGemms(tiling));
  }
  LowerExpertGemmsToGPUOptions lowering;
  lowering.chip = arch;
  pm.addPass(createLowerExpertGemmsToGPU(lowering));
  // The same lowering to NVVM as moeq-compile, up to the binary.
  buildLowerGPUModulesToNVVMPipeline(pm);
  pm.addPass(createEmulateGPUKernels());
  if (failed(pm.run(module)))
    fail("lowering the kernel failed");
}

/// JIT-compiles the kernels (only them) with the emulator runtime.
std::unique_ptr<ExecutionEngine> jitKernels(ModuleOp module) {
  for (auto func : llvm::make_early_inc_range(module.getOps<func::FuncOp>()))
    func.erase();
  addPackedWrappers(module);
  auto engine = ExecutionEngine::create(module);
  if (!engine)
    fail("cannot JIT the kernel: " + llvm::toString(engine.takeError()));
  (*engine)->registerSymbols([](llvm::orc::MangleAndInterner interner) {
    llvm::orc::SymbolMap map;
    for (auto [name, address] : emu::runtimeSymbols())
      map[interner(name)] = {llvm::orc::ExecutorAddr::fromPtr(address),
                             llvm::JITSymbolFlags::Exported};
    return map;
  });
  return std::move(*engine);
}

emu::PackedKernel lookupKernel(ExecutionEngine &engine, StringRef name) {
  auto kernel = engine.lookup((name + "_packed").str());
  if (!kernel)
    fail("no kernel " + name + ": " + llvm::toString(kernel.takeError()));
  return reinterpret_cast<emu::PackedKernel>(*kernel);
}

OwningOpRef<ModuleOp> buildKernelModule(MLIRContext *context, Type weightType,
                                        TileConfigAttr tile) {
  OwningOpRef<ModuleOp> module =
      buildSingleGemmModule(context, weightType, tile, arch, inputColumns);
  if (!module)
    fail("cannot build the kernel module");
  lowerForEmulation(*module, /*tile=*/false);
  return module;
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

/// Reference rows [begin, end) of Y = X W^T in double, compared with the
/// kernel's f16 output; prints one line and returns whether it matched.
bool compareRows(StringRef label, ArrayRef<float> x, ArrayRef<uint16_t> y, int64_t begin,
                 int64_t end, const Weights &weights) {
  int64_t n = outputs, k = inputs;
  double maxErr = 0, maxRef = 0;
  for (int64_t r = begin; r < end; ++r)
    for (int64_t c = 0; c < n; ++c) {
      double ref = 0;
      for (int64_t i = 0; i < k; ++i)
        ref += double(x[r * k + i]) * weights.reference[c * k + i];
      double got = io::halfToFloat(y[r * n + c]);
      maxRef = std::max(maxRef, std::abs(ref));
      maxErr = std::max(maxErr, std::isfinite(got) ? std::abs(got - roundTripHalf(ref)) : INFINITY);
    }
  double tolerance = toleranceUlps * std::ldexp(1.0, std::ilogb(std::max(1.0, maxRef)) - 10);
  bool ok = maxErr <= tolerance;
  llvm::outs() << llvm::formatv("{0} rows {1}: max |error| {2:e2} (tolerance {3:e2}, max "
                                "|reference| {4:F2}): {5}\n",
                                label, end - begin, maxErr, tolerance, maxRef,
                                ok ? "OK" : "MISMATCH");
  return ok;
}

/// Grouped mode: one expert per scheme of --experts, --expert-rows tokens
/// each, all in the persistent kernel moeq-tile-expert-gemms and kernel
/// lowering build for them; every expert's rows are checked.
int runGrouped(MLIRContext *context, std::mt19937 &rng) {
  SmallVector<StringRef> names;
  StringRef(expertSchemes).split(names, ',');
  std::vector<int64_t> rowsOf;
  for (StringRef part : llvm::split(StringRef(expertRows), ',')) {
    int64_t v;
    if (part.trim().getAsInteger(10, v) || v < 0)
      fail("--expert-rows must list non-negative integers");
    rowsOf.push_back(v);
  }
  if (rowsOf.size() != names.size())
    fail("--expert-rows needs one count per --experts scheme");
  int64_t experts = names.size(), n = outputs, k = inputs;
  std::vector<Weights> weights;
  for (StringRef name : names)
    weights.push_back(makeWeights(context, rng, /*roundToHalf=*/true, name));
  // The grouped matmul behind a dispatch with top_k 1, so that the tiling
  // assumes --tokens / experts rows per expert.
  std::string types;
  for (auto [e, w] : llvm::enumerate(weights)) {
    llvm::raw_string_ostream os(types);
    os << (e ? ", " : "") << w.type;
  }
  std::string params, operands;
  for (int64_t e = 0; e < experts; ++e) {
    std::string typeText;
    llvm::raw_string_ostream(typeText) << weights[e].type;
    params += llvm::formatv("    %w{0} = moeq.param <\"quant\", \"w{0}\"> : {1}\n", e, typeText);
    operands += llvm::formatv("{0}%w{1}", e ? ", " : "", e);
  }
  std::string source = llvm::formatv(
      R"mlir(module attributes {{moeq.target = #moeq.target<"{0}">} {{
  func.func @layer(%x: tensor<?x{1}xf32>, %idx: tensor<?x1xi32>) -> tensor<?x{2}xf32> {{
    %sorted, %pos, %off = moeq.dispatch %x, %idx {{num_experts = {3} : i64}
        : tensor<?x{1}xf32>, tensor<?x1xi32> -> tensor<?x{1}xf32>, tensor<?xi32>, tensor<{4}xi32>
{5}    %y = moeq.grouped_matmul %sorted, %off weights({6} : {7})
        : tensor<?x{1}xf32>, tensor<{4}xi32> -> tensor<?x{2}xf32>
    return %y : tensor<?x{2}xf32>
  }
})mlir",
      arch.getValue(), k, n, experts, experts + 1, params, operands, types);
  OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(source, context);
  if (!module)
    fail("cannot build the grouped module");
  lowerForEmulation(*module, /*tile=*/true);
  std::string kernelName;
  SmallVector<Type> groupTypes;
  SmallVector<TileConfigAttr> groupTiles;
  module->walk([&](GroupedMatmulOp op) {
    if (!op->hasAttr(kPersistentAttrName) || !op.getKernels())
      return;
    kernelName = cast<SymbolRefAttr>((*op.getKernels())[0]).getRootReference().str();
    groupTypes = llvm::to_vector(op.getWeights().getTypes());
    ArrayAttr tiles = *op.getTiles();
    for (Attribute tile : tiles)
      groupTiles.push_back(cast<TileConfigAttr>(tile));
  });
  if (kernelName.empty())
    fail("the experts did not fuse into one persistent kernel");
  std::unique_ptr<ExecutionEngine> engine = jitKernels(*module);
  emu::PackedKernel kernel = lookupKernel(*engine, kernelName);

  // Sorted rows: expert e owns [offsets[e], offsets[e+1]).
  std::vector<int32_t> offsets{0};
  for (int64_t r : rowsOf)
    offsets.push_back(offsets.back() + int32_t(r));
  int32_t total = offsets.back();
  std::vector<uint16_t> x = randomHalves(rng, std::max(total, 1) * k);
  std::vector<uint16_t> y((total + 1) * n, 0x7e00);
  std::vector<float> xf(x.size());
  for (size_t i = 0; i < x.size(); ++i)
    xf[i] = io::halfToFloat(x[i]);
  void *xPtr = x.data(), *yPtr = y.data(), *offPtr = offsets.data();
  int32_t rows = total;
  unsigned actBits = weights.front().actBits;
  std::vector<int8_t> xq(x.size() * actBits / 8 + 1);
  std::vector<float> xScale(std::max(total, 1));
  void *xqPtr = xq.data(), *xScalePtr = xScale.data();
  std::vector<void *> args;
  if (actBits < 16) {
    // The activation-quantization kernel first, as the manifest launches it.
    std::string quantName = getActivationQuantKernelName(cast<PackedWeightType>(groupTypes[0]));
    emu::PackedKernel quant = lookupKernel(*engine, quantName);
    std::vector<void *> quantArgs{&xqPtr, &xScalePtr, &xPtr, &rows};
    emu::LaunchConfig config{{uint32_t(std::max(total, 1)), 1, 1}, {32, 1, 1}, 0};
    if (llvm::Error error = emu::launch(quant, quantArgs, config))
      fail(quantName + ": " + llvm::toString(std::move(error)));
    mq::fakeQuantizeActivations(xf, k, actBits);
    args = {&xqPtr, &xScalePtr, &offPtr};
  } else {
    args = {&xPtr, &offPtr};
  }
  std::vector<void *> pointers;
  pointers.reserve(3 * experts);
  for (Weights &w : weights) {
    pointers.push_back(w.words.empty() ? static_cast<void *>(w.halves.data())
                                       : static_cast<void *>(w.words.data()));
    args.push_back(&pointers.back());
    if (!w.scales.empty()) {
      pointers.push_back(w.scales.data());
      args.push_back(&pointers.back());
    }
    if (!w.zeros.empty()) {
      pointers.push_back(w.zeros.data());
      args.push_back(&pointers.back());
    }
  }
  args.push_back(&yPtr);
  args.push_back(&rows);
  emu::LaunchConfig config;
  config.grid = {persistentCtas, 1, 1};
  config.block = {uint32_t(groupTiles.front().getThreadsPerBlock()), 1, 1};
  config.sharedBytes = uint64_t(getGroupedKernelSharedBytes(groupTypes, groupTiles));
  if (llvm::Error error = emu::launch(kernel, args, config))
    fail(kernelName + ": " + llvm::toString(std::move(error)));
  bool ok = true;
  for (int64_t e = 0; e < experts; ++e) {
    std::string tileText;
    llvm::raw_string_ostream(tileText) << groupTiles[e];
    ok &= compareRows(llvm::formatv("kernel {0} expert {1} ({2}, {3})", kernelName, e,
                                    names[e], tileText)
                          .str(),
                      xf, y, offsets[e], offsets[e + 1], weights[e]);
  }
  bool canaryIntact = llvm::all_of(ArrayRef<uint16_t>(y).drop_front(int64_t(total) * n),
                                   [](uint16_t v) { return v == 0x7e00; });
  if (!canaryIntact)
    llvm::outs() << "kernel " << kernelName << " wrote past the last row: MISMATCH\n";
  return ok && canaryIntact ? 0 : 1;
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
  TileConfigAttr tile = TileConfigAttr::get(context, "simt", 1, cost::kSimtBlock, 32,
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
    ok &= compareRows("kernel " + kernelName + " on PoCL", xf, y, 0, m, weights);
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
  // The type decides the tile; the tile decides whether the kernel rounds
  // dequantised weights to f16 (tensor cores) or keeps f32 (SIMT).
  if (!expertSchemes.empty())
    return runGrouped(&context, rng);
  if (onPocl)
    return runOnPocl(&context, rng);
  Weights probe = makeWeights(&context, rng, false, schemeName);
  TileConfigAttr tile = parseTile(&context, probe.type);
  rng.seed(seed);
  Weights weights = makeWeights(&context, rng, tile.isTensorCore(), schemeName);
  bool quantizedActivations = weights.actBits < 16;

  OwningOpRef<ModuleOp> module = buildKernelModule(&context, weights.type, tile);
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
  bool failed = false;
  for (int64_t m : parseList(rowList)) {
    std::vector<uint16_t> x = randomHalves(rng, m * stride);
    // One canary row past M: the kernel must not write it.
    const uint16_t canary = 0x7e00;
    std::vector<uint16_t> y((m + 1) * n, canary);
    int32_t rows = int32_t(m);
    void *xPtr = x.data(), *yPtr = y.data();
    void *wPtr = weights.words.empty() ? static_cast<void *>(weights.halves.data())
                                       : static_cast<void *>(weights.words.data());
    void *sPtr = weights.scales.data(), *zPtr = weights.zeros.data();
    std::vector<int8_t> xq(m * k * weights.actBits / 8 + 1);
    std::vector<float> xScale(m);
    void *xqPtr = xq.data(), *xScalePtr = xScale.data();
    std::vector<void *> args;
    if (quantKernel) {
      std::vector<void *> quantArgs{&xqPtr, &xScalePtr, &xPtr, &rows};
      emu::LaunchConfig config{{uint32_t(m), 1, 1}, {32, 1, 1}, 0};
      if (llvm::Error error = emu::launch(quantKernel, quantArgs, config))
        fail(quantName + ": " + llvm::toString(std::move(error)));
      args = {&xqPtr, &xScalePtr};
    } else {
      args = {&xPtr};
    }
    args.push_back(&wPtr);
    if (!weights.scales.empty())
      args.push_back(&sPtr);
    if (!weights.zeros.empty())
      args.push_back(&zPtr);
    args.push_back(&yPtr);
    args.push_back(&rows);
    // Split-K: the GEMM writes f32 slices to a workspace, then the reduce
    // kernel writes Y.
    int64_t splitK = tile.isTensorCore() ? tile.getSplitK() : 1;
    std::vector<float> workspace(splitK > 1 ? splitK * m * n : 0, NAN);
    void *workspacePtr = workspace.data();
    if (splitK > 1)
      args[args.size() - 2] = &workspacePtr;
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
    if (llvm::Error error = emu::launch(gemm, args, config))
      fail(gemmName + ": " + llvm::toString(std::move(error)));
    if (splitK > 1) {
      std::string reduceName = getSplitKReduceKernelName(n, splitK);
      emu::PackedKernel reduce = lookupKernel(*engine, reduceName);
      std::vector<void *> reduceArgs{&workspacePtr, &yPtr, &rows};
      emu::LaunchConfig reduceConfig{
          {uint32_t((n + cost::kSimtBlock - 1) / cost::kSimtBlock), uint32_t(m), 1},
          {uint32_t(cost::kSimtBlock), 1, 1}, 0};
      if (llvm::Error error = emu::launch(reduce, reduceArgs, reduceConfig))
        fail(reduceName + ": " + llvm::toString(std::move(error)));
    }

    // Reference: the same quantized operands, multiplied in double.
    std::vector<float> xf(m * k);
    for (int64_t r = 0; r < m; ++r)
      for (int64_t i = 0; i < k; ++i)
        xf[r * k + i] = io::halfToFloat(x[r * stride + i]);
    if (quantizedActivations)
      mq::fakeQuantizeActivations(xf, k, weights.actBits);
    double maxErr = 0, maxRef = 0;
    for (int64_t r = 0; r < m; ++r)
      for (int64_t c = 0; c < n; ++c) {
        double ref = 0;
        for (int64_t i = 0; i < k; ++i)
          ref += double(xf[r * k + i]) * weights.reference[c * k + i];
        double got = io::halfToFloat(y[r * n + c]);
        static unsigned shown = 0;
        if (shown < showMismatches && got != roundTripHalf(ref)) {
          ++shown;
          llvm::outs() << llvm::formatv("  y[{0}][{1}] = {2}, reference {3}\n", r, c, got, ref);
        }
        maxRef = std::max(maxRef, std::abs(ref));
        maxErr = std::max(maxErr, std::isfinite(got) ? std::abs(got - roundTripHalf(ref))
                                                     : INFINITY);
      }
    bool canaryIntact = llvm::all_of(ArrayRef<uint16_t>(y).drop_front(m * n),
                                     [&](uint16_t v) { return v == canary; });
    // Two f16 ulps at the largest output: the kernel rounds its f32 sum
    // once to f16, the reference is the exact sum rounded to f16; the f32
    // summation order may tip a value over a rounding boundary.
    double tolerance = toleranceUlps * std::ldexp(1.0, std::ilogb(std::max(1.0, maxRef)) - 10);
    bool ok = maxErr <= tolerance && canaryIntact;
    failed |= !ok;
    llvm::outs() << llvm::formatv(
        "kernel {0} rows {1}: max |error| {2:e2} (tolerance {3:e2}, max |reference| {4:F2}){5}: "
        "{6}\n",
        gemmName, m, maxErr, tolerance, maxRef, canaryIntact ? "" : ", wrote past row M",
        ok ? "OK" : "MISMATCH");
  }
  return failed ? 1 : 0;
}
