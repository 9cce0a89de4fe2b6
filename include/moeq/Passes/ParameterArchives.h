//===- ParameterArchives.h - resolving #moeq.param references ---*- C++ -*-===//
//
// A module's `moeq.archives` attribute maps scopes to checkpoint directories
// or safetensors files. ParameterArchives opens them lazily and reads the
// tensors that `#moeq.param<scope, key>` attributes name.
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

class ParameterArchives {
public:
  /// Reads the scope -> path map of `module`; emits an error on `module`
  /// when the attribute is malformed.
  static FailureOr<ParameterArchives> fromModule(ModuleOp module);

  /// Sets or replaces the path of `scope` (not written back to any module).
  void setPath(StringRef scope, StringRef path);

  /// Sets or replaces `scope -> path` in the `moeq.archives` attribute of
  /// `module`.
  static void registerInModule(ModuleOp module, StringRef scope, StringRef path);

  /// The checkpoint holding `scope`, opened on first use. Errors are
  /// emitted at `loc`.
  FailureOr<io::Checkpoint *> getArchive(Location loc, StringRef scope);

  /// Metadata of the whole tensor a reference names (ignoring any slice);
  /// emits an error at `loc` if missing.
  FailureOr<const io::TensorInfo *> lookup(Location loc, ExternalParamAttr ref,
                                           const io::SafeTensorsFile **file);

  /// The bytes a reference selects: the whole tensor, or one matrix of a
  /// stacked tensor, or a row range of it; always contiguous.
  struct View {
    io::DType dtype;
    SmallVector<int64_t> shape;
    ArrayRef<uint8_t> bytes;
    /// True for fp8 tensors with block scales (`<name>_scale_inv`): their
    /// bytes are not the values, readAsFloat() applies the scales.
    bool blockScaled = false;
  };
  FailureOr<View> resolve(Location loc, ExternalParamAttr ref);

  /// The referenced values widened to f32 (fp8 block scales applied);
  /// emits an error at `loc`.
  FailureOr<std::vector<float>> readAsFloat(Location loc, ExternalParamAttr ref);

  /// A float64 tensor of exactly `shape` (statistics: Hessians, counts
  /// as I64 are widened); emits an error at `loc` naming the key otherwise.
  FailureOr<std::vector<double>> readFloat64(Location loc, ExternalParamAttr ref,
                                             ArrayRef<int64_t> shape);

  /// Drops the pages read so far from the resident set (see
  /// io::SafeTensorsFile::releasePages); views stay valid.
  void releasePages() const;

private:
  llvm::StringMap<std::string> paths;
  llvm::StringMap<std::unique_ptr<io::Checkpoint>> opened;
};

} // namespace moeq
} // namespace mlir

#endif // MOEQ_PASSES_PARAMETERARCHIVES_H
