//===- CPURunner.cpp - run moeq layers on the CPU -------------------------===//
#include "moeq/Passes/CPURunner.h"
#include "moeq/Dialect/MoEQ/IR/MoEQ.h"
#include "moeq/Passes/ParameterArchives.h"
#include "moeq/Passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/ExecutionEngine/ExecutionEngine.h"
#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/TargetParser/Host.h"

using namespace mlir;
using namespace mlir::moeq;

/// One argument of a lowered layer function, in order.
struct CPULayerRunner::Argument {
  enum Kind { Input, Param, Output, Trace } kind;
  ExternalParamAttr param; ///< for Param
  std::string traceName;   ///< for Trace
  SmallVector<int64_t> shape;
  Type elementType;
};

struct CPULayerRunner::Layer {
  std::vector<Argument> arguments;
  int64_t hidden = 0;
};

CPULayerRunner::CPULayerRunner() = default;
CPULayerRunner::~CPULayerRunner() = default;

int64_t CPULayerRunner::getHiddenSize(StringRef name) const {
  auto it = layers.find(name);
  return it == layers.end() ? -1 : it->second->hidden;
}

void CPULayerRunner::releaseParameterPages() const { archives->releasePages(); }

std::vector<std::string> CPULayerRunner::getLayerNames() const {
  std::vector<std::string> names;
  for (const auto &entry : layers)
    names.push_back(entry.getKey().str());
  llvm::sort(names);
  return names;
}

FailureOr<std::unique_ptr<CPULayerRunner>> CPULayerRunner::create(ModuleOp module,
                                                                  bool exposeTrace) {
  std::unique_ptr<CPULayerRunner> runner(new CPULayerRunner());
  runner->context = module.getContext();
  FailureOr<ParameterArchives> archives = ParameterArchives::fromModule(module);
  if (failed(archives))
    return failure();
  runner->archives = std::make_unique<ParameterArchives>(std::move(*archives));

  OwningOpRef<ModuleOp> clone = module.clone();
  // Drop GPU code: the CPU path only needs the host functions.
  for (Operation &op : llvm::make_early_inc_range(clone->getBody()->getOperations()))
    if (!isa<func::FuncOp>(op))
      op.erase();

  // Step 1: moeq -> linalg, then read the argument bindings off the
  // signatures before the LLVM lowering drops the attributes.
  PassManager toLinalg(module.getContext());
  toLinalg.addNestedPass<func::FuncOp>(createDecomposeMoE());
  ConvertMoEQToLinalgOptions lowering;
  lowering.exposeTrace = exposeTrace;
  toLinalg.addPass(createConvertMoEQToLinalg(lowering));
  if (failed(toLinalg.run(*clone)))
    return failure();
  for (auto func : clone->getOps<func::FuncOp>()) {
    auto layer = std::make_unique<Layer>();
    for (auto [i, type] : llvm::enumerate(func.getArgumentTypes())) {
      auto memref = cast<MemRefType>(type);
      Argument arg{Argument::Input, {}, {}, SmallVector<int64_t>(memref.getShape()),
                   memref.getElementType()};
      if (auto param = func.getArgAttrOfType<ExternalParamAttr>(i, kParamArgAttrName)) {
        arg.kind = Argument::Param;
        arg.param = param;
      } else if (func.getArgAttr(i, kOutputArgAttrName)) {
        arg.kind = Argument::Output;
      } else if (auto name = func.getArgAttrOfType<StringAttr>(i, kTraceArgAttrName)) {
        arg.kind = Argument::Trace;
        arg.traceName = name.str();
      }
      if (arg.kind == Argument::Input)
        layer->hidden = memref.getShape().back();
      layer->arguments.push_back(arg);
    }
    runner->layers[func.getSymName()] = std::move(layer);
  }

  PassManager toLLVM(module.getContext());
  buildLowerToCPUPipeline(toLLVM);
  if (failed(toLLVM.run(*clone)))
    return failure();

  llvm::InitializeNativeTarget();
  llvm::InitializeNativeTargetAsmPrinter();
  // Optimise for the process triple's generic CPU (x86-64: SSE2, 4-wide
  // float vectors), not the host's: the loop vectorizer needs a target to
  // vectorize at all, and a fixed one keeps the summation order, hence the
  // results bit for bit, the same on every machine of the architecture.
  llvm::orc::JITTargetMachineBuilder targetBuilder{llvm::Triple(llvm::sys::getProcessTriple())};
  auto targetMachine = targetBuilder.createTargetMachine();
  if (!targetMachine)
    return emitError(module.getLoc()) << "no target machine for the CPU lowering: "
                                      << llvm::toString(targetMachine.takeError());
  // `options.transformer` is a function_ref: the function it refers to must
  // outlive the call (AddressSanitizer found a temporary here that did not).
  std::function<llvm::Error(llvm::Module *)> optimize =
      makeOptimizingTransformer(/*optLevel=*/2, /*sizeLevel=*/0, targetMachine->get());
  ExecutionEngineOptions options;
  options.transformer = optimize;
  auto engine = ExecutionEngine::create(*clone, options);
  if (!engine)
    return emitError(module.getLoc())
           << "cannot JIT the CPU lowering: " << llvm::toString(engine.takeError());
  runner->engine = std::move(*engine);
  return runner;
}

namespace {
/// A strided memref descriptor of any rank, laid out as the LLVM lowering
/// expects: {allocated, aligned, offset, sizes[rank], strides[rank]}.
struct Descriptor {
  std::vector<int64_t> words;
  Descriptor(void *data, ArrayRef<int64_t> shape) {
    words.push_back(reinterpret_cast<int64_t>(data));
    words.push_back(reinterpret_cast<int64_t>(data));
    words.push_back(0);
    llvm::append_range(words, shape);
    std::vector<int64_t> strides(shape.size(), 1);
    for (int i = int(shape.size()) - 2; i >= 0; --i)
      strides[i] = strides[i + 1] * shape[i + 1];
    llvm::append_range(words, strides);
  }
};

bool matchesDType(Type type, io::DType dtype) {
  return (type.isBF16() && dtype == io::DType::BF16) ||
         (type.isF16() && dtype == io::DType::F16) ||
         (type.isF32() && dtype == io::DType::F32) ||
         (type.isInteger(32) && dtype == io::DType::I32);
}
} // namespace

FailureOr<void *>
CPULayerRunner::bindParameter(const Argument &arg,
                              std::vector<std::shared_ptr<const void>> &keepAlive) {
  Location loc = UnknownLoc::get(context);
  FailureOr<ParameterArchives::View> view = archives->resolve(loc, arg.param);
  if (failed(view))
    return failure();
  if (ArrayRef<int64_t>(view->shape) != ArrayRef<int64_t>(arg.shape))
    return emitError(loc) << "tensor '" << arg.param.getKey().getValue()
                          << "' does not match the compiled shape";
  if (!view->blockScaled && matchesDType(arg.elementType, view->dtype)) {
    // The archive is a read-only mapping (or, for a transposed or strided
    // selection, the gathered copy, kept alive here); the layer only reads
    // parameters.
    if (view->gathered)
      keepAlive.push_back(view->gathered);
    return static_cast<void *>(const_cast<uint8_t *>(view->bytes.data()));
  }
  if (!arg.elementType.isF32())
    return emitError(loc) << "tensor '" << arg.param.getKey().getValue()
                          << "' is stored as " << io::dtypeName(view->dtype)
                          << ", which the compiled layout cannot read";
  FailureOr<std::vector<float>> values = archives->readAsFloat(loc, arg.param);
  if (failed(values))
    return failure();
  auto owned = std::make_shared<std::vector<float>>(std::move(*values));
  keepAlive.push_back(owned);
  return static_cast<void *>(owned->data());
}

/// Rows of a traced buffer with a dynamic leading dimension: per routed
/// copy (tokens * topK) for the sorted ones, else per token.
static int64_t traceRows(StringRef name, int64_t tokens, int64_t topK) {
  return (name == "positions" || name == "expert_activations") ? tokens * topK : tokens;
}

/// Storage of one traced buffer inside `trace`, sized for `shape`.
static void *traceStorage(LayerTrace &trace, StringRef name, ArrayRef<int64_t> shape) {
  int64_t count = 1;
  for (int64_t d : shape)
    count *= d;
  auto sized = [&](auto &vec) {
    vec.assign(count, 0);
    return static_cast<void *>(vec.data());
  };
  if (name == "routing_indices")
    return sized(trace.routingIndices);
  if (name == "routing_weights")
    return sized(trace.routingWeights);
  if (name == "positions")
    return sized(trace.positions);
  if (name == "offsets")
    return sized(trace.offsets);
  if (name == "expert_activations") {
    trace.intermediate = shape.back();
    return sized(trace.expertActivations);
  }
  if (name == "shared_activations") {
    trace.sharedIntermediate = shape.back();
    return sized(trace.sharedActivations);
  }
  return sized(trace.sharedGateLogits);
}

FailureOr<std::vector<float>> CPULayerRunner::run(StringRef name, ArrayRef<float> input,
                                                  int64_t tokens, LayerTrace *trace) {
  Location loc = UnknownLoc::get(context);
  auto it = layers.find(name);
  if (it == layers.end())
    return emitError(loc) << "no layer function '" << name << "'";
  Layer &layer = *it->second;
  if (int64_t(input.size()) != tokens * layer.hidden)
    return emitError(loc) << "input holds " << input.size() << " values, expected "
                          << tokens << " x " << layer.hidden;
  std::vector<float> output(tokens * layer.hidden, 0.f);
  // Parameters stored in another format (fp8 with block scales) are decoded,
  // and transposed or strided selections gathered, into buffers kept for the
  // duration of the call.
  std::vector<std::shared_ptr<const void>> keepAlive;
  std::vector<Descriptor> descriptors;
  descriptors.reserve(layer.arguments.size());
  LayerTrace scratchTrace;
  LayerTrace &traceOut = trace ? *trace : scratchTrace;
  traceOut = LayerTrace();
  traceOut.tokens = tokens;
  for (const Argument &arg : layer.arguments)
    if (arg.kind == Argument::Trace && arg.traceName == "routing_indices")
      traceOut.topK = arg.shape.back();
  for (const Argument &arg : layer.arguments) {
    if (arg.kind == Argument::Trace) {
      SmallVector<int64_t> shape(arg.shape);
      if (ShapedType::isDynamic(shape.front()))
        shape.front() = traceRows(arg.traceName, tokens, traceOut.topK);
      descriptors.emplace_back(traceStorage(traceOut, arg.traceName, shape), shape);
      continue;
    }
    if (arg.kind != Argument::Param) {
      float *data = arg.kind == Argument::Input ? const_cast<float *>(input.data())
                                                : output.data();
      descriptors.emplace_back(data, ArrayRef<int64_t>{tokens, layer.hidden});
      continue;
    }
    FailureOr<void *> data = bindParameter(arg, keepAlive);
    if (failed(data))
      return failure();
    descriptors.emplace_back(*data, arg.shape);
  }
  std::vector<void *> pointers, args;
  for (Descriptor &d : descriptors)
    pointers.push_back(d.words.data());
  for (void *&p : pointers)
    args.push_back(&p);
  if (llvm::Error err =
          engine->invokePacked(("_mlir_ciface_" + name).str(), args))
    return emitError(loc) << "running '" << name << "' failed: "
                          << llvm::toString(std::move(err));
  return output;
}
