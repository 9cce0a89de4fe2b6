//===- ArtifactExport.h - moeq-export's reading of an artifact ---*- C++ -*-===//
//
// Private to lib/Artifact: the artifact as the exporters see it (pieces of
// checkpoint tensors, their schemes and stored tensors) and one writer per
// format (Export.cpp: dequantized and compressed-tensors; ExportGGUF.cpp).
//
//===----------------------------------------------------------------------===//

#ifndef MOEQ_LIB_ARTIFACT_ARTIFACTEXPORT_H
#define MOEQ_LIB_ARTIFACT_ARTIFACTEXPORT_H

#include "moeq/Artifact/Export.h"
#include "moeq/IO/SafeTensors.h"
#include "moeq/Quant/Quantizer.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/Path.h"

#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

namespace mlir::moeq::artifact::detail {

using llvm::Error;
using llvm::Expected;
using llvm::StringRef;
using llvm::Twine;
namespace json = llvm::json;

inline Error exportError(const Twine &message) { return llvm::createStringError(message.str()); }

/// Which part of a stored tensor one logical [rows, cols] matrix is.
struct Selection {
  std::string tensor;
  int64_t index = -1;   ///< matrix of a stacked 3-D tensor; -1: the 2-D tensor
  bool transposed = false;
  int64_t rowOffset = 0, rowCount = -1, step = 1;

  bool operator==(const Selection &o) const {
    return index == o.index && transposed == o.transposed && rowOffset == o.rowOffset &&
           rowCount == o.rowCount && step == o.step;
  }
};

/// A quantized linear of the manifest and where it goes.
struct Piece {
  const json::Object *linear = nullptr;
  std::string where; ///< e.g. "layer 3 expert 7 gate"
  Selection selection;
  int64_t rows = 0, cols = 0;
  /// Where the manifest has it: layer, expert (-1: the shared expert) and
  /// role (gate, up, down).
  int64_t layer = -1, expert = -1;
  std::string role;
  /// D^2-MoE: the layer's base, then the expert's a and b factors; the
  /// weight is pad(base) + a . b (the base may keep only the leading input
  /// channels). Empty for a plain quantized linear.
  std::vector<Piece> factors;
};

/// A checkpoint tensor rebuilt from pieces.
struct Target {
  std::vector<Piece> pieces;
  std::vector<int64_t> shape;
  int64_t rowsPerMatrix = 0; ///< stored rows (or columns, transposed) of one matrix
};

/// A compressed-tensors quantization scheme (one config group).
struct CTScheme {
  unsigned bits = 4;
  int64_t groupSize = 0; ///< 0: per output channel
  bool symmetric = false;
  bool int8Activations = false; ///< int-quantized (w8a8), else pack-quantized

  auto key() const { return std::make_tuple(int8Activations, bits, groupSize, symmetric); }
  bool operator<(const CTScheme &o) const { return key() < o.key(); }
  StringRef format() const { return int8Activations ? "int-quantized" : "pack-quantized"; }
};

class ArtifactExport {
public:
  ArtifactExport(StringRef dir, ExportFormat format) : dir(dir.str()), format(format) {}

  Expected<ExportSummary> run(StringRef outDir, std::function<void(StringRef)> progress);

private:
  std::string path(const Twine &name) const {
    llvm::SmallString<256> p(dir);
    llvm::sys::path::append(p, name);
    return std::string(p);
  }
  Error artifactError(const Twine &message) const {
    return exportError("artifact '" + dir + "': " + message);
  }

  Error loadManifest();
  Error loadConfig();
  Expected<const io::SafeTensorsFile *> file(StringRef name);
  Expected<std::pair<const io::SafeTensorsFile *, const io::TensorInfo *>>
  tensor(const json::Object &ref, const Twine &what);
  Error collectPieces();
  Error addLinear(const json::Object &linear, Piece piece, const json::Object *deltaBases);
  Error addDeltaLinear(const json::Object &linear, Piece piece, const json::Object *deltaBases);
  Error planTargets();
  Expected<quant::Scheme> schemeOf(const Piece &piece);
  Error checkPiece(const Piece &piece);
  Expected<std::vector<float>> dequantize(const Piece &piece);
  /// D^2-MoE: pad(base) + a . b from the pieces' values.
  Expected<std::vector<float>> rebuildDelta(const Piece &piece);
  Expected<std::vector<float>> build(const std::string &name, const Target &target);
  Expected<std::vector<uint32_t>> readWords(const Piece &piece);
  Expected<std::vector<float>> readFloats(const Piece &piece, StringRef key);

  using Progress = std::function<void(StringRef)>;
  Error addCopiedParams(io::SafeTensorsWriter &writer, ExportSummary &summary,
                        const Progress &progress);
  Error addDequantized(io::SafeTensorsWriter &writer, ExportSummary &summary,
                       const Progress &progress);
  Expected<CTScheme> compressedTensorsScheme(const std::string &name, const Target &target);
  Error addCompressedTensors(io::SafeTensorsWriter &writer, ExportSummary &summary,
                             const Progress &progress);
  Error addLazyTensor(io::SafeTensorsWriter &writer, ExportSummary &summary,
                      const std::string &name, io::DType dtype, std::vector<int64_t> shape,
                      const Progress &progress,
                      std::function<Expected<std::vector<uint8_t>>()> produce);
  Error writeOutput(io::SafeTensorsWriter &writer, StringRef outDir, ExportSummary &summary);
  /// GGUF (ExportGGUF.cpp): one file, llama.cpp's names and stacked experts.
  Error writeGGUF(StringRef outPath, ExportSummary &summary, const Progress &progress);

  std::string dir;
  ExportFormat format;
  /// compressed-tensors: the modules of each scheme.
  std::map<CTScheme, std::vector<std::string>> ctGroups;
  /// compressed-tensors: routed expert modules named `<P>.<expert>.<proj>`
  /// -> `<P>` (their layer's experts), for per-layer targets.
  std::map<std::string, std::string> expertsPrefixOf;
  json::Value manifest = nullptr;
  json::Value config = nullptr;
  bool dropQuantizationConfig = false, mxfp4 = false;
  std::map<std::string, std::unique_ptr<io::SafeTensorsFile>> files;
  std::map<std::string, Target> targets;
  /// Expert linears kept in f16 (in params.safetensors), as pieces without
  /// a selection.
  std::vector<Piece> keptLinears;
};

/// The stored row of logical row `r` of a piece.
int64_t storedRow(const Selection &s, int64_t r);

template <typename T> std::vector<uint8_t> bytesOf(const std::vector<T> &values) {
  std::vector<uint8_t> bytes(values.size() * sizeof(T));
  std::memcpy(bytes.data(), values.data(), bytes.size());
  return bytes;
}

} // namespace mlir::moeq::artifact::detail

#endif // MOEQ_LIB_ARTIFACT_ARTIFACTEXPORT_H
