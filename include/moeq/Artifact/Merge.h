//===- Merge.h - partial artifacts and their merge --------------*- C++ -*-===//
//
// `moeq-compile --layers A:B` writes a partial artifact: the MoE layers
// among the decoder layers [A, B) with their packed weights, the tensors
// they and those decoder layers need, their kernels, and a manifest whose
// "partial" object records the range, the model's layer count, the options
// (and their fingerprint) and the report's data. `moeq-merge` joins partial
// artifacts that cover the model into the artifact a single compile with
// the same options writes, byte for byte (docs/distributed.md).
//
// IR-free: LLVM Support, llvm::json and the safetensors reader/writer.
//
//===----------------------------------------------------------------------===//
#ifndef MOEQ_ARTIFACT_MERGE_H
#define MOEQ_ARTIFACT_MERGE_H

#include "moeq/Artifact/Report.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/JSON.h"

#include <cstdint>
#include <optional>
#include <string>

namespace mlir::moeq::artifact {

/// The manifest key of a partial artifact's description.
inline constexpr llvm::StringLiteral kPartialKey = "partial";
/// The files of an artifact: what an output directory may already hold.
bool isArtifactEntry(llvm::StringRef name, bool isDirectory);

/// A partial artifact's "partial" object.
struct PartialInfo {
  int64_t begin = 0, end = 0; ///< decoder layers [begin, end)
  int64_t numLayers = 0;      ///< decoder layers of the whole model
  /// Every option that shapes the artifact, the model and its config.
  llvm::json::Object options;
  std::string fingerprint;
  ReportData report;
};

llvm::json::Value toJSON(const PartialInfo &info);
llvm::Expected<PartialInfo> partialFromJSON(const llvm::json::Value &value);

/// Hex xxh3 of the options' JSON (keys sorted by llvm::json).
std::string fingerprintOptions(const llvm::json::Object &options);

/// Parses "A:B" (0 <= A < B <= numLayers).
llvm::Expected<std::pair<int64_t, int64_t>> parseLayerRange(llvm::StringRef text,
                                                            int64_t numLayers);

/// The decoder layer a checkpoint tensor belongs to ("model.layers.7.
/// self_attn.q_proj.weight" -> 7); none for the embeddings, the final norm,
/// lm_head, and layers past `numLayers` (DeepSeek-V3's MTP layers).
std::optional<int64_t> tensorLayer(llvm::StringRef name, int64_t numLayers);

/// Whether the slice [begin, end) carries tensor `name` from outside the
/// MoE blocks: a layer's tensors go with their layer, the others with the
/// slice that starts at layer 0, so that every tensor is in one slice.
bool sliceOwnsTensor(llvm::StringRef name, int64_t begin, int64_t end, int64_t numLayers);

/// What a merge did.
struct MergeSummary {
  int64_t begin = 0, end = 0;
  unsigned kernels = 0;       ///< kernel files written
  unsigned sharedKernels = 0; ///< files present in several parts, stored once
  uint64_t tensors = 0;       ///< tensors written to the safetensors files
  uint64_t tensorBytes = 0;
};

/// Joins the partial artifacts in `parts` (any order) into `output`,
/// written atomically: nothing is written unless every check passes. The
/// errors name the part: not a partial artifact, another manifest version,
/// other options, model or architecture, overlapping or missing layers, a
/// kernel or tensor with the same name and other bytes. Tensors are copied
/// in chunks, never whole in memory.
llvm::Expected<MergeSummary> mergeArtifacts(llvm::ArrayRef<std::string> parts,
                                            llvm::StringRef output);

} // namespace mlir::moeq::artifact

#endif // MOEQ_ARTIFACT_MERGE_H
