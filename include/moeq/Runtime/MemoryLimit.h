//===- MemoryLimit.h - what this process may allocate -----------*- C++ -*-===//
//
// Sizes read from files (a safetensors header, a tensor's shape, a buffer of
// a launch plan) decide how much moeq allocates. A size no allocation can
// satisfy is refused with a message naming what needed it, before the
// allocation fails (an abort, or the OOM killer). The limit is the smallest
// of the machine's physical memory, the cgroup's memory.max (containers)
// and the address-space and data limits (ulimit -v, -d). Header-only and
// free of LLVM: the runtime and the compiler's readers share it.
//
//===----------------------------------------------------------------------===//
#ifndef MOEQ_RUNTIME_MEMORYLIMIT_H
#define MOEQ_RUNTIME_MEMORYLIMIT_H

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>

namespace moeq {

/// The largest safetensors header read: the format's reference
/// implementation (MAX_HEADER_SIZE) refuses larger ones; so does moeq,
/// before allocating one (a sparse file can claim any length).
inline constexpr uint64_t kSafeTensorsMaxHeaderBytes = 100000000;

/// Bytes this process can allocate at most (see the file comment).
inline uint64_t memoryLimitBytes() {
  uint64_t limit = UINT64_MAX;
  long pages = sysconf(_SC_PHYS_PAGES), pageSize = sysconf(_SC_PAGE_SIZE);
  if (pages > 0 && pageSize > 0)
    limit = uint64_t(pages) * uint64_t(pageSize);
  for (int resource : {RLIMIT_AS, RLIMIT_DATA}) {
    struct rlimit bound;
    if (getrlimit(resource, &bound) == 0 && bound.rlim_cur != RLIM_INFINITY)
      limit = std::min<uint64_t>(limit, uint64_t(bound.rlim_cur));
  }
  std::ifstream cgroup("/sys/fs/cgroup/memory.max");
  unsigned long long cgroupMax = 0;
  if (cgroup >> cgroupMax)
    limit = std::min<uint64_t>(limit, cgroupMax); // ("max" does not parse: no limit)
  return limit;
}

/// "1.5 GiB".
inline std::string formatBytes(uint64_t bytes) {
  const char *units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double value = double(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 6) {
    value /= 1024;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof(text), unit ? "%.1f %s" : "%.0f %s", value, units[unit]);
  return text;
}

/// Empty when `bytes` can be allocated; otherwise why not, naming `what`
/// ("reading tensor 'w' as f32 needs 2.0 TiB, more than the 23.4 GiB this
/// process may use").
inline std::string checkAllocationSize(uint64_t bytes, const std::string &what) {
  uint64_t limit = memoryLimitBytes();
  if (bytes <= limit)
    return std::string();
  return what + " needs " + formatBytes(bytes) + ", more than the " + formatBytes(limit) +
         " this process may use (physical memory, cgroup and ulimit)";
}

} // namespace moeq

#endif // MOEQ_RUNTIME_MEMORYLIMIT_H
