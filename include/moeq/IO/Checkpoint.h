//===- Checkpoint.h - Hugging Face safetensors checkpoints -----*- C++ -*-===//
//
// A checkpoint is the set of tensors of a Hugging Face model directory:
//  - sharded: `model.safetensors.index.json` whose "weight_map" maps every
//    tensor name to the shard file holding it;
//  - unsharded: every `*.safetensors` file in the directory;
//  - or a single `.safetensors` file given directly.
// All shards are memory-mapped; tensor data is never copied until asked.
//
//===----------------------------------------------------------------------===//

#ifndef MOEQ_IO_CHECKPOINT_H
#define MOEQ_IO_CHECKPOINT_H

#include "moeq/IO/SafeTensors.h"

#include "llvm/ADT/StringMap.h"

#include <optional>

namespace mlir::moeq::io {

class Checkpoint {
public:
  /// The name of the shard index in a sharded checkpoint directory.
  static constexpr llvm::StringLiteral IndexFileName =
      "model.safetensors.index.json";

  /// Opens a checkpoint directory or a single .safetensors file. Fails if a
  /// shard is unreadable or malformed, if the index names a missing shard or
  /// a tensor its shard does not contain, or (without an index) if two
  /// shards contain the same tensor name.
  static llvm::Expected<std::unique_ptr<Checkpoint>> open(llvm::StringRef Path);

  /// The tensor called \p Name, or null. If \p File is given it receives the
  /// shard holding the tensor (needed for SafeTensorsFile::data()).
  const TensorInfo *find(llvm::StringRef Name,
                         const SafeTensorsFile **File = nullptr) const;
  /// Raw bytes of tensor \p Name (error if absent).
  llvm::Expected<llvm::ArrayRef<uint8_t>> data(llvm::StringRef Name) const;
  /// See SafeTensorsFile::readAsFloat.
  llvm::Expected<std::vector<float>> readAsFloat(llvm::StringRef Name) const;

  /// The name of the block-scale companion of an FP8 tensor: \p Name +
  /// "_scale_inv", i.e. "model.layers.3.mlp.experts.0.gate_proj.weight" ->
  /// "...gate_proj.weight_scale_inv" (DeepSeek-V3, transformers
  /// FineGrainedFP8) and, for stacked experts, "mlp.experts.gate_up_proj" ->
  /// "mlp.experts.gate_up_proj_scale_inv".
  static std::string scaleInvName(llvm::StringRef Name);
  /// True if \p Name is an FP8 tensor (F8_E4M3, or F8_E5M2) and its
  /// scaleInvName() companion exists.
  bool hasBlockScales(llvm::StringRef Name) const;
  /// The real values of tensor \p Name as f32: readAsFloat() for an
  /// ordinary (non-FP8) tensor; for an FP8 tensor W of shape [..., N, K]
  /// with companion S = W_scale_inv (F32, BF16 or F16) of shape
  /// [..., ceil(N / br), ceil(K / bc)] (same leading dimensions, e.g. the
  /// experts of a stacked tensor), W[..., r, c] * S[..., r / br, c / bc],
  /// multiplied in f32. A one-element S (shape [] or [1]) scales the whole
  /// tensor. The block size br x bc is \p BlockRows x \p BlockCols if given
  /// (e.g. MoEModelConfig::fp8BlockRows/Cols) and must agree with the
  /// shapes; otherwise it is inferred per dimension: 128 (the DeepSeek-V3
  /// and transformers default) if ceil(dim / 128) matches the scale's
  /// extent, else ceil(dim / extent) if that matches, else an error. (The
  /// shapes alone cannot always tell, e.g. a 100-row weight with one scale
  /// row fits any block of >= 100 rows; all of them give the same values.)
  /// An FP8 tensor without a companion is an error: other FP8 scale layouts
  /// are not supported.
  llvm::Expected<std::vector<float>>
  readDequantized(llvm::StringRef Name, int64_t BlockRows = 0,
                  int64_t BlockCols = 0) const;

  /// MXFP4 (OCP microscaling, gpt-oss checkpoints): a tensor W of logical
  /// shape [..., R, C] stored as \p Name + "_blocks" (U8 [..., R, C / 32,
  /// 16]: two e2m1 codes per byte, the even element in the low nibble) and
  /// \p Name + "_scales" (U8 [..., R, C / 32]: the power-of-two exponent of
  /// each block of 32, biased by 127). W itself is not in the checkpoint.
  /// The logical shape when both companions exist with consistent shapes;
  /// std::nullopt when they do not exist; an error naming the tensors when
  /// they exist but disagree.
  llvm::Expected<std::optional<std::vector<int64_t>>>
  mxfp4Shape(llvm::StringRef Name) const;
  /// The values of matrix \p Index of the leading dimension of MXFP4
  /// tensor \p Name (the whole tensor if \p Index < 0) as f32:
  /// e2m1(code) * 2^(scale - 127), exactly (every value is a float).
  llvm::Expected<std::vector<float>> readMXFP4(llvm::StringRef Name,
                                              int64_t Index = -1) const;
  static std::string mxfp4BlocksName(llvm::StringRef Name) { return (Name + "_blocks").str(); }
  static std::string mxfp4ScalesName(llvm::StringRef Name) { return (Name + "_scales").str(); }

  /// All tensor names, sorted.
  std::vector<llvm::StringRef> tensorNames() const;
  /// SafeTensorsFile::releasePages() for every shard.
  void releasePages() const;
  size_t numTensors() const { return Index.size(); }

  /// The shards, sorted by path.
  llvm::ArrayRef<std::unique_ptr<SafeTensorsFile>> shards() const {
    return Shards;
  }
  /// The path open() was given.
  llvm::StringRef path() const { return Path; }
  /// The directory holding the checkpoint (containing config.json, etc.).
  llvm::StringRef directory() const { return Directory; }
  /// The index "metadata" map rendered as strings (e.g. "total_size"); empty
  /// without an index.
  const std::map<std::string, std::string> &indexMetadata() const {
    return IndexMetadata;
  }

private:
  struct Location {
    unsigned Shard;
    const TensorInfo *Info;
  };

  Checkpoint() = default;
  llvm::Expected<unsigned> openShard(llvm::StringRef ShardPath);
  llvm::Error loadIndex(llvm::StringRef IndexPath);
  llvm::Error loadAllShards();

  std::string Path;
  std::string Directory;
  std::vector<std::unique_ptr<SafeTensorsFile>> Shards;
  llvm::StringMap<Location> Index;
  std::map<std::string, std::string> IndexMetadata;
};

} // namespace mlir::moeq::io

#endif // MOEQ_IO_CHECKPOINT_H
