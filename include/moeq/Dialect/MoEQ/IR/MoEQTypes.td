//===- MoEQTypes.td - MoEQ types ---------------------------*- tablegen -*-===//
#ifndef MOEQ_DIALECT_MOEQTYPES_TD
#define MOEQ_DIALECT_MOEQTYPES_TD

include "moeq/Dialect/MoEQ/IR/MoEQAttrs.td"

def MoEQ_PackedWeightType : TypeDef<MoEQ_Dialect, "PackedWeight"> {
  let mnemonic = "qweight";
  let summary = "packed quantized weight matrix";
  let description = [{
    A weight matrix of logical shape `N x K` (output features x input
    features) stored quantized with `scheme`. Storage is three tensors:
    `qweight` (i32, `N x K*bits/32`, each row a little-endian bit stream of
    `bits`-wide codes), `scales` (f16, `N x groups`) and, for asymmetric
    schemes, `zeros` (f16, `N x groups`, integer zero points). A weight
    dequantizes as `(q - zero) * scale`.

    ```mlir
    !moeq.qweight<512x256, #moeq.scheme<w4a16, g128, asym>>
    ```
  }];
  let parameters = (ins ArrayRefParameter<"int64_t">:$shape,
                        MoEQ_SchemeAttr:$scheme);
  let hasCustomAssemblyFormat = 1;
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    int64_t getOutputDim() const { return getShape()[0]; }
    int64_t getInputDim() const { return getShape()[1]; }
    int64_t getNumGroups() const { return getScheme().getNumGroups(getInputDim()); }
    /// 32-bit words per packed row.
    int64_t getWordsPerRow() const {
      return getInputDim() * getScheme().getWeightBits() / 32;
    }
  }];
}

#endif // MOEQ_DIALECT_MOEQTYPES_TD
