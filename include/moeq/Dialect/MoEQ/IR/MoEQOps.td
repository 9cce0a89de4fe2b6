//===- MoEQOps.td - MoEQ operations ------------------------*- tablegen -*-===//
#ifndef MOEQ_DIALECT_MOEQOPS_TD
#define MOEQ_DIALECT_MOEQOPS_TD

include "moeq/Dialect/MoEQ/IR/MoEQTypes.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/IR/BuiltinAttributeInterfaces.td"
include "mlir/Interfaces/InferTypeOpInterface.td"

class MoEQ_Op<string mnemonic, list<Trait> traits = []>
    : Op<MoEQ_Dialect, mnemonic, traits>;

// A weight operand: a float tensor or a packed quantized weight.
def MoEQ_FloatTensor2D : 2DTensorOf<[AnyFloat]>;
def MoEQ_Weight : AnyTypeOf<[MoEQ_FloatTensor2D, MoEQ_PackedWeightType],
                            "float matrix or packed quantized weight">;
def MoEQ_IndexTensor1D : 1DTensorOf<[I32]>;

//===----------------------------------------------------------------------===//
// Parameters
//===----------------------------------------------------------------------===//

def MoEQ_ParamOp : MoEQ_Op<"param", [Pure]> {
  let summary = "materialises an external parameter";
  let description = [{
    Produces the tensor (or packed quantized weight) named by an external
    parameter reference. The contents live in the archive that the module's
    `moeq.archives` dictionary maps `scope` to.

    A packed weight may name the checkpoint tensor (or slice of a stacked
    tensor) it was quantized from as its `source`: exports write the
    dequantized weight back under that name and layout.

    ```mlir
    %w = moeq.param <"model", "model.layers.0.block_sparse_moe.gate.weight"> : tensor<8x256xbf16>
    %q = moeq.param <"quant", "model.layers.0.mlp.experts.gate_up_proj.3.t.rows_0_48_step_2">
           source <"model", "model.layers.0.mlp.experts.gate_up_proj" index 3 transposed rows [0, 48] step 2>
           : !moeq.qweight<48x64, #moeq.scheme<w4a16, g32, asym>>
    ```
  }];
  let arguments = (ins MoEQ_ExternalParamAttr:$ref,
                       OptionalAttr<MoEQ_ExternalParamAttr>:$source);
  let results = (outs AnyTypeOf<[AnyRankedTensor, MoEQ_PackedWeightType],
                                "ranked tensor or packed quantized weight">:$result);
  let assemblyFormat = "$ref (`source` $source^)? attr-dict `:` type($result)";
  let builders = [
    OpBuilder<(ins "::mlir::Type":$type, "ExternalParamAttr":$ref), [{
      build($_builder, $_state, type, ref, ExternalParamAttr());
    }]>
  ];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// MoE block
//===----------------------------------------------------------------------===//

def MoEQ_MoEOp : MoEQ_Op<"moe", [Pure, AttrSizedOperandSegments]> {
  let summary = "a Mixture-of-Experts feed-forward block";
  let description = [{
    `T x H` tokens are scored by the router (`E x H`), the `top_k` experts of
    each token run their gated MLP `down(act(gate(x)) * up(x))`, and the
    outputs are combined weighted by the routing weights. Optional shared
    expert (applied to every token, scaled by `sigmoid(shared_gate . x)` when
    that gate is present) and score-correction bias (selection only, as in
    DeepSeek-V3).

    Routing: `softmax` or `sigmoid` scores, top-k selection on
    `score + score_bias` (group-limited when `n_group > 1`: only the
    `topk_group` best of `n_group` contiguous expert groups are eligible, a
    group scoring by its best expert (`max`) or the sum of its two best
    (`top2_sum`)), routing weights = the unbiased scores of the selected
    experts, renormalised when `norm_topk_prob`, then scaled by
    `routed_scaling_factor`. `sparsemixer` (Phi-3.5-MoE, top-2 only) picks the
    best logit, weights it by a softmax over the logits within a relative
    `2 * jitter_eps` of it, then repeats without the first expert.

    With `weights_on_inputs` (Llama 4) the routing weight multiplies the
    selected expert's input instead of its output, and the experts' outputs
    are summed unweighted: `sum_j expert_j(w_j * x)`.

    gpt-oss: `router_bias` is added to the router logits (selection and
    weights); `bias gate(...) up(...) down(...)` give every routed expert's
    linears a bias (one 1-D tensor per expert each); activation
    `clamped_swiglu` computes `(clamp(up, -L, L) + 1) * g * sigmoid(a * g)`,
    `g = min(gate, L)`, with `a = swiglu_alpha`, `L = swiglu_limit`.

    ```mlir
    %y = moeq.moe %x router %r : tensor<8x256xbf16>
           gate(%g0, ... : ...) up(%u0, ... : ...) down(%d0, ... : ...)
           {top_k = 2 : i64, scoring = #moeq<scoring softmax>,
            activation = #moeq<activation silu>, norm_topk_prob = true}
           : tensor<?x256xf32> -> tensor<?x256xf32>
    ```
  }];
  let arguments = (ins
    MoEQ_FloatTensor2D:$input,
    MoEQ_FloatTensor2D:$router,
    Variadic<MoEQ_Weight>:$gate,
    Variadic<MoEQ_Weight>:$up,
    Variadic<MoEQ_Weight>:$down,
    Optional<MoEQ_Weight>:$shared_gate,
    Optional<MoEQ_Weight>:$shared_up,
    Optional<MoEQ_Weight>:$shared_down,
    Optional<MoEQ_FloatTensor2D>:$shared_expert_gate,
    Optional<1DTensorOf<[AnyFloat]>>:$score_bias,
    Optional<1DTensorOf<[AnyFloat]>>:$router_bias,
    Variadic<1DTensorOf<[AnyFloat]>>:$gate_bias,
    Variadic<1DTensorOf<[AnyFloat]>>:$up_bias,
    Variadic<1DTensorOf<[AnyFloat]>>:$down_bias,
    ConfinedAttr<I64Attr, [IntPositive]>:$top_k,
    MoEQ_ScoringFuncAttr:$scoring,
    MoEQ_ActivationAttr:$activation,
    DefaultValuedAttr<BoolAttr, "true">:$norm_topk_prob,
    DefaultValuedAttr<F64Attr, "1.0">:$routed_scaling_factor,
    DefaultValuedAttr<I64Attr, "1">:$n_group,
    DefaultValuedAttr<I64Attr, "1">:$topk_group,
    DefaultValuedAttr<MoEQ_GroupScoringAttr, "::mlir::moeq::GroupScoring::Max">:$group_scoring,
    DefaultValuedAttr<F64Attr, "0.0">:$jitter_eps,
    UnitAttr:$weights_on_inputs,
    DefaultValuedAttr<F64Attr, "1.702">:$swiglu_alpha,
    DefaultValuedAttr<F64Attr, "7.0">:$swiglu_limit
  );
  let results = (outs MoEQ_FloatTensor2D:$result);
  let assemblyFormat = [{
    $input `router` $router `:` type($router)
    `gate` `(` $gate `:` type($gate) `)`
    `up` `(` $up `:` type($up) `)`
    `down` `(` $down `:` type($down) `)`
    (`shared` `(` $shared_gate^ `,` $shared_up `,` $shared_down `:`
       type($shared_gate) `,` type($shared_up) `,` type($shared_down) `)`)?
    (`shared_expert_gate` $shared_expert_gate^ `:` type($shared_expert_gate))?
    (`score_bias` $score_bias^ `:` type($score_bias))?
    (`router_bias` $router_bias^ `:` type($router_bias))?
    (`bias` `gate` `(` $gate_bias^ `:` type($gate_bias) `)`
       `up` `(` $up_bias `:` type($up_bias) `)`
       `down` `(` $down_bias `:` type($down_bias) `)`)?
    attr-dict `:` type($input) `->` type($result)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    int64_t getNumExperts() const;
    int64_t getHiddenSize();
    int64_t getIntermediateSize();
    bool hasSharedExpert() { return getSharedGate() != nullptr; }
  }];
}

//===----------------------------------------------------------------------===//
// Decomposition of the MoE block
//===----------------------------------------------------------------------===//

def MoEQ_RouterOp : MoEQ_Op<"router", [Pure, AttrSizedOperandSegments]> {
  let summary = "router scores and top-k selection";
  let description = [{
    Computes scores `scoring(input . weight^T + logit_bias)` (`T x E`), selects the
    `top_k` experts per token (using `score + score_bias` for the selection
    only, and group-limited selection when `n_group > 1`), and returns their
    indices and routing weights (renormalised when `norm_topk_prob`, times
    `routed_scaling_factor`).
  }];
  let arguments = (ins
    MoEQ_FloatTensor2D:$input,
    MoEQ_FloatTensor2D:$weight,
    Optional<1DTensorOf<[AnyFloat]>>:$score_bias,
    Optional<1DTensorOf<[AnyFloat]>>:$logit_bias,
    ConfinedAttr<I64Attr, [IntPositive]>:$top_k,
    MoEQ_ScoringFuncAttr:$scoring,
    DefaultValuedAttr<BoolAttr, "true">:$norm_topk_prob,
    DefaultValuedAttr<F64Attr, "1.0">:$routed_scaling_factor,
    DefaultValuedAttr<I64Attr, "1">:$n_group,
    DefaultValuedAttr<I64Attr, "1">:$topk_group,
    DefaultValuedAttr<MoEQ_GroupScoringAttr, "::mlir::moeq::GroupScoring::Max">:$group_scoring,
    DefaultValuedAttr<F64Attr, "0.0">:$jitter_eps
  );
  let results = (outs 2DTensorOf<[I32]>:$indices, 2DTensorOf<[F32]>:$weights);
  let assemblyFormat = [{
    $input `,` $weight (`bias` $score_bias^ `:` type($score_bias))?
    (`logit_bias` $logit_bias^ `:` type($logit_bias))? attr-dict
    `:` type($input) `,` type($weight) `->` type($indices) `,` type($weights)
  }];
  let hasVerifier = 1;
}

def MoEQ_DispatchOp : MoEQ_Op<"dispatch", [Pure]> {
  let summary = "sorts routed token copies by expert";
  let description = [{
    For `T` tokens with `k` selected experts each, produces the `T*k` token
    rows ordered by expert (stable in token order), the flat routing slot
    `t*k + j` of every sorted row (`positions`), and `num_experts + 1`
    offsets: expert `e` owns sorted rows `[offsets[e], offsets[e+1])`.
    With `scales` (the `T x k` routing weights), each copy is multiplied by
    its weight: `sorted[r] = scales[p / k][p % k] * input[p / k]` for
    `p = positions[r]` (routing weights applied to the expert inputs, Llama 4).
  }];
  let arguments = (ins MoEQ_FloatTensor2D:$input, 2DTensorOf<[I32]>:$indices,
                       Optional<2DTensorOf<[F32]>>:$scales,
                       ConfinedAttr<I64Attr, [IntPositive]>:$num_experts);
  let results = (outs MoEQ_FloatTensor2D:$sorted, MoEQ_IndexTensor1D:$positions,
                      MoEQ_IndexTensor1D:$offsets);
  let assemblyFormat = [{
    $input `,` $indices (`scales` $scales^ `:` type($scales))? attr-dict
    `:` type($input) `,` type($indices)
    `->` type($sorted) `,` type($positions) `,` type($offsets)
  }];
  let hasVerifier = 1;
}

def MoEQ_GroupedMatmulOp : MoEQ_Op<"grouped_matmul", [Pure, AttrSizedOperandSegments]> {
  let summary = "per-expert matmul over rows grouped by expert";
  let description = [{
    `result[r] = input[r] . weights[g]^T` for every row `r` in
    `[offsets[g], offsets[g+1])`. Each group's weight may have its own
    scheme (a float matrix or a `!moeq.qweight`), which is what makes the
    kernel of a layer a *precision mix*. With `biases` (one 1-D tensor per
    group, gpt-oss), group `g`'s bias is added to its rows. `moeq-tile-expert-gemms` records
    the tile configuration of each group in `tiles`; kernel lowering names
    the GPU kernel of each group in `kernels`.
  }];
  let arguments = (ins MoEQ_FloatTensor2D:$input, MoEQ_IndexTensor1D:$offsets,
                       Variadic<MoEQ_Weight>:$weights,
                       Variadic<1DTensorOf<[AnyFloat]>>:$biases,
                       OptionalAttr<SymbolRefArrayAttr>:$kernels,
                       OptionalAttr<TypedArrayAttrBase<MoEQ_TileConfigAttr,
                           "one tile configuration per group">>:$tiles);
  let results = (outs MoEQ_FloatTensor2D:$result);
  let assemblyFormat = [{
    $input `,` $offsets `weights` `(` $weights `:` type($weights) `)`
    (`biases` `(` $biases^ `:` type($biases) `)`)? attr-dict
    `:` type($input) `,` type($offsets) `->` type($result)
  }];
  let hasVerifier = 1;
}

def MoEQ_GatedActivationOp : MoEQ_Op<"gated_activation",
    [Pure, SameOperandsAndResultType]> {
  let summary = "act(gate) * up";
  let description = [{
    `act(gate) * up` elementwise; `clamped_swiglu` (gpt-oss) is
    `(clamp(up, -L, L) + 1) * g * sigmoid(a * g)` with `g = min(gate, L)`,
    `a = swiglu_alpha`, `L = swiglu_limit`.
  }];
  let arguments = (ins MoEQ_FloatTensor2D:$gate, MoEQ_FloatTensor2D:$up,
                       MoEQ_ActivationAttr:$activation,
                       DefaultValuedAttr<F64Attr, "1.702">:$swiglu_alpha,
                       DefaultValuedAttr<F64Attr, "7.0">:$swiglu_limit);
  let results = (outs MoEQ_FloatTensor2D:$result);
  let assemblyFormat = "$activation $gate `,` $up attr-dict `:` type($result)";
}

def MoEQ_CombineOp : MoEQ_Op<"combine", [Pure, AttrSizedOperandSegments]> {
  let summary = "weighted scatter-add of expert outputs back to tokens";
  let description = [{
    `result[p / k] += weights[p / k][p % k] * expert_out[r]` with
    `p = positions[r]`, where `weights` is `T x k`; `unweighted` (the
    weights were applied to the expert inputs by `moeq.dispatch`) sums
    `expert_out[r]` as is. With a shared expert,
    its `T x H` output is added, scaled per token by
    `sigmoid(shared_gate[t])` when the `T x 1` gate logits are given.
  }];
  let arguments = (ins MoEQ_FloatTensor2D:$expert_out, MoEQ_IndexTensor1D:$positions,
                       2DTensorOf<[F32]>:$weights,
                       Optional<MoEQ_FloatTensor2D>:$shared,
                       Optional<MoEQ_FloatTensor2D>:$shared_gate,
                       UnitAttr:$unweighted);
  let results = (outs MoEQ_FloatTensor2D:$result);
  let assemblyFormat = [{
    $expert_out `,` $positions `,` $weights
    (`shared` `(` $shared^ `:` type($shared) `)`)?
    (`shared_gate` `(` $shared_gate^ `:` type($shared_gate) `)`)?
    attr-dict `:` type($expert_out) `,` type($positions) `,` type($weights)
    `->` type($result)
  }];
  let hasVerifier = 1;
}

def MoEQ_LinearOp : MoEQ_Op<"linear", [Pure]> {
  let summary = "dense matmul of all tokens with one weight";
  let description = [{
    `result = input . weight^T` for every row: a shared expert's or a dense
    layer's linear, or a D^2-MoE base GEMM. The weight is a float matrix or a
    `!moeq.qweight`; after kernel lowering `kernel` and `tile` name its GPU
    kernel. With `leading_inputs` the input may have more columns than the
    weight's K: the GEMM reads the leading K (a pruned D^2-MoE down base,
    whose kept intermediate channels lead); its kernel then takes the
    input's row stride.
  }];
  let arguments = (ins MoEQ_FloatTensor2D:$input, MoEQ_Weight:$weight,
                       OptionalAttr<SymbolRefAttr>:$kernel,
                       OptionalAttr<MoEQ_TileConfigAttr>:$tile,
                       UnitAttr:$leading_inputs);
  let results = (outs MoEQ_FloatTensor2D:$result);
  let assemblyFormat = [{
    $input `,` $weight attr-dict `:` type($input) `,` type($weight) `->` type($result)
  }];
  let hasVerifier = 1;
}

def MoEQ_DeltaWeightOp : MoEQ_Op<"delta_weight", [Pure]> {
  let summary = "an expert weight as a shared base plus a low-rank delta (D^2-MoE)";
  let description = [{
    `result = pad(base) + a . b`: `base` is the base shared by the experts
    of one linear of a layer, `a` (out x rank) and `b` (rank x in) this
    expert's low-rank delta, all float matrices or `!moeq.qweight`s.
    Structured pruning of the base keeps its leading intermediate channels
    (moeq-delta-decompress orders the channels so): a base with fewer rows
    (gate, up) or fewer columns (down) than the result is zero beyond them.
    `source` names the checkpoint weight it replaces.

    ```mlir
    %w = moeq.delta_weight %base, %a, %b {source = #moeq.param<"model", "w1">}
        : tensor<448x256xf32>, tensor<512x64xf32>, tensor<64x256xf32> -> tensor<512x256xf32>
    ```
  }];
  let arguments = (ins MoEQ_Weight:$base, MoEQ_Weight:$a, MoEQ_Weight:$b,
                       OptionalAttr<MoEQ_ExternalParamAttr>:$source);
  let results = (outs MoEQ_FloatTensor2D:$result);
  let assemblyFormat = [{
    $base `,` $a `,` $b attr-dict `:` type($base) `,` type($a) `,` type($b) `->` type($result)
  }];
  let hasVerifier = 1;
}

def MoEQ_DeltaSumOp : MoEQ_Op<"delta_sum", [Pure]> {
  let summary = "adds a D^2-MoE base GEMM's output to the low-rank correction";
  let description = [{
    `result = lowrank + pad(base)`: the decomposed form of a grouped matmul
    over `moeq.delta_weight`s is one base GEMM for all rows (`moeq.linear`
    with the shared base) plus per-expert low-rank corrections (two
    `moeq.grouped_matmul`, through the rank); this op adds them. A pruned
    base has fewer output columns: it adds to the leading ones.
  }];
  let arguments = (ins MoEQ_FloatTensor2D:$lowrank, MoEQ_FloatTensor2D:$base);
  let results = (outs MoEQ_FloatTensor2D:$result);
  let assemblyFormat = [{
    $lowrank `,` $base attr-dict `:` type($lowrank) `,` type($base) `->` type($result)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Quantization
//===----------------------------------------------------------------------===//

def MoEQ_QuantizeOp : MoEQ_Op<"quantize", [Pure]> {
  let summary = "quantizes a float weight matrix";
  let description = [{
    Quantizes `N x K` float weights to the scheme of the result type with
    `method`: `rtn` (round to nearest), `gptq` or `agq` (GPTQ with the
    Hessian `hessian`, a `K x K` Gram matrix in a parameter archive: plain
    for `gptq`, affinity-weighted for `agq`; without one, GPTQ has no data
    and reduces to round to nearest). `act_order` quantizes columns by
    decreasing Hessian diagonal (GPTQ only); `salience_clip` is SliM-LLM's
    salience-weighted calibration of each group's range (factor 0.9-1.1,
    salience from the Hessian, or w^2 without one); `mse_clip` searches the group
    ranges for the least error. Folding this op with a `moeq.param` operand
    (pass `moeq-materialize-quantized-params`) runs the quantizer and writes
    the packed tensors to a parameter archive.

    ```mlir
    %q = moeq.quantize %w {method = #moeq<method agq>,
                           hessian = #moeq.param<"stats", "layers.1.experts.3.gram_in_weighted">}
        : tensor<1408x2048xbf16> -> !moeq.qweight<1408x2048, #moeq.scheme<w3a16, g128, asym>>
    ```
  }];
  let arguments = (ins MoEQ_FloatTensor2D:$input,
                       DefaultValuedAttr<MoEQ_QuantMethodAttr,
                         "::mlir::moeq::QuantMethod::RTN">:$method,
                       OptionalAttr<MoEQ_ExternalParamAttr>:$hessian,
                       UnitAttr:$act_order,
                       UnitAttr:$mse_clip,
                       UnitAttr:$salience_clip);
  let results = (outs MoEQ_PackedWeightType:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` qualified(type($result))";
  let hasVerifier = 1;
}

def MoEQ_DequantizeOp : MoEQ_Op<"dequantize", [Pure]> {
  let summary = "expands a packed quantized weight to floats";
  let arguments = (ins MoEQ_PackedWeightType:$input);
  let results = (outs MoEQ_FloatTensor2D:$result);
  let assemblyFormat = "$input attr-dict `:` qualified(type($input)) `->` type($result)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Packed codes (inside kernels and the CPU lowering)
//
// The one definition of reading and dequantising the packed format
// (docs/design.md): the CPU lowering, the SIMT kernels and the tensor-core
// kernels build these ops, and moeq-lower-dequantization's patterns
// (populateDequantizationLoweringPatterns) turn them into arith, vector and
// memref operations.
//===----------------------------------------------------------------------===//

def MoEQ_CodeVector : AnyTypeOf<[I32, VectorOfRankAndType<[1], [I32]>]>;
def MoEQ_DequantizedValues : AnyTypeOf<[F16, F32, VectorOfRankAndType<[1], [F16, F32]>]>;

def MoEQ_UnpackCodesOp : MoEQ_Op<"unpack_codes", [AttrSizedOperandSegments]> {
  let summary = "reads consecutive codes of a packed weight row";
  let description = [{
    The `count` codes of `bits` bits that start at bit `bit` of the row
    `indices` of `words` (the packed format: every row a little-endian bit
    stream of i32 words, code k at bits [k*bits, (k+1)*bits); a code may
    straddle two words), as i32 values: an `i32` for one code, a vector of
    `count` otherwise. `words` may be in any memory space (global, shared,
    or a CPU memref). With `width` (one code only), the code is that many
    bits wide, at most `bits` (SliM-LLM's group widths read from a table).

    `aligned`: `bit` is a multiple of `count * bits` and `32` is too, so no
    read straddles two words and the lowering reads one word. `padded`: the
    word after the one `bit` falls in is always readable (a shared-memory
    tile with a spare word); otherwise the second read is clamped to the
    row's last word.

    ```mlir
    %pair = moeq.unpack_codes %tile[%stage, %row] bit %b {bits = 3 : i64, count = 2 : i64, padded}
        : memref<3x64x13xi32, #gpu.address_space<workgroup>> -> vector<2xi32>
    ```
  }];
  let arguments = (ins Arg<MemRefOf<[I32]>, "packed rows", [MemRead]>:$words,
                       Variadic<Index>:$indices, Index:$bit, Optional<Index>:$width,
                       ConfinedAttr<I64Attr, [IntMinValue<1>, IntMaxValue<8>]>:$bits,
                       ConfinedAttr<DefaultValuedAttr<I64Attr, "1">, [IntMinValue<1>]>:$count,
                       UnitAttr:$aligned, UnitAttr:$padded);
  let results = (outs MoEQ_CodeVector:$codes);
  let assemblyFormat = [{
    $words `[` $indices `]` `bit` $bit (`width` $width^)? attr-dict `:` type($words) `->`
    type($codes)
  }];
  let hasVerifier = 1;
}

def MoEQ_DequantizeCodesOp : MoEQ_Op<"dequantize_codes", [Pure]> {
  let summary = "(code - zero) * scale, rounded once to the result type";
  let description = [{
    Each code (an unsigned i32 below 256) becomes `(code - zero) * scale`,
    computed exactly and rounded once to the result's element type (f16 or
    f32); `scale` and `zero` (f16 or f32 scalars) are shared by all codes.
    `integral_zero`: the zero point is an integer (every asymmetric scheme
    but binarised 1-bit groups, and the symmetric midpoint 2^(bits-1)),
    which lets an f16 result be computed in f16 arithmetic exactly
    (`1024 + code` built by bit operations, minus `1024 + zero`).

    ```mlir
    %w = moeq.dequantize_codes %pair scale %s zero %z {integral_zero}
        : vector<2xi32>, f16, f16 -> vector<2xf16>
    ```
  }];
  let arguments = (ins MoEQ_CodeVector:$codes, AnyTypeOf<[F16, F32]>:$scale,
                       AnyTypeOf<[F16, F32]>:$zero, UnitAttr:$integral_zero);
  let results = (outs MoEQ_DequantizedValues:$result);
  let assemblyFormat = [{
    $codes `scale` $scale `zero` $zero attr-dict `:` type($codes) `,` type($scale) `,`
    type($zero) `->` type($result)
  }];
  let hasVerifier = 1;
}

def MoEQ_LookupLevelsOp : MoEQ_Op<"lookup_levels", []> {
  let summary = "the levels a level-table scheme's codes stand for";
  let description = [{
    Level tables (DDQ adaptive resolution, `lut` schemes): each code selects
    entry `start + code` of the row `indices` of `levels` (the 2^bits f16
    levels of each group of a weight row, concatenated), extended to the
    result's element type.

    ```mlir
    %w = moeq.lookup_levels %pair in %levels[%col] start %t
        : vector<2xi32>, memref<256x64xf16> -> vector<2xf16>
    ```
  }];
  let arguments = (ins MoEQ_CodeVector:$codes,
                       Arg<MemRefOf<[F16]>, "level tables", [MemRead]>:$levels,
                       Variadic<Index>:$indices, Index:$start);
  let results = (outs MoEQ_DequantizedValues:$result);
  let assemblyFormat = [{
    $codes `in` $levels `[` $indices `]` `start` $start attr-dict `:` type($codes) `,`
    type($levels) `->` type($result)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Tensor-core tiles (inside kernels)
//
// The steps of a tensor-core GEMM kernel above nvgpu: a K step's tiles
// copied to shared memory, the warp's MMAs. The builder of
// moeq-lower-expert-gemms-to-gpu emits them in a plain K loop;
// moeq-pipeline-tile-loads software-pipelines that loop (upstream
// scf::pipelineForLoop) and moeq-lower-tile-ops lowers the ops to nvgpu
// (populateTileOpLoweringPatterns).
//===----------------------------------------------------------------------===//

def MoEQ_LoadTileAsyncOp : MoEQ_Op<"load_tile_async", [AttrSizedOperandSegments]> {
  let summary = "copies a tile of global rows into a shared-memory stage, asynchronously";
  let description = [{
    Row `r` of stage `stage` of `tiles` (`r` below the tiles' second
    dimension) receives elements `[column, column + columns)` of row
    `row + r` of `source`, or zeros where `row + r >= bound` or `enabled`
    is false: then nothing is read. With `chunks_per_row`, a row has that
    many `chunk`-element chunks (at most `columns / chunk`; the rest of the
    row keeps its contents).

    The copy is collective: every one of the block's first `threads`
    threads (`gpu.thread_id x`) executes it and issues its share of the
    `chunk`-element copies (cp.async of `chunk * element size` bytes, 4 to
    16; smaller chunks are plain loads and stores). The copies join the
    thread's open cp.async group: `nvgpu.device_async_create_group`
    commits them, `nvgpu.device_async_wait` and a barrier make them
    visible to the block.

    Tiles of rank 3 are `[stages, rows, row length]`, row-major (rows may
    be padded). Tiles of rank 5 are `[stages, rows / 8, row length / E, 8,
    E]` with `E` elements in 16 bytes: the rows in core matrices of 8 rows
    x 16 bytes, the K-major no-swizzle layout the Hopper warpgroup MMA
    reads from shared memory (`moeq.warpgroup_mma`); a chunk is then at
    most 16 bytes of one core-matrix row.

    With `barriers` (Hopper, sm_90): each row is one bulk copy
    (`cp.async.bulk`, `columns` elements, a multiple of 16 bytes from a
    16-byte aligned address) that completes on the mbarrier
    `barriers[stage]` rather than in a cp.async group; the block's thread 0
    arrives on it expecting all the rows' bytes. Rows past `bound` copy row
    `bound - 1` (bulk copies cannot zero-fill). Wait with
    `moeq.wait_tile_barrier`.

    ```mlir
    moeq.load_tile_async %x[%m0, %k0] bound %rows into %a[%stage] if %more
        {columns = 32 : i64, chunk = 8 : i64, threads = 128 : i64}
        : memref<?x4096xf16, #gpu.address_space<global>>,
          memref<3x64x40xf16, #gpu.address_space<workgroup>>
    ```
  }];
  let arguments = (ins Arg<MemRefRankOf<[AnyType], [2]>, "global rows", [MemRead]>:$source,
                       Index:$row, Index:$column, Index:$bound,
                       Arg<MemRefRankOf<[AnyType], [3, 5]>, "staged tiles", [MemWrite]>:$tiles,
                       Index:$stage, Optional<I1>:$enabled, Optional<Index>:$chunks_per_row,
                       Arg<Optional<MemRefRankOf<[I64], [1]>>, "mbarriers",
                           [MemRead, MemWrite]>:$barriers,
                       ConfinedAttr<I64Attr, [IntMinValue<1>]>:$columns,
                       ConfinedAttr<I64Attr, [IntMinValue<1>]>:$chunk,
                       ConfinedAttr<I64Attr, [IntMinValue<32>]>:$threads);
  let assemblyFormat = [{
    $source `[` $row `,` $column `]` `bound` $bound `into` $tiles `[` $stage `]`
    (`if` $enabled^)? (`chunks_per_row` $chunks_per_row^)?
    (`barriers` $barriers^ `:` type($barriers))? attr-dict `:` type($source) `,` type($tiles)
  }];
  let hasVerifier = 1;
}

def MoEQ_InitTileBarriersOp : MoEQ_Op<"init_tile_barriers", []> {
  let summary = "initialises the mbarriers bulk tile copies complete on";
  let description = [{
    Thread 0 of the block initialises every mbarrier of `barriers` (one per
    pipeline stage) for one arrival; the initialisation is then made
    visible to the async proxy and to every thread (a fence and a block
    barrier). At the start of a kernel, before any `moeq.load_tile_async`
    with `barriers`.

    ```mlir
    moeq.init_tile_barriers %bars : memref<3xi64, #gpu.address_space<workgroup>>
    ```
  }];
  let arguments = (ins Arg<MemRefRankOf<[I64], [1]>, "mbarriers", [MemWrite]>:$barriers);
  let assemblyFormat = "$barriers attr-dict `:` type($barriers)";
  let hasVerifier = 1;
}

def MoEQ_WaitTileBarrierOp : MoEQ_Op<"wait_tile_barrier", []> {
  let summary = "waits for a stage's bulk tile copies";
  let description = [{
    Blocks the thread until the phase of `barriers[stage]` with parity
    `parity` (0 or 1) has completed: the bulk copies of that use of the
    stage have landed. The j-th use of a stage (from 0) completes the phase
    of parity j % 2.

    ```mlir
    moeq.wait_tile_barrier %bars[%stage] parity %p : memref<3xi64, #gpu.address_space<workgroup>>
    ```
  }];
  let arguments = (ins Arg<MemRefRankOf<[I64], [1]>, "mbarriers", [MemRead, MemWrite]>:$barriers,
                       Index:$stage, Index:$parity);
  let assemblyFormat = [{
    $barriers `[` $stage `]` `parity` $parity attr-dict `:` type($barriers)
  }];
  let hasVerifier = 1;
}

def MoEQ_MmaFragment : VectorOfRankAndType<[2], [F16, F32, I32, I8, I<4>]>;

def MoEQ_LoadFragmentOp : MoEQ_Op<"load_fragment", []> {
  let summary = "loads a warp's mma.sync operand fragment from a shared-memory tile";
  let description = [{
    The `mma.sync` operand that starts at row `row` and K element `k` of
    stage `stage` of `tiles`, in the register layout of each lane: an A
    fragment (`vector<4x...>`: 16 rows of the activations, by
    `ldmatrix.x4`) or a B fragment (`vector<2x...>`: 8 rows of the weights,
    one per output column). By element type:

    - f16 A (`vector<4x2xf16>`, m16n8k16) and f16 B (`vector<2x2xf16>`,
      `ldmatrix.x2`) from f16 tiles;
    - s8 A (`vector<4x4xi8>`, m16n8k32) and s4 A (`vector<4x8xi4>`,
      m16n8k64: two codes per byte, low nibble first) from byte tiles;
    - s8 B (`vector<2x4xi8>`) and s4 B (`vector<2x8xi4>`) from a tile of
      packed weight words (i32) holding unsigned codes, made signed by
      subtracting 2^(bits-1) (a flip of each code's top bit); `k` counts
      words there.

    Packed weight-only B fragments are read and dequantised with
    `moeq.unpack_codes` and `moeq.dequantize_codes` instead.

    ```mlir
    %a = moeq.load_fragment %tiles[%stage, %row, %k]
        : memref<3x32x72xf16, #gpu.address_space<workgroup>> -> vector<4x2xf16>
    ```
  }];
  let arguments = (ins Arg<MemRefRankOf<[F16, I8, I32], [3]>, "staged tiles", [MemRead]>:$tiles,
                       Index:$stage, Index:$row, Index:$k);
  let results = (outs MoEQ_MmaFragment:$fragment);
  let assemblyFormat = [{
    $tiles `[` $stage `,` $row `,` $k `]` attr-dict `:` type($tiles) `->` type($fragment)
  }];
  let hasVerifier = 1;
}

def MoEQ_MmaTileOp : MoEQ_Op<"mma_tile", [Pure, AttrSizedOperandSegments,
    InferTypeOpAdaptor]> {
  let summary = "a warp's block of MMAs over one K extent";
  let description = [{
    The warp-level product of `lhs` (A fragments of `m` rows each) and
    `rhs` (B fragments of `n` columns each) over one `k` extent, added to
    the accumulators: result `i * size(rhs) + j` is `acc[i * size(rhs) +
    j] + lhs[i] x rhs[j]`. Fragments are in the `mma.sync` register layout
    of `mma_shape` = [m, n, k] (each lane holds its part, as for
    `nvgpu.mma.sync`, which each product lowers to).

    ```mlir
    %c:2 = moeq.mma_tile (%a0) x (%b0, %b1) + (%c0, %c1) {mma_shape = array<i64: 16, 8, 16>}
        : (vector<4x2xf16>) x (vector<2x2xf16>, vector<2x2xf16>)
          + (vector<2x2xf32>, vector<2x2xf32>)
    ```
  }];
  let arguments = (ins Variadic<MoEQ_MmaFragment>:$lhs, Variadic<MoEQ_MmaFragment>:$rhs,
                       Variadic<MoEQ_MmaFragment>:$acc, DenseI64ArrayAttr:$mma_shape);
  let results = (outs Variadic<MoEQ_MmaFragment>:$results);
  let assemblyFormat = [{
    `(` $lhs `)` `x` `(` $rhs `)` `+` `(` $acc `)` attr-dict `:` `(` type($lhs) `)` `x`
    `(` type($rhs) `)` `+` `(` type($acc) `)`
  }];
  let hasVerifier = 1;
}

def MoEQ_WarpGroupMmaOp : MoEQ_Op<"warpgroup_mma", [InferTypeOpAdaptor]> {
  let summary = "a warpgroup's MMAs over a K step, both operands in shared memory";
  let description = [{
    The Hopper warpgroup MMA (sm_90a): the 128 threads of a warpgroup (4
    consecutive warps) together add the product of 64 rows of `lhs` from
    row `row` of stage `lhs_stage` and `8 * size(acc)` rows of `rhs` from
    row `column` of stage `rhs_stage`, over the tiles' whole K extent, to
    the accumulators: result `j` is `acc[j]` plus the 16 x 8 block of
    rows `16 w ..` and columns `8 j ..` that warp `w` of the warpgroup holds
    (the `mma.sync` C layout: lane l holds rows l / 4 and l / 4 + 8,
    columns 2 (l % 4) and + 1).

    Both operands are f16 tiles in core-matrix order (`[stages, rows / 8,
    K / 8, 8, 8]`, as `moeq.load_tile_async` writes rank-5 tiles), read by
    the tensor cores through the async proxy: writes by the threads
    (st.shared, cp.async) must be followed by `fence.proxy.async` and a
    barrier. It lowers to one `wgmma.mma_async.m64nNk16` per 16 K elements
    between `wgmma.fence` and a commit and wait of the group, so that the
    operands may be overwritten once every warpgroup has passed a barrier.

    ```mlir
    %d:2 = moeq.warpgroup_mma %a[%stage, %row] x %w[%c0, %col] + (%c0, %c1)
        : memref<3x8x8x8x8xf16, #gpu.address_space<workgroup>>,
          memref<1x2x8x8x8xf16, #gpu.address_space<workgroup>>,
          (vector<2x2xf32>, vector<2x2xf32>)
    ```
  }];
  let arguments = (ins Arg<MemRefRankOf<[F16], [5]>, "A tiles", [MemRead]>:$lhs,
                       Index:$lhs_stage, Index:$row,
                       Arg<MemRefRankOf<[F16], [5]>, "B tiles", [MemRead]>:$rhs,
                       Index:$rhs_stage, Index:$column,
                       Variadic<VectorOfRankAndType<[2], [F32]>>:$acc);
  let results = (outs Variadic<VectorOfRankAndType<[2], [F32]>>:$results);
  let assemblyFormat = [{
    $lhs `[` $lhs_stage `,` $row `]` `x` $rhs `[` $rhs_stage `,` $column `]` `+` `(` $acc `)`
    attr-dict `:` type($lhs) `,` type($rhs) `,` `(` type($acc) `)`
  }];
  let hasVerifier = 1;
}

def MoEQ_StoreTileOp : MoEQ_Op<"store_tile", [AttrSizedOperandSegments]> {
  let summary = "stores a warp's MMA accumulators, scaled, inside the output's bounds";
  let description = [{
    The epilogue of a warp's block of `tiles = [tm, tn]` m16n8 products:
    accumulator `i * tn + j` (the `mma.sync` C layout: lane l holds rows
    l / 4 and l / 4 + 8, columns 2 (l % 4) and + 1) is stored at rows
    `row + 16 i ..` and columns `column + 8 j ..` of `output`, only where
    the row is below `bound` and the column below the output's width. On
    the way, each value:

    - becomes f32 (s32 sums of integer MMAs convert);
    - with `column_scales` (`[N, groups]`, per-channel integer paths), is
      multiplied by its column's scale in group 0;
    - with `row_scales` (`[M]`, quantised activations), by its row's scale;
    - is rounded to the output's element type (f16 pairs are one 32-bit
      store; f32 pairs, the split-K partial sums, one 64-bit store), at row
      `row_offset + row` when given (a split-K slice's rows of the
      workspace).

    ```mlir
    moeq.store_tile (%c0, %c1) into %y[%m, %n] bound %rows {tiles = array<i64: 1, 2>}
        : (vector<2x2xf32>, vector<2x2xf32>), memref<?x128xf16, #gpu.address_space<global>>
    ```
  }];
  let arguments = (ins Variadic<VectorOfRankAndType<[2], [F32, I32]>>:$accumulators,
                       Arg<MemRefRankOf<[F16, F32], [2]>, "output rows", [MemWrite]>:$output,
                       Index:$row, Index:$column, Index:$bound,
                       Optional<MemRefRankOf<[F16], [2]>>:$column_scales,
                       Optional<MemRefRankOf<[F32], [1]>>:$row_scales,
                       Optional<Index>:$row_offset, DenseI64ArrayAttr:$tiles);
  let assemblyFormat = [{
    `(` $accumulators `)` `into` $output `[` $row `,` $column `]` `bound` $bound
    (`column_scales` $column_scales^ `:` type($column_scales))?
    (`row_scales` $row_scales^ `:` type($row_scales))?
    (`row_offset` $row_offset^)? attr-dict `:` `(` type($accumulators) `)` `,` type($output)
  }];
  let hasVerifier = 1;
}

def MoEQ_ForEachTileOp : MoEQ_Op<"for_each_tile", [RecursiveMemoryEffects,
    SingleBlockImplicitTerminator<"::mlir::moeq::YieldOp">]> {
  let summary = "the persistent tile scheduler of a grouped GEMM";
  let description = [{
    Runs the body once for each output tile of a grouped GEMM that this
    block owns. The tiles are numbered expert by expert: expert `e` owns
    rows `[offsets[e], offsets[e + 1])` and, with mix `m = mix_of[e]` (0
    without `mix_of`), `ceil(rows / bm[m]) x tiles_n[m]` tiles, row-major.
    Block `c` of a grid of `G` takes tiles `c, c + G, ...` (one pass over
    the experts carries the running count, so a block's work is O(experts)
    plus its tiles). The body's arguments are the expert, the tile's index
    within the expert, the expert's first and end rows, and its mix. Every
    tile starts with a barrier: the previous tile's shared memory is free.

    ```mlir
    moeq.for_each_tile %offsets mix_of %mixes : memref<3xi32> {bm = array<i64: 32, 16>, tiles_n = array<i64: 2, 1>}
        : memref<4xi32, #gpu.address_space<global>> {
    ^bb0(%expert: index, %tile: index, %first: index, %end: index, %mix: index):
      ...
    }
    ```
  }];
  let arguments = (ins MemRefRankOf<[I32], [1]>:$offsets,
                       Optional<MemRefRankOf<[I32], [1]>>:$mix_of,
                       DenseI64ArrayAttr:$bm, DenseI64ArrayAttr:$tiles_n);
  let regions = (region SizedRegion<1>:$body);
  let assemblyFormat = [{
    $offsets (`mix_of` $mix_of^ `:` type($mix_of))? attr-dict `:` type($offsets) $body
  }];
  let hasVerifier = 1;
}

def MoEQ_YieldOp : MoEQ_Op<"yield", [Pure, Terminator,
    HasParent<"::mlir::moeq::ForEachTileOp">]> {
  let summary = "ends the body of a moeq.for_each_tile";
  let assemblyFormat = "attr-dict";
}

//===----------------------------------------------------------------------===//
// Host launch plan
//===----------------------------------------------------------------------===//

def MoEQ_GlobalMemRef : Type<
    CPred<"::mlir::moeq::isGlobalMemRef($_self)">,
    "memref in GPU global memory", "::mlir::MemRefType">;
def MoEQ_DevicePointer : Type<
    CPred<"::mlir::moeq::isDevicePointer($_self)">,
    "pointer to GPU global memory (!llvm.ptr<1>)">;

def MoEQ_DeviceParamOp : MoEQ_Op<"device_param", [Pure]> {
  let summary = "an external parameter uploaded once to device memory";
  let description = [{
    The tensor named by `ref`, in GPU global memory with the result's
    element type and shape: the runtime reads it from the artifact's weight
    file once, converts it (for instance a BF16 router to f32, a BF16
    shared-expert weight to f16), and passes its device address where a
    kernel of the launch plan takes it. Host functions of the launch plan
    only (`moeq-convert-to-launch-plan`).

    ```mlir
    %w = moeq.device_param <"model", "model.layers.0.block_sparse_moe.gate.weight">
        : memref<8x128xf32, #gpu.address_space<global>>
    ```
  }];
  let arguments = (ins MoEQ_ExternalParamAttr:$ref);
  let results = (outs MoEQ_GlobalMemRef:$result);
  let assemblyFormat = "$ref attr-dict `:` type($result)";
  let hasVerifier = 1;
}

def MoEQ_DeviceAddressTableOp : MoEQ_Op<"device_address_table", [Pure]> {
  let summary = "a table of device parameters' addresses, uploaded once";
  let description = [{
    A `rows x columns` table of u64 device addresses in global memory: row
    r holds the addresses of the next `row_sizes[r]` operands (device
    parameters), zero-padded. A persistent grouped GEMM reads expert e's
    weight tensors through row e, so that any expert count fits the
    kernel parameter space. Built and uploaded once by the runtime, after
    the parameters.

    ```mlir
    %t = moeq.device_address_table (%q0, %s0, %z0, %q1, %s1) rows [3, 2]
        : (memref<128x8xi32, #gpu.address_space<global>>, ...) -> memref<2x3xi64, #gpu.address_space<global>>
    ```
  }];
  let arguments = (ins Variadic<MoEQ_GlobalMemRef>:$params, DenseI64ArrayAttr:$row_sizes);
  let results = (outs MoEQ_GlobalMemRef:$result);
  let assemblyFormat = [{
    `(` $params `)` `rows` $row_sizes attr-dict `:` functional-type($params, $result)
  }];
  let hasVerifier = 1;
}

def MoEQ_KernelPointerOp : MoEQ_Op<"kernel_pointer", [Pure]> {
  let summary = "the device address of a buffer row, as a kernel takes it";
  let description = [{
    The address of row `row` (0 when absent) of a device buffer of the
    launch plan, as the bare `!llvm.ptr<1>` the generated kernels take for
    their dynamically sized operands (activations, routing buffers): the
    runtime passes `base + row * row_size` elements.

    ```mlir
    %p = moeq.kernel_pointer %sorted[%start]
        : memref<?x128xf16, #gpu.address_space<global>> -> !llvm.ptr<1>
    ```
  }];
  let arguments = (ins MoEQ_GlobalMemRef:$buffer, Optional<Index>:$row);
  let results = (outs MoEQ_DevicePointer:$result);
  let assemblyFormat = [{
    $buffer (`[` $row^ `]`)? attr-dict `:` type($buffer) `->` type($result)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// Elements per row of the buffer: the product of its trailing
    /// dimensions (1 for a 1-D buffer).
    int64_t getRowElements();
  }];
}

#endif // MOEQ_DIALECT_MOEQOPS_TD
