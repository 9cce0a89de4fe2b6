//===- ExpertOutputLoss.h - MxMoE's measured loss of a routed expert -*- C++ -*-===//
//
// What the passes that rank quantizations by the measured layer-output
// error share (moeq-estimate-sensitivity, moeq-assign-group-bits): where a
// routed expert's calibration input samples live in the statistics file,
// and the expert, read as floats, with those samples through it.
//
//===----------------------------------------------------------------------===//
#ifndef MOEQ_PASSES_EXPERTOUTPUTLOSS_H
#define MOEQ_PASSES_EXPERTOUTPUTLOSS_H

#include "moeq/Dialect/MoEQ/IR/MoEQ.h"
#include "moeq/Quant/OutputError.h"

#include <mutex>
#include <utility>

namespace mlir::moeq {

class ParameterArchives;

/// The statistics tensors of one expert's measured loss, created on the
/// main thread (tasks read attributes, never create them): its samples,
/// their combine weights, and the count of calibration rows they stand
/// for (`counts[countIndex]`: expert_counts[e] for a routed expert, the
/// layer's tokens for the shared expert, which sees every token).
struct ExpertSampleRefs {
  int64_t expert = -1; ///< -1: the shared expert
  ExternalParamAttr samples, sampleWeights, counts;
  int64_t countIndex = 0;
};
ExpertSampleRefs getExpertSampleRefs(MLIRContext *context, int64_t layer, int64_t expert);
ExpertSampleRefs getSharedExpertSampleRefs(MLIRContext *context, int64_t layer);

/// Whether the statistics hold input samples of `moe`'s layer for the
/// routed experts (or, with `shared`, the shared expert): the measured
/// loss needs them (moeq_calibrate.py / moeq-stats --samples-per-expert
/// > 0; the shared expert's since issue 17).
FailureOr<bool> hasExpertSamples(MoEOp moe, int64_t layer, ParameterArchives &archives,
                                 bool shared = false);

/// The measured output error of expert `refs.expert` of `moe` (routed, or
/// the shared one): its calibration input samples through the float
/// expert (`gate`, `up`, `down`, with the op's activation; a routed
/// expert's biases), and the factor that scales the samples' error to all
/// of the rows they stand for. Safe in a task: reads the archives through
/// `archiveMutex`, creates no attribute.
FailureOr<std::pair<quant::ExpertOutputError, double>>
loadExpertOutputError(MoEOp moe, const ExpertSampleRefs &refs, ArrayRef<float> gate,
                      ArrayRef<float> up, ArrayRef<float> down, ParameterArchives &archives,
                      std::mutex &archiveMutex);

/// "gate", "up" or "down" as the linear ExpertOutputError replaces.
quant::ExpertOutputError::Linear toOutputErrorLinear(StringRef linear);

} // namespace mlir::moeq

#endif // MOEQ_PASSES_EXPERTOUTPUTLOSS_H
