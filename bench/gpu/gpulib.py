"""Loading and launching moeq's PTX kernels on an NVIDIA GPU, no moeq build
needed: the CUDA driver API through ctypes (`driver`, no Python packages
beyond the standard library) or CuPy (`cupy`). Every CUDA call is checked;
a failing call raises CudaError with the call's name and the driver's
error name.

Used by check_kernels.py and time_gemms.py (bench/gpu/README.md).
"""
import ctypes
import ctypes.util
import os

# Driver API constants (cuda.h).
CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK = 0
CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES = 1
CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES = 3
CU_FUNC_ATTRIBUTE_NUM_REGS = 4
CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8
CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16
CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE = 38
CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75
CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76
CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN = 97
CU_JIT_INFO_LOG_BUFFER = 3
CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES = 4
CU_JIT_ERROR_LOG_BUFFER = 5
CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 6

# Without the opt-in attribute a kernel may use at most 48 KiB of shared
# memory (static + dynamic).
DEFAULT_SHARED_LIMIT = 48 * 1024

# Errors after which the context is unusable (the process must restart).
STICKY_ERRORS = {
    "CUDA_ERROR_ILLEGAL_ADDRESS", "CUDA_ERROR_MISALIGNED_ADDRESS", "CUDA_ERROR_LAUNCH_FAILED",
    "CUDA_ERROR_ILLEGAL_INSTRUCTION", "CUDA_ERROR_INVALID_PC", "CUDA_ERROR_HARDWARE_STACK_ERROR",
    "CUDA_ERROR_ASSERT", "CUDA_ERROR_LAUNCH_TIMEOUT", "CUDA_ERROR_INVALID_ADDRESS_SPACE",
    "cudaErrorIllegalAddress", "cudaErrorMisalignedAddress", "cudaErrorLaunchFailure",
    "cudaErrorIllegalInstruction",
}


class CudaError(RuntimeError):
    def __init__(self, call, name, detail=""):
        super().__init__("%s failed: %s%s" % (call, name, (" (%s)" % detail) if detail else ""))
        self.call, self.name = call, name

    @property
    def sticky(self):
        return self.name in STICKY_ERRORS or any(s in str(self) for s in STICKY_ERRORS)


class Kernel:
    """A loaded kernel: its handle and what the driver says about it."""

    def __init__(self, name, handle, attributes):
        self.name, self.handle = name, handle
        self.registers = attributes.get("registers")
        self.static_shared = attributes.get("static_shared")
        self.local_bytes = attributes.get("local_bytes")
        self.max_threads = attributes.get("max_threads")


class DriverBackend:
    """The CUDA driver API through ctypes."""

    name = "driver"

    def __init__(self, device=0):
        path = ctypes.util.find_library("cuda") or "libcuda.so.1"
        self.lib = ctypes.CDLL(path)
        self._call("cuInit", 0)
        dev = ctypes.c_int()
        self._call("cuDeviceGet", ctypes.byref(dev), device)
        self.device = dev.value
        ctx = ctypes.c_void_p()
        self._call("cuDevicePrimaryCtxRetain", ctypes.byref(ctx), self.device)
        self._call("cuCtxSetCurrent", ctx)
        self.context = ctx
        self.modules = {}

    def _error_name(self, code):
        s = ctypes.c_char_p()
        if self.lib.cuGetErrorName(code, ctypes.byref(s)) == 0 and s.value:
            return s.value.decode()
        return "CUDA error %d" % code

    def _call(self, name, *args):
        code = getattr(self.lib, name)(*args)
        if code != 0:
            detail = ctypes.c_char_p()
            text = ""
            if self.lib.cuGetErrorString(code, ctypes.byref(detail)) == 0 and detail.value:
                text = detail.value.decode()
            raise CudaError(name, self._error_name(code), text)

    # Device information.
    def attribute(self, attr):
        v = ctypes.c_int()
        self._call("cuDeviceGetAttribute", ctypes.byref(v), attr, self.device)
        return v.value

    def device_name(self):
        buf = ctypes.create_string_buffer(256)
        self._call("cuDeviceGetName", buf, 256, self.device)
        return buf.value.decode()

    def driver_version(self):
        v = ctypes.c_int()
        self._call("cuDriverGetVersion", ctypes.byref(v))
        return v.value

    # Modules and kernels.
    def load(self, ptx_path, kernel_name):
        key = (ptx_path, kernel_name)
        if key in self.modules:
            return self.modules[key]
        with open(ptx_path, "rb") as f:
            image = f.read() + b"\0"
        module = ctypes.c_void_p()
        log = ctypes.create_string_buffer(16384)
        options = (ctypes.c_int * 2)(CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES)
        values = (ctypes.c_void_p * 2)(ctypes.cast(log, ctypes.c_void_p), ctypes.c_void_p(16384))
        try:
            self._call("cuModuleLoadDataEx", ctypes.byref(module), image, 2, options, values)
        except CudaError as e:
            raise CudaError(e.call, e.name, log.value.decode(errors="replace")[:2000])
        fn = ctypes.c_void_p()
        self._call("cuModuleGetFunction", ctypes.byref(fn), module, kernel_name.encode())
        attrs = {}
        for key_name, attr in (("registers", CU_FUNC_ATTRIBUTE_NUM_REGS),
                               ("static_shared", CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES),
                               ("local_bytes", CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES),
                               ("max_threads", CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK)):
            v = ctypes.c_int()
            self._call("cuFuncGetAttribute", ctypes.byref(v), attr, fn)
            attrs[key_name] = v.value
        kernel = Kernel(kernel_name, fn, attrs)
        self.modules[key] = kernel
        return kernel

    def set_max_dynamic_shared(self, kernel, nbytes):
        self._call("cuFuncSetAttribute", kernel.handle,
                   CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, int(nbytes))

    def launch(self, kernel, grid, block, shared, args):
        """args: ("ptr", int) or ("i32", int), in order."""
        holders = []
        for kind, value in args:
            holders.append(ctypes.c_uint64(value) if kind == "ptr" else ctypes.c_int32(value))
        params = (ctypes.c_void_p * max(1, len(holders)))(
            *[ctypes.cast(ctypes.byref(h), ctypes.c_void_p) for h in holders])
        self._call("cuLaunchKernel", kernel.handle, int(grid[0]), int(grid[1]), int(grid[2]),
                   int(block[0]), int(block[1]), int(block[2]), int(shared), None, params, None)

    def synchronize(self):
        self._call("cuCtxSynchronize")

    # Memory.
    def alloc(self, nbytes):
        ptr = ctypes.c_uint64()
        self._call("cuMemAlloc_v2", ctypes.byref(ptr), max(int(nbytes), 1))
        return ptr.value

    def free(self, ptr):
        self._call("cuMemFree_v2", ctypes.c_uint64(ptr))

    def upload(self, ptr, data):
        data = bytes(data)
        self._call("cuMemcpyHtoD_v2", ctypes.c_uint64(ptr), data, len(data))

    def download(self, ptr, nbytes):
        buf = ctypes.create_string_buffer(int(nbytes))
        self._call("cuMemcpyDtoH_v2", buf, ctypes.c_uint64(ptr), int(nbytes))
        return buf.raw

    def fill(self, ptr, pattern, nbytes):
        """Fills nbytes with a 1-, 2- or 4-byte little-endian pattern."""
        value, width = pattern
        if width == 1:
            self._call("cuMemsetD8_v2", ctypes.c_uint64(ptr), ctypes.c_ubyte(value), int(nbytes))
        elif width == 2:
            self._call("cuMemsetD16_v2", ctypes.c_uint64(ptr), ctypes.c_ushort(value),
                       int(nbytes) // 2)
        else:
            self._call("cuMemsetD32_v2", ctypes.c_uint64(ptr), ctypes.c_uint(value),
                       int(nbytes) // 4)

    # Events (timing on the legacy default stream).
    def event(self):
        ev = ctypes.c_void_p()
        self._call("cuEventCreate", ctypes.byref(ev), 0)
        return ev

    def record(self, ev):
        self._call("cuEventRecord", ev, None)

    def elapsed_ms(self, start, end):
        self._call("cuEventSynchronize", end)
        ms = ctypes.c_float()
        self._call("cuEventElapsedTime", ctypes.byref(ms), start, end)
        return ms.value


class CupyBackend:
    """The same through CuPy (RawModule, device arrays, events)."""

    name = "cupy"

    def __init__(self, device=0):
        import cupy
        self.cp = cupy
        cupy.cuda.Device(device).use()
        self.device = device
        self.modules = {}
        self.buffers = {}

    def _wrap(self, call, fn):
        try:
            return fn()
        except self.cp.cuda.driver.CUDADriverError as e:
            raise CudaError(call, str(e).split(":")[0], str(e))
        except self.cp.cuda.runtime.CUDARuntimeError as e:
            raise CudaError(call, str(e).split(":")[0], str(e))

    def attribute(self, attr):
        return self._wrap("cuDeviceGetAttribute",
                          lambda: self.cp.cuda.driver.deviceGetAttribute(attr, self.device))

    def device_name(self):
        return self.cp.cuda.runtime.getDeviceProperties(self.device)["name"].decode()

    def driver_version(self):
        return self.cp.cuda.runtime.driverGetVersion()

    def load(self, ptx_path, kernel_name):
        key = (ptx_path, kernel_name)
        if key not in self.modules:
            def load():
                module = self.cp.RawModule(path=ptx_path)
                fn = module.get_function(kernel_name)
                return module, fn
            module, fn = self._wrap("cuModuleLoad", load)
            kernel = Kernel(kernel_name, fn, {
                "registers": fn.num_regs, "static_shared": fn.shared_size_bytes,
                "local_bytes": fn.local_size_bytes, "max_threads": fn.max_threads_per_block})
            kernel.module = module
            self.modules[key] = kernel
        return self.modules[key]

    def set_max_dynamic_shared(self, kernel, nbytes):
        def set_attr():
            kernel.handle.max_dynamic_shared_size_bytes = int(nbytes)
        self._wrap("cuFuncSetAttribute", set_attr)

    def launch(self, kernel, grid, block, shared, args):
        import numpy as np
        values = [np.uint64(v) if kind == "ptr" else np.int32(v) for kind, v in args]
        self._wrap("cuLaunchKernel", lambda: kernel.handle(
            tuple(int(g) for g in grid), tuple(int(b) for b in block), tuple(values),
            shared_mem=int(shared)))

    def synchronize(self):
        self._wrap("cuCtxSynchronize", lambda: self.cp.cuda.Device(self.device).synchronize())

    def alloc(self, nbytes):
        mem = self._wrap("cuMemAlloc", lambda: self.cp.cuda.alloc(max(int(nbytes), 1)))
        self.buffers[mem.ptr] = mem
        return mem.ptr

    def free(self, ptr):
        self.buffers.pop(ptr, None)

    def upload(self, ptr, data):
        data = bytes(data)
        host = ctypes.create_string_buffer(data, len(data))
        self._wrap("cudaMemcpy", lambda: self.cp.cuda.runtime.memcpy(
            ptr, ctypes.addressof(host), len(data), self.cp.cuda.runtime.memcpyHostToDevice))

    def download(self, ptr, nbytes):
        buf = ctypes.create_string_buffer(int(nbytes))
        self._wrap("cudaMemcpy", lambda: self.cp.cuda.runtime.memcpy(
            ctypes.addressof(buf), ptr, int(nbytes), self.cp.cuda.runtime.memcpyDeviceToHost))
        return buf.raw

    def fill(self, ptr, pattern, nbytes):
        value, width = pattern
        if width == 1:
            self._wrap("cudaMemset", lambda: self.cp.cuda.runtime.memset(ptr, value, int(nbytes)))
            return
        import numpy as np
        dtype = np.uint16 if width == 2 else np.uint32
        self.upload(ptr, np.full(int(nbytes) // width, value, dtype=dtype).tobytes())

    def event(self):
        return self.cp.cuda.Event()

    def record(self, ev):
        ev.record()

    def elapsed_ms(self, start, end):
        end.synchronize()
        return self.cp.cuda.get_elapsed_time(start, end)


def make_backend(name="auto", device=0):
    """`driver`, `cupy`, or `auto` (CuPy when it imports, else the driver)."""
    if name == "cupy":
        return CupyBackend(device)
    if name == "driver":
        return DriverBackend(device)
    try:
        import cupy  # noqa: F401
        return CupyBackend(device)
    except Exception:
        return DriverBackend(device)


def find_tool(name):
    """A CUDA toolkit program (compute-sanitizer, nvidia-smi) on PATH or in
    the usual toolkit folders."""
    import shutil
    found = shutil.which(name)
    if found:
        return found
    for base in (os.environ.get("CUDA_HOME", ""), "/usr/local/cuda",
                 "/usr/local/cuda/compute-sanitizer", "/opt/nvidia/compute-sanitizer"):
        for sub in ("bin", "", "compute-sanitizer"):
            path = os.path.join(base, sub, name) if base else ""
            if path and os.path.isfile(path) and os.access(path, os.X_OK):
                return path
    return None
