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
          getStatsRef(context, layer, "expert_counts"), expert};
}

ExpertSampleRefs mlir::moeq::getSharedExpertSampleRefs(MLIRContext *context, int64_t layer) {
  return {-1, getStatsRef(context, layer, "shared.samples"),
          getStatsRef(context, layer, "shared.sample_weights"),
          getStatsRef(context, layer, "tokens"), 0};
}

FailureOr<bool> mlir::moeq::hasExpertSamples(MoEOp moe, int64_t layer,
                                             ParameterArchives &archives, bool shared) {
  if (!archives.hasScope("stats") || layer < 0)
    return false;
  return archives.contains(moe.getLoc(), getStatsRef(moe.getContext(), layer,
                                                     shared ? "shared.samples"
                                                            : "experts.0.samples"));
}

FailureOr<std::pair<quant::ExpertOutputError, double>>
mlir::moeq::loadExpertOutputError(MoEOp moe, const ExpertSampleRefs &refs, ArrayRef<float> gate,
                                  ArrayRef<float> up, ArrayRef<float> down,
                                  ParameterArchives &archives, std::mutex &archiveMutex) {
  Location loc = moe.getLoc();
  FailureOr<std::vector<double>> samples = failure(), weightsOfRows = failure(),
                                 counts = failure();
  int64_t hidden = 0;
  {
    std::lock_guard<std::mutex> lock(archiveMutex);
    const io::SafeTensorsFile *file = nullptr;
    FailureOr<const io::TensorInfo *> info = archives.lookup(loc, refs.samples, &file);
    if (failed(info))
      return failure();
    if ((*info)->shape.size() != 2)
      return emitError(loc) << "statistics: the samples of expert " << refs.expert
                            << " are not a matrix";
    int64_t n = (*info)->shape[0];
    hidden = (*info)->shape[1];
    FailureOr<const io::TensorInfo *> countInfo = archives.lookup(loc, refs.counts, &file);
    if (failed(countInfo))
      return failure();
    samples = archives.readFloat64(loc, refs.samples, {n, hidden});
    weightsOfRows = archives.readFloat64(loc, refs.sampleWeights, {n});
    counts = archives.readFloat64(loc, refs.counts, (*countInfo)->shape);
    archives.releasePages();
  }
  if (failed(samples) || failed(weightsOfRows) || failed(counts))
    return failure();
  int64_t inter = hidden ? int64_t(gate.size()) / hidden : 0;
  if (!hidden || int64_t(gate.size()) != inter * hidden || down.size() != gate.size() ||
      refs.countIndex >= int64_t(counts->size()))
    return emitError(loc) << "expert " << refs.expert << ": the statistics' samples of width "
                          << hidden << " do not fit its weights";
  // gpt-oss: the expert's biases and the clamped SwiGLU's constants.
  quant::ExpertExtras extras;
  extras.swigluAlpha = moe.getSwigluAlpha().convertToDouble();
  extras.swigluLimit = moe.getSwigluLimit().convertToDouble();
  for (auto [biases, out] :
       {std::pair<ValueRange, std::vector<float> *>{moe.getGateBias(), &extras.gateBias},
        {moe.getUpBias(), &extras.upBias},
        {moe.getDownBias(), &extras.downBias}}) {
    if (biases.empty() || refs.expert < 0) // (no shared expert has biases)
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
  double scale = error->rows() ? (*counts)[refs.countIndex] / error->rows() : 0.0;
  return std::make_pair(std::move(*error), scale);
}

quant::ExpertOutputError::Linear mlir::moeq::toOutputErrorLinear(StringRef linear) {
  return linear == "gate" ? quant::ExpertOutputError::Linear::Gate
         : linear == "up" ? quant::ExpertOutputError::Linear::Up
                          : quant::ExpertOutputError::Linear::Down;
}
