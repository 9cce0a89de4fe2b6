//===- ExpertWeights.cpp - the quantizable weights of a moeq.moe ----------===//
#include "moeq/Passes/ExpertWeights.h"
#include "moeq/Passes/ParameterArchives.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"

#include <set>

using namespace mlir;
using namespace mlir::moeq;

SmallVector<WeightSlot> mlir::moeq::getWeightSlots(MoEOp moe, bool withShared) {
  SmallVector<WeightSlot> slots;
  auto add = [&](MutableOperandRange range, bool shared, StringRef linear) {
    for (auto [index, operand] : llvm::enumerate(range))
      slots.push_back({&operand, shared, shared ? -1 : int64_t(index), linear});
  };
  add(moe.getGateMutable(), false, "gate");
  add(moe.getUpMutable(), false, "up");
  add(moe.getDownMutable(), false, "down");
  if (withShared) {
    add(moe.getSharedGateMutable(), true, "gate");
    add(moe.getSharedUpMutable(), true, "up");
    add(moe.getSharedDownMutable(), true, "down");
  }
  return slots;
}

int64_t mlir::moeq::getLayerIndex(MoEOp moe) {
  if (auto func = moe->getParentOfType<func::FuncOp>())
    if (auto index = func->getAttrOfType<IntegerAttr>(kLayerAttrName))
      return index.getInt();
  return -1;
}

std::string mlir::moeq::getHessianName(const WeightSlot &slot, bool sharedGated,
                                       bool weighted) {
  bool down = slot.linear == "down";
  if (slot.shared) {
    if (down)
      return weighted && sharedGated ? "shared.gram_down_weighted" : "shared.gram_down";
    return weighted && sharedGated ? "shared.gram_in_weighted" : "gram_all";
  }
  std::string name =
      "experts." + std::to_string(slot.expert) + (down ? ".gram_down" : ".gram_in");
  return weighted ? name + "_weighted" : name;
}

ExternalParamAttr mlir::moeq::getStatsRef(MLIRContext *context, int64_t layer,
                                          StringRef name) {
  return ExternalParamAttr::get(
      context, StringAttr::get(context, "stats"),
      StringAttr::get(context, "layers." + std::to_string(layer) + "." + name));
}

std::string mlir::moeq::describeWeight(Value weight) {
  if (auto param = weight.getDefiningOp<ParamOp>())
    return ("'" + param.getRef().getKey().getValue() + "'").str();
  return "operand";
}

int64_t mlir::moeq::fitGroupSize(int64_t groupSize, int64_t inputDim) {
  if (groupSize == 0 || inputDim % groupSize == 0)
    return groupSize;
  // Halving keeps the group a multiple of the powers of two the kernels'
  // K tiles are, and the scale overhead closest to the requested scheme's,
  // down to 32 columns (the smallest group the candidates offer, whose
  // codes fill whole words at any width): smaller groups would cost more
  // in scales than they gain, so a width no such group divides (200 = 8 x
  // 25) is quantized per channel instead.
  // One group spanning the whole row is per-channel quantization: say so
  // (low-rank factors of rank 32 at group 128).
  for (int64_t fitted = groupSize / 2; fitted >= std::min<int64_t>(32, groupSize / 2) &&
                                       fitted % 8 == 0;
       fitted /= 2)
    if (inputDim % fitted == 0)
      return fitted == inputDim ? 0 : fitted;
  return 0;
}

SchemeAttr mlir::moeq::fitSchemeToInputs(SchemeAttr scheme, int64_t inputDim) {
  int64_t fitted = fitGroupSize(scheme.getGroupSize(), inputDim);
  if (fitted == scheme.getGroupSize())
    return scheme;
  return SchemeAttr::get(scheme.getContext(), scheme.getWeightBits(), scheme.getActBits(),
                         fitted, scheme.getSymmetric(), scheme.getFormat());
}

void mlir::moeq::reportFittedGroupSizes(ModuleOp module, ArrayRef<SchemeAttr> requested) {
  // One warning per (input dimension, requested group size): the weights of
  // a model share a handful of widths.
  std::set<std::tuple<int64_t, int64_t, int64_t>> fitted;
  module.walk([&](QuantizeOp op) {
    int64_t inputDim = cast<PackedWeightType>(op.getResult().getType()).getInputDim();
    for (SchemeAttr scheme : requested) {
      int64_t group = scheme.getGroupSize();
      if (group > 0 && inputDim % group != 0)
        fitted.insert({inputDim, group, fitGroupSize(group, inputDim)});
    }
  });
  for (auto [inputDim, group, chosen] : fitted) {
    InFlightDiagnostic warning = module.emitWarning()
                                 << "input dimension " << inputDim
                                 << " is not a multiple of the group size " << group << ": ";
    if (chosen)
      warning << "its weights use groups of " << chosen;
    else
      warning << "its weights use one scale per output channel";
  }
}

LogicalResult mlir::moeq::quantizeDeltaOperand(DeltaWeightOp delta, unsigned index,
                                               SchemeAttr scheme,
                                               const QuantizeSettings &settings) {
  Value value = delta->getOperand(index);
  auto tensorType = dyn_cast<RankedTensorType>(value.getType());
  if (!tensorType)
    return success(); // (the shared base or b, already quantized for another expert)
  auto param = value.getDefiningOp<ParamOp>();
  if (!param)
    return delta.emitError() << "delta factors must be parameters to be quantized";
  SchemeAttr fitted = fitSchemeToInputs(scheme, tensorType.getDimSize(1));
  auto diag = [&]() {
    return delta.emitError() << "cannot quantize '" << param.getRef().getKey().getValue()
                             << "' (use rank-multiple=32 for any width): ";
  };
  auto packedType =
      PackedWeightType::getChecked(diag, delta.getContext(), tensorType.getShape(), fitted);
  if (!packedType)
    return failure();
  ExternalParamAttr hessian;
  if (settings.method != QuantMethod::RTN) {
    hessian = param->getAttrOfType<ExternalParamAttr>(kHessianAttrName);
    if (!hessian)
      return delta.emitError() << "'" << param.getRef().getKey().getValue()
                               << "' has no recorded Hessian for GPTQ: run "
                                  "moeq-delta-decompress with statistics";
  }
  OpBuilder builder(param->getBlock(), std::next(param->getIterator()));
  auto quantize = QuantizeOp::create(builder, param.getLoc(), packedType, param.getResult(),
                                     settings.method, hessian, settings.actOrder,
                                     settings.mseClip, settings.salienceClip);
  param.getResult().replaceAllUsesExcept(quantize.getResult(), quantize);
  return success();
}

LogicalResult mlir::moeq::quantizeSlot(const WeightSlot &slot, SchemeAttr scheme,
                                       const QuantizeSettings &settings, int64_t layer,
                                       bool sharedGated) {
  OpOperand &operand = *slot.operand;
  if (auto delta = operand.get().getDefiningOp<DeltaWeightOp>()) {
    for (unsigned index : {0u, 1u, 2u})
      if (failed(quantizeDeltaOperand(delta, index, scheme, settings)))
        return failure();
    return success();
  }
  auto tensorType = dyn_cast<RankedTensorType>(operand.get().getType());
  if (!tensorType)
    return success(); // Already quantized.
  Operation *user = operand.getOwner();
  MLIRContext *context = user->getContext();
  auto diag = [&]() {
    return user->emitError() << "cannot quantize expert weight "
                             << describeWeight(operand.get()) << ": ";
  };
  auto packedType = PackedWeightType::getChecked(
      diag, context, tensorType.getShape(), fitSchemeToInputs(scheme, tensorType.getDimSize(1)));
  if (!packedType)
    return failure();
  ExternalParamAttr hessian;
  if (settings.hasStats && settings.method != QuantMethod::RTN)
    hessian = getStatsRef(context, layer,
                          getHessianName(slot, sharedGated,
                                         settings.method == QuantMethod::AGQ));
  OpBuilder builder(user);
  auto quantize = QuantizeOp::create(builder, operand.get().getLoc(), packedType,
                                     operand.get(), settings.method, hessian,
                                     settings.actOrder, settings.mseClip, settings.salienceClip);
  operand.set(quantize);
  return success();
}

FailureOr<QuantizeSettings> mlir::moeq::parseQuantizeSettings(ModuleOp module,
                                                              QuantMethod method,
                                                              StringRef statsPath,
                                                              bool actOrder, bool mseClip,
                                                              bool salienceClip,
                                                              bool statsWithRTN) {
  if (method == QuantMethod::RTN && ((!statsPath.empty() && !statsWithRTN) || actOrder))
    return module.emitError() << "'" << (actOrder ? "act-order" : "stats")
                              << "' needs method gptq or agq";
  if (mseClip && salienceClip)
    return module.emitError() << "'mse-clip' and 'salience-clip' are alternative range "
                                 "searches; choose one";
  if (!statsPath.empty())
    ParameterArchives::registerInModule(module, "stats", statsPath);
  return QuantizeSettings{method, !statsPath.empty(), actOrder, mseClip, salienceClip};
}

FailureOr<SmallVector<SchemeAttr>> mlir::moeq::parseSchemeList(ModuleOp module,
                                                               StringRef list) {
  SmallVector<StringRef> names;
  list.split(names, ',', /*MaxSplit=*/-1, /*KeepEmpty=*/false);
  if (names.empty())
    return module.emitError() << "the list of candidate schemes is empty";
  SmallVector<SchemeAttr> schemes;
  for (StringRef name : names) {
    std::string error;
    SchemeAttr scheme = SchemeAttr::fromMangledName(module.getContext(), name.trim(), error);
    if (!scheme)
      return module.emitError() << error;
    if (!scheme.isQuantized())
      return module.emitError() << "candidate scheme '" << name.trim()
                                << "' does not quantize (weight bits must be 1-8)";
    if (scheme.getFormat() == NumberFormat::FP8E4M3)
      return module.emitError() << "candidate scheme '" << name.trim()
                                << "': the compiler does not quantize to fp8 (int or lut)";
    if (llvm::is_contained(schemes, scheme))
      return module.emitError() << "candidate scheme '" << name.trim() << "' is listed twice";
    schemes.push_back(scheme);
  }
  return schemes;
}

quant::Scheme mlir::moeq::toStorageScheme(SchemeAttr scheme) {
  return {scheme.getWeightBits(), scheme.getGroupSize(), scheme.getSymmetric(), {},
          scheme.isLevelTable()};
}

quant::Scheme mlir::moeq::toStorageScheme(PackedWeightType type) {
  quant::Scheme scheme = toStorageScheme(type.getScheme());
  for (int64_t bits : type.getGroupBits())
    scheme.groupBits.push_back(uint8_t(bits));
  return scheme;
}

bool mlir::moeq::canMixGroupWidths(SchemeAttr scheme, int64_t inputDim) {
  return !scheme.isPerChannel() && !scheme.getSymmetric() && !scheme.isLevelTable() &&
         !scheme.quantizesActivations() && scheme.getWeightBits() >= 2 &&
         scheme.getWeightBits() <= 7 && inputDim % scheme.getGroupSize() == 0 &&
         inputDim / scheme.getGroupSize() >= 2;
}
