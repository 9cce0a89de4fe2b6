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

#endif // MOEQ_DIALECT_MOEQBASE_TD
