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

/// The statistics tensors of one routed expert's measured loss, created
/// on the main thread (tasks read attributes, never create them).
struct ExpertSampleRefs {
  int64_t expert = -1;
  ExternalParamAttr samples, sampleWeights, counts;
};
ExpertSampleRefs getExpertSampleRefs(MLIRContext *context, int64_t layer, int64_t expert);

/// Whether the statistics hold input samples for `moe`'s layer (the
/// measured loss needs them: moeq_calibrate.py --samples-per-expert > 0).
FailureOr<bool> hasExpertSamples(MoEOp moe, int64_t layer, ParameterArchives &archives);

/// The measured output error of routed expert `refs.expert` of `moe`: its
/// calibration input samples through the float expert (`gate`, `up`,
/// `down`, with the op's activation and biases), and the factor that
/// scales the samples' error to all of the expert's calibration tokens.
/// Safe in a task: reads the archives through `archiveMutex`, creates no
/// attribute.
FailureOr<std::pair<quant::ExpertOutputError, double>>
loadExpertOutputError(MoEOp moe, const ExpertSampleRefs &refs, ArrayRef<float> gate,
                      ArrayRef<float> up, ArrayRef<float> down, ParameterArchives &archives,
                      std::mutex &archiveMutex);

/// "gate", "up" or "down" as the linear ExpertOutputError replaces.
quant::ExpertOutputError::Linear toOutputErrorLinear(StringRef linear);

} // namespace mlir::moeq

#endif // MOEQ_PASSES_EXPERTOUTPUTLOSS_H
