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
    `qweight` (i32, `N x ceil(K*bits/32)`, each row a little-endian bit
    stream of `bits`-wide codes, zero-padded to whole words when `K * bits`
    is not a multiple of 32), `scales` (f16, `N x groups`) and, for asymmetric
    schemes, `zeros` (f16, `N x groups`, integer zero points). A weight
    dequantizes as `(q - zero) * scale`.

    SliM-LLM's group-wise mixed precision: `group_bits` gives the code width
    of each column group (the same for every row), whose mean is the
    scheme's weight bits; the groups' codes follow one another in a row's
    bit stream, so a row still holds `K * bits` bits.

    ```mlir
    !moeq.qweight<512x256, #moeq.scheme<w4a16, g128, asym>>
    !moeq.qweight<512x256, #moeq.scheme<w2a16, g128, asym>, group_bits = [1, 3]>
    ```
  }];
  let parameters = (ins ArrayRefParameter<"int64_t">:$shape,
                        MoEQ_SchemeAttr:$scheme,
                        OptionalArrayRefParameter<"int64_t">:$groupBits);
  let builders = [
    TypeBuilder<(ins "::llvm::ArrayRef<int64_t>":$shape, "SchemeAttr":$scheme), [{
      return $_get($_ctxt, shape, scheme, ::llvm::ArrayRef<int64_t>());
    }]>
  ];
  let hasCustomAssemblyFormat = 1;
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    int64_t getOutputDim() const { return getShape()[0]; }
    int64_t getInputDim() const { return getShape()[1]; }
    int64_t getNumGroups() const { return getScheme().getNumGroups(getInputDim()); }
    bool hasGroupBits() const;
    /// Code width of column group `group`.
    unsigned getBitsOfGroup(int64_t group) const;
    /// 32-bit words per packed row (the last one zero-padded when the
    /// row's codes end inside it).
    int64_t getWordsPerRow() const {
      return (getInputDim() * getScheme().getWeightBits() + 31) / 32;
    }
    /// Elements per row of the archive tensor with key suffix `suffix`
    /// (SchemeAttr::getStorageSuffixes): words of `.qweight`, one per group
    /// of `.scales` and `.zeros`, 2^bits per group of `.levels`.
    int64_t getStorageRowLength(::llvm::StringRef suffix) const {
      if (suffix == ".qweight")
        return getWordsPerRow();
      if (suffix == ".levels")
        return getNumGroups() << getScheme().getWeightBits();
      return getNumGroups();
    }
  }];
}

#endif // MOEQ_DIALECT_MOEQTYPES_TD
