"""moeq: run compiled moeq artifacts from Python (ctypes over libmoeq_runtime.so).

    import moeq
    artifact = moeq.Artifact("out/", backend="cuda")      # or "emulator" (CPU tensors)
    y = artifact.run_layer(artifact.layers[0], x)         # x: [..., hidden], any float dtype
    moeq.patch_model(model, artifact)                     # transformers model -> runtime MoE

See tools/python/moeq/README.md and docs/runtime.md.
"""
from ._runtime import Artifact, MoeqError, find_library

__all__ = ["Artifact", "MoeqError", "find_library", "patch_model"]


def patch_model(model, artifact):
    # Imported lazily: Artifact works without torch.nn until a layer runs.
    from ._patch import patch_model as _patch_model
    return _patch_model(model, artifact)


patch_model.__doc__ = """Replaces the MoE block of every layer the artifact has with a module
that calls the runtime; returns the patched module names (see _patch.patch_model)."""
