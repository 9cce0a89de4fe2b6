//===- CApiTest.cpp - the C API's error handling --------------------------===//
//
// This test binary links the core runtime only (no emulator backend), as
// the runtime-only build does: the emulator must fail with a clear message.
//
//===----------------------------------------------------------------------===//
#include "moeq/Runtime/moeq_runtime.h"

#include "RuntimeTestUtil.h"

#include "gtest/gtest.h"

#include <dlfcn.h>

using namespace moeq::runtime::test;

namespace {

TEST(RuntimeCApi, NullArgumentsAreErrors) {
  moeq_artifact *artifact = reinterpret_cast<moeq_artifact *>(0x1);
  EXPECT_NE(moeq_artifact_open(nullptr, MOEQ_BACKEND_CUDA, 0, &artifact), 0);
  EXPECT_STREQ(moeq_last_error(), "moeq_artifact_open: null directory or result pointer");
  EXPECT_EQ(moeq_artifact_num_layers(nullptr), -1);
  EXPECT_STREQ(moeq_last_error(), "null artifact");
  EXPECT_EQ(moeq_artifact_layer(nullptr, 0), -1);
  EXPECT_EQ(moeq_artifact_hidden_size(nullptr), -1);
  EXPECT_NE(moeq_run_layer(nullptr, 0, nullptr, nullptr, 1, nullptr), 0);
  EXPECT_STREQ(moeq_last_error(), "null artifact");
  EXPECT_NE(moeq_run_layers(nullptr, 1, nullptr, nullptr, nullptr, 1, nullptr), 0);
  moeq_artifact_close(nullptr);
}

TEST(RuntimeCApi, OpenErrors) {
  TempDir dir;
  moeq_artifact *artifact = nullptr;
  EXPECT_NE(moeq_artifact_open(dir.path.c_str(), MOEQ_BACKEND_CUDA, 0, &artifact), 0);
  EXPECT_EQ(std::string(moeq_last_error()),
            dir.path + ": not a moeq artifact (cannot read " + dir.file("manifest.json") + ")");
  EXPECT_EQ(artifact, nullptr);

  writeTestArtifact(dir.path, kTestManifest);
  EXPECT_NE(moeq_artifact_open(dir.path.c_str(), moeq_backend(7), 0, &artifact), 0);
  EXPECT_STREQ(moeq_last_error(),
               "unknown backend 7 (MOEQ_BACKEND_CUDA = 0, MOEQ_BACKEND_EMULATOR = 1)");
  EXPECT_NE(moeq_artifact_open(dir.path.c_str(), MOEQ_BACKEND_EMULATOR, 0, &artifact), 0);
  EXPECT_STREQ(moeq_last_error(), "this runtime was built without the emulator backend (it "
                                  "needs the full LLVM build of moeq)");

  writeTestArtifact(dir.path, replaced(kTestManifest, R"("version": 3)", R"("version": 1)"));
  EXPECT_NE(moeq_artifact_open(dir.path.c_str(), MOEQ_BACKEND_CUDA, 0, &artifact), 0);
  EXPECT_EQ(std::string(moeq_last_error()),
            dir.file("manifest.json") + ": manifest version 1, this runtime reads version 3: "
                                        "recompile the model with this moeq");
}

TEST(RuntimeCApi, CudaWithoutADriverSaysSo) {
  if (void *driver = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL)) {
    dlclose(driver);
    GTEST_SKIP() << "this machine has a CUDA driver";
  }
  TempDir dir;
  writeTestArtifact(dir.path, kTestManifest);
  moeq_artifact *artifact = nullptr;
  EXPECT_NE(moeq_artifact_open(dir.path.c_str(), MOEQ_BACKEND_CUDA, 0, &artifact), 0);
  EXPECT_EQ(std::string(moeq_last_error()).rfind("no CUDA driver (libcuda.so.1): ", 0), 0u)
      << moeq_last_error();
}

} // namespace
