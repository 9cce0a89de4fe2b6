//===- MoEQBase.td - MoEQ dialect definition and enums -----*- tablegen -*-===//
#ifndef MOEQ_DIALECT_MOEQBASE_TD
#define MOEQ_DIALECT_MOEQBASE_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/EnumAttr.td"

def MoEQ_Dialect : Dialect {
  let name = "moeq";
  let cppNamespace = "::mlir::moeq";
  let summary = "Mixed-precision quantized Mixture-of-Experts";
  let description = [{
    The MoEQ dialect models Mixture-of-Experts (MoE) blocks of large language
    models and their compilation to mixed-precision quantized GPU kernels.

    A model is imported with every weight as an *external parameter*
    (`#moeq.param<scope, key>`), never copied into the IR. The `moeq.moe` op
    describes one MoE block (router, routed experts, optional shared expert);
    it decomposes into `moeq.router`, `moeq.dispatch`, `moeq.grouped_matmul`,
    `moeq.gated_activation` and `moeq.combine`. Quantized weights have the
    `!moeq.qweight` type, which carries the logical shape and the
    quantization scheme (`#moeq.scheme`), so every expert linear can have its
    own precision.
  }];
  let useDefaultAttributePrinterParser = 1;
  let useDefaultTypePrinterParser = 1;
  // The dialect's attributes on other dialects' operations (and on moeq
  // ops, beyond their own), each with its type; verifyOperationAttribute
  // checks them and where they may appear (MoEQDialect.cpp), and refuses
  // any other `moeq.` attribute.
  let discardableAttrs = (ins
    // func.func of a MoE layer: its decoder layer index (import).
    "::mlir::IntegerAttr":$layer,
    // module: the target GPU architecture (moeq-set-target).
    "::mlir::moeq::TargetAttr":$target,
    // module: archive scope -> file or checkpoint directory.
    "::mlir::DictionaryAttr":$archives,
    // module: the imported model's config summary.
    "::mlir::DictionaryAttr":$model,
    // module: tensors outside the MoE blocks, copied to the artifact.
    "::mlir::ArrayAttr":$passthrough,
    // moeq.moe: the loss of every linear under every candidate scheme.
    "::mlir::DictionaryAttr":$sensitivity,
    // func.func of a layer: the bit allocation's summary.
    "::mlir::DictionaryAttr":$allocation,
    // module: the model-wide allocation's summary (granularity layer).
    "::mlir::DictionaryAttr":$model_allocation,
    // func.func of a layer: the D^2-MoE decomposition's summary.
    "::mlir::DictionaryAttr":$delta,
    // the rank GEMM of a D^2-MoE linear: the expert of each weight.
    "::mlir::ArrayAttr":$delta_sources,
    // moeq.grouped_matmul / moeq.linear: the rows the tiles were chosen for.
    "::mlir::IntegerAttr":$rows_per_expert,
    // host function of a layer: the layer function it launches.
    "::mlir::FlatSymbolRefAttr":$launch_plan,
    // device buffers of a launch plan: their names in the manifest.
    "::mlir::StringAttr":$name,
    // moeq.grouped_matmul: one persistent kernel for all its groups.
    "::mlir::UnitAttr":$persistent,
    // moeq.param of a D^2-MoE base or factor: the Hessian GPTQ/AGQ use.
    "::mlir::moeq::ExternalParamAttr":$hessian,
    // scf.for, the K loop of a tensor-core tile: its cp.async stages
    // (moeq-pipeline-tile-loads).
    "::mlir::IntegerAttr":$pipeline_stages
  );
  let hasOperationAttrVerify = 1;
  let hasRegionArgAttrVerify = 1;
  let dependentDialects = ["::mlir::tensor::TensorDialect", "::mlir::LLVM::LLVMDialect"];
  let extraClassDeclaration = [{
    /// Defined next to the attribute and type storage (MoEQAttrs.cpp).
    void registerAttributesAndTypes();
  }];
}

def MoEQ_NumberFormat : I32EnumAttr<"NumberFormat",
    "number format of quantized weights", [
      I32EnumAttrCase<"Int", 0, "int">,
      I32EnumAttrCase<"FP8E4M3", 1, "fp8_e4m3">,
      I32EnumAttrCase<"LevelTable", 2, "lut">
    ]> {
  let cppNamespace = "::mlir::moeq";
  let genSpecializedAttr = 0;
}

def MoEQ_ScoringFunc : I32EnumAttr<"ScoringFunc",
    "router scoring function", [
      I32EnumAttrCase<"Softmax", 0, "softmax">,
      I32EnumAttrCase<"Sigmoid", 1, "sigmoid">,
      I32EnumAttrCase<"SparseMixer", 2, "sparsemixer">
    ]> {
  let cppNamespace = "::mlir::moeq";
  let genSpecializedAttr = 0;
}

def MoEQ_GroupScoring : I32EnumAttr<"GroupScoring",
    "score of an expert group in group-limited top-k", [
      I32EnumAttrCase<"Max", 0, "max">,
      I32EnumAttrCase<"Top2Sum", 1, "top2_sum">
    ]> {
  let cppNamespace = "::mlir::moeq";
  let genSpecializedAttr = 0;
}

def MoEQ_Activation : I32EnumAttr<"Activation",
    "gated activation of an expert MLP", [
      I32EnumAttrCase<"SiLU", 0, "silu">,
      I32EnumAttrCase<"GeLU", 1, "gelu">,
      // gpt-oss: (clamp(up, -limit, limit) + 1) * g * sigmoid(alpha * g)
      // with g = min(gate, limit).
      I32EnumAttrCase<"ClampedSwiGLU", 2, "clamped_swiglu">
    ]> {
  let cppNamespace = "::mlir::moeq";
  let genSpecializedAttr = 0;
}

def MoEQ_QuantMethod : I32EnumAttr<"QuantMethod",
    "weight quantization algorithm", [
      I32EnumAttrCase<"RTN", 0, "rtn">,
      I32EnumAttrCase<"GPTQ", 1, "gptq">,
      I32EnumAttrCase<"AGQ", 2, "agq">
    ]> {
  let cppNamespace = "::mlir::moeq";
  let genSpecializedAttr = 0;
}

def MoEQ_KernelFamily : I32EnumAttr<"KernelFamily",
    "kernel family of a GEMM tile", [
      // one thread per output feature on the CUDA cores (small-M decode)
      I32EnumAttrCase<"Simt", 0, "simt">,
      // mma.sync tensor-core tiles with a cp.async pipeline
      I32EnumAttrCase<"TensorCore", 1, "mma">,
      // Hopper (sm_90a) warpgroup tiles: wgmma.mma_async on operands in
      // shared memory, cp.async pipeline
      I32EnumAttrCase<"WarpGroupMma", 2, "wgmma">
    ]> {
  let cppNamespace = "::mlir::moeq";
  let genSpecializedAttr = 0;
}

#endif // MOEQ_DIALECT_MOEQBASE_TD
