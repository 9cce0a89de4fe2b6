//===- CudaDevice.cpp - the CUDA driver API backend -----------------------===//
//
// The driver library is opened at run time (dlopen("libcuda.so.1")) and the
// few entry points the runtime needs are looked up by name, so nothing from
// the CUDA toolkit is needed to build or link: the types and constants
// below are restated from the driver API documentation (cuda.h). Versioned
// entry points (`_v2`) are the ones cuda.h maps the plain names to.
//
// Every call runs with the primary context of the chosen device pushed, and
// pops it again, so the caller's current context (e.g. PyTorch's, which is
// the same primary context) is left as it was.
//
//===----------------------------------------------------------------------===//
#include "moeq/Runtime/Device.h"

#include <dlfcn.h>
#include <fstream>
#include <sstream>
#include <vector>

using namespace moeq::runtime;

namespace {

// From cuda.h (driver API).
using CUresult = int;
using CUdevice = int;
using CUdeviceptr = unsigned long long;
using CUcontext = struct CUctx_st *;
using CUmodule = struct CUmod_st *;
using CUfunction = struct CUfunc_st *;
using CUstream = struct CUstream_st *;
using CUevent = struct CUevent_st *;
using CUjit_option = int;
using CUfunction_attribute = int;

constexpr CUresult CUDA_SUCCESS = 0;
constexpr CUjit_option CU_JIT_ERROR_LOG_BUFFER = 5;
constexpr CUjit_option CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 6;
constexpr CUfunction_attribute CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8;
constexpr unsigned CU_EVENT_DEFAULT = 0;
/// Dynamic shared memory above this needs the function attribute raised.
constexpr uint32_t kDefaultSharedLimit = 48 * 1024;

/// The driver entry points, looked up once per process.
struct DriverApi {
  CUresult (*cuInit)(unsigned);
  CUresult (*cuDeviceGetCount)(int *);
  CUresult (*cuDeviceGet)(CUdevice *, int);
  CUresult (*cuDevicePrimaryCtxRetain)(CUcontext *, CUdevice);
  CUresult (*cuDevicePrimaryCtxRelease)(CUdevice);
  CUresult (*cuCtxPushCurrent)(CUcontext);
  CUresult (*cuCtxPopCurrent)(CUcontext *);
  CUresult (*cuModuleLoadDataEx)(CUmodule *, const void *, unsigned, CUjit_option *, void **);
  CUresult (*cuModuleUnload)(CUmodule);
  CUresult (*cuModuleGetFunction)(CUfunction *, CUmodule, const char *);
  CUresult (*cuFuncSetAttribute)(CUfunction, CUfunction_attribute, int);
  CUresult (*cuLaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned,
                             unsigned, unsigned, CUstream, void **, void **);
  CUresult (*cuMemAlloc)(CUdeviceptr *, size_t);
  CUresult (*cuMemFree)(CUdeviceptr);
  CUresult (*cuMemcpyHtoD)(CUdeviceptr, const void *, size_t);
  CUresult (*cuMemcpyDtoHAsync)(void *, CUdeviceptr, size_t, CUstream);
  CUresult (*cuStreamSynchronize)(CUstream);
  CUresult (*cuEventCreate)(CUevent *, unsigned);
  CUresult (*cuEventDestroy)(CUevent);
  CUresult (*cuEventRecord)(CUevent, CUstream);
  CUresult (*cuEventSynchronize)(CUevent);
  CUresult (*cuEventElapsedTime)(float *, CUevent, CUevent);
  CUresult (*cuGetErrorName)(CUresult, const char **);
  CUresult (*cuGetErrorString)(CUresult, const char **);
};

template <typename Fn>
bool lookup(void *library, const char *name, Fn &function, std::string &missing) {
  function = reinterpret_cast<Fn>(dlsym(library, name));
  if (!function)
    missing += (missing.empty() ? "" : ", ") + std::string(name);
  return function != nullptr;
}

struct LoadedDriver {
  DriverApi api{};
  std::string failure; ///< empty when every entry point was found
};

LoadedDriver openDriver() {
  LoadedDriver driver;
  void *library = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!library) {
    const char *reason = dlerror();
    driver.failure = std::string("no CUDA driver (libcuda.so.1): ") +
                     (reason ? reason : "dlopen failed");
    return driver;
  }
  DriverApi &api = driver.api;
  std::string missing;
  lookup(library, "cuInit", api.cuInit, missing);
  lookup(library, "cuDeviceGetCount", api.cuDeviceGetCount, missing);
  lookup(library, "cuDeviceGet", api.cuDeviceGet, missing);
  lookup(library, "cuDevicePrimaryCtxRetain", api.cuDevicePrimaryCtxRetain, missing);
  lookup(library, "cuDevicePrimaryCtxRelease_v2", api.cuDevicePrimaryCtxRelease, missing);
  lookup(library, "cuCtxPushCurrent_v2", api.cuCtxPushCurrent, missing);
  lookup(library, "cuCtxPopCurrent_v2", api.cuCtxPopCurrent, missing);
  lookup(library, "cuModuleLoadDataEx", api.cuModuleLoadDataEx, missing);
  lookup(library, "cuModuleUnload", api.cuModuleUnload, missing);
  lookup(library, "cuModuleGetFunction", api.cuModuleGetFunction, missing);
  lookup(library, "cuFuncSetAttribute", api.cuFuncSetAttribute, missing);
  lookup(library, "cuLaunchKernel", api.cuLaunchKernel, missing);
  lookup(library, "cuMemAlloc_v2", api.cuMemAlloc, missing);
  lookup(library, "cuMemFree_v2", api.cuMemFree, missing);
  lookup(library, "cuMemcpyHtoD_v2", api.cuMemcpyHtoD, missing);
  lookup(library, "cuMemcpyDtoHAsync_v2", api.cuMemcpyDtoHAsync, missing);
  lookup(library, "cuStreamSynchronize", api.cuStreamSynchronize, missing);
  lookup(library, "cuEventCreate", api.cuEventCreate, missing);
  lookup(library, "cuEventDestroy_v2", api.cuEventDestroy, missing);
  lookup(library, "cuEventRecord", api.cuEventRecord, missing);
  lookup(library, "cuEventSynchronize", api.cuEventSynchronize, missing);
  // Newer drivers also export a _v2; the original stays for old binaries.
  std::string ignored;
  if (!lookup(library, "cuEventElapsedTime", api.cuEventElapsedTime, ignored))
    lookup(library, "cuEventElapsedTime_v2", api.cuEventElapsedTime, missing);
  lookup(library, "cuGetErrorName", api.cuGetErrorName, missing);
  lookup(library, "cuGetErrorString", api.cuGetErrorString, missing);
  if (!missing.empty())
    driver.failure = "the CUDA driver (libcuda.so.1) lacks " + missing + ": driver too old?";
  return driver;
}

/// The driver, opened once per process (thread-safe static initialisation);
/// the library stays loaded.
Status loadDriver(const DriverApi *&api) {
  static const LoadedDriver driver = openDriver();
  if (!driver.failure.empty())
    return Status::error(driver.failure);
  api = &driver.api;
  return Status();
}

class CudaDevice final : public Device {
public:
  ~CudaDevice() override;
  static Status create(int ordinal, std::unique_ptr<Device> &device);

  std::string name() const override { return "cuda:" + std::to_string(ordinal); }
  Status allocate(size_t bytes, DeviceAddress &address) override;
  void release(DeviceAddress address) override;
  Status copyToDevice(DeviceAddress destination, const void *source, size_t bytes) override;
  Status copyToHost(void *destination, DeviceAddress source, size_t bytes, void *stream) override;
  Status synchronize(void *stream) override;
  Status loadKernel(const KernelInfo &kernel, const std::string &directory,
                    int &handle) override;
  Status launch(const LaunchParams &params) override;
  Status launchTimed(const LaunchParams &params, double &milliseconds) override;

private:
  struct Function {
    CUfunction function = nullptr;
    uint32_t sharedLimit = kDefaultSharedLimit; ///< the attribute as set now
  };

  /// "cuMemAlloc: CUDA_ERROR_OUT_OF_MEMORY (out of memory)" when `result`
  /// is an error.
  Status check(CUresult result, const char *call) const;
  /// Pushes the device's context for the lifetime of the guard.
  struct ContextGuard {
    explicit ContextGuard(const CudaDevice &device) : api(device.api) {
      pushed = api->cuCtxPushCurrent(device.context) == CUDA_SUCCESS;
    }
    ~ContextGuard() {
      CUcontext popped;
      if (pushed)
        api->cuCtxPopCurrent(&popped);
    }
    const DriverApi *api;
    bool pushed = false;
  };
  Status raiseSharedLimit(Function &function, uint32_t bytes);

  const DriverApi *api = nullptr;
  int ordinal = 0;
  CUdevice device = 0;
  CUcontext context = nullptr;
  std::vector<CUmodule> modules;
  std::vector<Function> functions;
  CUevent timingStart = nullptr, timingStop = nullptr;
};

Status CudaDevice::check(CUresult result, const char *call) const {
  if (result == CUDA_SUCCESS)
    return Status();
  const char *errorName = nullptr, *errorText = nullptr;
  api->cuGetErrorName(result, &errorName);
  api->cuGetErrorString(result, &errorText);
  return Status::error(std::string(call) + " on cuda:" + std::to_string(ordinal) + ": " +
                       (errorName ? errorName : "error " + std::to_string(result)) +
                       (errorText ? std::string(" (") + errorText + ")" : std::string()));
}

Status CudaDevice::create(int ordinal, std::unique_ptr<Device> &device) {
  std::unique_ptr<CudaDevice> result(new CudaDevice());
  MOEQ_RETURN_IF_ERROR(loadDriver(result->api));
  const DriverApi &api = *result->api;
  result->ordinal = ordinal;
  MOEQ_RETURN_IF_ERROR(result->check(api.cuInit(0), "cuInit"));
  int count = 0;
  MOEQ_RETURN_IF_ERROR(result->check(api.cuDeviceGetCount(&count), "cuDeviceGetCount"));
  if (ordinal < 0 || ordinal >= count)
    return Status::error("no CUDA device " + std::to_string(ordinal) + " (this machine has " +
                         std::to_string(count) + ")");
  MOEQ_RETURN_IF_ERROR(result->check(api.cuDeviceGet(&result->device, ordinal), "cuDeviceGet"));
  MOEQ_RETURN_IF_ERROR(result->check(
      api.cuDevicePrimaryCtxRetain(&result->context, result->device), "cuDevicePrimaryCtxRetain"));
  device = std::move(result);
  return Status();
}

CudaDevice::~CudaDevice() {
  if (!context)
    return;
  {
    ContextGuard guard(*this);
    if (timingStart)
      api->cuEventDestroy(timingStart);
    if (timingStop)
      api->cuEventDestroy(timingStop);
    for (CUmodule module : modules)
      api->cuModuleUnload(module);
  }
  api->cuDevicePrimaryCtxRelease(device);
}

Status CudaDevice::allocate(size_t bytes, DeviceAddress &address) {
  address = 0;
  if (bytes == 0)
    return Status();
  ContextGuard guard(*this);
  CUdeviceptr pointer = 0;
  MOEQ_RETURN_IF_ERROR(
      check(api->cuMemAlloc(&pointer, bytes), ("cuMemAlloc(" + std::to_string(bytes) + " bytes)").c_str()));
  address = pointer;
  return Status();
}

void CudaDevice::release(DeviceAddress address) {
  if (!address)
    return;
  ContextGuard guard(*this);
  api->cuMemFree(CUdeviceptr(address));
}

Status CudaDevice::copyToDevice(DeviceAddress destination, const void *source, size_t bytes) {
  if (bytes == 0)
    return Status();
  ContextGuard guard(*this);
  return check(api->cuMemcpyHtoD(CUdeviceptr(destination), source, bytes), "cuMemcpyHtoD");
}

Status CudaDevice::copyToHost(void *destination, DeviceAddress source, size_t bytes,
                              void *stream) {
  ContextGuard guard(*this);
  CUstream cuStream = static_cast<CUstream>(stream);
  MOEQ_RETURN_IF_ERROR(check(
      api->cuMemcpyDtoHAsync(destination, CUdeviceptr(source), bytes, cuStream),
      "cuMemcpyDtoHAsync"));
  return check(api->cuStreamSynchronize(cuStream), "cuStreamSynchronize");
}

Status CudaDevice::synchronize(void *stream) {
  ContextGuard guard(*this);
  return check(api->cuStreamSynchronize(static_cast<CUstream>(stream)), "cuStreamSynchronize");
}

Status CudaDevice::raiseSharedLimit(Function &function, uint32_t bytes) {
  if (bytes <= function.sharedLimit)
    return Status();
  MOEQ_RETURN_IF_ERROR(check(api->cuFuncSetAttribute(function.function,
                                                     CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                                     int(bytes)),
                             "cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES)"));
  function.sharedLimit = bytes;
  return Status();
}

Status CudaDevice::loadKernel(const KernelInfo &kernel, const std::string &directory,
                              int &handle) {
  std::string path = joinPath(directory, kernel.ptx);
  std::ifstream file(path, std::ios::binary);
  if (!file)
    return Status::error("cannot read " + path);
  std::ostringstream text;
  text << file.rdbuf();
  std::string ptx = text.str(); // NUL-terminated, as cuModuleLoadData wants PTX

  ContextGuard guard(*this);
  std::vector<char> log(8192, '\0');
  CUjit_option options[] = {CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
  void *values[] = {log.data(), reinterpret_cast<void *>(uintptr_t(log.size()))};
  CUmodule module = nullptr;
  Status loaded =
      check(api->cuModuleLoadDataEx(&module, ptx.c_str(), 2, options, values), "cuModuleLoadData");
  log.back() = '\0';
  if (!loaded.ok()) // the JIT's log says which PTX line it rejected
    return Status::error(path + ": " + loaded.message() +
                         (log[0] ? std::string("\n") + log.data() : std::string()));
  modules.push_back(module);
  Function function;
  MOEQ_RETURN_IF_ERROR(check(api->cuModuleGetFunction(&function.function, module,
                                                       kernel.entry.c_str()),
                             ("cuModuleGetFunction('" + kernel.entry + "')").c_str())
                           .prefixed(path + ": "));
  MOEQ_RETURN_IF_ERROR(raiseSharedLimit(function, uint32_t(kernel.sharedMemoryBytes)));
  handle = int(functions.size());
  functions.push_back(function);
  return Status();
}

Status CudaDevice::launch(const LaunchParams &params) {
  if (params.kernel < 0 || size_t(params.kernel) >= functions.size())
    return Status::error("launch of a kernel that was not loaded");
  ContextGuard guard(*this);
  Function &function = functions[params.kernel];
  MOEQ_RETURN_IF_ERROR(raiseSharedLimit(function, params.sharedBytes));
  return check(api->cuLaunchKernel(function.function, params.grid.x, params.grid.y,
                                   params.grid.z, params.block.x, params.block.y, params.block.z,
                                   params.sharedBytes, static_cast<CUstream>(params.stream),
                                   params.args, nullptr),
               "cuLaunchKernel");
}

Status CudaDevice::launchTimed(const LaunchParams &params, double &milliseconds) {
  ContextGuard guard(*this);
  if (!timingStart) {
    MOEQ_RETURN_IF_ERROR(check(api->cuEventCreate(&timingStart, CU_EVENT_DEFAULT), "cuEventCreate"));
    MOEQ_RETURN_IF_ERROR(check(api->cuEventCreate(&timingStop, CU_EVENT_DEFAULT), "cuEventCreate"));
  }
  CUstream stream = static_cast<CUstream>(params.stream);
  MOEQ_RETURN_IF_ERROR(check(api->cuEventRecord(timingStart, stream), "cuEventRecord"));
  MOEQ_RETURN_IF_ERROR(launch(params));
  MOEQ_RETURN_IF_ERROR(check(api->cuEventRecord(timingStop, stream), "cuEventRecord"));
  MOEQ_RETURN_IF_ERROR(check(api->cuEventSynchronize(timingStop), "cuEventSynchronize"));
  float elapsed = 0;
  MOEQ_RETURN_IF_ERROR(
      check(api->cuEventElapsedTime(&elapsed, timingStart, timingStop), "cuEventElapsedTime"));
  milliseconds = elapsed;
  return Status();
}

} // namespace

Status moeq::runtime::createCudaDevice(int ordinal, std::unique_ptr<Device> &device) {
  return CudaDevice::create(ordinal, device);
}
