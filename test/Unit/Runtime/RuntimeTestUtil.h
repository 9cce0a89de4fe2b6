//===- RuntimeTestUtil.h - helpers for the runtime's unit tests -*- C++ -*-===//
#ifndef MOEQ_TEST_UNIT_RUNTIME_RUNTIMETESTUTIL_H
#define MOEQ_TEST_UNIT_RUNTIME_RUNTIMETESTUTIL_H

#include "moeq/Runtime/Device.h"
#include "moeq/Runtime/SafeTensors.h"

#include "moeq/IO/Float16.h"

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

namespace moeq::runtime::test {

/// A fresh directory under $TMPDIR, removed with everything in it.
class TempDir {
public:
  TempDir() {
    const char *base = std::getenv("TMPDIR");
    std::string pattern = std::string(base && *base ? base : "/tmp") + "/moeq-runtime-XXXXXX";
    path = mkdtemp(pattern.data()) ? pattern : "";
  }
  ~TempDir() {
    if (!path.empty())
      std::system(("rm -rf '" + path + "'").c_str());
  }
  std::string file(const std::string &name) const { return path + "/" + name; }
  std::string path;
};

inline void writeFile(const std::string &path, const std::string &contents) {
  std::ofstream out(path, std::ios::binary);
  out << contents;
}

/// One launch as the fake device saw it: parameters decoded with the
/// kernel's signature (pointers as addresses, i32 sign-extended).
struct RecordedLaunch {
  std::string kernel;
  Dim3 grid, block;
  uint32_t sharedBytes = 0;
  std::vector<int64_t> args;
};

/// A Device whose memory is host memory and whose launches are recorded
/// (and optionally simulated by `onLaunch`). Also logs every call.
class FakeDevice : public Device {
public:
  std::vector<std::string> log;
  std::vector<RecordedLaunch> launches;
  std::vector<KernelInfo> kernels;
  size_t allocations = 0, releases = 0;
  std::vector<DeviceAddress> allocated; ///< every allocation, in order
  std::function<void(const RecordedLaunch &)> onLaunch;

  ~FakeDevice() override {
    for (void *block : owned)
      std::free(block);
  }
  std::string name() const override { return "fake"; }
  Status allocate(size_t bytes, DeviceAddress &address) override {
    address = 0;
    log.push_back("allocate " + std::to_string(bytes));
    if (!bytes)
      return Status();
    ++allocations;
    void *block = std::aligned_alloc(256, (bytes + 255) / 256 * 256);
    owned.push_back(block);
    address = reinterpret_cast<uintptr_t>(block);
    allocated.push_back(address);
    return Status();
  }
  void release(DeviceAddress address) override {
    if (!address)
      return;
    ++releases;
    for (void *&block : owned)
      if (reinterpret_cast<uintptr_t>(block) == address) {
        std::free(block);
        block = nullptr;
      }
  }
  Status copyToDevice(DeviceAddress destination, const void *source, size_t bytes) override {
    log.push_back("copyToDevice " + std::to_string(bytes));
    std::memcpy(reinterpret_cast<void *>(destination), source, bytes);
    return Status();
  }
  Status copyToHost(void *destination, DeviceAddress source, size_t bytes, void *) override {
    log.push_back("copyToHost " + std::to_string(bytes));
    std::memcpy(destination, reinterpret_cast<const void *>(source), bytes);
    return Status();
  }
  Status synchronize(void *) override { return Status(); }
  Status loadKernel(const KernelInfo &kernel, const std::string &, int &handle) override {
    log.push_back("load " + kernel.name);
    handle = int(kernels.size());
    kernels.push_back(kernel);
    return Status();
  }
  Status launch(const LaunchParams &params) override {
    const KernelInfo &kernel = kernels.at(params.kernel);
    RecordedLaunch launch{kernel.name, params.grid, params.block, params.sharedBytes, {}};
    for (size_t i = 0; i < params.numArgs; ++i) {
      if (kernel.arguments.at(i) == ArgType::I32)
        launch.args.push_back(*static_cast<const int32_t *>(params.args[i]));
      else
        launch.args.push_back(int64_t(*static_cast<const uint64_t *>(params.args[i])));
    }
    log.push_back("launch " + kernel.name);
    launches.push_back(launch);
    if (onLaunch)
      onLaunch(launch);
    return Status();
  }

private:
  std::vector<void *> owned;
};

/// The files of the test artifact with placeholder digests, which
/// writeTestArtifact replaces by those of the files it writes.
#define MOEQ_TEST_FILES                                                                      \
  R"("files": {"params.safetensors": {"bytes": 0, "xxh3_128": "00000000000000000000000000000000"},)"                        \
  R"( "kernels/route.ptx": {"bytes": 0, "xxh3_128": "00000000000000000000000000000000"},)"                                  \
  R"( "kernels/route.emu.bc": {"bytes": 0, "xxh3_128": "00000000000000000000000000000000"},)"                               \
  R"( "kernels/expert.ptx": {"bytes": 0, "xxh3_128": "00000000000000000000000000000000"},)"                                 \
  R"( "kernels/expert.emu.bc": {"bytes": 0, "xxh3_128": "00000000000000000000000000000000"}},)"

/// A valid version-3 manifest: layer 1, hidden 4, a routing launch, a copy
/// of the per-expert counts to the host, and two expert launches whose grid
/// and arguments load from it (the second has a zero grid when counts[2]
/// is 0).
inline const char *const kTestManifest = R"({
  "format": "moeq-artifact", "version": 3,
  )" MOEQ_TEST_FILES R"(
  "model": {"hidden_size": 4},
  "device_params": [
    {"file": "params.safetensors", "tensor": "gate", "dtype": "f32", "shape": [3, 4]}
  ],
  "kernels": [
    {"name": "route", "ptx": "kernels/route.ptx", "emulation": "kernels/route.emu.bc",
     "shared_memory_bytes": 0, "arguments": ["ptr", "ptr", "ptr", "ptr", "i32"]},
    {"name": "expert", "ptx": "kernels/expert.ptx", "emulation": "kernels/expert.emu.bc",
     "shared_memory_bytes": 64, "arguments": ["ptr", "ptr", "i32"]},
    {"name": "unused", "arguments": []}
  ],
  "layers": [{
    "layer": 1, "hidden_size": 4,
    "plan": {
      "function": "moe_layer_1_launch",
      "buffers": [
        {"name": "x", "dtype": "f16", "shape": ["T", 4], "binding": "input"},
        {"name": "y", "dtype": "f16", "shape": ["T", 4], "binding": "output"},
        {"name": "ids", "dtype": "i32", "shape": ["T", 2]},
        {"name": "sorted", "dtype": "f16", "shape": [{"mul": ["T", 2]}, 4]},
        {"name": "counts", "dtype": "i32", "shape": [3]},
        {"name": "counts_host", "dtype": "i32", "shape": [3], "host": true}
      ],
      "steps": [
        {"launch": "route", "grid": ["T", 1, 1], "block": [32, 1, 1],
         "args": [{"buffer": "x"}, {"param": 0}, {"buffer": "ids"}, {"buffer": "counts"}, {"i32": "T"}]},
        {"copy": "counts", "to": "counts_host"},
        {"launch": "expert", "grid": [{"load": "counts_host", "index": 0}, 1, 1], "block": [64, 1, 1],
         "args": [{"buffer": "sorted", "offset": {"mul": [{"load": "counts_host", "index": 1}, 4]}},
                  {"buffer": "y"}, {"i32": {"load": "counts_host", "index": 2}}]},
        {"launch": "expert", "grid": [{"load": "counts_host", "index": 2}, 2, 1], "block": [64, 1, 1],
         "shared_memory_bytes": 128,
         "args": [{"buffer": "sorted"}, {"buffer": "y", "offset": 4}, {"i32": 7}]}
      ]
    }
  }]
})";

/// `text` with the first occurrence of `from` replaced (which must exist).
inline std::string replaced(std::string text, const std::string &from, const std::string &to) {
  size_t at = text.find(from);
  if (at == std::string::npos)
    return "<replaced: '" + from + "' not found>";
  return text.replace(at, from.size(), to);
}

/// The manifest's "files" member (with a trailing comma) for `relatives`
/// under `dir`: their sizes and digests, as the compiler lists them.
inline std::string filesMember(const std::string &dir, const std::vector<std::string> &relatives) {
  std::string text = "\"files\": {";
  for (const std::string &relative : relatives) {
    FileDigest digest;
    if (!digestFile(dir + "/" + relative, digest).ok())
      std::abort();
    text += (text.back() == '{' ? "\"" : ", \"") + relative + "\": {\"bytes\": " +
            std::to_string(digest.bytes) + ", \"xxh3_128\": \"" + digest.xxh3 + "\"}";
  }
  return text + "},";
}

/// Writes an artifact: `manifest`, kernels/{route,expert}.{ptx,emu.bc}
/// (placeholders) and params.safetensors with
///   gate  F32  [3, 4]     0, 1, ..., 11
///   stack BF16 [2, 3, 4]  i / 4 for element i
///   ids   I32  [5]        10, 11, ..., 14
///   half  F16  [4]        0.5, 1.5, 2.5, 3.5
/// with the digests of these files in place of MOEQ_TEST_FILES's
/// placeholders (a `manifest` without them is written as it is).
inline void writeTestArtifact(const std::string &dir, const std::string &manifest) {
  std::system(("mkdir -p '" + dir + "/kernels'").c_str());
  for (const char *name : {"route", "expert"}) {
    writeFile(dir + "/kernels/" + name + ".ptx", "// placeholder\n");
    writeFile(dir + "/kernels/" + name + ".emu.bc", "placeholder");
  }
  static std::vector<float> gate(12);
  static std::vector<uint16_t> stack(24), half(4);
  static std::vector<int32_t> ids(5);
  for (size_t i = 0; i < gate.size(); ++i)
    gate[i] = float(i);
  for (size_t i = 0; i < stack.size(); ++i)
    stack[i] = mlir::moeq::io::floatToBF16(float(i) / 4);
  for (size_t i = 0; i < ids.size(); ++i)
    ids[i] = int32_t(10 + i);
  for (size_t i = 0; i < half.size(); ++i)
    half[i] = mlir::moeq::io::floatToHalf(float(i) + 0.5f);
  Status status = writeSafeTensors(dir + "/params.safetensors",
                                   {{"gate", "F32", {3, 4}, gate.data()},
                                    {"stack", "BF16", {2, 3, 4}, stack.data()},
                                    {"ids", "I32", {5}, ids.data()},
                                    {"half", "F16", {4}, half.data()}});
  if (!status.ok())
    std::abort();
  std::string files =
      filesMember(dir, {"params.safetensors", "kernels/route.ptx", "kernels/route.emu.bc",
                        "kernels/expert.ptx", "kernels/expert.emu.bc"});
  std::string text = manifest;
  if (size_t at = text.find(MOEQ_TEST_FILES); at != std::string::npos)
    text.replace(at, std::string(MOEQ_TEST_FILES).size(), files);
  writeFile(dir + "/manifest.json", text);
}

} // namespace moeq::runtime::test

#endif // MOEQ_TEST_UNIT_RUNTIME_RUNTIMETESTUTIL_H
