"""ctypes binding of the moeq runtime's C API (include/moeq/Runtime/moeq_runtime.h).

No compiled extension: the shared library libmoeq_runtime.so is loaded with
ctypes. torch is imported only when a layer runs.
"""
import ctypes
import os
from pathlib import Path

__all__ = ["Artifact", "MoeqError", "find_library"]

_BACKENDS = {"cuda": 0, "emulator": 1}
_LIBRARY_NAME = "libmoeq_runtime.so"
_loaded = {}


class MoeqError(RuntimeError):
    """A failure reported by the runtime (its moeq_last_error message)."""


def find_library(library=None):
    """The path of libmoeq_runtime.so: `library`, else $MOEQ_RUNTIME_LIB,
    else the build tree of the repository this package lives in
    (build/lib, build/bin)."""
    if library:
        candidates = [Path(library)]
    elif os.environ.get("MOEQ_RUNTIME_LIB"):
        candidates = [Path(os.environ["MOEQ_RUNTIME_LIB"])]
    else:
        repo = Path(__file__).resolve().parents[3]
        candidates = [repo / "build" / sub / _LIBRARY_NAME for sub in ("lib", "bin")]
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    raise MoeqError("cannot find %s (looked at %s); pass library=..., or set MOEQ_RUNTIME_LIB"
                    % (_LIBRARY_NAME, ", ".join(str(c) for c in candidates)))


def _load(library):
    path = find_library(library)
    if path in _loaded:
        return _loaded[path]
    lib = ctypes.CDLL(path)
    handle = ctypes.c_void_p
    lib.moeq_last_error.restype = ctypes.c_char_p
    lib.moeq_last_error.argtypes = []
    lib.moeq_artifact_open.restype = ctypes.c_int
    lib.moeq_artifact_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_int,
                                       ctypes.POINTER(handle)]
    lib.moeq_artifact_close.restype = None
    lib.moeq_artifact_close.argtypes = [handle]
    lib.moeq_artifact_num_layers.restype = ctypes.c_int
    lib.moeq_artifact_num_layers.argtypes = [handle]
    lib.moeq_artifact_layer.restype = ctypes.c_int
    lib.moeq_artifact_layer.argtypes = [handle, ctypes.c_int]
    lib.moeq_artifact_hidden_size.restype = ctypes.c_int64
    lib.moeq_artifact_hidden_size.argtypes = [handle]
    lib.moeq_run_layer.restype = ctypes.c_int
    lib.moeq_run_layer.argtypes = [handle, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
                                   ctypes.c_int64, ctypes.c_void_p]
    _loaded[path] = lib
    return lib


class Artifact:
    """A compiled moeq artifact opened on a backend.

    backend "cuda": device `device`'s primary context (the one PyTorch uses);
    run_layer takes CUDA tensors on that device and runs on the current torch
    stream. backend "emulator": CPU tensors (the GPU emulator; needs a
    libmoeq_runtime.so from the full LLVM build).

    One artifact holds one scratch arena: calls must not overlap (use one
    Artifact per thread).
    """

    def __init__(self, path, backend="cuda", device=0, library=None):
        if backend not in _BACKENDS:
            raise ValueError("backend must be 'cuda' or 'emulator', not %r" % (backend,))
        self._lib = _load(library)
        self._handle = ctypes.c_void_p()
        self.path = str(path)
        self.backend = backend
        self.device = int(device)
        if self._lib.moeq_artifact_open(os.fsencode(self.path), _BACKENDS[backend], self.device,
                                        ctypes.byref(self._handle)) != 0:
            self._handle = ctypes.c_void_p()
            raise MoeqError(self._error())
        count = self._lib.moeq_artifact_num_layers(self._handle)
        self.layers = [self._lib.moeq_artifact_layer(self._handle, i) for i in range(count)]
        self.hidden_size = int(self._lib.moeq_artifact_hidden_size(self._handle))

    def _error(self):
        message = self._lib.moeq_last_error()
        return message.decode(errors="replace") if message else "unknown error"

    def close(self):
        if getattr(self, "_handle", None) and self._handle.value:
            self._lib.moeq_artifact_close(self._handle)
            self._handle = ctypes.c_void_p()

    def __del__(self):
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return "moeq.Artifact(%r, backend=%r, layers=%s, hidden_size=%d)" % (
            self.path, self.backend, self.layers, self.hidden_size)

    def _check_device(self, x):
        if self.backend == "cuda":
            if x.device.type != "cuda" or x.device.index != self.device:
                raise ValueError("the cuda backend on device %d takes tensors on cuda:%d, not %s"
                                 % (self.device, self.device, x.device))
        elif x.device.type != "cpu":
            raise ValueError("the emulator backend takes CPU tensors, not %s" % (x.device,))

    def run_layer(self, layer, x):
        """MoE layer `layer` (the model's layer index) on x [..., hidden]
        (any float dtype, converted to contiguous f16); returns y with x's
        shape and dtype."""
        import torch

        if not self._handle.value:
            raise MoeqError("the artifact is closed")
        if x.shape[-1] != self.hidden_size:
            raise ValueError("x has %d features, the model's hidden size is %d"
                             % (x.shape[-1], self.hidden_size))
        if not x.is_floating_point():
            raise ValueError("x must be a floating-point tensor, not %s" % (x.dtype,))
        self._check_device(x)
        with torch.no_grad():
            x16 = x.detach().reshape(-1, self.hidden_size).to(torch.float16).contiguous()
            y16 = torch.empty_like(x16)
            tokens = x16.shape[0]
            stream = None
            if self.backend == "cuda":
                stream = torch.cuda.current_stream(x.device).cuda_stream
            if tokens and self._lib.moeq_run_layer(self._handle, int(layer), x16.data_ptr(),
                                                   y16.data_ptr(), tokens, stream) != 0:
                raise MoeqError(self._error())
            return y16.reshape(x.shape).to(x.dtype)
