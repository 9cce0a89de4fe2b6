//===- StatisticsFiles.h - calibration statistics on disk -------*- C++ -*-===//
//
// The files of docs/calibration-stats.md, IR-free:
//  - version 2 (what the producers write): a directory with an index
//    `stats.json` (the model the statistics describe) and one safetensors
//    file per MoE layer, `layer-<L>.safetensors`; Gram matrices stored as
//    F32 upper triangles, packed row by row;
//  - version 1 (still read): one safetensors file, dense F64 matrices.
// StatisticsReader opens either and reads a layer's file only when one of
// its tensors is asked for, so that a consumer compiling some layers reads
// only their files.
//
//===----------------------------------------------------------------------===//
#ifndef MOEQ_CALIBRATION_STATISTICSFILES_H
#define MOEQ_CALIBRATION_STATISTICSFILES_H

#include "moeq/IO/SafeTensors.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace mlir::moeq::io {
class Checkpoint;
struct MoEModelConfig;
} // namespace mlir::moeq::io

namespace mlir::moeq::calib {

struct LayerShape;

/// Metadata keys and values of a statistics file or index
/// (docs/calibration-stats.md), all strings.
using Metadata = std::map<std::string, std::string>;

inline constexpr llvm::StringLiteral kStatisticsFormat = "moeq-calibration-stats";
/// The version the producers write.
inline constexpr int kStatisticsVersion = 2;
/// The index of a version 2 statistics directory.
inline constexpr llvm::StringLiteral kIndexFileName = "stats.json";

/// The file of MoE layer `layer` in a version 2 directory:
/// `layer-007.safetensors` (three digits at least).
std::string layerFileName(int64_t layer);

/// Elements of the packed upper triangle of an n x n matrix: n (n + 1) / 2.
inline int64_t packedSize(int64_t n) { return n * (n + 1) / 2; }

/// The upper triangle (j >= i) of the row-major n x n matrix `matrix`,
/// row by row, rounded to float (only the upper triangle is read).
void packUpper(llvm::ArrayRef<double> matrix, int64_t n, std::vector<float> &packed);

/// The model a statistics directory describes (its index).
struct ModelDescription {
  std::string modelType;
  int64_t numLayers = 0;          ///< decoder layers (dense ones included)
  int64_t hidden = 0, intermediate = 0, sharedIntermediate = 0, experts = 0, topK = 0;
  std::vector<int64_t> moeLayers; ///< the model's MoE layers
  /// io::weightsFingerprint of its weights; empty: not known (not recorded
  /// nor checked).
  std::string weightsFingerprint;
};

/// The description of the model `config` describes and, with its
/// `checkpoint`, the fingerprint of its weights (an error names a router
/// that cannot be read).
llvm::Expected<ModelDescription> describeModel(const io::MoEModelConfig &config,
                                               const io::Checkpoint *checkpoint);

/// The metadata of the index of a version 2 directory: `format`,
/// `version`, `gram_dtype`, `gram_storage` and the model's keys.
Metadata indexMetadata(const ModelDescription &model);

/// Checks that `dir` can hold version 2 statistics with index `index`: a
/// directory holding another model's statistics (another index), a file,
/// or a non-empty directory without an index is refused, naming it. With
/// `create`, then creates the directory and writes the index (atomically;
/// concurrent producers of other layers of the same model write the same
/// bytes) unless it exists.
llvm::Error prepareStatisticsDirectory(llvm::StringRef dir, const Metadata &index,
                                       bool create = true);

/// Comma-separated decimal integers.
std::string joinLayers(llvm::ArrayRef<int64_t> layers);

/// Parses a layer selection, `--layers`: comma-separated items, each a
/// layer `L` or a half-open range `A:B` (`A:` to the last layer, `:B` from
/// the first), against the model's `numLayers` decoder layers; returns the
/// selected layers, sorted and unique.
llvm::Expected<std::vector<int64_t>> parseLayerSelection(llvm::StringRef spec,
                                                         int64_t numLayers);

/// Data bytes (the tensors, without the few-KiB header) that one MoE layer
/// of `shape` takes in statistics format `version` (1 or 2).
uint64_t layerStatisticsBytes(const LayerShape &shape, int version);

/// True when a stored tensor (`dtype`, `stored` shape) reads as a dense
/// float64 tensor of `shape`: F64, F32 or I64 of exactly `shape`, or, for
/// a square `shape` [n, n], a packed upper triangle [n (n + 1) / 2] of F32
/// or F64 (version 2 Gram matrices).
bool isReadableAs(io::DType dtype, llvm::ArrayRef<int64_t> stored,
                  llvm::ArrayRef<int64_t> shape);

/// The values of a stored tensor as dense float64 `shape` (a packed
/// triangle is mirrored into the full symmetric matrix); an error naming
/// `name` when !isReadableAs.
llvm::Expected<std::vector<double>> decodeAsFloat64(io::DType dtype,
                                                    llvm::ArrayRef<int64_t> stored,
                                                    llvm::ArrayRef<uint8_t> bytes,
                                                    llvm::ArrayRef<int64_t> shape,
                                                    llvm::StringRef name);

/// Reads statistics of either version. Version 2: open() reads the index
/// only; a layer's file is opened (and checked against the index) when one
/// of its tensors is first asked for. Lookups are thread-safe.
class StatisticsReader {
public:
  /// A version 2 directory (holding stats.json) or a version 1 file.
  static llvm::Expected<std::unique_ptr<StatisticsReader>> open(llvm::StringRef path);
  /// True when `path` is a directory holding a statistics index.
  static bool isStatisticsDirectory(llvm::StringRef path);
  ~StatisticsReader();

  int version() const { return Version; }
  llvm::StringRef path() const { return Path; }
  /// Version 2: the index; version 1: the file's metadata.
  const Metadata &metadata() const { return Meta; }
  /// The MoE layers listed by the metadata (`moe_layers`).
  std::vector<int64_t> moeLayers() const;
  /// Version 2: those whose file exists (nothing is opened); version 1: all.
  std::vector<int64_t> availableLayers() const;
  /// Version 2: the path of layer `layer`'s file; version 1: the file.
  std::string fileOf(int64_t layer) const;

  /// Tensor `name` (`layers.<L>.<...>`) and the file holding it; null when
  /// the statistics lack it. Version 2 fails, naming the file, when layer
  /// L's file is missing, unreadable, or not the index's model's layer L.
  llvm::Expected<const io::TensorInfo *> find(llvm::StringRef name,
                                              const io::SafeTensorsFile **file = nullptr);
  /// Tensor `name` as dense float64 `shape` (decodeAsFloat64); fails when
  /// it is absent.
  llvm::Expected<std::vector<double>> readFloat64(llvm::StringRef name,
                                                  llvm::ArrayRef<int64_t> shape);

  /// Checks the metadata against `model` (shapes, expert count, layer count
  /// and MoE layers when recorded): "<path> was computed for another model:
  /// <key> is <value>, <modelName> has <value>".
  llvm::Error checkModel(const ModelDescription &model, llvm::StringRef modelName) const;

  /// Safetensors files opened so far (version 1: 1; version 2: layer files).
  size_t openedFiles() const;
  /// SafeTensorsFile::releasePages for every opened file.
  void releasePages() const;

private:
  StatisticsReader() = default;
  llvm::Expected<const io::SafeTensorsFile *> layerFile(int64_t layer);

  int Version = 0;
  std::string Path;
  Metadata Meta;
  std::unique_ptr<io::SafeTensorsFile> Single; ///< version 1
  mutable std::mutex Mutex;                    ///< guards Layers
  std::map<int64_t, std::unique_ptr<io::SafeTensorsFile>> Layers; ///< version 2
};

} // namespace mlir::moeq::calib

#endif // MOEQ_CALIBRATION_STATISTICSFILES_H
