"""Replace the MoE blocks of a transformers model with the moeq runtime."""
import torch
from torch import nn

__all__ = ["patch_model"]

# Where the MoE block of a decoder layer lives: Mixtral, PhiMoE, MiniMax and
# Granite call it block_sparse_moe in transformers 4.x; Llama 4 feed_forward;
# the others (and Mixtral in 5.x) mlp.
_BLOCK_ATTRIBUTES = ("block_sparse_moe", "mlp", "feed_forward")
# The router submodule (gate, or router: Llama 4, Granite) and which element
# of its tuple output is the logits (Llama 4 returns (scores, logits),
# Granite's top-k gating its logits last).
_ROUTER_ATTRIBUTES = ("gate", "router")
_LOGITS_INDEX = {"Llama4Router": 1, "GraniteMoeTopKGating": -1}


class _MoeqBlock(nn.Module):
    """forward of a patched MoE block; mixed into a subclass of the original
    block's class (see _patched_class) so that isinstance checks still hold
    (transformers' output recorders find MoE blocks by class)."""

    def forward(self, hidden_states, *args, **kwargs):
        y = self._moeq_artifact.run_layer(self._moeq_layer, hidden_states)
        # The router runs on the original weights: for the router logits the
        # original block returned (4.x) and for the output recorders that
        # hook the router module itself (5.x). Its cost is small next to the
        # experts'.
        router = getattr(self, self._moeq_router)
        routed = router(hidden_states.reshape(-1, hidden_states.shape[-1]))
        if self._moeq_returns_tuple:
            index = _LOGITS_INDEX.get(type(router).__name__, 0)
            logits = routed[index] if isinstance(routed, tuple) else routed
            return y, logits
        return y

    def extra_repr(self):
        return "moeq layer %d (%s backend)" % (self._moeq_layer, self._moeq_artifact.backend)


_classes = {}


def _patched_class(original):
    if original not in _classes:
        _classes[original] = type("Moeq" + original.__name__, (_MoeqBlock, original),
                                  {"__module__": __name__})
    return _classes[original]


def _returns_tuple(block, hidden_size):
    """Probes the original block on two zero tokens: does it return a tuple?"""
    parameter = next(block.parameters())
    probe = torch.zeros(1, 2, hidden_size, dtype=parameter.dtype, device=parameter.device)
    with torch.no_grad():
        out = block(probe)
    return isinstance(out, tuple)


def _replacement(block, artifact, layer, hidden_size):
    returns_tuple = _returns_tuple(block, hidden_size)
    patched = _patched_class(type(block))
    module = patched.__new__(patched)
    nn.Module.__init__(module)
    # Plain attributes (top_k, num_experts, ...) as the original had them;
    # of the submodules only the router: the runtime computes the experts
    # (and shared experts) from the artifact.
    for name, value in vars(block).items():
        if not name.startswith("_") and name != "training":
            setattr(module, name, value)
    module._moeq_router = _router_attribute(block)
    setattr(module, module._moeq_router, getattr(block, module._moeq_router))
    module.train(block.training)
    module._moeq_artifact = artifact
    module._moeq_layer = layer
    module._moeq_returns_tuple = returns_tuple
    return module


def _decoder_layers(model):
    inner = getattr(model, "model", model)
    layers = getattr(inner, "layers", None)
    if layers is None:
        raise ValueError("%s has no model.layers: not a supported MoE model"
                         % type(model).__name__)
    return layers


def _router_attribute(block):
    return next((a for a in _ROUTER_ATTRIBUTES if hasattr(block, a)), None)


def _moe_block(layer, index):
    for attribute in _BLOCK_ATTRIBUTES:
        block = getattr(layer, attribute, None)
        if (block is not None and (hasattr(block, "experts") or hasattr(block, "input_linear"))
                and _router_attribute(block)):
            return attribute, block
    raise ValueError("layer %d of the model has no MoE block (block_sparse_moe, mlp or "
                     "feed_forward with experts and a router), but the artifact has MoE layer %d"
                     % (index, index))


def patch_model(model, artifact):
    """Replaces the MoE block of every layer `artifact` has (model.model.
    layers[i].block_sparse_moe or .mlp) with a module that runs it through
    the runtime, keeping the block's return convention (a tuple with router
    logits in transformers 4.x's Mixtral/Qwen/OLMoE/PhiMoE) and its router.
    Returns the names of the patched modules."""
    hidden_size = getattr(getattr(model, "config", None), "hidden_size", None)
    if hidden_size is not None and hidden_size != artifact.hidden_size:
        raise ValueError("the model's hidden size is %d, the artifact's %d"
                         % (hidden_size, artifact.hidden_size))
    layers = _decoder_layers(model)
    prefix = "model.layers" if getattr(model, "model", None) is not None else "layers"
    names = []
    for index in artifact.layers:
        if index >= len(layers):
            raise ValueError("the artifact has MoE layer %d, the model %d layers"
                             % (index, len(layers)))
        attribute, block = _moe_block(layers[index], index)
        if isinstance(block, _MoeqBlock):
            raise ValueError("layer %d is already patched" % index)
        setattr(layers[index], attribute,
                _replacement(block, artifact, index, artifact.hidden_size))
        names.append("%s.%d.%s" % (prefix, index, attribute))
    return names
