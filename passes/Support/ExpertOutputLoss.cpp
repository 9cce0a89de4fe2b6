//===- ExpertOutputLoss.cpp - MxMoE's measured loss of a routed expert ----===//
#include "moeq/Passes/ExpertOutputLoss.h"
#include "moeq/Passes/ExpertWeights.h"
#include "moeq/Passes/ParameterArchives.h"

using namespace mlir;
using namespace mlir::moeq;

ExpertSampleRefs mlir::moeq::getExpertSampleRefs(MLIRContext *context, int64_t layer,
                                                 int64_t expert) {
  std::string prefix = "experts." + std::to_string(expert) + ".";
  return {expert, getStatsRef(context, layer, prefix + "samples"),
          getStatsRef(context, layer, prefix + "sample_weights"),
          getStatsRef(context, layer, "expert_counts")};
}

FailureOr<bool> mlir::moeq::hasExpertSamples(MoEOp moe, int64_t layer,
                                             ParameterArchives &archives) {
  if (!archives.hasScope("stats") || layer < 0)
    return false;
  return archives.contains(moe.getLoc(),
                           getStatsRef(moe.getContext(), layer, "experts.0.samples"));
}

FailureOr<std::pair<quant::ExpertOutputError, double>>
mlir::moeq::loadExpertOutputError(MoEOp moe, const ExpertSampleRefs &refs, ArrayRef<float> gate,
                                  ArrayRef<float> up, ArrayRef<float> down,
                                  ParameterArchives &archives, std::mutex &archiveMutex) {
  // The gate's shape, float or already typed as packed by a quantize.
  Type gateType = moe.getGate()[refs.expert].getType();
  int64_t inter = 0, hidden = 0;
  if (auto packed = dyn_cast<PackedWeightType>(gateType)) {
    inter = packed.getOutputDim();
    hidden = packed.getInputDim();
  } else if (auto tensor = dyn_cast<RankedTensorType>(gateType); tensor && tensor.getRank() == 2) {
    inter = tensor.getDimSize(0);
    hidden = tensor.getDimSize(1);
  }
  if (int64_t(gate.size()) != inter * hidden || int64_t(down.size()) != inter * hidden)
    return emitError(moe.getLoc()) << "expert " << refs.expert
                                   << ": the measured loss needs a 2-D gate weight";
  int64_t numExperts = int64_t(moe.getGate().size());
  Location loc = moe.getLoc();
  FailureOr<std::vector<double>> samples = failure(), weightsOfRows = failure(),
                                 counts = failure();
  {
    std::lock_guard<std::mutex> lock(archiveMutex);
    const io::SafeTensorsFile *file = nullptr;
    FailureOr<const io::TensorInfo *> info = archives.lookup(loc, refs.samples, &file);
    if (failed(info))
      return failure();
    int64_t n = (*info)->shape.empty() ? 0 : (*info)->shape[0];
    samples = archives.readFloat64(loc, refs.samples, {n, hidden});
    weightsOfRows = archives.readFloat64(loc, refs.sampleWeights, {n});
    counts = archives.readFloat64(loc, refs.counts, {numExperts});
    archives.releasePages();
  }
  if (failed(samples) || failed(weightsOfRows) || failed(counts))
    return failure();
  // gpt-oss: the expert's biases and the clamped SwiGLU's constants.
  quant::ExpertExtras extras;
  extras.swigluAlpha = moe.getSwigluAlpha().convertToDouble();
  extras.swigluLimit = moe.getSwigluLimit().convertToDouble();
  for (auto [biases, out] :
       {std::pair<ValueRange, std::vector<float> *>{moe.getGateBias(), &extras.gateBias},
        {moe.getUpBias(), &extras.upBias},
        {moe.getDownBias(), &extras.downBias}}) {
    if (biases.empty())
      continue;
    auto param = biases[refs.expert].getDefiningOp<ParamOp>();
    if (!param)
      return emitError(loc) << "expert " << refs.expert << ": a bias is not a moeq.param";
    std::lock_guard<std::mutex> lock(archiveMutex);
    FailureOr<std::vector<float>> values = archives.readAsFloat(param.getLoc(), param.getRef());
    if (failed(values))
      return failure();
    *out = std::move(*values);
  }
  quant::GatedActivation activation = quant::GatedActivation::SiLU;
  if (moe.getActivation() == Activation::GeLU)
    activation = quant::GatedActivation::GeLU;
  else if (moe.getActivation() == Activation::ClampedSwiGLU)
    activation = quant::GatedActivation::ClampedSwiGLU;
  auto error = quant::ExpertOutputError::create(*samples, *weightsOfRows, hidden, gate, up, down,
                                                inter, activation, std::move(extras));
  if (!error)
    return emitError(loc) << "expert " << refs.expert << ": "
                          << llvm::toString(error.takeError());
  double scale = error->rows() ? (*counts)[refs.expert] / error->rows() : 0.0;
  return std::make_pair(std::move(*error), scale);
}

quant::ExpertOutputError::Linear mlir::moeq::toOutputErrorLinear(StringRef linear) {
  return linear == "gate" ? quant::ExpertOutputError::Linear::Gate
         : linear == "up" ? quant::ExpertOutputError::Linear::Up
                          : quant::ExpertOutputError::Linear::Down;
}
