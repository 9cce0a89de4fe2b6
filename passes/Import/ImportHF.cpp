//===- ImportHF.cpp - Hugging Face MoE checkpoint -> moeq IR --------------===//
//
// Reads config.json and the safetensors shards' headers (never the weight
// data) and emits one function per MoE layer whose weights are
// `moeq.param` references into the checkpoint.
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
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

using namespace mlir;
using namespace mlir::moeq;

namespace {

/// How a checkpoint family names the tensors of one MoE layer.
struct MoETensorNames {
  std::function<std::string(int64_t layer)> router;
  std::function<std::string(int64_t layer, int64_t expert, StringRef role)> expert;
};

FailureOr<MoETensorNames> tensorNamesFor(const io::MoEModelConfig &config,
                                         Location loc) {
  if (config.modelType == "mixtral")
    return MoETensorNames{
        [](int64_t layer) {
          return "model.layers." + std::to_string(layer) +
                 ".block_sparse_moe.gate.weight";
        },
        [](int64_t layer, int64_t expert, StringRef role) {
          StringRef linear = role == "gate" ? "w1" : role == "up" ? "w3" : "w2";
          return "model.layers." + std::to_string(layer) +
                 ".block_sparse_moe.experts." + std::to_string(expert) + "." +
                 linear.str() + ".weight";
        }};
  return emitError(loc) << "model_type '" << config.modelType
                        << "' has no MoE importer yet (supported: mixtral)";
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
    auto config = io::loadModelConfig(configPath);
    if (!config) {
      emitError(FileLineColLoc::get(ctx, configPath, 0, 0))
          << llvm::toString(config.takeError());
      return nullptr;
    }
    auto checkpoint = io::Checkpoint::open(absDir);
    if (!checkpoint) {
      emitError(dirLoc) << llvm::toString(checkpoint.takeError());
      return nullptr;
    }
    this->config = &*config;
    this->checkpoint = checkpoint->get();
    FailureOr<MoETensorNames> names =
        tensorNamesFor(*config, FileLineColLoc::get(ctx, configPath, 0, 0));
    if (failed(names))
      return nullptr;
    this->names = &*names;

    OwningOpRef<ModuleOp> module = ModuleOp::create(dirLoc);
    (*module)->setAttr(kArchivesAttrName,
                       b.getDictionaryAttr(b.getNamedAttr("model", b.getStringAttr(absDir))));
    (*module)->setAttr("moeq.model", describeModel());
    b.setInsertionPointToEnd(module->getBody());
    for (int64_t layer = 0; layer < config->numLayers; ++layer)
      if (config->isMoELayer(layer) && failed(importLayer(layer)))
        return nullptr;
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
    });
  }

  /// A `moeq.param` for tensor `name`, checking it exists with `shape`.
  FailureOr<Value> param(StringRef name, ArrayRef<int64_t> shape) {
    const io::SafeTensorsFile *file = nullptr;
    const io::TensorInfo *info = checkpoint->find(name, &file);
    Location dirLoc = FileLineColLoc::get(ctx, dir, 0, 0);
    if (!info)
      return emitError(dirLoc) << "tensor '" << name
                               << "' is missing from the checkpoint";
    Location loc = NameLoc::get(b.getStringAttr(name),
                                FileLineColLoc::get(ctx, file->path(), 0, 0));
    if (ArrayRef<int64_t>(info->shape) != shape) {
      auto diag = emitError(loc) << "tensor '" << name << "' has shape [";
      llvm::interleaveComma(info->shape, diag);
      diag << "] but config.json implies [";
      llvm::interleaveComma(shape, diag);
      return diag << "]";
    }
    Type element;
    switch (info->dtype) {
    case io::DType::BF16: element = b.getBF16Type(); break;
    case io::DType::F16: element = b.getF16Type(); break;
    case io::DType::F32: element = b.getF32Type(); break;
    default:
      return emitError(loc) << "tensor '" << name << "' has unsupported dtype "
                            << io::dtypeName(info->dtype)
                            << " (expected BF16, F16 or F32)";
    }
    auto ref = ExternalParamAttr::get(ctx, b.getStringAttr("model"), b.getStringAttr(name));
    return ParamOp::create(b, loc, RankedTensorType::get(shape, element), ref).getResult();
  }

  FailureOr<Activation> activation() {
    if (config->hiddenAct == "silu" || config->hiddenAct == "swish")
      return Activation::SiLU;
    if (config->hiddenAct == "gelu")
      return Activation::GeLU;
    return emitError(FileLineColLoc::get(ctx, dir, 0, 0))
           << "config.json: unsupported hidden_act '" << config->hiddenAct << "'";
  }

  LogicalResult importLayer(int64_t layer) {
    int64_t hidden = config->hiddenSize, inter = config->moeIntermediateSize;
    auto actType = RankedTensorType::get({ShapedType::kDynamic, hidden}, b.getF32Type());
    Location loc = NameLoc::get(b.getStringAttr("layer " + std::to_string(layer)),
                                FileLineColLoc::get(ctx, dir, 0, 0));
    auto func = func::FuncOp::create(b, loc, "moe_layer_" + std::to_string(layer),
                                     b.getFunctionType({actType}, {actType}));
    func->setAttr("moeq.layer", b.getI64IntegerAttr(layer));
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(func.addEntryBlock());

    FailureOr<Value> router = param(names->router(layer), {config->numExperts, hidden});
    if (failed(router))
      return failure();
    SmallVector<Value> gate, up, down;
    for (int64_t e = 0; e < config->numExperts; ++e) {
      FailureOr<Value> g = param(names->expert(layer, e, "gate"), {inter, hidden});
      FailureOr<Value> u = param(names->expert(layer, e, "up"), {inter, hidden});
      FailureOr<Value> d = param(names->expert(layer, e, "down"), {hidden, inter});
      if (failed(g) || failed(u) || failed(d))
        return failure();
      gate.push_back(*g);
      up.push_back(*u);
      down.push_back(*d);
    }
    FailureOr<Activation> act = activation();
    if (failed(act))
      return failure();
    Value input = func.getArgument(0);
    auto moe = MoEOp::create(
        b, loc, actType, input, *router, gate, up, down, /*shared_gate=*/Value(),
        /*shared_up=*/Value(), /*shared_down=*/Value(),
        /*shared_expert_gate=*/Value(), /*score_bias=*/Value(),
        b.getI64IntegerAttr(config->topK),
        ScoringFuncAttr::get(ctx, config->scoringFunc == "sigmoid"
                                      ? ScoringFunc::Sigmoid
                                      : ScoringFunc::Softmax),
        ActivationAttr::get(ctx, *act), b.getBoolAttr(config->normTopkProb),
        b.getF64FloatAttr(config->routedScalingFactor), b.getI64IntegerAttr(1),
        b.getI64IntegerAttr(1));
    func::ReturnOp::create(b, loc, moe.getResult());
    return success();
  }

  MLIRContext *ctx;
  OpBuilder b;
  std::string dir;
  const io::MoEModelConfig *config = nullptr;
  io::Checkpoint *checkpoint = nullptr;
  const MoETensorNames *names = nullptr;
};

} // namespace

OwningOpRef<ModuleOp> mlir::moeq::importHFCheckpoint(StringRef dir,
                                                     MLIRContext *context) {
  context->loadDialect<MoEQDialect, func::FuncDialect>();
  return HFImporter(context, dir).run();
}
