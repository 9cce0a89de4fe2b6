//===- ManifestVersion.h - the artifact manifest's schema version -*- C++ -*-===//
//
// Shared by the compiler (which writes manifest.json) and the runtime (which
// refuses any other version). No dependencies: the runtime builds without
// LLVM. Bump it with every incompatible change of docs/manifest.md or of
// the launch plan (docs/runtime.md).
//
//===----------------------------------------------------------------------===//
#ifndef MOEQ_RUNTIME_MANIFESTVERSION_H
#define MOEQ_RUNTIME_MANIFESTVERSION_H

#include <cstdint>

namespace moeq {
/// Version 3: `files` lists every file of the artifact with its size and
/// digest, and readers check what they read against it. Version 2: the
/// launch plan (`plan`, `device_params`) replaced the per-linear `launch`
/// descriptions of version 1.
inline constexpr int64_t kManifestVersion = 3;
} // namespace moeq

#endif // MOEQ_RUNTIME_MANIFESTVERSION_H
