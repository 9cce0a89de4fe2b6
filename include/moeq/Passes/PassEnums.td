//===- PassEnums.td - the choices of moeq's pass options ---*- tablegen -*-===//
//
// Every option of a moeq pass or pipeline that chooses one of several
// behaviours is one of these enums (or a dialect enum: QuantMethod,
// NumberFormat), parsed and printed by its case names.
//
//===----------------------------------------------------------------------===//
#ifndef MOEQ_PASSES_PASSENUMS_TD
#define MOEQ_PASSES_PASSENUMS_TD

include "mlir/IR/EnumAttr.td"

def MoEQ_AllocationGranularity : I32Enum<"AllocationGranularity",
    "what shares one scheme in the bit allocation", [
      // gate+up of an expert, and its down
      I32EnumCase<"Linear", 0, "linear">,
      // all three linears of an expert
      I32EnumCase<"Expert", 1, "expert">,
      // all routed experts of a layer; the budget is the model's
      I32EnumCase<"Layer", 2, "layer">
    ]> {
  let cppNamespace = "::mlir::moeq";
}

def MoEQ_AllocationSolver : I32Enum<"AllocationSolver",
    "how the bit allocation is solved", [
      // proven optimum (convex hull of knapsacks, GLPK MILPs)
      I32EnumCase<"Exact", 0, "exact">,
      // DDQ's continuous relaxation, rounded and repaired
      I32EnumCase<"Relaxed", 1, "relaxed">
    ]> {
  let cppNamespace = "::mlir::moeq";
}

def MoEQ_QuantizationLoss : I32Enum<"QuantizationLoss",
    "what measures the loss of a quantized linear", [
      // output where the statistics hold input samples, else hessian
      I32EnumCase<"Auto", 0, "auto">,
      // the linear's proxy tr(dW H dW^T)
      I32EnumCase<"Hessian", 1, "hessian">,
      // MxMoE's measured expert-output error on the input samples
      I32EnumCase<"Output", 2, "output">
    ]> {
  let cppNamespace = "::mlir::moeq";
}

def MoEQ_GroupBitsSearch : I32Enum<"GroupBitsSearch",
    "which of SliM-LLM's k are tried", [
      // golden-section search, about log_phi(groups / 2) + 5 quantizations
      I32EnumCase<"Golden", 0, "golden">,
      // every k from 0 to groups / 2
      I32EnumCase<"Exhaustive", 1, "exhaustive">
    ]> {
  let cppNamespace = "::mlir::moeq";
}

def MoEQ_GemmKernelPath : I32Enum<"GemmKernelPath",
    "kernel family of an expert GEMM", [
      // the cost model's choice per precision mix
      I32EnumCase<"Auto", 0, "auto">,
      // tensor cores (mma.sync)
      I32EnumCase<"TensorCore", 1, "mma">,
      // CUDA cores, one thread per output feature (small-M decode)
      I32EnumCase<"Simt", 2, "simt">
    ]> {
  let cppNamespace = "::mlir::moeq";
}

def MoEQ_DeltaMerge : I32Enum<"DeltaMerge",
    "how D^2-MoE merges the experts into a base", [
      // frequency x Fisher information weighted
      I32EnumCase<"Fisher", 0, "fisher">,
      // the plain mean
      I32EnumCase<"Mean", 1, "mean">
    ]> {
  let cppNamespace = "::mlir::moeq";
}

#endif // MOEQ_PASSES_PASSENUMS_TD
