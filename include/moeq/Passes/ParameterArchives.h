//===- ParameterArchives.h - resolving #moeq.param references ---*- C++ -*-===//
//
// A module's `moeq.archives` attribute maps scopes to checkpoint directories
// or safetensors files. ParameterArchives opens them lazily and reads the
// tensors that `#moeq.param<scope, key>` attributes name. A scope whose path
// is a calibration statistics directory (format version 2,
// docs/calibration-stats.md) is read through calib::StatisticsReader: only
// the files of the layers whose tensors are asked for are opened.
//
//===----------------------------------------------------------------------===//
#ifndef MOEQ_PASSES_PARAMETERARCHIVES_H
#define MOEQ_PASSES_PARAMETERARCHIVES_H

#include "moeq/IO/Checkpoint.h"

#include "mlir/IR/Location.h"
#include "mlir/Support/LLVM.h"
#include "llvm/ADT/StringMap.h"

#include <memory>
#include <vector>

namespace mlir {
class ModuleOp;
namespace moeq {
class ExternalParamAttr;
namespace calib {
class StatisticsReader;
} // namespace calib

class ParameterArchives {
public:
  ParameterArchives();
  ParameterArchives(ParameterArchives &&);
  ParameterArchives &operator=(ParameterArchives &&);
  ~ParameterArchives();

  /// Reads the scope -> path map of `module`; emits an error on `module`
  /// when the attribute is malformed.
  static FailureOr<ParameterArchives> fromModule(ModuleOp module);

  /// Sets or replaces the path of `scope` (not written back to any module).
  void setPath(StringRef scope, StringRef path);

  /// Whether `scope` has a path (say, "stats" once an assignment pass was
  /// given a statistics file).
  bool hasScope(StringRef scope) const { return paths.contains(scope); }

  /// Sets or replaces `scope -> path` in the `moeq.archives` attribute of
  /// `module`.
  static void registerInModule(ModuleOp module, StringRef scope, StringRef path);

  /// The checkpoint holding `scope`, opened on first use. Errors are
  /// emitted at `loc` (also for a statistics directory, which is no
  /// checkpoint: use contains() or lookup()).
  FailureOr<io::Checkpoint *> getArchive(Location loc, StringRef scope);

  /// Whether the archive of `ref`'s scope holds its tensor; emits an error
  /// at `loc` when the archive (or a statistics layer file) cannot be read.
  FailureOr<bool> contains(Location loc, ExternalParamAttr ref);

  /// Metadata of the whole tensor a reference names (ignoring any slice);
  /// emits an error at `loc` if missing.
  FailureOr<const io::TensorInfo *> lookup(Location loc, ExternalParamAttr ref,
                                           const io::SafeTensorsFile **file);

  /// The bytes a reference selects: the whole tensor, or one matrix of a
  /// stacked tensor, or a row range of it, in the mapped archive; a
  /// transposed or strided selection is gathered into `gathered`, which
  /// `bytes` then points into (copy the View, not just `bytes`, to keep it).
  struct View {
    io::DType dtype;
    SmallVector<int64_t> shape;
    ArrayRef<uint8_t> bytes;
    std::shared_ptr<const std::vector<uint8_t>> gathered;
    /// True for fp8 tensors with block scales (`<name>_scale_inv`): their
    /// bytes are not the values, readAsFloat() applies the scales.
    bool blockScaled = false;
  };
  FailureOr<View> resolve(Location loc, ExternalParamAttr ref);
  /// Applies `ref`'s transposition and row range (with its step) to `view`,
  /// the matrix its `index` selected.
  static FailureOr<View> select(Location loc, ExternalParamAttr ref, View view);

  /// The referenced values widened to f32 (fp8 block scales applied);
  /// emits an error at `loc`.
  FailureOr<std::vector<float>> readAsFloat(Location loc, ExternalParamAttr ref);

  /// The values as dense float64 `shape` (statistics: Hessians, counts):
  /// F64 or F32 (widened), I64 (converted), or for a square `shape` a
  /// packed upper triangle (statistics format version 2, mirrored); emits
  /// an error at `loc` naming the key otherwise.
  FailureOr<std::vector<double>> readFloat64(Location loc, ExternalParamAttr ref,
                                             ArrayRef<int64_t> shape);

  /// True when readFloat64(`view`'s reference, `shape`) would succeed.
  static bool isReadableAs(const View &view, ArrayRef<int64_t> shape);

  /// Drops the pages read so far from the resident set (see
  /// io::SafeTensorsFile::releasePages); views stay valid.
  void releasePages() const;

private:
  /// The tensor a reference names and where it is: `checkpoint` for an
  /// ordinary archive, null for a statistics directory.
  struct Found {
    const io::TensorInfo *info = nullptr;
    const io::SafeTensorsFile *file = nullptr;
    io::Checkpoint *checkpoint = nullptr;
  };
  /// Null info (no error) when the archive lacks the tensor.
  FailureOr<Found> find(Location loc, ExternalParamAttr ref);
  /// The reader of `scope` when its path is a statistics directory, else
  /// null; opened (its index read) on first use.
  FailureOr<calib::StatisticsReader *> getStatistics(Location loc, StringRef scope);

  llvm::StringMap<std::string> paths;
  llvm::StringMap<std::unique_ptr<io::Checkpoint>> opened;
  /// Per scope: its statistics reader, or null when the path is no
  /// statistics directory (checked once).
  llvm::StringMap<std::unique_ptr<calib::StatisticsReader>> statistics;
};

} // namespace moeq
} // namespace mlir

#endif // MOEQ_PASSES_PARAMETERARCHIVES_H
