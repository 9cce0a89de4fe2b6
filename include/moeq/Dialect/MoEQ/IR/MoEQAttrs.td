//===- MoEQAttrs.td - MoEQ attributes ----------------------*- tablegen -*-===//
#ifndef MOEQ_DIALECT_MOEQATTRS_TD
#define MOEQ_DIALECT_MOEQATTRS_TD

include "moeq/Dialect/MoEQ/IR/MoEQBase.td"

class MoEQ_Attr<string name, string attrMnemonic, list<Trait> traits = []>
    : AttrDef<MoEQ_Dialect, name, traits> {
  let mnemonic = attrMnemonic;
}

def MoEQ_NumberFormatAttr : EnumAttr<MoEQ_Dialect, MoEQ_NumberFormat, "format">;
def MoEQ_ScoringFuncAttr : EnumAttr<MoEQ_Dialect, MoEQ_ScoringFunc, "scoring">;
def MoEQ_ActivationAttr : EnumAttr<MoEQ_Dialect, MoEQ_Activation, "activation">;
def MoEQ_GroupScoringAttr : EnumAttr<MoEQ_Dialect, MoEQ_GroupScoring, "group_scoring">;
def MoEQ_QuantMethodAttr : EnumAttr<MoEQ_Dialect, MoEQ_QuantMethod, "method">;

def MoEQ_SchemeAttr : MoEQ_Attr<"Scheme", "scheme"> {
  let summary = "quantization scheme of a weight (and its activations)";
  let description = [{
    Weight bits (1-8, or 16 for unquantized), activation bits (4, 8 or 16),
    group size along the input dimension (`per_channel` means one group per
    output row), symmetric or asymmetric, and the number format.

    ```mlir
    #moeq.scheme<w4a16, g128, asym>
    #moeq.scheme<w8a8, per_channel, sym>
    #moeq.scheme<w3a16, g64, asym, lut>
    ```

    Storage per group: one f16 scale, and for asymmetric schemes one f16
    zero point. The `lut` format (DDQ-style adaptive resolution, 1-4 bits,
    weight-only, `asym`) stores instead a table of 2^bits f16 levels per
    group, fitted to the Hessian-weighted error; a code indexes it.
    `getBitsPerWeight(K)` counts that overhead, which is what a memory
    budget in "average bits" refers to.
  }];
  let parameters = (ins
    "unsigned":$weightBits,
    "unsigned":$actBits,
    "int64_t":$groupSize,
    "bool":$symmetric,
    "::mlir::moeq::NumberFormat":$format
  );
  let hasCustomAssemblyFormat = 1;
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// True when weights are stored below 16 bits.
    bool isQuantized() const { return getWeightBits() < 16; }
    /// True when activations are quantized too (w8a8, w4a4).
    bool quantizesActivations() const { return getActBits() < 16; }
    bool isPerChannel() const { return getGroupSize() == 0; }
    /// True for the level-table (`lut`) format.
    bool isLevelTable() const {
      return getFormat() == ::mlir::moeq::NumberFormat::LevelTable;
    }
    /// Archive tensors of a packed weight, as key suffixes: `.qweight` (the
    /// codes) with `.scales` and, asymmetric, `.zeros` (f16 [rows,
    /// groups]), or with a level table `.levels` (f16 [rows, groups *
    /// 2^bits]).
    ::llvm::SmallVector<::llvm::StringRef, 3> getStorageSuffixes() const;
    /// Number of quantization groups in a row of `inputDim` elements.
    int64_t getNumGroups(int64_t inputDim) const;
    /// Group width for a row of `inputDim` elements.
    int64_t getEffectiveGroupSize(int64_t inputDim) const;
    /// Average storage bits per weight including scales and zero points.
    double getBitsPerWeight(int64_t inputDim) const;
    /// Short name usable in symbols and file names, e.g. "w4a16g128a".
    std::string getMangledName() const;
    /// Inverse of getMangledName, also accepting the symmetry letter left
    /// out (weight-only schemes default to asymmetric, weight-activation
    /// schemes to symmetric): "w4a16g128", "w8a16pc", "w8a8pcs". Returns
    /// null and sets `error` on a malformed or invalid name.
    static SchemeAttr fromMangledName(::mlir::MLIRContext *context,
                                      ::llvm::StringRef name, std::string &error);
  }];
}

def MoEQ_ExternalParamAttr : MoEQ_Attr<"ExternalParam", "param"> {
  let summary = "reference to a tensor in an external parameter archive";
  let description = [{
    Names a tensor by archive scope and tensor key. The module attribute
    `moeq.archives` maps each scope to a checkpoint directory or a
    safetensors file, so weights never have to be copied into the IR.

    A reference may select part of a stacked tensor: `index` picks one
    matrix of a 3-D `[E, rows, cols]` tensor (one expert), and
    `rows [offset, count]` a contiguous row range of that matrix (the gate
    or up half of a fused `gate_up_proj`). Both keep the data contiguous, so
    a runtime can still bind it without copying.

    Families that store their experts for `x @ W` (`[E, in, out]`: Llama 4,
    gpt-oss) are read through `transposed`: the selected matrix is used as
    its transpose, before `rows` applies; `step s` takes every `s`-th row
    from `offset` on (gpt-oss interleaves the gate and up columns). Such a
    selection is not contiguous: readers gather it.

    ```mlir
    #moeq.param<"model", "model.layers.0.block_sparse_moe.gate.weight">
    #moeq.param<"model", "model.layers.0.mlp.experts.gate_up_proj" index 3 rows [512, 512]>
    #moeq.param<"model", "model.layers.0.mlp.experts.gate_up_proj" index 3 transposed rows [1, 512] step 2>
    ```
  }];
  let parameters = (ins "::mlir::StringAttr":$scope, "::mlir::StringAttr":$key,
                        DefaultValuedParameter<"int64_t", "-1">:$index,
                        // -1 without a row range, so that offset 0 prints.
                        DefaultValuedParameter<"int64_t", "-1">:$rowOffset,
                        DefaultValuedParameter<"int64_t", "-1">:$rowCount,
                        DefaultValuedParameter<"bool", "false">:$transposed,
                        DefaultValuedParameter<"int64_t", "1">:$rowStep);
  let builders = [
    AttrBuilderWithInferredContext<(ins "::mlir::StringAttr":$scope,
                                        "::mlir::StringAttr":$key), [{
      return $_get(scope.getContext(), scope, key, -1, -1, -1, false, 1);
    }]>,
    AttrBuilder<(ins "::mlir::StringAttr":$scope, "::mlir::StringAttr":$key), [{
      return $_get($_ctxt, scope, key, -1, -1, -1, false, 1);
    }]>,
    AttrBuilder<(ins "::mlir::StringAttr":$scope, "::mlir::StringAttr":$key,
                     "int64_t":$index, "int64_t":$rowOffset, "int64_t":$rowCount), [{
      return $_get($_ctxt, scope, key, index, rowOffset, rowCount, false, 1);
    }]>
  ];
  // `<"scope", "key" [index N] [transposed] [rows [offset, count]] [step S]>`
  let hasCustomAssemblyFormat = 1;
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    bool isSliced() const { return getIndex() >= 0 || getRowCount() >= 0 || getTransposed(); }
    /// True if the selection is one contiguous byte range of the tensor.
    bool isContiguous() const { return !getTransposed() && getRowStep() == 1; }
    /// The same reference with `suffix` appended to the key and no slice
    /// (companion tensors such as `.scales`).
    ExternalParamAttr withKeySuffix(::llvm::StringRef suffix) const;
  }];
}

def MoEQ_TileConfigAttr : MoEQ_Attr<"TileConfig", "tile"> {
  let summary = "tile configuration of a GEMM kernel";
  let description = [{
    The kernel family (`path`) and its tiling: `mma` is the tensor-core
    kernel (mma.sync, ldmatrix, cp.async pipeline), `wgmma` its Hopper form
    (sm_90a: warpgroups of 4 warps, 64 rows each, wgmma.mma_async on
    operands in shared memory), `simt` the small-M decode kernel on the
    CUDA cores. Output tile rows (`bm`, tokens),
    columns (`bn`, output features) and the reduction step (`bk`), warps per
    CTA, software-pipeline stages (cp.async buffers) and the split-K factor.
    `moeq-tile-expert-gemms` chooses them with the cost model.

    ```mlir
    #moeq.tile<path = mma, bm = 16, bn = 128, bk = 64, warps = 4, stages = 2, split_k = 1>
    ```
  }];
  let parameters = (ins EnumParameter<MoEQ_KernelFamily>:$path,
                        "int64_t":$bm, "int64_t":$bn, "int64_t":$bk,
                        "int64_t":$warps, "int64_t":$stages, "int64_t":$split_k);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    int64_t getThreadsPerBlock() const { return getWarps() * 32; }
    /// Either tensor-core family (mma.sync or wgmma): same ABI and launch.
    bool isTensorCore() const { return getPath() != KernelFamily::Simt; }
    bool isWarpGroupMma() const { return getPath() == KernelFamily::WarpGroupMma; }
  }];
}

def MoEQ_TargetAttr : MoEQ_Attr<"Target", "target"> {
  let summary = "GPU target architecture";
  let description = [{
    The NVIDIA architecture kernels are specialised for. Known chips:
    `sm_80`, `sm_86`, `sm_89`, `sm_90`, `sm_90a`, `sm_100`.

    ```mlir
    #moeq.target<"sm_90">
    ```
  }];
  let parameters = (ins "::mlir::StringAttr":$chip);
  let assemblyFormat = "`<` $chip `>`";
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// Compute capability times ten, e.g. 90 for sm_90 and sm_90a.
    unsigned getComputeCapability() const;
    /// True for architecture-specific targets with wgmma (sm_90a).
    bool hasWarpGroupMMA() const;
  }];
}

#endif // MOEQ_DIALECT_MOEQATTRS_TD
