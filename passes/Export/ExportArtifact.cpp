//===- ExportArtifact.cpp - PTX, manifest and weights of a compiled module ===//
#include "moeq/Passes/Export.h"
#include "moeq/Dialect/MoEQ/IR/MoEQ.h"
#include "moeq/IO/SafeTensors.h"
#include "moeq/Passes/ParameterArchives.h"
#include "moeq/CostModel/CostModel.h"
#include "moeq/Passes/Kernels.h"
#include "moeq/Passes/Passes.h"
#include "moeq/Runtime/ManifestVersion.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-translate/Translation.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/FormatVariadic.h"

#include <cmath>
#include <set>

using namespace mlir;
using namespace mlir::moeq;
namespace json = llvm::json;

//===----------------------------------------------------------------------===//
// PTX
//===----------------------------------------------------------------------===//

FailureOr<std::vector<PTXKernel>> mlir::moeq::collectPTX(ModuleOp module) {
  std::vector<PTXKernel> kernels;
  for (auto binary : module.getOps<gpu::BinaryOp>()) {
    bool found = false;
    for (Attribute attr : binary.getObjects()) {
      auto object = dyn_cast<gpu::ObjectAttr>(attr);
      if (!object || object.getFormat() != gpu::CompilationTarget::Assembly)
        continue;
      auto target = dyn_cast<NVVM::NVVMTargetAttr>(object.getTarget());
      if (!target)
        continue;
      kernels.push_back({binary.getSymName().str(), target.getChip().str(),
                         object.getObject().getValue().str()});
      found = true;
    }
    if (!found)
      return binary.emitError()
             << "holds no NVVM PTX assembly (compile with gpu-module-to-binary{format=isa})";
  }
  return kernels;
}

LogicalResult mlir::moeq::exportPTX(ModuleOp module, raw_ostream &os) {
  FailureOr<std::vector<PTXKernel>> kernels = collectPTX(module);
  if (failed(kernels))
    return failure();
  if (kernels->empty())
    return module.emitError() << "no gpu.binary to export: run the moeq-compile-gpu pipeline first";
  for (const PTXKernel &kernel : *kernels)
    os << "//--- " << kernel.name << ".ptx\n" << kernel.ptx;
  return success();
}

//===----------------------------------------------------------------------===//
// Manifest
//===----------------------------------------------------------------------===//

namespace {

/// Builds the manifest's JSON from a decomposed, kernel-annotated module.
class ManifestBuilder {
public:
  ManifestBuilder(ModuleOp module, const llvm::StringMap<std::string> &scopeFiles,
                  StringRef ptxDir)
      : module(module), scopeFiles(scopeFiles), ptxDir(ptxDir) {}

  FailureOr<json::Value> build() {
    json::Array layers;
    for (auto func : module.getOps<func::FuncOp>()) {
      if (func->hasAttr(kLaunchPlanAttrName))
        continue; // exported with its layer
      FailureOr<std::optional<json::Object>> layer = describeLayer(func);
      if (failed(layer))
        return failure();
      if (*layer)
        layers.push_back(std::move(**layer));
    }
    json::Array kernelList;
    for (auto &entry : kernels)
      kernelList.push_back(std::move(entry.second));
    json::Object root{{"format", "moeq-artifact"},
                      {"version", ::moeq::kManifestVersion},
                      {"layers", std::move(layers)},
                      {"kernels", std::move(kernelList)},
                      {"device_params", std::move(deviceParams)}};
    if (auto target = module->getAttrOfType<TargetAttr>(kTargetAttrName))
      root["target"] = target.getChip().getValue();
    json::Object files;
    for (auto &entry : scopeFiles)
      files[entry.getKey()] = entry.getValue();
    root["weight_files"] = std::move(files);
    if (auto model = module->getAttrOfType<DictionaryAttr>(kModelAttrName))
      root["model"] = describeDictionary(model);
    // granularity=layer: the model-wide allocation (its trade-off, objective, gap).
    if (auto allocation = module->getAttrOfType<DictionaryAttr>(kModelAllocationAttrName))
      root["allocation"] = describeDictionary(allocation);
    // Tensors carried through unchanged (attention, norms, dense layers).
    if (auto passthrough = module->getAttrOfType<ArrayAttr>(kPassthroughAttrName)) {
      json::Array tensors;
      for (auto ref : passthrough.getAsRange<ExternalParamAttr>()) {
        FailureOr<json::Object> entry = tensorRef(module, ref, "");
        if (failed(entry))
          return failure();
        tensors.push_back(std::move(*entry));
      }
      root["passthrough"] = std::move(tensors);
    }
    return json::Value(std::move(root));
  }

private:
  static json::Object describeDictionary(DictionaryAttr dict) {
    json::Object obj;
    for (NamedAttribute entry : dict) {
      Attribute v = entry.getValue();
      if (auto i = dyn_cast<IntegerAttr>(v))
        obj[entry.getName().getValue()] =
            i.getType().isInteger(1) ? json::Value(i.getValue().getBoolValue())
                                     : json::Value(i.getInt());
      else if (auto f = dyn_cast<FloatAttr>(v))
        obj[entry.getName().getValue()] = f.getValueAsDouble();
      else if (auto s = dyn_cast<StringAttr>(v))
        obj[entry.getName().getValue()] = s.getValue();
      else if (auto b = dyn_cast<BoolAttr>(v))
        obj[entry.getName().getValue()] = b.getValue();
      else if (auto ints = dyn_cast<DenseI64ArrayAttr>(v))
        obj[entry.getName().getValue()] = json::Array(ints.asArrayRef());
      else if (auto reals = dyn_cast<DenseF64ArrayAttr>(v))
        obj[entry.getName().getValue()] = json::Array(reals.asArrayRef());
    }
    return obj;
  }

  FailureOr<json::Object> tensorRef(Operation *at, ExternalParamAttr ref,
                                    StringRef suffix) {
    auto it = scopeFiles.find(ref.getScope().getValue());
    if (it == scopeFiles.end())
      return at->emitError() << "no output file for archive scope '"
                             << ref.getScope().getValue() << "'";
    json::Object obj = describeSelection(ref, suffix);
    obj["file"] = it->second;
    return obj;
  }

  /// The tensor `ref` names (with `suffix`) and, for a slice of a stacked
  /// tensor, the selection: matrix `index`, read transposed when stored
  /// [in, out], rows [offset, offset+count) every `step` rows.
  static json::Object describeSelection(ExternalParamAttr ref, StringRef suffix = "") {
    json::Object obj{{"tensor", (ref.getKey().getValue() + suffix).str()}};
    if (ref.getIndex() >= 0)
      obj["index"] = ref.getIndex();
    if (ref.getTransposed())
      obj["transposed"] = true;
    if (ref.getRowCount() >= 0)
      obj["rows"] = json::Array{ref.getRowOffset(), ref.getRowCount()};
    if (ref.getRowStep() > 1)
      obj["step"] = ref.getRowStep();
    return obj;
  }

  /// One linear: scheme, tensors, and kernel launch when compiled. `rows`
  /// names the runtime row count of its input (tokens of the expert, "M",
  /// or all tokens, "T").
  FailureOr<json::Object> describeWeight(Operation *op, Value weight, SymbolRefAttr kernel,
                                         TileConfigAttr tile, StringRef rows) {
    auto param = weight.getDefiningOp<ParamOp>();
    if (!param)
      return op->emitError() << "weight is not an external parameter";
    json::Object tensors;
    json::Object linear;
    if (auto packed = dyn_cast<PackedWeightType>(weight.getType())) {
      SchemeAttr scheme = packed.getScheme();
      for (StringRef suffix : scheme.getStorageSuffixes()) {
        FailureOr<json::Object> ref = tensorRef(op, param.getRef().withKeySuffix(suffix), "");
        if (failed(ref))
          return failure();
        tensors[suffix.drop_front()] = std::move(*ref);
      }
      linear["scheme"] = scheme.getMangledName();
      linear["bits"] = scheme.getWeightBits();
      linear["activation_bits"] = scheme.getActBits();
      if (packed.hasGroupBits())
        linear["group_bits"] = json::Array(packed.getGroupBits());
      if (scheme.quantizesActivations())
        linear["activation_quantization"] = "per-token dynamic symmetric: scale = max|x| / "
                                            "(2^(bits-1) - 1), round half to even";
      linear["group_size"] = scheme.getEffectiveGroupSize(packed.getInputDim());
      linear["symmetric"] = scheme.getSymmetric();
      // The checkpoint tensor (selection) it was quantized from: what
      // moeq-export writes the weight back as.
      ExternalParamAttr source = param.getSourceAttr();
      if (source && source.getScope().getValue() == kCheckpointScope)
        linear["source"] = describeSelection(source);
    } else {
      FailureOr<json::Object> ref = tensorRef(op, param.getRef(), "");
      if (failed(ref))
        return failure();
      tensors["weight"] = std::move(*ref);
      linear["scheme"] = "f16";
    }
    ArrayRef<int64_t> shape = getWeightShape(weight.getType());
    linear["shape"] = json::Array{shape[0], shape[1]};
    linear["tensors"] = std::move(tensors);
    auto grouped = dyn_cast<GroupedMatmulOp>(op);
    if (kernel && grouped && grouped->hasAttr(kPersistentAttrName)) {
      // One persistent launch serves every expert of the op.
      StringRef name = kernel.getRootReference().getValue();
      linear["kernel"] = name;
      recordPersistentKernel(name, grouped);
    } else if (kernel && tile) {
      StringRef name = kernel.getRootReference().getValue();
      linear["kernel"] = name;
      // A `leading_inputs` linear (pruned D^2-MoE down base) reads the
      // leading K columns of wider activation rows.
      auto leading = dyn_cast<LinearOp>(op);
      if (leading && leading.getLeadingInputs())
        linear["input_columns"] = leading.getInput().getType().getDimSize(1);
      recordKernel(name, tile);
    }
    return linear;
  }

  /// What the launch plan does not say about a GEMM kernel: its tile.
  void recordKernel(StringRef name, TileConfigAttr tile) {
    kernelInfo(name)["tile"] = json::Object{{"path", stringifyKernelFamily(tile.getPath())},
                                            {"bm", tile.getBm()}, {"bn", tile.getBn()},
                                            {"bk", tile.getBk()}, {"warps", tile.getWarps()},
                                            {"stages", tile.getStages()},
                                            {"split_k", tile.getSplitK()}};
  }

  /// The manifest entry of kernel `name` (created on first use).
  json::Object &kernelInfo(StringRef name) {
    auto [it, inserted] = kernels.try_emplace(name.str());
    if (inserted) {
      it->second["name"] = name;
      it->second["entry"] = name;
      it->second["ptx"] = (ptxDir + "/" + name + ".ptx").str();
      it->second["emulation"] = (ptxDir + "/" + name + ".emu.bc").str();
    }
    return it->second;
  }

  static SmallVector<Type> groupTypes(GroupedMatmulOp op) {
    return llvm::to_vector(op.getWeights().getTypes());
  }
  static SmallVector<TileConfigAttr> groupTiles(GroupedMatmulOp op) {
    return llvm::map_to_vector(*op.getTiles(),
                               [](Attribute a) { return cast<TileConfigAttr>(a); });
  }

  void recordPersistentKernel(StringRef name, GroupedMatmulOp op) {
    json::Object &kernel = kernelInfo(name);
    if (kernel.get("groups"))
      return;
    SmallVector<Type> types = groupTypes(op);
    SmallVector<TileConfigAttr> tiles = groupTiles(op);
    json::Array groups;
    for (auto [e, type] : llvm::enumerate(types)) {
      auto packed = dyn_cast<PackedWeightType>(type);
      const TileConfigAttr &tile = tiles[e];
      groups.push_back(json::Object{{"expert", int64_t(e)},
                                    {"scheme", packed ? packed.getScheme().getMangledName()
                                                      : std::string("f16")},
                                    {"tile", json::Object{{"bm", tile.getBm()},
                                                          {"bn", tile.getBn()},
                                                          {"bk", tile.getBk()},
                                                          {"stages", tile.getStages()}}}});
    }
    kernel["persistent"] = true;
    kernel["warps"] = tiles.front().getWarps();
    kernel["groups"] = std::move(groups);
  }

  /// The GEMMs of one expert linear (gate, up or down) of a layer: a
  /// grouped matmul, or D^2-MoE's split form (delta_sum of the base
  /// linear and the low-rank grouped matmuls a(b(x))).
  struct ExpertGemm {
    GroupedMatmulOp direct;
    LinearOp base;
    GroupedMatmulOp a, b;
    bool perToken = false; ///< base over the T tokens, output rows dispatched
    explicit operator bool() const { return direct || (base && a && b); }
    // (Op handles are values; the copies drop the const.)
    Value input() const {
      GroupedMatmulOp first = direct ? direct : b;
      return first.getInput();
    }
    unsigned experts() const {
      GroupedMatmulOp any = direct ? direct : a;
      return any.getWeights().size();
    }
  };
  static ExpertGemm resolveExpertGemm(Value output) {
    ExpertGemm gemm;
    if ((gemm.direct = output.getDefiningOp<GroupedMatmulOp>()))
      return gemm;
    if (auto sum = output.getDefiningOp<DeltaSumOp>()) {
      // Gate/up bases run per token, their rows then dispatched.
      Value base = sum.getBase();
      if (auto sorted = base.getDefiningOp<DispatchOp>()) {
        base = sorted.getInput();
        gemm.perToken = true;
      }
      gemm.base = base.getDefiningOp<LinearOp>();
      gemm.a = sum.getLowrank().getDefiningOp<GroupedMatmulOp>();
      gemm.b = gemm.a ? gemm.a.getInput().getDefiningOp<GroupedMatmulOp>() : GroupedMatmulOp();
    }
    return gemm;
  }

  FailureOr<json::Object> describeGroup(GroupedMatmulOp op, unsigned e) {
    SymbolRefAttr kernel =
        op.getKernels() ? cast<SymbolRefAttr>((*op.getKernels())[e]) : SymbolRefAttr();
    TileConfigAttr tile =
        op.getTiles() ? cast<TileConfigAttr>((*op.getTiles())[e]) : TileConfigAttr();
    FailureOr<json::Object> linear = describeWeight(op, op.getWeights()[e], kernel, tile, "M");
    if (failed(linear) || op.getBiases().empty())
      return linear;
    // gpt-oss: y = x W^T + bias (the plan adds it after the GEMM).
    FailureOr<json::Object> bias = floatTensorRef(op, op.getBiases()[e], "expert bias");
    if (failed(bias))
      return failure();
    (*(*linear)["tensors"].getAsObject())["bias"] = std::move(*bias);
    return linear;
  }

  /// The reference of a float parameter operand (a router or bias vector).
  FailureOr<json::Object> floatTensorRef(Operation *op, Value tensor, StringRef what) {
    auto param = tensor.getDefiningOp<ParamOp>();
    if (!param)
      return op->emitError() << what << " is not an external parameter";
    return tensorRef(op, param.getRef(), "");
  }

  FailureOr<json::Array> describeExperts(const ExpertGemm &gate, const ExpertGemm &up,
                                         const ExpertGemm &down) {
    json::Array experts;
    for (unsigned e = 0, n = gate.experts(); e < n; ++e) {
      json::Object linears;
      for (auto [role, gemm] : {std::pair<StringRef, const ExpertGemm *>{"gate", &gate},
                                {"up", &up},
                                {"down", &down}}) {
        if (gemm->direct) {
          FailureOr<json::Object> linear = describeGroup(gemm->direct, e);
          if (failed(linear))
            return failure();
          linears[role] = std::move(*linear);
          continue;
        }
        // D^2-MoE: t = kernel_b(x), y = kernel_a(t) + the layer's base GEMM.
        FailureOr<json::Object> b = describeGroup(gemm->b, e), a = describeGroup(gemm->a, e);
        if (failed(b) || failed(a))
          return failure();
        json::Object linear{{"delta", json::Object{{"b", std::move(*b)}, {"a", std::move(*a)}}},
                            {"base", ("delta_bases." + role).str()}};
        // The checkpoint tensor base + a . b replaces: what moeq-export
        // writes the rebuilt weight back as.
        auto sources = gemm->a->getAttrOfType<ArrayAttr>(kDeltaSourcesAttrName);
        auto source = sources && e < sources.size()
                          ? dyn_cast<ExternalParamAttr>(sources[e])
                          : ExternalParamAttr();
        if (source && source.getScope().getValue() == kCheckpointScope)
          linear["source"] = describeSelection(source);
        linears[role] = std::move(linear);
      }
      experts.push_back(json::Object{{"expert", e}, {"linears", std::move(linears)}});
    }
    return experts;
  }

  /// D^2-MoE layers: each split linear's base GEMM over all R = T * top_k
  /// sorted rows.
  FailureOr<std::optional<json::Object>> describeDeltaBases(const ExpertGemm &gate,
                                                            const ExpertGemm &up,
                                                            const ExpertGemm &down) {
    json::Object bases;
    for (auto [role, gemm] : {std::pair<StringRef, const ExpertGemm *>{"gate", &gate},
                              {"up", &up},
                              {"down", &down}}) {
      if (!gemm->base)
        continue;
      LinearOp op = gemm->base;
      FailureOr<json::Object> linear = describeWeight(
          op, op.getWeight(), op.getKernelAttr(), op.getTileAttr(), gemm->perToken ? "T" : "R");
      if (failed(linear))
        return failure();
      // Per token (gate, up): its output rows are sorted like the token
      // copies before the sum.
      (*linear)["rows"] = gemm->perToken ? "tokens, then sorted by expert like x" : "sorted rows";
      bases[role] = std::move(*linear);
    }
    if (bases.empty())
      return std::optional<json::Object>();
    return std::optional<json::Object>(std::move(bases));
  }

  /// The shared expert: linear(act(linear_gate(x)) * linear_up(x)), added to
  /// the routed output, scaled by sigmoid(linear_gate_logit(x)) if gated.
  FailureOr<json::Object> describeSharedExpert(Value output, Value gateLogits) {
    auto down = output.getDefiningOp<LinearOp>();
    auto act = down ? down.getInput().getDefiningOp<GatedActivationOp>() : nullptr;
    auto gate = act ? act.getGate().getDefiningOp<LinearOp>() : nullptr;
    auto up = act ? act.getUp().getDefiningOp<LinearOp>() : nullptr;
    if (!gate || !up)
      return emitError(output.getLoc()) << "shared expert is not in decomposed form";
    json::Object linears;
    for (auto [role, op] : {std::pair<StringRef, LinearOp>{"gate", gate}, {"up", up},
                            {"down", down}}) {
      FailureOr<json::Object> linear =
          describeWeight(op, op.getWeight(), op.getKernelAttr(), op.getTileAttr(), "T");
      if (failed(linear))
        return failure();
      linears[role] = std::move(*linear);
    }
    json::Object shared{{"linears", std::move(linears)}};
    if (gateLogits) {
      auto gateOp = gateLogits.getDefiningOp<LinearOp>();
      if (!gateOp)
        return emitError(gateLogits.getLoc()) << "shared expert gate is not a linear";
      FailureOr<json::Object> linear = describeWeight(
          gateOp, gateOp.getWeight(), gateOp.getKernelAttr(), gateOp.getTileAttr(), "T");
      if (failed(linear))
        return failure();
      shared["sigmoid_gate"] = std::move(*linear);
    }
    return shared;
  }

  /// A layer function holds router -> dispatch -> matmuls -> combine.
  FailureOr<std::optional<json::Object>> describeLayer(func::FuncOp func) {
    RouterOp router;
    CombineOp combine;
    func.walk([&](RouterOp op) { router = op; });
    func.walk([&](CombineOp op) { combine = op; });
    if (!router || !combine)
      return std::optional<json::Object>();
    ExpertGemm down = resolveExpertGemm(combine.getExpertOut());
    auto act = down ? down.input().getDefiningOp<GatedActivationOp>() : nullptr;
    ExpertGemm gate = act ? resolveExpertGemm(act.getGate()) : ExpertGemm();
    ExpertGemm up = act ? resolveExpertGemm(act.getUp()) : ExpertGemm();
    if (!gate || !up)
      return func.emitError() << "layer is not in decomposed MoE form";
    auto routerParam = router.getWeight().getDefiningOp<ParamOp>();
    if (!routerParam)
      return router.emitError() << "router weight is not an external parameter";
    FailureOr<json::Object> routerRef = tensorRef(router, routerParam.getRef(), "");
    FailureOr<json::Array> experts = describeExperts(gate, up, down);
    FailureOr<std::optional<json::Object>> deltaBases = describeDeltaBases(gate, up, down);
    if (failed(routerRef) || failed(experts) || failed(deltaBases))
      return failure();
    int64_t intermediate = act.getType().getDimSize(1);
    json::Object layer{
        {"function", func.getSymName()},
        {"hidden_size", router.getInput().getType().getDimSize(1)},
        {"intermediate_size", intermediate},
        {"num_experts", router.getWeight().getType().getDimSize(0)},
        {"top_k", router.getTopK()},
        {"scoring", stringifyScoringFunc(router.getScoring())},
        {"norm_topk_prob", router.getNormTopkProb()},
        {"routed_scaling_factor", router.getRoutedScalingFactor().convertToDouble()},
        {"activation", stringifyActivation(act.getActivation())},
        {"router", std::move(*routerRef)},
        {"experts", std::move(*experts)},
        {"dataflow",
         "router -> top-k -> sort tokens by expert -> per expert: gate = "
         "kernel(x), up = kernel(x), h = act(gate) * up, y = kernel(h) -> "
         "weighted scatter-add"}};
    if (failed(describeRouting(router, layer)))
      return failure();
    if (act.getActivation() == Activation::ClampedSwiGLU) {
      layer["swiglu_alpha"] = act.getSwigluAlpha().convertToDouble();
      layer["swiglu_limit"] = act.getSwigluLimit().convertToDouble();
    }
    if (combine.getUnweighted()) {
      layer["weights_on_inputs"] = true;
      layer["dataflow"] =
          "router -> top-k -> sort tokens by expert, each copy scaled by its routing weight "
          "-> per expert: gate = kernel(x), up = kernel(x), h = act(gate) * up, y = "
          "kernel(h) -> unweighted scatter-add";
    }
    if (Value shared = combine.getShared()) {
      FailureOr<json::Object> sharedExpert = describeSharedExpert(shared, combine.getSharedGate());
      if (failed(sharedExpert))
        return failure();
      layer["shared_expert"] = std::move(*sharedExpert);
    }
    if (auto layerIdx = func->getAttrOfType<IntegerAttr>(kLayerAttrName))
      layer["layer"] = layerIdx.getInt();
    if (auto plan = module.lookupSymbol<func::FuncOp>((func.getSymName() + "_launch").str())) {
      FailureOr<json::Object> steps = PlanExporter(*this, plan).exportPlan();
      if (failed(steps))
        return failure();
      layer["plan"] = std::move(*steps);
    }
    if (auto allocation = func->getAttrOfType<DictionaryAttr>(kAllocationAttrName))
      layer["allocation"] = describeDictionary(allocation);
    if (*deltaBases) {
      layer["delta_bases"] = std::move(**deltaBases);
      layer["dataflow"] =
          "router -> top-k -> sort tokens by expert -> per linear with a delta: "
          "y = base rows (gate, up: kernel_base(x) per token, sorted like x; down: "
          "kernel_base over the sorted rows) in the leading columns + per expert "
          "kernel_a(kernel_b(x)); gate, up, h = act(gate) * up, y = down(h) -> "
          "weighted scatter-add";
      if (auto delta = func->getAttrOfType<DictionaryAttr>(kDeltaAttrName))
        layer["delta"] = describeDictionary(delta);
    }
    return std::optional<json::Object>(std::move(layer));
  }

  /// The routing details beyond softmax top-k, only where they apply:
  /// the selection bias (DeepSeek-V3), group-limited top-k (DeepSeek), the
  /// sparsemixer jitter (Phi-3.5-MoE).
  LogicalResult describeRouting(RouterOp router, json::Object &layer) {
    if (Value bias = router.getScoreBias()) {
      auto param = bias.getDefiningOp<ParamOp>();
      if (!param)
        return router.emitError() << "router score bias is not an external parameter";
      FailureOr<json::Object> ref = tensorRef(router, param.getRef(), "");
      if (failed(ref))
        return failure();
      layer["score_bias"] = std::move(*ref);
    }
    if (router.getNGroup() > 1) {
      layer["n_group"] = router.getNGroup();
      layer["topk_group"] = router.getTopkGroup();
      layer["group_scoring"] = stringifyGroupScoring(router.getGroupScoring());
    }
    if (router.getScoring() == ScoringFunc::SparseMixer)
      layer["jitter_eps"] = router.getJitterEps().convertToDouble();
    if (Value bias = router.getLogitBias()) {
      FailureOr<json::Object> ref = floatTensorRef(router, bias, "router bias");
      if (failed(ref))
        return failure();
      layer["router_bias"] = std::move(*ref);
    }
    return success();
  }


  //===--------------------------------------------------------------------===//
  // Launch plan (docs/runtime.md): a serialization of @<layer>_launch
  //===--------------------------------------------------------------------===//

  /// Index of `param` in the manifest's device_params (added once).
  FailureOr<int64_t> deviceParamIndex(DeviceParamOp param) {
    MemRefType type = param.getType();
    auto key = std::make_pair(Attribute(param.getRef()), Type(type));
    auto it = deviceParamIndices.find(key);
    if (it != deviceParamIndices.end())
      return it->second;
    FailureOr<json::Object> ref = tensorRef(param, param.getRef(), "");
    if (failed(ref))
      return failure();
    (*ref)["dtype"] = dtypeName(type.getElementType());
    (*ref)["shape"] = json::Array(type.getShape());
    int64_t index = deviceParams.size();
    deviceParams.push_back(std::move(*ref));
    deviceParamIndices[key] = index;
    return index;
  }

  /// Index of an address table in device_params (after its entries).
  FailureOr<int64_t> addressTableIndex(DeviceAddressTableOp table) {
    json::Array rows;
    ValueRange params = table.getParams();
    size_t next = 0;
    for (int64_t size : table.getRowSizes()) {
      json::Array row;
      for (int64_t i = 0; i < size; ++i) {
        auto param = params[next++].getDefiningOp<DeviceParamOp>();
        if (!param)
          return table.emitError() << "an address table lists device parameters only";
        FailureOr<int64_t> index = deviceParamIndex(param);
        if (failed(index))
          return failure();
        row.push_back(*index);
      }
      rows.push_back(std::move(row));
    }
    int64_t index = deviceParams.size();
    deviceParams.push_back(json::Object{{"addresses", std::move(rows)},
                                        {"dtype", "u64"},
                                        {"shape", json::Array(table.getType().getShape())}});
    return index;
  }

  static std::string dtypeName(Type element) {
    if (element.isF16())
      return "f16";
    if (element.isF32())
      return "f32";
    if (element.isInteger(32))
      return "i32";
    if (element.isInteger(8))
      return "i8";
    return "";
  }

  /// Serializes one launch-plan function, op by op.
  class PlanExporter {
  public:
    PlanExporter(ManifestBuilder &manifest, func::FuncOp plan) : manifest(manifest), plan(plan) {}

    FailureOr<json::Object> exportPlan() {
      json::Array steps;
      Block &body = plan.getBody().front();
      Value input = body.getArgument(0);
      if (failed(addBuffer(input, "x", "input")))
        return failure();
      auto ret = cast<func::ReturnOp>(body.getTerminator());
      for (Operation &op : body) {
        LogicalResult converted =
            llvm::TypeSwitch<Operation *, LogicalResult>(&op)
                .Case([&](gpu::AllocOp alloc) {
                  auto name = alloc->getAttrOfType<StringAttr>(kBufferNameAttrName);
                  bool output = ret.getOperand(0) == alloc.getMemref();
                  return addBuffer(alloc.getMemref(), name ? name.getValue() : "buffer",
                                   output ? "output" : "");
                })
                .Case([&](memref::AllocOp alloc) {
                  auto name = alloc->getAttrOfType<StringAttr>(kBufferNameAttrName);
                  return addBuffer(alloc.getMemref(), name ? name.getValue() : "host", "",
                                   /*host=*/true);
                })
                .Case([&](gpu::LaunchFuncOp launch) { return addLaunch(launch, steps); })
                .Case([&](gpu::MemcpyOp copy) {
                  auto dst = bufferNames.find(copy.getDst()), src = bufferNames.find(copy.getSrc());
                  if (dst == bufferNames.end() || src == bufferNames.end())
                    return LogicalResult(copy.emitError() << "copies an unknown buffer");
                  steps.push_back(json::Object{{"copy", src->second}, {"to", dst->second}});
                  return success();
                })
                .Case<DeviceParamOp, DeviceAddressTableOp, KernelPointerOp, func::ReturnOp,
                      memref::DimOp,
                      memref::LoadOp>([](Operation *) { return success(); })
                .Default([&](Operation *other) -> LogicalResult {
                  if (other->getDialect() &&
                      other->getDialect()->getNamespace() == arith::ArithDialect::getDialectNamespace())
                    return success(); // expressions, read where used
                  return other->emitError() << "cannot be exported to the manifest's launch plan";
                });
        if (failed(converted))
          return failure();
      }
      return json::Object{{"function", plan.getSymName()},
                          {"buffers", std::move(buffers)},
                          {"steps", std::move(steps)}};
    }

  private:
    LogicalResult addBuffer(Value memref, StringRef base, StringRef binding, bool host = false) {
      auto type = cast<MemRefType>(memref.getType());
      std::string name = base.str();
      for (int i = 1; usedNames.count(name); ++i)
        name = (base + "_" + Twine(i)).str();
      usedNames.insert(name);
      bufferNames[memref] = name;
      json::Array shape;
      unsigned dynamicIndex = 0;
      for (int64_t d : type.getShape()) {
        if (!ShapedType::isDynamic(d)) {
          shape.push_back(d);
          continue;
        }
        Value size;
        if (auto alloc = memref.getDefiningOp<gpu::AllocOp>())
          size = alloc.getDynamicSizes()[dynamicIndex++];
        FailureOr<json::Value> e = size ? expression(size) : FailureOr<json::Value>(json::Value("T"));
        if (failed(e))
          return failure();
        shape.push_back(std::move(*e));
      }
      json::Object entry{{"name", name},
                         {"dtype", dtypeName(type.getElementType())},
                         {"shape", std::move(shape)}};
      if (!binding.empty())
        entry["binding"] = binding;
      if (host)
        entry["host"] = true;
      buffers.push_back(std::move(entry));
      return success();
    }

    /// An index or i32 value as a plan expression (docs/runtime.md).
    FailureOr<json::Value> expression(Value value) {
      Operation *def = value.getDefiningOp();
      if (!def)
        return emitError(value.getLoc()) << "a launch-plan expression depends on an argument";
      auto binary = [&](StringRef op) -> FailureOr<json::Value> {
        FailureOr<json::Value> lhs = expression(def->getOperand(0));
        FailureOr<json::Value> rhs = expression(def->getOperand(1));
        if (failed(lhs) || failed(rhs))
          return failure();
        return json::Value(json::Object{{op, json::Array{std::move(*lhs), std::move(*rhs)}}});
      };
      return llvm::TypeSwitch<Operation *, FailureOr<json::Value>>(def)
          .Case([&](arith::ConstantOp constant) -> FailureOr<json::Value> {
            if (auto i = dyn_cast<IntegerAttr>(constant.getValue()))
              return json::Value(i.getInt());
            return constant.emitError() << "is not an integer expression";
          })
          .Case([&](memref::DimOp dim) -> FailureOr<json::Value> {
            if (dim.getSource() != plan.getArgument(0))
              return dim.emitError() << "only the input's rows are a plan variable";
            return json::Value("T");
          })
          .Case([&](memref::LoadOp load) -> FailureOr<json::Value> {
            auto it = bufferNames.find(load.getMemref());
            FailureOr<json::Value> index =
                load.getIndices().size() == 1 ? expression(load.getIndices()[0])
                                              : FailureOr<json::Value>(failure());
            if (it == bufferNames.end() || failed(index))
              return load.emitError() << "loads from an unknown host buffer";
            return json::Value(json::Object{{"load", it->second}, {"index", std::move(*index)}});
          })
          .Case<arith::IndexCastOp, arith::IndexCastUIOp>(
              [&](Operation *cast) { return expression(cast->getOperand(0)); })
          .Case([&](arith::AddIOp) { return binary("add"); })
          .Case([&](arith::SubIOp) { return binary("sub"); })
          .Case([&](arith::MulIOp) { return binary("mul"); })
          .Case([&](arith::DivUIOp) { return binary("div"); })
          .Case([&](arith::CeilDivUIOp) { return binary("ceildiv"); })
          .Case([&](arith::MinUIOp) { return binary("min"); })
          .Case([&](arith::MaxUIOp) { return binary("max"); })
          .Default([&](Operation *other) -> FailureOr<json::Value> {
            return other->emitError() << "is not a launch-plan expression";
          });
    }

    FailureOr<json::Value> argument(Value value) {
      if (auto pointer = value.getDefiningOp<KernelPointerOp>()) {
        auto it = bufferNames.find(pointer.getBuffer());
        if (it == bufferNames.end())
          return pointer.emitError() << "points into an unknown buffer";
        json::Object arg{{"buffer", it->second}};
        if (Value row = pointer.getRow()) {
          FailureOr<json::Value> rowExpr = expression(row);
          if (failed(rowExpr))
            return failure();
          arg["offset"] = json::Object{
              {"mul", json::Array{std::move(*rowExpr), pointer.getRowElements()}}};
        }
        return json::Value(std::move(arg));
      }
      if (auto table = value.getDefiningOp<DeviceAddressTableOp>()) {
        FailureOr<int64_t> index = manifest.addressTableIndex(table);
        if (failed(index))
          return failure();
        return json::Value(json::Object{{"param", *index}});
      }
      if (auto param = value.getDefiningOp<DeviceParamOp>()) {
        FailureOr<int64_t> index = manifest.deviceParamIndex(param);
        if (failed(index))
          return failure();
        return json::Value(json::Object{{"param", *index}});
      }
      if (auto it = bufferNames.find(value); it != bufferNames.end())
        return json::Value(json::Object{{"buffer", it->second}});
      if (value.getType().isInteger(32)) {
        FailureOr<json::Value> e = expression(value);
        if (failed(e))
          return failure();
        return json::Value(json::Object{{"i32", std::move(*e)}});
      }
      return emitError(value.getLoc()) << "is not a kernel argument the runtime can bind";
    }

    LogicalResult addLaunch(gpu::LaunchFuncOp launch, json::Array &steps) {
      StringRef name = launch.getKernelModuleName().getValue();
      auto grid = launch.getGridSizeOperandValues(), block = launch.getBlockSizeOperandValues();
      json::Array gridJson, blockJson, args, argTypes;
      for (Value v : {grid.x, grid.y, grid.z}) {
        FailureOr<json::Value> e = expression(v);
        if (failed(e))
          return failure();
        gridJson.push_back(std::move(*e));
      }
      for (Value v : {block.x, block.y, block.z}) {
        std::optional<int64_t> threads = getConstantIntValue(v);
        if (!threads)
          return launch.emitError() << "block sizes must be constants";
        blockJson.push_back(*threads);
      }
      std::optional<int64_t> shared =
          launch.getDynamicSharedMemorySize()
              ? getConstantIntValue(launch.getDynamicSharedMemorySize())
              : std::optional<int64_t>(0);
      if (!shared)
        return launch.emitError() << "dynamic shared memory must be a constant";
      for (Value operand : launch.getKernelOperands()) {
        FailureOr<json::Value> arg = argument(operand);
        if (failed(arg))
          return failure();
        args.push_back(std::move(*arg));
        argTypes.push_back(operand.getType().isInteger(32) ? "i32" : "ptr");
      }
      json::Object &kernel = manifest.kernelInfo(name);
      if (!kernel.get("arguments"))
        kernel["arguments"] = std::move(argTypes);
      int64_t known = kernel.getInteger("shared_memory_bytes").value_or(0);
      kernel["shared_memory_bytes"] = std::max(known, *shared);
      kernel["block"] = json::Array(blockJson);
      steps.push_back(json::Object{{"launch", name},
                                   {"grid", std::move(gridJson)},
                                   {"block", std::move(blockJson)},
                                   {"shared_memory_bytes", *shared},
                                   {"args", std::move(args)}});
      return success();
    }

    ManifestBuilder &manifest;
    func::FuncOp plan;
    json::Array buffers;
    DenseMap<Value, std::string> bufferNames;
    std::set<std::string> usedNames;
  };

  ModuleOp module;
  const llvm::StringMap<std::string> &scopeFiles;
  StringRef ptxDir;
  std::map<std::string, json::Object> kernels; // sorted: deterministic output
  json::Array deviceParams;
  DenseMap<std::pair<Attribute, Type>, int64_t> deviceParamIndices;
};

} // namespace

FailureOr<json::Value>
mlir::moeq::buildManifest(ModuleOp module,
                          const llvm::StringMap<std::string> &scopeFiles,
                          StringRef ptxDir) {
  return ManifestBuilder(module, scopeFiles, ptxDir).build();
}

//===----------------------------------------------------------------------===//
// Weights
//===----------------------------------------------------------------------===//

/// Weights copied as they are still feed every token (a NaN router weight
/// poisons all routing): reject non-finite values like the quantizers do.
/// Bytes per read when tensors are checked and copied: what the copy holds
/// in memory at a time, whatever the tensor's size.
static constexpr uint64_t kCopyChunkBytes = uint64_t(4) << 20;

static LogicalResult checkFinite(Operation *at, StringRef key,
                                 const io::TensorInfo &info,
                                 const io::SafeTensorsFile &file) {
  if (!io::isFloatingPoint(info.dtype))
    return success();
  // Whole rows per chunk, so that the position is a row and column.
  int64_t cols = info.shape.empty() ? 1 : info.shape.back();
  uint64_t rowBytes = std::max<uint64_t>(1, cols * io::dtypeSize(info.dtype));
  uint64_t chunk = std::max<uint64_t>(1, kCopyChunkBytes / rowBytes) * rowBytes;
  std::optional<std::pair<int64_t, float>> bad;
  llvm::Error err = file.forEachChunk(
      info, 0, info.numBytes(), chunk,
      [&](uint64_t offset, ArrayRef<uint8_t> bytes) -> llvm::Error {
        auto values = io::decodeToFloat(info.dtype, bytes, key);
        if (!values)
          return values.takeError();
        int64_t first = offset / io::dtypeSize(info.dtype);
        for (auto [i, v] : llvm::enumerate(*values))
          if (!std::isfinite(v)) {
            bad.emplace(first + int64_t(i), v);
            return llvm::createStringError("non-finite");
          }
        return llvm::Error::success();
      });
  if (bad) {
    llvm::consumeError(std::move(err));
    return at->emitError() << "tensor '" << key << "' has a non-finite value " << bad->second
                           << " at row " << bad->first / cols << ", column "
                           << bad->first % cols;
  }
  if (err)
    return at->emitError() << llvm::toString(std::move(err));
  return success();
}

namespace {
/// Collects whole tensors from the archives into one safetensors file.
class ParamCopier {
public:
  ParamCopier(ParameterArchives &archives) : archives(archives) {
    // transformers 4.x loads a checkpoint only with format = pt: the
    // artifact's params.safetensors is the model's non-expert weights.
    writer.setMetadata("format", "pt");
    writer.setMetadata("producer", "moeq");
  }

  /// Copies tensor `key` of archive `scope` (once), with its fp8 block
  /// scales when it has them.
  LogicalResult copy(Operation *at, StringAttr scope, StringRef key) {
    if (!written.insert(key.str()).second)
      return success();
    MLIRContext *ctx = at->getContext();
    auto ref = ExternalParamAttr::get(ctx, scope, StringAttr::get(ctx, key));
    const io::SafeTensorsFile *file = nullptr;
    FailureOr<const io::TensorInfo *> info = archives.lookup(at->getLoc(), ref, &file);
    if (failed(info) || failed(checkFinite(at, key, **info, *file)))
      return failure();
    // Copied in chunks with pread when the file is written: neither the
    // tensor nor the archive is ever whole in memory or in the address
    // space (an archive may be a whole many-layer checkpoint).
    const io::TensorInfo *tensor = *info;
    if (llvm::Error err = writer.addTensor(
            key, tensor->dtype, tensor->shape, [tensor, file](llvm::raw_ostream &os) {
              return file->forEachChunk(
                  *tensor, 0, tensor->numBytes(), kCopyChunkBytes,
                  [&os](uint64_t, ArrayRef<uint8_t> bytes) {
                    os.write(reinterpret_cast<const char *>(bytes.data()), bytes.size());
                    return llvm::Error::success();
                  });
            }))
      return at->emitError() << llvm::toString(std::move(err));
    FailureOr<io::Checkpoint *> archive = archives.getArchive(at->getLoc(), scope);
    if (succeeded(archive) && (*archive)->hasBlockScales(key)) {
      StringRef weight = key;
      weight.consume_back(".weight");
      return copy(at, scope, (weight + ".weight_scale_inv").str());
    }
    return success();
  }

  /// Every tensor behind a parameter op (codes with scales and zeros, or
  /// with level tables, if packed).
  LogicalResult copy(ParamOp param) {
    ExternalParamAttr ref = param.getRef();
    auto packed = dyn_cast<PackedWeightType>(param.getType());
    if (!packed)
      return copy(param, ref.getScope(), ref.getKey().getValue());
    for (StringRef part : packed.getScheme().getStorageSuffixes())
      if (failed(copy(param, ref.getScope(), (ref.getKey().getValue() + part).str())))
        return failure();
    return success();
  }

  io::SafeTensorsWriter writer;

private:
  ParameterArchives &archives;
  std::set<std::string> written;
};
} // namespace

LogicalResult mlir::moeq::exportReferencedParams(ModuleOp module, StringRef path,
                                                 ArrayRef<StringRef> skipScopes) {
  FailureOr<ParameterArchives> archives = ParameterArchives::fromModule(module);
  if (failed(archives))
    return failure();
  ParamCopier copier(*archives);
  auto skipped = [&](ExternalParamAttr ref) {
    return llvm::is_contained(skipScopes, ref.getScope().getValue());
  };
  WalkResult result = module.walk([&](ParamOp param) {
    if (skipped(param.getRef()) || succeeded(copier.copy(param)))
      return WalkResult::advance();
    return WalkResult::interrupt();
  });
  if (result.wasInterrupted())
    return failure();
  if (auto passthrough = module->getAttrOfType<ArrayAttr>(kPassthroughAttrName))
    for (auto ref : passthrough.getAsRange<ExternalParamAttr>())
      if (!skipped(ref) && failed(copier.copy(module, ref.getScope(), ref.getKey().getValue())))
        return failure();
  if (llvm::Error err = copier.writer.writeAtomically(path))
    return module.emitError() << "cannot write '" << path
                              << "': " << llvm::toString(std::move(err));
  return success();
}

//===----------------------------------------------------------------------===//
// moeq-translate registrations
//===----------------------------------------------------------------------===//

static void registerExportDialects(DialectRegistry &registry) {
  registerAllMoEQDependencies(registry);
}

void mlir::moeq::registerExportTranslations() {
  static llvm::cl::opt<std::string> weightsOutput(
      "weights-output",
      llvm::cl::desc("--export-weights, --export-dequantized: the safetensors file to write"),
      llvm::cl::init(""));
  TranslateFromMLIRRegistration ptx(
      "export-ptx", "write the PTX of every gpu.binary (split-file format)",
      [](Operation *op, raw_ostream &os) {
        return exportPTX(cast<ModuleOp>(op), os);
      },
      registerExportDialects);
  TranslateFromMLIRRegistration manifest(
      "export-manifest", "write the deployment manifest (JSON)",
      [](Operation *op, raw_ostream &os) -> LogicalResult {
        auto module = cast<ModuleOp>(op);
        llvm::StringMap<std::string> files;
        if (auto dict = module->getAttrOfType<DictionaryAttr>(kArchivesAttrName))
          for (NamedAttribute entry : dict)
            if (auto path = dyn_cast<StringAttr>(entry.getValue()))
              files[entry.getName().getValue()] = path.getValue().str();
        FailureOr<json::Value> json = buildManifest(module, files, "kernels");
        if (failed(json))
          return failure();
        os << llvm::formatv("{0:2}", *json) << "\n";
        return success();
      },
      registerExportDialects);
  // Translations that write a safetensors file named by --weights-output.
  auto registerFileExport = [](StringRef name, StringRef description,
                               LogicalResult (*write)(ModuleOp, StringRef)) {
    TranslateFromMLIRRegistration(
        name, description,
        [name, write](Operation *op, raw_ostream &os) -> LogicalResult {
          if (weightsOutput.empty())
            return op->emitError() << "--" << name << " needs --weights-output FILE";
          if (failed(write(cast<ModuleOp>(op), weightsOutput)))
            return failure();
          os << "wrote " << weightsOutput << "\n";
          return success();
        },
        registerExportDialects);
  };
  registerFileExport("export-weights",
                     "copy every referenced parameter into one safetensors file "
                     "(--weights-output FILE)",
                     [](ModuleOp module, StringRef path) {
                       return exportReferencedParams(module, path);
                     });
  registerFileExport("export-dequantized",
                     "write every quantized weight dequantized (F32) under its original "
                     "name, an override for PyTorch evaluation (--weights-output FILE)",
                     exportDequantized);
}
