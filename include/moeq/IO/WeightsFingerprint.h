//===- WeightsFingerprint.h - which model's weights statistics belong to -*- C++ -*-===//
//
// Calibration statistics are only valid for the weights they were measured
// on. Shapes and layer counts tell models of other architectures apart, but
// not a base model from its fine-tune, so statistics record a fingerprint of
// the weights and moeq-compile refuses another model's. The fingerprint is
// the SHA-256 of the routers of every MoE layer, in layer order, each
// rounded to bf16 (round to nearest even) and stored little-endian: bf16
// so that it does not depend on the dtype the producer loaded the model in
// (moeq_calibrate.py computes it from the transformers model, moeq-stats
// from the checkpoint; tools/python/moeq_calibrate.py `weights_fingerprint`
// is the same definition).
//
//===----------------------------------------------------------------------===//

#ifndef MOEQ_IO_WEIGHTSFINGERPRINT_H
#define MOEQ_IO_WEIGHTSFINGERPRINT_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <string>

namespace mlir::moeq::io {

class Checkpoint;
struct MoEModelConfig;

/// The statistics' metadata key that holds it.
inline constexpr llvm::StringLiteral kWeightsFingerprintKey = "weights_fingerprint";

/// "sha256:<64 hex digits>" of the routers of `config`'s MoE layers in
/// `checkpoint`; an error names a missing or unreadable router.
llvm::Expected<std::string> weightsFingerprint(const Checkpoint &checkpoint,
                                               const MoEModelConfig &config);

} // namespace mlir::moeq::io

#endif // MOEQ_IO_WEIGHTSFINGERPRINT_H
