//===- ImportHF.cpp - Hugging Face MoE checkpoint -> moeq IR --------------===//
//
// Reads config.json and the safetensors shards' headers (never the weight
// data) and emits one function per MoE layer whose weights are
// `moeq.param` references into the checkpoint. Every other tensor (dense
// layers, attention, norms, embeddings) is listed in the module attribute
// `moeq.passthrough` and copied unchanged into the artifact.
//
// Families: io::supportedModelTypes(); each family's tensor names come
// with its config (io::MoETensorNames): per-expert tensors or stacked 3-D
// ones (`experts.gate_up_proj` [E, 2I, H] / `experts.down_proj` [E, H, I],
// granitemoe's `input_linear` / `output_linear`).
//
//===----------------------------------------------------------------------===//
#include "moeq/Passes/Import.h"
#include "moeq/Dialect/MoEQ/IR/MoEQ.h"
#include "moeq/IO/Checkpoint.h"
#include "moeq/IO/ModelConfig.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Verifier.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

using namespace mlir;
using namespace mlir::moeq;

namespace {

/// The full names of one MoE layer's tensors (the family's names,
/// io::MoETensorNames, under "<layerPrefix><i>.<block>.").
struct LayerTensorNames {
  std::string blockPrefix;
  const io::MoETensorNames &names;

  std::string in(StringRef relative) const { return blockPrefix + "." + relative.str(); }
  std::string router() const { return in(names.router); }
  std::string routerBias() const { return in(names.routerBias); }
  std::string scoreBias() const { return in(names.scoreBias); }
  std::string sharedGate() const { return in(names.sharedExpertGate); }
  /// Per-expert linear `linear` (empty: the family has none).
  std::string expert(int64_t e, StringRef linear) const {
    if (linear.empty())
      return "";
    return in("experts." + std::to_string(e) + "." + linear.str() + ".weight");
  }
  std::string stackedGateUp() const { return in(names.stackedGateUp); }
  std::string stackedDown() const { return in(names.stackedDown); }
  std::string stackedGateUpBias() const { return in(names.stackedGateUpBias); }
  std::string stackedDownBias() const { return in(names.stackedDownBias); }
  std::string shared(StringRef linear) const {
    return in(names.sharedExpert + "." + linear.str() + ".weight");
  }
  StringRef gate() const { return names.gate; }
  StringRef up() const { return names.up; }
  StringRef down() const { return names.down; }
};

LayerTensorNames tensorNamesFor(const io::MoEModelConfig &config, int64_t layer) {
  return {config.tensorNames.layerPrefix + std::to_string(layer) + "." +
              config.tensorNames.block,
          config.tensorNames};
}

/// The routing attributes of a family, as moeq.moe spells them.
struct Routing {
  ScoringFunc scoring = ScoringFunc::Softmax;
  bool normTopkProb = true;
  double scalingFactor = 1.0;
  int64_t nGroup = 1, topkGroup = 1;
  GroupScoring groupScoring = GroupScoring::Max;
  double jitterEps = 0.0;
};

FailureOr<Routing> routingFor(const io::MoEModelConfig &config, Location loc) {
  Routing routing;
  if (config.scoringFunc == "sigmoid")
    routing.scoring = ScoringFunc::Sigmoid;
  else if (config.scoringFunc == "sparsemixer")
    routing.scoring = ScoringFunc::SparseMixer;
  else if (config.scoringFunc != "softmax")
    return emitError(loc) << "config.json: unsupported scoring_func '"
                          << config.scoringFunc << "'";
  routing.normTopkProb = config.normTopkProb;
  // DeepSeek-V2 scales only unnormalised weights; V3 scales after normalising.
  routing.scalingFactor =
      (config.normTopkProb && !config.scaleAfterNormalization) ? 1.0
                                                                : config.routedScalingFactor;
  if (!config.groupScoring.empty() && config.nGroup > 1) {
    routing.nGroup = config.nGroup;
    routing.topkGroup = config.topkGroup;
    routing.groupScoring =
        config.groupScoring == "top2_sum" ? GroupScoring::Top2Sum : GroupScoring::Max;
  }
  routing.jitterEps = routing.scoring == ScoringFunc::SparseMixer ? config.routerJitterNoise : 0.0;
  return routing;
}

class HFImporter {
public:
  HFImporter(MLIRContext *ctx, StringRef dir) : ctx(ctx), b(ctx), dir(dir) {}

  OwningOpRef<ModuleOp> run() {
    Location dirLoc = FileLineColLoc::get(ctx, dir, 0, 0);
    llvm::SmallString<256> absDir(dir);
    if (llvm::sys::fs::make_absolute(absDir) || !llvm::sys::fs::is_directory(absDir)) {
      emitError(dirLoc) << "'" << dir << "' is not a checkpoint directory";
      return nullptr;
    }
    llvm::sys::path::remove_dots(absDir, /*remove_dot_dot=*/true);
    llvm::SmallString<256> configPath(absDir);
    llvm::sys::path::append(configPath, "config.json");
    configLoc = FileLineColLoc::get(ctx, configPath, 0, 0);
    auto config = io::loadModelConfig(configPath);
    if (!config) {
      emitError(configLoc) << llvm::toString(config.takeError());
      return nullptr;
    }
    auto checkpoint = io::Checkpoint::open(absDir);
    if (!checkpoint) {
      emitError(dirLoc) << llvm::toString(checkpoint.takeError());
      return nullptr;
    }
    this->config = &*config;
    this->checkpoint = checkpoint->get();
    FailureOr<Routing> routing = routingFor(*config, configLoc);
    if (failed(routing))
      return nullptr;
    this->routing = &*routing;

    OwningOpRef<ModuleOp> module = ModuleOp::create(dirLoc);
    (*module)->setAttr(kArchivesAttrName,
                       b.getDictionaryAttr(b.getNamedAttr(kCheckpointScope, b.getStringAttr(absDir))));
    (*module)->setAttr(kModelAttrName, describeModel());
    b.setInsertionPointToEnd(module->getBody());
    for (int64_t layer = 0; layer < config->numLayers; ++layer)
      if (config->isMoELayer(layer) && failed(importLayer(layer)))
        return nullptr;
    (*module)->setAttr(kPassthroughAttrName, passthroughTensors());
    if (failed(verify(*module)))
      return nullptr;
    return module;
  }

private:
  DictionaryAttr describeModel() {
    return b.getDictionaryAttr({
        b.getNamedAttr("model_type", b.getStringAttr(config->modelType)),
        b.getNamedAttr("hidden_size", b.getI64IntegerAttr(config->hiddenSize)),
        b.getNamedAttr("num_layers", b.getI64IntegerAttr(config->numLayers)),
        b.getNamedAttr("num_experts", b.getI64IntegerAttr(config->numExperts)),
        b.getNamedAttr("top_k", b.getI64IntegerAttr(config->topK)),
        b.getNamedAttr("moe_intermediate_size",
                       b.getI64IntegerAttr(config->moeIntermediateSize)),
        b.getNamedAttr("shared_intermediate_size",
                       b.getI64IntegerAttr(config->sharedIntermediateSize())),
    });
  }

  Location tensorLoc(StringRef name) {
    const io::SafeTensorsFile *file = nullptr;
    checkpoint->find(name, &file);
    return NameLoc::get(b.getStringAttr(name),
                        file ? FileLineColLoc::get(ctx, file->path(), 0, 0) : configLoc);
  }

  /// Element type of a stored dtype; fp8 with block scales reads as f32.
  FailureOr<Type> elementType(StringRef name, io::DType dtype) {
    switch (dtype) {
    case io::DType::BF16: return b.getBF16Type();
    case io::DType::F16: return b.getF16Type();
    case io::DType::F32: return b.getF32Type();
    case io::DType::F8_E4M3:
      if (checkpoint->hasBlockScales(name))
        return b.getF32Type();
      [[fallthrough]];
    default:
      return emitError(tensorLoc(name))
             << "tensor '" << name << "' has unsupported dtype " << io::dtypeName(dtype)
             << " (expected BF16, F16, F32, or F8_E4M3 with block scales)";
    }
  }

  /// A `moeq.param` for `ref`, checking that the tensor exists and that the
  /// selected part has `shape` (the shape config.json implies).
  /// The shape of tensor `name`, stored or MXFP4 (its `_blocks` and
  /// `_scales`, decoded to f32 by the readers); an error if it is missing.
  struct StoredTensor {
    SmallVector<int64_t> shape;
    std::optional<io::DType> dtype; ///< none: MXFP4
  };
  FailureOr<StoredTensor> storedTensor(StringRef name) {
    if (const io::TensorInfo *info = checkpoint->find(name))
      return StoredTensor{SmallVector<int64_t>(info->shape.begin(), info->shape.end()),
                          info->dtype};
    auto mxfp4 = checkpoint->mxfp4Shape(name);
    if (!mxfp4)
      return emitError(configLoc) << llvm::toString(mxfp4.takeError());
    if (!*mxfp4)
      return emitError(FileLineColLoc::get(ctx, dir, 0, 0))
             << "tensor '" << name << "' is missing from the checkpoint";
    return StoredTensor{SmallVector<int64_t>((*mxfp4)->begin(), (*mxfp4)->end()), std::nullopt};
  }
  bool isMXFP4(StringRef name) {
    auto mxfp4 = checkpoint->mxfp4Shape(name);
    if (!mxfp4) {
      llvm::consumeError(mxfp4.takeError()); // (reported when the tensor is read)
      return false;
    }
    return !checkpoint->find(name) && mxfp4->has_value();
  }

  FailureOr<Value> param(ExternalParamAttr ref, ArrayRef<int64_t> shape) {
    StringRef name = ref.getKey().getValue();
    FailureOr<StoredTensor> tensor = storedTensor(name);
    if (failed(tensor))
      return failure();
    ArrayRef<int64_t> storedShape = tensor->shape;
    SmallVector<int64_t> stored(storedShape.begin(), storedShape.end());
    if (ref.getIndex() >= 0 && stored.size() >= 2)
      stored.erase(stored.begin());
    if (ref.getTransposed() && stored.size() == 2)
      std::swap(stored[0], stored[1]);
    // (Rows of a matrix, or elements of a vector: a bias slice.)
    int64_t selectedRows = stored.size() <= 2 && !stored.empty() ? stored[0] : 0;
    if (ref.getRowCount() >= 0 && !stored.empty() && stored.size() <= 2)
      stored[0] = ref.getRowCount();
    size_t expectedRank = shape.size() + (ref.getIndex() >= 0 ? 1 : 0);
    bool rowsFit = ref.getRowCount() < 0 ||
                   (storedShape.size() == expectedRank &&
                    ref.getRowOffset() + (ref.getRowCount() - 1) * ref.getRowStep() <
                        selectedRows);
    if (storedShape.size() != expectedRank || ArrayRef<int64_t>(stored) != shape || !rowsFit) {
      auto diag = emitError(tensorLoc(name)) << "tensor '" << name << "' has shape [";
      llvm::interleaveComma(storedShape, diag);
      diag << "] but config.json implies ";
      if (ref.getIndex() >= 0)
        diag << "[" << config->numExperts << ", ...] with matrices ";
      diag << "[";
      llvm::interleaveComma(shape, diag);
      diag << "]";
      if (ref.getTransposed())
        diag << " (each stored transposed, [in, out])";
      return diag;
    }
    // (MXFP4 is decoded to f32, exactly.)
    FailureOr<Type> element =
        tensor->dtype ? elementType(name, *tensor->dtype) : FailureOr<Type>(b.getF32Type());
    if (failed(element))
      return failure();
    used.insert(name);
    if (!tensor->dtype) {
      used.insert(io::Checkpoint::mxfp4BlocksName(name));
      used.insert(io::Checkpoint::mxfp4ScalesName(name));
    }
    return ParamOp::create(b, tensorLoc(name), RankedTensorType::get(shape, *element), ref)
        .getResult();
  }

  FailureOr<Value> param(StringRef name, ArrayRef<int64_t> shape) {
    return param(ExternalParamAttr::get(ctx, b.getStringAttr(kCheckpointScope), b.getStringAttr(name)),
                 shape);
  }

  FailureOr<Activation> activation() {
    if (config->expertActivation == "clamped_swiglu")
      return Activation::ClampedSwiGLU;
    if (config->hiddenAct == "silu" || config->hiddenAct == "swish")
      return Activation::SiLU;
    if (config->hiddenAct == "gelu")
      return Activation::GeLU;
    return emitError(configLoc) << "config.json: unsupported hidden_act '"
                                << config->hiddenAct << "'";
  }

  /// Expert e's gate or up half of a stacked tensor whose last dimension
  /// (gate_up's output columns: rows once transposed) is [2I]: the leading
  /// or trailing I, or, interleaved (gpt-oss), every second from 0 or 1.
  /// `transposed` for a matrix stored [in, out]; 1-D biases are not.
  ExternalParamAttr gateUpHalf(StringRef key, int64_t e, bool up, bool transposed) {
    using Layout = io::MoETensorNames::StackedLayout;
    int64_t inter = config->moeIntermediateSize;
    bool interleaved = config->tensorNames.stackedLayout == Layout::TransposedInterleaved;
    int64_t offset = interleaved ? (up ? 1 : 0) : (up ? inter : 0);
    return ExternalParamAttr::get(ctx, b.getStringAttr(kCheckpointScope), b.getStringAttr(key), e, offset,
                                  inter, transposed, /*rowStep=*/interleaved ? 2 : 1);
  }

  /// Appends one expert's gate, up and down values to their lists (failure
  /// if any is missing).
  static LogicalResult appendExpert(ArrayRef<FailureOr<Value>> values,
                                    ArrayRef<SmallVectorImpl<Value> *> lists) {
    if (llvm::any_of(values, [](const FailureOr<Value> &v) { return failed(v); }))
      return failure();
    for (auto [value, list] : llvm::zip_equal(values, lists))
      list->push_back(*value);
    return success();
  }

  /// Gate, up and down weights of every routed expert.
  LogicalResult importExperts(const LayerTensorNames &names, SmallVectorImpl<Value> &gate,
                              SmallVectorImpl<Value> &up, SmallVectorImpl<Value> &down) {
    int64_t hidden = config->hiddenSize, inter = config->moeIntermediateSize;
    bool stacked = (names.gate().empty() || !checkpoint->find(names.expert(0, names.gate()))) &&
                   (checkpoint->find(names.stackedGateUp()) || isMXFP4(names.stackedGateUp()));
    // [E, H, 2I] / [E, I, H] stored for x @ W: read transposed. (MXFP4
    // checkpoints store the [E, 2I, H] / [E, H, I] matrices: gpt-oss.)
    bool transposed = config->tensorNames.stackedLayout !=
                          io::MoETensorNames::StackedLayout::GateRowsFirst &&
                      !isMXFP4(names.stackedGateUp());
    for (int64_t e = 0; e < config->numExperts; ++e) {
      FailureOr<Value> g, u, d;
      if (stacked) {
        g = param(gateUpHalf(names.stackedGateUp(), e, /*up=*/false, transposed), {inter, hidden});
        u = param(gateUpHalf(names.stackedGateUp(), e, /*up=*/true, transposed), {inter, hidden});
        d = param(ExternalParamAttr::get(ctx, b.getStringAttr(kCheckpointScope),
                                         b.getStringAttr(names.stackedDown()), e, -1, -1,
                                         transposed, 1),
                  {hidden, inter});
      } else {
        g = param(names.expert(e, names.gate()), {inter, hidden});
        u = param(names.expert(e, names.up()), {inter, hidden});
        d = param(names.expert(e, names.down()), {hidden, inter});
      }
      if (failed(appendExpert({g, u, d}, {&gate, &up, &down})))
        return failure();
    }
    return success();
  }

  /// gpt-oss: every routed expert's gate, up and down biases (stacked
  /// [E, 2I] like gate_up's columns, and [E, H]).
  LogicalResult importExpertBiases(const LayerTensorNames &names, SmallVectorImpl<Value> &gate,
                                   SmallVectorImpl<Value> &up, SmallVectorImpl<Value> &down) {
    int64_t hidden = config->hiddenSize, inter = config->moeIntermediateSize;
    for (int64_t e = 0; e < config->numExperts; ++e) {
      FailureOr<Value> g = param(gateUpHalf(names.stackedGateUpBias(), e, false, false), {inter});
      FailureOr<Value> u = param(gateUpHalf(names.stackedGateUpBias(), e, true, false), {inter});
      FailureOr<Value> d = param(ExternalParamAttr::get(ctx, b.getStringAttr(kCheckpointScope),
                                                        b.getStringAttr(names.stackedDownBias()),
                                                        e, -1, -1),
                                 {hidden});
      if (failed(appendExpert({g, u, d}, {&gate, &up, &down})))
        return failure();
    }
    return success();
  }

  LogicalResult importLayer(int64_t layer) {
    LayerTensorNames names = tensorNamesFor(*config, layer);
    int64_t hidden = config->hiddenSize;
    auto actType = RankedTensorType::get({ShapedType::kDynamic, hidden}, b.getF32Type());
    Location loc = NameLoc::get(b.getStringAttr("layer " + std::to_string(layer)), configLoc);
    auto func = func::FuncOp::create(b, loc, "moe_layer_" + std::to_string(layer),
                                     b.getFunctionType({actType}, {actType}));
    func->setAttr(kLayerAttrName, b.getI64IntegerAttr(layer));
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(func.addEntryBlock());

    FailureOr<Value> router = param(names.router(), {config->numExperts, hidden});
    if (failed(router))
      return failure();
    SmallVector<Value> gate, up, down;
    if (failed(importExperts(names, gate, up, down)))
      return failure();
    Value sharedGate, sharedUp, sharedDown, sharedExpertGate, scoreBias;
    if (int64_t sharedInter = config->sharedIntermediateSize()) {
      // (Shared experts use the per-expert linear names of DeepSeek/Qwen.)
      FailureOr<Value> g = param(names.shared("gate_proj"), {sharedInter, hidden});
      FailureOr<Value> u = param(names.shared("up_proj"), {sharedInter, hidden});
      FailureOr<Value> d = param(names.shared("down_proj"), {hidden, sharedInter});
      if (failed(g) || failed(u) || failed(d))
        return failure();
      sharedGate = *g, sharedUp = *u, sharedDown = *d;
      if (config->sharedExpertGate) {
        FailureOr<Value> sg = param(names.sharedGate(), {1, hidden});
        if (failed(sg))
          return failure();
        sharedExpertGate = *sg;
      }
    }
    if (const io::TensorInfo *stored = checkpoint->find(names.scoreBias())) {
      // ERNIE stores the bias as [1, E] (one row per expert group): row 0.
      int64_t row = stored->shape.size() == 2 && stored->shape[0] == 1 ? 0 : -1;
      FailureOr<Value> bias =
          param(ExternalParamAttr::get(ctx, b.getStringAttr(kCheckpointScope),
                                       b.getStringAttr(names.scoreBias()), row, -1, -1),
                {config->numExperts});
      if (failed(bias))
        return failure();
      scoreBias = *bias;
    }
    Value routerBias;
    SmallVector<Value> gateBias, upBias, downBias;
    if (config->hasRouterBias) {
      FailureOr<Value> bias = param(names.routerBias(), {config->numExperts});
      if (failed(bias))
        return failure();
      routerBias = *bias;
    }
    if (config->hasExpertBiases && failed(importExpertBiases(names, gateBias, upBias, downBias)))
      return failure();
    FailureOr<Activation> act = activation();
    if (failed(act))
      return failure();
    auto moe = MoEOp::create(
        b, loc, actType, func.getArgument(0), *router, gate, up, down, sharedGate, sharedUp,
        sharedDown, sharedExpertGate, scoreBias, routerBias, gateBias, upBias, downBias,
        b.getI64IntegerAttr(config->topK),
        ScoringFuncAttr::get(ctx, routing->scoring), ActivationAttr::get(ctx, *act),
        b.getBoolAttr(routing->normTopkProb), b.getF64FloatAttr(routing->scalingFactor),
        b.getI64IntegerAttr(routing->nGroup), b.getI64IntegerAttr(routing->topkGroup),
        GroupScoringAttr::get(ctx, routing->groupScoring),
        b.getF64FloatAttr(routing->jitterEps),
        config->routingWeightsScaleInput ? b.getUnitAttr() : UnitAttr(),
        b.getF64FloatAttr(config->swigluAlpha), b.getF64FloatAttr(config->swigluLimit));
    func::ReturnOp::create(b, loc, moe.getResult());
    return success();
  }

  /// Every tensor no MoE layer uses (nor the block scales of one), sorted.
  ArrayAttr passthroughTensors() {
    SmallVector<Attribute> refs;
    StringAttr model = b.getStringAttr(kCheckpointScope);
    for (StringRef name : checkpoint->tensorNames()) {
      StringRef weight = name;
      if (used.contains(name) || (weight.consume_back("_scale_inv") && used.contains(weight)))
        continue;
      refs.push_back(ExternalParamAttr::get(ctx, model, b.getStringAttr(name)));
    }
    return b.getArrayAttr(refs);
  }

  MLIRContext *ctx;
  OpBuilder b;
  std::string dir;
  Location configLoc = UnknownLoc::get(ctx);
  const io::MoEModelConfig *config = nullptr;
  io::Checkpoint *checkpoint = nullptr;
  const Routing *routing = nullptr;
  llvm::StringSet<> used;
};

} // namespace

OwningOpRef<ModuleOp> mlir::moeq::importHFCheckpoint(StringRef dir,
                                                     MLIRContext *context) {
  context->loadDialect<MoEQDialect, func::FuncDialect>();
  return HFImporter(context, dir).run();
}
