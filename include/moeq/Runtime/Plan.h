//===- Plan.h - the parsed manifest (version 3) of an artifact --*- C++ -*-===//
//
// What the runtime reads from `manifest.json` (docs/runtime.md): the MoE
// layers with their launch plans, the device parameters (weight tensors
// uploaded once) and the kernels. Parsing validates everything that can be
// checked without a device: the format and version, every expression, step
// and argument kind, every name a step uses, argument counts and types
// against the kernel's signature, and that host buffers are filled by a
// copy before an expression loads from them. Every message names the
// manifest and the place in it ("layers[0].plan.steps[3].args[1]: ...").
//
//===----------------------------------------------------------------------===//
#ifndef MOEQ_RUNTIME_PLAN_H
#define MOEQ_RUNTIME_PLAN_H

#include "moeq/Runtime/Checksum.h"
#include "moeq/Runtime/Expression.h"
#include "moeq/Runtime/ManifestVersion.h"
#include "moeq/Runtime/Status.h"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace moeq::runtime {

/// The manifest version this runtime reads (the compiler writes the same).
using ::moeq::kManifestVersion;

/// Element types of plan buffers and device parameters.
enum class DType { F16, F32, I32, I8, U64 };
size_t dtypeSize(DType dtype);
const char *dtypeName(DType dtype);
/// "f16", "f32", "i32", "i8", "u64"; false for anything else.
bool parseDType(const std::string &name, DType &dtype);

/// `device_params[i]`: a weight tensor uploaded once, converted to `dtype`;
/// or an address table: `addresses[r]` lists device_params indices whose
/// device addresses fill row r of a u64 [rows, cols] table (zero-padded),
/// uploaded after the tensors (the weights of persistent grouped GEMMs).
struct DeviceParam {
  std::vector<std::vector<int64_t>> addresses; ///< an address table when not empty
  std::string file;    ///< relative to the artifact directory
  std::string tensor;
  DType dtype = DType::F32;
  std::vector<int64_t> shape; ///< the uploaded shape
  int64_t index = -1;         ///< one matrix of a stacked tensor; -1: absent
  /// The matrix is stored [in, out] and read as its transpose (before rows).
  bool transposed = false;
  bool hasRows = false;
  int64_t rowOffset = 0, rowCount = 0;
  int64_t rowStep = 1; ///< rows rowOffset + i * rowStep (gpt-oss's interleaved gate/up)
};

enum class ArgType { Pointer, I32 };

/// `kernels[k]`.
struct KernelInfo {
  std::string name;
  std::string entry;          ///< the function in the module (`entry`, else `name`)
  std::string ptx;            ///< relative path, may be empty
  std::string emulation;      ///< relative path, may be empty
  int64_t sharedMemoryBytes = 0;
  std::vector<ArgType> arguments;
};

struct BufferDecl {
  enum class Binding { Scratch, Input, Output };
  std::string name;
  DType dtype = DType::F16;
  std::vector<Expr> shape; ///< depends on T only (no loads)
  Binding binding = Binding::Scratch;
  bool host = false;
};

struct Arg {
  enum class Kind { Buffer, Param, I32 };
  Kind kind = Kind::Buffer;
  int buffer = -1;  ///< Buffer
  Expr offset;      ///< Buffer: element offset (0 when absent)
  int param = -1;   ///< Param: index into device_params
  Expr value;       ///< I32
};

struct Step {
  enum class Kind { Launch, Copy };
  Kind kind = Kind::Launch;
  // launch
  int kernel = -1;
  Expr grid[3], block[3];
  Expr sharedMemoryBytes;
  std::vector<Arg> args;
  // copy: device buffer `from` -> host buffer `to`
  int from = -1, to = -1;
};

struct LayerPlan {
  int64_t layer = 0;       ///< the model's layer index
  int64_t hiddenSize = 0;
  std::string function;
  std::vector<BufferDecl> buffers;
  std::vector<std::string> bufferNames; ///< buffers[i].name, for messages
  std::vector<Step> steps;
  int input = -1, output = -1;          ///< indices of the bound buffers
};

struct Manifest {
  std::string directory;   ///< the artifact directory
  std::string path;        ///< its manifest.json
  int64_t hiddenSize = 0;
  std::vector<DeviceParam> deviceParams;
  std::vector<KernelInfo> kernels;
  std::vector<LayerPlan> layers;
  /// Every file of the artifact with its size and digest ("files"); each
  /// weight and kernel file the manifest names is listed.
  FileDigests files;
  /// Whether the files read are checked against `files` (moeq-run
  /// --skip-checksums turns it off for weights written after the compile).
  bool checkDigests = true;

  /// The layer with model index `layer`, or null.
  const LayerPlan *findLayer(int64_t layer) const;
  /// "0, 1, 3": the model indices of the MoE layers, for messages.
  std::string layerList() const;
  /// Whether some step launches kernels[k].
  bool kernelIsLaunched(size_t k) const;
};

/// Which kernel file a backend loads (checked to exist at open).
enum class KernelFile { None, Ptx, Emulation };

/// Parses `text` (the contents of `path`, named in messages); `directory`
/// is recorded as the artifact directory. Checks no files.
Status parseManifest(const std::string &text, const std::string &path,
                     const std::string &directory, Manifest &manifest);

/// Whether loading checks each file read against the manifest's digests.
enum class DigestCheck { Check, Skip };

/// Reads and parses `<directory>/manifest.json` and checks the `kernelFile`
/// of every launched kernel: present and, with DigestCheck::Check, of the
/// size and digest the manifest lists.
Status loadManifest(const std::string &directory, KernelFile kernelFile, Manifest &manifest,
                    DigestCheck digests = DigestCheck::Check);

/// Parses one expression (JSON text) as a plan does; `resolveHostBuffer`
/// maps the name in a `load` to a buffer index (or fails). For tests.
Status parseExpression(const std::string &text,
                       const std::function<Status(const std::string &, int &)> &resolveHostBuffer,
                       Expr &expr);

/// `directory` + "/" + `relative` (just `relative` when it is absolute).
std::string joinPath(const std::string &directory, const std::string &relative);

} // namespace moeq::runtime

#endif // MOEQ_RUNTIME_PLAN_H
