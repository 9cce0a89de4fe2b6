//===- ManifestTest.cpp - manifest parsing and validation messages --------===//
#include "moeq/Runtime/Plan.h"
#include "moeq/Runtime/Weights.h"

#include "RuntimeTestUtil.h"

#include "gtest/gtest.h"

#include <cstdio>

using namespace moeq::runtime;
using namespace moeq::runtime::test;

namespace {

std::string parseError(const std::string &text) {
  Manifest manifest;
  Status status = parseManifest(text, "m.json", "art", manifest);
  EXPECT_FALSE(status.ok()) << "parsed";
  return status.message();
}

/// The test manifest with one substitution: its parse error.
std::string errorWith(const std::string &from, const std::string &to) {
  return parseError(replaced(kTestManifest, from, to));
}

TEST(RuntimeManifest, ParsesTheTestManifest) {
  Manifest manifest;
  Status status = parseManifest(kTestManifest, "m.json", "art", manifest);
  ASSERT_TRUE(status.ok()) << status.message();
  EXPECT_EQ(manifest.hiddenSize, 4);
  ASSERT_EQ(manifest.layers.size(), 1u);
  const LayerPlan &layer = manifest.layers[0];
  EXPECT_EQ(layer.layer, 1);
  EXPECT_EQ(layer.function, "moe_layer_1_launch");
  EXPECT_EQ(layer.input, 0);
  EXPECT_EQ(layer.output, 1);
  ASSERT_EQ(layer.steps.size(), 4u);
  EXPECT_EQ(layer.steps[1].kind, Step::Kind::Copy);
  EXPECT_EQ(layer.steps[1].from, 4);
  EXPECT_EQ(layer.steps[1].to, 5);
  EXPECT_EQ(layer.steps[2].kernel, 1);
  // Without its own shared_memory_bytes a launch takes the kernel's.
  EXPECT_EQ(layer.steps[2].sharedMemoryBytes.value, 64);
  EXPECT_EQ(layer.steps[3].sharedMemoryBytes.value, 128);
  EXPECT_EQ(manifest.findLayer(1), &layer);
  EXPECT_EQ(manifest.findLayer(0), nullptr);
  EXPECT_TRUE(manifest.kernelIsLaunched(0));
  EXPECT_FALSE(manifest.kernelIsLaunched(2));
  ASSERT_EQ(manifest.deviceParams.size(), 1u);
  EXPECT_EQ(manifest.deviceParams[0].shape, (std::vector<int64_t>{3, 4}));
}

TEST(RuntimeManifest, VersionOneArgumentObjectsAreAccepted) {
  Manifest manifest;
  std::string text = replaced(kTestManifest, R"("arguments": ["ptr", "ptr", "i32"])",
                              R"("arguments": [{"name": "x", "type": "f16*"},
                                               {"name": "y", "type": "f16*"},
                                               {"name": "M", "type": "i32"}])");
  Status status = parseManifest(text, "m.json", "art", manifest);
  ASSERT_TRUE(status.ok()) << status.message();
  EXPECT_EQ(manifest.kernels[1].arguments,
            (std::vector<ArgType>{ArgType::Pointer, ArgType::Pointer, ArgType::I32}));
}

TEST(RuntimeManifest, FormatAndVersion) {
  EXPECT_EQ(errorWith(R"("format": "moeq-artifact", )", ""),
            "m.json: not a moeq artifact (expected \"format\": \"moeq-artifact\")");
  EXPECT_EQ(errorWith(R"("version": 3)", R"("version": 2)"),
            "m.json: manifest version 2, this runtime reads version 3: recompile the model "
            "with this moeq");
  EXPECT_EQ(errorWith(R"("version": 3)", R"("version": 4)"),
            "m.json: manifest version 4, this runtime reads version 3: recompile the model "
            "with this moeq");
  EXPECT_EQ(parseError("[1, 2]"), "m.json: not a moeq artifact (the manifest is not a JSON object)");
  EXPECT_EQ(parseError("{\"format\": ").rfind("m.json: not a moeq artifact (invalid JSON: ", 0), 0u);
}

TEST(RuntimeManifest, UnknownKinds) {
  EXPECT_EQ(errorWith(R"({"copy": "counts", "to": "counts_host"})", R"({"sync": true})"),
            "m.json: layers[0].plan.steps[1]: unknown step kind (a step has \"launch\" or "
            "\"copy\"; this one has \"sync\")");
  EXPECT_EQ(errorWith(R"("grid": ["T", 1, 1])", R"("grid": [{"pow": ["T", 2]}, 1, 1])"),
            "m.json: layers[0].plan.steps[0].grid[0]: unknown expression kind \"pow\" (expected "
            "add, sub, mul, div, ceildiv, min, max or load)");
  EXPECT_EQ(errorWith(R"({"i32": "T"})", R"({"i64": "T"})"),
            "m.json: layers[0].plan.steps[0].args[4]: unknown argument kind (expected "
            "\"buffer\", \"param\" or \"i32\"; found \"i64\")");
  EXPECT_EQ(errorWith(R"("shape": [3]},)", R"("shape": [3], "binding": "scratch"},)"),
            "m.json: layers[0].plan.buffers[4].binding: unknown binding \"scratch\" (expected "
            "\"input\" or \"output\")");
  EXPECT_EQ(errorWith(R"("arguments": ["ptr", "ptr", "i32"])", R"("arguments": ["ptr", "f16", "i32"])"),
            "m.json: kernels[1].arguments[1]: unknown argument type \"f16\" (expected \"ptr\" or "
            "\"i32\")");
}

TEST(RuntimeManifest, BadDTypes) {
  EXPECT_EQ(errorWith(R"("dtype": "i32", "shape": ["T", 2])", R"("dtype": "int32", "shape": ["T", 2])"),
            "m.json: layers[0].plan.buffers[2].dtype: bad dtype \"int32\" (expected f16, f32, i32, "
            "i8 or u64)");
  EXPECT_EQ(errorWith(R"("tensor": "gate", "dtype": "f32")", R"("tensor": "gate", "dtype": "bf16")"),
            "m.json: device_params[0].dtype: bad dtype \"bf16\" (expected f16, f32, i32, i8 or "
            "u64)");
  EXPECT_EQ(errorWith(R"({"name": "x", "dtype": "f16")", R"({"name": "x", "dtype": "f32")"),
            "m.json: layers[0].plan.buffers[0]: the input buffer 'x' must be f16 with shape "
            "[\"T\", hidden], the caller's tensor");
}

TEST(RuntimeManifest, NamesMustResolve) {
  EXPECT_EQ(errorWith(R"("launch": "route")", R"("launch": "routes")"),
            "m.json: layers[0].plan.steps[0]: launches unknown kernel 'routes' (not in "
            "\"kernels\")");
  EXPECT_EQ(errorWith(R"({"buffer": "ids"})", R"({"buffer": "idx"})"),
            "m.json: layers[0].plan.steps[0].args[2]: unknown buffer 'idx'");
  EXPECT_EQ(errorWith(R"({"param": 0})", R"({"param": 3})"),
            "m.json: layers[0].plan.steps[0].args[1]: device_params[3] does not exist (the "
            "manifest has 1)");
  EXPECT_EQ(errorWith(R"("to": "counts_host")", R"("to": "ids")"),
            "m.json: layers[0].plan.steps[1]: copies to 'ids', which is not a host buffer");
  EXPECT_EQ(errorWith(R"({"copy": "counts")", R"({"copy": "count")"),
            "m.json: layers[0].plan.steps[1]: unknown buffer 'count'");
  EXPECT_EQ(errorWith(R"({"buffer": "x"})", R"({"buffer": "counts_host"})"),
            "m.json: layers[0].plan.steps[0].args[0]: host buffer 'counts_host' passed to a kernel");
}

TEST(RuntimeManifest, ArgumentsMatchTheKernelSignature) {
  EXPECT_EQ(errorWith(R"({"buffer": "counts"}, {"i32": "T"})", R"({"buffer": "counts"})"),
            "m.json: layers[0].plan.steps[0].args: 4 arguments for kernel 'route', which takes 5");
  EXPECT_EQ(errorWith(R"({"buffer": "counts"}, {"i32": "T"})",
                      R"({"buffer": "counts"}, {"buffer": "ids"})"),
            "m.json: layers[0].plan.steps[0].args[4]: a buffer for parameter 4 of kernel "
            "'route', which is an i32");
  EXPECT_EQ(errorWith(R"({"buffer": "x"}, {"param": 0})", R"({"i32": 1}, {"param": 0})"),
            "m.json: layers[0].plan.steps[0].args[0]: an i32 for parameter 0 of kernel 'route', "
            "which is a pointer");
}

TEST(RuntimeManifest, LoadsNeedAnEarlierCopy) {
  EXPECT_EQ(errorWith(R"({"copy": "counts", "to": "counts_host"},)", ""),
            "m.json: layers[0].plan.steps[1].grid[0]: load from 'counts_host' before a copy "
            "fills it");
  EXPECT_EQ(errorWith(R"({"name": "counts", "dtype": "i32", "shape": [3]})",
                      R"({"name": "counts", "dtype": "i32", "shape": [{"load": "counts_host", "index": 0}]})"),
            "m.json: layers[0].plan.buffers[4].shape[0]: a buffer's shape depends on T only; it "
            "cannot load from 'counts_host'");
  EXPECT_EQ(errorWith(R"({"load": "counts_host", "index": 0}, 1, 1])",
                      R"({"load": "sorted", "index": 0}, 1, 1])"),
            "m.json: layers[0].plan.steps[2].grid[0]: load from 'sorted', which is not a host "
            "buffer");
}

TEST(RuntimeManifest, BindingsAndHiddenSize) {
  EXPECT_EQ(errorWith(R"(, "binding": "input")", ""),
            "m.json: layers[0].plan.buffers: no buffer with \"binding\": \"input\"");
  EXPECT_EQ(errorWith(R"("shape": ["T", 2]})", R"("shape": ["T", 2], "binding": "output"})"),
            "m.json: layers[0].plan.buffers[2]: a second buffer bound to the caller's output "
            "(the first is 'y')");
  EXPECT_EQ(errorWith(R"({"name": "x", "dtype": "f16", "shape": ["T", 4])",
                      R"({"name": "x", "dtype": "f16", "shape": ["T", 8])"),
            "m.json: layers[0].plan.buffers: the input has 8 columns and the output 4");
  EXPECT_EQ(errorWith(R"("model": {"hidden_size": 4})", R"("model": {"hidden_size": 6})"),
            "m.json: model.hidden_size: 6, but the layers' plans have 4 columns");
  EXPECT_EQ(errorWith(R"("layer": 1, "hidden_size": 4)", R"("layer": 1, "hidden_size": 5)"),
            "m.json: layers[0]: hidden_size 5 but the plan's input has 4 columns");
  EXPECT_EQ(errorWith(R"({"name": "ids")", R"({"name": "x")"),
            "m.json: layers[0].plan.buffers[2]: a second buffer named 'x'");
  EXPECT_EQ(errorWith(R"("layer": 1, )", ""), "m.json: layers[0]: missing \"layer\"");
}

TEST(RuntimeManifest, MissingKernelFileIsNamed) {
  TempDir dir;
  writeTestArtifact(dir.path, kTestManifest);
  Manifest manifest;
  Status status = loadManifest(dir.path, KernelFile::Ptx, manifest);
  ASSERT_TRUE(status.ok()) << status.message();
  std::remove(dir.file("kernels/expert.ptx").c_str());
  status = loadManifest(dir.path, KernelFile::Ptx, manifest);
  EXPECT_EQ(status.message(),
            "missing kernel file " + dir.file("kernels/expert.ptx") + " (kernel 'expert')");
  // The emulator needs the other file, which is still there.
  EXPECT_TRUE(loadManifest(dir.path, KernelFile::Emulation, manifest).ok());
  std::remove(dir.file("kernels/route.emu.bc").c_str());
  status = loadManifest(dir.path, KernelFile::Emulation, manifest);
  EXPECT_EQ(status.message(),
            "missing kernel file " + dir.file("kernels/route.emu.bc") + " (kernel 'route')");
}

TEST(RuntimeManifest, FilesListEveryReferencedFile) {
  EXPECT_EQ(errorWith(MOEQ_TEST_FILES, ""), "m.json: missing \"files\"");
  EXPECT_EQ(errorWith(R"("kernels/expert.ptx": {"bytes": 0, "xxh3_128": "00000000000000000000000000000000"},)", ""),
            "m.json: kernels[1].ptx: 'kernels/expert.ptx' is not listed in \"files\"");
  EXPECT_EQ(errorWith(R"("params.safetensors": {"bytes": 0,)", R"("other.safetensors": {"bytes": 0,)"),
            "m.json: device_params[0].file: 'params.safetensors' is not listed in \"files\"");
  EXPECT_EQ(errorWith(R"("params.safetensors": {"bytes": 0,)", R"("../params.safetensors": {"bytes": 0,)"),
            "m.json: files[\"../params.safetensors\"]: not a path inside the artifact");
  EXPECT_EQ(errorWith(R"("params.safetensors": {"bytes": 0,)", R"("/etc/passwd": {"bytes": 0,)"),
            "m.json: files[\"/etc/passwd\"]: not a path inside the artifact");
  EXPECT_EQ(errorWith(R"("params.safetensors": {"bytes": 0,)", R"("params.safetensors": {"bytes": -1,)"),
            "m.json: files[\"params.safetensors\"].bytes: expected a non-negative integer, found -1");
  EXPECT_EQ(errorWith(R"({"bytes": 0, "xxh3_128": "00000000000000000000000000000000"})",
                      R"({"bytes": 0, "xxh3_128": "0000"})"),
            "m.json: files[\"params.safetensors\"].xxh3_128: expected 32 lower-case hex digits");
}

TEST(RuntimeManifest, AlteredFilesAreRefusedByName) {
  TempDir dir;
  writeTestArtifact(dir.path, kTestManifest);
  Manifest manifest;
  ASSERT_TRUE(loadManifest(dir.path, KernelFile::Ptx, manifest).ok());
  // A kernel edited after the compile: the backend that loads it refuses it.
  writeFile(dir.file("kernels/expert.ptx"), "// placeholdeR\n");
  Status status = loadManifest(dir.path, KernelFile::Ptx, manifest);
  EXPECT_EQ(status.message().rfind("kernel 'expert': " + dir.file("kernels/expert.ptx") +
                                       " does not match its checksum (xxh3_128 ",
                                   0),
            0u)
      << status.message();
  EXPECT_TRUE(loadManifest(dir.path, KernelFile::Emulation, manifest).ok());
  EXPECT_TRUE(loadManifest(dir.path, KernelFile::Ptx, manifest, DigestCheck::Skip).ok());
}

TEST(RuntimeChecksum, KnownDigests) {
  // XXH3-128 (seed 0) reference values, as `xxhsum -H2` prints them.
  EXPECT_EQ(digestBytes("", 0), "99aa06d3014798d86001c324468d497f");
  EXPECT_EQ(digestBytes("hello", 5), "b5e9c1ad071b3e7fc779cfaa5e523818");
  // Files are hashed in chunks: the digest of a file larger than one chunk
  // equals that of its bytes in one piece.
  TempDir dir;
  std::string big(9u << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i)
    big[i] = char((i * 2654435761u) >> 13);
  writeFile(dir.file("big"), big);
  FileDigest digest;
  ASSERT_TRUE(digestFile(dir.file("big"), digest).ok());
  EXPECT_EQ(digest.bytes, big.size());
  EXPECT_EQ(digest.xxh3, digestBytes(big.data(), big.size()));
  EXPECT_FALSE(digestFile(dir.file("absent"), digest).ok());
}

TEST(RuntimeChecksum, ArtifactRelativePaths) {
  for (const char *good : {"experts.safetensors", "kernels/a.ptx", "hf/config.json"})
    EXPECT_TRUE(isArtifactRelativePath(good)) << good;
  for (const char *bad : {"", "/abs", "../up", "a/../b", "./a", "a//b", "a/", "a\\b"})
    EXPECT_FALSE(isArtifactRelativePath(bad)) << bad;
}

TEST(RuntimeManifest, NotAnArtifactDirectory) {
  TempDir dir;
  Manifest manifest;
  Status status = loadManifest(dir.path, KernelFile::Ptx, manifest);
  EXPECT_EQ(status.message(), dir.path + ": not a moeq artifact (cannot read " +
                                  dir.file("manifest.json") + ")");
}

/// DeviceParamSources::open's message for the test artifact with its
/// device_params replaced by `params`.
std::string paramError(const std::string &params) {
  TempDir dir;
  writeTestArtifact(dir.path,
                    replaced(kTestManifest,
                             R"({"file": "params.safetensors", "tensor": "gate", "dtype": "f32", "shape": [3, 4]})",
                             params));
  Manifest manifest;
  Status status = loadManifest(dir.path, KernelFile::None, manifest);
  DeviceParamSources sources;
  std::string message;
  if (!status.ok())
    message = "manifest: " + status.message();
  else
    message = sources.open(manifest).message();
  // Tests compare without the temporary directory.
  for (size_t at; (at = message.find(dir.path)) != std::string::npos;)
    message.replace(at, dir.path.size(), "DIR");
  return message;
}

TEST(RuntimeManifest, WeightTensorsAreCheckedAtOpen) {
  EXPECT_EQ(paramError(R"({"file": "params.safetensors", "tensor": "gate", "dtype": "f32", "shape": [3, 4]})"),
            "");
  EXPECT_EQ(paramError(R"({"file": "params.safetensors", "tensor": "gates", "dtype": "f32", "shape": [3, 4]})"),
            "DIR/manifest.json: device_params[0]: no tensor 'gates' in DIR/params.safetensors");
  EXPECT_EQ(paramError(R"({"file": "params.safetensors", "tensor": "gate", "dtype": "f32", "shape": [4, 3]})"),
            "DIR/manifest.json: device_params[0]: tensor 'gate' of DIR/params.safetensors "
            "selects shape [3, 4] (of [3, 4]), the manifest says [4, 3]");
  EXPECT_EQ(paramError(R"({"file": "params.safetensors", "tensor": "gate", "dtype": "i32", "shape": [3, 4]})"),
            "DIR/manifest.json: device_params[0]: tensor 'gate' of DIR/params.safetensors is F32, "
            "which does not convert to i32");
  // Every weight file is listed with its checksum; a listed one is read
  // only once it matches.
  EXPECT_EQ(paramError(R"({"file": "weights.safetensors", "tensor": "gate", "dtype": "f32", "shape": [3, 4]})"),
            "manifest: DIR/manifest.json: device_params[0].file: 'weights.safetensors' is not "
            "listed in \"files\"");
  EXPECT_EQ(paramError(R"({"file": "params.safetensors", "tensor": "stack", "dtype": "f16", "shape": [3, 4], "index": 2})"),
            "DIR/manifest.json: device_params[0]: DIR/params.safetensors: index 2 is outside the "
            "2 matrices of 'stack' [2, 3, 4]");
  EXPECT_EQ(paramError(R"({"file": "params.safetensors", "tensor": "stack", "dtype": "f16", "shape": [2, 4], "index": 1, "rows": [2, 2]})"),
            "DIR/manifest.json: device_params[0]: DIR/params.safetensors: rows [2, 2] are outside "
            "'stack' [2, 3, 4] (matrix 1)");
  EXPECT_EQ(paramError(R"({"file": "params.safetensors", "tensor": "ids", "dtype": "i32", "shape": [5], "index": 0})"),
            "DIR/manifest.json: device_params[0]: DIR/params.safetensors: \"index\" selects one "
            "matrix of a stacked tensor, but 'ids' has shape [5]");
  EXPECT_EQ(paramError(R"({"file": "params.safetensors", "tensor": "gate", "dtype": "f32", "shape": [3, 4], "rows": [0]})"),
            "manifest: DIR/manifest.json: device_params[0].rows: expected 2 elements, found 1");
  // Transposed and strided selections (Llama 4, gpt-oss).
  EXPECT_EQ(paramError(R"({"file": "params.safetensors", "tensor": "stack", "dtype": "f32", "shape": [4, 3], "index": 1, "transposed": true})"),
            "");
  EXPECT_EQ(paramError(R"({"file": "params.safetensors", "tensor": "stack", "dtype": "f32", "shape": [2, 3], "index": 1, "transposed": true, "rows": [2, 2], "step": 2})"),
            "DIR/manifest.json: device_params[0]: DIR/params.safetensors: rows [2, 2] step 2 are "
            "outside 'stack' [2, 3, 4] (matrix 1)");
  EXPECT_EQ(paramError(R"({"file": "params.safetensors", "tensor": "gate", "dtype": "f32", "shape": [3, 4], "step": 2})"),
            "manifest: DIR/manifest.json: device_params[0].step: a row step must be at least 1 and "
            "needs \"rows\"");
  EXPECT_EQ(paramError(R"({"file": "params.safetensors", "tensor": "gate", "dtype": "f32", "shape": [3, 4], "transposed": 1})"),
            "manifest: DIR/manifest.json: device_params[0].transposed: expected true or false");
}

} // namespace

TEST(RuntimeManifest, AddressTables) {
  const std::string tensor =
      R"({"file": "params.safetensors", "tensor": "gate", "dtype": "f32", "shape": [3, 4]})";
  auto withParams = [&](const std::string &extra) {
    return replaced(kTestManifest, tensor, tensor + ", " + extra);
  };
  // A table lists tensors that exist (not itself, not another table).
  EXPECT_EQ(parseError(withParams(R"({"addresses": [[0, 1]], "dtype": "u64", "shape": [1, 3]})")),
            "m.json: device_params[1].addresses: entry 1 is not a device tensor");
  EXPECT_EQ(parseError(withParams(R"({"addresses": [[0, 5]], "dtype": "u64", "shape": [1, 3]})")),
            "m.json: device_params[1].addresses: entry 5 is not a device tensor");
  EXPECT_EQ(
      parseError(withParams(R"({"addresses": [[0, 0, 0, 0]], "dtype": "u64", "shape": [1, 3]})")),
      "m.json: device_params[1].addresses[0]: more addresses than the table's 3 columns");
  EXPECT_EQ(parseError(withParams(R"({"addresses": [[0]], "dtype": "i32", "shape": [1, 3]})")),
            "m.json: device_params[1].dtype: an address table is u64");
  EXPECT_EQ(parseError(withParams(R"({"addresses": [[0], [0]], "dtype": "u64", "shape": [1, 3]})")),
            "m.json: device_params[1].shape: an address table of 2 rows has shape [2, columns]");
  // A tensor cannot be u64.
  EXPECT_EQ(errorWith(R"("tensor": "gate", "dtype": "f32")", R"("tensor": "gate", "dtype": "u64")"),
            "m.json: device_params[0].dtype: bad dtype \"u64\" for a device parameter (expected "
            "f16, f32 or i32)");
}
